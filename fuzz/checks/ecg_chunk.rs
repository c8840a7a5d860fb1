//! An `ecg` payload (binary chunk, docs/mqtt.md): any bytes. Both the kit's
//! zero-copy decoder and the ingest's validating decoder must answer Ok or a
//! typed error, never panic, and agree on the samples.
//!
//! Shared by the fuzz target and by the corpus replay test that runs in
//! `cargo test` (crates/vigil-ingest/tests/fuzz_corpus.rs).

use chrono::{TimeZone, Utc};

/// Panics if `data` breaks the decoder's contract.
pub fn check(data: &[u8]) {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .expect("valid time");
    let kit = vigil_kit::EcgChunk::decode(data);
    if let Ok(c) = &kit {
        assert_eq!(c.samples().count(), c.len());
    }
    if let Ok(d) = vigil_ingest::ecg::decode_chunk(data, now) {
        let c = kit.expect("the ingest accepts only what the kit decodes");
        assert!(d.samples.iter().copied().eq(c.samples()));
    }
}
