//! `devsim bench`: the end-to-end benchmark. Starts a fresh `vigil serve`
//! (SQLite in a temp dir, free ports), admits a ward, region or nation of
//! patients through the HTTP API, drives their kits over real MQTT, and
//! measures what Vigil durably stores, how fast alerts reach a dashboard's
//! websocket, and what the daemon costs in CPU and memory. Then it drives
//! the same load through a broker to a subscriber that only counts (and
//! acks) messages: the ceiling Vigil is compared with.
//!
//! The load, per patient: a home hub and an ECG patch (the kits of
//! [`crate::kit`], set up by [`crate::load`]).
//! - Hubs send observation messages (`spo2`, `pulse`) closed-loop: the
//!   hubs together keep `in_flight` messages waiting for Vigil's end-to-end
//!   ack (handed out round robin, at most 32 per hub), so the stored rate is
//!   the most the system acks at this many patients. A total, not a
//!   per-hub window: 3,000 hubs × 32 kept 96,000 messages in flight, acks
//!   took longer than the kits' 5 s resend timeout, and resends swamped
//!   both Vigil and the ceiling (congestion collapse, not a measurement).
//! - Patches send one ECG chunk a second (250 samples at 250 Hz), open-loop.
//! - Every `deteriorate_every`-th patient is a sentinel: its hub carries
//!   its share of the load like every other, and at a time spread over the
//!   run it is handed one full set that scores NEWS2 high (RR 26, SpO2 91,
//!   pulse 135), then, a tick later, a full set that scores 0. The time
//!   from handing the first to the kit (only while the hub's window has
//!   room, so it is published at once) to the `alert` event on the
//!   websocket is one alert-latency sample. The recovery keeps the load
//!   what it was: a patient left at a high score would update its live
//!   alert with every reading of the load (docs/alerts.md), work that a
//!   real ward's few readings an hour never make. The default
//!   ([`default_deteriorate_every`]) gives about 100 sentinels at ward
//!   scale: a 99th percentile of 30 samples would be their maximum.
//!
//! The counting subscriber cannot run on the embedded broker: it admits
//! only provisioned devices (each limited to its own topics) and the
//! ingest's per-process service account. The ceiling therefore runs on
//! Mosquitto (anonymous, 127.0.0.1 only); `--broker mosquitto` runs Vigil
//! on that Mosquitto too, for a same-broker ratio.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_kit::{Acvpu, Code, Observation};

use crate::daemon::{self, Daemon, ProcUsage};
use crate::ecg::{SYNTH_UV_PER_COUNT, Synthetic};
use crate::http::Api;
use crate::kit::{self, KitHandle, Uplink};
use crate::load::{self, Admitted};
use crate::physiology::{Baseline, Physiology, Rhythm};
use crate::rng::SimRng;
use crate::schedule::ECG_FS_HZ;

/// How many patients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// One virtual ward: 300 patients.
    Ward,
    /// A region: 3,000 patients.
    Region,
    /// A nation: 25,000 patients.
    National,
}

impl Scale {
    /// Patients at this scale.
    pub fn patients(self) -> u32 {
        match self {
            Scale::Ward => 300,
            Scale::Region => 3_000,
            Scale::National => 25_000,
        }
    }

    /// Parses `ward`, `region` or `national`.
    pub fn parse(s: &str) -> Result<Scale, String> {
        match s {
            "ward" => Ok(Scale::Ward),
            "region" => Ok(Scale::Region),
            "national" => Ok(Scale::National),
            _ => Err(format!(
                "--scale: expected ward, region or national, got {s:?}"
            )),
        }
    }
}

/// Which broker Vigil runs on in the stored phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Broker {
    /// The embedded broker (the default deployment).
    Embedded,
    /// Mosquitto, the same one the counting subscriber uses.
    Mosquitto,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The `vigil` binary.
    pub vigil: PathBuf,
    /// The scale (its patient count unless `patients` overrides it).
    pub scale: Scale,
    /// Patients, overriding the scale's count (tests).
    pub patients: Option<u32>,
    /// How long each phase drives the load.
    pub duration: Duration,
    /// Observation messages all hubs together keep waiting for an ack.
    pub in_flight: usize,
    /// Every Nth patient deteriorates (raises one NEWS2 alert).
    pub deteriorate_every: u32,
    /// ECG patches on (one chunk a second each).
    pub ecg: bool,
    /// Run the counting-subscriber phase too.
    pub passthrough: bool,
    /// Vigil's broker.
    pub broker: Broker,
    /// Give every simulated device a small queue ([`kit::SmallOutbox`])
    /// instead of a real kit's hour of ECG ([`kit::KitOutbox`]), so that
    /// tens of thousands of them fit in memory.
    pub small_queues: bool,
    /// Dashboards on the websocket stream; an alert's latency is its
    /// arrival at the last of them.
    pub dashboards: u32,
    /// How long to wait for outstanding acks after a phase.
    pub drain: Duration,
    /// Seed.
    pub seed: u64,
}

impl BenchConfig {
    /// The patient count of this run.
    pub fn patient_count(&self) -> u32 {
        self.patients.unwrap_or_else(|| self.scale.patients())
    }

    /// Checks the numbers; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.patient_count() == 0 {
            return Err("--patients: must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration: must be positive".into());
        }
        if self.in_flight == 0 {
            return Err("--in-flight: must be at least 1".into());
        }
        if self.deteriorate_every == 0 {
            return Err("--deteriorate-every: must be at least 1".into());
        }
        if self.dashboards == 0 {
            return Err("--dashboards: must be at least 1".into());
        }
        Ok(())
    }
}

/// The default `--deteriorate-every` for `patients`: about 100 sentinels,
/// so that the 99th percentile is not simply the slowest sample, but never
/// more than every third patient nor fewer than every tenth (a region's 300
/// sentinels already give a 99th percentile; more alerts would change the
/// load being measured).
pub fn default_deteriorate_every(patients: u32) -> u32 {
    (patients / 100).clamp(3, 10)
}

/// Parses a human duration (`30s`, `2m`, `500ms`; humantime syntax, as
/// Vigil's configuration writes them).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("--duration: expected e.g. 30s, 2m or 500ms, got {s:?}: {e}"))
}

/// Percentiles of the alert latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertLatency {
    /// Median, ms.
    pub p50: u64,
    /// 95th percentile, ms.
    pub p95: u64,
    /// 99th percentile, ms.
    pub p99: u64,
    /// Alerts measured.
    pub n: u64,
    /// Sentinels whose alert never arrived.
    pub missing: u64,
    /// Of those, the ones whose alert is not in the store either (never
    /// raised, as opposed to raised but not pushed to the websocket).
    #[serde(default)]
    pub missing_in_store: u64,
}

/// One phase's measurements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The broker the kits used.
    pub broker: String,
    /// Seconds measured (the load's window; the drain is not counted).
    pub seconds: f64,
    /// Observation messages counted (stored, or received by the counter) in the window.
    pub obs_msgs: u64,
    /// The same per second.
    pub obs_msgs_per_s: f64,
    /// ECG chunks counted in the window.
    pub ecg_chunks: u64,
    /// The same per second.
    pub ecg_chunks_per_s: f64,
    /// Distinct observation messages the hubs sent.
    pub obs_sent: u64,
    /// Distinct ECG chunks the patches sent.
    pub ecg_sent: u64,
    /// Extra transmissions (resends).
    pub resent: u64,
    /// Messages still unacknowledged after the drain.
    pub unacked: u64,
    /// First transmission to end-to-end ack, observation messages, ms.
    pub ack_latency_ms: load::Latency,
    /// CPU time of the simulator itself (this process) in the window, s:
    /// it shares the machine's cores with Vigil and the broker.
    pub sim_cpu_s: f64,
}

/// The report written to `--report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// `ward`, `region` or `national`.
    pub scale: String,
    /// Patients admitted.
    pub patients: u32,
    /// Durably stored observation messages per second.
    pub stored_msgs_per_s: f64,
    /// Observation messages per second through the broker to a counting subscriber.
    pub passthrough_msgs_per_s: f64,
    /// stored / passthrough (0 without a passthrough phase).
    pub ratio: f64,
    /// Publish of the triggering message to the websocket `alert` event.
    pub alert_latency_ms: AlertLatency,
    /// Durably stored ECG chunks per second.
    pub ecg_chunks_per_s: f64,
    /// Vigil's resident memory at the end of the load, MiB.
    pub rss_mb: f64,
    /// Vigil's peak resident memory, MiB.
    pub peak_rss_mb: f64,
    /// Resident memory per patient, KiB.
    pub rss_kib_per_patient: f64,
    /// Vigil's CPU time during the load window, seconds (of 2 cores shared with the simulator).
    pub cpu_s: f64,
    /// CPU per patient: core-milliseconds per patient per second of load.
    pub cpu_ms_per_patient_s: f64,
    /// Observation messages sent minus stored (`vigil admin stats` `obs_messages`) after the drain.
    pub lost: i64,
    /// ECG chunks sent minus stored, after the drain.
    pub ecg_lost: i64,
    /// Websocket `resync` messages (a dashboard fell behind the event hub),
    /// all dashboards together.
    pub ws_resyncs: u64,
    /// Dashboards watching the stream (`--dashboards`).
    pub dashboards: u32,
    /// The stored phase in detail.
    pub stored: Phase,
    /// The counting phase in detail (absent when skipped).
    pub passthrough: Option<Phase>,
    /// Seconds spent admitting patients and provisioning devices over HTTP.
    pub setup_s: f64,
    /// The machine: cores and the load average when the run started.
    pub machine: String,
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cores} cores; load average at start {}", load.join(" "))
}

/// A full observation set that scores NEWS2 7 or more (high).
fn deteriorated() -> Uplink {
    full_set(26.0, 91.0, 135.0)
}

/// A full observation set that scores NEWS2 0.
fn recovered() -> Uplink {
    full_set(16.0, 97.0, 72.0)
}

/// A complete NEWS2 set, measured now: these three rows as given, on air,
/// systolic 125, temperature 36.9, alert.
fn full_set(resp_rate: f64, spo2: f64, pulse: f64) -> Uplink {
    let obs: Vec<Observation> = [
        Observation::number(Code::RespRate, resp_rate),
        Observation::number(Code::Spo2, spo2),
        Observation::number(Code::O2Flow, 0.0),
        Observation::number(Code::Systolic, 125.0),
        Observation::number(Code::Pulse, pulse),
        Observation::number(Code::Temp, 36.9),
    ]
    .into_iter()
    .flatten()
    .chain([Observation::acvpu(Acvpu::A)])
    .collect();
    Uplink::Obs {
        ts_ms: chrono::Utc::now().timestamp_millis(),
        obs,
    }
}

/// Eight seconds of synthetic sinus ECG at 72/min, shared by every patch
/// (each starts at its own second): realistic work for Vigil's QRS
/// detector without rendering 25,000 signals.
fn ecg_loop() -> Arc<Vec<Vec<i16>>> {
    let mut s = Synthetic::new(7);
    let n = usize::from(ECG_FS_HZ);
    Arc::new(
        (0..8u64)
            .map(|i| s.chunk(i * n as u64, n, 72.0, Rhythm::Sinus))
            .collect(),
    )
}

/// Alert events seen by the dashboard's websocket: patient id → arrival.
#[derive(Default)]
struct WsSeen {
    alerts: Mutex<HashMap<i64, Instant>>,
    resyncs: AtomicU64,
}

/// Every dashboard watching the stream.
struct Dashboards(Vec<Arc<WsSeen>>);

impl Dashboards {
    /// Patient → when the last dashboard had their alert, for the
    /// patients every dashboard has heard of.
    fn alerted(&self) -> HashMap<i64, Instant> {
        let mut all: Option<HashMap<i64, Instant>> = None;
        for d in &self.0 {
            let Ok(seen) = d.alerts.lock() else {
                return HashMap::new();
            };
            all = Some(match all {
                None => seen.clone(),
                Some(so_far) => so_far
                    .into_iter()
                    .filter_map(|(p, at)| seen.get(&p).map(|&b| (p, at.max(b))))
                    .collect(),
            });
        }
        all.unwrap_or_default()
    }

    /// Resyncs, all dashboards together.
    fn resyncs(&self) -> u64 {
        self.0
            .iter()
            .map(|d| d.resyncs.load(Ordering::Relaxed))
            .sum()
    }
}

/// Signs in like the dashboard (`POST /api/v1/login`, session cookie) and
/// opens `/api/v1/stream`; records the first NEWS2 `alert` per patient.
async fn watch_alerts(
    http: &str,
    user: &str,
    password: &str,
    cancel: CancellationToken,
) -> anyhow::Result<Arc<WsSeen>> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let r = crate::tls::http_client(None)?
        .post(format!("{http}/api/v1/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .context("dashboard login")?;
    if !r.status().is_success() {
        bail!("dashboard login: HTTP {}", r.status());
    }
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("vigil_session="))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow!("dashboard login: no session cookie"))?
        .to_string();
    let mut req =
        format!("{}/api/v1/stream", http.replacen("http", "ws", 1)).into_client_request()?;
    req.headers_mut().insert("cookie", cookie.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .context("websocket")?;
    let seen = Arc::new(WsSeen::default());
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = ws.next() => m,
                _ = cancel.cancelled() => break,
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Ping(p))) => {
                    let _ = ws.send(Message::Pong(p)).await;
                    continue;
                }
                Some(Ok(_)) => continue,
                _ => break,
            };
            let at = Instant::now();
            // Nearly every event is an observation or a score: look at the
            // text before parsing, so this reader never falls behind the
            // stream (a backlog would sit in the socket buffers and show up
            // as alert latency).
            if !(text.contains("\"alert\"") || text.contains("\"resync\"")) {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            match v["type"].as_str() {
                Some("alert") if v["alert"]["rule_id"] == "news2" => {
                    if let (Some(p), Ok(mut m)) =
                        (v["alert"]["patient_id"].as_i64(), out.alerts.lock())
                    {
                        m.entry(p).or_insert(at);
                    }
                }
                Some("resync") => {
                    out.resyncs.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    Ok(seen)
}

/// Counts (and acks, so the kits' closed loop runs) every `obs` and `ecg`
/// message on the broker, batching acks per device as Vigil does, without
/// storing anything.
struct Counter {
    obs: Arc<AtomicU64>,
    ecg: Arc<AtomicU64>,
}

async fn start_counter(port: u16, cancel: CancellationToken) -> anyhow::Result<Counter> {
    let mut opts = MqttOptions::new("devsim-bench-counter", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    // Unbounded: the event loop must never wait for the acker, which
    // itself waits for the event loop to take its publishes (a bounded
    // channel deadlocked the two under a region's load and the broker
    // dropped the counter for a missed ping).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, u32)>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let obs = Arc::new(AtomicU64::new(0));
    let ecg = Arc::new(AtomicU64::new(0));
    let (o, e, sub, c1) = (obs.clone(), ecg.clone(), client.clone(), cancel.clone());
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut subacks = 0;
        loop {
            let ev = tokio::select! {
                ev = eventloop.poll() => ev,
                _ = c1.cancelled() => break,
            };
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for leaf in ["obs", "ecg"] {
                        let _ = sub
                            .subscribe(format!("vigil/v1/dev/+/{leaf}"), QoS::AtLeastOnce)
                            .await;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subacks += 1;
                    if subacks == 2
                        && let Some(r) = ready.take()
                    {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let mut parts = p.topic.rsplitn(2, '/');
                    let (leaf, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let device = rest.rsplit('/').next().unwrap_or("").to_string();
                    let seq = match leaf {
                        "obs" => {
                            o.fetch_add(1, Ordering::Relaxed);
                            serde_json::from_slice::<Value>(&p.payload)
                                .ok()
                                .and_then(|v| v["seq"].as_u64())
                                .and_then(|s| u32::try_from(s).ok())
                        }
                        "ecg" => {
                            e.fetch_add(1, Ordering::Relaxed);
                            p.payload
                                .get(5..9)
                                .and_then(|b| b.try_into().ok())
                                .map(u32::from_le_bytes)
                        }
                        _ => None,
                    };
                    if let Some(seq) = seq
                        && tx.send((device, seq)).is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "counting subscriber: connection lost");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut batch: HashMap<String, Vec<u32>> = HashMap::new();
        while let Some((d, s)) = rx.recv().await {
            batch.entry(d).or_default().push(s);
            let deadline = Instant::now() + Duration::from_millis(5);
            let mut n = 1;
            while n < 512 {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((d, s))) => {
                        batch.entry(d).or_default().push(s);
                        n += 1;
                    }
                    _ => break,
                }
            }
            for (d, seqs) in batch.drain() {
                let ack = json!({"type": "ack", "seqs": seqs}).to_string();
                if client
                    .publish(
                        format!("vigil/v1/dev/{d}/cmd"),
                        // At QoS 0, as Vigil acks (docs/mqtt.md).
                        QoS::AtMostOnce,
                        false,
                        ack,
                    )
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .map_err(|_| anyhow!("counting subscriber: no SUBACK within 10 s"))?
        .map_err(|_| anyhow!("counting subscriber stopped"))?;
    Ok(Counter { obs, ecg })
}

/// Where a phase reads its counts from.
enum Source<'a> {
    /// `vigil admin stats` of this daemon.
    Vigil(&'a Daemon),
    /// The counting subscriber.
    Counter(&'a Counter),
}

impl Source<'_> {
    fn counts(&self) -> anyhow::Result<(u64, u64)> {
        match self {
            Source::Vigil(d) => {
                let s = d.stats()?;
                let n = |k: &str| {
                    s[k].as_u64()
                        .ok_or_else(|| anyhow!("vigil admin stats: no {k} in {s}"))
                };
                Ok((n("obs_messages")?, n("ecg_chunks")?))
            }
            Source::Counter(c) => {
                Ok((c.obs.load(Ordering::Relaxed), c.ecg.load(Ordering::Relaxed)))
            }
        }
    }
}

/// What the driver tells the caller about a phase.
struct Driven {
    phase: Phase,
    /// Sentinel patient id → when its deteriorated reading was handed to the kit.
    sent_at: HashMap<i64, Instant>,
    /// Vigil's CPU and memory at the start and end of the load window.
    usage: Option<(ProcUsage, ProcUsage)>,
}

/// Starts one simulated device with the queue `cfg` asks for.
fn spawn_kit(cfg: &BenchConfig, kc: kit::KitConfig, cancel: &CancellationToken) -> KitHandle {
    if cfg.small_queues {
        kit::spawn_sized::<{ kit::SMALL_SLOTS }, { kit::SMALL_BYTES }>(kc, cancel.clone()).0
    } else {
        kit::spawn(kc, cancel.clone()).0
    }
}

/// Drives the load of `cfg` with the `admitted` patients' kits against the
/// broker on 127.0.0.1:`port` for `cfg.duration`, then drains.
async fn drive(
    cfg: &BenchConfig,
    admitted: &[Admitted],
    port: u16,
    broker: &str,
    source: Source<'_>,
    pid: Option<u32>,
) -> anyhow::Result<Driven> {
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let resend_after = Duration::from_secs(5);
    let mut rng = SimRng::seeded(cfg.seed ^ 0x5eed);
    let mut hubs: Vec<(usize, KitHandle, Physiology)> = Vec::new();
    // Sentinels: (patient id, index into `hubs`), in the order they deteriorate.
    let mut sentinels: Vec<(i64, usize)> = Vec::new();
    let mut patches: Vec<KitHandle> = Vec::new();
    for (i, a) in admitted.iter().enumerate() {
        let hub = spawn_kit(
            cfg,
            load::kit_config("127.0.0.1", port, &a.devices[0], resend_after, HUB_WINDOW),
            &cancel,
        );
        if i as u32 % cfg.deteriorate_every == cfg.deteriorate_every - 1 {
            sentinels.push((a.patient_id, hubs.len()));
        }
        let p = Physiology::new(Baseline::draw("general", &mut rng), rng.next_u64());
        hubs.push((i, hub, p));
        if let Some(c) = a.devices.get(1) {
            patches.push(spawn_kit(
                cfg,
                load::kit_config("127.0.0.1", port, c, resend_after, 32),
                &cancel,
            ));
        }
    }
    // Every device connected before the clock starts: a connect storm is
    // not the steady state being measured.
    let all: Vec<KitHandle> = hubs
        .iter()
        .map(|h| h.1.clone())
        .chain(patches.iter().cloned())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up = all.iter().filter(|h| h.outbox_stats().1).count();
        if up == all.len() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "only {up} of {} devices connected to the broker within 120 s",
                all.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ecg = ecg_loop();
    let (c0, u0) = (source.counts()?, pid.and_then(daemon::proc_usage));
    let me0 = daemon::proc_usage(std::process::id()).unwrap_or_default();
    let start = Instant::now();
    let end = start + cfg.duration;
    let n_patches = patches.len().max(1) as f64;
    // Patch i sends its k-th chunk at start + k s + i/n s: spread evenly.
    let mut next_chunk: Vec<u64> = vec![0; patches.len()];
    let mut handed: Vec<u64> = vec![0; hubs.len()];
    let mut next_hub = 0usize;
    let mut sent_at = HashMap::new();
    let mut next_sentinel = 0usize;
    // Deteriorated sentinels' hubs and when each is due its recovery: until
    // then a hub is handed nothing, so that no later reading shares the
    // deterioration's millisecond (at one measurement time the newer row
    // would stand for it).
    let mut recovering: Vec<(usize, Instant)> = Vec::new();
    let t0_ms = chrono::Utc::now().timestamp_millis();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < end {
        tick.tick().await;
        let el = start.elapsed().as_secs_f64();
        let mut outstanding: Vec<u64> = hubs
            .iter()
            .enumerate()
            .map(|(k, (_, h, _))| {
                let (s, _) = h.outbox_stats();
                handed[k].saturating_sub(s.acked + s.rejected + s.dropped + s.refused)
            })
            .collect();
        // Sentinels deteriorate between 20 % and 80 % of the run, each
        // when its hub's window has room (else at the next tick), so that
        // the message is published at once.
        while next_sentinel < sentinels.len()
            && el
                >= cfg.duration.as_secs_f64()
                    * (0.2 + 0.6 * next_sentinel as f64 / sentinels.len() as f64)
        {
            let (pid, k) = sentinels[next_sentinel];
            if outstanding[k] >= HUB_WINDOW as u64 || !hubs[k].1.try_send(deteriorated()) {
                break;
            }
            let now = Instant::now();
            sent_at.insert(pid, now);
            handed[k] += 1;
            outstanding[k] += 1;
            recovering.push((k, now + Duration::from_millis(5)));
            next_sentinel += 1;
        }
        let now = Instant::now();
        recovering.retain(|&(k, due)| {
            let sent =
                due <= now && outstanding[k] < HUB_WINDOW as u64 && hubs[k].1.try_send(recovered());
            if sent {
                handed[k] += 1;
                outstanding[k] += 1;
            }
            !sent
        });
        // Top the hubs up to `in_flight` outstanding messages in total,
        // round robin from where the last tick stopped.
        let mut total: u64 = outstanding.iter().sum();
        let mut skipped = 0;
        while total < cfg.in_flight as u64 && skipped < hubs.len() {
            let k = next_hub % hubs.len().max(1);
            next_hub = next_hub.wrapping_add(1);
            let (_, h, p) = &mut hubs[k];
            if !recovering.iter().any(|r| r.0 == k)
                && outstanding[k] < HUB_WINDOW as u64
                && h.try_send(load::stable_obs(p))
            {
                handed[k] += 1;
                outstanding[k] += 1;
                total += 1;
                skipped = 0;
            } else {
                skipped += 1;
            }
        }
        if cfg.ecg {
            for (i, h) in patches.iter().enumerate() {
                let due = el - i as f64 / n_patches;
                while due >= 0.0 && (next_chunk[i] as f64) <= due {
                    let k = next_chunk[i];
                    let samples = ecg[((k + i as u64) % ecg.len() as u64) as usize].clone();
                    // The second that ends now, as a patch sends a chunk
                    // once it is recorded: a chunk sent at its start would
                    // carry beats and a heart rate up to a second in the
                    // future (docs/benchmarks.md, "Sentinels that carry the
                    // load").
                    let t0 =
                        t0_ms - 1000 + (k as i64) * 1000 + (i as f64 / n_patches * 1000.0) as i64;
                    // A full channel means the patch's queue is full: the
                    // chunk is not offered (counted as not sent).
                    let _ = h.try_send(Uplink::Ecg {
                        t0_ms: t0,
                        fs_hz: ECG_FS_HZ,
                        uv_per_count: SYNTH_UV_PER_COUNT,
                        samples,
                    });
                    next_chunk[i] += 1;
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (c1, u1) = (source.counts()?, pid.and_then(daemon::proc_usage));
    let me1 = daemon::proc_usage(std::process::id()).unwrap_or_default();
    // Drain: wait for the acks of what is in flight.
    let drain_until = Instant::now() + cfg.drain;
    loop {
        let open: usize = all.iter().map(|h| h.outbox_stats().0.queued).sum();
        if open == 0 || Instant::now() >= drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hub_handles: Vec<KitHandle> = hubs.iter().map(|h| h.1.clone()).collect();
    let obs = load::report(&hub_handles);
    let ecg_r = load::report(&patches);
    let phase = Phase {
        broker: broker.to_string(),
        seconds,
        obs_msgs: c1.0.saturating_sub(c0.0),
        obs_msgs_per_s: c1.0.saturating_sub(c0.0) as f64 / seconds,
        ecg_chunks: c1.1.saturating_sub(c0.1),
        ecg_chunks_per_s: c1.1.saturating_sub(c0.1) as f64 / seconds,
        obs_sent: obs.sent,
        ecg_sent: ecg_r.sent,
        resent: obs.resent + ecg_r.resent,
        unacked: obs.unacked + ecg_r.unacked,
        ack_latency_ms: obs.ack_latency_ms,
        sim_cpu_s: me1.cpu_s - me0.cpu_s,
    };
    cancel.cancel();
    Ok(Driven {
        phase,
        sent_at,
        usage: u0.zip(u1),
    })
}

/// Refuses a run this machine cannot hold, before it starts anything:
/// every simulated device keeps its whole queue in memory
/// ([`kit::KitOutbox`], about 1 MiB, or [`kit::SmallOutbox`] with
/// `small_queues`) and one socket, and so does Vigil's side of each
/// connection (one file descriptor). Running out of either mid-run would
/// measure the simulator's failure, or on a shared machine invite the
/// kernel's OOM killer, instead of Vigil.
pub fn preflight(devices: u64, small_queues: bool) -> Result<(), String> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let avail_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    let open_files = daemon::open_files_limit("self");
    fits(devices, small_queues, avail_kib, open_files)
}

/// [`preflight`] on given figures: memory available (KiB) and the
/// open-files limit, each unknown if `None`.
fn fits(
    devices: u64,
    small_queues: bool,
    avail_kib: Option<u64>,
    open_files: Option<u64>,
) -> Result<(), String> {
    let per_device = if small_queues {
        std::mem::size_of::<kit::SmallOutbox>()
    } else {
        std::mem::size_of::<kit::KitOutbox>()
    } as u64;
    let need_kib = devices * per_device / 1024;
    if let Some(avail) = avail_kib
        && need_kib > avail * 3 / 4
    {
        return Err(format!(
            "{devices} simulated devices need {} MiB of kit queues ({} KiB each), more than 3/4 of the {} MiB available{}",
            need_kib / 1024,
            per_device / 1024,
            avail / 1024,
            if small_queues {
                ""
            } else {
                " (--small-queues gives each a smaller one)"
            }
        ));
    }
    if let Some(max) = open_files
        && devices + 256 > max
    {
        return Err(format!(
            "{devices} simulated devices need {devices} sockets here and in vigil, over the open-files limit of {max} (ulimit -n)"
        ));
    }
    Ok(())
}

const WARD: &str = "Bench ward";
/// Observation messages one hub may have waiting for an ack (as `devsim load`).
const HUB_WINDOW: usize = 32;
const NURSE: &str = "benchnurse";

/// Runs the benchmark and returns its report.
pub async fn run(cfg: BenchConfig) -> anyhow::Result<BenchReport> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let machine = machine();
    let patients = cfg.patient_count();
    let devices = u64::from(patients) * if cfg.ecg { 2 } else { 1 };
    preflight(devices, cfg.small_queues)
        .map_err(|e| anyhow!("{} scale: {e}", format!("{:?}", cfg.scale).to_lowercase()))?;
    let password = format!(
        "bench-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    // Mosquitto: for the ceiling, and for Vigil with `--broker mosquitto`.
    let mdir = tempfile::tempdir().context("temp dir")?;
    let mosquitto_port = daemon::free_port()?;
    let need_mosquitto = cfg.passthrough || cfg.broker == Broker::Mosquitto;
    let mut mosquitto = None;
    if need_mosquitto {
        let bin = daemon::mosquitto_binary()
            .ok_or_else(|| anyhow!("mosquitto is not installed (Debian: apt-get install mosquitto); it runs the passthrough ceiling (or pass --no-passthrough)"))?;
        // Enough queue that a QoS 1 subscriber that falls behind is not
        // silently dropped at the default 1,000 messages.
        mosquitto = Some(daemon::start_mosquitto(
            &bin,
            mdir.path(),
            mosquitto_port,
            "allow_anonymous true\nmax_queued_messages 1000000\nmax_connections -1\n",
        )?);
    }
    let external = (cfg.broker == Broker::Mosquitto).then_some(mosquitto_port);
    let mut d = Daemon::new(&cfg.vigil, external, None)?;
    let token = d.setup(WARD, "benchadmin", &password)?;
    d.add_user(NURSE, "nurse", WARD, &password)?;
    d.start().await?;
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let mut dashboards = Vec::new();
    for _ in 0..cfg.dashboards {
        dashboards.push(watch_alerts(&d.http(), NURSE, &password, cancel.clone()).await?);
    }
    let ws = Dashboards(dashboards);

    let setup = Instant::now();
    let api = Api::new(&d.http(), &token)?;
    let mut rng = SimRng::seeded(cfg.seed);
    let kinds: &[&str] = if cfg.ecg {
        &["hub", "ecg-patch"]
    } else {
        &["hub"]
    };
    let admitted = load::admit(&api, WARD, "Bench patient", patients, kinds, 8, &mut rng).await?;
    let setup_s = setup.elapsed().as_secs_f64();
    eprintln!(
        "devsim bench: {patients} patients admitted in {setup_s:.1} s; driving for {:.0} s",
        cfg.duration.as_secs_f64()
    );

    let broker_name = match cfg.broker {
        Broker::Embedded => "embedded",
        Broker::Mosquitto => "mosquitto",
    };
    let stored = drive(
        &cfg,
        &admitted,
        d.mqtt_port,
        broker_name,
        Source::Vigil(&d),
        d.pid(),
    )
    .await?;
    let end = d.stats()?;
    let n = |k: &str| end[k].as_i64().unwrap_or(0);
    let lost = stored.phase.obs_sent as i64 - n("obs_messages");
    let ecg_lost = stored.phase.ecg_sent as i64 - n("ecg_chunks");
    // Alerts: give the last ones a moment to arrive.
    let wait_alerts = Instant::now() + Duration::from_secs(10);
    loop {
        let got = ws.alerted().len();
        if got >= stored.sent_at.len() || Instant::now() >= wait_alerts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = ws.alerted();
    let mut lat: Vec<u32> = Vec::new();
    let mut missing = 0;
    for (p, sent) in &stored.sent_at {
        match seen.get(p) {
            Some(at) => lat.push(
                at.saturating_duration_since(*sent)
                    .as_millis()
                    .min(u128::from(u32::MAX)) as u32,
            ),
            None => missing += 1,
        }
    }
    lat.sort_unstable();
    let missing_in_store = if missing > 0 {
        let stored_alerts = api
            .alerted_patients("news2")
            .await
            .context("reading the alerts back")?;
        stored
            .sent_at
            .keys()
            .filter(|p| !seen.contains_key(p) && !stored_alerts.contains(p))
            .count() as u64
    } else {
        0
    };
    let alert_latency_ms = AlertLatency {
        p50: load::percentile(&lat, 0.50),
        p95: load::percentile(&lat, 0.95),
        p99: load::percentile(&lat, 0.99),
        n: lat.len() as u64,
        missing,
        missing_in_store,
    };
    let (u0, u1) = stored.usage.unwrap_or_default();
    let cpu_s = u1.cpu_s - u0.cpu_s;
    let secs = stored.phase.seconds.max(f64::EPSILON);
    // Vigil must not ingest the counting phase's messages.
    d.kill();
    cancel.cancel();

    let passthrough = if cfg.passthrough {
        let stop_counter = CancellationToken::new();
        let _stop_counter = stop_counter.clone().drop_guard();
        let counter = start_counter(mosquitto_port, stop_counter).await?;
        let p = drive(
            &cfg,
            &admitted,
            mosquitto_port,
            "mosquitto",
            Source::Counter(&counter),
            None,
        )
        .await?;
        Some(p.phase)
    } else {
        None
    };
    drop(mosquitto);
    let pass = passthrough
        .as_ref()
        .map(|p| p.obs_msgs_per_s)
        .unwrap_or(0.0);
    Ok(BenchReport {
        scale: format!("{:?}", cfg.scale).to_lowercase(),
        patients,
        stored_msgs_per_s: stored.phase.obs_msgs_per_s,
        passthrough_msgs_per_s: pass,
        ratio: if pass > 0.0 {
            stored.phase.obs_msgs_per_s / pass
        } else {
            0.0
        },
        alert_latency_ms,
        ecg_chunks_per_s: stored.phase.ecg_chunks_per_s,
        rss_mb: u1.rss_kib as f64 / 1024.0,
        peak_rss_mb: u1.peak_rss_kib as f64 / 1024.0,
        rss_kib_per_patient: u1.rss_kib as f64 / f64::from(patients),
        cpu_s,
        cpu_ms_per_patient_s: cpu_s * 1000.0 / secs / f64::from(patients),
        lost,
        ecg_lost,
        ws_resyncs: ws.resyncs(),
        dashboards: cfg.dashboards,
        stored: stored.phase,
        passthrough,
        setup_s,
        machine,
    })
}

/// The one-line summary printed after a run.
pub fn summary(r: &BenchReport) -> String {
    format!(
        "{} ({} patients): stored {:.0} obs msg/s, passthrough {:.0}/s (ratio {:.2}), ECG {:.0} chunks/s, alert p50/p95/p99 {}/{}/{} ms (n={}), vigil {:.0} MiB RSS, {:.2} CPU-s, lost {}",
        r.scale,
        r.patients,
        r.stored_msgs_per_s,
        r.passthrough_msgs_per_s,
        r.ratio,
        r.ecg_chunks_per_s,
        r.alert_latency_ms.p50,
        r.alert_latency_ms.p95,
        r.alert_latency_ms.p99,
        r.alert_latency_ms.n,
        r.rss_mb,
        r.cpu_s,
        r.lost
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_refuses_what_the_machine_cannot_hold_and_names_the_way_out() {
        // This machine's figures: 22.5 GiB available, 20,000 open files.
        let (mem, fds) = (Some(22_553 * 1024), Some(20_000));
        let national = 50_000;
        let e = fits(national, false, mem, fds).expect_err("1 MiB queues");
        assert!(e.contains("--small-queues"), "{e}");
        let e = fits(national, true, mem, fds).expect_err("too many sockets");
        assert!(e.contains("open-files limit of 20000"), "{e}");
        // The most patients with a patch each that fit under 20,000 files.
        assert_eq!(fits(2 * 9_872, true, mem, fds), Ok(()));
        assert!(fits(2 * 9_873, true, mem, fds).is_err());
        assert!(
            fits(2 * 9_872, false, mem, fds).is_err(),
            "19 GiB of queues"
        );
        assert_eq!(fits(national, true, None, None), Ok(()), "unknown: allowed");
    }

    #[test]
    fn durations_and_scales_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("3x").is_err());
        assert_eq!(Scale::parse("region").map(Scale::patients), Ok(3_000));
        assert!(Scale::parse("planet").is_err());
    }

    #[test]
    fn the_default_sentinels_give_a_percentile_and_keep_the_load() {
        let sentinels = |n: u32| n / default_deteriorate_every(n);
        assert_eq!(
            sentinels(300),
            100,
            "ward: the 99th percentile is not the maximum"
        );
        assert_eq!(sentinels(3_000), 300, "region as before");
        assert_eq!(sentinels(25_000), 2_500);
        assert_eq!(
            default_deteriorate_every(10),
            3,
            "never more than every third"
        );
    }

    /// NEWS2 of an observation set, by the clinical crate's own scoring.
    fn news2(u: Uplink) -> serde_json::Value {
        let Uplink::Obs { obs, .. } = u else {
            panic!("an observation message");
        };
        let mut line = serde_json::Map::new();
        for o in obs {
            let v = match (o.code(), o.value()) {
                (Code::O2Flow, vigil_kit::Value::Number(f)) => json!(f > 0.0),
                (_, vigil_kit::Value::Number(n)) => json!(n),
                (_, vigil_kit::Value::Acvpu(a)) => json!(a.as_str()),
                (c, v) => panic!("{c:?} {v:?} is not scored"),
            };
            let key = if o.code() == Code::O2Flow {
                "o2"
            } else {
                o.code().as_str()
            };
            line.insert(key.into(), v);
        }
        let out = vigil_clinical::score_line::score_line(&Value::Object(line).to_string());
        serde_json::from_str(&out).expect("a score line")
    }

    #[test]
    fn a_sentinel_deteriorates_to_a_high_score_and_recovers_to_zero() {
        let high = news2(deteriorated());
        assert_eq!(
            (high["risk"].as_str(), high["partial"].as_bool()),
            (Some("high"), Some(false)),
            "{high}"
        );
        let zero = news2(recovered());
        assert_eq!(
            (zero["total"].as_u64(), zero["partial"].as_bool()),
            (Some(0), Some(false)),
            "{zero}"
        );
    }

    #[test]
    fn report_serialises_with_the_documented_fields() {
        let v = serde_json::to_value(BenchReport::default()).expect("json");
        for k in [
            "scale",
            "patients",
            "stored_msgs_per_s",
            "passthrough_msgs_per_s",
            "ratio",
            "ecg_chunks_per_s",
            "rss_mb",
            "lost",
        ] {
            assert!(!v[k].is_null(), "{k}");
        }
        for k in ["p50", "p95", "p99"] {
            assert!(v["alert_latency_ms"][k].is_u64(), "{k}");
        }
    }
}
