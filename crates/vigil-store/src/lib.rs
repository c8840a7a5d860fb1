//! Persistence for Vigil.
//!
//! The rest of the system talks to storage only through the [`Store`] trait,
//! which speaks in domain records ([`model`]) and domain errors
//! ([`StoreError`]); no `sqlx` type crosses it. Two adapters implement it
//! with the same semantics: SQLite ([`SqliteStore`], the default) and
//! PostgreSQL ([`PgStore`]); [`connect`] picks one by URL scheme, and one
//! test suite (`tests/suite.rs`) runs against both.
//!
//! The one write that matters most is [`Store::store_obs_batch`]: it commits a
//! batch of device messages in one transaction and reports, per message,
//! whether it was new or a duplicate of an already stored `(device, seq)`.
//! The ingest sends its end-to-end acks only after that call returns `Ok`.
//!
//! # Layout
//! - [`model`]: the records the trait reads and writes.
//! - [`error`]: the store's error type.
//! - [`sqlite`]: the SQLite adapter (WAL mode, migrations from `migrations/sqlite`).
//! - [`postgres`]: the PostgreSQL adapter (migrations from `migrations/postgres`).
//! - [`scoring`]: stored readings and episode → vigil-clinical's home NEWS2.
//! - [`secrets`]: random secrets, ids and their hashed stored form.
//! - [`downsample`]: keeping a long series' extremes within `max_points`.

pub mod downsample;
pub mod error;
pub mod live;
pub mod model;
pub mod nhs;
pub mod pg_url;
pub mod postgres;
pub mod scoring;
pub mod secrets;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use error::StoreError;

pub use live::LiveHub;
pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The refusal of an admission whose NHS number is admitted already, as
/// patient `other` ([`Store::patient_admit`]).
pub fn already_admitted(other: i64) -> StoreError {
    StoreError::Conflict(format!(
        "nhs_number: already admitted as patient {other}; discharge them first"
    ))
}

/// Why [`Store::device_claim`] did not assign `device_id`: looked up after
/// its one statement changed nothing, so it says what was the case then.
pub(crate) fn claim_refused(
    device: Option<(Option<i64>, bool)>,
    device_id: &str,
    patient_id: i64,
) -> StoreError {
    match device {
        None => StoreError::NotFound(format!("device {device_id}")),
        Some((_, true)) => StoreError::Conflict(format!("device: {device_id} is revoked")),
        Some((Some(_), false)) => StoreError::Conflict(format!(
            "device: {device_id} is assigned to a patient; it is free once they are discharged"
        )),
        Some((None, false)) => {
            StoreError::NotFound(format!("open episode for patient {patient_id}"))
        }
    }
}

/// [`Store::usernames_folded`]'s statement, for both backends (`$1` is a
/// parameter to SQLite too). `lower()` folds ASCII on SQLite and every
/// letter on PostgreSQL; usernames of a provider's accounts (UPNs, email
/// addresses) are ASCII.
pub(crate) const USERNAMES_FOLDED: &str =
    "SELECT username FROM users WHERE lower(username) = lower($1)";

/// [`Store::devices_list`]'s columns, the same on both backends: the
/// newest message of each kind by the device's counter (one step down each
/// table's `(device_id, seq)` key, never a scan), then its last status.
pub(crate) const DEVICES_SELECT: &str = "SELECT d.id, d.kind, d.patient_id, p.ward_id, d.created_at, d.revoked_at,
        (SELECT m.received_at FROM obs_messages m WHERE m.device_id = d.id ORDER BY m.seq DESC LIMIT 1),
        (SELECT c.received_at FROM ecg_chunks c WHERE c.device_id = d.id ORDER BY c.seq DESC LIMIT 1),
        s.online, s.battery_pct, s.signal, s.fw, s.reported_at
     FROM devices d LEFT JOIN patients p ON p.id = d.patient_id
     LEFT JOIN device_status s ON s.device_id = d.id";

/// [`Store::devices_list`]'s statement for `query`, by device id. Its one
/// parameter, if any, is `$1`, which both backends read as the first.
pub(crate) fn devices_list_sql(query: DeviceQuery<'_>) -> String {
    let filter = match query {
        DeviceQuery::All => "",
        DeviceQuery::Unassigned => " WHERE d.patient_id IS NULL",
        DeviceQuery::Ward(_) => " WHERE p.ward_id = $1",
        DeviceQuery::One(_) => " WHERE d.id = $1",
    };
    format!("{DEVICES_SELECT}{filter} ORDER BY d.id")
}

/// Why [`Store::device_unassign`] of `device_id` from `patient_id` changed
/// nothing, given the device's patient now (`None`: no such device).
pub(crate) fn unassign_refused(
    device: Option<Option<i64>>,
    device_id: &str,
    patient_id: i64,
) -> StoreError {
    match device {
        None => StoreError::NotFound(format!("device {device_id}")),
        Some(None) => StoreError::Conflict(format!("device: {device_id} is no one's now")),
        Some(Some(_)) => StoreError::Conflict(format!(
            "device: {device_id} is not patient {patient_id}'s now"
        )),
    }
}

/// Why [`Store::device_revoke_held`] revoked nothing, from the device's
/// row as it is now: `(patient, revoked)`, or `None` for no such device.
pub(crate) fn revoke_refused(
    device: Option<(Option<i64>, bool)>,
    device_id: &str,
    held_by: Option<i64>,
) -> StoreError {
    match device {
        None | Some((_, true)) => StoreError::NotFound(format!("active device {device_id}")),
        Some((now, false)) => StoreError::Conflict(format!(
            "device: {device_id} is {} now, not {}",
            now.map_or("no one's".to_string(), |p| format!("patient {p}'s")),
            held_by.map_or("no one's".to_string(), |p| format!("patient {p}'s")),
        )),
    }
}

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Rows a chart's series is read in at a time ([`reduce_in_runs`]).
const HISTORY_RUN: i64 = 5_000;

/// A series of `total` rows from `page` on, read by `read` a run of
/// `page.limit` at a time (keyset on time then id, so a run may end
/// part-way through an instant) and reduced to `max_points` as it is read:
/// only a run and each bucket's extremes are ever held.
async fn reduce_in_runs<T, F, Fut>(
    mut page: HistoryPage,
    total: i64,
    max_points: usize,
    mut read: F,
) -> Result<Vec<T>>
where
    T: downsample::Sample,
    F: FnMut(HistoryPage) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut series =
        downsample::MinMax::new(usize::try_from(total).unwrap_or(usize::MAX), max_points);
    loop {
        let run = read(page).await?;
        let next = page.after(&run);
        for r in run {
            series.push(r);
        }
        match next {
            Some(p) => page = p,
            None => break,
        }
    }
    Ok(series.finish())
}

/// Everything Vigil persists. Implementations must be safe to share between
/// tasks and processes (`vigil admin` writes while `vigil serve` runs).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Check the database answers (used by `/readyz`).
    async fn ping(&self) -> Result<()>;

    // --- wards and users -------------------------------------------------
    async fn ward_add(&self, name: &str) -> Result<Ward>;
    /// Find a ward by numeric id or by exact name.
    async fn ward_find(&self, name_or_id: &str) -> Result<Option<Ward>>;
    async fn user_add(&self, user: NewUser) -> Result<i64>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>>;
    /// The usernames equal to `username` but for ASCII case (an identity
    /// provider's `Jane.Doe@NHS.net` for the account `jane.doe@nhs.net`),
    /// in no particular order.
    async fn usernames_folded(&self, username: &str) -> Result<Vec<String>>;
    /// Every account, by username, with its wards and whether it is disabled.
    async fn users_list(&self) -> Result<Vec<UserRecord>>;
    /// Disable an account (a leaver) at `at` and revoke its live sessions
    /// and API tokens, in one transaction; [`StoreError::NotFound`] for an
    /// unknown username. Disabling a disabled account keeps its first time.
    async fn user_disable(&self, username: &str, at: DateTime<Utc>) -> Result<CredentialsEnded>;
    /// Enable a disabled account again (its old credentials stay revoked).
    async fn user_enable(&self, username: &str) -> Result<()>;
    /// Give an account exactly these wards, in one transaction (the ones
    /// it had and is not given are taken away); [`StoreError::NotFound`]
    /// for an unknown username. Its credentials see the new set at their
    /// next use: a request, or an open stream's re-check.
    async fn user_set_wards(&self, username: &str, ward_ids: &[i64]) -> Result<()>;
    /// Give an account another role, and end its sessions at `at` in the
    /// same transaction, so its dashboards sign in again as what it now is
    /// (its API tokens act with the new role from their next request). The
    /// role it already has changes nothing and ends nothing;
    /// [`StoreError::NotFound`] for an unknown username.
    async fn user_set_role(
        &self,
        username: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<CredentialsEnded>;
    /// Set an account's password hash and revoke its live sessions (API
    /// tokens are credentials of their own and stay), in one transaction.
    async fn user_set_password(
        &self,
        username: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<CredentialsEnded>;

    // --- tokens (sessions and API bearer tokens, stored hashed) ----------
    async fn token_insert(&self, token: NewToken) -> Result<()>;
    /// The user behind an unexpired, unrevoked token hash. A session token
    /// unused for longer than `session_idle` has expired too; a live one is
    /// marked used at `now`.
    async fn token_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        session_idle: chrono::Duration,
    ) -> Result<Option<AuthUser>>;
    /// Revoke a token; `false` when no such live token exists.
    async fn token_revoke(&self, token_hash: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Take a provider's logout token and end what it names, in one
    /// transaction: the token's `jti` is remembered until `expires_at`
    /// (those past it forgotten first), and the live sessions begun through
    /// single sign-on that it names are revoked: those of its sign-in `sid`
    /// (of subject `sub` too, when given), or, with no `sid`, every one of
    /// subject `sub`. A `jti` remembered already ends nothing
    /// ([`SsoLogoutOutcome::TakenAlready`], whichever instance took it, and
    /// across restarts); so does a full memory
    /// ([`SsoLogoutOutcome::TooMany`]).
    async fn sso_logout(
        &self,
        token: &SsoLogout<'_>,
        now: DateTime<Utc>,
    ) -> Result<SsoLogoutOutcome>;

    // --- patients and episodes -------------------------------------------
    /// Admit a patient: open an episode on the record of the person with
    /// this NHS number on this ward, if they were discharged from it
    /// before (their name as now given; their readings, scores and alerts
    /// are theirs again to see), else on a new record. Refused with
    /// [`StoreError::Conflict`] ([`already_admitted`]) while a patient with
    /// the same NHS number has an open episode on any ward: one person
    /// admitted twice would have their readings, scores and alerts split
    /// between two records, each scoring part of them (hazard TS-22).
    async fn patient_admit(&self, p: NewPatient) -> Result<Admission>;
    /// Close the patient's open episode, unassign their devices, and
    /// resolve their live alerts (outcome [`DISCHARGED`], by `actor`, each
    /// with its audit event), all in one transaction: a discharged patient
    /// leaves nothing in the ward's queue and nothing to escalate.
    async fn patient_discharge(
        &self,
        patient_id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Discharge>;
    /// The patient with every episode of their record ([`PatientDetail::episodes`]).
    async fn patient_get(&self, patient_id: i64) -> Result<Option<PatientDetail>>;
    /// Patients with an open episode on any of `ward_ids`, with their latest readings.
    async fn patients_list(&self, ward_ids: &[i64]) -> Result<Vec<PatientSummary>>;
    /// Patients on any of `ward_ids` discharged at or after `since` and not
    /// admitted again, each with their latest stay; the latest discharge first.
    async fn patients_discharged(
        &self,
        ward_ids: &[i64],
        since: DateTime<Utc>,
    ) -> Result<Vec<DischargedPatient>>;

    /// Every stay on `ward_id` that overlaps `[from, to]`: admitted by
    /// `to`, and not discharged before `from`; the earliest admission first.
    async fn ward_stays(
        &self,
        ward_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Stay>>;

    // --- devices -----------------------------------------------------------
    async fn device_provision(&self, d: NewDevice) -> Result<()>;
    async fn device_assign(&self, device_id: &str, patient_id: i64) -> Result<()>;
    /// Assign a device that is no one's now (a kit returned at a discharge,
    /// or new) to `patient_id`, who must have an open episode; checked and
    /// done in one statement, so two claims of one device cannot both
    /// succeed. Unlike [`Store::device_assign`] (`vigil admin device
    /// assign`, which moves a device), a device in use is left where it is:
    /// [`StoreError::Conflict`] if it is revoked or assigned,
    /// [`StoreError::NotFound`] if there is no such device or no open
    /// episode.
    async fn device_claim(&self, device_id: &str, patient_id: i64) -> Result<()>;
    async fn device_revoke(&self, device_id: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>>;
    /// [`Store::device_revoke`], only while the device is still `held_by`'s
    /// (`None`: no one's), as a caller saw it before asking: checked and done
    /// in one statement, so a device moved to another patient meanwhile is
    /// not revoked from under them ([`StoreError::Conflict`] naming where it
    /// is now). [`StoreError::NotFound`] if it is revoked already or there is
    /// no such device.
    async fn device_revoke_held(
        &self,
        device_id: &str,
        held_by: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;
    /// Take a device back from `patient_id` (a kit returned, or swapped
    /// for another, during the stay): it becomes no one's, free to be given
    /// to someone else, and readings it sends are no longer anyone's.
    /// Checked and done in one statement: [`StoreError::Conflict`] if the
    /// device is not that patient's now (moved, or already returned),
    /// [`StoreError::NotFound`] if there is no such device.
    async fn device_unassign(&self, device_id: &str, patient_id: i64) -> Result<()>;
    /// The devices `query` names, by id, each with its patient and ward,
    /// when it last sent, and its last status.
    async fn devices_list(&self, query: DeviceQuery<'_>) -> Result<Vec<DeviceListed>>;
    /// Credentials for the broker's CONNECT check.
    async fn device_credentials(&self, mqtt_username: &str) -> Result<Option<DeviceCredentials>>;
    /// Every unrevoked device's broker account, by device id (for
    /// `vigil admin mqtt export`).
    async fn mqtt_accounts(&self) -> Result<Vec<MqttAccount>>;
    /// Devices revoked at or after `since` (for dropping live sessions).
    async fn devices_revoked_since(&self, since: DateTime<Utc>) -> Result<Vec<String>>;
    /// The patient (and their ward) a device currently reports for, if any.
    async fn device_route(&self, device_id: &str) -> Result<Option<DeviceRoute>>;
    /// [`Store::device_route`] of many devices in one query (the ingest
    /// routes a whole batch at once); devices with no route are absent.
    async fn device_routes(
        &self,
        device_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, DeviceRoute>>;
    /// A number that changes whenever any device's route may have changed
    /// (a device provisioned, assigned, revoked or deleted; an episode
    /// opened or closed; a patient moved), by whatever process wrote it.
    /// Routes looked up after reading a value stay right until it changes.
    async fn route_generation(&self) -> Result<i64>;
    /// Replace the device's last status with `report` (shown with the
    /// device in [`Store::patient_get`]). `NotFound` for an unknown device.
    async fn device_status_record(
        &self,
        device_id: &str,
        report: &DeviceStatusReport,
    ) -> Result<()>;
    /// Record many `(device, report)` in one transaction, in order (a
    /// device's later report replaces its earlier one). Reports of unknown
    /// devices are skipped, not an error; returns how many were recorded.
    async fn device_status_record_many(
        &self,
        reports: &[(String, DeviceStatusReport)],
    ) -> Result<u64>;

    // --- ingest --------------------------------------------------------------
    /// Store a batch of validated messages in one transaction. Returns one
    /// outcome per input, in order. Nothing is visible until this returns `Ok`.
    /// ([`Store::store_uplink_batch`] with no ECG chunks.)
    async fn store_obs_batch(&self, batch: &[NewObsMessage]) -> Result<Vec<BatchOutcome>> {
        Ok(self.store_uplink_batch(batch, &[]).await?.0)
    }
    /// [`Store::store_obs_batch`] and [`Store::store_ecg_batch`] of one
    /// intake batch in one transaction: both stored, or neither. One commit
    /// (and, in SQLite, one turn of the single write lock) per batch instead
    /// of two.
    async fn store_uplink_batch(
        &self,
        obs: &[NewObsMessage],
        ecg: &[NewEcgChunk],
    ) -> Result<(Vec<BatchOutcome>, Vec<BatchOutcome>)>;
    /// [`Store::store_uplink_batch`] of messages and chunks routed under
    /// route generation `routes_at` ([`Store::route_generation`]). The
    /// transaction first checks that the generation is still `routes_at`,
    /// and stores nothing (returns `None`) if it moved; while it runs no
    /// route change can commit (SQLite: the write lock; PostgreSQL: the
    /// generation row is share-locked). So every route the batch used holds
    /// when it commits.
    async fn store_routed_batch(
        &self,
        routes_at: i64,
        obs: &[NewObsMessage],
        ecg: &[NewEcgChunk],
    ) -> Result<Option<(Vec<BatchOutcome>, Vec<BatchOutcome>)>>;
    /// Record a refused message in the dead-letter table.
    async fn store_rejected(&self, r: NewRejected) -> Result<()>;
    async fn observations(&self, q: ObservationQuery) -> Result<Vec<ObservationRow>>;
    /// At most `page.limit` of the patient's observations of `code` in the
    /// page's span, ordered by measurement time then id: one range of the
    /// (patient, code, time) index, however long the patient's history.
    async fn observations_page(
        &self,
        page: &HistoryPage,
        code: &str,
    ) -> Result<Vec<ObservationRow>>;
    /// How many of the patient's observations of `code` lie in the page's
    /// span (its `limit` and `after_id` aside).
    async fn observations_count(&self, page: &HistoryPage, code: &str) -> Result<i64>;
    /// The codes the patient has any observation of, in byte order.
    async fn observation_codes(&self, patient_id: i64) -> Result<Vec<String>>;
    /// [`Store::observations`] with `max_points`: each code's series in the
    /// span read a run at a time and reduced as it is read
    /// ([`downsample::MinMax`]), so a long series (a fortnight of a
    /// continuous oximeter) is never held whole in memory.
    async fn observations_downsampled(
        &self,
        q: &ObservationQuery,
        max_points: usize,
    ) -> Result<Vec<ObservationRow>> {
        let codes = match &q.code {
            Some(c) => vec![c.clone()],
            None => self.observation_codes(q.patient_id).await?,
        };
        let mut out = Vec::new();
        for code in codes {
            let page = HistoryPage::span(q.patient_id, q.from, q.to, HISTORY_RUN);
            let total = self.observations_count(&page, &code).await?;
            let code = code.as_str();
            out.extend(
                reduce_in_runs(page, total, max_points, |p| async move {
                    self.observations_page(&p, code).await
                })
                .await?,
            );
        }
        Ok(out)
    }
    /// One stored observation of the patient by its id.
    async fn observation_row(&self, patient_id: i64, id: i64) -> Result<Option<ObservationRow>>;
    /// The patient's observations of `codes` from one device message
    /// (`device_id`, `seq`) measured at `at`, by id: a blood pressure's
    /// halves, found without reading the rest of that instant.
    async fn message_observations(
        &self,
        patient_id: i64,
        at: DateTime<Utc>,
        device_id: &str,
        seq: u32,
        codes: &[&str],
    ) -> Result<Vec<ObservationRow>>;

    /// The newest observation of each code measured at or before `at`.
    async fn latest_per_code(
        &self,
        patient_id: i64,
        at: DateTime<Utc>,
    ) -> Result<Vec<ObservationRow>>;

    /// What scoring needs for many patients at once, of the given `codes`
    /// only: for each `(patient, first, last)`, [`Store::latest_per_code`]
    /// at `first`, and (when `last > first`) every observation measured
    /// from `first` to `last`, both included, ordered as
    /// [`Store::observations`] orders them. A patient with nothing stored
    /// (of those codes) is absent. This default asks once per patient; a
    /// backend may answer in one round trip.
    async fn readings_for_scoring(
        &self,
        spans: &[(i64, DateTime<Utc>, DateTime<Utc>)],
        codes: &[&str],
    ) -> Result<std::collections::HashMap<i64, ScoringReads>> {
        let mut out = std::collections::HashMap::new();
        let wanted = |rows: Vec<ObservationRow>| -> Vec<ObservationRow> {
            rows.into_iter()
                .filter(|r| codes.contains(&r.code.as_str()))
                .collect()
        };
        for &(patient_id, first, last) in spans {
            let base = wanted(self.latest_per_code(patient_id, first).await?);
            let later = if last > first {
                wanted(
                    self.observations(ObservationQuery {
                        patient_id,
                        code: None,
                        from: Some(first),
                        to: Some(last),
                        max_points: None,
                    })
                    .await?,
                )
            } else {
                Vec::new()
            };
            if !base.is_empty() || !later.is_empty() {
                out.insert(patient_id, ScoringReads { base, later });
            }
        }
        Ok(out)
    }

    // --- episodes and scores ----------------------------------------------
    /// NEWS2-relevant settings of the patient's open episode.
    async fn episode_settings(&self, patient_id: i64) -> Result<Option<EpisodeSettings>>;
    /// Every patient with an open episode, by id.
    async fn active_patients(&self) -> Result<Vec<i64>>;
    /// Every device assigned to a patient and not revoked: (patient,
    /// device), by patient then device. A revoked device is refused at
    /// CONNECT, so it is no longer a device the patient has to watch.
    async fn assigned_devices(&self) -> Result<Vec<(i64, String)>>;
    /// [`Store::episode_settings`] of many patients; a patient with no open
    /// episode is absent. This default asks once per patient; a backend may
    /// answer in one round trip.
    async fn episode_settings_many(
        &self,
        patient_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, EpisodeSettings>> {
        let mut out = std::collections::HashMap::new();
        for &p in patient_ids {
            if let Some(s) = self.episode_settings(p).await? {
                out.insert(p, s);
            }
        }
        Ok(out)
    }
    /// Apply a clinician's change to the open episode, recording who and when.
    async fn episode_update(
        &self,
        patient_id: i64,
        u: EpisodeUpdate,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
    async fn score_insert(&self, s: NewScore) -> Result<i64>;
    /// Insert many scores in one transaction (all or none).
    /// ([`Store::score_and_fire`] with no firings.)
    async fn score_insert_many(&self, rows: &[NewScore]) -> Result<()> {
        self.score_and_fire(rows, &[], Utc::now(), &PassProgress::default())
            .await
            .map(|_| ())
    }
    /// Score history, ordered by the time each score describes.
    async fn scores(
        &self,
        patient_id: i64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<ScoreRow>> {
        self.scores_page(&HistoryPage::span(patient_id, from, to, i64::MAX))
            .await
    }
    /// At most `page.limit` of the patient's scores in the page's span,
    /// ordered by the time each describes, then id.
    async fn scores_page(&self, page: &HistoryPage) -> Result<Vec<ScoreRow>>;
    /// How many of the patient's scores lie in the page's span (its
    /// `limit` and `after_id` aside).
    async fn scores_count(&self, page: &HistoryPage) -> Result<i64>;
    /// [`Store::scores_page`] without each score's detail: what a chart
    /// reduces, at a fraction of the cost of reading whole rows.
    async fn score_levels_page(&self, page: &HistoryPage) -> Result<Vec<ScoreLevel>>;
    /// The patient's scores of these ids, ordered by the time each
    /// describes, then id (ids not the patient's are left out).
    async fn scores_by_id(&self, patient_id: i64, ids: &[i64]) -> Result<Vec<ScoreRow>>;
    /// The newest `limit` of the patient's scores in `[from, to]`, in time
    /// order: one range of the (patient, time) index read backwards.
    async fn scores_newest(
        &self,
        patient_id: i64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<ScoreRow>>;
    /// [`Store::scores`] within `max_points`: read a run at a time and
    /// reduced as it is read, each stretch keeping its lowest and highest
    /// total ([`downsample::MinMax`]), so a score per reading of a
    /// continuous oximeter over a whole episode is never held whole. The
    /// runs read only each score's time and total; the scores kept are then
    /// read whole.
    async fn scores_downsampled(
        &self,
        patient_id: i64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        max_points: usize,
    ) -> Result<Vec<ScoreRow>> {
        let page = HistoryPage::span(patient_id, from, to, HISTORY_RUN);
        let total = self.scores_count(&page).await?;
        let kept = reduce_in_runs(page, total, max_points, |p| async move {
            self.score_levels_page(&p).await
        })
        .await?;
        let ids: Vec<i64> = kept.iter().map(|l| l.id).collect();
        self.scores_by_id(patient_id, &ids).await
    }
    /// One stored score of the patient by its id.
    async fn score_row(&self, patient_id: i64, id: i64) -> Result<Option<ScoreRow>>;
    /// The measurement time of the patient's newest score, if any.
    async fn latest_score_time(&self, patient_id: i64) -> Result<Option<DateTime<Utc>>>;
    /// For each `(patient, since)`, the stored score the ward list compares
    /// the patient's score now with: the newest measured at or before
    /// `then`, else the first; either way none measured before `since`
    /// (the end of the patient's earlier stay, if any). In one statement
    /// for the whole list (two index seeks a patient); patients with no
    /// such score are left out, the rest in no set order.
    async fn scores_earlier(
        &self,
        patients: &[(i64, Option<DateTime<Utc>>)],
        then: DateTime<Utc>,
    ) -> Result<Vec<(i64, EarlierScore)>>;

    // --- ECG -------------------------------------------------------------
    /// Store ECG chunks in one transaction; duplicates of `(device, seq)` are
    /// reported and not written. Acks follow only an `Ok`.
    /// ([`Store::store_uplink_batch`] with no messages.)
    async fn store_ecg_batch(&self, batch: &[NewEcgChunk]) -> Result<Vec<BatchOutcome>> {
        Ok(self.store_uplink_batch(&[], batch).await?.1)
    }
    /// Store what ECG analysis found in a worker pass in one transaction,
    /// both or neither: detected beats of any number of patches
    /// (idempotent per `(device, t_ms)`) and the observations derived from
    /// them (the heart rates); returns the observations' ids in the order
    /// given. One turn of the write lock, not two (docs/benchmarks.md).
    async fn store_ecg_results(
        &self,
        sets: &[PatchBeats],
        derived: &[NewDerivedObservation],
    ) -> Result<Vec<i64>>;
    /// Store detected beats ([`Store::store_ecg_results`] with no observations).
    async fn store_beats(&self, sets: &[PatchBeats]) -> Result<()> {
        self.store_ecg_results(sets, &[]).await.map(|_| ())
    }
    /// Store observations derived on the server in one transaction; their
    /// ids in the order given ([`Store::store_ecg_results`] with no beats).
    async fn store_derived(&self, obs: &[NewDerivedObservation]) -> Result<Vec<i64>> {
        self.store_ecg_results(&[], obs).await
    }
    /// Chunks overlapping `[from_ms, to_ms]` and beats within it.
    async fn ecg_range(
        &self,
        patient_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(Vec<EcgChunkRow>, Vec<BeatRow>)>;
    /// Delete `kind` history older than `before`; returns rows deleted.
    async fn delete_history_before(&self, kind: HistoryKind, before: DateTime<Utc>) -> Result<u64>;
    /// Delete ECG chunks and beats older than `before_ms`; returns chunks deleted.
    async fn ecg_delete_before(&self, before_ms: i64) -> Result<u64>;

    // --- alerts ------------------------------------------------------------
    /// Raise an alert, or update the live one for this patient and rule
    /// (count, latest value, severity only upwards), in one transaction,
    /// recording the event as `system`. `NotFound` if there is no live
    /// alert and the patient has no open episode.
    async fn alert_fire(
        &self,
        f: AlertFiring,
        now: DateTime<Utc>,
    ) -> Result<(AlertRow, FiringOutcome)> {
        let patient_id = f.patient_id;
        let mut out = self
            .alert_fire_many(
                &[BatchFiring {
                    firing: f,
                    update_only: false,
                }],
                now,
            )
            .await?;
        // Not `update_only`: no answer means the patient has no open episode.
        out.pop()
            .flatten()
            .ok_or_else(|| StoreError::NotFound(format!("open episode for patient {patient_id}")))
    }
    /// [`Store::alert_fire`] for several firings in one transaction, each
    /// seeing the ones before it (a raise then a repeat of the same rule
    /// make one alert with count 2). The answer is in the firings' order:
    /// the alert as that firing left it, or `None` for an `update_only`
    /// firing with no live alert, or for a firing that would raise an alert
    /// for a patient with no open episode (discharged: nothing new is
    /// raised for them). All or nothing: on an error none is stored.
    /// ([`Store::score_and_fire`] with no scores.)
    async fn alert_fire_many(
        &self,
        firings: &[BatchFiring],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<(AlertRow, FiringOutcome)>>> {
        self.score_and_fire(&[], firings, now, &PassProgress::default())
            .await
    }
    /// A scoring pass's writes in one transaction, all or nothing: its
    /// scores ([`Store::score_insert_many`]), then its alert firings
    /// ([`Store::alert_fire_many`], answered the same way). One commit, and
    /// in SQLite one turn of the single write lock, instead of two. The
    /// worker's `progress` moves up to what the pass names in the same
    /// transaction ([`Store::set_worker_progress`]): the pass is done
    /// exactly when its scores and alerts are stored.
    async fn score_and_fire(
        &self,
        scores: &[NewScore],
        firings: &[BatchFiring],
        now: DateTime<Utc>,
        progress: &PassProgress,
    ) -> Result<Vec<Option<(AlertRow, FiringOutcome)>>>;
    /// How far the scoring worker has got: every observation of an uplink
    /// message with an id at or below this has been through a worker pass
    /// (migration 0010).
    async fn worker_progress(&self) -> Result<i64>;
    /// Move the worker's progress up to what `progress` names; never down.
    async fn set_worker_progress(&self, progress: &PassProgress) -> Result<()>;
    /// Stored ECG chunks no worker pass has analysed: each patch's chunks
    /// above its ECG progress (all of them for a patch with none; migration
    /// 0013), by device then seq, after `after` (a device and seq) and at
    /// most `limit`, for the worker to analyse at start.
    async fn ecg_unanalysed(
        &self,
        after: Option<(&str, u32)>,
        limit: i64,
    ) -> Result<Vec<UnanalysedChunk>>;
    /// The observations of uplink messages (not the heart rates the worker
    /// derives from ECG) with an id above `after`, by id, at most `limit`,
    /// each with its patient: what the intake stored that no worker pass
    /// has finished, for the worker to take up at start.
    async fn observations_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, ObservationRow)>>;
    /// Apply a lifecycle action; `Conflict` if the alert's state forbids it.
    async fn alert_act(
        &self,
        alert_id: i64,
        action: AlertAction,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<AlertRow>;
    async fn alert_get(&self, alert_id: i64) -> Result<Option<AlertRow>>;
    async fn alerts_list(
        &self,
        ward_ids: &[i64],
        status: Option<AlertStatus>,
        patient_id: Option<i64>,
    ) -> Result<Vec<AlertRow>>;
    /// The rules with a live (not resolved) alert, for each of many
    /// patients in one read; a patient with none is absent. The ingest asks
    /// this once a pass for the patients whose scores may raise a NEWS2
    /// alert, where one `alerts_list` per score was a round trip each.
    async fn live_alert_rules(
        &self,
        patient_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Vec<String>>>;
    /// Open alerts whose escalation time has come.
    /// Alerts on any of `ward_ids` resolved at or after `since`, the latest
    /// resolution first, each with its patient's name and NHS number and
    /// who resolved it: a handover's "resolved in the last 12 hours".
    async fn alerts_resolved_since(
        &self,
        ward_ids: &[i64],
        since: DateTime<Utc>,
    ) -> Result<Vec<ResolvedAlert>>;
    async fn alerts_due(&self, now: DateTime<Utc>) -> Result<Vec<AlertRow>>;
    /// The course of every alert on `ward_id` that Vigil raised in
    /// `[from, to]` (by its `raised` event), oldest first.
    async fn ward_alert_courses(
        &self,
        ward_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AlertCourse>>;
    async fn alert_events(&self, alert_id: i64) -> Result<Vec<AlertEventRow>>;
    /// The alert trail's rows with an id above `after`, in id order, at
    /// most `limit` (for the webhook, which follows the trail).
    async fn alert_events_after(&self, after: i64, limit: i64) -> Result<Vec<AlertEventRef>>;
    /// How far the webhook has got ([`AlertEventRef::id`]); the first call
    /// on a database where it never ran records the newest event's id (0
    /// if none) and answers that.
    async fn notify_progress(&self) -> Result<i64>;
    /// Record that every event up to `event_id` is done with (progress
    /// only moves forward: a lower id changes nothing).
    async fn set_notify_progress(&self, event_id: i64) -> Result<()>;
    /// Hold the webhook's lease as `holder` until `lapse` from now, on the
    /// database's clock: taken if no one holds it, if its holder's lapsed,
    /// or if `holder` has it already. `true` if `holder` holds it now. Needs
    /// [`Store::notify_progress`] to have run once (its row holds the lease).
    async fn notify_lease(&self, holder: &str, lapse: std::time::Duration) -> Result<bool>;
    /// Give the lease up if `holder` has it, so another instance takes it
    /// at once.
    async fn notify_release(&self, holder: &str) -> Result<()>;

    // --- notes ----------------------------------------------------------------
    /// Append a clinician's note to a patient's record (never edited or
    /// deleted: the table refuses both).
    async fn note_add(
        &self,
        patient_id: i64,
        author: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<NoteRow>;
    /// A patient's notes, the newest first.
    async fn notes_list(&self, patient_id: i64) -> Result<Vec<NoteRow>>;
    /// Notes written at or after `since` on patients of any of `ward_ids`,
    /// the newest first, each with its patient: the handover's notes.
    async fn notes_since(&self, ward_ids: &[i64], since: DateTime<Utc>) -> Result<Vec<WardNote>>;
    /// The open stays on any of `ward_ids` whose escalation plan was
    /// recorded, reviewed or cleared at or after `since`, each as it is now
    /// (the last change only), the latest first: the handover's plans.
    async fn plans_since(&self, ward_ids: &[i64], since: DateTime<Utc>) -> Result<Vec<WardPlan>>;

    // --- follow-ups -----------------------------------------------------------
    /// Ask for a follow-up on the patient's open stay, due at `due_at`;
    /// `NotFound` if the patient has no open stay.
    async fn follow_up_add(
        &self,
        patient_id: i64,
        due_at: DateTime<Utc>,
        reason: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<FollowUp>;
    /// The open stay's follow-ups not yet put in the queue nor taken back,
    /// the earliest due first.
    async fn follow_ups_pending(&self, patient_id: i64) -> Result<Vec<FollowUp>>;
    /// Take a pending follow-up back; `NotFound` if it is not one of the
    /// patient's, `Conflict` if it is in the queue already or was taken
    /// back.
    async fn follow_up_cancel(
        &self,
        patient_id: i64,
        id: i64,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<FollowUp>;
    /// The pending follow-ups of open stays on any of `ward_ids` due at
    /// or before `until`, the earliest first, each with its patient: the
    /// calls a shift coming on inherits.
    async fn follow_ups_upcoming(
        &self,
        ward_ids: &[i64],
        until: DateTime<Utc>,
    ) -> Result<Vec<WardFollowUp>>;
    /// Pending follow-ups due at or before `now`, the earliest first, at
    /// most `limit`, each with its patient's ward.
    async fn follow_ups_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueFollowUp>>;
    /// Record that a follow-up was put in the queue as `alert_id` (`None`:
    /// its stay had ended, so nothing was raised); it is pending no more.
    async fn follow_up_raised(
        &self,
        id: i64,
        alert_id: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<()>;

    // --- audit ----------------------------------------------------------------
    /// Append to the audit trail (there is no update or delete).
    async fn audit_append(&self, e: AuditEntry) -> Result<()>;
    /// Failed sign-ins in the audit trail at or after `since`: for the
    /// account named `username` (only those after its latest successful
    /// sign-in), and from the address `addr`. The sign-in throttle's counts,
    /// the same for every instance sharing the database.
    async fn login_failures(
        &self,
        username: &str,
        addr: &str,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64)>;
    async fn audit_query(&self, q: AuditQuery) -> Result<Vec<AuditEntry>>;

    async fn stats(&self) -> Result<Stats>;
    /// Write a consistent copy of the whole database into `path`, an empty
    /// file the caller created (SQLite's `VACUUM INTO`: one read
    /// transaction, so the daemon goes on storing meanwhile); returns the
    /// bytes written. PostgreSQL: `Config`, naming its own tools.
    async fn backup_to(&self, path: &std::path::Path) -> Result<u64>;
    /// The sizes of the database's own files now, for `/metrics`: SQLite's
    /// database file and its WAL (`("db", bytes)`, `("wal", bytes)`; a file
    /// that cannot be read is left out). None for PostgreSQL, whose server
    /// is watched with its own tools.
    fn file_sizes(&self) -> Vec<(&'static str, u64)>;
}

/// Whether each of `keys` (device, seq), in order, was stored by a
/// deduplicating insert that returned `fresh`, the keys it wrote (in any
/// order): of a key the batch repeats, the first is the one stored.
fn stored_firsts<'a>(
    keys: impl Iterator<Item = (&'a str, u32)>,
    fresh: impl IntoIterator<Item = (String, i64)>,
) -> Vec<bool> {
    let mut fresh: std::collections::HashSet<(String, i64)> = fresh.into_iter().collect();
    keys.map(|(device, seq)| fresh.remove(&(device.to_string(), i64::from(seq))))
        .collect()
}

/// The outcome of each chunk of an ECG batch, from [`stored_firsts`].
fn chunk_outcomes(
    batch: &[NewEcgChunk],
    fresh: impl IntoIterator<Item = (String, i64)>,
) -> Vec<BatchOutcome> {
    stored_firsts(batch.iter().map(|c| (c.device_id.as_str(), c.seq)), fresh)
        .into_iter()
        .map(|stored| match stored {
            true => BatchOutcome::Stored {
                observation_ids: vec![],
            },
            false => BatchOutcome::Duplicate,
        })
        .collect()
}

/// The messages of a batch that a deduplicating insert stored, in order,
/// from [`stored_firsts`].
fn stored_messages(
    batch: &[NewObsMessage],
    fresh: impl IntoIterator<Item = (String, i64)>,
) -> Vec<&NewObsMessage> {
    let stored = stored_firsts(batch.iter().map(|m| (m.device_id.as_str(), m.seq)), fresh);
    batch
        .iter()
        .zip(stored)
        .filter(|(_, s)| *s)
        .map(|(m, _)| m)
        .collect()
}

/// The ids of observations inserted in one statement, in the order of
/// `rows` (message, observation), from what the statement returned: `(id,
/// device, seq, code)` in any order. Both backends hand out ids in
/// insertion order, but `RETURNING` promises no order, so the rows are
/// sorted by id and checked against what was asked: a mismatch is an error
/// (the batch is not stored, so not acked, so resent) rather than a value
/// pinned on the wrong reading (hazard TS-04).
fn ids_in_insert_order(
    mut back: Vec<(i64, String, i64, String)>,
    rows: &[(&NewObsMessage, &NewObservation)],
) -> Result<Vec<i64>> {
    back.sort_unstable_by_key(|r| r.0);
    let matches = back.len() == rows.len()
        && back.iter().zip(rows).all(|((_, d, seq, code), (m, o))| {
            *d == m.device_id && *seq == i64::from(m.seq) && *code == o.code
        });
    if !matches {
        return Err(StoreError::Conflict(
            "observation ids came back out of insertion order; batch not stored".into(),
        ));
    }
    Ok(back.into_iter().map(|r| r.0).collect())
}

/// A batch's outcomes in input order: `stored` are the messages stored
/// (a subsequence of `batch`, by reference), `ids` their observations' ids
/// in order.
fn batch_outcomes(
    batch: &[NewObsMessage],
    stored: Vec<&NewObsMessage>,
    ids: Vec<i64>,
) -> Vec<BatchOutcome> {
    let mut ids = ids.into_iter();
    let mut stored = stored.into_iter().peekable();
    batch
        .iter()
        .map(|m| match stored.next_if(|s| std::ptr::eq(*s, m)) {
            Some(_) => BatchOutcome::Stored {
                observation_ids: ids.by_ref().take(m.obs.len()).collect(),
            },
            None => BatchOutcome::Duplicate,
        })
        .collect()
}

/// The `alert_events` row a firing appends, if any: its action and detail.
/// Raising an alert and raising its severity are events; a plain repeat
/// (the rule firing again at the same or a lower severity) is not. It
/// changes only the alert's `count`, latest value, evidence and
/// `updated_at`, and is still pushed as an `alert_update`. The trail stays
/// what people and timers did to the alert, and what made it worse
/// (docs/alerts.md "The audit trail"). With a row per repeat, a patient on
/// a 1 Hz oximeter with a live alert would add 86,400 rows a day to a table
/// that refuses deletes (hazard AL-16).
fn firing_event(
    f: &AlertFiring,
    outcome: FiringOutcome,
    raised_from: Option<Severity>,
) -> Option<(&'static str, serde_json::Value)> {
    let detail = |extra: Option<Severity>| {
        let mut d = serde_json::json!({"severity": f.severity, "value": f.value, "evidence": f.evidence, "measured_at": f.at});
        if let Some(from) = extra {
            d["previous_severity"] = serde_json::json!(from);
        }
        d
    };
    match (outcome, raised_from) {
        (FiringOutcome::Raised, _) => Some(("raised", detail(None))),
        (FiringOutcome::Updated, Some(from)) => Some(("updated", detail(Some(from)))),
        (FiringOutcome::Updated, None) | (FiringOutcome::Superseded, _) => None,
    }
}

/// [`Store::mqtt_accounts`] in SQL both backends run.
const MQTT_ACCOUNTS_SQL: &str =
    "SELECT id, mqtt_username, mosquitto_hash FROM devices WHERE revoked_at IS NULL ORDER BY id";

/// Why `database.max_connections` is refused with SQLite.
pub const SQLITE_POOL: &str =
    "database.max_connections: PostgreSQL only (SQLite's pool is fixed: it has one writer)";

/// Open the store named by a database URL (`sqlite://path` or
/// `postgres://user@host/db`), applying its migrations.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    connect_with(url, None).await
}

/// [`connect`], with at most `max_connections` open to a PostgreSQL
/// server (`None`: the default, 10). SQLite's pool is fixed (it has one
/// writer), so there it must be `None`.
pub async fn connect_with(
    url: &str,
    max_connections: Option<u32>,
) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        if max_connections.is_some() {
            return Err(StoreError::Config(SQLITE_POOL.into()));
        }
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::connect_postgres(url, max_connections).await
    } else {
        Err(StoreError::Config(format!(
            "database.url: unsupported scheme in {:?} (this build supports sqlite:// and postgres://)",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
