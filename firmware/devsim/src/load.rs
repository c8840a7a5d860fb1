//! `devsim load`: admit N patients with one hub each over the HTTP API,
//! publish M observation messages per hub at R messages/s in total, keep
//! going until every message is acknowledged or the timeout passes, and
//! report.
//!
//! Every hub is a full simulated kit ([`crate::kit`]): its messages stay in
//! the `vigil-kit` outbox until Vigil acks them and are resent after the
//! resend timeout and on every reconnect, so a daemon or broker restart in
//! the middle of a run shows up as resends, never as loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_kit::outbox::{self, OverflowPolicy};
use vigil_kit::{Code, Observation};

use crate::http::{Api, ApiError, DeviceCreds};
use crate::kit::{self, KitConfig, KitHandle, Uplink};
use crate::nhs;
use crate::physiology::{Baseline, Physiology};
use crate::rng::SimRng;
use crate::scenario::Effect;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Vigil's HTTP base URL.
    pub http: String,
    /// An admin's bearer token.
    pub token: String,
    /// MQTT broker host.
    pub mqtt_host: String,
    /// MQTT broker port.
    pub mqtt_port: u16,
    /// Ward (name or id) to admit into.
    pub ward: String,
    /// Patients (one hub each).
    pub patients: u32,
    /// Observation messages per hub.
    pub messages: u32,
    /// Messages per second, all hubs together.
    pub rate: f64,
    /// How long to keep waiting for acks after the last message is queued.
    pub timeout: Duration,
    /// First resend after this long without an ack.
    pub resend_after: Duration,
    /// TLS: the roots trusted for an `https://` API, and whether MQTT is
    /// over TLS too. `None`: nothing trusted (plain HTTP and MQTT only).
    pub tls: Option<crate::tls::TlsTarget>,
    /// Seed for NHS numbers and values.
    pub seed: u64,
}

impl LoadConfig {
    /// Checks the numbers; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.patients == 0 {
            return Err("--patients: must be at least 1".into());
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err("--rate: must be a positive number of messages per second".into());
        }
        if self.resend_after.is_zero() {
            return Err("--resend-after: must be positive".into());
        }
        Ok(())
    }
}

/// Percentiles of the ack latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median, ms.
    pub p50: u64,
    /// 99th percentile, ms.
    pub p99: u64,
}

/// The report written to `--report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Distinct messages sent (first transmissions).
    pub sent: u64,
    /// Messages Vigil acknowledged as durably stored.
    pub acked: u64,
    /// Extra transmissions (resends after a timeout or a reconnect).
    pub resent: u64,
    /// Messages Vigil rejected.
    pub rejected: u64,
    /// Messages still waiting for an ack when the run ended.
    pub unacked: u64,
    /// Messages the kits lost: evicted or refused by a full queue, or not
    /// encodable.
    pub dropped: u64,
    /// First transmission to ack, over acked messages.
    pub ack_latency_ms: Latency,
}

/// Live counters of a run, for callers that watch it (tests kill the
/// daemon when half the messages are acked).
#[derive(Debug, Default)]
pub struct Progress {
    /// Messages handed to the kits so far.
    pub queued: AtomicU64,
    /// Messages acked so far.
    pub acked: AtomicU64,
}

/// The `q` quantile (0..=1) of sorted values, nearest rank; 0 when empty.
pub fn percentile(sorted: &[u32], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    u64::from(sorted[i.min(sorted.len() - 1)])
}

/// Sums the devices' counters into a report.
pub fn report(handles: &[KitHandle]) -> LoadReport {
    let mut r = LoadReport::default();
    let mut lat = Vec::new();
    for h in handles {
        let s = h.stats();
        r.sent += s.outbox.sent;
        r.acked += s.outbox.acked;
        r.resent += s.outbox.resent;
        r.rejected += s.outbox.rejected;
        r.unacked += s.outbox.queued as u64;
        r.dropped += s.outbox.dropped + s.outbox.refused + s.failed;
        lat.extend(s.ack_latency_ms);
    }
    lat.sort_unstable();
    r.ack_latency_ms = Latency {
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
    };
    r
}

/// A patient admitted for a load run, with the devices provisioned for them.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Patient id.
    pub patient_id: i64,
    /// One set of credentials per requested device kind, in order.
    pub devices: Vec<DeviceCreds>,
}

/// Admits `n` patients named `{prefix} 0001`… on the `general` pathway
/// through the HTTP API, with one device of each of `kinds` each, running
/// up to `parallel` admissions at once. NHS numbers come from `rng`, in
/// patient order, so a seed gives the same numbers however the calls
/// interleave.
pub async fn admit(
    api: &Api,
    ward: &str,
    prefix: &str,
    n: u32,
    kinds: &[&str],
    parallel: usize,
    rng: &mut SimRng,
) -> Result<Vec<Admitted>, ApiError> {
    let numbers = nhs::distinct_test_numbers(rng, n as usize);
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, nhs) in numbers.into_iter().enumerate() {
        let (api, ward, name) = (
            api.clone(),
            ward.to_string(),
            format!("{prefix} {:04}", i + 1),
        );
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let patient_id = api.admit_simulated(&ward, &name, &nhs, "general").await?;
            let mut devices = Vec::new();
            for k in &kinds {
                devices.push(api.provision(k, patient_id).await?);
            }
            Ok::<_, ApiError>((
                i,
                Admitted {
                    patient_id,
                    devices,
                },
            ))
        });
    }
    let mut out: Vec<Option<Admitted>> = vec![None; n as usize];
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok((i, a))) => out[i] = Some(a),
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(ApiError::Shape {
                    what: "admitting a patient",
                    body: e.to_string(),
                });
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// A load-generating kit's settings: backpressure instead of dropping,
/// `window` messages in flight, first resend after `resend_after`
/// (doubling up to 4×).
pub fn kit_config(
    host: &str,
    port: u16,
    creds: &DeviceCreds,
    resend_after: Duration,
    window: usize,
) -> KitConfig {
    let mut kc = KitConfig::new(host, port, creds.device_id.clone(), creds.password.clone());
    kc.username = creds.username.clone();
    kc.backpressure = true;
    kc.outbox = outbox::Config {
        resend_after_ms: resend_after.as_millis() as u64,
        max_resend_after_ms: (resend_after.as_millis() as u64 * 4).max(1),
        max_in_flight: window,
        overflow: OverflowPolicy::RefuseNew,
    };
    kc
}

/// One load message: `spo2` and `pulse` of a stable patient, measured now.
pub fn stable_obs(physiology: &mut Physiology) -> Uplink {
    let now = chrono::Utc::now().timestamp_millis();
    let v = physiology.vitals(now, &Effect::none());
    let m = physiology.measure(&v);
    let obs: Vec<Observation> = [
        Observation::number(Code::Spo2, m.spo2),
        Observation::number(Code::Pulse, m.pulse),
    ]
    .into_iter()
    .flatten()
    .collect();
    Uplink::Obs { ts_ms: now, obs }
}

/// Runs the load; `progress` (if given) is updated as it goes.
pub async fn run(cfg: LoadConfig, progress: Option<Arc<Progress>>) -> anyhow::Result<LoadReport> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let progress = progress.unwrap_or_default();
    let api = Api::with_tls(&cfg.http, &cfg.token, cfg.tls.as_ref().map(|t| &t.config))?;
    let mut rng = SimRng::seeded(cfg.seed);
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let admitted = admit(
        &api,
        &cfg.ward,
        "Load patient",
        cfg.patients,
        &["hub"],
        1,
        &mut rng,
    )
    .await?;
    let mut hubs = Vec::new();
    let mut tasks = Vec::new();
    let mut physiology = Vec::new();
    for a in &admitted {
        let mut kc = kit_config(
            &cfg.mqtt_host,
            cfg.mqtt_port,
            &a.devices[0],
            cfg.resend_after,
            32,
        );
        kc.tls = cfg
            .tls
            .as_ref()
            .filter(|t| t.mqtt)
            .map(|t| t.config.clone());
        let (h, t) = kit::spawn(kc, cancel.clone());
        hubs.push(h);
        tasks.push(t);
        physiology.push(Physiology::new(
            Baseline::draw("general", &mut rng),
            rng.next_u64(),
        ));
    }
    let total = u64::from(cfg.patients) * u64::from(cfg.messages);
    let start = Instant::now();
    let mut queued = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while queued < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * cfg.rate).floor() as u64 + 1).min(total);
        while queued < due {
            let i = (queued % u64::from(cfg.patients)) as usize;
            if !hubs[i].send(stable_obs(&mut physiology[i])).await {
                anyhow::bail!("device {} stopped", hubs[i].device_id);
            }
            queued += 1;
            progress.queued.store(queued, Ordering::Relaxed);
        }
        progress.acked.store(
            hubs.iter().map(|h| h.stats().outbox.acked).sum(),
            Ordering::Relaxed,
        );
    }
    // Wait until every message is acked (or refused/rejected), or the timeout.
    let deadline = Instant::now() + cfg.timeout;
    loop {
        let r = report(&hubs);
        progress.acked.store(r.acked, Ordering::Relaxed);
        let settled = hubs.iter().all(|h| {
            let s = h.stats();
            s.accepted == u64::from(cfg.messages) && s.outbox.queued == 0
        });
        if settled || Instant::now() >= deadline {
            tracing::info!(
                sent = r.sent,
                acked = r.acked,
                unacked = r.unacked,
                "load run finished"
            );
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_ranks() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn report_serialises_with_the_documented_fields() {
        let r = LoadReport {
            sent: 3,
            acked: 3,
            ..Default::default()
        };
        let v = serde_json::to_value(&r).expect("json");
        for k in ["sent", "acked", "resent", "rejected", "unacked", "dropped"] {
            assert!(v[k].is_u64(), "{k}");
        }
        assert!(v["ack_latency_ms"]["p50"].is_u64() && v["ack_latency_ms"]["p99"].is_u64());
    }
}
