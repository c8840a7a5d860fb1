//! A Bluetooth GATT characteristic value as a cuff, oximeter, heart-rate
//! strap or thermometer sends it to the hub: the first byte picks the
//! parser, the rest is the value. No panic, and whatever a parser accepts
//! becomes only finite observations inside their physiological bounds.
//!
//! Shared by the fuzz target and by the corpus replay test that runs in
//! `cargo test` (crates/vigil-ingest/tests/fuzz_corpus.rs).

use vigil_kit::gatt::{
    Measurement, blood_pressure, heart_rate, plx_continuous, plx_spot_check, temperature,
};

/// Panics if `data` breaks the decoder's contract.
pub fn check(data: &[u8]) {
    let Some((&which, value)) = data.split_first() else {
        return;
    };
    let mut all = Vec::new();
    match which % 5 {
        0 => {
            if let Ok(m) = blood_pressure::parse(value) {
                all.extend(m.observations());
            }
        }
        1 => {
            if let Ok(m) = plx_spot_check::parse(value) {
                all.extend(m.observations());
            }
        }
        2 => {
            if let Ok(m) = plx_continuous::parse(value) {
                all.extend(m.observations());
            }
        }
        3 => {
            if let Ok(m) = heart_rate::parse(value) {
                all.extend(m.observations());
                assert!(m.rr_intervals_ms().all(|v| v.is_finite()));
            }
        }
        _ => {
            if let Ok(m) = temperature::parse(value) {
                all.extend(m.observations());
            }
        }
    }
    for o in all {
        if let vigil_kit::Value::Number(v) = o.value() {
            let (lo, hi) = o.code().bounds().expect("numeric codes have bounds");
            assert!(
                v.is_finite() && v >= lo && v <= hi,
                "{v} outside {lo}..={hi}"
            );
        }
    }
}
