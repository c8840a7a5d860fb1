//! Cost of scoring, per observation set: what the daemon pays after every
//! stored observation, and what `vigil score` pays per line.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-clinical cargo bench -j 1 -p vigil-clinical`

use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use vigil_clinical::news2::{
    self, Acvpu, EnteredBy, Measured, News2Inputs, OxygenStatus, Spo2ScaleSetting,
};
use vigil_clinical::{
    Attested, Code, Episode, Reading, Spo2Scale, Value, default_freshness, score_home, score_line,
    validate,
};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

/// A day of home readings for one patient: 4 sets of 6 codes, from 4 devices.
fn day_of_readings() -> Vec<Reading> {
    let mut out = Vec::new();
    let mut id = 0;
    for set in 0..4 {
        let at = now() - Duration::hours(6 * set) - Duration::minutes(5);
        for (code, v, dev) in [
            (Code::RespRate, 18.0, "patch-1"),
            (Code::Spo2, 95.0, "oxi-1"),
            (Code::Pulse, 88.0, "oxi-1"),
            (Code::Systolic, 118.0, "cuff-1"),
            (Code::Temp, 37.65, "thermo-1"),
            (Code::SkinTemp, 34.1, "patch-1"),
        ] {
            id += 1;
            if let Ok(observation) = validate(code.as_str(), code.unit(), &Value::Number(v)) {
                out.push(Reading {
                    observation,
                    measured_at: at,
                    source: Some(dev.into()),
                    obs_id: Some(id),
                });
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let readings = day_of_readings();
    let episode = Episode {
        oxygen: Some(Attested {
            value: false,
            recorded_at: now() - Duration::days(1),
            entered_by: EnteredBy::Clinician { user: "n".into() },
        }),
        consciousness: Some(Attested {
            value: Acvpu::Alert,
            recorded_at: now() - Duration::hours(1),
            entered_by: EnteredBy::Patient,
        }),
        ..Episode::default()
    };
    c.bench_function("score_home/24 readings, 7 rows", |b| {
        b.iter(|| {
            score_home(
                black_box(&readings),
                black_box(&episode),
                default_freshness(),
                now(),
            )
        })
    });

    let inputs = News2Inputs {
        resp_rate: Some(Measured::new(20.5)),
        spo2: Some(Measured::new(95.0)),
        oxygen: Some(Measured::new(OxygenStatus::OXYGEN)),
        systolic: Some(Measured::new(105.0)),
        pulse: Some(Measured::new(112.0)),
        consciousness: Some(Measured::new(Acvpu::Alert)),
        temperature: Some(Measured::new(38.05)),
        spo2_scale: Spo2ScaleSetting::scale(Spo2Scale::Two),
    };
    c.bench_function("news2::score/complete set", |b| {
        b.iter(|| news2::score(black_box(&inputs)))
    });

    let line = r#"{"resp_rate":18,"spo2":96,"spo2_scale":1,"o2":false,"systolic":120,"pulse":80,"acvpu":"A","temp":37.1}"#;
    c.bench_function("score_line/contract example", |b| {
        b.iter(|| score_line(black_box(line)))
    });

    let v = Value::Number(94.0);
    c.bench_function("validate/one observation", |b| {
        b.iter(|| validate(black_box("spo2"), black_box(Some("%")), black_box(&v)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
