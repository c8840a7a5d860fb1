//! `/api/v1/patients/{id}/follow-ups`: a clinician asks for a follow-up on
//! the stay ("call back in an hour, after the inhaler"); when it is due,
//! Vigil puts a `follow-up` alert in the ward's queue
//! (`vigil_ingest::pipeline::fire_follow_ups`), so a call promised is not
//! forgotten when the nurse who promised it is busy, or has gone home
//! (docs/alerts.md "Follow-ups"; hazard AL-34).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use vigil_store::{FollowUp, WardFollowUp};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Id, Ids, bad_json};
use crate::openapi::ErrorBody;
use crate::patients::{shift_window, visible_patient};

/// The soonest and latest a follow-up may be asked for, in minutes from now.
pub const FOLLOW_UP_MINUTES: std::ops::RangeInclusive<i64> = 5..=2880;
/// The longest reason, in characters: one line of what the call is for.
pub const FOLLOW_UP_REASON_MAX: usize = 200;

/// What a clinician asks for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewFollowUp {
    /// Due this many minutes from now (5 to 2880, two days).
    #[schema(minimum = 5, maximum = 2880)]
    in_minutes: i64,
    /// What for, one line of at most 200 characters (trimmed), not blank.
    #[schema(min_length = 1, max_length = 200)]
    reason: String,
}

/// `POST /api/v1/patients/{id}/follow-ups`: ask for a follow-up on the
/// patient's open stay (audited as `follow_up.add`, without the reason).
#[utoipa::path(
    post, path = "/api/v1/patients/{id}/follow-ups", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    request_body = NewFollowUp,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Asked for", body = FollowUp),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such patient on your wards, or no open stay", body = ErrorBody),
        (status = 422, description = "Bad body: each refusal names its field", body = ErrorBody),
    )
)]
pub(crate) async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: Result<Json<NewFollowUp>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<FollowUp>), ApiError> {
    let Json(n) = body.map_err(bad_json)?;
    visible_patient(&state, &caller, id).await?;
    if !FOLLOW_UP_MINUTES.contains(&n.in_minutes) {
        return Err(ApiError::Invalid(format!(
            "in_minutes: {} to {}",
            FOLLOW_UP_MINUTES.start(),
            FOLLOW_UP_MINUTES.end()
        )));
    }
    let reason = n.reason.trim();
    crate::text::check("reason", reason, false).map_err(ApiError::Invalid)?;
    if reason.is_empty() {
        return Err(ApiError::Invalid(
            "reason: empty: say what the follow-up is for".into(),
        ));
    }
    if reason.chars().count() > FOLLOW_UP_REASON_MAX {
        return Err(ApiError::Invalid(format!(
            "reason: longer than {FOLLOW_UP_REASON_MAX} characters"
        )));
    }
    let now = Utc::now();
    let f = state
        .store
        .follow_up_add(
            id,
            now + Duration::minutes(n.in_minutes),
            reason,
            &caller.0.username,
            now,
        )
        .await
        .map_err(|e| match e {
            vigil_store::StoreError::NotFound(_) => ApiError::NotFound("open episode"),
            other => other.into(),
        })?;
    crate::audit::record(
        &state,
        &caller,
        "follow_up.add",
        Some(id),
        serde_json::json!({"follow_up": f.id, "due_at": f.due_at}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// `GET /api/v1/patients/{id}/follow-ups`: the open stay's follow-ups not
/// yet due nor taken back, the earliest first.
#[utoipa::path(
    get, path = "/api/v1/patients/{id}/follow-ups", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Pending follow-ups, the earliest due first", body = Vec<FollowUp>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Vec<FollowUp>>, ApiError> {
    visible_patient(&state, &caller, id).await?;
    Ok(Json(state.store.follow_ups_pending(id).await?))
}

/// `POST /api/v1/patients/{id}/follow-ups/{follow_up}/cancel`: take a
/// pending follow-up back (audited as `follow_up.cancel`).
#[utoipa::path(
    post, path = "/api/v1/patients/{id}/follow-ups/{follow_up}/cancel", tag = "patients",
    params(("id" = i64, Path, description = "Patient id"), ("follow_up" = i64, Path, description = "Follow-up id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Taken back", body = FollowUp),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such patient on your wards, or no such follow-up of theirs", body = ErrorBody),
        (status = 409, description = "In the alert queue already, or taken back", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Ids(id, follow_up): Ids,
) -> Result<Json<FollowUp>, ApiError> {
    visible_patient(&state, &caller, id).await?;
    let f = state
        .store
        .follow_up_cancel(id, follow_up, &caller.0.username, Utc::now())
        .await
        .map_err(|e| match e {
            vigil_store::StoreError::NotFound(_) => ApiError::NotFound("follow-up"),
            other => other.into(),
        })?;
    crate::audit::record(
        &state,
        &caller,
        "follow_up.cancel",
        Some(id),
        serde_json::json!({"follow_up": f.id}),
    )
    .await?;
    Ok(Json(f))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UpcomingQuery {
    /// One of your wards (default: all of them); another ward is a 404.
    ward: Option<i64>,
    /// How many hours ahead (default 12, a shift; 1 to 168).
    #[param(minimum = 1, maximum = 168)]
    hours: Option<i64>,
}

/// `GET /api/v1/patients/follow-ups`: the follow-ups asked for on your
/// wards' open stays and due in the next `hours`, the earliest first, each
/// with its patient's name and NHS number: the calls the shift coming on
/// inherits (the handover's; audited as `patients.follow_ups`).
#[utoipa::path(
    get, path = "/api/v1/patients/follow-ups", tag = "patients", params(UpcomingQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Pending follow-ups due in the next `hours`, the earliest first", body = Vec<WardFollowUp>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn upcoming(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<UpcomingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<WardFollowUp>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let wards = caller.wards(q.ward)?;
    // The handover's window (its bounds), ahead of now instead of behind.
    let (hours, _) = shift_window(q.hours)?;
    let until = Utc::now() + Duration::hours(hours);
    let due = state.store.follow_ups_upcoming(&wards, until).await?;
    let patients: Vec<i64> = due.iter().map(|f| f.follow_up.patient_id).collect();
    crate::audit::record(
        &state,
        &caller,
        "patients.follow_ups",
        None,
        serde_json::json!({"wards": wards, "hours": hours, "patients": patients}),
    )
    .await?;
    Ok(Json(due))
}
