//! What a restart must not forget: the history a trend rule looks back
//! over. Each test runs two daemons, one after the other, on
//! the same database (SQLite, or PostgreSQL under `VIGIL_TEST_BACKEND`).

use std::path::PathBuf;

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ack};

/// A database that outlives the daemon using it, and the directory that
/// holds it (SQLite) or nothing to keep (PostgreSQL).
async fn durable_database() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var("VIGIL_TEST_BACKEND").is_ok_and(|b| b == "postgres")
        && let Some(url) = crate::pg::fresh_database().await
    {
        return (dir, url);
    }
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    (dir, url)
}

fn shipped_pathways() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways")
}

async fn open_alerts(app: &TestApp, patient: i64) -> Vec<Value> {
    let v = app
        .get_json(&format!("/api/v1/alerts?patient={patient}"))
        .await;
    v.as_array().expect("alerts").clone()
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
    let patient = first.admit("heart-failure").await;
    let creds = first.provision("hub", Some(patient)).await;
    let mut ws = first.ws(&first.token).await;
    let mut dev = first.connect(&creds).await.expect("connects");
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
