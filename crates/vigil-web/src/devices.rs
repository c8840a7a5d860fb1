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
    Router::new()
        .route("/api/v1/devices", post(create))
        .route("/api/v1/devices/{id}/assign", post(assign))
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignRequest {
    /// The patient (on your wards, admitted) to give the device to
    patient_id: i64,
}

/// A device and the patient it is now assigned to.
#[derive(serde::Serialize, ToSchema)]
pub(crate) struct Assigned {
    device_id: String,
    patient_id: i64,
}

/// `POST /api/v1/devices/{id}/assign` (admin): give a device that is no
/// one's (a kit returned at a discharge, or provisioned without a patient)
/// to an admitted patient. A device in use stays with its patient: moving
/// one is `vigil admin device assign`'s.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/assign", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body = AssignRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Assigned", body = Assigned),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, or a cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 409, description = "The device is revoked, or assigned to a patient", body = ErrorBody),
        (status = 422, description = "Bad body, or no admitted patient with that id on your wards", body = ErrorBody),
    )
)]
pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(device_id): axum::extract::Path<String>,
    body: Result<Json<AssignRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Assigned>, ApiError> {
    caller.require(Role::Admin)?;
    let Json(req) = body.map_err(bad_json)?;
    crate::text::check("device", &device_id, false).map_err(ApiError::Invalid)?;
    let p = req.patient_id;
    let not_admitted = || {
        ApiError::Invalid(format!(
            "patient_id: no admitted patient {p} among your wards"
        ))
    };
    match state.store.patient_get(p).await? {
        Some(pt)
            if caller.sees_ward(pt.ward_id)
                && pt
                    .episode
                    .as_ref()
                    .is_some_and(|e| e.discharged_at.is_none()) => {}
        _ => return Err(not_admitted()),
    }
    match state.store.device_claim(&device_id, p).await {
        Ok(()) => {}
        Err(vigil_store::StoreError::Conflict(why)) => return Err(ApiError::Conflict(why)),
        // Discharged since the check above, or no such device.
        Err(vigil_store::StoreError::NotFound(what)) if what.starts_with("open episode") => {
            return Err(not_admitted());
        }
        Err(vigil_store::StoreError::NotFound(_)) => return Err(ApiError::NotFound("device")),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(device = %device_id, patient_id = p, by = caller.0.id, "device assigned");
    crate::audit::record(
        &state,
        &caller,
        "device.assign",
        Some(p),
        serde_json::json!({"device": device_id}),
    )
    .await?;
    Ok(Json(Assigned {
        device_id,
        patient_id: p,
    }))
}
