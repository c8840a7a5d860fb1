//! The audit trail: every read of patient data and every action, with who,
//! what, when and from where. Recording fails closed: if the audit row
//! cannot be written, the request fails rather than go unrecorded.
//! `GET /api/v1/audit` is for admins.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use vigil_store::{AuditEntry, AuditQuery, Role};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(query))
}

/// Record an action by an authenticated caller.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    action: &str,
    patient_id: Option<i64>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    record_raw(
        state,
        Some(caller.0.id),
        &caller.0.username,
        action,
        patient_id,
        detail,
        caller.1.addr,
    )
    .await
}

/// Record an action by whoever `username` claims to be (e.g. a failed login).
pub async fn record_raw(
    state: &AppState,
    user_id: Option<i64>,
    username: &str,
    action: &str,
    patient_id: Option<i64>,
    detail: serde_json::Value,
    addr: Option<std::net::SocketAddr>,
) -> Result<(), ApiError> {
    let e = AuditEntry {
        at: Utc::now(),
        user_id,
        username: username.chars().take(64).collect(),
        action: action.to_string(),
        patient_id,
        detail,
        addr: addr.map(|a| a.ip().to_string()),
    };
    state
        .store
        .audit_append(e)
        .await
        .map_err(|e| ApiError::Internal(format!("audit write failed: {e}")))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Q {
    /// Only entries about this patient
    patient: Option<i64>,
    /// Only this user's entries
    user: Option<i64>,
    /// RFC 3339
    from: Option<DateTime<Utc>>,
    /// RFC 3339
    to: Option<DateTime<Utc>>,
    /// At most this many rows (default 1000; clamped to 1..=10000)
    limit: Option<i64>,
}

/// `GET /api/v1/audit` (admin): the audit trail, newest first.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit", params(Q),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Audit entries, newest first", body = Vec<AuditEntry>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "`patient` is not one of your wards' patients", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn query(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<Q>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require(Role::Admin)?;
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    // Admins are admins of their wards: a patient of another ward is not
    // found, and the trail holds only what concerns their wards.
    if let Some(patient) = q.patient {
        crate::patients::visible_patient(&state, &caller, patient).await?;
    }
    let rows = state
        .store
        .audit_query(AuditQuery {
            patient_id: q.patient,
            user_id: q.user,
            wards: Some(caller.0.ward_ids.clone()),
            from: q.from,
            to: q.to,
            limit: Some(limit),
        })
        .await?;
    record(
        &state,
        &caller,
        "audit.read",
        q.patient,
        serde_json::json!({"rows": rows.len()}),
    )
    .await?;
    Ok(Json(rows))
}
