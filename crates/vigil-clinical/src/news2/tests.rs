//! Tests of the assembled score: rounding at band edges, scale 2 on air and
//! on oxygen, partial scores, and properties over random observation sets.

use proptest::prelude::*;

use super::*;

#[allow(clippy::too_many_arguments)] // one argument per chart row reads best in the tables below
fn full(
    rr: f64,
    spo2: f64,
    on_o2: bool,
    sys: f64,
    pulse: f64,
    acvpu: Acvpu,
    temp: f64,
    scale: Spo2Scale,
) -> News2Inputs {
    News2Inputs {
        resp_rate: Some(Measured::new(rr)),
        spo2: Some(Measured::new(spo2)),
        oxygen: Some(Measured::new(if on_o2 {
            OxygenStatus::OXYGEN
        } else {
            OxygenStatus::AIR
        })),
        systolic: Some(Measured::new(sys)),
        pulse: Some(Measured::new(pulse)),
        consciousness: Some(Measured::new(acvpu)),
        temperature: Some(Measured::new(temp)),
        spo2_scale: Spo2ScaleSetting::scale(scale),
    }
}

fn normal() -> News2Inputs {
    full(
        16.0,
        98.0,
        false,
        120.0,
        70.0,
        Acvpu::Alert,
        37.0,
        Spo2Scale::One,
    )
}

fn sub(r: &News2Score, p: Parameter) -> u8 {
    r.subscore(p).map(|s| s.score).unwrap_or(u8::MAX)
}

#[test]
fn a_normal_complete_set_scores_0_low_and_is_not_partial() {
    let r = score(&normal());
    assert_eq!(r.total, Some(0));
    assert_eq!(r.risk, Some(Risk::Low));
    assert!(!r.partial);
    assert!(r.missing.is_empty());
    assert_eq!(r.subscores.len(), 7);
    assert_eq!(r.monitoring, Some(Monitoring::TwelveHourly));
}

#[test]
fn temperature_rounds_half_up_at_band_edges_before_lookup() {
    for (t, want, q) in [
        (35.04, 3, 35.0),
        (35.05, 1, 35.1),
        (38.05, 1, 38.1),
        (39.05, 2, 39.1),
    ] {
        let mut i = normal();
        i.temperature = Some(Measured::new(t));
        let r = score(&i);
        let s = r.subscore(Parameter::Temperature).unwrap();
        assert_eq!(s.score, want, "{t}");
        assert_eq!(s.raw, Value::Number(t), "raw value kept");
        assert_eq!(s.quantised, Value::Number(q));
    }
}

#[test]
fn respiration_rate_20_5_rounds_to_21_and_scores_2() {
    let mut i = normal();
    i.resp_rate = Some(Measured::new(20.5));
    let r = score(&i);
    let s = r.subscore(Parameter::RespRate).unwrap();
    assert_eq!(s.score, 2);
    assert_eq!(s.quantised, Value::Number(21.0));
    assert_eq!(s.reason, "Respiration rate 20.5/min → 21/min → 2");
    let mut i = normal();
    i.resp_rate = Some(Measured::new(20.49));
    assert_eq!(sub(&score(&i), Parameter::RespRate), 0);
}

#[test]
fn whole_number_rows_round_half_up_at_every_edge() {
    // (row, value just below a half, value at the half, score below, score at)
    let cases: [(Parameter, f64, f64, u8, u8); 8] = [
        (Parameter::RespRate, 8.49, 8.5, 3, 1),
        (Parameter::RespRate, 24.49, 24.5, 2, 3),
        (Parameter::Spo2, 91.49, 91.5, 3, 2),
        (Parameter::Spo2, 95.49, 95.5, 1, 0),
        (Parameter::Systolic, 90.49, 90.5, 3, 2),
        (Parameter::Systolic, 219.49, 219.5, 0, 3),
        (Parameter::Pulse, 40.49, 40.5, 3, 1),
        (Parameter::Pulse, 130.49, 130.5, 2, 3),
    ];
    for (p, below, at, s_below, s_at) in cases {
        for (v, want) in [(below, s_below), (at, s_at)] {
            let mut i = normal();
            let m = Some(Measured::new(v));
            match p {
                Parameter::RespRate => i.resp_rate = m,
                Parameter::Spo2 => i.spo2 = m,
                Parameter::Systolic => i.systolic = m,
                Parameter::Pulse => i.pulse = m,
                _ => unreachable!(),
            }
            assert_eq!(sub(&score(&i), p), want, "{p} {v}");
        }
    }
}

#[test]
fn spo2_scale_1_reason_names_the_scale() {
    let mut i = normal();
    i.spo2 = Some(Measured::new(91.0));
    let r = score(&i);
    assert_eq!(
        r.subscore(Parameter::Spo2).unwrap().reason,
        "SpO2 91% on scale 1 → 3"
    );
}

#[test]
fn scale_2_on_air_scores_high_saturations_0_and_on_oxygen_scores_them() {
    for (spo2, air, oxygen) in [
        (88.0, 0, 0),
        (92.0, 0, 0),
        (93.0, 0, 1),
        (94.0, 0, 1),
        (95.0, 0, 2),
        (96.0, 0, 2),
        (97.0, 0, 3),
        (100.0, 0, 3),
    ] {
        let on_air = full(
            16.0,
            spo2,
            false,
            120.0,
            70.0,
            Acvpu::Alert,
            37.0,
            Spo2Scale::Two,
        );
        let on_o2 = full(
            16.0,
            spo2,
            true,
            120.0,
            70.0,
            Acvpu::Alert,
            37.0,
            Spo2Scale::Two,
        );
        let a = score(&on_air);
        let o = score(&on_o2);
        assert_eq!(sub(&a, Parameter::Spo2), air, "air {spo2}");
        assert_eq!(sub(&o, Parameter::Spo2), oxygen, "oxygen {spo2}");
        assert_eq!(sub(&o, Parameter::Oxygen), 2);
        assert_eq!(a.total, Some(air));
        assert_eq!(o.total, Some(oxygen + 2));
    }
}

#[test]
fn the_same_saturation_scores_differently_on_scale_1_and_scale_2() {
    let s1 = score(&full(
        16.0,
        88.0,
        false,
        120.0,
        70.0,
        Acvpu::Alert,
        37.0,
        Spo2Scale::One,
    ));
    let s2 = score(&full(
        16.0,
        88.0,
        false,
        120.0,
        70.0,
        Acvpu::Alert,
        37.0,
        Spo2Scale::Two,
    ));
    assert_eq!(sub(&s1, Parameter::Spo2), 3);
    assert_eq!(sub(&s2, Parameter::Spo2), 0);
    assert_eq!(s1.risk, Some(Risk::LowMedium));
    assert_eq!(s2.risk, Some(Risk::Low));
    assert_eq!(s2.spo2_scale.scale, Spo2Scale::Two);
}

#[test]
fn oxygen_adds_2_but_is_never_a_red_score() {
    let mut i = normal();
    i.oxygen = Some(Measured::new(OxygenStatus::OXYGEN));
    let r = score(&i);
    assert_eq!(r.total, Some(2));
    assert!(!r.red_score);
    assert_eq!(r.risk, Some(Risk::Low));
}

#[test]
fn every_acvpu_level_scores_and_a_non_alert_level_is_red() {
    for (level, want, risk) in [
        (Acvpu::Alert, 0, Risk::Low),
        (Acvpu::Confusion, 3, Risk::LowMedium),
        (Acvpu::Voice, 3, Risk::LowMedium),
        (Acvpu::Pain, 3, Risk::LowMedium),
        (Acvpu::Unresponsive, 3, Risk::LowMedium),
    ] {
        let mut i = normal();
        i.consciousness = Some(Measured::new(level));
        let r = score(&i);
        assert_eq!(sub(&r, Parameter::Consciousness), want, "{level:?}");
        assert_eq!(r.risk, Some(risk), "{level:?}");
    }
}

#[test]
fn risk_bands_from_whole_sets() {
    // 5 without a red: medium; 7: high; a single 3 at total 3: low-medium
    let r = score(&full(
        22.0,
        95.0,
        false,
        105.0,
        70.0,
        Acvpu::Alert,
        37.0,
        Spo2Scale::One,
    ));
    assert_eq!((r.total, r.risk), (Some(4), Some(Risk::Low)));
    let r = score(&full(
        22.0,
        95.0,
        true,
        105.0,
        70.0,
        Acvpu::Alert,
        37.0,
        Spo2Scale::One,
    ));
    assert_eq!((r.total, r.risk), (Some(6), Some(Risk::Medium)));
    let r = score(&full(
        25.0,
        93.0,
        true,
        120.0,
        70.0,
        Acvpu::Alert,
        37.0,
        Spo2Scale::One,
    ));
    assert_eq!((r.total, r.risk), (Some(7), Some(Risk::High)));
    let r = score(&full(
        16.0,
        98.0,
        false,
        120.0,
        70.0,
        Acvpu::Alert,
        35.0,
        Spo2Scale::One,
    ));
    assert_eq!(
        (r.total, r.risk, r.red_score),
        (Some(3), Some(Risk::LowMedium), true)
    );
}

#[test]
fn a_missing_parameter_makes_the_score_partial_and_is_listed() {
    let mut i = normal();
    i.resp_rate = None;
    i.consciousness = None;
    let r = score(&i);
    assert!(r.partial);
    assert_eq!(
        r.missing,
        vec![Parameter::RespRate, Parameter::Consciousness]
    );
    assert_eq!(r.subscores.len(), 5);
    assert_eq!(r.total, Some(0));
}

#[test]
fn an_empty_set_is_partial_with_every_row_missing() {
    let r = score(&News2Inputs::default());
    assert!(r.partial);
    assert_eq!(r.missing, Parameter::ALL.to_vec());
    assert_eq!(r.total, Some(0));
}

#[test]
fn a_non_finite_value_is_missing_not_scored() {
    let mut i = normal();
    i.pulse = Some(Measured::new(f64::NAN));
    let r = score(&i);
    assert!(r.partial);
    assert_eq!(r.missing, vec![Parameter::Pulse]);
}

#[test]
fn unknown_oxygen_on_scale_2_is_scored_as_air_and_says_so() {
    let mut i = full(
        16.0,
        97.0,
        false,
        120.0,
        70.0,
        Acvpu::Alert,
        37.0,
        Spo2Scale::Two,
    );
    i.oxygen = None;
    let r = score(&i);
    let s = r.subscore(Parameter::Spo2).unwrap();
    assert_eq!(s.score, 0);
    assert!(s.reason.contains("oxygen unknown"), "{}", s.reason);
    assert!(r.partial);
    assert_eq!(r.missing, vec![Parameter::Oxygen]);
}

#[test]
fn subscores_carry_provenance() {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-22T08:15:03Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut i = normal();
    i.pulse = Some(Measured {
        value: 88.0,
        measured_at: Some(t),
        source: Some("oxi-1".into()),
        obs_id: Some(42),
        entered_by: None,
    });
    let r = score(&i);
    let s = r.subscore(Parameter::Pulse).unwrap();
    assert_eq!(s.measured_at, Some(t));
    assert_eq!(s.source.as_deref(), Some("oxi-1"));
    assert_eq!(s.obs_id, Some(42));
    assert_eq!(s.reason, "Pulse 88/min → 0");
}

#[test]
fn not_applicable_has_no_total_or_risk() {
    let r = News2Score::not_applicable(NotApplicable::Pregnant, Spo2ScaleSetting::default(), None);
    assert_eq!(r.total, None);
    assert_eq!(r.risk, None);
    assert_eq!(r.monitoring, None);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["not_applicable"], "pregnant");
}

#[test]
fn result_round_trips_through_json() {
    let r = score(&normal());
    let json = serde_json::to_string(&r).unwrap();
    let back: News2Score = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

// ---- properties ----

fn acvpu() -> impl Strategy<Value = Acvpu> {
    prop::sample::select(Acvpu::ALL.to_vec())
}

fn scale() -> impl Strategy<Value = Spo2Scale> {
    prop::sample::select(vec![Spo2Scale::One, Spo2Scale::Two])
}

/// Values with one decimal (as devices report) over each code's validity range.
fn tenths(lo: i32, hi: i32) -> impl Strategy<Value = f64> {
    (lo * 10..=hi * 10).prop_map(|t| f64::from(t) / 10.0)
}

prop_compose! {
    fn any_inputs()(
        rr in prop::option::of(tenths(1, 80)),
        spo2 in prop::option::of(tenths(20, 100)),
        o2 in prop::option::of(any::<bool>()),
        sys in prop::option::of(tenths(40, 300)),
        pulse in prop::option::of(tenths(20, 300)),
        level in prop::option::of(acvpu()),
        temp in prop::option::of((250..=450i32).prop_map(|t| f64::from(t) / 10.0)),
        scale in scale(),
    ) -> News2Inputs {
        News2Inputs {
            resp_rate: rr.map(Measured::new),
            spo2: spo2.map(Measured::new),
            oxygen: o2.map(|o| Measured::new(if o { OxygenStatus::OXYGEN } else { OxygenStatus::AIR })),
            systolic: sys.map(Measured::new),
            pulse: pulse.map(Measured::new),
            consciousness: level.map(Measured::new),
            temperature: temp.map(Measured::new),
            spo2_scale: Spo2ScaleSetting::scale(scale),
        }
    }
}

/// Replaces one numeric row's value.
fn with(mut i: News2Inputs, p: Parameter, v: f64) -> News2Inputs {
    let m = Some(Measured::new(v));
    match p {
        Parameter::RespRate => i.resp_rate = m,
        Parameter::Spo2 => i.spo2 = m,
        Parameter::Systolic => i.systolic = m,
        Parameter::Pulse => i.pulse = m,
        Parameter::Temperature => i.temperature = m,
        Parameter::Oxygen | Parameter::Consciousness => {}
    }
    i
}

/// The most normal value of each numeric row ("away from normal" is moving
/// away from it in either direction). For scale 2 on oxygen the centre of the
/// 88–92 target; for scale 1 (and scale 2 on air) SpO2 only gets worse downwards.
fn normal_point(p: Parameter, i: &News2Inputs) -> f64 {
    match p {
        Parameter::RespRate => 16.0,
        Parameter::Spo2 => {
            let on_o2 = i.oxygen.as_ref().is_some_and(|m| m.value.on_oxygen);
            if i.spo2_scale.scale == Spo2Scale::Two && on_o2 {
                90.0
            } else {
                100.0
            }
        }
        Parameter::Systolic => 160.0,
        Parameter::Pulse => 70.0,
        Parameter::Temperature => 37.0,
        Parameter::Oxygen | Parameter::Consciousness => 0.0,
    }
}

proptest! {
    #[test]
    fn total_is_the_sum_of_the_subscores(i in any_inputs()) {
        let r = score(&i);
        let sum: u32 = r.subscores.iter().map(|s| u32::from(s.score)).sum();
        prop_assert_eq!(r.total.map(u32::from), Some(sum));
        prop_assert_eq!(r.partial, r.subscores.len() < 7);
        prop_assert_eq!(r.subscores.len() + r.missing.len(), 7);
        prop_assert!(r.subscores.iter().all(|s| s.score <= 3));
    }

    #[test]
    fn any_single_3_gives_at_least_low_medium(i in any_inputs()) {
        let r = score(&i);
        if r.subscores.iter().any(|s| s.score == 3) {
            prop_assert!(r.risk >= Some(Risk::LowMedium));
            prop_assert!(r.red_score);
        }
    }

    #[test]
    fn risk_never_decreases_as_one_parameter_moves_away_from_normal(
        i in any_inputs(),
        p in prop::sample::select(vec![Parameter::RespRate, Parameter::Spo2, Parameter::Systolic, Parameter::Pulse, Parameter::Temperature]),
        a in 0.0f64..1.0,
        b in 0.0f64..1.0,
        upward in any::<bool>(),
    ) {
        let centre = normal_point(p, &i);
        let (lo, hi) = match p {
            Parameter::RespRate => (1.0, 80.0),
            Parameter::Spo2 => (20.0, 100.0),
            Parameter::Systolic => (40.0, 300.0),
            Parameter::Pulse => (20.0, 300.0),
            _ => (25.0, 45.0),
        };
        let (near, far) = if a <= b { (a, b) } else { (b, a) };
        let end = if upward { hi } else { lo };
        let v_near = centre + (end - centre) * near;
        let v_far = centre + (end - centre) * far;
        let r_near = score(&with(i.clone(), p, v_near));
        let r_far = score(&with(i, p, v_far));
        prop_assert!(sub(&r_far, p) >= sub(&r_near, p), "{} {} → {}, {} → {}", p, v_near, sub(&r_near, p), v_far, sub(&r_far, p));
        prop_assert!(r_far.total >= r_near.total);
        prop_assert!(r_far.risk >= r_near.risk);
    }

    #[test]
    fn risk_never_decreases_when_oxygen_starts_or_consciousness_drops(i in any_inputs(), level in acvpu()) {
        let mut air = i.clone();
        air.oxygen = Some(Measured::new(OxygenStatus::AIR));
        let mut o2 = i.clone();
        o2.oxygen = Some(Measured::new(OxygenStatus::OXYGEN));
        // On scale 2 at ≥93 going onto oxygen raises SpO2's score too; it never lowers anything.
        prop_assert!(score(&o2).risk >= score(&air).risk);
        let mut alert = i.clone();
        alert.consciousness = Some(Measured::new(Acvpu::Alert));
        let mut other = i;
        other.consciousness = Some(Measured::new(level));
        prop_assert!(score(&other).risk >= score(&alert).risk);
    }
}
