//! NEWS2 temperature row (RCP NEWS2 2017, Chart 1), °C, scored in tenths.
//!
//! | ≤35.0 | 35.1–36.0 | 36.1–38.0 | 38.1–39.0 | ≥39.1 |
//! |---|---|---|---|---|
//! | 3 | 1 | 0 | 1 | 2 |
//!
//! Only core temperature (`temp`) feeds this row. ECG-patch skin temperature
//! (`skin_temp`) reads below core and never does (CLINICAL.md).

use super::band::Band;

/// Chart precision: 0.1 °C; quantised values are tenths of a degree.
pub const DECIMALS: u32 = 1;

/// The printed bands in tenths of a degree, low to high.
pub const BANDS: [Band; 5] = [
    Band::up_to(350, 3),
    Band::between(351, 360, 1),
    Band::between(361, 380, 0),
    Band::between(381, 390, 1),
    Band::from(391, 2),
];

/// Sub-score of a quantised temperature in tenths of a degree (`351` = 35.1 °C).
pub fn score(tenths: i64) -> u8 {
    match tenths {
        ..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        391.. => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::news2::band::testing::assert_partition;
    use crate::quantise::quantise;

    #[test]
    fn every_printed_edge_scores_on_both_sides() {
        for (t, want) in [
            (350, 3),
            (351, 1),
            (360, 1),
            (361, 0),
            (380, 0),
            (381, 1),
            (390, 1),
            (391, 2),
            (250, 3),
            (450, 2),
        ] {
            assert_eq!(score(t), want, "temp {t}");
        }
    }

    #[test]
    fn bands_cover_every_tenth_from_30_to_45_degrees_once() {
        assert_partition("temperature", &BANDS, 300..=450, score);
        // and the same walk through the float path a device reading takes
        for t in 300..=450 {
            let x = t as f64 / 10.0;
            assert_eq!(quantise(x, DECIMALS), Some(t), "{x}");
        }
    }

    #[test]
    fn values_between_printed_bands_round_half_up_before_lookup() {
        let s = |x: f64| quantise(x, DECIMALS).map(score);
        assert_eq!(s(35.04), Some(3));
        assert_eq!(s(35.05), Some(1));
        assert_eq!(s(36.04), Some(1));
        assert_eq!(s(36.05), Some(0));
        assert_eq!(s(38.04), Some(0));
        assert_eq!(s(38.05), Some(1));
        assert_eq!(s(39.04), Some(1));
        assert_eq!(s(39.05), Some(2));
    }
}
