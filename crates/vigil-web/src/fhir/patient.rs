//! `GET /fhir/r4/Patient/{id}`: the patient as UK Core Patient, identified
//! by NHS number.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};
use vigil_store::PatientDetail;

use super::{FhirError, caller, ok, parse_id, profiles, systems, visible_patient};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// UK Core's NHS number verification status extension and code system.
const NHS_VERIFICATION_EXT: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const NHS_VERIFICATION_CS: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";

/// The Patient resource. Vigil checks the NHS number's modulus-11 digit at
/// admission but does not trace it against PDS, hence verification status
/// `02` ("Number present but not traced").
pub fn resource(p: &PatientDetail) -> Value {
    json!({
        "resourceType": "Patient",
        "id": p.id.to_string(),
        "meta": {"profile": [profiles::UKCORE_PATIENT]},
        "identifier": [{
            "extension": [{
                "url": NHS_VERIFICATION_EXT,
                "valueCodeableConcept": {"coding": [{
                    "system": NHS_VERIFICATION_CS,
                    "code": "02",
                    "display": "Number present but not traced",
                }]},
            }],
            "system": systems::NHS_NUMBER,
            "value": p.nhs_number,
        }],
        // Vigil holds one free-text name; splitting it into given and
        // family names would guess.
        "name": [{"use": "official", "text": p.name}],
    })
}

pub async fn read(
    State(state): State<AppState>,
    c: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let id = parse_id(&id)?;
    let p = visible_patient(&state, &caller, id).await?;
    crate::audit::record(&state, &caller, "fhir.patient.read", Some(id), json!({})).await?;
    Ok(ok(&resource(&p)))
}
