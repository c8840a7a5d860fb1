//! `/api/v1/devices`: provisioning (admin). The MQTT password appears in
//! this one response and is never retrievable again.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use vigil_store::Role;

use crate::admin::{ProvisionedDevice, provision};
use crate::auth::Caller;
use crate::error::{ApiError, bad_json};
use crate::patients::admin_error;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/devices", post(create))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionRequest {
    kind: String,
    #[serde(default)]
    patient_id: Option<i64>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<ProvisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<ProvisionedDevice>), ApiError> {
    caller.require(Role::Admin)?;
    let Json(req) = body.map_err(bad_json)?;
    if let Some(p) = req.patient_id {
        match state.store.patient_get(p).await? {
            Some(pt) if caller.sees_ward(pt.ward_id) => {}
            _ => return Err(ApiError::Invalid(format!("patient_id: no patient {p} among your wards"))),
        }
    }
    let d = provision(state.store.as_ref(), &req.kind, req.patient_id, Utc::now()).await.map_err(admin_error)?;
    tracing::info!(device = %d.device_id, by = caller.0.id, "device provisioned");
    crate::audit::record(&state, &caller, "device.provision", req.patient_id, serde_json::json!({"device": d.device_id, "kind": req.kind}))
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(d)))
}
