//! Home scoring: freshness, missing and stale rows, latest-wins, sources.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::news2::{Risk, Spo2Scale};
use crate::obs::{Value, validate};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    t("2026-11-22T12:00:00Z")
}

fn reading(code: Code, value: f64, at: DateTime<Utc>, device: &str, id: i64) -> Reading {
    Reading {
        observation: validate(code.as_str(), code.unit(), &Value::Number(value)).unwrap(),
        measured_at: at,
        source: Some(device.to_string()),
        obs_id: Some(id),
    }
}

fn acvpu_reading(letter: &str, at: DateTime<Utc>, id: i64) -> Reading {
    Reading {
        observation: validate("acvpu", None, &Value::Text(letter.into())).unwrap(),
        measured_at: at,
        source: Some("hub-1".into()),
        obs_id: Some(id),
    }
}

fn nurse() -> EnteredBy {
    EnteredBy::Clinician {
        user: "nurse.jones".into(),
    }
}

/// An episode with oxygen and consciousness entered by a nurse an hour ago.
fn episode() -> Episode {
    Episode {
        oxygen: Some(Attested {
            value: false,
            recorded_at: now() - Duration::hours(1),
            entered_by: nurse(),
        }),
        consciousness: Some(Attested {
            value: Acvpu::Alert,
            recorded_at: now() - Duration::hours(1),
            entered_by: nurse(),
        }),
        ..Episode::default()
    }
}

/// A complete, normal set measured 10 minutes ago.
fn complete() -> Vec<Reading> {
    let at = now() - Duration::minutes(10);
    vec![
        reading(Code::RespRate, 16.0, at, "patch-1", 1),
        reading(Code::Spo2, 97.0, at, "oxi-1", 2),
        reading(Code::Systolic, 125.0, at, "cuff-1", 3),
        reading(Code::Diastolic, 80.0, at, "cuff-1", 4),
        reading(Code::Pulse, 72.0, at, "oxi-1", 5),
        reading(Code::Temp, 36.8, at, "thermo-1", 6),
    ]
}

fn score(readings: &[Reading], ep: &Episode) -> News2Score {
    score_home(readings, ep, default_freshness(), now())
}

#[test]
fn a_complete_fresh_set_is_not_partial() {
    let r = score(&complete(), &episode());
    assert!(!r.partial, "{r:?}");
    assert!(r.missing.is_empty() && r.stale.is_empty());
    assert_eq!(r.total, Some(0));
    assert_eq!(r.risk, Some(Risk::Low));
    assert_eq!(r.scored_at, Some(now()));
    assert_eq!(r.age_of(Parameter::Spo2), Some(Duration::minutes(10)));
    let o2 = r.subscore(Parameter::Oxygen).unwrap();
    assert_eq!(o2.entered_by, Some(nurse()));
}

#[test]
fn missing_parameters_are_listed_and_the_score_is_partial() {
    let readings: Vec<Reading> = complete()
        .into_iter()
        .filter(|r| r.observation.code != Code::RespRate)
        .collect();
    let r = score(&readings, &Episode::default());
    assert!(r.partial);
    assert_eq!(
        r.missing,
        vec![
            Parameter::RespRate,
            Parameter::Oxygen,
            Parameter::Consciousness
        ]
    );
    assert!(r.stale.is_empty());
    // Partial and 0 is a lower bound, not a complete low score.
    assert_eq!(r.total, Some(0));
}

#[test]
fn a_stale_value_is_not_scored_as_current() {
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::Spo2);
    // SpO2 86 % seven hours ago: would score 3, but it is outside the 6 h window.
    readings.push(reading(
        Code::Spo2,
        86.0,
        now() - Duration::hours(7),
        "oxi-1",
        9,
    ));
    let r = score(&readings, &episode());
    assert!(r.partial);
    assert_eq!(r.stale, vec![Parameter::Spo2]);
    assert!(r.missing.is_empty());
    assert!(r.subscore(Parameter::Spo2).is_none());
    assert_eq!(r.total, Some(0));
}

#[test]
fn freshness_edge_is_inclusive_at_exactly_the_window() {
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::Pulse);
    readings.push(reading(
        Code::Pulse,
        135.0,
        now() - Duration::hours(6),
        "oxi-1",
        10,
    ));
    let r = score(&readings, &episode());
    assert_eq!(r.subscore(Parameter::Pulse).map(|s| s.score), Some(3));
    assert!(!r.partial);

    readings.retain(|r| r.observation.code != Code::Pulse);
    readings.push(reading(
        Code::Pulse,
        135.0,
        now() - Duration::hours(6) - Duration::seconds(1),
        "oxi-1",
        11,
    ));
    let r = score(&readings, &episode());
    assert!(r.subscore(Parameter::Pulse).is_none());
    assert_eq!(r.stale, vec![Parameter::Pulse]);
    assert!(r.partial);
}

#[test]
fn the_freshness_window_is_the_pathway_setting() {
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::Temp);
    readings.push(reading(
        Code::Temp,
        38.5,
        now() - Duration::hours(3),
        "thermo-1",
        12,
    ));
    let r = score_home(&readings, &episode(), Duration::hours(2), now());
    assert_eq!(r.stale, vec![Parameter::Temperature]);
    let r = score_home(&readings, &episode(), Duration::hours(4), now());
    assert_eq!(r.subscore(Parameter::Temperature).map(|s| s.score), Some(1));
}

#[test]
fn skin_temperature_never_feeds_the_temperature_row() {
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::Temp);
    // A cold patch reading (would score 3 as core temperature), newer than anything.
    readings.push(reading(
        Code::SkinTemp,
        33.0,
        now() - Duration::minutes(1),
        "patch-1",
        13,
    ));
    let r = score(&readings, &episode());
    assert_eq!(r.missing, vec![Parameter::Temperature]);
    assert!(r.partial);
    assert_eq!(r.total, Some(0));

    // and with a core temperature present, the newer skin temperature is ignored
    readings.push(reading(
        Code::Temp,
        37.0,
        now() - Duration::hours(2),
        "thermo-1",
        14,
    ));
    let r = score(&readings, &episode());
    let s = r.subscore(Parameter::Temperature).unwrap();
    assert_eq!(s.raw, Value::Number(37.0));
    assert_eq!(s.source.as_deref(), Some("thermo-1"));
}

#[test]
fn heart_rate_from_any_device_latest_wins_and_records_the_source() {
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::Pulse);
    readings.push(reading(
        Code::Pulse,
        70.0,
        now() - Duration::minutes(30),
        "oxi-1",
        20,
    ));
    readings.push(reading(
        Code::Pulse,
        112.0,
        now() - Duration::minutes(5),
        "patch-1",
        21,
    ));
    readings.push(reading(
        Code::Pulse,
        80.0,
        now() - Duration::minutes(20),
        "cuff-1",
        22,
    ));
    let r = score(&readings, &episode());
    let s = r.subscore(Parameter::Pulse).unwrap();
    assert_eq!(s.score, 2);
    assert_eq!(s.source.as_deref(), Some("patch-1"));
    assert_eq!(s.obs_id, Some(21));
    assert_eq!(s.measured_at, Some(now() - Duration::minutes(5)));
}

#[test]
fn latest_is_by_measurement_time_not_by_arrival_order() {
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::Spo2);
    // A late, store-and-forwarded older reading arrives (and is listed) last.
    readings.push(reading(
        Code::Spo2,
        96.0,
        now() - Duration::minutes(2),
        "oxi-1",
        30,
    ));
    readings.push(reading(
        Code::Spo2,
        90.0,
        now() - Duration::minutes(50),
        "oxi-1",
        31,
    ));
    let r = score(&readings, &episode());
    assert_eq!(r.subscore(Parameter::Spo2).map(|s| s.score), Some(0));
}

#[test]
fn a_reading_slightly_in_the_future_counts_as_fresh() {
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::RespRate);
    readings.push(reading(
        Code::RespRate,
        26.0,
        now() + Duration::minutes(2),
        "patch-1",
        40,
    ));
    let r = score(&readings, &episode());
    assert_eq!(r.subscore(Parameter::RespRate).map(|s| s.score), Some(3));
}

#[test]
fn consciousness_from_a_newer_self_report_overrides_the_nurse_entry() {
    let mut readings = complete();
    readings.push(acvpu_reading("C", now() - Duration::minutes(15), 50));
    let r = score(&readings, &episode());
    let s = r.subscore(Parameter::Consciousness).unwrap();
    assert_eq!(s.score, 3);
    assert_eq!(s.obs_id, Some(50));
    assert_eq!(r.risk, Some(Risk::LowMedium));
}

#[test]
fn an_old_consciousness_entry_is_stale() {
    let mut ep = episode();
    if let Some(c) = ep.consciousness.as_mut() {
        c.recorded_at = now() - Duration::hours(30);
    }
    let r = score(&complete(), &ep);
    assert_eq!(r.stale, vec![Parameter::Consciousness]);
    assert!(r.partial);
}

#[test]
fn oxygen_status_holds_until_changed_and_a_newer_flow_reading_wins() {
    let mut ep = episode();
    if let Some(o) = ep.oxygen.as_mut() {
        o.value = true;
        o.recorded_at = now() - Duration::days(3);
    }
    let r = score(&complete(), &ep);
    assert_eq!(r.subscore(Parameter::Oxygen).map(|s| s.score), Some(2));
    assert!(!r.partial);

    let mut readings = complete();
    readings.push(reading(
        Code::O2Flow,
        0.0,
        now() - Duration::hours(1),
        "conc-1",
        60,
    ));
    let r = score(&readings, &ep);
    let s = r.subscore(Parameter::Oxygen).unwrap();
    assert_eq!(s.score, 0);
    assert_eq!(s.source.as_deref(), Some("conc-1"));

    let mut readings = complete();
    readings.push(reading(
        Code::O2Flow,
        2.0,
        now() - Duration::hours(1),
        "conc-1",
        61,
    ));
    let r = score(&readings, &Episode::default());
    assert_eq!(r.subscore(Parameter::Oxygen).map(|s| s.score), Some(2));
}

#[test]
fn the_episode_spo2_scale_is_used_and_reported() {
    let mut ep = episode();
    ep.spo2_scale = Spo2ScaleSetting {
        scale: Spo2Scale::Two,
        set_by: Some("dr.patel".into()),
        set_at: Some(now() - Duration::days(2)),
    };
    let mut readings = complete();
    readings.retain(|r| r.observation.code != Code::Spo2);
    readings.push(reading(
        Code::Spo2,
        89.0,
        now() - Duration::minutes(5),
        "oxi-1",
        70,
    ));
    let r = score(&readings, &ep);
    assert_eq!(r.subscore(Parameter::Spo2).map(|s| s.score), Some(0));
    assert_eq!(r.spo2_scale.set_by.as_deref(), Some("dr.patel"));
    let r = score(&readings, &episode());
    assert_eq!(r.subscore(Parameter::Spo2).map(|s| s.score), Some(3));
}

#[test]
fn under_16_or_pregnant_is_not_applicable() {
    for (ep, why) in [
        (
            Episode {
                under_16: true,
                ..episode()
            },
            NotApplicable::Under16,
        ),
        (
            Episode {
                pregnant: true,
                ..episode()
            },
            NotApplicable::Pregnant,
        ),
    ] {
        let r = score(&complete(), &ep);
        assert_eq!(r.not_applicable, Some(why));
        assert_eq!(r.total, None);
        assert_eq!(r.risk, None);
        assert!(r.subscores.is_empty());
    }
}

#[test]
fn no_readings_at_all_is_partial_with_every_row_missing() {
    let r = score(&[], &Episode::default());
    assert!(r.partial);
    assert_eq!(r.missing, Parameter::ALL.to_vec());
}

#[test]
fn the_result_serialises_with_the_fields_the_daemon_stores() {
    let r = score(&complete(), &episode());
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "total",
        "risk",
        "partial",
        "missing",
        "stale",
        "subscores",
        "not_applicable",
        "monitoring",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(json["subscores"][0]["parameter"], "resp_rate");
    let back: News2Score = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}

/// Every value a code can take, at its extremes (the lowest, the highest,
/// each allowed word), so that a code score_home read would show.
fn extremes(code: Code, at: DateTime<Utc>, id: i64) -> Vec<Reading> {
    let values: Vec<Value> = match (code.valid_range(), code.allowed_text()) {
        (Some((lo, hi)), _) => vec![Value::Number(lo), Value::Number(hi)],
        (None, Some(words)) => words.iter().map(|w| Value::Text((*w).into())).collect(),
        (None, None) => Vec::new(),
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Reading {
            observation: validate(code.as_str(), code.unit(), &v).unwrap(),
            measured_at: at + Duration::seconds(i as i64),
            source: Some("other-1".into()),
            obs_id: Some(id + i as i64),
        })
        .collect()
}

#[test]
fn readings_of_codes_outside_scored_codes_never_change_the_score() {
    // The daemon reads only SCORED_CODES from the store: this is what makes
    // that safe.
    let others: Vec<Code> = Code::ALL
        .into_iter()
        .filter(|c| !SCORED_CODES.contains(c))
        .collect();
    assert!(
        others.contains(&Code::SkinTemp) && others.contains(&Code::Diastolic),
        "{others:?}"
    );
    let stale = |rs: Vec<Reading>| {
        rs.into_iter()
            .map(|r| Reading {
                measured_at: r.measured_at - Duration::days(2),
                ..r
            })
            .collect::<Vec<_>>()
    };
    for (what, base) in [
        ("complete", complete()),
        ("nothing", Vec::new()),
        ("stale", stale(complete())),
        ("half", complete()[..3].to_vec()),
    ] {
        for ep in [episode(), Episode::default()] {
            let mut more = base.clone();
            for (k, code) in others.iter().enumerate() {
                // Newer than everything, and older than the window too.
                more.extend(extremes(
                    *code,
                    now() - Duration::minutes(1),
                    1_000 + 10 * k as i64,
                ));
                more.extend(extremes(
                    *code,
                    now() - Duration::days(3),
                    2_000 + 10 * k as i64,
                ));
            }
            assert_eq!(score(&more, &ep), score(&base, &ep), "{what}");
        }
    }
    // And each scored code is read: without it a complete set is no longer
    // complete (or, for the codes the episode also holds, the nurse's entry
    // stands in).
    let mut full = complete();
    full.push(reading(
        Code::O2Flow,
        0.0,
        now() - Duration::minutes(10),
        "conc-1",
        7,
    ));
    full.push(acvpu_reading("A", now() - Duration::minutes(10), 8));
    for code in SCORED_CODES {
        let without: Vec<Reading> = full
            .iter()
            .filter(|r| r.observation.code != code)
            .cloned()
            .collect();
        assert_ne!(
            score(&without, &Episode::default()),
            score(&full, &Episode::default()),
            "{code:?}"
        );
    }
}

/// A reading of a scored code: its value drawn across and beyond the
/// chart's bands, some with fractions that quantisation moves.
fn arb_reading() -> impl proptest::strategy::Strategy<Value = Option<Reading>> {
    use proptest::prelude::*;
    let numeric = prop_oneof![
        Just(Code::RespRate),
        Just(Code::Spo2),
        Just(Code::Systolic),
        Just(Code::Pulse),
        Just(Code::Temp),
        Just(Code::O2Flow),
    ];
    let value = prop_oneof![
        (0i32..260).prop_map(f64::from),
        (0i32..4500).prop_map(|v| f64::from(v) / 100.0),
    ];
    let number = (numeric, value).prop_map(|(code, v)| {
        validate(code.as_str(), code.unit(), &Value::Number(v))
            .ok()
            .map(|o| (o, "dev-1"))
    });
    let letter = prop::sample::select(vec!["A", "C", "V", "P", "U"]).prop_map(|l| {
        validate("acvpu", None, &Value::Text(l.into()))
            .ok()
            .map(|o| (o, "hub-1"))
    });
    (prop_oneof![4 => number, 1 => letter], 0i64..600, 1i64..1000).prop_map(|(o, mins, id)| {
        o.map(|(observation, device)| Reading {
            observation,
            measured_at: now() - Duration::minutes(mins),
            source: Some(device.into()),
            obs_id: Some(id),
        })
    })
}

proptest::proptest! {
    /// The rules engine scores without the reasons, many times a reading;
    /// what is stored and shown is scored with them. Both are one code
    /// path: the same result but for the reasons, whatever the readings,
    /// the scale, the oxygen and consciousness entries or staleness.
    #[test]
    fn skipping_the_reasons_changes_nothing_else(
        readings in proptest::collection::vec(arb_reading(), 0..12),
        scale_two in proptest::bool::ANY,
        oxygen in proptest::option::of(proptest::bool::ANY),
        alert in proptest::option::of(proptest::bool::ANY),
        not_applicable in 0u8..20,
        freshness_h in 1i64..12,
    ) {
        let readings: Vec<Reading> = readings.into_iter().flatten().collect();
        let mut ep = Episode {
            oxygen: oxygen.map(|value| Attested { value, recorded_at: now() - Duration::hours(1), entered_by: nurse() }),
            consciousness: alert.map(|a| Attested {
                value: if a { Acvpu::Alert } else { Acvpu::Voice },
                recorded_at: now() - Duration::hours(3),
                entered_by: nurse(),
            }),
            under_16: not_applicable == 0,
            pregnant: not_applicable == 1,
            ..Episode::default()
        };
        if scale_two {
            ep.spo2_scale = Spo2ScaleSetting::scale(Spo2Scale::Two);
        }
        let fresh = Duration::hours(freshness_h);
        let full = score_home_with(&readings, &ep, fresh, now(), Reasons::Written);
        let lean = score_home_with(&readings, &ep, fresh, now(), Reasons::Skipped);
        proptest::prop_assert!(full.subscores.iter().all(|s| !s.reason.is_empty()));
        proptest::prop_assert!(lean.subscores.iter().all(|s| s.reason.is_empty()));
        let mut cleared = full.clone();
        for s in &mut cleared.subscores {
            s.reason.clear();
        }
        proptest::prop_assert_eq!(lean, cleared);
        proptest::prop_assert_eq!(score_home(&readings, &ep, fresh, now()), full);
    }
}
