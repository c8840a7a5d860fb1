//! Alerts: raised from live NEWS2, merged, acted on with an audit trail,
//! escalated when nobody acts, and never raised for a superseded state.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ack, vitals};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.post(path, body).send().await.expect("post")
}

#[tokio::test]
async fn deterioration_raises_one_alert_that_repeats_update() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;

    // RR 22 (2) + SpO2 94 (1) + pulse 112 (2) = 5: medium.
    dev.publish_obs(1, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    // A pass pushes its alerts before its scores (a ward's worth of them):
    // the dashboard hears the alert first.
    let first = ws.next_event_of(&["score", "alert"]).await;
    assert_eq!(
        first["type"], "alert",
        "the alert before the score: {first}"
    );
    let ev = if first["alert"]["rule_id"] == "news2" {
        first
    } else {
        ws.next_alert_event("alert", "news2").await
    };
    assert_eq!(ws.next_event("score").await["score"]["total"], 5);
    let alert = &ev["alert"];
    assert_eq!(
        (
            alert["patient_id"].as_i64(),
            alert["severity"].as_str(),
            alert["status"].as_str()
        ),
        (Some(patient), Some("medium"), Some("open"))
    );
    assert_eq!(alert["rule_id"], "news2");
    assert!(
        alert["escalate_at"].is_string(),
        "a medium alert has an escalation time"
    );
    assert!(
        !alert["evidence"].as_array().expect("evidence").is_empty(),
        "the alert links to its readings"
    );

    dev.publish_obs(2, vitals(22, 94, 115)).await;
    assert_ack(&dev.next_cmd().await, &[2]);
    let up = ws.next_alert_event("alert_update", "news2").await;
    assert_eq!(
        (up["action"].as_str(), up["alert"]["count"].as_i64()),
        (Some("updated"), Some(2))
    );

    // Worse: the same alert's severity goes up; still one alert.
    dev.publish_obs(3, vitals(26, 91, 135)).await;
    assert_ack(&dev.next_cmd().await, &[3]);
    let up = ws.next_alert_event("alert_update", "news2").await;
    assert_eq!(up["alert"]["severity"], "high");
    ws.next_alert_event("alert", "news2-rising").await;
    let open: Value = app
        .get("/api/v1/alerts?status=open")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let rules: Vec<&str> = open
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["rule_id"].as_str())
        .collect();
    // One NEWS2 alert, merged; the climb 5 → 9 within a day is "rising";
    // the general pathway's own rules add theirs (SpO2, heart rate).
    assert_eq!(rules.iter().filter(|r| **r == "news2").count(), 1, "{open}");
    assert!(rules.contains(&"news2-rising"), "{open}");
    // The pathway's own rules may still be firing for the last reading (they
    // run after the ack): `stats` must agree with the open list once that
    // settles, never count alerts the API does not show.
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    loop {
        let before: Value = app
            .get("/api/v1/alerts?status=open")
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let counted = app.stats().await.alerts_open;
        let after: Value = app
            .get("/api/v1/alerts?status=open")
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let n = before.as_array().map(Vec::len).unwrap_or_default();
        if before == after && counted == n as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats {counted} open alerts, the API lists {n}: {after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // NEWS2 medium, plus the pathway's own medium rules for these vitals.
    assert!(
        app.metrics()
            .await
            .contains(r#"vigil_alerts_raised_total{severity="medium"}"#)
    );
}

/// A pass stores its scores and alerts in one transaction. When the
/// scores cannot be stored, that transaction fails; the alert must still be
/// stored and pushed (hazard AL-12), and the score is not claimed as stored.
#[tokio::test]
async fn an_alert_is_raised_even_when_its_score_cannot_be_stored() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    // Break the score table under the daemon: every score insert aborts.
    app.raw_db().await.refuse_inserts("scores", None).await;

    // RR 22 (2) + SpO2 94 (1) + pulse 112 (2) = 5: medium.
    dev.publish_obs(1, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let ev = ws.next_alert_event("alert", "news2").await;
    assert_eq!(
        (
            ev["alert"]["patient_id"].as_i64(),
            ev["alert"]["severity"].as_str()
        ),
        (Some(patient), Some("medium"))
    );
    let ward_alerts: Value = app
        .get("/api/v1/alerts?status=open")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        ward_alerts
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["rule_id"] == "news2" && a["patient_id"].as_i64() == Some(patient)),
        "the alert is stored: {ward_alerts}"
    );
    assert!(
        app.store
            .scores(patient, None, None)
            .await
            .expect("scores")
            .is_empty(),
        "no score was stored"
    );
}

/// When the pass's alerts cannot be stored together (one of them is
/// refused), each is tried on its own: the refused one loses no other.
#[tokio::test]
async fn an_alert_the_store_refuses_loses_no_other_alert_of_its_pass() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    // Refuse every new alert except NEWS2's, under the running daemon.
    app.raw_db()
        .await
        .refuse_inserts("alerts", Some("NEW.rule_id <> 'news2'"))
        .await;

    // NEWS2 high, and the general pathway's SpO2 and heart-rate rules fire
    // in the same pass: their alerts are the ones refused.
    dev.publish_obs(1, vitals(26, 91, 135)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let ev = ws.next_alert_event("alert", "news2").await;
    assert_eq!(
        (
            ev["alert"]["patient_id"].as_i64(),
            ev["alert"]["severity"].as_str()
        ),
        (Some(patient), Some("high"))
    );
    let open: Value = app
        .get("/api/v1/alerts?status=open")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let rules: Vec<&str> = open
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["rule_id"].as_str())
        .collect();
    assert_eq!(
        rules,
        ["news2"],
        "only the refused alerts are missing: {open}"
    );
    // The pass's score was stored too (apart from its alerts): RR 26 (3) +
    // SpO2 91 (3) + pulse 135 (3) = 9.
    assert_eq!(
        app.store
            .scores(patient, None, None)
            .await
            .expect("scores")
            .last()
            .and_then(|s| s.total),
        Some(9)
    );
}

#[tokio::test]
async fn lifecycle_is_audited_and_a_resolved_state_is_not_raised_again() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (_, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let id = ws.next_alert_event("alert", "news2").await["alert"]["id"]
        .as_i64()
        .expect("id");

    let r = post(&app, &format!("/api/v1/alerts/{id}/acknowledge"), json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["status"],
        "acknowledged"
    );
    assert_eq!(
        post(&app, &format!("/api/v1/alerts/{id}/acknowledge"), json!({}))
            .await
            .status(),
        409
    );
    assert_eq!(
        ws.next_alert_event("alert_update", "news2").await["action"],
        "acknowledged"
    );
    assert_eq!(
        post(&app, &format!("/api/v1/alerts/{id}/escalate"), json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(
            &app,
            &format!("/api/v1/alerts/{id}/resolve"),
            json!({"note": "x"})
        )
        .await
        .status(),
        422
    );
    let r = post(
        &app,
        &format!("/api/v1/alerts/{id}/resolve"),
        json!({"outcome": "reviewed by phone"}),
    )
    .await;
    assert_eq!(r.status(), 422, "outcomes come from a fixed list");
    let r = post(
        &app,
        &format!("/api/v1/alerts/{id}/resolve"),
        json!({"outcome": "advice-given", "note": "plan agreed by phone"}),
    )
    .await;
    assert_eq!(r.json::<Value>().await.expect("json")["status"], "resolved");

    let one: Value = app
        .get(&format!("/api/v1/alerts/{id}"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let trail: Vec<(String, String)> = one["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = [
        ("raised", "system"),
        ("acknowledged", "admin"),
        ("escalated", "admin"),
        ("resolved", "admin"),
    ];
    assert_eq!(trail, expect.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(one["alert"]["outcome"], "advice-given");

    // The same medium state after resolution does not raise a new alert ...
    dev.publish_obs(2, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[2]);
    ws.next_event("score").await;
    let again: Value = app
        .get("/api/v1/alerts?status=open")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        again
            .as_array()
            .expect("alerts")
            .iter()
            .all(|a| a["rule_id"] != "news2"),
        "{again}"
    );
    // ... a worse one does.
    dev.publish_obs(3, vitals(26, 91, 135)).await;
    assert_ack(&dev.next_cmd().await, &[3]);
    assert_eq!(
        ws.next_alert_event("alert", "news2").await["alert"]["severity"],
        "high"
    );
}

/// The handover: what the shift resolved, and how, with whom it was about
/// and who resolved it; live alerts are not in it, another ward's user sees
/// none of it, and reading it is on the audit trail.
#[tokio::test]
async fn a_shifts_resolved_alerts_are_listed_for_the_handover() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let id = ws.next_alert_event("alert", "news2").await["alert"]["id"]
        .as_i64()
        .expect("id");
    assert_eq!(app.get_json("/api/v1/alerts/resolved").await, json!([]));

    let r = post(
        &app,
        &format!("/api/v1/alerts/{id}/resolve"),
        json!({"outcome": "advice-given", "note": "inhaler technique checked"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let listed = app.get_json("/api/v1/alerts/resolved?hours=1").await;
    let rows = listed.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{listed}");
    let row = &rows[0];
    assert_eq!(
        (&row["id"], &row["patient_id"], &row["rule_id"]),
        (&json!(id), &json!(patient), &json!("news2"))
    );
    assert_eq!(row["outcome"], "advice-given");
    assert_eq!(row["note"], "inhaler technique checked");
    assert_eq!(row["resolved_by"], "admin");
    assert_eq!(row["status"], "resolved");
    let detail = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    assert_eq!(row["patient_name"], detail["name"]);
    assert_eq!(row["nhs_number"], detail["nhs_number"]);

    let outsider = app.outsider_token().await;
    assert_eq!(
        app.get_json_as("/api/v1/alerts/resolved", &outsider).await,
        json!([])
    );
    for bad in ["hours=0", "hours=169", "hours=x", "days=1"] {
        let r = app
            .get(&format!("/api/v1/alerts/resolved?{bad}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 422, "{bad}");
    }
    let audit = app.get_json("/api/v1/audit?limit=50").await;
    let entry = audit
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|e| e["action"] == "alerts.resolved" && e["detail"]["count"] == 1)
        })
        .unwrap_or_else(|| panic!("no audit entry naming the patient: {audit}"));
    assert_eq!(entry["detail"]["patients"], json!([patient]));
}

#[tokio::test]
async fn unacknowledged_alert_escalates_on_its_own() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, _dev) = app.patient_with_device().await;
    let ward_id = app
        .store
        .patient_get(patient)
        .await
        .expect("get")
        .expect("patient")
        .ward_id;
    // An alert whose escalation time has just passed (the timer itself runs
    // on the real clock; this fixes the deadline instead of waiting 5 min).
    let (alert, _) = app
        .store
        .alert_fire(
            vigil_store::AlertFiring {
                patient_id: patient,
                ward_id,
                rule_id: "news2".into(),
                severity: vigil_store::Severity::High,
                message: "NEWS2 7: high risk".into(),
                value: json!({}),
                evidence: vec![],
                at: Utc::now(),
                escalate_at: Some(Utc::now() - chrono::Duration::seconds(1)),
            },
            Utc::now(),
        )
        .await
        .expect("fire");
    let ev = ws.next_event("alert_update").await;
    assert_eq!(
        (ev["action"].as_str(), ev["actor"].as_str()),
        (Some("escalated"), Some("system"))
    );
    assert_eq!(ev["alert"]["id"].as_i64(), Some(alert.id));
    let escalated: Value = app
        .get("/api/v1/alerts?status=escalated")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(escalated.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_brief_deterioration_arriving_with_the_recovery_still_alerts() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    let now = Utc::now();
    dev.publish_obs_at(1, now - chrono::Duration::minutes(5), vitals(16, 97, 72))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    ws.next_event("score").await;

    // A medium reading and, a minute later, a normal one, sent back to back
    // (a hub forwarding what it held while offline): they are committed
    // and scored together, and the medium state must alert all the same.
    dev.publish_obs_at(2, now - chrono::Duration::minutes(1), vitals(22, 94, 112))
        .await;
    dev.publish_obs_at(3, now, vitals(16, 97, 72)).await;
    let mut acked = Vec::new();
    while acked.len() < 2 {
        let cmd = dev.next_cmd().await;
        assert_eq!(cmd["type"], "ack", "{cmd}");
        acked.extend(
            cmd["seqs"]
                .as_array()
                .expect("seqs")
                .iter()
                .filter_map(Value::as_u64),
        );
    }
    // The alert, and the newest state pushed as the live score, in either
    // order: scored in one pass, the score is pushed before the alert is
    // announced; in two, the medium score and its alert come first.
    let (mut alert, mut newest) = (None, None);
    while alert.is_none() || newest.is_none() {
        let ev = ws.next_event_of(&["alert", "score"]).await;
        if ev["type"] == "alert" && ev["alert"]["rule_id"] == "news2" {
            alert = Some(ev);
        } else if ev["type"] == "score" && ev["score"]["total"] == 0 {
            newest = Some(ev);
        }
    }
    let ev = alert.expect("alert");
    assert_eq!(ev["alert"]["severity"], "medium", "{ev}");
    // The history has both.
    let history: Value = app
        .get(&format!("/api/v1/patients/{patient}/scores"))
        .send()
        .await
        .expect("scores")
        .json()
        .await
        .expect("json");
    let totals: Vec<i64> = history
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["total"].as_i64())
        .collect();
    assert_eq!(totals, [0, 5, 0], "{history}");
}

#[tokio::test]
async fn late_reading_never_raises_an_alert_for_a_superseded_state() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (_, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, vitals(16, 97, 72)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    ws.next_event("score").await;

    // From 40 minutes ago, arriving now: it would have been medium then.
    dev.publish_obs_at(
        2,
        Utc::now() - chrono::Duration::minutes(40),
        vitals(22, 94, 112),
    )
    .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    ws.next_event("score").await;
    assert!(
        ws.next_event_within("alert", Duration::from_millis(500))
            .await
            .is_none()
    );
    let all: Value = app
        .get("/api/v1/alerts")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(all, json!([]));
    // Not alerted, but counted: operators see deteriorations arriving late.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"vigil_news2_superseded_total{risk="medium"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reading_from_a_clock_ahead_hides_no_deterioration_measured_before_it() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (_, mut dev) = app.patient_with_device().await;
    let now = Utc::now();
    dev.publish_obs_at(1, now - chrono::Duration::minutes(5), vitals(16, 97, 72))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    ws.next_event("score").await;
    // The hub's clock runs three minutes ahead (within the five the intake
    // accepts), then is put right.
    dev.publish_obs_at(2, now + chrono::Duration::minutes(3), vitals(16, 97, 72))
        .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    ws.next_event("score").await;

    // A medium state and a recovery a second later, both measured before
    // the reading from the future and sent back to back: the medium state
    // was real, and nothing measured by then had superseded it.
    dev.publish_obs_at(3, Utc::now(), vitals(22, 94, 112)).await;
    dev.publish_obs_at(
        4,
        Utc::now() + chrono::Duration::seconds(1),
        vitals(16, 97, 72),
    )
    .await;
    let ev = ws.next_alert_event("alert", "news2").await;
    assert_eq!(ev["alert"]["severity"], "medium", "{ev}");
}

#[tokio::test]
async fn alerts_of_other_wards_are_invisible_and_untouchable() {
    let app = TestApp::spawn().await;
    let outsider = app.outsider_token().await;
    let mut ws = app.ws(&app.token).await;
    let (_, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let id = ws.next_alert_event("alert", "news2").await["alert"]["id"]
        .as_i64()
        .expect("id");
    let list: Value = app
        .http_client
        .get(format!("{}/api/v1/alerts", app.http))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list, json!([]));
    let r = app
        .http_client
        .post(format!("{}/api/v1/alerts/{id}/acknowledge", app.http))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("ack");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn pathway_rule_raises_its_alert_and_advises_the_patient() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (_, mut dev) = app.patient_with_device().await;
    // The general pathway: Oximetry @home, SpO2 92 % or below is urgent.
    dev.publish_obs(1, json!([{"code": "spo2", "value": 91, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let ev = ws.next_alert_event("alert", "spo2-urgent").await;
    assert_eq!(ev["alert"]["severity"], "medium");
    assert!(
        ev["alert"]["escalate_at"].is_string(),
        "the pathway's escalation time applies"
    );
    let advice = dev.next_feedback().await;
    assert_eq!(
        (advice["type"].as_str(), advice["level"].as_str()),
        (Some("advice"), Some("urgent")),
        "{advice}"
    );
    assert!(
        advice["text"].as_str().unwrap_or_default().contains("111"),
        "{advice}"
    );
    // The ack at QoS 0 (the device resends until acked: docs/mqtt.md),
    // the advice at QoS 1 (nothing sends it again but the broker).
    assert_eq!(dev.qos_of("ack"), vec![rumqttc::QoS::AtMostOnce]);
    assert_eq!(dev.qos_of("advice"), vec![rumqttc::QoS::AtLeastOnce]);
}

#[tokio::test]
async fn a_bad_pathway_file_stops_the_daemon_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.toml"), "name = \"bad\"\ntitle = \"Bad\"\n[[rule]]\nid = \"x\"\nwhen = \"spo2 <<< 3\"\nseverity = \"low\"\nmessage = \"m\"\n")
        .expect("write");
    let mut config = vigil::config::Config::default();
    config.http.addr = "127.0.0.1:0".parse().expect("addr");
    config.mqtt.listen = "127.0.0.1:0".parse().expect("addr");
    config.database.url = format!("sqlite://{}", dir.path().join("v.db").display());
    config.pathways.dir = dir.path().to_path_buf();
    let err = match vigil::app::App::build(config).await {
        Ok(_) => panic!("a pathway rule that does not compile must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("bad.toml:5"), "{err}");
}

/// A status field out of range is unknown to the rules as it is to the
/// store: a battery of 250 % must not resolve a battery-low alert as if
/// the battery had been charged.
#[tokio::test]
async fn an_out_of_range_battery_does_not_resolve_a_battery_low_alert() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (_, dev) = app.patient_with_device().await;
    let rule = format!("device-battery-low:{}", dev.id);

    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 10}).to_string(),
    )
    .await;
    let raised = ws.next_alert_event("alert", &rule).await;
    let id = raised["alert"]["id"].as_i64().expect("alert id");

    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 250}).to_string(),
    )
    .await;
    // The live status follows the rules and the auto-resolution of its
    // pass; it shows the battery as unknown, as a reload would.
    loop {
        let ev = ws.next_event("device_status").await;
        if ev["status"]["battery_pct"] != 10 {
            assert_eq!(ev["status"]["battery_pct"], Value::Null, "{ev}");
            break;
        }
    }
    let alert: Value = app
        .get(&format!("/api/v1/alerts/{id}"))
        .send()
        .await
        .expect("alert")
        .json()
        .await
        .expect("json");
    assert_eq!(alert["alert"]["status"], "open", "{alert}");

    // A real charge still resolves it.
    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 80}).to_string(),
    )
    .await;
    let up = ws.next_alert_event("alert_update", &rule).await;
    assert_eq!(
        (up["action"].as_str(), up["alert"]["id"].as_i64()),
        (Some("resolved"), Some(id))
    );
}

/// A follow-up asked for on a stay (`POST …/follow-ups`): kept with who and
/// when, listed until due, taken back once; each refusal names its field;
/// when due, the escalation timer puts a `follow-up` alert in the ward's
/// queue, its reason in `latest_value` and not in the message (which the
/// webhook posts); the reason is never on the audit trail; none is raised
/// for a stay that has ended.
#[tokio::test]
async fn a_follow_up_asked_for_is_put_in_the_alert_queue_when_due() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let patient = app.admit("copd").await;
    let path = format!("/api/v1/patients/{patient}/follow-ups");
    assert_eq!(app.get_json(&path).await, json!([]));

    let before = Utc::now();
    let r = post(
        &app,
        &path,
        json!({"in_minutes": 60, "reason": "  Call back: inhaler taken? "}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let asked: Value = r.json().await.expect("json");
    assert_eq!(
        (&asked["patient_id"], &asked["reason"], &asked["set_by"]),
        (
            &json!(patient),
            &json!("Call back: inhaler taken?"),
            &json!("admin")
        ),
        "{asked}"
    );
    let due: chrono::DateTime<Utc> = asked["due_at"]
        .as_str()
        .expect("due_at")
        .parse()
        .expect("time");
    assert!(
        due >= before + chrono::Duration::minutes(60)
            && due <= Utc::now() + chrono::Duration::minutes(60),
        "due an hour on: {asked}"
    );
    assert_eq!(app.get_json(&path).await, json!([asked.clone()]));
    // The handover's: due in the next hours on the caller's wards, with whom.
    let detail = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    let mut handed = asked.clone();
    handed["ward_id"] = detail["ward_id"].clone();
    handed["patient_name"] = detail["name"].clone();
    handed["nhs_number"] = detail["nhs_number"].clone();
    assert_eq!(
        app.get_json("/api/v1/patients/follow-ups").await,
        json!([handed])
    );
    assert_eq!(
        app.get_json("/api/v1/patients/follow-ups?hours=1").await,
        json!([handed]),
        "due within the hour from now"
    );
    for bad in ["hours=0", "hours=169"] {
        let r = app
            .get(&format!("/api/v1/patients/follow-ups?{bad}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 422, "{bad}");
    }

    let long = "x".repeat(201);
    for (body, field) in [
        (json!({"in_minutes": 4, "reason": "soon"}), "in_minutes"),
        (json!({"in_minutes": 2881, "reason": "later"}), "in_minutes"),
        (json!({"in_minutes": 30, "reason": "   "}), "reason"),
        (json!({"in_minutes": 30, "reason": "two\nlines"}), "reason"),
        (json!({"in_minutes": 30, "reason": long}), "reason"),
    ] {
        let r = post(&app, &path, body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
        let e: Value = r.json().await.expect("json");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(field)),
            "{body}: {e}"
        );
    }
    let r = post(&app, &path, json!({"in_minutes": 30})).await;
    assert_eq!(r.status(), 422, "the reason is asked for");
    assert_eq!(
        app.get_json(&path).await.as_array().map(Vec::len),
        Some(1),
        "refusals add nothing"
    );

    // Taken back: once; not as another patient's; not seen from another ward.
    let id = asked["id"].as_i64().expect("id");
    let other = app.admit("copd").await;
    let r = post(
        &app,
        &format!("/api/v1/patients/{other}/follow-ups/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let outsider = app.outsider_token().await;
    let r = app.get_as(&path, &outsider).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.get_json_as("/api/v1/patients/follow-ups", &outsider)
            .await,
        json!([])
    );
    let cancel = format!("{path}/{id}/cancel");
    assert_eq!(post(&app, &cancel, json!({})).await.status(), 200);
    assert_eq!(post(&app, &cancel, json!({})).await.status(), 409);
    assert_eq!(app.get_json(&path).await, json!([]));

    // Due now (asked for through the store, with a time already past): in
    // the queue within the timer's second.
    let f = app
        .store
        .follow_up_add(
            patient,
            Utc::now() - chrono::Duration::seconds(1),
            "Ring back: breathless on the stairs",
            "admin",
            Utc::now(),
        )
        .await
        .expect("add");
    let raised = ws.next_alert_event("alert", "follow-up").await;
    let alert = &raised["alert"];
    assert_eq!(
        (
            &alert["patient_id"],
            &alert["severity"],
            &alert["status"],
            &alert["escalate_at"]
        ),
        (&json!(patient), &json!("low"), &json!("open"), &Value::Null),
        "{raised}"
    );
    assert_eq!(
        alert["latest_value"]["reason"],
        "Ring back: breathless on the stairs"
    );
    assert_eq!(alert["latest_value"]["follow_up_id"], f.id);
    let message = alert["message"].as_str().expect("message");
    assert!(
        message.starts_with("Follow-up due at ") && message.ends_with(", asked for by admin"),
        "{message}"
    );
    assert!(
        !message.contains("breathless"),
        "free text is not in the message the webhook posts"
    );
    // Marked once raised (just after the alert is pushed).
    let mut pending = app.get_json(&path).await;
    for _ in 0..50 {
        if pending == json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        pending = app.get_json(&path).await;
    }
    assert_eq!(pending, json!([]), "due: no longer pending");
    let queue = app.get_json("/api/v1/alerts?status=open").await;
    assert!(
        queue.as_array().is_some_and(|q| q
            .iter()
            .any(|a| a["rule_id"] == "follow-up" && a["patient_id"] == patient)),
        "{queue}"
    );
    let trail = app
        .get_json(&format!("/api/v1/audit?patient={patient}"))
        .await;
    for action in ["follow_up.add", "follow_up.cancel"] {
        assert!(
            trail
                .as_array()
                .is_some_and(|t| t.iter().any(|e| e["action"] == action)),
            "{action}: {trail}"
        );
    }
    assert!(
        !trail.to_string().contains("inhaler"),
        "no reason on the trail"
    );

    // A stay that has ended: nothing raised, and it is not tried again.
    let g = app
        .store
        .follow_up_add(
            other,
            Utc::now() + chrono::Duration::seconds(2),
            "Call",
            "admin",
            Utc::now(),
        )
        .await
        .expect("add");
    app.discharge(other).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        app.store
            .follow_ups_due(Utc::now(), 100)
            .await
            .expect("due")
            .iter()
            .all(|d| d.follow_up.id != g.id),
        "done with"
    );
    let alerts = app.get_json("/api/v1/alerts").await;
    assert!(
        alerts
            .as_array()
            .is_some_and(|q| q.iter().all(|a| a["patient_id"] != other)),
        "{alerts}"
    );
}
