//! Heart-rate bands: the NEWS2 pulse row (RCP NEWS2 2017, Chart 1), named
//! for rules and dashboards, and which ECG-derived rates count.
//!
//! | /min | band | NEWS2 |
//! |---|---|---|
//! | ≤40 | very low | 3 |
//! | 41–50 | low | 1 |
//! | 51–90 | normal | 0 |
//! | 91–110 | raised | 1 |
//! | 111–130 | high | 2 |
//! | ≥131 | very high | 3 |
//!
//! Only resting, artefact-free ECG windows give a heart rate that counts
//! (CLINICAL.md): a rate from a window while moving or with poor signal is
//! not a resting pulse.

use serde::{Deserialize, Serialize};

use super::{ThresholdError, whole};
use crate::news2::pulse;

/// A named heart-rate band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartRateBand {
    /// ≤40 /min.
    VeryLow,
    /// 41–50 /min.
    Low,
    /// 51–90 /min.
    Normal,
    /// 91–110 /min.
    Raised,
    /// 111–130 /min.
    High,
    /// ≥131 /min.
    VeryHigh,
}

impl HeartRateBand {
    /// The band's NEWS2 pulse sub-score.
    pub fn news2_score(self) -> u8 {
        match self {
            HeartRateBand::Normal => 0,
            HeartRateBand::Low | HeartRateBand::Raised => 1,
            HeartRateBand::High => 2,
            HeartRateBand::VeryLow | HeartRateBand::VeryHigh => 3,
        }
    }
}

/// The band of a heart rate (rounded half up to whole /min, as NEWS2).
pub fn heart_rate_band(bpm: f64) -> Result<HeartRateBand, ThresholdError> {
    Ok(match whole(bpm)? {
        ..=40 => HeartRateBand::VeryLow,
        41..=50 => HeartRateBand::Low,
        51..=90 => HeartRateBand::Normal,
        91..=110 => HeartRateBand::Raised,
        111..=130 => HeartRateBand::High,
        131.. => HeartRateBand::VeryHigh,
    })
}

/// Whether a heart rate from an ECG window counts as a resting heart rate.
pub fn ecg_rate_counts(resting: bool, artefact_free: bool) -> bool {
    resting && artefact_free
}

/// The NEWS2 pulse sub-score for a heart rate.
pub fn news2_score(bpm: f64) -> Result<u8, ThresholdError> {
    Ok(pulse::score(whole(bpm)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_agree_with_the_news2_pulse_row_for_every_integer() {
        for bpm in 0..=300 {
            let b = heart_rate_band(f64::from(bpm)).unwrap();
            assert_eq!(b.news2_score(), pulse::score(i64::from(bpm)), "{bpm}");
            assert_eq!(news2_score(f64::from(bpm)), Ok(b.news2_score()));
        }
    }

    #[test]
    fn band_edges() {
        for (v, want) in [
            (40.0, HeartRateBand::VeryLow),
            (41.0, HeartRateBand::Low),
            (50.0, HeartRateBand::Low),
            (51.0, HeartRateBand::Normal),
            (90.0, HeartRateBand::Normal),
            (91.0, HeartRateBand::Raised),
            (110.0, HeartRateBand::Raised),
            (111.0, HeartRateBand::High),
            (130.0, HeartRateBand::High),
            (131.0, HeartRateBand::VeryHigh),
            (90.5, HeartRateBand::Raised),
        ] {
            assert_eq!(heart_rate_band(v), Ok(want), "{v}");
        }
    }

    #[test]
    fn only_resting_artefact_free_ecg_windows_count() {
        assert!(ecg_rate_counts(true, true));
        assert!(!ecg_rate_counts(false, true));
        assert!(!ecg_rate_counts(true, false));
    }
}
