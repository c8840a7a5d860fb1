//! FHIR R4 (4.0.1) read-only export under `/fhir/r4`, shaped for UK Core.
//!
//! Same authentication ([`Caller`]), ward isolation (a patient outside the
//! caller's wards is a 404) and audit trail as the rest of the API. Errors
//! are FHIR `OperationOutcome`s. Resources are built as `serde_json` values
//! from the [`vigil_store::Store`] records; codes, profiles and the choices
//! behind them are in docs/interop.md.
//!
//! # Layout
//! - [`patient`]: `Patient/{id}` (NHS number identifier, UK Core profile).
//! - [`observation`]: vital signs, peak flow and NEWS2 as `Observation`s;
//!   `Observation?patient=&code=&date=` and `Observation/{id}`.
//! - [`flag`]: alerts as `Flag`s.
//! - [`communication`]: clinicians' notes as `Communication`s.
//! - [`episode`]: the virtual-ward stay as `EpisodeOfCare`, and its
//!   discharge `Bundle` (type `collection`).
//! - [`metadata`]: the `CapabilityStatement` at `/fhir/r4/metadata`.
//! - [`search`]: the `code` and `date` search parameters.
//! - this file: the router, `OperationOutcome` errors, shared helpers.

pub mod communication;
pub mod episode;
pub mod flag;
pub mod metadata;
pub mod observation;
pub mod patient;
pub mod search;

use axum::Router;
use axum::http::header::{CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use vigil_store::{PatientDetail, StoreError};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use search::{Found, Paging};

/// Where the FHIR API lives.
pub const BASE_PATH: &str = "/fhir/r4";
/// The FHIR JSON media type (FHIR R4 §2.6 http.html#mime-type).
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// Code systems and identifier systems used across resources.
pub mod systems {
    pub const LOINC: &str = "http://loinc.org";
    pub const SNOMED: &str = "http://snomed.info/sct";
    pub const UCUM: &str = "http://unitsofmeasure.org";
    pub const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
    pub const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
    pub const DATA_ABSENT: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";
    pub const FLAG_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/flag-category";
    /// Vigil's own (not yet published) code and identifier systems share this prefix.
    pub const VIGIL: &str = "https://vigil.invalid/fhir";
}

/// UK Core profile canonical URLs (HL7 UK, fhir.hl7.org.uk).
pub mod profiles {
    pub const UKCORE_PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
    pub const UKCORE_OBSERVATION: &str =
        "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation";
    pub const UKCORE_FLAG: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Flag";
    pub const UKCORE_EPISODE_OF_CARE: &str =
        "https://fhir.hl7.org.uk/StructureDefinition/UKCore-EpisodeOfCare";
    /// The base R4 Communication: no UK Core profile is claimed for notes.
    pub const COMMUNICATION: &str = "http://hl7.org/fhir/StructureDefinition/Communication";
    /// The FHIR R4 vital-signs profiles (observation-vitalsigns.html).
    pub const VITALSIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
}

/// Every `/fhir/r4` route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/r4/metadata", get(metadata::capabilities))
        .route("/fhir/r4/Patient/{id}", get(patient::read))
        .route("/fhir/r4/Observation", get(observation::search))
        .route("/fhir/r4/Observation/{id}", get(observation::read))
        .route("/fhir/r4/Flag", get(flag::search))
        .route("/fhir/r4/Flag/{id}", get(flag::read))
        .route("/fhir/r4/Communication", get(communication::search))
        .route("/fhir/r4/Communication/{id}", get(communication::read))
        .route("/fhir/r4/EpisodeOfCare", get(episode::search))
        .route("/fhir/r4/EpisodeOfCare/{id}", get(episode::read))
        .route(
            "/fhir/r4/EpisodeOfCare/{id}/$discharge-bundle",
            get(episode::discharge_bundle),
        )
        .route("/fhir/r4/{*rest}", get(unknown))
}

async fn unknown() -> FhirError {
    FhirError::NotFound("resource type or operation not supported by this server")
}

/// An error answered as a FHIR `OperationOutcome`. Bodies name what was
/// wrong with the request, never anything about a patient.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("authentication required (bearer token or session cookie)")]
    Unauthorized,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BusinessRule(String),
    #[error("internal error")]
    Internal(String),
}

impl FhirError {
    fn parts(&self) -> (StatusCode, &'static str) {
        // Issue codes from http://hl7.org/fhir/issue-type.
        match self {
            FhirError::Unauthorized => (StatusCode::UNAUTHORIZED, "login"),
            FhirError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            FhirError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            FhirError::BusinessRule(_) => (StatusCode::CONFLICT, "business-rule"),
            FhirError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "exception"),
        }
    }
}

/// An `OperationOutcome` with one error issue.
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    })
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let FhirError::Internal(cause) = &self {
            tracing::error!(cause = %cause, "fhir request failed");
        }
        let mut resp = fhir_json(status, &operation_outcome(code, &self.to_string()));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => FhirError::Unauthorized,
            ApiError::NotFound(what) => FhirError::NotFound(match what {
                "patient" => "patient not found",
                _ => "resource not found",
            }),
            ApiError::Invalid(m) => FhirError::Invalid(m),
            ApiError::Internal(m) => FhirError::Internal(m),
            // A read-only API meets neither role checks nor CSRF; anything
            // else is a server-side surprise.
            other => FhirError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for FhirError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

/// A FHIR JSON response.
pub fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// 200 with a FHIR resource.
pub fn ok(body: &Value) -> Response {
    fhir_json(StatusCode::OK, body)
}

/// The caller, or a 401 `OperationOutcome`.
pub fn caller(c: Result<Caller, ApiError>) -> Result<Caller, FhirError> {
    c.map_err(FhirError::from)
}

/// Load a patient the caller may see, or 404 (ids cannot be probed).
pub async fn visible_patient(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<PatientDetail, FhirError> {
    match state.store.patient_get(id).await? {
        Some(p) if caller.sees_ward(p.ward_id) => Ok(p),
        _ => Err(FhirError::NotFound("patient not found")),
    }
}

/// A logical id from the path: digits only, else 404.
pub fn parse_id(raw: &str) -> Result<i64, FhirError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or(FhirError::NotFound("resource not found"))
}

/// The `patient` search parameter: `123` or `Patient/123`.
/// The patient of a search that takes no parameter but `patient` (and
/// `subject`, where the resource has it) and `_format`: required, once.
pub fn only_patient(
    params: &[(String, String)],
    subject_too: bool,
) -> Result<(i64, Paging), FhirError> {
    let mut patient = None;
    let mut paging = Paging::default();
    for (k, v) in params {
        if paging.take(k, v)? {
            continue;
        }
        match k.as_str() {
            "patient" if patient.is_none() => patient = Some(patient_param(v)?),
            "subject" if subject_too && patient.is_none() => patient = Some(patient_param(v)?),
            "patient" => return Err(FhirError::Invalid("patient: give it once".into())),
            "subject" if subject_too => {
                return Err(FhirError::Invalid("patient: give it once".into()));
            }
            "_format" => {}
            other => {
                return Err(FhirError::Invalid(format!(
                    "unsupported search parameter {other:?} (supported: patient, _count)"
                )));
            }
        }
    }
    patient
        .map(|p| (p, paging))
        .ok_or_else(|| FhirError::Invalid("patient: required (searches are per patient)".into()))
}

pub fn patient_param(raw: &str) -> Result<i64, FhirError> {
    let id = raw.strip_prefix("Patient/").unwrap_or(raw);
    id.parse::<i64>()
        .map_err(|_| FhirError::Invalid(format!("patient: expected a Patient id, got {raw:?}")))
}

/// A FHIR `instant`/`dateTime`: seconds, or milliseconds when there are any
/// (Python's and many other parsers stop at microseconds).
pub fn fhir_time(t: DateTime<Utc>) -> String {
    let fmt = if t.timestamp_subsec_nanos() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    t.to_rfc3339_opts(fmt, true)
}

/// The absolute base URL (`http://host/fhir/r4`) for `fullUrl`s and links,
/// from the request's `Host` (and a proxy's `X-Forwarded-Proto`).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| valid_host(h))
        .unwrap_or("localhost");
    let proto = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{proto}://{host}{BASE_PATH}")
}

/// A Host header we are willing to echo into URLs.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// A `Reference` to a patient.
pub fn patient_ref(id: i64) -> Value {
    json!({"reference": format!("Patient/{id}")})
}

/// A one-coding `CodeableConcept`.
pub fn concept(system: &str, code: &str, display: Option<&str>, text: &str) -> Value {
    let mut coding = json!({"system": system, "code": code});
    if let Some(d) = display {
        coding["display"] = json!(d);
    }
    json!({"coding": [coding], "text": text})
}

/// A `searchset` Bundle of one page of matches (each with `resourceType`
/// and `id`), linking to itself and, when more follow, to the next page.
pub fn searchset(base: &str, links: (String, Option<String>), found: Found) -> Value {
    let entries: Vec<Value> = found
        .entries
        .into_iter()
        .map(|r| json!({"fullUrl": full_url(base, &r), "resource": r, "search": {"mode": "match"}}))
        .collect();
    let (self_url, next_url) = links;
    let mut link = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        link.push(json!({"relation": "next", "url": next}));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": link,
        "entry": entries,
    });
    if let Some(total) = found.total {
        bundle["total"] = json!(total);
    }
    bundle
}

/// What every search on one patient ends with: the read on the audit trail as
/// `action` (the query and how many this page holds), then the `searchset`
/// Bundle of `found`, of type `resource`, with its `next` link when there
/// is more.
#[allow(clippy::too_many_arguments)]
pub async fn audited_searchset(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    (action, resource): (&str, &str),
    patient: i64,
    (raw_query, params, paging): (Option<&str>, &[(String, String)], &Paging),
    found: Found,
) -> Result<Response, FhirError> {
    crate::audit::record(
        state,
        caller,
        action,
        Some(patient),
        json!({"query": raw_query.unwrap_or_default(), "count": found.entries.len()}),
    )
    .await?;
    let base = base_url(headers);
    let next = match &found.next {
        Some(cursor) => Some(next_url(&base, resource, params, paging.count(), cursor)?),
        None => None,
    };
    Ok(ok(&searchset(
        &base,
        (self_url(&base, resource, raw_query), next),
        found,
    )))
}

/// The next page's URL: the search's own parameters, with its `_count` and
/// the `_cursor` where that page starts.
fn next_url(
    base: &str,
    resource: &str,
    params: &[(String, String)],
    count: usize,
    cursor: &str,
) -> Result<String, FhirError> {
    let mut url = reqwest::Url::parse(&format!("{base}/{resource}"))
        .map_err(|e| FhirError::Internal(format!("next link: {e}")))?;
    url.query_pairs_mut()
        .extend_pairs(
            params
                .iter()
                .filter(|(k, _)| k != "_count" && k != "_cursor"),
        )
        .append_pair("_count", &count.to_string())
        .append_pair("_cursor", cursor);
    Ok(url.to_string())
}

/// `base/Type/id` of a resource value.
pub fn full_url(base: &str, r: &Value) -> String {
    format!(
        "{base}/{}/{}",
        r["resourceType"].as_str().unwrap_or_default(),
        r["id"].as_str().unwrap_or_default()
    )
}

/// The request's own URL (for a searchset's `self` link).
pub fn self_url(base: &str, resource: &str, raw_query: Option<&str>) -> String {
    match raw_query {
        Some(q) if !q.is_empty() => format!("{base}/{resource}?{q}"),
        _ => format!("{base}/{resource}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_only_search_takes_the_patient_once_and_nothing_else() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            only_patient(&q(&[("patient", "Patient/7"), ("_format", "json")]), false)
                .ok()
                .map(|p| p.0),
            Some(7)
        );
        assert_eq!(
            only_patient(&q(&[("subject", "7")]), true)
                .ok()
                .map(|p| p.0),
            Some(7)
        );
        assert!(
            only_patient(&q(&[("subject", "7")]), false).is_err(),
            "no subject on EpisodeOfCare"
        );
        assert!(only_patient(&q(&[("patient", "7"), ("subject", "8")]), true).is_err());
        assert!(only_patient(&q(&[("patient", "7"), ("code", "x")]), true).is_err());
        assert!(only_patient(&q(&[]), true).is_err());
    }

    #[test]
    fn patient_param_takes_a_bare_id_or_a_reference() {
        assert_eq!(patient_param("12").ok(), Some(12));
        assert_eq!(patient_param("Patient/12").ok(), Some(12));
        assert!(patient_param("Practitioner/12").is_err());
        assert!(patient_param("").is_err());
    }

    #[test]
    fn times_are_seconds_or_milliseconds() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T08:15:03Z").map(|t| t.with_timezone(&Utc));
        assert_eq!(
            t.map(fhir_time).ok().as_deref(),
            Some("2026-11-22T08:15:03Z")
        );
        let t = DateTime::parse_from_rfc3339("2026-11-22T08:15:03.123456789Z")
            .map(|t| t.with_timezone(&Utc));
        assert_eq!(
            t.map(fhir_time).ok().as_deref(),
            Some("2026-11-22T08:15:03.123Z")
        );
    }

    #[test]
    fn a_strange_host_header_is_not_echoed() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("evil.example/\"x"));
        assert_eq!(base_url(&h), "http://localhost/fhir/r4");
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(base_url(&h), "http://127.0.0.1:8080/fhir/r4");
    }
}
