//! The SQLite adapter: one file, WAL mode, `synchronous = FULL`.
//!
//! WAL lets the dashboard read while ingest writes; `FULL` makes a commit
//! survive power loss, not only a process crash, because an end-to-end ack
//! tells the device it may forget the reading. Times are stored as
//! RFC 3339 UTC text with millisecond precision (`…T08:15:03.000Z`), so text
//! order is time order and range scans use the index.
//!
//! Every write transaction begins `IMMEDIATE`: it takes the write lock first,
//! waiting out `busy_timeout` behind another process (the daemon and a
//! `vigil admin` command share the file). A deferred transaction that reads
//! and then writes would instead fail at once with "database is locked" when
//! the other committed in between.
//!
//! Within one process, writers also queue on an async mutex before they
//! touch SQLite's lock: SQLite's busy handler waits by sleeping (1, 2, 5,
//! 10 … up to 100 ms between tries), so the ingest's batch commit, blocked
//! for a moment behind the scorer's, would sleep far longer than the other
//! write took. The mutex hands the lock over as soon as it is free.
//!
//! Two settings keep SQLite's own bookkeeping off that lock
//! (docs/benchmarks.md, "Checkpoints off the write lock"):
//!
//! - **Checkpoints run in the background.** By default the connection that
//!   commits past 1,000 WAL pages copies the WAL back into the database
//!   file and fsyncs it, inside its commit. A ward batch dirties about that
//!   many pages, so nearly every ingest commit also checkpointed while the
//!   write lock was held. A task of this store instead runs a `PASSIVE`
//!   checkpoint every [`CHECKPOINT_EVERY`] on a pooled connection; it takes
//!   no write lock, so writers go on meanwhile, and a page written by many
//!   commits is copied once. `wal_autocheckpoint` stays on as a backstop
//!   at [`CHECKPOINT_BACKSTOP_PAGES`], so the WAL stays bounded even if
//!   the task falls behind.
//! - **The WAL file shrinks back** (`journal_size_limit`). A checkpoint
//!   cannot copy past what a reader still needs, so while one read
//!   transaction lasts (a backup's `VACUUM INTO` of a large database takes
//!   minutes) every commit meanwhile stays in the WAL, and the file grows
//!   by all of it. SQLite reuses the file from its start once it is all
//!   copied, but does not make it smaller while the database is open: a
//!   backup under load left the file at its largest until the daemon
//!   stopped (141–397 MiB after a 3–14 s backup at 2,000 readings a
//!   second, docs/benchmarks.md "A backup under load"; a database of tens
//!   of GB takes minutes, so gigabytes). With the limit, the first
//!   commit that starts the WAL over truncates it to
//!   [`WAL_SIZE_LIMIT_BYTES`], above what normal running holds.
//! - **Statement journals in memory** (`temp_store = MEMORY`). A
//!   statement inside a transaction that could fail halfway (a multi-row
//!   `INSERT … ON CONFLICT`) keeps the pages it changes in a statement
//!   journal so that it alone can be undone; by default that is a temp
//!   file, a `pwrite` per page. It is never needed after a crash (the WAL
//!   is what recovers), so memory loses no durability.

use std::collections::HashMap;
use std::ops::Bound;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::model::*;
use crate::{Result, Store, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// SQLite-backed [`Store`].
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Held by every write of this process (see the module docs).
    write: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The background checkpointer runs while any clone of this store lives.
    _checkpointer: std::sync::Arc<()>,
    /// The database file (its WAL is beside it, `-wal` added).
    path: std::path::PathBuf,
}

/// How often the background task checkpoints the WAL (see the module docs).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages past which a committing connection checkpoints by itself:
/// only when the background task has fallen behind (40 MB at 4 KiB pages).
const CHECKPOINT_BACKSTOP_PAGES: u32 = 10_000;
/// The size the WAL file is cut back to when it starts over (see the
/// module docs): above the backstop's 40 MB, so normal running never cuts
/// and grows it again.
const WAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Copy the WAL back into the database file every [`CHECKPOINT_EVERY`],
/// until every clone of the store is gone. `PASSIVE` waits for nobody: it
/// copies what no reader still needs and leaves the rest for next time.
async fn checkpoint_in_background(pool: SqlitePool, alive: std::sync::Weak<()>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if alive.strong_count() == 0 || pool.is_closed() {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            Ok(_) => failing = false,
            // Logged once per run of failures; the backstop still bounds the WAL.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "background WAL checkpoint failed; commits will checkpoint past the backstop");
            }
            Err(_) => {}
        }
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("bad stored time {s:?}: {e}")))
}

fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

/// A device's last status from the five columns from `i` (`online`,
/// `battery_pct`, `signal`, `fw`, `reported_at` of `device_status`, joined
/// so that all are NULL when it never sent one).
fn status_at(r: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Option<DeviceStatusReport>> {
    let Some(at) = r.get::<Option<String>, _>(i + 4) else {
        return Ok(None);
    };
    Ok(Some(DeviceStatusReport {
        online: r.get::<i64, _>(i) != 0,
        battery_pct: r
            .get::<Option<i64>, _>(i + 1)
            .and_then(|b| u8::try_from(b).ok()),
        signal: r.get(i + 2),
        fw: r.get(i + 3),
        reported_at: parse_ts(&at)?,
    }))
}

fn value_of(num: Option<f64>, text: Option<String>) -> ObsValue {
    match (num, text) {
        (Some(n), _) => ObsValue::Number(n),
        (None, Some(t)) => ObsValue::Text(t),
        (None, None) => ObsValue::Text(String::new()),
    }
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url` and apply migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Config(format!("database.url: not a sqlite URL: {url}")))?;
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Config(format!(
                    "database.url: cannot create {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| StoreError::Config(format!("database.url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", CHECKPOINT_BACKSTOP_PAGES.to_string())
            .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        let alive = std::sync::Arc::new(());
        tokio::spawn(checkpoint_in_background(
            pool.clone(),
            std::sync::Arc::downgrade(&alive),
        ));
        Ok(SqliteStore {
            pool,
            write: Default::default(),
            _checkpointer: alive,
            path: path.into(),
        })
    }

    /// One intake batch in one transaction; `None` (nothing stored) if
    /// `routes_at` is given and the route generation is no longer it. The
    /// check runs under the write lock, so no route change can commit
    /// between it and the batch.
    async fn uplink_batch(
        &self,
        routes_at: Option<i64>,
        obs: &[NewObsMessage],
        ecg: &[NewEcgChunk],
    ) -> Result<Option<(Vec<BatchOutcome>, Vec<BatchOutcome>)>> {
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(expected) = routes_at {
            let now: i64 = sqlx::query_scalar("SELECT n FROM route_generation WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            if now != expected {
                return Ok(None);
            }
        }
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
    async fn user_record(&self, r: &sqlx::sqlite::SqliteRow) -> Result<UserRecord> {
        let id: i64 = r.get(0);
        let role: String = r.get(2);
        Ok(UserRecord {
            id,
            username: r.get(1),
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Backend(format!("bad role {role}")))?,
            password_hash: r.get(3),
            ward_ids: self.user_wards(id).await?,
            disabled_at: r
                .get::<Option<String>, _>(4)
                .as_deref()
                .map(parse_ts)
                .transpose()?,
        })
    }

    async fn user_wards(&self, user_id: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT ward_id FROM user_wards WHERE user_id = ? ORDER BY ward_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    async fn latest_readings(&self, patient_id: i64) -> Result<Vec<LatestReading>> {
        // The newest measurement per code; ties broken by row id so the
        // answer is deterministic.
        let rows = sqlx::query(&format!(
            "{LATEST_PER_CODE} SELECT o.code, o.value_num, o.value_text, o.unit, o.measured_at, o.device_id {LATEST_PER_CODE_FROM}"
        ))
        .bind(patient_id)
        .bind("9999")
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(LatestReading {
                    code: r.get(0),
                    value: value_of(r.get(1), r.get(2)),
                    unit: r.get(3),
                    measured_at: parse_ts(&r.get::<String, _>(4))?,
                    device_id: r.get(5),
                })
            })
            .collect()
    }
}

/// The newest observation of each code for patient `?1` measured at or
/// before `?2` (ties broken by the higher row id), in two index walks that
/// never read the patient's history: the codes the patient has, by skipping
/// from one code to the next in `observations_patient_code_time`, then for
/// each code one descent to its newest row. A `GROUP BY code` over
/// `measured_at <= ?2` (what this replaced) reads every row of the patient's
/// history, so the ingest's scoring slowed down as a ward's history grew
/// (docs/benchmarks.md). Use as `{LATEST_PER_CODE} SELECT o.… {LATEST_PER_CODE_FROM}`.
const LATEST_PER_CODE: &str = "WITH RECURSIVE codes(code) AS (
        SELECT (SELECT code FROM observations WHERE patient_id = ?1 ORDER BY code LIMIT 1)
        UNION ALL
        SELECT (SELECT code FROM observations WHERE patient_id = ?1 AND code > codes.code ORDER BY code LIMIT 1)
        FROM codes WHERE codes.code IS NOT NULL)";
const LATEST_PER_CODE_FROM: &str = "FROM codes JOIN observations o ON o.id = (
        SELECT id FROM observations WHERE patient_id = ?1 AND code = codes.code AND measured_at <= ?2
        ORDER BY measured_at DESC, id DESC LIMIT 1)
     ORDER BY o.code";

const EPISODE_SETTINGS: &str =
    "SELECT p.id, p.ward_id, e.pathway, e.spo2_scale, e.spo2_scale_set_by, e.spo2_scale_set_at,
        e.oxygen, e.oxygen_set_by, e.oxygen_set_at, e.acvpu, e.acvpu_set_by, e.acvpu_set_at,
        e.under_16, e.pregnant,
        (SELECT MAX(x.discharged_at) FROM episodes x WHERE x.patient_id = e.patient_id AND x.id <> e.id),
        e.obs_every_min, e.obs_every_set_by, e.obs_every_set_at,
        e.escalation_plan, e.escalation_note, e.escalation_set_by, e.escalation_set_at
     FROM episodes e JOIN patients p ON p.id = e.patient_id";

/// The patient with an open episode and this NHS number, if any.
const OPEN_ADMISSION: &str = "SELECT p.id FROM patients p JOIN episodes e ON e.patient_id = p.id
     WHERE p.nhs_number = ?1 AND e.discharged_at IS NULL LIMIT 1";

/// The newest record of this NHS number on this ward (none of them with
/// an open episode, by [`OPEN_ADMISSION`] first).
const EARLIER_RECORD: &str =
    "SELECT id FROM patients WHERE nhs_number = ?1 AND ward_id = ?2 ORDER BY id DESC LIMIT 1";

/// A patient's episodes, newest first ([`episode_row`]).
const EPISODES: &str =
    "SELECT id, pathway, spo2_scale, spo2_scale_set_by, spo2_scale_set_at, admitted_at, discharged_at
     FROM episodes WHERE patient_id = ? ORDER BY admitted_at DESC, id DESC";

fn episode_row(r: &sqlx::sqlite::SqliteRow) -> Result<Episode> {
    Ok(Episode {
        id: r.get(0),
        pathway: r.get(1),
        spo2_scale: r.get::<i64, _>(2) as u8,
        spo2_scale_set_by: r.get(3),
        spo2_scale_set_at: parse_opt_ts(r.get(4))?,
        admitted_at: parse_ts(&r.get::<String, _>(5))?,
        discharged_at: parse_opt_ts(r.get(6))?,
    })
}

/// The worker's progress moves only up (a pass that failed and was stored
/// apart may report after a later one).
const PROGRESS_UPDATE: &str =
    "UPDATE worker_progress SET observation_id = MAX(observation_id, ?1) WHERE id = 1";

/// Move the worker's progress, observations and ECG, up to what a pass
/// names, in the caller's transaction.
async fn progress_in(tx: &mut sqlx::SqliteConnection, progress: &PassProgress) -> Result<()> {
    if let Some(id) = progress.observation_id {
        sqlx::query(PROGRESS_UPDATE)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for rows in progress.ecg_highest().chunks(500) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO ecg_progress (device_id, seq) ");
        q.push_values(rows, |mut b, (device, seq)| {
            b.push_bind(*device).push_bind(*seq);
        });
        q.push(" ON CONFLICT (device_id) DO UPDATE SET seq = MAX(seq, excluded.seq)");
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// The chunk in columns `first..first + 8` of `r`: device_id, seq, t0_ms,
/// fs_hz, uv_per_count, n_samples, encoding, samples.
fn chunk_row(r: &sqlx::sqlite::SqliteRow, first: usize) -> EcgChunkRow {
    EcgChunkRow {
        device_id: r.get(first),
        seq: r.get::<i64, _>(first + 1) as u32,
        t0_ms: r.get(first + 2),
        fs_hz: r.get::<i64, _>(first + 3) as u16,
        uv_per_count: r.get::<f64, _>(first + 4) as f32,
        n_samples: r.get::<i64, _>(first + 5) as u32,
        encoding: r.get(first + 6),
        samples: r.get(first + 7),
    }
}

/// The observation in columns `first..first + 9` of `r`: id, code,
/// value_num, value_text, unit, measured_at, received_at, device_id, seq.
const SCORE_COLUMNS: &str =
    "SELECT id, scored_at, computed_at, total, risk, partial, detail, obs_ids FROM scores";

fn score_row(r: &sqlx::sqlite::SqliteRow) -> Result<ScoreRow> {
    Ok(ScoreRow {
        id: r.get(0),
        scored_at: parse_ts(&r.get::<String, _>(1))?,
        computed_at: parse_ts(&r.get::<String, _>(2))?,
        total: r.get(3),
        risk: r.get(4),
        partial: r.get::<i64, _>(5) != 0,
        detail: serde_json::from_str(&r.get::<String, _>(6)).unwrap_or(serde_json::Value::Null),
        obs_ids: serde_json::from_str(&r.get::<String, _>(7)).unwrap_or_default(),
    })
}

/// A page's lower bound as SQL: the comparison and the time to compare with
/// (the stored text sorts as the times do).
fn since_bound(since: Bound<DateTime<Utc>>) -> (&'static str, String) {
    match since {
        Bound::Included(t) => (">=", ts(t)),
        Bound::Excluded(t) => (">", ts(t)),
        Bound::Unbounded => (">=", "0000".into()),
    }
}

fn obs_row(r: &sqlx::sqlite::SqliteRow, first: usize) -> Result<ObservationRow> {
    Ok(ObservationRow {
        id: r.get(first),
        code: r.get(first + 1),
        value: value_of(r.get(first + 2), r.get(first + 3)),
        unit: r.get(first + 4),
        measured_at: parse_ts(&r.get::<String, _>(first + 5))?,
        received_at: parse_ts(&r.get::<String, _>(first + 6))?,
        device_id: r.get(first + 7),
        seq: r.get::<i64, _>(first + 8) as u32,
    })
}

fn episode_settings_row(r: &sqlx::sqlite::SqliteRow) -> Result<EpisodeSettings> {
    Ok(EpisodeSettings {
        patient_id: r.get(0),
        ward_id: r.get(1),
        pathway: r.get(2),
        spo2_scale: r.get::<i64, _>(3) as u8,
        spo2_scale_set_by: r.get(4),
        spo2_scale_set_at: parse_opt_ts(r.get(5))?,
        oxygen: r.get::<Option<i64>, _>(6).map(|v| v != 0),
        oxygen_set_by: r.get(7),
        oxygen_set_at: parse_opt_ts(r.get(8))?,
        acvpu: r.get(9),
        acvpu_set_by: r.get(10),
        acvpu_set_at: parse_opt_ts(r.get(11))?,
        under_16: r.get::<i64, _>(12) != 0,
        pregnant: r.get::<i64, _>(13) != 0,
        earlier_stay_ended: parse_opt_ts(r.get(14))?,
        obs_every_minutes: r.get(15),
        obs_every_set_by: r.get(16),
        obs_every_set_at: parse_opt_ts(r.get(17))?,
        escalation_plan: r.get(18),
        escalation_note: r.get(19),
        escalation_set_by: r.get(20),
        escalation_set_at: parse_opt_ts(r.get(21))?,
    })
}

/// An alert's columns in the order [`alert_row`] reads them.
macro_rules! alert_fields {
    () => {
        "id, patient_id, ward_id, rule_id, severity, status, message, count, latest_value, evidence,
        raised_at, updated_at, escalate_at, resolved_at, outcome, note"
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
     FROM alerts WHERE ward_id = ?1 AND status = 'resolved' AND resolved_at >= ?2"
);

fn alert_row(r: &sqlx::sqlite::SqliteRow) -> Result<AlertRow> {
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
        evidence: serde_json::from_str(&r.get::<String, _>(9)).unwrap_or_default(),
        raised_at: parse_ts(&r.get::<String, _>(10))?,
        updated_at: parse_ts(&r.get::<String, _>(11))?,
        escalate_at: parse_opt_ts(r.get(12))?,
        resolved_at: parse_opt_ts(r.get(13))?,
        outcome: r.get(14),
        note: r.get(15),
    })
}

/// One observation row (device messages and server-derived readings alike).
/// Rows per multi-row statement: SQLite allows 32,766 bound values in one
/// statement; these stay well under it (5, 9 and 8 values a row).
const MESSAGE_ROWS: usize = 500;
const OBSERVATION_ROWS: usize = 1000;
const SCORE_ROWS: usize = 1000;
const ECG_CHUNK_ROWS: usize = 500;
const BEAT_ROWS: usize = 1000;

/// Insert observations (message, observation) in one statement; their ids,
/// in the order given ([`crate::ids_in_insert_order`]).
async fn insert_observations(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    rows: &[(&NewObsMessage, &NewObservation)],
) -> Result<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO observations (patient_id, device_id, seq, code, value_num, value_text, unit, measured_at, received_at) ",
    );
    q.push_values(rows, |mut row, (m, o)| {
        let (num, text) = match &o.value {
            ObsValue::Number(n) => (Some(*n), None),
            ObsValue::Text(t) => (None, Some(t.clone())),
        };
        row.push_bind(m.patient_id)
            .push_bind(m.device_id.clone())
            .push_bind(i64::from(m.seq))
            .push_bind(o.code.clone())
            .push_bind(num)
            .push_bind(text)
            .push_bind(o.unit.clone())
            .push_bind(ts(m.measured_at))
            .push_bind(ts(m.received_at));
    });
    q.push(" RETURNING id, device_id, seq, code");
    let back: Vec<(i64, String, i64, String)> = q
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut **tx)
        .await?;
    crate::ids_in_insert_order(back, rows)
}

async fn insert_observation(
    conn: &mut sqlx::SqliteConnection,
    patient_id: i64,
    device_id: &str,
    seq: u32,
    o: &NewObservation,
    measured_at: &str,
    received_at: &str,
) -> Result<i64> {
    let (num, text) = match &o.value {
        ObsValue::Number(n) => (Some(*n), None),
        ObsValue::Text(t) => (None, Some(t.as_str())),
    };
    let id = sqlx::query(
        "INSERT INTO observations (patient_id, device_id, seq, code, value_num, value_text, unit, measured_at, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(patient_id)
    .bind(device_id)
    .bind(seq as i64)
    .bind(&o.code)
    .bind(num)
    .bind(text)
    .bind(&o.unit)
    .bind(measured_at)
    .bind(received_at)
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    Ok(id)
}

/// One firing inside the caller's transaction: the alert's id and what
/// happened, or `None` for an `update_only` firing with no live alert, or
/// one with no live alert for a patient who has no open episode.
async fn fire_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    f: &AlertFiring,
    update_only: bool,
    now: DateTime<Utc>,
) -> Result<Option<(i64, FiringOutcome)>> {
    let live: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT id, severity, updated_at FROM alerts WHERE patient_id = ? AND rule_id = ? AND status != 'resolved'",
    )
    .bind(f.patient_id)
    .bind(&f.rule_id)
    .fetch_optional(&mut **tx)
    .await?;
    let value = f.value.to_string();
    let evidence = serde_json::to_string(&f.evidence).unwrap_or_else(|_| "[]".into());
    // `raised_from`: the severity an update raised the alert from.
    let (id, outcome, raised_from) = match live {
        None if update_only => return Ok(None),
        None => {
            // Only for a patient the ward still holds: a firing computed
            // before a discharge and stored after it raises nothing (the
            // discharge resolved what was live).
            let inserted = sqlx::query(
                "INSERT INTO alerts (patient_id, ward_id, rule_id, severity, status, message, count, latest_value, evidence,
                                     raised_at, updated_at, escalate_at)
                 SELECT ?1, ?2, ?3, ?4, 'open', ?5, 1, ?6, ?7, ?8, ?9, ?10
                 WHERE EXISTS (SELECT 1 FROM episodes WHERE patient_id = ?1 AND discharged_at IS NULL)",
            )
            .bind(f.patient_id)
            .bind(f.ward_id)
            .bind(&f.rule_id)
            .bind(f.severity.as_str())
            .bind(&f.message)
            .bind(&value)
            .bind(&evidence)
            .bind(ts(f.at))
            .bind(ts(f.at))
            .bind(f.escalate_at.map(ts))
            .execute(&mut **tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Ok(None);
            }
            (inserted.last_insert_rowid(), FiringOutcome::Raised, None)
        }
        Some((id, _, updated_at)) if parse_ts(&updated_at)? > f.at => {
            (id, FiringOutcome::Superseded, None)
        }
        Some((id, severity, _)) => {
            // Severity only ever goes up while the alert is live; a
            // higher severity also brings its (earlier) escalation time.
            let old = Severity::parse(&severity).unwrap_or(Severity::Low);
            let raise = f.severity > old;
            sqlx::query(
                "UPDATE alerts SET count = count + 1, latest_value = ?, evidence = ?, updated_at = ?, message = CASE WHEN ? THEN ? ELSE message END,
                        severity = CASE WHEN ? THEN ? ELSE severity END,
                        escalate_at = CASE WHEN ? AND status = 'open' THEN ? ELSE escalate_at END
                 WHERE id = ?",
            )
            .bind(&value)
            .bind(&evidence)
            .bind(ts(f.at))
            .bind(raise)
            .bind(&f.message)
            .bind(raise)
            .bind(f.severity.as_str())
            .bind(raise)
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    alert_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO alert_events (alert_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(alert_id)
    .bind(ts(at))
    .bind(actor)
    .bind(action)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// [`Store::store_obs_batch`] inside the caller's transaction.
async fn obs_batch_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    batch: &[NewObsMessage],
) -> Result<Vec<BatchOutcome>> {
    // A few multi-row statements, not three per message: each statement
    // is a hop to sqlx's SQLite thread, and those hops, not SQLite, were
    // most of a batch's time (docs/benchmarks.md). First the messages:
    // the ones that are new come back (the first of a (device, seq) the
    // batch repeats is the one stored).
    let mut fresh: Vec<(String, i64)> = Vec::new();
    for chunk in batch.chunks(MESSAGE_ROWS) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO obs_messages (device_id, seq, patient_id, measured_at, received_at) ",
        );
        q.push_values(chunk, |mut row, m| {
            row.push_bind(m.device_id.clone())
                .push_bind(i64::from(m.seq))
                .push_bind(m.patient_id)
                .push_bind(ts(m.measured_at))
                .push_bind(ts(m.received_at));
        });
        q.push(" ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq");
        let rows: Vec<(String, i64)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut **tx)
            .await?;
        fresh.extend(rows);
    }
    let stored = crate::stored_messages(batch, fresh);
    // Then their observations, in message order.
    let rows: Vec<(&NewObsMessage, &NewObservation)> = stored
        .iter()
        .flat_map(|m| m.obs.iter().map(move |o| (*m, o)))
        .collect();
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(OBSERVATION_ROWS) {
        ids.extend(insert_observations(tx, chunk).await?);
    }
    Ok(crate::batch_outcomes(batch, stored, ids))
}

/// [`Store::store_ecg_batch`] inside the caller's transaction.
async fn ecg_batch_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    batch: &[NewEcgChunk],
) -> Result<Vec<BatchOutcome>> {
    // Multi-row statements, as in `obs_batch_in`: the chunks that
    // are new come back, and the first of a (device, seq) the batch
    // repeats is the one stored.
    let mut fresh: Vec<(String, i64)> = Vec::new();
    for chunk in batch.chunks(ECG_CHUNK_ROWS) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO ecg_chunks (device_id, seq, patient_id, t0_ms, fs_hz, uv_per_count, n_samples, encoding, samples, received_at) ",
        );
        q.push_values(chunk, |mut row, c| {
            row.push_bind(c.device_id.clone())
                .push_bind(i64::from(c.seq))
                .push_bind(c.patient_id)
                .push_bind(c.t0_ms)
                .push_bind(i64::from(c.fs_hz))
                .push_bind(f64::from(c.uv_per_count))
                .push_bind(i64::from(c.n_samples))
                .push_bind(c.encoding.clone())
                .push_bind(c.samples.as_slice())
                .push_bind(ts(c.received_at));
        });
        q.push(" ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq");
        let rows: Vec<(String, i64)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut **tx)
            .await?;
        fresh.extend(rows);
    }
    Ok(crate::chunk_outcomes(batch, fresh))
}

/// The statements that insert `rows` (multi-row, as in `store_obs_batch`),
/// built before the transaction: a score's detail is a large JSON map, and
/// writing it out as text is work that need not hold the write lock.
fn score_statements(rows: &[NewScore]) -> Vec<sqlx::QueryBuilder<'static, sqlx::Sqlite>> {
    rows.chunks(SCORE_ROWS)
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
                    .push_bind(i64::from(s.partial))
                    .push_bind(s.detail.to_string())
                    .push_bind(serde_json::to_string(&s.obs_ids).unwrap_or_else(|_| "[]".into()));
            });
            q
        })
        .collect()
}

/// [`Store::score_insert_many`] inside the caller's transaction, from
/// [`score_statements`].
async fn scores_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    statements: &mut [sqlx::QueryBuilder<'static, sqlx::Sqlite>],
) -> Result<()> {
    for q in statements {
        q.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// [`Store::alert_fire_many`] inside the caller's transaction.
async fn fire_many_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    firings: &[BatchFiring],
    now: DateTime<Utc>,
) -> Result<Vec<Option<(AlertRow, FiringOutcome)>>> {
    let mut out = Vec::with_capacity(firings.len());
    for b in firings {
        let fired = match fire_in(tx, &b.firing, b.update_only, now).await? {
            Some((id, outcome)) => {
                let row = sqlx::query(&format!("{ALERT_COLUMNS} WHERE id = ?"))
                    .bind(id)
                    .fetch_one(&mut **tx)
                    .await?;
                Some((alert_row(&row)?, outcome))
            }
            None => None,
        };
        out.push(fired);
    }
    Ok(out)
}

/// Each patient of a ward whose latest stay ended at or after a time and
/// who has no open one, with that stay (`Store::patients_discharged`).
const RECENTLY_DISCHARGED: &str = "SELECT p.id, p.ward_id, p.name, p.nhs_number, e.pathway, e.admitted_at, e.discharged_at
     FROM patients p JOIN episodes e ON e.patient_id = p.id
     WHERE p.ward_id = ? AND e.discharged_at >= ?
       AND e.discharged_at = (SELECT MAX(l.discharged_at) FROM episodes l WHERE l.patient_id = p.id)
       AND NOT EXISTS (SELECT 1 FROM episodes o WHERE o.patient_id = p.id AND o.discharged_at IS NULL)";

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ward_add(&self, name: &str) -> Result<Ward> {
        let _write = self.write.lock().await;
        let id = sqlx::query("INSERT INTO wards (name, created_at) VALUES (?, ?)")
            .bind(name)
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await?
            .last_insert_rowid();
        Ok(Ward {
            id,
            name: name.to_string(),
        })
    }

    async fn ward_find(&self, name_or_id: &str) -> Result<Option<Ward>> {
        let row = match name_or_id.parse::<i64>() {
            Ok(id) => {
                sqlx::query("SELECT id, name FROM wards WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            }
            Err(_) => {
                sqlx::query("SELECT id, name FROM wards WHERE name = ?")
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id = sqlx::query(
            "INSERT INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&user.username)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(ts(Utc::now()))
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        for w in &user.ward_ids {
            sqlx::query("INSERT INTO user_wards (user_id, ward_id) VALUES (?, ?)")
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
            "SELECT id, username, role, password_hash, disabled_at FROM users WHERE username = ?",
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id = user_id(&mut tx, username).await?;
        sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?")
            .bind(ts(at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let revoked = revoke_user_tokens(&mut tx, id, at, false).await?;
        tx.commit().await?;
        Ok(CredentialsEnded { revoked })
    }

    async fn user_enable(&self, username: &str) -> Result<()> {
        let _write = self.write.lock().await;
        let n = sqlx::query("UPDATE users SET disabled_at = NULL WHERE username = ?")
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id = user_id(&mut tx, username).await?;
        sqlx::query("DELETE FROM user_wards WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for w in ward_ids {
            sqlx::query("INSERT OR IGNORE INTO user_wards (user_id, ward_id) VALUES (?, ?)")
                .bind(id)
                .bind(w)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn user_set_role(
        &self,
        username: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<CredentialsEnded> {
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id = user_id(&mut tx, username).await?;
        let changed = sqlx::query("UPDATE users SET role = ? WHERE id = ? AND role != ?")
            .bind(role.as_str())
            .bind(id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let revoked = if changed > 0 {
            revoke_user_tokens(&mut tx, id, at, true).await?
        } else {
            0
        };
        tx.commit().await?;
        Ok(CredentialsEnded { revoked })
    }

    async fn user_set_password(
        &self,
        username: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<CredentialsEnded> {
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id = user_id(&mut tx, username).await?;
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let revoked = revoke_user_tokens(&mut tx, id, at, true).await?;
        tx.commit().await?;
        Ok(CredentialsEnded { revoked })
    }

    async fn token_insert(&self, t: NewToken) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query("INSERT INTO tokens (user_id, token_hash, kind, created_at, expires_at, sso_sub, sso_sid) VALUES (?, ?, ?, ?, ?, ?, ?)")
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
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)
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
        let role: String = r.get(2);
        let token_id: i64 = r.get(3);
        let kind: String = r.get(4);
        let last_used = parse_ts(&r.get::<String, _>(5))?;
        if kind == "session" {
            if now - last_used > session_idle {
                return Ok(None);
            }
            // Mark use at most once a minute: enough for idle expiry,
            // without a write on every request.
            if now - last_used > chrono::Duration::minutes(1) {
                sqlx::query("UPDATE tokens SET last_used_at = ? WHERE id = ?")
                    .bind(ts(now))
                    .bind(token_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(Some(AuthUser {
            id,
            username: r.get(1),
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Backend(format!("bad role {role}")))?,
            ward_ids: self.user_wards(id).await?,
        }))
    }

    async fn token_revoke(&self, token_hash: &str, now: DateTime<Utc>) -> Result<bool> {
        let _write = self.write.lock().await;
        let n = sqlx::query(
            "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM sso_logout_tokens WHERE expires_at < ?1")
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        let known: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sso_logout_tokens WHERE jti = ?1")
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
        let fresh = sqlx::query(
            "INSERT INTO sso_logout_tokens (jti, expires_at) VALUES (?1, ?2)
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
                "UPDATE tokens SET revoked_at = ?1
                 WHERE kind = 'session' AND revoked_at IS NULL
                   AND (?2 IS NULL OR sso_sub = ?2) AND (?3 IS NULL OR sso_sid = ?3)
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // One open admission per person (the write lock keeps a racing
        // admission out between the check and the insert).
        let open: Option<i64> = sqlx::query_scalar(OPEN_ADMISSION)
            .bind(&p.nhs_number)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(other) = open {
            return Err(crate::already_admitted(other));
        }
        let now = ts(p.admitted_at);
        let earlier: Option<i64> = sqlx::query_scalar(EARLIER_RECORD)
            .bind(&p.nhs_number)
            .bind(p.ward_id)
            .fetch_optional(&mut *tx)
            .await?;
        let id = match earlier {
            Some(id) => {
                sqlx::query("UPDATE patients SET name = ? WHERE id = ?")
                    .bind(&p.name)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => sqlx::query(
                "INSERT INTO patients (ward_id, name, nhs_number, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(p.ward_id)
            .bind(&p.name)
            .bind(&p.nhs_number)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid(),
        };
        let set_at = p.spo2_scale_set_by.as_ref().map(|_| now.clone());
        sqlx::query(
            "INSERT INTO episodes (patient_id, pathway, spo2_scale, spo2_scale_set_by, spo2_scale_set_at, admitted_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&p.pathway)
        .bind(p.spo2_scale as i64)
        .bind(&p.spo2_scale_set_by)
        .bind(set_at)
        .bind(&now)
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(
            "UPDATE episodes SET discharged_at = ? WHERE patient_id = ? AND discharged_at IS NULL",
        )
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
        sqlx::query("UPDATE devices SET patient_id = NULL WHERE patient_id = ?")
            .bind(patient_id)
            .execute(&mut *tx)
            .await?;
        // Their live alerts leave the ward's queue, each with its event.
        let live: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM alerts WHERE patient_id = ? AND status != 'resolved' ORDER BY id",
        )
        .bind(patient_id)
        .fetch_all(&mut *tx)
        .await?;
        let detail = serde_json::json!({"outcome": DISCHARGED, "note": "patient discharged"});
        for id in &live {
            sqlx::query(
                "UPDATE alerts SET status = 'resolved', escalate_at = NULL, resolved_at = ?1, updated_at = ?1, outcome = ?2, note = ?3 WHERE id = ?4",
            )
            .bind(ts(at))
            .bind(DISCHARGED)
            .bind("patient discharged")
            .bind(id)
            .execute(&mut *tx)
            .await?;
            insert_event(&mut tx, *id, at, actor, "resolved", &detail).await?;
        }
        tx.commit().await?;
        let mut resolved = Vec::with_capacity(live.len());
        for id in live {
            if let Some(a) = self.alert_get(id).await? {
                resolved.push(a);
            }
        }
        Ok(Discharge {
            discharged_at: at,
            resolved,
        })
    }

    async fn patient_get(&self, patient_id: i64) -> Result<Option<PatientDetail>> {
        let Some(p) =
            sqlx::query("SELECT id, ward_id, name, nhs_number FROM patients WHERE id = ?")
                .bind(patient_id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let mut previous_episodes = sqlx::query(EPISODES)
            .bind(patient_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(episode_row)
            .collect::<Result<Vec<_>>>()?;
        let episode = (!previous_episodes.is_empty()).then(|| previous_episodes.remove(0));
        let devices = sqlx::query(
            "SELECT d.id, d.kind, d.revoked_at, s.online, s.battery_pct, s.signal, s.fw, s.reported_at
             FROM devices d LEFT JOIN device_status s ON s.device_id = d.id
             WHERE d.patient_id = ? ORDER BY d.id",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            Ok(DeviceInfo {
                id: r.get(0),
                kind: r.get(1),
                revoked_at: parse_opt_ts(r.get(2))?,
                status: status_at(&r, 3)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
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
                "SELECT p.id, p.ward_id, p.name, e.pathway, p.nhs_number
                 FROM patients p JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL
                 WHERE p.ward_id = ? ORDER BY p.id",
            )
            .bind(ward)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                let id: i64 = r.get(0);
                let latest = self.latest_readings(id).await?;
                out.push(PatientSummary {
                    id,
                    ward_id: r.get(1),
                    name: r.get(2),
                    nhs_number: r.get(4),
                    pathway: r.get(3),
                    // The newest of the newest per code is the newest of all.
                    last_reading_at: latest.iter().map(|l| l.measured_at).max(),
                    latest,
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
                    admitted_at: parse_ts(&r.get::<String, _>(5))?,
                    discharged_at: parse_ts(&r.get::<String, _>(6))?,
                });
            }
        }
        out.sort_by(|a, b| b.discharged_at.cmp(&a.discharged_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    async fn device_provision(&self, d: NewDevice) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO devices (id, kind, mqtt_username, secret_hash, mosquitto_hash, patient_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if status_upsert(&mut tx, device_id, report).await? == 0 {
            return Err(StoreError::NotFound(format!("device {device_id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn device_status_record_many(
        &self,
        reports: &[(String, DeviceStatusReport)],
    ) -> Result<u64> {
        if reports.is_empty() {
            return Ok(0);
        }
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut n = 0;
        for (device_id, report) in reports {
            n += status_upsert(&mut tx, device_id, report).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn device_assign(&self, device_id: &str, patient_id: i64) -> Result<()> {
        let _write = self.write.lock().await;
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM episodes WHERE patient_id = ? AND discharged_at IS NULL",
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
            sqlx::query("UPDATE devices SET patient_id = ? WHERE id = ? AND revoked_at IS NULL")
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
        let _write = self.write.lock().await;
        let n = sqlx::query(
            "UPDATE devices SET patient_id = ?1 WHERE id = ?2 AND revoked_at IS NULL \
             AND patient_id IS NULL AND EXISTS (SELECT 1 FROM episodes \
             WHERE patient_id = ?1 AND discharged_at IS NULL)",
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
            sqlx::query_as("SELECT patient_id, revoked_at IS NOT NULL FROM devices WHERE id = ?")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Err(crate::claim_refused(device, device_id, patient_id))
    }

    async fn device_revoke(&self, device_id: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let _write = self.write.lock().await;
        let n =
            sqlx::query("UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
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
        let _write = self.write.lock().await;
        let n = sqlx::query(
            "UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL AND patient_id IS ?",
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
            sqlx::query_as("SELECT patient_id, revoked_at IS NOT NULL FROM devices WHERE id = ?")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Err(crate::revoke_refused(now, device_id, held_by))
    }

    async fn device_unassign(&self, device_id: &str, patient_id: i64) -> Result<()> {
        let _write = self.write.lock().await;
        let n = sqlx::query("UPDATE devices SET patient_id = NULL WHERE id = ? AND patient_id = ?")
            .bind(device_id)
            .bind(patient_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 1 {
            return Ok(());
        }
        let device: Option<Option<i64>> =
            sqlx::query_scalar("SELECT patient_id FROM devices WHERE id = ?")
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
        rows.iter()
            .map(|r| {
                let last = [parse_opt_ts(r.get(6))?, parse_opt_ts(r.get(7))?];
                Ok(DeviceListed {
                    id: r.get(0),
                    kind: r.get(1),
                    patient_id: r.get(2),
                    ward_id: r.get(3),
                    provisioned_at: parse_ts(&r.get::<String, _>(4))?,
                    revoked_at: parse_opt_ts(r.get(5))?,
                    last_message_at: last.into_iter().flatten().max(),
                    status: status_at(r, 8)?,
                })
            })
            .collect()
    }

    async fn device_credentials(&self, mqtt_username: &str) -> Result<Option<DeviceCredentials>> {
        let row =
            sqlx::query("SELECT id, secret_hash, revoked_at FROM devices WHERE mqtt_username = ?")
                .bind(mqtt_username)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| DeviceCredentials {
            device_id: r.get(0),
            secret_hash: r.get(1),
            revoked: r.get::<Option<String>, _>(2).is_some(),
        }))
    }

    async fn mqtt_accounts(&self) -> Result<Vec<MqttAccount>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(crate::MQTT_ACCOUNTS_SQL)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(MqttAccount::from).collect())
    }

    async fn devices_revoked_since(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM devices WHERE revoked_at >= ? ORDER BY revoked_at")
                .bind(ts(since))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn device_route(&self, device_id: &str) -> Result<Option<DeviceRoute>> {
        let row = sqlx::query(
            "SELECT p.id, p.ward_id FROM devices d JOIN patients p ON p.id = d.patient_id
             JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL
             WHERE d.id = ? AND d.revoked_at IS NULL",
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
        let ids = serde_json::to_string(device_ids).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(
            "SELECT d.id, p.id, p.ward_id FROM devices d JOIN patients p ON p.id = d.patient_id
             JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL
             WHERE d.id IN (SELECT value FROM json_each(?)) AND d.revoked_at IS NULL",
        )
        .bind(ids)
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
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO rejected_messages (device_id, seq, topic, reason, detail, payload, received_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        let from = q.from.map(ts).unwrap_or_else(|| "0000".into());
        let to = q.to.map(ts).unwrap_or_else(|| "9999".into());
        // One code: one range of the index. Every code: the same range in
        // each of the patient's codes, found by skipping from code to code
        // (see LATEST_PER_CODE), rather than walking the patient's whole
        // history for the rows in the time range.
        let sql = match q.code {
            Some(_) => "SELECT id, code, value_num, value_text, unit, measured_at, received_at, device_id, seq
                 FROM observations
                 WHERE patient_id = ?1 AND code = ?2 AND measured_at >= ?3 AND measured_at <= ?4
                 ORDER BY measured_at, id"
                .to_string(),
            None => format!(
                "{LATEST_PER_CODE} SELECT o.id, o.code, o.value_num, o.value_text, o.unit, o.measured_at, o.received_at, o.device_id, o.seq
                 FROM codes CROSS JOIN observations o ON o.patient_id = ?1 AND o.code = codes.code AND o.measured_at >= ?3 AND o.measured_at <= ?4
                 ORDER BY o.code, o.measured_at, o.id"
            ),
        };
        let rows = sqlx::query(&sql)
            .bind(q.patient_id)
            .bind(&q.code)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows
            .iter()
            .map(|r| obs_row(r, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(rows)
    }

    async fn observations_page(
        &self,
        page: &HistoryPage,
        code: &str,
    ) -> Result<Vec<ObservationRow>> {
        let (op, since) = since_bound(page.since);
        let rows = sqlx::query(&format!(
            "SELECT id, code, value_num, value_text, unit, measured_at, received_at, device_id, seq
             FROM observations
             WHERE patient_id = ?1 AND code = ?2 AND measured_at {op} ?3 AND measured_at <= ?4
               AND (?6 IS NULL OR measured_at > ?3 OR id > ?6)
             ORDER BY measured_at, id LIMIT ?5"
        ))
        .bind(page.patient_id)
        .bind(code)
        .bind(since)
        .bind(page.to.map(ts).unwrap_or_else(|| "9999".into()))
        .bind(page.limit)
        .bind(page.after_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| obs_row(r, 0)).collect()
    }

    async fn observations_count(&self, page: &HistoryPage, code: &str) -> Result<i64> {
        let (op, since) = since_bound(page.since);
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM observations
             WHERE patient_id = ?1 AND code = ?2 AND measured_at {op} ?3 AND measured_at <= ?4"
        ))
        .bind(page.patient_id)
        .bind(code)
        .bind(since)
        .bind(page.to.map(ts).unwrap_or_else(|| "9999".into()))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn observation_codes(&self, patient_id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(&format!(
            "{LATEST_PER_CODE} SELECT code FROM codes WHERE code IS NOT NULL ORDER BY code"
        ))
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn observation_row(&self, patient_id: i64, id: i64) -> Result<Option<ObservationRow>> {
        sqlx::query(
            "SELECT id, code, value_num, value_text, unit, measured_at, received_at, device_id, seq
             FROM observations WHERE patient_id = ?1 AND id = ?2",
        )
        .bind(patient_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(|r| obs_row(r, 0))
        .transpose()
    }

    async fn message_observations(
        &self,
        patient_id: i64,
        at: DateTime<Utc>,
        device_id: &str,
        seq: u32,
        codes: &[&str],
    ) -> Result<Vec<ObservationRow>> {
        let rows = sqlx::query(
            "SELECT id, code, value_num, value_text, unit, measured_at, received_at, device_id, seq
             FROM observations
             WHERE patient_id = ?1 AND code IN (SELECT value FROM json_each(?2))
               AND measured_at = ?3 AND device_id = ?4 AND seq = ?5
             ORDER BY id",
        )
        .bind(patient_id)
        .bind(serde_json::to_string(codes).unwrap_or_else(|_| "[]".into()))
        .bind(ts(at))
        .bind(device_id)
        .bind(i64::from(seq))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| obs_row(r, 0)).collect()
    }

    async fn latest_per_code(
        &self,
        patient_id: i64,
        at: DateTime<Utc>,
    ) -> Result<Vec<ObservationRow>> {
        let rows = sqlx::query(&format!(
            "{LATEST_PER_CODE} SELECT o.id, o.code, o.value_num, o.value_text, o.unit, o.measured_at, o.received_at, o.device_id, o.seq
             {LATEST_PER_CODE_FROM}"
        ))
        .bind(patient_id)
        .bind(ts(at))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| obs_row(r, 0)).collect()
    }

    async fn readings_for_scoring(
        &self,
        spans: &[(i64, DateTime<Utc>, DateTime<Utc>)],
        codes: &[&str],
    ) -> Result<HashMap<i64, ScoringReads>> {
        if spans.is_empty() || codes.is_empty() {
            return Ok(HashMap::new());
        }
        // One statement for every patient: for each of the codes asked for,
        // the newest row at the span's start and the span's range, two
        // index walks, driven by a JSON list of [patient, first, last]
        // (CROSS JOIN keeps that order of the loops). Naming the codes
        // spares a skip-scan over every code the patient has, and the rows
        // of the codes scoring never reads.
        let req = serde_json::Value::Array(
            spans
                .iter()
                .map(|(p, first, last)| serde_json::json!([p, ts(*first), ts(*last)]))
                .collect(),
        );
        let rows = sqlx::query(
            "WITH req(patient_id, first, last) AS (
                SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?1)),
             codes(patient_id, first, last, code) AS (
                SELECT req.patient_id, req.first, req.last, c.value FROM req CROSS JOIN json_each(?2) c)
             SELECT 0, codes.patient_id, o.id, o.code, o.value_num, o.value_text, o.unit, o.measured_at, o.received_at, o.device_id, o.seq
             FROM codes CROSS JOIN observations o ON o.id = (
                SELECT id FROM observations WHERE patient_id = codes.patient_id AND code = codes.code AND measured_at <= codes.first
                ORDER BY measured_at DESC, id DESC LIMIT 1)
             UNION ALL
             SELECT 1, codes.patient_id, o.id, o.code, o.value_num, o.value_text, o.unit, o.measured_at, o.received_at, o.device_id, o.seq
             FROM codes CROSS JOIN observations o ON o.patient_id = codes.patient_id AND o.code = codes.code
                AND o.measured_at >= codes.first AND o.measured_at <= codes.last
             WHERE codes.last > codes.first
             ORDER BY 1, 2, 4, 8, 3",
        )
        .bind(req.to_string())
        .bind(serde_json::to_string(codes).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<i64, ScoringReads> = HashMap::new();
        for r in rows {
            let row = obs_row(&r, 2)?;
            let reads = out.entry(r.get(1)).or_default();
            if r.get::<i64, _>(0) == 0 {
                reads.base.push(row)
            } else {
                reads.later.push(row)
            }
        }
        Ok(out)
    }

    async fn episode_settings_many(
        &self,
        patient_ids: &[i64],
    ) -> Result<HashMap<i64, EpisodeSettings>> {
        if patient_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = serde_json::to_string(patient_ids).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(&format!("{EPISODE_SETTINGS} WHERE e.patient_id IN (SELECT value FROM json_each(?)) AND e.discharged_at IS NULL"))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| episode_settings_row(r).map(|s| (s.patient_id, s)))
            .collect()
    }

    async fn live_alert_rules(&self, patient_ids: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        if patient_ids.is_empty() {
            return Ok(out);
        }
        let ids = serde_json::to_string(patient_ids).unwrap_or_else(|_| "[]".into());
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT patient_id, rule_id FROM alerts
             WHERE patient_id IN (SELECT value FROM json_each(?)) AND status != 'resolved' ORDER BY patient_id, rule_id",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        for (patient, rule) in rows {
            out.entry(patient).or_default().push(rule);
        }
        Ok(out)
    }

    async fn episode_settings(&self, patient_id: i64) -> Result<Option<EpisodeSettings>> {
        let row = sqlx::query(&format!(
            "{EPISODE_SETTINGS} WHERE e.patient_id = ? AND e.discharged_at IS NULL"
        ))
        .bind(patient_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(episode_settings_row).transpose()
    }

    async fn episode_update(
        &self,
        patient_id: i64,
        u: EpisodeUpdate,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let _write = self.write.lock().await;
        // IMMEDIATE: take the write lock (waiting out busy_timeout) before
        // the first read. A deferred transaction that reads and then writes
        // fails at once with SQLITE_BUSY when another connection (the ingest,
        // the scorer) committed in between: a 500 the API fuzzer found.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM episodes WHERE patient_id = ? AND discharged_at IS NULL",
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
            sqlx::query("UPDATE episodes SET spo2_scale = ?, spo2_scale_set_by = ?, spo2_scale_set_at = ? WHERE id = ?")
                .bind(scale as i64)
                .bind(by)
                .bind(&at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(o2) = u.oxygen {
            sqlx::query(
                "UPDATE episodes SET oxygen = ?, oxygen_set_by = ?, oxygen_set_at = ? WHERE id = ?",
            )
            .bind(o2 as i64)
            .bind(by)
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(acvpu) = &u.acvpu {
            sqlx::query(
                "UPDATE episodes SET acvpu = ?, acvpu_set_by = ?, acvpu_set_at = ? WHERE id = ?",
            )
            .bind(acvpu)
            .bind(by)
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(m) = u.obs_every_minutes {
            // 0: back to the pathway's, recorded as who went back and when.
            sqlx::query(
                "UPDATE episodes SET obs_every_min = ?, obs_every_set_by = ?, obs_every_set_at = ? WHERE id = ?",
            )
            .bind((m > 0).then_some(m))
            .bind(by)
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(plan) = &u.escalation_plan {
            // `not-recorded`: cleared, recorded as who cleared it and when.
            let plan = ESCALATION_PLANS.contains(&plan.as_str()).then_some(plan);
            sqlx::query(
                "UPDATE episodes SET escalation_plan = ?, escalation_note = ?, escalation_set_by = ?, escalation_set_at = ? WHERE id = ?",
            )
            .bind(plan)
            .bind(plan.and(u.escalation_note.as_ref()))
            .bind(by)
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(v) = u.under_16 {
            sqlx::query("UPDATE episodes SET under_16 = ? WHERE id = ?")
                .bind(v as i64)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = u.pregnant {
            sqlx::query("UPDATE episodes SET pregnant = ? WHERE id = ?")
                .bind(v as i64)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn score_insert(&self, s: NewScore) -> Result<i64> {
        let _write = self.write.lock().await;
        insert_score(&self.pool, &s).await
    }

    async fn scores_page(&self, page: &HistoryPage) -> Result<Vec<ScoreRow>> {
        let rows = self.score_page_rows(SCORE_COLUMNS, page).await?;
        rows.iter().map(score_row).collect()
    }

    async fn scores_count(&self, page: &HistoryPage) -> Result<i64> {
        let (op, since) = since_bound(page.since);
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM scores
             WHERE patient_id = ?1 AND scored_at {op} ?2 AND scored_at <= ?3"
        ))
        .bind(page.patient_id)
        .bind(since)
        .bind(page.to.map(ts).unwrap_or_else(|| "9999".into()))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn score_levels_page(&self, page: &HistoryPage) -> Result<Vec<ScoreLevel>> {
        let rows = self
            .score_page_rows("SELECT id, scored_at, total FROM scores", page)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ScoreLevel {
                    id: r.get(0),
                    scored_at: parse_ts(&r.get::<String, _>(1))?,
                    total: r.get(2),
                })
            })
            .collect()
    }

    async fn scores_by_id(&self, patient_id: i64, ids: &[i64]) -> Result<Vec<ScoreRow>> {
        let rows = sqlx::query(&format!(
            "{SCORE_COLUMNS} WHERE patient_id = ?1
               AND id IN (SELECT value FROM json_each(?2))
             ORDER BY scored_at, id"
        ))
        .bind(patient_id)
        .bind(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(score_row).collect()
    }

    async fn scores_newest(
        &self,
        patient_id: i64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<ScoreRow>> {
        let rows = sqlx::query(&format!(
            "{SCORE_COLUMNS} WHERE patient_id = ?1 AND scored_at >= ?2 AND scored_at <= ?3
             ORDER BY scored_at DESC, id DESC LIMIT ?4"
        ))
        .bind(patient_id)
        .bind(from.map(ts).unwrap_or_default())
        .bind(to.map(ts).unwrap_or_else(|| "9999".into()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().rev().map(score_row).collect()
    }

    async fn score_row(&self, patient_id: i64, id: i64) -> Result<Option<ScoreRow>> {
        sqlx::query(&format!(
            "{SCORE_COLUMNS} WHERE patient_id = ?1 AND id = ?2"
        ))
        .bind(patient_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(score_row)
        .transpose()
    }

    async fn scores_earlier(
        &self,
        patients: &[(i64, Option<DateTime<Utc>>)],
        then: DateTime<Utc>,
    ) -> Result<Vec<(i64, EarlierScore)>> {
        if patients.is_empty() {
            return Ok(Vec::new());
        }
        // The list as one JSON parameter: `[[id, since], ...]` ("" for none,
        // before every time as text).
        let list = serde_json::Value::Array(
            patients
                .iter()
                .map(|(id, since)| serde_json::json!([id, since.map(ts).unwrap_or_default()]))
                .collect(),
        );
        let rows = sqlx::query(
            "WITH p(id, since) AS (
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)),
             e(id, sid) AS (
                 SELECT p.id, COALESCE(
                     (SELECT id FROM scores WHERE patient_id = p.id AND scored_at >= p.since
                        AND scored_at <= ?2 ORDER BY scored_at DESC, id DESC LIMIT 1),
                     (SELECT id FROM scores WHERE patient_id = p.id AND scored_at >= p.since
                        ORDER BY scored_at, id LIMIT 1))
                 FROM p)
             SELECT e.id, s.total, s.risk, s.partial, s.scored_at
             FROM e JOIN scores s ON s.id = e.sid",
        )
        .bind(list.to_string())
        .bind(ts(then))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.get(0),
                    EarlierScore {
                        total: r.get(1),
                        risk: r.get(2),
                        partial: r.get::<i64, _>(3) != 0,
                        scored_at: parse_ts(&r.get::<String, _>(4))?,
                    },
                ))
            })
            .collect()
    }

    async fn latest_score_time(&self, patient_id: i64) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> =
            sqlx::query_scalar("SELECT MAX(scored_at) FROM scores WHERE patient_id = ?")
                .bind(patient_id)
                .fetch_one(&self.pool)
                .await?;
        parse_opt_ts(t)
    }

    async fn store_ecg_results(
        &self,
        sets: &[PatchBeats],
        obs: &[NewDerivedObservation],
    ) -> Result<Vec<i64>> {
        let beats: Vec<(&PatchBeats, &BeatRow)> = sets
            .iter()
            .flat_map(|s| s.beats.iter().map(move |b| (s, b)))
            .collect();
        if beats.is_empty() && obs.is_empty() {
            return Ok(Vec::new());
        }
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in beats.chunks(BEAT_ROWS) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO ecg_beats (device_id, t_ms, patient_id, rr_ms) ",
            );
            q.push_values(chunk, |mut row, (set, b)| {
                row.push_bind(set.device_id.clone())
                    .push_bind(b.t_ms)
                    .push_bind(set.patient_id)
                    .push_bind(b.rr_ms.map(i64::from));
            });
            q.push(" ON CONFLICT (device_id, t_ms) DO NOTHING");
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        // The heart rates: a few rows a pass, each its own statement.
        let mut ids = Vec::with_capacity(obs.len());
        for o in obs {
            let (measured, received) = (ts(o.measured_at), ts(o.received_at));
            ids.push(
                insert_observation(
                    &mut tx,
                    o.patient_id,
                    &o.device_id,
                    o.seq,
                    &o.observation,
                    &measured,
                    &received,
                )
                .await?,
            );
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
             WHERE patient_id = ?1 AND t0_ms >= ?2 - 60000 AND t0_ms <= ?3
               AND t0_ms + (n_samples * 1000) / fs_hz >= ?2
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
        let beats = sqlx::query("SELECT t_ms, rr_ms FROM ecg_beats WHERE patient_id = ? AND t_ms >= ? AND t_ms <= ? ORDER BY t_ms")
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = match kind {
            HistoryKind::Observations => {
                let n = sqlx::query("DELETE FROM observations WHERE measured_at < ?")
                    .bind(ts(before))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM obs_messages WHERE measured_at < ?")
                    .bind(ts(before))
                    .execute(&mut *tx)
                    .await?;
                n
            }
            HistoryKind::Scores => sqlx::query("DELETE FROM scores WHERE scored_at < ?")
                .bind(ts(before))
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        tx.commit().await?;
        Ok(n)
    }

    async fn ecg_delete_before(&self, before_ms: i64) -> Result<u64> {
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query("DELETE FROM ecg_chunks WHERE t0_ms < ?")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM ecg_beats WHERE t_ms < ?")
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
        let _write = self.write.lock().await;
        // Firing reads the live alert, then writes: IMMEDIATE for the reason
        // given in `episode_update` (an alert must never be lost to SQLITE_BUSY).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        // CROSS JOIN keeps SQLite's join order: each device (a small
        // table), its progress, then its chunks by their key, never a scan
        // of every chunk stored.
        let rows = sqlx::query(
            "SELECT c.device_id, c.seq, c.t0_ms, c.fs_hz, c.uv_per_count, c.n_samples, c.encoding, c.samples,
                    c.patient_id, p.ward_id, c.received_at
             FROM devices d
             LEFT JOIN ecg_progress g ON g.device_id = d.id
             CROSS JOIN ecg_chunks c
             JOIN patients p ON p.id = c.patient_id
             WHERE c.device_id = d.id AND c.seq > COALESCE(g.seq, -1)
               AND d.id >= ?1 AND (c.device_id > ?1 OR c.seq > ?2)
             ORDER BY c.device_id, c.seq LIMIT ?3",
        )
        .bind(device)
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnanalysedChunk {
                    patient_id: r.get(8),
                    ward_id: r.get(9),
                    received_at: parse_ts(&r.get::<String, _>(10))?,
                    chunk: chunk_row(r, 0),
                })
            })
            .collect()
    }

    async fn observations_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, ObservationRow)>> {
        let rows = sqlx::query(
            "SELECT o.patient_id, o.id, o.code, o.value_num, o.value_text, o.unit, o.measured_at, o.received_at, o.device_id, o.seq
             FROM observations o
             WHERE o.id > ?1
               AND EXISTS (SELECT 1 FROM obs_messages m WHERE m.device_id = o.device_id AND m.seq = o.seq)
             ORDER BY o.id LIMIT ?2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.get(0), obs_row(r, 1)?)))
            .collect()
    }

    async fn alert_act(
        &self,
        alert_id: i64,
        action: AlertAction,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<AlertRow> {
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (sql, name, detail) = match &action {
            AlertAction::Acknowledge => (
                "UPDATE alerts SET status = 'acknowledged', escalate_at = NULL, updated_at = ?1 WHERE id = ?2 AND status IN ('open', 'escalated')",
                "acknowledged",
                serde_json::json!({}),
            ),
            AlertAction::Escalate => (
                "UPDATE alerts SET status = 'escalated', escalate_at = NULL, updated_at = ?1 WHERE id = ?2 AND status IN ('open', 'acknowledged')",
                "escalated",
                serde_json::json!({}),
            ),
            AlertAction::Resolve { outcome, note } => (
                "UPDATE alerts SET status = 'resolved', escalate_at = NULL, resolved_at = ?1, updated_at = ?1, outcome = ?3, note = ?4
                 WHERE id = ?2 AND status != 'resolved'",
                "resolved",
                serde_json::json!({"outcome": outcome, "note": note}),
            ),
        };
        let (outcome, note) = match &action {
            AlertAction::Resolve { outcome, note } => (Some(outcome.clone()), Some(note.clone())),
            _ => (None, None),
        };
        let n = sqlx::query(sql)
            .bind(ts(at))
            .bind(alert_id)
            .bind(outcome)
            .bind(note)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT status FROM alerts WHERE id = ?")
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
        let row = sqlx::query(&format!("{ALERT_COLUMNS} WHERE id = ?"))
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
            // Two statements, not one with `(?3 IS NULL OR patient_id = ?3)`:
            // SQLite plans a statement once, and that one walks the whole
            // ward's alerts even when one patient's are asked for.
            let sql = match patient_id {
                Some(_) => format!(
                    "{ALERT_COLUMNS} WHERE patient_id = ?3 AND ward_id = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY id"
                ),
                None => format!(
                    "{ALERT_COLUMNS} WHERE ward_id = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY id"
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
             WHERE a.ward_id = ?1
               AND EXISTS (SELECT 1 FROM alert_events e
                           WHERE e.alert_id = a.id AND e.action = 'raised' AND e.at >= ?2 AND e.at <= ?3)
             ORDER BY raised, a.id",
        )
        .bind(ward_id)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertCourse {
                    severity: r.get(0),
                    raised: parse_ts(&r.get::<String, _>(1))?,
                    acknowledged: parse_opt_ts(r.get(2))?,
                    escalated: parse_opt_ts(r.get(3))?,
                    escalated_by_timer: r.get::<i64, _>(4) != 0,
                    resolved: parse_opt_ts(r.get(5))?,
                    outcome: r.get(6),
                })
            })
            .collect()
    }

    async fn ward_stays(
        &self,
        ward_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Stay>> {
        let rows = sqlx::query(
            "SELECT e.admitted_at, e.discharged_at FROM episodes e JOIN patients p ON p.id = e.patient_id
             WHERE p.ward_id = ?1 AND e.admitted_at <= ?3 AND (e.discharged_at IS NULL OR e.discharged_at >= ?2)
             ORDER BY e.admitted_at, e.id",
        )
        .bind(ward_id)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Stay {
                    admitted_at: parse_ts(&r.get::<String, _>(0))?,
                    discharged_at: parse_opt_ts(r.get(1))?,
                })
            })
            .collect()
    }

    async fn alerts_due(&self, now: DateTime<Utc>) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(&format!("{ALERT_COLUMNS} WHERE status = 'open' AND escalate_at IS NOT NULL AND escalate_at <= ? ORDER BY escalate_at"))
            .bind(ts(now))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(alert_row).collect()
    }

    async fn alert_events(&self, alert_id: i64) -> Result<Vec<AlertEventRow>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, detail FROM alert_events WHERE alert_id = ? ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AlertEventRow {
                    at: parse_ts(&r.get::<String, _>(0))?,
                    actor: r.get(1),
                    action: r.get(2),
                    detail: serde_json::from_str(&r.get::<String, _>(3))
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    async fn alert_events_after(&self, after: i64, limit: i64) -> Result<Vec<AlertEventRef>> {
        let rows = sqlx::query(
            "SELECT id, alert_id, at, actor, action FROM alert_events WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertEventRef {
                    id: r.get(0),
                    alert_id: r.get(1),
                    at: parse_ts(&r.get::<String, _>(2))?,
                    actor: r.get(3),
                    action: r.get(4),
                })
            })
            .collect()
    }

    async fn notify_progress(&self) -> Result<i64> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO notify_progress (id, event_id) \
             SELECT 1, COALESCE(MAX(id), 0) FROM alert_events WHERE true \
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
        let _write = self.write.lock().await;
        sqlx::query("UPDATE notify_progress SET event_id = max(event_id, ?) WHERE id = 1")
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn notify_lease(&self, holder: &str, lapse: std::time::Duration) -> Result<bool> {
        let _write = self.write.lock().await;
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lapse).unwrap_or(chrono::Duration::MAX);
        let r = sqlx::query(
            "UPDATE notify_progress SET holder = ?, lease_until = ? \
             WHERE id = 1 AND (holder IS NULL OR holder = ? OR lease_until IS NULL OR lease_until < ?)",
        )
        .bind(holder)
        .bind(ts(until))
        .bind(holder)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn notify_release(&self, holder: &str) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "UPDATE notify_progress SET holder = NULL, lease_until = NULL WHERE id = 1 AND holder = ?",
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
        let _write = self.write.lock().await;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO patient_notes (patient_id, at, author, text) VALUES (?, ?, ?, ?) RETURNING id",
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
            at: parse_ts(&ts(at))?,
            author: author.into(),
            text: text.into(),
        })
    }

    async fn notes_list(&self, patient_id: i64) -> Result<Vec<NoteRow>> {
        let rows = sqlx::query(
            "SELECT id, at, author, text FROM patient_notes WHERE patient_id = ? ORDER BY id DESC",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(NoteRow {
                    id: r.get(0),
                    patient_id,
                    at: parse_ts(&r.get::<String, _>(1))?,
                    author: r.get(2),
                    text: r.get(3),
                })
            })
            .collect()
    }

    async fn notes_since(&self, ward_ids: &[i64], since: DateTime<Utc>) -> Result<Vec<WardNote>> {
        let mut out = Vec::new();
        for ward in ward_ids {
            let rows = sqlx::query(
                "SELECT n.id, n.patient_id, n.at, n.author, n.text, p.name, p.nhs_number
                 FROM patient_notes n JOIN patients p ON p.id = n.patient_id
                 WHERE p.ward_id = ?1 AND n.at >= ?2",
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
                        at: parse_ts(&r.get::<String, _>(2))?,
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
                 WHERE p.ward_id = ?1 AND e.discharged_at IS NULL
                   AND e.escalation_set_by IS NOT NULL AND e.escalation_set_at >= ?2",
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
                    set_at: parse_ts(&r.get::<String, _>(6))?,
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
        let _write = self.write.lock().await;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO follow_ups (patient_id, episode_id, due_at, reason, set_by, set_at)
             SELECT ?1, e.id, ?2, ?3, ?4, ?5 FROM episodes e
             WHERE e.patient_id = ?1 AND e.discharged_at IS NULL
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
            due_at: parse_ts(&ts(due_at))?,
            reason: reason.into(),
            set_by: by.into(),
            set_at: parse_ts(&ts(at))?,
        })
    }

    async fn follow_ups_pending(&self, patient_id: i64) -> Result<Vec<FollowUp>> {
        let rows = sqlx::query(
            "SELECT f.id, f.due_at, f.reason, f.set_by, f.set_at FROM follow_ups f
             JOIN episodes e ON e.id = f.episode_id AND e.discharged_at IS NULL
             WHERE f.patient_id = ?1 AND f.raised_at IS NULL AND f.cancelled_at IS NULL
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
                    due_at: parse_ts(&r.get::<String, _>(1))?,
                    reason: r.get(2),
                    set_by: r.get(3),
                    set_at: parse_ts(&r.get::<String, _>(4))?,
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
        let _write = self.write.lock().await;
        let row = sqlx::query(
            "UPDATE follow_ups SET cancelled_by = ?3, cancelled_at = ?4
             WHERE id = ?1 AND patient_id = ?2 AND raised_at IS NULL AND cancelled_at IS NULL
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
                due_at: parse_ts(&r.get::<String, _>(0))?,
                reason: r.get(1),
                set_by: r.get(2),
                set_at: parse_ts(&r.get::<String, _>(3))?,
            }),
            None => {
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM follow_ups WHERE id = ?1 AND patient_id = ?2",
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
                 WHERE p.ward_id = ?1 AND f.raised_at IS NULL AND f.cancelled_at IS NULL
                   AND f.due_at <= ?2",
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
                        due_at: parse_ts(&r.get::<String, _>(2))?,
                        reason: r.get(3),
                        set_by: r.get(4),
                        set_at: parse_ts(&r.get::<String, _>(5))?,
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
             WHERE f.raised_at IS NULL AND f.cancelled_at IS NULL AND f.due_at <= ?1
             ORDER BY f.due_at, f.id LIMIT ?2",
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
                        due_at: parse_ts(&r.get::<String, _>(2))?,
                        reason: r.get(3),
                        set_by: r.get(4),
                        set_at: parse_ts(&r.get::<String, _>(5))?,
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
        let _write = self.write.lock().await;
        sqlx::query(
            "UPDATE follow_ups SET raised_at = ?2, alert_id = ?3
             WHERE id = ?1 AND raised_at IS NULL",
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
               (SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND username = ?1 AND at >= ?3
                  AND at > COALESCE((SELECT MAX(at) FROM audit_log WHERE action = 'login' AND username = ?1), '')),
               (SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND addr = ?2 AND at >= ?3)",
        )
        .bind(username)
        .bind(addr)
        .bind(ts(since))
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get(0), row.get(1)))
    }

    async fn audit_append(&self, e: AuditEntry) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query("INSERT INTO audit_log (at, user_id, username, action, patient_id, detail, addr) VALUES (?, ?, ?, ?, ?, ?, ?)")
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
        let rows = sqlx::query(
            "SELECT at, user_id, username, action, patient_id, detail, addr FROM audit_log
             WHERE (?1 IS NULL OR patient_id = ?1) AND (?2 IS NULL OR user_id = ?2) AND at >= ?3 AND at <= ?4
               AND (?6 IS NULL
                    OR patient_id IN (SELECT id FROM patients WHERE ward_id IN (SELECT value FROM json_each(?6)))
                    OR (patient_id IS NULL
                        AND (user_id IS NULL
                             OR user_id IN (SELECT user_id FROM user_wards WHERE ward_id IN (SELECT value FROM json_each(?6))))))
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(q.patient_id)
        .bind(q.user_id)
        .bind(q.from.map(ts).unwrap_or_else(|| "0000".into()))
        .bind(q.to.map(ts).unwrap_or_else(|| "9999".into()))
        .bind(q.limit.unwrap_or(1000))
        .bind(q.wards.map(|w| serde_json::json!(w).to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: parse_ts(&r.get::<String, _>(0))?,
                    user_id: r.get(1),
                    username: r.get(2),
                    action: r.get(3),
                    patient_id: r.get(4),
                    detail: serde_json::from_str(&r.get::<String, _>(5))
                        .unwrap_or(serde_json::Value::Null),
                    addr: r.get(6),
                })
            })
            .collect()
    }

    fn file_sizes(&self) -> Vec<(&'static str, u64)> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [("db", self.path.as_os_str()), ("wal", wal.as_os_str())]
            .into_iter()
            .filter_map(|(name, f)| Some((name, std::fs::metadata(f).ok()?.len())))
            .collect()
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<u64> {
        let to = path
            .to_str()
            .ok_or_else(|| StoreError::Config(format!("{} is not UTF-8", path.display())))?;
        // Not under the write mutex: a read transaction, which neither
        // waits for the writers nor holds them up.
        sqlx::query("VACUUM INTO ?1")
            .bind(to)
            .execute(&self.pool)
            .await?;
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))?;
        Ok(meta.len())
    }

    async fn stats(&self) -> Result<Stats> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM obs_messages), (SELECT COUNT(*) FROM observations),
                    (SELECT COUNT(*) FROM rejected_messages),
                    (SELECT COUNT(*) FROM patients p JOIN episodes e ON e.patient_id = p.id AND e.discharged_at IS NULL),
                    (SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL),
                    (SELECT COUNT(*) FROM ecg_chunks),
                    (SELECT COUNT(*) FROM alerts WHERE status != 'resolved')",
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
async fn insert_score<'e, E: sqlx::Executor<'e, Database = sqlx::Sqlite>>(
    e: E,
    s: &NewScore,
) -> Result<i64> {
    let id = sqlx::query(
        "INSERT INTO scores (patient_id, scored_at, computed_at, total, risk, partial, detail, obs_ids)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(s.patient_id)
    .bind(ts(s.scored_at))
    .bind(ts(s.computed_at))
    .bind(s.total)
    .bind(&s.risk)
    .bind(s.partial as i64)
    .bind(s.detail.to_string())
    .bind(serde_json::to_string(&s.obs_ids).unwrap_or_else(|_| "[]".into()))
    .execute(e)
    .await?
    .last_insert_rowid();
    Ok(id)
}

/// Replace a known device's last status; 0 rows for an unknown device.
async fn status_upsert(
    conn: &mut sqlx::SqliteConnection,
    device_id: &str,
    report: &DeviceStatusReport,
) -> Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO device_status (device_id, online, battery_pct, signal, fw, reported_at)
         SELECT id, ?, ?, ?, ?, ? FROM devices WHERE id = ?
         ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, battery_pct = excluded.battery_pct,
             signal = excluded.signal, fw = excluded.fw, reported_at = excluded.reported_at",
    )
    .bind(report.online)
    .bind(report.battery_pct.map(i64::from))
    .bind(&report.signal)
    .bind(&report.fw)
    .bind(ts(report.reported_at))
    .bind(device_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The id of the account `username`, or [`StoreError::NotFound`].
async fn user_id(tx: &mut sqlx::SqliteConnection, username: &str) -> Result<i64> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = ?")
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {username}")))
}

/// Revoke an account's live tokens at `at` (only its sessions when
/// `sessions_only`); how many.
async fn revoke_user_tokens(
    tx: &mut sqlx::SqliteConnection,
    user_id: i64,
    at: DateTime<Utc>,
    sessions_only: bool,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL \
         AND (kind = 'session' OR NOT ?)",
    )
    .bind(ts(at))
    .bind(user_id)
    .bind(sessions_only)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

impl SqliteStore {
    /// `select` (columns `FROM scores`) of a [`HistoryPage`] of a patient's
    /// scores, in history order: the rows, for the caller to read.
    async fn score_page_rows(
        &self,
        select: &str,
        page: &HistoryPage,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>> {
        let (op, since) = since_bound(page.since);
        Ok(sqlx::query(&format!(
            "{select} WHERE patient_id = ?1 AND scored_at {op} ?2 AND scored_at <= ?3
               AND (?5 IS NULL OR scored_at > ?2 OR id > ?5)
             ORDER BY scored_at, id LIMIT ?4"
        ))
        .bind(page.patient_id)
        .bind(since)
        .bind(page.to.map(ts).unwrap_or_else(|| "9999".into()))
        .bind(page.limit)
        .bind(page.after_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (dir, SqliteStore::connect(&url).await.expect("connect"))
    }

    async fn patient(s: &SqliteStore) -> i64 {
        let w = s.ward_add("W").await.expect("ward");
        let at = Utc
            .with_ymd_and_hms(2026, 11, 22, 8, 0, 0)
            .single()
            .expect("time");
        s.patient_admit(NewPatient {
            ward_id: w.id,
            name: "P".into(),
            nhs_number: crate::nhs::test_range_for("P"),
            pathway: "general".into(),
            spo2_scale: 1,
            spo2_scale_set_by: None,
            admitted_at: at,
        })
        .await
        .expect("admit")
        .id
    }

    fn msg(patient_id: i64, seq: u32, minute: u32, value: f64) -> NewObsMessage {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 22, 8, minute, 0)
            .single()
            .expect("time");
        NewObsMessage {
            device_id: "d1".into(),
            seq,
            patient_id,
            measured_at: at,
            received_at: at,
            obs: vec![NewObservation {
                code: "spo2".into(),
                value: ObsValue::Number(value),
                unit: Some("%".into()),
            }],
        }
    }

    /// A backup's `VACUUM INTO` is one long read transaction: every commit
    /// meanwhile stays in the WAL. Once the reader is gone the file is cut
    /// back to the limit, where it kept its largest size for good.
    #[tokio::test]
    async fn the_wal_file_shrinks_back_after_a_long_reader_such_as_a_backup() {
        let (dir, s) = store().await;
        let wal = dir.path().join("t.db-wal");
        let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        sqlx::query("CREATE TABLE scratch (b BLOB)")
            .execute(&s.pool)
            .await
            .expect("table");
        // A reader holding one snapshot, as VACUUM INTO does.
        let mut reader = s.pool.acquire().await.expect("reader");
        sqlx::query("BEGIN")
            .execute(&mut *reader)
            .await
            .expect("begin");
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM scratch")
            .fetch_one(&mut *reader)
            .await
            .expect("read");
        // Commits meanwhile: 96 MiB the checkpoints cannot copy past the reader.
        for _ in 0..96 {
            sqlx::query("INSERT INTO scratch VALUES (randomblob(1048576))")
                .execute(&s.pool)
                .await
                .expect("write");
        }
        let grown = wal_len();
        assert!(
            grown > WAL_SIZE_LIMIT_BYTES + 16 * 1024 * 1024,
            "the WAL grew past the limit while the reader lasted: {grown} bytes"
        );
        sqlx::query("COMMIT")
            .execute(&mut *reader)
            .await
            .expect("end");
        drop(reader);
        // The background checkpoint copies it all; the next commit starts
        // the WAL over and cuts the file back.
        let mut last = grown;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sqlx::query("INSERT INTO scratch VALUES (x'00')")
                .execute(&s.pool)
                .await
                .expect("write");
            last = wal_len();
            if last <= WAL_SIZE_LIMIT_BYTES {
                break;
            }
        }
        assert!(
            last <= WAL_SIZE_LIMIT_BYTES,
            "the WAL is back within {WAL_SIZE_LIMIT_BYTES} bytes after the reader: {last} (was {grown})"
        );
    }

    #[tokio::test]
    async fn batch_dedups_on_device_and_seq_and_range_queries_filter() {
        let (_d, s) = store().await;
        let p = patient(&s).await;
        let out = s
            .store_obs_batch(&[msg(p, 1, 1, 95.0), msg(p, 2, 2, 94.0), msg(p, 1, 3, 80.0)])
            .await
            .expect("batch");
        assert!(matches!(out[0], BatchOutcome::Stored { .. }));
        assert!(matches!(out[1], BatchOutcome::Stored { .. }));
        assert_eq!(out[2], BatchOutcome::Duplicate);

        let all = s
            .observations(ObservationQuery {
                patient_id: p,
                ..Default::default()
            })
            .await
            .expect("query");
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        let from = Utc.with_ymd_and_hms(2026, 11, 22, 8, 2, 0).single();
        let late = s
            .observations(ObservationQuery {
                patient_id: p,
                from,
                ..Default::default()
            })
            .await
            .expect("query");
        assert_eq!(late.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
        let none = s
            .observations(ObservationQuery {
                patient_id: p,
                code: Some("pulse".into()),
                ..Default::default()
            })
            .await
            .expect("query");
        assert!(none.is_empty());
        let st = s.stats().await.expect("stats");
        assert_eq!((st.obs_messages, st.observations, st.patients), (2, 2, 1));
    }
}
