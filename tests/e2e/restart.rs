//! What a restart must not forget: the history a trend rule looks back
//! over, and readings that were stored and acked but not yet scored when
//! the daemon stopped. Each test runs two daemons, one after the other, on
//! the same database (SQLite, or PostgreSQL under `VIGIL_TEST_BACKEND`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{
    DeviceCreds, RawDb, TestApp, TestDevice, WAIT, WsClient, assert_ack, open_alerts, vitals,
    wait_for_alerts,
};

/// A database that outlives the daemon using it, and the directory that
/// holds it (SQLite) or nothing to keep (PostgreSQL).
pub(crate) async fn durable_database() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var("VIGIL_TEST_BACKEND").is_ok_and(|b| b == "postgres")
        && let Some(url) = crate::pg::fresh_database().await
    {
        return (dir, url);
    }
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    (dir, url)
}

/// `vigil_ingest_caught_up_total` says what the daemon took up at start.
async fn assert_caught_up(app: &TestApp, observations: u64, ecg_chunks: u64) {
    let m = app.metrics().await;
    for (kind, n) in [("observations", observations), ("ecg_chunks", ecg_chunks)] {
        let line = format!(r#"vigil_ingest_caught_up_total{{kind="{kind}"}} {n}"#);
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
}

fn shipped_pathways() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways")
}

/// A patient on `pathway` with a hub, connected, and a dashboard's stream.
async fn patient_with_hub(
    app: &TestApp,
    pathway: &str,
) -> (i64, DeviceCreds, WsClient, TestDevice) {
    let patient = app.admit(pathway).await;
    let creds = app.provision("hub", Some(patient)).await;
    let ws = app.ws(&app.token).await;
    let dev = app.connect(&creds).await.expect("connects");
    (patient, creds, ws, dev)
}

fn weight(kg: f64) -> Value {
    json!([{"code": "weight", "value": kg, "unit": "kg"}])
}

/// Heart failure's `change("weight", "3d") > 2` over a restart: 80 and
/// 81 kg before it, 82.5 kg after. The rule must compare with 80 (+2.5 kg),
/// not with the one reading a restarted engine used to start from (81:
/// +1.5 kg, no alert).
#[tokio::test]
async fn a_trend_rule_reads_the_history_stored_before_a_restart() {
    let (_keep, url) = durable_database().await;
    let first = TestApp::attach(url.clone(), shipped_pathways()).await;
    let (patient, creds, mut ws, mut dev) = patient_with_hub(&first, "heart-failure").await;
    let now = Utc::now();
    dev.publish_obs_at(1, now - chrono::Duration::seconds(120), weight(80.0))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    dev.publish_obs_at(2, now - chrono::Duration::seconds(60), weight(81.0))
        .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    // A scored reading after the weights: its score is pushed once the
    // worker has been through every reading stored before it.
    dev.publish_obs(3, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[3]);
    ws.next_event("score").await;
    assert!(
        open_alerts(&first, patient)
            .await
            .iter()
            .all(|a| a["rule_id"] != "weight-gain"),
        "+1 kg raises nothing"
    );
    drop(ws);
    drop(dev);
    drop(first);

    let second = TestApp::attach(url, shipped_pathways()).await;
    let mut ws = second.ws(&second.token).await;
    let dev = second.connect(&creds).await.expect("reconnects");
    dev.publish_obs(4, weight(82.5)).await;
    let raised = ws.next_alert_event("alert", "weight-gain").await;
    assert_eq!(raised["alert"]["patient_id"], patient, "{raised}");
}

/// A daemon that stops between storing a reading (and acking it) and
/// scoring it: the next one must score it and raise its alerts. The state
/// such a stop leaves is made directly in the database, as the intake
/// writes it: a message and its observations, above the worker's progress.
#[tokio::test]
async fn a_reading_stored_but_not_scored_before_a_stop_is_scored_and_alerted_after_it() {
    let (_keep, url) = durable_database().await;
    let first = TestApp::attach(url.clone(), shipped_pathways()).await;
    let (patient, creds, mut ws, mut dev) = patient_with_hub(&first, "general").await;
    dev.publish_obs(1, vitals(16, 97, 70)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    ws.next_event("score").await;
    drop(ws);
    drop(dev);
    drop(first);

    // RR 25 (3) + SpO2 91 (3) + pulse 131 (3): NEWS2 9, and the general
    // pathway's spo2-urgent (92 or below).
    // Measured after the first reading (a late one is history, AL-04).
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let device = &creds.device_id;
    let rows: Vec<String> = [
        ("resp_rate", "25", "NULL", "'/min'"),
        ("spo2", "91", "NULL", "'%'"),
        ("o2_flow", "0", "NULL", "'L/min'"),
        ("systolic", "125", "NULL", "'mm[Hg]'"),
        ("pulse", "131", "NULL", "'/min'"),
        ("acvpu", "NULL", "'A'", "NULL"),
        ("temp", "36.9", "NULL", "'Cel'"),
    ]
    .iter()
    .map(|(code, num, text, unit)| {
        format!("({patient}, '{device}', 2, '{code}', {num}, {text}, {unit}, '{at}', '{at}')")
    })
    .collect();
    let db = RawDb::connect(&url).await;
    db.execute(&format!(
        "INSERT INTO obs_messages (device_id, seq, patient_id, measured_at, received_at)
         VALUES ('{device}', 2, {patient}, '{at}', '{at}');
         INSERT INTO observations (patient_id, device_id, seq, code, value_num, value_text, unit, measured_at, received_at)
         VALUES {};",
        rows.join(", ")
    ))
    .await
    .expect("the state a stop leaves");
    drop(db);

    let second = TestApp::attach(url, shipped_pathways()).await;
    let rules = wait_for_alerts(&second, patient, &["news2".into(), "spo2-urgent".into()]).await;
    let news2: Vec<Value> = open_alerts(&second, patient)
        .await
        .into_iter()
        .filter(|a| a["rule_id"] == "news2")
        .collect();
    assert_eq!(news2.len(), 1, "{rules:?}");
    assert_eq!(news2[0]["severity"], "high", "{}", news2[0]);
    // Scored once at each reading's time: the reading the first daemon
    // scored is not taken up again.
    let scores = second
        .get_json(&format!("/api/v1/patients/{patient}/scores"))
        .await;
    let totals: Vec<i64> = scores
        .as_array()
        .expect("scores")
        .iter()
        .map(|s| s["total"].as_i64().expect("total"))
        .collect();
    assert_eq!(totals, [0, 9], "{scores}");
    // Counted for the operator: seven observations taken up, no ECG.
    assert_caught_up(&second, 7, 0).await;
}

/// A patient whose readings stop before a restart: the restarted daemon
/// must still raise the missed-reading alert when it falls due, though the
/// patient sends nothing more (the one patient it matters for). The test
/// pathway expects SpO2 every 3 s, with 1 s of grace.
#[tokio::test]
async fn a_patient_silent_since_before_a_restart_gets_the_missed_reading_alert() {
    let (_keep, url) = durable_database().await;
    let (_d, pathways) = crate::timers::pathways();
    let first = TestApp::attach(url.clone(), pathways.clone()).await;
    let (patient, mut dev, _) = crate::timers::quick_patient(&first).await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    drop(dev);
    drop(first);

    let second = TestApp::attach(url, pathways).await;
    let mut ws = second.ws(&second.token).await;
    let ev = ws.next_alert_event("alert", "missed-spo2").await;
    assert_eq!(ev["alert"]["patient_id"], patient, "{ev}");
}

/// Patients admitted who never send a reading: the missed-reading clock
/// runs from admission, with no reading to start it. More patients than
/// the worker takes into the engine at one go (200), all of them.
#[tokio::test]
async fn patients_who_never_send_a_reading_get_the_missed_reading_alert() {
    let (_d, pathways) = crate::timers::pathways();
    let app = TestApp::spawn_with(None, Some(pathways)).await;
    let mut ws = app.ws(&app.token).await;
    let mut waiting = std::collections::BTreeSet::new();
    for _ in 0..250 {
        waiting.insert(app.admit("quick").await);
    }
    let deadline = tokio::time::Instant::now() + 2 * WAIT;
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(ev) = ws.next_event_within("alert", left).await else {
            panic!(
                "{} patients never got the missed-reading alert",
                waiting.len()
            );
        };
        if ev["alert"]["rule_id"] != "missed-spo2" {
            continue;
        }
        assert!(
            ev["alert"]["latest_value"]["latest"]
                .as_str()
                .is_some_and(|v| v.contains("since admission")),
            "{ev}"
        );
        if let Some(p) = ev["alert"]["patient_id"].as_i64() {
            waiting.remove(&p);
        }
    }
}

/// Devices silent for longer than the pathway's `offline_after` (general:
/// 6 h) when the daemon starts: their offline alert is due at once, as
/// judged from when each was last heard of (one's last status report, the
/// other's last reading, both 7 h ago, the patient admitted 8 h ago), not
/// from the restart.
#[tokio::test]
async fn a_device_silent_since_before_a_restart_is_offline_by_when_it_was_last_heard() {
    let (_keep, url) = durable_database().await;
    let first = TestApp::attach(url.clone(), shipped_pathways()).await;
    let patient = first.admit("general").await;
    let cuff = first.provision("bp-cuff", Some(patient)).await.device_id;
    let oximeter = first.provision("oximeter", Some(patient)).await.device_id;
    drop(first);

    let ago = |h| {
        (Utc::now() - chrono::Duration::hours(h))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let (admitted, then) = (ago(8), ago(7));
    let db = RawDb::connect(&url).await;
    // Admitted 8 h ago (a clock never runs from before the admission). The
    // cuff's last word was a status report; the oximeter's a reading,
    // scored long ago (below the worker's progress).
    let online = if db.is_postgres() { "true" } else { "1" };
    db.execute(&format!(
        "UPDATE episodes SET admitted_at = '{admitted}' WHERE patient_id = {patient};
         INSERT INTO device_status (device_id, online, battery_pct, signal, fw, reported_at)
         VALUES ('{cuff}', {online}, 80, 'ok', '1.0.0', '{then}');
         INSERT INTO obs_messages (device_id, seq, patient_id, measured_at, received_at)
         VALUES ('{oximeter}', 1, {patient}, '{then}', '{then}');
         INSERT INTO observations (patient_id, device_id, seq, code, value_num, unit, measured_at, received_at)
         VALUES ({patient}, '{oximeter}', 1, 'spo2', 97, '%', '{then}', '{then}');
         UPDATE worker_progress SET observation_id = (SELECT MAX(id) FROM observations);"
    ))
    .await
    .expect("the state seven silent hours leave");
    drop(db);

    let second = TestApp::attach(url, shipped_pathways()).await;
    wait_for_alerts(
        &second,
        patient,
        &[
            format!("device-offline:{cuff}"),
            format!("device-offline:{oximeter}"),
        ],
    )
    .await;
}

/// A device moved to another patient is no longer its first patient's to
/// miss: no `device-offline` for them, while it runs and after a restart
/// (whose rebuild replays the first patient's readings from that device),
/// while its new patient's offline alert still comes when it stops. The
/// first patient's live device alerts for it are resolved as the system's
/// (`device-unassigned`), for a move while the daemon runs and for one
/// made while it was stopped.
#[tokio::test]
async fn a_device_moved_to_another_patient_is_never_offline_for_the_first() {
    let (_keep, url) = durable_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Offline after 8 s: longer than the worker's patient sync (5 s), so
    // a move is taken up before the first patient's clock for the device
    // runs out.
    std::fs::write(
        dir.path().join("moved.toml"),
        crate::helpers::offline_after_pathway("moved", "8s"),
    )
    .expect("write");
    let pathways = dir.path().to_path_buf();
    let first = TestApp::attach(url.clone(), pathways.clone()).await;
    let ann = first.admit("moved").await;
    let bob = first.admit("moved").await;
    let ox = first.provision("oximeter", Some(ann)).await;
    let cuff = first.provision("bp-cuff", Some(ann)).await;
    let rule = |kind: &str, d: &DeviceCreds| format!("device-{kind}:{}", d.device_id);
    let mut dev = first.connect(&ox).await.expect("connects");
    let mut cuff_dev = first.connect(&cuff).await.expect("connects");
    let low = json!({"online": true, "battery_pct": 10}).to_string();
    for d in [&dev, &cuff_dev] {
        d.publish_raw("status", low.clone()).await;
    }
    let spo2 = json!([{"code": "spo2", "value": 97, "unit": "%"}]);
    dev.publish_obs(1, spo2.clone()).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    cuff_dev
        .publish_obs(
            1,
            json!([{"code": "systolic", "value": 125, "unit": "mm[Hg]"}]),
        )
        .await;
    assert_ack(&cuff_dev.next_cmd().await, &[1]);
    wait_for_alerts(
        &first,
        ann,
        &[rule("battery-low", &ox), rule("battery-low", &cuff)],
    )
    .await;

    // The oximeter moved to Bob (as `vigil admin device assign` does, from
    // another process); it goes on sending, now Bob's, for longer than
    // Ann's clock for it would have run.
    first
        .store
        .device_assign(&ox.device_id, bob)
        .await
        .expect("assign");
    for seq in 2..=8 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        dev.publish_obs(seq, spo2.clone()).await;
        assert_ack(&dev.next_cmd().await, &[seq]);
    }
    let alert =
        |alerts: &[Value], rule: &str| alerts.iter().find(|a| a["rule_id"] == rule).cloned();
    let anns = open_alerts(&first, ann).await;
    assert!(
        alert(&anns, &rule("offline", &ox)).is_none(),
        "Ann's device-offline for a device that is Bob's"
    );
    let resolved = |a: Option<Value>| a.map(|a| (a["status"].clone(), a["outcome"].clone()));
    assert_eq!(
        resolved(alert(&anns, &rule("battery-low", &ox))),
        Some((json!("resolved"), json!("device-unassigned"))),
        "{anns:#?}"
    );
    assert_eq!(
        resolved(alert(&anns, &rule("battery-low", &cuff))),
        Some((json!("open"), Value::Null)),
        "the cuff is still Ann's"
    );
    drop((dev, cuff_dev));
    drop(first);

    // Stopped, the cuff is moved to Bob too; restarted, the oximeter has
    // stopped, so Bob's clock for it runs out; Ann's must not start again
    // from her old readings, and her cuff's alert is resolved.
    vigil_store::connect(&url)
        .await
        .expect("store")
        .device_assign(&cuff.device_id, bob)
        .await
        .expect("assign");
    let second = TestApp::attach(url, pathways).await;
    wait_for_alerts(&second, bob, &[rule("offline", &ox)]).await;
    // Every alert of Ann's about the cuff (its battery, and its offline
    // alert from when it was hers and silent) resolved as the system's.
    let cuffs = |anns: &[Value]| -> Vec<(Value, Value)> {
        anns.iter()
            .filter(|a| {
                a["rule_id"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&format!(":{}", cuff.device_id)))
            })
            .map(|a| (a["status"].clone(), a["outcome"].clone()))
            .collect()
    };
    let done = (json!("resolved"), json!("device-unassigned"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let anns = loop {
        let anns = open_alerts(&second, ann).await;
        if cuffs(&anns).iter().all(|c| *c == done) || tokio::time::Instant::now() > deadline {
            break anns;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let c = cuffs(&anns);
    assert!(!c.is_empty() && c.iter().all(|c| *c == done), "{anns:#?}");
    assert!(
        alert(&anns, &rule("offline", &ox)).is_none(),
        "Ann's device-offline for the oximeter after the restart: {anns:#?}"
    );
}

/// ECG chunks stored and acked but not analysed when the daemon stopped:
/// the restarted daemon analyses them (their beats found, a heart rate
/// derived and scored) before it takes anything new, and does not analyse
/// again what the first daemon did (hazard TS-24). 90 s of ECG at 75 /min:
/// the first 30 s through MQTT to the first daemon, then the last 60 s
/// stored as its intake would have stored them, as a stop between the
/// commit and the worker's pass leaves them.
#[tokio::test]
async fn ecg_stored_but_not_analysed_before_a_stop_is_analysed_after_it() {
    let (_keep, url) = durable_database().await;
    let first = TestApp::attach(url.clone(), shipped_pathways()).await;
    let patient = first.admit("heart-failure").await;
    let creds = first.provision("ecg-patch", Some(patient)).await;
    let mut patch = first.connect(&creds).await.expect("patch connects");
    let (t0, chunks) = crate::ecg::synthetic_75_per_min(90);
    crate::ecg::send_chunks(&mut patch, t0, &chunks[..30]).await;
    let from_patch = |rows: Value| -> Vec<(i64, f64)> {
        rows.as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["device_id"] == creds.device_id.as_str())
            .map(|r| {
                let at = r["measured_at"].as_str().expect("measured_at");
                let at = chrono::DateTime::parse_from_rfc3339(at).expect("time");
                (at.timestamp_millis(), r["value"].as_f64().expect("bpm"))
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let before = loop {
        let rates = from_patch(crate::ecg::pulse_readings(&first, patient).await);
        if !rates.is_empty() {
            break rates;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heart rate from the first 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Every chunk of the first 30 s through a pass before the stop, so that
    // what the second daemon takes up is exactly what this test stores.
    let store = vigil_store::connect(&url).await.expect("store");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !store
        .ecg_unanalysed(None, 1)
        .await
        .expect("unanalysed")
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first 30 s never analysed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(patch);
    drop(first);

    let stored: Vec<vigil_store::NewEcgChunk> = chunks
        .iter()
        .enumerate()
        .skip(30)
        .map(|(i, samples)| vigil_store::NewEcgChunk {
            device_id: creds.device_id.clone(),
            seq: i as u32 + 1,
            patient_id: patient,
            t0_ms: t0 + i as i64 * 1000,
            fs_hz: 250,
            uv_per_count: 5.0,
            n_samples: samples.len() as u32,
            encoding: vigil_ecg::SAMPLE_ENCODING.into(),
            samples: vigil_ecg::encode_samples(samples),
            received_at: Utc::now(),
        })
        .collect();
    store
        .store_ecg_batch(&stored)
        .await
        .expect("the state a stop leaves");

    let second = TestApp::attach(url, shipped_pathways()).await;
    let later = t0 + 30_000;
    let deadline = tokio::time::Instant::now() + WAIT;
    let after = loop {
        let rates = from_patch(crate::ecg::pulse_readings(&second, patient).await);
        if rates.iter().any(|(at, _)| *at >= later) {
            break rates;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heart rate from the chunks stored before the stop: {rates:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (at, bpm) = *after.iter().find(|(at, _)| *at >= later).expect("later");
    assert!((74.0..=76.0).contains(&bpm), "{bpm}");
    // The first 30 s were not analysed again (a fresh analysis of them
    // would derive their heart rate a second time).
    let earlier: Vec<(i64, f64)> = after
        .iter()
        .copied()
        .filter(|(at, _)| *at < later)
        .collect();
    assert_eq!(earlier, before);
    // Scored at its time, like any heart rate from the patch (the pass
    // stores the heart rate with its beats first, then its score: wait).
    loop {
        let scores = second
            .get_json(&format!("/api/v1/patients/{patient}/scores"))
            .await;
        let scored = scores.as_array().expect("scores").iter().any(|s| {
            s["scored_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.timestamp_millis() == at)
        });
        if scored {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no score at the heart rate's time {at}: {scores}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The beats of the last 45 s (the detector starts afresh, as after a
    // gap): about 56 at 75 /min.
    let strip = crate::ecg::ecg_strip(&second, patient, t0 + 45_000, t0 + 90_000).await;
    let beats = strip["beats"].as_array().map_or(0, Vec::len);
    assert!(
        (50..=60).contains(&beats),
        "{beats} beats in 45 s at 75 /min"
    );
    assert!(
        store
            .ecg_unanalysed(None, 10)
            .await
            .expect("unanalysed")
            .is_empty(),
        "every chunk analysed"
    );
    // Counted for the operator: the 60 chunks, no observation.
    assert_caught_up(&second, 0, 60).await;
}
