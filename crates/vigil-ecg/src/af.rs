//! RR irregularity over about two minutes of beats: the "possible AF" prompt.
//!
//! Atrial fibrillation makes ventricular timing irregularly irregular.
//! Two features of the RR series capture that (after Dash et al. 2009,
//! "Automatic real time detection of atrial fibrillation", Ann Biomed Eng
//! 37:1701–1709):
//! - normalised RMSSD: root mean square of successive RR differences over
//!   the mean RR. Sinus rhythm, even with respiratory variation, stays low.
//! - Shannon entropy of the RR histogram (16 equal bins between the
//!   window's trimmed minimum and maximum), normalised to 0–1. Isolated
//!   ectopic beats raise RMSSD but leave most intervals in a few bins,
//!   so entropy stays low; AF spreads intervals over all bins.
//!
//! Before both, the shortest and longest 1/16 of intervals are dropped
//! (Dash et al. dropped 8 of 128), which removes most isolated ectopics
//! and missed or extra beats.
//!
//! The flag is a prompt for a clinician to review the strip, never a
//! diagnosis: ESC guidelines require at least 30 s of irregularly
//! irregular rhythm without P waves on a strip a clinician has read.
//! The thresholds and how they were chosen on MIT-BIH are in docs/ecg.md.

/// Normalised RMSSD above which the rhythm may be AF.
pub const NRMSSD_THRESHOLD: f64 = 0.10;
/// Normalised Shannon entropy above which the rhythm may be AF.
pub const ENTROPY_THRESHOLD: f64 = 0.70;
/// Fewer RR intervals than this and no assessment is made.
pub const MIN_INTERVALS: usize = 50;

/// Irregularity features of one window of RR intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AfAssessment {
    /// Intervals used (after trimming).
    pub intervals: usize,
    pub nrmssd: f64,
    pub entropy: f64,
    /// Both features above their thresholds: show "possible AF — review strip".
    pub possible_af: bool,
}

/// Assess a window of consecutive RR intervals (ms), oldest first. `None`
/// when there are too few intervals to say anything.
pub fn assess(rr_ms: &[u16]) -> Option<AfAssessment> {
    assess_with(rr_ms, NRMSSD_THRESHOLD, ENTROPY_THRESHOLD)
}

/// [`assess`] with explicit thresholds (for tuning and evaluation).
pub fn assess_with(rr_ms: &[u16], nrmssd_min: f64, entropy_min: f64) -> Option<AfAssessment> {
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
    Some(AfAssessment {
        intervals: n,
        nrmssd,
        entropy,
        possible_af: nrmssd > nrmssd_min && entropy > entropy_min,
    })
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
