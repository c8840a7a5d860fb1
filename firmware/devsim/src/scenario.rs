//! Scenarios: what happens to a patient over simulated time.
//!
//! Each scenario is an onset (time after the simulation starts) and a
//! duration over which its effect grows from nothing to full strength along
//! a smooth S-curve ([`ScenarioPlan::progress`]). The effect is a set of
//! offsets added to the patient's physiology ([`Effect`]). The directions
//! and sizes follow the clinical picture each scenario stands for (see
//! docs/devsim.md for the sources of each picture).

use std::fmt;
use std::str::FromStr;

/// The kinds of scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Nothing happens beyond daily rhythm and noise.
    Stable,
    /// COPD exacerbation over 12–24 h: falling SpO2, rising respiratory
    /// rate and pulse, low-grade fever, falling peak flow.
    CopdExacerbation,
    /// Sepsis-like deterioration: fever, tachycardia, tachypnoea, falling
    /// blood pressure and SpO2, new confusion at the end.
    Sepsis,
    /// Heart-failure decompensation: weight gain from fluid, rising
    /// respiratory rate and pulse, falling SpO2.
    HeartFailure,
    /// Asthma attack over hours: peak flow falling to under half of best,
    /// tachypnoea, tachycardia, then falling SpO2.
    AsthmaAttack,
    /// Atrial fibrillation onset: an abrupt irregularly irregular rhythm at
    /// a faster ventricular rate, visible in the ECG's RR intervals.
    AfOnset,
    /// Hypotension: falling blood pressure with a compensating pulse.
    Hypotension,
    /// Device faults: ECG leads off, poor signal, a hub battery running low.
    DeviceFaults,
    /// The kit loses its network for a while, then backfills.
    OfflineGap,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 9] = [
        Scenario::Stable,
        Scenario::CopdExacerbation,
        Scenario::Sepsis,
        Scenario::HeartFailure,
        Scenario::AsthmaAttack,
        Scenario::AfOnset,
        Scenario::Hypotension,
        Scenario::DeviceFaults,
        Scenario::OfflineGap,
    ];

    /// The name used on the command line and in docs.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Stable => "stable",
            Scenario::CopdExacerbation => "copd-exacerbation",
            Scenario::Sepsis => "sepsis",
            Scenario::HeartFailure => "heart-failure",
            Scenario::AsthmaAttack => "asthma-attack",
            Scenario::AfOnset => "af-onset",
            Scenario::Hypotension => "hypotension",
            Scenario::DeviceFaults => "device-faults",
            Scenario::OfflineGap => "offline-gap",
        }
    }

    /// The clinical pathway a patient with this scenario would be on.
    pub const fn pathway(self) -> &'static str {
        match self {
            Scenario::CopdExacerbation => "copd",
            Scenario::HeartFailure | Scenario::AfOnset => "heart-failure",
            Scenario::AsthmaAttack => "asthma",
            _ => "general",
        }
    }

    /// Whether the scenario is a clinical deterioration.
    pub const fn deteriorates(self) -> bool {
        !matches!(
            self,
            Scenario::Stable | Scenario::DeviceFaults | Scenario::OfflineGap
        )
    }

    /// The default plan: onset one hour in, with the scenario's own course.
    pub fn plan(self) -> ScenarioPlan {
        let h = 3_600_000;
        let (onset, duration) = match self {
            Scenario::Stable => (0, 0),
            Scenario::CopdExacerbation => (h, 18 * h),
            Scenario::Sepsis => (h, 10 * h),
            Scenario::HeartFailure => (h, 24 * h),
            Scenario::AsthmaAttack => (h, 6 * h),
            // Abrupt onset; the ventricular rate settles over 10 minutes.
            Scenario::AfOnset => (2 * h, h / 6),
            Scenario::Hypotension => (h, 4 * h),
            Scenario::DeviceFaults => (h, 12 * h),
            Scenario::OfflineGap => (h, 2 * h),
        };
        ScenarioPlan {
            scenario: self,
            onset_ms: onset,
            duration_ms: duration,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scenario {s:?} (one of: {})",
                    Scenario::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// A scenario with its timing, relative to the start of the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioPlan {
    /// Which scenario.
    pub scenario: Scenario,
    /// When it begins, ms after the simulation starts.
    pub onset_ms: i64,
    /// How long until full effect (or, for [`Scenario::OfflineGap`], how
    /// long the kit is offline), ms.
    pub duration_ms: i64,
}

impl ScenarioPlan {
    /// Strength of the effect at `elapsed_ms` after the simulation starts:
    /// 0 before onset, 1 at onset + duration, a smoothstep in between.
    pub fn progress(&self, elapsed_ms: i64) -> f64 {
        if self.scenario == Scenario::Stable || elapsed_ms < self.onset_ms {
            return 0.0;
        }
        if self.duration_ms <= 0 {
            return 1.0;
        }
        let x = ((elapsed_ms - self.onset_ms) as f64 / self.duration_ms as f64).clamp(0.0, 1.0);
        x * x * (3.0 - 2.0 * x)
    }

    /// The physiological effect at `elapsed_ms`.
    pub fn effect(&self, elapsed_ms: i64) -> Effect {
        let p = self.progress(elapsed_ms);
        let mut e = Effect::none();
        match self.scenario {
            Scenario::Stable | Scenario::DeviceFaults | Scenario::OfflineGap => {}
            Scenario::CopdExacerbation => {
                e.spo2 = -6.0 * p;
                e.resp_rate = 9.0 * p;
                e.pulse = 22.0 * p;
                e.temp = 0.9 * p;
                e.pef_factor = 1.0 - 0.35 * p;
                e.systolic = 4.0 * p;
            }
            Scenario::Sepsis => {
                e.temp = 2.3 * p;
                e.pulse = 48.0 * p;
                e.resp_rate = 12.0 * p;
                e.systolic = -38.0 * p;
                e.diastolic = -22.0 * p;
                e.spo2 = -5.0 * p;
                e.confused = p > 0.85;
            }
            Scenario::HeartFailure => {
                e.weight = 3.0 * p;
                e.resp_rate = 9.0 * p;
                e.pulse = 24.0 * p;
                e.spo2 = -6.0 * p;
                e.systolic = -8.0 * p;
            }
            Scenario::AsthmaAttack => {
                e.pef_factor = 1.0 - 0.62 * p;
                e.resp_rate = 11.0 * p;
                e.pulse = 32.0 * p;
                // Saturation holds until late in an attack.
                e.spo2 = -6.0 * p * p;
            }
            Scenario::AfOnset => {
                e.af = elapsed_ms >= self.onset_ms;
                e.pulse = 40.0 * p;
                e.systolic = -10.0 * p;
                e.diastolic = -4.0 * p;
            }
            Scenario::Hypotension => {
                e.systolic = -42.0 * p;
                e.diastolic = -26.0 * p;
                e.pulse = 26.0 * p;
                e.resp_rate = 3.0 * p;
            }
        }
        e
    }

    /// Whether the kit is offline at `elapsed_ms`.
    pub fn offline(&self, elapsed_ms: i64) -> bool {
        self.scenario == Scenario::OfflineGap
            && elapsed_ms >= self.onset_ms
            && elapsed_ms < self.onset_ms + self.duration_ms
    }
}

/// Offsets a scenario adds to the physiology at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    /// SpO2, percentage points.
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
    /// Peak flow as a fraction of the patient's usual.
    pub pef_factor: f64,
    /// Weight, kg.
    pub weight: f64,
    /// New confusion (ACVPU `C`).
    pub confused: bool,
    /// Atrial fibrillation.
    pub af: bool,
}

impl Effect {
    /// No effect.
    pub const fn none() -> Effect {
        Effect {
            spo2: 0.0,
            pulse: 0.0,
            resp_rate: 0.0,
            systolic: 0.0,
            diastolic: 0.0,
            temp: 0.0,
            pef_factor: 1.0,
            weight: 0.0,
            confused: false,
            af: false,
        }
    }
}

/// The demo ward's mix, by patient index: about half deteriorate, the rest
/// are stable or show device trouble. Deteriorations begin 20 simulated
/// minutes in, so an accelerated demo shows them within minutes.
pub const DEMO_MIX: [Scenario; 12] = [
    Scenario::Stable,
    Scenario::CopdExacerbation,
    Scenario::Stable,
    Scenario::Sepsis,
    Scenario::AsthmaAttack,
    Scenario::Stable,
    Scenario::HeartFailure,
    Scenario::AfOnset,
    Scenario::DeviceFaults,
    Scenario::Hypotension,
    Scenario::Stable,
    Scenario::OfflineGap,
];

/// The `i`-th patient of a demo ward.
pub fn demo_spec(i: usize, spot_per_day: u32, seed: u64) -> crate::patient::PatientSpec {
    let scenario = DEMO_MIX[i % DEMO_MIX.len()];
    let mut plan = scenario.plan();
    if scenario != Scenario::Stable {
        plan.onset_ms = 20 * 60_000;
    }
    crate::patient::PatientSpec {
        plan,
        pathway: scenario.pathway().to_string(),
        patch: false,
        spot_per_day,
        seed,
        start_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        assert!("nope".parse::<Scenario>().is_err());
    }

    #[test]
    fn progress_is_monotonic_from_zero_to_one() {
        let plan = Scenario::Sepsis.plan();
        let mut last = 0.0;
        for m in (0..16 * 60).step_by(5) {
            let p = plan.progress(m * 60_000);
            assert!(p >= last && (0.0..=1.0).contains(&p));
            last = p;
        }
        assert_eq!(plan.progress(0), 0.0);
        assert_eq!(last, 1.0);
    }
}
