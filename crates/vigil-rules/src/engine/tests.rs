//! Engine tests: every rule kind, late readings, merging, escalation edges,
//! and replay/permutation properties. Time is always injected.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use vigil_clinical::{Reading, Value, validate};

use crate::alert::{Actor, AlertKind, AlertStatus, EventKind};
use crate::{DeviceStatus, Engine, Output, Pathways, PatientSetup, Severity};

const GENERAL: &str = include_str!("../../../../pathways/general.toml");
const COPD: &str = include_str!("../../../../pathways/copd.toml");
const HF: &str = include_str!("../../../../pathways/heart-failure.toml");
const ASTHMA: &str = include_str!("../../../../pathways/asthma.toml");

fn t0() -> DateTime<Utc> {
    "2026-11-22T08:00:00Z".parse().unwrap()
}

fn mins(m: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(m)
}

fn shipped() -> Pathways {
    Pathways::load([
        ("general.toml", GENERAL),
        ("copd.toml", COPD),
        ("heart-failure.toml", HF),
        ("asthma.toml", ASTHMA),
    ])
    .unwrap()
}

fn engine_with(pathway: &str) -> Engine {
    let mut e = Engine::new(shipped());
    let mut setup = PatientSetup::new(pathway, t0());
    setup.pef_best = Some(500.0);
    e.admit(1, setup).unwrap();
    e
}

fn reading(code: &str, v: f64, at: DateTime<Utc>, id: i64) -> Reading {
    let unit = vigil_clinical::Code::parse(code).and_then(|c| c.unit());
    Reading {
        observation: validate(code, unit, &Value::Number(v)).unwrap(),
        measured_at: at,
        source: Some("dev-1".into()),
        obs_id: Some(id),
    }
}

fn raised(out: &[Output]) -> Vec<(String, Severity)> {
    out.iter()
        .filter_map(|o| match o {
            Output::AlertRaised(a) | Output::AlertUpdated { alert: a, .. } => {
                Some((a.rule.clone(), a.severity))
            }
            _ => None,
        })
        .collect()
}

fn rules(out: &[Output]) -> Vec<String> {
    let mut r: Vec<String> = raised(out).into_iter().map(|(r, _)| r).collect();
    r.sort();
    r
}

/// [`rules`], the device rules only (a patient with no readings has
/// missed-reading alerts falling due too).
fn device_rules(out: &[Output]) -> Vec<String> {
    rules(out)
        .into_iter()
        .filter(|r| r.starts_with("device-"))
        .collect()
}

#[test]
fn general_spo2_bands_table() {
    for (spo2, want, feedback) in [
        (97.0, vec![], ""),
        (95.0, vec![], ""),
        (94.0, vec!["spo2-repeat"], "repeat"),
        (93.0, vec!["spo2-repeat"], "repeat"),
        (92.0, vec!["spo2-urgent"], "urgent"),
        (85.0, vec!["spo2-urgent"], "urgent"),
    ] {
        let mut e = engine_with("general");
        let out = e
            .observe(1, reading("spo2", spo2, mins(0), 1), mins(1))
            .unwrap();
        // NEWS2 from SpO2 alone: ≤91 scores 3 (low-medium); include it where due.
        let mut want: Vec<String> = want.into_iter().map(String::from).collect();
        if spo2 <= 91.0 {
            want.push("news2".into());
        }
        want.sort();
        assert_eq!(rules(&out), want, "SpO2 {spo2}");
        let fb: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Output::Repeat { .. } => Some("repeat"),
                Output::Advice { level, .. } => Some(match level {
                    crate::AdviceLevel::Urgent => "urgent",
                    _ => "other",
                }),
                _ => None,
            })
            .collect();
        assert_eq!(fb.join(","), feedback, "SpO2 {spo2}");
    }
}

#[test]
fn copd_target_88_to_92_on_scale_2() {
    for (spo2, want) in [
        (92.0, vec![]),
        (88.0, vec![]),
        (87.0, vec!["spo2-below-target"]),
        (84.0, vec!["spo2-below-target", "spo2-far-below-target"]),
        (
            83.0,
            vec!["news2", "spo2-below-target", "spo2-far-below-target"],
        ),
    ] {
        let mut e = engine_with("copd");
        let out = e
            .observe(1, reading("spo2", spo2, mins(0), 1), mins(1))
            .unwrap();
        assert_eq!(rules(&out), want, "SpO2 {spo2}");
    }
}

#[test]
fn asthma_peak_flow_zones_against_personal_best_500() {
    for (pef, want, sev) in [
        (400.0, None, None),
        (399.0, Some("pef-amber"), Some(Severity::Low)),
        (250.0, Some("pef-amber"), Some(Severity::Low)),
        (249.0, Some("pef-red"), Some(Severity::High)),
        (165.0, Some("pef-red"), Some(Severity::High)),
        (164.0, Some("pef-life-threatening"), Some(Severity::High)),
    ] {
        let mut e = engine_with("asthma");
        let out = e
            .observe(1, reading("pef", pef, mins(0), 1), mins(1))
            .unwrap();
        let got = raised(&out);
        assert_eq!(got.first().map(|(r, _)| r.as_str()), want, "PEF {pef}");
        assert_eq!(got.first().map(|(_, s)| *s), sev, "PEF {pef}");
        assert!(got.len() <= 1, "PEF {pef}: {got:?}");
    }
}

#[test]
fn asthma_rules_need_a_personal_best() {
    let mut e = Engine::new(shipped());
    e.admit(1, PatientSetup::new("asthma", t0())).unwrap();
    let out = e
        .observe(1, reading("pef", 100.0, mins(0), 1), mins(1))
        .unwrap();
    assert!(out.is_empty(), "no personal best, no pef_pct: {out:?}");
}

#[test]
fn severe_blood_pressure_nice_ng136_table() {
    for (code, v, fires) in [
        ("systolic", 179.0, false),
        ("systolic", 180.0, true),
        ("diastolic", 119.0, false),
        ("diastolic", 120.0, true),
    ] {
        let mut e = engine_with("general");
        let out = e.observe(1, reading(code, v, mins(0), 1), mins(1)).unwrap();
        assert_eq!(
            rules(&out).contains(&"bp-severe".to_string()),
            fires,
            "{code} {v}"
        );
    }
}

#[test]
fn heart_rate_band_edges() {
    for (v, fires) in [(40.0, true), (41.0, false), (130.0, false), (131.0, true)] {
        let mut e = engine_with("general");
        let out = e
            .observe(1, reading("pulse", v, mins(0), 1), mins(1))
            .unwrap();
        assert_eq!(
            rules(&out).contains(&"heart-rate-extreme".to_string()),
            fires,
            "pulse {v}"
        );
    }
}

#[test]
fn trend_rule_fires_on_change_within_window() {
    let mut e = engine_with("general");
    e.observe(1, reading("spo2", 98.0, mins(0), 1), mins(0))
        .unwrap();
    let out = e
        .observe(1, reading("spo2", 95.0, mins(60), 2), mins(60))
        .unwrap();
    assert!(!rules(&out).contains(&"spo2-falling".to_string()));
    let out = e
        .observe(1, reading("spo2", 94.0, mins(120), 3), mins(120))
        .unwrap();
    assert!(rules(&out).contains(&"spo2-falling".to_string()));
    // Outside the 24 h window the old 98 no longer counts.
    let mut e = engine_with("general");
    e.observe(1, reading("spo2", 98.0, mins(0), 1), mins(0))
        .unwrap();
    let late = mins(24 * 60 + 1);
    let out = e.observe(1, reading("spo2", 94.0, late, 2), late).unwrap();
    assert!(!rules(&out).contains(&"spo2-falling".to_string()));
}

#[test]
fn heart_failure_weight_gain_over_three_days() {
    let mut e = engine_with("heart-failure");
    e.observe(1, reading("weight", 80.0, mins(0), 1), mins(0))
        .unwrap();
    let day2 = mins(2 * 24 * 60);
    let out = e
        .observe(1, reading("weight", 82.5, day2, 2), day2)
        .unwrap();
    assert_eq!(rules(&out), vec!["weight-gain"]);
}

#[allow(clippy::too_many_arguments)] // one argument per NEWS2 row reads best in the tables
fn news2_set(
    e: &mut Engine,
    rr: f64,
    spo2: f64,
    sys: f64,
    pulse: f64,
    temp: f64,
    at: DateTime<Utc>,
    id: i64,
) -> Vec<Output> {
    let mut out = Vec::new();
    for (i, (c, v)) in [
        ("resp_rate", rr),
        ("spo2", spo2),
        ("systolic", sys),
        ("pulse", pulse),
        ("temp", temp),
    ]
    .into_iter()
    .enumerate()
    {
        out.extend(
            e.observe(1, reading(c, v, at, id * 10 + i as i64), at)
                .unwrap(),
        );
    }
    out
}

#[test]
fn news2_builtin_alerts_by_risk() {
    // RR 21 → 2, SpO2 96 → 0, sys 120 → 0, pulse 80 → 0, temp 37 → 0: low, no alert.
    let mut e = engine_with("general");
    let out = news2_set(&mut e, 21.0, 96.0, 120.0, 80.0, 37.0, mins(0), 1);
    assert!(!rules(&out).contains(&"news2".to_string()));
    // RR 8 → 3 (red): low-medium.
    let mut e = engine_with("general");
    let out = news2_set(&mut e, 8.0, 96.0, 120.0, 80.0, 37.0, mins(0), 1);
    assert_eq!(
        e.open_alert(1, "news2").map(|a| a.severity),
        Some(Severity::LowMedium),
        "{out:?}"
    );
    // RR 22 → 2, pulse 112 → 2, temp 38.5 → 1: 5, medium.
    let mut e = engine_with("general");
    news2_set(&mut e, 22.0, 96.0, 120.0, 112.0, 38.5, mins(0), 1);
    assert_eq!(
        e.open_alert(1, "news2").map(|a| a.severity),
        Some(Severity::Medium)
    );
    // RR 25 → 3, SpO2 92 → 2, pulse 112 → 2: 7, high.
    let mut e = engine_with("general");
    news2_set(&mut e, 25.0, 92.0, 120.0, 112.0, 37.0, mins(0), 1);
    let a = e.open_alert(1, "news2").unwrap();
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.kind, AlertKind::News2);
}

#[test]
fn news2_rising_by_two_within_24h_raises_rising_alert() {
    let mut e = engine_with("general");
    news2_set(&mut e, 16.0, 97.0, 120.0, 80.0, 37.0, mins(0), 1); // 0
    let out = news2_set(&mut e, 16.0, 97.0, 120.0, 95.0, 37.0, mins(60), 2); // pulse 95 → 1
    assert!(!rules(&out).contains(&"news2-rising".to_string()));
    let out = news2_set(&mut e, 21.0, 97.0, 120.0, 95.0, 37.0, mins(120), 3); // +2 → 3
    assert!(
        rules(&out).contains(&"news2-rising".to_string()),
        "{:?}",
        rules(&out)
    );
}

#[test]
fn a_rule_reading_a_code_with_no_fresh_value_does_not_fire() {
    let mut e = engine_with("general");
    // An old SpO2 89 (stale by the time pulse arrives 7 h later): the
    // pulse reading does not re-run SpO2 rules, and nothing stale fires.
    e.observe(1, reading("spo2", 89.0, mins(0), 1), mins(0))
        .unwrap();
    let out = e
        .observe(1, reading("pulse", 80.0, mins(7 * 60), 2), mins(7 * 60))
        .unwrap();
    assert!(
        raised(&out).iter().all(|(r, _)| r != "spo2-urgent"),
        "{out:?}"
    );
}

#[test]
fn repeats_merge_into_one_open_alert_per_rule() {
    let mut e = engine_with("general");
    let first = e
        .observe(1, reading("spo2", 92.0, mins(0), 1), mins(0))
        .unwrap();
    let Output::AlertRaised(a) = &first[0] else {
        panic!("{first:?}")
    };
    for i in 1..5 {
        let out = e
            .observe(1, reading("spo2", 92.0, mins(i), 1 + i), mins(i))
            .unwrap();
        assert!(
            matches!(&out[0], Output::AlertUpdated { alert: u, .. } if u.id == a.id),
            "{out:?}"
        );
    }
    let open: Vec<_> = e.alerts().filter(|x| x.rule == "spo2-urgent").collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].count, 5);
    assert_eq!(open[0].obs_ids, vec![1, 2, 3, 4, 5]);
}

#[test]
fn severity_only_goes_upwards() {
    let mut e = engine_with("general");
    news2_set(&mut e, 22.0, 96.0, 120.0, 112.0, 38.5, mins(0), 1); // 5 medium
    news2_set(&mut e, 25.0, 92.0, 120.0, 112.0, 37.0, mins(10), 2); // 7 high
    assert_eq!(e.open_alert(1, "news2").unwrap().severity, Severity::High);
    news2_set(&mut e, 8.0, 97.0, 120.0, 80.0, 37.0, mins(20), 3); // 3 red: low-medium
    let a = e.open_alert(1, "news2").unwrap();
    assert_eq!(a.severity, Severity::High, "never downgraded");
    assert!(a.count >= 3);
}

#[test]
fn late_reading_does_not_reopen_resolved_alert_nor_raise_for_superseded_state() {
    let mut e = engine_with("general");
    e.observe(1, reading("spo2", 90.0, mins(0), 1), mins(0))
        .unwrap();
    let id = e.open_alert(1, "spo2-urgent").unwrap().id;
    e.observe(1, reading("spo2", 97.0, mins(30), 2), mins(30))
        .unwrap();
    e.resolve(
        id,
        "nurse.jones",
        mins(40),
        "reviewed-no-action",
        "recovered",
    )
    .unwrap();
    // Measured before the 97 (superseded): nothing.
    let out = e
        .observe(1, reading("spo2", 88.0, mins(10), 3), mins(50))
        .unwrap();
    assert!(raised(&out).is_empty(), "{out:?}");
    // A late reading of another code, measured before the resolution, where
    // the rule needs SpO2 to fire: still nothing, the SpO2 is 97 now.
    let out = e
        .observe(1, reading("pulse", 80.0, mins(20), 4), mins(55))
        .unwrap();
    assert!(raised(&out).is_empty(), "{out:?}");
    assert!(e.open_alert(1, "spo2-urgent").is_none());
    assert!(e.alert(id).is_none(), "resolved alerts are not reopened");
}

#[test]
fn a_reading_from_a_clock_ahead_supersedes_nothing_measured_before_it_arrived() {
    let mut e = engine_with("general");
    // A device whose clock runs three minutes ahead: its SpO2 of 97
    // arrives at minute 10 stamped 13.
    e.observe(1, reading("spo2", 97.0, mins(13), 1), mins(10))
        .unwrap();
    // Another device's 91, measured at minute 11 by a right clock, is the
    // newest SpO2 there is by then: urgent.
    let out = e
        .observe(1, reading("spo2", 91.0, mins(11), 2), mins(11))
        .unwrap();
    assert!(rules(&out).contains(&"spo2-urgent".to_string()), "{out:?}");
    let held: Vec<DateTime<Utc>> = e.readings(1).iter().map(|r| r.measured_at).collect();
    assert_eq!(held, [mins(10), mins(11)], "placed at its arrival");
}

#[test]
fn reading_measured_before_resolution_does_not_raise_the_rule_again() {
    let mut e = engine_with("general");
    e.observe(1, reading("spo2", 90.0, mins(0), 1), mins(0))
        .unwrap();
    let a = e.open_alert(1, "spo2-urgent").unwrap().clone();
    e.resolve(a.id, "nurse.jones", mins(40), "reviewed-no-action", "seen")
        .unwrap();
    // Newest SpO2, but measured before the clinician resolved: no new alert, no advice.
    let out = e
        .observe(1, reading("spo2", 90.0, mins(30), 2), mins(45))
        .unwrap();
    assert!(
        out.iter()
            .all(|o| !matches!(o, Output::AlertRaised(x) if x.rule == "spo2-urgent")),
        "{out:?}"
    );
    // Measured after, once the state has cleared and come back: a new alert, with a new id.
    e.observe(1, reading("spo2", 97.0, mins(45), 3), mins(45))
        .unwrap();
    let out = e
        .observe(1, reading("spo2", 90.0, mins(50), 4), mins(50))
        .unwrap();
    assert!(
        out.iter().any(
            |o| matches!(o, Output::AlertRaised(x) if x.rule == "spo2-urgent" && x.id != a.id)
        )
    );
}

#[test]
fn backfilled_readings_merge_and_send_no_patient_feedback() {
    let mut e = engine_with("general");
    let now = mins(6 * 60);
    let mut raised_count = 0;
    let mut feedback = 0;
    for i in 0..36 {
        let out = e
            .observe(1, reading("spo2", 91.0, mins(i * 10), i), now)
            .unwrap();
        for o in out {
            match o {
                Output::AlertRaised(_) => raised_count += 1,
                Output::Advice { .. } | Output::Repeat { .. } => feedback += 1,
                _ => {}
            }
        }
    }
    // 36 readings of a desaturation backfilled at once: one alert per rule.
    assert_eq!(raised_count, 2, "spo2-urgent and news2, each once");
    assert_eq!(
        feedback, 1,
        "only the last reading is recent enough (15 min) to advise on"
    );
}

#[test]
fn missed_reading_alert_is_raised_exactly_at_the_deadline() {
    let mut e = engine_with("copd"); // spo2 every 8h + 1h grace
    e.observe(1, reading("spo2", 90.0, mins(0), 1), mins(0))
        .unwrap();
    e.observe(1, reading("resp_rate", 16.0, mins(0), 2), mins(0))
        .unwrap();
    let due = mins(9 * 60);
    assert_eq!(
        e.next_deadline(),
        Some(due.min(mins(4 * 60))),
        "device offline 4h comes first"
    );
    let before = e.tick(due - Duration::seconds(1));
    assert!(rules(&before).iter().all(|r| r != "missed-spo2"));
    let out = e.tick(due);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::AlertRaised(a) if a.rule == "missed-spo2" && a.kind == AlertKind::MissedReading))
            .count(),
        1
    );
    assert!(
        e.tick(due + Duration::hours(1))
            .iter()
            .all(|o| !matches!(o, Output::AlertRaised(a) if a.rule == "missed-spo2"))
    );
    // A new reading restarts the clock.
    e.observe(1, reading("spo2", 90.0, mins(10 * 60), 3), mins(10 * 60))
        .unwrap();
    assert!(e.next_deadline().is_some());
}

/// A clinician's "4-hourly obs" for a COPD patient (pathway: SpO2 every
/// 8 h, 1 h grace): the missed reading is due 5 h after the last, says so,
/// and going back to the pathway's moves it back to 9 h.
#[test]
fn a_clinicians_observation_interval_replaces_the_pathways() {
    let mut e = engine_with("copd");
    e.observe(1, reading("spo2", 90.0, mins(0), 1), mins(0))
        .unwrap();
    e.observe(1, reading("resp_rate", 16.0, mins(0), 2), mins(0))
        .unwrap();
    let mut setup = PatientSetup::new("copd", t0());
    setup.pef_best = Some(500.0);
    setup.obs_every_minutes = Some(4 * 60);
    e.admit(1, setup.clone()).unwrap();
    // Raised, or (once raised and still open) fired again.
    let missed = |out: &[Output]| {
        out.iter()
            .filter_map(|o| match o {
                Output::AlertRaised(a) | Output::AlertUpdated { alert: a, .. }
                    if a.rule == "missed-spo2" =>
                {
                    Some(a.message.clone())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(missed(&e.tick(mins(5 * 60) - Duration::seconds(1))).is_empty());
    assert_eq!(
        missed(&e.tick(mins(5 * 60))),
        ["No spo2 reading for 5h (every 4h asked for this patient)"]
    );
    // A reading restarts the clock; the pathway's interval again: 9 h.
    e.observe(1, reading("spo2", 90.0, mins(6 * 60), 3), mins(6 * 60))
        .unwrap();
    setup.obs_every_minutes = None;
    e.admit(1, setup).unwrap();
    assert!(
        missed(&e.tick(mins(14 * 60))).is_empty(),
        "not at 6 h + 5 h"
    );
    assert_eq!(missed(&e.tick(mins(15 * 60))).len(), 1, "at 6 h + 9 h");
}

#[test]
fn missed_reading_clock_starts_at_admission() {
    let mut e = engine_with("asthma"); // pef every 12h + 2h
    let out = e.tick(mins(14 * 60));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::AlertRaised(a) if a.rule == "missed-pef"))
    );
}

/// A patient admitted again: the rebuild replays their record's readings
/// and device reports from before the admission. Neither a missed reading
/// nor a device is overdue at once; both clocks run from the admission.
#[test]
fn readings_and_reports_from_before_an_admission_start_no_clock_before_it() {
    let mut e = Engine::new(shipped());
    let admitted = mins(30 * 24 * 60); // a month after the old readings
    e.admit(1, PatientSetup::new("copd", admitted)).unwrap(); // spo2 every 8h + 1h
    let report = DeviceStatus {
        online: true,
        battery_pct: Some(80),
        signal: Some("ok".into()),
    };
    e.observe(1, reading("spo2", 93.0, mins(0), 1), admitted)
        .unwrap();
    e.device_status(1, "ox-1", report, mins(0)).unwrap();
    let after = e.tick(admitted + Duration::minutes(1));
    assert!(
        rules(&after).is_empty(),
        "nothing due at admission: {after:?}"
    );
    // The device offline after 4 h, the reading missed after 9 h, of the admission.
    assert_eq!(e.next_deadline(), Some(admitted + Duration::hours(4)));
    // (The reading's device too: `reading` comes from dev-1.)
    assert_eq!(
        rules(&e.tick(admitted + Duration::hours(4))),
        vec!["device-offline:dev-1", "device-offline:ox-1"]
    );
    let missed = e.tick(admitted + Duration::hours(9));
    let value = missed.iter().find_map(|o| match o {
        Output::AlertRaised(a) if a.rule == "missed-spo2" => a.latest_value.clone(),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("no reading since admission"));
}

#[test]
fn device_rules_battery_lead_off_offline() {
    let mut e = engine_with("general");
    let st = |b, s: &str| DeviceStatus {
        online: true,
        battery_pct: Some(b),
        signal: Some(s.into()),
    };
    assert!(
        e.device_status(1, "patch-1", st(50, "ok"), mins(0))
            .unwrap()
            .is_empty()
    );
    let out = e
        .device_status(1, "patch-1", st(15, "ok"), mins(1))
        .unwrap();
    assert_eq!(rules(&out), vec!["device-battery-low:patch-1"]);
    assert!(
        e.device_status(1, "patch-1", st(14, "ok"), mins(2))
            .unwrap()
            .is_empty(),
        "on the transition only"
    );
    let out = e
        .device_status(1, "patch-1", st(14, "lead_off"), mins(3))
        .unwrap();
    assert_eq!(rules(&out), vec!["device-lead-off:patch-1"]);
    let offline = mins(3) + Duration::hours(6);
    assert!(rules(&e.tick(offline - Duration::seconds(1))).is_empty());
    assert_eq!(rules(&e.tick(offline)), vec!["device-offline:patch-1"]);
}

#[test]
fn a_reading_a_clinician_entered_starts_no_device_offline_clock() {
    let mut e = engine_with("general"); // offline after 6 h
    let mut entered = reading("resp_rate", 18.0, mins(0), 1);
    entered.source = Some(vigil_clinical::entered_source("nurse-a"));
    e.observe(1, entered, mins(0)).unwrap();
    e.observe(1, reading("pulse", 72.0, mins(1), 2), mins(1))
        .unwrap();
    // Six hours on, only the device is offline: the nurse is not a device.
    assert_eq!(
        device_rules(&e.tick(mins(1) + Duration::hours(6))),
        vec!["device-offline:dev-1"]
    );
    assert!(device_rules(&e.tick(mins(0) + Duration::hours(30))).is_empty());
}

#[test]
fn a_device_heard_from_without_readings_or_statuses_is_not_offline() {
    let mut e = engine_with("general"); // offline after 6 h
    let lead_off = DeviceStatus {
        online: true,
        battery_pct: Some(80),
        signal: Some("lead_off".into()),
    };
    e.device_status(1, "patch-1", lead_off, mins(0)).unwrap();
    // ECG chunks every hour of a steady lead-off signal: no status, no
    // reading, but the patch is there.
    for h in 1..=8 {
        e.heard_from(1, "patch-1", mins(0) + Duration::hours(h))
            .unwrap();
        assert!(
            device_rules(&e.tick(mins(0) + Duration::hours(h))).is_empty(),
            "hour {h}"
        );
    }
    let offline = mins(0) + Duration::hours(8 + 6);
    assert!(device_rules(&e.tick(offline - Duration::seconds(1))).is_empty());
    assert_eq!(
        device_rules(&e.tick(offline)),
        vec!["device-offline:patch-1"]
    );
    // Heard from again: the clock starts over and it may go offline again.
    e.heard_from(1, "patch-1", offline + Duration::minutes(1))
        .unwrap();
    assert!(
        device_rules(
            &e.tick(offline + Duration::minutes(1) + Duration::hours(6) - Duration::seconds(1))
        )
        .is_empty()
    );
    assert_eq!(
        device_rules(&e.tick(offline + Duration::minutes(1) + Duration::hours(6))),
        vec!["device-offline:patch-1"]
    );
    assert!(matches!(
        e.heard_from(99, "patch-1", offline),
        Err(crate::EngineError::UnknownPatient(99))
    ));
}

#[test]
fn a_device_no_longer_the_patients_is_forgotten_and_never_offline() {
    let mut e = engine_with("general"); // offline after 6 h
    e.heard_from(1, "ox-old", mins(0)).unwrap();
    e.heard_from(1, "ox-new", mins(0)).unwrap();
    // Assigned at 1 h: only ox-new; a third device, assigned after that
    // read, is already sending.
    e.heard_from(1, "patch-late", mins(61)).unwrap();
    let keep = std::collections::BTreeSet::from(["ox-new".to_string()]);
    assert_eq!(
        e.forget_devices_except(1, &keep, mins(60)),
        vec!["ox-old".to_string()]
    );
    assert!(e.forget_devices_except(99, &keep, mins(60)).is_empty());
    assert_eq!(
        device_rules(&e.tick(mins(0) + Duration::hours(6))),
        vec!["device-offline:ox-new"],
        "ox-old is another patient's now"
    );
    assert_eq!(
        device_rules(&e.tick(mins(61) + Duration::hours(6))),
        vec!["device-offline:patch-late"]
    );
}

#[test]
fn escalation_happens_exactly_at_the_deadline_and_not_before() {
    let mut e = engine_with("general"); // medium: 15m
    let out = e
        .observe(1, reading("spo2", 92.0, mins(0), 1), mins(0))
        .unwrap();
    let Output::AlertRaised(a) = &out[0] else {
        panic!()
    };
    assert_eq!(a.escalate_at, Some(mins(15)));
    assert!(
        e.tick(mins(15) - Duration::seconds(1))
            .iter()
            .all(|o| !matches!(o, Output::AlertEscalated { alert: _, .. }))
    );
    let out = e.tick(mins(15));
    let Some(Output::AlertEscalated { alert: x, .. }) = out
        .iter()
        .find(|o| matches!(o, Output::AlertEscalated { alert: _, .. }))
    else {
        panic!("{out:?}")
    };
    assert_eq!(x.status, AlertStatus::Escalated);
    let ev = x.last_event().unwrap();
    assert_eq!(
        (ev.kind, &ev.actor, ev.at),
        (EventKind::Escalated, &Actor::System, mins(15))
    );
    assert!(
        e.tick(mins(30))
            .iter()
            .all(|o| !matches!(o, Output::AlertEscalated { alert: _, .. })),
        "once"
    );
}

#[test]
fn acknowledged_alert_does_not_escalate_but_can_be_escalated_by_hand() {
    let mut e = engine_with("general");
    let out = e
        .observe(1, reading("spo2", 92.0, mins(0), 1), mins(0))
        .unwrap();
    let Output::AlertRaised(a) = &out[0] else {
        panic!()
    };
    e.acknowledge(a.id, "nurse.jones", mins(5), "phoning")
        .unwrap();
    assert!(
        e.tick(mins(60))
            .iter()
            .all(|o| !matches!(o, Output::AlertEscalated { alert: _, .. }))
    );
    assert!(e.acknowledge(a.id, "nurse.jones", mins(6), "").is_err());
    let Output::AlertEscalated { alert: x, .. } = e
        .escalate(a.id, "nurse.jones", mins(61), "needs review")
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(x.status, AlertStatus::Escalated);
    assert!(
        e.resolve(a.id, "dr.patel", mins(70), "", "").is_err(),
        "outcome required"
    );
    let Output::AlertUpdated { alert: r, .. } = e
        .resolve(a.id, "dr.patel", mins(70), "admitted", "to ward 4")
        .unwrap()
    else {
        panic!()
    };
    let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Raised,
            EventKind::Acknowledged,
            EventKind::Escalated,
            EventKind::Resolved
        ]
    );
    assert_eq!(r.events[3].outcome.as_deref(), Some("admitted"));
    assert_eq!(r.events[3].actor, Actor::User("dr.patel".into()));
    assert!(
        e.resolve(a.id, "dr.patel", mins(71), "admitted", "")
            .is_err()
    );
}

#[test]
fn severity_rise_brings_the_escalation_deadline_forward() {
    let mut e = engine_with("general");
    news2_set(&mut e, 8.0, 97.0, 120.0, 80.0, 37.0, mins(0), 1); // low-medium: 30m
    assert_eq!(
        e.open_alert(1, "news2").unwrap().escalate_at,
        Some(mins(30))
    );
    news2_set(&mut e, 25.0, 92.0, 120.0, 112.0, 37.0, mins(10), 2); // high: 5m
    assert_eq!(
        e.open_alert(1, "news2").unwrap().escalate_at,
        Some(mins(15))
    );
}

#[test]
fn unknown_patient_and_pathway_are_errors() {
    let mut e = Engine::new(shipped());
    assert!(
        e.observe(9, reading("spo2", 97.0, mins(0), 1), mins(0))
            .is_err()
    );
    assert!(e.admit(9, PatientSetup::new("nope", t0())).is_err());
}

#[test]
fn duplicate_obs_id_is_ignored() {
    let mut e = engine_with("general");
    e.observe(1, reading("spo2", 92.0, mins(0), 1), mins(0))
        .unwrap();
    assert!(
        e.observe(1, reading("spo2", 92.0, mins(0), 1), mins(1))
            .unwrap()
            .is_empty()
    );
    assert_eq!(e.readings(1).len(), 1);
}

fn arb_readings() -> impl Strategy<Value = Vec<(u8, f64, i64)>> {
    prop::collection::vec((0u8..5, 0.0f64..1.0, 0i64..(48 * 60)), 1..30)
}

fn to_reading(i: usize, (c, x, m): (u8, f64, i64)) -> Reading {
    let (code, lo, hi) = [
        ("spo2", 80.0, 100.0),
        ("pulse", 35.0, 140.0),
        ("resp_rate", 6.0, 30.0),
        ("systolic", 85.0, 200.0),
        ("temp", 35.0, 40.0),
    ][usize::from(c)];
    reading(code, (lo + x * (hi - lo)).round(), mins(m), i as i64)
}

fn run(readings: &[Reading]) -> (Engine, Vec<Output>) {
    let mut e = engine_with("general");
    let mut out = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        let now = mins(48 * 60) + Duration::minutes(i as i64);
        out.extend(e.observe(1, r.clone(), now).unwrap());
        out.extend(e.tick(now));
    }
    (e, out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replaying_the_same_stream_gives_identical_outputs(raw in arb_readings()) {
        let readings: Vec<Reading> = raw.into_iter().enumerate().map(|(i, r)| to_reading(i, r)).collect();
        let (engine, a) = run(&readings);
        let (_, b) = run(&readings);
        prop_assert_eq!(a, b);
        // And whatever the stream, at most one unresolved alert per rule.
        let mut rules: Vec<&str> = engine.alerts().map(|x| x.rule.as_str()).collect();
        let n = rules.len();
        rules.sort_unstable();
        rules.dedup();
        prop_assert_eq!(rules.len(), n);
    }

    #[test]
    fn any_arrival_order_ends_in_the_same_final_state(raw in arb_readings(), seed in any::<u64>()) {
        let readings: Vec<Reading> = raw.into_iter().enumerate().map(|(i, r)| to_reading(i, r)).collect();
        let mut shuffled = readings.clone();
        // Fisher–Yates driven by an xorshift of the generated seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let (a, _) = run(&readings);
        let (b, _) = run(&shuffled);
        prop_assert_eq!(a.readings(1), b.readings(1));
        prop_assert_eq!(a.news2(1).map(|s| (s.total, s.risk, s.partial)), b.news2(1).map(|s| (s.total, s.risk, s.partial)));
        prop_assert_eq!(a.news2_history(1), b.news2_history(1));
        prop_assert_eq!(a.next_deadline().is_some(), b.next_deadline().is_some());
    }

    /// Without its NEWS2 rules the engine gives every other output the
    /// full engine gives, on every pathway and in any arrival order
    /// (late readings included), fires no NEWS2 rule, keeps no NEWS2
    /// history, and still reads the same current score.
    #[test]
    fn without_news2_rules_every_other_output_is_the_same(raw in arb_readings(), pathway in 0usize..4) {
        let pathway = ["general", "copd", "heart-failure", "asthma"][pathway];
        let readings: Vec<Reading> = raw.into_iter().enumerate().map(|(i, r)| to_reading(i, r)).collect();
        let mut full = engine_with(pathway);
        let mut lean = engine_with(pathway).without_news2_rules();
        let news2 = |o: &Output| matches!(o,
            Output::AlertRaised(a) | Output::AlertUpdated { alert: a, .. } | Output::AlertEscalated { alert: a, .. }
                if a.rule == "news2" || a.rule == "news2-rising");
        // Alert ids differ once the full engine has spent some on NEWS2.
        let shown = |o: &Output| match o {
            Output::AlertRaised(a) | Output::AlertUpdated { alert: a, .. } | Output::AlertEscalated { alert: a, .. } => {
                format!("{:?} {} {:?} {:?} {} {:?} {:?} {:?}", std::mem::discriminant(o), a.rule, a.severity, a.status, a.count, a.latest_value, a.latest_measured_at, a.obs_ids)
            }
            other => format!("{other:?}"),
        };
        for (i, r) in readings.iter().enumerate() {
            let now = mins(48 * 60) + Duration::minutes(i as i64);
            let mut a: Vec<String> = full.observe(1, r.clone(), now).unwrap().iter().filter(|o| !news2(o)).map(shown).collect();
            a.extend(full.tick(now).iter().filter(|o| !news2(o)).map(shown));
            let b_out: Vec<Output> = lean.observe(1, r.clone(), now).unwrap().into_iter().chain(lean.tick(now)).collect();
            prop_assert!(!b_out.iter().any(news2), "a NEWS2 rule fired: {:?}", b_out);
            let b: Vec<String> = b_out.iter().map(shown).collect();
            prop_assert_eq!(a, b);
        }
        prop_assert!(lean.news2_history(1).is_empty());
        prop_assert_eq!(full.readings(1), lean.readings(1));
        prop_assert_eq!(full.news2(1).map(|s| (s.total, s.risk, s.partial)), lean.news2(1).map(|s| (s.total, s.risk, s.partial)));
    }

    /// A trend read from the readings held by code (two binary searches)
    /// gives what the function gives over a plain filter of every reading.
    #[test]
    fn trends_by_code_match_a_filter_of_every_reading(raw in arb_readings(), at in 0i64..(50 * 60), pick in any::<usize>()) {
        let readings: Vec<Reading> = raw.into_iter().enumerate().map(|(i, r)| to_reading(i, r)).collect();
        let (e, _) = run(&readings);
        let p = &e.patients[&1];
        let held = e.readings(1);
        let mut calls = Vec::new();
        for func in ["change", "mean", "median", "lowest", "highest", "count"] {
            for code in ["spo2", "pulse", "resp_rate", "systolic", "temp"] {
                for window in ["30m", "6h", "24h", "3d"] {
                    let src = format!(r#"{func}("{code}", "{window}") > 0"#);
                    let call = crate::expr::Compiled::compile(&src).expect("compiles").trends[0].clone();
                    calls.push((src, call));
                }
            }
        }
        // At any time, and at a reading's own time (the window's edges).
        let edge = held[pick % held.len()].measured_at;
        for as_of in [mins(at), edge, edge + Duration::minutes(30), edge + Duration::hours(6)] {
            for (src, call) in &calls {
                let values: Vec<f64> = held
                    .iter()
                    .filter(|r| {
                        r.observation.code == call.code
                            && r.measured_at >= as_of - call.window
                            && r.measured_at <= as_of
                    })
                    .filter_map(|r| r.observation.value.as_number())
                    .collect();
                prop_assert_eq!(p.trend(call, as_of), call.func.apply(&values), "{} at {}", src, as_of);
            }
        }
    }
}

#[test]
fn a_row_measured_for_the_first_time_is_not_a_rise() {
    let mut e = engine_with("general");
    // SpO2 alone first (scores 0), then a raised pulse (1) and RR (2): the
    // total climbs from 0 to 3 only because more rows are measured.
    e.observe(1, reading("spo2", 97.0, mins(0), 1), mins(0))
        .unwrap();
    let out = e
        .observe(1, reading("pulse", 95.0, mins(5), 2), mins(5))
        .unwrap();
    let out2 = e
        .observe(1, reading("resp_rate", 21.0, mins(6), 3), mins(6))
        .unwrap();
    assert!(!rules(&out).contains(&"news2-rising".to_string()));
    assert!(!rules(&out2).contains(&"news2-rising".to_string()));
    // The same pulse row then worsening by 2 (95 → 131: 1 → 3) is a rise.
    let out = e
        .observe(1, reading("pulse", 131.0, mins(60), 4), mins(60))
        .unwrap();
    assert!(
        rules(&out).contains(&"news2-rising".to_string()),
        "{:?}",
        rules(&out)
    );
}

#[test]
fn resolved_alert_is_not_raised_again_for_the_same_continuing_state() {
    let mut e = engine_with("general");
    e.observe(1, reading("spo2", 92.0, mins(0), 1), mins(0))
        .unwrap();
    let a = e.open_alert(1, "spo2-urgent").unwrap().clone();
    e.resolve(
        a.id,
        "nurse.jones",
        mins(10),
        "reviewed-no-action",
        "her usual",
    )
    .unwrap();
    // Still 92 afterwards: same state, no new alert (the patient is still advised).
    let out = e
        .observe(1, reading("spo2", 92.0, mins(20), 2), mins(20))
        .unwrap();
    assert!(e.open_alert(1, "spo2-urgent").is_none(), "{out:?}");
    assert!(out.iter().any(|o| matches!(o, Output::Advice { .. })));
    // The state clears (97), then comes back: a new alert.
    e.observe(1, reading("spo2", 97.0, mins(30), 3), mins(30))
        .unwrap();
    e.observe(1, reading("spo2", 91.0, mins(40), 4), mins(40))
        .unwrap();
    let b = e.open_alert(1, "spo2-urgent").unwrap();
    assert_ne!(b.id, a.id);
}

#[test]
fn resolved_alert_is_raised_again_for_a_worse_state() {
    let mut e = engine_with("general");
    news2_set(&mut e, 22.0, 96.0, 120.0, 112.0, 38.5, mins(0), 1); // 5 medium
    let a = e.open_alert(1, "news2").unwrap().clone();
    assert_eq!(a.severity, Severity::Medium);
    e.resolve(a.id, "nurse.jones", mins(5), "reviewed-no-action", "known")
        .unwrap();
    news2_set(&mut e, 22.0, 96.0, 120.0, 112.0, 38.5, mins(10), 2); // still 5
    assert!(e.open_alert(1, "news2").is_none());
    news2_set(&mut e, 25.0, 92.0, 120.0, 112.0, 37.0, mins(20), 3); // 7 high
    let b = e.open_alert(1, "news2").unwrap();
    assert_eq!((b.severity, b.id != a.id), (Severity::High, true));
}

#[test]
fn a_repeat_is_sent_as_its_own_event_and_the_history_stays_short() {
    let mut e = engine_with("general");
    e.observe(1, reading("spo2", 92.0, mins(0), 1), mins(0))
        .unwrap();
    for i in 1..200 {
        let out = e
            .observe(1, reading("spo2", 92.0, mins(i), 1 + i), mins(i))
            .unwrap();
        let Some(Output::AlertUpdated { alert, event }) = out.iter().find(
            |o| matches!(o, Output::AlertUpdated { alert, .. } if alert.rule == "spo2-urgent"),
        ) else {
            panic!("{out:?}")
        };
        assert_eq!((event.kind, event.at), (EventKind::Repeated, mins(i)));
        assert_eq!(alert.events.len(), 1, "only Raised is kept");
    }
    assert_eq!(e.open_alert(1, "spo2-urgent").unwrap().count, 200);
}

#[test]
fn every_rule_example_in_docs_rules_md_compiles() {
    let doc = include_str!("../../../../docs/rules.md");
    let mut n = 0;
    for block in doc.split("```toml").skip(1) {
        let body = block.split("```").next().unwrap_or("");
        if !body.contains("[[rule]]") {
            continue;
        }
        let text = format!(
            "name = \"doc\"\ntitle = \"Doc\"\n{body}\n[escalation]\nhigh = \"5m\"\nmedium = \"15m\"\nlow-medium = \"30m\"\n"
        );
        let p = crate::Pathway::parse("docs/rules.md", &text).unwrap_or_else(|e| panic!("{e}"));
        n += p.rules.len();
    }
    assert!(n >= 6, "{n} examples");
}

#[test]
fn after_a_restart_restored_alerts_absorb_the_replay() {
    let mut first = engine_with("general");
    first
        .observe(1, reading("spo2", 92.0, mins(0), 1), mins(0))
        .unwrap();
    let stored = first.open_alert(1, "spo2-urgent").unwrap().clone();

    let mut e = engine_with("general");
    e.restore_alert(stored.clone()).unwrap();
    let out = e
        .observe(1, reading("spo2", 92.0, mins(0), 1), mins(60))
        .unwrap();
    assert!(
        out.iter()
            .all(|o| !matches!(o, Output::AlertRaised(a) if a.rule == "spo2-urgent")),
        "{out:?}"
    );
    assert_eq!(e.open_alert(1, "spo2-urgent").unwrap().id, stored.id);
    // New alerts get ids after the restored ones.
    let out = e
        .observe(1, reading("pulse", 131.0, mins(1), 2), mins(61))
        .unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::AlertRaised(a) if a.id > stored.id))
    );
}

#[test]
fn episode_settings_change_rescores_and_retargets() {
    let mut e = engine_with("copd"); // scale 2, target 88–92
    e.observe(1, reading("spo2", 90.0, mins(0), 1), mins(0))
        .unwrap();
    assert!(e.open_alert(1, "spo2-below-target").is_none());
    let scale2 = e.news2(1).unwrap();
    assert_eq!(
        scale2
            .subscore(vigil_clinical::Parameter::Spo2)
            .map(|s| s.score),
        Some(0)
    );
    // A clinician records scale 1 and the standard target for this episode.
    let mut setup = PatientSetup::new("copd", t0());
    setup.spo2_scale = Some(vigil_clinical::news2::Spo2ScaleSetting::scale(
        vigil_clinical::Spo2Scale::One,
    ));
    setup.spo2_target = Some(vigil_clinical::thresholds::spo2::Spo2Target::STANDARD);
    e.admit(1, setup).unwrap();
    let scale1 = e.news2(1).unwrap();
    assert_eq!(
        scale1
            .subscore(vigil_clinical::Parameter::Spo2)
            .map(|s| s.score),
        Some(3)
    );
    let out = e
        .observe(1, reading("spo2", 90.0, mins(10), 2), mins(10))
        .unwrap();
    assert!(
        rules(&out).contains(&"spo2-below-target".to_string()),
        "{out:?}"
    );
}

#[test]
fn rules_can_read_ages_device_facts_and_news2_fields() {
    let text = r#"
name = "custom"
title = "Custom"
[[rule]]
id = "bp-overdue-while-spo2-low"
when = 'spo2 < 94 && (!has(age.systolic) || age.systolic > dur("12h"))'
severity = "low"
message = "SpO2 low and no blood pressure for 12 hours"
[[rule]]
id = "reading-from-a-failing-battery"
when = "device.battery_pct <= 20"
severity = "low"
message = "Reading from a device with a failing battery"
on = ["pulse"]
[[rule]]
id = "red-row"
when = "news2.red && news2.partial"
severity = "low-medium"
message = "Red NEWS2 row in a partial score"
[escalation]
high = "5m"
medium = "15m"
low-medium = "30m"
"#;
    let mut pathways = shipped();
    pathways.insert(crate::Pathway::parse("custom.toml", text).unwrap());
    let mut e = Engine::new(pathways);
    e.admit(1, PatientSetup::new("custom", t0())).unwrap();
    e.observe(1, reading("systolic", 120.0, mins(0), 1), mins(0))
        .unwrap();
    let out = e
        .observe(1, reading("spo2", 93.0, mins(60), 2), mins(60))
        .unwrap();
    assert!(!rules(&out).contains(&"bp-overdue-while-spo2-low".to_string()));
    let out = e
        .observe(1, reading("spo2", 93.0, mins(13 * 60), 3), mins(13 * 60))
        .unwrap();
    assert!(
        rules(&out).contains(&"bp-overdue-while-spo2-low".to_string()),
        "{out:?}"
    );
    let status = DeviceStatus {
        online: true,
        battery_pct: Some(18),
        signal: Some("ok".into()),
    };
    e.device_status(1, "dev-1", status, mins(13 * 60)).unwrap();
    let out = e
        .observe(
            1,
            reading("pulse", 30.0, mins(13 * 60 + 1), 4),
            mins(13 * 60 + 1),
        )
        .unwrap();
    let got = rules(&out);
    assert!(
        got.contains(&"reading-from-a-failing-battery".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"red-row".to_string()),
        "pulse 30 scores 3: {got:?}"
    );
}

fn arb_scored() -> impl Strategy<Value = crate::state::Scored> {
    (
        proptest::option::of(0u8..20),
        proptest::array::uniform7(proptest::option::of(0u8..4)),
    )
        .prop_map(|(total, rows)| crate::state::Scored { total, rows })
}

proptest! {
    /// `largest_rise` stops early; it must answer as the plain scan of the
    /// whole window does (largest rise, earliest time, last of equal keys).
    #[test]
    fn largest_rise_answers_like_a_scan_of_the_whole_window(
        scores in proptest::collection::vec((0i64..40, proptest::option::of(0i64..3), arb_scored()), 0..60),
        now in arb_scored(),
        window_min in 1i64..50,
    ) {
        let pathways = shipped();
        let pathway = pathways.get("general").unwrap();
        let mut p = crate::state::Patient::new(PatientSetup::new("general", t0()), pathway);
        for (m, id, s) in scores {
            p.scores.insert((mins(m), id), s);
        }
        let as_of = mins(40);
        let window = Duration::minutes(window_min);
        let (lo, hi) = ((as_of - window, None), (as_of, None));
        let scan = p
            .scores
            .iter()
            .filter(|(k, _)| *k >= lo && *k < hi)
            .map(|(k, then)| (now.rise_since(then), k.0, then.total))
            .max_by_key(|(rise, t, _)| (*rise, std::cmp::Reverse(*t)));
        prop_assert_eq!(p.largest_rise(&now, as_of, window), scan);
    }
}

proptest! {
    /// The scores' ring answers as the ordered map it replaced: inserts
    /// anywhere (a late reading), replacements, drops from the front.
    #[test]
    fn the_scores_ring_answers_as_an_ordered_map(
        ops in proptest::collection::vec((0i64..40, proptest::option::of(0i64..3), arb_scored(), 0u8..8), 0..80),
        lo in (0i64..40, proptest::option::of(0i64..3)),
        hi in (0i64..40, proptest::option::of(0i64..3)),
    ) {
        let mut ring = crate::state::Scores::default();
        let mut model = std::collections::BTreeMap::new();
        for (m, id, s, op) in ops {
            if op == 0 {
                ring.drop_before(mins(m));
                model.retain(|k: &(DateTime<Utc>, Option<i64>), _| k.0 >= mins(m));
            } else {
                ring.insert((mins(m), id), s);
                model.insert((mins(m), id), s);
            }
        }
        let all: Vec<_> = ring.iter().copied().collect();
        let expected: Vec<_> = model.iter().map(|(k, s)| (*k, *s)).collect();
        prop_assert_eq!(all, expected);
        let (lo, hi) = ((mins(lo.0), lo.1), (mins(hi.0), hi.1));
        let got: Vec<_> = ring.range(lo, hi).copied().collect();
        let expected: Vec<_> = model
            .iter()
            .filter(|(k, _)| **k >= lo && **k < hi)
            .map(|(k, s)| (*k, *s))
            .collect();
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn the_kit_is_told_the_pathways_schedule_or_the_clinicians() {
    let mut e = engine_with("copd");
    let hours = |h: i64| Duration::hours(h);
    let schedule = e.schedule(1).unwrap();
    assert_eq!(
        schedule.into_iter().collect::<Vec<_>>(),
        [("resp_rate", hours(12)), ("spo2", hours(8))]
    );
    let mut setup = PatientSetup::new("copd", t0());
    setup.obs_every_minutes = Some(4 * 60);
    e.admit(1, setup).unwrap();
    assert_eq!(
        e.schedule(1).unwrap().into_iter().collect::<Vec<_>>(),
        [("resp_rate", hours(4)), ("spo2", hours(4))]
    );
    assert!(e.schedule(2).is_none(), "a patient not held");
}

#[test]
fn a_code_two_expect_rules_name_is_asked_for_at_the_shorter_interval() {
    let pathways = Pathways::load([(
        "twice.toml",
        r#"
name = "twice"
title = "Two rules for SpO2"

[[expect]]
codes = ["spo2", "pulse"]
every = "12h"
severity = "low"

[[expect]]
codes = ["spo2"]
every = "6h"
severity = "low"

[escalation]
high = "5m"
medium = "15m"
low-medium = "30m"
low = "4h"
"#,
    )])
    .unwrap();
    let mut e = Engine::new(pathways);
    e.admit(1, PatientSetup::new("twice", t0())).unwrap();
    assert_eq!(
        e.schedule(1).unwrap().into_iter().collect::<Vec<_>>(),
        [("pulse", Duration::hours(12)), ("spo2", Duration::hours(6))]
    );
}
