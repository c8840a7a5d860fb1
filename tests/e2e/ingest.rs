//! Device → MQTT → store → ack, and everything that can go wrong on the way.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, assert_ack};

#[tokio::test]
async fn observation_is_stored_pushed_and_acked() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;

    dev.publish_obs(1, json!([{"code": "spo2", "value": 94, "unit": "%"}, {"code": "pulse", "value": 88, "unit": "/min"}]))
        .await;

    assert_ack(&dev.next_cmd().await, &[1]);
    let ev = ws.next_event("observation").await;
    assert_eq!(ev["patient_id"], patient);
    assert_eq!(ev["seq"], 1);
    assert_eq!(ev["obs"].as_array().map(Vec::len), Some(2));

    let rows: serde_json::Value = app
        .get(&format!("/api/v1/patients/{patient}/observations"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let codes: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert_eq!(codes, ["pulse", "spo2"]);
    assert_eq!(rows[1]["value"], 94.0);
    assert_eq!(app.stats().await.obs_messages, 1);
    // Operator metrics: batches, store latency, live sessions (the device and the ingest).
    let m = app.metrics().await;
    assert!(m.contains("vigil_ingest_batch_size_count 1"), "{m}");
    assert!(
        m.contains(r#"vigil_store_write_seconds_count{kind="obs"} 1"#),
        "{m}"
    );
    assert!(m.contains("vigil_mqtt_connections 2"), "{m}");
    assert!(m.contains("vigil_ingest_queue_depth 0"), "{m}");
    // The scoring pass that follows the ack is timed by stage. The score
    // event goes out before the pass ends, so wait for its last stage
    // (`status`) to be counted.
    ws.next_event("score").await;
    let stage_counted = |m: &str, stage: &str| {
        m.lines().any(|l| {
            l.starts_with(&format!(
                r#"vigil_ingest_pass_stage_seconds_total{{stage="{stage}"}}"#
            ))
        })
    };
    let mut m = app.metrics().await;
    for _ in 0..50 {
        if stage_counted(&m, "status") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = app.metrics().await;
    }
    for stage in [
        "ecg",
        "score_read",
        "score",
        "alerts",
        "rules",
        "store",
        "resolve",
        "status",
    ] {
        assert!(stage_counted(&m, stage), "stage {stage} is timed: {m}");
    }
}

#[tokio::test]
async fn ack_never_arrives_when_the_commit_fails() {
    let app = TestApp::spawn().await;
    let (_, mut dev) = app.patient_with_device().await;
    // Break the database under the daemon: every message insert now aborts.
    let raw = app.raw_db().await;
    let (break_it, mend_it) = if raw.is_postgres() {
        (
            "CREATE FUNCTION fail_obs() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER fail_obs BEFORE INSERT ON obs_messages FOR EACH ROW EXECUTE FUNCTION fail_obs();",
            "DROP TRIGGER fail_obs ON obs_messages",
        )
    } else {
        (
            "CREATE TRIGGER fail_obs BEFORE INSERT ON obs_messages BEGIN SELECT RAISE(ABORT, 'injected'); END",
            "DROP TRIGGER fail_obs",
        )
    };
    raw.execute(break_it).await.expect("trigger");

    let obs = json!([{"code": "pulse", "value": 70, "unit": "/min"}]);
    dev.publish_obs(1, obs.clone()).await;
    assert_eq!(
        dev.next_cmd_within(Duration::from_secs(2)).await,
        None,
        "no ack without a commit"
    );
    assert_eq!(app.stats().await.obs_messages, 0);
    assert!(
        app.metrics()
            .await
            .contains(r#"vigil_obs_messages_total{outcome="error"} 1"#)
    );

    // The database recovers; the device resends the same seq and is acked.
    raw.execute(mend_it).await.expect("drop trigger");
    dev.publish_obs(1, obs).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    assert_eq!(app.stats().await.obs_messages, 1);
}

#[tokio::test]
async fn duplicate_seq_is_stored_once_and_acked_again() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;

    dev.publish_obs(7, json!([{"code": "pulse", "value": 70, "unit": "/min"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[7]);
    dev.publish_obs(7, json!([{"code": "pulse", "value": 130, "unit": "/min"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[7]);

    let rows: serde_json::Value = app
        .get(&format!("/api/v1/patients/{patient}/observations"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    assert_eq!(rows[0]["value"], 70.0, "the first stored version wins");
    let s = app.stats().await;
    assert_eq!((s.obs_messages, s.observations), (1, 1));
    let m = app.metrics().await;
    assert!(
        m.contains(r#"vigil_obs_messages_total{outcome="duplicate"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"vigil_obs_messages_total{outcome="stored"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn each_bad_message_is_rejected_with_its_reason_and_the_stream_carries_on() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;
    let now = chrono::Utc::now();
    let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let future =
        (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    dev.publish_raw("obs", "{this is not json").await;
    let cases = [
        (
            2,
            json!({"seq": 2, "ts": ts, "obs": [{"code": "mood", "value": 3}]}),
            "unknown_code",
        ),
        (
            3,
            json!({"seq": 3, "ts": ts, "obs": [{"code": "spo2", "value": 94, "unit": "mmHg"}]}),
            "unit",
        ),
        (
            4,
            json!({"seq": 4, "ts": ts, "obs": [{"code": "spo2", "value": 250, "unit": "%"}]}),
            "range",
        ),
        (
            5,
            json!({"seq": 5, "ts": future, "obs": [{"code": "spo2", "value": 94, "unit": "%"}]}),
            "future_ts",
        ),
    ];
    for (seq, payload, reason) in &cases {
        dev.publish_raw("obs", payload.to_string()).await;
        let cmd = dev.next_cmd().await;
        assert_eq!(cmd["type"], "reject", "{cmd}");
        assert_eq!(cmd["seq"], *seq);
        assert_eq!(cmd["reason"], *reason);
    }
    // The next valid message from the same device is stored.
    dev.publish_obs(6, json!([{"code": "spo2", "value": 96, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[6]);

    let s = app.stats().await;
    assert_eq!((s.obs_messages, s.rejected), (1, 5));
    // Rejects (one for each message with a seq to name), like acks, at
    // QoS 0 (docs/mqtt.md).
    assert_eq!(dev.qos_of("reject"), vec![rumqttc::QoS::AtMostOnce; 4]);
    let m = app.metrics().await;
    for reason in ["json", "unknown_code", "unit", "range", "future_ts"] {
        assert!(
            m.contains(&format!(
                r#"vigil_obs_rejected_total{{reason="{reason}"}} 1"#
            )),
            "{reason}: {m}"
        );
    }
    assert!(m.contains(r#"vigil_obs_messages_total{outcome="rejected"} 5"#));
    let rows: serde_json::Value = app
        .get(&format!("/api/v1/patients/{patient}/observations"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn wrong_password_and_revoked_device_are_refused_at_connect() {
    let app = TestApp::spawn().await;
    let patient = app.admit("general").await;
    let mut creds = app.provision("oximeter", Some(patient)).await;
    let good = creds.password.clone();

    creds.password = "0".repeat(64);
    assert!(
        app.connect(&creds).await.is_err(),
        "wrong password must be refused"
    );

    creds.password = good;
    app.connect(&creds).await.expect("right password connects");

    app.store
        .device_revoke(&creds.device_id, chrono::Utc::now())
        .await
        .expect("revoke");
    assert!(
        app.connect(&creds).await.is_err(),
        "revoked device must be refused"
    );

    let unknown = crate::helpers::DeviceCreds {
        device_id: "hub-nobody".into(),
        username: "hub-nobody".into(),
        password: "x".into(),
    };
    assert!(
        app.connect(&unknown).await.is_err(),
        "unknown device must be refused"
    );
}

#[tokio::test]
async fn device_cannot_publish_under_another_devices_topic() {
    let app = TestApp::spawn().await;
    let (victim, _victim_dev) = app.patient_with_device().await;
    let (_, mut attacker) = app.patient_with_device().await;
    let victim_device = app
        .store
        .patient_get(victim)
        .await
        .expect("get")
        .expect("patient")
        .devices[0]
        .id
        .clone();

    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let forged = json!({"seq": 1, "ts": ts, "obs": [{"code": "spo2", "value": 80, "unit": "%"}]})
        .to_string();
    attacker
        .publish_to(&format!("vigil/v1/dev/{victim_device}/obs"), forged)
        .await;

    assert!(
        attacker.disconnected().await.is_some(),
        "the broker drops a device that breaks the topic ACL"
    );
    assert_eq!(app.stats().await.obs_messages, 0);
    // And counts the message it dropped.
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"vigil_mqtt_dropped_total{reason="refused",to="none"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unassigned_device_readings_are_rejected_not_lost_silently() {
    let app = TestApp::spawn().await;
    let creds = app.provision("oximeter", None).await;
    let mut dev = app.connect(&creds).await.expect("connects");
    dev.publish_obs(1, json!([{"code": "spo2", "value": 95, "unit": "%"}]))
        .await;
    let cmd = dev.next_cmd().await;
    assert_eq!(
        (cmd["type"].as_str(), cmd["reason"].as_str()),
        (Some("reject"), Some("no_patient"))
    );
    assert_eq!(app.stats().await.rejected, 1);
}

#[tokio::test]
async fn revoking_a_device_drops_its_live_session() {
    let app = TestApp::spawn().await;
    let (_, mut dev) = app.patient_with_device().await;
    let id = dev.id.clone();
    app.store
        .device_revoke(&id, chrono::Utc::now())
        .await
        .expect("revoke");
    assert!(
        dev.disconnected().await.is_some(),
        "the revoked device's open connection is dropped"
    );
}

/// A NUL (or another control character) in what a device sends, which
/// PostgreSQL cannot store in text: a code, a unit, a status field. The
/// message is rejected or the field dropped, with its reason counted, and
/// the stream carries on, on both backends: nothing a device sends may
/// stall its own queue or another's.
#[tokio::test]
async fn control_characters_from_a_device_are_refused_and_the_stream_carries_on() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (seq, payload) in [
        (
            1,
            json!({"seq": 1, "ts": ts, "obs": [{"code": "sp\u{0}o2", "value": 94, "unit": "%"}]}),
        ),
        (
            2,
            json!({"seq": 2, "ts": ts, "obs": [{"code": "spo2", "value": 94, "unit": "%\u{0}"}]}),
        ),
    ] {
        dev.publish_raw("obs", payload.to_string()).await;
        let cmd = dev.next_cmd().await;
        assert_eq!(
            (&cmd["type"], &cmd["seq"]),
            (&json!("reject"), &json!(seq)),
            "{cmd}"
        );
    }
    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 80, "fw": "1.2\u{0}"}).to_string(),
    )
    .await;
    dev.publish_obs(3, json!([{"code": "spo2", "value": 96, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[3]);
    let s = app.stats().await;
    assert_eq!((s.obs_messages, s.rejected), (1, 2));
    let detail = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    let status = &detail["devices"][0]["status"];
    assert_eq!(status["battery_pct"], 80, "{detail}");
    assert!(status["fw"].is_null(), "the NUL field is dropped: {detail}");
}
