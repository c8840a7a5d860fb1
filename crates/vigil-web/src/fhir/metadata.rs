//! `GET /fhir/r4/metadata`: the server's `CapabilityStatement` (FHIR R4
//! http.html#capabilities: a server SHALL return one at `[base]/metadata`).
//! It describes the server, not any patient, so it needs no credentials.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{base_url, ok};

/// When this statement last changed in substance.
const DATE: &str = "2026-12-07";

fn search(name: &str, kind: &str, doc: &str) -> Value {
    json!({"name": name, "type": kind, "documentation": doc})
}

pub fn statement(base: &str) -> Value {
    let read_only = |rtype: &str, profile: &str, params: Vec<Value>, doc: &str| {
        let mut interaction = vec![json!({"code": "read"})];
        if !params.is_empty() {
            interaction.push(json!({"code": "search-type"}));
        }
        let mut r = json!({
            "type": rtype,
            "profile": profile,
            "documentation": doc,
            "interaction": interaction,
        });
        if !params.is_empty() {
            r["searchParam"] = json!(params);
        }
        r
    };
    let patient = || {
        search(
            "patient",
            "reference",
            "Required: searches are per patient (id or Patient/id).",
        )
    };
    json!({
        "resourceType": "CapabilityStatement",
        "id": "vigil",
        "name": "VigilFhirExport",
        "title": "Vigil FHIR R4 export",
        "status": "active",
        "date": DATE,
        "kind": "instance",
        "software": {"name": "Vigil", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Vigil virtual ward: read-only FHIR R4 (UK Core) export", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only. Bearer token or session cookie; patients outside the caller's wards are 404. \
                              Every read is audited. Searchset Bundles hold at most _count matches (default 100, at most 1000) \
                              and link to the next page (relation next); follow the link. See docs/interop.md.",
            "security": {"description": "Authorization: Bearer <token> (vigil admin token create) or the dashboard session cookie."},
            "resource": [
                read_only("Patient", super::profiles::UKCORE_PATIENT, vec![], "NHS number identifier; read by id only."),
                read_only(
                    "Observation",
                    super::profiles::UKCORE_OBSERVATION,
                    vec![
                        patient(),
                        search("code", "token", "system|code, |code or code; commas are OR, repeats are AND; Observation.code only."),
                        search("date", "date", "Effective time with eq, ge, le, gt, lt; YYYY-MM-DD (UTC day) or RFC 3339 with zone; repeatable."),
                    ],
                    "Vital signs (R4 vital-signs profiles), peak flow, NEWS2 scores.",
                ),
                read_only(
                    "Flag",
                    super::profiles::UKCORE_FLAG,
                    vec![patient(), search("status", "token", "active (default) and/or inactive.")],
                    "Vigil alerts.",
                ),
                read_only(
                    "Communication",
                    super::profiles::COMMUNICATION,
                    vec![patient()],
                    "Clinicians' notes on the patient's record (a call, advice, a plan), newest first; never edited.",
                ),
                read_only(
                    "EpisodeOfCare",
                    super::profiles::UKCORE_EPISODE_OF_CARE,
                    vec![patient()],
                    "The virtual-ward stay. $discharge-bundle on a finished one returns a collection Bundle.",
                ),
            ],
        }],
    })
}

/// `GET /fhir/r4/metadata`.
pub async fn capabilities(headers: HeaderMap) -> Response {
    ok(&statement(&base_url(&headers)))
}
