//! Live NEWS2: every stored reading updates the patient's score, partial
//! and stale are said out loud, and late readings never fake a fresher state.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ack, publish_many, subscore, through_the_worker};

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn full_set(spo2: i64) -> Value {
    json!([
        {"code": "resp_rate", "value": 18, "unit": "/min"},
        {"code": "spo2", "value": spo2, "unit": "%"},
        {"code": "o2_flow", "value": 0, "unit": "L/min"},
        {"code": "systolic", "value": 125, "unit": "mm[Hg]"},
        {"code": "pulse", "value": 72, "unit": "/min"},
        {"code": "acvpu", "value": "A"},
        {"code": "temp", "value": 36.9, "unit": "Cel"}
    ])
}

#[tokio::test]
async fn score_updates_live_and_is_partial_until_every_parameter_arrives() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;

    dev.publish_obs(1, json!([{"code": "spo2", "value": 91, "unit": "%"}, {"code": "pulse", "value": 72, "unit": "/min"}])).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let ev = ws.next_event("score").await;
    assert_eq!(ev["patient_id"], patient);
    let s = &ev["score"];
    assert_eq!(s["partial"], true, "{s}");
    assert_eq!(
        names(&s["missing"]),
        ["resp_rate", "o2", "systolic", "acvpu", "temp"],
        "{s}"
    );
    assert_eq!(
        subscore(s, "spo2"),
        Some(3),
        "SpO2 91% on scale 1 scores 3: {s}"
    );

    dev.publish_obs(2, full_set(96)).await;
    assert_ack(&dev.next_cmd().await, &[2]);
    let s = ws.next_event("score").await["score"].clone();
    assert_eq!(s["partial"], false, "{s}");
    assert_eq!(s["total"], 0, "{s}");
    assert_eq!(s["risk"], "low");

    let list: Value = app
        .get("/api/v1/patients")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["news2"]["total"], 0);
    assert_eq!(list[0]["news2"]["partial"], false);
    let history: Value = app
        .get(&format!("/api/v1/patients/{patient}/scores"))
        .send()
        .await
        .expect("scores")
        .json()
        .await
        .expect("json");
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    assert_eq!(history[0]["partial"], true);
    assert_eq!(history[1]["total"], 0);
}

#[tokio::test]
async fn late_reading_adds_history_and_never_overwrites_a_newer_state() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    let now = Utc::now();

    dev.publish_obs_at(1, now - Duration::minutes(5), full_set(88))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let current = ws.next_event("score").await["score"].clone();
    assert_eq!(subscore(&current, "spo2"), Some(3));

    // A reading from 40 minutes ago arrives late (store-and-forward backfill).
    dev.publish_obs_at(
        2,
        now - Duration::minutes(40),
        json!([{"code": "spo2", "value": 99, "unit": "%"}]),
    )
    .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    let pushed = ws.next_event("score").await["score"].clone();
    assert_eq!(
        subscore(&pushed, "spo2"),
        Some(3),
        "the newer SpO2 88% still decides the current score: {pushed}"
    );
    assert_eq!(
        pushed["scored_at"], current["scored_at"],
        "the current score keeps its own time"
    );

    let history: Value = app
        .get(&format!("/api/v1/patients/{patient}/scores"))
        .send()
        .await
        .expect("scores")
        .json()
        .await
        .expect("json");
    let rows = history.as_array().expect("rows");
    // History is ordered by the time each score describes: the late one first.
    assert_eq!(
        subscore(&rows[0]["detail"], "spo2"),
        Some(0),
        "history at the late reading's own time: {history}"
    );
    assert_eq!(
        subscore(&rows.last().expect("latest")["detail"], "spo2"),
        Some(3)
    );
    let list: Value = app
        .get("/api/v1/patients")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(subscore(&list[0]["news2"], "spo2"), Some(3));
}

#[tokio::test]
async fn stale_readings_are_flagged_not_scored_as_current() {
    let app = TestApp::spawn().await;
    let (_, mut dev) = app.patient_with_device().await;
    dev.publish_obs_at(1, Utc::now() - Duration::hours(7), full_set(96))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let list: Value = app
        .get("/api/v1/patients")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let s = &list[0]["news2"];
    assert_eq!(s["partial"], true, "{s}");
    let stale = names(&s["stale"]);
    for p in ["resp_rate", "spo2", "systolic", "pulse", "temp"] {
        assert!(
            stale.contains(&p.to_string()),
            "{p}: readings 7 h old are stale under a 6 h window: {s}"
        );
    }
}

#[tokio::test]
async fn clinician_set_scale_2_rescores_with_who_and_when() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, full_set(90)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    assert_eq!(
        subscore(&ws.next_event("score").await["score"], "spo2"),
        Some(3),
        "90% on scale 1"
    );

    // Another page of the same ward, and a user of another ward.
    let mut other_page = app.ws(&app.token).await;
    let outsider = app.outsider_token().await;
    let mut outsider_ws = app.ws(&outsider).await;
    let r = app.patch_episode(patient, json!({"spo2_scale": 2})).await;
    assert_eq!(r.status(), 200);
    let settings: Value = r.json().await.expect("json");
    assert_eq!(settings["spo2_scale_set_by"], "admin");
    assert!(settings["spo2_scale_set_at"].is_string());
    // Every open page of the patient's ward hears what was recorded.
    let told = other_page.next_event("episode").await;
    assert_eq!(told["patient_id"], patient, "{told}");
    assert_eq!(told["settings"], settings, "{told}");
    assert!(
        outsider_ws
            .next_event_within("episode", std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "another ward's user hears nothing of it"
    );

    let s = ws.next_event("score").await["score"].clone();
    assert_eq!(
        subscore(&s, "spo2"),
        Some(0),
        "90% on air on scale 2 scores 0: {s}"
    );
    assert_eq!(s["spo2_scale"]["set_by"], "admin", "{s}");

    // The patient's page reads back what was recorded, to start its
    // assessment form from: here the scale, and nothing else yet.
    let one = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    let recorded = &one["settings"];
    assert_eq!(recorded["spo2_scale"], 2, "{one}");
    assert_eq!(recorded["spo2_scale_set_by"], "admin", "{one}");
    assert_eq!(recorded["spo2_scale_set_at"], settings["spo2_scale_set_at"]);
    assert!(
        recorded["oxygen"].is_null() && recorded["acvpu"].is_null(),
        "{one}"
    );
    // How long a recorded consciousness level counts: the pathway's window.
    assert_eq!(one["thresholds"]["freshness_s"], 6 * 3600, "{one}");

    let bad = app.patch_episode(patient, json!({"spo2_scale": 3})).await;
    assert_eq!(bad.status(), 422);
}

/// The summary for a call or a transfer (`GET …/summary`): the open stay
/// as text, from what is stored: the patient with their NHS number, the
/// escalation plan with its details, NEWS2 as the ward list gives it, the
/// live alert, the readings with their times, the notes; read on the audit
/// trail; none for a discharged patient, a patient of another ward or no
/// credentials.
#[tokio::test]
async fn a_summary_for_a_call_gives_the_stay_as_text_from_the_record() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;
    let mut ws = app.ws(&app.token).await;
    // SpO2 88 % on scale 1 scores 3 alone: NEWS2 3, low-medium, an alert.
    let mut set = full_set(88);
    set.as_array_mut()
        .expect("array")
        .push(json!({"code": "pef", "value": 310, "unit": "L/min"}));
    dev.publish_obs(1, set).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let alert = ws.next_alert_event("alert", "news2").await;
    // An earlier SpO2 of the day, sent late: the range, not the latest.
    dev.publish_obs_at(
        2,
        Utc::now() - Duration::minutes(30),
        json!([{"code": "spo2", "value": 95, "unit": "%"}]),
    )
    .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    let r = app
        .patch_episode(
            patient,
            json!({"escalation_plan": "home", "escalation_note": "ReSPECT form on the fridge"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(
            &format!("/api/v1/patients/{patient}/notes"),
            json!({"text": "Phoned: more breathless since lunch."}),
        )
        .send()
        .await
        .expect("note");
    assert_eq!(r.status(), 201);

    let r = app
        .post(
            &format!("/api/v1/patients/{patient}/follow-ups"),
            json!({"in_minutes": 60, "reason": "Ring back after the nebuliser"}),
        )
        .send()
        .await
        .expect("follow-up");
    assert_eq!(r.status(), 201);
    let path = format!("/api/v1/patients/{patient}/summary");
    let r = app.get(&path).send().await.expect("summary");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().ok(),
        Some("text/plain; charset=utf-8")
    );
    let text = r.text().await.expect("text");
    let lines: Vec<&str> = text.lines().collect();
    let has = |l: &str| assert!(lines.contains(&l), "no line {l:?} in:\n{text}");
    let one = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    let nhs = one["nhs_number"].as_str().expect("nhs number");
    has(&format!(
        "Patient: Test Patient, NHS number {} {} {}",
        &nhs[..3],
        &nhs[3..6],
        &nhs[6..]
    ));
    assert!(
        lines[1].starts_with("Ward A. Written ") && lines[1].contains(" for admin, "),
        "{text}"
    );
    has("Escalation plan: For treatment at home: not for transfer to hospital");
    has("  Details: ReSPECT form on the fridge");
    let listed = app.get_json("/api/v1/patients").await;
    assert_eq!(listed[0]["news2"]["total"], 3, "{listed}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("NEWS2 now: 3, low-medium risk, as of ")),
        "{text}"
    );
    has("  A single reading scored 3");
    let message = alert["alert"]["message"].as_str().expect("message");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("  - {message} ("))
                && l.contains("open, not yet taken by anyone")),
        "the live alert: {text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  SpO2 88% on scale 1 → 3, ")
                && l.ends_with(" ago); 24 h range 88–95% (2 readings)")),
        "SpO2 with when it was measured and the day's range: {text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  Peak flow 310 L/min, ")),
        "peak flow among the other readings: {text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(", admin: Phoned: more breathless since lunch.")),
        "the note: {text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("  - due ")
            && l.ends_with("): Ring back after the nebuliser (asked for by admin)")),
        "the follow-up asked for: {text}"
    );
    app.audit_entry(patient, "patient.summary").await;

    // Acknowledged: the summary says so.
    let id = alert["alert"]["id"].as_i64().expect("id");
    let r = app
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), json!({}))
        .send()
        .await
        .expect("ack");
    assert_eq!(r.status(), 200);
    let text = app
        .get(&path)
        .send()
        .await
        .expect("summary")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(&format!(
            "  - {message} (low-medium severity, acknowledged), raised "
        )),
        "{text}"
    );

    let outsider = app.outsider_token().await;
    let r = app.get_as(&path, &outsider).await;
    assert_eq!(r.status(), 404, "another ward's patient is not found");
    let r = app
        .http_client
        .get(format!("{}{path}", app.http))
        .send()
        .await
        .expect("anonymous");
    assert_eq!(r.status(), 401);
    app.discharge(patient).await;
    let r = app.get(&path).send().await.expect("summary");
    assert_eq!(r.status(), 404, "no open stay, no summary");
}

/// The handover's plans (`GET /api/v1/patients/plans`): each open stay on
/// the caller's wards whose plan was recorded, reviewed or cleared in the
/// window, as it is now, the latest first, with the patient's name and NHS
/// number; another ward's caller sees none; the read is audited.
#[tokio::test]
async fn the_handover_gives_the_plans_recorded_in_the_shift() {
    let app = TestApp::spawn().await;
    let ann = app.admit("copd").await;
    let bob = app.admit("general").await;
    let _cat = app.admit("general").await;
    assert_eq!(app.get_json("/api/v1/patients/plans").await, json!([]));
    for (patient, body) in [
        (
            ann,
            json!({"escalation_plan": "home", "escalation_note": "ReSPECT form with the GP"}),
        ),
        (bob, json!({"escalation_plan": "hospital"})),
        (bob, json!({"escalation_plan": "not-recorded"})),
    ] {
        assert_eq!(app.patch_episode(patient, body).await.status(), 200);
    }
    let plans = app.get_json("/api/v1/patients/plans?hours=1").await;
    let rows = plans.as_array().expect("plans");
    assert_eq!(rows.len(), 2, "{plans}");
    let detail = app.get_json(&format!("/api/v1/patients/{ann}")).await;
    let settings = &detail["settings"];
    assert_eq!(
        rows[1],
        json!({
            "patient_id": ann, "ward_id": detail["ward_id"], "patient_name": detail["name"],
            "nhs_number": detail["nhs_number"], "escalation_plan": "home",
            "escalation_note": "ReSPECT form with the GP", "set_by": "admin",
            "set_at": settings["escalation_set_at"],
        }),
        "{plans}"
    );
    assert_eq!(
        (
            &rows[0]["patient_id"],
            &rows[0]["escalation_plan"],
            &rows[0]["set_by"]
        ),
        (&json!(bob), &Value::Null, &json!("admin")),
        "cleared, the latest first: {plans}"
    );
    let outsider = app.outsider_token().await;
    assert_eq!(
        app.get_json_as("/api/v1/patients/plans", &outsider).await,
        json!([])
    );
    for bad in ["hours=0", "hours=169", "days=1"] {
        let r = app
            .get(&format!("/api/v1/patients/plans?{bad}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 422, "{bad}");
    }
    let audit = app.get_json("/api/v1/audit").await;
    let read = audit
        .as_array()
        .and_then(|a| a.iter().find(|e| e["action"] == "patients.plans"))
        .unwrap_or_else(|| panic!("no patients.plans entry: {audit}"));
    assert_eq!(read["detail"]["patients"], json!([bob, ann]), "{read}");
    assert!(
        !audit.to_string().contains("ReSPECT"),
        "no details in the trail"
    );
}

/// A clinician records the stay's treatment escalation plan: kept with who
/// and when, told to every open page of the ward, given with the ward list
/// (so an alert's card can say it), audited without its details' text;
/// anything but a known plan, or details that are not one short
/// paragraph of a plan, is a 422 naming the field and changes nothing.
#[tokio::test]
async fn an_escalation_plan_is_recorded_for_the_stay_and_given_with_the_ward_list() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, full_set(96)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let listed = app.get_json("/api/v1/patients").await;
    assert!(
        listed[0]["escalation_plan"].is_null() && listed[0]["escalation_note"].is_null(),
        "none recorded at admission: {listed}"
    );
    let mut page = app.ws(&app.token).await;
    let note = "ReSPECT form on the fridge; for oral antibiotics at home";
    let r = app
        .patch_episode(
            patient,
            json!({"escalation_plan": "home", "escalation_note": format!("  {note} ")}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let settings: Value = r.json().await.expect("json");
    assert_eq!(
        (
            &settings["escalation_plan"],
            &settings["escalation_note"],
            &settings["escalation_set_by"]
        ),
        (&json!("home"), &json!(note), &json!("admin")),
        "{settings}"
    );
    assert!(settings["escalation_set_at"].is_string(), "{settings}");
    let told = page.next_event("episode").await;
    assert_eq!(told["settings"], settings, "{told}");
    let listed = app.get_json("/api/v1/patients").await;
    assert_eq!(
        (&listed[0]["escalation_plan"], &listed[0]["escalation_note"]),
        (&json!("home"), &json!(note)),
        "{listed}"
    );
    let one = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    assert_eq!(one["settings"], settings, "{one}");

    let long = "x".repeat(501);
    for (body, field) in [
        (json!({"escalation_plan": "icu"}), "escalation_plan"),
        (json!({"escalation_note": "on its own"}), "escalation_note"),
        (
            json!({"escalation_plan": "not-recorded", "escalation_note": "why"}),
            "escalation_note",
        ),
        (
            json!({"escalation_plan": "comfort", "escalation_note": "two\nlines"}),
            "escalation_note",
        ),
        (
            json!({"escalation_plan": "comfort", "escalation_note": long}),
            "escalation_note",
        ),
    ] {
        let r = app.patch_episode(patient, body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
        let e: Value = r.json().await.expect("json");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(field)),
            "{body}: {e}"
        );
    }
    let one = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    assert_eq!(
        one["settings"], settings,
        "refused changes change nothing: {one}"
    );

    // The trail says a plan was recorded, and which, not its details.
    let trail = app
        .get_json(&format!("/api/v1/audit?patient={patient}"))
        .await;
    let entry = trail
        .as_array()
        .and_then(|t| t.iter().find(|e| e["action"] == "patient.episode"))
        .unwrap_or_else(|| panic!("no patient.episode entry: {trail}"));
    assert_eq!(entry["detail"]["escalation_plan"], "home", "{trail}");
    assert_eq!(entry["detail"]["escalation_note"], true, "{trail}");
    assert!(!trail.to_string().contains("fridge"), "{trail}");

    // Cleared: none, with who cleared it.
    let r = app
        .patch_episode(patient, json!({"escalation_plan": "not-recorded"}))
        .await;
    assert_eq!(r.status(), 200);
    let cleared: Value = r.json().await.expect("json");
    assert!(
        cleared["escalation_plan"].is_null() && cleared["escalation_note"].is_null(),
        "{cleared}"
    );
    assert_eq!(cleared["escalation_set_by"], "admin", "{cleared}");
    let listed = app.get_json("/api/v1/patients").await;
    assert!(listed[0]["escalation_plan"].is_null(), "{listed}");
}

/// A message stored without the scorer being told of it (a commit that
/// reported an error but had happened; here written to the store directly),
/// then resent by its device: the duplicate makes the scorer read the
/// patient's readings again, so the next score counts it (hazard AL-14).
#[tokio::test]
async fn a_reading_stored_unseen_is_scored_once_its_device_resends_it() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    let now = Utc::now();
    dev.publish_obs_at(1, now - Duration::minutes(3), full_set(97))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let first = ws.next_event("score").await;
    assert_eq!(subscore(&first["score"], "spo2"), Some(0), "{first}");

    let at = now - Duration::minutes(2);
    let spo2_91 = vigil_store::NewObsMessage {
        device_id: dev.id.clone(),
        seq: 2,
        patient_id: patient,
        measured_at: at,
        received_at: at,
        obs: vec![vigil_store::NewObservation {
            code: "spo2".into(),
            value: vigil_store::ObsValue::Number(91.0),
            unit: Some("%".into()),
        }],
    };
    app.store
        .store_obs_batch(&[spo2_91])
        .await
        .expect("stored behind the scorer's back");
    dev.publish_obs_at(2, at, json!([{"code": "spo2", "value": 91, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[2]);

    dev.publish_obs_at(
        3,
        now,
        json!([{"code": "pulse", "value": 72, "unit": "/min"}]),
    )
    .await;
    assert_ack(&dev.next_cmd().await, &[3]);
    let s = ws.next_event("score").await;
    assert_eq!(subscore(&s["score"], "spo2"), Some(3), "{s}");
}

/// A chart of a long history asks for it within `max_points` (each
/// stretch's lowest and highest total kept), and the table for the newest
/// few: neither reads a whole episode of scores into memory.
#[tokio::test]
async fn a_score_history_is_given_within_max_points_or_as_its_newest() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    let start = Utc::now() - Duration::hours(1);
    // 40 scores, a minute apart: SpO2 96 % (0) or 95 % (1), and one 88 % (3).
    for i in 0..40u32 {
        let spo2 = match i {
            23 => 88,
            _ if i % 2 == 0 => 96,
            _ => 95,
        };
        dev.publish_obs_at(
            i + 1,
            start + Duration::minutes(i64::from(i)),
            full_set(spo2),
        )
        .await;
        assert_ack(&dev.next_cmd().await, &[i + 1]);
        ws.next_event("score").await;
    }
    let path = format!("/api/v1/patients/{patient}/scores");
    let whole = app.get_json(&path).await;
    let whole = whole.as_array().expect("rows");
    assert_eq!(whole.len(), 40);
    let totals = |v: &Value| -> Vec<i64> {
        v.as_array()
            .expect("rows")
            .iter()
            .map(|r| r["total"].as_i64().expect("a total"))
            .collect()
    };
    assert_eq!(totals(&Value::Array(whole.clone()))[23], 3);

    let reduced = app.get_json(&format!("{path}?max_points=10")).await;
    let rows = reduced.as_array().expect("rows");
    assert!(rows.len() <= 10 && rows.len() >= 5, "{} rows", rows.len());
    assert!(
        totals(&reduced).contains(&3),
        "the 3 is kept: {:?}",
        totals(&reduced)
    );
    assert!(totals(&reduced).contains(&0));
    // Whole rows of the history, in its order.
    let mut at = 0;
    for r in rows {
        let i = whole[at..]
            .iter()
            .position(|w| w == r)
            .unwrap_or_else(|| panic!("{r} is a row of the history, in order"));
        at += i + 1;
    }
    assert_eq!(
        app.get_json(&format!("{path}?max_points=400")).await,
        Value::Array(whole.clone()),
        "a history within max_points is given whole"
    );

    let newest = app.get_json(&format!("{path}?newest=5")).await;
    assert_eq!(newest, Value::Array(whole[35..].to_vec()));
    let from = (start + Duration::minutes(20)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let to = (start + Duration::minutes(24)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let q = format!("from={from}&to={to}");
    assert_eq!(
        app.get_json(&format!("{path}?{q}&newest=2")).await,
        Value::Array(whole[23..25].to_vec()),
        "the newest of a window, both ends included"
    );

    for bad in [
        "newest=0",
        "newest=1001",
        "newest=two",
        "max_points=0",
        "max_points=10&newest=5",
    ] {
        let r = app
            .get(&format!("{path}?{bad}"))
            .send()
            .await
            .expect("scores");
        assert_eq!(r.status(), 422, "{bad}");
    }
}

/// A history asked for whole is written a run of 1,000 rows at a time, not
/// read whole into the daemon's memory (hazard TS-26): longer than a run,
/// and with runs ending part-way through an instant, it is the same array,
/// in the same order, as the store's whole read: every reading and score
/// once, each code's series in turn, and closed. (Equal also before the
/// answers were streamed: what this guards is the runs' seams.)
#[tokio::test]
async fn a_whole_history_longer_than_a_run_is_written_whole_in_order() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;
    // 1,250 sets of four readings, 250 to each second: each code's series
    // is longer than a run, and a run ends inside an instant.
    let start = chrono::SubsecRound::trunc_subsecs(Utc::now() - Duration::minutes(10), 0);
    let set = |i: i64| {
        json!([
            {"code": "spo2", "value": 90 + i % 8, "unit": "%"},
            {"code": "pulse", "value": 60 + i % 50, "unit": "/min"},
            {"code": "resp_rate", "value": 12 + i % 10, "unit": "/min"},
            {"code": "temp", "value": 36.5, "unit": "Cel"}
        ])
    };
    publish_many(&mut dev, 1_250, |i| start + Duration::seconds(i / 250), set).await;
    through_the_worker(&app, patient).await;

    let store = |code: Option<&str>, from, to| vigil_store::ObservationQuery {
        patient_id: patient,
        code: code.map(str::to_string),
        from,
        to,
        max_points: None,
    };
    let path = format!("/api/v1/patients/{patient}/observations");
    let every = app
        .store
        .observations(store(None, None, None))
        .await
        .expect("whole");
    assert_eq!(every.len(), 4 * 1_250);
    same(app.get_json(&path).await, &every);

    let pulse = app
        .store
        .observations(store(Some("pulse"), None, None))
        .await
        .expect("pulse");
    assert_eq!(pulse.len(), 1_250);
    same(app.get_json(&format!("{path}?code=pulse")).await, &pulse);
    // A window: its bounds are kept, to the second at both ends.
    let (from, to) = (start + Duration::seconds(1), start + Duration::seconds(3));
    let window = app
        .store
        .observations(store(None, Some(from), Some(to)))
        .await
        .expect("window");
    assert_eq!(window.len(), 4 * 750);
    let q = format!(
        "from={}&to={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    same(app.get_json(&format!("{path}?{q}")).await, &window);
    // Nothing in range: an empty array.
    assert_eq!(
        app.get_json(&format!("{path}?code=glucose")).await,
        json!([])
    );

    // Scores: the worker's few, and 2,100 more stored as the worker stores
    // them, three to each instant (a run ends inside one).
    let more: Vec<vigil_store::NewScore> = (0..2_100i64)
        .map(|i| vigil_store::NewScore {
            patient_id: patient,
            scored_at: start + Duration::seconds(i / 3),
            computed_at: Utc::now(),
            total: (i % 7 != 0).then_some(i % 4),
            risk: Some("low".into()),
            partial: true,
            detail: json!({"total": i % 4, "n": i}),
            obs_ids: vec![i],
        })
        .collect();
    app.store
        .score_insert_many(&more)
        .await
        .expect("scores stored");
    let scores = app.store.scores(patient, None, None).await.expect("scores");
    assert!(scores.len() > 2_100, "{} scores", scores.len());
    same(
        app.get_json(&format!("/api/v1/patients/{patient}/scores"))
            .await,
        &scores,
    );
    let scores = app
        .store
        .scores(patient, Some(from), Some(to))
        .await
        .expect("scores");
    same(
        app.get_json(&format!("/api/v1/patients/{patient}/scores?{q}"))
            .await,
        &scores,
    );
}

/// The answer is the store's whole read: on failure, where they part, not
/// thousands of rows.
fn same<T: serde::Serialize>(given: Value, want: &[T]) {
    let want = serde_json::to_value(want).expect("json");
    let (given, want) = (
        given.as_array().expect("an array"),
        want.as_array().expect("rows"),
    );
    let parted = given.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        given.len() == want.len() && parted.is_none(),
        "{} rows given, {} stored; first apart at {parted:?}: {:?} against {:?}",
        given.len(),
        want.len(),
        parted.map(|i| &given[i]),
        parted.map(|i| &want[i]),
    );
}

/// The ward list's `news2_earlier`, what a nurse compares the score now
/// with: the stored score measured 24 hours or more ago (the newest such),
/// else the stay's first; never a score of the patient's earlier stay.
#[tokio::test]
async fn the_ward_list_gives_the_score_of_a_day_ago_to_compare_with() {
    let app = TestApp::spawn().await;
    let number = crate::helpers::nhs_number();
    let admit = || async {
        let r = app
            .post(
                "/api/v1/patients",
                json!({"ward": app.ward, "name": "Ann", "nhs_number": number, "pathway": "copd"}),
            )
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id")
    };
    let patient = admit().await;
    let listed = app.get_json("/api/v1/patients").await;
    assert_eq!(
        listed[0]["news2_earlier"],
        Value::Null,
        "no score yet: {listed}"
    );

    let creds = app.provision("hub", Some(patient)).await;
    let mut dev = app.connect(&creds).await.expect("device connects");
    let now = Utc::now();
    // Totals 3 (SpO2 91 on scale 1), 0, then 3 again.
    for (seq, hours, spo2) in [(1, 30, 91), (2, 26, 96), (3, 2, 91)] {
        dev.publish_obs_at(seq, now - Duration::hours(hours), full_set(spo2))
            .await;
        assert_ack(&dev.next_cmd().await, &[seq]);
    }
    through_the_worker(&app, patient).await;
    let history = app
        .get_json(&format!("/api/v1/patients/{patient}/scores"))
        .await;
    let stored = history.as_array().expect("scores");
    let day_ago = stored
        .iter()
        .rfind(|s| {
            s["scored_at"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<Utc>>().ok())
                .is_some_and(|t| t <= now - Duration::hours(24))
        })
        .expect("a score a day old");
    assert_eq!(day_ago["total"], 0, "the one of 26 h ago: {history}");
    let listed = app.get_json("/api/v1/patients").await;
    let earlier = &listed[0]["news2_earlier"];
    assert_eq!(
        earlier,
        &json!({
            "total": day_ago["total"],
            "risk": day_ago["risk"],
            "partial": day_ago["partial"],
            "scored_at": day_ago["scored_at"],
        }),
        "{listed}"
    );
    assert_eq!(listed[0]["news2"]["total"], 3, "{listed}");

    // Admitted again: the first stay's scores are not this stay's.
    app.discharge(patient).await;
    assert_eq!(admit().await, patient, "the same record");
    let listed = app.get_json("/api/v1/patients").await;
    assert_eq!(
        listed[0]["news2_earlier"],
        Value::Null,
        "none of the earlier stay's: {listed}"
    );
    let creds = app.provision("hub", Some(patient)).await;
    let mut dev = app.connect(&creds).await.expect("device connects");
    // Measured after the first stay ended (a message's time is to the second).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let at = Utc::now();
    dev.publish_obs_at(1, at, full_set(96)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    through_the_worker(&app, patient).await;
    let listed = app.get_json("/api/v1/patients").await;
    let earlier = &listed[0]["news2_earlier"];
    assert_eq!(
        (&earlier["total"], &earlier["partial"]),
        (&json!(0), &json!(false)),
        "a stay younger than a day: its first score: {listed}"
    );
    let scored_at: chrono::DateTime<Utc> = earlier["scored_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a time");
    assert!(
        (scored_at - at).num_milliseconds().abs() < 1000,
        "{scored_at} is the reading's time {at}"
    );
}
