//! An `obs` payload as a device publishes it (CONTRACTS.md §2): any bytes.
//! The decoder must answer Ok or a typed rejection, never panic, and decide
//! the same way twice.
//!
//! Shared by the fuzz target and by the corpus replay test that runs in
//! `cargo test` (crates/vigil-ingest/tests/fuzz_corpus.rs).

use chrono::{TimeZone, Utc};

/// Panics if `data` breaks the decoder's contract.
pub fn check(data: &[u8]) {
    // A fixed "now", so a run is reproducible (timestamps near it are in range).
    let now = Utc
        .with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .expect("valid time");
    let first = vigil_ingest::decode::decode_obs(data, now);
    if let Ok(msg) = &first {
        assert!(
            !msg.obs.is_empty(),
            "an accepted message carries observations"
        );
        assert!(msg.measured_at <= now + vigil_ingest::decode::MAX_FUTURE);
    }
    assert_eq!(first, vigil_ingest::decode::decode_obs(data, now));
}
