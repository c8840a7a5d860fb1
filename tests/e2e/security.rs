//! Security controls, each tried by someone who should not get through.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn login(app: &TestApp, client: &reqwest::Client, user: &str, pw: &str) -> reqwest::Response {
    client.post(format!("{}/api/v1/login", app.http)).json(&json!({"username": user, "password": pw})).send().await.expect("login")
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_even_with_the_right_password() {
    let app = TestApp::spawn().await;
    let c = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(login(&app, &c, "admin", "guess").await.status(), 401);
    }
    let r = login(&app, &c, "admin", "admin-password").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.expect("json")["error"]["code"], "throttled");
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    let c = reqwest::Client::builder().cookie_store(true).build().expect("client");
    let body: Value = login(&app, &c, "admin", "admin-password").await.json().await.expect("json");
    let csrf = body["csrf_token"].as_str().expect("csrf token in the login body").to_string();
    let admit = json!({"ward": app.ward, "name": "P", "nhs_number": "9434765919", "pathway": "general"});

    let r = c.post(format!("{}/api/v1/patients", app.http)).json(&admit).send().await.expect("post");
    assert_eq!(r.status(), 403, "a forged cross-site form post carries the cookie but not the token");
    let r = c.post(format!("{}/api/v1/patients", app.http)).header("x-csrf-token", "0".repeat(64)).json(&admit).send().await.expect("post");
    assert_eq!(r.status(), 403);
    let r = c.post(format!("{}/api/v1/patients", app.http)).header("x-csrf-token", &csrf).json(&admit).send().await.expect("post");
    assert_eq!(r.status(), 201);
    // The page can fetch the token again after a reload.
    let me: Value = c.get(format!("{}/api/v1/me", app.http)).send().await.expect("me").json().await.expect("json");
    assert_eq!(me["csrf_token"].as_str(), Some(csrf.as_str()));
    // Bearer tokens are not ambient credentials: no CSRF token needed.
    assert_eq!(app.post("/api/v1/patients", admit).send().await.expect("post").status(), 201);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_absolute_limit() {
    let app = TestApp::spawn().await;
    let user = app.store.user_by_username("admin").await.expect("q").expect("user");
    let idle = chrono::Duration::minutes(vigil_web::auth::SESSION_IDLE_MINUTES);
    let hash = |t: &str| vigil_store::secrets::hash_secret(t);

    let t = vigil_web::admin::issue_token(app.store.as_ref(), user.id, vigil_store::TokenKind::Session, Utc::now(), Some(Duration::hours(12)))
        .await
        .expect("token");
    assert!(app.store.token_user(&hash(&t), Utc::now(), idle).await.expect("q").is_some());
    assert!(app.store.token_user(&hash(&t), Utc::now() + Duration::minutes(31), idle).await.expect("q").is_none(), "idle 31 min");

    let old = vigil_web::admin::issue_token(app.store.as_ref(), user.id, vigil_store::TokenKind::Session, Utc::now() - Duration::hours(13), Some(Duration::hours(12)))
        .await
        .expect("token");
    assert!(app.store.token_user(&hash(&old), Utc::now(), Duration::days(1)).await.expect("q").is_none(), "past its absolute expiry");
}

#[tokio::test]
async fn reads_and_actions_are_audited_and_the_trail_is_admin_only_and_append_only() {
    let app = TestApp::spawn().await;
    let outsider = app.outsider_token().await;
    let patient = app.admit("general").await;
    app.get(&format!("/api/v1/patients/{patient}")).send().await.expect("read");
    app.get(&format!("/api/v1/patients/{patient}/observations")).send().await.expect("read");

    let r = app.http_client.get(format!("{}/api/v1/audit", app.http)).bearer_auth(&outsider).send().await.expect("audit");
    assert_eq!(r.status(), 403, "nurses cannot read the audit trail");

    let trail: Value = app.get(&format!("/api/v1/audit?patient={patient}")).send().await.expect("audit").json().await.expect("json");
    let actions: Vec<&str> = trail.as_array().expect("rows").iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["patient.admit", "patient.read", "patient.observations"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let row = &trail[0];
    assert_eq!(row["username"], "admin");
    assert_eq!(row["addr"], "127.0.0.1");

    let raw = app.raw_db().await;
    assert!(raw.execute("UPDATE audit_log SET username = 'nobody'").await.is_err());
    assert!(raw.execute("DELETE FROM audit_log").await.is_err());
}
