//! A printed band of a NEWS2 row, for documentation and for the tests that
//! prove each row's bands cover every value exactly once.

/// One band of a chart row over quantised values (whole units, or tenths for
/// temperature): `lo..=hi` scores `score`; `None` means open-ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// Lowest quantised value in the band, or `None` for "≤ hi".
    pub lo: Option<i64>,
    /// Highest quantised value in the band, or `None` for "≥ lo".
    pub hi: Option<i64>,
    /// The sub-score of the band.
    pub score: u8,
}

impl Band {
    /// `≤ hi`.
    pub const fn up_to(hi: i64, score: u8) -> Band {
        Band {
            lo: None,
            hi: Some(hi),
            score,
        }
    }

    /// `lo–hi`.
    pub const fn between(lo: i64, hi: i64, score: u8) -> Band {
        Band {
            lo: Some(lo),
            hi: Some(hi),
            score,
        }
    }

    /// `≥ lo`.
    pub const fn from(lo: i64, score: u8) -> Band {
        Band {
            lo: Some(lo),
            hi: None,
            score,
        }
    }

    /// Whether the quantised value `q` falls in this band.
    pub fn contains(&self, q: i64) -> bool {
        self.lo.is_none_or(|lo| q >= lo) && self.hi.is_none_or(|hi| q <= hi)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Band;

    /// Asserts that every value in `range` lies in exactly one band of
    /// `bands` and that `score` agrees with that band.
    pub fn assert_partition(
        name: &str,
        bands: &[Band],
        range: std::ops::RangeInclusive<i64>,
        score: impl Fn(i64) -> u8,
    ) {
        for q in range {
            let hits: Vec<&Band> = bands.iter().filter(|b| b.contains(q)).collect();
            assert_eq!(
                hits.len(),
                1,
                "{name}: value {q} is in {} bands",
                hits.len()
            );
            assert_eq!(score(q), hits[0].score, "{name}: value {q}");
        }
    }
}
