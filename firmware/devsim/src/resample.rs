//! Band-limited resampling, used to bring MIT-BIH recordings (360 Hz) to the
//! patch's 250 Hz.
//!
//! Method: windowed-sinc interpolation (Smith, "Digital Audio Resampling",
//! CCRMA). Each output sample at input position `p = j · fs_in / fs_out` is
//! `Σ x[i] · h(p − i)` over the input samples within ±[`HALF_WIDTH`] of `p`,
//! where `h` is a low-pass sinc with its cutoff at 0.9 × the output Nyquist
//! frequency (112.5 Hz for 250 Hz), tapered by a Hann window. Going down in
//! rate, that cutoff is the anti-aliasing filter; the QRS complex has
//! almost all its energy below 40 Hz, so nothing of diagnostic value is
//! lost. The kernel is symmetric (zero phase), so R peaks stay where they
//! were in time: the test `resampled_mitdb_keeps_beat_times` checks this
//! with the detector against the record's reference annotations. The
//! weights are normalised to sum to one at every position, so the baseline
//! (DC) passes unchanged.

/// Half the kernel length, in input samples.
pub const HALF_WIDTH: f64 = 16.0;

/// Fractional positions are quantised to 1/[`PHASES`] of an input sample
/// (under 3 µs at 360 Hz), so the kernel is computed once per phase.
pub const PHASES: usize = 1024;

/// Resamples `x` from `fs_in` to `fs_out` Hz. The output covers the same
/// duration: `floor(len · fs_out / fs_in)` samples.
pub fn resample(x: &[i32], fs_in: f64, fs_out: f64) -> Vec<i32> {
    if x.is_empty() || !(fs_in > 0.0 && fs_out > 0.0) {
        return Vec::new();
    }
    let step = fs_in / fs_out;
    // Cutoff in cycles per input sample: 0.9 × the lower Nyquist.
    let fc = 0.45 * fs_out.min(fs_in) / fs_in;
    let half = HALF_WIDTH as i64;
    let taps = (2 * half + 1) as usize;
    // table[phase][m + half]: weight of x[floor(p) + m] when p - floor(p) = phase / PHASES,
    // normalised to sum 1 so the baseline passes unchanged.
    let mut table = vec![0.0f64; PHASES * taps];
    for (k, row) in table.chunks_mut(taps).enumerate() {
        let frac = k as f64 / PHASES as f64;
        for (j, w) in row.iter_mut().enumerate() {
            *w = kernel(frac - (j as i64 - half) as f64, fc);
        }
        let sum: f64 = row.iter().sum();
        if sum.abs() > 1e-12 {
            row.iter_mut().for_each(|w| *w /= sum);
        }
    }
    let n_out = ((x.len() as f64) / step).floor() as usize;
    let last = x.len() as i64 - 1;
    let mut out = Vec::with_capacity(n_out);
    for j in 0..n_out {
        let p = j as f64 * step;
        let ip = p.floor() as i64;
        let phase = (((p - ip as f64) * PHASES as f64).round() as usize).min(PHASES - 1);
        let row = &table[phase * taps..(phase + 1) * taps];
        let mut acc = 0.0f64;
        for (m, w) in row.iter().enumerate() {
            // Edges: repeat the end samples rather than pad with zeros.
            let i = (ip + m as i64 - half).clamp(0, last) as usize;
            acc += w * f64::from(x[i]);
        }
        out.push(acc.round() as i32);
    }
    out
}

fn kernel(tau: f64, fc: f64) -> f64 {
    if tau.abs() >= HALF_WIDTH {
        return 0.0;
    }
    let arg = 2.0 * fc * tau;
    let sinc = if arg.abs() < 1e-12 {
        1.0
    } else {
        (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
    };
    let hann = 0.5 * (1.0 + (std::f64::consts::PI * tau / HALF_WIDTH).cos());
    2.0 * fc * sinc * hann
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_dc_are_preserved() {
        let x = vec![1000; 3600];
        let y = resample(&x, 360.0, 250.0);
        assert_eq!(y.len(), 2500);
        assert!(y.iter().all(|&v| v == 1000));
    }

    #[test]
    fn a_slow_sine_keeps_its_amplitude_and_phase() {
        let f = 5.0;
        let x: Vec<i32> = (0..3600)
            .map(|i| {
                (1000.0 * (2.0 * std::f64::consts::PI * f * i as f64 / 360.0).sin()).round() as i32
            })
            .collect();
        let y = resample(&x, 360.0, 250.0);
        for (j, &v) in y.iter().enumerate().skip(100).take(2300) {
            let want = 1000.0 * (2.0 * std::f64::consts::PI * f * j as f64 / 250.0).sin();
            assert!(
                (f64::from(v) - want).abs() < 8.0,
                "sample {j}: {v} vs {want}"
            );
        }
    }

    #[test]
    fn an_impulse_stays_at_its_time() {
        let mut x = vec![0; 3600];
        x[1800] = 10_000; // 5.000 s
        let y = resample(&x, 360.0, 250.0);
        let peak = y
            .iter()
            .enumerate()
            .max_by_key(|(_, v)| **v)
            .map(|(i, _)| i)
            .unwrap_or(0);
        assert_eq!(peak, 1250); // 5.000 s at 250 Hz
    }
}
