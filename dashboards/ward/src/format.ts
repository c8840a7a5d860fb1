// Words, ages and NEWS2 text shared by the ward and the patient page.
import type { Alert, EarlierNews2, News2 } from "./types";

export const PARAM_NAMES: Record<string, string> = {
  resp_rate: "respiration rate", spo2: "SpO2", o2: "air or oxygen", systolic: "systolic BP",
  pulse: "pulse", acvpu: "consciousness (ACVPU)", temp: "temperature",
};
export const RISK_RANK: Record<string, number> = { high: 4, medium: 3, "low-medium": 2, low: 1 };

export function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el;
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls = "", text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export const span = (cls: string, text: string): HTMLSpanElement => el("span", cls, text);

/** A `<time>` of the instant `ts`, reading `text`. */
export function timeEl(ts: string, text: string): HTMLTimeElement {
  const t = el("time", "", text);
  t.dateTime = ts;
  return t;
}

export function age(ts: string | null | undefined): string {
  if (!ts) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** A date and time in the browser's locale, to the minute (second when `secs`). */
export function when(ts: string, secs = false): string {
  return new Date(ts).toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    ...(secs ? { second: "2-digit" } : {}) });
}

/** As `when`, with the year too when `year` (by default, when it is not this year's: a period long past). */
export function whenWithYear(ts: string, year = new Date(ts).getFullYear() !== new Date().getFullYear()): string {
  return year ? new Date(ts).toLocaleString(undefined, { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" })
    : when(ts);
}

export function countdown(a: Alert): string | null {
  if (a.status !== "open" || !a.escalate_at) return null;
  const s = Math.round((Date.parse(a.escalate_at) - Date.now()) / 1000);
  const mmss = (n: number) => n >= 3600 ? `${Math.floor(n / 3600)}h ${String(Math.floor(n / 60) % 60).padStart(2, "0")}m`
    : `${Math.floor(n / 60)}:${String(n % 60).padStart(2, "0")}`;
  return s >= 0 ? `escalates in ${mmss(s)}` : `escalation due ${mmss(-s)} ago`;
}

export const params = (list: string[] | undefined): string => (list || []).map((x) => PARAM_NAMES[x] || x).join(", ");

export interface News2View { text: string; sub?: string; detail: string; cls: string }

/** The NEWS2 text, tooltip, screen-reader text and a class for colour. */
export function news2View(s: News2 | null | undefined): News2View {
  if (!s) return { text: "no score", detail: "No readings to score yet", cls: "risk-none" };
  if (s.not_applicable) return { text: "n/a", detail: `NEWS2 not applicable: ${s.not_applicable}`, cls: "risk-none" };
  const gaps: string[] = [];
  if (s.missing?.length) gaps.push(`missing ${params(s.missing)}`);
  if (s.stale?.length) gaps.push(`stale ${params(s.stale)}`);
  const risk = s.risk || "unknown";
  if (s.partial) {
    return { text: `≥${s.total} partial`, sub: `at least ${risk}`,
      detail: `Partial score, at least ${s.total} (${risk} risk or worse): ${gaps.join("; ") || "incomplete"}`,
      cls: `risk-${risk} partial` };
  }
  return { text: `${s.total}`, sub: risk, detail: `NEWS2 ${s.total}, ${risk} risk${s.red_score ? " (a single parameter scores 3)" : ""}`,
    cls: `risk-${risk}` };
}

export interface News2Trend { dir: "up" | "down" | "same" | "unknown"; text: string; detail: string }

/**
 * The score now beside an earlier one (the ward list's `news2_earlier`: a
 * day ago, or the stay's first). The direction is given only where the
 * totals prove it: a partial total is a lower bound, so a partial score
 * now can only be shown to have risen, a partial earlier one only to have
 * been fallen from, and otherwise the change is "not known", never a
 * guess (hazard DB-23). `null` when there is nothing to compare: no
 * earlier score, NEWS2 not applying to either, or no reading since the
 * earlier score (`newest`, the patient's newest reading), which is then
 * the score now itself.
 */
export function news2Trend(now: News2 | null | undefined, then: EarlierNews2 | null | undefined,
  newest: string | null): News2Trend | null {
  if (!now || now.not_applicable || now.total == null || !then || then.total == null) return null;
  if (!newest || Date.parse(newest) <= Date.parse(then.scored_at)) return null;
  const [b, a] = [now.total, then.total];
  const dir: News2Trend["dir"] =
    !now.partial && !then.partial ? (b > a ? "up" : b < a ? "down" : "same")
      : now.partial && !then.partial && b > a ? "up"
        : !now.partial && then.partial && b < a ? "down" : "unknown";
  const was = then.partial ? `≥${a} partial` : `${a}`;
  const arrow = { up: "↑ ", down: "↓ ", same: "→ ", unknown: "" }[dir];
  const words = {
    up: `Up from ${a}`, down: `Down from ${then.partial ? `at least ${a}` : a}`, same: `Unchanged from ${a}`,
    unknown: `Change not known (partial score): was ${then.partial ? `at least ${a}` : a}`,
  }[dir];
  return { dir, text: `${arrow}was ${was}, ${age(then.scored_at)}`, detail: `${words} at ${when(then.scored_at)}` };
}

/** An NHS number as it is printed and read out: 3, 3 and 4 digits. */
export function nhsFormat(n: string | undefined): string {
  const d = (n || "").replace(/\s/g, "");
  return d.length === 10 ? `${d.slice(0, 3)} ${d.slice(3, 6)} ${d.slice(6)}` : d;
}

export const DAY_MS = 24 * 3600_000;

/**
 * The instants bounding the UTC days `first` to `last` (`YYYY-MM-DD`, as a
 * date input gives them, the last included), as ISO strings for a query:
 * `from` the first's midnight, `to` the midnight after the last, or, with
 * `inclusiveTo` (for an API whose `to` is inclusive), the last millisecond
 * before it. Or what is wrong with them, in words, and which of the two to
 * choose again.
 */
export function utcDays(first: string, last: string, inclusiveTo: boolean):
  { from: string; to: string } | { problem: string; at: "first" | "last" } {
  const from = Date.parse(`${first}T00:00:00Z`), to = Date.parse(`${last}T00:00:00Z`);
  if (Number.isNaN(from)) return { problem: "Choose the first day.", at: "first" };
  if (Number.isNaN(to)) return { problem: "Choose the last day.", at: "last" };
  if (from > to) return { problem: "The first day is after the last: choose them again.", at: "first" };
  return { from: new Date(from).toISOString(), to: new Date(to + DAY_MS - (inclusiveTo ? 1 : 0)).toISOString() };
}

/**
 * What a follow-up alert was asked for (its `latest_value.reason`), or ""
 * for any other alert. Free text: shown on the alert, never in its
 * message, which the alert webhook posts.
 */
export function followUpReason(a: Alert): string {
  const v = a.latest_value as { reason?: unknown } | null | undefined;
  return a.rule_id === "follow-up" && typeof v?.reason === "string" ? v.reason : "";
}
