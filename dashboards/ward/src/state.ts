// What the page knows, shared by the ward view and the patient page.
import type { Alert, Me, News2, ObsValue, WardRow } from "./types";

export interface PatientState {
  summary: WardRow; latest: Record<string, { value: ObsValue; at: string }>; news2: News2 | null;
  /** Which live event `news2` came in (the page's count of them), if it came live. */
  news2Live?: number;
  /** The same for each code's latest reading. */
  latestLive?: Record<string, number>;
  /** `summary.news2_earlier` is a score that came live (`takeEarlier`), not the list's. */
  earlierLive?: boolean;
}
export interface LastAction { action: string; actor: string; at: string | null }
export interface AlertEntry { alert: Alert; last: LastAction | null }

export const patients = new Map<number, PatientState>();
export const alerts = new Map<number, AlertEntry>();
export const session: { me: Me | null } = { me: null };

/**
 * A stored score that came live, for a patient the list read had none of
 * this stay for (`news2_earlier` null): it is the stay's first, so the one
 * the list would now give to compare the score with (a day ago, else the
 * stay's first) until a day has passed, by when the list, read every 5
 * minutes, has its own. Of several, the first measured (a late reading
 * scores before the rest). Without it the demo's patients, all admitted
 * at its start, showed no earlier score until the next read of the list
 * (hazard DB-23).
 */
export function takeEarlier(p: PatientState, s: News2): void {
  if (!s.scored_at) return;
  const e = p.summary.news2_earlier;
  if (e && !(p.earlierLive && Date.parse(s.scored_at) < Date.parse(e.scored_at))) return;
  p.summary.news2_earlier = { total: s.total, risk: s.risk, partial: s.partial, scored_at: s.scored_at };
  p.earlierLive = true;
}

export function patientName(id: number): string { return patients.get(id)?.summary.name || `Patient ${id}`; }
export function patientNhs(id: number): string { return patients.get(id)?.summary.nhs_number || ""; }

/** The time of the patient's newest reading, from the list or live. */
export function lastAt(p: PatientState): string | null {
  let t = p.summary.last_reading_at;
  for (const r of Object.values(p.latest)) if (!t || Date.parse(r.at) > Date.parse(t)) t = r.at;
  return t;
}
