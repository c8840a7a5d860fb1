//! `/api/v1/alerts`: the alert queue and its lifecycle. Every action is
//! recorded with who and when (the alert's event trail) and pushed to the
//! ward's dashboards at once.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_store::{AlertAction, AlertEventRow, AlertRow, AlertStatus, LiveEvent, ResolvedAlert};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Id, bad_json};
use crate::openapi::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(list))
        .route("/api/v1/alerts/resolved", get(resolved))
        .route("/api/v1/alerts/{id}", get(one))
        .route("/api/v1/alerts/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/alerts/{id}/escalate", post(escalate))
        .route("/api/v1/alerts/{id}/resolve", post(resolve))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only alerts in this state
    #[param(value_type = Option<AlertStatus>)]
    status: Option<String>,
    /// One of your wards (default: all of them); another ward is a 404.
    ward: Option<i64>,
    /// Only this patient's alerts
    patient: Option<i64>,
}

/// `GET /api/v1/alerts`: alerts on your wards.
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "alerts", params(ListQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Alerts", body = Vec<AlertRow>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AlertRow>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(AlertStatus::parse(s).ok_or_else(|| {
            ApiError::Invalid("status: one of open, acknowledged, escalated, resolved".into())
        })?),
    };
    let wards = caller.wards(q.ward)?;
    let alerts = state.store.alerts_list(&wards, status, q.patient).await?;
    crate::audit::record(
        &state,
        &caller,
        "alerts.list",
        q.patient,
        serde_json::json!({"wards": wards, "status": q.status, "count": alerts.len()}),
    )
    .await?;
    Ok(Json(alerts))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ResolvedQuery {
    /// One of your wards (default: all of them); another ward is a 404.
    ward: Option<i64>,
    /// How many hours back (default 12, a shift; 1 to 168).
    #[param(minimum = 1, maximum = 168)]
    hours: Option<i64>,
}

/// `GET /api/v1/alerts/resolved`: alerts on your wards resolved in the last
/// `hours`, the latest first, each with its patient's name and NHS number
/// and who resolved it: what the shift before dealt with, and how, for a
/// handover (a discharged patient's alerts too, as `discharged`).
#[utoipa::path(
    get, path = "/api/v1/alerts/resolved", tag = "alerts", params(ResolvedQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Resolved alerts, the latest resolution first", body = Vec<ResolvedAlert>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn resolved(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ResolvedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ResolvedAlert>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let wards = caller.wards(q.ward)?;
    let (hours, since) = crate::patients::shift_window(q.hours)?;
    let rows = state.store.alerts_resolved_since(&wards, since).await?;
    let patients = crate::patients::distinct(rows.iter().map(|r| r.alert.patient_id));
    crate::audit::record(
        &state,
        &caller,
        "alerts.resolved",
        None,
        serde_json::json!({"wards": wards, "hours": hours, "count": rows.len(), "patients": patients}),
    )
    .await?;
    Ok(Json(rows))
}

async fn visible(state: &AppState, caller: &Caller, id: i64) -> Result<AlertRow, ApiError> {
    match state.store.alert_get(id).await? {
        Some(a) if caller.sees_ward(a.ward_id) => Ok(a),
        _ => Err(ApiError::NotFound("alert")),
    }
}

/// An alert and its event trail.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertWithEvents {
    alert: AlertRow,
    events: Vec<AlertEventRow>,
}

/// One alert with its audit trail.
#[utoipa::path(
    get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The alert and its events", body = AlertWithEvents),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such alert on your wards", body = ErrorBody),
    )
)]
pub(crate) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<AlertWithEvents>, ApiError> {
    let alert = visible(&state, &caller, id).await?;
    let events = state.store.alert_events(id).await?;
    crate::audit::record(
        &state,
        &caller,
        "alert.read",
        Some(alert.patient_id),
        serde_json::json!({"alert": id}),
    )
    .await?;
    Ok(Json(AlertWithEvents { alert, events }))
}

async fn act(
    state: AppState,
    caller: Caller,
    id: i64,
    action: AlertAction,
) -> Result<Json<AlertRow>, ApiError> {
    visible(&state, &caller, id).await?;
    let name = match &action {
        AlertAction::Acknowledge => "acknowledged",
        AlertAction::Escalate => "escalated",
        AlertAction::Resolve { .. } => "resolved",
    };
    let action_copy = action.clone();
    let alert = state
        .store
        .alert_act(id, action, &caller.0.username, Utc::now())
        .await
        .map_err(|e| match e {
            vigil_store::StoreError::Conflict(m) => ApiError::Conflict(m),
            other => other.into(),
        })?;
    tracing::info!(
        alert_id = id,
        by = caller.0.id,
        action = name,
        "alert action"
    );
    crate::audit::record(
        &state,
        &caller,
        &format!("alert.{name}"),
        Some(alert.patient_id),
        serde_json::json!({"alert": id}),
    )
    .await?;
    let forwarded = match &action_copy {
        AlertAction::Escalate => None,
        other => Some(other.clone()),
    };
    if let Some(action) = forwarded {
        let ra = vigil_store::RuleAction {
            patient_id: alert.patient_id,
            rule_id: alert.rule_id.clone(),
            action,
            actor: caller.0.username.clone(),
            at: Utc::now(),
        };
        if state.rule_actions.send(ra).await.is_err() {
            tracing::warn!(
                alert_id = id,
                "rules engine not running; action not forwarded"
            );
        }
    }
    let _ = state.events.send(LiveEvent::AlertUpdate {
        ward_id: alert.ward_id,
        alert: alert.clone(),
        action: name.into(),
        actor: caller.0.username.clone(),
    });
    Ok(Json(alert))
}

/// `POST /api/v1/alerts/{id}/acknowledge`
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The alert after the action", body = AlertRow),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such alert on your wards", body = ErrorBody),
        (status = 409, description = "The alert's state forbids it (e.g. already resolved)", body = ErrorBody),
    )
)]
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<AlertRow>, ApiError> {
    act(state, caller, id, AlertAction::Acknowledge).await
}

/// `POST /api/v1/alerts/{id}/escalate`
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/escalate", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The alert after the action", body = AlertRow),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such alert on your wards", body = ErrorBody),
        (status = 409, description = "The alert's state forbids it (e.g. already resolved)", body = ErrorBody),
    )
)]
pub(crate) async fn escalate(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<AlertRow>, ApiError> {
    act(state, caller, id, AlertAction::Escalate).await
}

/// How a clinician may close an alert (a fixed list, so outcomes can be
/// counted and audited). `data-resumed`, `device-unassigned`
/// (`vigil_store::DEVICE_UNASSIGNED`) and `discharged`
/// (`vigil_store::DISCHARGED`) are the system's own outcomes.
pub const OUTCOMES: [&str; 8] = [
    "advice-given",
    "treatment-changed",
    // A clinician of the virtual ward (hospital at home) visited, or is
    // on the way: the response a home ward has that a phone line has not.
    "home-visit",
    "escalated-999",
    "admitted",
    "false-alarm-device",
    "reviewed-no-action",
    "other",
];

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveBody {
    /// How the alert was closed
    #[schema(value_type = Outcome)]
    outcome: String,
    /// Free text, at most 4000 characters
    #[serde(default)]
    #[schema(max_length = 4000)]
    note: String,
}

/// The outcomes of [`OUTCOMES`], for the API description.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "kebab-case")]
pub(crate) enum Outcome {
    AdviceGiven,
    TreatmentChanged,
    HomeVisit,
    #[schema(rename = "escalated-999")]
    Escalated999,
    Admitted,
    FalseAlarmDevice,
    ReviewedNoAction,
    Other,
}

/// `POST /api/v1/alerts/{id}/resolve`
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body = ResolveBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The alert after the action", body = AlertRow),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such alert on your wards", body = ErrorBody),
        (status = 409, description = "Already resolved", body = ErrorBody),
        (status = 422, description = "Bad body: outcome not in the list, note too long", body = ErrorBody),
    )
)]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: Result<Json<ResolveBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AlertRow>, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    if !OUTCOMES.contains(&b.outcome.as_str()) {
        return Err(ApiError::Invalid(format!(
            "outcome: one of {}",
            OUTCOMES.join(", ")
        )));
    }
    crate::text::check("note", &b.note, true).map_err(ApiError::Invalid)?;
    if b.note.chars().count() > 4000 {
        return Err(ApiError::Invalid("note: at most 4000 characters".into()));
    }
    act(
        state,
        caller,
        id,
        AlertAction::Resolve {
            outcome: b.outcome.trim().to_string(),
            note: b.note,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    /// The API description lists exactly the outcomes the API takes, in
    /// the same order (a new one, such as `home-visit`, added to both).
    #[test]
    fn the_documented_outcomes_are_the_ones_taken() {
        let schema = serde_json::to_value(Outcome::schema()).expect("schema as JSON");
        assert_eq!(schema["enum"], serde_json::json!(OUTCOMES), "{schema}");
    }
}
