//! One simulated patient: physiology + scenario + schedule → readings.
//!
//! [`Patient::step`] returns everything the patient's kit measures in a
//! window of simulated time, each reading stamped with its simulated
//! measurement time and the device that took it: the hub's spot checks
//! (oximeter with a patient-counted breathing rate, blood-pressure cuff,
//! thermometer, peak-flow meter for respiratory pathways, scales for heart
//! failure), the patch's minute values, device status changes and network
//! loss. [`Patient::ecg_chunk`] gives the patch's ECG second by second.
//! The caller decides how simulated time maps to wall-clock time.

use vigil_kit::status::Signal;
use vigil_kit::{Acvpu, Code, Observation, Posture};

use crate::ecg::{Contact, EcgSource, EcgStream, Synthetic};
use crate::physiology::{Baseline, Consciousness, Physiology, Vitals};
use crate::rng::SimRng;
use crate::scenario::{Scenario, ScenarioPlan};
use crate::schedule::{self, PATCH_EVERY_MS, SpotSchedule};

/// Which of the patient's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The home hub (relays the Bluetooth cuff, oximeter, thermometer...).
    Hub,
    /// The ECG patch.
    Patch,
}

/// A device's status, published retained on `.../status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Battery charge, %.
    pub battery_pct: u8,
    /// Signal quality.
    pub signal: Signal,
}

/// What a reading carries.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// Observations measured together.
    Obs(Vec<Observation>),
    /// The device's status changed.
    Status(DeviceStatus),
    /// The kit's network went down (`false`) or came back (`true`).
    Network(bool),
}

/// One reading, at its simulated measurement time.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The device.
    pub role: Role,
    /// Simulated measurement time, Unix ms.
    pub at_ms: i64,
    /// What.
    pub what: What,
}

/// How a patient is set up.
#[derive(Debug, Clone)]
pub struct PatientSpec {
    /// The scenario and its timing.
    pub plan: ScenarioPlan,
    /// Pathway (baseline ranges, which spot checks).
    pub pathway: String,
    /// Has an ECG patch.
    pub patch: bool,
    /// Spot checks per day (2–4 on a real ward).
    pub spot_per_day: u32,
    /// Seed of everything random about this patient.
    pub seed: u64,
    /// Simulated start, Unix ms: the scenario's clock starts here.
    pub start_ms: i64,
}

/// One simulated patient.
#[derive(Debug)]
pub struct Patient {
    /// The set-up.
    pub spec: PatientSpec,
    phys: Physiology,
    spot: SpotSchedule,
    ecg: Option<EcgStream>,
    status: [DeviceStatus; 2],
    offline: bool,
    /// Simulated time up to which readings were produced.
    pub now_ms: i64,
}

/// A spot check: oximeter (+ breaths counted), then cuff, thermometer, peak-flow meter, a minute apart.
const STEP_MS: [(i64, &str); 4] = [
    (0, "oximeter"),
    (60_000, "cuff"),
    (120_000, "thermometer"),
    (180_000, "peak flow"),
];

impl Patient {
    /// A patient; `ecg` is the patch's signal source (`None`: synthetic).
    pub fn new(spec: PatientSpec, ecg: Option<EcgSource>) -> Patient {
        let mut rng = SimRng::seeded(spec.seed);
        let baseline = Baseline::draw(&spec.pathway, &mut rng);
        let phys = Physiology::new(baseline, rng.next_u64());
        let spot = SpotSchedule {
            per_day: spec.spot_per_day,
            seed: spec.seed,
        };
        let ecg = spec.patch.then(|| {
            let src = ecg
                .unwrap_or_else(|| EcgSource::Synth(Box::new(Synthetic::new(spec.seed ^ 0xec9))));
            EcgStream::new(src, spec.seed)
        });
        let hub_battery = if spec.plan.scenario == Scenario::DeviceFaults {
            62
        } else {
            100
        };
        let status = [
            DeviceStatus {
                battery_pct: hub_battery,
                signal: Signal::Ok,
            },
            DeviceStatus {
                battery_pct: 90,
                signal: Signal::Ok,
            },
        ];
        Patient {
            now_ms: spec.start_ms,
            phys,
            spot,
            ecg,
            status,
            offline: false,
            spec,
        }
    }

    /// Elapsed simulated time since the start.
    fn elapsed(&self, t_ms: i64) -> i64 {
        t_ms - self.spec.start_ms
    }

    /// The true vitals at `t_ms` (advances the drift to `t_ms`).
    pub fn vitals(&mut self, t_ms: i64) -> Vitals {
        let effect = self.spec.plan.effect(self.elapsed(t_ms));
        self.phys.vitals(t_ms, &effect)
    }

    /// The current status of a device.
    pub fn status(&self, role: Role) -> DeviceStatus {
        self.status[role as usize]
    }

    /// Everything measured in `(now_ms, to_ms]`, in time order; advances `now_ms`.
    pub fn step(&mut self, to_ms: i64) -> Vec<Reading> {
        let from = self.now_ms;
        if to_ms <= from {
            return Vec::new();
        }
        let mut events: Vec<(i64, u8)> = Vec::new(); // (time, kind)
        for t in self.spot.between(from + 1, to_ms + 1) {
            events.push((t, 0));
        }
        // Each spot check is a short sequence of devices, a minute apart:
        // so a check that began in the previous window still finishes.
        for t in self.spot.between(from + 1 - 240_000, to_ms + 1) {
            for (k, (off, _)) in STEP_MS.iter().enumerate().skip(1) {
                let at = t + off;
                if at > from && at <= to_ms {
                    events.push((at, k as u8));
                }
            }
        }
        if self.spec.patch {
            for t in schedule::ticks(PATCH_EVERY_MS, from + 1, to_ms + 1) {
                events.push((t, 10));
            }
        }
        // Device state changes: checked every simulated minute.
        for t in schedule::ticks(60_000, from + 1, to_ms + 1) {
            events.push((t, 20));
        }
        events.sort_unstable();
        let mut out = Vec::new();
        for (t, kind) in events {
            match kind {
                0..=3 => self.spot_part(t, kind, &mut out),
                10 => self.patch_minute(t, &mut out),
                _ => self.device_state(t, &mut out),
            }
        }
        self.now_ms = to_ms;
        out
    }

    fn spot_part(&mut self, t: i64, part: u8, out: &mut Vec<Reading>) {
        let v = self.vitals(t);
        let m = self.phys.measure(&v);
        let num = |c, x| Observation::number(c, x).ok();
        let obs: Vec<Observation> = match part {
            0 => {
                let mut o = vec![
                    num(Code::Spo2, m.spo2),
                    num(Code::Pulse, m.pulse),
                    num(Code::RespRate, m.resp_rate),
                ];
                // The hub asks "how are you feeling?"; new confusion is
                // reported by the patient's carer.
                o.push(Some(Observation::acvpu(match v.consciousness {
                    Consciousness::Alert => Acvpu::A,
                    Consciousness::Confused => Acvpu::C,
                })));
                o.into_iter().flatten().collect()
            }
            1 => vec![
                num(Code::Systolic, m.systolic),
                num(Code::Diastolic, m.diastolic),
                num(Code::Pulse, m.pulse),
            ]
            .into_iter()
            .flatten()
            .collect(),
            2 => {
                let mut o = vec![num(Code::Temp, m.temp)];
                // Heart failure: daily morning weight (every check when the
                // schedule is faster than 4 a day, as in the demo).
                if self.spec.pathway == "heart-failure"
                    && (self.spec.spot_per_day > 4 || crate::physiology::hour_of_day(t) < 10.0)
                {
                    o.push(num(Code::Weight, m.weight));
                }
                o.into_iter().flatten().collect()
            }
            _ => {
                if matches!(self.spec.pathway.as_str(), "copd" | "asthma") {
                    num(Code::Pef, m.pef).into_iter().collect()
                } else {
                    Vec::new()
                }
            }
        };
        if !obs.is_empty() {
            out.push(Reading {
                role: Role::Hub,
                at_ms: t,
                what: What::Obs(obs),
            });
        }
    }

    fn patch_minute(&mut self, t: i64, out: &mut Vec<Reading>) {
        if self.contact(t) != Contact::Good {
            return; // a patch off the skin measures nothing
        }
        let v = self.vitals(t);
        let m = self.phys.measure(&v);
        let posture = if v.lying {
            Posture::Lying
        } else if self.phys.rng().chance(0.15) {
            Posture::Moving
        } else {
            Posture::Upright
        };
        let obs = [
            Observation::number(Code::RespRate, m.resp_rate).ok(),
            Observation::number(Code::SkinTemp, m.skin_temp).ok(),
            Some(Observation::posture(posture)),
        ];
        out.push(Reading {
            role: Role::Patch,
            at_ms: t,
            what: What::Obs(obs.into_iter().flatten().collect()),
        });
    }

    /// Electrode contact at `t_ms` (faults scenario: lead off 20 min from
    /// onset, poor signal for 30 min from onset + 2 h).
    pub fn contact(&self, t_ms: i64) -> Contact {
        let plan = self.spec.plan;
        if plan.scenario != Scenario::DeviceFaults {
            return Contact::Good;
        }
        let e = self.elapsed(t_ms) - plan.onset_ms;
        let m = 60_000;
        if (0..20 * m).contains(&e) {
            Contact::LeadOff
        } else if (120 * m..150 * m).contains(&e) {
            Contact::Poor
        } else {
            Contact::Good
        }
    }

    fn device_state(&mut self, t: i64, out: &mut Vec<Reading>) {
        let plan = self.spec.plan;
        let e = self.elapsed(t);
        let offline = plan.offline(e);
        if offline != self.offline {
            self.offline = offline;
            out.push(Reading {
                role: Role::Hub,
                at_ms: t,
                what: What::Network(!offline),
            });
        }
        let hours = e.max(0) as f64 / 3_600_000.0;
        // Hub on mains unless the faults scenario unplugs it at onset;
        // then it drains 8 %/h. The patch drains 1 %/h from 90 %.
        let hub_batt = if plan.scenario == Scenario::DeviceFaults && e >= plan.onset_ms {
            (62.0 - 8.0 * (e - plan.onset_ms) as f64 / 3_600_000.0).max(3.0)
        } else {
            f64::from(self.status[0].battery_pct)
        };
        let patch_batt = (90.0 - hours).max(5.0);
        let signal = match self.contact(t) {
            Contact::Good => Signal::Ok,
            Contact::LeadOff => Signal::LeadOff,
            Contact::Poor => Signal::Poor,
        };
        let new = [
            DeviceStatus {
                battery_pct: step5(hub_batt),
                signal: Signal::Ok,
            },
            DeviceStatus {
                battery_pct: step5(patch_batt),
                signal,
            },
        ];
        for (i, role) in [Role::Hub, Role::Patch].into_iter().enumerate() {
            if new[i] != self.status[i] {
                self.status[i] = new[i];
                if role == Role::Hub || self.spec.patch {
                    out.push(Reading {
                        role,
                        at_ms: t,
                        what: What::Status(new[i]),
                    });
                }
            }
        }
    }

    /// Whether the patch streams ECG.
    pub fn has_ecg(&self) -> bool {
        self.ecg.is_some()
    }

    /// The next ECG chunk of `n` samples whose first sample is at `t0_ms`
    /// (simulated, for the heart rate and rhythm); `None` without a patch.
    pub fn ecg_chunk(&mut self, t0_ms: i64, n: usize) -> Option<(Vec<i16>, f32)> {
        self.ecg.as_ref()?;
        let v = self.vitals(t0_ms);
        let contact = self.contact(t0_ms);
        let ecg = self.ecg.as_mut()?;
        Some((
            ecg.next_chunk(n, v.pulse, v.rhythm, contact),
            ecg.uv_per_count(),
        ))
    }
}

/// Battery reported in 5 % steps, so status changes stay rare.
fn step5(pct: f64) -> u8 {
    ((pct / 5.0).round() * 5.0).clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY0: i64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z

    fn patient(s: Scenario, patch: bool, seed: u64) -> Patient {
        Patient::new(
            PatientSpec {
                plan: s.plan(),
                pathway: s.pathway().into(),
                patch,
                spot_per_day: 24,
                seed,
                start_ms: DAY0 + 6 * 3_600_000,
            },
            None,
        )
    }

    /// Mean of each code's values in `[from, to)` hours after the start.
    fn mean(readings: &[Reading], code: Code, start: i64, from_h: f64, to_h: f64) -> f64 {
        let v: Vec<f64> = readings
            .iter()
            .filter(|r| {
                let h = (r.at_ms - start) as f64 / 3_600_000.0;
                h >= from_h && h < to_h
            })
            .filter_map(|r| match &r.what {
                What::Obs(o) => Some(o.clone()),
                _ => None,
            })
            .flatten()
            .filter(|o| o.code() == code)
            .filter_map(|o| match o.value() {
                vigil_kit::Value::Number(x) => Some(x),
                _ => None,
            })
            .collect();
        assert!(!v.is_empty(), "no {code} between {from_h} h and {to_h} h");
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn run(p: &mut Patient, hours: i64) -> Vec<Reading> {
        let start = p.now_ms;
        let mut out = Vec::new();
        // Uneven windows: the readings must not depend on how time is cut.
        let mut t = start;
        while t < start + hours * 3_600_000 {
            t = (t + 777_000).min(start + hours * 3_600_000);
            out.extend(p.step(t));
        }
        out
    }

    #[test]
    fn scenarios_move_the_right_vitals_the_right_way() {
        // (scenario, code, expected sign of the change from the first hour to the last hours)
        let cases: &[(Scenario, Code, f64)] = &[
            (Scenario::CopdExacerbation, Code::Spo2, -1.0),
            (Scenario::CopdExacerbation, Code::RespRate, 1.0),
            (Scenario::CopdExacerbation, Code::Pef, -1.0),
            (Scenario::Sepsis, Code::Temp, 1.0),
            (Scenario::Sepsis, Code::Pulse, 1.0),
            (Scenario::Sepsis, Code::Systolic, -1.0),
            (Scenario::HeartFailure, Code::Weight, 1.0),
            (Scenario::HeartFailure, Code::RespRate, 1.0),
            (Scenario::AsthmaAttack, Code::Pef, -1.0),
            (Scenario::AsthmaAttack, Code::Pulse, 1.0),
            (Scenario::AfOnset, Code::Pulse, 1.0),
            (Scenario::Hypotension, Code::Systolic, -1.0),
            (Scenario::Hypotension, Code::Diastolic, -1.0),
        ];
        for &(s, code, sign) in cases {
            let mut p = patient(s, false, 42);
            let start = p.now_ms;
            let end_h =
                ((s.plan().onset_ms + s.plan().duration_ms) as f64 / 3_600_000.0).ceil() + 2.0;
            let readings = run(&mut p, end_h as i64);
            let before = mean(&readings, code, start, 0.0, 1.0);
            let after = mean(&readings, code, start, end_h - 2.0, end_h);
            println!("{s}: {code} {before:.1} -> {after:.1}");
            assert!(
                (after - before) * sign > 0.0,
                "{s}: {code} {before} -> {after}"
            );
        }
    }

    #[test]
    fn stable_patients_do_not_drift_away() {
        for seed in 0..6 {
            let mut p = patient(Scenario::Stable, false, seed);
            let start = p.now_ms;
            let r = run(&mut p, 48);
            let first = mean(&r, Code::Spo2, start, 0.0, 12.0);
            let last = mean(&r, Code::Spo2, start, 36.0, 48.0);
            assert!((first - last).abs() < 2.5, "{first} {last}");
        }
    }

    #[test]
    fn sepsis_ends_with_new_confusion() {
        let mut p = patient(Scenario::Sepsis, false, 1);
        let r = run(&mut p, 14);
        let last = r
            .iter()
            .rev()
            .filter_map(|r| match &r.what {
                What::Obs(o) => o.iter().find(|o| o.code() == Code::Acvpu).copied(),
                _ => None,
            })
            .next();
        assert_eq!(
            last.map(|o| o.value()),
            Some(vigil_kit::Value::Acvpu(Acvpu::C))
        );
    }

    #[test]
    fn offline_gap_takes_the_network_down_and_back() {
        let mut p = patient(Scenario::OfflineGap, true, 2);
        let r = run(&mut p, 4);
        let net: Vec<(i64, bool)> = r
            .iter()
            .filter_map(|x| match x.what {
                What::Network(up) => Some(((x.at_ms - DAY0 - 6 * 3_600_000) / 60_000, up)),
                _ => None,
            })
            .collect();
        assert_eq!(net, vec![(60, false), (180, true)]);
    }

    #[test]
    fn device_faults_report_lead_off_then_low_battery() {
        let mut p = patient(Scenario::DeviceFaults, true, 3);
        let r = run(&mut p, 10);
        let statuses: Vec<(Role, DeviceStatus)> = r
            .iter()
            .filter_map(|x| match x.what {
                What::Status(s) => Some((x.role, s)),
                _ => None,
            })
            .collect();
        assert!(
            statuses
                .iter()
                .any(|(r, s)| *r == Role::Patch && s.signal == Signal::LeadOff)
        );
        assert!(
            statuses
                .iter()
                .any(|(r, s)| *r == Role::Patch && s.signal == Signal::Poor)
        );
        assert!(
            statuses
                .iter()
                .any(|(r, s)| *r == Role::Hub && s.battery_pct <= 20)
        );
    }

    #[test]
    fn patch_sends_every_minute_and_ecg_has_the_patients_rhythm() {
        let mut p = patient(Scenario::AfOnset, true, 4);
        let start = p.now_ms;
        let r = p.step(start + 3_600_000);
        assert_eq!(
            r.iter()
                .filter(|x| x.role == Role::Patch && matches!(x.what, What::Obs(_)))
                .count(),
            60
        );
        let (c, uv) = p.ecg_chunk(start + 3_600_000, 250).expect("patch");
        assert_eq!((c.len(), uv), (250, crate::ecg::SYNTH_UV_PER_COUNT));
    }
}
