//! The PostgreSQL adapter: the same [`Store`] as [`SqliteStore`](crate::SqliteStore),
//! in PostgreSQL's own dialect (docs/decisions/0004-postgres.md).
//!
//! Semantics match the SQLite adapter exactly, and one test suite
//! (`tests/suite.rs`) runs against both. Times are `timestamptz`, truncated
//! to the millisecond on the way in, as SQLite's RFC 3339 text is, so a
//! reading reads back identically from either backend. JSON goes in as text
//! cast to `jsonb` and comes back as text, so the crate needs no sqlx JSON
//! feature; id lists are `bigint[]`.
//!
//! A batch of device messages is one transaction, and deduplication is the
//! `(device_id, seq)` primary key with `ON CONFLICT DO NOTHING`: a concurrent
//! writer of the same key waits for the first to commit and then sees a
//! duplicate, so several `vigil serve` instances can share one database.

use std::collections::HashMap;
use std::ops::Bound;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::model::*;
use crate::{Result, Store, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections per process unless `database.max_connections` says
/// otherwise. Ingest holds one for a batch transaction, the worker one for
/// its pass, the web layer a few for reads; PostgreSQL's default limit is
/// 100, which leaves room for several instances and `vigil admin`.
pub const MAX_CONNECTIONS: u32 = 10;

/// PostgreSQL-backed [`Store`].
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

/// Open the store at a `postgres://` (or `postgresql://`) URL, applying
/// migrations. `connect()` in lib.rs dispatches here.
pub async fn connect_postgres(
    url: &str,
    max_connections: Option<u32>,
) -> Result<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(
        PgStore::connect_with(url, max_connections).await?,
    ))
}

/// The stored form of a time: millisecond precision, as in SQLite.
fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// A device's last status from the five columns from `i` (`online`,
/// `battery_pct`, `signal`, `fw`, `reported_at` of `device_status`, joined
/// so that all are NULL when it never sent one).
fn status_at(r: &sqlx::postgres::PgRow, i: usize) -> Option<DeviceStatusReport> {
    r.get::<Option<DateTime<Utc>>, _>(i + 4)
        .map(|reported_at| DeviceStatusReport {
            online: r.get(i),
            battery_pct: r
                .get::<Option<i16>, _>(i + 1)
                .and_then(|b| u8::try_from(b).ok()),
            signal: r.get(i + 2),
            fw: r.get(i + 3),
            reported_at,
        })
}

fn value_of(num: Option<f64>, text: Option<String>) -> ObsValue {
    match (num, text) {
        (Some(n), _) => ObsValue::Number(n),
        (None, Some(t)) => ObsValue::Text(t),
        (None, None) => ObsValue::Text(String::new()),
    }
}

fn split_value(v: &ObsValue) -> (Option<f64>, Option<&str>) {
    match v {
        ObsValue::Number(n) => (Some(*n), None),
        ObsValue::Text(t) => (None, Some(t.as_str())),
    }
}

fn json_of(text: Option<String>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn role_of(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Backend(format!("bad role {s}")))
}

const OBS_COLUMNS: &str =
    "id, code, value_num, value_text, unit, measured_at, received_at, device_id, seq";

/// The indices of `keys` sorted by `(device, seq)`; equal keys keep their
/// input order. Batches insert in this order so that two instances writing
/// overlapping batches lock the dedup keys in the same order and cannot
/// deadlock; outcomes are still reported in input order.
fn lock_order<'a>(keys: impl Iterator<Item = (&'a str, u32)>) -> Vec<usize> {
    let keys: Vec<_> = keys.collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| keys[i]);
    order
}

/// The newest row of each code for each patient in `$1`, measured at or
/// before `$2` (NULL: no bound); ties go to the higher id, as in SQLite.
/// Columns: [`OBS_COLUMNS`], then the patient id.
///
/// `DISTINCT ON (code)` would read every row of the patient's history, one
/// heap page per row because rows of many patients interleave in time order
/// (2.7 s for 52k rows; docs/decisions/0004-postgres.md). Instead a
/// recursive CTE skips through the index from one code to the next, and a
/// `LIMIT 1` backward index scan per code finds its newest row: a handful of
/// index probes however long the history (0.5 ms).
fn latest_sql() -> String {
    format!(
        "WITH RECURSIVE codes(patient_id, code) AS (
            SELECT p.id, (SELECT o.code FROM observations o WHERE o.patient_id = p.id ORDER BY o.code LIMIT 1)
            FROM unnest($1::bigint[]) AS p(id)
          UNION ALL
            SELECT c.patient_id,
                   (SELECT o.code FROM observations o
                    WHERE o.patient_id = c.patient_id AND o.code > c.code ORDER BY o.code LIMIT 1)
            FROM codes c WHERE c.code IS NOT NULL
         )
         SELECT r.*, c.patient_id FROM codes c CROSS JOIN LATERAL (
            SELECT {OBS_COLUMNS} FROM observations o
            WHERE o.patient_id = c.patient_id AND o.code = c.code
              AND o.measured_at <= COALESCE($2, 'infinity'::timestamptz)
            ORDER BY o.measured_at DESC, o.id DESC LIMIT 1
         ) r
         ORDER BY c.patient_id, r.code"
    )
}

/// The worker's progress moves only up (a pass that failed and was stored
/// apart may report after a later one).
const PROGRESS_UPDATE: &str =
    "UPDATE worker_progress SET observation_id = GREATEST(observation_id, $1) WHERE id = 1";

/// Move the worker's progress, observations and ECG, up to what a pass
/// names, in the caller's transaction.
async fn progress_in(tx: &mut sqlx::PgConnection, progress: &PassProgress) -> Result<()> {
    if let Some(id) = progress.observation_id {
        sqlx::query(PROGRESS_UPDATE)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let (devices, seqs): (Vec<&str>, Vec<i64>) = progress.ecg_highest().into_iter().unzip();
    if !devices.is_empty() {
        sqlx::query(
            "INSERT INTO ecg_progress (device_id, seq)
             SELECT * FROM UNNEST($1::text[], $2::bigint[])
             ON CONFLICT (device_id) DO UPDATE SET seq = GREATEST(ecg_progress.seq, EXCLUDED.seq)",
        )
        .bind(devices)
        .bind(seqs)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The chunk in columns `first..first + 8` of `r`: device_id, seq, t0_ms,
/// fs_hz, uv_per_count, n_samples, encoding, samples.
fn chunk_row(r: &sqlx::postgres::PgRow, first: usize) -> EcgChunkRow {
    EcgChunkRow {
        device_id: r.get(first),
        seq: r.get::<i64, _>(first + 1) as u32,
        t0_ms: r.get(first + 2),
        fs_hz: r.get::<i32, _>(first + 3) as u16,
        uv_per_count: r.get(first + 4),
        n_samples: r.get::<i64, _>(first + 5) as u32,
        encoding: r.get(first + 6),
        samples: r.get(first + 7),
    }
}

const SCORE_COLUMNS: &str =
    "SELECT id, scored_at, computed_at, total, risk, partial, detail::text, obs_ids FROM scores";

fn score_row(r: &PgRow) -> ScoreRow {
    ScoreRow {
        id: r.get(0),
        scored_at: r.get(1),
        computed_at: r.get(2),
        total: r.get(3),
        risk: r.get(4),
        partial: r.get(5),
        detail: json_of(r.get(6)),
        obs_ids: r.get(7),
    }
}

/// A page's lower bound as SQL: the comparison and the time (an open bound
/// is `-infinity`, so the plan still uses the index).
fn since_bound(since: Bound<DateTime<Utc>>) -> (&'static str, Option<DateTime<Utc>>) {
    match since {
        Bound::Included(t) => (">=", Some(ts(t))),
        Bound::Excluded(t) => (">", Some(ts(t))),
        Bound::Unbounded => (">=", None),
    }
}

fn obs_row(r: &PgRow) -> ObservationRow {
    ObservationRow {
        id: r.get(0),
        code: r.get(1),
        value: value_of(r.get(2), r.get(3)),
        unit: r.get(4),
        measured_at: r.get(5),
        received_at: r.get(6),
        device_id: r.get(7),
        seq: r.get::<i64, _>(8) as u32,
    }
}

/// Use as `{EPISODE_SETTINGS} WHERE …`; rows for [`episode_settings_row`].
const EPISODE_SETTINGS: &str =
    "SELECT p.id, p.ward_id, e.pathway, e.spo2_scale, e.spo2_scale_set_by, e.spo2_scale_set_at,
        e.oxygen, e.oxygen_set_by, e.oxygen_set_at, e.acvpu, e.acvpu_set_by, e.acvpu_set_at,
        e.under_16, e.pregnant,
        (SELECT MAX(x.discharged_at) FROM episodes x WHERE x.patient_id = e.patient_id AND x.id <> e.id),
        e.obs_every_min, e.obs_every_set_by, e.obs_every_set_at,
        e.escalation_plan, e.escalation_note, e.escalation_set_by, e.escalation_set_at
     FROM episodes e JOIN patients p ON p.id = e.patient_id";

fn episode_settings_row(r: &PgRow) -> EpisodeSettings {
    EpisodeSettings {
        patient_id: r.get(0),
        ward_id: r.get(1),
        pathway: r.get(2),
        spo2_scale: r.get::<i16, _>(3) as u8,
        spo2_scale_set_by: r.get(4),
        spo2_scale_set_at: r.get(5),
        oxygen: r.get(6),
        oxygen_set_by: r.get(7),
        oxygen_set_at: r.get(8),
        acvpu: r.get(9),
        acvpu_set_by: r.get(10),
        acvpu_set_at: r.get(11),
        under_16: r.get(12),
        pregnant: r.get(13),
        earlier_stay_ended: r.get(14),
        obs_every_minutes: r.get::<Option<i32>, _>(15).map(i64::from),
        obs_every_set_by: r.get(16),
        obs_every_set_at: r.get(17),
        escalation_plan: r.get(18),
        escalation_note: r.get(19),
        escalation_set_by: r.get(20),
        escalation_set_at: r.get(21),
    }
}

/// An alert's columns in the order [`alert_row`] reads them.
macro_rules! alert_fields {
    () => {
        "id, patient_id, ward_id, rule_id, severity, status, message, count, latest_value::text,
        evidence, raised_at, updated_at, escalate_at, resolved_at, outcome, note"
    };
}

const ALERT_COLUMNS: &str = concat!("SELECT ", alert_fields!(), " FROM alerts");

/// [`Store::alerts_resolved_since`] for one ward: the alert's columns, then
/// its patient's name and NHS number and who resolved it. The partial
/// index `alerts_ward_resolved` (migration 0014) finds the rows.
const RESOLVED_SINCE: &str = concat!(
    "SELECT ",
    alert_fields!(),
    ", (SELECT p.name FROM patients p WHERE p.id = alerts.patient_id),
       (SELECT p.nhs_number FROM patients p WHERE p.id = alerts.patient_id),
       (SELECT e.actor FROM alert_events e
         WHERE e.alert_id = alerts.id AND e.action = 'resolved' ORDER BY e.id DESC LIMIT 1)
     FROM alerts WHERE ward_id = $1 AND status = 'resolved' AND resolved_at >= $2"
);

fn alert_row(r: &PgRow) -> Result<AlertRow> {
    let severity: String = r.get(4);
    let status: String = r.get(5);
    Ok(AlertRow {
        id: r.get(0),
        patient_id: r.get(1),
        ward_id: r.get(2),
        rule_id: r.get(3),
        severity: Severity::parse(&severity)
            .ok_or_else(|| StoreError::Backend(format!("bad severity {severity}")))?,
        status: AlertStatus::parse(&status)
            .ok_or_else(|| StoreError::Backend(format!("bad status {status}")))?,
        message: r.get(6),
        count: r.get(7),
        latest_value: r
            .get::<Option<String>, _>(8)
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default(),
        evidence: r.get(9),
        raised_at: r.get(10),
        updated_at: r.get(11),
        escalate_at: r.get(12),
        resolved_at: r.get(13),
        outcome: r.get(14),
        note: r.get(15),
    })
}

/// One firing inside the caller's transaction: the alert's id and what
/// happened, or `None` for an `update_only` firing with no live alert, or
/// one with no live alert for a patient who has no open episode.
async fn fire_in(
    tx: &mut Transaction<'_, Postgres>,
    f: &AlertFiring,
    update_only: bool,
    now: DateTime<Utc>,
) -> Result<Option<(i64, FiringOutcome)>> {
    let at = ts(f.at);
    let value = f.value.to_string();
    // The live alert, locked; if there is none, insert one. Two
    // instances racing to raise the same alert meet at the partial
    // unique index: the loser's insert does nothing and it updates the
    // winner's row instead, as SQLite's single writer would.
    let select_live = "SELECT id, severity, updated_at FROM alerts
                       WHERE patient_id = $1 AND rule_id = $2 AND status <> 'resolved' FOR UPDATE";
    let mut live: Option<(i64, String, DateTime<Utc>)> = sqlx::query_as(select_live)
        .bind(f.patient_id)
        .bind(&f.rule_id)
        .fetch_optional(&mut **tx)
        .await?;
    let mut raised = None;
    if live.is_none() && !update_only {
        // Only for a patient the ward still holds. The episode's row is
        // locked so that a discharge cannot commit between this check and
        // the insert (a discharge locks the patient's live alerts first,
        // then the episode: the same order as here).
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM episodes WHERE patient_id = $1 AND discharged_at IS NULL FOR SHARE",
        )
        .bind(f.patient_id)
        .fetch_optional(&mut **tx)
        .await?;
        if held.is_none() {
            return Ok(None);
        }
        raised = sqlx::query_scalar(
            "INSERT INTO alerts (patient_id, ward_id, rule_id, severity, status, message, count, latest_value, evidence,
                                 raised_at, updated_at, escalate_at)
             VALUES ($1, $2, $3, $4, 'open', $5, 1, $6::jsonb, $7, $8, $8, $9)
             ON CONFLICT (patient_id, rule_id) WHERE status <> 'resolved' DO NOTHING
             RETURNING id",
        )
        .bind(f.patient_id)
        .bind(f.ward_id)
        .bind(&f.rule_id)
        .bind(f.severity.as_str())
        .bind(&f.message)
        .bind(&value)
        .bind(&f.evidence)
        .bind(at)
        .bind(f.escalate_at.map(ts))
        .fetch_optional(&mut **tx)
        .await?;
        if raised.is_none() {
            live = sqlx::query_as(select_live)
                .bind(f.patient_id)
                .bind(&f.rule_id)
                .fetch_optional(&mut **tx)
                .await?;
        }
    }
    // `raised_from`: the severity an update raised the alert from.
    let (id, outcome, raised_from) = match (raised, live) {
        (Some(id), _) => (id, FiringOutcome::Raised, None),
        (None, None) if update_only => return Ok(None),
        (None, None) => {
            return Err(StoreError::Conflict(format!(
                "alert {} for patient {} changed concurrently",
                f.rule_id, f.patient_id
            )));
        }
        (None, Some((id, _, updated_at))) if updated_at > at => {
            (id, FiringOutcome::Superseded, None)
        }
        (None, Some((id, severity, _))) => {
            // Severity only ever goes up while the alert is live; a
            // higher severity also brings its (earlier) escalation time.
            let old = Severity::parse(&severity).unwrap_or(Severity::Low);
            let raise = f.severity > old;
            sqlx::query(
                "UPDATE alerts SET count = count + 1, latest_value = $1::jsonb, evidence = $2, updated_at = $3,
                        message = CASE WHEN $4 THEN $5 ELSE message END,
                        severity = CASE WHEN $4 THEN $6 ELSE severity END,
                        escalate_at = CASE WHEN $4 AND status = 'open' THEN $7 ELSE escalate_at END
                 WHERE id = $8",
            )
            .bind(&value)
            .bind(&f.evidence)
            .bind(at)
            .bind(raise)
            .bind(&f.message)
            .bind(f.severity.as_str())
            .bind(f.escalate_at.map(ts))
            .bind(id)
            .execute(&mut **tx)
            .await?;
            (id, FiringOutcome::Updated, raise.then_some(old))
        }
    };
    if let Some((action, detail)) = crate::firing_event(f, outcome, raised_from) {
        insert_event(tx, id, now, "system", action, &detail).await?;
    }
    Ok(Some((id, outcome)))
}

async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO alert_events (alert_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5::jsonb)")
        .bind(alert_id)
        .bind(ts(at))
        .bind(actor)
        .bind(action)
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A patient's episodes, newest first ([`episode_row`]).
const EPISODES: &str =
    "SELECT id, pathway, spo2_scale, spo2_scale_set_by, spo2_scale_set_at, admitted_at, discharged_at
     FROM episodes WHERE patient_id = $1 ORDER BY admitted_at DESC, id DESC";

fn episode_row(r: &PgRow) -> Episode {
    Episode {
        id: r.get(0),
        pathway: r.get(1),
        spo2_scale: r.get::<i16, _>(2) as u8,
        spo2_scale_set_by: r.get(3),
        spo2_scale_set_at: r.get(4),
        admitted_at: r.get(5),
        discharged_at: r.get(6),
    }
}

impl PgStore {
    /// Connect to the database at `url` and apply migrations. Migrations
    /// take PostgreSQL's advisory lock, so instances starting together are
    /// safe.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, None).await
    }

    /// [`PgStore::connect`] with a pool of at most `max_connections`
    /// (`None`: [`MAX_CONNECTIONS`]).
    pub async fn connect_with(url: &str, max_connections: Option<u32>) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Config(format!(
                "database.url: not a postgres URL: {}",
                url.split(':').next().unwrap_or_default()
            )));
        }
        crate::pg_url::check(url).map_err(StoreError::Config)?;
        let mut opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("database.url: {e}")))?;
        // So a database administrator can tell Vigil's sessions apart
        // (pg_stat_activity), unless the URL names itself.
        if opts.get_application_name().is_none() {
            opts = opts.application_name("vigil");
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.unwrap_or(MAX_CONNECTIONS))
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Duration::from_secs(600))
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// One intake batch in one transaction; `None` (nothing stored) if
    /// `routes_at` is given and the route generation is no longer it. The
    /// generation row stays share-locked until the commit, so a route
    /// change (whose trigger updates that row) waits for the batch.
    async fn uplink_batch(
        &self,
        routes_at: Option<i64>,
        obs: &[NewObsMessage],
        ecg: &[NewEcgChunk],
    ) -> Result<Option<(Vec<BatchOutcome>, Vec<BatchOutcome>)>> {
        let mut tx = self.pool.begin().await?;
        if let Some(expected) = routes_at {
            let now: i64 =
                sqlx::query_scalar("SELECT n FROM route_generation WHERE id = 1 FOR SHARE")
                    .fetch_one(&mut *tx)
                    .await?;
            if now != expected {
                return Ok(None);
            }
        }
        // Messages then chunks, each in its lock order: every instance takes
        // the dedup keys' locks in the same order.
        let obs = if obs.is_empty() {
            Vec::new()
        } else {
            obs_batch_in(&mut tx, obs).await?
        };
        let ecg = if ecg.is_empty() {
            Vec::new()
        } else {
            ecg_batch_in(&mut tx, ecg).await?
        };
        tx.commit().await?;
        Ok(Some((obs, ecg)))
    }

    /// A `users` row (id, username, role, password_hash, disabled_at) with its wards.
    async fn user_record(&self, r: &sqlx::postgres::PgRow) -> Result<UserRecord> {
        let id: i64 = r.get(0);
        Ok(UserRecord {
            id,
            username: r.get(1),
            role: role_of(r.get(2))?,
            password_hash: r.get(3),
            ward_ids: self.user_wards(id).await?,
            disabled_at: r.get(4),
        })
    }

    async fn user_wards(&self, user_id: i64) -> Result<Vec<i64>> {
        let rows =
            sqlx::query("SELECT ward_id FROM user_wards WHERE user_id = $1 ORDER BY ward_id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    /// The newest reading of each code for each of `patient_ids` (ties
    /// broken by the higher row id, as in SQLite), ordered by code.
    async fn latest_readings(
        &self,
        patient_ids: &[i64],
    ) -> Result<HashMap<i64, Vec<LatestReading>>> {
        let rows = sqlx::query(&latest_sql())
            .bind(patient_ids)
            .bind(None::<DateTime<Utc>>)
            .fetch_all(&self.pool)
            .await?;
        let mut out: HashMap<i64, Vec<LatestReading>> = HashMap::new();
        for r in &rows {
            let o = obs_row(r);
            out.entry(r.get(9)).or_default().push(LatestReading {
                code: o.code,
                value: o.value,
                unit: o.unit,
                measured_at: o.measured_at,
                device_id: o.device_id,
            });
        }
        Ok(out)
    }
}

/// [`Store::store_obs_batch`] inside the caller's transaction.
async fn obs_batch_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    batch: &[NewObsMessage],
) -> Result<Vec<BatchOutcome>> {
    // Two statements for the whole batch (arrays, so no limit on bound
    // values), not a round trip per message. First the messages, in
    // `(device, seq)` order so that two instances writing overlapping
    // batches take the dedup keys' locks in the same order and cannot
    // deadlock. The new ones come back; rows written earlier in the
    // statement count as conflicts, so of a (device, seq) the batch
    // repeats the first (the sort is stable) is the one stored.
    let order = lock_order(batch.iter().map(|m| (m.device_id.as_str(), m.seq)));
    let devices: Vec<&str> = order.iter().map(|&i| batch[i].device_id.as_str()).collect();
    let seqs: Vec<i64> = order.iter().map(|&i| i64::from(batch[i].seq)).collect();
    let patients: Vec<i64> = order.iter().map(|&i| batch[i].patient_id).collect();
    let measured: Vec<DateTime<Utc>> = order.iter().map(|&i| ts(batch[i].measured_at)).collect();
    let received: Vec<DateTime<Utc>> = order.iter().map(|&i| ts(batch[i].received_at)).collect();
    let fresh: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO obs_messages (device_id, seq, patient_id, measured_at, received_at)
         SELECT v.d, v.s, v.p, v.m, v.r
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[]) WITH ORDINALITY
              AS v(d, s, p, m, r, ord)
         ORDER BY v.ord
         ON CONFLICT (device_id, seq) DO NOTHING
         RETURNING device_id, seq",
    )
    .bind(&devices)
    .bind(&seqs)
    .bind(&patients)
    .bind(&measured)
    .bind(&received)
    .fetch_all(&mut **tx)
    .await?;
    let stored = crate::stored_messages(batch, fresh);
    // Then their observations, in message order; identity values are
    // drawn in insertion order.
    let rows: Vec<(&NewObsMessage, &NewObservation)> = stored
        .iter()
        .flat_map(|m| m.obs.iter().map(move |o| (*m, o)))
        .collect();
    let ids = if rows.is_empty() {
        Vec::new()
    } else {
        let (nums, texts): (Vec<Option<f64>>, Vec<Option<&str>>) =
            rows.iter().map(|(_, o)| split_value(&o.value)).unzip();
        let back: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "INSERT INTO observations
                 (patient_id, device_id, seq, code, value_num, value_text, unit, measured_at, received_at)
             SELECT v.p, v.d, v.s, v.code, v.num, v.txt, v.unit, v.m, v.r
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::float8[], $6::text[], $7::text[],
                         $8::timestamptz[], $9::timestamptz[]) WITH ORDINALITY
                  AS v(p, d, s, code, num, txt, unit, m, r, ord)
             ORDER BY v.ord
             RETURNING id, device_id, seq, code",
        )
        .bind(rows.iter().map(|(m, _)| m.patient_id).collect::<Vec<i64>>())
        .bind(rows.iter().map(|(m, _)| m.device_id.as_str()).collect::<Vec<&str>>())
        .bind(rows.iter().map(|(m, _)| i64::from(m.seq)).collect::<Vec<i64>>())
        .bind(rows.iter().map(|(_, o)| o.code.as_str()).collect::<Vec<&str>>())
        .bind(&nums)
        .bind(&texts)
        .bind(rows.iter().map(|(_, o)| o.unit.as_deref()).collect::<Vec<Option<&str>>>())
        .bind(rows.iter().map(|(m, _)| ts(m.measured_at)).collect::<Vec<DateTime<Utc>>>())
        .bind(rows.iter().map(|(m, _)| ts(m.received_at)).collect::<Vec<DateTime<Utc>>>())
        .fetch_all(&mut **tx)
        .await?;
        crate::ids_in_insert_order(back, &rows)?
    };
    Ok(crate::batch_outcomes(batch, stored, ids))
}

/// [`Store::store_ecg_batch`] inside the caller's transaction.
async fn ecg_batch_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    batch: &[NewEcgChunk],
) -> Result<Vec<BatchOutcome>> {
    // One statement for the batch (arrays), in `(device, seq)` lock order
    // as in `obs_batch_in`; the new chunks come back, and of a (device,
    // seq) the batch repeats the first is the one stored.
    let order = lock_order(batch.iter().map(|c| (c.device_id.as_str(), c.seq)));
    let col =
        |f: &dyn Fn(&NewEcgChunk) -> i64| order.iter().map(|&i| f(&batch[i])).collect::<Vec<i64>>();
    let fresh: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO ecg_chunks (device_id, seq, patient_id, t0_ms, fs_hz, uv_per_count, n_samples, encoding, samples, received_at)
         SELECT v.d, v.s, v.p, v.t0, v.fs, v.uv, v.n, v.enc, v.smp, v.r
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::real[], $7::bigint[], $8::text[],
                     $9::bytea[], $10::timestamptz[]) WITH ORDINALITY
              AS v(d, s, p, t0, fs, uv, n, enc, smp, r, ord)
         ORDER BY v.ord
         ON CONFLICT (device_id, seq) DO NOTHING
         RETURNING device_id, seq",
    )
    .bind(order.iter().map(|&i| batch[i].device_id.as_str()).collect::<Vec<&str>>())
    .bind(col(&|c| i64::from(c.seq)))
    .bind(col(&|c| c.patient_id))
    .bind(col(&|c| c.t0_ms))
    .bind(col(&|c| i64::from(c.fs_hz)))
    .bind(order.iter().map(|&i| batch[i].uv_per_count).collect::<Vec<f32>>())
    .bind(col(&|c| i64::from(c.n_samples)))
    .bind(order.iter().map(|&i| batch[i].encoding.as_str()).collect::<Vec<&str>>())
    .bind(order.iter().map(|&i| batch[i].samples.as_slice()).collect::<Vec<&[u8]>>())
    .bind(order.iter().map(|&i| ts(batch[i].received_at)).collect::<Vec<DateTime<Utc>>>())
    .fetch_all(&mut **tx)
    .await?;
    Ok(crate::chunk_outcomes(batch, fresh))
}

/// The statements that insert `rows`, built before the transaction (a
/// score's detail is a large JSON map; writing it out as text need not
/// happen while the transaction is open). Multi-row statements, one round
/// trip per 1,000 scores (8 bound values a row; PostgreSQL allows 65,535
/// in a statement).
fn score_statements(rows: &[NewScore]) -> Vec<sqlx::QueryBuilder<'static, sqlx::Postgres>> {
    rows.chunks(1000)
        .map(|chunk| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO scores (patient_id, scored_at, computed_at, total, risk, partial, detail, obs_ids) ",
            );
            q.push_values(chunk, |mut row, s| {
                row.push_bind(s.patient_id)
                    .push_bind(ts(s.scored_at))
                    .push_bind(ts(s.computed_at))
                    .push_bind(s.total)
                    .push_bind(s.risk.clone())
                    .push_bind(s.partial)
                    .push_bind(s.detail.to_string())
                    .push_unseparated("::jsonb")
                    .push_bind(s.obs_ids.clone());
            });
            q
        })
        .collect()
}

/// [`Store::score_insert_many`] inside the caller's transaction, from
/// [`score_statements`].
async fn scores_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    statements: &mut [sqlx::QueryBuilder<'static, sqlx::Postgres>],
) -> Result<()> {
    for q in statements {
        q.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// [`Store::alert_fire_many`] inside the caller's transaction.
async fn fire_many_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    firings: &[BatchFiring],
    now: DateTime<Utc>,
) -> Result<Vec<Option<(AlertRow, FiringOutcome)>>> {
    // Each firing locks its live alert until commit: taking the locks in
    // (patient, rule) order keeps two instances firing overlapping
    // batches from deadlocking. The sort is stable, so firings of one
    // rule keep their order.
    let mut order: Vec<usize> = (0..firings.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&firings[a].firing, &firings[b].firing);
        (a.patient_id, &a.rule_id).cmp(&(b.patient_id, &b.rule_id))
    });
    let mut out = vec![None; firings.len()];
    for i in order {
        let b = &firings[i];
        if let Some((id, outcome)) = fire_in(tx, &b.firing, b.update_only, now).await? {
            let row = sqlx::query(&format!("{ALERT_COLUMNS} WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut **tx)
                .await?;
            out[i] = Some((alert_row(&row)?, outcome));
        }
    }
    Ok(out)
}

/// Each patient of a ward whose latest stay ended at or after a time and
/// who has no open one, with that stay (`Store::patients_discharged`).
const RECENTLY_DISCHARGED: &str = "SELECT p.id, p.ward_id, p.name, p.nhs_number, e.pathway, e.admitted_at, e.discharged_at
     FROM patients p JOIN episodes e ON e.patient_id = p.id
     WHERE p.ward_id = $1 AND e.discharged_at >= $2
       AND e.discharged_at = (SELECT MAX(l.discharged_at) FROM episodes l WHERE l.patient_id = p.id)
       AND NOT EXISTS (SELECT 1 FROM episodes o WHERE o.patient_id = p.id AND o.discharged_at IS NULL)";

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ward_add(&self, name: &str) -> Result<Ward> {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO wards (name, created_at) VALUES ($1, $2) RETURNING id")
                .bind(name)
                .bind(ts(Utc::now()))
                .fetch_one(&self.pool)
                .await?;
        Ok(Ward {
            id,
            name: name.to_string(),
        })
    }

    async fn ward_find(&self, name_or_id: &str) -> Result<Option<Ward>> {
        let row = match name_or_id.parse::<i64>() {
            Ok(id) => {
                sqlx::query("SELECT id, name FROM wards WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            }
            Err(_) => {
                sqlx::query("SELECT id, name FROM wards WHERE name = $1")
                    .bind(name_or_id)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        Ok(row.map(|r| Ward {
            id: r.get(0),
            name: r.get(1),
        }))
    }

    async fn user_add(&self, user: NewUser) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, role, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&user.username)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(ts(Utc::now()))
        .fetch_one(&mut *tx)
        .await?;
        for w in &user.ward_ids {
            sqlx::query("INSERT INTO user_wards (user_id, ward_id) VALUES ($1, $2)")
                .bind(id)
                .bind(w)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        let Some(r) = sqlx::query(
            "SELECT id, username, role, password_hash, disabled_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(self.user_record(&r).await?))
    }

    async fn usernames_folded(&self, username: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(crate::USERNAMES_FOLDED)
            .bind(username)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn users_list(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(
            "SELECT id, username, role, password_hash, disabled_at FROM users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.user_record(r).await?);
        }
        Ok(out)
    }

    async fn user_disable(&self, username: &str, at: DateTime<Utc>) -> Result<CredentialsEnded> {
        let mut tx = self.pool.begin().await?;
        let Some(id) = sqlx::query_scalar::<_, i64>(
            "UPDATE users SET disabled_at = COALESCE(disabled_at, $1) WHERE username = $2 RETURNING id",
        )
        .bind(ts(at))
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound(format!("user {username}")));
        };
        let revoked = revoke_user_tokens(&mut tx, id, at, false).await?;
        tx.commit().await?;
        Ok(CredentialsEnded { revoked })
    }

    async fn user_enable(&self, username: &str) -> Result<()> {
        let n = sqlx::query("UPDATE users SET disabled_at = NULL WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {username}")));
        }
        Ok(())
    }

    async fn user_set_wards(&self, username: &str, ward_ids: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // The account's row locked first, so two changes of its wards
        // take turns instead of mixing their sets.
        let id =
            sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = $1 FOR UPDATE")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("user {username}")))?;
        sqlx::query("DELETE FROM user_wards WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO user_wards (user_id, ward_id) SELECT $1, w FROM UNNEST($2::bigint[]) AS w
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(ward_ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_set_role(
        &self,
        username: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<CredentialsEnded> {
        let mut tx = self.pool.begin().await?;
        let Some((id, before)) = sqlx::query_as::<_, (i64, String)>(
            "SELECT id, role FROM users WHERE username = $1 FOR UPDATE",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound(format!("user {username}")));
        };
        let mut revoked = 0;
        if before != role.as_str() {
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            revoked = revoke_user_tokens(&mut tx, id, at, true).await?;
        }
        tx.commit().await?;
        Ok(CredentialsEnded { revoked })
    }

    async fn user_set_password(
        &self,
        username: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<CredentialsEnded> {
        let mut tx = self.pool.begin().await?;
        let Some(id) = sqlx::query_scalar::<_, i64>(
            "UPDATE users SET password_hash = $1 WHERE username = $2 RETURNING id",
        )
        .bind(password_hash)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound(format!("user {username}")));
        };
        let revoked = revoke_user_tokens(&mut tx, id, at, true).await?;
        tx.commit().await?;
        Ok(CredentialsEnded { revoked })
    }

    async fn token_insert(&self, t: NewToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (user_id, token_hash, kind, created_at, expires_at, sso_sub, sso_sid) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.user_id)
        .bind(&t.token_hash)
        .bind(t.kind.as_str())
        .bind(ts(t.created_at))
        .bind(t.expires_at.map(ts))
        .bind(t.sso.as_ref().map(|l| &l.sub))
        .bind(t.sso.as_ref().and_then(|l| l.sid.as_ref()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        session_idle: chrono::Duration,
    ) -> Result<Option<AuthUser>> {
        let Some(r) = sqlx::query(
            "SELECT u.id, u.username, u.role, t.id, t.kind, COALESCE(t.last_used_at, t.created_at)
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)
               AND u.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let id: i64 = r.get(0);
        let token_id: i64 = r.get(3);
        let kind: &str = r.get(4);
        let last_used: DateTime<Utc> = r.get(5);
        if kind == "session" {
            if now - last_used > session_idle {
                return Ok(None);
            }
            // Mark use at most once a minute: enough for idle expiry,
            // without a write on every request.
            if now - last_used > chrono::Duration::minutes(1) {
                sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(ts(now))
                    .bind(token_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(Some(AuthUser {
            id,
            username: r.get(1),
            role: role_of(r.get(2))?,
            ward_ids: self.user_wards(id).await?,
        }))
    }

    async fn token_revoke(&self, token_hash: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(token_hash)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn sso_logout(
        &self,
        token: &SsoLogout<'_>,
        now: DateTime<Utc>,
    ) -> Result<SsoLogoutOutcome> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sso_logout_tokens WHERE expires_at < $1")
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        let known: Option<i64> =
            sqlx::query_scalar("SELECT 1::bigint FROM sso_logout_tokens WHERE jti = $1")
                .bind(token.jti)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_some() {
            tx.commit().await?;
            return Ok(SsoLogoutOutcome::TakenAlready);
        }
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sso_logout_tokens")
            .fetch_one(&mut *tx)
            .await?;
        if held >= token.remembered_at_most {
            tx.commit().await?;
            return Ok(SsoLogoutOutcome::TooMany);
        }
        // Another instance taking the same token at once waits here for
        // this transaction, then finds it taken.
        let fresh = sqlx::query(
            "INSERT INTO sso_logout_tokens (jti, expires_at) VALUES ($1, $2)
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(token.jti)
        .bind(ts(token.expires_at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.commit().await?;
            return Ok(SsoLogoutOutcome::TakenAlready);
        }
        let ended = if token.sub.is_none() && token.sid.is_none() {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "UPDATE tokens SET revoked_at = $1
                 WHERE kind = 'session' AND revoked_at IS NULL
                   AND ($2::text IS NULL OR sso_sub = $2) AND ($3::text IS NULL OR sso_sid = $3)
                   AND sso_sub IS NOT NULL
                 RETURNING user_id",
            )
            .bind(ts(now))
            .bind(token.sub)
            .bind(token.sid)
            .fetch_all(&mut *tx)
            .await?
        };
        tx.commit().await?;
        Ok(SsoLogoutOutcome::Ended(ended))
    }

    async fn patient_admit(&self, p: NewPatient) -> Result<Admission> {
        let mut tx = self.pool.begin().await?;
        // One open admission per person: admissions of one NHS number take
        // turns (a transaction-scoped lock on its hash), so two racing ones
        // cannot both find none open.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('vigil-admit:' || $1))")
            .bind(&p.nhs_number)
            .execute(&mut *tx)
            .await?;
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT p.id FROM patients p JOIN episodes e ON e.patient_id = p.id
             WHERE p.nhs_number = $1 AND e.discharged_at IS NULL LIMIT 1",
        )
        .bind(&p.nhs_number)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = open {
            return Err(crate::already_admitted(other));
        }
        let now = ts(p.admitted_at);
        // The person's earlier record on this ward, none of whose episodes
        // is open (checked above).
        let earlier: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM patients WHERE nhs_number = $1 AND ward_id = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(&p.nhs_number)
        .bind(p.ward_id)
        .fetch_optional(&mut *tx)
        .await?;
        let id: i64 = match earlier {
            Some(id) => {
                sqlx::query("UPDATE patients SET name = $1 WHERE id = $2")
                    .bind(&p.name)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => sqlx::query_scalar(
                "INSERT INTO patients (ward_id, name, nhs_number, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(p.ward_id)
            .bind(&p.name)
            .bind(&p.nhs_number)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?,
        };
        let set_at = p.spo2_scale_set_by.as_ref().map(|_| now);
        sqlx::query(
            "INSERT INTO episodes (patient_id, pathway, spo2_scale, spo2_scale_set_by, spo2_scale_set_at, admitted_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&p.pathway)
        .bind(i16::from(p.spo2_scale))
        .bind(&p.spo2_scale_set_by)
        .bind(set_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Admission {
            id,
            readmitted: earlier.is_some(),
        })
    }

    async fn patient_discharge(
        &self,
        patient_id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Discharge> {
        let mut tx = self.pool.begin().await?;
        // The live alerts first, then the episode: the order a firing takes
        // them in (`fire_in`), so the two never wait on each other in a
        // cycle.
        sqlx::query(
            "SELECT id FROM alerts WHERE patient_id = $1 AND status <> 'resolved' FOR UPDATE",
        )
        .bind(patient_id)
        .fetch_all(&mut *tx)
        .await?;
        let n = sqlx::query("UPDATE episodes SET discharged_at = $1 WHERE patient_id = $2 AND discharged_at IS NULL")
            .bind(ts(at))
            .bind(patient_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "open episode for patient {patient_id}"
            )));
        }
        // A discharged patient's devices stop reporting for them.
        sqlx::query("UPDATE devices SET patient_id = NULL WHERE patient_id = $1")
            .bind(patient_id)
            .execute(&mut *tx)
            .await?;
        // Their live alerts leave the ward's queue, each with its event.
        let live: Vec<i64> = sqlx::query_scalar(
            "UPDATE alerts SET status = 'resolved', escalate_at = NULL, resolved_at = $1, updated_at = $1, outcome = $2, note = $3
             WHERE patient_id = $4 AND status != 'resolved' RETURNING id",
        )
        .bind(ts(at))
        .bind(DISCHARGED)
        .bind("patient discharged")
        .bind(patient_id)
        .fetch_all(&mut *tx)
        .await?;
        let detail = serde_json::json!({"outcome": DISCHARGED, "note": "patient discharged"});
        for id in &live {
            insert_event(&mut tx, *id, at, actor, "resolved", &detail).await?;
        }
        tx.commit().await?;
        let mut resolved = Vec::with_capacity(live.len());
        for id in live {
            if let Some(a) = self.alert_get(id).await? {
                resolved.push(a);
            }
        }
        resolved.sort_by_key(|a| a.id);
        Ok(Discharge {
            discharged_at: at,
            resolved,
        })
    }

    async fn patient_get(&self, patient_id: i64) -> Result<Option<PatientDetail>> {
        let Some(p) =
            sqlx::query("SELECT id, ward_id, name, nhs_number FROM patients WHERE id = $1")
                .bind(patient_id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let mut previous_episodes: Vec<Episode> = sqlx::query(EPISODES)
            .bind(patient_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(episode_row)
            .collect();
        let episode = (!previous_episodes.is_empty()).then(|| previous_episodes.remove(0));
        let devices = sqlx::query(
            "SELECT d.id, d.kind, d.revoked_at, s.online, s.battery_pct, s.signal, s.fw, s.reported_at
             FROM devices d LEFT JOIN device_status s ON s.device_id = d.id
             WHERE d.patient_id = $1 ORDER BY d.id",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| DeviceInfo {
            id: r.get(0),
            kind: r.get(1),
            revoked_at: r.get(2),
            status: status_at(&r, 3),
        })
        .collect();
        Ok(Some(PatientDetail {
            id: p.get(0),
            ward_id: p.get(1),
            name: p.get(2),
            nhs_number: p.get(3),
            episode,
            previous_episodes,
            devices,
        }))
    }

    async fn patients_list(&self, ward_ids: &[i64]) -> Result<Vec<PatientSummary>> {
        let mut out = Vec::new();
        for ward in ward_ids {
            let rows = sqlx::query(
                "SELECT p.id, p.ward_id, p.name, e.pathway,
                        (SELECT MAX(measured_at) FROM observations o WHERE o.patient_id = p.id),
                        p.nhs_number
                 FROM patients p JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL
                 WHERE p.ward_id = $1 ORDER BY p.id",
            )
            .bind(ward)
            .fetch_all(&self.pool)
            .await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let mut latest = self.latest_readings(&ids).await?;
            for r in rows {
                let id: i64 = r.get(0);
                out.push(PatientSummary {
                    id,
                    ward_id: r.get(1),
                    name: r.get(2),
                    nhs_number: r.get(5),
                    pathway: r.get(3),
                    last_reading_at: r.get(4),
                    latest: latest.remove(&id).unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn patients_discharged(
        &self,
        ward_ids: &[i64],
        since: DateTime<Utc>,
    ) -> Result<Vec<DischargedPatient>> {
        let mut out = Vec::new();
        for ward in ward_ids {
            let rows = sqlx::query(RECENTLY_DISCHARGED)
                .bind(ward)
                .bind(ts(since))
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                out.push(DischargedPatient {
                    id: r.get(0),
                    ward_id: r.get(1),
                    name: r.get(2),
                    nhs_number: r.get(3),
                    pathway: r.get(4),
                    admitted_at: r.get(5),
                    discharged_at: r.get(6),
                });
            }
        }
        out.sort_by(|a, b| b.discharged_at.cmp(&a.discharged_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    async fn device_provision(&self, d: NewDevice) -> Result<()> {
        sqlx::query(
            "INSERT INTO devices (id, kind, mqtt_username, secret_hash, mosquitto_hash, patient_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&d.id)
        .bind(&d.kind)
        .bind(&d.mqtt_username)
        .bind(&d.secret_hash)
        .bind(&d.mosquitto_hash)
        .bind(d.patient_id)
        .bind(ts(d.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn device_status_record(
        &self,
        device_id: &str,
        report: &DeviceStatusReport,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if status_upsert(&mut conn, device_id, report).await? == 0 {
            return Err(StoreError::NotFound(format!("device {device_id}")));
        }
        Ok(())
    }

    async fn device_status_record_many(
        &self,
        reports: &[(String, DeviceStatusReport)],
    ) -> Result<u64> {
        if reports.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for (device_id, report) in reports {
            n += status_upsert(&mut tx, device_id, report).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn device_assign(&self, device_id: &str, patient_id: i64) -> Result<()> {
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM episodes WHERE patient_id = $1 AND discharged_at IS NULL",
        )
        .bind(patient_id)
        .fetch_optional(&self.pool)
        .await?;
        if open.is_none() {
            return Err(StoreError::NotFound(format!(
                "open episode for patient {patient_id}"
            )));
        }
        let n =
            sqlx::query("UPDATE devices SET patient_id = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(patient_id)
                .bind(device_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("active device {device_id}")));
        }
        Ok(())
    }

    async fn device_claim(&self, device_id: &str, patient_id: i64) -> Result<()> {
        // The episode is locked for the statement: a racing discharge
        // (which unassigns the patient's devices) either waits for the
        // claim, then unassigns the device too, or goes first, and the
        // claim then finds no open episode.
        let n = sqlx::query(
            "UPDATE devices SET patient_id = $1 WHERE id = $2 AND revoked_at IS NULL \
             AND patient_id IS NULL AND EXISTS (SELECT 1 FROM episodes \
             WHERE patient_id = $1 AND discharged_at IS NULL FOR SHARE)",
        )
        .bind(patient_id)
        .bind(device_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 1 {
            return Ok(());
        }
        let device: Option<(Option<i64>, bool)> =
            sqlx::query_as("SELECT patient_id, revoked_at IS NOT NULL FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Err(crate::claim_refused(device, device_id, patient_id))
    }

    async fn device_revoke(&self, device_id: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let n =
            sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(ts(at))
                .bind(device_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("active device {device_id}")));
        }
        Ok(at)
    }

    async fn device_revoke_held(
        &self,
        device_id: &str,
        held_by: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let n = sqlx::query(
            "UPDATE devices SET revoked_at = $1
             WHERE id = $2 AND revoked_at IS NULL AND patient_id IS NOT DISTINCT FROM $3",
        )
        .bind(ts(at))
        .bind(device_id)
        .bind(held_by)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 1 {
            return Ok(at);
        }
        let now: Option<(Option<i64>, bool)> =
            sqlx::query_as("SELECT patient_id, revoked_at IS NOT NULL FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Err(crate::revoke_refused(now, device_id, held_by))
    }

    async fn device_unassign(&self, device_id: &str, patient_id: i64) -> Result<()> {
        let n =
            sqlx::query("UPDATE devices SET patient_id = NULL WHERE id = $1 AND patient_id = $2")
                .bind(device_id)
                .bind(patient_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 1 {
            return Ok(());
        }
        let device: Option<Option<i64>> =
            sqlx::query_scalar("SELECT patient_id FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Err(crate::unassign_refused(device, device_id, patient_id))
    }

    async fn devices_list(&self, query: DeviceQuery<'_>) -> Result<Vec<DeviceListed>> {
        let sql = crate::devices_list_sql(query);
        let q = sqlx::query(&sql);
        let q = match query {
            DeviceQuery::Ward(w) => q.bind(w),
            DeviceQuery::One(id) => q.bind(id),
            DeviceQuery::All | DeviceQuery::Unassigned => q,
        };
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let last: [Option<DateTime<Utc>>; 2] = [r.get(6), r.get(7)];
                DeviceListed {
                    id: r.get(0),
                    kind: r.get(1),
                    patient_id: r.get(2),
                    ward_id: r.get(3),
                    provisioned_at: r.get(4),
                    revoked_at: r.get(5),
                    last_message_at: last.into_iter().flatten().max(),
                    status: status_at(r, 8),
                }
            })
            .collect())
    }

    async fn device_credentials(&self, mqtt_username: &str) -> Result<Option<DeviceCredentials>> {
        let row = sqlx::query(
            "SELECT id, secret_hash, revoked_at IS NOT NULL FROM devices WHERE mqtt_username = $1",
        )
        .bind(mqtt_username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| DeviceCredentials {
            device_id: r.get(0),
            secret_hash: r.get(1),
            revoked: r.get(2),
        }))
    }

    async fn mqtt_accounts(&self) -> Result<Vec<MqttAccount>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(crate::MQTT_ACCOUNTS_SQL)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(MqttAccount::from).collect())
    }

    async fn devices_revoked_since(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM devices WHERE revoked_at >= $1 ORDER BY revoked_at")
                .bind(ts(since))
                .fetch_all(&self.pool)
                .await?;
        Ok(ids)
    }

    async fn device_route(&self, device_id: &str) -> Result<Option<DeviceRoute>> {
        let row = sqlx::query(
            "SELECT p.id, p.ward_id FROM devices d JOIN patients p ON p.id = d.patient_id
             JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL
             WHERE d.id = $1 AND d.revoked_at IS NULL",
        )
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| DeviceRoute {
            patient_id: r.get(0),
            ward_id: r.get(1),
        }))
    }

    async fn route_generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT n FROM route_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn device_routes(&self, device_ids: &[&str]) -> Result<HashMap<String, DeviceRoute>> {
        if device_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT d.id, p.id, p.ward_id FROM devices d JOIN patients p ON p.id = d.patient_id
             JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL
             WHERE d.id = ANY($1) AND d.revoked_at IS NULL",
        )
        .bind(device_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get(0),
                    DeviceRoute {
                        patient_id: r.get(1),
                        ward_id: r.get(2),
                    },
                )
            })
            .collect())
    }

    async fn store_uplink_batch(
        &self,
        obs: &[NewObsMessage],
        ecg: &[NewEcgChunk],
    ) -> Result<(Vec<BatchOutcome>, Vec<BatchOutcome>)> {
        self.uplink_batch(None, obs, ecg)
            .await?
            .ok_or_else(|| StoreError::Backend("no route generation was checked".into()))
    }

    async fn store_routed_batch(
        &self,
        routes_at: i64,
        obs: &[NewObsMessage],
        ecg: &[NewEcgChunk],
    ) -> Result<Option<(Vec<BatchOutcome>, Vec<BatchOutcome>)>> {
        self.uplink_batch(Some(routes_at), obs, ecg).await
    }

    async fn store_rejected(&self, r: NewRejected) -> Result<()> {
        sqlx::query(
            "INSERT INTO rejected_messages (device_id, seq, topic, reason, detail, payload, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.device_id)
        .bind(r.seq.map(i64::from))
        .bind(&r.topic)
        .bind(&r.reason)
        .bind(&r.detail)
        .bind(&r.payload)
        .bind(ts(r.received_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn observations(&self, q: ObservationQuery) -> Result<Vec<ObservationRow>> {
        if let Some(max) = q.max_points {
            return self.observations_downsampled(&q, max).await;
        }
        // Open bounds become ±infinity rather than `$n IS NULL OR …`, so a
        // cached generic plan can still use the (patient, code, time) index.
        let code_filter = if q.code.is_some() {
            "AND code = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {OBS_COLUMNS} FROM observations
             WHERE patient_id = $1 {code_filter}
               AND measured_at >= COALESCE($2, '-infinity'::timestamptz)
               AND measured_at <= COALESCE($3, 'infinity'::timestamptz)
             ORDER BY code, measured_at, id"
        );
        let mut query = sqlx::query(&sql)
            .bind(q.patient_id)
            .bind(q.from.map(ts))
            .bind(q.to.map(ts));
        if let Some(code) = &q.code {
            query = query.bind(code);
        }
        let rows: Vec<ObservationRow> = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(obs_row)
            .collect();
        Ok(rows)
    }

    async fn observations_page(
        &self,
        page: &HistoryPage,
        code: &str,
    ) -> Result<Vec<ObservationRow>> {
        let (op, since) = since_bound(page.since);
        let rows = sqlx::query(&format!(
            "SELECT {OBS_COLUMNS} FROM observations
             WHERE patient_id = $1 AND code = $2
               AND measured_at {op} COALESCE($3, '-infinity'::timestamptz)
               AND measured_at <= COALESCE($4, 'infinity'::timestamptz)
               AND ($6::bigint IS NULL OR measured_at > $3 OR id > $6)
             ORDER BY measured_at, id LIMIT $5"
        ))
        .bind(page.patient_id)
        .bind(code)
        .bind(since)
        .bind(page.to.map(ts))
        .bind(page.limit)
        .bind(page.after_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(obs_row).collect())
    }

    async fn observations_count(&self, page: &HistoryPage, code: &str) -> Result<i64> {
        let (op, since) = since_bound(page.since);
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM observations
             WHERE patient_id = $1 AND code = $2
               AND measured_at {op} COALESCE($3, '-infinity'::timestamptz)
               AND measured_at <= COALESCE($4, 'infinity'::timestamptz)"
        ))
        .bind(page.patient_id)
        .bind(code)
        .bind(since)
        .bind(page.to.map(ts))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn observation_codes(&self, patient_id: i64) -> Result<Vec<String>> {
        // A loose index scan: one step of the (patient, code, time) index a
        // code, not a walk of the patient's whole history.
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE codes(code) AS (
                 SELECT (SELECT code FROM observations WHERE patient_id = $1 ORDER BY code LIMIT 1)
                 UNION ALL
                 SELECT (SELECT code FROM observations WHERE patient_id = $1 AND code > codes.code ORDER BY code LIMIT 1)
                 FROM codes WHERE codes.code IS NOT NULL)
             SELECT code FROM codes WHERE code IS NOT NULL ORDER BY code",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn observation_row(&self, patient_id: i64, id: i64) -> Result<Option<ObservationRow>> {
        Ok(sqlx::query(&format!(
            "SELECT {OBS_COLUMNS} FROM observations WHERE patient_id = $1 AND id = $2"
        ))
        .bind(patient_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(obs_row))
    }

    async fn message_observations(
        &self,
        patient_id: i64,
        at: DateTime<Utc>,
        device_id: &str,
        seq: u32,
        codes: &[&str],
    ) -> Result<Vec<ObservationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {OBS_COLUMNS} FROM observations
             WHERE patient_id = $1 AND code = ANY($2) AND measured_at = $3
               AND device_id = $4 AND seq = $5
             ORDER BY id"
        ))
        .bind(patient_id)
        .bind(codes)
        .bind(ts(at))
        .bind(device_id)
        .bind(i64::from(seq))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(obs_row).collect())
    }

    async fn latest_per_code(
        &self,
        patient_id: i64,
        at: DateTime<Utc>,
    ) -> Result<Vec<ObservationRow>> {
        let rows = sqlx::query(&latest_sql())
            .bind([patient_id].as_slice())
            .bind(Some(ts(at)))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(obs_row).collect())
    }

    async fn episode_settings(&self, patient_id: i64) -> Result<Option<EpisodeSettings>> {
        let row = sqlx::query(&format!(
            "{EPISODE_SETTINGS} WHERE e.patient_id = $1 AND e.discharged_at IS NULL"
        ))
        .bind(patient_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(episode_settings_row))
    }

    async fn episode_settings_many(
        &self,
        patient_ids: &[i64],
    ) -> Result<HashMap<i64, EpisodeSettings>> {
        if patient_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(&format!(
            "{EPISODE_SETTINGS} WHERE e.patient_id = ANY($1) AND e.discharged_at IS NULL"
        ))
        .bind(patient_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(episode_settings_row)
            .map(|s| (s.patient_id, s))
            .collect())
    }

    async fn live_alert_rules(&self, patient_ids: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        if patient_ids.is_empty() {
            return Ok(out);
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT patient_id, rule_id FROM alerts
             WHERE patient_id = ANY($1) AND status != 'resolved' ORDER BY patient_id, rule_id",
        )
        .bind(patient_ids)
        .fetch_all(&self.pool)
        .await?;
        for (patient, rule) in rows {
            out.entry(patient).or_default().push(rule);
        }
        Ok(out)
    }

    async fn readings_for_scoring(
        &self,
        spans: &[(i64, DateTime<Utc>, DateTime<Utc>)],
        codes: &[&str],
    ) -> Result<HashMap<i64, ScoringReads>> {
        if spans.is_empty() || codes.is_empty() {
            return Ok(HashMap::new());
        }
        // One statement for every patient: per code asked for, the newest
        // row at the span's start and the rows within it.
        let patients: Vec<i64> = spans.iter().map(|s| s.0).collect();
        let firsts: Vec<DateTime<Utc>> = spans.iter().map(|s| ts(s.1)).collect();
        let lasts: Vec<DateTime<Utc>> = spans.iter().map(|s| ts(s.2)).collect();
        let rows = sqlx::query(&format!(
            "WITH req(patient_id, t_first, t_last) AS (
                SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[])),
             codes(patient_id, t_first, t_last, code) AS (
                SELECT r.patient_id, r.t_first, r.t_last, k.code FROM req r CROSS JOIN unnest($4::text[]) AS k(code))
             SELECT r.*, 0 AS part, c.patient_id FROM codes c CROSS JOIN LATERAL (
                SELECT {OBS_COLUMNS} FROM observations o
                WHERE o.patient_id = c.patient_id AND o.code = c.code AND o.measured_at <= c.t_first
                ORDER BY o.measured_at DESC, o.id DESC LIMIT 1) r
             UNION ALL
             SELECT r.*, 1 AS part, c.patient_id FROM codes c CROSS JOIN LATERAL (
                SELECT {OBS_COLUMNS} FROM observations o
                WHERE o.patient_id = c.patient_id AND o.code = c.code
                  AND o.measured_at >= c.t_first AND o.measured_at <= c.t_last) r
             WHERE c.t_last > c.t_first
             ORDER BY 10, 11, 2, 6, 1"
        ))
        .bind(&patients)
        .bind(&firsts)
        .bind(&lasts)
        .bind(codes)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<i64, ScoringReads> = HashMap::new();
        for r in rows {
            let reads = out.entry(r.get(10)).or_default();
            if r.get::<i32, _>(9) == 0 {
                reads.base.push(obs_row(&r));
            } else {
                reads.later.push(obs_row(&r));
            }
        }
        Ok(out)
    }

    async fn episode_update(
        &self,
        patient_id: i64,
        u: EpisodeUpdate,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Lock the open episode so two clinicians' changes apply one after the other.
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM episodes WHERE patient_id = $1 AND discharged_at IS NULL FOR UPDATE",
        )
        .bind(patient_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!(
                "open episode for patient {patient_id}"
            )));
        };
        let at = ts(at);
        if let Some(scale) = u.spo2_scale {
            sqlx::query("UPDATE episodes SET spo2_scale = $1, spo2_scale_set_by = $2, spo2_scale_set_at = $3 WHERE id = $4")
                .bind(i16::from(scale))
                .bind(by)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(o2) = u.oxygen {
            sqlx::query("UPDATE episodes SET oxygen = $1, oxygen_set_by = $2, oxygen_set_at = $3 WHERE id = $4")
                .bind(o2)
                .bind(by)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(acvpu) = &u.acvpu {
            sqlx::query("UPDATE episodes SET acvpu = $1, acvpu_set_by = $2, acvpu_set_at = $3 WHERE id = $4")
                .bind(acvpu)
                .bind(by)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(m) = u.obs_every_minutes {
            // 0: back to the pathway's, recorded as who went back and when.
            sqlx::query("UPDATE episodes SET obs_every_min = $1, obs_every_set_by = $2, obs_every_set_at = $3 WHERE id = $4")
                .bind((m > 0).then(|| i32::try_from(m).unwrap_or(i32::MAX)))
                .bind(by)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(plan) = &u.escalation_plan {
            // `not-recorded`: cleared, recorded as who cleared it and when.
            let plan = ESCALATION_PLANS.contains(&plan.as_str()).then_some(plan);
            sqlx::query("UPDATE episodes SET escalation_plan = $1, escalation_note = $2, escalation_set_by = $3, escalation_set_at = $4 WHERE id = $5")
                .bind(plan)
                .bind(plan.and(u.escalation_note.as_ref()))
                .bind(by)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = u.under_16 {
            sqlx::query("UPDATE episodes SET under_16 = $1 WHERE id = $2")
                .bind(v)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = u.pregnant {
            sqlx::query("UPDATE episodes SET pregnant = $1 WHERE id = $2")
                .bind(v)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn score_insert(&self, s: NewScore) -> Result<i64> {
        insert_score(&self.pool, &s).await
    }

    async fn scores_page(&self, page: &HistoryPage) -> Result<Vec<ScoreRow>> {
        let rows = self.score_page_rows(SCORE_COLUMNS, page).await?;
        Ok(rows.iter().map(score_row).collect())
    }

    async fn scores_count(&self, page: &HistoryPage) -> Result<i64> {
        let (op, since) = since_bound(page.since);
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM scores
             WHERE patient_id = $1
               AND scored_at {op} COALESCE($2, '-infinity'::timestamptz)
               AND scored_at <= COALESCE($3, 'infinity'::timestamptz)"
        ))
        .bind(page.patient_id)
        .bind(since)
        .bind(page.to.map(ts))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn score_levels_page(&self, page: &HistoryPage) -> Result<Vec<ScoreLevel>> {
        let rows = self
            .score_page_rows("SELECT id, scored_at, total FROM scores", page)
            .await?;
        Ok(rows
            .iter()
            .map(|r| ScoreLevel {
                id: r.get(0),
                scored_at: r.get(1),
                total: r.get(2),
            })
            .collect())
    }

    async fn scores_by_id(&self, patient_id: i64, ids: &[i64]) -> Result<Vec<ScoreRow>> {
        let rows = sqlx::query(&format!(
            "{SCORE_COLUMNS} WHERE patient_id = $1 AND id = ANY($2)
             ORDER BY scored_at, id"
        ))
        .bind(patient_id)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(score_row).collect())
    }

    async fn scores_newest(
        &self,
        patient_id: i64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<ScoreRow>> {
        let rows = sqlx::query(&format!(
            "{SCORE_COLUMNS} WHERE patient_id = $1
               AND scored_at >= COALESCE($2, '-infinity'::timestamptz)
               AND scored_at <= COALESCE($3, 'infinity'::timestamptz)
             ORDER BY scored_at DESC, id DESC LIMIT $4"
        ))
        .bind(patient_id)
        .bind(from.map(ts))
        .bind(to.map(ts))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().rev().map(score_row).collect())
    }

    async fn score_row(&self, patient_id: i64, id: i64) -> Result<Option<ScoreRow>> {
        Ok(sqlx::query(&format!(
            "{SCORE_COLUMNS} WHERE patient_id = $1 AND id = $2"
        ))
        .bind(patient_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(score_row))
    }

    async fn scores_earlier(
        &self,
        patients: &[(i64, Option<DateTime<Utc>>)],
        then: DateTime<Utc>,
    ) -> Result<Vec<(i64, EarlierScore)>> {
        if patients.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = patients.iter().map(|p| p.0).collect();
        let since: Vec<Option<DateTime<Utc>>> = patients.iter().map(|p| p.1.map(ts)).collect();
        let rows = sqlx::query(
            "SELECT p.id, s.total, s.risk, s.partial, s.scored_at
             FROM unnest($1::bigint[], $2::timestamptz[]) AS p(id, since)
             CROSS JOIN LATERAL (
                 SELECT total, risk, partial, scored_at FROM (
                     (SELECT total, risk, partial, scored_at, 0 AS k FROM scores
                      WHERE patient_id = p.id AND scored_at >= COALESCE(p.since, '-infinity')
                        AND scored_at <= $3
                      ORDER BY scored_at DESC, id DESC LIMIT 1)
                     UNION ALL
                     (SELECT total, risk, partial, scored_at, 1 FROM scores
                      WHERE patient_id = p.id AND scored_at >= COALESCE(p.since, '-infinity')
                      ORDER BY scored_at, id LIMIT 1)
                 ) u ORDER BY k LIMIT 1) s",
        )
        .bind(&ids)
        .bind(&since)
        .bind(ts(then))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    EarlierScore {
                        total: r.get(1),
                        risk: r.get(2),
                        partial: r.get(3),
                        scored_at: r.get(4),
                    },
                )
            })
            .collect())
    }

    async fn latest_score_time(&self, patient_id: i64) -> Result<Option<DateTime<Utc>>> {
        let t: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT MAX(scored_at) FROM scores WHERE patient_id = $1")
                .bind(patient_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(t)
    }

    async fn store_ecg_results(
        &self,
        sets: &[PatchBeats],
        obs: &[NewDerivedObservation],
    ) -> Result<Vec<i64>> {
        let beats = || {
            sets.iter()
                .flat_map(|s| s.beats.iter().map(move |b| (s, b)))
        };
        if beats().next().is_none() && obs.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        if beats().next().is_some() {
            // One statement for every patch's beats: they arrive a few hundred at a time.
            let device: Vec<&str> = beats().map(|(s, _)| s.device_id.as_str()).collect();
            let patient: Vec<i64> = beats().map(|(s, _)| s.patient_id).collect();
            let t_ms: Vec<i64> = beats().map(|(_, b)| b.t_ms).collect();
            let rr_ms: Vec<Option<i64>> = beats().map(|(_, b)| b.rr_ms.map(i64::from)).collect();
            sqlx::query(
                "INSERT INTO ecg_beats (device_id, t_ms, patient_id, rr_ms)
                 SELECT b.device_id, b.t_ms, b.patient_id, b.rr_ms
                 FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS b(device_id, patient_id, t_ms, rr_ms)
                 ON CONFLICT (device_id, t_ms) DO NOTHING",
            )
            .bind(&device)
            .bind(&patient)
            .bind(&t_ms)
            .bind(&rr_ms)
            .execute(&mut *tx)
            .await?;
        }
        let mut ids = Vec::with_capacity(obs.len());
        for o in obs {
            let (num, text) = split_value(&o.observation.value);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO observations (patient_id, device_id, seq, code, value_num, value_text, unit, measured_at, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(o.patient_id)
            .bind(&o.device_id)
            .bind(i64::from(o.seq))
            .bind(&o.observation.code)
            .bind(num)
            .bind(text)
            .bind(&o.observation.unit)
            .bind(ts(o.measured_at))
            .bind(ts(o.received_at))
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn ecg_range(
        &self,
        patient_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(Vec<EcgChunkRow>, Vec<BeatRow>)> {
        // A chunk overlaps when it starts before `to` and ends after `from`;
        // chunks are at most a few seconds long, so starting within 60 s
        // before `from` is a safe lower bound for the index scan.
        let chunks = sqlx::query(
            "SELECT device_id, seq, t0_ms, fs_hz, uv_per_count, n_samples, encoding, samples FROM ecg_chunks
             WHERE patient_id = $1 AND t0_ms >= $2 - 60000 AND t0_ms <= $3
               AND t0_ms + (n_samples * 1000) / fs_hz >= $2
             ORDER BY t0_ms, device_id",
        )
        .bind(patient_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| chunk_row(r, 0))
        .collect();
        let beats =
            sqlx::query("SELECT t_ms, rr_ms FROM ecg_beats WHERE patient_id = $1 AND t_ms >= $2 AND t_ms <= $3 ORDER BY t_ms")
                .bind(patient_id)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|r| BeatRow { t_ms: r.get(0), rr_ms: r.get::<Option<i64>, _>(1).map(|v| v as u32) })
                .collect();
        Ok((chunks, beats))
    }

    async fn delete_history_before(&self, kind: HistoryKind, before: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = match kind {
            HistoryKind::Observations => {
                let n = sqlx::query("DELETE FROM observations WHERE measured_at < $1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM obs_messages WHERE measured_at < $1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await?;
                n
            }
            HistoryKind::Scores => sqlx::query("DELETE FROM scores WHERE scored_at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        tx.commit().await?;
        Ok(n)
    }

    async fn ecg_delete_before(&self, before_ms: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM ecg_chunks WHERE t0_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM ecg_beats WHERE t_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn score_and_fire(
        &self,
        scores: &[NewScore],
        firings: &[BatchFiring],
        now: DateTime<Utc>,
        progress: &PassProgress,
    ) -> Result<Vec<Option<(AlertRow, FiringOutcome)>>> {
        if scores.is_empty() && firings.is_empty() && progress.is_empty() {
            return Ok(Vec::new());
        }
        let mut statements = score_statements(scores);
        let mut tx = self.pool.begin().await?;
        // Scores take no locks another writer waits on; the alerts then in
        // their lock order.
        scores_in(&mut tx, &mut statements).await?;
        let out = fire_many_in(&mut tx, firings, now).await?;
        progress_in(&mut tx, progress).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn active_patients(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT patient_id FROM episodes WHERE discharged_at IS NULL ORDER BY patient_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn assigned_devices(&self) -> Result<Vec<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT patient_id, id FROM devices WHERE patient_id IS NOT NULL AND revoked_at IS NULL ORDER BY patient_id, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn worker_progress(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT observation_id FROM worker_progress WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn set_worker_progress(&self, progress: &PassProgress) -> Result<()> {
        if progress.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        progress_in(&mut tx, progress).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ecg_unanalysed(
        &self,
        after: Option<(&str, u32)>,
        limit: i64,
    ) -> Result<Vec<UnanalysedChunk>> {
        let (device, seq) = after.map_or(("", -1), |(d, s)| (d, i64::from(s)));
        let rows = sqlx::query(
            "SELECT c.device_id, c.seq, c.t0_ms, c.fs_hz, c.uv_per_count, c.n_samples, c.encoding, c.samples,
                    c.patient_id, p.ward_id, c.received_at
             FROM devices d
             LEFT JOIN ecg_progress g ON g.device_id = d.id
             JOIN ecg_chunks c ON c.device_id = d.id AND c.seq > COALESCE(g.seq, -1)
             JOIN patients p ON p.id = c.patient_id
             WHERE (c.device_id, c.seq) > ($1, $2)
             ORDER BY c.device_id, c.seq LIMIT $3",
        )
        .bind(device)
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| UnanalysedChunk {
                patient_id: r.get(8),
                ward_id: r.get(9),
                received_at: r.get(10),
                chunk: chunk_row(r, 0),
            })
            .collect())
    }

    async fn observations_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, ObservationRow)>> {
        let rows = sqlx::query(
            "SELECT o.id, o.code, o.value_num, o.value_text, o.unit, o.measured_at, o.received_at, o.device_id, o.seq, o.patient_id
             FROM observations o
             WHERE o.id > $1
               AND EXISTS (SELECT 1 FROM obs_messages m WHERE m.device_id = o.device_id AND m.seq = o.seq)
             ORDER BY o.id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(9), obs_row(r))).collect())
    }

    async fn alert_act(
        &self,
        alert_id: i64,
        action: AlertAction,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<AlertRow> {
        let mut tx = self.pool.begin().await?;
        let at = ts(at);
        let n = match &action {
            AlertAction::Acknowledge => sqlx::query(
                "UPDATE alerts SET status = 'acknowledged', escalate_at = NULL, updated_at = $1
                 WHERE id = $2 AND status IN ('open', 'escalated')",
            )
            .bind(at)
            .bind(alert_id),
            AlertAction::Escalate => sqlx::query(
                "UPDATE alerts SET status = 'escalated', escalate_at = NULL, updated_at = $1
                 WHERE id = $2 AND status IN ('open', 'acknowledged')",
            )
            .bind(at)
            .bind(alert_id),
            AlertAction::Resolve { outcome, note } => sqlx::query(
                "UPDATE alerts SET status = 'resolved', escalate_at = NULL, resolved_at = $1, updated_at = $1,
                        outcome = $3, note = $4
                 WHERE id = $2 AND status <> 'resolved'",
            )
            .bind(at)
            .bind(alert_id)
            .bind(outcome)
            .bind(note),
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let (name, detail) = match &action {
            AlertAction::Acknowledge => ("acknowledged", serde_json::json!({})),
            AlertAction::Escalate => ("escalated", serde_json::json!({})),
            AlertAction::Resolve { outcome, note } => (
                "resolved",
                serde_json::json!({"outcome": outcome, "note": note}),
            ),
        };
        if n == 0 {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT status FROM alerts WHERE id = $1")
                    .bind(alert_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match exists {
                None => StoreError::NotFound(format!("alert {alert_id}")),
                Some(status) => {
                    StoreError::Conflict(format!("alert is {status}; cannot mark it {name}"))
                }
            });
        }
        insert_event(&mut tx, alert_id, at, actor, name, &detail).await?;
        tx.commit().await?;
        self.alert_get(alert_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("alert {alert_id}")))
    }

    async fn alert_get(&self, alert_id: i64) -> Result<Option<AlertRow>> {
        let row = sqlx::query(&format!("{ALERT_COLUMNS} WHERE id = $1"))
            .bind(alert_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| alert_row(&r)).transpose()
    }

    async fn alerts_list(
        &self,
        ward_ids: &[i64],
        status: Option<AlertStatus>,
        patient_id: Option<i64>,
    ) -> Result<Vec<AlertRow>> {
        let mut out = Vec::new();
        for w in ward_ids {
            // Two statements, not one with `($3 IS NULL OR patient_id = $3)`:
            // a prepared statement's generic plan walks the whole ward's
            // alerts even when one patient's are asked for.
            let sql = match patient_id {
                Some(_) => format!(
                    "{ALERT_COLUMNS} WHERE patient_id = $3 AND ward_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY id"
                ),
                None => format!(
                    "{ALERT_COLUMNS} WHERE ward_id = $1 AND ($2::text IS NULL OR status = $2) AND $3::bigint IS NULL ORDER BY id"
                ),
            };
            let rows = sqlx::query(&sql)
                .bind(w)
                .bind(status.map(AlertStatus::as_str))
                .bind(patient_id)
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                out.push(alert_row(&r)?);
            }
        }
        Ok(out)
    }

    async fn alerts_resolved_since(
        &self,
        ward_ids: &[i64],
        since: DateTime<Utc>,
    ) -> Result<Vec<ResolvedAlert>> {
        let mut out = Vec::new();
        for ward in ward_ids {
            let rows = sqlx::query(RESOLVED_SINCE)
                .bind(ward)
                .bind(ts(since))
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                out.push(ResolvedAlert {
                    alert: alert_row(&r)?,
                    patient_name: r.get::<Option<String>, _>(16).unwrap_or_default(),
                    nhs_number: r.get::<Option<String>, _>(17).unwrap_or_default(),
                    resolved_by: r
                        .get::<Option<String>, _>(18)
                        .unwrap_or_else(|| "system".into()),
                });
            }
        }
        out.sort_by(|a, b| {
            (b.alert.resolved_at, b.alert.id).cmp(&(a.alert.resolved_at, a.alert.id))
        });
        Ok(out)
    }

    async fn ward_alert_courses(
        &self,
        ward_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AlertCourse>> {
        let rows = sqlx::query(
            "SELECT a.severity,
                    (SELECT MIN(e.at) FROM alert_events e WHERE e.alert_id = a.id AND e.action = 'raised') AS raised,
                    (SELECT MIN(e.at) FROM alert_events e WHERE e.alert_id = a.id AND e.action = 'acknowledged'),
                    (SELECT MIN(e.at) FROM alert_events e WHERE e.alert_id = a.id AND e.action = 'escalated'),
                    EXISTS (SELECT 1 FROM alert_events e WHERE e.alert_id = a.id AND e.action = 'escalated' AND e.actor = 'system'),
                    a.resolved_at, a.outcome
             FROM alerts a
             WHERE a.ward_id = $1
               AND EXISTS (SELECT 1 FROM alert_events e
                           WHERE e.alert_id = a.id AND e.action = 'raised' AND e.at >= $2 AND e.at <= $3)
             ORDER BY raised, a.id",
        )
        .bind(ward_id)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AlertCourse {
                severity: r.get(0),
                raised: r.get(1),
                acknowledged: r.get(2),
                escalated: r.get(3),
                escalated_by_timer: r.get(4),
                resolved: r.get(5),
                outcome: r.get(6),
            })
            .collect())
    }

    async fn ward_stays(
        &self,
        ward_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Stay>> {
        let rows = sqlx::query(
            "SELECT e.admitted_at, e.discharged_at FROM episodes e JOIN patients p ON p.id = e.patient_id
             WHERE p.ward_id = $1 AND e.admitted_at <= $3 AND (e.discharged_at IS NULL OR e.discharged_at >= $2)
             ORDER BY e.admitted_at, e.id",
        )
        .bind(ward_id)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Stay {
                admitted_at: r.get(0),
                discharged_at: r.get(1),
            })
            .collect())
    }

    async fn alerts_due(&self, now: DateTime<Utc>) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(&format!(
            "{ALERT_COLUMNS} WHERE status = 'open' AND escalate_at IS NOT NULL AND escalate_at <= $1 ORDER BY escalate_at"
        ))
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_row).collect()
    }

    async fn alert_events(&self, alert_id: i64) -> Result<Vec<AlertEventRow>> {
        let rows = sqlx::query("SELECT at, actor, action, detail::text FROM alert_events WHERE alert_id = $1 ORDER BY id")
            .bind(alert_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AlertEventRow {
                at: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                detail: json_of(r.get(3)),
            })
            .collect())
    }

    async fn alert_events_after(&self, after: i64, limit: i64) -> Result<Vec<AlertEventRef>> {
        let rows = sqlx::query(
            "SELECT id, alert_id, at, actor, action FROM alert_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AlertEventRef {
                id: r.get(0),
                alert_id: r.get(1),
                at: r.get(2),
                actor: r.get(3),
                action: r.get(4),
            })
            .collect())
    }

    async fn notify_progress(&self) -> Result<i64> {
        sqlx::query(
            "INSERT INTO notify_progress (id, event_id) \
             SELECT 1, COALESCE(MAX(id), 0) FROM alert_events \
             ON CONFLICT (id) DO NOTHING",
        )
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT event_id FROM notify_progress WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn set_notify_progress(&self, event_id: i64) -> Result<()> {
        sqlx::query("UPDATE notify_progress SET event_id = GREATEST(event_id, $1) WHERE id = 1")
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn notify_lease(&self, holder: &str, lapse: std::time::Duration) -> Result<bool> {
        // The database's clock, not each instance's: two hosts whose clocks
        // differ still agree on when a lease has lapsed.
        let r = sqlx::query(
            "UPDATE notify_progress SET holder = $1, lease_until = now() + make_interval(secs => $2) \
             WHERE id = 1 AND (holder IS NULL OR holder = $1 OR lease_until IS NULL OR lease_until < now())",
        )
        .bind(holder)
        .bind(lapse.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn notify_release(&self, holder: &str) -> Result<()> {
        sqlx::query(
            "UPDATE notify_progress SET holder = NULL, lease_until = NULL WHERE id = 1 AND holder = $1",
        )
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn note_add(
        &self,
        patient_id: i64,
        author: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<NoteRow> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO patient_notes (patient_id, at, author, text) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(patient_id)
        .bind(ts(at))
        .bind(author)
        .bind(text)
        .fetch_one(&self.pool)
        .await?;
        Ok(NoteRow {
            id,
            patient_id,
            at: ts(at),
            author: author.into(),
            text: text.into(),
        })
    }

    async fn notes_list(&self, patient_id: i64) -> Result<Vec<NoteRow>> {
        let rows = sqlx::query(
            "SELECT id, at, author, text FROM patient_notes WHERE patient_id = $1 ORDER BY id DESC",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| NoteRow {
                id: r.get(0),
                patient_id,
                at: r.get(1),
                author: r.get(2),
                text: r.get(3),
            })
            .collect())
    }

    async fn notes_since(&self, ward_ids: &[i64], since: DateTime<Utc>) -> Result<Vec<WardNote>> {
        let mut out = Vec::new();
        for ward in ward_ids {
            let rows = sqlx::query(
                "SELECT n.id, n.patient_id, n.at, n.author, n.text, p.name, p.nhs_number
                 FROM patient_notes n JOIN patients p ON p.id = n.patient_id
                 WHERE p.ward_id = $1 AND n.at >= $2",
            )
            .bind(ward)
            .bind(ts(since))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push(WardNote {
                    note: NoteRow {
                        id: r.get(0),
                        patient_id: r.get(1),
                        at: r.get(2),
                        author: r.get(3),
                        text: r.get(4),
                    },
                    ward_id: *ward,
                    patient_name: r.get(5),
                    nhs_number: r.get(6),
                });
            }
        }
        out.sort_by_key(|n| std::cmp::Reverse((n.note.at, n.note.id)));
        Ok(out)
    }

    async fn plans_since(&self, ward_ids: &[i64], since: DateTime<Utc>) -> Result<Vec<WardPlan>> {
        let mut out = Vec::new();
        for ward in ward_ids {
            let rows = sqlx::query(
                "SELECT p.id, p.name, p.nhs_number, e.escalation_plan, e.escalation_note,
                        e.escalation_set_by, e.escalation_set_at
                 FROM episodes e JOIN patients p ON p.id = e.patient_id
                 WHERE p.ward_id = $1 AND e.discharged_at IS NULL
                   AND e.escalation_set_by IS NOT NULL AND e.escalation_set_at >= $2",
            )
            .bind(ward)
            .bind(ts(since))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push(WardPlan {
                    patient_id: r.get(0),
                    ward_id: *ward,
                    patient_name: r.get(1),
                    nhs_number: r.get(2),
                    escalation_plan: r.get(3),
                    escalation_note: r.get(4),
                    set_by: r.get(5),
                    set_at: r.get(6),
                });
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse((p.set_at, p.patient_id)));
        Ok(out)
    }

    async fn follow_up_add(
        &self,
        patient_id: i64,
        due_at: DateTime<Utc>,
        reason: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<FollowUp> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO follow_ups (patient_id, episode_id, due_at, reason, set_by, set_at)
             SELECT $1, e.id, $2, $3, $4, $5 FROM episodes e
             WHERE e.patient_id = $1 AND e.discharged_at IS NULL
             RETURNING id",
        )
        .bind(patient_id)
        .bind(ts(due_at))
        .bind(reason)
        .bind(by)
        .bind(ts(at))
        .fetch_optional(&self.pool)
        .await?;
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!(
                "open episode for patient {patient_id}"
            )));
        };
        Ok(FollowUp {
            id,
            patient_id,
            due_at: ts(due_at),
            reason: reason.into(),
            set_by: by.into(),
            set_at: ts(at),
        })
    }

    async fn follow_ups_pending(&self, patient_id: i64) -> Result<Vec<FollowUp>> {
        let rows = sqlx::query(
            "SELECT f.id, f.due_at, f.reason, f.set_by, f.set_at FROM follow_ups f
             JOIN episodes e ON e.id = f.episode_id AND e.discharged_at IS NULL
             WHERE f.patient_id = $1 AND f.raised_at IS NULL AND f.cancelled_at IS NULL
             ORDER BY f.due_at, f.id",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(FollowUp {
                    id: r.get(0),
                    patient_id,
                    due_at: r.get(1),
                    reason: r.get(2),
                    set_by: r.get(3),
                    set_at: r.get(4),
                })
            })
            .collect()
    }

    async fn follow_up_cancel(
        &self,
        patient_id: i64,
        id: i64,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<FollowUp> {
        let row = sqlx::query(
            "UPDATE follow_ups SET cancelled_by = $3, cancelled_at = $4
             WHERE id = $1 AND patient_id = $2 AND raised_at IS NULL AND cancelled_at IS NULL
             RETURNING due_at, reason, set_by, set_at",
        )
        .bind(id)
        .bind(patient_id)
        .bind(by)
        .bind(ts(at))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(FollowUp {
                id,
                patient_id,
                due_at: r.get(0),
                reason: r.get(1),
                set_by: r.get(2),
                set_at: r.get(3),
            }),
            None => {
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM follow_ups WHERE id = $1 AND patient_id = $2",
                )
                .bind(id)
                .bind(patient_id)
                .fetch_optional(&self.pool)
                .await?;
                Err(match exists {
                    Some(_) => StoreError::Conflict(format!(
                        "follow-up {id} is in the alert queue already, or was cancelled"
                    )),
                    None => StoreError::NotFound(format!("follow-up {id}")),
                })
            }
        }
    }

    async fn follow_ups_upcoming(
        &self,
        ward_ids: &[i64],
        until: DateTime<Utc>,
    ) -> Result<Vec<WardFollowUp>> {
        let mut out = Vec::new();
        for ward in ward_ids {
            let rows = sqlx::query(
                "SELECT f.id, f.patient_id, f.due_at, f.reason, f.set_by, f.set_at, p.name, p.nhs_number
                 FROM follow_ups f JOIN patients p ON p.id = f.patient_id
                 JOIN episodes e ON e.id = f.episode_id AND e.discharged_at IS NULL
                 WHERE p.ward_id = $1 AND f.raised_at IS NULL AND f.cancelled_at IS NULL
                   AND f.due_at <= $2",
            )
            .bind(ward)
            .bind(ts(until))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push(WardFollowUp {
                    follow_up: FollowUp {
                        id: r.get(0),
                        patient_id: r.get(1),
                        due_at: r.get(2),
                        reason: r.get(3),
                        set_by: r.get(4),
                        set_at: r.get(5),
                    },
                    ward_id: *ward,
                    patient_name: r.get(6),
                    nhs_number: r.get(7),
                });
            }
        }
        out.sort_by_key(|f| (f.follow_up.due_at, f.follow_up.id));
        Ok(out)
    }

    async fn follow_ups_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueFollowUp>> {
        let rows = sqlx::query(
            "SELECT f.id, f.patient_id, f.due_at, f.reason, f.set_by, f.set_at, p.ward_id
             FROM follow_ups f JOIN patients p ON p.id = f.patient_id
             WHERE f.raised_at IS NULL AND f.cancelled_at IS NULL AND f.due_at <= $1
             ORDER BY f.due_at, f.id LIMIT $2",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(DueFollowUp {
                    follow_up: FollowUp {
                        id: r.get(0),
                        patient_id: r.get(1),
                        due_at: r.get(2),
                        reason: r.get(3),
                        set_by: r.get(4),
                        set_at: r.get(5),
                    },
                    ward_id: r.get(6),
                })
            })
            .collect()
    }

    async fn follow_up_raised(
        &self,
        id: i64,
        alert_id: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE follow_ups SET raised_at = $2, alert_id = $3
             WHERE id = $1 AND raised_at IS NULL",
        )
        .bind(id)
        .bind(ts(at))
        .bind(alert_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn login_failures(
        &self,
        username: &str,
        addr: &str,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND username = $1 AND at >= $3
                  AND at > COALESCE((SELECT MAX(at) FROM audit_log WHERE action = 'login' AND username = $1), '-infinity'::timestamptz)),
               (SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND addr = $2 AND at >= $3)",
        )
        .bind(username)
        .bind(addr)
        .bind(ts(since))
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get(0), row.get(1)))
    }

    async fn audit_append(&self, e: AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, user_id, username, action, patient_id, detail, addr)
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
        )
        .bind(ts(e.at))
        .bind(e.user_id)
        .bind(&e.username)
        .bind(&e.action)
        .bind(e.patient_id)
        .bind(e.detail.to_string())
        .bind(&e.addr)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_query(&self, q: AuditQuery) -> Result<Vec<AuditEntry>> {
        // SQLite reads a negative LIMIT as "no limit"; PostgreSQL's
        // spelling of that is LIMIT NULL.
        let limit = Some(q.limit.unwrap_or(1000)).filter(|n| *n >= 0);
        let rows = sqlx::query(
            "SELECT at, user_id, username, action, patient_id, detail::text, addr FROM audit_log
             WHERE ($1::bigint IS NULL OR patient_id = $1) AND ($2::bigint IS NULL OR user_id = $2)
               AND at >= COALESCE($3, '-infinity'::timestamptz)
               AND at <= COALESCE($4, 'infinity'::timestamptz)
               AND ($6::bigint[] IS NULL
                    OR patient_id IN (SELECT id FROM patients WHERE ward_id = ANY($6))
                    OR (patient_id IS NULL
                        AND (user_id IS NULL
                             OR user_id IN (SELECT user_id FROM user_wards WHERE ward_id = ANY($6)))))
             ORDER BY id DESC LIMIT $5",
        )
        .bind(q.patient_id)
        .bind(q.user_id)
        .bind(q.from.map(ts))
        .bind(q.to.map(ts))
        .bind(limit)
        .bind(q.wards)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                at: r.get(0),
                user_id: r.get(1),
                username: r.get(2),
                action: r.get(3),
                patient_id: r.get(4),
                detail: json_of(r.get(5)),
                addr: r.get(6),
            })
            .collect())
    }

    fn file_sizes(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    async fn backup_to(&self, _path: &std::path::Path) -> Result<u64> {
        Err(StoreError::Config(
            "the database is PostgreSQL: back it up with its own tools (pg_basebackup with WAL archiving, or pg_dump; docs/deployment.md)".into(),
        ))
    }

    async fn stats(&self) -> Result<Stats> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM obs_messages), (SELECT COUNT(*) FROM observations),
                    (SELECT COUNT(*) FROM rejected_messages),
                    (SELECT COUNT(*) FROM patients p JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL),
                    (SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL),
                    (SELECT COUNT(*) FROM ecg_chunks),
                    (SELECT COUNT(*) FROM alerts WHERE status <> 'resolved')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Stats {
            obs_messages: r.get(0),
            observations: r.get(1),
            rejected: r.get(2),
            ecg_chunks: r.get(5),
            alerts_open: r.get(6),
            patients: r.get(3),
            devices: r.get(4),
        })
    }
}

/// One score row, on the pool or inside a transaction.
async fn insert_score<'e, E: sqlx::Executor<'e, Database = sqlx::Postgres>>(
    e: E,
    s: &NewScore,
) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO scores (patient_id, scored_at, computed_at, total, risk, partial, detail, obs_ids)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) RETURNING id",
    )
    .bind(s.patient_id)
    .bind(ts(s.scored_at))
    .bind(ts(s.computed_at))
    .bind(s.total)
    .bind(&s.risk)
    .bind(s.partial)
    .bind(s.detail.to_string())
    .bind(&s.obs_ids)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Replace a known device's last status; 0 rows for an unknown device.
async fn status_upsert(
    conn: &mut sqlx::PgConnection,
    device_id: &str,
    report: &DeviceStatusReport,
) -> Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO device_status (device_id, online, battery_pct, signal, fw, reported_at)
         SELECT id, $1, $2, $3, $4, $5 FROM devices WHERE id = $6
         ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, battery_pct = excluded.battery_pct,
             signal = excluded.signal, fw = excluded.fw, reported_at = excluded.reported_at",
    )
    .bind(report.online)
    .bind(report.battery_pct.map(i16::from))
    .bind(&report.signal)
    .bind(&report.fw)
    .bind(ts(report.reported_at))
    .bind(device_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Revoke an account's live tokens at `at` (only its sessions when
/// `sessions_only`); how many.
async fn revoke_user_tokens(
    tx: &mut sqlx::PgConnection,
    user_id: i64,
    at: DateTime<Utc>,
    sessions_only: bool,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
         AND (kind = 'session' OR NOT $3)",
    )
    .bind(ts(at))
    .bind(user_id)
    .bind(sessions_only)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

impl PgStore {
    /// `select` (columns `FROM scores`) of a [`HistoryPage`] of a patient's
    /// scores, in history order: the rows, for the caller to read.
    async fn score_page_rows(&self, select: &str, page: &HistoryPage) -> Result<Vec<PgRow>> {
        let (op, since) = since_bound(page.since);
        Ok(sqlx::query(&format!(
            "{select} WHERE patient_id = $1
               AND scored_at {op} COALESCE($2, '-infinity'::timestamptz)
               AND scored_at <= COALESCE($3, 'infinity'::timestamptz)
               AND ($5::bigint IS NULL OR scored_at > $2 OR id > $5)
             ORDER BY scored_at, id LIMIT $4"
        ))
        .bind(page.patient_id)
        .bind(since)
        .bind(page.to.map(ts))
        .bind(page.limit)
        .bind(page.after_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
