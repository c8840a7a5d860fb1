//! `/api/v1/alerts`: the alert queue and its lifecycle. Every action is
//! recorded with who and when (the alert's event trail) and pushed to the
//! ward's dashboards at once.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use vigil_store::{AlertAction, AlertRow, AlertStatus, LiveEvent};

use crate::auth::Caller;
use crate::error::{ApiError, bad_json};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(list))
        .route("/api/v1/alerts/{id}", get(one))
        .route("/api/v1/alerts/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/alerts/{id}/escalate", post(escalate))
        .route("/api/v1/alerts/{id}/resolve", post(resolve))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    ward: Option<i64>,
    patient: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AlertRow>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            AlertStatus::parse(s)
                .ok_or_else(|| ApiError::Invalid("status: one of open, acknowledged, escalated, resolved".into()))?,
        ),
    };
    let wards = match q.ward {
        Some(w) if caller.sees_ward(w) => vec![w],
        Some(_) => return Err(ApiError::NotFound("ward")),
        None => caller.0.ward_ids.clone(),
    };
    let alerts = state.store.alerts_list(&wards, status, q.patient).await?;
    crate::audit::record(&state, &caller, "alerts.list", q.patient, serde_json::json!({"wards": wards, "status": q.status, "count": alerts.len()}))
        .await?;
    Ok(Json(alerts))
}

async fn visible(state: &AppState, caller: &Caller, id: i64) -> Result<AlertRow, ApiError> {
    match state.store.alert_get(id).await? {
        Some(a) if caller.sees_ward(a.ward_id) => Ok(a),
        _ => Err(ApiError::NotFound("alert")),
    }
}

/// One alert with its audit trail.
async fn one(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> Result<Json<serde_json::Value>, ApiError> {
    let alert = visible(&state, &caller, id).await?;
    let events = state.store.alert_events(id).await?;
    crate::audit::record(&state, &caller, "alert.read", Some(alert.patient_id), serde_json::json!({"alert": id})).await?;
    Ok(Json(serde_json::json!({"alert": alert, "events": events})))
}

async fn act(state: AppState, caller: Caller, id: i64, action: AlertAction) -> Result<Json<AlertRow>, ApiError> {
    visible(&state, &caller, id).await?;
    let name = match &action {
        AlertAction::Acknowledge => "acknowledged",
        AlertAction::Escalate => "escalated",
        AlertAction::Resolve { .. } => "resolved",
    };
    let action_copy = action.clone();
    let alert = state.store.alert_act(id, action, &caller.0.username, Utc::now()).await.map_err(|e| match e {
        vigil_store::StoreError::Conflict(m) => ApiError::Conflict(m),
        other => other.into(),
    })?;
    tracing::info!(alert_id = id, by = caller.0.id, action = name, "alert action");
    crate::audit::record(&state, &caller, &format!("alert.{name}"), Some(alert.patient_id), serde_json::json!({"alert": id})).await?;
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
            tracing::warn!(alert_id = id, "rules engine not running; action not forwarded");
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

async fn acknowledge(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> Result<Json<AlertRow>, ApiError> {
    act(state, caller, id, AlertAction::Acknowledge).await
}

async fn escalate(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> Result<Json<AlertRow>, ApiError> {
    act(state, caller, id, AlertAction::Escalate).await
}

/// How a clinician may close an alert (a fixed list, so outcomes can be
/// counted and audited). `data-resumed` is the system's own outcome.
pub const OUTCOMES: [&str; 7] =
    ["advice-given", "treatment-changed", "escalated-999", "admitted", "false-alarm-device", "reviewed-no-action", "other"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    outcome: String,
    #[serde(default)]
    note: String,
}

async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Result<Json<ResolveBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AlertRow>, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    if !OUTCOMES.contains(&b.outcome.as_str()) {
        return Err(ApiError::Invalid(format!("outcome: one of {}", OUTCOMES.join(", "))));
    }
    if b.note.len() > 4000 {
        return Err(ApiError::Invalid("note: at most 4000 characters".into()));
    }
    act(state, caller, id, AlertAction::Resolve { outcome: b.outcome.trim().to_string(), note: b.note }).await
}
