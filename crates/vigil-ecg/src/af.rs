//! RR irregularity over about two minutes of beats: the "possible AF" prompt.
//!
//! Atrial fibrillation makes ventricular timing irregularly irregular.
//! Two features of the RR series capture the two words:
//! - *irregular*: normalised RMSSD, the root mean square of successive RR
//!   differences over the mean RR, after dropping the shortest and longest
//!   1/16 of intervals (Dash et al. 2009, "Automatic real time detection of
//!   atrial fibrillation", Ann Biomed Eng 37:1701–1709, dropped 8 of 128).
//!   Sinus rhythm, even with respiratory variation, stays low.
//! - *irregularly*: sample entropy SampEn(m = 2, r = 0.2 · SD) of the RR
//!   series in order (Richman & Moorman 2000; Lake & Moorman 2011 use it
//!   for AF). Ectopy in a pattern (bigeminy, trigeminy, PVC couplets)
//!   raises RMSSD but repeats itself, so its sample entropy stays low; AF
//!   does not repeat. On MIT-BIH, Dash's Shannon entropy of the RR
//!   histogram did not separate bigeminy from AF (records 106, 119, 208
//!   flagged most of the time), so it is reported but not used for the flag.
//!
//! The flag is a prompt for a clinician to review the strip, never a
//! diagnosis: ESC guidelines require at least 30 s of irregularly
//! irregular rhythm without P waves on a strip a clinician has read.
//! The thresholds and how they were chosen on MIT-BIH are in docs/ecg.md.

/// Normalised RMSSD above which the rhythm may be AF.
pub const NRMSSD_THRESHOLD: f64 = 0.10;
/// Sample entropy above which the rhythm may be AF.
pub const SAMPLE_ENTROPY_THRESHOLD: f64 = 1.2;
/// Sample entropy reported when no template pair matches at m + 1 points
/// (SampEn undefined): more irregular than any window seen on MIT-BIH.
pub const SAMPLE_ENTROPY_CAP: f64 = 5.0;
/// Fewer RR intervals than this and no assessment is made.
pub const MIN_INTERVALS: usize = 50;

/// Irregularity features of one window of RR intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AfAssessment {
    /// Intervals used (after trimming).
    pub intervals: usize,
    pub nrmssd: f64,
    /// SampEn(2, 0.2 · SD) of the RR series.
    pub sample_entropy: f64,
    /// Normalised Shannon entropy of the RR histogram (reported, not used for the flag).
    pub shannon_entropy: f64,
    /// Both nRMSSD and sample entropy above their thresholds: show
    /// "possible AF — review strip".
    pub possible_af: bool,
}

/// Assess a window of consecutive RR intervals (ms), oldest first. `None`
/// when there are too few intervals to say anything.
pub fn assess(rr_ms: &[u16]) -> Option<AfAssessment> {
    assess_with(rr_ms, NRMSSD_THRESHOLD, SAMPLE_ENTROPY_THRESHOLD)
}

/// [`assess`] with explicit thresholds (for tuning and evaluation).
pub fn assess_with(rr_ms: &[u16], nrmssd_min: f64, sampen_min: f64) -> Option<AfAssessment> {
    if rr_ms.len() < MIN_INTERVALS {
        return None;
    }
    let mut sorted: Vec<u16> = rr_ms.to_vec();
    sorted.sort_unstable();
    let cut = rr_ms.len() / 16;
    let lo = sorted[cut];
    let hi = sorted[rr_ms.len() - 1 - cut];
    let keep = |v: u16| v >= lo && v <= hi;
    let kept: Vec<f64> = rr_ms
        .iter()
        .copied()
        .filter(|&v| keep(v))
        .map(f64::from)
        .collect();
    let n = kept.len();
    if n < 2 {
        return None;
    }
    let mean = kept.iter().sum::<f64>() / n as f64;
    // Successive differences only between neighbours that both survived
    // trimming: a dropped ectopic must not create a large fake difference.
    let (mut ss, mut m) = (0.0, 0usize);
    for w in rr_ms.windows(2) {
        if keep(w[0]) && keep(w[1]) {
            let d = f64::from(w[1]) - f64::from(w[0]);
            ss += d * d;
            m += 1;
        }
    }
    let nrmssd = if m == 0 || mean <= 0.0 {
        0.0
    } else {
        (ss / m as f64).sqrt() / mean
    };
    const BINS: usize = 16;
    let mut hist = [0u32; BINS];
    let span = f64::from(hi - lo).max(1.0);
    for &v in &kept {
        let b = (((v - f64::from(lo)) / span) * BINS as f64) as usize;
        hist[b.min(BINS - 1)] += 1;
    }
    let entropy = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum::<f64>()
        / (BINS as f64).ln();
    let x: Vec<f64> = rr_ms.iter().map(|&v| f64::from(v)).collect();
    let all_mean = x.iter().sum::<f64>() / x.len() as f64;
    let sd = (x.iter().map(|v| (v - all_mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let sample_entropy = sample_entropy(&x, 2, 0.2 * sd).unwrap_or(SAMPLE_ENTROPY_CAP);
    Some(AfAssessment {
        intervals: n,
        nrmssd,
        sample_entropy,
        shannon_entropy: entropy,
        possible_af: nrmssd > nrmssd_min && sample_entropy > sampen_min,
    })
}

/// Sample entropy SampEn(m, r) of `x` (Richman & Moorman 2000): minus the
/// log of the conditional probability that sequences matching for `m`
/// points (Chebyshev distance ≤ `r`) also match for `m + 1`. `None` when
/// no template matches at all (undefined).
pub fn sample_entropy(x: &[f64], m: usize, r: f64) -> Option<f64> {
    let n = x.len();
    if n <= m + 1 {
        return None;
    }
    let (mut b, mut a) = (0u64, 0u64);
    // Templates of length m and m+1 starting at i < n - m, so both counts
    // use the same number of templates.
    for i in 0..n - m {
        for j in i + 1..n - m {
            if (0..m).all(|k| (x[i + k] - x[j + k]).abs() <= r) {
                b += 1;
                if (x[i + m] - x[j + m]).abs() <= r {
                    a += 1;
                }
            }
        }
    }
    if a == 0 || b == 0 {
        return None;
    }
    Some(-((a as f64) / (b as f64)).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers without a dependency.
    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn regular_sinus_rhythm_is_not_flagged() {
        // 75 bpm with ±3% respiratory variation
        let rr: Vec<u16> = (0..150)
            .map(|i| (800.0 + 24.0 * (i as f64 * 0.8).sin()) as u16)
            .collect();
        let a = assess(&rr).expect("enough intervals");
        assert!(!a.possible_af, "{a:?}");
    }

    #[test]
    fn ventricular_bigeminy_is_not_flagged() {
        let rr: Vec<u16> = (0..150)
            .map(|i| if i % 2 == 0 { 520 } else { 1080 })
            .collect();
        let a = assess(&rr).expect("enough intervals");
        assert!(a.nrmssd > NRMSSD_THRESHOLD, "bigeminy is irregular: {a:?}");
        assert!(!a.possible_af, "but regularly so: {a:?}");
    }

    #[test]
    fn sample_entropy_is_zero_for_a_constant_series_and_high_for_noise() {
        assert_eq!(sample_entropy(&[800.0; 100], 2, 0.0), Some(0.0));
        let mut seed = 3;
        let x: Vec<f64> = (0..200).map(|_| lcg(&mut seed)).collect();
        assert!(sample_entropy(&x, 2, 0.2 * 0.29).is_some_and(|e| e > 1.5));
    }

    #[test]
    fn sinus_rhythm_with_isolated_ectopics_is_not_flagged() {
        // a premature beat and compensatory pause every 10 beats
        let rr: Vec<u16> = (0..150)
            .map(|i| match i % 10 {
                4 => 500,
                5 => 1100,
                _ => 800,
            })
            .collect();
        let a = assess(&rr).expect("enough intervals");
        assert!(!a.possible_af, "{a:?}");
    }

    #[test]
    fn irregularly_irregular_rhythm_is_flagged_for_review() {
        let mut seed = 7;
        let rr: Vec<u16> = (0..150)
            .map(|_| (450.0 + 500.0 * lcg(&mut seed)) as u16)
            .collect();
        let a = assess(&rr).expect("enough intervals");
        assert!(a.possible_af, "{a:?}");
    }

    #[test]
    fn too_few_intervals_give_no_assessment() {
        assert_eq!(assess(&[800; MIN_INTERVALS - 1]), None);
    }
}
