//! Clinicians' notes on a patient's record as `Communication`s: a call,
//! the advice given, a plan (docs/http.md, "notes"). A note is a record of
//! what a clinician wrote, never edited, so each is `completed`, `sent` at
//! the time it was written, with its author as `sender` (a display name:
//! Vigil has no `Practitioner` resources). Its id is `{patient}-{note}`, so
//! a read is checked against the patient's ward. No UK Core profile is
//! claimed (docs/interop.md): the base R4 Communication.

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use vigil_store::NoteRow;

use super::{FhirError, caller, fhir_time, ok, patient_ref, systems};
use crate::AppState;
use crate::error::ApiError;

pub fn id_of(n: &NoteRow) -> String {
    format!("{}-{}", n.patient_id, n.id)
}

pub fn resource(n: &NoteRow) -> Value {
    json!({
        "resourceType": "Communication",
        "id": id_of(n),
        "identifier": [{"system": format!("{}/note-id", systems::VIGIL), "value": n.id.to_string()}],
        "status": "completed",
        "category": [{
            "coding": [{"system": format!("{}/CodeSystem/communication-category", systems::VIGIL), "code": "clinical-note", "display": "Clinical note"}],
            "text": "A clinician's note on the patient's record",
        }],
        "subject": patient_ref(n.patient_id),
        "sent": fhir_time(n.at),
        "sender": {"display": n.author},
        "payload": [{"contentString": n.text}],
    })
}

/// `GET /fhir/r4/Communication?patient=`: the patient's notes, newest first.
pub async fn search(
    State(state): State<AppState>,
    c: Result<crate::auth::Caller, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let Query(params) = q.map_err(|e| FhirError::Invalid(e.body_text()))?;
    let (patient, paging) = super::only_patient(&params, true)?;
    super::visible_patient(&state, &caller, patient).await?;
    let found: Vec<Value> = state
        .store
        .notes_list(patient)
        .await?
        .iter()
        .map(resource)
        .collect();
    super::audited_searchset(
        &state,
        &caller,
        &headers,
        ("fhir.communication.read", "Communication"),
        patient,
        (raw.as_deref(), &params, &paging),
        super::search::Found::slice(found, &paging)?,
    )
    .await
}

/// `GET /fhir/r4/Communication/{patient}-{note}`.
pub async fn read(
    State(state): State<AppState>,
    c: Result<crate::auth::Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let not_found = || FhirError::NotFound("resource not found");
    let (p, n) = id.split_once('-').ok_or_else(not_found)?;
    let (patient, note) = (super::parse_id(p)?, super::parse_id(n)?);
    super::visible_patient(&state, &caller, patient)
        .await
        .map_err(|_| not_found())?;
    let found = state
        .store
        .notes_list(patient)
        .await?
        .into_iter()
        .find(|x| x.id == note)
        .ok_or_else(not_found)?;
    crate::audit::record(
        &state,
        &caller,
        "fhir.communication.read",
        Some(patient),
        json!({"id": id}),
    )
    .await?;
    Ok(ok(&resource(&found)))
}
