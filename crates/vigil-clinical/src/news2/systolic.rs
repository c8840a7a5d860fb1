//! NEWS2 systolic blood pressure row (RCP NEWS2 2017, Chart 1), mmHg.
//!
//! | ≤90 | 91–100 | 101–110 | 111–219 | ≥220 |
//! |---|---|---|---|---|
//! | 3 | 2 | 1 | 0 | 3 |

use super::band::Band;

/// Chart precision: whole mmHg.
pub const DECIMALS: u32 = 0;

/// The printed bands, low to high.
pub const BANDS: [Band; 5] = [
    Band::up_to(90, 3),
    Band::between(91, 100, 2),
    Band::between(101, 110, 1),
    Band::between(111, 219, 0),
    Band::from(220, 3),
];

/// Sub-score of a quantised systolic pressure (whole mmHg).
pub fn score(q: i64) -> u8 {
    match q {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        220.. => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::news2::band::testing::assert_partition;

    #[test]
    fn every_printed_edge_scores_on_both_sides() {
        for (q, want) in [
            (90, 3),
            (91, 2),
            (100, 2),
            (101, 1),
            (110, 1),
            (111, 0),
            (219, 0),
            (220, 3),
            (40, 3),
            (300, 3),
        ] {
            assert_eq!(score(q), want, "systolic {q}");
        }
    }

    #[test]
    fn bands_cover_every_integer_once() {
        assert_partition("systolic", &BANDS, -1..=400, score);
    }
}
