//! Single sign-on (`[sso]`) against an OpenID Connect provider started by
//! the test: the whole authorization-code flow as a browser walks it, the
//! ID token's checks one by one, and password sign-in switched off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::TestApp;

const CLIENT_ID: &str = "vigil-ward";
const CLIENT_SECRET: &str = "a-client-secret-for-tests";
/// Vigil as browsers reach it (behind the trust's proxy); the test, as the
/// browser, sends what is addressed there to the daemon.
const PUBLIC: &str = "https://vigil.example.nhs.uk";

/// What the provider does wrong in its next ID token.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mischief {
    None,
    OtherAudience,
    OtherNonce,
    Expired,
    OtherIssuer,
    /// Signed by a key it does not publish, under its published key's id.
    UnpublishedKey,
    /// `HS256` with the client secret as the key.
    SharedSecret,
    NoUsername,
}

struct Pending {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    username: String,
}

struct ProviderState {
    issuer: String,
    key: rcgen::KeyPair,
    other_key: rcgen::KeyPair,
    username: String,
    mischief: Mischief,
    codes: HashMap<String, Pending>,
    next_code: u32,
    /// The `sid` of the last sign-in it vouched for.
    last_sid: String,
}

/// A provider on a free port: it signs in whoever [`Provider::sign_in_as`]
/// names, at once, and keeps to the protocol unless told to misbehave.
struct Provider {
    issuer: String,
    state: Arc<Mutex<ProviderState>>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Provider {
    async fn start() -> Provider {
        use axum::extract::{Form, Query};
        use axum::http::HeaderMap;
        use axum::response::{IntoResponse, Redirect};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(ProviderState {
            issuer: issuer.clone(),
            key: rcgen::KeyPair::generate().expect("key"),
            other_key: rcgen::KeyPair::generate().expect("key"),
            username: String::new(),
            mischief: Mischief::None,
            codes: HashMap::new(),
            next_code: 0,
            last_sid: String::new(),
        }));
        let (s1, s2, s3) = (state.clone(), state.clone(), state.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let iss = s1.lock().expect("state").issuer.clone();
                    async move {
                        axum::Json(json!({
                            "issuer": iss,
                            "authorization_endpoint": format!("{iss}/authorize"),
                            "token_endpoint": format!("{iss}/token"),
                            "jwks_uri": format!("{iss}/jwks"),
                            "end_session_endpoint": format!("{iss}/logout"),
                        }))
                    }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || {
                    // P-256's uncompressed point: 0x04, x, y.
                    let raw = s2.lock().expect("state").key.public_key_raw().to_vec();
                    async move {
                        axum::Json(json!({"keys": [{
                            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
                            "kid": "k1", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
                        }]}))
                    }
                }),
            )
            .route(
                "/authorize",
                axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
                    let mut s = s3.lock().expect("state");
                    let ok = q.get("response_type").map(String::as_str) == Some("code")
                        && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
                        && q.get("scope")
                            .is_some_and(|s| s.split(' ').any(|s| s == "openid"));
                    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
                    let st = q.get("state").cloned().unwrap_or_default();
                    let to = if !ok {
                        format!("{redirect_uri}?error=invalid_request&state={st}")
                    } else {
                        s.next_code += 1;
                        let code = format!("code-{}", s.next_code);
                        let pending = Pending {
                            nonce: q.get("nonce").cloned().unwrap_or_default(),
                            challenge: q.get("code_challenge").cloned().unwrap_or_default(),
                            redirect_uri: redirect_uri.clone(),
                            username: s.username.clone(),
                        };
                        s.codes.insert(code.clone(), pending);
                        format!("{redirect_uri}?code={code}&state={st}")
                    };
                    async move { Redirect::to(&to) }
                }),
            )
            .route(
                "/token",
                axum::routing::post({
                    let state = state.clone();
                    move |headers: HeaderMap, Form(f): Form<HashMap<String, String>>| {
                        let answer = token(&state, &headers, &f);
                        async move {
                            match answer {
                                Ok(v) => axum::Json(v).into_response(),
                                Err(e) => (
                                    axum::http::StatusCode::BAD_REQUEST,
                                    axum::Json(json!({"error": e})),
                                )
                                    .into_response(),
                            }
                        }
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Provider { issuer, state }
    }

    fn sign_in_as(&self, username: &str, mischief: Mischief) {
        let mut s = self.state.lock().expect("state");
        s.username = username.into();
        s.mischief = mischief;
    }

    /// The provider's session id (`sid`) of the last sign-in.
    fn last_sid(&self) -> String {
        self.state.lock().expect("state").last_sid.clone()
    }

    /// A logout token (Back-Channel Logout 1.0 §2.4) with `claims` over
    /// the ones a good one has (a `null` removes one), signed by its key
    /// or, with `other_key`, by one it does not publish.
    fn logout_token(&self, claims: Value, other_key: bool) -> String {
        let s = self.state.lock().expect("state");
        let now = chrono::Utc::now().timestamp();
        let mut all = json!({
            "iss": s.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
            "jti": format!("jti-{now}-{}", rand_suffix()),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        for (k, v) in claims.as_object().expect("claims") {
            if v.is_null() {
                all.as_object_mut().expect("object").remove(k);
            } else {
                all[k] = v.clone();
            }
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        let key = if other_key { &s.other_key } else { &s.key };
        jsonwebtoken::encode(
            &header,
            &all,
            &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())
                .expect("PKCS#8 key"),
        )
        .expect("signs")
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The token endpoint: client authentication, a code used once, the same
/// redirect URI, PKCE; then an ID token, spoiled as asked.
fn token(
    state: &Mutex<ProviderState>,
    headers: &axum::http::HeaderMap,
    f: &HashMap<String, String>,
) -> Result<Value, &'static str> {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return Err("invalid_client");
    }
    let mut s = state.lock().expect("state");
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return Err("unsupported_grant_type");
    }
    let code = f.get("code").cloned().unwrap_or_default();
    let p = s.codes.remove(&code).ok_or("invalid_grant")?;
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if f.get("redirect_uri") != Some(&p.redirect_uri)
        || b64(&Sha256::digest(verifier.as_bytes())) != p.challenge
    {
        return Err("invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    s.last_sid = format!("sid-{code}");
    let m = s.mischief;
    let mut claims = json!({
        "iss": if m == Mischief::OtherIssuer { "https://elsewhere.example".into() } else { s.issuer.clone() },
        "aud": if m == Mischief::OtherAudience { "another-app" } else { CLIENT_ID },
        "sub": format!("subject-of-{}", p.username),
        "iat": now,
        "exp": if m == Mischief::Expired { now - 600 } else { now + 300 },
        "nonce": if m == Mischief::OtherNonce { "a-replayed-nonce".into() } else { p.nonce },
        "preferred_username": p.username,
        "sid": s.last_sid,
    });
    if m == Mischief::NoUsername
        && let Some(c) = claims.as_object_mut()
    {
        c.remove("preferred_username");
    }
    let id_token = match m {
        Mischief::SharedSecret => jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        ),
        _ => {
            let key = if m == Mischief::UnpublishedKey {
                &s.other_key
            } else {
                &s.key
            };
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())
                    .expect("PKCS#8 key"),
            )
        }
    }
    .expect("signs");
    Ok(
        json!({"access_token": "unused", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}),
    )
}

/// `[sso]` for `provider`.
fn sso(provider: &Provider) -> impl FnOnce(&mut vigil::config::Config) + use<> {
    let issuer = provider.issuer.clone();
    move |c| {
        c.sso.issuer = Some(issuer);
        c.sso.client_id = Some(CLIENT_ID.into());
        c.sso.client_secret = Some(CLIENT_SECRET.into());
        c.sso.redirect_url = Some(format!("{PUBLIC}/api/v1/auth/sso/callback"));
        c.sso.label = "Test Trust".into();
    }
}

/// A browser that keeps no cookies of its own and follows no redirects:
/// the test carries both, to see each step.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client")
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The `name=value` of the response's cookie `name`, and its attributes.
fn cookie(r: &reqwest::Response, name: &str) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| {
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            (pair.to_string(), attrs.to_string())
        })
}

/// Where one sign-in ends: the dashboard address it lands on, and the
/// session cookie, if one was set.
struct Landed {
    at: String,
    session: Option<String>,
    /// The cookie marking a single sign-on for the sign-out (`name=value`)
    /// and its attributes, if one was set.
    sign_out: Option<(String, String)>,
}

/// A sign-in begun: the browser, Vigil's answer, and the flow's cookie
/// (`name=value`) and its attributes.
async fn begin(app: &TestApp) -> (reqwest::Client, reqwest::Response, String, String) {
    begin_from(app, "").await
}

/// [`begin`] from a page of the dashboard (`#/…`), to return to.
async fn begin_from(
    app: &TestApp,
    place: &str,
) -> (reqwest::Client, reqwest::Response, String, String) {
    let b = browser();
    let start = b
        .get(format!("{}/api/v1/auth/sso/login", app.http))
        .query(&[("return", place)])
        .send()
        .await
        .expect("login");
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let (flow, attrs) = cookie(&start, "vigil_sso").expect("the flow's cookie");
    (b, start, flow, attrs)
}

/// Walk the flow as a browser: to Vigil, to the provider, back to Vigil
/// with the flow's cookie (or `flow_cookie` in its place).
async fn sign_in(app: &TestApp, flow_cookie: Option<&str>) -> Landed {
    sign_in_from(app, flow_cookie, "").await
}

/// [`sign_in`] from a page of the dashboard (`#/…`).
async fn sign_in_from(app: &TestApp, flow_cookie: Option<&str>, place: &str) -> Landed {
    let (b, start, flow, attrs) = begin_from(app, place).await;
    for a in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api/v1/auth/sso",
        "Max-Age=600",
    ] {
        assert!(attrs.contains(a), "{a} in {attrs}");
    }
    let at_provider = b.get(location(&start)).send().await.expect("provider");
    let back = location(&at_provider);
    let path = back
        .strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("sent back to the redirect URL: {back}"));
    let landed = b
        .get(format!("{}{path}", app.http))
        .header("cookie", flow_cookie.unwrap_or(&flow))
        .send()
        .await
        .expect("callback");
    assert_eq!(landed.status(), StatusCode::SEE_OTHER);
    // The flow's cookie is spent either way.
    let (_, cleared) = cookie(&landed, "vigil_sso").expect("flow cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    Landed {
        at: location(&landed),
        session: cookie(&landed, "vigil_session").map(|(pair, attrs)| {
            assert!(
                attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
                "{attrs}"
            );
            pair
        }),
        sign_out: cookie(&landed, "vigil_sso_out"),
    }
}

async fn me(app: &TestApp, session: &str) -> (StatusCode, Value) {
    let r = browser()
        .get(format!("{}/api/v1/me", app.http))
        .header("cookie", session)
        .send()
        .await
        .expect("me");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn add_nurse(app: &TestApp, username: &str) -> i64 {
    vigil_web::admin::add_user(
        app.store.as_ref(),
        username,
        "nurse",
        std::slice::from_ref(&app.ward),
        "a-password-nobody-uses",
    )
    .await
    .expect("user")
}

/// A nurse signs in through the provider and gets the session, role and
/// ward their Vigil account has; the code cannot be used twice; someone
/// without an account, a disabled account and a cancelled sign-in get no
/// session; every outcome is on the audit trail.
#[tokio::test]
async fn a_nurse_signs_in_through_the_provider_as_their_vigil_account() {
    let provider = Provider::start().await;
    let app = TestApp::spawn_configured(None, None, None, sso(&provider)).await;
    let methods: Value = browser()
        .get(format!("{}/api/v1/auth/methods", app.http))
        .send()
        .await
        .expect("methods")
        .json()
        .await
        .expect("json");
    assert_eq!(
        methods,
        json!({"password": true, "sso": {"label": "Test Trust", "login_url": "/api/v1/auth/sso/login"}})
    );
    let nurse = add_nurse(&app, "jane.doe@nhs.example").await;

    provider.sign_in_as("jane.doe@nhs.example", Mischief::None);
    let landed = sign_in(&app, None).await;
    assert_eq!(landed.at, "/");
    let session = landed.session.expect("a session");
    let (status, who) = me(&app, &session).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        (&who["id"], &who["username"], &who["role"]),
        (
            &json!(nurse),
            &json!("jane.doe@nhs.example"),
            &json!("nurse")
        )
    );
    assert_eq!(who["wards"][0]["name"], app.ward.as_str(), "{who}");
    assert!(who["csrf_token"].is_string(), "a cookie session: {who}");

    // The directory's case for the same account (a UPN as Entra holds it).
    provider.sign_in_as("Jane.Doe@NHS.example", Mischief::None);
    let landed = sign_in(&app, None).await;
    let (_, who) = me(&app, &landed.session.expect("a session")).await;
    assert_eq!(who["id"], nurse, "{who}");
    // But two accounts differing only in case: the provider's name picks
    // neither. Vigil no longer makes such a pair (`admin::add_user` refuses
    // the second), so it is written as a database from before would hold it.
    let taken = vigil_web::admin::add_user(
        app.store.as_ref(),
        "JANE.DOE@nhs.example",
        "nurse",
        std::slice::from_ref(&app.ward),
        "a-password-nobody-uses",
    )
    .await;
    assert!(
        matches!(&taken, Err(vigil_web::admin::AdminError::Conflict(m)) if m.contains("jane.doe@nhs.example")),
        "{taken:?}"
    );
    let ward = app.ward_id().await;
    app.store
        .user_add(vigil_store::NewUser {
            username: "JANE.DOE@nhs.example".into(),
            role: vigil_store::Role::Nurse,
            password_hash: vigil_web::admin::hash_password("a-password-nobody-uses").expect("hash"),
            ward_ids: vec![ward],
        })
        .await
        .expect("user");
    let landed = sign_in(&app, None).await;
    assert_eq!(
        (landed.at.as_str(), landed.session),
        ("/?sso_error=no-account", None)
    );
    provider.sign_in_as("jane.doe@nhs.example", Mischief::None);

    // From a patient's page (a link in a page, say): back to that page, and
    // only to a place in the dashboard.
    let landed = sign_in_from(&app, None, "#/patients/12").await;
    assert_eq!(landed.at, "/#/patients/12");
    assert!(landed.session.is_some());
    let landed = sign_in_from(&app, None, "https://evil.example/").await;
    assert_eq!(landed.at, "/");

    // The same code again (a replayed callback): the provider refuses it.
    // Replaying needs the flow's cookie too, so this walks a new flow and
    // sends its code twice.
    let (b, start, flow, _) = begin(&app).await;
    let back = location(&b.get(location(&start)).send().await.expect("provider"));
    let callback = format!("{}{}", app.http, back.strip_prefix(PUBLIC).expect("ours"));
    let first = b
        .get(&callback)
        .header("cookie", &flow)
        .send()
        .await
        .expect("callback");
    assert!(cookie(&first, "vigil_session").is_some());
    let again = b
        .get(&callback)
        .header("cookie", &flow)
        .send()
        .await
        .expect("callback again");
    assert_eq!(location(&again), "/?sso_error=refused");
    assert!(cookie(&again, "vigil_session").is_none());

    // Signed in at the provider, but no Vigil account by that name: told
    // so, on the page they came from.
    provider.sign_in_as("someone.else@nhs.example", Mischief::None);
    let landed = sign_in_from(&app, None, "#/patients/12").await;
    assert_eq!(
        (landed.at.as_str(), landed.session),
        ("/?sso_error=no-account#/patients/12", None)
    );
    // A leaver: the account is disabled, whatever the provider says.
    app.store
        .user_disable("jane.doe@nhs.example", chrono::Utc::now())
        .await
        .expect("disable");
    provider.sign_in_as("jane.doe@nhs.example", Mischief::None);
    let landed = sign_in(&app, None).await;
    assert_eq!(
        (landed.at.as_str(), landed.session),
        ("/?sso_error=no-account", None)
    );
    let (status, _) = me(&app, &session).await;
    assert_eq!(status, 401, "disabling ended the session signed in before");

    // The user cancels at the provider.
    let cancelled = browser()
        .get(format!(
            "{}/api/v1/auth/sso/callback?error=access_denied&state=x",
            app.http
        ))
        .send()
        .await
        .expect("callback");
    assert_eq!(location(&cancelled), "/?sso_error=cancelled");

    // Each outcome counted for the operators.
    let metrics = app.metrics().await;
    for line in [
        "vigil_sso_signins_total{outcome=\"signed_in\"} 5",
        "vigil_sso_signins_total{outcome=\"refused\"} 1",
        "vigil_sso_signins_total{outcome=\"no-account\"} 3",
        "vigil_sso_signins_total{outcome=\"cancelled\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    let trail = app.get_json("/api/v1/audit?limit=500").await;
    let of = |action: &str| -> Vec<Value> {
        trail
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["action"] == action && e["detail"]["via"] == "sso")
            .cloned()
            .collect()
    };
    let logins = of("login");
    assert_eq!(logins.len(), 5, "{trail:#}");
    assert!(
        logins
            .iter()
            .all(|e| e["username"] == "jane.doe@nhs.example")
    );
    let failed = of("login.failed");
    let names: Vec<&str> = failed
        .iter()
        .map(|e| e["username"].as_str().unwrap_or_default())
        .collect();
    assert!(names.contains(&"someone.else@nhs.example"), "{failed:#?}");
    assert!(
        names.contains(&"jane.doe@nhs.example"),
        "the disabled account: {failed:#?}"
    );
    assert!(
        failed.iter().any(|e| e["detail"]["why"] == "token refused"),
        "the replayed code: {failed:#?}"
    );
}

/// Every check of the ID token refuses a token that fails it, and a
/// callback that is not this browser's sign-in is refused before the
/// provider is asked.
#[tokio::test]
async fn a_token_that_fails_a_check_or_a_callback_not_of_this_sign_in_gets_no_session() {
    let provider = Provider::start().await;
    let app = TestApp::spawn_configured(None, None, None, sso(&provider)).await;
    add_nurse(&app, "jane.doe@nhs.example").await;
    for m in [
        Mischief::OtherAudience,
        Mischief::OtherNonce,
        Mischief::Expired,
        Mischief::OtherIssuer,
        Mischief::UnpublishedKey,
        Mischief::SharedSecret,
        Mischief::NoUsername,
    ] {
        provider.sign_in_as("jane.doe@nhs.example", m);
        let landed = sign_in(&app, None).await;
        assert_eq!(
            (landed.at.as_str(), landed.session.is_some()),
            ("/?sso_error=refused", false),
            "{m:?}"
        );
    }
    // A good token, but the callback carries another sign-in's cookie (a
    // link from an attacker's own flow, say): refused as not this one's.
    provider.sign_in_as("jane.doe@nhs.example", Mischief::None);
    let (_, _, other_flow, _) = begin(&app).await;
    let landed = sign_in(&app, Some(&other_flow)).await;
    assert_eq!(
        (landed.at.as_str(), landed.session.is_some()),
        ("/?sso_error=expired", false)
    );
    // And the good one, with nothing spoiled, still signs in.
    let landed = sign_in(&app, None).await;
    assert_eq!((landed.at.as_str(), landed.session.is_some()), ("/", true));
}

/// A provider that cannot be reached does not stop Vigil starting, and a
/// sign-in through it comes back saying so.
#[tokio::test]
async fn vigil_starts_without_its_provider_and_says_so_at_sign_in() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let issuer = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let app = TestApp::spawn_configured(None, None, None, move |c| {
        c.sso.issuer = Some(issuer);
        c.sso.client_id = Some(CLIENT_ID.into());
        c.sso.client_secret = Some(CLIENT_SECRET.into());
        c.sso.redirect_url = Some(format!("{PUBLIC}/api/v1/auth/sso/callback"));
    })
    .await;
    let r = browser()
        .get(format!("{}/api/v1/auth/sso/login", app.http))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/?sso_error=provider");
}

/// With `sso.password_login = false`, passwords sign nobody in to the
/// dashboard or API, and cannot be changed there either.
#[tokio::test]
async fn password_sign_in_can_be_switched_off() {
    let provider = Provider::start().await;
    let tweak = sso(&provider);
    let app = TestApp::spawn_configured(None, None, None, move |c| {
        tweak(c);
        c.sso.password_login = false;
    })
    .await;
    add_nurse(&app, "jane.doe@nhs.example").await;
    let methods = app.get_json("/api/v1/auth/methods").await;
    assert_eq!(methods["password"], false, "{methods}");
    let b = browser();
    let r = app
        .login_with(&b, "jane.doe@nhs.example", "a-password-nobody-uses")
        .await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "password_off", "{body}");

    provider.sign_in_as("jane.doe@nhs.example", Mischief::None);
    let session = sign_in(&app, None).await.session.expect("a session");
    let (_, who) = me(&app, &session).await;
    let changed = b
        .post(format!("{}/api/v1/me/password", app.http))
        .header("cookie", &session)
        .header("x-csrf-token", who["csrf_token"].as_str().expect("csrf"))
        .json(
            &json!({"current_password": "a-password-nobody-uses", "new_password": "another-one-1"}),
        )
        .send()
        .await
        .expect("change");
    assert_eq!(changed.status(), 403);

    // The dashboard's Staff section: accounts are added for single sign-on
    // only, and no password is set for anyone.
    let ward = app.ward_id().await;
    let add = |body: Value| app.post("/api/v1/users", body).send();
    let r = add(
        json!({"username": "sam", "role": "nurse", "wards": [ward], "password": "long-enough"}),
    )
    .await
    .expect("add");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("give sso_only"),
        "{body}"
    );
    let r = add(json!({"username": "sam", "role": "nurse", "wards": [ward], "sso_only": true}))
        .await
        .expect("add");
    assert_eq!(r.status(), 201);
    let sam: Value = r.json().await.expect("json");
    let r = app
        .post(
            &format!("/api/v1/users/{}/password", sam["id"]),
            json!({"password": "long-enough"}),
        )
        .send()
        .await
        .expect("set");
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "password_off", "{body}");
    provider.sign_in_as("sam", Mischief::None);
    assert!(
        sign_in(&app, None).await.session.is_some(),
        "sam signs in through the provider"
    );
}

/// On shared ward computers (`sso.prompt = "login"`), every sign-in asks
/// the provider to ask for the password again, so the next person at the
/// computer is not signed in as the last one; without it, nothing is asked.
#[tokio::test]
async fn a_shared_computer_has_the_provider_ask_every_time() {
    let provider = Provider::start().await;
    let prompt_of = |location: &str| {
        reqwest::Url::parse(location)
            .expect("a URL")
            .query_pairs()
            .find(|(k, _)| k == "prompt")
            .map(|(_, v)| v.to_string())
    };
    let plain = TestApp::spawn_configured(None, None, None, sso(&provider)).await;
    let (_, start, _, _) = begin(&plain).await;
    assert_eq!(prompt_of(&location(&start)), None);
    let tweak = sso(&provider);
    let shared = TestApp::spawn_configured(None, None, None, move |c| {
        tweak(c);
        c.sso.prompt = Some("login".into());
    })
    .await;
    let (_, start, _, _) = begin(&shared).await;
    assert_eq!(prompt_of(&location(&start)).as_deref(), Some("login"));
}

/// `POST /api/v1/logout` with `cookies`: the answer's JSON and the
/// sign-out cookie's attributes as set, if it was.
async fn log_out(app: &TestApp, cookies: &str) -> (Value, Option<String>) {
    let r = browser()
        .post(format!("{}/api/v1/logout", app.http))
        .header("cookie", cookies)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::OK);
    let cleared = cookie(&r, "vigil_sso_out").map(|(_, attrs)| attrs);
    (r.json().await.expect("json"), cleared)
}

/// With `sso.sign_out_provider`, signing out after a single sign-on sends
/// the browser on to the provider's sign-out (RP-Initiated Logout), naming
/// this client, the dashboard to come back to and the sign-in's ID token;
/// a password sign-in on the same Vigil, or a Vigil without the setting,
/// signs out of Vigil only.
#[tokio::test]
async fn signing_out_goes_on_to_the_providers_sign_out_when_asked() {
    let provider = Provider::start().await;
    let tweak = sso(&provider);
    let app = TestApp::spawn_configured(None, None, None, move |c| {
        tweak(c);
        c.sso.sign_out_provider = true;
    })
    .await;
    add_nurse(&app, "jane.doe@nhs.example").await;
    provider.sign_in_as("jane.doe@nhs.example", Mischief::None);
    let landed = sign_in(&app, None).await;
    let session = landed.session.expect("a session");
    let (mark, attrs) = landed.sign_out.expect("the sign-out cookie");
    for a in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/logout",
        "Max-Age=43200",
    ] {
        assert!(attrs.contains(a), "{a} in {attrs}");
    }
    let id_token = mark.strip_prefix("vigil_sso_out=").expect("value");
    assert_eq!(id_token.split('.').count(), 3, "the ID token: {id_token}");

    let (out, cleared) = log_out(&app, &format!("{session}; {mark}")).await;
    let url =
        reqwest::Url::parse(out["provider_sign_out"].as_str().expect("a URL")).expect("a URL");
    assert_eq!(
        url.as_str().split('?').next(),
        Some(format!("{}/logout", provider.issuer).as_str())
    );
    let query: std::collections::BTreeMap<String, String> =
        url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        std::collections::BTreeMap::from([
            ("client_id".to_string(), CLIENT_ID.to_string()),
            ("post_logout_redirect_uri".to_string(), format!("{PUBLIC}/")),
            ("id_token_hint".to_string(), id_token.to_string()),
        ])
    );
    assert!(cleared.expect("cleared").contains("Max-Age=0"));
    assert_eq!(me(&app, &session).await.0, StatusCode::UNAUTHORIZED);

    // A password sign-in on the same Vigil: out of Vigil only.
    let b = reqwest::Client::new();
    let r = app.login_with(&b, "admin", "admin-password").await;
    let (pair, _) = cookie(&r, "vigil_session").expect("a session");
    let (out, cleared) = log_out(&app, &pair).await;
    assert_eq!(out["provider_sign_out"], Value::Null, "{out}");
    assert!(cleared.is_none());

    // Without the setting: no cookie to mark the sign-in, and out of Vigil only.
    let plain = TestApp::spawn_configured(None, None, None, sso(&provider)).await;
    add_nurse(&plain, "jane.doe@nhs.example").await;
    let landed = sign_in(&plain, None).await;
    assert!(landed.sign_out.is_none());
    let (out, _) = log_out(&plain, &landed.session.expect("a session")).await;
    assert_eq!(out["provider_sign_out"], Value::Null, "{out}");
}

/// The provider posts a logout token to Vigil's back-channel logout URI.
async fn provider_logs_out(app: &TestApp, token: Option<&str>) -> (StatusCode, Value) {
    let form: Vec<(&str, &str)> = token.map(|t| ("logout_token", t)).into_iter().collect();
    let r = browser()
        .post(format!("{}/api/v1/auth/sso/backchannel-logout", app.http))
        .form(&form)
        .send()
        .await
        .expect("back-channel logout");
    let status = r.status();
    if status != StatusCode::NOT_FOUND {
        assert_eq!(
            r.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The provider ends a sign-in (NHS CIS2 does when the smartcard comes
/// out) and says so over the back channel: the Vigil sessions begun
/// through that sign-in end at once, by its `sid`, or every one of the
/// person's with only their `sub`; a password session and other people's
/// stay; a token that fails a check ends nothing.
#[tokio::test]
async fn the_provider_ending_a_sign_in_ends_its_sessions_at_once() {
    let provider = Provider::start().await;
    let app = TestApp::spawn_configured(None, None, None, sso(&provider)).await;
    let jane = add_nurse(&app, "jane.doe@nhs.example").await;
    add_nurse(&app, "sam.roe@nhs.example").await;
    provider.sign_in_as("jane.doe@nhs.example", Mischief::None);
    let at_desk = sign_in(&app, None).await.session.expect("a session");
    let desk_sid = provider.last_sid();
    let on_tablet = sign_in(&app, None).await.session.expect("a session");
    provider.sign_in_as("sam.roe@nhs.example", Mischief::None);
    let sam = sign_in(&app, None).await.session.expect("a session");
    let with_password = app
        .login_with(&browser(), "jane.doe@nhs.example", "a-password-nobody-uses")
        .await;
    assert_eq!(with_password.status(), 200);
    let with_password = cookie(&with_password, "vigil_session")
        .expect("a session")
        .0;
    let jane_sub = "subject-of-jane.doe@nhs.example";

    let live = |session: &str| {
        let (app, session) = (&app, session.to_string());
        async move { me(app, &session).await.0 == StatusCode::OK }
    };
    for (what, token) in [
        (
            "a nonce (an ID token passed off as one)",
            provider.logout_token(json!({"sub": jane_sub, "nonce": "n"}), false),
        ),
        (
            "no logout event",
            provider.logout_token(json!({"sub": jane_sub, "events": {}}), false),
        ),
        (
            "an unpublished key",
            provider.logout_token(json!({"sub": jane_sub}), true),
        ),
        (
            "another audience",
            provider.logout_token(json!({"sub": jane_sub, "aud": "another-app"}), false),
        ),
        (
            "another issuer",
            provider.logout_token(
                json!({"sub": jane_sub, "iss": "https://elsewhere.example"}),
                false,
            ),
        ),
        (
            "expired",
            provider.logout_token(
                json!({"sub": jane_sub, "exp": chrono::Utc::now().timestamp() - 600}),
                false,
            ),
        ),
        (
            "no iat",
            provider.logout_token(json!({"sub": jane_sub, "iat": null}), false),
        ),
        (
            "old, with no exp",
            provider.logout_token(
                json!({"sub": jane_sub, "exp": null, "iat": chrono::Utc::now().timestamp() - 3600}),
                false,
            ),
        ),
        ("no sub and no sid", provider.logout_token(json!({}), false)),
        (
            "no jti",
            provider.logout_token(json!({"sub": jane_sub, "jti": null}), false),
        ),
        ("not a JWT", "not-a-token".to_string()),
    ] {
        let (status, body) = provider_logs_out(&app, Some(&token)).await;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_request")),
            "{what}: {body}"
        );
        assert!(
            live(&at_desk).await && live(&on_tablet).await,
            "{what}: nothing ended"
        );
    }
    let (status, _) = provider_logs_out(&app, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no token");

    // By `sid`: that sign-in's session only.
    let (status, body) = provider_logs_out(
        &app,
        Some(&provider.logout_token(json!({"sub": jane_sub, "sid": desk_sid}), false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!live(&at_desk).await, "the desk's session ended");
    assert!(live(&on_tablet).await && live(&sam).await && live(&with_password).await);

    // By `sub` alone: every session the person began through the provider.
    let (status, _) = provider_logs_out(
        &app,
        Some(&provider.logout_token(json!({"sub": jane_sub}), false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!live(&on_tablet).await, "the tablet's session ended");
    assert!(live(&sam).await, "someone else's stays");
    assert!(
        live(&with_password).await,
        "a password session is not the provider's to end"
    );
    // A new token (a retry): nothing left to end, and still a success; the
    // same token again (captured, or resent) is refused.
    let again = provider.logout_token(json!({"sub": jane_sub}), false);
    assert_eq!(
        provider_logs_out(&app, Some(&again)).await.0,
        StatusCode::OK
    );
    let (status, body) = provider_logs_out(&app, Some(&again)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(live(&sam).await, "a refused replay ends nothing");
    // Taken once in the database, not in one instance's memory: another
    // instance sharing it (or this one after a restart) refuses it too.
    // That instance has read nothing of the provider yet (no sign-in began
    // there): the token is checked all the same, not refused for want of
    // the provider's keys.
    let other =
        TestApp::spawn_configured(Some(app.database_url.clone()), None, None, sso(&provider)).await;
    let (status, body) = provider_logs_out(&other, Some(&again)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error_description"],
        "this logout token was taken already"
    );
    drop(other);

    let trail = app.get_json(&format!("/api/v1/audit?user={jane}")).await;
    let ended: Vec<&Value> = trail
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "logout.provider")
        .collect();
    assert_eq!(
        ended.len(),
        2,
        "one entry a logout that ended a session: {trail}"
    );
    assert!(
        ended.iter().all(|e| e["detail"]["sessions"] == 1),
        "{trail}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("vigil_sso_logouts_total{outcome=\"ended\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_sso_logouts_total{outcome=\"refused\"} 13"),
        "{metrics}"
    );

    // Without `[sso]` there is no such route.
    let plain = TestApp::spawn().await;
    assert_eq!(
        provider_logs_out(&plain, Some("x")).await.0,
        StatusCode::NOT_FOUND
    );
}
