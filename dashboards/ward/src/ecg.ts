// The ECG strip: the patch's samples over the last few seconds or minutes
// (the API gives at most 15 minutes), in millivolts, with each beat the
// server's QRS detector found marked by a line and counted in the text.
import type uPlot from "uplot";
import { api } from "./api";
import { VitalChart } from "./chart";
import { $, when } from "./format";
import type { EcgWindow } from "./types";

let chart: VitalChart | null = null;

export async function showEcg(patientId: number, secs: number): Promise<void> {
  const to = Date.now(), from = to - secs * 1000;
  const out = $("ecg-summary"), box = $("ecg-plot");
  out.textContent = "Loading the strip…";
  let w: EcgWindow;
  try {
    w = await api<EcgWindow>(`/api/v1/patients/${patientId}/ecg?from=${encodeURIComponent(new Date(from).toISOString())}`
      + `&to=${encodeURIComponent(new Date(to).toISOString())}`);
  } catch (e) {
    out.textContent = `Could not load the ECG: ${(e as Error).message}.`;
    return;
  }
  chart?.destroy(); chart = null;
  box.replaceChildren();
  box.dataset.samples = "0";
  box.dataset.beats = "0";
  const xs: number[] = [], ys: number[] = [];
  for (const c of [...w.chunks].sort((a, b) => a.t0_ms - b.t0_ms)) {
    c.samples.forEach((s, i) => {
      const t = c.t0_ms + (i * 1000) / c.fs_hz;
      if (t < from || t > to) return;
      xs.push((t - from) / 1000); ys.push((s * c.uv_per_count) / 1000);
    });
  }
  const beats = w.beats.filter((b) => b.t_ms >= from && b.t_ms <= to);
  if (!xs.length) {
    out.textContent = `No ECG in the last ${label(secs)} (${when(new Date(from).toISOString(), true)} to ${when(new Date(to).toISOString(), true)}).`;
    return;
  }
  const beatXs = beats.map((b) => (b.t_ms - from) / 1000);
  const draw = (u: uPlot) => {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = "#c00000";
    ctx.fillStyle = "#c00000";
    ctx.lineWidth = devicePixelRatio;
    for (const x of beatXs) {
      const px = u.valToPos(x, "x", true);
      if (px < bbox.left || px > bbox.left + bbox.width) continue;
      ctx.beginPath(); ctx.moveTo(px, bbox.top); ctx.lineTo(px, bbox.top + bbox.height); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(px - 4 * devicePixelRatio, bbox.top); ctx.lineTo(px + 4 * devicePixelRatio, bbox.top);
      ctx.lineTo(px, bbox.top + 6 * devicePixelRatio); ctx.fill();
    }
    ctx.restore();
  };
  chart = new VitalChart(box, [{ label: "ECG mV", xs, ys }],
    { bands: [], floor: [-0.5, 1], range: [0, secs], time: false, height: 200, points: false, draw });
  box.dataset.samples = String(xs.length);
  box.dataset.beats = String(beats.length);
  const rr = beats.map((b) => b.rr_ms).filter((x): x is number => x != null && x > 0);
  const hr = rr.length ? Math.round(60_000 / (rr.reduce((a, b) => a + b, 0) / rr.length)) : null;
  box.setAttribute("aria-label", `ECG strip, ${label(secs)}, ${beats.length} beats marked`);
  out.textContent = `${label(secs)} from ${when(new Date(from).toISOString(), true)}: ${xs.length} samples, `
    + `${beats.length} beats detected (red marks)${hr ? `, mean heart rate ${hr}/min from ${rr.length} RR intervals` : ""}. `
    + "Possible AF prompts need a clinician's reading of the strip.";
}

function label(secs: number): string { return secs >= 60 ? `${secs / 60} min` : `${secs} s`; }
