// What the page knows, shared by the ward view and the patient page.
import type { Alert, Me, News2, ObsValue, WardRow } from "./types";

export interface PatientState {
  summary: WardRow; latest: Record<string, { value: ObsValue; at: string }>; news2: News2 | null;
  /** Which live event `news2` came in (the page's count of them), if it came live. */
  news2Live?: number;
  /** The same for each code's latest reading. */
  latestLive?: Record<string, number>;
}
export interface LastAction { action: string; actor: string; at: string | null }
export interface AlertEntry { alert: Alert; last: LastAction | null }

export const patients = new Map<number, PatientState>();
export const alerts = new Map<number, AlertEntry>();
export const session: { me: Me | null } = { me: null };

export function patientName(id: number): string { return patients.get(id)?.summary.name || `Patient ${id}`; }
export function patientNhs(id: number): string { return patients.get(id)?.summary.nhs_number || ""; }

/** The time of the patient's newest reading, from the list or live. */
export function lastAt(p: PatientState): string | null {
  let t = p.summary.last_reading_at;
  for (const r of Object.values(p.latest)) if (!t || Date.parse(r.at) > Date.parse(t)) t = r.at;
  return t;
}
