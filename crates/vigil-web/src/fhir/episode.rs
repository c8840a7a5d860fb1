//! The virtual-ward stay as `EpisodeOfCare` (why not `Encounter`: see
//! docs/interop.md), and its discharge `Bundle`.
//!
//! An EpisodeOfCare's id is `{patient}-{episode}`: the store looks episodes
//! up by patient, and the patient decides who may see it. A patient
//! admitted again has one per admission, each reachable (with its own
//! discharge bundle).

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{Timelike, Utc};
use serde_json::{Value, json};
use vigil_store::{Episode, PatientDetail};

use super::{FhirError, base_url, caller, fhir_time, full_url, ok, patient_ref, profiles, systems};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

pub fn id_of(patient: i64, episode: i64) -> String {
    format!("{patient}-{episode}")
}

pub fn resource(patient: i64, e: &Episode) -> Value {
    let mut period = json!({"start": fhir_time(e.admitted_at)});
    if let Some(end) = e.discharged_at {
        period["end"] = json!(fhir_time(end));
    }
    json!({
        "resourceType": "EpisodeOfCare",
        "id": id_of(patient, e.id),
        "meta": {"profile": [profiles::UKCORE_EPISODE_OF_CARE]},
        "identifier": [{"system": format!("{}/episode-id", systems::VIGIL), "value": e.id.to_string()}],
        "status": if e.discharged_at.is_some() { "finished" } else { "active" },
        "type": [{
            "coding": [{"system": format!("{}/CodeSystem/pathway", systems::VIGIL), "code": e.pathway}],
            "text": format!("Virtual ward ({} pathway)", e.pathway),
        }],
        "patient": patient_ref(patient),
        "period": period,
    })
}

/// The patient and episode an `{patient}-{episode}` id names, if the caller may see them.
async fn visible_episode(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<(PatientDetail, Episode), FhirError> {
    let not_found = || FhirError::NotFound("resource not found");
    let (p, e) = raw.split_once('-').ok_or_else(not_found)?;
    let (patient, episode) = (super::parse_id(p)?, super::parse_id(e)?);
    let p = super::visible_patient(state, caller, patient)
        .await
        .map_err(|_| not_found())?;
    let e = p
        .episodes()
        .find(|e| e.id == episode)
        .cloned()
        .ok_or_else(not_found)?;
    Ok((p, e))
}

/// `GET /fhir/r4/EpisodeOfCare/{id}`.
pub async fn read(
    State(state): State<AppState>,
    c: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let (p, e) = visible_episode(&state, &caller, &id).await?;
    crate::audit::record(
        &state,
        &caller,
        "fhir.episodeofcare.read",
        Some(p.id),
        json!({"id": id}),
    )
    .await?;
    Ok(ok(&resource(p.id, &e)))
}

/// `GET /fhir/r4/EpisodeOfCare?patient=`: the patient's episodes, newest
/// first (one per admission).
pub async fn search(
    State(state): State<AppState>,
    c: Result<Caller, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let Query(params) = q.map_err(|e| FhirError::Invalid(e.body_text()))?;
    let (patient, paging) = super::only_patient(&params, false)?;
    let p = super::visible_patient(&state, &caller, patient).await?;
    let found: Vec<Value> = p.episodes().map(|e| resource(p.id, e)).collect();
    super::audited_searchset(
        &state,
        &caller,
        &headers,
        ("fhir.episodeofcare.read", "EpisodeOfCare"),
        patient,
        (raw.as_deref(), &params, &paging),
        super::search::Found::slice(found, &paging)?,
    )
    .await
}

/// `GET /fhir/r4/EpisodeOfCare/{id}/$discharge-bundle`: a `collection`
/// Bundle of everything Vigil knows about a finished stay: the Patient,
/// the EpisodeOfCare, every exported reading and NEWS2 score measured
/// during it, every alert raised during it as a Flag, and every note written
/// during it as a Communication (the oldest first). 409 while the
/// episode is still active (there is no discharge to summarise yet).
pub async fn discharge_bundle(
    State(state): State<AppState>,
    c: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let (p, e) = visible_episode(&state, &caller, &id).await?;
    let Some(end) = e.discharged_at else {
        return Err(FhirError::BusinessRule(
            "the episode is still active: a discharge bundle exists once the patient is discharged"
                .into(),
        ));
    };
    // Devices stamp readings to the second, so a reading taken in the
    // second of admission must not fall before the episode's start.
    let start = e.admitted_at.with_nanosecond(0).unwrap_or(e.admitted_at);
    let mut resources = vec![super::patient::resource(&p), resource(p.id, &e)];
    let observations = super::observation::for_patient(&state, &p, Some(start), Some(end)).await?;
    let n_obs = observations.len();
    resources.extend(observations.into_iter().map(|b| b.resource));
    let alerts = state
        .store
        .alerts_list(&[p.ward_id], None, Some(p.id))
        .await?;
    let flags: Vec<Value> = alerts
        .iter()
        .filter(|a| a.raised_at >= start && a.raised_at <= end)
        .map(super::flag::resource)
        .collect();
    let n_flags = flags.len();
    resources.extend(flags);
    let notes: Vec<Value> = state
        .store
        .notes_list(p.id)
        .await?
        .iter()
        .rev()
        .filter(|n| n.at >= start && n.at <= end)
        .map(super::communication::resource)
        .collect();
    let n_notes = notes.len();
    resources.extend(notes);
    crate::audit::record(
        &state,
        &caller,
        "fhir.discharge-bundle.read",
        Some(p.id),
        json!({"episode": id, "observations": n_obs, "flags": n_flags, "notes": n_notes}),
    )
    .await?;
    let base = base_url(&headers);
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| json!({"fullUrl": full_url(&base, &r), "resource": r}))
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "id": format!("discharge-{id}"),
        "identifier": {"system": format!("{}/discharge-bundle", systems::VIGIL), "value": id},
        "type": "collection",
        "timestamp": fhir_time(Utc::now()),
        "entry": entries,
    });
    Ok(ok(&bundle))
}
