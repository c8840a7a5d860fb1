//! Seeded randomness: reproducible runs for a given seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seeded generator with the few distributions the simulator needs.
#[derive(Debug, Clone)]
pub struct SimRng(StdRng);

impl SimRng {
    /// A generator from a seed.
    pub fn seeded(seed: u64) -> Self {
        SimRng(StdRng::seed_from_u64(seed))
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        if hi <= lo {
            return lo;
        }
        self.0.gen_range(lo..hi)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1: f64 = self.0.gen_range(f64::EPSILON..1.0);
        let u2: f64 = self.0.r#gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Normal with mean 0 and standard deviation `sd`.
    pub fn gauss(&mut self, sd: f64) -> f64 {
        self.normal() * sd
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.gen_bool(p.clamp(0.0, 1.0))
    }

    /// A fresh 64-bit value (to seed a child generator).
    pub fn next_u64(&mut self) -> u64 {
        self.0.r#gen()
    }
}

/// A stateless hash of a few numbers to `[0, 1)`: deterministic jitter for
/// schedules (the same patient, day and slot always get the same jitter).
pub fn hash01(parts: &[u64]) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        h ^= p.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h = h.rotate_left(27).wrapping_mul(0x1000_0000_01b3);
        h ^= h >> 33;
    }
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}
