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
use serde::Deserialize;
use vigil_store::secrets::hash_secret;
use vigil_store::{AuthUser, Role, TokenKind};

use crate::admin::{issue_token, verify_password};
use crate::error::{ApiError, bad_json};
use crate::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vigil_session";

/// How long a dashboard session lasts.
pub const SESSION_TTL_HOURS: i64 = 12;

/// The authenticated caller, extracted from a cookie or a bearer token.
pub struct Caller(pub AuthUser);

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role == role { Ok(()) } else { Err(ApiError::Forbidden) }
    }
    pub fn sees_ward(&self, ward_id: i64) -> bool {
        self.0.ward_ids.contains(&ward_id)
    }
}

/// The raw token presented with a request, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_string());
        }
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = presented_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let user = state.store.token_user(&hash_secret(&token), Utc::now()).await?.ok_or(ApiError::Unauthorized)?;
        Ok(Caller(user))
    }
}

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /api/v1/login`: check the password, start a session.
pub async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let user = state.store.user_by_username(&req.username).await?;
    // Verify against a dummy hash when the user is unknown, so the answer
    // takes as long either way and does not reveal which usernames exist.
    let hash = user.as_ref().map(|u| u.password_hash.as_str()).unwrap_or(DUMMY_HASH);
    let ok = verify_password(&req.password, hash);
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("login refused");
        return Err(ApiError::Unauthorized);
    };
    let token = issue_token(
        state.store.as_ref(),
        user.id,
        TokenKind::Session,
        Utc::now(),
        Some(chrono::Duration::hours(SESSION_TTL_HOURS)),
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(user_id = user.id, "login");
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL_HOURS * 3600
    );
    let body = serde_json::json!({
        "user": {"id": user.id, "username": user.username, "role": user.role, "ward_ids": user.ward_ids},
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

/// `POST /api/v1/logout`: revoke the presented session.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(t) = presented_token(&headers) {
        state.store.token_revoke(&hash_secret(&t), Utc::now()).await?;
    }
    let mut resp = Json(serde_json::json!({"ok": true})).into_response();
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("vigil_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

/// `GET /api/v1/me`: who the dashboard is signed in as.
pub async fn me(Caller(user): Caller) -> Json<AuthUser> {
    Json(user)
}

/// An argon2id hash of a random password nobody knows (for timing parity).
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Wk0bq9Dk4y9C3WCz6ldIHeqIhKa8n3V2OzU2B9C3kFM";
