//! Alerts as `Flag`s: a live alert (open, acknowledged, escalated) is an
//! `active` Flag, a resolved one `inactive`. `Flag?patient=` lists the
//! active ones unless `status=` asks otherwise.

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use vigil_store::{AlertRow, AlertStatus, Severity};

use super::{FhirError, caller, fhir_time, ok, patient_param, patient_ref, profiles, systems};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The R4 core extension for a Flag's priority, and its code system.
const PRIORITY_EXT: &str = "http://hl7.org/fhir/StructureDefinition/flag-priority";
const PRIORITY_CS: &str = "http://hl7.org/fhir/flag-priority-code";

fn status(a: &AlertRow) -> &'static str {
    match a.status {
        AlertStatus::Resolved => "inactive",
        AlertStatus::Open | AlertStatus::Acknowledged | AlertStatus::Escalated => "active",
    }
}

fn priority(s: Severity) -> (&'static str, &'static str) {
    match s {
        Severity::Low => ("PL", "Low priority"),
        Severity::LowMedium | Severity::Medium => ("PM", "Medium priority"),
        Severity::High => ("PH", "High priority"),
    }
}

pub fn resource(a: &AlertRow) -> Value {
    let (pcode, pdisplay) = priority(a.severity);
    let mut period = json!({"start": fhir_time(a.raised_at)});
    if let Some(end) = a.resolved_at {
        period["end"] = json!(fhir_time(end));
    }
    json!({
        "resourceType": "Flag",
        "id": a.id.to_string(),
        "meta": {"profile": [profiles::UKCORE_FLAG]},
        "extension": [{
            "url": PRIORITY_EXT,
            "valueCodeableConcept": {
                "coding": [{"system": PRIORITY_CS, "code": pcode, "display": pdisplay}],
                "text": format!("NEWS2-style severity: {}", a.severity.as_str()),
            },
        }],
        "identifier": [{"system": format!("{}/alert-id", systems::VIGIL), "value": a.id.to_string()}],
        "status": status(a),
        "category": [{"coding": [{"system": systems::FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}], "text": "Clinical"}],
        "code": {
            "coding": [{"system": format!("{}/CodeSystem/alert-rule", systems::VIGIL), "code": a.rule_id}],
            "text": a.message,
        },
        "subject": patient_ref(a.patient_id),
        "period": period,
    })
}

/// `GET /fhir/r4/Flag?patient=[&status=active|inactive]`.
pub async fn search(
    State(state): State<AppState>,
    c: Result<Caller, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let Query(params) = q.map_err(|e| FhirError::Invalid(e.body_text()))?;
    let mut patient = None;
    let mut statuses: Option<Vec<String>> = None;
    let mut paging = super::search::Paging::default();
    for (k, v) in &params {
        if paging.take(k, v)? {
            continue;
        }
        match k.as_str() {
            "patient" | "subject" if patient.is_none() => patient = Some(patient_param(v)?),
            "patient" | "subject" => {
                return Err(FhirError::Invalid("patient: give it once".into()));
            }
            "status" => {
                let s: Vec<String> = v.split(',').map(str::to_string).collect();
                if s.iter().any(|x| x != "active" && x != "inactive") {
                    return Err(FhirError::Invalid(
                        "status: active, inactive or both (comma-separated)".into(),
                    ));
                }
                statuses = Some(s);
            }
            "_format" => {}
            other => {
                return Err(FhirError::Invalid(format!(
                    "unsupported search parameter {other:?} (supported: patient, status, _count)"
                )));
            }
        }
    }
    let patient = patient
        .ok_or_else(|| FhirError::Invalid("patient: required (searches are per patient)".into()))?;
    let p = super::visible_patient(&state, &caller, patient).await?;
    let statuses = statuses.unwrap_or_else(|| vec!["active".into()]);
    let alerts = state
        .store
        .alerts_list(&[p.ward_id], None, Some(patient))
        .await?;
    let flags: Vec<Value> = alerts
        .iter()
        .filter(|a| statuses.iter().any(|s| s == status(a)))
        .map(resource)
        .collect();
    super::audited_searchset(
        &state,
        &caller,
        &headers,
        ("fhir.flag.read", "Flag"),
        patient,
        (raw.as_deref(), &params, &paging),
        super::search::Found::slice(flags, &paging)?,
    )
    .await
}

/// `GET /fhir/r4/Flag/{id}`.
pub async fn read(
    State(state): State<AppState>,
    c: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let id = super::parse_id(&id)?;
    let a = match state.store.alert_get(id).await? {
        Some(a) if caller.sees_ward(a.ward_id) => a,
        _ => return Err(FhirError::NotFound("resource not found")),
    };
    crate::audit::record(
        &state,
        &caller,
        "fhir.flag.read",
        Some(a.patient_id),
        json!({"id": id}),
    )
    .await?;
    Ok(ok(&resource(&a)))
}
