//! Second-order IIR sections designed at run time for the stream's sample rate.
//!
//! The detector must work from 125 to 1000 Hz, so its band-pass cannot be
//! the fixed integer filters of Pan & Tompkins (designed for 200 Hz).
//! Instead each section is an analogue Butterworth prototype mapped through
//! the bilinear transform with pre-warping (the RBJ "audio EQ cookbook"
//! forms), which keeps the corner frequencies in Hz at any sample rate.

use core::f64::consts::PI;

/// One biquad in transposed direct form II: two state words, five
/// coefficients. f32 is enough: the section's poles are far from the unit
/// circle at these corner frequencies, and f32 halves the cache footprint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Biquad {
    b0: f32,
    b1: f32,
    b2: f32,
    a1: f32,
    a2: f32,
    s1: f32,
    s2: f32,
}

impl Biquad {
    pub(crate) fn lowpass(fs: f64, f0: f64, q: f64) -> Self {
        let w0 = 2.0 * PI * f0 / fs;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        Self::from_coeffs(
            (1.0 - cos) / 2.0 / a0,
            (1.0 - cos) / a0,
            (1.0 - cos) / 2.0 / a0,
            -2.0 * cos / a0,
            (1.0 - alpha) / a0,
        )
    }

    pub(crate) fn highpass(fs: f64, f0: f64, q: f64) -> Self {
        let w0 = 2.0 * PI * f0 / fs;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        Self::from_coeffs(
            (1.0 + cos) / 2.0 / a0,
            -(1.0 + cos) / a0,
            (1.0 + cos) / 2.0 / a0,
            -2.0 * cos / a0,
            (1.0 - alpha) / a0,
        )
    }

    fn from_coeffs(b0: f64, b1: f64, b2: f64, a1: f64, a2: f64) -> Self {
        Self {
            b0: b0 as f32,
            b1: b1 as f32,
            b2: b2 as f32,
            a1: a1 as f32,
            a2: a2 as f32,
            s1: 0.0,
            s2: 0.0,
        }
    }

    #[inline(always)]
    pub(crate) fn step(&mut self, x: f32) -> f32 {
        let y = self.b0 * x + self.s1;
        self.s1 = self.b1 * x - self.a1 * y + self.s2;
        self.s2 = self.b2 * x - self.a2 * y;
        y
    }

    /// Complex response at normalised angular frequency `w` (rad/sample),
    /// used once at design time to find the band-pass group delay.
    pub(crate) fn response(&self, w: f64) -> (f64, f64) {
        // H = (b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2), z = e^{jw}
        let (c1, s1) = (w.cos(), -w.sin());
        let (c2, s2) = ((2.0 * w).cos(), -(2.0 * w).sin());
        let (b0, b1, b2, a1, a2) = (
            self.b0 as f64,
            self.b1 as f64,
            self.b2 as f64,
            self.a1 as f64,
            self.a2 as f64,
        );
        let nr = b0 + b1 * c1 + b2 * c2;
        let ni = b1 * s1 + b2 * s2;
        let dr = 1.0 + a1 * c1 + a2 * c2;
        let di = a1 * s1 + a2 * s2;
        let den = dr * dr + di * di;
        ((nr * dr + ni * di) / den, (ni * dr - nr * di) / den)
    }
}

/// Group delay in samples of a cascade at `f_hz`, by a central difference
/// of the unwrapped phase. Used to place the R peak: the band-passed QRS
/// lags the raw one by about this much.
pub(crate) fn group_delay(sections: &[Biquad], fs: f64, f_hz: f64) -> f64 {
    let phase = |f: f64| {
        let w = 2.0 * PI * f / fs;
        sections
            .iter()
            .map(|s| {
                let (re, im) = s.response(w);
                im.atan2(re)
            })
            .sum::<f64>()
    };
    let df = 0.05;
    let mut dphi = phase(f_hz + df) - phase(f_hz - df);
    // Each section's phase is wrapped separately; a jump of ~2π between the
    // two probes is a wrap, not a delay.
    while dphi > PI {
        dphi -= 2.0 * PI;
    }
    while dphi < -PI {
        dphi += 2.0 * PI;
    }
    -dphi / (2.0 * PI * 2.0 * df / fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain(sections: &[Biquad], fs: f64, f: f64) -> f64 {
        let w = 2.0 * PI * f / fs;
        sections
            .iter()
            .map(|s| {
                let (re, im) = s.response(w);
                (re * re + im * im).sqrt()
            })
            .product()
    }

    #[test]
    fn butterworth_sections_are_minus_3_db_at_their_corner_at_every_supported_rate() {
        for fs in [125.0, 250.0, 360.0, 500.0, 1000.0] {
            let lp = [Biquad::lowpass(fs, 15.0, core::f64::consts::FRAC_1_SQRT_2)];
            let hp = [Biquad::highpass(fs, 5.0, core::f64::consts::FRAC_1_SQRT_2)];
            assert!(
                (gain(&lp, fs, 15.0) - core::f64::consts::FRAC_1_SQRT_2).abs() < 0.01,
                "fs {fs}"
            );
            assert!(
                (gain(&hp, fs, 5.0) - core::f64::consts::FRAC_1_SQRT_2).abs() < 0.01,
                "fs {fs}"
            );
            assert!(
                gain(&hp, fs, 0.3) < 0.01,
                "baseline wander passes at fs {fs}"
            );
        }
    }

    #[test]
    fn group_delay_of_a_lowpass_is_positive_and_grows_with_sample_rate() {
        let d360 = group_delay(
            &[Biquad::lowpass(
                360.0,
                12.0,
                core::f64::consts::FRAC_1_SQRT_2,
            )],
            360.0,
            10.0,
        );
        let d720 = group_delay(
            &[Biquad::lowpass(
                720.0,
                12.0,
                core::f64::consts::FRAC_1_SQRT_2,
            )],
            720.0,
            10.0,
        );
        assert!(d360 > 0.0);
        assert!((d720 / d360 - 2.0).abs() < 0.05);
    }
}
