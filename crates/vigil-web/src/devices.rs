//! `/api/v1/devices`: provisioning (admin). The MQTT password appears in
//! this one response and is never retrievable again.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use vigil_store::Role;

use crate::AppState;
use crate::admin::{ProvisionedDevice, provision};
use crate::auth::Caller;
use crate::error::{ApiError, bad_json};
use crate::openapi::ErrorBody;
use crate::patients::admin_error;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/devices", post(create))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProvisionRequest {
    /// What the device is
    #[schema(value_type = DeviceKind)]
    kind: String,
    /// Assign it to this patient (on your wards) at once
    #[serde(default)]
    patient_id: Option<i64>,
}

/// The device kinds of [`crate::admin::DEVICE_KINDS`], for the API description.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "kebab-case")]
pub(crate) enum DeviceKind {
    Oximeter,
    BpCuff,
    PeakFlow,
    EcgPatch,
    Hub,
}

/// `POST /api/v1/devices` (admin): provision a device. The MQTT password
/// is in this response only.
#[utoipa::path(
    post, path = "/api/v1/devices", tag = "devices",
    request_body = ProvisionRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Provisioned; the password is shown once", body = ProvisionedDevice),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, or a cookie session without the CSRF header", body = ErrorBody),
        (status = 422, description = "Bad body: unknown kind, or no such patient on your wards", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<ProvisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<ProvisionedDevice>), ApiError> {
    caller.require(Role::Admin)?;
    let Json(req) = body.map_err(bad_json)?;
    if let Some(p) = req.patient_id {
        match state.store.patient_get(p).await? {
            Some(pt) if caller.sees_ward(pt.ward_id) => {}
            _ => {
                return Err(ApiError::Invalid(format!(
                    "patient_id: no patient {p} among your wards"
                )));
            }
        }
    }
    let d = provision(state.store.as_ref(), &req.kind, req.patient_id, Utc::now())
        .await
        .map_err(admin_error)?;
    tracing::info!(device = %d.device_id, by = caller.0.id, "device provisioned");
    crate::audit::record(
        &state,
        &caller,
        "device.provision",
        req.patient_id,
        serde_json::json!({"device": d.device_id, "kind": req.kind}),
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(d)))
}
