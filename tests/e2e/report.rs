//! A ward's activity report (`GET /api/v1/wards/{id}/report`): stays and
//! alerts of a real ward, as the daemon stored them, counted over a period.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ack, vitals, wait_for_alerts};

fn at(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An alert raised for `patient` by a reading that scores NEWS2 medium.
async fn medium_alert(app: &TestApp) -> (i64, i64) {
    let (patient, dev) = app.patient_with_device().await;
    let mut dev = dev;
    // RR 25 (3) and pulse 112 (2): NEWS2 5, medium; SpO2 97 raises nothing.
    dev.publish_obs(1, vitals(25, 97, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    wait_for_alerts(app, patient, &["news2".to_string()]).await;
    let alerts = app
        .get_json(&format!("/api/v1/alerts?patient={patient}"))
        .await;
    let id = alerts[0]["id"].as_i64().expect("alert id");
    (patient, id)
}

async fn act(app: &TestApp, path: &str, body: Value) {
    let r = app.post(path, body).send().await.expect("act");
    assert_eq!(r.status(), 200, "{path}");
}

#[tokio::test]
async fn a_ward_report_counts_its_stays_and_how_its_alerts_were_answered() {
    let app = TestApp::spawn().await;
    let ward = app.ward_id().await;
    let began = Utc::now() - Duration::seconds(5);
    // One patient stays; their alert is escalated, then acknowledged.
    let (_, first) = medium_alert(&app).await;
    act(&app, &format!("/api/v1/alerts/{first}/escalate"), json!({})).await;
    act(
        &app,
        &format!("/api/v1/alerts/{first}/acknowledge"),
        json!({}),
    )
    .await;
    // Another's alert is resolved with advice, never acknowledged, and
    // they are discharged.
    let (second_patient, second) = medium_alert(&app).await;
    act(
        &app,
        &format!("/api/v1/alerts/{second}/resolve"),
        json!({"outcome": "advice-given", "note": "inhaler technique"}),
    )
    .await;
    app.discharge(second_patient).await;

    let now = Utc::now() + Duration::seconds(1);
    let report = app
        .get_json(&format!(
            "/api/v1/wards/{ward}/report?from={}&to={}",
            at(began),
            at(now)
        ))
        .await;
    let p = &report["patients"];
    assert_eq!(
        (
            &p["at_start"],
            &p["at_end"],
            &p["admitted"],
            &p["discharged"]
        ),
        (&json!(0), &json!(1), &json!(2), &json!(1)),
        "{report}"
    );
    assert_eq!(p["length_of_stay_days"]["count"], 1);
    assert!(
        p["bed_days"]
            .as_f64()
            .is_some_and(|d| (0.0..0.01).contains(&d))
    );
    let a = &report["alerts"];
    assert_eq!(a["raised"], 2, "{report}");
    assert_eq!(a["by_severity"], json!({"medium": 2}));
    assert_eq!(a["minutes_to_acknowledge"]["count"], 1);
    assert_eq!(
        (
            &a["never_acknowledged"],
            &a["escalated"],
            &a["escalated_by_timer"]
        ),
        (&json!(1), &json!(1), &json!(0))
    );
    assert_eq!(a["live_at_end"], 1, "the acknowledged one is still live");
    assert_eq!(a["outcomes"], json!({"advice-given": 1}));
    assert_eq!(report["ward_id"], ward);

    // A period before any of it holds none of it.
    let before = app
        .get_json(&format!(
            "/api/v1/wards/{ward}/report?from={}&to={}",
            at(began - Duration::days(2)),
            at(began - Duration::days(1))
        ))
        .await;
    assert_eq!(
        (&before["patients"]["admitted"], &before["alerts"]["raised"]),
        (&json!(0), &json!(0))
    );
    // The default period is the last week, and a nurse of the ward may read it.
    let week = app.get_json(&format!("/api/v1/wards/{ward}/report")).await;
    assert_eq!(week["alerts"]["raised"], 2);
    let trail = app.get_json("/api/v1/audit").await;
    assert!(
        trail
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["action"] == "ward.report" && e["detail"]["ward"] == ward),
        "{trail}"
    );

    // Another ward's report is not found; a period that makes no sense is refused.
    let outsider = app.outsider_token().await;
    let r = app
        .http_client
        .get(format!("{}/api/v1/wards/{ward}/report", app.http))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("report");
    assert_eq!(r.status(), 404);
    let future = app
        .get_json(&format!(
            "/api/v1/wards/{ward}/report?from={}&to={}",
            at(began),
            at(now + Duration::days(30))
        ))
        .await;
    let ended =
        chrono::DateTime::parse_from_rfc3339(future["to"].as_str().expect("to")).expect("a time");
    assert!(
        ended <= Utc::now(),
        "a period ending in the future ends now"
    );
    assert_eq!(future["alerts"]["raised"], 2);
    for bad in [
        format!("from={}&to={}", at(now), at(began)),
        format!("from={}", at(now + Duration::days(1))),
        "since=yesterday".to_string(),
    ] {
        let r = app
            .get(&format!("/api/v1/wards/{ward}/report?{bad}"))
            .send()
            .await
            .expect("report");
        assert_eq!(r.status(), 422, "{bad}");
    }
}
