//! Who is asking: session cookies for the dashboard, bearer tokens for
//! scripts and integrations. Both resolve, through the store, to an
//! [`AuthUser`] with a role and the wards they may see.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_store::secrets::hash_secret;
use vigil_store::{AuthUser, Role, TokenKind};

use crate::AppState;
use crate::admin::verify_password;
use crate::error::{ApiError, bad_json};
use crate::openapi::ErrorBody;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vigil_session";

/// How long a dashboard session lasts at most (absolute expiry).
pub const SESSION_TTL_HOURS: i64 = 12;

/// A session unused this long has expired (idle expiry).
pub const SESSION_IDLE_MINUTES: i64 = 30;

/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Failed logins allowed per account, and per client address, in
/// [`THROTTLE_WINDOW`] before further attempts get 429.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
pub const MAX_FAILURES_PER_ADDR: i64 = 20;
pub const THROTTLE_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// The CSRF token of a session: derived from the session secret, which only
/// the browser holding the HttpOnly cookie (and the server) knows, so another
/// site can neither read nor forge it, and nothing extra is stored.
pub fn csrf_for(session_token: &str) -> String {
    hash_secret(&format!("vigil-csrf:{session_token}"))
}

/// Sign-ins of one account take turns within the process (see
/// [`login`]). Turns of accounts no sign-in holds are forgotten.
#[derive(Default)]
pub struct LoginGate(
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>,
);

impl LoginGate {
    /// Wait for `account`'s turn; it ends when the guard is dropped.
    pub async fn turn(&self, account: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() > 1024 {
                map.retain(|_, w| w.strong_count() > 0);
            }
            match map.get(account).and_then(std::sync::Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = std::sync::Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(account.to_string(), std::sync::Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

/// The authenticated caller, extracted from a cookie or a bearer token.
pub struct Caller(pub AuthUser, pub CallerInfo);

/// How the caller reached us.
#[derive(Clone, Debug, Default)]
pub struct CallerInfo {
    /// Authenticated by the session cookie (not a bearer token).
    pub via_cookie: bool,
    /// The client's address.
    pub addr: Option<std::net::SocketAddr>,
    /// SHA-256 of the presented credential, so a long-lived connection (the
    /// websocket) can check that it is still valid.
    pub token_hash: String,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role == role {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
    pub fn sees_ward(&self, ward_id: i64) -> bool {
        self.0.ward_ids.contains(&ward_id)
    }

    /// The wards a list covers: the one asked for, if it is the caller's
    /// (else 404, so ward ids cannot be probed), or all of theirs.
    pub fn wards(&self, requested: Option<i64>) -> Result<Vec<i64>, ApiError> {
        match requested {
            Some(w) if self.sees_ward(w) => Ok(vec![w]),
            Some(_) => Err(ApiError::NotFound("ward")),
            None => Ok(self.0.ward_ids.clone()),
        }
    }
}

/// The raw token presented with a request, if any, and whether it came
/// from the session cookie.
pub fn presented(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some((t.trim().to_string(), false));
    }
    session_cookie(headers).map(|t| (t, true))
}

/// The raw token presented with a request, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    presented(headers).map(|(t, _)| t)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the request's cookie `name`.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, via_cookie) = presented(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let idle = chrono::Duration::minutes(SESSION_IDLE_MINUTES);
        let token_hash = hash_secret(&token);
        let user = state
            .store
            .token_user(&token_hash, Utc::now(), idle)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        // A cookie is sent by the browser on its own, so a cookie-authenticated
        // write must also prove it comes from our page.
        let safe = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        if via_cookie && !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !vigil_store::secrets::ct_eq(sent, &csrf_for(&token)) {
                return Err(ApiError::Csrf);
            }
        }
        let addr = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        Ok(Caller(
            user,
            CallerInfo {
                via_cookie,
                addr,
                token_hash,
            },
        ))
    }
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// A signed-in user and the CSRF token their page sends with writes.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    user: AuthUser,
    csrf_token: String,
}

/// `GET /api/v1/me`.
#[derive(Serialize, ToSchema)]
pub struct Me {
    id: i64,
    username: String,
    role: Role,
    ward_ids: Vec<i64>,
    /// The same wards with their names (what an admission names as `ward`).
    wards: Vec<vigil_store::Ward>,
    /// For a cookie session: the `x-csrf-token` value; null for a bearer token.
    csrf_token: Option<String>,
}

/// `POST /api/v1/logout`.
#[derive(Serialize, ToSchema)]
pub struct LoggedOut {
    ok: bool,
    /// After a single sign-on with `sso.sign_out_provider`: where the
    /// browser goes next to sign out at the provider too, which sends it
    /// back to the dashboard. Null otherwise (an addition to CONTRACTS.md).
    provider_sign_out: Option<String>,
}

/// The account's turn to have a password checked, or 429 when its failures
/// (or the address's) have reached the throttle.
///
/// One check of an account at a time in this process, from the count to
/// the failure written: otherwise a burst of guesses would all pass the
/// count before any of their failures was on the trail. The failures are
/// counted from the audit trail, where every failed sign-in is written: the
/// same for every instance sharing the database, and kept across a
/// restart. An account's count starts again after a success.
async fn sign_in_turn(
    state: &AppState,
    account: &str,
    ip: &str,
) -> Result<tokio::sync::OwnedMutexGuard<()>, ApiError> {
    let turn = state.login_gate.turn(account).await;
    let since = Utc::now() - THROTTLE_WINDOW;
    let (by_account, by_addr) = state.store.login_failures(account, ip, since).await?;
    if by_account >= MAX_FAILURES_PER_ACCOUNT || by_addr >= MAX_FAILURES_PER_ADDR {
        tracing::warn!("sign-in throttled");
        return Err(ApiError::Throttled);
    }
    Ok(turn)
}

/// `POST /api/v1/login`: check the password, start a session.
#[utoipa::path(
    post, path = "/api/v1/login", tag = "auth",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Signed in: a session cookie and the CSRF token", body = LoginResponse,
         headers(("set-cookie" = String, description = "vigil_session=...; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200"))),
        (status = 401, description = "Bad credentials", body = ErrorBody),
        (status = 422, description = "Bad body", body = ErrorBody),
        (status = 403, description = "Password sign-in is off (`sso.password_login = false`)", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins for this account or address in 15 minutes", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    if !state.password_login {
        return Err(ApiError::PasswordOff);
    }
    let Json(req) = body.map_err(bad_json)?;
    // Before any lookup: no username holds one, and PostgreSQL cannot even
    // be asked about a NUL.
    crate::text::check("username", &req.username, false).map_err(ApiError::Invalid)?;
    let addr = Some(peer);
    let audited_name: String = req.username.chars().take(64).collect();
    let _turn = sign_in_turn(&state, &audited_name, &peer.ip().to_string()).await?;
    let user = state.store.user_by_username(&req.username).await?;
    // Verify against a dummy hash when the user is unknown, so the answer
    // takes as long either way and does not reveal which usernames exist.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.as_str())
        .unwrap_or(DUMMY_HASH);
    let ok = verify_password(&req.password, hash);
    // A disabled account (a leaver) is refused like a wrong password, after
    // the same verification: the answer says nothing of why.
    let Some(user) = user.filter(|u| ok && u.disabled_at.is_none()) else {
        tracing::info!("login refused");
        crate::audit::record_raw(
            &state,
            None,
            &req.username,
            "login.failed",
            None,
            serde_json::json!({}),
            addr,
        )
        .await?;
        return Err(ApiError::Unauthorized);
    };
    let (token, cookie) = start_session(&state, &user, addr, None).await?;
    let body = LoginResponse {
        user: AuthUser {
            id: user.id,
            username: user.username,
            role: user.role,
            ward_ids: user.ward_ids,
        },
        csrf_token: csrf_for(&token),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

/// A new dashboard session for `user`, signed in with a password or
/// through the provider (`sso`: its sign-in, which it may end later): its
/// token, on the audit trail, and the cookie that carries it.
pub(crate) async fn start_session(
    state: &AppState,
    user: &vigil_store::UserRecord,
    addr: Option<std::net::SocketAddr>,
    sso: Option<vigil_store::SsoLink>,
) -> Result<(String, String), ApiError> {
    let via = if sso.is_some() { "sso" } else { "password" };
    let token = crate::admin::issue_linked_token(
        state.store.as_ref(),
        user.id,
        TokenKind::Session,
        (Utc::now(), Some(chrono::Duration::hours(SESSION_TTL_HOURS))),
        sso,
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(user_id = user.id, via, "login");
    let detail = if via == "password" {
        serde_json::json!({})
    } else {
        serde_json::json!({ "via": via })
    };
    crate::audit::record_raw(
        state,
        Some(user.id),
        &user.username,
        "login",
        None,
        detail,
        addr,
    )
    .await?;
    // `Secure` under HTTPS: the browser then never sends the session over
    // plain HTTP. Without TLS it would make the cookie unusable, so it is
    // left off (docs/deployment.md: production runs with TLS).
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL_HOURS * 3600,
        if state.tls { "; Secure" } else { "" }
    );
    Ok((token, cookie))
}

/// `POST /api/v1/logout`: revoke the presented session.
///
/// Whatever credential is presented is revoked: a bearer token too, not
/// only a cookie session.
#[utoipa::path(
    post, path = "/api/v1/logout", tag = "auth",
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Signed out (also with no or an unknown credential); clears the cookie", body = LoggedOut,
         headers(("set-cookie" = String, description = "vigil_session=; Max-Age=0"))),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(t) = presented_token(&headers) {
        state
            .store
            .token_revoke(&hash_secret(&t), Utc::now())
            .await?;
    }
    // Signed in through the provider (its cookie, sent to this route
    // alone): on to its sign-out, when configured.
    let sso_session = cookie(&headers, crate::sso::SIGN_OUT_COOKIE);
    let provider_sign_out = match (&state.sso, &sso_session) {
        (Some(sso), Some(hint)) => {
            sso.sign_out_url(Some(hint.as_str()).filter(|h| *h != "-"))
                .await
        }
        _ => None,
    };
    let mut resp = Json(LoggedOut {
        ok: true,
        provider_sign_out,
    })
    .into_response();
    let h = resp.headers_mut();
    h.insert(
        SET_COOKIE,
        HeaderValue::from_static("vigil_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    if sso_session.is_some()
        && let Ok(v) = HeaderValue::from_str(&crate::sso::sign_out_cookie_cleared(state.tls))
    {
        h.append(SET_COOKIE, v);
    }
    Ok(resp)
}

/// `GET /api/v1/me`: who the dashboard is signed in as, and (for a cookie
/// session) the CSRF token its page must send with writes.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "auth",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The current user", body = Me),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    )
)]
pub async fn me(
    State(state): State<AppState>,
    Caller(user, info): Caller,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    let csrf = if info.via_cookie {
        session_cookie(&headers).map(|t| csrf_for(&t))
    } else {
        None
    };
    let wards = crate::admin::wards_of(state.store.as_ref(), &user.ward_ids).await?;
    Ok(Json(Me {
        id: user.id,
        username: user.username,
        role: user.role,
        ward_ids: user.ward_ids,
        wards,
        csrf_token: csrf,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    /// The password the account has now
    current_password: String,
    /// At least 8 characters, not the current one
    new_password: String,
}

/// `POST /api/v1/me/password`.
#[derive(Serialize, ToSchema)]
pub(crate) struct PasswordChanged {
    /// The account's sessions ended, this one among them: it signs in again
    /// with the new password.
    sessions_revoked: u64,
}

/// `POST /api/v1/me/password`: a user changes their own password (the one
/// an admin gave them, or one they think is known). The current password
/// is asked for, and a wrong one counts as a failed sign-in of the account
/// (the same throttle, on the audit trail), so a session left open cannot
/// be used to guess it. Every session of the account ends, this one too,
/// as `vigil admin user password` does: whoever knew the old one is signed
/// out everywhere. API tokens are credentials of their own and stay.
#[utoipa::path(
    post, path = "/api/v1/me/password", tag = "auth",
    request_body = PasswordChange,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Changed; every session of the account has ended, this one too (the cookie is cleared)", body = PasswordChanged,
         headers(("set-cookie" = String, description = "vigil_session=; Max-Age=0"))),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "A cookie session without the CSRF header, or password sign-in is off (`sso.password_login = false`)", body = ErrorBody),
        (status = 422, description = "The current password is wrong, or the new one is too short or the same", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins of this account or from this address", body = ErrorBody),
    )
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<PasswordChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    if !state.password_login {
        return Err(ApiError::PasswordOff);
    }
    let Json(req) = body.map_err(bad_json)?;
    let username = caller.0.username.clone();
    let addr = caller.1.addr;
    let ip = addr.map(|a| a.ip().to_string()).unwrap_or_default();
    // As a sign-in: one at a time per account, throttled by the same count.
    let _turn = sign_in_turn(&state, &username, &ip).await?;
    let hash = state
        .store
        .user_by_username(&username)
        .await?
        .map(|u| u.password_hash)
        .unwrap_or_else(|| DUMMY_HASH.to_string());
    if !verify_password(&req.current_password, &hash) {
        tracing::info!(user_id = caller.0.id, "password change refused");
        crate::audit::record_raw(
            &state,
            Some(caller.0.id),
            &username,
            "login.failed",
            None,
            serde_json::json!({"via": "password change"}),
            addr,
        )
        .await?;
        return Err(ApiError::Invalid(
            "current_password: not this account's password".into(),
        ));
    }
    if req.new_password == req.current_password {
        return Err(ApiError::Invalid(
            "new_password: the same as the current one".into(),
        ));
    }
    let ended = crate::admin::set_password(
        state.store.as_ref(),
        &username,
        &req.new_password,
        Utc::now(),
    )
    .await
    .map_err(|e| match e {
        // The admin's rule, named for this body's field.
        crate::admin::AdminError::Invalid(m) => {
            ApiError::Invalid(match m.strip_prefix("password: ") {
                Some(rule) => format!("new_password: {rule}"),
                None => m,
            })
        }
        other => crate::patients::admin_error(other),
    })?;
    tracing::info!(
        user_id = caller.0.id,
        sessions = ended.revoked,
        "password changed"
    );
    crate::audit::record(
        &state,
        &caller,
        "user.password.change",
        None,
        serde_json::json!({"sessions_revoked": ended.revoked}),
    )
    .await?;
    let mut resp = Json(PasswordChanged {
        sessions_revoked: ended.revoked,
    })
    .into_response();
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("vigil_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

/// An argon2id hash of a random password nobody knows (for timing parity).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Wk0bq9Dk4y9C3WCz6ldIHeqIhKa8n3V2OzU2B9C3kFM";
