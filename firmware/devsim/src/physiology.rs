//! Physiology: a patient's true vital signs at a moment of simulated time,
//! and what a home device measures from them.
//!
//! `true value = baseline + daily rhythm + slow drift + scenario effect`
//!
//! - **Baseline**: drawn once per patient from ranges typical of the
//!   patient's pathway (a COPD patient's usual SpO2 is 88–93 %, for example).
//! - **Daily rhythm**: a 24-hour cosine per vital with a literature-typical
//!   amplitude and peak time (core temperature lowest around 04:00 and
//!   highest in the early evening, ±0.3 °C; heart rate lowest in sleep;
//!   blood pressure's morning rise). See docs/devsim.md.
//! - **Drift**: an Ornstein–Uhlenbeck process per vital (mean-reverting
//!   random walk, time constant 3 h), so successive readings are
//!   correlated as in life rather than independent.
//! - **Measurement noise**: per reading, Gaussian with a device-typical
//!   spread, then rounded to the device's resolution ([`Physiology::measure`]).
//!
//! Everything takes time as an input; the drift advances only when asked
//! for a later time, so the same seed and the same times give the same
//! readings.

use chrono::{DateTime, Timelike, Utc};

use crate::rng::SimRng;
use crate::scenario::Effect;

/// A patient's usual values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// SpO2, %.
    pub spo2: f64,
    /// Resting pulse, /min.
    pub pulse: f64,
    /// Respiratory rate, /min.
    pub resp_rate: f64,
    /// Systolic, mmHg.
    pub systolic: f64,
    /// Diastolic, mmHg.
    pub diastolic: f64,
    /// Core temperature, °C.
    pub temp: f64,
    /// Personal best peak flow, L/min.
    pub pef_best: f64,
    /// Usual peak flow as a fraction of the personal best.
    pub pef_usual: f64,
    /// Weight, kg.
    pub weight: f64,
}

impl Baseline {
    /// A baseline for a patient on `pathway` (`general`, `copd`,
    /// `heart-failure`, `asthma`).
    pub fn draw(pathway: &str, rng: &mut SimRng) -> Baseline {
        let mut b = Baseline {
            spo2: rng.uniform(95.5, 98.5),
            pulse: rng.uniform(62.0, 84.0),
            resp_rate: rng.uniform(12.5, 17.5),
            systolic: rng.uniform(112.0, 140.0),
            diastolic: rng.uniform(66.0, 86.0),
            temp: rng.uniform(36.4, 36.9),
            pef_best: rng.uniform(380.0, 560.0),
            pef_usual: rng.uniform(0.88, 0.98),
            weight: rng.uniform(58.0, 96.0),
        };
        match pathway {
            "copd" => {
                b.spo2 = rng.uniform(90.0, 94.0);
                b.resp_rate = rng.uniform(15.0, 19.0);
                b.pef_best = rng.uniform(180.0, 320.0);
                b.pef_usual = rng.uniform(0.80, 0.92);
            }
            "heart-failure" => {
                b.spo2 = rng.uniform(94.5, 97.5);
                b.pulse = rng.uniform(64.0, 84.0);
                b.systolic = rng.uniform(110.0, 130.0);
                b.diastolic = rng.uniform(62.0, 78.0);
            }
            "asthma" => {
                b.pef_best = rng.uniform(420.0, 620.0);
                b.pef_usual = rng.uniform(0.85, 0.97);
            }
            _ => {}
        }
        b
    }
}

/// Heart rhythm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rhythm {
    /// Sinus rhythm with normal variability.
    Sinus,
    /// Atrial fibrillation: irregularly irregular RR intervals.
    AtrialFibrillation,
}

/// Level of consciousness, as the kit reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consciousness {
    /// Alert.
    Alert,
    /// New confusion.
    Confused,
}

/// True vital signs at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vitals {
    /// SpO2, %.
    pub spo2: f64,
    /// Pulse, /min.
    pub pulse: f64,
    /// Respiratory rate, /min.
    pub resp_rate: f64,
    /// Systolic, mmHg.
    pub systolic: f64,
    /// Diastolic, mmHg.
    pub diastolic: f64,
    /// Core temperature, °C.
    pub temp: f64,
    /// Skin temperature at the patch, °C (below core).
    pub skin_temp: f64,
    /// Peak expiratory flow, L/min.
    pub pef: f64,
    /// Weight, kg.
    pub weight: f64,
    /// Consciousness.
    pub consciousness: Consciousness,
    /// Rhythm.
    pub rhythm: Rhythm,
    /// Lying down (asleep), by time of day.
    pub lying: bool,
}

/// Ornstein–Uhlenbeck drift of each vital: (state, sd at equilibrium).
#[derive(Debug, Clone)]
struct Drift {
    at_ms: Option<i64>,
    x: [f64; 7],
}

const DRIFT_SD: [f64; 7] = [0.7, 3.0, 1.0, 4.0, 3.0, 0.12, 0.04]; // spo2 pulse rr sys dia temp pef-fraction
const DRIFT_TAU_MS: f64 = 3.0 * 3_600_000.0;

/// One patient's physiology.
#[derive(Debug, Clone)]
pub struct Physiology {
    /// The usual values.
    pub baseline: Baseline,
    drift: Drift,
    rng: SimRng,
}

impl Physiology {
    /// A physiology around `baseline`, with its own random stream.
    pub fn new(baseline: Baseline, seed: u64) -> Physiology {
        let mut rng = SimRng::seeded(seed);
        let mut x = [0.0; 7];
        for (v, sd) in x.iter_mut().zip(DRIFT_SD) {
            *v = rng.gauss(sd);
        }
        Physiology {
            baseline,
            drift: Drift { at_ms: None, x },
            rng,
        }
    }

    fn advance_drift(&mut self, t_ms: i64) {
        let dt = match self.drift.at_ms {
            Some(prev) if t_ms > prev => (t_ms - prev) as f64,
            Some(_) => return,
            None => {
                self.drift.at_ms = Some(t_ms);
                return;
            }
        };
        // Exact OU update over dt: decay, plus noise that keeps the
        // equilibrium spread at DRIFT_SD whatever the step size.
        let a = (-dt / DRIFT_TAU_MS).exp();
        for (v, sd) in self.drift.x.iter_mut().zip(DRIFT_SD) {
            // Bounded at 2.5 sd: a stable patient wanders, but not off the chart.
            *v =
                (*v * a + sd * (1.0 - a * a).sqrt() * self.rng.normal()).clamp(-2.5 * sd, 2.5 * sd);
        }
        self.drift.at_ms = Some(t_ms);
    }

    /// The true vitals at `t_ms` (Unix ms of simulated time) under `effect`.
    pub fn vitals(&mut self, t_ms: i64, effect: &Effect) -> Vitals {
        self.advance_drift(t_ms);
        let b = self.baseline;
        let d = self.drift.x;
        let hour = hour_of_day(t_ms);
        // cos24(peak): 1 at the peak hour, -1 twelve hours away.
        let cos24 = |peak: f64| (2.0 * std::f64::consts::PI * (hour - peak) / 24.0).cos();
        let asleep = !(7.0..23.0).contains(&hour);
        let af = effect.af;
        let spo2 =
            (b.spo2 + d[0] + effect.spo2 - if asleep { 0.6 } else { 0.0 }).clamp(70.0, 100.0);
        let pulse =
            (b.pulse + d[1] + 6.0 * cos24(15.0) + effect.pulse + if af { 12.0 } else { 0.0 })
                .clamp(35.0, 190.0);
        let resp_rate =
            (b.resp_rate + d[2] + 1.0 * cos24(15.0) + effect.resp_rate).clamp(6.0, 45.0);
        let systolic = (b.systolic + d[3] + 7.0 * cos24(11.0) + effect.systolic).clamp(60.0, 230.0);
        let diastolic = (b.diastolic + d[4] + 5.0 * cos24(11.0) + effect.diastolic)
            .clamp(35.0, systolic - 15.0);
        let temp = (b.temp + d[5] + 0.3 * cos24(17.0) + effect.temp).clamp(34.0, 42.0);
        let pef_frac =
            (b.pef_usual + d[6] + 0.04 * cos24(16.0)).clamp(0.3, 1.05) * effect.pef_factor;
        Vitals {
            spo2,
            pulse,
            resp_rate,
            systolic,
            diastolic,
            temp,
            skin_temp: temp - 2.8 - if asleep { 0.0 } else { 0.6 },
            pef: (b.pef_best * pef_frac).clamp(60.0, 900.0),
            weight: b.weight + effect.weight,
            consciousness: if effect.confused {
                Consciousness::Confused
            } else {
                Consciousness::Alert
            },
            rhythm: if af {
                Rhythm::AtrialFibrillation
            } else {
                Rhythm::Sinus
            },
            lying: asleep,
        }
    }

    /// What a home device reads from `v`: measurement noise of the device
    /// type, rounded to the device's resolution.
    pub fn measure(&mut self, v: &Vitals) -> Vitals {
        let r = &mut self.rng;
        let mut m = *v;
        m.spo2 = (v.spo2 + r.gauss(0.8)).round().clamp(70.0, 100.0);
        // An oximeter's pulse in AF scatters more (beat-to-beat variation).
        let pulse_sd = if v.rhythm == Rhythm::AtrialFibrillation {
            6.0
        } else {
            2.0
        };
        m.pulse = (v.pulse + r.gauss(pulse_sd)).round().clamp(30.0, 220.0);
        m.resp_rate = (v.resp_rate + r.gauss(1.0)).round().clamp(5.0, 50.0);
        m.systolic = (v.systolic + r.gauss(4.0)).round();
        m.diastolic = (v.diastolic + r.gauss(3.0)).round().min(m.systolic - 10.0);
        m.temp = ((v.temp + r.gauss(0.1)) * 10.0).round() / 10.0;
        m.skin_temp = ((v.skin_temp + r.gauss(0.15)) * 10.0).round() / 10.0;
        // Peak-flow meters read in 10 L/min steps; best of three blows.
        let blow = |r: &mut SimRng| v.pef * (1.0 - r.uniform(0.0, 0.08));
        let best = blow(r).max(blow(r)).max(blow(r));
        m.pef = (best / 10.0).round() * 10.0;
        m.weight = ((v.weight + r.gauss(0.2)) * 10.0).round() / 10.0;
        m
    }

    /// The patient's random stream (for the schedule's and ECG's own draws).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }
}

/// Hour of day in UTC (the simulated ward's local time), fractional.
pub fn hour_of_day(t_ms: i64) -> f64 {
    let dt = DateTime::<Utc>::from_timestamp_millis(t_ms).unwrap_or_default();
    f64::from(dt.hour()) + f64::from(dt.minute()) / 60.0 + f64::from(dt.second()) / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Effect;

    const DAY0: i64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z

    #[test]
    fn stable_vitals_stay_in_plausible_ranges_over_a_week() {
        for seed in 0..20 {
            let mut rng = SimRng::seeded(seed);
            let pathway = ["general", "copd", "heart-failure", "asthma"][seed as usize % 4];
            let mut p = Physiology::new(Baseline::draw(pathway, &mut rng), seed);
            for m in (0..7 * 24 * 60).step_by(10) {
                let v = p.vitals(DAY0 + m * 60_000, &Effect::none());
                let r = p.measure(&v);
                assert!((86.0..=100.0).contains(&r.spo2), "spo2 {}", r.spo2);
                assert!((40.0..=115.0).contains(&r.pulse), "pulse {}", r.pulse);
                assert!((8.0..=24.0).contains(&r.resp_rate), "rr {}", r.resp_rate);
                assert!((80.0..=185.0).contains(&r.systolic), "sys {}", r.systolic);
                assert!(
                    (45.0..=110.0).contains(&r.diastolic) && r.diastolic < r.systolic,
                    "dia {}",
                    r.diastolic
                );
                assert!((35.6..=37.9).contains(&r.temp), "temp {}", r.temp);
                assert!((100.0..=650.0).contains(&r.pef), "pef {}", r.pef);
            }
        }
    }

    #[test]
    fn temperature_follows_the_daily_rhythm() {
        let mut rng = SimRng::seeded(1);
        let mut p = Physiology::new(Baseline::draw("general", &mut rng), 1);
        let (mut early, mut evening) = (0.0, 0.0);
        for day in 0..30 {
            let t = DAY0 + day * 86_400_000;
            early += p.vitals(t + 5 * 3_600_000, &Effect::none()).temp;
            evening += p.vitals(t + 17 * 3_600_000, &Effect::none()).temp;
        }
        assert!(
            evening / 30.0 - early / 30.0 > 0.3,
            "{} vs {}",
            evening / 30.0,
            early / 30.0
        );
    }

    #[test]
    fn same_seed_same_times_same_readings() {
        let run = || {
            let mut rng = SimRng::seeded(9);
            let mut p = Physiology::new(Baseline::draw("copd", &mut rng), 9);
            (0..100)
                .map(|m| {
                    let v = p.vitals(DAY0 + m * 60_000, &Effect::none());
                    p.measure(&v).spo2
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
