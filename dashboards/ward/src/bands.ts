// NEWS2 bands drawn behind each vital's chart: the Royal College of
// Physicians' NEWS2 chart (2017, Chart 1), as in docs/clinical.md. Printed
// bands are whole numbers (temperature 0.1 °C) and readings are rounded half
// up before lookup, so each band's edges sit half a step outside the printed
// limits (respiration 21–24 is [20.5, 24.5)).

/** `score` picks the shade; `mark` is the word on the chart (default `+score`). */
export interface Band { lo: number; hi: number; score: number; label: string; mark?: string }

const INF = Number.POSITIVE_INFINITY;
// 35.1 - 0.05 is 35.050000000000004 in floating point: round edges to 0.001.
const edge = (x: number) => Math.round(x * 1000) / 1000;

/** Bands from printed limits: `[printedLo, printedHi, score]`, with `step` the chart's precision. */
function bands(rows: [number, number, number][], step = 1): Band[] {
  const f = (x: number) => x.toFixed(step < 1 ? 1 : 0);
  return rows.map(([lo, hi, score]) => ({
    lo: lo === -INF ? -INF : edge(lo - step / 2), hi: hi === INF ? INF : edge(hi + step / 2), score,
    label: `${lo === -INF ? `≤${f(hi)}` : hi === INF ? `≥${f(lo)}` : `${f(lo)}–${f(hi)}`}: +${score}`,
  }));
}

const RESP = bands([[-INF, 8, 3], [9, 11, 1], [12, 20, 0], [21, 24, 2], [25, INF, 3]]);
const SPO2_SCALE1 = bands([[-INF, 91, 3], [92, 93, 2], [94, 95, 1], [96, INF, 0]]);
// Scale 2 on air: 88 and above score 0.
const SPO2_SCALE2_AIR = bands([[-INF, 83, 3], [84, 85, 2], [86, 87, 1], [88, INF, 0]]);
// Scale 2 on oxygen: 88–92 score 0, and above 92 scores again.
const SPO2_SCALE2_O2 = bands([[-INF, 83, 3], [84, 85, 2], [86, 87, 1], [88, 92, 0], [93, 94, 1], [95, 96, 2], [97, INF, 3]]);
const SYSTOLIC = bands([[-INF, 90, 3], [91, 100, 2], [101, 110, 1], [111, 219, 0], [220, INF, 3]]);
const PULSE = bands([[-INF, 40, 3], [41, 50, 1], [51, 90, 0], [91, 110, 1], [111, 130, 2], [131, INF, 3]]);
const TEMP = bands([[-INF, 35.0, 3], [35.1, 36.0, 1], [36.1, 38.0, 0], [38.1, 39.0, 1], [39.1, INF, 2]], 0.1);

/** The NEWS2 total's risk bands (a single parameter scoring 3 cannot show in a total). */
export const NEWS2_TOTAL: Band[] = [
  { lo: 4.5, hi: 6.5, score: 2, label: "5–6: medium", mark: "medium" },
  { lo: 6.5, hi: INF, score: 3, label: "≥7: high", mark: "high" },
];

/** The NEWS2 bands for a chart's code; SpO2 depends on the episode's scale and oxygen. */
export function news2Bands(code: string, spo2Scale: number, onOxygen: boolean): { bands: Band[]; source: string } | null {
  switch (code) {
    case "resp_rate": return { bands: RESP, source: "NEWS2 respiration rate" };
    case "spo2":
      if (spo2Scale === 2) {
        return onOxygen ? { bands: SPO2_SCALE2_O2, source: "NEWS2 SpO2 scale 2, on oxygen" }
          : { bands: SPO2_SCALE2_AIR, source: "NEWS2 SpO2 scale 2, on air" };
      }
      return { bands: SPO2_SCALE1, source: "NEWS2 SpO2 scale 1" };
    case "bp": return { bands: SYSTOLIC, source: "NEWS2 systolic BP" };
    case "pulse": return { bands: PULSE, source: "NEWS2 pulse" };
    case "temp": return { bands: TEMP, source: "NEWS2 temperature" };
    default: return null;
  }
}
