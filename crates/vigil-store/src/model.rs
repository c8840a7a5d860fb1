//! Records that cross the [`Store`](crate::Store) trait.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ward {
    pub id: i64,
    pub name: String,
}

/// Clinical role; the permission table lives in docs/security.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Nurse,
    Consultant,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Nurse => "nurse",
            Role::Consultant => "consultant",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "nurse" => Some(Role::Nurse),
            "consultant" => Some(Role::Consultant),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    /// PHC string (argon2id); the store never sees a password.
    pub password_hash: String,
    pub ward_ids: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    pub ward_ids: Vec<i64>,
    /// When the account was disabled (a leaver); it then signs in to nothing.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// What disabling an account, or setting its password, ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CredentialsEnded {
    /// Sessions and API tokens revoked.
    pub revoked: u64,
}

/// An authenticated user as the web layer needs it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuthUser {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub ward_ids: Vec<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewToken {
    pub user_id: i64,
    /// Hex SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    pub kind: TokenKind,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// For a session begun through single sign-on: the provider's sign-in
    /// it came from, which the provider may later end.
    pub sso: Option<SsoLink>,
}

/// The provider's sign-in behind a session: the ID token's `sub`, and its
/// `sid` when the provider gives one (OpenID Connect Back-Channel Logout
/// 1.0 §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoLink {
    pub sub: String,
    pub sid: Option<String>,
}

/// What an admission did ([`crate::Store::patient_admit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The patient: a new record, or the person's earlier one.
    pub id: i64,
    /// The person was discharged from this ward before: their record (and
    /// its history) has a new episode.
    pub readmitted: bool,
}

#[derive(Clone, Debug)]
pub struct NewPatient {
    pub ward_id: i64,
    pub name: String,
    pub nhs_number: String,
    pub pathway: String,
    pub spo2_scale: u8,
    /// Who recorded the SpO2 scale (username), when it is not the default.
    pub spo2_scale_set_by: Option<String>,
    pub admitted_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Episode {
    pub id: i64,
    pub pathway: String,
    pub spo2_scale: u8,
    pub spo2_scale_set_by: Option<String>,
    pub spo2_scale_set_at: Option<DateTime<Utc>>,
    pub admitted_at: DateTime<Utc>,
    pub discharged_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceInfo {
    pub id: String,
    pub kind: String,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The device's last status message; `None` if it never sent one.
    pub status: Option<DeviceStatusReport>,
}

/// Which devices [`crate::Store::devices_list`] lists.
#[derive(Clone, Copy, Debug)]
pub enum DeviceQuery<'a> {
    /// Every device, revoked or not (`vigil admin device list`).
    All,
    /// The devices that are no one's now (a kit back on the shelf).
    Unassigned,
    /// The devices of the patients on this ward.
    Ward(i64),
    /// This device, if there is one.
    One(&'a str),
}

/// A device as an admin's inventory lists it (`GET /api/v1/devices`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceListed {
    pub id: String,
    pub kind: String,
    /// The patient it reports for; `None`: no one's.
    pub patient_id: Option<i64>,
    /// That patient's ward.
    pub ward_id: Option<i64>,
    pub provisioned_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When Vigil received the device's newest message (readings or ECG),
    /// by its sequence counter; `None` if it never sent one.
    pub last_message_at: Option<DateTime<Utc>>,
    /// The device's last status message; `None` if it never sent one.
    pub status: Option<DeviceStatusReport>,
}

/// A device's last status message (docs/mqtt.md, `…/status`), as received.
/// A field the message left out is `None` (unknown), not the previous value.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceStatusReport {
    pub online: bool,
    /// 0–100.
    pub battery_pct: Option<u8>,
    /// `ok`, `poor` or `lead_off`.
    pub signal: Option<String>,
    /// Firmware version.
    pub fw: Option<String>,
    /// When Vigil received it: the message carries no time of its own.
    pub reported_at: DateTime<Utc>,
}

/// What a discharge did (`Store::patient_discharge`).
#[derive(Clone, Debug)]
pub struct Discharge {
    pub discharged_at: DateTime<Utc>,
    /// The patient's alerts that were live (open, acknowledged or
    /// escalated), now resolved with outcome [`DISCHARGED`].
    pub resolved: Vec<AlertRow>,
}

/// The outcome of a data-gap alert resolved because the patient's readings
/// came back: the system's own, not one a clinician picks.
pub const DATA_RESUMED: &str = "data-resumed";

/// The outcome of an alert resolved because its patient was discharged:
/// like [`DATA_RESUMED`], the system's own.
pub const DISCHARGED: &str = "discharged";

/// The outcome of a device alert resolved because its device was moved to
/// another patient, or unassigned: the system's own.
pub const DEVICE_UNASSIGNED: &str = "device-unassigned";

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PatientDetail {
    pub id: i64,
    pub ward_id: i64,
    pub name: String,
    pub nhs_number: String,
    /// The newest episode (open while admitted).
    pub episode: Option<Episode>,
    /// The earlier stays of a patient admitted again, newest first.
    pub previous_episodes: Vec<Episode>,
    pub devices: Vec<DeviceInfo>,
}

impl PatientDetail {
    /// Every episode of the record, newest first: one per admission.
    pub fn episodes(&self) -> impl Iterator<Item = &Episode> {
        self.episode.iter().chain(&self.previous_episodes)
    }
}

/// The latest value of one code for a patient.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LatestReading {
    pub code: String,
    pub value: ObsValue,
    pub unit: Option<String>,
    pub measured_at: DateTime<Utc>,
    pub device_id: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PatientSummary {
    pub id: i64,
    pub ward_id: i64,
    pub name: String,
    /// With the name, the second identifier a nurse checks (NHS patient
    /// identification: never a name alone).
    pub nhs_number: String,
    pub pathway: String,
    pub last_reading_at: Option<DateTime<Utc>>,
    pub latest: Vec<LatestReading>,
}

/// A patient whose latest stay on the ward has ended, and who has no open
/// one: what a nurse looks up when a discharged patient calls back.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DischargedPatient {
    pub id: i64,
    pub ward_id: i64,
    pub name: String,
    pub nhs_number: String,
    /// The ended stay's.
    pub pathway: String,
    pub admitted_at: DateTime<Utc>,
    pub discharged_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewDevice {
    pub id: String,
    pub kind: String,
    pub mqtt_username: String,
    /// Hex SHA-256 of the device secret.
    pub secret_hash: String,
    /// The secret hashed for Mosquitto's password file (`$7$…`), for
    /// `vigil admin mqtt export`.
    pub mosquitto_hash: Option<String>,
    pub patient_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// An unrevoked device's account on an external broker.
#[derive(Clone, Debug)]
pub struct MqttAccount {
    pub device_id: String,
    pub mqtt_username: String,
    /// `None` for devices provisioned before Vigil recorded it (migration 0006).
    pub mosquitto_hash: Option<String>,
}

impl From<(String, String, Option<String>)> for MqttAccount {
    /// From a `(id, mqtt_username, mosquitto_hash)` row.
    fn from((device_id, mqtt_username, mosquitto_hash): (String, String, Option<String>)) -> Self {
        MqttAccount {
            device_id,
            mqtt_username,
            mosquitto_hash,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DeviceCredentials {
    pub device_id: String,
    pub secret_hash: String,
    pub revoked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRoute {
    pub patient_id: i64,
    pub ward_id: i64,
}

/// An observation value: numbers for measurements, text for ACVPU and posture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ObsValue {
    Number(f64),
    Text(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewObservation {
    pub code: String,
    pub value: ObsValue,
    pub unit: Option<String>,
}

/// A validated device message, mapped to its patient.
#[derive(Clone, Debug)]
pub struct NewObsMessage {
    pub device_id: String,
    pub seq: u32,
    pub patient_id: i64,
    pub measured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub obs: Vec<NewObservation>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum BatchOutcome {
    /// Newly stored; the ids of its observation rows, in message order.
    Stored { observation_ids: Vec<i64> },
    /// `(device, seq)` was already stored; nothing written.
    Duplicate,
}

#[derive(Clone, Debug)]
pub struct NewRejected {
    pub device_id: Option<String>,
    pub seq: Option<u32>,
    pub topic: String,
    pub reason: String,
    pub detail: String,
    pub payload: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct ObservationQuery {
    pub patient_id: i64,
    pub code: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub max_points: Option<usize>,
}

/// A bounded run of one patient's history, earliest first: what a FHIR
/// search pages through without reading the whole record
/// ([`crate::Store::observations_page`], [`crate::Store::scores_page`]).
#[derive(Clone, Copy, Debug)]
pub struct HistoryPage {
    pub patient_id: i64,
    /// Where the run starts: measured (or scored) at or after, or strictly
    /// after, this time.
    pub since: std::ops::Bound<DateTime<Utc>>,
    /// With `since` included: of the rows at exactly that time, only
    /// those with a greater id (where a run that stopped there left off).
    pub after_id: Option<i64>,
    /// The last time included, if any.
    pub to: Option<DateTime<Utc>>,
    /// At most this many rows (`i64::MAX`: all of them).
    pub limit: i64,
}

impl HistoryPage {
    /// The first run of the patient's history in `[from, to]` (either end
    /// open when `None`), at most `limit` rows.
    pub fn span(
        patient_id: i64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> HistoryPage {
        HistoryPage {
            patient_id,
            after_id: None,
            since: from.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
            to,
            limit,
        }
    }

    /// The page after `run`, which was read with this one: from its last
    /// row's time and id (keyset, so a run may end part-way through an
    /// instant and the next neither repeats nor skips a row). `None` when
    /// `run` was the last: fewer rows than the limit.
    pub fn after<T: crate::downsample::Sample>(&self, run: &[T]) -> Option<HistoryPage> {
        let full = i64::try_from(run.len()).unwrap_or(i64::MAX) >= self.limit;
        let (at, id) = run.last().map(crate::downsample::Sample::key)?;
        full.then_some(HistoryPage {
            since: std::ops::Bound::Included(at),
            after_id: Some(id),
            ..*self
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ObservationRow {
    pub id: i64,
    pub code: String,
    pub value: ObsValue,
    pub unit: Option<String>,
    pub measured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub device_id: String,
    pub seq: u32,
}

/// Counts of what is durably stored (`vigil admin stats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub obs_messages: i64,
    pub observations: i64,
    pub rejected: i64,
    pub ecg_chunks: i64,
    pub alerts_open: i64,
    pub patients: i64,
    pub devices: i64,
}

/// One stored observation as pushed to dashboards.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveObservation {
    pub id: i64,
    pub code: String,
    pub value: ObsValue,
    pub unit: Option<String>,
}

/// Something the dashboard should hear about now. Every event names its
/// ward, so the web layer can deliver it only to users of that ward.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Observation {
        ward_id: i64,
        patient_id: i64,
        device_id: String,
        seq: u32,
        measured_at: DateTime<Utc>,
        obs: Vec<LiveObservation>,
    },
    DeviceStatus {
        ward_id: i64,
        patient_id: i64,
        device_id: String,
        status: serde_json::Value,
    },
    /// What an ECG patch's signal says: quality (`ok`, `poor`, `lead_off`)
    /// or the possible-AF prompt (a prompt to review the strip, never a
    /// diagnosis).
    EcgStatus {
        ward_id: i64,
        patient_id: i64,
        device_id: String,
        t_ms: i64,
        quality: Option<String>,
        possible_af: Option<bool>,
    },
    /// A new alert.
    Alert { ward_id: i64, alert: AlertRow },
    /// An alert changed (repeat, acknowledge, escalate, resolve).
    AlertUpdate {
        ward_id: i64,
        alert: AlertRow,
        action: String,
        actor: String,
    },
    /// A patient's NEWS2 was (re)computed. `score` is the clinical result.
    Score {
        ward_id: i64,
        patient_id: i64,
        score: serde_json::Value,
    },
    /// A patient joined or left the ward: `change` is `admitted` or
    /// `discharged`. Sent by the API for its own, and by the ingest
    /// worker's patient sync for changes made in another process (`vigil
    /// admin`), so the same change may come twice.
    Patient {
        ward_id: i64,
        patient_id: i64,
        change: String,
    },
    /// A clinician recorded the episode's settings (SpO2 scale, air or
    /// oxygen, consciousness, under 16, pregnant): what `PATCH …/episode`
    /// answered, so that every open page of the patient shows it.
    Episode {
        ward_id: i64,
        patient_id: i64,
        settings: EpisodeSettings,
    },
    /// A clinician wrote a note on the patient's record, so that every open
    /// page of the patient shows it.
    Note { ward_id: i64, note: NoteRow },
}

impl LiveEvent {
    pub fn ward_id(&self) -> i64 {
        match self {
            LiveEvent::Observation { ward_id, .. }
            | LiveEvent::DeviceStatus { ward_id, .. }
            | LiveEvent::EcgStatus { ward_id, .. }
            | LiveEvent::Alert { ward_id, .. }
            | LiveEvent::AlertUpdate { ward_id, .. }
            | LiveEvent::Score { ward_id, .. }
            | LiveEvent::Patient { ward_id, .. }
            | LiveEvent::Episode { ward_id, .. }
            | LiveEvent::Note { ward_id, .. } => *ward_id,
        }
    }
}

/// Episode facts NEWS2 needs, each with who recorded it and when.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EpisodeSettings {
    pub patient_id: i64,
    pub ward_id: i64,
    pub pathway: String,
    pub spo2_scale: u8,
    pub spo2_scale_set_by: Option<String>,
    pub spo2_scale_set_at: Option<DateTime<Utc>>,
    pub oxygen: Option<bool>,
    pub oxygen_set_by: Option<String>,
    pub oxygen_set_at: Option<DateTime<Utc>>,
    pub acvpu: Option<String>,
    pub acvpu_set_by: Option<String>,
    pub acvpu_set_at: Option<DateTime<Utc>>,
    pub under_16: bool,
    pub pregnant: bool,
    /// When the patient's previous stay ended, if they were admitted
    /// again: scoring compares a score only with the scores measured after
    /// it (the earlier stay's alerts were resolved by its discharge).
    pub earlier_stay_ended: Option<DateTime<Utc>>,
    /// How often, in minutes, a clinician wants this patient's
    /// observations, in place of the pathway's `[[expect]]` intervals;
    /// `None`: the pathway's.
    pub obs_every_minutes: Option<i64>,
    pub obs_every_set_by: Option<String>,
    pub obs_every_set_at: Option<DateTime<Utc>>,
    /// The treatment escalation plan recorded for this stay, one of
    /// [`ESCALATION_PLANS`]; `None`: none recorded. It changes nothing
    /// Vigil scores or alerts on: it tells whoever answers an alert what
    /// response was agreed with the patient.
    pub escalation_plan: Option<String>,
    /// The plan's details in words (where the full plan, a ReSPECT form,
    /// is kept; what treatment at home means for this patient).
    pub escalation_note: Option<String>,
    pub escalation_set_by: Option<String>,
    pub escalation_set_at: Option<DateTime<Utc>>,
}

/// Treatment escalation plans, as a clinician records them for a stay:
/// `hospital`, for transfer to hospital if they deteriorate; `home`, for
/// treatment at home only, not for transfer; `comfort`, for comfort care
/// at home (end of life). A summary of the plan agreed with the patient
/// (a ReSPECT form, a treatment escalation plan), not the plan itself.
pub const ESCALATION_PLANS: [&str; 3] = ["hospital", "home", "comfort"];

/// ACVPU levels, for the API description (stored and sent as text).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum Acvpu {
    A,
    C,
    V,
    P,
    U,
}

/// A clinician's change to the open episode; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EpisodeUpdate {
    /// SpO2 scale 1 or 2
    #[schema(minimum = 1, maximum = 2)]
    pub spo2_scale: Option<u8>,
    /// On supplemental oxygen
    pub oxygen: Option<bool>,
    /// Consciousness: one of A, C, V, P, U
    #[schema(value_type = Option<Acvpu>)]
    pub acvpu: Option<String>,
    pub under_16: Option<bool>,
    pub pregnant: Option<bool>,
    /// Observations expected every this many minutes (15 to 10080, a
    /// week), in place of the pathway's; `0`: back to the pathway's
    #[schema(minimum = 0, maximum = 10080)]
    pub obs_every_minutes: Option<i64>,
    /// The treatment escalation plan: `hospital`, `home` or `comfort`;
    /// `not-recorded` clears it (kept as who cleared it and when)
    #[schema(value_type = Option<EscalationPlan>)]
    pub escalation_plan: Option<String>,
    /// The plan's details in words, up to 500 characters; only with
    /// `escalation_plan` (a plan recorded without it has none)
    pub escalation_note: Option<String>,
}

/// Treatment escalation plans, for the API description (stored and sent
/// as text; [`ESCALATION_PLANS`]).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum EscalationPlan {
    Hospital,
    Home,
    Comfort,
    NotRecorded,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewScore {
    pub patient_id: i64,
    /// The measurement time this score describes.
    pub scored_at: DateTime<Utc>,
    pub computed_at: DateTime<Utc>,
    pub total: Option<i64>,
    pub risk: Option<String>,
    pub partial: bool,
    /// The whole clinical result as JSON.
    pub detail: serde_json::Value,
    pub obs_ids: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScoreRow {
    pub id: i64,
    pub scored_at: DateTime<Utc>,
    pub computed_at: DateTime<Utc>,
    pub total: Option<i64>,
    pub risk: Option<String>,
    pub partial: bool,
    pub detail: serde_json::Value,
    pub obs_ids: Vec<i64>,
}

/// What a chart of NEWS2 draws of a score: its place and its total, read
/// without its detail ([`crate::Store::score_levels_page`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreLevel {
    pub id: i64,
    pub scored_at: DateTime<Utc>,
    pub total: Option<i64>,
}

/// A stored score as the ward list compares the score now with it
/// ([`crate::Store::scores_earlier`]): its total (`None` where NEWS2 did
/// not apply), its risk, whether it was partial (its total then a lower
/// bound), and the time it describes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EarlierScore {
    pub total: Option<i64>,
    pub risk: Option<String>,
    pub partial: bool,
    pub scored_at: DateTime<Utc>,
}

/// A received ECG chunk, samples already encoded for storage.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEcgChunk {
    pub device_id: String,
    pub seq: u32,
    pub patient_id: i64,
    pub t0_ms: i64,
    pub fs_hz: u16,
    pub uv_per_count: f32,
    pub n_samples: u32,
    /// Name of the sample encoding (`vigil_ecg::SAMPLE_ENCODING`).
    pub encoding: String,
    pub samples: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EcgChunkRow {
    pub device_id: String,
    pub seq: u32,
    pub t0_ms: i64,
    pub fs_hz: u16,
    pub uv_per_count: f32,
    pub n_samples: u32,
    pub encoding: String,
    #[serde(skip)]
    pub samples: Vec<u8>,
}

/// How far a worker pass got, moved in the pass's own transaction
/// ([`crate::Store::score_and_fire`]) and only ever up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassProgress {
    /// The highest id of the uplink observations the pass took
    /// ([`crate::Store::worker_progress`]).
    pub observation_id: Option<i64>,
    /// Per ECG patch, the highest chunk `seq` the pass analysed
    /// ([`crate::Store::ecg_unanalysed`]).
    pub ecg: Vec<(String, u32)>,
}

impl PassProgress {
    /// Progress through the uplink observations only.
    pub fn observations(id: i64) -> PassProgress {
        PassProgress {
            observation_id: Some(id),
            ecg: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.observation_id.is_none() && self.ecg.is_empty()
    }

    /// Each patch once, at the highest seq named for it.
    pub fn ecg_highest(&self) -> Vec<(&str, i64)> {
        let mut by: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
        for (device, seq) in &self.ecg {
            let e = by.entry(device.as_str()).or_insert(*seq);
            *e = (*e).max(*seq);
        }
        by.into_iter().map(|(d, s)| (d, i64::from(s))).collect()
    }
}

/// A stored ECG chunk no worker pass has analysed, with whose it is.
#[derive(Clone, Debug, PartialEq)]
pub struct UnanalysedChunk {
    pub patient_id: i64,
    pub ward_id: i64,
    pub received_at: DateTime<Utc>,
    pub chunk: EcgChunkRow,
}

/// A beat found by the streaming detector.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BeatRow {
    pub t_ms: i64,
    pub rr_ms: Option<u32>,
}

/// The beats one patch's chunks gave, for [`crate::Store::store_beats`].
#[derive(Clone, Debug, PartialEq)]
pub struct PatchBeats {
    pub patient_id: i64,
    pub device_id: String,
    pub beats: Vec<BeatRow>,
}

/// An observation derived on the server (e.g. heart rate from the ECG),
/// attributed to the device whose data it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDerivedObservation {
    pub patient_id: i64,
    pub device_id: String,
    /// The uplink message it was derived from.
    pub seq: u32,
    pub observation: NewObservation,
    pub measured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// Alert severities, in NEWS2 risk words, lowest first (so `Ord` means "worse").
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Low,
    LowMedium,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::LowMedium => "low-medium",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::LowMedium,
            Severity::Medium,
            Severity::High,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Escalated,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Escalated => "escalated",
            AlertStatus::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<AlertStatus> {
        [
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Escalated,
            AlertStatus::Resolved,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A rule firing for a patient (raise, or update the live alert).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertFiring {
    pub patient_id: i64,
    pub ward_id: i64,
    pub rule_id: String,
    pub severity: Severity,
    pub message: String,
    pub value: serde_json::Value,
    pub evidence: Vec<i64>,
    /// Measurement time of the reading that fired the rule.
    pub at: DateTime<Utc>,
    /// When an unacknowledged alert of this severity escalates, if ever.
    pub escalate_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRow {
    pub id: i64,
    pub patient_id: i64,
    pub ward_id: i64,
    pub rule_id: String,
    pub severity: Severity,
    pub status: AlertStatus,
    pub message: String,
    pub count: i64,
    pub latest_value: serde_json::Value,
    pub evidence: Vec<i64>,
    pub raised_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub escalate_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub note: Option<String>,
}

/// An alert resolved on a ward, for the handover: the alert with whom it
/// was about (a discharged patient is no longer on the ward list) and who
/// resolved it ([`crate::Store::alerts_resolved_since`]).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResolvedAlert {
    #[serde(flatten)]
    pub alert: AlertRow,
    pub patient_name: String,
    pub nhs_number: String,
    /// The username on its `resolved` event, or `system`.
    pub resolved_by: String,
}

/// A note a clinician wrote on a patient's record (a call, advice, a plan);
/// notes are never edited or deleted ([`crate::Store::note_add`]).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NoteRow {
    pub id: i64,
    pub patient_id: i64,
    pub at: DateTime<Utc>,
    /// The username that wrote it.
    pub author: String,
    pub text: String,
}

/// A note with whom it is about, for the handover
/// ([`crate::Store::notes_since`]).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WardNote {
    #[serde(flatten)]
    pub note: NoteRow,
    pub ward_id: i64,
    pub patient_name: String,
    pub nhs_number: String,
}

/// An open stay's escalation plan as it was last recorded, reviewed or
/// cleared, with whom it is about: the handover's "plans recorded"
/// ([`crate::Store::plans_since`]).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WardPlan {
    pub patient_id: i64,
    pub ward_id: i64,
    pub patient_name: String,
    pub nhs_number: String,
    /// One of [`ESCALATION_PLANS`]; `None`: cleared, none recorded now.
    pub escalation_plan: Option<String>,
    pub escalation_note: Option<String>,
    /// Who recorded, reviewed or cleared it.
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

/// A follow-up a clinician asked for on a stay ("call back in an hour"):
/// at `due_at` Vigil puts a `follow-up` alert in the ward's queue
/// ([`crate::Store::follow_up_add`]).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FollowUp {
    pub id: i64,
    pub patient_id: i64,
    /// When it is put in the ward's alert queue.
    pub due_at: DateTime<Utc>,
    /// What for, in words (one line).
    pub reason: String,
    /// Who asked for it, and when.
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

/// A follow-up whose time has come, with its patient's ward
/// ([`crate::Store::follow_ups_due`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DueFollowUp {
    pub follow_up: FollowUp,
    pub ward_id: i64,
}

/// A pending follow-up with whom it is about: the handover's "due in the
/// next hours" ([`crate::Store::follow_ups_upcoming`]).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WardFollowUp {
    #[serde(flatten)]
    pub follow_up: FollowUp,
    pub ward_id: i64,
    pub patient_name: String,
    pub nhs_number: String,
}

/// The alert rule a follow-up raises.
pub const FOLLOW_UP_RULE: &str = "follow-up";

/// One firing of a batch ([`crate::Store::alert_fire_many`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchFiring {
    pub firing: AlertFiring,
    /// Change the live alert for this patient and rule, never raise one:
    /// the engine repeating an alert that a nurse has resolved since must
    /// not open it again.
    pub update_only: bool,
}

/// What happened to a firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FiringOutcome {
    Raised,
    Updated,
    /// A reading older than the live alert's latest evidence: nothing changed.
    Superseded,
}

/// A clinician's (or the escalation timer's) action on an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertAction {
    Acknowledge,
    Escalate,
    Resolve { outcome: String, note: String },
}

/// One row of the alert trail as the webhook reads it, in id order
/// ([`crate::Store::alert_events_after`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEventRef {
    pub id: i64,
    pub alert_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertEventRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: serde_json::Value,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub user_id: Option<i64>,
    pub username: String,
    /// What was done, e.g. `patient.read`, `alert.acknowledge`, `login.failed`.
    pub action: String,
    pub patient_id: Option<i64>,
    pub detail: serde_json::Value,
    /// The client address.
    pub addr: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditQuery {
    pub patient_id: Option<i64>,
    pub user_id: Option<i64>,
    /// Only what these wards' admins may read (`None`: everything): entries
    /// about these wards' patients, and entries about no patient made by
    /// someone on one of these wards, or by nobody signed in (a failed
    /// sign-in, `vigil admin` on the server).
    pub wards: Option<Vec<i64>>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
}

/// A clinician's action on an alert, forwarded to the rules engine so its
/// view of the rule's state matches the store's.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleAction {
    pub patient_id: i64,
    pub rule_id: String,
    pub action: AlertAction,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// A reading a clinician entered (`POST /api/v1/patients/{id}/observations`),
/// validated, for the ingest to store as it stores a device's message: in
/// the intake's own turn, so the worker takes it up as it takes a device's
/// (scored, rules, alerts; after a crash, from the store).
#[derive(Debug)]
pub struct EnteredReading {
    pub patient_id: i64,
    pub ward_id: i64,
    /// `vigil_clinical::entered_source(username)`.
    pub source: String,
    pub measured_at: DateTime<Utc>,
    pub obs: Vec<NewObservation>,
    /// The stored observations' ids, in `obs` order; `None` if the store
    /// failed (the commit may have happened all the same).
    pub done: tokio::sync::oneshot::Sender<Option<Vec<i64>>>,
}

/// Kinds of history with a retention setting (ECG has its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryKind {
    /// Observations and their messages' dedup keys, by measurement time.
    Observations,
    /// Score history, by the time each score describes.
    Scores,
}

/// One patient's readings for scoring over a span (see
/// [`crate::Store::readings_for_scoring`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoringReads {
    /// The newest of each code at the start of the span.
    pub base: Vec<ObservationRow>,
    /// Everything measured in the span, start and end included.
    pub later: Vec<ObservationRow>,
}

/// One stay on a ward, for its activity report ([`crate::Store::ward_stays`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Stay {
    pub admitted_at: DateTime<Utc>,
    pub discharged_at: Option<DateTime<Utc>>,
}

/// One alert's course, for a ward's activity report
/// ([`crate::Store::ward_alert_courses`]): when Vigil raised it (the
/// trail's time, not the reading's), its severity now (the highest it
/// reached), when it was first acknowledged and first escalated, whether
/// the timer escalated it, and how it was resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertCourse {
    pub severity: String,
    pub raised: DateTime<Utc>,
    pub acknowledged: Option<DateTime<Utc>>,
    pub escalated: Option<DateTime<Utc>>,
    pub escalated_by_timer: bool,
    pub resolved: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
}

/// A provider's logout token, checked: what [`crate::Store::sso_logout`]
/// takes.
#[derive(Clone, Debug)]
pub struct SsoLogout<'a> {
    /// The token's id: taken once.
    pub jti: &'a str,
    /// Until when it is remembered (when the token would expire).
    pub expires_at: DateTime<Utc>,
    pub sub: Option<&'a str>,
    pub sid: Option<&'a str>,
    /// How many tokens, not yet expired, are remembered at most: beyond it
    /// a new one is refused until some expire (a flood cannot grow the
    /// table without bound).
    pub remembered_at_most: i64,
}

/// What [`crate::Store::sso_logout`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SsoLogoutOutcome {
    /// The token was new: the accounts of the sessions revoked, one entry a
    /// session (none, if none was live).
    Ended(Vec<i64>),
    /// The token was taken before: nothing ended.
    TakenAlready,
    /// As many unexpired tokens are remembered as may be: nothing ended.
    TooMany,
}
