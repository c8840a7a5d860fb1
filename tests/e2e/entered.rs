//! Readings a clinician enters (`POST /api/v1/patients/{id}/observations`):
//! validated as a device's are, stored, scored, fed to the rules and
//! alerted on as a device's are, with who entered them as their source.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ack, kit_set, subscore};

#[tokio::test]
async fn a_respiratory_rate_counted_on_a_call_completes_news2_and_raises_its_alert() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, kit_set()).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let s = ws.next_event("score").await["score"].clone();
    assert_eq!(
        (&s["partial"], &s["missing"]),
        (&json!(true), &json!(["resp_rate"])),
        "{s}"
    );

    // The nurse counts 25 breaths a minute on a video call (measured now:
    // the time is the server's unless the request gives one).
    let path = format!("/api/v1/patients/{patient}/observations");
    let r = app
        .post(
            &path,
            json!({"obs": [{"code": "resp_rate", "value": 25, "unit": "/min"}]}),
        )
        .send()
        .await
        .expect("post");
    let status = r.status();
    let entered: Value = r.json().await.expect("json");
    assert_eq!(status, 201, "{entered}");
    assert_eq!(
        (&entered["patient_id"], &entered["source"]),
        (&json!(patient), &json!("manual:admin"))
    );
    let id = entered["observation_ids"][0].as_i64().expect("an id");

    // As a device's: on the dashboards, scored whole, and its alert raised.
    let ev = ws.next_event("observation").await;
    assert_eq!(
        (&ev["patient_id"], &ev["device_id"], &ev["obs"][0]["id"]),
        (&json!(patient), &json!("manual:admin"), &json!(id))
    );
    let alert = ws.next_alert_event("alert", "news2").await["alert"].clone();
    assert_eq!(
        alert["severity"], "low-medium",
        "a single parameter scoring 3: {alert}"
    );
    let s = ws.next_event("score").await["score"].clone();
    assert_eq!(
        (&s["partial"], &s["total"]),
        (&json!(false), &json!(3)),
        "{s}"
    );
    assert_eq!(subscore(&s, "resp_rate"), Some(3), "{s}");
    let rows = app.get_json(&format!("{path}?code=resp_rate")).await;
    assert_eq!(
        (&rows[0]["id"], &rows[0]["device_id"], &rows[0]["value"]),
        (&json!(id), &json!("manual:admin"), &json!(25.0)),
        "{rows}"
    );

    // Refused as a device's would be, and with nothing stored.
    let admitted =
        app.get_json(&format!("/api/v1/patients/{patient}")).await["episode"]["admitted_at"]
            .as_str()
            .expect("admitted_at")
            .to_string();
    let before = (chrono::DateTime::parse_from_rfc3339(&admitted).expect("time")
        - Duration::minutes(1))
    .to_rfc3339();
    for (body, why) in [
        (
            json!({"obs": [{"code": "spo2", "value": 9, "unit": "%"}]}),
            "obs \"spo2\": range",
        ),
        (
            json!({"obs": [{"code": "spo2", "value": 96, "unit": "/min"}]}),
            "obs \"spo2\": unit",
        ),
        (json!({"obs": []}), "obs: 1 to 16 readings"),
        (
            json!({"obs": [{"code": "spo2\u{0}", "value": 96, "unit": "%"}]}),
            "code: control character U+0000 is not text",
        ),
        (
            json!({"obs": [{"code": "spo2", "value": 96, "unit": "%\u{0}"}]}),
            "unit: control character U+0000 is not text",
        ),
        (
            json!({"obs": [{"code": "pulse", "value": 70, "unit": "/min"}, {"code": "pulse", "value": 71, "unit": "/min"}]}),
            "obs \"pulse\": given twice",
        ),
        (
            json!({"measured_at": (Utc::now() + Duration::minutes(10)).to_rfc3339(), "obs": [{"code": "pulse", "value": 70, "unit": "/min"}]}),
            "measured_at: more than 5 minutes ahead of the server's clock",
        ),
        (
            json!({"measured_at": before, "obs": [{"code": "pulse", "value": 70, "unit": "/min"}]}),
            "measured_at: before the patient's admission",
        ),
    ] {
        let r = app.post(&path, body).send().await.expect("post");
        assert_eq!(r.status(), 422, "{why}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"]["message"], why, "{body}");
    }
    let r = app
        .post(&path, json!({"obs": [], "by": "someone"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422, "an unknown field");
    let outsider = app.outsider_token().await;
    let r = app
        .http_client
        .post(format!("{}{path}", app.http))
        .bearer_auth(&outsider)
        .json(&json!({"obs": [{"code": "pulse", "value": 70, "unit": "/min"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404, "another ward's patient");
    let s = app.stats().await;
    assert_eq!(
        (s.obs_messages, s.observations),
        (2, 7),
        "the kit's message and the entry"
    );
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "vigil_entered_readings_total{outcome=\"stored\"} 1",
        "vigil_entered_readings_total{outcome=\"failed\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in /metrics");
    }

    // On the audit trail by its codes and ids, never its values.
    let entry = app.audit_entry(patient, "patient.observations.enter").await;
    assert_eq!(entry["detail"]["codes"], json!(["resp_rate"]), "{entry}");
    assert_eq!(entry["detail"]["observations"], json!([id]), "{entry}");
    // No reading's value anywhere in it (the entry's times may hold a 25:
    // look at its numbers and keys, not its text).
    fn holds_value(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.as_f64() == Some(25.0),
            Value::Array(a) => a.iter().any(holds_value),
            // Observation ids are not values.
            Value::Object(o) => o.iter().any(|(k, v)| {
                k == "value" || k == "obs" || (k != "observations" && holds_value(v))
            }),
            _ => false,
        }
    }
    assert!(!holds_value(&entry), "no value: {entry}");

    // A discharged patient's record takes no more.
    app.discharge(patient).await;
    let r = app
        .post(
            &path,
            json!({"obs": [{"code": "pulse", "value": 70, "unit": "/min"}]}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 409);
}
