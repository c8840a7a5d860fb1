//! Observations per second through the engine: one patient with a long
//! stream, 1,000 patients interleaved, and one reading of a continuous
//! oximeter after hours of them. Run:
//! `CARGO_TARGET_DIR=/work/target-rules cargo bench -j 1 -p vigil-rules`.

use chrono::{DateTime, Duration, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_clinical::{Code, Reading, Value, validate};
use vigil_rules::{Engine, Pathways, PatientSetup};

fn pathways() -> Pathways {
    Pathways::load([
        (
            "general.toml",
            include_str!("../../../pathways/general.toml"),
        ),
        ("copd.toml", include_str!("../../../pathways/copd.toml")),
        (
            "heart-failure.toml",
            include_str!("../../../pathways/heart-failure.toml"),
        ),
    ])
    .expect("shipped pathways load")
}

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)
}

/// A home kit's stream: a set of five vitals every 15 minutes, values
/// drifting through normal and abnormal bands so rules and alerts fire.
fn stream(n: usize, patient_salt: usize) -> Vec<Reading> {
    let codes = [
        (Code::Spo2, 88.0, 99.0),
        (Code::Pulse, 55.0, 135.0),
        (Code::RespRate, 10.0, 26.0),
        (Code::Systolic, 95.0, 185.0),
        (Code::Temp, 36.0, 39.0),
    ];
    (0..n)
        .map(|i| {
            let (code, lo, hi) = codes[i % codes.len()];
            let phase = ((i / codes.len() + patient_salt) % 40) as f64 / 40.0;
            let v = (lo + phase * (hi - lo)).round();
            Reading {
                observation: validate(code.as_str(), code.unit(), &Value::Number(v))
                    .expect("valid"),
                measured_at: t0() + Duration::minutes((i / codes.len()) as i64 * 15),
                source: Some(format!("kit-{patient_salt}")),
                obs_id: Some(i as i64),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");

    let one = stream(2_000, 0);
    g.throughput(Throughput::Elements(one.len() as u64));
    g.bench_function("one_patient_2000_obs", |b| {
        b.iter_batched(
            || {
                let mut e = Engine::new(pathways());
                e.admit(1, PatientSetup::new("general", t0()))
                    .expect("admit");
                e
            },
            |mut e| {
                for r in &one {
                    let now = r.measured_at + Duration::seconds(5);
                    let _ = e.observe(1, r.clone(), now).expect("observe");
                }
                e
            },
            BatchSize::LargeInput,
        )
    });

    let patients = 1_000usize;
    let per = 20usize;
    let streams: Vec<Vec<Reading>> = (0..patients).map(|p| stream(per, p)).collect();
    g.throughput(Throughput::Elements((patients * per) as u64));
    g.sample_size(10);
    g.bench_function("1000_patients_20_obs_each_interleaved", |b| {
        b.iter_batched(
            || {
                let mut e = Engine::new(pathways());
                for p in 0..patients {
                    let pathway = if p % 4 == 0 { "copd" } else { "general" };
                    e.admit(p as i64, PatientSetup::new(pathway, t0()))
                        .expect("admit");
                }
                e
            },
            |mut e| {
                for i in 0..per {
                    for (p, s) in streams.iter().enumerate() {
                        let r = &s[i];
                        let now = r.measured_at + Duration::seconds(5);
                        let _ = e.observe(p as i64, r.clone(), now).expect("observe");
                    }
                    let _ = e.tick(streams[0][i].measured_at + Duration::seconds(10));
                }
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A continuous oximeter's second: SpO2 and pulse, drifting in a normal
/// range.
fn oximeter_second(i: usize) -> [Reading; 2] {
    let at = t0() + Duration::seconds(i as i64);
    let r = |code: Code, v: f64, id: usize| Reading {
        observation: validate(code.as_str(), code.unit(), &Value::Number(v)).expect("valid"),
        measured_at: at,
        source: Some("oximeter-1".into()),
        obs_id: Some(id as i64),
    };
    [
        r(Code::Spo2, 95.0 + (i % 4) as f64, 2 * i),
        r(Code::Pulse, 70.0 + (i % 17) as f64, 2 * i + 1),
    ]
}

/// What the next minute of a 1 Hz oximeter costs once the engine holds
/// `hours` of it: the general pathway reads `change("spo2", "24h")`, heart
/// failure `median("pulse", "24h")`. Each iteration starts from a copy of
/// the same engine, so the history it holds is the same in every
/// iteration. Neither the copy nor the minute's first second is timed: a
/// copy's readings fill their vectors to capacity, and the first reading
/// of each code moves its whole vector to grow it, which the engine itself
/// does only once in a doubling.
fn continuous(c: &mut Criterion) {
    const MINUTE: usize = 60;
    let mut g = c.benchmark_group("continuous_oximetry");
    g.throughput(Throughput::Elements(2 * (MINUTE as u64 - 1)));
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_secs(1));
    g.measurement_time(std::time::Duration::from_secs(3));
    // The general pathway keeps 30 h (its 24 h trend plus freshness): fed
    // 31 h, it holds all it keeps and every reading drops the oldest of
    // its code, the steady state of a patient on the oximeter for days.
    let cases = [
        ("general", 1usize, "held"),
        ("general", 4, "held"),
        ("general", 24, "held"),
        ("general", 31, "fed"),
        ("heart-failure", 1, "held"),
        ("heart-failure", 4, "held"),
        ("heart-failure", 24, "held"),
    ];
    for (pathway, hours, fed) in cases {
        let held = hours * 3_600;
        g.bench_function(format!("{pathway}_{hours}h_{fed}_next_minute"), |b| {
            // Built here, so that a filtered-out case costs nothing.
            let mut base = Engine::new(pathways());
            base.admit(1, PatientSetup::new(pathway, t0()))
                .expect("admit");
            for i in 0..held {
                for r in oximeter_second(i) {
                    let now = r.measured_at + Duration::seconds(1);
                    let _ = base.observe(1, r, now).expect("observe");
                }
            }
            let next: Vec<Reading> = (held..held + MINUTE).flat_map(oximeter_second).collect();
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let mut e = base.clone();
                    let mut readings = next.clone().into_iter();
                    for r in readings.by_ref().take(2) {
                        let now = r.measured_at + Duration::seconds(1);
                        let _ = e.observe(1, r, now).expect("observe");
                    }
                    let start = std::time::Instant::now();
                    for r in readings {
                        let now = r.measured_at + Duration::seconds(1);
                        let _ = e.observe(1, r, now).expect("observe");
                    }
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, continuous);
criterion_main!(benches);
