//! The end-to-end path on PostgreSQL: publish over MQTT → stored → scored →
//! alert → API and websocket, on a fresh database in a throwaway cluster
//! (the store suite's harness; it fails loudly if PostgreSQL is missing,
//! unless VIGIL_SKIP_POSTGRES=1).

use serde_json::json;

use crate::helpers::{TestApp, assert_ack};

#[path = "../../crates/vigil-store/tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

#[tokio::test]
async fn the_whole_path_works_on_postgresql() {
    let Some(url) = pg::fresh_database().await else { return };
    let app = TestApp::spawn_on(Some(url)).await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    let vitals = json!([
        {"code": "resp_rate", "value": 22, "unit": "/min"},
        {"code": "spo2", "value": 94, "unit": "%"},
        {"code": "o2_flow", "value": 0, "unit": "L/min"},
        {"code": "systolic", "value": 125, "unit": "mm[Hg]"},
        {"code": "pulse", "value": 112, "unit": "/min"},
        {"code": "acvpu", "value": "A"},
        {"code": "temp", "value": 36.9, "unit": "Cel"}
    ]);
    dev.publish_obs(1, vitals.clone()).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    assert_eq!(ws.next_event("observation").await["patient_id"], patient);
    assert_eq!(ws.next_event("score").await["score"]["total"], 5);
    assert_eq!(ws.next_alert_event("alert", "news2").await["alert"]["severity"], "medium");
    // A resend is stored once and acked again.
    dev.publish_obs(1, vitals).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let rows: serde_json::Value =
        app.get(&format!("/api/v1/patients/{patient}/observations")).send().await.expect("get").json().await.expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(7));
    let s = app.stats().await;
    assert_eq!((s.obs_messages, s.observations), (1, 7));
    let list: serde_json::Value = app.get("/api/v1/patients").send().await.expect("list").json().await.expect("json");
    assert_eq!(list[0]["news2"]["total"], 5);
}
