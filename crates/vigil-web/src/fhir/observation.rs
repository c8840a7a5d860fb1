//! Observations: device readings as FHIR R4 vital signs (LOINC, UCUM),
//! peak flow, and NEWS2 scores.
//!
//! Ids say which patient and stored row an Observation comes from, so a
//! read can be checked against the caller's wards without a lookup by row:
//! `{patient}-vs-{row}` (one reading), `{patient}-bp-{row}` (a blood
//! pressure panel, keyed by its systolic row, or its diastolic row when no
//! systolic came), `{patient}-news2-{score}`.

use std::collections::BTreeMap;
use std::ops::Bound;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vigil_store::{HistoryPage, ObsValue, ObservationRow, ScoreRow};

use super::search::{DateParam, Found, Paging, Token, bad_cursor, bounds, parse_token_list};
use super::{
    FhirError, caller, concept, fhir_time, ok, patient_param, patient_ref, profiles, systems,
};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// How a stored Vigil code is exported.
struct VitalCode {
    vigil: &'static str,
    /// LOINC codings, the first being the primary one.
    loinc: &'static [(&'static str, &'static str)],
    text: &'static str,
    /// UCUM code of the value.
    unit: &'static str,
    /// The FHIR R4 vital-signs profile it conforms to, if any.
    profile: Option<&'static str>,
    category: Category,
}

#[derive(Clone, Copy)]
enum Category {
    VitalSigns,
    Exam,
}

impl Category {
    fn concept(self) -> Value {
        let (code, display) = match self {
            Category::VitalSigns => ("vital-signs", "Vital Signs"),
            Category::Exam => ("exam", "Exam"),
        };
        json!([{"coding": [{"system": systems::OBS_CATEGORY, "code": code, "display": display}], "text": display}])
    }
}

/// Single-value readings Vigil exports. Sources: FHIR R4 vital-signs
/// profiles (observation-vitalsigns.html) and the LOINC table; see
/// docs/interop.md for each choice.
const VITALS: &[VitalCode] = &[
    VitalCode {
        vigil: "pulse",
        loinc: &[("8867-4", "Heart rate")],
        text: "Heart rate",
        unit: "/min",
        profile: Some("http://hl7.org/fhir/StructureDefinition/heartrate"),
        category: Category::VitalSigns,
    },
    VitalCode {
        vigil: "resp_rate",
        loinc: &[("9279-1", "Respiratory rate")],
        text: "Respiratory rate",
        unit: "/min",
        profile: Some("http://hl7.org/fhir/StructureDefinition/resprate"),
        category: Category::VitalSigns,
    },
    VitalCode {
        vigil: "spo2",
        loinc: &[
            ("2708-6", "Oxygen saturation in Arterial blood"),
            (
                "59408-5",
                "Oxygen saturation in Arterial blood by Pulse oximetry",
            ),
        ],
        text: "Oxygen saturation (pulse oximetry)",
        unit: "%",
        profile: Some("http://hl7.org/fhir/StructureDefinition/oxygensat"),
        category: Category::VitalSigns,
    },
    VitalCode {
        vigil: "temp",
        loinc: &[("8310-5", "Body temperature")],
        text: "Body temperature",
        unit: "Cel",
        profile: Some("http://hl7.org/fhir/StructureDefinition/bodytemp"),
        category: Category::VitalSigns,
    },
    VitalCode {
        vigil: "weight",
        loinc: &[("29463-7", "Body weight")],
        text: "Body weight",
        unit: "kg",
        profile: Some("http://hl7.org/fhir/StructureDefinition/bodyweight"),
        category: Category::VitalSigns,
    },
    VitalCode {
        vigil: "pef",
        loinc: &[(
            "19935-6",
            "Maximum expiratory gas flow Respiratory system airway by Peak flow meter",
        )],
        text: "Peak expiratory flow",
        unit: "L/min",
        profile: None,
        category: Category::Exam,
    },
];

const BP_PANEL: (&str, &str) = ("85354-9", "Blood pressure panel with all children optional");
const BP_SYSTOLIC: (&str, &str) = ("8480-6", "Systolic blood pressure");
const BP_DIASTOLIC: (&str, &str) = ("8462-4", "Diastolic blood pressure");
const BP_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/bp";

/// NEWS2 total: SNOMED CT (UK edition), as CLINICAL.md "Codes for export"
/// lists it and UK implementation guides use it. The LOINC code listed
/// beside it there, 88330-6, is a CMS mobility assessment term, so it is
/// not sent (docs/interop.md).
pub const NEWS2_SNOMED: &str = "1104051000000101";
const NEWS2_DISPLAY: &str =
    "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score";

fn vital(code: &str) -> Option<&'static VitalCode> {
    VITALS.iter().find(|v| v.vigil == code)
}

/// Where an Observation falls in a patient's history, which is how search
/// orders and pages them: its time, then readings (0) before scores (1),
/// then the stored row (a blood-pressure panel's being the row of its id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub at: DateTime<Utc>,
    kind: u8,
    row: i64,
}

impl Key {
    /// The `_cursor` of the page that starts after this Observation.
    fn token(&self) -> String {
        format!("{}.{}.{}", self.at.timestamp_micros(), self.kind, self.row)
    }

    fn parse(token: &str) -> Result<Key, FhirError> {
        let mut parts = token.split('.');
        let (Some(micros), Some(kind), Some(row), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad_cursor());
        };
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros);
        match (at, kind.parse::<u8>(), row.parse::<i64>()) {
            (Some(at), Ok(kind @ (0 | 1)), Ok(row)) => Ok(Key { at, kind, row }),
            _ => Err(bad_cursor()),
        }
    }
}

/// An Observation with what search needs to filter and order it.
pub struct Built {
    pub id: String,
    pub key: Key,
    /// `(system, code)` of `Observation.code`.
    pub codes: Vec<(String, String)>,
    pub resource: Value,
}

impl Built {
    fn matches(&self, codes: &[Vec<Token>], dates: &[DateParam]) -> bool {
        codes.iter().all(|alts| {
            alts.iter()
                .any(|t| self.codes.iter().any(|(s, c)| t.matches(s, c)))
        }) && dates.iter().all(|d| d.matches(self.key.at))
    }
}

fn loinc_concept(codes: &[(&str, &str)], text: &str) -> (Value, Vec<(String, String)>) {
    let coding: Vec<Value> = codes
        .iter()
        .map(|(c, d)| json!({"system": systems::LOINC, "code": c, "display": d}))
        .collect();
    let keys = codes
        .iter()
        .map(|(c, _)| (systems::LOINC.to_string(), c.to_string()))
        .collect();
    (json!({"coding": coding, "text": text}), keys)
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": systems::UCUM, "code": unit})
}

/// The measuring device, contained in the Observation that references it.
fn contained_device(device_id: &str, kinds: &BTreeMap<String, String>) -> Value {
    let mut d = json!({
        "resourceType": "Device",
        "id": "device",
        "identifier": [{"system": format!("{}/device-id", systems::VIGIL), "value": device_id}],
    });
    if let Some(kind) = kinds.get(device_id) {
        d["type"] = json!({"text": kind});
    }
    d
}

/// Fields every reading-based Observation shares.
fn base(
    id: &str,
    profile: Option<&str>,
    category: Category,
    code: Value,
    patient: i64,
    row: &ObservationRow,
    kinds: &BTreeMap<String, String>,
) -> Value {
    let mut profiles = vec![profiles::UKCORE_OBSERVATION];
    if matches!(category, Category::VitalSigns) {
        profiles.push(profiles::VITALSIGNS);
    }
    profiles.extend(profile);
    let mut r = json!({
        "resourceType": "Observation",
        "id": id,
        "meta": {"profile": profiles},
        "identifier": [{
            "system": format!("{}/device-message", systems::VIGIL),
            "value": format!("{}/{}/{}", row.device_id, row.seq, row.code),
        }],
        "status": "final",
        "category": category.concept(),
        "code": code,
        "subject": patient_ref(patient),
        "effectiveDateTime": fhir_time(row.measured_at),
        "issued": fhir_time(row.received_at),
    });
    match vigil_clinical::entered_by(&row.device_id) {
        // Entered by a clinician: who, as the performer; no device.
        Some(who) => r["performer"] = json!([{"display": who}]),
        None => {
            r["contained"] = json!([contained_device(&row.device_id, kinds)]);
            r["device"] = json!({"reference": "#device"});
        }
    }
    r
}

fn number(v: &ObsValue) -> Option<f64> {
    match v {
        ObsValue::Number(n) => Some(*n),
        ObsValue::Text(_) => None,
    }
}

/// The systolic and diastolic rows of one device message.
type BpHalves<'a> = (Option<&'a ObservationRow>, Option<&'a ObservationRow>);

/// Stored readings → Observations. Systolic and diastolic rows of the same
/// device message become one blood-pressure panel; codes Vigil does not
/// export yet (see docs/interop.md) are left out.
pub fn from_rows(
    patient: i64,
    rows: &[ObservationRow],
    kinds: &BTreeMap<String, String>,
) -> Vec<Built> {
    let mut out = Vec::new();
    // (device, seq) → (systolic, diastolic)
    let mut bp: BTreeMap<(String, u32), BpHalves> = BTreeMap::new();
    for row in rows {
        match row.code.as_str() {
            "systolic" => bp.entry((row.device_id.clone(), row.seq)).or_default().0 = Some(row),
            "diastolic" => bp.entry((row.device_id.clone(), row.seq)).or_default().1 = Some(row),
            code => {
                let (Some(v), Some(value)) = (vital(code), number(&row.value)) else {
                    continue;
                };
                let id = format!("{patient}-vs-{}", row.id);
                let (code, codes) = loinc_concept(v.loinc, v.text);
                let mut r = base(&id, v.profile, v.category, code, patient, row, kinds);
                r["valueQuantity"] = quantity(value, v.unit);
                out.push(Built {
                    id,
                    key: Key {
                        at: row.measured_at,
                        kind: 0,
                        row: row.id,
                    },
                    codes,
                    resource: r,
                });
            }
        }
    }
    for (sys, dia) in bp.into_values() {
        let Some(first) = sys.or(dia) else { continue };
        // Ordered, and paged through a stopped clock's instant, by its
        // first-stored half (`walk_instant`).
        let row = sys
            .iter()
            .chain(dia.iter())
            .map(|r| r.id)
            .min()
            .unwrap_or(first.id);
        let id = format!("{patient}-bp-{}", first.id);
        let (code, codes) = loinc_concept(&[BP_PANEL], "Blood pressure");
        let mut r = base(
            &id,
            Some(BP_PROFILE),
            Category::VitalSigns,
            code,
            patient,
            first,
            kinds,
        );
        r["identifier"][0]["value"] = json!(format!("{}/{}/bp", first.device_id, first.seq));
        r["component"] = json!([
            bp_component(BP_SYSTOLIC, sys),
            bp_component(BP_DIASTOLIC, dia)
        ]);
        out.push(Built {
            id,
            key: Key {
                at: first.measured_at,
                kind: 0,
                row,
            },
            codes,
            resource: r,
        });
    }
    out
}

/// One BP component; the vital-signs BP profile requires both, so a missing
/// half says why it is absent.
fn bp_component(code: (&str, &str), row: Option<&ObservationRow>) -> Value {
    let (concept, _) = loinc_concept(&[code], code.1);
    match row.and_then(|r| number(&r.value)) {
        Some(v) => json!({"code": concept, "valueQuantity": quantity(v, "mm[Hg]")}),
        None => json!({"code": concept, "dataAbsentReason": absent("unknown", "Unknown")}),
    }
}

fn absent(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": systems::DATA_ABSENT, "code": code, "display": display}]})
}

/// The SNOMED CT (UK edition) concept of each NEWS2 sub-score, by Vigil's
/// parameter name; SpO2 has one per scale.
fn news2_param_concept(param: &str, spo2_scale: i64) -> Value {
    let (code, what) = match param {
        "resp_rate" => ("1104301000000104", "respiration rate score"),
        "spo2" if spo2_scale == 2 => ("1104321000000108", "oxygen saturation scale 2 score"),
        "spo2" => ("1104311000000102", "oxygen saturation scale 1 score"),
        "o2" => ("1104331000000105", "air or oxygen score"),
        "systolic" => ("1104341000000101", "systolic blood pressure score"),
        "pulse" => ("1104351000000103", "pulse score"),
        "acvpu" => ("1104361000000100", "consciousness score"),
        "temp" => ("1104371000000107", "temperature score"),
        other => {
            return json!({"text": format!("NEWS2 {other} score")});
        }
    };
    let display =
        format!("Royal College of Physicians NEWS2 (National Early Warning Score 2) - {what}");
    json!({"coding": [{"system": systems::SNOMED, "code": code, "display": display}], "text": format!("NEWS2 {what}")})
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A stored NEWS2 score → Observation: the total as `valueInteger`, each
/// sub-score as a component, missing and stale parameters as components
/// with a `dataAbsentReason`, and a note when the score is partial (its
/// total and risk are then lower bounds).
pub fn from_score(patient: i64, s: &ScoreRow) -> Built {
    let id = format!("{patient}-news2-{}", s.id);
    let d = &s.detail;
    let mut components = Vec::new();
    let mut derived = Vec::new();
    let mut scored = Vec::new();
    let scale = d["spo2_scale"]["scale"].as_i64().unwrap_or(1);
    for sub in d["subscores"].as_array().into_iter().flatten() {
        let (Some(param), Some(score)) = (sub["parameter"].as_str(), sub["score"].as_i64()) else {
            continue;
        };
        scored.push(param.to_string());
        components.push(json!({"code": news2_param_concept(param, scale), "valueInteger": score}));
        if let Some(obs) = sub["obs_id"].as_i64() {
            match param {
                "resp_rate" | "spo2" | "pulse" | "temp" => {
                    derived.push(json!({"reference": format!("Observation/{patient}-vs-{obs}")}))
                }
                "systolic" => {
                    derived.push(json!({"reference": format!("Observation/{patient}-bp-{obs}")}))
                }
                _ => {}
            }
        }
    }
    let missing = names(&d["missing"]);
    let stale = names(&d["stale"]);
    for param in missing
        .iter()
        .chain(stale.iter())
        .filter(|p| !scored.contains(p))
    {
        components.push(json!({"code": news2_param_concept(param, scale), "dataAbsentReason": absent("unknown", "Unknown")}));
    }
    if let Some(risk) = s.risk.as_deref() {
        components.push(json!({
            "code": concept(&format!("{}/CodeSystem/news2", systems::VIGIL), "risk", Some("NEWS2 clinical risk"), "NEWS2 clinical risk"),
            "valueCodeableConcept": concept(&format!("{}/CodeSystem/news2-risk", systems::VIGIL), risk, Some(risk), risk),
        }));
    }
    let mut notes = Vec::new();
    if s.partial {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("missing: {}", missing.join(", ")));
        }
        if !stale.is_empty() {
            why.push(format!("stale: {}", stale.join(", ")));
        }
        notes.push(json!({"text": format!(
            "Partial NEWS2 ({}). The total and risk are lower bounds: do not read this as a complete low score.",
            why.join("; ")
        )}));
    }
    let mut r = json!({
        "resourceType": "Observation",
        "id": id,
        "meta": {"profile": [profiles::UKCORE_OBSERVATION]},
        "status": "final",
        "category": [{"coding": [{"system": systems::OBS_CATEGORY, "code": "survey", "display": "Survey"}], "text": "Survey"}],
        "code": {
            "coding": [{"system": systems::SNOMED, "code": NEWS2_SNOMED, "display": NEWS2_DISPLAY}],
            "text": "NEWS2 total score",
        },
        "subject": patient_ref(patient),
        "effectiveDateTime": fhir_time(s.scored_at),
        "issued": fhir_time(s.computed_at),
    });
    match s.total {
        Some(t) => r["valueInteger"] = json!(t),
        None => {
            r["dataAbsentReason"] = absent("not-applicable", "Not Applicable");
            let why = d["not_applicable"]
                .as_str()
                .unwrap_or("NEWS2 does not apply to this patient");
            notes.push(json!({"text": format!("NEWS2 not applicable: {why}")}));
        }
    }
    if !components.is_empty() {
        r["component"] = json!(components);
    }
    if !derived.is_empty() {
        r["derivedFrom"] = json!(derived);
    }
    if !notes.is_empty() {
        r["note"] = json!(notes);
    }
    let codes = vec![(systems::SNOMED.to_string(), NEWS2_SNOMED.to_string())];
    Built {
        id,
        key: Key {
            at: s.scored_at,
            kind: 1,
            row: s.id,
        },
        codes,
        resource: r,
    }
}

/// The stored codes Vigil exports as Observations, each with the codes of
/// the Observation it becomes (a blood pressure's two halves become one
/// panel): what decides, before anything is read, which of a patient's
/// series a `code` search needs.
fn exported() -> impl Iterator<Item = (&'static str, Vec<(String, String)>)> {
    let loinc = |codes: &[(&str, &str)]| -> Vec<(String, String)> {
        codes
            .iter()
            .map(|(c, _)| (systems::LOINC.to_string(), c.to_string()))
            .collect()
    };
    VITALS
        .iter()
        .map(move |v| (v.vigil, loinc(v.loinc)))
        .chain(["systolic", "diastolic"].map(|c| (c, loinc(&[BP_PANEL]))))
}

/// Which of a patient's series a search reads: the stored codes, and
/// whether the NEWS2 scores.
pub struct Series {
    codes: Vec<&'static str>,
    scores: bool,
}

impl Series {
    /// The series whose Observations can match every one of `codes`
    /// (each a list of alternatives); all of them when `codes` is empty.
    pub fn matching(codes: &[Vec<Token>]) -> Series {
        let wanted = |have: &[(String, String)]| {
            codes.iter().all(|alts| {
                alts.iter()
                    .any(|t| have.iter().any(|(s, c)| t.matches(s, c)))
            })
        };
        Series {
            codes: exported()
                .filter(|(_, have)| wanted(have))
                .map(|(c, _)| c)
                .collect(),
            scores: wanted(&[(systems::SNOMED.to_string(), NEWS2_SNOMED.to_string())]),
        }
    }
}

/// What one read of the series holds: the readings and scores, and the
/// time from which it may be incomplete (the earliest last time of a
/// series that filled its limit), if any did.
type Read = (Vec<ObservationRow>, Vec<ScoreRow>, Option<DateTime<Utc>>);

async fn read_series(
    state: &AppState,
    page: &HistoryPage,
    series: &Series,
) -> Result<Read, FhirError> {
    let mut rows = Vec::new();
    let mut cut: Option<DateTime<Utc>> = None;
    let mut filled = |n: usize, last: Option<DateTime<Utc>>| {
        if let Some(last) = last.filter(|_| i64::try_from(n).unwrap_or(i64::MAX) >= page.limit) {
            cut = Some(cut.map_or(last, |c| c.min(last)));
        }
    };
    for code in &series.codes {
        let got = state.store.observations_page(page, code).await?;
        filled(got.len(), got.last().map(|r| r.measured_at));
        rows.extend(got);
    }
    let mut scores = Vec::new();
    if series.scores {
        scores = state.store.scores_page(page).await?;
        filled(scores.len(), scores.last().map(|s| s.scored_at));
    }
    Ok((rows, scores, cut))
}

/// A patient's Observations in `span` (both ends included) that match
/// `dates` and come after `after`, in history order: at most `count`, and
/// whether more follow. Each series is read a bounded run at a time from
/// its index, so a search costs what its page holds, not what the
/// patient's history holds. A run is cut where a series may have more at
/// the same time, so both halves of a blood pressure are always read
/// together.
#[allow(clippy::too_many_arguments)]
pub async fn page(
    state: &AppState,
    patient: &vigil_store::PatientDetail,
    series: &Series,
    span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    dates: &[DateParam],
    after: Option<Key>,
    count: usize,
) -> Result<(Vec<Built>, bool), FhirError> {
    let kinds: BTreeMap<String, String> = patient
        .devices
        .iter()
        .map(|d| (d.id.clone(), d.kind.clone()))
        .collect();
    let (from, to) = span;
    let limit = i64::try_from(count.saturating_add(1))
        .unwrap_or(i64::MAX)
        .max(64);
    let mut since = match (from, after.map(|k| k.at)) {
        (Some(f), Some(a)) => Bound::Included(f.max(a)),
        (f, a) => f.or(a).map_or(Bound::Unbounded, Bound::Included),
    };
    let mut out: Vec<Built> = Vec::new();
    loop {
        let run = HistoryPage {
            patient_id: patient.id,
            after_id: None,
            since,
            to,
            limit,
        };
        let (mut rows, mut scores, cut) = read_series(state, &run, series).await?;
        let next = match cut {
            None => None,
            Some(t)
                if rows.iter().any(|r| r.measured_at < t)
                    || scores.iter().any(|s| s.scored_at < t) =>
            {
                rows.retain(|r| r.measured_at < t);
                scores.retain(|s| s.scored_at < t);
                Some(Bound::Included(t))
            }
            Some(t) => {
                // One series holds more than a run at this one instant (a
                // device whose clock stood still): walk the instant by id.
                let at = Instant {
                    patient_id: patient.id,
                    t,
                    limit,
                };
                if walk_instant(state, series, at, after, dates, &kinds, (&mut out, count)).await? {
                    return Ok((out, true));
                }
                rows.clear();
                scores.clear();
                Some(Bound::Excluded(t))
            }
        };
        let mut built = from_rows(patient.id, &rows, &kinds);
        built.extend(scores.iter().map(|s| from_score(patient.id, s)));
        built.retain(|b| after.is_none_or(|k| b.key > k) && b.matches(&[], dates));
        built.sort_by_key(|b| b.key);
        out.extend(built);
        if out.len() > count {
            out.truncate(count);
            return Ok((out, true));
        }
        match next {
            Some(n) => since = n,
            None => return Ok((out, false)),
        }
    }
}

/// One instant of a patient's history, read `limit` rows of a series at
/// a time.
#[derive(Clone, Copy)]
struct Instant {
    patient_id: i64,
    t: DateTime<Utc>,
    limit: i64,
}

/// The Observations at instant `at.t` that come after `after` and match
/// `dates`, added to `out` in history order: readings by stored id, then
/// scores by id, each series a bounded run at a time, so a kit whose clock
/// stood still (a day at 1 Hz is 86,400 readings at one instant) is never
/// read whole (hazard TS-26). A blood pressure is built, whole, in the run
/// that reads its first-stored half, its other half read from its message
/// wherever its id falls; a run that meets the second half leaves it out.
/// `true` once `out` holds more than `count` (cut to `count`): the page
/// is full.
async fn walk_instant(
    state: &AppState,
    series: &Series,
    at: Instant,
    after: Option<Key>,
    dates: &[DateParam],
    kinds: &BTreeMap<String, String>,
    (out, count): (&mut Vec<Built>, usize),
) -> Result<bool, FhirError> {
    let run = |after_id| HistoryPage {
        patient_id: at.patient_id,
        since: Bound::Included(at.t),
        to: Some(at.t),
        after_id,
        limit: at.limit,
    };
    let full = |n: usize| i64::try_from(n).unwrap_or(i64::MAX) >= at.limit;
    let start = after.filter(|k| k.at == at.t);
    let wanted = |b: &Built| after.is_none_or(|k| b.key > k) && b.matches(&[], dates);
    // Readings (none left when the cursor is at a score).
    let mut pos = start.filter(|k| k.kind == 0).map(|k| k.row);
    let mut readings = start.is_none_or(|k| k.kind == 0);
    while readings {
        let mut rows: Vec<ObservationRow> = Vec::new();
        let mut cut: Option<i64> = None;
        for code in &series.codes {
            let got = state.store.observations_page(&run(pos), code).await?;
            if let Some(last) = got.last().filter(|_| full(got.len())) {
                cut = Some(cut.map_or(last.id, |c| c.min(last.id)));
            }
            rows.extend(got);
        }
        if let Some(c) = cut {
            rows.retain(|r| r.id <= c);
        }
        let mut halves: BTreeMap<(&str, u32), usize> = BTreeMap::new();
        for r in rows.iter().filter(|r| is_half(&r.code)) {
            *halves.entry((r.device_id.as_str(), r.seq)).or_default() += 1;
        }
        let lone: Vec<(String, u32)> = halves
            .into_iter()
            .filter(|(_, n)| *n == 1)
            .map(|((d, s), _)| (d.to_string(), s))
            .collect();
        for (device, seq) in lone {
            let message = state
                .store
                .message_observations(
                    at.patient_id,
                    at.t,
                    &device,
                    seq,
                    &["systolic", "diastolic"],
                )
                .await?;
            for r in message {
                if !rows.iter().any(|x| x.id == r.id) {
                    rows.push(r);
                }
            }
        }
        // Built in an earlier run (its first half at or before `pos`).
        let floor = pos.map(|row| Key {
            at: at.t,
            kind: 0,
            row,
        });
        let mut built = from_rows(at.patient_id, &rows, kinds);
        built.retain(|b| floor.is_none_or(|f| b.key > f) && wanted(b));
        built.sort_by_key(|b| b.key);
        out.extend(built);
        if out.len() > count {
            out.truncate(count);
            return Ok(true);
        }
        match cut {
            Some(c) => pos = Some(c),
            None => readings = false,
        }
    }
    // Then the scores at that instant.
    let mut pos = start.filter(|k| k.kind == 1).map(|k| k.row);
    let mut scores = series.scores;
    while scores {
        let got = state.store.scores_page(&run(pos)).await?;
        let next = got.last().filter(|_| full(got.len())).map(|s| s.id);
        out.extend(
            got.iter()
                .map(|s| from_score(at.patient_id, s))
                .filter(|b| wanted(b)),
        );
        if out.len() > count {
            out.truncate(count);
            return Ok(true);
        }
        match next {
            Some(id) => pos = Some(id),
            None => scores = false,
        }
    }
    Ok(false)
}

/// A blood pressure's half (stored apart, exported as one panel).
fn is_half(code: &str) -> bool {
    matches!(code, "systolic" | "diastolic")
}

/// `GET /fhir/r4/Observation?patient=&code=&date=&_count=`: a `searchset`
/// Bundle, a page at a time.
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
    let mut codes = Vec::new();
    let mut dates = Vec::new();
    let mut paging = Paging::default();
    for (k, v) in &params {
        if paging.take(k, v)? {
            continue;
        }
        match k.as_str() {
            "patient" | "subject" if patient.is_none() => patient = Some(patient_param(v)?),
            "patient" | "subject" => {
                return Err(FhirError::Invalid("patient: give it once".into()));
            }
            "code" => codes.push(parse_token_list(v)?),
            "date" => dates.push(DateParam::parse(v)?),
            "_format" => {}
            other => {
                return Err(FhirError::Invalid(format!(
                    "unsupported search parameter {other:?} (supported: patient, code, date, _count)"
                )));
            }
        }
    }
    let patient = patient
        .ok_or_else(|| FhirError::Invalid("patient: required (searches are per patient)".into()))?;
    let after = paging.cursor.as_deref().map(Key::parse).transpose()?;
    let p = super::visible_patient(&state, &caller, patient).await?;
    let (found, more) = page(
        &state,
        &p,
        &Series::matching(&codes),
        bounds(&dates),
        &dates,
        after,
        paging.count(),
    )
    .await?;
    let next = more.then(|| found.last().map(|b| b.key.token())).flatten();
    // The total is known without reading everything only when this page is
    // everything (FHIR makes it optional).
    let total = (after.is_none() && !more).then_some(found.len());
    super::audited_searchset(
        &state,
        &caller,
        &headers,
        ("fhir.observation.read", "Observation"),
        patient,
        (raw.as_deref(), &params, &paging),
        Found {
            entries: found.into_iter().map(|b| b.resource).collect(),
            total,
            next,
        },
    )
    .await
}

/// `GET /fhir/r4/Observation/{id}`: the stored row (or score) the id names,
/// and, for a blood pressure, the other half of its message.
pub async fn read(
    State(state): State<AppState>,
    c: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let caller = caller(c)?;
    let not_found = || FhirError::NotFound("resource not found");
    let mut parts = id.splitn(3, '-');
    let (Some(patient), Some(kind), Some(row)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(not_found());
    };
    let patient = super::parse_id(patient)?;
    let row = super::parse_id(row).map_err(|_| not_found())?;
    if !matches!(kind, "vs" | "bp" | "news2") {
        return Err(not_found());
    }
    let p = super::visible_patient(&state, &caller, patient)
        .await
        .map_err(|_| not_found())?;
    let found = if kind == "news2" {
        state
            .store
            .score_row(patient, row)
            .await?
            .map(|s| from_score(patient, &s))
    } else {
        match state.store.observation_row(patient, row).await? {
            None => None,
            Some(r) => {
                // A blood pressure's other half is in the same message.
                let rows = if is_half(&r.code) {
                    state
                        .store
                        .message_observations(
                            patient,
                            r.measured_at,
                            &r.device_id,
                            r.seq,
                            &["systolic", "diastolic"],
                        )
                        .await?
                } else {
                    vec![r]
                };
                let kinds = p
                    .devices
                    .iter()
                    .map(|d| (d.id.clone(), d.kind.clone()))
                    .collect();
                from_rows(patient, &rows, &kinds)
                    .into_iter()
                    .find(|b| b.id == id)
            }
        }
    }
    .ok_or_else(not_found)?;
    crate::audit::record(
        &state,
        &caller,
        "fhir.observation.read",
        Some(patient),
        json!({"id": id}),
    )
    .await?;
    Ok(ok(&found.resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, code: &str, value: f64, seq: u32) -> ObservationRow {
        let t = DateTime::parse_from_rfc3339("2026-11-22T08:15:03Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("t");
        ObservationRow {
            id,
            code: code.into(),
            value: ObsValue::Number(value),
            unit: None,
            measured_at: t,
            received_at: t,
            device_id: "cuff-1".into(),
            seq,
        }
    }

    #[test]
    fn systolic_and_diastolic_of_one_message_make_one_panel() {
        let rows = [
            row(1, "systolic", 120.0, 7),
            row(2, "diastolic", 80.0, 7),
            row(3, "systolic", 130.0, 8),
            row(4, "pulse", 70.0, 7),
        ];
        let built = from_rows(5, &rows, &BTreeMap::new());
        let ids: Vec<&str> = built.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["5-vs-4", "5-bp-1", "5-bp-3"]);
        let panel = &built[1].resource;
        assert_eq!(panel["code"]["coding"][0]["code"], "85354-9");
        assert_eq!(panel["component"][0]["valueQuantity"]["value"], 120.0);
        assert_eq!(panel["component"][1]["valueQuantity"]["value"], 80.0);
        let lone = &built[2].resource;
        assert_eq!(
            lone["component"][1]["dataAbsentReason"]["coding"][0]["code"],
            "unknown"
        );
    }

    #[test]
    fn a_cursor_names_a_place_in_the_history_exactly() {
        let rows = [row(9, "pulse", 70.0, 1)];
        let key = from_rows(5, &rows, &BTreeMap::new())[0].key;
        assert_eq!(Key::parse(&key.token()).ok(), Some(key));
        for bad in ["", "1.0", "x.0.9", "1.2.9", "1.0.9.4", "1.0.x"] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_code_search_reads_only_the_series_that_can_match() {
        let loinc = |c: &str| parse_token_list(c).expect("token");
        let bp = Series::matching(&[loinc("http://loinc.org|85354-9")]);
        assert_eq!(
            (bp.codes, bp.scores),
            (vec!["systolic", "diastolic"], false)
        );
        let news2 = Series::matching(&[loinc(NEWS2_SNOMED)]);
        assert_eq!((news2.codes.len(), news2.scores), (0, true));
        let all = Series::matching(&[]);
        assert_eq!((all.codes.len(), all.scores), (VITALS.len() + 2, true));
        assert!(Series::matching(&[loinc("8480-6")]).codes.is_empty());
    }

    #[test]
    fn codes_vigil_does_not_export_are_left_out() {
        let rows = [row(1, "posture", 1.0, 1), row(2, "spo2", 97.0, 1)];
        let built = from_rows(5, &rows, &BTreeMap::new());
        assert_eq!(built.len(), 1);
        let codes: Vec<&str> = built[0].codes.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(codes, ["2708-6", "59408-5"]);
    }
}
