//! HTTP API and websocket: authentication, ward isolation, errors.

use serde_json::json;

use crate::helpers::{TestApp, assert_ack};

#[tokio::test]
async fn unauthenticated_requests_get_401_in_the_error_shape() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/patients",
        "/api/v1/patients/1",
        "/api/v1/patients/1/observations",
        "/api/v1/stream",
    ] {
        let r = app
            .http_client
            .get(format!("{}{path}", app.http))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "{path}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{path}");
    }
    let r = app
        .http_client
        .get(format!("{}/api/v1/patients", app.http))
        .bearer_auth("nope")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn login_sets_a_session_cookie_that_authenticates_and_logout_ends_it() {
    let app = TestApp::spawn().await;
    let bad = app
        .http_client
        .post(format!("{}/api/v1/login", app.http))
        .json(&json!({"username": "admin", "password": "wrong"}));
    assert_eq!(bad.send().await.expect("login").status(), 401);

    let r = app
        .login_with(&app.http_client, "admin", "admin-password")
        .await;
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // The client's cookie jar now carries the session.
    let me = app
        .http_client
        .get(format!("{}/api/v1/me", app.http))
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    let out = app
        .http_client
        .post(format!("{}/api/v1/logout", app.http))
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 200);
    let me = app
        .http_client
        .get(format!("{}/api/v1/me", app.http))
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 401);
}

/// What an admission form offers: the pathways this server loaded (name,
/// title, the SpO2 scale an admission on it starts on, its own target) and
/// the caller's wards by name; `POST /api/v1/patients` takes both names.
#[tokio::test]
async fn an_admission_form_is_offered_the_pathways_and_the_callers_wards() {
    let app = TestApp::spawn().await;
    let pathways = app.get_json("/api/v1/pathways").await;
    let names: Vec<&str> = pathways
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["asthma", "copd", "general", "heart-failure"]);
    let copd = &pathways[1];
    assert_eq!(copd["title"], "COPD exacerbation", "{copd}");
    assert_eq!(copd["spo2_scale"], 2, "{copd}");
    assert_eq!(copd["spo2_target"], json!([88, 92]), "{copd}");
    assert_eq!(pathways[2]["spo2_scale"], 1);
    assert!(pathways[2]["spo2_target"].is_null(), "{pathways}");

    let me = app.get_json("/api/v1/me").await;
    assert_eq!(
        me["wards"],
        json!([{"id": me["ward_ids"][0], "name": "Ward A"}]),
        "{me}"
    );
    let outsider = app.outsider_token().await;
    let theirs = app.get_json_as("/api/v1/me", &outsider).await;
    assert_eq!(theirs["wards"][0]["name"], "Ward B", "{theirs}");
    assert_eq!(
        theirs["wards"].as_array().map(Vec::len),
        Some(1),
        "{theirs}"
    );

    let anonymous = app
        .http_client
        .get(format!("{}/api/v1/pathways", app.http))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn users_see_only_their_wards_patients_and_events() {
    let app = TestApp::spawn().await;
    let outsider = app.outsider_token().await;
    let (patient, mut dev) = app.patient_with_device().await;
    let mut outsider_ws = app.ws(&outsider).await;
    let mut ward_ws = app.ws(&app.token).await;

    let list = app
        .http_client
        .get(format!("{}/api/v1/patients", app.http))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("list");
    assert_eq!(
        list.json::<serde_json::Value>().await.expect("json"),
        json!([])
    );
    let one = app
        .http_client
        .get(format!("{}/api/v1/patients/{patient}", app.http))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("one");
    assert_eq!(one.status(), 404);
    let obs = app
        .http_client
        .get(format!(
            "{}/api/v1/patients/{patient}/observations",
            app.http
        ))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("obs");
    assert_eq!(obs.status(), 404);

    dev.publish_obs(1, json!([{"code": "pulse", "value": 61, "unit": "/min"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    ward_ws.next_event("observation").await;
    assert!(
        outsider_ws
            .next_event_within("observation", std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "another ward's event leaked"
    );
}

#[tokio::test]
async fn only_admins_admit_and_provision() {
    let app = TestApp::spawn().await;
    let outsider = app.outsider_token().await;
    let r = app
        .http_client
        .post(format!("{}/api/v1/devices", app.http))
        .bearer_auth(&outsider)
        .json(&json!({"kind": "hub"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = app
        .post(
            "/api/v1/patients",
            json!({"ward": app.ward, "name": "X", "nhs_number": "1234567890", "pathway": "copd"}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422, "invalid NHS number");
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nhs_number")
    );
}

/// One person is admitted once at a time (hazard TS-22): a second
/// admission of an NHS number with an open episode, however it is spaced,
/// is refused with 409 naming the patient who has it, and admits nobody;
/// once discharged, the person can be admitted again.
#[tokio::test]
async fn an_nhs_number_already_admitted_is_refused_until_discharged() {
    let app = TestApp::spawn().await;
    let number = crate::helpers::nhs_number();
    let admit = |nhs: String| {
        app.post(
            "/api/v1/patients",
            json!({"ward": app.ward, "name": "Ann", "nhs_number": nhs, "pathway": "copd"}),
        )
        .send()
    };
    let r = admit(number.clone()).await.expect("post");
    assert_eq!(r.status(), 201);
    let first = r.json::<serde_json::Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    let spaced = format!("{} {} {}", &number[..3], &number[3..6], &number[6..]);
    let r = admit(spaced).await.expect("post");
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("nhs_number") && message.contains(&format!("patient {first}")),
        "{body}"
    );
    let listed = app.get_json("/api/v1/patients").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    app.discharge(first).await;
    let r = admit(number).await.expect("post");
    assert_eq!(r.status(), 201, "admitted again after the discharge");
}

/// A person discharged and admitted again to the same ward gets their
/// record back (`readmitted`): the ward lists them, their readings from
/// before are theirs to see, their new devices report to the same record,
/// and their earlier readings make nothing overdue at the admission (the
/// rules engine's clocks run from it).
#[tokio::test]
async fn a_patient_admitted_again_gets_their_record_and_history_back() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let number = crate::helpers::nhs_number();
    let admit = |name: &str| {
        app.post(
            "/api/v1/patients",
            json!({"ward": app.ward, "name": name, "nhs_number": number, "pathway": "copd"}),
        )
        .send()
    };
    let r = admit("Ann").await.expect("post");
    assert_eq!(r.status(), 201);
    let first: serde_json::Value = r.json().await.expect("json");
    assert_eq!(first["readmitted"], false, "{first}");
    let id = first["id"].as_i64().expect("id");
    // SpO2 measured 20 h ago (COPD: a reading every 8 h, 1 h grace).
    let creds = app.provision("hub", Some(id)).await;
    let mut dev = app.connect(&creds).await.expect("device connects");
    let old = chrono::Utc::now() - chrono::Duration::hours(20);
    dev.publish_obs_at(1, old, json!([{"code": "spo2", "value": 93, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    app.discharge(id).await;

    let r = admit("Ann Smith").await.expect("post");
    assert_eq!(r.status(), 201);
    let again: serde_json::Value = r.json().await.expect("json");
    assert_eq!(again, json!({"id": id, "readmitted": true}));
    let listed = app.get_json("/api/v1/patients").await;
    assert_eq!(
        (listed[0]["id"].as_i64(), listed[0]["name"].as_str()),
        (Some(id), Some("Ann Smith")),
        "{listed}"
    );
    let history = app
        .get_json(&format!("/api/v1/patients/{id}/observations?code=spo2"))
        .await;
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");

    let creds = app.provision("hub", Some(id)).await;
    let mut dev = app.connect(&creds).await.expect("device connects");
    // RR 25 + SpO2 91 + pulse 131: high, raised on the record anew (the
    // discharge resolved what was live).
    dev.publish_obs(1, crate::helpers::vitals(25, 91, 131))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    // Through the worker's patient sync (5 s) and the engine's timers: no
    // missed-reading alert for the reading from before the admission.
    let mut raised = Vec::new();
    while let Some(ev) = ws
        .next_event_within_any(std::time::Duration::from_secs(7))
        .await
    {
        if ev["type"] == "alert" {
            raised.push((
                ev["alert"]["rule_id"].as_str().map(String::from),
                ev["alert"]["severity"].as_str().map(String::from),
            ));
        }
    }
    assert!(
        raised.contains(&(Some("news2".into()), Some("high".into()))),
        "{raised:?}"
    );
    assert!(
        raised
            .iter()
            .all(|(rule, _)| !rule.as_deref().unwrap_or_default().starts_with("missed-")),
        "{raised:?}"
    );
    let detail = app.get_json(&format!("/api/v1/patients/{id}")).await;
    assert!(detail["episode"]["discharged_at"].is_null(), "{detail}");
    let earlier = detail["previous_episodes"]
        .as_array()
        .expect("earlier stays");
    assert!(
        earlier.len() == 1 && earlier[0]["discharged_at"].is_string(),
        "{detail}"
    );

    // FHIR: one EpisodeOfCare per admission, newest first, and the first
    // stay's discharge bundle still served.
    let episodes: serde_json::Value = app
        .get(&format!("/fhir/r4/EpisodeOfCare?patient={id}"))
        .send()
        .await
        .expect("fhir")
        .json()
        .await
        .expect("json");
    let statuses: Vec<&str> = episodes["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["resource"]["status"].as_str())
        .collect();
    assert_eq!(statuses, ["active", "finished"], "{episodes}");
    let first_stay = episodes["entry"][1]["resource"]["id"].as_str().expect("id");
    let bundle = app
        .get(&format!(
            "/fhir/r4/EpisodeOfCare/{first_stay}/$discharge-bundle"
        ))
        .send()
        .await
        .expect("fhir");
    assert_eq!(bundle.status(), 200);
}

/// The simulator admits a ward twice over on the same daemon (a second
/// `devsim` run with the same seed draws the same NHS numbers): each
/// number already admitted moves to the next free one, and every simulated
/// patient is admitted.
#[tokio::test]
async fn the_simulator_admits_a_second_ward_whose_numbers_are_taken() {
    let app = TestApp::spawn().await;
    let api = vigil_devsim::http::Api::new(&app.http, &app.token).expect("client");
    let mut ids = Vec::new();
    for run in ["First", "Second"] {
        let mut rng = vigil_devsim::rng::SimRng::seeded(7);
        let admitted = vigil_devsim::load::admit(&api, &app.ward, run, 4, &["hub"], 2, &mut rng)
            .await
            .expect("admitted");
        ids.extend(admitted.into_iter().map(|a| a.patient_id));
    }
    let listed = app.get_json("/api/v1/patients").await;
    let mut numbers = std::collections::BTreeSet::new();
    for id in &ids {
        let p = app
            .store
            .patient_get(*id)
            .await
            .expect("store")
            .expect("patient");
        assert!(p.episode.is_some_and(|e| e.discharged_at.is_none()), "{id}");
        numbers.insert(p.nhs_number);
    }
    assert_eq!(
        (ids.len(), numbers.len(), listed.as_array().map(Vec::len)),
        (8, 8, Some(8)),
        "{listed}"
    );
}

#[tokio::test]
async fn patient_list_shows_latest_readings_and_discharge_removes_the_patient() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    // Open dashboards hear of the admission, readings or not.
    let ev = ws.next_event("patient").await;
    assert_eq!(
        (ev["patient_id"].as_i64(), ev["change"].as_str()),
        (Some(patient), Some("admitted"))
    );
    dev.publish_obs(1, json!([{"code": "spo2", "value": 93, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);

    let list: serde_json::Value = app
        .get("/api/v1/patients")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["id"], patient);
    assert_eq!(list[0]["latest"][0]["code"], "spo2");
    assert_eq!(list[0]["latest"][0]["value"], 93.0);

    app.discharge(patient).await;
    let ev = ws.next_event("patient").await;
    assert_eq!(
        (ev["patient_id"].as_i64(), ev["change"].as_str()),
        (Some(patient), Some("discharged"))
    );
    let list: serde_json::Value = app
        .get("/api/v1/patients")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn device_status_is_kept_and_shown_with_the_patients_devices() {
    let app = TestApp::spawn().await;
    let (patient, dev) = app.patient_with_device().await;
    let detail = |app: &TestApp| {
        let r = app.get(&format!("/api/v1/patients/{patient}"));
        async move {
            r.send()
                .await
                .expect("get")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    let before = detail(&app).await;
    assert_eq!(before["devices"][0]["id"], dev.id.as_str());
    assert_eq!(
        before["devices"][0]["status"],
        serde_json::Value::Null,
        "never reported"
    );

    let mut ws = app.ws(&app.token).await;
    let sent = chrono::Utc::now();
    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 71, "signal": "ok", "fw": "1.4.2"}).to_string(),
    )
    .await;
    // The live push follows the write, so the API has it by now.
    assert_eq!(
        ws.next_event("device_status").await["device_id"],
        dev.id.as_str()
    );
    let status = detail(&app).await["devices"][0]["status"].clone();
    assert_eq!(
        (
            &status["online"],
            &status["battery_pct"],
            &status["signal"],
            &status["fw"]
        ),
        (&json!(true), &json!(71), &json!("ok"), &json!("1.4.2"))
    );
    let at: chrono::DateTime<chrono::Utc> = status["reported_at"]
        .as_str()
        .expect("reported_at")
        .parse()
        .expect("RFC 3339");
    assert!(
        at >= sent - chrono::Duration::seconds(1) && at <= chrono::Utc::now(),
        "reported_at is when it arrived: {at}"
    );

    // The last will replaces it whole: offline, battery no longer known.
    dev.publish_raw("status", json!({"online": false}).to_string())
        .await;
    ws.next_event("device_status").await;
    let status = detail(&app).await["devices"][0]["status"].clone();
    assert_eq!(
        (&status["online"], &status["battery_pct"], &status["signal"]),
        (&json!(false), &json!(null), &json!(null))
    );
}

#[tokio::test]
async fn a_patient_carries_the_spo2_target_of_their_pathway_or_scale() {
    let app = TestApp::spawn().await;
    for (pathway, target) in [
        ("copd", json!({"low": 88, "high": 92, "source": "pathway"})),
        ("general", json!({"low": 94, "high": 98, "source": "scale"})),
    ] {
        let id = app.admit(pathway).await;
        let p: serde_json::Value = app
            .get(&format!("/api/v1/patients/{id}"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(p["thresholds"]["spo2_target"], target, "{pathway}");
        assert_eq!(
            p["episode"]["pathway"], pathway,
            "the patient's own fields are still there"
        );
    }
}

#[tokio::test]
async fn health_readiness_and_page_are_served() {
    let app = TestApp::spawn().await;
    let h = app
        .http_client
        .get(format!("{}/healthz", app.http))
        .send()
        .await
        .expect("healthz");
    assert_eq!(h.status(), 200);
    let r = app
        .http_client
        .get(format!("{}/readyz", app.http))
        .send()
        .await
        .expect("readyz");
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json"),
        json!({"database": true, "broker": true})
    );
    let page = app
        .http_client
        .get(format!("{}/", app.http))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains(r#"<label for="username">"#) && page.contains(r#"<label for="password">"#)
    );
}

/// A dashboard that stops reading (a laptop asleep, a frozen tab) falls
/// behind the event hub's buffer. It must be told so, with how many events
/// it missed, so that it refetches instead of showing a stale ward (hazard
/// TS-07, DB-03), and the other dashboards must hear every event meanwhile.
#[tokio::test]
async fn a_dashboard_that_falls_behind_is_told_to_resync_and_the_others_miss_nothing() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn().await;
    let (_patient, mut dev) = app.patient_with_device().await;

    // The stalled dashboard: a small receive buffer, so that the server's
    // writes back up quickly once it stops reading.
    let addr: std::net::SocketAddr = app
        .http
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer");
    let tcp = socket.connect(addr).await.expect("connect");
    let mut req = format!("ws://{addr}/api/v1/stream")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token).parse().expect("header"),
    );
    let (mut stalled, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("websocket");
    let first = stalled.next().await.expect("hello").expect("hello");
    assert!(matches!(&first, Message::Text(t) if t.contains("\"hello\"")));

    // The dashboard that keeps up counts every observation it hears.
    let mut live = app.ws(&app.token).await;
    let keeping_up = tokio::spawn(async move {
        let (mut observations, mut resyncs) = (0u32, 0u32);
        while let Some(v) = live
            .next_event_within_any(std::time::Duration::from_secs(5))
            .await
        {
            match v["type"].as_str() {
                Some("observation") => observations += 1,
                Some("resync") => resyncs += 1,
                _ => {}
            }
        }
        (observations, resyncs)
    });

    // More events than the hub keeps (4,096) beyond what the sockets'
    // buffers hold (the server's send buffer grows to 4 MiB): one event per
    // message stored.
    const N: u32 = 30_000;
    for seq in 1..=N {
        dev.publish_obs(seq, json!([{"code": "pulse", "value": 70, "unit": "/min"}]))
            .await;
    }
    let mut acked = 0;
    while acked < N as usize {
        let cmd = dev.next_cmd().await;
        acked += cmd["seqs"].as_array().map_or(0, Vec::len);
    }

    // The stalled dashboard wakes: somewhere in what it reads is the resync.
    let mut missed = None;
    let mut before = 0u32;
    while missed.is_none() {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), stalled.next())
            .await
            .unwrap_or_else(|_| panic!("no resync after {before} observations"))
            .expect("a message")
            .expect("a message");
        let Message::Text(t) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&t).expect("json");
        match v["type"].as_str() {
            Some("resync") => missed = v["missed"].as_u64(),
            Some("observation") => before += 1,
            _ => {}
        }
    }
    let missed = missed.expect("missed is a count");
    assert!(missed > 0, "a resync names what was missed");
    eprintln!("stalled dashboard: heard {before} observations, then missed {missed} events");

    // And its stream carries on after the resync.
    dev.publish_obs(
        N + 1,
        json!([{"code": "pulse", "value": 71, "unit": "/min"}]),
    )
    .await;
    assert_ack(&dev.next_cmd().await, &[N + 1]);
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let Some(Ok(Message::Text(t))) = stalled.next().await else {
                panic!("the stalled stream ended")
            };
            let v: serde_json::Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "observation" && v["seq"] == N + 1 {
                break;
            }
        }
    })
    .await
    .expect("the event after the resync arrives");

    // An administrator sees it in the metrics: one resync, and what it missed.
    let metrics = app.metrics().await;
    assert!(metrics.contains("vigil_ws_resyncs_total 1\n"), "{metrics}");
    assert!(
        metrics.contains(&format!("vigil_ws_missed_events_total {missed}\n")),
        "{metrics}"
    );

    let (observations, resyncs) = keeping_up.await.expect("reader");
    assert_eq!(resyncs, 0, "a dashboard that kept up was told to resync");
    assert_eq!(
        observations,
        N + 1,
        "a dashboard that kept up missed events"
    );
}

/// A kit returned at a discharge goes to the next patient through the API
/// (`POST /api/v1/devices/{id}/assign`), and its next reading is theirs; a
/// device still in use stays with its patient.
#[tokio::test]
async fn a_returned_kit_is_given_to_the_next_patient_and_reports_for_them() {
    let app = TestApp::spawn().await;
    let (first, mut dev) = app.patient_with_device().await;
    let next = app.admit("general").await;
    let assign = |device: &str, patient: i64| {
        app.post(
            &format!("/api/v1/devices/{device}/assign"),
            json!({"patient_id": patient}),
        )
        .send()
    };

    let in_use = assign(&dev.id, next).await.expect("assign");
    assert_eq!(in_use.status(), 409, "the first patient still has it");
    let why: serde_json::Value = in_use.json().await.expect("json");
    assert!(
        why["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("assigned to a patient")),
        "{why}"
    );
    assert_eq!(
        assign("no-such-device", next)
            .await
            .expect("assign")
            .status(),
        404
    );
    let outsider = app.outsider_token().await;
    let nurse = app
        .http_client
        .post(format!("{}/api/v1/devices/{}/assign", app.http, dev.id))
        .bearer_auth(&outsider)
        .json(&json!({"patient_id": next}))
        .send()
        .await
        .expect("assign");
    assert_eq!(nurse.status(), 403, "an admin's to do");

    app.discharge(first).await;
    assert_eq!(
        assign(&dev.id, first).await.expect("assign").status(),
        422,
        "not to a discharged patient"
    );
    let given = assign(&dev.id, next).await.expect("assign");
    assert_eq!(given.status(), 200);
    assert_eq!(
        given.json::<serde_json::Value>().await.expect("json"),
        json!({"device_id": dev.id, "patient_id": next})
    );

    dev.publish_obs(1, json!([{"code": "spo2", "value": 95, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let theirs = app
        .get_json(&format!("/api/v1/patients/{next}/observations?code=spo2"))
        .await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(1), "{theirs}");
    assert_eq!(theirs[0]["value"], 95.0, "{theirs}");
    let audit = app.get_json(&format!("/api/v1/audit?patient={next}")).await;
    assert!(
        audit
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["action"] == "device.assign" && e["detail"]["device"] == dev.id),
        "{audit}"
    );
}

/// The ward's recently discharged, for a patient who calls back: listed
/// with their NHS number and stay until admitted again; another ward's
/// user sees none of them.
#[tokio::test]
async fn recently_discharged_patients_are_listed_for_their_ward() {
    let app = TestApp::spawn().await;
    let gone = app.admit("asthma").await;
    let staying = app.admit("general").await;
    app.discharge(gone).await;
    let listed = app.get_json("/api/v1/patients/discharged").await;
    let ids: Vec<i64> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["id"].as_i64())
        .collect();
    assert_eq!(ids, [gone], "{listed}");
    assert_eq!(listed[0]["pathway"], "asthma");
    assert!(listed[0]["nhs_number"].is_string() && listed[0]["discharged_at"].is_string());
    assert!(!ids.contains(&staying));
    let outsider = app.outsider_token().await;
    assert_eq!(
        app.get_json_as("/api/v1/patients/discharged", &outsider)
            .await,
        json!([])
    );
    assert_eq!(
        app.get("/api/v1/patients/discharged?days=0")
            .send()
            .await
            .expect("get")
            .status(),
        422
    );
}

/// A clinician's note on a patient's record: stored as written (trimmed),
/// with who and when, listed newest first, sent to every open dashboard of
/// the ward, audited by id (never its text), never edited or deleted; an
/// empty or overlong note, or one on another ward's patient, is refused.
#[tokio::test]
async fn notes_are_written_on_the_record_and_never_changed() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&app.token).await;
    let patient = app.admit("copd").await;
    let path = format!("/api/v1/patients/{patient}/notes");
    assert_eq!(app.get_json(&path).await, json!([]));

    let add = |text: &str| app.post(&path, json!({ "text": text })).send();
    let r = add("  Phoned: breathless on the stairs only. Advised pacing.\n")
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let first: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        first["text"],
        "Phoned: breathless on the stairs only. Advised pacing."
    );
    assert_eq!(
        (&first["author"], &first["patient_id"]),
        (&json!("admin"), &json!(patient))
    );
    let told = ws.next_event("note").await;
    assert_eq!(
        told["note"], first,
        "sent to the ward's dashboards as stored"
    );
    let second: serde_json::Value = add("Correction: advised pacing and the rescue pack plan.")
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let listed = app.get_json(&path).await;
    assert_eq!(listed, json!([second, first]), "the newest first");

    for (body, why) in [
        (json!({"text": "   "}), "empty"),
        (json!({"text": "x".repeat(4001)}), "longer than 4000"),
        (json!({"note": "x"}), "unknown field"),
    ] {
        let r = app.post(&path, body).send().await.expect("post");
        assert_eq!(r.status(), 422, "{why}");
    }
    assert_eq!(
        app.post(&path, json!({"text": "é".repeat(4000)}))
            .send()
            .await
            .expect("post")
            .status(),
        201,
        "4,000 characters, not bytes"
    );
    let outsider = app.outsider_token().await;
    let r = app
        .http_client
        .post(format!("{}{path}", app.http))
        .bearer_auth(&outsider)
        .json(&json!({"text": "not my patient"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    assert_eq!(app.get_json(&path).await.as_array().map(Vec::len), Some(3));

    let audit = app
        .get_json(&format!("/api/v1/audit?patient={patient}"))
        .await;
    let added: Vec<&serde_json::Value> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "note.add")
        .collect();
    assert_eq!(added.len(), 3, "{audit}");
    assert!(
        !audit.to_string().contains("breathless"),
        "no note text in the audit trail"
    );

    // The handover's notes: the ward's, with whom they are about.
    let recent = app.get_json("/api/v1/patients/notes?hours=1").await;
    let rows = recent.as_array().expect("notes");
    assert_eq!(rows.len(), 3, "{recent}");
    let detail = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    let mut expected = second.clone();
    expected["ward_id"] = detail["ward_id"].clone();
    expected["patient_name"] = detail["name"].clone();
    expected["nhs_number"] = detail["nhs_number"].clone();
    assert_eq!(
        rows[1], expected,
        "the newest first: the 4,000 é, then this"
    );
    assert_eq!(
        app.get_json_as("/api/v1/patients/notes", &outsider).await,
        json!([])
    );
    for bad in ["hours=0", "hours=169", "days=1"] {
        let r = app
            .get(&format!("/api/v1/patients/notes?{bad}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 422, "{bad}");
    }

    let raw = app.raw_db().await;
    assert!(
        raw.execute("UPDATE patient_notes SET text = 'x'")
            .await
            .is_err()
    );
    assert!(raw.execute("DELETE FROM patient_notes").await.is_err());
    assert_eq!(app.get_json(&path).await.as_array().map(Vec::len), Some(3));
}

/// Free text a user types (a note, a resolution's note, a patient's name)
/// with a control character in it, NUL above all, which PostgreSQL cannot
/// store in text: a 422 naming the field on both backends, not a 500, and
/// nothing stored.
#[tokio::test]
async fn free_text_with_control_characters_is_refused_by_name() {
    let app = TestApp::spawn().await;
    let patient = app.admit("copd").await;
    for (path, body, field) in [
        (
            format!("/api/v1/patients/{patient}/notes"),
            json!({"text": "called\u{0}back"}),
            "text",
        ),
        (
            "/api/v1/patients".to_string(),
            json!({"ward": app.ward, "name": "Ann\u{0}Smith", "nhs_number": "9434765919", "pathway": "copd"}),
            "name",
        ),
        (
            format!("/api/v1/patients/{patient}/notes"),
            json!({"text": "bell\u{7}"}),
            "text",
        ),
    ] {
        let r = app.post(&path, body).send().await.expect("post");
        assert_eq!(r.status(), 422, "{path}");
        let e: serde_json::Value = r.json().await.expect("json");
        let msg = e["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.starts_with(&format!("{field}: ")), "{msg}");
    }
    assert_eq!(
        app.get_json(&format!("/api/v1/patients/{patient}/notes"))
            .await,
        json!([])
    );
    let ok = app
        .post(
            &format!("/api/v1/patients/{patient}/notes"),
            json!({"text": "line one\n\tline two\r\n"}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 201, "new lines and tabs are text");
    let login = app
        .http_client
        .post(format!("{}/api/v1/login", app.http))
        .json(&json!({"username": "admin\u{0}", "password": "whatever-it-is"}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 422, "a sign-in, before any lookup");
    let device = app
        .post(
            "/api/v1/devices/hub%00x/assign",
            json!({"patient_id": patient}),
        )
        .send()
        .await
        .expect("assign");
    assert_eq!(device.status(), 422, "a device id in the path");
    for path in [
        format!("/api/v1/patients/{patient}/observations?code=sp%00o2"),
        format!("/fhir/r4/Observation?patient={patient}&code=sp%00o2"),
        "/api/v1/patients?ward=%00".to_string(),
    ] {
        let r = app.get(&path).send().await.expect("get");
        assert!(
            r.status().is_client_error() || r.status() == 200,
            "{path}: {}",
            r.status()
        );
    }
}
