//! Beat-by-beat scoring as in ANSI/AAMI EC57 and WFDB's `bxb`.
//!
//! A detection matches a reference beat when it lies within 150 ms of it;
//! each detection matches at most one beat. Only the part of the record
//! from `start` on is scored (EC57: 5 minutes, to let adaptive detectors
//! learn). Sensitivity `Se = TP / (TP + FN)`, positive predictivity
//! `+P = TP / (TP + FP)`.

/// Counts for one record, or summed over records ("gross").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    pub tp: u64,
    pub fn_: u64,
    pub fp: u64,
}

impl Score {
    /// Sensitivity in percent (100 when there was nothing to find).
    pub fn sensitivity(&self) -> f64 {
        pct(self.tp, self.tp + self.fn_)
    }

    /// Positive predictivity in percent (100 when nothing was detected).
    pub fn positive_predictivity(&self) -> f64 {
        pct(self.tp, self.tp + self.fp)
    }
}

impl core::ops::AddAssign for Score {
    fn add_assign(&mut self, o: Self) {
        self.tp += o.tp;
        self.fn_ += o.fn_;
        self.fp += o.fp;
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// Score sorted detections against sorted reference beats (sample indices).
///
/// `window` is the match tolerance in samples (150 ms · fs), `start` the
/// first scored sample (5 min · fs). Matching is greedy in time order and
/// takes the nearer of two competing detections, as `bxb` does for
/// isolated beats.
pub fn score(reference: &[u64], detected: &[u64], window: u64, start: u64) -> Score {
    let mut s = Score::default();
    let mut j = 0usize;
    let count_fp = |d: u64, s: &mut Score| {
        if d >= start {
            s.fp += 1;
        }
    };
    for (i, &r) in reference.iter().enumerate() {
        // Detections too early for this beat are unmatched.
        while j < detected.len() && detected[j] + window < r {
            count_fp(detected[j], &mut s);
            j += 1;
        }
        let matched = if j < detected.len() && detected[j].abs_diff(r) <= window {
            // A later detection may be nearer; the skipped one is then a
            // false positive unless it lies nearer to no other beat.
            let next_ref = reference.get(i + 1).copied();
            let mut k = j;
            while k + 1 < detected.len()
                && detected[k + 1].abs_diff(r) <= window
                && detected[k + 1].abs_diff(r) < detected[k].abs_diff(r)
                && next_ref
                    .is_none_or(|nr| detected[k + 1].abs_diff(r) <= detected[k + 1].abs_diff(nr))
            {
                count_fp(detected[k], &mut s);
                k += 1;
            }
            j = k + 1;
            true
        } else {
            false
        };
        if r >= start {
            if matched {
                s.tp += 1;
            } else {
                s.fn_ += 1;
            }
        }
    }
    for &d in &detected[j..] {
        count_fp(d, &mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_near_detections_match_far_ones_do_not() {
        let r = [1000, 2000, 3000];
        let d = [1010, 2100, 2990, 4000];
        let s = score(&r, &d, 54, 0);
        assert_eq!(
            s,
            Score {
                tp: 2,
                fn_: 1,
                fp: 2
            }
        );
    }

    #[test]
    fn a_detection_matches_one_beat_only() {
        let s = score(&[100, 140], &[120], 54, 0);
        assert_eq!(
            s,
            Score {
                tp: 1,
                fn_: 1,
                fp: 0
            }
        );
    }

    #[test]
    fn the_nearer_of_two_detections_matches_and_the_other_is_false() {
        let s = score(&[1000], &[960, 1001], 54, 0);
        assert_eq!(
            s,
            Score {
                tp: 1,
                fn_: 0,
                fp: 1
            }
        );
    }

    #[test]
    fn nothing_before_start_is_scored() {
        let s = score(&[10, 500, 1000], &[20, 300, 1000], 5, 400);
        assert_eq!(
            s,
            Score {
                tp: 1,
                fn_: 1,
                fp: 0
            }
        );
    }
}
