//! The kit's measurement schedule (`config` on `cmd`, CONTRACTS.md §2):
//! what the patient's pathway asks for, sent when the device says it is
//! online, again when a clinician asks for observations more or less often,
//! and an empty schedule at discharge.

use std::time::Duration;

use serde_json::json;

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
    // copd.toml: SpO2 every 8 h, respiratory rate every 12 h. (Told at its
    // online status, and perhaps also by the worker's round of the devices'
    // patients, which tells a device given to a patient: the same.)
    let copd = json!({"type": "config", "schedule": {"spo2": "8h", "resp_rate": "12h"}});
    assert_eq!(dev.next_config().await, copd);
    while let Some(again) = dev.next_config_within(Duration::from_secs(6)).await {
        assert_eq!(again, copd);
    }

    // "4-hourly obs" for this patient, from the patient's page.
    let r = app
        .patch_episode(patient, json!({"obs_every_minutes": 240}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        dev.next_config().await,
        json!({"type": "config", "schedule": {"spo2": "4h", "resp_rate": "4h"}})
    );
    // Another setting changes nothing the kit is told: no config for it
    // (the next one is for going back to the pathway's intervals).
    let r = app.patch_episode(patient, json!({"oxygen": false})).await;
    assert_eq!(r.status(), 200);
    let r = app
        .patch_episode(patient, json!({"obs_every_minutes": 0}))
        .await;
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

/// A device given to a patient while it is connected is told their schedule
/// without a status of its own; taken back mid-stay, it is told nothing is
/// asked of it.
#[tokio::test]
async fn a_device_given_or_taken_back_while_connected_is_told() {
    let app = TestApp::spawn().await;
    let patient = app.admit("copd").await;
    let creds = app.provision("oximeter", None).await;
    let mut dev = app.connect(&creds).await.expect("connects");
    assert_eq!(
        dev.next_config_within(Duration::from_secs(6)).await,
        None,
        "no one's: nothing asked"
    );
    let r = app
        .post(
            &format!("/api/v1/devices/{}/assign", creds.device_id),
            json!({"patient_id": patient}),
        )
        .send()
        .await
        .expect("assign");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(dev.next_config().await["schedule"]["spo2"], "8h");
    let r = app
        .post(
            &format!("/api/v1/devices/{}/unassign", creds.device_id),
            json!({"patient_id": patient}),
        )
        .send()
        .await
        .expect("unassign");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        dev.next_config().await,
        json!({"type": "config", "schedule": {}})
    );
}
