//! How much resident memory the engine takes to hold a continuous
//! oximeter's readings: feeds one patient `HOURS` (default 31) of 1 Hz SpO2
//! and pulse on `PATHWAY` (default general, which keeps 30 h) and prints
//! the growth of the process's resident set, per reading held.
//!
//! `cargo run --release -p vigil-rules --example held_memory [HOURS] [PATHWAY] [daemon]`
//!
//! With `daemon`, the engine runs as the daemon runs it: without its
//! built-in NEWS2 rules, and so without their NEWS2 history.
//!
//! Linux only (reads `/proc/self/status`). The figure includes what the
//! allocator keeps around the engine's blocks, as a daemon's would.

use chrono::{DateTime, Duration, Utc};
use vigil_clinical::{Code, Reading, Value, validate};
use vigil_rules::{Engine, Pathways, PatientSetup};

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let hours: i64 = args.next().and_then(|h| h.parse().ok()).unwrap_or(31);
    let pathway = args.next().unwrap_or_else(|| "general".into());
    let as_daemon = args.next().as_deref() == Some("daemon");
    let pathways = Pathways::load([
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
    .expect("shipped pathways load");
    let t0 = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
    let mut engine = Engine::new(pathways);
    if as_daemon {
        engine = engine.without_news2_rules();
    }
    engine
        .admit(1, PatientSetup::new(&pathway, t0))
        .expect("a shipped pathway");
    let before = resident_kib();
    let mut id = 0;
    for s in 0..hours * 3_600 {
        let at = t0 + Duration::seconds(s);
        for (code, v) in [
            (Code::Spo2, 95.0 + (s % 4) as f64),
            (Code::Pulse, 70.0 + (s % 17) as f64),
        ] {
            id += 1;
            let reading = Reading {
                observation: validate(code.as_str(), code.unit(), &Value::Number(v))
                    .expect("valid"),
                measured_at: at,
                source: Some("oximeter-1".into()),
                obs_id: Some(id),
            };
            engine
                .observe(1, reading, at + Duration::seconds(1))
                .expect("admitted");
        }
    }
    let grown = resident_kib().saturating_sub(before);
    let held = engine.readings(1).len();
    println!(
        "{pathway}{}: fed {hours} h of 1 Hz SpO2 and pulse, holds {held} readings; resident +{:.1} MiB, {:.0} bytes a reading held",
        if as_daemon {
            " (as the daemon runs it)"
        } else {
            ""
        },
        grown as f64 / 1024.0,
        grown as f64 * 1024.0 / held.max(1) as f64
    );
}
