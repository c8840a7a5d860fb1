//! `POST /api/v1/patients/{id}/observations`: a clinician enters readings
//! no device sent: breaths counted on a video call (no home device
//! measures respiratory rate), a blood pressure or temperature the patient
//! reads out over the phone while a device is broken. They are validated
//! exactly as a device's are, then stored by the ingest as a message of
//! their own (source `manual:{username}`), in its turn between device
//! batches, and scored, fed to the pathway rules and alerted on as a
//! device's readings are (hazard DB-17). The request is answered once the
//! readings are committed.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_store::{EnteredReading, NewObservation, ObsValue};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Id, bad_json};
use crate::openapi::ErrorBody;

/// The most readings one entry holds: a full set of vital signs and more.
const MAX_READINGS: usize = 16;

/// How long a request waits for its readings to be committed.
const CONFIRM_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// How far ahead of the server's clock a measurement time may be: the
/// browser's clock may run ahead, as a device's may (the ingest's limit).
const MAX_AHEAD: Duration = Duration::minutes(5);

/// One reading as a device sends it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnteredObservation {
    /// A code of docs/mqtt.md's table (`resp_rate`, `spo2`, `pulse`, `systolic`, …)
    code: String,
    /// A number, or for `acvpu` a letter
    value: ObsValue,
    /// The code's unit (`/min`, `%`, `mm[Hg]`, `Cel`, …)
    unit: Option<String>,
}

/// Readings to enter: taken together, at `measured_at`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnteredRequest {
    /// When they were measured (RFC 3339); default now. Within the
    /// patient's stay, and not more than 5 minutes ahead of the server.
    measured_at: Option<DateTime<Utc>>,
    /// 1 to 16 readings, each code at most once.
    obs: Vec<EnteredObservation>,
}

/// What was stored.
#[derive(Serialize, ToSchema)]
pub(crate) struct Entered {
    patient_id: i64,
    measured_at: DateTime<Utc>,
    /// `manual:{username}`: the readings' `device_id` wherever they appear.
    source: String,
    /// The stored observations' ids, in the request's order.
    observation_ids: Vec<i64>,
}

/// `POST /api/v1/patients/{id}/observations`: enter readings a clinician
/// took or was told, stored and scored as a device's are.
#[utoipa::path(
    post, path = "/api/v1/patients/{id}/observations", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    request_body = EnteredRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Stored; scored and alerted on as a device's readings are", body = Entered),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
        (status = 409, description = "The patient is discharged", body = ErrorBody),
        (status = 422, description = "A reading a device would have had refused (unknown code, wrong unit, out of range), a code twice, none or too many, or a time outside the stay", body = ErrorBody),
    )
)]
pub(crate) async fn enter(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: Result<Json<EnteredRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Entered>), ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let patient = crate::patients::visible_patient(&state, &caller, id).await?;
    let obs = readings(&req.obs)?;
    let now = Utc::now();
    // To the millisecond, as both stores keep it (as the ingest does).
    let measured_at = req.measured_at.unwrap_or(now).trunc_subsecs(3);
    let Some(episode) = patient.episode.filter(|e| e.discharged_at.is_none()) else {
        return Err(ApiError::Conflict(
            "the patient is discharged: readings are entered during a stay".into(),
        ));
    };
    if measured_at > now + MAX_AHEAD {
        return Err(ApiError::Invalid(
            "measured_at: more than 5 minutes ahead of the server's clock".into(),
        ));
    }
    if measured_at < episode.admitted_at {
        return Err(ApiError::Invalid(
            "measured_at: before the patient's admission".into(),
        ));
    }
    let source = vigil_clinical::entered_source(&caller.0.username);
    let (done, stored) = tokio::sync::oneshot::channel();
    let codes: Vec<String> = obs.iter().map(|o| o.code.clone()).collect();
    let reading = EnteredReading {
        patient_id: id,
        ward_id: patient.ward_id,
        source: source.clone(),
        measured_at,
        obs,
        done,
    };
    // The intake takes entries between device batches; behind a long
    // backlog the clinician is told, rather than left waiting, that the
    // readings are not confirmed. The confirmation goes on without them,
    // so readings stored late are audited all the same.
    let confirming = tokio::spawn(confirm(
        state.clone(),
        Caller(caller.0.clone(), caller.1.clone()),
        reading,
        stored,
        codes,
    ));
    let ids = match tokio::time::timeout(CONFIRM_WITHIN, confirming).await {
        Ok(Ok(Ok(ids))) => ids,
        Ok(Ok(Err(e))) => return Err(e),
        // Not yet confirmed, or the confirmation's task ended abnormally.
        Ok(Err(_)) | Err(_) => {
            return Err(ApiError::Internal(
                "entered readings not confirmed stored in time".into(),
            ));
        }
    };
    tracing::info!(
        patient_id = id,
        by = caller.0.id,
        readings = ids.len(),
        "readings entered"
    );
    Ok((
        axum::http::StatusCode::CREATED,
        Json(Entered {
            patient_id: id,
            measured_at,
            source,
            observation_ids: ids,
        }),
    ))
}

/// Hand the readings to the ingest and wait for their commit; then count
/// and audit them. An error if the store did not confirm them (the commit
/// may have happened all the same: the ingest takes up whatever it
/// stored) or the ingest is stopping.
async fn confirm(
    state: AppState,
    caller: Caller,
    reading: EnteredReading,
    stored: tokio::sync::oneshot::Receiver<Option<Vec<i64>>>,
    codes: Vec<String>,
) -> Result<Vec<i64>, ApiError> {
    let (id, measured_at) = (reading.patient_id, reading.measured_at);
    let ids = match state.entered.send(reading).await {
        Ok(()) => stored.await.ok().flatten(),
        Err(_) => None,
    };
    let outcome = if ids.is_some() { "stored" } else { "failed" };
    state.metrics.entered.with_label_values(&[outcome]).inc();
    // The codes and ids, never the values (clinical content, kept in their
    // table). An entry not confirmed is on the trail too: it may be stored.
    crate::audit::record(
        &state,
        &caller,
        "patient.observations.enter",
        Some(id),
        serde_json::json!({"codes": codes, "observations": ids, "confirmed": ids.is_some(), "measured_at": measured_at}),
    )
    .await?;
    ids.ok_or_else(|| ApiError::Internal("entered readings not confirmed stored".into()))
}

/// The readings validated as a device's are, or a 422 naming the first
/// that would have been refused and why.
fn readings(obs: &[EnteredObservation]) -> Result<Vec<NewObservation>, ApiError> {
    if obs.is_empty() || obs.len() > MAX_READINGS {
        return Err(ApiError::Invalid(format!(
            "obs: 1 to {MAX_READINGS} readings"
        )));
    }
    let mut seen = BTreeSet::new();
    obs.iter()
        .map(|o| {
            crate::text::check("code", &o.code, false).map_err(ApiError::Invalid)?;
            if let Some(unit) = &o.unit {
                crate::text::check("unit", unit, false).map_err(ApiError::Invalid)?;
            }
            let value = match &o.value {
                ObsValue::Number(n) => vigil_clinical::Value::Number(*n),
                ObsValue::Text(t) => vigil_clinical::Value::Text(t.clone()),
            };
            let v = vigil_clinical::validate(&o.code, o.unit.as_deref(), &value).map_err(|r| {
                ApiError::Invalid(format!("obs {:?}: {}", short(&o.code), r.as_str()))
            })?;
            let code = v.code.as_str().to_string();
            if !seen.insert(code.clone()) {
                return Err(ApiError::Invalid(format!("obs {code:?}: given twice")));
            }
            Ok(NewObservation {
                code,
                value: match v.value {
                    vigil_clinical::Value::Number(n) => ObsValue::Number(n),
                    vigil_clinical::Value::Text(t) => ObsValue::Text(t),
                },
                unit: v.code.unit().map(str::to_string),
            })
        })
        .collect()
}

/// An unknown code echoed in an error, cut to 32 characters (as the ingest does).
fn short(code: &str) -> String {
    code.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(code: &str, value: serde_json::Value, unit: Option<&str>) -> EnteredObservation {
        EnteredObservation {
            code: code.into(),
            value: serde_json::from_value(value).expect("a number or a string"),
            unit: unit.map(Into::into),
        }
    }

    fn refused(o: Vec<EnteredObservation>) -> String {
        match readings(&o) {
            Err(ApiError::Invalid(m)) => m,
            other => panic!("expected a 422, got {:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn readings_are_validated_as_a_devices_are() {
        let ok = readings(&[
            obs("resp_rate", serde_json::json!(22), Some("/min")),
            obs("acvpu", serde_json::json!("A"), None),
        ])
        .expect("valid");
        assert_eq!(ok[0].code, "resp_rate");
        assert_eq!(ok[0].value, ObsValue::Number(22.0));
        assert_eq!(ok[1].value, ObsValue::Text("A".into()));
        assert_eq!(refused(vec![]), "obs: 1 to 16 readings");
        assert_eq!(
            refused(vec![obs("spo2", serde_json::json!(9), Some("%"))]),
            "obs \"spo2\": range"
        );
        assert_eq!(
            refused(vec![obs("spo2", serde_json::json!(96), Some("mm[Hg]"))]),
            "obs \"spo2\": unit"
        );
        assert_eq!(
            refused(vec![obs("mood", serde_json::json!(3), None)]),
            "obs \"mood\": unknown_code"
        );
        assert_eq!(
            refused(vec![obs("pulse", serde_json::json!("80"), Some("/min"))]),
            "obs \"pulse\": value_type"
        );
        assert_eq!(
            refused(vec![
                obs("pulse", serde_json::json!(80), Some("/min")),
                obs("pulse", serde_json::json!(82), Some("/min")),
            ]),
            "obs \"pulse\": given twice"
        );
    }
}
