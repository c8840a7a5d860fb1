//! Timers end to end, on a test pathway whose durations are seconds, so the
//! real daemon's timers run in a test without long waits: missed readings,
//! their recovery, escalation after the pathway's time, and a restart.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ack};

const QUICK: &str = r#"
name = "quick"
title = "Test pathway with second-scale timers"
spo2_scale = 1
freshness = "6h"

[[expect]]
codes = ["spo2"]
every = "3s"
grace = "1s"
severity = "low"

[[rule]]
id = "spo2-urgent"
when = "spo2 <= 92"
severity = "medium"
message = "SpO2 92 % or below"
advice = { level = "urgent", text = "Call 111 now." }

[escalation]
high = "2s"
medium = "2s"
low-medium = "2s"
low = "1h"
"#;

pub(crate) fn pathways() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("quick.toml"), QUICK).expect("write");
    let p = dir.path().to_path_buf();
    (dir, p)
}

pub(crate) async fn quick_patient(
    app: &TestApp,
) -> (i64, crate::helpers::TestDevice, crate::helpers::DeviceCreds) {
    let r = app
        .post(
            "/api/v1/patients",
            json!({"ward": app.ward, "name": "Q", "nhs_number": crate::helpers::nhs_number(), "pathway": "quick"}),
        )
        .send()
        .await
        .expect("admit");
    assert_eq!(r.status(), 201);
    let patient = r.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    let creds = app.provision("oximeter", Some(patient)).await;
    let dev = app.connect(&creds).await.expect("connects");
    (patient, dev, creds)
}

#[tokio::test]
async fn missed_reading_alert_raises_when_readings_stop_and_resolves_when_they_resume() {
    let (_d, dir) = pathways();
    let app = TestApp::spawn_with(None, Some(dir)).await;
    let mut ws = app.ws(&app.token).await;
    let (_, mut dev, _) = quick_patient(&app).await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    // No SpO2 for every + grace = 4 s: the missed-reading alert.
    let ev = ws.next_alert_event("alert", "missed-spo2").await;
    assert_eq!(ev["alert"]["severity"], "low");
    // Readings resume: it resolves itself, recorded as the system's.
    dev.publish_obs(2, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    let up = ws.next_alert_event("alert_update", "missed-spo2").await;
    assert_eq!(
        (
            up["action"].as_str(),
            up["actor"].as_str(),
            up["alert"]["outcome"].as_str()
        ),
        (Some("resolved"), Some("system"), Some("data-resumed"))
    );
}

/// A clinician's observation interval reaches the running engine: a
/// patient whose observations are asked for every 15 minutes (in place of
/// the pathway's 3 s) is not missed when another, on the pathway's, is;
/// the setting is recorded with who and when, bounded, and 0 goes back to
/// the pathway's (then the first patient is missed too).
#[tokio::test]
async fn a_clinicians_observation_interval_moves_the_missed_reading_clock() {
    let (_d, dir) = pathways();
    let app = TestApp::spawn_with(None, Some(dir)).await;
    let mut ws = app.ws(&app.token).await;
    let (slower, mut dev_a, _) = quick_patient(&app).await;
    let (usual, mut dev_b, _) = quick_patient(&app).await;
    for bad in [5, 10_081, -1] {
        let r = app
            .patch_episode(slower, json!({"obs_every_minutes": bad}))
            .await;
        assert_eq!(r.status(), 422, "{bad}");
    }
    let r = app
        .patch_episode(slower, json!({"obs_every_minutes": 15}))
        .await;
    assert_eq!(r.status(), 200);
    let settings: Value = r.json().await.expect("json");
    assert_eq!(
        (
            &settings["obs_every_minutes"],
            &settings["obs_every_set_by"]
        ),
        (&json!(15), &json!("admin")),
        "{settings}"
    );
    for dev in [&mut dev_a, &mut dev_b] {
        dev.publish_obs(1, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
            .await;
        assert_ack(&dev.next_cmd().await, &[1]);
    }
    // The usual patient is missed after 3 s + 1 s; the other is not, then
    // or in the next 2 s.
    let ev = ws.next_alert_event("alert", "missed-spo2").await;
    assert_eq!(ev["alert"]["patient_id"], usual, "{ev}");
    let more = ws.next_event_within("alert", Duration::from_secs(2)).await;
    assert!(more.is_none(), "{more:?}");
    assert_eq!(
        app.get_json(&format!("/api/v1/alerts?patient={slower}&status=open"))
            .await,
        json!([])
    );

    // Back to the pathway's: already overdue, so missed at once.
    let r = app
        .patch_episode(slower, json!({"obs_every_minutes": 0}))
        .await;
    assert_eq!(r.status(), 200);
    let ev = ws.next_alert_event("alert", "missed-spo2").await;
    assert_eq!(ev["alert"]["patient_id"], slower, "{ev}");
}

#[tokio::test]
async fn unacknowledged_alert_escalates_after_its_pathways_time() {
    let (_d, dir) = pathways();
    let app = TestApp::spawn_with(None, Some(dir)).await;
    let mut ws = app.ws(&app.token).await;
    let (_, mut dev, _) = quick_patient(&app).await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 91, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let raised = ws.next_alert_event("alert", "spo2-urgent").await;
    assert_eq!(dev.next_feedback().await["level"], "urgent");
    let up = ws.next_alert_event("alert_update", "spo2-urgent").await;
    assert_eq!(
        (up["action"].as_str(), up["actor"].as_str()),
        (Some("escalated"), Some("system"))
    );
    let raised_at = chrono::DateTime::parse_from_rfc3339(
        raised["alert"]["escalate_at"].as_str().expect("deadline"),
    )
    .expect("time");
    assert!(
        chrono::Utc::now() >= raised_at,
        "not escalated before its time"
    );
}

#[tokio::test]
async fn a_restart_keeps_open_alerts_and_raises_nothing_twice() {
    let (_d, dir) = pathways();
    let db_dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", db_dir.path().join("v.db").display());
    let first = TestApp::spawn_with(Some(url.clone()), Some(dir.clone())).await;
    let mut ws = first.ws(&first.token).await;
    let (patient, mut dev, creds) = quick_patient(&first).await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 91, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let id = ws.next_alert_event("alert", "spo2-urgent").await["alert"]["id"].clone();
    drop(ws);
    drop(dev);
    drop(first);

    // The same database, a new daemon (new ports), the same device.
    let second = TestApp::attach(url, dir).await;
    let mut ws = second.ws(&second.token).await;
    let mut dev = second.connect(&creds).await.expect("reconnects");
    dev.publish_obs(2, json!([{"code": "spo2", "value": 90, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    let up = ws.next_alert_event("alert_update", "spo2-urgent").await;
    assert_eq!(
        up["alert"]["id"], id,
        "the open alert is updated, not raised again"
    );
    let open = second
        .get_json(&format!("/api/v1/alerts?patient={patient}"))
        .await;
    let urgent = open
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["rule_id"] == "spo2-urgent")
        .count();
    assert_eq!(urgent, 1, "{open}");
}

#[tokio::test]
async fn discharge_resolves_the_patients_alerts_and_nothing_escalates_or_is_raised_after() {
    let (_d, dir) = pathways();
    let app = TestApp::spawn_with(None, Some(dir)).await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev, _) = quick_patient(&app).await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 91, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    // Medium: escalates 2 s after it is raised if nobody acts.
    let raised = ws.next_alert_event("alert", "spo2-urgent").await;
    let id = raised["alert"]["id"].as_i64().expect("id");

    let body = app.discharge(patient).await;
    let resolved: Vec<i64> = body["resolved_alerts"]
        .as_array()
        .expect("resolved_alerts")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert!(resolved.contains(&id), "{body}");

    // Dashboards hear each alert leave the queue; after that, nothing of
    // this patient: no escalation (2 s), no missed-reading alert (4 s
    // after the last reading), through the engine's next patient sync.
    let mut heard = Vec::new();
    while let Some(ev) = ws.next_event_within_any(Duration::from_secs(8)).await {
        if ev["alert"]["patient_id"].as_i64() == Some(patient) {
            heard.push(ev);
        }
    }
    // Each resolved alert, and nothing else; the worker's patient sync may
    // repeat the API's push (the same alert, the same update).
    let ids: std::collections::BTreeSet<i64> = heard
        .iter()
        .filter_map(|ev| ev["alert"]["id"].as_i64())
        .collect();
    assert_eq!(ids, resolved.iter().copied().collect(), "{heard:#?}");
    for ev in &heard {
        assert_eq!(
            (
                ev["type"].as_str(),
                ev["action"].as_str(),
                ev["actor"].as_str(),
                ev["alert"]["status"].as_str(),
                ev["alert"]["outcome"].as_str()
            ),
            (
                Some("alert_update"),
                Some("resolved"),
                Some("admin"),
                Some("resolved"),
                Some("discharged")
            ),
            "{ev}"
        );
    }
    assert_eq!(app.get_json("/api/v1/alerts?status=open").await, json!([]));
    let events = app.get_json(&format!("/api/v1/alerts/{id}")).await;
    let actions: Vec<&str> = events["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(actions, ["raised", "resolved"], "{events}");
}
