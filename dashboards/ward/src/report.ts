// The ward page's "Ward report", for everyone on the ward: how many people
// it held and for how long, and how fast its alerts were answered, over a
// period (GET /api/v1/wards/{id}/report): the figures a virtual ward
// reports and its clinical lead watches, in words a ward manager reads.
// Counts only, no patient named. Each read is on the audit trail
// (`ward.report`), so it is read only when opened, when another period or
// ward is chosen, and on Show; never polled. The period is the last 24
// hours, 7 days (the default, as the server's) or 30 days, or whole days
// chosen (midnight to midnight UTC, the last day included; the server
// takes a period ending in the future as ending now). What the server says
// is wrong with a period (422) is said in the page as it says it. With more
// than one ward the user chooses which; nothing of it stays once signed out.
import { api, ApiError } from "./api";
import { $, DAY_MS, el, timeEl, utcDays, whenWithYear } from "./format";
import { OUTCOME_TEXT } from "./handover";
import type { Me, Risk, Spread, WardName, WardReport } from "./types";

type Period = "24h" | "7d" | "30d" | "days";
const HOURS: Record<Exclude<Period, "days">, number> = { "24h": 24, "7d": 7 * 24, "30d": 30 * 24 };
const PERIOD_WORDS: Record<Period, string> = {
  "24h": "the last 24 hours", "7d": "the last 7 days", "30d": "the last 30 days", days: "the days you choose",
};
/** The most severe first, every one shown (0 when none). */
const SEVERITIES: Risk[] = ["high", "medium", "low-medium", "low"];

const section = $("report");
const details = $("report-details") as HTMLDetailsElement;
const wardChoice = $("report-ward-choice");
const wardSelect = $("report-ward") as HTMLSelectElement;
const periodSelect = $("report-period") as HTMLSelectElement;
const daysForm = $("report-days") as HTMLFormElement;
const fromInput = $("report-from") as HTMLInputElement;
const toInput = $("report-to") as HTMLInputElement;
const status = $("report-status");
const figures = $("report-figures");

let wards: WardName[] = [];
let shownWard: number | null = null; // whose figures are on the page
let loading = 0; // increments per read and on clearing, so a late answer is dropped

// ---------------------------------------------------------------- words

/** The server's message, meant for people, without a full stop of its own (the sentence around it has one). */
const reason = (err: unknown): string => (err as Error).message.replace(/\.$/, "");

/** A count or a figure to one decimal place at most: 3, 0.5, 14.3. */
const num = (v: number): string => String(Math.round(v * 10) / 10);

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/** A length of stay: "2.5 days", "1 day", "6 hours", "under an hour". */
function daysText(d: number): string {
  if (d >= 1) return `${num(d)} day${num(d) === "1" ? "" : "s"}`;
  const h = Math.round(d * 24);
  return d * 24 < 1 ? "under an hour" : plural(h, "hour");
}

/** A time to acknowledge: "under a minute", "4 minutes", "1 hour 20 minutes". */
function minutesText(m: number): string {
  if (m < 1) return "under a minute";
  const all = Math.round(m);
  if (all < 60) return plural(all, "minute");
  const h = Math.floor(all / 60), mm = all % 60;
  return `${plural(h, "hour")}${mm ? ` ${plural(mm, "minute")}` : ""}`;
}

/** "median 4 minutes, 90th centile 9 minutes (3 acknowledged)", or what to say when there are none. */
function spreadText(s: Spread, unit: (v: number) => string, counted: string, none: string): string {
  if (!s.count || s.median === null || s.p90 === null) return none;
  return `median ${unit(s.median)}, 90th centile ${unit(s.p90)} (${s.count} ${counted})`;
}

// ---------------------------------------------------------------- shown, read, cleared

/**
 * The ward page is shown: the section, for anyone with a ward, collapsed
 * until opened. Read again only when the user's wards changed under the
 * figures shown (an administrator took that ward away).
 */
export function showReport(me: Me | null): void {
  const mine = me?.wards || [];
  if (!mine.length) { clearReport(); return; }
  section.hidden = false;
  if (JSON.stringify(mine) === JSON.stringify(wards)) return;
  const chosen = Number(wardSelect.value);
  wards = mine;
  wardSelect.replaceChildren(...mine.map((w) => { const o = el("option", "", w.name); o.value = String(w.id); return o; }));
  if (mine.some((w) => w.id === chosen)) wardSelect.value = String(chosen);
  wardChoice.hidden = mine.length < 2;
  if (shownWard !== null && !mine.some((w) => w.id === shownWard)) {
    dropFigures();
    void readReport();
  }
}

/** Signed out (or no ward): hidden, collapsed, back to the last 7 days, and nothing of it left on the page. */
export function clearReport(): void {
  loading++;
  wards = [];
  details.open = false;
  section.hidden = true;
  wardSelect.replaceChildren();
  wardChoice.hidden = true;
  periodSelect.value = "7d";
  fromInput.value = "";
  toInput.value = "";
  showPeriod();
  status.textContent = "";
  dropFigures();
}

function dropFigures(): void {
  shownWard = null;
  figures.hidden = true;
  $("report-covers").replaceChildren();
  for (const id of ["report-people", "report-alerts"]) $(id).querySelector("tbody")!.replaceChildren();
  $("report-csv").removeAttribute("href");
}

/** The chosen period in the summary, and the days' inputs only when days are chosen. */
function showPeriod(): Period {
  const period = periodSelect.value as Period;
  $("report-span").textContent = PERIOD_WORDS[period];
  daysForm.hidden = period !== "days";
  return period;
}

/** `YYYY-MM-DD` of a time, in UTC (the days chosen are UTC days). */
const utcDay = (t: number): string => new Date(t).toISOString().slice(0, 10);

/**
 * The query for the period chosen; for days, from the first's midnight to
 * the midnight after the last (UTC), or what is wrong with them, in words.
 */
function periodQuery(period: Period): { query: string } | { problem: string; focus: HTMLInputElement } {
  if (period !== "days") {
    // The last 7 days are the server's own default: to its clock, not this computer's.
    if (period === "7d") return { query: "" };
    return { query: `?from=${encodeURIComponent(new Date(Date.now() - HOURS[period] * 3600_000).toISOString())}` };
  }
  const days = utcDays(fromInput.value, toInput.value, false);
  if ("problem" in days) return { problem: days.problem, focus: days.at === "first" ? fromInput : toInput };
  return { query: `?from=${encodeURIComponent(days.from)}&to=${encodeURIComponent(days.to)}` };
}

/** Read the report of the ward and period chosen, while the section is open. */
async function readReport(): Promise<void> {
  if (!details.open || !wards.length) return;
  const ward = Number(wardSelect.value) || wards[0].id;
  const asked = periodQuery(showPeriod());
  const load = ++loading;
  if ("problem" in asked) {
    dropFigures();
    status.textContent = asked.problem;
    asked.focus.focus();
    return;
  }
  status.textContent = "Reading the report…";
  try {
    const r = await api<WardReport>(`/api/v1/wards/${ward}/report${asked.query}`);
    if (load !== loading) return;
    draw(r);
    status.textContent = "";
  } catch (e) {
    if (load !== loading) return;
    // Figures of another period must not stand under this one's choice.
    dropFigures();
    if (e instanceof ApiError && e.status === 401) { status.textContent = ""; return; } // the sign-in form shows
    status.textContent = e instanceof ApiError && e.status === 422
      ? `No report for that period: ${reason(e)}.`
      : `Could not read the report: ${reason(e)}.`;
  }
}

// ---------------------------------------------------------------- drawn

/** A row of a figures table: what it is, then the figure. */
function row(what: string, figure: string | Node, sub = false): HTMLTableRowElement {
  const tr = el("tr");
  const th = el("th", sub ? "sub" : "", what);
  th.scope = "row";
  const td = el("td");
  td.append(figure);
  tr.append(th, td);
  return tr;
}

function time(ts: string, year: boolean): HTMLTimeElement {
  return timeEl(ts, whenWithYear(ts, year));
}

/** Each outcome as the handover words it, in the order a person chooses them, then Vigil's own. */
function outcomes(counts: Record<string, number>): string | HTMLUListElement {
  const order = Object.keys(OUTCOME_TEXT);
  const keys = Object.keys(counts).filter((k) => counts[k] > 0).sort((a, b) => {
    const ia = order.indexOf(a), ib = order.indexOf(b);
    return (ia < 0 ? order.length : ia) - (ib < 0 ? order.length : ib) || a.localeCompare(b);
  });
  if (!keys.length) return "none resolved";
  const ul = el("ul");
  ul.append(...keys.map((k) => el("li", "", `${OUTCOME_TEXT[k] || k}: ${counts[k]}`)));
  return ul;
}

function draw(r: WardReport): void {
  shownWard = r.ward_id;
  const covers = $("report-covers");
  // Both with their year when either is of another year than this one.
  const year = [r.from, r.to].some((ts) => new Date(ts).getFullYear() !== new Date().getFullYear());
  covers.replaceChildren(`${r.ward}, from `, time(r.from, year), " to ", time(r.to, year), ".");
  // The figures shown, to the second: the period as the server took it (a
  // "last 7 days" asked again later would be another week).
  ($("report-csv") as HTMLAnchorElement).href =
    `/api/v1/wards/${r.ward_id}/report.csv?from=${encodeURIComponent(r.from)}&to=${encodeURIComponent(r.to)}`;

  const p = r.patients;
  $("report-people").querySelector("tbody")!.replaceChildren(
    row("On the ward at the start", String(p.at_start)),
    row("On the ward at the end", String(p.at_end)),
    row("Admitted", String(p.admitted)),
    row("Discharged", String(p.discharged)),
    row("Bed-days (everyone's days on the ward, added up)", num(p.bed_days)),
    row("Average number on the ward", num(p.mean_occupancy)),
    row("Length of stay of those discharged", spreadText(p.length_of_stay_days, daysText,
      p.length_of_stay_days.count === 1 ? "stay" : "stays", "none discharged")),
  );

  const a = r.alerts;
  const severities = [...SEVERITIES, ...Object.keys(a.by_severity).filter((s) => !SEVERITIES.includes(s as Risk))];
  $("report-alerts").querySelector("tbody")!.replaceChildren(
    row("Raised", String(a.raised)),
    ...severities.map((s) => row(`of which ${s}`, String(a.by_severity[s as Risk] ?? 0), true)),
    row("Time to acknowledge", spreadText(a.minutes_to_acknowledge, minutesText, "acknowledged", "none acknowledged")),
    row("Never acknowledged", String(a.never_acknowledged)),
    row("Escalated", a.escalated
      ? `${a.escalated}: ${a.escalated_by_timer} by the timer (not acknowledged in time), ${a.escalated - a.escalated_by_timer} by a clinician`
      : "0"),
    row("Still not resolved at the end", String(a.live_at_end)),
    row("Outcomes of those resolved", outcomes(a.outcomes)),
  );
  figures.hidden = false;
}

details.addEventListener("toggle", () => { void readReport(); });
wardSelect.addEventListener("change", () => { void readReport(); });
periodSelect.addEventListener("change", () => {
  if (showPeriod() !== "days") { void readReport(); return; }
  // Days: the last week's, to start from; read on Show.
  if (!fromInput.value && !toInput.value) {
    fromInput.value = utcDay(Date.now() - 6 * DAY_MS);
    toInput.value = utcDay(Date.now());
  }
  fromInput.focus();
});
daysForm.addEventListener("submit", (e) => { e.preventDefault(); void readReport(); });
