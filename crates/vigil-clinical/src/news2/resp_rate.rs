//! NEWS2 respiration rate row (RCP NEWS2 2017, Chart 1), breaths per minute.
//!
//! | ≤8 | 9–11 | 12–20 | 21–24 | ≥25 |
//! |---|---|---|---|---|
//! | 3 | 1 | 0 | 2 | 3 |
//!
//! 21–24 scores **2** (not 1): a bug several published implementations shipped.

use super::band::Band;

/// Chart precision: whole breaths per minute.
pub const DECIMALS: u32 = 0;

/// The printed bands, low to high.
pub const BANDS: [Band; 5] = [
    Band::up_to(8, 3),
    Band::between(9, 11, 1),
    Band::between(12, 20, 0),
    Band::between(21, 24, 2),
    Band::from(25, 3),
];

/// Sub-score of a quantised respiration rate (whole /min).
pub fn score(q: i64) -> u8 {
    match q {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        25.. => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::news2::band::testing::assert_partition;

    #[test]
    fn every_printed_edge_scores_on_both_sides() {
        for (q, want) in [
            (8, 3),
            (9, 1),
            (11, 1),
            (12, 0),
            (20, 0),
            (21, 2),
            (24, 2),
            (25, 3),
            (0, 3),
            (60, 3),
        ] {
            assert_eq!(score(q), want, "RR {q}");
        }
    }

    #[test]
    fn bands_cover_every_integer_once() {
        assert_partition("resp_rate", &BANDS, -1..=200, score);
    }
}
