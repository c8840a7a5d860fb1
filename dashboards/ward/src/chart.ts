// One time series as a uPlot chart, with bands (NEWS2 sub-scores) shaded
// behind the points and labelled with their sub-score (+1…+3) on the chart,
// so the bands never rely on colour alone.
import uPlot from "uplot";
import type { Band } from "./bands";

// The same colours as the ward table's sub-score cells (style.css).
const BAND_FILL: Record<number, string> = { 1: "#fff6bf", 2: "#ffd8a8", 3: "#ffb3b3" };
const SERIES_STROKE = ["#003087", "#6b3fa0"];

export interface SeriesSpec { label: string; xs: number[]; ys: number[] }

export interface ChartOptions {
  bands: Band[];
  /** The y range always shown, so a flat series still shows its bands. */
  floor: [number, number];
  /** The x range, in seconds. */
  range: [number, number];
  /** x is a Unix time (default); otherwise plain seconds. */
  time?: boolean;
  height?: number;
  /** Points on each sample (default) or a plain line (the ECG). */
  points?: boolean;
  /** Horizontal dashed lines, each labelled on the chart (a pathway's target range). */
  lines?: { value: number; label: string }[];
  /** Drawn over the series (the ECG's beat marks). */
  draw?: (u: uPlot) => void;
  /**
   * Times the patient was not on the ward (between a discharge and their
   * next admission, or since their last discharge), in the x unit; `end`
   * null = still. Shaded and named on the chart, and the series' lines are
   * broken across them: a line from one stay to the next would draw a trend
   * nobody watched.
   */
  offWard?: OffWard[];
}

export interface OffWard { start: number; end: number | null }

export class VitalChart {
  private plot: uPlot;
  private range: [number, number];
  // The chart follows its box's width (a window resized, a column added).
  private resize = new ResizeObserver(([e]) => {
    const w = Math.max(300, Math.floor(e.contentRect.width));
    if (w !== this.plot.width) this.plot.setSize({ width: w, height: this.plot.height });
  });

  constructor(target: HTMLElement, series: SeriesSpec[], private o: ChartOptions) {
    this.range = o.range;
    const points = o.points ?? true;
    const opts: uPlot.Options = {
      width: Math.max(300, target.clientWidth || 600),
      height: o.height ?? 180,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: o.time ?? true, range: () => this.range },
        y: { range: (_u, lo, hi) => this.yRange(lo, hi) },
      },
      series: [{}, ...series.map((s, i) => ({
        label: s.label, stroke: SERIES_STROKE[i % SERIES_STROKE.length], width: points ? 1.5 : 1,
        points: { show: points, size: 5, fill: SERIES_STROKE[i % SERIES_STROKE.length] },
      }))],
      axes: [{ stroke: "#333" }, { stroke: "#333", size: 45 }],
      hooks: { drawClear: [(u) => this.drawBands(u)], draw: o.draw ? [o.draw] : [] },
    };
    this.plot = new uPlot(opts, toData(series, o.offWard), target);
    this.resize.observe(target);
  }

  private yRange(lo: number | null, hi: number | null): [number, number] {
    const [flo, fhi] = this.o.floor;
    const a = lo == null ? flo : Math.min(flo, lo), b = hi == null ? fhi : Math.max(fhi, hi);
    const pad = (b - a) * 0.05 || 1;
    return [a - pad, b + pad];
  }

  private drawBands(u: uPlot): void {
    const { ctx, bbox } = u;
    const clamp = (y: number) => Math.max(bbox.top, Math.min(bbox.top + bbox.height, y));
    ctx.save();
    ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const b of this.o.bands) {
      if (b.score === 0) continue;
      const top = clamp(u.valToPos(Math.min(b.hi, u.scales.y.max ?? b.hi), "y", true));
      const bottom = clamp(u.valToPos(Math.max(b.lo, u.scales.y.min ?? b.lo), "y", true));
      if (bottom - top < 1) continue;
      ctx.fillStyle = BAND_FILL[Math.min(3, b.score)];
      ctx.fillRect(bbox.left, top, bbox.width, bottom - top);
      if (bottom - top > 10 * devicePixelRatio) {
        ctx.fillStyle = "#5a2a00";
        ctx.fillText(b.mark ?? `+${b.score}`, bbox.left + bbox.width - 4, (top + bottom) / 2);
      }
    }
    // Lines are dashed and named in words, never told apart by colour alone.
    ctx.strokeStyle = "#1d1d1d";
    ctx.fillStyle = "#1d1d1d";
    ctx.lineWidth = devicePixelRatio;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.textAlign = "left";
    for (const l of this.o.lines || []) {
      const y = u.valToPos(l.value, "y", true);
      if (y < bbox.top || y > bbox.top + bbox.height) continue;
      ctx.beginPath();
      ctx.moveTo(bbox.left, y);
      ctx.lineTo(bbox.left + bbox.width, y);
      ctx.stroke();
      ctx.fillText(l.label, bbox.left + 4, y - 7 * devicePixelRatio);
    }
    ctx.restore();
    // Over the bands: off the ward, no band applies.
    this.drawOffWard(u);
  }

  /**
   * Shade the times off the ward in grey, each named in words ("not on the
   * ward"), and at least a line's width even when a discharge and the next
   * admission are minutes apart on a week's chart. The plot's box carries
   * how many are in view (`data-off-ward`), for tests and for a reader's
   * tools.
   */
  private drawOffWard(u: uPlot): void {
    const { ctx, bbox } = u;
    const left = bbox.left, right = bbox.left + bbox.width;
    let shown = 0;
    ctx.save();
    ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const g of this.o.offWard || []) {
      const a = u.valToPos(g.start, "x", true);
      const b = g.end == null ? right : u.valToPos(g.end, "x", true);
      if (b < left || a > right) continue;
      const x0 = Math.max(left, a), x1 = Math.min(right, Math.max(b, a + 2 * devicePixelRatio));
      ctx.fillStyle = "#d9d9d9";
      ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
      // Named in words on a white box, readable over any band or mark:
      // inside the grey when it fits, else beside its line.
      const label = "not on the ward", pad = 3 * devicePixelRatio;
      const w = ctx.measureText(label).width, h = 13 * devicePixelRatio;
      // (Left of the band marks, which sit at the right edge.)
      const marks = 28 * devicePixelRatio;
      const tx = x1 - x0 > w + 4 * pad + marks ? x0 + pad
        : x1 + w + 4 * pad + marks < right ? x1 + pad : Math.min(x0, right - marks) - w - 3 * pad;
      const ty = bbox.top + pad;
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(tx, ty, w + 2 * pad, h + pad);
      ctx.fillStyle = "#1d1d1d";
      ctx.textAlign = "left";
      ctx.fillText(label, tx + pad, ty + pad / 2);
      shown++;
    }
    ctx.restore();
    u.root.parentElement?.setAttribute("data-off-ward", String(shown));
  }

  /** Replace the shaded bands (the SpO2 scale or oxygen changed). */
  setBands(bands: Band[]): void {
    this.o.bands = bands;
    this.plot.redraw(false);
  }

  /** Replace the data, the x range and the times off the ward. */
  update(series: SeriesSpec[], range: [number, number], offWard: OffWard[]): void {
    this.range = range;
    this.o.offWard = offWard;
    this.plot.setData(toData(series, offWard));
  }

  destroy(): void { this.resize.disconnect(); this.plot.destroy(); }
}

/**
 * uPlot wants one shared x array: merge the series' times, null where a
 * series has no point, and a time of nulls inside each time off the ward, so
 * that no line joins one stay to the next.
 */
function toData(series: SeriesSpec[], offWard: OffWard[] = []): uPlot.AlignedData {
  const breaks = offWard.map((g) => (g.end == null ? g.start : (g.start + g.end) / 2));
  const xs = [...new Set([...series.flatMap((s) => s.xs), ...breaks])].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    s.xs.forEach((x, i) => { col[index.get(x)!] = s.ys[i]; });
    return col;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}
