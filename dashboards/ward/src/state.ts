// What the page knows, shared by the ward view and the patient page.
import type { Alert, Me, News2, ObsValue, WardRow } from "./types";

export interface PatientState {
  summary: WardRow; latest: Record<string, { value: ObsValue; at: string }>; news2: News2 | null;
  /** Which live score `news2` is (`liveScores` when it was taken), if it came live. */
  news2Live?: number;
}
export interface LastAction { action: string; actor: string; at: string | null }
export interface AlertEntry { alert: Alert; last: LastAction | null }

export const patients = new Map<number, PatientState>();
export const alerts = new Map<number, AlertEntry>();
export const session: { me: Me | null } = { me: null };

export function patientName(id: number): string { return patients.get(id)?.summary.name || `Patient ${id}`; }
export function patientNhs(id: number): string { return patients.get(id)?.summary.nhs_number || ""; }
