//! One simulated device on the network: an MQTT client with provisioned
//! credentials driving a `vigil-kit` sequence counter and outbox, exactly
//! as the kit documentation (docs/kit.md) wires a real hub:
//!
//! - every uplink takes the next seq and goes into the outbox, which keeps
//!   it until Vigil's `ack` or `reject` arrives on `cmd`;
//! - due messages are published at QoS 1, oldest first; unacknowledged
//!   ones are resent unchanged after the resend timeout and on every
//!   reconnect (each CONNACK);
//! - the retained `status` is published at each connect and on change, with
//!   `{"online":false}` as the last will;
//! - going offline drops the connection (the broker publishes the will);
//!   readings keep queueing and are backfilled on reconnect.
//!
//! The network side runs in its own task ([`spawn`]); the simulation talks
//! to it through a [`KitHandle`]. The outbox's clock is the task's own
//! monotonic clock (real time), whatever the simulation's clock is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_kit::cmd::{self, Command};
use vigil_kit::outbox::{self, Outbox};
use vigil_kit::seq::{MemorySeqStore, SeqCounter};
use vigil_kit::status::{Signal, Status};
use vigil_kit::{EcgChunk, ObsMessage, Observation};

/// Queue slots per device.
pub const SLOTS: usize = 4096;
/// Queue bytes per device (an hour of ECG at 250 Hz is 1.9 MB; older ECG
/// is evicted first when a long outage fills it, observations never).
pub const BYTES: usize = 1 << 20;

/// The outbox type every simulated device uses unless told otherwise.
pub type KitOutbox = Outbox<SLOTS, BYTES>;

/// Queue slots of a benchmark device with a small queue (`devsim bench
/// --small-queues`).
pub const SMALL_SLOTS: usize = 256;
/// Queue bytes of a benchmark device with a small queue: about four minutes
/// of ECG chunks (about 520 bytes a second), more than a benchmark's phase
/// and drain send. The real
/// kit's hour of ECG (above), allocated for every one of tens of thousands
/// of simulated devices, would not fit in the machine that runs them.
pub const SMALL_BYTES: usize = 128 << 10;

/// The outbox of a benchmark device with a small queue.
pub type SmallOutbox = Outbox<SMALL_SLOTS, SMALL_BYTES>;

/// Firmware version the simulated kits report.
pub const FW: &str = concat!(env!("CARGO_PKG_VERSION"), "");

/// Where and as whom a device connects.
#[derive(Debug, Clone)]
pub struct KitConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Device id (also the MQTT client id and username).
    pub device_id: String,
    /// MQTT username.
    pub username: String,
    /// MQTT password.
    pub password: String,
    /// Outbox behaviour (resend timeout, in-flight window, overflow).
    pub outbox: outbox::Config,
    /// Stop taking new uplinks while the queue is nearly full (load
    /// generation), instead of applying the overflow policy.
    pub backpressure: bool,
    /// Pause between reconnect attempts.
    pub reconnect_after: Duration,
    /// MQTT over TLS with this set-up ([`crate::tls::client_config`]);
    /// plain MQTT when `None`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl KitConfig {
    /// A device with the default outbox settings of a real kit.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        device_id: impl Into<String>,
        password: impl Into<String>,
    ) -> KitConfig {
        let device_id = device_id.into();
        KitConfig {
            host: host.into(),
            port,
            username: device_id.clone(),
            device_id,
            password: password.into(),
            outbox: outbox::Config::default(),
            backpressure: false,
            reconnect_after: Duration::from_millis(500),
            tls: None,
        }
    }
}

/// What the simulation hands a device.
#[derive(Debug, Clone)]
pub enum Uplink {
    /// An observation message measured at `ts_ms` (Unix ms).
    Obs {
        /// Measurement time.
        ts_ms: i64,
        /// Observations.
        obs: Vec<Observation>,
    },
    /// An ECG chunk whose first sample was measured at `t0_ms`.
    Ecg {
        /// First sample's time.
        t0_ms: i64,
        /// Sample rate.
        fs_hz: u16,
        /// Scale.
        uv_per_count: f32,
        /// Samples.
        samples: Vec<i16>,
    },
    /// New battery / signal state (published retained, not queued).
    Status {
        /// Battery, %.
        battery_pct: u8,
        /// Signal quality.
        signal: Signal,
    },
    /// Network down (`false`) or back (`true`).
    Online(bool),
}

/// Counters and measurements of one device.
#[derive(Debug, Clone, Default)]
pub struct KitStats {
    /// The outbox's counters (sent = first transmissions, resent = extra ones).
    pub outbox: outbox::Stats,
    /// Uplinks not queued: the seq counter or the encoder refused them.
    pub failed: u64,
    /// Milliseconds from first transmission to ack, one per acked message.
    pub ack_latency_ms: Vec<u32>,
    /// CONNACKs received.
    pub connects: u64,
    /// Connected now.
    pub connected: bool,
    /// Patient-facing `advice` / `repeat` messages received.
    pub advice: u64,
    /// Uplinks accepted from the simulation.
    pub accepted: u64,
}

/// The simulation's end of a running device.
#[derive(Debug, Clone)]
pub struct KitHandle {
    /// The device id.
    pub device_id: String,
    tx: mpsc::Sender<Uplink>,
    stats: Arc<Mutex<KitStats>>,
}

impl KitHandle {
    /// Queues an uplink for the device (waits while its queue is full when
    /// the device applies backpressure). `false` once the device stopped.
    pub async fn send(&self, u: Uplink) -> bool {
        self.tx.send(u).await.is_ok()
    }

    /// Like [`KitHandle::send`] without waiting; `false` if not taken.
    pub fn try_send(&self, u: Uplink) -> bool {
        self.tx.try_send(u).is_ok()
    }

    /// The outbox's counters and whether the device is connected, without
    /// copying the latency list (cheap enough to poll often).
    pub fn outbox_stats(&self) -> (outbox::Stats, bool) {
        self.stats
            .lock()
            .map(|s| (s.outbox, s.connected))
            .unwrap_or_default()
    }

    /// A copy of the device's counters.
    pub fn stats(&self) -> KitStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Builds a boxed outbox on a thread with a large stack: the queue is
/// about a megabyte, more than a tokio worker's stack holds while `new`
/// builds it by value.
pub fn boxed_outbox<const S: usize, const B: usize>(config: outbox::Config) -> Box<Outbox<S, B>> {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || Box::new(Outbox::<S, B>::new(config)))
        .ok()
        .and_then(|h| h.join().ok())
        .unwrap_or_else(|| panic!("cannot allocate a device queue"))
}

/// Starts a device with a real kit's queue ([`KitOutbox`]); it runs until
/// `cancel` or until every handle is dropped and its queue is empty.
pub fn spawn(config: KitConfig, cancel: CancellationToken) -> (KitHandle, JoinHandle<()>) {
    spawn_sized::<SLOTS, BYTES>(config, cancel)
}

/// Like [`spawn`], with a queue of `S` slots and `B` bytes.
pub fn spawn_sized<const S: usize, const B: usize>(
    config: KitConfig,
    cancel: CancellationToken,
) -> (KitHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let stats = Arc::new(Mutex::new(KitStats::default()));
    let handle = KitHandle {
        device_id: config.device_id.clone(),
        tx,
        stats: stats.clone(),
    };
    let outbox = boxed_outbox::<S, B>(config.outbox);
    let task = tokio::spawn(run(config, outbox, rx, stats, cancel));
    (handle, task)
}

enum Net {
    Connected(u64),
    Disconnected(u64),
    Cmd(Vec<u8>),
}

struct Conn {
    generation: u64,
    client: AsyncClient,
    task: JoinHandle<()>,
    connected: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn connect(cfg: &KitConfig, generation: u64, net_tx: mpsc::UnboundedSender<Net>) -> Conn {
    let mut opts = MqttOptions::new(cfg.device_id.clone(), cfg.host.clone(), cfg.port);
    opts.set_credentials(cfg.username.clone(), cfg.password.clone());
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(true);
    let mut will = [0u8; 32];
    let n = Status::offline().encode(&mut will).unwrap_or(0);
    opts.set_last_will(LastWill::new(
        status_topic(&cfg.device_id),
        will[..n].to_vec(),
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(tls) = &cfg.tls {
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let cmd_topic = cmd_topic(&cfg.device_id);
    let pause = cfg.reconnect_after;
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if net_tx.send(Net::Connected(generation)).is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                    if net_tx.send(Net::Cmd(p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if !matches!(
                        e,
                        ConnectionError::ConnectionRefused(_) | ConnectionError::Io(_)
                    ) {
                        tracing::debug!(error = %e, "device connection lost");
                    }
                    if net_tx.send(Net::Disconnected(generation)).is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    });
    Conn {
        generation,
        client,
        task,
        connected: false,
    }
}

fn topic(device: &str, leaf: &str) -> String {
    format!("vigil/v1/dev/{device}/{leaf}")
}
fn status_topic(device: &str) -> String {
    topic(device, "status")
}
fn cmd_topic(device: &str) -> String {
    topic(device, "cmd")
}

struct Device<const S: usize, const B: usize> {
    cfg: KitConfig,
    seqs: SeqCounter<MemorySeqStore>,
    outbox: Box<Outbox<S, B>>,
    first_sent: HashMap<u32, Instant>,
    epoch: Instant,
    status: Option<(u8, Signal)>,
    stats: Arc<Mutex<KitStats>>,
    failed: u64,
    accepted: u64,
}

impl<const S: usize, const B: usize> Device<S, B> {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enqueue(&mut self, u: Uplink) {
        self.accepted += 1;
        let seq = match self.seqs.next_seq() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(device = %self.cfg.device_id, error = %e, "no seq");
                self.failed += 1;
                return;
            }
        };
        let r = match &u {
            Uplink::Obs { ts_ms, obs } => self.outbox.push_obs(&ObsMessage {
                seq,
                ts_ms: *ts_ms,
                obs,
            }),
            Uplink::Ecg {
                t0_ms,
                fs_hz,
                uv_per_count,
                samples,
            } => self.outbox.push_ecg(&EcgChunk {
                seq,
                t0_ms: *t0_ms,
                sample_rate_hz: *fs_hz,
                uv_per_count: *uv_per_count,
                samples,
            }),
            _ => Ok(()),
        };
        if let Err(e) = r {
            // Counted by the outbox when it is `Full`; other refusals here.
            if !matches!(e, vigil_kit::outbox::EnqueueError::Full) {
                self.failed += 1;
            }
            tracing::debug!(device = %self.cfg.device_id, error = %e, "uplink not queued");
        }
    }

    fn flush(&mut self, conn: &Conn) {
        if !conn.connected {
            return;
        }
        let now = self.now_ms();
        let device = self.cfg.device_id.clone();
        while let Some(m) = self.outbox.poll(now) {
            let t = topic(&device, m.kind.topic_suffix());
            let (seq, first) = (m.seq, m.attempt == 1);
            // A full client queue counts as a lost transmission: the
            // outbox resends it after its timeout.
            if conn
                .client
                .try_publish(t, QoS::AtLeastOnce, false, m.payload.to_vec())
                .is_err()
            {
                break;
            }
            if first {
                self.first_sent.insert(seq, Instant::now());
            }
        }
    }

    fn publish_status(&self, conn: &Conn) {
        let Some((battery, signal)) = self.status else {
            return;
        };
        if !conn.connected {
            return;
        }
        let st = Status {
            online: true,
            battery_pct: Some(battery),
            signal: Some(signal),
            fw: Some(FW),
        };
        let mut buf = [0u8; 128];
        if let Ok(n) = st.encode(&mut buf) {
            let _ = conn.client.try_publish(
                status_topic(&self.cfg.device_id),
                QoS::AtLeastOnce,
                true,
                buf[..n].to_vec(),
            );
        }
    }

    fn on_cmd(&mut self, payload: &[u8]) {
        let Ok(c) = cmd::parse(payload) else {
            tracing::debug!(device = %self.cfg.device_id, "unreadable cmd");
            return;
        };
        match &c {
            Command::Ack(seqs) => {
                let mut lat = Vec::new();
                for s in seqs.iter() {
                    if let Some(t) = self.first_sent.remove(&s) {
                        lat.push(t.elapsed().as_millis().min(u128::from(u32::MAX)) as u32);
                    }
                }
                if let Ok(mut st) = self.stats.lock() {
                    st.ack_latency_ms.extend(lat);
                }
            }
            Command::Reject { seq, .. } => {
                self.first_sent.remove(seq);
                tracing::warn!(device = %self.cfg.device_id, seq, "message rejected");
            }
            Command::Advice { .. } | Command::Repeat { .. } => {
                if let Ok(mut st) = self.stats.lock() {
                    st.advice += 1;
                }
            }
            _ => {}
        }
        self.outbox.apply(&c);
    }

    fn publish_stats(&self, connected: bool) {
        if let Ok(mut st) = self.stats.lock() {
            st.outbox = self.outbox.stats();
            st.failed = self.failed;
            st.connected = connected;
            st.accepted = self.accepted;
        }
    }
}

async fn run<const S: usize, const B: usize>(
    cfg: KitConfig,
    outbox: Box<Outbox<S, B>>,
    mut rx: mpsc::Receiver<Uplink>,
    stats: Arc<Mutex<KitStats>>,
    cancel: CancellationToken,
) {
    // Seqs are not persisted across simulator runs: each run provisions
    // fresh devices. Block 64 as on a real hub.
    let Ok(seqs) = SeqCounter::boot(MemorySeqStore::new(), 64) else {
        return;
    };
    let mut dev = Device {
        cfg: cfg.clone(),
        seqs,
        outbox,
        first_sent: HashMap::new(),
        epoch: Instant::now(),
        status: None,
        stats: stats.clone(),
        failed: 0,
        accepted: 0,
    };
    let (net_tx, mut net_rx) = mpsc::unbounded_channel();
    let mut generation = 0u64;
    let mut conn = Some(connect(&cfg, generation, net_tx.clone()));
    let mut inputs_open = true;
    loop {
        let room = !cfg.backpressure || dev.outbox.len() + 1 < S;
        let wait = dev
            .outbox
            .next_due_in(dev.now_ms())
            .unwrap_or(1000)
            .clamp(5, 1000);
        tokio::select! {
            _ = cancel.cancelled() => break,
            u = rx.recv(), if inputs_open && room => match u {
                None => inputs_open = false,
                Some(Uplink::Online(up)) => {
                    if up && conn.is_none() {
                        generation += 1;
                        conn = Some(connect(&cfg, generation, net_tx.clone()));
                    } else if !up {
                        conn = None; // drops the TCP connection: the broker sends the will
                    }
                }
                Some(Uplink::Status { battery_pct, signal }) => {
                    dev.status = Some((battery_pct, signal));
                    if let Some(c) = &conn { dev.publish_status(c); }
                }
                Some(u) => {
                    dev.enqueue(u);
                    if let Some(c) = &conn { dev.flush(c); }
                }
            },
            Some(ev) = net_rx.recv() => {
                match ev {
                    Net::Connected(g) => {
                        if let Some(c) = conn.as_mut().filter(|c| c.generation == g) {
                            c.connected = true;
                            let _ = c.client.try_subscribe(cmd_topic(&cfg.device_id), QoS::AtLeastOnce);
                            if let Ok(mut st) = stats.lock() { st.connects += 1; }
                            dev.outbox.on_reconnect();
                            if dev.status.is_none() {
                                dev.status = Some((100, Signal::Ok));
                            }
                            dev.publish_status(c);
                            dev.flush(c);
                        }
                    }
                    Net::Disconnected(g) => {
                        if let Some(c) = conn.as_mut().filter(|c| c.generation == g) { c.connected = false; }
                    }
                    Net::Cmd(p) => {
                        dev.on_cmd(&p);
                        if let Some(c) = &conn { dev.flush(c); }
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                if let Some(c) = &conn { dev.flush(c); }
            }
        }
        dev.publish_stats(conn.as_ref().is_some_and(|c| c.connected));
        if !inputs_open && dev.outbox.is_empty() {
            break;
        }
    }
    dev.publish_stats(false);
}
