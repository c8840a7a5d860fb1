// The patient page (#/patients/{id}): each vital over 24 hours, 7 days or
// the whole episode with its NEWS2 bands, the NEWS2 history, the devices
// with their last status, the patient's alerts with who did what, and an
// ECG strip with the detected beats. Kept live from the websocket.
import { api } from "./api";
import { NEWS2_TOTAL, news2Bands } from "./bands";
import { VitalChart, type OffWard, type SeriesSpec } from "./chart";
import { closeAccess, showAccess } from "./access";
import { deviceButtons, managesDevices, showDischarge, showProvision } from "./admission";
import { everyWords, hideAssessment, settingsRecorded, showAssessment } from "./assessment";
import { leaveNotes, noteArrived, showNotes } from "./notes";
import { showEntry } from "./entry";
import { hidePlan, planRecorded, showPlan } from "./plan";
import { showSummary, summaryChanged } from "./summary";
import { followUpsChanged, showFollowUps } from "./followups";
import { showEcg } from "./ecg";
import { $, age, el, followUpReason, news2Trend, news2View, params, when } from "./format";
import { lastAt, patients, session } from "./state";
import type { Alert, AlertEvent, DeviceStatus, Episode, EpisodeSettings, LiveEvent, ObservationRow, PatientDetail, ScoreRow } from "./types";

interface Vital { code: string; title: string; unit: string; codes: string[]; floor: [number, number]; param?: string; optional?: boolean }

const VITALS: Vital[] = [
  { code: "spo2", title: "SpO2", unit: "%", codes: ["spo2"], floor: [85, 100], param: "spo2" },
  { code: "pulse", title: "Pulse", unit: "/min", codes: ["pulse"], floor: [40, 140], param: "pulse" },
  { code: "resp_rate", title: "Respiration rate", unit: "/min", codes: ["resp_rate"], floor: [8, 30], param: "resp_rate" },
  { code: "bp", title: "Blood pressure (systolic, diastolic)", unit: "mmHg", codes: ["systolic", "diastolic"], floor: [60, 180], param: "systolic" },
  { code: "temp", title: "Temperature", unit: "°C", codes: ["temp"], floor: [35, 39.5], param: "temp" },
  { code: "pef", title: "Peak flow", unit: "L/min", codes: ["pef"], floor: [100, 500], optional: true },
];
const RANGES: Record<string, { label: string; ms: number | null }> = {
  "24h": { label: "24 hours", ms: 24 * 3600_000 },
  "7d": { label: "7 days", ms: 7 * 24 * 3600_000 },
  episode: { label: "Whole episode", ms: null },
};
const MAX_POINTS = 400; // per code: the API keeps each bucket's minimum and maximum
const SCORE_ROWS = 30;
const ALERT_ROWS = 20;

// Each device's last status: the API's stored one when a patient opens, then
// every newer one from the websocket, whichever view was showing.
const deviceStatus = new Map<string, { status: DeviceStatus; at: string }>();
/** A status report older than this is marked as old: it may not be the device's state now. */
const STATUS_OLD_MS = 3600_000;
const ecgStatus = new Map<string, { quality: string | null; possible_af: boolean | null; at: string }>();

interface Page {
  id: number;
  detail: PatientDetail | null;
  range: string;
  from: number; to: number | null; // ms; `to` null = now, following live
  obs: Map<string, { t: number; v: number; device: string }[]>;
  scores: ScoreRow[]; // the chart's: within MAX_POINTS, each stretch's lowest and highest
  latest: ScoreRow[]; // the table's: the newest SCORE_ROWS in the range
  alerts: Map<number, { alert: Alert; events: AlertEvent[] }>;
  charts: Map<string, VitalChart>;
  load: number; // increments per load, so a late answer for an old range is dropped
  // Live readings that came while a load was under way: its answer may be
  // older than they are, so they are added to it (those it has aside).
  arrived: { code: string; value: number | string; at: string; device: string }[] | null;
  bands: string; // the SpO2 bands drawn (bandsKey)
}
let page: Page | null = null;

export async function openPatient(id: number): Promise<void> {
  if (page?.id === id) return;
  closePatient();
  sessionStorage.setItem("vigil-last-patient", String(id));
  page = { id, detail: null, range: "24h", from: 0, to: null, obs: new Map(), scores: [], latest: [], alerts: new Map(), charts: new Map(), load: 0, arrived: null, bands: "" };
  $("patient-title").textContent = patients.get(id)?.summary.name || `Patient ${id}`;
  $("patient-facts").textContent = "Loading…";
  $("charts").replaceChildren();
  $("score-plot").replaceChildren();
  $("ecg-summary").textContent = "";
  $("ecg-plot").replaceChildren();
  hideAssessment();
  hidePlan();
  showSummary(null);
  showFollowUps(null);
  showDischarge(null, null);
  showProvision(null, null, async () => {});
  setRangeButtons("24h");
  // An admin's "Record access", collapsed: the trail is read only when asked.
  showAccess(session.me, id, () => (page?.id === id ? page.detail?.name : undefined) || patients.get(id)?.summary.name || `Patient ${id}`);
  $("patient-title").focus();
  try {
    page.detail = await api<PatientDetail>(`/api/v1/patients/${id}`);
  } catch (e) {
    if (page?.id === id) $("patient-facts").textContent = `Could not load this patient: ${(e as Error).message}.`;
    return;
  }
  if (page?.id !== id) return;
  for (const d of page.detail.devices) {
    const seen = deviceStatus.get(d.id);
    if (d.status && (!seen || Date.parse(seen.at) < Date.parse(d.status.reported_at))) {
      deviceStatus.set(d.id, { status: d.status, at: d.status.reported_at });
    }
  }
  showStay(id, page.detail);
  await Promise.all([loadRange("24h"), loadAlerts(), showNotes(id)]);
}

/** Show the patient as read: the facts, devices, assessment and admin actions of their stay. */
function showStay(id: number, detail: PatientDetail): void {
  renderFacts();
  showPlan(id, detail.settings);
  showSummary(detail.episode && !detail.episode.discharged_at ? id : null);
  showFollowUps(detail.episode && !detail.episode.discharged_at ? id : null);
  showAssessment(id, detail.settings, detail.thresholds?.freshness_s, settingsChanged);
  showEntry(detail.episode && !detail.episode.discharged_at ? id : null);
  showDischarge(session.me, detail);
  showProvision(session.me, detail, () => reloadDevices(id));
  renderDevices(); // after showProvision: whether the rows have an admin's buttons
}

/** The patient read again, or null if it failed or the page has moved on to another. */
async function readPatient(id: number): Promise<PatientDetail | null> {
  try {
    const detail = await api<PatientDetail>(`/api/v1/patients/${id}`);
    return page?.id === id ? detail : null;
  } catch {
    return null;
  }
}

export function closePatient(): void {
  closeAccess();
  if (!page) return;
  hideAssessment();
  hidePlan();
  showSummary(null);
  showFollowUps(null);
  showEntry(null);
  leaveNotes();
  for (const c of page.charts.values()) c.destroy();
  page = null;
  $("charts").replaceChildren();
}

function setRangeButtons(range: string): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>("#ranges button")) {
    b.setAttribute("aria-pressed", String(b.dataset.range === range));
  }
}

for (const b of document.querySelectorAll<HTMLButtonElement>("#ranges button")) {
  b.addEventListener("click", () => { if (page) void loadRange(b.dataset.range || "24h"); });
}

function rangeStart(range: string): number {
  const r = RANGES[range];
  if (r.ms != null) return Date.now() - r.ms;
  const admitted = page?.detail?.episode?.admitted_at;
  return admitted ? Date.parse(admitted) : Date.now() - 30 * 24 * 3600_000;
}

async function loadRange(range: string): Promise<void> {
  if (!page) return;
  const p = page;
  const load = ++p.load;
  p.arrived = [];
  p.range = range;
  setRangeButtons(range);
  const from = rangeStart(range);
  const q = `from=${encodeURIComponent(new Date(from).toISOString())}`;
  $("range-status").textContent = `Loading ${RANGES[range].label.toLowerCase()}…`;
  try {
    // Within bounds however long the range: a score per reading of a
    // continuous oximeter over a whole episode is hundreds of thousands.
    const [rows, scores, latest] = await Promise.all([
      api<ObservationRow[]>(`/api/v1/patients/${p.id}/observations?${q}&max_points=${MAX_POINTS}`),
      api<ScoreRow[]>(`/api/v1/patients/${p.id}/scores?${q}&max_points=${MAX_POINTS}`),
      api<ScoreRow[]>(`/api/v1/patients/${p.id}/scores?${q}&newest=${SCORE_ROWS}`),
    ]);
    if (page !== p || load !== p.load) return;
    p.from = from;
    p.obs = new Map();
    for (const r of rows) addObs(p, r.code, r.value, r.measured_at, r.device_id);
    for (const o of p.arrived || []) {
      const t = Date.parse(o.at);
      const has = (p.obs.get(o.code) || []).some((x) => x.t === t && x.v === o.value && x.device === o.device);
      if (!has) addObs(p, o.code, o.value, o.at, o.device);
    }
    p.arrived = null;
    // Fewer than the table holds is every score in the range: the chart
    // draws the same ones (the two answers may be a score apart).
    p.scores = latest.length < SCORE_ROWS ? [...latest] : scores;
    p.latest = latest;
    renderCharts();
    renderScores();
    $("range-status").textContent = `Showing ${RANGES[range].label.toLowerCase()}: ${rows.length} readings, ${scores.length} NEWS2 scores.`;
  } catch (e) {
    if (load === p.load) p.arrived = null;
    if (page === p) $("range-status").textContent = `Could not load the readings: ${(e as Error).message}.`;
  }
}

function addObs(p: Page, code: string, value: number | string, at: string, device: string): boolean {
  if (typeof value !== "number") return false;
  const t = Date.parse(at);
  if (t < p.from) return false;
  const list = p.obs.get(code) || [];
  // Keep time order: a late (store-and-forward) reading goes in its place.
  let i = list.length;
  while (i > 0 && list[i - 1].t > t) i--;
  list.splice(i, 0, { t, v: value, device });
  p.obs.set(code, list);
  return true;
}

// ---------------------------------------------------------------- facts

/** " (set by X <when>)" after a recorded setting, or nothing when no one set it. */
function setBy(who: string | null, at: string | null): string {
  return who ? ` (set by ${who}${at ? ` ${when(at)}` : ""})` : "";
}

function renderFacts(): void {
  if (!page?.detail) return;
  const d = page.detail, ep = d.episode;
  $("patient-title").textContent = d.name;
  const facts = [`NHS number ${d.nhs_number}`];
  if (ep?.discharged_at) {
    // Not on the ward now: said first, so no one takes the page as live.
    facts.push(`discharged ${when(ep.discharged_at)}`, `pathway ${ep.pathway}`, `admitted ${when(ep.admitted_at)}`);
  } else if (ep) {
    facts.push(`pathway ${ep.pathway}`, `admitted ${when(ep.admitted_at)}`,
      `SpO2 scale ${ep.spo2_scale}${setBy(ep.spo2_scale_set_by, ep.spo2_scale_set_at)}`);
    // A clinician's own interval for this patient's readings; the pathway's otherwise.
    const s = d.settings;
    if (s?.obs_every_minutes) facts.push(`observations ${everyWords(s.obs_every_minutes)}${setBy(s.obs_every_set_by, s.obs_every_set_at)}`);
  } else {
    facts.push("no open episode");
  }
  // Admitted again: the earlier stays, whose readings the charts also show.
  const earlier = (d.previous_episodes || []).map((e) =>
    `${when(e.admitted_at)} – ${e.discharged_at ? when(e.discharged_at) : "?"} (${e.pathway})`);
  if (earlier.length) facts.push(`earlier ${earlier.length === 1 ? "stay" : "stays"} ${earlier.join(", ")}`);
  $("patient-facts").textContent = facts.join(" · ");
  renderNews2Now();
}

function renderNews2Now(): void {
  if (!page) return;
  const row = patients.get(page.id);
  const s = row?.news2;
  const v = news2View(s);
  // The ward list's comparison, in words (hazard DB-23).
  const t = row ? news2Trend(s, row.summary.news2_earlier, lastAt(row)) : null;
  const box = $("patient-news2");
  box.className = `news2-now news2 ${v.cls}`;
  box.replaceChildren(el("span", "", "NEWS2 now: "), el("strong", "score", v.text), ...(v.sub ? [el("span", "risk", ` (${v.sub})`)] : []),
    el("span", "detail", `. ${v.detail}${s?.scored_at ? `; scored for ${when(s.scored_at)}` : ""}.`),
    ...(t ? [el("span", `trend ${t.dir}`, ` ${t.detail}.`)] : []));
}

// ---------------------------------------------------------------- stays

/** The patient's stays on this ward, oldest first. */
function stays(d: PatientDetail | null | undefined): Episode[] {
  if (!d) return [];
  return [...(d.previous_episodes || []), ...(d.episode ? [d.episode] : [])]
    .sort((a, b) => Date.parse(a.admitted_at) - Date.parse(b.admitted_at));
}

/** Times off the ward, in seconds: between a discharge and the next admission, and since the last discharge. */
function offWard(d: PatientDetail | null | undefined): OffWard[] {
  const s = stays(d), out: OffWard[] = [];
  s.forEach((e, i) => {
    if (!e.discharged_at) return;
    const next = s[i + 1];
    out.push({ start: Date.parse(e.discharged_at) / 1000, end: next ? Date.parse(next.admitted_at) / 1000 : null });
  });
  return out;
}

/**
 * The stay a reading measured at `t` (ms) belongs to: the latest admitted by
 * then. A device's clock stamps to the second, so a reading may be stamped up
 * to a second before the admission it came in under; but one measured before
 * the earlier stay's discharge is that stay's (its kit was unassigned at the
 * discharge), however soon the next admission came.
 */
function stayOf(all: Episode[], t: number): Episode | undefined {
  let found = all[0];
  for (const e of all.slice(1)) {
    const admitted = Date.parse(e.admitted_at);
    const inEarlier = found.discharged_at != null && t <= Date.parse(found.discharged_at);
    if (admitted <= t || (admitted <= t + 1000 && !inEarlier)) found = e;
  }
  return found;
}

/**
 * A clinician recorded the assessment: the facts line, the SpO2 bands and
 * the SpO2 target follow it. The target is the server's to say (a pathway's
 * own, or the scale's default), so the patient is read again; the SpO2
 * chart is drawn afresh with the new target's lines.
 */
async function settingsChanged(s: EpisodeSettings): Promise<void> {
  const p = page, ep = p?.detail?.episode;
  if (!p?.detail || !ep) return;
  p.detail.settings = s;
  ep.spo2_scale = s.spo2_scale;
  ep.spo2_scale_set_by = s.spo2_scale_set_by;
  ep.spo2_scale_set_at = s.spo2_scale_set_at;
  renderFacts();
  // (If it cannot be read, the facts above are already the recorded ones.)
  const detail = await readPatient(p.id);
  if (page !== p) return;
  if (detail) {
    p.detail = detail;
    renderFacts();
  }
  p.charts.get("spo2")?.destroy();
  p.charts.delete("spo2");
  renderCharts();
}

// ---------------------------------------------------------------- charts

/** On oxygen, as the current NEWS2 scored it; else as a clinician recorded it. */
function onOxygen(): boolean {
  const o2 = patients.get(page?.id ?? -1)?.news2?.subscores?.find((x) => x.parameter === "o2");
  return o2 ? o2.score > 0 : !!page?.detail?.settings?.oxygen;
}

/** Which NEWS2 bands the SpO2 chart shows. */
function bandsKey(p: Page): string { return `${p.detail?.episode?.spo2_scale ?? 1}/${onOxygen()}`; }

function seriesOf(p: Page, v: Vital): SeriesSpec[] {
  return v.codes.map((c) => {
    const list = p.obs.get(c) || [];
    return { label: c, xs: list.map((o) => o.t / 1000), ys: list.map((o) => o.v) };
  });
}

/**
 * Not until the patient and their range are read: a live reading or the
 * clock's tick before then would draw a chart from 1970 without the times
 * off the ward (a re-admitted patient's page once kept such a chart).
 */
function loaded(p: Page | null): p is Page { return !!p?.detail && p.from > 0; }

function renderCharts(): void {
  if (!loaded(page)) return;
  const p = page;
  const box = $("charts");
  const range: [number, number] = [p.from / 1000, Date.now() / 1000];
  for (const v of VITALS) {
    const series = seriesOf(p, v);
    const n = series.reduce((a, s) => a + s.xs.length, 0);
    let fig = box.querySelector<HTMLElement>(`figure[data-code="${v.code}"]`);
    if (!fig && v.optional && n === 0) continue;
    if (!fig) fig = buildFigure(v);
    if (!fig.isConnected) box.append(fig);
    fig.dataset.points = String(n);
    const b = news2Bands(v.code, p.detail?.episode?.spo2_scale ?? 1, onOxygen());
    // The pathway's own SpO2 target, as its rules use it, besides NEWS2's bands.
    const target = v.code === "spo2" ? p.detail?.thresholds?.spo2_target : null;
    if (target) fig.dataset.target = `${target.low}-${target.high}`;
    fig.querySelector(".bands")!.textContent = (b
      ? `Shaded: ${b.source} bands, ${b.bands.filter((x) => x.score > 0).map((x) => x.label).join(" · ")}; unshaded scores 0.`
      : "No NEWS2 bands for this reading (a pathway's personal target is not shown).")
      + (target ? ` Dashed lines: the patient's SpO2 target, ${target.low}–${target.high} % (${target.source === "pathway"
        ? `the ${p.detail?.episode?.pathway} pathway's` : `the default for SpO2 scale ${p.detail?.episode?.spo2_scale}`}).` : "");
    fig.querySelector(".summary")!.textContent = summary(p, v);
    const plot = fig.querySelector<HTMLElement>(".plot")!;
    plot.setAttribute("aria-label", `${v.title} chart: ${summary(p, v)}`);
    const chart = p.charts.get(v.code);
    if (chart && v.code === "spo2" && p.bands !== bandsKey(p)) chart.setBands(b?.bands || []);
    if (chart) chart.update(series, range, offWard(p.detail));
    else {
      const lines = target ? [{ value: target.low, label: `target ${target.low}` }, { value: target.high, label: `target ${target.high}` }] : [];
      p.charts.set(v.code, new VitalChart(plot, series, { bands: b?.bands || [], lines, floor: v.floor, range, offWard: offWard(p.detail) }));
    }
    const details = fig.querySelector("details")!;
    if (details.open) fillTable(fig, v);
  }
  p.bands = bandsKey(p);
}

function buildFigure(v: Vital): HTMLElement {
  const fig = el("figure", "vital");
  fig.dataset.code = v.code;
  const cap = el("figcaption");
  const h = el("h3", "", `${v.title} (${v.unit})`);
  h.id = `vital-${v.code}`;
  cap.append(h, el("p", "summary"));
  const plot = el("div", "plot");
  plot.setAttribute("role", "img");
  const details = el("details");
  const sum = el("summary", "", `${v.title}: readings as a table`);
  details.append(sum);
  details.addEventListener("toggle", () => { if (details.open) fillTable(fig, v); });
  fig.append(cap, plot, el("p", "bands"), details);
  return fig;
}

function fmtNum(x: number): string { return String(Math.round(x * 10) / 10); }

function summary(p: Page, v: Vital): string {
  const main = p.obs.get(v.codes[0]) || [];
  if (!main.length) return `No readings in this range.`;
  const last = main[main.length - 1];
  let latest = fmtNum(last.v);
  if (v.code === "bp") {
    const dia = p.obs.get("diastolic") || [];
    const d = dia.find((x) => x.t === last.t);
    if (d) latest += `/${fmtNum(d.v)}`;
  }
  const vals = main.map((o) => o.v);
  const sub = v.param ? patients.get(p.id)?.news2?.subscores?.find((x) => x.parameter === v.param) : undefined;
  const subText = sub ? ` (current NEWS2 sub-score +${sub.score})` : "";
  return `${main.length} reading${main.length === 1 ? "" : "s"}; latest ${latest} ${v.unit} ${age(new Date(last.t).toISOString())}${subText}; `
    + `lowest ${fmtNum(Math.min(...vals))}, highest ${fmtNum(Math.max(...vals))}.`;
}

/** A reading's source as the table shows it: a device's id, or who entered it. */
function source(device: string): string {
  return device.startsWith("manual:") ? `entered by ${device.slice("manual:".length)}` : device;
}

/** The readings behind a chart, newest first, for keyboards and screen readers. */
function fillTable(fig: HTMLElement, v: Vital): void {
  if (!page) return;
  const p = page;
  const table = el("table", "readings");
  // It scrolls (at most 20rem tall): focusable, so a keyboard can scroll it
  // (its caption names it).
  table.tabIndex = 0;
  const cap = el("caption", "", `${v.title} readings in this range, newest first`);
  const head = el("thead");
  const hr = el("tr");
  for (const h of ["Measured", ...v.codes.map((c) => (v.codes.length > 1 ? `${c} (${v.unit})` : `${v.title} (${v.unit})`)), "Device"]) {
    const th = el("th", "", h); th.scope = "col"; hr.append(th);
  }
  head.append(hr);
  const body = el("tbody");
  const main = [...(p.obs.get(v.codes[0]) || [])].reverse();
  const others = v.codes.slice(1).map((c) => new Map((p.obs.get(c) || []).map((o) => [o.t, o.v])));
  // Readings from more than one stay: a heading row before each stay's.
  const all = stays(p.detail);
  const split = new Set(main.map((o) => stayOf(all, o.t))).size > 1;
  let stay: Episode | undefined | null = null;
  for (const o of main) {
    const s = stayOf(all, o.t);
    if (split && s !== stay) {
      stay = s;
      const th = el("th", "", !s ? "" : s === p.detail?.episode
        ? `This stay, admitted ${when(s.admitted_at)}`
        : `Earlier stay, ${when(s.admitted_at)} – ${s.discharged_at ? when(s.discharged_at) : "?"} (${s.pathway})`);
      th.colSpan = v.codes.length + 2;
      th.scope = "rowgroup";
      const hr = el("tr", "stay");
      hr.append(th);
      body.append(hr);
    }
    const tr = el("tr");
    tr.append(el("td", "", when(new Date(o.t).toISOString(), true)), el("td", "num", fmtNum(o.v)),
      ...others.map((m) => el("td", "num", m.has(o.t) ? fmtNum(m.get(o.t)!) : "—")), el("td", "", source(o.device)));
    body.append(tr);
  }
  table.append(cap, head, body);
  fig.querySelector("table.readings")?.remove();
  fig.querySelector("details")!.append(table);
}

// ---------------------------------------------------------------- scores

function renderScores(): void {
  if (!loaded(page)) return;
  const body = $("score-table").querySelector("tbody")!;
  body.replaceChildren();
  const rows = [...page.latest].reverse();
  for (const s of rows) {
    const v = news2View(s.detail && typeof s.detail === "object" ? { ...s.detail, total: s.total, risk: s.risk, partial: s.partial } : null);
    const tr = el("tr");
    const t = el("td", "", when(s.scored_at, true));
    const total = el("td", `news2 ${v.cls}`);
    total.append(el("span", "score", v.text), ...(v.sub ? [el("span", "risk", v.sub)] : []));
    const subs = (s.detail?.subscores || []).filter((x) => x.score > 0).map((x) => `${x.parameter} +${x.score}`).join(", ") || "none";
    const gaps = [s.detail?.missing?.length ? `missing ${params(s.detail.missing)}` : "", s.detail?.stale?.length ? `stale ${params(s.detail.stale)}` : ""]
      .filter(Boolean).join("; ") || "—";
    tr.append(t, total, el("td", "", subs), el("td", "", gaps));
    body.append(tr);
  }
  // The same history as a chart above the table, over the vitals' time range.
  const scored = page.scores.filter((s) => s.total != null); // NEWS2 not applicable has no total
  const xs = scored.map((s) => Date.parse(s.scored_at) / 1000), ys = scored.map((s) => s.total as number);
  const plot = $("score-plot");
  plot.dataset.points = String(xs.length);
  plot.setAttribute("aria-label", `NEWS2 total over time: ${xs.length} score${xs.length === 1 ? "" : "s"} in this range`
    + `${xs.length ? `, the latest ${ys[ys.length - 1]}` : ""}; the table below lists them.`);
  const series = [{ label: "NEWS2", xs, ys }], range: [number, number] = [page.from / 1000, Date.now() / 1000];
  const chart = page.charts.get("news2");
  if (chart) chart.update(series, range, offWard(page.detail));
  else page.charts.set("news2", new VitalChart(plot, series, { bands: NEWS2_TOTAL, floor: [0, 8], range, offWard: offWard(page.detail) }));
  // Fewer than the table holds: that is every score in the range, and
  // the chart has each of them. More: the chart keeps each stretch's
  // lowest and highest (the API's max_points), so no peak is hidden.
  const n = page.latest.length;
  $("score-count").textContent = n < SCORE_ROWS
    ? `${n} score${n === 1 ? "" : "s"} in this range.`
    : `The newest ${SCORE_ROWS} scores in this range; the chart draws each stretch's lowest and highest of them all.`;
}

// ---------------------------------------------------------------- devices

/**
 * The patient was discharged or admitted again while their page was open
 * (by anyone, in any process): read them again, so the facts, the
 * assessment form and the admin's actions are for the stay as it is now.
 */
async function reloadPatient(id: number): Promise<void> {
  // Unreadable: shown as it was; the next open reads it again.
  const detail = await readPatient(id);
  if (!detail || !page) return;
  // The same stay as shown (a change may be told twice: by the API, then
  // by the daemon's sync): nothing to redo, and nothing on the page (a
  // new device's password shown once) is taken away.
  const was = page.detail?.episode, now = detail.episode;
  if (was?.id === now?.id && was?.discharged_at === now?.discharged_at) return;
  page.detail = detail;
  showStay(id, detail);
  for (const c of page.charts.values()) c.destroy();
  page.charts.clear();
  $("charts").replaceChildren();
  $("score-plot").replaceChildren();
  await loadRange(page.range);
}

/** Read the patient's devices again (one was provisioned for them). */
async function reloadDevices(id: number): Promise<void> {
  // Unreadable: the list updates when the page is opened again.
  const detail = await readPatient(id);
  if (!detail || !page?.detail) return;
  page.detail.devices = detail.devices;
  renderDevices();
}

/**
 * The device rows, updated in place rather than drawn anew: they are redrawn
 * live (each status, and every 15 s), and an admin's button in a row must
 * keep the focus meanwhile.
 */
function renderDevices(): void {
  if (!page?.detail) return;
  const body = $("device-table").querySelector("tbody")!;
  const acting = managesDevices();
  $("device-actions-head").hidden = !acting;
  const stale = new Map([...body.rows].map((tr) => [tr.dataset.device, tr]));
  let next = body.firstElementChild;
  for (const d of page.detail.devices) {
    let tr = stale.get(d.id);
    stale.delete(d.id);
    if (!tr) { tr = el("tr"); tr.dataset.device = d.id; }
    if (tr === next) next = tr.nextElementSibling;
    else body.insertBefore(tr, next);
    const st = deviceStatus.get(d.id);
    const ecg = ecgStatus.get(d.id);
    const name = el("th", "", d.id); name.scope = "row";
    let status = d.revoked_at ? `revoked ${when(d.revoked_at)}` : "never reported";
    if (!d.revoked_at && st) status = st.status.online === false ? "offline" : "online";
    if (st) tr.dataset.reportedAt = st.at;
    else delete tr.dataset.reportedAt;
    const old = !!st && Date.now() - Date.parse(st.at) > STATUS_OLD_MS;
    const battery = st?.status.battery_pct != null ? `${st.status.battery_pct} %${st.status.battery_pct < 30 ? " (low)" : ""}` : "—";
    let signal = st?.status.signal ? st.status.signal.replace("_", " ") : "—";
    if (ecg) signal = `${(ecg.quality || signal).replace("_", " ")}${ecg.possible_af ? "; possible AF: review the strip" : ""}`;
    const cells = [name, el("td", "", d.kind), el("td", st?.status.online === false ? "warn" : "", status), el("td", "num", battery),
      el("td", "", signal), el("td", old ? "warn" : "", st ? `${age(st.at)}${old ? " (old report: may not be so now)" : ""}` : "—")];
    cells.forEach((c, i) => {
      const was = tr.cells[i];
      if (!was) tr.append(c);
      else if (!was.isEqualNode(c)) was.replaceWith(c);
    });
    // An admin's buttons (admission.ts), made once per row and state.
    const actions = acting ? (d.revoked_at ? "revoked" : "live") : "";
    if (tr.dataset.actions !== actions) {
      tr.cells[cells.length]?.remove();
      if (actions) {
        const td = el("td", "device-actions");
        td.append(...deviceButtons(d));
        tr.append(td);
      }
      tr.dataset.actions = actions;
    }
  }
  for (const tr of stale.values()) tr.remove();
  $("no-devices").hidden = page.detail.devices.length > 0;
}

// ---------------------------------------------------------------- alerts

async function loadAlerts(): Promise<void> {
  if (!page) return;
  const p = page;
  try {
    const list = await api<Alert[]>(`/api/v1/alerts?patient=${p.id}`);
    list.sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
    const shown = list.slice(0, ALERT_ROWS);
    const withEvents = await Promise.all(shown.map(async (a) => {
      try { return { alert: a, events: (await api<{ events: AlertEvent[] }>(`/api/v1/alerts/${a.id}`)).events }; } catch { return { alert: a, events: [] }; }
    }));
    if (page !== p) return;
    p.alerts = new Map(withEvents.map((x) => [x.alert.id, x]));
    renderPatientAlerts();
  } catch { /* the queue on the ward still shows live alerts */ }
}

function renderPatientAlerts(): void {
  if (!page) return;
  const list = $("patient-alerts");
  list.replaceChildren();
  const items = [...page.alerts.values()].sort((a, b) => Date.parse(b.alert.raised_at) - Date.parse(a.alert.raised_at));
  for (const { alert: a, events } of items) {
    const li = el("li", `alert sev-${a.severity} status-${a.status}`);
    li.dataset.alert = String(a.id);
    const head = el("div", "alert-head");
    head.append(el("span", "severity", a.severity), el("span", "rule", a.rule_id), el("span", "status", a.status));
    const trail = el("ol", "trail");
    trail.setAttribute("aria-label", `What happened to alert ${a.rule_id}`);
    // The trail is what people and timers did, and what made the alert worse. Repeats are
    // counted on the alert (×N); an "updated" event is a rise in severity (older stores also
    // kept one per repeat, without `previous_severity`: those are left out).
    for (const e of events) {
      const d = (e.detail && typeof e.detail === "object" ? e.detail : {}) as { note?: string; severity?: string; previous_severity?: string };
      if (e.action === "updated" && !d.previous_severity) continue;
      const what = e.action === "updated" ? `severity raised ${d.previous_severity} → ${d.severity}` : e.action;
      const note = d.note ? `: “${d.note}”` : "";
      trail.append(el("li", "", `${when(e.at, true)} ${what} by ${e.actor}${note}`));
    }
    const reason = followUpReason(a);
    li.append(head, el("p", "message", a.message), ...(reason ? [el("p", "reason", `For: ${reason}`)] : []),
      el("p", "meta", `raised ${when(a.raised_at, true)} · ×${a.count}${a.outcome ? ` · outcome ${a.outcome}` : ""}${a.note ? ` · note “${a.note}”` : ""}`), trail);
    list.append(li);
  }
  $("no-patient-alerts").hidden = items.length > 0;
}

// ---------------------------------------------------------------- live

export function patientEvent(ev: LiveEvent): void {
  if (ev.type === "device_status") deviceStatus.set(ev.device_id, { status: ev.status, at: new Date().toISOString() });
  if (ev.type === "ecg_status") ecgStatus.set(ev.device_id, { quality: ev.quality, possible_af: ev.possible_af, at: new Date(ev.t_ms).toISOString() });
  if (!page || $("patient").hidden) return;
  const p = page;
  summaryChanged(changedPatient(ev) ?? -1);
  switch (ev.type) {
    case "observation": {
      if (ev.patient_id !== p.id) return;
      let added = false;
      for (const o of ev.obs) {
        p.arrived?.push({ code: o.code, value: o.value, at: ev.measured_at, device: ev.device_id });
        added = addObs(p, o.code, o.value, ev.measured_at, ev.device_id) || added;
      }
      if (added) renderCharts();
      return;
    }
    case "score":
      if (ev.patient_id !== p.id) return;
      // The ward handler has already taken the new current score.
      renderNews2Now();
      if (p.bands !== bandsKey(p)) renderCharts(); // oxygen started or stopped
      if (Date.parse(ev.score.scored_at || "") >= p.from) {
        const row: ScoreRow = { id: -1, scored_at: ev.score.scored_at || new Date().toISOString(), computed_at: new Date().toISOString(),
          total: ev.score.total, risk: ev.score.risk, partial: ev.score.partial, detail: ev.score, obs_ids: [] };
        const byTime = (a: ScoreRow, b: ScoreRow) => Date.parse(a.scored_at) - Date.parse(b.scored_at);
        p.scores.push(row);
        p.scores.sort(byTime);
        p.latest.push(row);
        p.latest.sort(byTime);
        p.latest = p.latest.slice(-SCORE_ROWS);
        renderScores();
      }
      return;
    case "alert":
    case "alert_update":
      if (ev.alert.patient_id !== p.id) return;
      if (ev.alert.rule_id === "follow-up") followUpsChanged(p.id);
      void api<{ alert: Alert; events: AlertEvent[] }>(`/api/v1/alerts/${ev.alert.id}`).then((x) => {
        if (page !== p) return;
        p.alerts.set(x.alert.id, { alert: x.alert, events: x.events });
        renderPatientAlerts();
      }).catch(() => {});
      return;
    case "device_status":
    case "ecg_status":
      if (ev.patient_id === p.id) renderDevices();
      return;
    case "episode":
      planRecorded(ev.patient_id, ev.settings);
      settingsRecorded(ev.patient_id, ev.settings);
      return;
    case "note":
      noteArrived(ev.note);
      return;
    case "patient":
      if (ev.patient_id === p.id) void reloadPatient(p.id);
      return;
    default:
  }
}

/** The patient whose record an event changes (what a summary of it says), if any. */
function changedPatient(ev: LiveEvent): number | null {
  switch (ev.type) {
    case "observation": case "score": case "episode": case "patient":
      return ev.patient_id;
    case "alert": case "alert_update":
      return ev.alert.patient_id;
    case "note":
      return ev.note.patient_id;
    default:
      return null;
  }
}

/** Every second: the "now" end of each chart moves on. Every 15 s is enough. */
let ticks = 0;
export function tickPatient(): void {
  if (!page || $("patient").hidden || ++ticks % 15) return;
  renderCharts();
  renderDevices();
}

$("ecg-load").addEventListener("click", () => {
  if (!page) return;
  const secs = Number(($("ecg-length") as HTMLSelectElement).value);
  void showEcg(page.id, secs);
});
