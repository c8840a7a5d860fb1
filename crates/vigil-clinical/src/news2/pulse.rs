//! NEWS2 pulse row (RCP NEWS2 2017, Chart 1), beats per minute.
//!
//! | ≤40 | 41–50 | 51–90 | 91–110 | 111–130 | ≥131 |
//! |---|---|---|---|---|---|
//! | 3 | 1 | 0 | 1 | 2 | 3 |

use super::band::Band;

/// Chart precision: whole beats per minute.
pub const DECIMALS: u32 = 0;

/// The printed bands, low to high.
pub const BANDS: [Band; 6] = [
    Band::up_to(40, 3),
    Band::between(41, 50, 1),
    Band::between(51, 90, 0),
    Band::between(91, 110, 1),
    Band::between(111, 130, 2),
    Band::from(131, 3),
];

/// Sub-score of a quantised pulse (whole /min).
pub fn score(q: i64) -> u8 {
    match q {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        131.. => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::news2::band::testing::assert_partition;

    #[test]
    fn every_printed_edge_scores_on_both_sides() {
        for (q, want) in [
            (40, 3),
            (41, 1),
            (50, 1),
            (51, 0),
            (90, 0),
            (91, 1),
            (110, 1),
            (111, 2),
            (130, 2),
            (131, 3),
            (20, 3),
            (300, 3),
        ] {
            assert_eq!(score(q), want, "pulse {q}");
        }
    }

    #[test]
    fn bands_cover_every_integer_once() {
        assert_partition("pulse", &BANDS, -1..=400, score);
    }
}
