//! SpO2 at home: NHS England COVID Oximetry @home bands (reused by
//! respiratory virtual wards) and individual targets (BTS guideline for
//! oxygen use in adults, 2017: 94–98 % usually, 88–92 % for patients at risk
//! of hypercapnic respiratory failure).
//!
//! Oximetry @home, for patients whose target is 94–98 %:
//!
//! | SpO2 | band | action |
//! |---|---|---|
//! | ≥95 | normal | continue monitoring |
//! | 93–94 | borderline | repeat within 1 hour, then clinical review if still 93–94 |
//! | ≤92 | urgent | patient told to seek urgent care |
//!
//! Patients with chronic lung disease have an individual target instead
//! (e.g. 88–92 %); [`Spo2Target::classify`] says below, within or above it.

use serde::{Deserialize, Serialize};

use super::{ThresholdError, whole};

/// An Oximetry @home band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OximetryBand {
    /// ≥95 %: fine.
    Normal,
    /// 93–94 %: repeat within 1 hour, then clinical review.
    RepeatWithinHour,
    /// ≤92 %: urgent (the patient is told to seek urgent care).
    Urgent,
}

/// The Oximetry @home band of an SpO2 (rounded half up to whole %). Only for
/// patients on the standard 94–98 % target.
pub fn oximetry_at_home(spo2: f64) -> Result<OximetryBand, ThresholdError> {
    Ok(match whole(spo2)? {
        95.. => OximetryBand::Normal,
        93..=94 => OximetryBand::RepeatWithinHour,
        ..=92 => OximetryBand::Urgent,
    })
}

/// A patient's SpO2 target range, inclusive, whole %.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "(u8, u8)", into = "(u8, u8)")]
pub struct Spo2Target {
    lo: u8,
    hi: u8,
}

/// Where an SpO2 is relative to a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// Below the target: needs review.
    Below,
    /// Within the target.
    Within,
    /// Above the target (for a hypercapnic patient on oxygen: over-oxygenated).
    Above,
}

impl Spo2Target {
    /// 94–98 %, the usual target.
    pub const STANDARD: Spo2Target = Spo2Target { lo: 94, hi: 98 };
    /// 88–92 %, for patients at risk of hypercapnic respiratory failure.
    pub const HYPERCAPNIC: Spo2Target = Spo2Target { lo: 88, hi: 92 };

    /// A target `lo–hi`; requires `50 ≤ lo ≤ hi ≤ 100`.
    pub fn new(lo: u8, hi: u8) -> Result<Spo2Target, ThresholdError> {
        if (50..=100).contains(&lo) && lo <= hi && hi <= 100 {
            Ok(Spo2Target { lo, hi })
        } else {
            Err(ThresholdError::InvalidTarget)
        }
    }

    /// Lower bound, %.
    pub fn lo(self) -> u8 {
        self.lo
    }

    /// Upper bound, %.
    pub fn hi(self) -> u8 {
        self.hi
    }

    /// Below, within or above the target (SpO2 rounded half up to whole %).
    pub fn classify(self, spo2: f64) -> Result<TargetStatus, ThresholdError> {
        let q = whole(spo2)?;
        Ok(if q < i64::from(self.lo) {
            TargetStatus::Below
        } else if q > i64::from(self.hi) {
            TargetStatus::Above
        } else {
            TargetStatus::Within
        })
    }
}

impl TryFrom<(u8, u8)> for Spo2Target {
    type Error = ThresholdError;
    fn try_from((lo, hi): (u8, u8)) -> Result<Self, Self::Error> {
        Spo2Target::new(lo, hi)
    }
}

impl From<Spo2Target> for (u8, u8) {
    fn from(t: Spo2Target) -> Self {
        (t.lo, t.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oximetry_at_home_edges() {
        for (v, want) in [
            (100.0, OximetryBand::Normal),
            (95.0, OximetryBand::Normal),
            (94.0, OximetryBand::RepeatWithinHour),
            (93.0, OximetryBand::RepeatWithinHour),
            (92.0, OximetryBand::Urgent),
            (70.0, OximetryBand::Urgent),
            (94.5, OximetryBand::Normal),
            (92.49, OximetryBand::Urgent),
            (92.5, OximetryBand::RepeatWithinHour),
        ] {
            assert_eq!(oximetry_at_home(v), Ok(want), "{v}");
        }
        assert_eq!(oximetry_at_home(f64::NAN), Err(ThresholdError::NotFinite));
    }

    #[test]
    fn oximetry_bands_cover_every_integer_once() {
        let mut last = OximetryBand::Urgent;
        for v in (0..=100).rev() {
            let b = oximetry_at_home(f64::from(v)).unwrap();
            assert!(b >= last || v == 100, "bands must worsen as SpO2 falls");
            last = b;
        }
    }

    #[test]
    fn individual_targets_classify_at_both_edges() {
        let t = Spo2Target::HYPERCAPNIC;
        for (v, want) in [
            (87.0, TargetStatus::Below),
            (87.49, TargetStatus::Below),
            (87.5, TargetStatus::Within),
            (88.0, TargetStatus::Within),
            (92.0, TargetStatus::Within),
            (93.0, TargetStatus::Above),
        ] {
            assert_eq!(t.classify(v), Ok(want), "{v}");
        }
        let s = Spo2Target::STANDARD;
        assert_eq!(s.classify(93.0), Ok(TargetStatus::Below));
        assert_eq!(s.classify(94.0), Ok(TargetStatus::Within));
        assert_eq!(s.classify(98.0), Ok(TargetStatus::Within));
        assert_eq!(s.classify(99.0), Ok(TargetStatus::Above));
    }

    #[test]
    fn invalid_targets_are_refused() {
        assert_eq!(Spo2Target::new(92, 88), Err(ThresholdError::InvalidTarget));
        assert_eq!(Spo2Target::new(40, 60), Err(ThresholdError::InvalidTarget));
        assert_eq!(Spo2Target::new(90, 101), Err(ThresholdError::InvalidTarget));
        assert_eq!(Spo2Target::new(88, 92), Ok(Spo2Target::HYPERCAPNIC));
        let t: Result<Spo2Target, _> = serde_json::from_str("[92,88]");
        assert!(t.is_err());
        assert_eq!(
            serde_json::to_string(&Spo2Target::HYPERCAPNIC).unwrap(),
            "[88,92]"
        );
    }
}
