//! Store benchmarks for docs/benchmarks.md, against any database URL:
//!
//! ```sh
//! cargo run --release -p vigil-store --example store_bench -- sqlite:///tmp/bench.db
//! cargo run --release -p vigil-store --example store_bench -- postgres://postgres@127.0.0.1:PORT/bench
//! ```
//!
//! The database should be fresh. Measures: batched ingest (messages and rows
//! per second, batches of 256 messages of 2 observations, one transaction
//! each, as the ingest writes); the 7-day chart query for one patient at one
//! reading a minute (10,080 readings per code, downsampled to 500 points);
//! the ward list for 500 patients (`patients_list`: latest reading of
//! each code per patient) and its earlier score of each
//! (`Store::scores_earlier`); and batched ingest again in a ward's pattern
//! (300 hubs, each batch spread over all of them, as `devsim bench` sends).
//!
//! `--long-series` also charts a whole episode of a continuous oximeter
//! (604,800 readings) and its NEWS2 history (302,400 scores: whole, within
//! `max_points`, and the newest 30), each with the rise in peak resident
//! memory.
//!
//! `--with-time-index` first adds the index candidate
//! `observations(measured_at)` (it would serve the retention delete), to
//! measure what a second index on the busiest table costs ingest.

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use vigil_store::*;

fn obs(code: &str, v: f64, unit: &str) -> NewObservation {
    NewObservation {
        code: code.into(),
        value: ObsValue::Number(v),
        unit: Some(unit.into()),
    }
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite:///tmp/vigil-store-bench.db".into());
    let store = connect(&url).await?;
    if std::env::args().any(|a| a == "--with-time-index") {
        let ddl =
            "CREATE INDEX IF NOT EXISTS observations_measured_at ON observations(measured_at)";
        let done = if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&url).await;
            match pool {
                Ok(p) => sqlx::query(ddl).execute(&p).await.map(|_| ()),
                Err(e) => Err(e),
            }
        } else {
            match sqlx::PgPool::connect(&url).await {
                Ok(p) => sqlx::query(ddl).execute(&p).await.map(|_| ()),
                Err(e) => Err(e),
            }
        };
        done.map_err(|e| StoreError::Backend(e.to_string()))?;
        println!("with the index candidate observations(measured_at)");
    }
    let ward = store
        .ward_add(&format!("bench-{}", Utc::now().timestamp_micros()))
        .await?;
    let t0 = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("time");
    let admit = |i: u32| NewPatient {
        ward_id: ward.id,
        name: format!("P{i}"),
        nhs_number: vigil_store::nhs::test_range(i),
        pathway: "general".into(),
        spo2_scale: 1,
        spo2_scale_set_by: None,
        admitted_at: t0,
    };

    // 1. Batched ingest: one patient, 7 days of minute readings (SpO2 + pulse).
    let chart_patient = store.patient_admit(admit(0)).await?.id;
    let minutes = 7 * 24 * 60;
    let start = Instant::now();
    let mut seq = 0u32;
    for chunk in (0..minutes).collect::<Vec<_>>().chunks(256) {
        let batch: Vec<NewObsMessage> = chunk
            .iter()
            .map(|&m| {
                seq += 1;
                let at = t0 + Duration::minutes(m as i64);
                NewObsMessage {
                    device_id: "bench-oxi".into(),
                    seq,
                    patient_id: chart_patient,
                    measured_at: at,
                    received_at: at,
                    obs: vec![
                        obs("spo2", 94.0 + (m % 5) as f64, "%"),
                        obs("pulse", 70.0 + (m % 20) as f64, "/min"),
                    ],
                }
            })
            .collect();
        store.store_obs_batch(&batch).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ingest: {minutes} messages ({} rows) in {secs:.2} s: {:.0} messages/s, {:.0} rows/s",
        minutes * 2,
        minutes as f64 / secs,
        (minutes * 2) as f64 / secs
    );

    // 2. The 7-day chart query, downsampled to 500 points per code.
    let q = || ObservationQuery {
        patient_id: chart_patient,
        code: Some("spo2".into()),
        from: Some(t0),
        to: Some(t0 + Duration::days(7)),
        max_points: Some(500),
    };
    store.observations(q()).await?;
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        let rows = store.observations(q()).await?;
        assert!(rows.len() <= 500);
    }
    println!(
        "7-day chart (10,080 readings → ≤500 points): {:.1} ms per query",
        start.elapsed().as_secs_f64() * 1000.0 / runs as f64
    );

    // 2b. `--long-series`: a whole episode's chart of a continuous oximeter
    // (3.5 days at one reading a second, SpO2 and pulse: 604,800 rows),
    // both codes to 500 points each: its time, and how far the process's
    // peak resident memory rises while it runs (Linux: the peak is reset
    // through /proc/self/clear_refs first).
    let long_series = std::env::args().any(|a| a == "--long-series");
    if long_series {
        let long = store.patient_admit(admit(9_999)).await?.id;
        let seconds: u32 = 302_400;
        let mut seq = 0u32;
        let started = Instant::now();
        for chunk in (0..seconds).collect::<Vec<_>>().chunks(1_024) {
            let batch: Vec<NewObsMessage> = chunk
                .iter()
                .map(|&s| {
                    seq += 1;
                    let at = t0 + Duration::seconds(i64::from(s));
                    NewObsMessage {
                        device_id: "bench-continuous".into(),
                        seq,
                        patient_id: long,
                        measured_at: at,
                        received_at: at,
                        obs: vec![
                            obs("spo2", 94.0 + f64::from(s % 5), "%"),
                            obs("pulse", 70.0 + f64::from(s % 20), "/min"),
                        ],
                    }
                })
                .collect();
            store.store_obs_batch(&batch).await?;
        }
        println!(
            "long series: {seconds} messages stored in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let q = ObservationQuery {
            patient_id: long,
            max_points: Some(500),
            ..Default::default()
        };
        // Run `read` three times: rows, milliseconds and the rise in peak
        // resident memory of each.
        async fn measured<F, Fut>(what: &str, read: F) -> Result<()>
        where
            F: Fn() -> Fut,
            Fut: std::future::Future<Output = Result<usize>>,
        {
            for run in 0..3 {
                let _ = std::fs::write("/proc/self/clear_refs", "5");
                let before = status_kib("VmRSS:");
                let started = Instant::now();
                let rows = read().await?;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let rise = status_kib("VmHWM:")
                    .zip(before)
                    .map(|(p, b)| p.saturating_sub(b) / 1024);
                println!(
                    "{what} → {rows} rows, run {run}: {ms:.0} ms, peak resident memory +{} MiB",
                    rise.map_or("?".to_string(), |r| r.to_string())
                );
            }
            Ok(())
        }
        measured(
            "long-series chart (604,800 readings, max_points 500)",
            || async { Ok(store.observations(q.clone()).await?.len()) },
        )
        .await?;

        // The same episode's NEWS2 history: a score a second (302,400),
        // each with a detail as the scorer writes it (seven sub-scores).
        let started = Instant::now();
        let detail = |s: u32| {
            let sub = |p: &str, score: u32, raw: f64| {
                serde_json::json!({"parameter": p, "score": score, "raw": raw, "quantised": raw,
                    "measured_at": "2026-11-22T08:00:00Z", "source": "bench-continuous",
                    "obs_id": s, "reason": format!("{p} {raw} → {score}")})
            };
            serde_json::json!({"total": s % 4, "risk": "low", "partial": true,
                "missing": ["resp_rate"], "stale": ["temp"], "not_applicable": null,
                "monitoring": "Minimum 12 hourly", "response": "Continue routine NEWS monitoring",
                "red_score": false, "spo2_scale": {"scale": 1, "set_by": null, "set_at": null},
                "subscores": [sub("spo2", s % 4, 94.0), sub("pulse", 0, 70.0), sub("resp_rate", 0, 16.0),
                    sub("systolic", 0, 120.0), sub("temp", 0, 36.8), sub("acvpu", 0, 0.0), sub("o2", 0, 0.0)]})
        };
        for chunk in (0..seconds).collect::<Vec<_>>().chunks(2_048) {
            let rows: Vec<NewScore> = chunk
                .iter()
                .map(|&s| NewScore {
                    patient_id: long,
                    scored_at: t0 + Duration::seconds(i64::from(s)),
                    computed_at: t0 + Duration::seconds(i64::from(s)),
                    total: Some(i64::from(s % 4)),
                    risk: Some("low".into()),
                    partial: true,
                    detail: detail(s),
                    obs_ids: vec![i64::from(s) * 2, i64::from(s) * 2 + 1],
                })
                .collect();
            store.score_insert_many(&rows).await?;
        }
        println!(
            "long series: {seconds} scores stored in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        measured(
            "long-series scores whole (302,400, as the page read them before)",
            || async { Ok(store.scores(long, None, None).await?.len()) },
        )
        .await?;
        measured(
            "long-series scores chart (302,400, max_points 400)",
            || async { Ok(store.scores_downsampled(long, None, None, 400).await?.len()) },
        )
        .await?;
        measured("long-series scores table (302,400, newest 30)", || async {
            Ok(store.scores_newest(long, None, None, 30).await?.len())
        })
        .await?;
    }

    // 3. The ward list for 500 patients, each with 6 codes measured 4 times.
    let mut ids = Vec::new();
    for i in 1..=500 {
        ids.push(store.patient_admit(admit(i)).await?.id);
    }
    let mut batch = Vec::new();
    for (k, p) in ids.iter().enumerate() {
        for r in 0..4 {
            seq += 1;
            let at = t0 + Duration::hours(r * 6);
            batch.push(NewObsMessage {
                device_id: format!("hub-{k}"),
                seq,
                patient_id: *p,
                measured_at: at,
                received_at: at,
                obs: vec![
                    obs("spo2", 96.0, "%"),
                    obs("pulse", 72.0, "/min"),
                    obs("resp_rate", 16.0, "/min"),
                    obs("systolic", 125.0, "mm[Hg]"),
                    obs("diastolic", 80.0, "mm[Hg]"),
                    obs("temp", 36.8, "Cel"),
                ],
            });
        }
    }
    for b in batch.chunks(256) {
        store.store_obs_batch(b).await?;
    }
    store.patients_list(&[ward.id]).await?;
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        let list = store.patients_list(&[ward.id]).await?;
        // The 500, the first patient and the long series' own, if any.
        assert_eq!(list.len(), 501 + usize::from(long_series));
    }
    println!(
        "ward list, 500 patients: {:.0} ms per query",
        start.elapsed().as_secs_f64() * 1000.0 / runs as f64
    );
    // The ward list's earlier score of each of the 500 (a score stored per
    // reading), in one statement: as of 30 h after the first reading (the
    // newest a day old), and as of 20 h (none that old: the stay's first).
    let scores: Vec<NewScore> = ids
        .iter()
        .flat_map(|p| {
            (0..4).map(move |r| NewScore {
                patient_id: *p,
                scored_at: t0 + Duration::hours(r * 6),
                computed_at: t0 + Duration::hours(r * 6),
                total: Some(r),
                risk: Some("low".into()),
                partial: false,
                detail: serde_json::json!({"total": r}),
                obs_ids: vec![],
            })
        })
        .collect();
    for chunk in scores.chunks(2_048) {
        store.score_insert_many(chunk).await?;
    }
    let asked: Vec<_> = ids.iter().map(|p| (*p, None)).collect();
    for (label, hours) in [("a day old", 30), ("the stay's first", 20)] {
        let then = t0 + Duration::hours(hours) - scoring::EARLIER_SCORE_AGO;
        let start = Instant::now();
        for _ in 0..runs {
            let found = store.scores_earlier(&asked, then).await?;
            assert_eq!(found.len(), ids.len());
        }
        println!(
            "ward list's earlier scores, 500 patients, {label}: {:.1} ms per list",
            start.elapsed().as_secs_f64() * 1000.0 / runs as f64
        );
    }

    // 4. Batched ingest in a ward's pattern: 300 patients with a hub each,
    // the messages of a batch spread over all of them (as `devsim bench`
    // sends), so each batch changes an index page per patient and device
    // rather than appending to one, as in 1.
    let hubs = 300;
    let rounds = 400;
    let mut patients = Vec::new();
    for i in 0..hubs {
        patients.push(store.patient_admit(admit(1_000 + i)).await?.id);
    }
    let mut messages = Vec::with_capacity((hubs * rounds) as usize);
    for r in 0..rounds {
        for (k, p) in patients.iter().enumerate() {
            let at = t0 + Duration::seconds(i64::from(r) * 15 + k as i64 % 15);
            messages.push(NewObsMessage {
                device_id: format!("ward-hub-{k:04}"),
                seq: r + 1,
                patient_id: *p,
                measured_at: at,
                received_at: at,
                obs: vec![
                    obs("spo2", 94.0 + f64::from(r % 5), "%"),
                    obs("pulse", 70.0 + f64::from(r % 20), "/min"),
                ],
            });
        }
    }
    let start = Instant::now();
    let mut half = None;
    for (i, b) in messages.chunks(256).enumerate() {
        if i == messages.len() / 256 / 2 {
            half = Some((Instant::now(), i * 256));
        }
        store.store_obs_batch(b).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = messages.len();
    let (half_at, half_n) = half.unwrap_or((start, 0));
    let later = (n - half_n) as f64 / half_at.elapsed().as_secs_f64();
    println!(
        "ward-pattern ingest: {hubs} hubs × {rounds} messages ({n}) in {secs:.2} s: {:.0} messages/s; second half {later:.0} messages/s",
        n as f64 / secs
    );
    Ok(())
}
