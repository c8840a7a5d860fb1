//! Synthetic ECG for tests, benchmarks and demonstrations.
//!
//! Each beat is a sum of Gaussian waves (P, Q, R, S, T) placed relative to
//! the R peak, after McSharry et al.'s dynamical model (IEEE TBME 2003) in
//! its simplest static form. Good enough to exercise the detector, heart
//! rate and RR-irregularity logic with known ground truth; not a substitute
//! for recorded ECG (see the MIT-BIH evaluation for that).

/// (offset from R in ms, amplitude in µV, width σ in ms) of P, Q, R, S, T.
const WAVES: [(f32, f32, f32); 5] = [
    (-200.0, 150.0, 25.0),
    (-30.0, -120.0, 8.0),
    (0.0, 1200.0, 10.0),
    (30.0, -250.0, 9.0),
    (300.0, 300.0, 50.0),
];

/// Deterministic pseudo-random generator (64-bit LCG), so synthetic
/// signals are reproducible without a dependency.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// R-peak sample indices for a list of RR intervals (ms), first beat at `first_ms`.
pub fn beat_samples(fs_hz: u32, first_ms: f64, rr_ms: &[f64]) -> Vec<u64> {
    let mut t = first_ms;
    let mut out = Vec::with_capacity(rr_ms.len() + 1);
    out.push((t * f64::from(fs_hz) / 1000.0).round() as u64);
    for rr in rr_ms {
        t += rr;
        out.push((t * f64::from(fs_hz) / 1000.0).round() as u64);
    }
    out
}

/// Render `n` samples at `fs_hz` with R peaks at `beats`, in counts of
/// `uv_per_count` µV, plus uniform noise of ±`noise_uv` µV.
pub fn render(
    fs_hz: u32,
    n: usize,
    beats: &[u64],
    uv_per_count: f32,
    noise_uv: f32,
    seed: u64,
) -> Vec<i16> {
    let mut uv = vec![0f32; n];
    let fs = fs_hz as f32;
    for &b in beats {
        for &(off, amp, sigma) in &WAVES {
            let centre = b as f32 + off * fs / 1000.0;
            let s = sigma * fs / 1000.0;
            let lo = (centre - 4.0 * s).max(0.0) as usize;
            let hi = ((centre + 4.0 * s) as usize).min(n);
            for (i, v) in uv.iter_mut().enumerate().take(hi).skip(lo) {
                let z = (i as f32 - centre) / s;
                *v += amp * (-0.5 * z * z).exp();
            }
        }
    }
    let mut rng = Lcg(seed);
    uv.iter()
        .map(|&v| {
            let noise = (rng.next_f64() as f32 * 2.0 - 1.0) * noise_uv;
            ((v + noise) / uv_per_count)
                .round()
                .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
        })
        .collect()
}
