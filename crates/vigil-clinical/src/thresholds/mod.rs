//! Home-monitoring thresholds other than NEWS2 (CLINICAL.md, "Other
//! home-monitoring thresholds"), as plain functions a rules engine can call.
//!
//! - [`spo2`]: NHS England Oximetry @home bands and individual SpO2 targets.
//! - [`peak_flow`]: peak-flow zones as % of personal best (BTS/SIGN, NICE).
//! - [`blood_pressure`]: NICE NG136 severe, stage 1/2 and low bands.
//! - [`heart_rate`]: NEWS2 pulse bands, and which ECG windows count.
//!
//! Like NEWS2, whole-number thresholds compare quantised values (round half
//! up on the decimal as written, [`crate::quantise`]); ratios and averages
//! are compared exactly with integer arithmetic, never rounded into a better
//! band.

pub mod blood_pressure;
pub mod heart_rate;
pub mod peak_flow;
pub mod spo2;

/// Why a threshold could not be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// A value was NaN or infinite.
    #[error("value is not a finite number")]
    NotFinite,
    /// A value that must be positive (a personal best, a blow) was not.
    #[error("value must be greater than zero")]
    NotPositive,
    /// A set of readings or blows was empty.
    #[error("no readings given")]
    Empty,
    /// An SpO2 target that is not `lo ≤ hi` within 50–100 %.
    #[error("SpO2 target must satisfy 50 <= low <= high <= 100")]
    InvalidTarget,
}

/// Quantises a finite value half up to whole units (or errors).
pub(crate) fn whole(x: f64) -> Result<i64, ThresholdError> {
    crate::quantise::quantise(x, 0).ok_or(ThresholdError::NotFinite)
}

/// Quantises a finite value half up to tenths (or errors).
pub(crate) fn tenths(x: f64) -> Result<i64, ThresholdError> {
    crate::quantise::quantise(x, 1).ok_or(ThresholdError::NotFinite)
}
