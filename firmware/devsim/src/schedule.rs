//! When readings are taken, as a pure function of simulated time.
//!
//! - **Spot checks** (hub): `per_day` times a day. With 2–4 a day they fall
//!   between 08:00 and 20:00 (2: 08:00 and 20:00; 3: 08:00, 14:00, 20:00;
//!   4: 08:00, 12:00, 16:00, 20:00), as a virtual ward asks patients to
//!   measure; with more (the demo uses hourly) they spread over the whole
//!   day. Each slot is jittered by up to 20 minutes, the same jitter for the
//!   same patient, day and slot, so a query over any window gives the same
//!   answer.
//! - **Patch values** (ECG patch): every minute, on the minute.
//! - **ECG chunks** (ECG patch): every second, 250 samples at 250 Hz.

use crate::rng::hash01;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Patch values every minute.
pub const PATCH_EVERY_MS: i64 = 60_000;
/// An ECG chunk every second.
pub const ECG_CHUNK_MS: i64 = 1_000;
/// The patch's sample rate.
pub const ECG_FS_HZ: u16 = 250;

/// A patient's spot-check schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpotSchedule {
    /// Checks per day (at least 1).
    pub per_day: u32,
    /// Per-patient seed for the jitter.
    pub seed: u64,
}

impl SpotSchedule {
    /// The nominal slot times of one day, ms after midnight.
    fn slots(&self) -> Vec<i64> {
        let n = i64::from(self.per_day.max(1));
        let h = 3_600_000;
        match n {
            1 => vec![8 * h],
            2..=4 => (0..n).map(|k| 8 * h + k * 12 * h / (n - 1)).collect(),
            _ => (0..n).map(|k| k * DAY_MS / n + DAY_MS / (2 * n)).collect(),
        }
    }

    /// Spot-check times in `[from_ms, to_ms)`, ascending.
    pub fn between(&self, from_ms: i64, to_ms: i64) -> Vec<i64> {
        let mut out = Vec::new();
        if to_ms <= from_ms {
            return out;
        }
        let slots = self.slots();
        let jitter_max = (20 * 60_000).min(DAY_MS / i64::from(self.per_day.max(1)) / 4);
        let first_day = from_ms.div_euclid(DAY_MS) - 1;
        let last_day = to_ms.div_euclid(DAY_MS) + 1;
        for day in first_day..=last_day {
            for (k, slot) in slots.iter().enumerate() {
                let j = hash01(&[self.seed, day as u64, k as u64]);
                let t = day * DAY_MS + slot + ((j * 2.0 - 1.0) * jitter_max as f64) as i64;
                if t >= from_ms && t < to_ms {
                    out.push(t);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// Multiples of `every_ms` in `[from_ms, to_ms)`.
pub fn ticks(every_ms: i64, from_ms: i64, to_ms: i64) -> impl Iterator<Item = i64> {
    let first = from_ms.div_euclid(every_ms) + i64::from(from_ms.rem_euclid(every_ms) != 0);
    (first..)
        .map(move |k| k * every_ms)
        .take_while(move |&t| t < to_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY0: i64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z

    #[test]
    fn two_to_four_checks_a_day_in_waking_hours() {
        for per_day in 2..=4 {
            let s = SpotSchedule { per_day, seed: 3 };
            for day in 0..10 {
                let t = s.between(DAY0 + day * DAY_MS, DAY0 + (day + 1) * DAY_MS);
                assert_eq!(t.len(), per_day as usize);
                for x in t {
                    let h = (x - DAY0).rem_euclid(DAY_MS) as f64 / 3_600_000.0;
                    assert!((7.6..=20.4).contains(&h), "{h}");
                }
            }
        }
    }

    #[test]
    fn windows_split_anywhere_give_the_same_times() {
        let s = SpotSchedule {
            per_day: 24,
            seed: 5,
        };
        let whole = s.between(DAY0, DAY0 + 3 * DAY_MS);
        let mut parts = Vec::new();
        let mut t = DAY0;
        while t < DAY0 + 3 * DAY_MS {
            parts.extend(s.between(t, (t + 777_777).min(DAY0 + 3 * DAY_MS)));
            t += 777_777;
        }
        assert_eq!(whole, parts);
        assert_eq!(whole.len(), 72);
    }

    #[test]
    fn ticks_are_half_open() {
        let v: Vec<i64> = ticks(60_000, 60_000, 180_000).collect();
        assert_eq!(v, vec![60_000, 120_000]);
        let v: Vec<i64> = ticks(60_000, 60_001, 180_001).collect();
        assert_eq!(v, vec![120_000, 180_000]);
    }
}
