//! Observations per second through the engine: one patient with a long
//! stream, and 1,000 patients interleaved. Run:
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

criterion_group!(benches, bench);
criterion_main!(benches);
