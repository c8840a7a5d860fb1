//! Security controls, each tried by someone who should not get through.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn login(app: &TestApp, client: &reqwest::Client, user: &str, pw: &str) -> reqwest::Response {
    app.login_with(client, user, pw).await
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
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["code"],
        "throttled"
    );
}

/// Twenty wrong guesses at once (a burst, as a script sends them): the
/// throttle lets exactly five through to be tried, and answers the rest
/// 429; before, all could pass its count before any failure was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_gets_no_more_tries_than_one_at_a_time() {
    let app = TestApp::spawn().await;
    let c = reqwest::Client::new();
    let answers =
        futures::future::join_all((0..20).map(|_| login(&app, &c, "admin", "guess"))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [[401; 5].as_slice(), [429; 15].as_slice()].concat(),
        "five tried, fifteen throttled"
    );
}

/// The throttle counts from the database: a second daemon on the same
/// database (another instance, or this one restarted) refuses the right
/// password after failures made against the first; and an account's count
/// starts again after a successful sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_throttle_is_shared_by_instances_and_kept_across_a_restart() {
    let first = TestApp::spawn().await;
    let c = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(login(&first, &c, "admin", "guess").await.status(), 401);
    }
    let pathways = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways");
    let second = TestApp::attach(first.database_url.clone(), pathways).await;
    assert_eq!(
        login(&second, &c, "admin", "admin-password").await.status(),
        429,
        "the other instance counts the same failures"
    );

    vigil_web::admin::add_user(
        second.store.as_ref(),
        "jo",
        "nurse",
        std::slice::from_ref(&second.ward),
        "jo-password",
    )
    .await
    .expect("user");
    for _ in 0..4 {
        assert_eq!(login(&second, &c, "jo", "guess").await.status(), 401);
    }
    assert_eq!(login(&first, &c, "jo", "jo-password").await.status(), 200);
    for _ in 0..4 {
        assert_eq!(login(&first, &c, "jo", "guess").await.status(), 401);
    }
    assert_eq!(
        login(&second, &c, "jo", "jo-password").await.status(),
        200,
        "four failures since the last success, not eight"
    );
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let body: Value = login(&app, &c, "admin", "admin-password")
        .await
        .json()
        .await
        .expect("json");
    let csrf = body["csrf_token"]
        .as_str()
        .expect("csrf token in the login body")
        .to_string();
    let admit = json!({"ward": app.ward, "name": "P", "nhs_number": crate::helpers::nhs_number(), "pathway": "general"});

    let r = c
        .post(format!("{}/api/v1/patients", app.http))
        .json(&admit)
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status(),
        403,
        "a forged cross-site form post carries the cookie but not the token"
    );
    let r = c
        .post(format!("{}/api/v1/patients", app.http))
        .header("x-csrf-token", "0".repeat(64))
        .json(&admit)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{}/api/v1/patients", app.http))
        .header("x-csrf-token", &csrf)
        .json(&admit)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    // The page can fetch the token again after a reload.
    let me: Value = c
        .get(format!("{}/api/v1/me", app.http))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["csrf_token"].as_str(), Some(csrf.as_str()));
    // Bearer tokens are not ambient credentials: no CSRF token needed.
    // (Someone else: the first is admitted now.)
    let someone_else = json!({"ward": app.ward, "name": "Q", "nhs_number": crate::helpers::nhs_number(), "pathway": "general"});
    assert_eq!(
        app.post("/api/v1/patients", someone_else)
            .send()
            .await
            .expect("post")
            .status(),
        201
    );
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_absolute_limit() {
    let app = TestApp::spawn().await;
    let user = app
        .store
        .user_by_username("admin")
        .await
        .expect("q")
        .expect("user");
    let idle = chrono::Duration::minutes(vigil_web::auth::SESSION_IDLE_MINUTES);
    let hash = |t: &str| vigil_store::secrets::hash_secret(t);

    let t = vigil_web::admin::issue_token(
        app.store.as_ref(),
        user.id,
        vigil_store::TokenKind::Session,
        Utc::now(),
        Some(Duration::hours(12)),
    )
    .await
    .expect("token");
    assert!(
        app.store
            .token_user(&hash(&t), Utc::now(), idle)
            .await
            .expect("q")
            .is_some()
    );
    assert!(
        app.store
            .token_user(&hash(&t), Utc::now() + Duration::minutes(31), idle)
            .await
            .expect("q")
            .is_none(),
        "idle 31 min"
    );

    let old = vigil_web::admin::issue_token(
        app.store.as_ref(),
        user.id,
        vigil_store::TokenKind::Session,
        Utc::now() - Duration::hours(13),
        Some(Duration::hours(12)),
    )
    .await
    .expect("token");
    assert!(
        app.store
            .token_user(&hash(&old), Utc::now(), Duration::days(1))
            .await
            .expect("q")
            .is_none(),
        "past its absolute expiry"
    );
}

#[tokio::test]
async fn reads_and_actions_are_audited_and_the_trail_is_admin_only_and_append_only() {
    let app = TestApp::spawn().await;
    let outsider = app.outsider_token().await;
    let patient = app.admit("general").await;
    app.get(&format!("/api/v1/patients/{patient}"))
        .send()
        .await
        .expect("read");
    app.get(&format!("/api/v1/patients/{patient}/observations"))
        .send()
        .await
        .expect("read");

    let r = app
        .http_client
        .get(format!("{}/api/v1/audit", app.http))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("audit");
    assert_eq!(r.status(), 403, "nurses cannot read the audit trail");

    let trail: Value = app
        .get(&format!("/api/v1/audit?patient={patient}"))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = trail
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["patient.admit", "patient.read", "patient.observations"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let row = &trail[0];
    assert_eq!(row["username"], "admin");
    assert_eq!(row["addr"], "127.0.0.1");

    // A nurse of the patient's ward reads the record: the trail names her.
    let ward = app.ward_id().await;
    let nurse = vigil_web::admin::add_user(
        app.store.as_ref(),
        "nurse-jo",
        "nurse",
        &[ward.to_string()],
        "a-long-password",
    )
    .await
    .expect("nurse");
    let nurse_token = vigil_web::admin::issue_token(
        app.store.as_ref(),
        nurse,
        vigil_store::TokenKind::Api,
        Utc::now(),
        None,
    )
    .await
    .expect("token");
    let r = app
        .http_client
        .get(format!("{}/api/v1/patients/{patient}", app.http))
        .bearer_auth(&nurse_token)
        .send()
        .await
        .expect("read");
    assert_eq!(r.status(), 200);
    let trail: Value = app
        .get(&format!("/api/v1/audit?patient={patient}"))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let by_nurse = trail
        .as_array()
        .expect("rows")
        .iter()
        .find(|e| e["username"] == "nurse-jo" && e["action"] == "patient.read");
    assert!(
        by_nurse.is_some_and(|e| e["patient_id"] == patient),
        "the nurse's read is in the trail: {trail}"
    );

    let raw = app.raw_db().await;
    assert!(
        raw.execute("UPDATE audit_log SET username = 'nobody'")
            .await
            .is_err()
    );
    assert!(raw.execute("DELETE FROM audit_log").await.is_err());
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_strict_csp() {
    let app = TestApp::spawn().await;
    for path in ["/", "/app.js", "/api/v1/patients", "/api/v1/nonexistent"] {
        let r = app.get(path).send().await.expect("get");
        let h = r.headers();
        assert_eq!(
            h["content-security-policy"],
            vigil_web::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "no HSTS over plain HTTP ({path})"
        );
    }
    let csp = vigil_web::CONTENT_SECURITY_POLICY;
    assert!(
        csp.contains("script-src 'self';")
            && !csp.contains("unsafe-inline")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_the_server_carries_on() {
    let app = TestApp::spawn().await;
    let huge = json!({"ward": app.ward, "name": "x".repeat(vigil_web::MAX_BODY_BYTES + 1), "nhs_number": "9434765919", "pathway": "general"});
    let r = app
        .post("/api/v1/patients", huge)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["code"],
        "too_large"
    );
    assert_eq!(app.stats().await.patients, 0, "nothing admitted");
    app.admit("general").await;
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_that_connection_only() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn().await;
    let mut big = app.ws(&app.token).await;
    let mut other = app.ws(&app.token).await;
    big.ws
        .send(Message::text(
            "x".repeat(vigil_web::stream::WS_MAX_MESSAGE + 1),
        ))
        .await
        .expect("send");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match big.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(
        closed,
        Ok(true),
        "the server closes a connection that sends an oversized message"
    );
    // Everyone else still gets events.
    let (_, dev) = app.patient_with_device().await;
    dev.publish_obs(1, json!([{"code": "pulse", "value": 70, "unit": "/min"}]))
        .await;
    other.next_event("observation").await;
}

#[tokio::test]
async fn an_open_websocket_ends_when_its_credential_is_revoked() {
    let app = TestApp::spawn().await;
    let user = app
        .store
        .user_by_username("admin")
        .await
        .expect("q")
        .expect("user");
    let token = vigil_web::admin::issue_token(
        app.store.as_ref(),
        user.id,
        vigil_store::TokenKind::Api,
        Utc::now(),
        None,
    )
    .await
    .expect("token");
    let mut ws = app.ws(&token).await;
    let mut kept = app.ws(&app.token).await;
    assert!(
        app.store
            .token_revoke(&vigil_store::secrets::hash_secret(&token), Utc::now())
            .await
            .expect("revoke")
    );
    let within = vigil_web::stream::RECHECK + std::time::Duration::from_secs(5);
    let ended = ws.next_event_within("session_ended", within).await;
    assert!(
        ended.is_some(),
        "the revoked credential's stream is told and closed"
    );
    // Another user's stream is untouched.
    let (_, dev) = app.patient_with_device().await;
    dev.publish_obs(1, json!([{"code": "pulse", "value": 70, "unit": "/min"}]))
        .await;
    kept.next_event("observation").await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.http.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // Meanwhile everyone else is served.
    assert_eq!(app.get("/healthz").send().await.expect("get").status(), 200);
    let mut buf = [0u8; 256];
    let limit = vigil_web::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(5);
    let read = tokio::time::timeout(limit, slow.read(&mut buf))
        .await
        .expect("the server hangs up within the header timeout");
    // Closed (0 bytes or a reset), or at most an error response: never the
    // answer to the unfinished request.
    if let Ok(n) = read {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
}

/// A nurse changes the password an admin gave them (`POST
/// /api/v1/me/password`, from a signed-in page): the current one is asked
/// for, and a wrong one counts as a failed sign-in (five and the account is
/// throttled, the right one too); a short or unchanged new one is refused by name; once
/// changed, every session of the account has ended (this one's cookie
/// cleared, another device's session refused), the old password signs in
/// to nothing and the new one does; the API token stays; the trail holds
/// the change without either password.
#[tokio::test]
async fn a_user_changes_their_own_password_and_their_sessions_end() {
    let app = TestApp::spawn().await;
    let ward = app.ward.to_string();
    vigil_web::admin::add_user(
        app.store.as_ref(),
        "nurse-c",
        "nurse",
        &[ward],
        "given-by-admin",
    )
    .await
    .expect("user");
    let browser = |_: ()| {
        reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client")
    };
    let (page, other) = (browser(()), browser(()));
    let signed_in: Value = login(&app, &page, "nurse-c", "given-by-admin")
        .await
        .json()
        .await
        .expect("json");
    let csrf = signed_in["csrf_token"].as_str().expect("csrf").to_string();
    assert_eq!(
        login(&app, &other, "nurse-c", "given-by-admin")
            .await
            .status(),
        200
    );
    let change = |current: &str, new: &str| {
        page.post(format!("{}/api/v1/me/password", app.http))
            .header("x-csrf-token", &csrf)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    let refused = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("json");
        (
            status,
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    let (status, why) = refused(change("wrong-guess", "a-new-password").await.expect("post")).await;
    assert_eq!(status, 422);
    assert!(why.starts_with("current_password:"), "{why}");
    let (status, why) = refused(change("given-by-admin", "short").await.expect("post")).await;
    assert_eq!(
        (status, why.as_str()),
        (422, "new_password: at least 8 characters")
    );
    let (status, why) = refused(
        change("given-by-admin", "given-by-admin")
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(status, 422);
    assert!(why.starts_with("new_password: the same"), "{why}");
    let no_csrf = page
        .post(format!("{}/api/v1/me/password", app.http))
        .json(&json!({"current_password": "given-by-admin", "new_password": "a-new-password"}))
        .send()
        .await
        .expect("post");
    assert_eq!(no_csrf.status(), 403, "a forged cross-site post");

    let done = change("given-by-admin", "a-new-password")
        .await
        .expect("post");
    assert_eq!(done.status(), 200);
    let cleared = done
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let done: Value = done.json().await.expect("json");
    assert_eq!(done["sessions_revoked"], 2, "{done}");
    let me = |c: &reqwest::Client| c.get(format!("{}/api/v1/me", app.http)).send();
    assert_eq!(
        me(&other).await.expect("me").status(),
        401,
        "the other session ended"
    );
    let fresh = browser(());
    assert_eq!(
        login(&app, &fresh, "nurse-c", "given-by-admin")
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&app, &fresh, "nurse-c", "a-new-password")
            .await
            .status(),
        200
    );
    assert_eq!(me(&fresh).await.expect("me").status(), 200);

    let trail = app.get_json("/api/v1/audit?limit=500").await;
    let entries: Vec<&Value> = trail
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["username"] == "nurse-c")
        .collect();
    let changed = entries
        .iter()
        .find(|e| e["action"] == "user.password.change")
        .expect("the change is on the trail");
    let text = trail.to_string();
    assert!(
        !text.contains("a-new-password") && !text.contains("given-by-admin"),
        "{changed}"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "login.failed")
            .count(),
        2,
        "the wrong current password and the old one after the change: {trail:#}"
    );

    // Guessing the current password from an open session is throttled as
    // sign-ins are (the count starts again at the last sign-in): five
    // wrong, then 429, even for the right one.
    let page = browser(());
    let body: Value = login(&app, &page, "nurse-c", "a-new-password")
        .await
        .json()
        .await
        .expect("json");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
    let guess = || {
        page.post(format!("{}/api/v1/me/password", app.http))
            .header("x-csrf-token", &csrf)
            .json(&json!({"current_password": "guess", "new_password": "whatever-it-is"}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(guess().await.expect("post").status(), 422);
    }
    assert_eq!(guess().await.expect("post").status(), 429);
    let right = page
        .post(format!("{}/api/v1/me/password", app.http))
        .header("x-csrf-token", &csrf)
        .json(&json!({"current_password": "a-new-password", "new_password": "a-third-password"}))
        .send()
        .await
        .expect("post");
    assert_eq!(right.status(), 429);
}

/// Admins are admins of their wards on the audit trail too: another ward's
/// patient is not found, and the whole trail holds only what concerns
/// their wards (their patients, their staff's other actions) and what
/// concerns nobody's ward (a failed sign-in of an unknown name).
#[tokio::test]
async fn an_admin_reads_the_trail_of_their_wards_only() {
    let app = TestApp::spawn().await;
    let admin_b = app.token_on_another_ward("admin-b", "admin").await;
    let as_b = |path: &str| {
        app.http_client
            .get(format!("{}{path}", app.http))
            .bearer_auth(&admin_b)
    };
    // Ward B: a patient admitted and read, and a list read about no patient.
    let r = app
        .http_client
        .post(format!("{}/api/v1/patients", app.http))
        .bearer_auth(&admin_b)
        .json(&json!({"ward": "Ward B", "name": "B Patient", "nhs_number": crate::helpers::nhs_number(), "pathway": "general"}))
        .send()
        .await
        .expect("admit");
    assert_eq!(r.status(), 201);
    let theirs = r.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    as_b(&format!("/api/v1/patients/{theirs}"))
        .send()
        .await
        .expect("read");
    as_b("/api/v1/patients/discharged")
        .send()
        .await
        .expect("list");
    // Ward A: the same.
    let ours = app.admit("general").await;
    app.get(&format!("/api/v1/patients/{ours}"))
        .send()
        .await
        .expect("read");
    app.get("/api/v1/patients/discharged")
        .send()
        .await
        .expect("list");
    // Nobody's ward: a sign-in under a name no account has.
    let r = login(&app, &reqwest::Client::new(), "no-such-person", "guess-one").await;
    assert_eq!(r.status(), 401);

    let r = app
        .get(&format!("/api/v1/audit?patient={theirs}"))
        .send()
        .await
        .expect("audit");
    assert_eq!(
        r.status(),
        404,
        "another ward's patient is not found on the trail"
    );
    let whole = app.get_json("/api/v1/audit").await;
    let entries = whole.as_array().expect("entries");
    let about = |e: &Value| {
        (
            e["action"].as_str().unwrap_or_default().to_string(),
            e["patient_id"].as_i64(),
            e["username"].as_str().unwrap_or_default().to_string(),
        )
    };
    let seen: Vec<_> = entries.iter().map(about).collect();
    assert!(
        seen.iter()
            .all(|(_, p, u)| *p != Some(theirs) && u != "admin-b"),
        "nothing of ward B: {whole}"
    );
    assert!(
        seen.iter()
            .any(|(a, p, _)| a == "patient.read" && *p == Some(ours)),
        "{whole}"
    );
    assert!(
        seen.iter()
            .any(|(a, p, _)| a == "patients.discharged" && p.is_none()),
        "{whole}"
    );
    assert!(
        seen.iter()
            .any(|(a, _, u)| a == "login.failed" && u == "no-such-person"),
        "{whole}"
    );

    let theirs_trail = app.get_json_as("/api/v1/audit", &admin_b).await;
    let seen: Vec<_> = theirs_trail
        .as_array()
        .expect("entries")
        .iter()
        .map(about)
        .collect();
    assert!(
        seen.iter()
            .any(|(a, p, _)| a == "patient.read" && *p == Some(theirs)),
        "{theirs_trail}"
    );
    assert!(
        seen.iter().all(|(_, p, _)| *p != Some(ours)),
        "nothing of ward A's patients: {theirs_trail}"
    );
    assert!(
        seen.iter()
            .any(|(a, _, u)| a == "login.failed" && u == "no-such-person")
    );
    let r = as_b(&format!("/api/v1/audit?patient={ours}"))
        .send()
        .await
        .expect("audit");
    assert_eq!(r.status(), 404);
}
