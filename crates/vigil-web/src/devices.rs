//! `/api/v1/devices`: an admin's kit (admin only): provisioning (the MQTT
//! password appears in that one response and is never retrievable again),
//! the inventory, giving a free device to a patient, taking one back, and
//! revoking one that is lost.

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use vigil_store::{DeviceListed, DeviceQuery, Role};

use crate::AppState;
use crate::admin::{ProvisionedDevice, provision};
use crate::auth::Caller;
use crate::error::{ApiError, bad_json};
use crate::openapi::ErrorBody;
use crate::patients::admin_error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/devices", post(create).get(list))
        .route("/api/v1/devices/{id}/assign", post(assign))
        .route("/api/v1/devices/{id}/unassign", post(unassign))
        .route("/api/v1/devices/{id}/revoke", post(revoke))
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this ward's patients' devices (one of yours) beside the free ones
    ward: Option<i64>,
    /// `true`: only the devices that are no one's now
    #[serde(default)]
    unassigned: bool,
}

/// `GET /api/v1/devices` (admin): the kit an admin looks after, by id: the
/// devices that are no one's now (on the shelf, to be given to a patient)
/// and those of the patients on your wards, each with its patient and
/// ward, when it last sent, its last status and whether it is revoked.
#[utoipa::path(
    get, path = "/api/v1/devices", tag = "devices", params(ListQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The devices, by id", body = Vec<DeviceListed>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeviceListed>>, ApiError> {
    caller.require(Role::Admin)?;
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let wards = caller.wards(q.ward)?;
    let mut devices = state.store.devices_list(DeviceQuery::Unassigned).await?;
    if !q.unassigned {
        for w in &wards {
            devices.extend(state.store.devices_list(DeviceQuery::Ward(*w)).await?);
        }
        devices.sort_by(|a, b| a.id.cmp(&b.id));
    }
    let patients: std::collections::BTreeSet<i64> =
        devices.iter().filter_map(|d| d.patient_id).collect();
    crate::audit::record(
        &state,
        &caller,
        "devices.list",
        None,
        serde_json::json!({"wards": wards, "unassigned": q.unassigned, "devices": devices.len(), "patients": patients}),
    )
    .await?;
    Ok(Json(devices))
}

/// The device `id` if an admin of `caller`'s wards may act on it: no
/// one's, or their patient's; 404 otherwise, so ids elsewhere cannot be
/// probed.
async fn visible_device(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<DeviceListed, ApiError> {
    crate::text::check("device", id, false).map_err(ApiError::Invalid)?;
    match state.store.devices_list(DeviceQuery::One(id)).await?.pop() {
        Some(d) if d.patient_id.is_none() || d.ward_id.is_some_and(|w| caller.sees_ward(w)) => {
            Ok(d)
        }
        _ => Err(ApiError::NotFound("device")),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnassignRequest {
    /// The patient (on your wards) the device is taken back from: it must
    /// be theirs now
    patient_id: i64,
}

/// A device taken back from its patient.
#[derive(serde::Serialize, ToSchema)]
pub(crate) struct Unassigned {
    device_id: String,
    /// Whose it was
    patient_id: i64,
    unassigned_at: chrono::DateTime<Utc>,
}

/// `POST /api/v1/devices/{id}/unassign` (admin): take a device back from
/// its patient during their stay (a kit swapped for a faulty one, or a
/// patch no longer needed). It becomes no one's: free to be given to
/// someone else, what it sends from now on is refused (`no_patient`) and
/// kept apart, and within 5 s the running daemon stops watching it for the
/// patient (its live device alerts resolved, outcome `device-unassigned`).
/// The readings it sent stay the patient's. The patient is named so that a
/// device moved meanwhile is not taken from someone else.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/unassign", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body = UnassignRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The device is no one's now", body = Unassigned),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, or a cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such device on your wards", body = ErrorBody),
        (status = 409, description = "The device is not that patient's now", body = ErrorBody),
        (status = 422, description = "Bad body, or no patient with that id on your wards", body = ErrorBody),
    )
)]
pub(crate) async fn unassign(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(device_id): axum::extract::Path<String>,
    body: Result<Json<UnassignRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Unassigned>, ApiError> {
    caller.require(Role::Admin)?;
    let Json(req) = body.map_err(bad_json)?;
    let p = req.patient_id;
    match state.store.patient_get(p).await? {
        Some(pt) if caller.sees_ward(pt.ward_id) => {}
        _ => {
            return Err(ApiError::Invalid(format!(
                "patient_id: no patient {p} among your wards"
            )));
        }
    }
    visible_device(&state, &caller, &device_id).await?;
    match state.store.device_unassign(&device_id, p).await {
        Ok(()) => {}
        Err(vigil_store::StoreError::Conflict(why)) => return Err(ApiError::Conflict(why)),
        Err(vigil_store::StoreError::NotFound(_)) => return Err(ApiError::NotFound("device")),
        Err(e) => return Err(e.into()),
    }
    let at = Utc::now();
    tracing::info!(device = %device_id, patient_id = p, by = caller.0.id, "device unassigned");
    crate::audit::record(
        &state,
        &caller,
        "device.unassign",
        Some(p),
        serde_json::json!({"device": device_id}),
    )
    .await?;
    Ok(Json(Unassigned {
        device_id,
        patient_id: p,
        unassigned_at: at,
    }))
}

/// `POST /api/v1/devices/{id}/revoke`'s body, which may be left out.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// The patient whose device it is, as the caller saw it: if it is no
    /// longer theirs (moved since, or taken back), 409 and nothing is
    /// revoked. Left out: the device is revoked whoever's it is.
    #[serde(default)]
    patient_id: Option<i64>,
}

/// A device revoked.
#[derive(serde::Serialize, ToSchema)]
pub(crate) struct Revoked {
    device_id: String,
    revoked_at: chrono::DateTime<Utc>,
}

/// `POST /api/v1/devices/{id}/revoke` (admin): a device lost or stolen can
/// never connect again (as `vigil admin device revoke`): the embedded
/// broker drops its session within a second and refuses its next CONNECT,
/// and within 5 s the running daemon stops watching it for its patient
/// (its live device alerts resolved, outcome `device-unassigned`). It
/// stays on its patient's list, shown revoked. There is no undoing it:
/// a device found again is provisioned anew. A page names the patient it
/// showed the device on, so a device moved to someone else since is not
/// revoked from under them.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/revoke", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body(content = Option<RevokeRequest>, description = "Optional: the patient the device is expected on"),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, or a cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such device on your wards", body = ErrorBody),
        (status = 409, description = "Already revoked, or not the named patient's device now", body = ErrorBody),
        (status = 422, description = "Bad device id or body", body = ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(device_id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Revoked>, ApiError> {
    caller.require(Role::Admin)?;
    // The body is optional (the route took none at first): an empty one,
    // whatever its content type, asks nothing.
    let req: RevokeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::Invalid(format!("body: {e}")))?
    };
    let d = visible_device(&state, &caller, &device_id).await?;
    if let Some(p) = req.patient_id
        && d.patient_id != Some(p)
    {
        return Err(ApiError::Conflict(format!(
            "device: {device_id} is not patient {p}'s now"
        )));
    }
    if let Some(at) = d.revoked_at {
        return Err(ApiError::Conflict(format!(
            "device: {device_id} was revoked at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    // Only while it is still whose it was when looked up: moved to another
    // patient meanwhile (another admin, `vigil admin`), it is left working.
    let at = match state
        .store
        .device_revoke_held(&device_id, d.patient_id, Utc::now())
        .await
    {
        Ok(at) => at,
        // Revoked by someone else since the look-up.
        Err(vigil_store::StoreError::NotFound(_)) => {
            return Err(ApiError::Conflict(format!(
                "device: {device_id} is revoked"
            )));
        }
        // Given to, or taken back from, a patient since the look-up (where
        // it is now may be another ward's business).
        Err(vigil_store::StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict(format!(
                "device: {device_id} has moved since it was looked up: look again"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(device = %device_id, by = caller.0.id, "device revoked");
    crate::audit::record(
        &state,
        &caller,
        "device.revoke",
        d.patient_id,
        serde_json::json!({"device": device_id}),
    )
    .await?;
    Ok(Json(Revoked {
        device_id,
        revoked_at: at,
    }))
}
