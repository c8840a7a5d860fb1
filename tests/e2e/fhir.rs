//! FHIR R4 export: every resource shape Vigil emits is checked by an
//! implementation that is not ours (`tools/fhir/validate.py`, built on the
//! `fhir.resources` models of FHIR 4.0.1), and the export keeps the API's
//! authentication, ward isolation and audit trail.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDevice, acked, assert_ack, publish_many, through_the_worker};

const INSTALL: &str =
    "python3 -m pip install --target tools/fhir/.deps -r tools/fhir/requirements.txt";

fn validator() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/fhir/validate.py")
}

/// Run the independent validator on one resource; panic with its errors.
/// With `VIGIL_FHIR_DUMP=DIR` set, each resource is also written to DIR
/// (e.g. to run the official HL7 validator on them elsewhere).
fn validate(label: &str, resource: &Value) {
    if let Some(dir) = std::env::var_os("VIGIL_FHIR_DUMP") {
        let name = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>();
        std::fs::create_dir_all(&dir).expect("dump dir");
        let path = PathBuf::from(dir).join(format!("{name}.json"));
        std::fs::write(
            path,
            serde_json::to_string_pretty(resource).unwrap_or_default(),
        )
        .expect("dump");
    }
    let (code, stderr) = run_validator(resource);
    match code {
        0 => {}
        _ => panic!(
            "{label} is not valid FHIR R4:\n{stderr}\n{}",
            serde_json::to_string_pretty(resource).unwrap_or_default()
        ),
    }
}

/// The validator's exit code (0 valid, 1 invalid) and its errors. Panics
/// with one line naming the install command when it cannot run at all.
fn run_validator(resource: &Value) -> (i32, String) {
    let mut child = Command::new("python3")
        .arg(validator())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("FHIR validator cannot run: python3 not found ({e}); install python3, then: {INSTALL}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(resource.to_string().as_bytes())
        .expect("write to validator");
    let out = child.wait_with_output().expect("validator runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    match out.status.code() {
        Some(2) => panic!("FHIR validator cannot run: {}", stderr.trim()),
        Some(c) => (c, stderr),
        None => panic!("FHIR validator was killed: {stderr}"),
    }
}

/// The validator is only worth running if it says no: each of these breaks
/// one rule (R4 base, or a profile Vigil claims) and must be refused.
#[test]
fn the_independent_validator_refuses_what_r4_and_the_claimed_profiles_forbid() {
    let vs = json!({
        "resourceType": "Observation", "id": "1-vs-1", "status": "final",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns", "http://hl7.org/fhir/StructureDefinition/heartrate"]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/1"}, "effectiveDateTime": "2026-11-22T08:15:03Z",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    });
    assert_eq!(
        run_validator(&vs),
        (0, String::new()),
        "the well-formed heart rate passes"
    );
    let broken = |path: &[&str], value: Value| {
        let mut r = vs.clone();
        let mut at = &mut r;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        match value {
            Value::Null => {
                at.as_object_mut()
                    .expect("object")
                    .remove(path[path.len() - 1]);
            }
            v => at[path[path.len() - 1]] = v,
        }
        r
    };
    for (why, r) in [
        ("no status", broken(&["status"], Value::Null)),
        ("unknown element", broken(&["colour"], json!("red"))),
        (
            "bad dateTime",
            broken(&["effectiveDateTime"], json!("22/11/2026")),
        ),
        (
            "text as a decimal",
            broken(&["valueQuantity", "value"], json!("seventy")),
        ),
        (
            "heart rate in the wrong unit",
            broken(&["valueQuantity", "code"], json!("Hz")),
        ),
        (
            "heart rate without its LOINC code",
            broken(&["code"], json!({"text": "pulse"})),
        ),
        (
            "vital sign without category",
            broken(&["category"], Value::Null),
        ),
        (
            "vital sign without a time",
            broken(&["effectiveDateTime"], Value::Null),
        ),
    ] {
        let (code, errors) = run_validator(&r);
        assert_eq!(code, 1, "{why} must be refused: {r}");
        assert!(!errors.is_empty(), "{why}: the errors are named");
    }
    let patient = json!({"resourceType": "Patient", "id": "1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}]});
    assert_eq!(
        run_validator(&patient).0,
        1,
        "an NHS number with a wrong check digit is refused"
    );
}

/// GET a FHIR route with the admin's token: status and body.
async fn fhir(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.get(path).send().await.expect("request");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = r.json().await.expect("json body");
    assert!(
        ct.starts_with("application/fhir+json"),
        "{path}: content-type {ct:?}"
    );
    (status, body)
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn has_code(r: &Value, code: &str) -> bool {
    r["code"]["coding"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["code"] == code))
}

fn with_code(bundle: &Value, code: &str) -> Vec<Value> {
    entries(bundle)
        .into_iter()
        .filter(|r| has_code(r, code))
        .collect()
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A complete set with `rr`, `spo2`, `pulse` as given, plus diastolic BP and peak flow.
fn readings(rr: i64, spo2: i64, pulse: i64) -> Value {
    json!([
        {"code": "resp_rate", "value": rr, "unit": "/min"},
        {"code": "spo2", "value": spo2, "unit": "%"},
        {"code": "o2_flow", "value": 0, "unit": "L/min"},
        {"code": "systolic", "value": 125, "unit": "mm[Hg]"},
        {"code": "diastolic", "value": 78, "unit": "mm[Hg]"},
        {"code": "pulse", "value": pulse, "unit": "/min"},
        {"code": "acvpu", "value": "A"},
        {"code": "temp", "value": 36.9, "unit": "Cel"},
        {"code": "pef", "value": 420, "unit": "L/min"}
    ])
}

/// A patient with: a partial score, a full set that raises a NEWS2 alert
/// (RR 22 → 2, SpO2 94 → 1, pulse 112 → 2: medium), and a heart rate
/// measured two hours ago that arrived late.
async fn nhs_number_of(app: &TestApp, patient: i64) -> String {
    app.store
        .patient_get(patient)
        .await
        .expect("store")
        .expect("patient")
        .nhs_number
}

async fn ward_with_history(app: &TestApp) -> (i64, TestDevice) {
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 95, "unit": "%"}, {"code": "pulse", "value": 72, "unit": "/min"}])).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    assert_eq!(ws.next_event("score").await["score"]["partial"], true);
    dev.publish_obs(2, readings(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[2]);
    assert_eq!(ws.next_event("alert").await["alert"]["severity"], "medium");
    dev.publish_obs_at(
        3,
        Utc::now() - Duration::hours(2),
        json!([{"code": "pulse", "value": 64, "unit": "/min"}]),
    )
    .await;
    assert_ack(&dev.next_cmd().await, &[3]);
    (patient, dev)
}

#[tokio::test]
async fn every_fhir_resource_vigil_emits_passes_an_independent_r4_validator_and_is_audited() {
    let app = TestApp::spawn().await;
    let (patient, _dev) = ward_with_history(&app).await;

    let (status, p) = fhir(&app, &format!("/fhir/r4/Patient/{patient}")).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["identifier"][0]["system"],
        "https://fhir.nhs.uk/Id/nhs-number"
    );
    let nhs_number = nhs_number_of(&app, patient).await;
    assert_eq!(p["identifier"][0]["value"], nhs_number.as_str());
    assert_eq!(
        p["meta"]["profile"][0],
        "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
    );
    validate("Patient", &p);

    let (status, bundle) = fhir(&app, &format!("/fhir/r4/Observation?patient={patient}")).await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(
        (bundle["resourceType"].as_str(), bundle["type"].as_str()),
        (Some("Bundle"), Some("searchset"))
    );
    validate("Observation searchset Bundle", &bundle);

    // Each kind of Observation, on its own.
    for (code, what) in [
        ("8867-4", "heart rate"),
        ("9279-1", "respiratory rate"),
        ("2708-6", "SpO2"),
        ("8310-5", "body temperature"),
        ("85354-9", "blood pressure panel"),
        ("19935-6", "peak flow"),
        ("1104051000000101", "NEWS2"),
    ] {
        let found = with_code(&bundle, code);
        assert!(
            !found.is_empty(),
            "no {what} Observation ({code}) in {bundle}"
        );
        validate(what, &found[0]);
    }
    let spo2 = &with_code(&bundle, "2708-6")[0];
    assert!(
        has_code(spo2, "59408-5"),
        "SpO2 carries the pulse-oximetry code too: {spo2}"
    );
    assert_eq!(spo2["valueQuantity"]["system"], "http://unitsofmeasure.org");
    assert_eq!(spo2["device"]["reference"], "#device");
    assert_eq!(spo2["contained"][0]["resourceType"], "Device");
    let bp = with_code(&bundle, "85354-9");
    assert_eq!(
        bp.len(),
        1,
        "systolic and diastolic of one message are one panel: {bundle}"
    );
    let comps = &bp[0]["component"];
    assert_eq!(
        (
            comps[0]["code"]["coding"][0]["code"].as_str(),
            comps[0]["valueQuantity"]["value"].as_f64()
        ),
        (Some("8480-6"), Some(125.0))
    );
    assert_eq!(
        (
            comps[1]["code"]["coding"][0]["code"].as_str(),
            comps[1]["valueQuantity"]["value"].as_f64()
        ),
        (Some("8462-4"), Some(78.0))
    );
    assert_eq!(comps[0]["valueQuantity"]["code"], "mm[Hg]");
    assert_eq!(
        with_code(&bundle, "19935-6")[0]["valueQuantity"]["code"],
        "L/min"
    );

    let news2 = with_code(&bundle, "1104051000000101");
    assert!(
        news2
            .iter()
            .all(|n| n["code"]["coding"].as_array().map(Vec::len) == Some(1)),
        "NEWS2 is coded in SNOMED CT only (LOINC 88330-6 is not a NEWS term)"
    );
    let partial = news2
        .iter()
        .find(|n| n["note"].is_array())
        .expect("the partial score says so in a note");
    assert!(
        partial["note"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("lower bound")),
        "{partial}"
    );
    validate("partial NEWS2", partial);
    let full = news2
        .iter()
        .find(|n| n["valueInteger"] == 5)
        .expect("the full score: 5");
    assert!(
        full["note"].is_null(),
        "a complete score has no partial note: {full}"
    );
    let sub = |code: &str| {
        full["component"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["code"]["coding"][0]["code"] == code))
            .map(|c| c["valueInteger"].clone())
    };
    assert_eq!(
        sub("1104351000000103"),
        Some(json!(2)),
        "pulse 112 scores 2: {full}"
    );
    assert_eq!(
        sub("1104301000000104"),
        Some(json!(2)),
        "RR 22 scores 2: {full}"
    );
    assert_eq!(
        sub("1104311000000102"),
        Some(json!(1)),
        "SpO2 94% on scale 1 scores 1: {full}"
    );
    assert_eq!(
        full["component"]
            .as_array()
            .map(|c| c.iter().filter(|c| c["valueInteger"].is_i64()).count()),
        Some(7)
    );

    // A read of one Observation by id.
    let id = bp[0]["id"].as_str().expect("id");
    let (status, one) = fhir(&app, &format!("/fhir/r4/Observation/{id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one, bp[0]);
    validate("Observation read", &one);

    let (status, flags) = fhir(&app, &format!("/fhir/r4/Flag?patient={patient}")).await;
    assert_eq!(status, 200, "{flags}");
    validate("Flag searchset Bundle", &flags);
    let flag = entries(&flags)
        .into_iter()
        .find(|f| f["code"]["coding"][0]["code"] == "news2")
        .expect("the NEWS2 alert as a Flag");
    assert_eq!(flag["status"], "active");
    validate("Flag", &flag);
    let (status, flag_read) = fhir(
        &app,
        &format!("/fhir/r4/Flag/{}", flag["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!((status, &flag_read), (200, &flag));

    let (status, episodes) = fhir(&app, &format!("/fhir/r4/EpisodeOfCare?patient={patient}")).await;
    assert_eq!(status, 200, "{episodes}");
    validate("EpisodeOfCare searchset Bundle", &episodes);
    let episode = entries(&episodes).pop().expect("the episode");
    assert_eq!(episode["status"], "active");
    let eid = episode["id"].as_str().expect("id").to_string();
    let (status, e) = fhir(&app, &format!("/fhir/r4/EpisodeOfCare/{eid}")).await;
    assert_eq!(status, 200, "{e}");
    validate("EpisodeOfCare", &e);

    // A reading a clinician entered: the clinician as the performer, no device.
    let r = app
        .post(
            &format!("/api/v1/patients/{patient}/observations"),
            json!({"obs": [{"code": "resp_rate", "value": 19, "unit": "/min"}]}),
        )
        .send()
        .await
        .expect("enter");
    assert_eq!(r.status(), 201);
    let (status, rr) = fhir(
        &app,
        &format!("/fhir/r4/Observation?patient={patient}&code=http://loinc.org|9279-1"),
    )
    .await;
    assert_eq!(status, 200, "{rr}");
    let entered = entries(&rr)
        .into_iter()
        .find(|o| o["valueQuantity"]["value"] == 19.0)
        .unwrap_or_else(|| panic!("the entered respiratory rate: {rr}"));
    assert_eq!(
        entered["performer"],
        json!([{"display": "admin"}]),
        "{entered}"
    );
    assert!(
        entered.get("device").is_none() && entered.get("contained").is_none(),
        "{entered}"
    );
    validate("Observation entered by a clinician", &entered);

    // A clinician's note as a Communication, searched and read.
    let r = app
        .post(
            &format!("/api/v1/patients/{patient}/notes"),
            json!({"text": "Phoned: breathless on the stairs only.\nRescue pack if sputum turns green."}),
        )
        .send()
        .await
        .expect("note");
    assert_eq!(r.status(), 201);
    let (status, notes) = fhir(&app, &format!("/fhir/r4/Communication?patient={patient}")).await;
    assert_eq!(status, 200, "{notes}");
    validate("Communication searchset Bundle", &notes);
    let note = entries(&notes).pop().expect("the note");
    assert_eq!(
        (
            note["status"].as_str(),
            note["sender"]["display"].as_str(),
            note["subject"]["reference"].as_str()
        ),
        (
            Some("completed"),
            Some("admin"),
            Some(format!("Patient/{patient}").as_str())
        )
    );
    assert_eq!(
        note["payload"][0]["contentString"],
        "Phoned: breathless on the stairs only.\nRescue pack if sputum turns green."
    );
    validate("Communication", &note);
    let (status, note_read) = fhir(
        &app,
        &format!(
            "/fhir/r4/Communication/{}",
            note["id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!((status, &note_read), (200, &note));

    // No discharge bundle before the discharge.
    let (status, oo) = fhir(
        &app,
        &format!("/fhir/r4/EpisodeOfCare/{eid}/$discharge-bundle"),
    )
    .await;
    assert_eq!(
        (status, oo["resourceType"].as_str()),
        (409, Some("OperationOutcome")),
        "{oo}"
    );
    validate("OperationOutcome (409)", &oo);

    app.discharge(patient).await;
    let (_, e) = fhir(&app, &format!("/fhir/r4/EpisodeOfCare/{eid}")).await;
    assert_eq!(e["status"], "finished");
    assert!(e["period"]["end"].is_string(), "{e}");
    let (status, discharge) = fhir(
        &app,
        &format!("/fhir/r4/EpisodeOfCare/{eid}/$discharge-bundle"),
    )
    .await;
    assert_eq!(status, 200, "{discharge}");
    assert_eq!(discharge["type"], "collection");
    validate("discharge Bundle", &discharge);
    let kinds: Vec<String> = entries(&discharge)
        .iter()
        .filter_map(|r| r["resourceType"].as_str().map(str::to_string))
        .collect();
    for kind in [
        "Patient",
        "EpisodeOfCare",
        "Observation",
        "Flag",
        "Communication",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "the discharge bundle holds a {kind}: {kinds:?}"
        );
    }
    assert!(
        !with_code(&discharge, "85354-9").is_empty()
            && !with_code(&discharge, "1104051000000101").is_empty()
    );

    // The CapabilityStatement describes the server, not a patient: no credentials needed.
    let r = reqwest::get(format!("{}/fhir/r4/metadata", app.http))
        .await
        .expect("metadata");
    assert_eq!(r.status(), 200);
    let cs: Value = r.json().await.expect("json");
    assert_eq!(
        (cs["resourceType"].as_str(), cs["fhirVersion"].as_str()),
        (Some("CapabilityStatement"), Some("4.0.1"))
    );
    validate("CapabilityStatement", &cs);

    let (status, oo) = fhir(&app, "/fhir/r4/Patient/999999").await;
    assert_eq!(
        (status, oo["issue"][0]["code"].as_str()),
        (404, Some("not-found")),
        "{oo}"
    );
    validate("OperationOutcome (404)", &oo);
    let (status, oo) = fhir(
        &app,
        &format!("/fhir/r4/Observation?patient={patient}&date=yesterday"),
    )
    .await;
    assert_eq!(
        (status, oo["issue"][0]["code"].as_str()),
        (400, Some("invalid")),
        "{oo}"
    );
    validate("OperationOutcome (400)", &oo);

    let audit: Value = app
        .get(&format!("/api/v1/audit?patient={patient}"))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = audit
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in [
        "fhir.patient.read",
        "fhir.observation.read",
        "fhir.flag.read",
        "fhir.episodeofcare.read",
        "fhir.discharge-bundle.read",
    ] {
        assert!(
            actions.contains(&action),
            "{action} is in the audit trail: {actions:?}"
        );
    }
}

#[tokio::test]
async fn observation_search_filters_by_code_and_date() {
    let app = TestApp::spawn().await;
    let (patient, _dev) = ward_with_history(&app).await;
    let search = |q: String| {
        let app = &app;
        async move {
            let (status, b) =
                fhir(app, &format!("/fhir/r4/Observation?patient={patient}&{q}")).await;
            assert_eq!(status, 200, "{q}: {b}");
            entries(&b)
        }
    };
    let codes = |rs: &[Value]| -> Vec<String> {
        rs.iter()
            .map(|r| {
                r["code"]["coding"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };

    let hr = search("code=http://loinc.org|8867-4".into()).await;
    assert_eq!(
        codes(&hr),
        ["8867-4", "8867-4", "8867-4"],
        "three heart rates: the late one and two live"
    );
    assert_eq!(
        search("code=8867-4".into()).await,
        hr,
        "a plain code matches any system"
    );
    assert!(
        search("code=http://snomed.info/sct|8867-4".into())
            .await
            .is_empty(),
        "the system must match when given"
    );
    let mixed = search("code=85354-9,8310-5".into()).await;
    assert_eq!(codes(&mixed).iter().filter(|c| *c == "85354-9").count(), 1);
    assert_eq!(codes(&mixed).iter().filter(|c| *c == "8310-5").count(), 1);
    assert_eq!(mixed.len(), 2);
    let news2 = search("code=http://snomed.info/sct|1104051000000101".into()).await;
    assert!(
        news2.len() >= 2 && news2.iter().all(|r| r["valueInteger"].is_i64()),
        "{news2:?}"
    );
    assert!(
        search("code=8480-6".into()).await.is_empty(),
        "component codes are not Observation.code"
    );

    let hour_ago = ts(Utc::now() - Duration::hours(1));
    let recent = search(format!("code=8867-4&date=ge{hour_ago}")).await;
    assert_eq!(recent.len(), 2, "{recent:?}");
    let late = search(format!("code=8867-4&date=lt{hour_ago}")).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["valueQuantity"]["value"], 64.0);
    let window = format!(
        "date=ge{}&date=le{}",
        ts(Utc::now() - Duration::hours(3)),
        ts(Utc::now() - Duration::minutes(90))
    );
    assert_eq!(
        search(format!("code=8867-4&{window}")).await,
        late,
        "repeated date parameters all hold"
    );
    // A bare date is the whole (UTC) day.
    let day = recent[0]["effectiveDateTime"].as_str().expect("time")[..10].to_string();
    assert!(
        search(format!("code=8867-4&date={day}"))
            .await
            .contains(&recent[0])
    );
    let tomorrow = (Utc::now() + Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        search(format!("code=8867-4&date=ge{tomorrow}")).await,
        Vec::<Value>::new()
    );
    assert_eq!(
        search(format!("code=9279-1&date=le{tomorrow}")).await.len(),
        1
    );

    for bad in [
        "date=ge22/11/2026",
        "code=",
        "code=http://loinc.org|",
        "category=vital-signs",
    ] {
        let (status, oo) = fhir(
            &app,
            &format!("/fhir/r4/Observation?patient={patient}&{bad}"),
        )
        .await;
        assert_eq!(
            (status, oo["resourceType"].as_str()),
            (400, Some("OperationOutcome")),
            "{bad}: {oo}"
        );
    }
    let (status, oo) = fhir(&app, "/fhir/r4/Observation?code=8867-4").await;
    assert_eq!(status, 400, "a search names its patient: {oo}");
}

#[tokio::test]
async fn fhir_needs_credentials_and_hides_other_wards_patients() {
    let app = TestApp::spawn().await;
    let (patient, _dev) = ward_with_history(&app).await;
    let nhs_number = nhs_number_of(&app, patient).await;
    let (_, episodes) = fhir(&app, &format!("/fhir/r4/EpisodeOfCare?patient={patient}")).await;
    let eid = entries(&episodes)[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, flags) = fhir(&app, &format!("/fhir/r4/Flag?patient={patient}")).await;
    let flag = entries(&flags)[0]["id"].as_str().expect("id").to_string();
    let (_, obs) = fhir(&app, &format!("/fhir/r4/Observation?patient={patient}")).await;
    let obs = entries(&obs)[0]["id"].as_str().expect("id").to_string();
    let note: Value = app
        .post(
            &format!("/api/v1/patients/{patient}/notes"),
            json!({"text": "Seen at home."}),
        )
        .send()
        .await
        .expect("note")
        .json()
        .await
        .expect("json");
    let note = format!("{patient}-{}", note["id"]);
    let routes = [
        format!("/fhir/r4/Communication?patient={patient}"),
        format!("/fhir/r4/Communication/{note}"),
        format!("/fhir/r4/Patient/{patient}"),
        format!("/fhir/r4/Observation?patient={patient}"),
        format!("/fhir/r4/Observation/{obs}"),
        format!("/fhir/r4/Flag?patient={patient}"),
        format!("/fhir/r4/Flag/{flag}"),
        format!("/fhir/r4/EpisodeOfCare?patient={patient}"),
        format!("/fhir/r4/EpisodeOfCare/{eid}"),
        format!("/fhir/r4/EpisodeOfCare/{eid}/$discharge-bundle"),
    ];

    let anonymous = reqwest::Client::new();
    for route in &routes {
        let r = anonymous
            .get(format!("{}{route}", app.http))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401, "{route}");
        assert!(r.headers().contains_key("www-authenticate"), "{route}");
        let oo: Value = r.json().await.expect("json");
        assert_eq!(
            (oo["resourceType"].as_str(), oo["issue"][0]["code"].as_str()),
            (Some("OperationOutcome"), Some("login")),
            "{route}"
        );
        validate("OperationOutcome (401)", &oo);
    }
    let r = anonymous
        .get(format!("{}/fhir/r4/Patient/{patient}", app.http))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);

    let outsider = app.outsider_token().await;
    for route in &routes {
        let r = anonymous
            .get(format!("{}{route}", app.http))
            .bearer_auth(&outsider)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 404, "another ward's user gets 404 for {route}");
        let oo: Value = r.json().await.expect("json");
        assert_eq!(oo["issue"][0]["code"], "not-found", "{route}");
        assert!(
            !oo.to_string().contains(&nhs_number) && !oo.to_string().contains("Test Patient"),
            "{oo}"
        );
    }
    let audit: Value = app
        .get(&format!("/api/v1/audit?patient={patient}"))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert!(
        audit
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["username"] != "outsider"),
        "refused reads are not recorded as reads of the patient: {audit}"
    );

    // The dashboard's session cookie works too.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let r = app.login_with(&browser, "admin", "admin-password").await;
    assert_eq!(r.status(), 200);
    let r = browser
        .get(format!("{}/fhir/r4/Patient/{patient}", app.http))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

/// Follow a search's `next` links from `first` to the end: every page's
/// entries, in order, and each page's length.
async fn every_page(app: &TestApp, first: &str) -> (Vec<Value>, Vec<usize>) {
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    let mut path = Some(first.to_string());
    while let Some(p) = path.take() {
        let (status, bundle) = fhir(app, &p).await;
        assert_eq!(status, 200, "{p}: {bundle}");
        let page = entries(&bundle);
        sizes.push(page.len());
        all.extend(page);
        let next = bundle["link"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str());
        if let Some(url) = next {
            let at = url.find("/fhir/r4/").expect("a FHIR link");
            path = Some(url[at..].to_string());
        }
        assert!(sizes.len() < 200, "paging ends");
    }
    (all, sizes)
}

/// A discharge Bundle is written as it is read, a page of Observations at
/// a time (hazard TS-26): a stay longer than a page is whole in it, each
/// Observation once, in order, as a search pages through the same stay.
#[tokio::test]
async fn a_discharge_bundle_longer_than_a_page_holds_every_observation_once_in_order() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;
    let episode = app.get_json(&format!("/api/v1/patients/{patient}")).await["episode"].clone();
    let admitted: chrono::DateTime<Utc> =
        serde_json::from_value(episode["admitted_at"].clone()).expect("admitted_at");
    // Readings stamped to the second, from the second of admission on: a
    // few seconds of a stay, 300 sets a second.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let set = |i: i64| {
        json!([
            {"code": "spo2", "value": 90 + i % 8, "unit": "%"},
            {"code": "pulse", "value": 60 + i % 50, "unit": "/min"},
            {"code": "systolic", "value": 110 + i % 30, "unit": "mm[Hg]"},
            {"code": "diastolic", "value": 70 + i % 20, "unit": "mm[Hg]"}
        ])
    };
    publish_many(
        &mut dev,
        1_200,
        |i| admitted + Duration::seconds(i / 300),
        set,
    )
    .await;
    through_the_worker(&app, patient).await;
    app.discharge(patient).await;
    let eid = format!("{patient}-{}", episode["id"]);

    let (status, bundle) = fhir(
        &app,
        &format!("/fhir/r4/EpisodeOfCare/{eid}/$discharge-bundle"),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    validate("a long stay's discharge Bundle", &bundle);
    let all = entries(&bundle);
    let observations: Vec<Value> = all
        .iter()
        .filter(|r| r["resourceType"] == "Observation")
        .cloned()
        .collect();
    assert!(
        observations.len() >= 3 * 1_200,
        "every SpO2, pulse and panel, and the scores: {}",
        observations.len()
    );
    let kinds: Vec<&str> = all
        .iter()
        .filter_map(|r| r["resourceType"].as_str())
        .collect();
    assert_eq!(kinds[..2], ["Patient", "EpisodeOfCare"]);
    let mut unique = ids(&observations);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), observations.len(), "each Observation once");
    // The same Observations a search of the stay pages through, in the
    // same order (pages of 333 against the Bundle's 1,000).
    let (paged, _) = every_page(
        &app,
        &format!("/fhir/r4/Observation?patient={patient}&_count=333"),
    )
    .await;
    assert_eq!(ids(&observations), ids(&paged));
    for o in &observations {
        if has_code(o, "85354-9") {
            assert!(
                o["component"][1]["valueQuantity"]["value"].is_number(),
                "a panel whole: {o}"
            );
        }
    }
}

fn ids(rs: &[Value]) -> Vec<String> {
    rs.iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn searches_page_through_a_long_history_in_order_and_keep_blood_pressures_whole() {
    let app = TestApp::spawn().await;
    let (patient, mut dev) = app.patient_with_device().await;
    let t0 = Utc::now() - Duration::hours(3);
    let mut seq = 0;
    // Forty sets a minute apart, then seventy readings from a kit whose
    // clock stood still: more at one instant than a page reads at a time.
    for i in 0..40 {
        seq += 1;
        let set = json!([
            {"code": "spo2", "value": 95, "unit": "%"},
            {"code": "pulse", "value": 70 + i, "unit": "/min"},
            {"code": "systolic", "value": 120 + i, "unit": "mm[Hg]"},
            {"code": "diastolic", "value": 80, "unit": "mm[Hg]"}
        ]);
        dev.publish_obs_at(seq, t0 + Duration::minutes(i), set)
            .await;
    }
    let stuck = t0 + Duration::minutes(50);
    for _ in 0..70 {
        seq += 1;
        dev.publish_obs_at(
            seq,
            stuck,
            json!([{"code": "spo2", "value": 96, "unit": "%"}]),
        )
        .await;
    }
    // Seventy blood pressures at another stopped instant, each half apart
    // from the other in its message (and in either order), so that runs
    // of a series end between a message's halves; a panel's halves are
    // told apart by their values (diastolic = systolic - 70).
    let stuck_bp = t0 + Duration::minutes(55);
    for i in 0..70 {
        seq += 1;
        let (sys, dia) = (
            json!({"code": "systolic", "value": 130 + i, "unit": "mm[Hg]"}),
            json!({"code": "diastolic", "value": 60 + i, "unit": "mm[Hg]"}),
        );
        let pulse = json!({"code": "pulse", "value": 60 + i, "unit": "/min"});
        let set = if i % 2 == 0 {
            json!([sys, pulse, dia])
        } else {
            json!([dia, pulse, sys])
        };
        dev.publish_obs_at(seq, stuck_bp, set).await;
    }
    acked(&mut dev, seq).await;
    // Every reading through the worker, so no score arrives mid-search.
    through_the_worker(&app, patient).await;

    let base = format!("/fhir/r4/Observation?patient={patient}");
    let (status, whole) = fhir(&app, &format!("{base}&_count=1000")).await;
    assert_eq!(status, 200, "{whole}");
    let whole_entries = entries(&whole);
    assert_eq!(
        whole["total"],
        whole_entries.len(),
        "one page: the total is given"
    );
    assert!(
        whole_entries.len() >= 40 * 3 + 70 + 70 * 2,
        "every reading and panel: {}",
        whole_entries.len()
    );
    let (paged, sizes) = every_page(&app, &format!("{base}&_count=7")).await;
    assert_eq!(
        ids(&paged),
        ids(&whole_entries),
        "the pages hold the whole history once, in order"
    );
    assert!(
        sizes[..sizes.len() - 1].iter().all(|n| *n == 7) && *sizes.last().expect("a page") <= 7,
        "{sizes:?}"
    );
    let times: Vec<String> = paged
        .iter()
        .map(|r| {
            r["effectiveDateTime"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "ordered by time");

    // Blood pressures: a panel is never split, whatever the page size.
    // At a stopped instant too, where a page walks the instant by stored
    // id (runs of 64: one of the seventy ends between a message's halves).
    let (panels, _) = every_page(&app, &format!("{base}&code=85354-9&_count=3")).await;
    assert_eq!(panels.len(), 40 + 70);
    let value = |p: &Value, half: usize| p["component"][half]["valueQuantity"]["value"].as_f64();
    for p in &panels {
        for half in 0..2 {
            assert!(value(p, half).is_some(), "{p}");
        }
    }
    let stopped: Vec<&Value> = panels
        .iter()
        .filter(|p| p["effectiveDateTime"] == ts(stuck_bp))
        .collect();
    assert_eq!(stopped.len(), 70);
    for p in &stopped {
        assert_eq!(
            value(p, 0).map(|s| s - 70.0),
            value(p, 1),
            "the halves of one message: {p}"
        );
    }
    let mut systolics: Vec<f64> = stopped.iter().filter_map(|p| value(p, 0)).collect();
    systolics.sort_by(f64::total_cmp);
    systolics.dedup();
    assert_eq!(systolics.len(), 70, "each blood pressure once");
    let panel_ids = |rs: &[Value]| -> Vec<String> {
        ids(rs).into_iter().filter(|i| i.contains("-bp-")).collect()
    };
    assert_eq!(
        ids(&panels),
        panel_ids(&whole_entries),
        "the panels in the whole history's order"
    );
    // One of them read by id: its halves from its message.
    let (status, read) = fhir(
        &app,
        &format!(
            "/fhir/r4/Observation/{}",
            stopped[33]["id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!((status, &read), (200, stopped[33]));
    // The next link keeps the search's other parameters.
    let (_, first) = fhir(&app, &format!("{base}&code=85354-9&_count=3")).await;
    let next = first["link"][1]["url"].as_str().expect("a next link");
    assert!(
        first["total"].is_null(),
        "an Observation page with more to come gives no total (it is not counted)"
    );
    validate("Observation searchset page with a next link", &first);
    assert!(
        next.contains("code=85354-9") && next.contains("_count=3"),
        "{next}"
    );

    // A date window pages the same as it reads whole.
    let window = format!(
        "{base}&date=ge{}&date=le{}",
        ts(t0 + Duration::minutes(10)),
        ts(stuck)
    );
    let (_, whole_window) = fhir(&app, &format!("{window}&_count=1000")).await;
    let (paged_window, _) = every_page(&app, &format!("{window}&_count=11")).await;
    assert_eq!(ids(&paged_window), ids(&entries(&whole_window)));
    assert!(!paged_window.is_empty() && paged_window.len() < paged.len());

    // One reading of the seventy at one instant, read by id.
    let one = whole_entries
        .iter()
        .rev()
        .find(|r| r["id"].as_str().is_some_and(|i| i.contains("-vs-")))
        .expect("a reading");
    let (status, read) = fhir(
        &app,
        &format!("/fhir/r4/Observation/{}", one["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!((status, &read), (200, one));

    // More than the most is served as the most; nonsense is refused.
    let (status, big) = fhir(&app, &format!("{base}&_count=5000")).await;
    assert_eq!(status, 200);
    assert_eq!(entries(&big).len(), whole_entries.len().min(1000));
    for bad in [
        "_count=0",
        "_count=ten",
        "_cursor=yesterday",
        "_cursor=1.7.3",
        "_count=2&_count=3",
    ] {
        let (status, oo) = fhir(&app, &format!("{base}&{bad}")).await;
        assert_eq!(
            (status, oo["resourceType"].as_str()),
            (400, Some("OperationOutcome")),
            "{bad}: {oo}"
        );
    }

    // The patient's notes page the same way, with their total.
    for i in 0..3 {
        let r = app
            .post(
                &format!("/api/v1/patients/{patient}/notes"),
                json!({"text": format!("call {i}")}),
            )
            .send()
            .await
            .expect("note");
        assert_eq!(r.status(), 201);
    }
    let (status, notes) = fhir(
        &app,
        &format!("/fhir/r4/Communication?patient={patient}&_count=2"),
    )
    .await;
    assert_eq!(
        (status, entries(&notes).len(), &notes["total"]),
        (200, 2, &json!(3))
    );
    let (all_notes, sizes) = every_page(
        &app,
        &format!("/fhir/r4/Communication?patient={patient}&_count=2"),
    )
    .await;
    assert_eq!((all_notes.len(), sizes), (3, vec![2, 1]));
    drop(dev);
}
