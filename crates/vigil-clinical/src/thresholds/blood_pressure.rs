//! Blood pressure bands (NICE NG136, Hypertension in adults, 2019/2023; low
//! systolic from the NEWS2 systolic row, RCP 2017).
//!
//! Per reading (whole mmHg, rounded half up):
//!
//! | condition | flag |
//! |---|---|
//! | systolic ≥180 **or** diastolic ≥120 | severe: same-day review |
//! | systolic ≤90 | low (NEWS2 scores 3) |
//! | taken while the ECG patch shows an irregular rhythm | possibly inaccurate |
//!
//! Home average (mean of the readings given; NICE asks for at least 4 days,
//! ideally 7, of twice-daily paired readings, discarding the first day: the
//! caller chooses which readings to average):
//!
//! | mean | stage |
//! |---|---|
//! | systolic ≥150 or diastolic ≥95 | stage 2 |
//! | systolic ≥135 or diastolic ≥85 | stage 1 |
//! | otherwise | below threshold |
//!
//! Means are compared exactly (sum ≥ threshold × n), never rounded up.

use serde::{Deserialize, Serialize};

use super::{ThresholdError, whole};

/// Flags on one cuff reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BpFlags {
    /// Systolic ≥180 or diastolic ≥120 mmHg.
    pub severe: bool,
    /// Systolic ≤90 mmHg.
    pub low_systolic: bool,
    /// Taken during an irregular rhythm on the ECG patch: the cuff's
    /// oscillometric reading may be inaccurate.
    pub possibly_inaccurate: bool,
}

/// Flags one reading.
pub fn classify_reading(
    systolic: f64,
    diastolic: f64,
    irregular_rhythm: bool,
) -> Result<BpFlags, ThresholdError> {
    let s = whole(systolic)?;
    let d = whole(diastolic)?;
    Ok(BpFlags {
        severe: s >= 180 || d >= 120,
        low_systolic: s <= 90,
        possibly_inaccurate: irregular_rhythm,
    })
}

/// NICE NG136 stage from a home average.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HypertensionStage {
    /// Mean below 135/85.
    BelowThreshold,
    /// Mean ≥135 systolic or ≥85 diastolic.
    Stage1,
    /// Mean ≥150 systolic or ≥95 diastolic.
    Stage2,
}

/// A home blood-pressure average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeAverage {
    /// Mean systolic, mmHg (for display).
    pub systolic: f64,
    /// Mean diastolic, mmHg (for display).
    pub diastolic: f64,
    /// Number of readings averaged.
    pub n: usize,
    /// The stage.
    pub stage: HypertensionStage,
}

/// Averages `(systolic, diastolic)` readings (each whole mmHg, rounded half
/// up) and stages the mean.
pub fn home_average(readings: &[(f64, f64)]) -> Result<HomeAverage, ThresholdError> {
    if readings.is_empty() {
        return Err(ThresholdError::Empty);
    }
    let mut sum_s: i128 = 0;
    let mut sum_d: i128 = 0;
    for &(s, d) in readings {
        sum_s += i128::from(whole(s)?);
        sum_d += i128::from(whole(d)?);
    }
    let n = i128::try_from(readings.len()).map_err(|_| ThresholdError::Empty)?;
    let mean_at_least = |sum: i128, k: i128| sum >= k * n;
    let stage = if mean_at_least(sum_s, 150) || mean_at_least(sum_d, 95) {
        HypertensionStage::Stage2
    } else if mean_at_least(sum_s, 135) || mean_at_least(sum_d, 85) {
        HypertensionStage::Stage1
    } else {
        HypertensionStage::BelowThreshold
    };
    Ok(HomeAverage {
        systolic: sum_s as f64 / n as f64,
        diastolic: sum_d as f64 / n as f64,
        n: readings.len(),
        stage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severe_edges_on_either_pressure() {
        let sev = |s, d| classify_reading(s, d, false).unwrap().severe;
        assert!(!sev(179.0, 119.0));
        assert!(sev(180.0, 80.0));
        assert!(sev(130.0, 120.0));
        assert!(!sev(179.49, 119.49));
        assert!(sev(179.5, 90.0));
    }

    #[test]
    fn low_systolic_edge_is_90() {
        let low = |s| classify_reading(s, 60.0, false).unwrap().low_systolic;
        assert!(low(90.0));
        assert!(!low(91.0));
        assert!(low(90.49));
        assert!(!low(90.5));
    }

    #[test]
    fn a_reading_during_irregular_rhythm_is_flagged() {
        assert!(
            classify_reading(120.0, 80.0, true)
                .unwrap()
                .possibly_inaccurate
        );
        assert!(
            !classify_reading(120.0, 80.0, false)
                .unwrap()
                .possibly_inaccurate
        );
        assert_eq!(
            classify_reading(f64::NAN, 80.0, false),
            Err(ThresholdError::NotFinite)
        );
    }

    #[test]
    fn home_average_stage_edges() {
        let stage = |r: &[(f64, f64)]| home_average(r).unwrap().stage;
        assert_eq!(stage(&[(134.0, 84.0)]), HypertensionStage::BelowThreshold);
        assert_eq!(stage(&[(135.0, 70.0)]), HypertensionStage::Stage1);
        assert_eq!(stage(&[(120.0, 85.0)]), HypertensionStage::Stage1);
        assert_eq!(stage(&[(149.0, 94.0)]), HypertensionStage::Stage1);
        assert_eq!(stage(&[(150.0, 80.0)]), HypertensionStage::Stage2);
        assert_eq!(stage(&[(120.0, 95.0)]), HypertensionStage::Stage2);
        // mean 134.5 is below 135: not rounded up
        assert_eq!(
            stage(&[(134.0, 80.0), (135.0, 80.0)]),
            HypertensionStage::BelowThreshold
        );
        // mean exactly 135
        assert_eq!(
            stage(&[(130.0, 80.0), (140.0, 80.0)]),
            HypertensionStage::Stage1
        );
        let a = home_average(&[(130.0, 80.0), (141.0, 81.0)]).unwrap();
        assert_eq!((a.systolic, a.diastolic, a.n), (135.5, 80.5, 2));
        assert_eq!(home_average(&[]), Err(ThresholdError::Empty));
    }
}
