//! Streaming ECG analysis for Vigil's ECG patch: QRS detection, heart rate,
//! RR irregularity (possible AF), signal quality, and WFDB record reading.
//!
//! The crate is pure: no I/O, no clock, no async runtime. Callers (the
//! ingest daemon, the `vigil ecg detect` CLI, tests and examples) read
//! bytes and pass them in, so the same input always gives the same beats.
//!
//! # Layout
//! - [`stream`] — [`EcgStream`], one patch's live analysis for the ingest
//!   daemon: chunks in, beats / heart rate / quality / possible-AF events out.
//! - [`detector`] — the streaming QRS detector ([`Detector`], [`Beat`]).
//! - [`sqi`] — per-second signal quality (lead-off, noise).
//! - [`af`] — RR irregularity over two minutes (the possible-AF prompt).
//! - [`codec`] — lossless storage of raw samples (predictive Rice coding, ~3.8× on MIT-BIH).
//! - [`synth`] — synthetic ECG with known beats, for tests and benchmarks.
//! - `filter` (private) — run-time biquad design for 125–1000 Hz.
//! - [`wfdb`] — PhysioNet header, format 212/16 and annotation decoding.
//! - [`eval`] — ANSI/AAMI EC57 beat-by-beat scoring (the `bxb` method).
//! - [`error`] — [`EcgError`].

pub mod af;
pub mod codec;
pub mod detector;
pub mod error;
pub mod eval;
mod filter;
pub mod sqi;
pub mod stream;
pub mod synth;
pub mod wfdb;

pub use codec::{SAMPLE_ENCODING, decode_samples, encode_samples};
pub use detector::{Beat, Detector, detect_all};
pub use error::EcgError;
pub use sqi::Quality;
pub use stream::{Chunk, EcgEvent, EcgStream};

/// Detect beats in one channel of a WFDB record given as its header text
/// and signal bytes: what `vigil ecg detect --record PATH --channel K` calls
/// after reading `PATH.hea` and the `.dat` file the header names.
///
/// Print each beat as `beat.sample` and `beat.sample as f64 / fs` where
/// `fs` is [`wfdb::parse_header`]`(hea)?.fs_hz`.
pub fn detect_record(hea: &str, dat: &[u8], channel: usize) -> Result<Vec<Beat>, EcgError> {
    let header = wfdb::parse_header(hea)?;
    let signal = wfdb::decode_channel(&header, dat, channel)?;
    let fs = header.fs_hz.round() as u32;
    detect_all(fs, &signal)
}
