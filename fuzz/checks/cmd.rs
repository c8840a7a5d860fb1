//! What the kit reads from the network: a `cmd` message from Vigil (or from
//! anyone who can publish to the broker), and the kit's JSON reader under
//! it. No panic on any bytes.
//!
//! Shared by the fuzz target and by the corpus replay test that runs in
//! `cargo test` (crates/vigil-ingest/tests/fuzz_corpus.rs).

/// Panics if `data` breaks the decoder's contract.
pub fn check(data: &[u8]) {
    let _ = vigil_kit::cmd::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil_kit::json::parse_object(text);
    }
}
