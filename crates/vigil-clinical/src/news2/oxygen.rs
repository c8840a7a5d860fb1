//! NEWS2 "air or oxygen" row (RCP NEWS2 2017, Chart 1).
//!
//! | air | oxygen |
//! |---|---|
//! | 0 | 2 |
//!
//! Oxygen adds 2 on either SpO2 scale. Its maximum is 2, so it can never be a
//! "red" single-parameter 3.

/// Sub-score of the oxygen row.
pub fn score(on_oxygen: bool) -> u8 {
    if on_oxygen { 2 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oxygen_scores_2_and_air_0() {
        assert_eq!(score(true), 2);
        assert_eq!(score(false), 0);
    }
}
