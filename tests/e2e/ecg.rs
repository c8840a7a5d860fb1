//! ECG patch → MQTT → stored chunks, beats, heart rate as pulse → API.

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::Value;

use crate::helpers::{TestApp, TestDevice};

const FS: u32 = 250;

fn chunk(seq: u32, t0_ms: i64, samples: &[i16]) -> Vec<u8> {
    let c = vigil_kit::ecg_chunk::EcgChunk {
        seq,
        t0_ms,
        sample_rate_hz: FS as u16,
        uv_per_count: 5.0,
        samples,
    };
    let mut buf = vec![0u8; 25 + 2 * samples.len()];
    let n = c.encode(&mut buf).expect("encode");
    buf.truncate(n);
    buf
}

/// `seconds` of synthetic ECG at 75 /min, ending now, in one-second
/// chunks: the first chunk's start time and the chunks' samples.
pub(crate) fn synthetic_75_per_min(seconds: usize) -> (i64, Vec<Vec<i16>>) {
    let rr = vec![800.0; seconds * 4 / 3 + 1];
    let beats = vigil_ecg::synth::beat_samples(FS, 500.0, &rr);
    let signal = vigil_ecg::synth::render(FS, FS as usize * seconds, &beats, 5.0, 20.0, 11);
    let t0 = Utc::now().timestamp_millis() - 1000 * seconds as i64;
    (
        t0,
        signal.chunks(FS as usize).map(<[i16]>::to_vec).collect(),
    )
}

/// Publish `chunks` as seq 1, 2, …, one second apart from `t0`, and wait
/// until every one is acked.
pub(crate) async fn send_chunks(patch: &mut TestDevice, t0: i64, chunks: &[Vec<i16>]) {
    for (i, c) in chunks.iter().enumerate() {
        patch
            .publish_raw("ecg", chunk(i as u32 + 1, t0 + i as i64 * 1000, c))
            .await;
    }
    let mut acked = BTreeSet::new();
    while acked.len() < chunks.len() {
        let cmd = patch.next_cmd().await;
        assert_eq!(cmd["type"], "ack", "{cmd}");
        acked.extend(
            cmd["seqs"]
                .as_array()
                .expect("seqs")
                .iter()
                .filter_map(Value::as_u64),
        );
    }
    assert_eq!(acked, (1..=chunks.len() as u64).collect::<BTreeSet<u64>>());
}

/// Publish `seconds` of synthetic ECG at 75 /min, ending now, in
/// one-second chunks (seq 1, 2, …), and wait until every one is acked.
/// Returns the first chunk's start time and the chunks' samples.
async fn send_75_per_min(patch: &mut TestDevice, seconds: usize) -> (i64, Vec<Vec<i16>>) {
    let (t0, chunks) = synthetic_75_per_min(seconds);
    send_chunks(patch, t0, &chunks).await;
    (t0, chunks)
}

#[tokio::test]
async fn ecg_chunks_are_stored_acked_analysed_and_served() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let patient = app.admit("heart-failure").await;
    let creds = app.provision("ecg-patch", Some(patient)).await;
    let mut patch = app.connect(&creds).await.expect("patch connects");

    // 90 s of synthetic ECG at 75 /min, ending now, in one-second chunks.
    let (t0, chunks) = send_75_per_min(&mut patch, 90).await;

    // A resent chunk is acked again and stored once.
    patch
        .publish_raw("ecg", chunk(5, t0 + 4000, &chunks[4]))
        .await;
    assert_eq!(patch.next_cmd().await["seqs"], serde_json::json!([5]));
    assert_eq!(app.stats().await.ecg_chunks, 90);

    // The derived heart rate feeds NEWS2 as pulse, attributed to the patch.
    let score = ws.next_event("score").await;
    let pulse = score["score"]["subscores"]
        .as_array()
        .expect("subscores")
        .iter()
        .find(|s| s["parameter"] == "pulse")
        .cloned();
    let pulse = pulse.expect("pulse sub-score from the ECG");
    assert_eq!(pulse["source"], creds.device_id.as_str());
    let bpm = pulse["raw"].as_f64().expect("bpm");
    assert!((74.0..=76.0).contains(&bpm), "{bpm}");

    // The strip: lossless samples and the detected beats.
    let strip = ecg_strip(&app, patient, t0 + 30_000, t0 + 40_000).await;
    let got = strip["chunks"].as_array().expect("chunks");
    assert!((10..=12).contains(&got.len()), "{} chunks", got.len());
    let first = &got[0];
    let idx = ((first["t0_ms"].as_i64().expect("t0") - t0) / 1000) as usize;
    let samples: Vec<i16> = first["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter_map(|v| v.as_i64())
        .map(|v| v as i16)
        .collect();
    assert_eq!(samples, chunks[idx], "stored samples are lossless");
    let n_beats = strip["beats"].as_array().expect("beats").len();
    assert!(
        (11..=14).contains(&n_beats),
        "{n_beats} beats in 10 s at 75 /min"
    );

    let too_long = app
        .get(&format!(
            "/api/v1/patients/{patient}/ecg?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
        ))
        .send()
        .await
        .expect("ecg");
    assert_eq!(too_long.status(), 422);
}

/// A pass stores its beats and heart rates in one transaction. When the
/// beats cannot be stored, that transaction fails; the heart rates must
/// still be stored and scored (each is tried on its own then).
#[tokio::test]
async fn heart_rates_are_stored_and_scored_even_when_the_beats_cannot_be() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let patient = app.admit("heart-failure").await;
    let creds = app.provision("ecg-patch", Some(patient)).await;
    let mut patch = app.connect(&creds).await.expect("patch connects");
    app.raw_db().await.refuse_inserts("ecg_beats", None).await;

    let (t0, _) = send_75_per_min(&mut patch, 30).await;

    let score = ws.next_event("score").await;
    let pulse = score["score"]["subscores"]
        .as_array()
        .expect("subscores")
        .iter()
        .find(|s| s["parameter"] == "pulse")
        .cloned();
    let bpm = pulse.expect("pulse sub-score from the ECG")["raw"]
        .as_f64()
        .expect("bpm");
    assert!((74.0..=76.0).contains(&bpm), "{bpm}");
    let strip = ecg_strip(&app, patient, t0, t0 + 30_000).await;
    assert_eq!(
        strip["chunks"].as_array().map(Vec::len),
        Some(30),
        "the chunks are stored"
    );
    assert_eq!(
        strip["beats"].as_array().map(Vec::len),
        Some(0),
        "the beats were refused"
    );
}

/// A pass with no heart rate to store (the first ten seconds of a patch's
/// signal give none) stores its beats after its scores and alerts, off an
/// alert's way to the dashboard. They must still be stored.
#[tokio::test]
async fn beats_are_stored_when_no_heart_rate_comes_with_them() {
    let app = TestApp::spawn().await;
    let patient = app.admit("heart-failure").await;
    let creds = app.provision("ecg-patch", Some(patient)).await;
    let mut patch = app.connect(&creds).await.expect("patch connects");

    // Eight seconds: fewer than the ten a heart rate needs.
    let (t0, _) = send_75_per_min(&mut patch, 8).await;

    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    loop {
        let strip = ecg_strip(&app, patient, t0, t0 + 8_000).await;
        let n = strip["beats"].as_array().map(Vec::len).unwrap_or_default();
        if n >= 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} beats stored for 8 s at 75 /min (the detector learns over the first seconds)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pulse = pulse_readings(&app, patient).await;
    assert_eq!(
        pulse.as_array().map(Vec::len),
        Some(0),
        "no heart rate from 8 s of signal: {pulse}"
    );
}

#[tokio::test]
async fn malformed_ecg_chunk_is_counted_and_the_stream_carries_on() {
    let app = TestApp::spawn().await;
    let patient = app.admit("general").await;
    let creds = app.provision("ecg-patch", Some(patient)).await;
    let mut patch = app.connect(&creds).await.expect("patch connects");
    patch.publish_raw("ecg", b"VECG-not-really".to_vec()).await;
    let mut wrong_rate = chunk(1, Utc::now().timestamp_millis(), &[0; 50]);
    wrong_rate[17..19].copy_from_slice(&50u16.to_le_bytes());
    patch.publish_raw("ecg", wrong_rate).await;
    let cmd = patch.next_cmd().await;
    assert_eq!(
        (
            cmd["type"].as_str(),
            cmd["seq"].as_u64(),
            cmd["reason"].as_str()
        ),
        (Some("reject"), Some(1), Some("range"))
    );
    patch
        .publish_raw("ecg", chunk(2, Utc::now().timestamp_millis(), &[0; 250]))
        .await;
    assert_eq!(patch.next_cmd().await["seqs"], serde_json::json!([2]));
    assert_eq!(app.stats().await.rejected, 2);
    assert!(
        app.metrics()
            .await
            .contains(r#"vigil_ecg_chunks_total{outcome="rejected"} 2"#)
    );
}

/// Every pulse reading of the patient (`GET …/observations?code=pulse`).
pub(crate) async fn pulse_readings(app: &TestApp, patient: i64) -> Value {
    app.get(&format!(
        "/api/v1/patients/{patient}/observations?code=pulse"
    ))
    .send()
    .await
    .expect("observations")
    .json()
    .await
    .expect("json")
}

/// `GET /api/v1/patients/{patient}/ecg` between two Unix-ms times.
pub(crate) async fn ecg_strip(app: &TestApp, patient: i64, from_ms: i64, to_ms: i64) -> Value {
    let at = |ms: i64| {
        let t = chrono::DateTime::from_timestamp_millis(ms).expect("time");
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .replace('+', "%2B")
    };
    let url = format!(
        "/api/v1/patients/{patient}/ecg?from={}&to={}",
        at(from_ms),
        at(to_ms)
    );
    app.get(&url)
        .send()
        .await
        .expect("ecg")
        .json()
        .await
        .expect("json")
}

/// The shared MIT-BIH records (Moody & Mark 2001; Goldberger et al. 2000).
fn mitdb() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mitdb");
    dir.is_dir().then_some(dir)
}

/// End to end with the simulator: a devsim ECG patch (the kit firmware's
/// encoder and outbox over MQTT) replays MIT-BIH record 201 (Moody & Mark
/// 2001; Goldberger et al. 2000), which opens in atrial fibrillation
/// ("(AFIB" from sample 60 to 378 s). Vigil must give the patient a live
/// heart rate from the patch, serve the stored strip, and raise the
/// possible-AF review prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devsim_patch_replaying_mit_bih_201_gives_heart_rate_strip_and_possible_af_prompt() {
    use vigil_devsim::ecg::Recording;
    use vigil_devsim::patient::PatientSpec;
    use vigil_devsim::scenario::{Scenario, ScenarioPlan};
    use vigil_devsim::ward::{self, Clock, SimPatient, Stamp, WardConfig};
    let Some(dir) = mitdb() else {
        eprintln!("SKIPPED: ../shared/data/mitdb not present");
        return;
    };
    let rec = std::sync::Arc::new(Recording::load(&dir, "201").expect("record 201"));

    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let patient = app.admit("heart-failure").await;
    let sim = |c: crate::helpers::DeviceCreds| vigil_devsim::http::DeviceCreds {
        device_id: c.device_id,
        username: c.username,
        password: c.password,
    };
    let hub = sim(app.provision("hub", Some(patient)).await);
    let patch = sim(app.provision("ecg-patch", Some(patient)).await);
    let patch_id = patch.device_id.clone();
    // Four simulated minutes ending about now, replayed 30 times faster than
    // real time; seed 0 starts the replay at the record's first sample.
    let replay_ms = 240_000;
    let start_ms = Utc::now().timestamp_millis() - replay_ms;
    let spec = PatientSpec {
        plan: ScenarioPlan {
            scenario: Scenario::Stable,
            onset_ms: 0,
            duration_ms: 0,
        },
        pathway: "heart-failure".into(),
        patch: true,
        spot_per_day: 2,
        seed: 0,
        start_ms,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let running = ward::start(
        WardConfig {
            host: app.mqtt_host.clone(),
            port: app.mqtt_port,
            patients: vec![SimPatient {
                spec,
                hub,
                patch: Some(patch),
            }],
            clock: Clock {
                start_ms,
                speed: 30.0,
                stamp: Stamp::Simulated,
            },
            ecg: true,
            recordings: vec![rec],
            tick: std::time::Duration::from_millis(100),
            outbox: vigil_devsim::vigil_kit::outbox::Config::default(),
            tls: None,
        },
        cancel.clone(),
    );

    let rule = format!("ecg-possible-af:{patch_id}");
    let ev = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ws.next_alert_event("alert", &rule),
    )
    .await
    .expect("possible-AF prompt within a minute of replay");
    assert_eq!(ev["alert"]["severity"], "low");
    assert!(
        ev["alert"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("review"),
        "{ev}"
    );

    // The live heart rate: pulse readings derived from the patch's beats.
    let rows = pulse_readings(&app, patient).await;
    let from_patch: Vec<f64> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["device_id"] == patch_id.as_str())
        .filter_map(|r| r["value"].as_f64())
        .collect();
    assert!(
        !from_patch.is_empty(),
        "heart rate derived from the patch: {rows}"
    );
    assert!(
        from_patch.iter().all(|b| (40.0..=200.0).contains(b)),
        "{from_patch:?}"
    );

    // The stored strip is served, with beats.
    let stats = running.devices[0].1.as_ref().expect("patch").stats();
    assert!(stats.outbox.acked > 0, "{stats:?}");
    let strip = ecg_strip(&app, patient, start_ms + 30_000, start_ms + 40_000).await;
    let chunks = strip["chunks"].as_array().expect("chunks");
    assert!(
        chunks.len() >= 9,
        "{} chunks of the replay in 10 s",
        chunks.len()
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["device_id"] == patch_id.as_str() && c["fs_hz"] == 250)
    );
    assert!(
        strip["beats"].as_array().expect("beats").len() >= 8,
        "beats detected in 10 s of AF at ~90–150 /min"
    );
}

/// A patch streaming a steady lead-off signal sends no heart rate and, its
/// signal never changing, no new status: its chunks alone must keep it
/// from counting as offline. The nurse is told the leads are off, not that
/// the patch is gone; once the chunks stop, it is offline.
#[tokio::test]
async fn a_patch_streaming_a_steady_lead_off_signal_is_not_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("patch.toml"),
        crate::helpers::offline_after_pathway("patch", "3s"),
    )
    .expect("write");
    let app = TestApp::spawn_with(None, Some(dir.path().to_path_buf())).await;
    let mut ws = app.ws(&app.token).await;
    let patient = app.admit("patch").await;
    let creds = app.provision("ecg-patch", Some(patient)).await;
    let mut patch = app.connect(&creds).await.expect("patch connects");
    let (offline, lead_off) = (
        format!("device-offline:{}", creds.device_id),
        format!("device-lead-off:{}", creds.device_id),
    );

    // Seven seconds of flat signal (lead off from the first epoch), one
    // chunk a second, in real time: more than twice `offline_after`.
    let start = tokio::time::Instant::now();
    let t0 = Utc::now().timestamp_millis();
    for i in 0..7u32 {
        patch
            .publish_raw(
                "ecg",
                chunk(i + 1, t0 + i64::from(i) * 1000, &[0; FS as usize]),
            )
            .await;
        assert_eq!(patch.next_cmd().await["type"], "ack");
        tokio::time::sleep_until(start + std::time::Duration::from_secs(u64::from(i) + 1)).await;
    }
    let mut raised = Vec::new();
    while let Some(ev) = ws
        .next_event_within_any(std::time::Duration::from_millis(500))
        .await
    {
        if ev["type"] == "alert" {
            raised.push(
                ev["alert"]["rule_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert!(raised.contains(&lead_off), "{raised:?}");
    assert!(
        !raised.contains(&offline),
        "offline while streaming: {raised:?}"
    );

    // The chunks stop: offline 3 s after the last.
    let ev = ws.next_alert_event("alert", &offline).await;
    assert_eq!(ev["alert"]["patient_id"], patient, "{ev}");
    // A chunk again: the offline alert resolves itself, as the system's.
    patch
        .publish_raw(
            "ecg",
            chunk(8, Utc::now().timestamp_millis(), &[0; FS as usize]),
        )
        .await;
    assert_eq!(patch.next_cmd().await["type"], "ack");
    let up = ws.next_alert_event("alert_update", &offline).await;
    assert_eq!(
        (up["action"].as_str(), up["actor"].as_str()),
        (Some("resolved"), Some("system")),
        "{up}"
    );
}
