//! An admin's kit through the API: the inventory, a device taken back from
//! its patient during their stay, and a lost one revoked, each checked for
//! what the running daemon then does with the device.

use serde_json::{Value, json};

use crate::helpers::{
    DeviceCreds, TestApp, WAIT, assert_ack, offline_after_pathway, open_alerts, wait_for_alerts,
};

/// The ids of a device list, in its order.
fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect()
}

/// The status and outcome of the patient's alert `rule` once it is
/// resolved; fails after [`WAIT`].
async fn resolved(app: &TestApp, patient: i64, rule: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let alerts = open_alerts(app, patient).await;
        if let Some(a) = alerts
            .iter()
            .find(|a| a["rule_id"] == rule && a["status"] == "resolved")
        {
            return a["outcome"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rule} not resolved: {alerts:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A swapped oximeter is taken back from its patient mid-stay
/// (`POST /api/v1/devices/{id}/unassign`): it is on the shelf in the
/// inventory, its device alert for her is resolved as the system's, what it
/// sends next is refused as no one's, and it can be given to someone else.
/// A lost cuff is revoked (`POST /api/v1/devices/{id}/revoke`): its session
/// is dropped and it cannot connect again. Refusals each say why.
#[tokio::test]
async fn a_device_is_returned_mid_stay_and_a_lost_one_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kit.toml"),
        offline_after_pathway("kit", "1h"),
    )
    .expect("write");
    let app = TestApp::spawn_with(None, Some(dir.path().to_path_buf())).await;
    let ann = app.admit("kit").await;
    let bob = app.admit("kit").await;
    let ox = app.provision("oximeter", Some(ann)).await;
    let cuff = app.provision("bp-cuff", Some(ann)).await;
    let spare = app.provision("peak-flow", None).await;
    let mut dev = app.connect(&ox).await.expect("connects");
    let mut cuff_dev = app.connect(&cuff).await.expect("connects");
    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 10}).to_string(),
    )
    .await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 96, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let battery = format!("device-battery-low:{}", ox.device_id);
    wait_for_alerts(&app, ann, std::slice::from_ref(&battery)).await;

    // The inventory: the ward's devices and the shelf's, by id.
    let all = app.get_json("/api/v1/devices").await;
    let mut want = vec![
        ox.device_id.as_str(),
        cuff.device_id.as_str(),
        spare.device_id.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(ids(&all), want, "{all:#}");
    let listed = |list: &Value, d: &DeviceCreds| -> Value {
        list.as_array()
            .expect("list")
            .iter()
            .find(|x| x["id"] == d.device_id)
            .cloned()
            .expect("listed")
    };
    let o = listed(&all, &ox);
    assert_eq!(
        (&o["kind"], &o["patient_id"]),
        (&json!("oximeter"), &json!(ann))
    );
    assert!(
        o["ward_id"].is_i64() && o["last_message_at"].is_string(),
        "{o:#}"
    );
    assert_eq!(o["status"]["battery_pct"], 10, "{o:#}");
    let s = listed(&all, &spare);
    assert!(
        s["patient_id"].is_null() && s["last_message_at"].is_null() && s["status"].is_null(),
        "{s:#}"
    );
    assert_eq!(
        ids(&app.get_json("/api/v1/devices?unassigned=true").await),
        [spare.device_id.as_str()]
    );
    let outsider = app.outsider_token().await;
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(
            app.http_client
                .get(format!("{}/api/v1/devices", app.http))
                .bearer_auth(&outsider)
                .send()
                .await
                .expect("get")
        ),
        403,
        "an admin's to see"
    );
    assert_eq!(
        status(
            app.get("/api/v1/devices?ward=999")
                .send()
                .await
                .expect("get")
        ),
        404
    );

    // Refused returns, each with its reason; nothing changes.
    let unassign = |device: &str, body: Value| {
        app.post(&format!("/api/v1/devices/{device}/unassign"), body)
            .send()
    };
    let refused = unassign(&ox.device_id, json!({"patient_id": bob}))
        .await
        .expect("unassign");
    assert_eq!(refused.status(), 409);
    let why: Value = refused.json().await.expect("json");
    assert!(
        why["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("not patient {bob}'s"))),
        "{why}"
    );
    for (device, body, code) in [
        ("no-such-device", json!({"patient_id": ann}), 404),
        (ox.device_id.as_str(), json!({"patient_id": 99_999}), 422),
        (ox.device_id.as_str(), json!({}), 422),
        (
            ox.device_id.as_str(),
            json!({"patient_id": ann, "x": 1}),
            422,
        ),
    ] {
        assert_eq!(
            status(unassign(device, body.clone()).await.expect("unassign")),
            code,
            "{device} {body}"
        );
    }
    assert_eq!(
        status(
            app.http_client
                .post(format!(
                    "{}/api/v1/devices/{}/unassign",
                    app.http, ox.device_id
                ))
                .bearer_auth(&outsider)
                .json(&json!({"patient_id": ann}))
                .send()
                .await
                .expect("post")
        ),
        403
    );
    assert_eq!(
        app.get_json(&format!("/api/v1/patients/{ann}")).await["devices"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "still both of Ann's"
    );

    // Returned.
    let done = unassign(&ox.device_id, json!({"patient_id": ann}))
        .await
        .expect("unassign");
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.expect("json");
    assert_eq!(
        (&done["device_id"], &done["patient_id"]),
        (&json!(ox.device_id), &json!(ann))
    );
    assert!(done["unassigned_at"].is_string(), "{done}");
    assert_eq!(
        resolved(&app, ann, &battery).await,
        "device-unassigned",
        "the running daemon stops watching it for her"
    );
    let anns: Vec<String> = app.get_json(&format!("/api/v1/patients/{ann}")).await["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["id"].as_str().map(String::from))
        .collect();
    assert_eq!(anns, [cuff.device_id.as_str()]);
    let mut shelf = vec![ox.device_id.as_str(), spare.device_id.as_str()];
    shelf.sort_unstable();
    assert_eq!(
        ids(&app.get_json("/api/v1/devices?unassigned=true").await),
        shelf
    );
    let entry = app.audit_entry(ann, "device.unassign").await;
    assert_eq!(entry["detail"]["device"], ox.device_id, "{entry}");

    // What it sends now is no one's: refused, and not on Ann's record.
    dev.publish_obs(2, json!([{"code": "spo2", "value": 88, "unit": "%"}]))
        .await;
    let cmd = dev.next_cmd().await;
    assert_eq!(
        (&cmd["type"], &cmd["seq"], &cmd["reason"]),
        (&json!("reject"), &json!(2), &json!("no_patient")),
        "{cmd}"
    );
    let readings = app
        .get_json(&format!("/api/v1/patients/{ann}/observations?code=spo2"))
        .await;
    assert_eq!(readings.as_array().map(Vec::len), Some(1), "{readings}");
    assert_eq!(
        status(
            unassign(&ox.device_id, json!({"patient_id": ann}))
                .await
                .expect("unassign")
        ),
        409,
        "returned once"
    );
    // Free: given to Bob, it reports for him.
    let given = app
        .post(
            &format!("/api/v1/devices/{}/assign", ox.device_id),
            json!({"patient_id": bob}),
        )
        .send()
        .await
        .expect("assign");
    assert_eq!(given.status(), 200);
    dev.publish_obs(3, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[3]);
    let bobs = app
        .get_json(&format!("/api/v1/patients/{bob}/observations?code=spo2"))
        .await;
    assert_eq!(bobs.as_array().map(Vec::len), Some(1), "{bobs}");

    // The lost cuff: revoked, dropped, refused; once.
    let revoke_as = |device: &str, body: Value| {
        app.post(&format!("/api/v1/devices/{device}/revoke"), body)
            .send()
    };
    let revoke = |device: &str| revoke_as(device, json!({}));
    assert_eq!(status(revoke("no-such-device").await.expect("revoke")), 404);
    // A page that showed the cuff on Bob's record (it is Ann's): refused,
    // and nothing revoked.
    let stale = revoke_as(&cuff.device_id, json!({"patient_id": bob}))
        .await
        .expect("revoke");
    assert_eq!(stale.status(), 409);
    let c = listed(&app.get_json("/api/v1/devices").await, &cuff);
    assert_eq!(c["revoked_at"], Value::Null, "not revoked: {c:#}");
    let r = revoke_as(&cuff.device_id, json!({"patient_id": ann}))
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.expect("json");
    assert_eq!(r["device_id"], cuff.device_id);
    assert!(r["revoked_at"].is_string(), "{r}");
    assert!(
        cuff_dev.disconnected().await.is_some(),
        "the broker drops its session"
    );
    assert!(app.connect(&cuff).await.is_err(), "and refuses it");
    let again = revoke(&cuff.device_id).await.expect("revoke");
    assert_eq!(again.status(), 409);
    let c = listed(&app.get_json("/api/v1/devices").await, &cuff);
    assert!(c["revoked_at"].is_string(), "{c:#}");
    assert_eq!(c["patient_id"], ann, "still on her list, shown revoked");
    let entry = app.audit_entry(ann, "device.revoke").await;
    assert_eq!(entry["detail"]["device"], cuff.device_id, "{entry}");
}

/// An admin of another ward neither sees nor touches this ward's devices,
/// though the shelf's are anyone's to give.
#[tokio::test]
async fn another_wards_admin_cannot_see_or_take_this_wards_devices() {
    let app = TestApp::spawn().await;
    let ann = app.admit("general").await;
    let ox = app.provision("oximeter", Some(ann)).await;
    let spare = app.provision("hub", None).await;
    let other = app.token_on_another_ward("admin-b", "admin").await;
    assert_eq!(
        ids(&app.get_json_as("/api/v1/devices", &other).await),
        [spare.device_id.as_str()]
    );
    let post = |path: String, body: Value| {
        app.http_client
            .post(format!("{}{path}", app.http))
            .bearer_auth(&other)
            .json(&body)
            .send()
    };
    // Ann is not on their wards (422, as for a patient id that does not
    // exist), and the device is not theirs to see (404).
    for (path, body, code) in [
        (
            format!("/api/v1/devices/{}/revoke", ox.device_id),
            json!({}),
            404,
        ),
        (
            format!("/api/v1/devices/{}/unassign", ox.device_id),
            json!({"patient_id": ann}),
            422,
        ),
    ] {
        let r = post(path.clone(), body).await.expect("post");
        assert_eq!(r.status().as_u16(), code, "{path}");
    }
    let o = app.get_json(&format!("/api/v1/patients/{ann}")).await;
    assert_eq!(o["devices"][0]["revoked_at"], Value::Null, "{o:#}");
    assert_eq!(o["devices"][0]["id"], ox.device_id, "still Ann's");
}
