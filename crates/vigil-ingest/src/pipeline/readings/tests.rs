//! The readings held for scoring answer as the store does: a real SQLite
//! store, written and read in random order, against what the worker holds.

use chrono::{Duration, TimeZone};
use proptest::prelude::*;
use vigil_store::{BatchOutcome, NewObsMessage, NewObservation, NewPatient, ObsValue};

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 8, 0, 0).unwrap()
}

/// Codes NEWS2 reads, and one it does not (never held, never read).
const CODES: [(&str, Option<&str>); 5] = [
    ("spo2", Some("%")),
    ("pulse", Some("/min")),
    ("resp_rate", Some("/min")),
    ("acvpu", None),
    ("diastolic", Some("mm[Hg]")),
];

#[derive(Clone, Debug)]
enum Op {
    /// Store a message of one observation measured at t0 + `ms`; `resend`
    /// repeats the previous message's (device, seq) (a duplicate).
    Store {
        code: usize,
        value: u8,
        ms: i64,
        resend: bool,
    },
    /// Score from `first` to `last` (t0 + ms), as a pass does.
    Read { first: i64, span: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    // Times in a 20 min range with ties and late arrivals; some share a
    // millisecond.
    let ms = prop_oneof![(0i64..20).prop_map(|m| m * 60_000), 0i64..1_200_000];
    prop_oneof![
        3 => (0usize..CODES.len(), 0u8..5, ms.clone(), prop::bool::weighted(0.1))
            .prop_map(|(code, value, ms, resend)| Op::Store { code, value, ms, resend }),
        1 => (ms, 0i64..600_000).prop_map(|(first, span)| Op::Read { first, span }),
    ]
}

fn value(code: &str, v: u8) -> ObsValue {
    match code {
        "acvpu" => ObsValue::Text(["A", "C", "V", "P", "U"][usize::from(v)].into()),
        "spo2" => ObsValue::Number(90.0 + f64::from(v)),
        _ => ObsValue::Number(60.0 + f64::from(v) * 7.5),
    }
}

/// The rows scoring uses at `at`: the newest of each code at or before it.
fn scored_at(read: &ScoringReads, at: DateTime<Utc>) -> Vec<vigil_clinical::Reading> {
    let mut newest: BTreeMap<&str, &ObservationRow> = BTreeMap::new();
    for r in read.base.iter().chain(&read.later) {
        if r.measured_at <= at
            && newest
                .get(r.code.as_str())
                .is_none_or(|n| (r.measured_at, r.id) > (n.measured_at, n.id))
        {
            newest.insert(r.code.as_str(), r);
        }
    }
    let rows: Vec<ObservationRow> = newest.into_values().cloned().collect();
    vigil_store::scoring::readings(&rows)
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let store = vigil_store::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
        .await
        .unwrap();
    let ward = store.ward_add("Ward").await.unwrap();
    let patient = store
        .patient_admit(NewPatient {
            ward_id: ward.id,
            name: "Test Patient".into(),
            nhs_number: vigil_store::nhs::test_range(1),
            pathway: "default".into(),
            spo2_scale: 1,
            spo2_scale_set_by: None,
            admitted_at: t0(),
        })
        .await
        .unwrap()
        .id;
    let codes = vigil_clinical::SCORED_CODES.map(vigil_clinical::Code::as_str);
    let mut held = Readings::default();
    let mut seq = 0u32;
    for op in ops {
        match op {
            Op::Store {
                code,
                value: v,
                ms,
                resend,
            } => {
                let (code, unit) = CODES[code];
                let at = t0() + Duration::milliseconds(ms);
                // The intake refuses a message with an invalid value whole
                // (decode.rs): such a row is never stored.
                let v = match value(code, v) {
                    ObsValue::Number(n) => vigil_clinical::Value::Number(n),
                    ObsValue::Text(t) => vigil_clinical::Value::Text(t),
                };
                let Ok(valid) = vigil_clinical::validate(code, unit, &v) else {
                    continue;
                };
                if !resend || seq == 0 {
                    seq += 1;
                }
                let msg = NewObsMessage {
                    device_id: "hub-1".into(),
                    seq,
                    patient_id: patient,
                    measured_at: at,
                    received_at: at,
                    obs: vec![NewObservation {
                        code: code.into(),
                        value: match valid.value {
                            vigil_clinical::Value::Number(n) => ObsValue::Number(n),
                            vigil_clinical::Value::Text(t) => ObsValue::Text(t),
                        },
                        unit: valid.code.unit().map(str::to_string),
                    }],
                };
                let out = store
                    .store_obs_batch(std::slice::from_ref(&msg))
                    .await
                    .unwrap();
                // The worker is told of what was newly stored, as the
                // intake's feed gives it.
                if let [BatchOutcome::Stored { observation_ids }] = out.as_slice() {
                    let o = &msg.obs[0];
                    let r = crate::rules::reading(
                        &o.code,
                        &o.value,
                        o.unit.as_deref(),
                        at,
                        "hub-1",
                        observation_ids[0],
                    );
                    if let Some(row) = r.as_ref().and_then(|r| scored_row(r, at)) {
                        held.stored(patient, row);
                    }
                }
            }
            Op::Read { first, span } => {
                let first = t0() + Duration::milliseconds(first);
                let last = first + Duration::milliseconds(span);
                let from_store = store
                    .readings_for_scoring(&[(patient, first, last)], &codes)
                    .await
                    .unwrap()
                    .remove(&patient)
                    .unwrap_or_default();
                match held.read(patient, first, last) {
                    Some(from_held) => {
                        for at in [first, first + (last - first) / 2, last] {
                            assert_eq!(
                                scored_at(&from_held, at),
                                scored_at(&from_store, at),
                                "at {at} of ({first}, {last})"
                            );
                        }
                    }
                    None => {
                        // Not held from `first`: read as the worker does, and hold.
                        let read = store
                            .readings_for_scoring(&[(patient, first, hold_until())], &codes)
                            .await
                            .unwrap()
                            .remove(&patient)
                            .unwrap_or_default();
                        held.hold(patient, first, read);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever order readings are stored and read in (late ones, ties,
    /// resends, codes NEWS2 does not read), every time a pass would score
    /// at sees the same rows from what the worker holds as from the store.
    #[test]
    fn held_readings_answer_as_the_store_does(ops in proptest::collection::vec(op(), 1..40)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}

#[test]
fn a_late_reading_before_the_held_start_is_not_answered() {
    let mut held = Readings::default();
    held.hold(1, t0(), ScoringReads::default());
    assert!(held.read(1, t0() - Duration::minutes(1), t0()).is_none());
    assert!(held.read(1, t0(), t0()).is_some());
    held.forget(1);
    assert!(held.read(1, t0(), t0()).is_none());
}
