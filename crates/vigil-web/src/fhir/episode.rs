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
use chrono::{DateTime, Timelike, Utc};
use futures::{StreamExt, TryStreamExt};
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
///
/// A fortnight on a continuous oximeter is over a million readings, so
/// the Bundle is written as it is read: the Observations a page of
/// [`DISCHARGE_PAGE`] at a time, by the same pager as a search (hazard
/// TS-26). A store error part-way ends the response without its closing
/// bracket, so a client never takes a cut Bundle for a whole one.
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
    // A stay's alerts and notes are tens: read before the first byte, so
    // that only the Observations are read as the Bundle is written.
    let alerts = state
        .store
        .alerts_list(&[p.ward_id], None, Some(p.id))
        .await?;
    let flags: Vec<Value> = alerts
        .iter()
        .filter(|a| a.raised_at >= start && a.raised_at <= end)
        .map(super::flag::resource)
        .collect();
    let notes: Vec<Value> = state
        .store
        .notes_list(p.id)
        .await?
        .iter()
        .rev()
        .filter(|n| n.at >= start && n.at <= end)
        .map(super::communication::resource)
        .collect();
    crate::audit::record(
        &state,
        &caller,
        "fhir.discharge-bundle.read",
        Some(p.id),
        json!({"episode": id, "from": start, "to": end, "flags": flags.len(), "notes": notes.len()}),
    )
    .await?;
    let base = base_url(&headers);
    let entry = |r: &Value| entry(&base, r);
    // The Bundle's own members, then its entries as they are read.
    let mut head = json!({
        "resourceType": "Bundle",
        "id": format!("discharge-{id}"),
        "identifier": {"system": format!("{}/discharge-bundle", systems::VIGIL), "value": id},
        "type": "collection",
        "timestamp": fhir_time(Utc::now()),
    })
    .to_string();
    head.pop(); // its closing brace: the entries follow
    head.push_str(",\"entry\":[");
    head.push_str(&entry(&super::patient::resource(&p)));
    head.push(',');
    head.push_str(&entry(&resource(p.id, &e)));
    let mut rest = String::new();
    for r in flags.iter().chain(&notes) {
        rest.push(',');
        rest.push_str(&entry(r));
    }
    rest.push_str("]}");
    let pages = ObservationPages {
        state,
        patient: p,
        span: (Some(start), Some(end)),
        base,
        series: super::observation::Series::matching(&[]),
        after: None,
        done: false,
    };
    let body = futures::stream::once(async move { Ok(head) })
        .chain(futures::stream::unfold(pages, ObservationPages::next))
        .chain(futures::stream::once(async move { Ok(rest) }))
        .map_ok(axum::body::Bytes::from);
    let mut resp = Response::new(axum::body::Body::from_stream(body));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(super::FHIR_JSON),
    );
    Ok(resp)
}

/// A Bundle entry, as JSON text.
fn entry(base: &str, r: &Value) -> String {
    json!({"fullUrl": full_url(base, r), "resource": r}).to_string()
}

/// Observations in a discharge Bundle, a page at a time.
const DISCHARGE_PAGE: usize = 1_000;

/// Where a discharge Bundle's Observations have got to.
struct ObservationPages {
    state: AppState,
    patient: PatientDetail,
    span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    base: String,
    /// Every exported series: a discharge Bundle holds them all.
    series: super::observation::Series,
    after: Option<super::observation::Key>,
    done: bool,
}

impl ObservationPages {
    /// The next page's entries, each after a comma; `None` after the last.
    async fn next(mut self) -> Option<(Result<String, std::io::Error>, Self)> {
        if self.done {
            return None;
        }
        let read = super::observation::page(
            &self.state,
            &self.patient,
            &self.series,
            self.span,
            &[],
            self.after,
            DISCHARGE_PAGE,
        )
        .await;
        let (built, more) = match read {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(patient = self.patient.id, error = ?e, "discharge bundle cut short: a page of its observations could not be read");
                self.done = true;
                return Some((Err(std::io::Error::other("store error")), self));
            }
        };
        self.after = built.last().map(|b| b.key);
        self.done = !more;
        let mut chunk = String::new();
        for b in &built {
            chunk.push(',');
            chunk.push_str(&entry(&self.base, &b.resource));
        }
        Some((Ok(chunk), self))
    }
}
