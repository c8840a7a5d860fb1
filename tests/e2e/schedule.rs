//! The kit's measurement schedule (`config` on `cmd`, CONTRACTS.md §2):
//! what the patient's pathway asks for, sent when the device says it is
//! online, again when a clinician asks for observations more or less often,
//! and an empty schedule at discharge.

use serde_json::{Value, json};

use crate::helpers::TestApp;

#[tokio::test]
async fn the_kit_is_told_what_to_measure_and_how_often() {
    let app = TestApp::spawn().await;
    let patient = app.admit("copd").await;
    let creds = app.provision("hub", Some(patient)).await;
    let mut dev = app.connect(&creds).await.expect("connects");
    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 80}).to_string(),
    )
    .await;
    // copd.toml: SpO2 every 8 h, respiratory rate every 12 h.
    assert_eq!(
        dev.next_config().await,
        json!({"type": "config", "schedule": {"spo2": "8h", "resp_rate": "12h"}})
    );

    // "4-hourly obs" for this patient, from the patient's page.
    let patch = |body: Value| {
        app.http_client
            .patch(format!("{}/api/v1/patients/{patient}/episode", app.http))
            .bearer_auth(&app.token)
            .json(&body)
            .send()
    };
    let r = patch(json!({"obs_every_minutes": 240}))
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(
        dev.next_config().await,
        json!({"type": "config", "schedule": {"spo2": "4h", "resp_rate": "4h"}})
    );
    // Another setting changes nothing the kit is told: no config for it
    // (the next one is for going back to the pathway's intervals).
    let r = patch(json!({"oxygen": false})).await.expect("patch");
    assert_eq!(r.status(), 200);
    let r = patch(json!({"obs_every_minutes": 0})).await.expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(
        dev.next_config().await,
        json!({"type": "config", "schedule": {"spo2": "8h", "resp_rate": "12h"}})
    );

    // Reconnected (a kit that restarted): told again.
    dev.publish_raw("status", json!({"online": true}).to_string())
        .await;
    assert_eq!(dev.next_config().await["schedule"]["spo2"], "8h");

    // Discharged: nothing is asked of the kit any more.
    app.discharge(patient).await;
    assert_eq!(
        dev.next_config().await,
        json!({"type": "config", "schedule": {}})
    );
}
