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
    // So is one of a ward no ward can have (an id past i64, as the API
    // fuzzer sent). The CSV file alike.
    let outsider = app.outsider_token().await;
    for path in ["report", "report.csv"] {
        for (ward, token) in [
            (ward.to_string(), &outsider),
            ("9223372036854775808".into(), &app.token),
        ] {
            let r = app
                .http_client
                .get(format!("{}/api/v1/wards/{ward}/{path}", app.http))
                .bearer_auth(token)
                .send()
                .await
                .expect("report");
            assert_eq!(r.status(), 404, "{ward}/{path}");
        }
    }
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

    // The same period as a CSV file: a header and a row, the same figures.
    let query = format!("from={}&to={}", at(began), at(now));
    let json_report = app
        .get_json(&format!("/api/v1/wards/{ward}/report?{query}"))
        .await;
    let r = app
        .get(&format!("/api/v1/wards/{ward}/report.csv?{query}"))
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 200);
    let header = |k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    let disposition = header("content-disposition");
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"ward-{ward}-report-"))
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let text = r.text().await.expect("body");
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines.len(),
        3,
        "a header, a row, and the last line's end: {text:?}"
    );
    let (names, values) = (lines[0].split(','), lines[1].split(','));
    let csv: std::collections::HashMap<&str, &str> = names.zip(values).collect();
    let ward_name = json_report["ward"].as_str().expect("name");
    assert_eq!(csv["ward"], format!("\"{ward_name}\""), "{text}");
    for (column, json_value) in [
        ("ward_id", &json_report["ward_id"]),
        ("patients_at_end", &json_report["patients"]["at_end"]),
        ("admitted", &json_report["patients"]["admitted"]),
        ("discharged", &json_report["patients"]["discharged"]),
        ("alerts_raised", &json_report["alerts"]["raised"]),
        (
            "alerts_medium",
            &json_report["alerts"]["by_severity"]["medium"],
        ),
        (
            "never_acknowledged",
            &json_report["alerts"]["never_acknowledged"],
        ),
        ("escalated", &json_report["alerts"]["escalated"]),
        ("live_at_end", &json_report["alerts"]["live_at_end"]),
        (
            "resolved_advice_given",
            &json_report["alerts"]["outcomes"]["advice-given"],
        ),
        (
            "minutes_to_acknowledge_median",
            &json_report["alerts"]["minutes_to_acknowledge"]["median"],
        ),
    ] {
        assert_eq!(
            csv[column].parse::<f64>().ok(),
            json_value.as_f64(),
            "{column}: {text}"
        );
    }
    assert_eq!(csv["alerts_high"], "0", "{text}");
    assert_eq!(
        csv["from"],
        json_report["from"]
            .as_str()
            .map(|f| &f[..19])
            .map(|f| format!("{f}Z"))
            .expect("from")
    );
    let trail = app.get_json("/api/v1/audit").await;
    assert!(
        trail
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["action"] == "ward.report" && e["detail"]["format"] == "csv"),
        "the download is on the trail: {trail}"
    );
    let r = app
        .get(&format!(
            "/api/v1/wards/{ward}/report.csv?from={}&to={}",
            at(now),
            at(began)
        ))
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 422);
}
