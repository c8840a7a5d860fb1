// The shapes of what the API and the websocket send (docs/http.md).

export type Risk = "low" | "low-medium" | "medium" | "high";
export type AlertStatus = "open" | "acknowledged" | "escalated" | "resolved";
export type ObsValue = number | string;

/** A ward, as the API names one in a list of them. */
export interface WardName { id: number; name: string }

export interface Me { id?: number; username: string; role: string; csrf_token?: string; wards?: WardName[] }

/** How one signs in here (`GET /api/v1/auth/methods`): passwords, single sign-on, or both. */
export interface AuthMethods { password: boolean; sso: { label: string; login_url: string } | null }

export type StaffRole = "nurse" | "consultant" | "admin";

/**
 * A staff account as an admin's list has it (`GET /api/v1/users`, and what
 * `PATCH /api/v1/users/{id}` answers): `why_not` says, in words, why the
 * admin may not change it when `manageable` is false.
 */
export interface StaffAccount {
  id: number; username: string; role: StaffRole; wards: WardName[]; disabled_at: string | null;
  manageable: boolean; why_not?: string;
}

export interface PathwayInfo { name: string; title: string; spo2_scale: number; spo2_target: [number, number] | null }

export interface SubScore {
  parameter: string; score: number; raw?: ObsValue; quantised?: ObsValue;
  measured_at?: string; source?: string; reason?: string;
}

export interface News2 {
  total: number | null; risk: Risk | null; partial: boolean;
  missing?: string[]; stale?: string[]; subscores?: SubScore[];
  not_applicable?: string | null; red_score?: boolean;
  spo2_scale?: { scale: number; set_by: string | null; set_at: string | null };
  scored_at?: string;
}

export interface LatestReading { code: string; value: ObsValue; unit: string | null; measured_at: string; device_id: string }

/** A stored NEWS2 the ward list compares the score now with (docs/http.md). */
export interface EarlierNews2 { total: number | null; risk: Risk | null; partial: boolean; scored_at: string }

export interface WardRow {
  id: number; ward_id: number; name: string; nhs_number: string; pathway: string;
  last_reading_at: string | null; latest: LatestReading[]; news2: News2 | null;
  news2_earlier: EarlierNews2 | null;
  /** The stay's treatment escalation plan and its details, null if none is recorded. */
  escalation_plan: string | null; escalation_note: string | null;
}

export interface Episode {
  id: number; pathway: string; spo2_scale: number; spo2_scale_set_by: string | null;
  spo2_scale_set_at: string | null; admitted_at: string; discharged_at: string | null;
}

/** What clinicians recorded for an open episode, with who and when (`PATCH …/episode` answers it). */
export interface EpisodeSettings {
  spo2_scale: number; spo2_scale_set_by: string | null; spo2_scale_set_at: string | null;
  oxygen: boolean | null; oxygen_set_by: string | null; oxygen_set_at: string | null;
  acvpu: string | null; acvpu_set_by: string | null; acvpu_set_at: string | null;
  under_16: boolean; pregnant: boolean;
  /** Minutes between expected readings for this patient; null: the pathway's. */
  obs_every_minutes: number | null; obs_every_set_by: string | null; obs_every_set_at: string | null;
  /** The stay's treatment escalation plan (hospital, home or comfort), null if none is recorded. */
  escalation_plan: string | null; escalation_note: string | null; escalation_set_by: string | null; escalation_set_at: string | null;
}

export interface PatientDetail {
  id: number; ward_id: number; name: string; nhs_number: string; settings?: EpisodeSettings | null;
  episode: Episode | null; previous_episodes?: Episode[]; devices: PatientDevice[];
  thresholds: { spo2_target: { low: number; high: number; source: "pathway" | "scale" } | null; freshness_s: number | null };
}

/** A device on a patient's record (theirs now, or revoked while theirs). */
export interface PatientDevice { id: string; kind: string; revoked_at: string | null; status: StoredDeviceStatus | null }

/** A device as an admin's list has it (`GET /api/v1/devices`): `patient_id` null when it is no one's now. */
export interface DeviceListed {
  id: string; kind: string; patient_id: number | null; ward_id: number | null; provisioned_at: string;
  revoked_at: string | null; last_message_at: string | null; status: StoredDeviceStatus | null;
}

export interface ObservationRow {
  id: number; code: string; value: ObsValue; unit: string | null;
  measured_at: string; received_at: string; device_id: string; seq: number;
}

export interface ScoreRow {
  id: number; scored_at: string; computed_at: string; total: number | null;
  risk: Risk | null; partial: boolean; detail: News2; obs_ids: number[];
}

export interface Alert {
  id: number; patient_id: number; ward_id: number; rule_id: string; severity: Risk;
  status: AlertStatus; message: string; count: number; raised_at: string; updated_at: string;
  escalate_at: string | null; resolved_at: string | null; outcome: string | null; note: string | null;
  /** What the rule saw last; a follow-up's: `{ follow_up_id, reason, due_at, set_by, set_at }`. */
  latest_value?: unknown;
}

/** A follow-up asked for on a stay (`GET /api/v1/patients/{id}/follow-ups`). */
export interface FollowUp { id: number; patient_id: number; due_at: string; reason: string; set_by: string; set_at: string }

export interface AlertEvent { at: string; actor: string; action: string; detail: unknown }

export interface EcgWindow {
  chunks: { device_id: string; seq: number; t0_ms: number; fs_hz: number; uv_per_count: number; samples: number[] }[];
  beats: { t_ms: number; rr_ms: number | null }[];
}

export interface DeviceStatus { online?: boolean; battery_pct?: number | null; signal?: string | null; fw?: string | null }
/** A device's last status as the API keeps it: `reported_at` is when Vigil received it. */
export interface StoredDeviceStatus extends DeviceStatus { reported_at: string }

export type LiveEvent =
  | { type: "hello"; ward_ids: number[] }
  | { type: "session_ended" }
  | { type: "resync"; missed: number }
  | { type: "observation"; ward_id: number; patient_id: number; device_id: string; seq: number; measured_at: string;
      obs: { id: number; code: string; value: ObsValue; unit: string | null }[] }
  | { type: "score"; ward_id: number; patient_id: number; score: News2 }
  | { type: "alert"; ward_id: number; alert: Alert }
  | { type: "alert_update"; ward_id: number; alert: Alert; action: string; actor: string }
  | { type: "device_status"; ward_id: number; patient_id: number; device_id: string; status: DeviceStatus }
  | { type: "ecg_status"; ward_id: number; patient_id: number; device_id: string; t_ms: number;
      quality: string | null; possible_af: boolean | null }
  | { type: "patient"; ward_id: number; patient_id: number; change: "admitted" | "discharged" }
  | { type: "episode"; ward_id: number; patient_id: number; settings: EpisodeSettings }
  | { type: "note"; ward_id: number; note: Note }
  | { type: "wards_changed"; ward_ids: number[] };

export interface Note { id: number; patient_id: number; at: string; author: string; text: string }

/** An audit-trail entry (`GET /api/v1/audit`, admins): `user_id` null for the command line's and failed sign-ins. */
export interface AuditEntry {
  at: string; user_id: number | null; username: string; action: string;
  patient_id: number | null; detail: unknown; addr: string | null;
}

/** How many, and the middle and the slow end of them: `median` and `p90` (nearest rank) are null when `count` is 0. */
export interface Spread { count: number; median: number | null; p90: number | null }

/**
 * A ward's activity over a period (`GET /api/v1/wards/{id}/report`): counts
 * only, no patient named. `from` and `to` are the period as the server took
 * it (a `to` in the future is now).
 */
export interface WardReport {
  ward_id: number; ward: string; from: string; to: string;
  patients: {
    at_start: number; at_end: number; admitted: number; discharged: number;
    /** Days of stay within the period, summed over everyone. */
    bed_days: number;
    /** The mean number on the ward: bed-days over the period's days. */
    mean_occupancy: number;
    /** The stays that ended in the period, in days. */
    length_of_stay_days: Spread;
  };
  alerts: {
    raised: number;
    /** By the highest severity each reached; a severity with none is absent. */
    by_severity: Partial<Record<Risk, number>>;
    minutes_to_acknowledge: Spread;
    never_acknowledged: number; escalated: number; escalated_by_timer: number; live_at_end: number;
    /** Those resolved in the period, by outcome. */
    outcomes: Record<string, number>;
  };
}
