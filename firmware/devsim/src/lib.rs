//! Simulated patients and their home kits for Vigil.
//!
//! `vigil-devsim` drives Vigil the way a ward of real patients would: each
//! simulated patient has a physiology (baseline, daily rhythm, slow drift,
//! measurement noise) and a scenario (stable, COPD exacerbation, sepsis,
//! heart-failure decompensation, asthma attack, atrial fibrillation onset,
//! hypotension, device faults, an offline gap). Each patient's kit (a home
//! hub, optionally an ECG patch) speaks real MQTT with provisioned
//! credentials and uses `vigil-kit` for everything a real kit does: message
//! encoding, the per-device sequence counter, and the store-and-forward
//! outbox that keeps every message until Vigil's `ack` or `reject`.
//!
//! Time is an input everywhere: the physiology and the schedules are pure
//! functions of simulated time, so a test can run a day in seconds and the
//! demo can run at 1× or accelerated. See docs/devsim.md.
//!
//! # Layout
//!
//! - [`physiology`]: baselines, circadian rhythm, drift and measurement noise.
//! - [`scenario`]: what each scenario does to which vital, over what time.
//! - [`schedule`]: when readings are taken (spot checks, patch minutes, ECG seconds).
//! - [`patient`]: one simulated patient: readings and ECG over simulated time.
//! - [`ecg`]: the patch's ECG: MIT-BIH replay or the synthetic generator.
//! - [`resample`]: band-limited resampling (MIT-BIH 360 Hz to the patch's 250 Hz).
//! - [`kit`]: one device on the network: MQTT client + `vigil-kit` outbox.
//! - [`ward`]: a ward of patients running against a broker (used by `vigil demo`).
//! - [`load`]: the load generator behind `devsim load` and its report.
//! - [`bench`]: `devsim bench`, the end-to-end benchmark against a fresh `vigil serve`.
//! - [`daemon`]: `vigil serve` and Mosquitto as child processes on free ports.
//! - [`http`]: admitting patients and provisioning devices over the HTTP API.
//! - [`nhs`]: valid test-range NHS numbers.
//! - [`rng`]: seeded randomness with a normal distribution.

pub mod bench;
pub mod daemon;
pub mod ecg;
pub mod http;
pub mod kit;
pub mod load;
pub mod nhs;
pub mod patient;
pub mod physiology;
pub mod resample;
pub mod rng;
pub mod scenario;
pub mod schedule;
pub mod tls;
pub mod ward;

/// The kit core this simulator builds on (re-exported for callers that
/// configure the outbox).
pub use vigil_kit;
