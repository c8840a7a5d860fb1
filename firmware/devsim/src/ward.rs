//! A ward of simulated patients running against a broker: each patient's
//! physiology and schedule feed its kit's devices ([`crate::kit`]).
//!
//! Two clocks:
//!
//! - the **scenario clock** runs `speed` times faster than the wall clock
//!   from `start_ms`, and drives physiology and schedules;
//! - the **measurement time** put in each message (`ts`, ECG `t0`) depends
//!   on [`Stamp`]: with [`Stamp::Simulated`] it is the simulated time itself
//!   (replaying a past period: the scenario clock starts in the past and is
//!   never allowed to pass the wall clock), with [`Stamp::WallClock`] it is
//!   the wall-clock time at which the reading is taken (the demo: an
//!   accelerated scenario, but every reading is stamped with the real time
//!   it was sent, never in the future).
//!
//! The patch's ECG always runs at its real rate against the measurement
//! clock: one 250-sample chunk per second of measurement time.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ecg::{EcgSource, Recording};
use crate::http::DeviceCreds;
use crate::kit::{self, KitConfig, KitHandle, Uplink};
use crate::patient::{Patient, PatientSpec, Role, What};
use crate::schedule::{ECG_CHUNK_MS, ECG_FS_HZ};

/// How messages are time-stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// `ts` = simulated time (which must not run ahead of the wall clock).
    Simulated,
    /// `ts` = wall-clock time when the reading is taken.
    WallClock,
}

/// The ward's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Simulated time at the start, Unix ms.
    pub start_ms: i64,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Time-stamping.
    pub stamp: Stamp,
}

/// One patient of the ward with its devices' credentials.
#[derive(Debug, Clone)]
pub struct SimPatient {
    /// The patient.
    pub spec: PatientSpec,
    /// Hub credentials.
    pub hub: DeviceCreds,
    /// Patch credentials, if the patient has a patch.
    pub patch: Option<DeviceCreds>,
}

/// A ward to run.
#[derive(Debug, Clone)]
pub struct WardConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Patients.
    pub patients: Vec<SimPatient>,
    /// Clock.
    pub clock: Clock,
    /// Stream ECG from patches (off for fast replays that only need vitals).
    pub ecg: bool,
    /// MIT-BIH recordings to replay on patches (empty: synthetic for all).
    pub recordings: Vec<Arc<Recording>>,
    /// How often the simulation advances, wall clock.
    pub tick: Duration,
    /// Device outbox settings.
    pub outbox: vigil_kit::outbox::Config,
    /// MQTT over TLS with this set-up; plain when `None`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A running ward.
#[derive(Debug)]
pub struct RunningWard {
    /// Each patient's devices (hub, then patch if any), in patient order.
    pub devices: Vec<(KitHandle, Option<KitHandle>)>,
    /// Patient tasks, then device tasks.
    pub tasks: Vec<JoinHandle<()>>,
}

impl RunningWard {
    /// Every device's handle.
    pub fn handles(&self) -> Vec<KitHandle> {
        self.devices
            .iter()
            .flat_map(|(h, p)| std::iter::once(h.clone()).chain(p.clone()))
            .collect()
    }
}

/// Which ECG source a patient's patch gets: replay of a recording for most,
/// synthetic when the scenario needs a rhythm the recording cannot follow
/// (AF onset) or no recordings are available.
pub fn ecg_source(spec: &PatientSpec, recordings: &[Arc<Recording>]) -> Option<EcgSource> {
    if recordings.is_empty() || spec.plan.scenario == crate::scenario::Scenario::AfOnset {
        return None;
    }
    let rec = recordings[(spec.seed as usize) % recordings.len()].clone();
    let offset = (spec.seed as usize).wrapping_mul(7919) % rec.samples.len().max(1);
    Some(EcgSource::Replay { rec, offset })
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Starts the ward; it runs until `cancel`.
pub fn start(cfg: WardConfig, cancel: CancellationToken) -> RunningWard {
    let mut devices = Vec::new();
    let mut tasks = Vec::new();
    let kit_cfg = |c: &DeviceCreds| {
        let mut k = KitConfig::new(
            cfg.host.clone(),
            cfg.port,
            c.device_id.clone(),
            c.password.clone(),
        );
        k.username = c.username.clone();
        k.outbox = cfg.outbox;
        k.tls = cfg.tls.clone();
        k
    };
    for p in &cfg.patients {
        let (hub, t) = kit::spawn(kit_cfg(&p.hub), cancel.clone());
        tasks.push(t);
        let patch = p.patch.as_ref().map(|c| {
            let (h, t) = kit::spawn(kit_cfg(c), cancel.clone());
            tasks.push(t);
            h
        });
        let mut spec = p.spec.clone();
        spec.patch = patch.is_some();
        spec.start_ms = cfg.clock.start_ms;
        let patient = Patient::new(spec.clone(), ecg_source(&spec, &cfg.recordings));
        tasks.push(tokio::spawn(run_patient(
            patient,
            hub.clone(),
            patch.clone(),
            cfg.clock,
            cfg.ecg,
            cfg.tick,
            cancel.clone(),
        )));
        devices.push((hub, patch));
    }
    RunningWard { devices, tasks }
}

async fn run_patient(
    mut patient: Patient,
    hub: KitHandle,
    patch: Option<KitHandle>,
    clock: Clock,
    ecg: bool,
    tick: Duration,
    cancel: CancellationToken,
) {
    // Start the patient's clock once its devices are online (or after 10 s
    // regardless), so a scenario's first events are not lost to a connect.
    let connect_by = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < connect_by
        && !(hub.stats().connected && patch.as_ref().is_none_or(|p| p.stats().connected))
    {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let wall0 = wall_ms();
    let real0 = tokio::time::Instant::now();
    let mut ecg_next = match clock.stamp {
        Stamp::WallClock => wall0,
        Stamp::Simulated => clock.start_ms,
    };
    ecg_next -= ecg_next.rem_euclid(ECG_CHUNK_MS);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        let real = real0.elapsed().as_millis() as i64;
        let mut sim_now = clock.start_ms + (real as f64 * clock.speed) as i64;
        if clock.stamp == Stamp::Simulated {
            sim_now = sim_now.min(wall_ms());
        }
        let stamp_now = match clock.stamp {
            Stamp::Simulated => sim_now,
            Stamp::WallClock => wall_ms(),
        };
        for r in patient.step(sim_now) {
            let ts = match clock.stamp {
                Stamp::Simulated => r.at_ms,
                Stamp::WallClock => stamp_now,
            };
            let dev = match r.role {
                Role::Hub => Some(&hub),
                Role::Patch => patch.as_ref(),
            };
            let ups: Vec<(Option<&KitHandle>, Uplink)> = match r.what {
                What::Obs(obs) => vec![(dev, Uplink::Obs { ts_ms: ts, obs })],
                What::Status(s) => vec![(
                    dev,
                    Uplink::Status {
                        battery_pct: s.battery_pct,
                        signal: s.signal,
                    },
                )],
                // The home network: both devices go down and come back together.
                What::Network(up) => vec![
                    (Some(&hub), Uplink::Online(up)),
                    (patch.as_ref(), Uplink::Online(up)),
                ],
            };
            for (d, u) in ups {
                if let Some(d) = d
                    && !d.send(u).await
                {
                    return;
                }
            }
        }
        if let (Some(p), true) = (&patch, ecg && patient.has_ecg()) {
            // Simulated time of the chunk for the heart's state.
            while ecg_next + ECG_CHUNK_MS <= stamp_now {
                let sim_t = match clock.stamp {
                    Stamp::Simulated => ecg_next,
                    Stamp::WallClock => sim_now,
                };
                let n = (i64::from(ECG_FS_HZ) * ECG_CHUNK_MS / 1000) as usize;
                if let Some((samples, uv)) = patient.ecg_chunk(sim_t, n) {
                    // ECG is bulk: if the patch's queue is busy, skip rather
                    // than stall the patient's vitals.
                    let _ = p.try_send(Uplink::Ecg {
                        t0_ms: ecg_next,
                        fs_hz: ECG_FS_HZ,
                        uv_per_count: uv,
                        samples,
                    });
                }
                ecg_next += ECG_CHUNK_MS;
            }
        }
    }
}
