//! Peak expiratory flow zones as a percentage of the patient's recorded
//! personal best (BTS/SIGN British guideline on the management of asthma,
//! NICE NG80 / NG245 self-management plans).
//!
//! | PEF, % of personal best | zone |
//! |---|---|
//! | ≥80 | green |
//! | 50–79 | amber (moderate exacerbation) |
//! | 33–49 | red (acute severe) |
//! | <33 | life-threatening |
//!
//! The reading is the **best of three blows**. The percentage is compared
//! exactly, never rounded: the printed 50–79 band means "≥50 and <80", so
//! 79.9 % is amber, not green (rounding up would move a patient into a
//! better zone). Flows are taken to 0.1 L/min as written.

use serde::{Deserialize, Serialize};

use super::{ThresholdError, tenths};

/// A peak-flow zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PefZone {
    /// ≥80 % of best.
    Green,
    /// 50 % to under 80 %: moderate exacerbation.
    Amber,
    /// 33 % to under 50 %: acute severe asthma.
    Red,
    /// Under 33 %: life-threatening asthma.
    LifeThreatening,
}

/// The best of a set of blows (the kit asks for three): the highest flow.
/// Errors on no blows, or a blow that is not a finite positive number.
pub fn best_of_blows(blows: &[f64]) -> Result<f64, ThresholdError> {
    let mut best: Option<f64> = None;
    for &b in blows {
        if !b.is_finite() {
            return Err(ThresholdError::NotFinite);
        }
        if b <= 0.0 {
            return Err(ThresholdError::NotPositive);
        }
        best = Some(best.map_or(b, |x| x.max(b)));
    }
    best.ok_or(ThresholdError::Empty)
}

/// The zone of a (best-of-three) PEF against the recorded personal best.
pub fn pef_zone(pef: f64, personal_best: f64) -> Result<PefZone, ThresholdError> {
    if !personal_best.is_finite() || !pef.is_finite() {
        return Err(ThresholdError::NotFinite);
    }
    if personal_best <= 0.0 {
        return Err(ThresholdError::NotPositive);
    }
    let p = i128::from(tenths(pef)?);
    let best = i128::from(tenths(personal_best)?);
    if best == 0 {
        return Err(ThresholdError::NotPositive);
    }
    // p / best ≥ k % ⇔ 100·p ≥ k·best, exactly.
    let at_least = |k: i128| 100 * p >= k * best;
    Ok(if at_least(80) {
        PefZone::Green
    } else if at_least(50) {
        PefZone::Amber
    } else if at_least(33) {
        PefZone::Red
    } else {
        PefZone::LifeThreatening
    })
}

/// PEF as a percentage of personal best, for display (not for zoning).
pub fn percent_of_best(pef: f64, personal_best: f64) -> Result<f64, ThresholdError> {
    if !personal_best.is_finite() || !pef.is_finite() {
        return Err(ThresholdError::NotFinite);
    }
    if personal_best <= 0.0 {
        return Err(ThresholdError::NotPositive);
    }
    Ok(pef / personal_best * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_edges_against_a_personal_best_of_500() {
        for (pef, want) in [
            (500.0, PefZone::Green),
            (400.0, PefZone::Green), // 80 %
            (399.9, PefZone::Amber), // 79.98 %
            (250.0, PefZone::Amber), // 50 %
            (249.9, PefZone::Red),   // 49.98 %
            (165.0, PefZone::Red),   // 33 %
            (164.9, PefZone::LifeThreatening),
            (60.0, PefZone::LifeThreatening),
        ] {
            assert_eq!(pef_zone(pef, 500.0), Ok(want), "{pef}");
        }
    }

    #[test]
    fn every_whole_percent_falls_in_exactly_one_zone() {
        for pct in 1..=150u32 {
            let z = pef_zone(f64::from(pct) * 4.0, 400.0).unwrap();
            let want = match pct {
                80.. => PefZone::Green,
                50..=79 => PefZone::Amber,
                33..=49 => PefZone::Red,
                _ => PefZone::LifeThreatening,
            };
            assert_eq!(z, want, "{pct} %");
        }
    }

    #[test]
    fn a_percentage_just_under_a_threshold_is_not_rounded_up() {
        // 79.6 % would round to 80 %; it stays amber.
        assert_eq!(pef_zone(398.0, 500.0), Ok(PefZone::Amber));
        // 32.9 %: life-threatening
        assert_eq!(pef_zone(329.0, 1000.0), Ok(PefZone::LifeThreatening));
    }

    #[test]
    fn best_of_three_blows_is_the_highest() {
        assert_eq!(best_of_blows(&[310.0, 350.0, 330.0]), Ok(350.0));
        assert_eq!(best_of_blows(&[]), Err(ThresholdError::Empty));
        assert_eq!(
            best_of_blows(&[300.0, f64::NAN]),
            Err(ThresholdError::NotFinite)
        );
        assert_eq!(best_of_blows(&[0.0]), Err(ThresholdError::NotPositive));
    }

    #[test]
    fn a_zero_or_invalid_personal_best_is_an_error() {
        assert_eq!(pef_zone(300.0, 0.0), Err(ThresholdError::NotPositive));
        assert_eq!(pef_zone(300.0, 0.01), Err(ThresholdError::NotPositive));
        assert_eq!(pef_zone(f64::NAN, 400.0), Err(ThresholdError::NotFinite));
        assert_eq!(percent_of_best(200.0, 400.0), Ok(50.0));
    }
}
