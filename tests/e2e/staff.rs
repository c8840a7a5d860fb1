//! Staff accounts through the API (`/api/v1/users`), as the dashboard's
//! Staff section uses it: an admin of a ward adds, changes, disables and
//! re-enables that ward's staff, and cannot reach beyond their wards or
//! change their own account.

use serde_json::{Value, json};

use crate::helpers::TestApp;

/// A request as the admin (or `token`), answered with its status and JSON.
async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app
        .http_client
        .request(method, format!("{}{path}", app.http))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn account<'a>(list: &'a Value, username: &str) -> Option<&'a Value> {
    list["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == username)
}

/// A browser's session as `username`: its client, or the login's status.
async fn session(app: &TestApp, username: &str, password: &str) -> Result<reqwest::Client, u16> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let r = app.login_with(&client, username, password).await;
    match r.status().as_u16() {
        200 => Ok(client),
        s => Err(s),
    }
}

async fn me_status(app: &TestApp, client: &reqwest::Client) -> u16 {
    client
        .get(format!("{}/api/v1/me", app.http))
        .send()
        .await
        .expect("me")
        .status()
        .as_u16()
}

/// An admin of Ward A adds a nurse with a password, who can sign in; gives
/// them another role (their session ends), disables them (they cannot sign
/// in) and enables them again; sets a forgotten password. Each change is
/// on the audit trail under the admin's name. What the admin may not do is
/// refused, naming why, and changes nothing.
#[tokio::test]
async fn an_admin_manages_their_wards_staff_and_nothing_beyond() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let admin = app.token.clone();
    let ward_a = app.ward_id().await;
    // Someone on another ward only (not listed), and someone on both.
    let outsider = app.outsider_token().await;
    let ward_b = app
        .store
        .ward_find("Ward B")
        .await
        .expect("ward")
        .expect("ward")
        .id;
    vigil_web::admin::add_user(
        app.store.as_ref(),
        "float.nurse",
        "nurse",
        &[ward_a.to_string(), ward_b.to_string()],
        "float-password",
    )
    .await
    .expect("user");

    // Add a nurse on Ward A.
    let (status, created) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"username": "jane.doe", "role": "nurse", "wards": [ward_a], "password": "first-password"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let jane = created["id"].as_i64().expect("id");
    let jane_session = session(&app, "jane.doe", "first-password")
        .await
        .expect("the new nurse signs in");

    // The list: Ward A's accounts, with what the admin may change.
    let (status, list) = call(&app, &admin, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, 200, "{list}");
    let listed = account(&list, "jane.doe").expect("jane listed");
    assert_eq!(
        (
            &listed["id"],
            &listed["role"],
            &listed["manageable"],
            &listed["disabled_at"]
        ),
        (&json!(jane), &json!("nurse"), &json!(true), &Value::Null)
    );
    assert_eq!(listed["wards"], json!([{"id": ward_a, "name": "Ward A"}]));
    let own = account(&list, "admin").expect("the admin listed");
    assert_eq!(own["manageable"], false);
    assert!(
        own["why_not"]
            .as_str()
            .expect("why")
            .contains("Your own account")
    );
    let float = account(&list, "float.nurse").expect("float listed");
    assert_eq!(float["manageable"], false);
    assert!(
        float["why_not"]
            .as_str()
            .expect("why")
            .contains("not yours")
    );
    assert!(account(&list, "outsider").is_none(), "{list}");
    let float_id = float["id"].as_i64().expect("id");
    let own_id = own["id"].as_i64().expect("id");

    // Refused, each naming why.
    let refused: Vec<(Method, String, Value, u16, &str)> = vec![
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"username": "x.y", "role": "nurse", "wards": [ward_b], "password": "long-enough"}),
            422,
            "wards: no ward",
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"username": "x.y", "role": "matron", "wards": [ward_a], "password": "long-enough"}),
            422,
            "role:",
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"username": "x.y", "role": "nurse", "wards": [], "password": "long-enough"}),
            422,
            "wards: give at least one",
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"username": "x.y", "role": "nurse", "wards": [ward_a], "password": "short"}),
            422,
            "password: at least 8",
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"username": "x.y", "role": "nurse", "wards": [ward_a]}),
            422,
            "password: give a password",
        ),
        // Single sign-on is not configured in this daemon.
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"username": "x.y", "role": "nurse", "wards": [ward_a], "sso_only": true}),
            422,
            "sso_only:",
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"username": "Jane.Doe", "role": "nurse", "wards": [ward_a], "password": "long-enough"}),
            409,
            "\"jane.doe\" is taken",
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{jane}"),
            json!({"wards": [ward_a, ward_b]}),
            422,
            "wards: no ward",
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{jane}"),
            json!({}),
            422,
            "give role, wards or disabled",
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{float_id}"),
            json!({"disabled": true}),
            403,
            "not yours",
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{own_id}"),
            json!({"role": "nurse"}),
            403,
            "Your own account",
        ),
        (
            Method::POST,
            format!("/api/v1/users/{float_id}/password"),
            json!({"password": "long-enough"}),
            403,
            "not yours",
        ),
        (
            Method::PATCH,
            "/api/v1/users/999999".into(),
            json!({"disabled": true}),
            404,
            "",
        ),
    ];
    for (method, path, body, want, says) in refused {
        let (status, answer) = call(&app, &admin, method.clone(), &path, Some(body.clone())).await;
        assert_eq!(status, want, "{method} {path} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{method} {path} {body}: {answer}");
    }
    // The outsider's account shares no ward, and one with no ward at all is
    // nobody's here (else any admin could give it their ward): neither is
    // listed, and each is not found, not refused.
    let wardless = app
        .store
        .user_add(vigil_store::NewUser {
            username: "no.ward".into(),
            role: vigil_store::Role::Nurse,
            password_hash: vigil_web::admin::hash_password("no-ward-password").expect("hash"),
            ward_ids: vec![],
        })
        .await
        .expect("user");
    let (_, list) = call(&app, &admin, Method::GET, "/api/v1/users", None).await;
    assert!(account(&list, "no.ward").is_none(), "{list}");
    let outsider_id = app
        .store
        .user_by_username("outsider")
        .await
        .expect("user")
        .expect("user")
        .id;
    for id in [outsider_id, wardless] {
        let (status, _) = call(
            &app,
            &admin,
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(json!({"wards": [ward_a]})),
        )
        .await;
        assert_eq!(status, 404);
    }
    // Not an admin: nothing here at all.
    let (status, _) = call(&app, &outsider, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, 403);
    let unchanged = app
        .store
        .user_by_username("float.nurse")
        .await
        .expect("user")
        .expect("user");
    assert!(
        unchanged.disabled_at.is_none(),
        "a refused change changed nothing"
    );

    // Another role: the nurse's session ends, so they sign in as what they now are.
    let (status, changed) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v1/users/{jane}"),
        Some(json!({"role": "consultant"})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["role"], "consultant");
    assert_eq!(
        me_status(&app, &jane_session).await,
        401,
        "the old session ended"
    );

    // Disabled: no sign-in, and an open session ends. Enabled: signs in again.
    let jane_session = session(&app, "jane.doe", "first-password")
        .await
        .expect("signs in");
    let (status, changed) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v1/users/{jane}"),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert!(changed["disabled_at"].is_string(), "{changed}");
    assert_eq!(me_status(&app, &jane_session).await, 401);
    assert_eq!(
        session(&app, "jane.doe", "first-password").await.err(),
        Some(401)
    );
    let (status, changed) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v1/users/{jane}"),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["disabled_at"], Value::Null);
    let jane_session = session(&app, "jane.doe", "first-password")
        .await
        .expect("signs in again");

    // A forgotten password: the new one works, the old does not, and the
    // session from before ends.
    let (status, set) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/api/v1/users/{jane}/password"),
        Some(json!({"password": "second-password"})),
    )
    .await;
    assert_eq!(
        (status, &set["sessions_revoked"]),
        (200, &json!(1)),
        "{set}"
    );
    assert_eq!(me_status(&app, &jane_session).await, 401);
    assert_eq!(
        session(&app, "jane.doe", "first-password").await.err(),
        Some(401)
    );
    session(&app, "jane.doe", "second-password")
        .await
        .expect("the new password");

    // Every change on the trail, as the admin's, never the password.
    let trail = app.get_json("/api/v1/audit?limit=50").await;
    let actions: Vec<&str> = trail
        .as_array()
        .expect("trail")
        .iter()
        .filter(|e| e["username"] == "admin" && e["detail"]["username"] == "jane.doe")
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "user.password",
            "user.enable",
            "user.disable",
            "user.role",
            "user.add"
        ],
        "{trail}"
    );
    assert!(!trail.to_string().contains("second-password"));
    assert!(!trail.to_string().contains("first-password"));
}
