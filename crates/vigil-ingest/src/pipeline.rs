//! The ingest loop: MQTT in, durable store, end-to-end acks out.
//!
//! ```text
//! rumqttc event loop ──publish──▶ Intake: batch ── decode/validate/route ──▶ store_uplink_batch (one tx)
//!                                    │                                          │ Ok
//!                                    │ rejected: dead-letter, then reject       ▼
//!                                    └───────────── ack {"seqs"} on cmd, MQTT acks, live events
//!                                                                               │ Stored
//!                                                                               ▼
//!        Worker: ECG analysis, NEWS2 scores, rules engine; scores and alerts in one tx per pass
//! ```
//!
//! Two stages, so that acking never waits for scoring: the [`Intake`]
//! commits and acks batch after batch while the [`Worker`] scores what was
//! committed. When the worker falls behind, the stored work queued for it
//! is merged into one pass (every reading is still scored at its own time,
//! but each patient's settings and score history are read once per pass
//! and all the pass's scores and alerts are written in one transaction). The queue
//! between them is short: a worker behind stops the intake, and the broker
//! and the devices hold the rest.
//!
//! The order is the safety property: an `ack` is published only after
//! `store_uplink_batch` returned `Ok` (the commit happened). If the commit
//! fails, nothing is acked; the device keeps the message and resends it,
//! and the `(device, seq)` key makes the resend harmless. The client uses
//! manual MQTT acks too, so with an external broker and a persistent
//! session a message is redelivered if the daemon dies mid-batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use vigil_store::{
    AlertFiring, AlertStatus, BatchOutcome, FiringOutcome, LiveEvent, LiveObservation,
    NewDerivedObservation, NewEcgChunk, NewObsMessage, NewObservation, NewRejected, ObsValue,
    ObservationRow, RuleAction, Severity, Store,
};

use crate::alerts::Decision;
use crate::decode::{Rejection, decode_obs};
use crate::metrics::IngestMetrics;
use crate::{IngestConfig, acl, alerts, ecg};

/// How long an unacknowledged alert waits before it escalates to the
/// consultant, by severity (CONTRACTS.md §5 defaults; pathway files will
/// override them). `low` does not escalate.
pub fn escalation_delay(s: Severity) -> Option<chrono::Duration> {
    match s {
        Severity::High => Some(chrono::Duration::minutes(5)),
        Severity::Medium => Some(chrono::Duration::minutes(15)),
        Severity::LowMedium => Some(chrono::Duration::minutes(30)),
        Severity::Low => None,
    }
}

/// Escalate open alerts whose time has come, checking every second.
pub async fn escalator(
    store: Arc<dyn Store>,
    events: broadcast::Sender<LiveEvent>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let now = Utc::now();
        let due = match store.alerts_due(now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "escalation check failed");
                continue;
            }
        };
        for a in due {
            match store
                .alert_act(a.id, vigil_store::AlertAction::Escalate, "system", now)
                .await
            {
                Ok(alert) => {
                    tracing::warn!(
                        alert_id = alert.id,
                        patient = alert.patient_id,
                        severity = alert.severity.as_str(),
                        "alert escalated: unacknowledged past its time"
                    );
                    let _ = events.send(LiveEvent::AlertUpdate {
                        ward_id: alert.ward_id,
                        alert,
                        action: "escalated".into(),
                        actor: "system".into(),
                    });
                }
                // Acknowledged in the meantime: nothing to do.
                Err(vigil_store::StoreError::Conflict(_)) => {}
                Err(e) => tracing::error!(error = %e, "escalation failed"),
            }
        }
    }
}

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 512;
/// How long the first message of a batch may wait for company, when no
/// other message was waiting with it.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Committed batches waiting for the worker before the intake waits too.
/// Small on purpose: when scoring is the bottleneck, a long queue here only
/// delays every alert behind it, while a short one pushes the backlog back
/// to the broker and the devices, whose windows bound it.
const STORED_QUEUE: usize = 2;

/// Handles to the running ingest.
pub struct Running {
    /// `true` while the MQTT connection is up (for `/readyz`).
    pub connected: watch::Receiver<bool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start the ingest client against `config.broker`. `rescore` carries
/// patient ids whose score must be recomputed now (an episode setting changed).
#[expect(
    clippy::too_many_arguments,
    reason = "the daemon's wiring: each is a distinct channel or handle"
)]
pub fn spawn(
    config: IngestConfig,
    store: Arc<dyn Store>,
    events: broadcast::Sender<LiveEvent>,
    metrics: IngestMetrics,
    rescore: mpsc::Receiver<i64>,
    pathways: vigil_rules::Pathways,
    rule_actions: mpsc::Receiver<RuleAction>,
    cancel: CancellationToken,
) -> Running {
    let mut opts = MqttOptions::new(
        config.client_id.clone(),
        config.broker_host.clone(),
        config.broker_port,
    );
    opts.set_credentials(config.username.clone(), config.password.clone());
    opts.set_keep_alive(Duration::from_secs(15));
    // A persistent session: an external broker queues messages for us
    // while we restart.
    opts.set_clean_session(false);
    opts.set_manual_acks(true);
    opts.set_max_packet_size(
        crate::decode::MAX_PAYLOAD + 1024,
        crate::decode::MAX_PAYLOAD + 1024,
    );
    opts.set_inflight(1000);
    if let Some(tls) = &config.tls {
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    let (client, eventloop) = AsyncClient::new(opts, 4096);
    let (tx, rx) = mpsc::channel(8192);
    let (connected_tx, connected) = watch::channel(false);
    let poll = tokio::spawn(poll_loop(
        eventloop,
        client.clone(),
        tx,
        connected_tx,
        cancel.clone(),
    ));
    let intake = Intake {
        client: client.clone(),
        store: store.clone(),
        events: events.clone(),
        metrics: metrics.clone(),
    };
    let worker = Worker {
        ecg: ecg::EcgAnalysis::default(),
        engine: vigil_rules::Engine::new(pathways),
        in_engine: HashMap::new(),
        feed: Vec::new(),
        batch_received: Utc::now(),
        history: HashMap::new(),
        open_rules: Mutex::new(HashMap::new()),
        client,
        store,
        events,
        metrics,
    };
    let (stored_tx, stored_rx) = mpsc::channel(STORED_QUEUE);
    let escalate = tokio::spawn(escalator(
        worker.store.clone(),
        worker.events.clone(),
        cancel.clone(),
    ));
    let batch = tokio::spawn(intake.run(rx, stored_tx, cancel.clone()));
    let work = tokio::spawn(worker.run(stored_rx, rescore, rule_actions, cancel));
    Running {
        connected,
        tasks: vec![poll, batch, work, escalate],
    }
}

/// Fill `batch`, which holds a first message, up to [`MAX_BATCH`]. Behind
/// (messages arrived while the last batch was written), what is queued is
/// the batch: waiting for more would only delay it (it was 5 ms of a 45 ms
/// cycle at ward load, docs/benchmarks.md). Otherwise the first message
/// waits up to `window` for company, so that light traffic still shares
/// commits.
async fn collect<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, window: Duration) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    if batch.len() == 1 {
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                _ => break,
            }
        }
    }
}

async fn poll_loop(
    mut eventloop: EventLoop,
    client: AsyncClient,
    tx: mpsc::Sender<Publish>,
    connected: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    // Ready only once every subscription is acknowledged: before that, a
    // device's message would reach a broker with nobody listening.
    let mut pending_subacks = 0usize;
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = cancel.cancelled() => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("ingest connected to broker");
                pending_subacks = 0;
                for kind in acl::UPLINKS {
                    let filter = format!("{}+/{kind}", acl::PREFIX);
                    match client.subscribe(filter, QoS::AtLeastOnce).await {
                        Ok(()) => pending_subacks += 1,
                        Err(e) => tracing::error!(error = %e, "subscribe failed"),
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                pending_subacks = pending_subacks.saturating_sub(1);
                if pending_subacks == 0 {
                    let _ = connected.send(true);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = connected.send(false);
                tracing::warn!(error = %e, "broker connection lost; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = cancel.cancelled() => break,
                }
            }
        }
    }
    let _ = connected.send(false);
}

/// The store stage: decode, validate, route, commit, ack. It never waits
/// for scoring or rules, so the broker's window of unacknowledged
/// deliveries turns over as fast as batches commit.
struct Intake {
    client: AsyncClient,
    store: Arc<dyn Store>,
    events: broadcast::Sender<LiveEvent>,
    metrics: IngestMetrics,
}

/// What the intake hands the worker: all of it committed and acked.
#[derive(Default)]
struct Stored {
    /// When the earliest of these messages arrived.
    received_at: Option<chrono::DateTime<Utc>>,
    /// Per patient, the measurement times of new readings.
    to_score: BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>>,
    /// New observations for the rules engine, in arrival order.
    feed: Vec<(i64, vigil_clinical::Reading)>,
    /// Newly stored ECG chunks for analysis.
    ecg: Vec<PendingEcg>,
    /// Device status messages (not stored; they go to the rules engine).
    statuses: Vec<(String, bytes::Bytes)>,
}

impl Stored {
    fn is_empty(&self) -> bool {
        self.to_score.is_empty()
            && self.feed.is_empty()
            && self.ecg.is_empty()
            && self.statuses.is_empty()
    }

    /// Fold later work into this one (the worker fell behind).
    fn merge(&mut self, later: Stored) {
        self.received_at = match (self.received_at, later.received_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (patient, times) in later.to_score {
            self.to_score.entry(patient).or_default().extend(times);
        }
        self.feed.extend(later.feed);
        self.ecg.extend(later.ecg);
        self.statuses.extend(later.statuses);
    }
}

/// The scoring stage: ECG analysis, NEWS2, the rules engine and alerts.
struct Worker {
    ecg: ecg::EcgAnalysis,
    /// The pathway rules engine and, per patient it knows, their ward.
    engine: vigil_rules::Engine,
    /// The patients the rules engine knows, with the episode they were
    /// admitted to it with.
    in_engine: HashMap<i64, vigil_store::EpisodeSettings>,
    /// Stored observations waiting for the rules engine (after scoring).
    feed: Vec<(i64, vigil_clinical::Reading)>,
    /// When the earliest message of the pass being processed arrived.
    batch_received: chrono::DateTime<Utc>,
    /// Per patient, the score history the built-in alerts compare with
    /// (this worker is the only writer of scores).
    history: HashMap<i64, ScoreHistory>,
    /// Per patient whose live alerts were read, the rules with a live
    /// alert: lets `auto_resolve` skip the store when nothing could
    /// resolve. Only this worker raises alerts, so the set may hold rules
    /// a person has resolved since (costing one read), never miss one.
    open_rules: Mutex<HashMap<i64, BTreeSet<String>>>,
    client: AsyncClient,
    store: Arc<dyn Store>,
    events: broadcast::Sender<LiveEvent>,
    metrics: IngestMetrics,
}

/// The newest row of each code measured at or before a time (ties: the
/// later insert), as `Store::latest_per_code` answers, for times asked in
/// ascending order, from rows read once.
struct AsOf {
    latest: BTreeMap<String, ObservationRow>,
    /// Rows measured after the base, oldest first, not yet applied.
    later: std::collections::VecDeque<ObservationRow>,
}

impl AsOf {
    fn new(base: Vec<ObservationRow>, mut later: Vec<ObservationRow>) -> AsOf {
        later.sort_by_key(|r| (r.measured_at, r.id));
        let mut a = AsOf {
            latest: BTreeMap::new(),
            later: later.into(),
        };
        for r in base {
            a.apply(r);
        }
        a
    }

    fn apply(&mut self, r: ObservationRow) {
        let newer = self
            .latest
            .get(&r.code)
            .is_none_or(|l| (r.measured_at, r.id) > (l.measured_at, l.id));
        if newer {
            self.latest.insert(r.code.clone(), r);
        }
    }

    /// The latest of each code as of `at` (not before the previous `at`).
    fn at(&mut self, at: chrono::DateTime<Utc>) -> Vec<ObservationRow> {
        while self.later.front().is_some_and(|r| r.measured_at <= at) {
            if let Some(r) = self.later.pop_front() {
                self.apply(r);
            }
        }
        self.latest.values().cloned().collect()
    }
}

/// A patient's stored scores from `from` on, in time order, and the time
/// of their newest score of all.
struct ScoreHistory {
    from: chrono::DateTime<Utc>,
    latest: Option<chrono::DateTime<Utc>>,
    rows: Vec<(chrono::DateTime<Utc>, Option<i64>, Option<String>)>,
}

/// The newest score of the day before (total, risk), and the day's lowest total.
type DayBefore = (Option<(Option<i64>, Option<String>)>, Option<i64>);

impl ScoreHistory {
    /// The previous day's scores up to and including `at`: the newest of
    /// them (total, risk) and their lowest total.
    fn day_before(&self, at: chrono::DateTime<Utc>) -> DayBefore {
        let end = self.rows.partition_point(|r| r.0 <= at);
        let start = self
            .rows
            .partition_point(|r| r.0 < at - chrono::Duration::hours(24));
        let day = &self.rows[start..end.max(start)];
        (
            day.last().map(|r| (r.1, r.2.clone())),
            day.iter().filter_map(|r| r.1).min(),
        )
    }

    /// Record a score just computed (after equal times, as the store orders them).
    fn add(&mut self, at: chrono::DateTime<Utc>, total: Option<i64>, risk: Option<String>) {
        let i = self.rows.partition_point(|r| r.0 <= at);
        self.rows.insert(i, (at, total, risk));
        self.latest = self.latest.max(Some(at));
        // Keep a day and a bit behind the newest: older rows only matter
        // to a reading more than a day late, which reloads.
        if let Some(newest) = self.latest {
            let keep_from = newest - chrono::Duration::hours(25);
            if self.from < keep_from {
                let old = self.rows.partition_point(|r| r.0 < keep_from);
                self.rows.drain(..old);
                self.from = keep_from;
            }
        }
    }
}

/// Which uplink a rejected message came on.
#[derive(Clone, Copy)]
enum Uplink {
    Obs,
    Ecg,
}

/// One ECG chunk that passed decoding and routing, waiting for the commit.
struct PendingEcg {
    device_id: String,
    patient_id: i64,
    ward_id: i64,
    received_at: chrono::DateTime<Utc>,
    chunk: ecg::DecodedChunk,
}

/// One message that passed decoding and routing, waiting for the commit.
struct Pending {
    msg: NewObsMessage,
    ward_id: i64,
}

impl Intake {
    async fn run(
        self,
        mut rx: mpsc::Receiver<Publish>,
        out: mpsc::Sender<Stored>,
        cancel: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => break },
                _ = cancel.cancelled() => break,
            };
            batch.push(first);
            collect(&mut rx, &mut batch, BATCH_WINDOW).await;
            self.metrics.batch_size.observe(batch.len() as f64);
            self.metrics.queue_depth.set(rx.len() as i64);
            let stored = self.process(&batch).await;
            for p in batch.drain(..) {
                if let Err(e) = self.client.ack(&p).await {
                    tracing::warn!(error = %e, "mqtt ack failed");
                }
            }
            if !stored.is_empty() && out.send(stored).await.is_err() {
                break;
            }
        }
    }

    /// Commit one batch and ack it; returns the work for the worker.
    async fn process(&self, batch: &[Publish]) -> Stored {
        let now = Utc::now();
        let mut work = Stored {
            received_at: Some(now),
            ..Stored::default()
        };
        let topics: Vec<Option<(&str, &str)>> =
            batch.iter().map(|p| acl::parse_topic(&p.topic)).collect();
        // Every device of the batch routed in one query.
        let devices: BTreeSet<&str> = topics
            .iter()
            .flatten()
            .filter(|(_, kind)| *kind != "status")
            .map(|(d, _)| *d)
            .collect();
        let routes = if devices.is_empty() {
            Some(HashMap::new())
        } else {
            match self
                .store
                .device_routes(&devices.into_iter().collect::<Vec<_>>())
                .await
            {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %e, "device lookup failed; batch left unacked");
                    None
                }
            }
        };
        let mut pending: Vec<Pending> = Vec::new();
        let mut pending_ecg: Vec<PendingEcg> = Vec::new();
        for (p, topic) in batch.iter().zip(&topics) {
            let Some((device, kind)) = *topic else {
                tracing::warn!("message on unexpected topic ignored");
                continue;
            };
            match kind {
                "obs" => match self.accept_obs(device, &p.payload, now, routes.as_ref()) {
                    Ok(Some(msg)) => pending.push(msg),
                    Ok(None) => {}
                    Err(r) => {
                        self.reject(Uplink::Obs, device, &p.topic, &p.payload, r, now)
                            .await
                    }
                },
                "ecg" => match self.accept_ecg(device, &p.payload, now, routes.as_ref()) {
                    Ok(Some(c)) => pending_ecg.push(c),
                    Ok(None) => {}
                    Err(r) => {
                        self.reject(Uplink::Ecg, device, &p.topic, &p.payload, r, now)
                            .await
                    }
                },
                _ => work.statuses.push((device.to_string(), p.payload.clone())),
            }
        }
        let mut acks: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let (obs_outcomes, ecg_outcomes) = self
            .store_uplink(&pending, &pending_ecg)
            .await
            .unwrap_or_default();
        let stored_at = Utc::now();
        if let Some(outcomes) = &obs_outcomes {
            for (p, outcome) in pending.iter().zip(outcomes) {
                acks.entry(p.msg.device_id.clone())
                    .or_default()
                    .push(p.msg.seq);
                if let BatchOutcome::Stored { .. } = outcome {
                    work.to_score
                        .entry(p.msg.patient_id)
                        .or_default()
                        .insert(p.msg.measured_at);
                }
            }
        }
        if let Some(outcomes) = &ecg_outcomes {
            for (c, _) in pending_ecg.iter().zip(outcomes) {
                acks.entry(c.device_id.clone())
                    .or_default()
                    .push(c.chunk.seq);
            }
        }
        // Acks go out first: everything acked here is committed.
        for (device, mut seqs) in acks {
            seqs.sort_unstable();
            let ack = serde_json::json!({"type": "ack", "seqs": seqs});
            send_cmd(&self.client, &device, ack).await;
        }
        if let Some(outcomes) = obs_outcomes {
            self.observation_events(&pending, outcomes, stored_at, &mut work.feed);
        }
        if let Some(outcomes) = ecg_outcomes {
            for (c, o) in pending_ecg.into_iter().zip(outcomes) {
                match o {
                    BatchOutcome::Duplicate => self
                        .metrics
                        .ecg_chunks
                        .with_label_values(&["duplicate"])
                        .inc(),
                    BatchOutcome::Stored { .. } => {
                        self.metrics.ecg_chunks.with_label_values(&["stored"]).inc();
                        work.ecg.push(c);
                    }
                }
            }
        }
        work
    }

    /// Commit the batch's messages and ECG chunks in one transaction: the
    /// outcomes of each (`None` if it had none), or nothing acked at all
    /// on failure.
    async fn store_uplink(
        &self,
        pending: &[Pending],
        pending_ecg: &[PendingEcg],
    ) -> Option<(Option<Vec<BatchOutcome>>, Option<Vec<BatchOutcome>>)> {
        if pending.is_empty() && pending_ecg.is_empty() {
            return None;
        }
        let msgs: Vec<NewObsMessage> = pending.iter().map(|p| p.msg.clone()).collect();
        let chunks: Vec<NewEcgChunk> = pending_ecg
            .iter()
            .map(|c| NewEcgChunk {
                device_id: c.device_id.clone(),
                seq: c.chunk.seq,
                patient_id: c.patient_id,
                t0_ms: c.chunk.t0_ms,
                fs_hz: c.chunk.fs_hz,
                uv_per_count: c.chunk.uv_per_count,
                n_samples: c.chunk.samples.len() as u32,
                encoding: ecg::ENCODING.into(),
                samples: vigil_ecg::encode_samples(&c.chunk.samples),
                received_at: c.received_at,
            })
            .collect();
        let kind = match (msgs.is_empty(), chunks.is_empty()) {
            (false, true) => "obs",
            (true, false) => "ecg",
            _ => "obs_ecg",
        };
        let _timer = self
            .metrics
            .store_write
            .with_label_values(&[kind])
            .start_timer();
        match self.store.store_uplink_batch(&msgs, &chunks).await {
            Ok((obs, ecg)) => Some((
                (!msgs.is_empty()).then_some(obs),
                (!chunks.is_empty()).then_some(ecg),
            )),
            Err(e) => {
                // Nothing is acked: every device keeps its messages and resends.
                tracing::error!(error = %e, messages = msgs.len(), chunks = chunks.len(), "store failed; batch not acked");
                self.metrics
                    .obs_messages
                    .with_label_values(&["error"])
                    .inc_by(msgs.len() as u64);
                self.metrics
                    .ecg_chunks
                    .with_label_values(&["error"])
                    .inc_by(chunks.len() as u64);
                None
            }
        }
    }

    fn observation_events(
        &self,
        pending: &[Pending],
        outcomes: Vec<BatchOutcome>,
        stored_at: chrono::DateTime<Utc>,
        feed: &mut Vec<(i64, vigil_clinical::Reading)>,
    ) {
        for (p, outcome) in pending.iter().zip(outcomes) {
            match outcome {
                BatchOutcome::Duplicate => self
                    .metrics
                    .obs_messages
                    .with_label_values(&["duplicate"])
                    .inc(),
                BatchOutcome::Stored { observation_ids } => {
                    self.metrics
                        .obs_messages
                        .with_label_values(&["stored"])
                        .inc();
                    let lag =
                        (stored_at - p.msg.measured_at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.ingest_lag.observe(lag);
                    let obs: Vec<LiveObservation> = p
                        .msg
                        .obs
                        .iter()
                        .zip(observation_ids)
                        .map(|(o, id)| LiveObservation {
                            id,
                            code: o.code.clone(),
                            value: o.value.clone(),
                            unit: o.unit.clone(),
                        })
                        .collect();
                    for o in &obs {
                        if let Some(r) = crate::rules::reading(
                            &o.code,
                            &o.value,
                            o.unit.as_deref(),
                            p.msg.measured_at,
                            &p.msg.device_id,
                            o.id,
                        ) {
                            feed.push((p.msg.patient_id, r));
                        }
                    }
                    let _ = self.events.send(LiveEvent::Observation {
                        ward_id: p.ward_id,
                        patient_id: p.msg.patient_id,
                        device_id: p.msg.device_id.clone(),
                        seq: p.msg.seq,
                        measured_at: p.msg.measured_at,
                        obs,
                    });
                }
            }
        }
    }

    /// The route of `device` from the batch's lookup: `None` (left unacked,
    /// counted as an error under `counter`, the device resends) if the
    /// lookup failed, a `no_patient` rejection if it has no route.
    fn route(
        &self,
        device: &str,
        seq: u32,
        routes: Option<&HashMap<String, vigil_store::DeviceRoute>>,
        counter: &prometheus::IntCounterVec,
    ) -> Result<Option<vigil_store::DeviceRoute>, Rejection> {
        let Some(routes) = routes else {
            counter.with_label_values(&["error"]).inc();
            return Ok(None);
        };
        match routes.get(device) {
            Some(r) => Ok(Some(*r)),
            None => Err(Rejection {
                seq: Some(seq),
                reason: "no_patient",
                detail: "device is not assigned to an admitted patient".into(),
            }),
        }
    }

    /// Decode, validate and route one `ecg` chunk.
    fn accept_ecg(
        &self,
        device: &str,
        payload: &[u8],
        now: chrono::DateTime<Utc>,
        routes: Option<&HashMap<String, vigil_store::DeviceRoute>>,
    ) -> Result<Option<PendingEcg>, Rejection> {
        let chunk = ecg::decode_chunk(payload, now)?;
        let Some(route) = self.route(device, chunk.seq, routes, &self.metrics.ecg_chunks)? else {
            return Ok(None);
        };
        Ok(Some(PendingEcg {
            device_id: device.to_string(),
            patient_id: route.patient_id,
            ward_id: route.ward_id,
            received_at: now,
            chunk,
        }))
    }

    /// Decode, validate and route one `obs` message.
    fn accept_obs(
        &self,
        device: &str,
        payload: &[u8],
        now: chrono::DateTime<Utc>,
        routes: Option<&HashMap<String, vigil_store::DeviceRoute>>,
    ) -> Result<Option<Pending>, Rejection> {
        let m = decode_obs(payload, now)?;
        let Some(route) = self.route(device, m.seq, routes, &self.metrics.obs_messages)? else {
            return Ok(None);
        };
        Ok(Some(Pending {
            msg: NewObsMessage {
                device_id: device.to_string(),
                seq: m.seq,
                patient_id: route.patient_id,
                measured_at: m.measured_at,
                received_at: now,
                obs: m.obs,
            },
            ward_id: route.ward_id,
        }))
    }

    async fn reject(
        &self,
        kind: Uplink,
        device: &str,
        topic: &str,
        payload: &[u8],
        r: Rejection,
        now: chrono::DateTime<Utc>,
    ) {
        tracing::info!(device, reason = r.reason, seq = ?r.seq, "message rejected");
        let rec = NewRejected {
            device_id: Some(device.to_string()),
            seq: r.seq,
            topic: topic.to_string(),
            reason: r.reason.to_string(),
            detail: r.detail.clone(),
            payload: payload
                .iter()
                .copied()
                .take(crate::decode::MAX_PAYLOAD)
                .collect(),
            received_at: now,
        };
        if let Err(e) = self.store.store_rejected(rec).await {
            // Not durably rejected, so do not tell the device to drop it.
            tracing::error!(error = %e, "dead-letter write failed; reject not sent");
            self.metrics
                .obs_messages
                .with_label_values(&["error"])
                .inc();
            return;
        }
        match kind {
            Uplink::Obs => {
                self.metrics
                    .obs_messages
                    .with_label_values(&["rejected"])
                    .inc();
                self.metrics
                    .obs_rejected
                    .with_label_values(&[r.reason])
                    .inc();
            }
            Uplink::Ecg => self
                .metrics
                .ecg_chunks
                .with_label_values(&["rejected"])
                .inc(),
        }
        if let Some(seq) = r.seq {
            send_cmd(
                &self.client,
                device,
                serde_json::json!({"type": "reject", "seq": seq, "reason": r.reason}),
            )
            .await;
        }
    }
}

impl Worker {
    async fn run(
        mut self,
        mut stored: mpsc::Receiver<Stored>,
        mut rescore: mpsc::Receiver<i64>,
        mut rule_actions: mpsc::Receiver<RuleAction>,
        cancel: CancellationToken,
    ) {
        loop {
            // Sleep until the engine's next timer (missed readings, device
            // offline), but wake at least every 30 s.
            let now = Utc::now();
            let wake = self
                .engine
                .next_deadline()
                .map(|d| d.min(now + chrono::Duration::seconds(30)))
                .unwrap_or(now + chrono::Duration::seconds(30));
            let sleep = (wake - now).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                w = stored.recv() => {
                    let Some(mut w) = w else { break };
                    // Behind? Take everything committed since, as one pass.
                    let mut batches = 1;
                    while let Ok(more) = stored.try_recv() {
                        w.merge(more);
                        batches += 1;
                    }
                    self.metrics.pass_batches.observe(f64::from(batches));
                    if let Some(at) = w.received_at {
                        self.metrics.worker_lag.observe((Utc::now() - at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
                    }
                    let _timer = self.metrics.pass_seconds.start_timer();
                    self.pass(w).await;
                }
                Some(patient) = rescore.recv() => {
                    let now = Utc::now();
                    self.batch_received = now;
                    self.in_engine.remove(&patient);
                    self.ensure_in_engine(patient).await;
                    let scored = self.score_new(BTreeMap::from([(patient, BTreeSet::from([now]))]), None).await;
                    self.store_pass(scored.rows, scored.pushes, scored.firings).await;
                }
                Some(action) = rule_actions.recv() => self.forward_action(action),
                _ = tokio::time::sleep(sleep) => {
                    let now = Utc::now();
                    self.batch_received = now;
                    let outputs = self.engine.tick(now);
                    self.apply_outputs(outputs, now).await;
                }
                _ = cancel.cancelled() => break,
            }
        }
    }

    /// Everything after the commit, for one pass of stored work.
    async fn pass(&mut self, w: Stored) {
        let stages = self.metrics.pass_stage.clone();
        let mut clock = StageClock::new(&stages);
        let now = Utc::now();
        self.batch_received = w.received_at.unwrap_or(now);
        let mut to_score = w.to_score;
        self.feed.extend(w.feed);
        self.analyse_ecg(w.ecg, now, &mut to_score).await;
        clock.lap("ecg");
        // Scoring happens after the acks: a reading is safe once stored,
        // and a scoring failure must never make a device resend.
        let scored = self.score_new(to_score, Some(&mut clock)).await;
        let mut settings = scored.settings;
        // Then the pathway rules see every new observation, and
        // missed-reading and device-offline alerts resolve themselves now
        // that data has resumed.
        let feed = std::mem::take(&mut self.feed);
        let mut resumed: BTreeMap<i64, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        let mut outputs = Vec::new();
        for (patient, reading) in feed {
            let entry = resumed.entry(patient).or_default();
            entry
                .0
                .insert(reading.observation.code.as_str().to_string());
            if let Some(d) = &reading.source {
                entry.1.insert(d.clone());
            }
            outputs.extend(self.observe(patient, reading, now).await);
        }
        // All the pass's rule outputs together, in order, with the episodes
        // scoring has just read: no read per output.
        let mut firings = scored.firings;
        firings.extend(self.rule_effects(outputs, now, &settings).await);
        clock.lap("rules");
        // The pass's scores, NEWS2 alerts and rule alerts in one
        // transaction (one turn of SQLite's write lock, not three).
        self.store_pass(scored.rows, scored.pushes, firings).await;
        clock.lap("store");
        for (patient, (codes, devices)) in resumed {
            let mut rules: Vec<String> = devices
                .iter()
                .map(|d| format!("device-offline:{d}"))
                .collect();
            let s = match settings.remove(&patient) {
                Some(s) => Some(s),
                None => self.store.episode_settings(patient).await.ok().flatten(),
            };
            if let Some(p) = s.and_then(|s| self.engine.pathways().get(&s.pathway)) {
                for e in &p.expects {
                    if e.codes.iter().any(|c| codes.contains(c.as_str())) {
                        rules.push(e.id.clone());
                    }
                }
            }
            self.auto_resolve(patient, &rules, "readings resumed").await;
        }
        clock.lap("resolve");
        self.statuses(w.statuses).await;
        clock.lap("status");
    }

    /// Resolve the live alerts of `rules` for `patient` as the system: a
    /// missed-reading or device alert whose cause has gone. Clinical alerts
    /// are never passed here: they need a person.
    async fn auto_resolve(&mut self, patient: i64, rules: &[String], why: &str) {
        if rules.is_empty() {
            return;
        }
        let known_clear = self
            .open_rules
            .lock()
            .map(|o| {
                o.get(&patient)
                    .is_some_and(|live| !rules.iter().any(|r| live.contains(r)))
            })
            .unwrap_or(false);
        if known_clear {
            return;
        }
        let Some(ward) = self.ensure_in_engine(patient).await else {
            return;
        };
        let live = match self.store.alerts_list(&[ward], None, Some(patient)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read alerts to resolve");
                return;
            }
        };
        let live: Vec<_> = live
            .into_iter()
            .filter(|a| a.status != AlertStatus::Resolved)
            .collect();
        let mut open: BTreeSet<String> = live.iter().map(|a| a.rule_id.clone()).collect();
        let now = Utc::now();
        for a in live.into_iter().filter(|a| rules.contains(&a.rule_id)) {
            let action = vigil_store::AlertAction::Resolve {
                outcome: "data-resumed".into(),
                note: why.into(),
            };
            match self
                .store
                .alert_act(a.id, action.clone(), "system", now)
                .await
            {
                Ok(alert) => {
                    open.remove(&alert.rule_id);
                    tracing::info!(alert_id = alert.id, rule = %alert.rule_id, "alert resolved: {why}");
                    self.forward_action(RuleAction {
                        patient_id: patient,
                        rule_id: alert.rule_id.clone(),
                        action,
                        actor: "system".into(),
                        at: now,
                    });
                    let _ = self.events.send(LiveEvent::AlertUpdate {
                        ward_id: alert.ward_id,
                        alert,
                        action: "resolved".into(),
                        actor: "system".into(),
                    });
                }
                Err(e) => tracing::debug!(error = %e, "alert already resolved"),
            }
        }
        if let Ok(mut o) = self.open_rules.lock() {
            o.insert(patient, open);
        }
    }

    /// Make sure the engine knows `patient` with their current episode;
    /// returns their ward, or `None` (and forgets them) once discharged.
    async fn ensure_in_engine(&mut self, patient: i64) -> Option<i64> {
        if let Some(s) = self.in_engine.get(&patient) {
            return Some(s.ward_id);
        }
        let settings = match self.store.episode_settings(patient).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.engine.discharge(patient);
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, patient, "cannot load the episode for the rules engine");
                return None;
            }
        };
        let admitted_at = match self.store.patient_get(patient).await {
            Ok(Some(p)) => p.episode.map(|e| e.admitted_at).unwrap_or_else(Utc::now),
            _ => Utc::now(),
        };
        let fresh = !self.engine.readings(patient).iter().any(|_| true);
        if let Err(e) = self
            .engine
            .admit(patient, crate::rules::setup(&settings, admitted_at))
        {
            tracing::error!(error = %e, patient, "rules engine refused the episode");
            return None;
        }
        let ward = settings.ward_id;
        self.in_engine.insert(patient, settings);
        if fresh {
            // After a restart the engine knows nothing: give it the latest
            // stored reading of each code, so missed-reading clocks and trends
            // start from what is stored rather than from admission. Outputs
            // of this replay are dropped: whatever they would raise is
            // already stored (alerts merge per patient and rule).
            let now = Utc::now();
            if let Ok(rows) = self.store.latest_per_code(patient, now).await {
                // Only what was stored before the batch in hand: its own
                // readings reach the engine live, with their outputs.
                // (Stored times have millisecond precision.)
                let cutoff =
                    chrono::DateTime::from_timestamp_millis(self.batch_received.timestamp_millis())
                        .unwrap_or(self.batch_received);
                for r in rows.into_iter().filter(|r| r.received_at < cutoff) {
                    if let Some(reading) = crate::rules::reading(
                        &r.code,
                        &r.value,
                        r.unit.as_deref(),
                        r.measured_at,
                        &r.device_id,
                        r.id,
                    ) {
                        let _ = self.engine.observe(patient, reading, now);
                    }
                }
            }
        }
        Some(ward)
    }

    /// What the rules engine makes of a reading (outputs to apply).
    async fn observe(
        &mut self,
        patient: i64,
        reading: vigil_clinical::Reading,
        now: chrono::DateTime<Utc>,
    ) -> Vec<vigil_rules::Output> {
        if self.ensure_in_engine(patient).await.is_none() {
            return Vec::new();
        }
        match self.engine.observe(patient, reading, now) {
            Ok(outputs) => outputs,
            Err(e) => {
                tracing::error!(error = %e, patient, "rules engine refused an observation");
                Vec::new()
            }
        }
    }

    fn forward_action(&mut self, a: RuleAction) {
        let Some(id) = self
            .engine
            .open_alert(a.patient_id, &a.rule_id)
            .map(|al| al.id)
        else {
            return;
        };
        let r = match &a.action {
            vigil_store::AlertAction::Acknowledge => {
                self.engine.acknowledge(id, &a.actor, a.at, "").map(|_| ())
            }
            vigil_store::AlertAction::Resolve { outcome, note } => self
                .engine
                .resolve(id, &a.actor, a.at, outcome, note)
                .map(|_| ()),
            vigil_store::AlertAction::Escalate => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "engine alert already in that state");
        }
    }

    /// Persist and push what the engine decided.
    async fn apply_outputs(
        &mut self,
        outputs: Vec<vigil_rules::Output>,
        now: chrono::DateTime<Utc>,
    ) {
        let firings = self.rule_effects(outputs, now, &HashMap::new()).await;
        self.fire(firings).await;
    }

    /// The effects of the engine's outputs: commands sent to devices here,
    /// alert firings returned (in order) for the caller to store, all
    /// together. `known` holds the episodes of some patients as read in
    /// this pass (the others are read here).
    async fn rule_effects(
        &mut self,
        outputs: Vec<vigil_rules::Output>,
        now: chrono::DateTime<Utc>,
        known: &HashMap<i64, vigil_store::EpisodeSettings>,
    ) -> Vec<vigil_store::BatchFiring> {
        let mut firings = Vec::new();
        // Each patient's episode read once per call, however many outputs.
        let mut episodes: HashMap<i64, Option<(i64, Option<vigil_rules::Pathway>)>> =
            HashMap::new();
        for out in outputs {
            let patient = match &out {
                vigil_rules::Output::AlertRaised(a)
                | vigil_rules::Output::AlertUpdated { alert: a, .. }
                | vigil_rules::Output::AlertEscalated { alert: a, .. } => a.patient,
                vigil_rules::Output::Advice { patient, .. }
                | vigil_rules::Output::Repeat { patient, .. } => *patient,
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = episodes.entry(patient) {
                slot.insert(
                    self.current_episode(patient, known.get(&patient).cloned())
                        .await,
                );
            }
            let Some(Some((ward, pathway))) = episodes.get(&patient) else {
                continue;
            };
            match crate::rules::effect(pathway.as_ref(), *ward, out, now) {
                Some(crate::rules::Effect::Fire {
                    firing,
                    update_only,
                }) => firings.push(vigil_store::BatchFiring {
                    firing,
                    update_only,
                }),
                Some(crate::rules::Effect::Cmd { device, body }) => {
                    send_cmd(&self.client, &device, body).await
                }
                None => {}
            }
        }
        firings
    }

    /// The patient's ward and pathway as stored now (`read`, when this pass
    /// has just read it), before an output of the engine becomes an alert or
    /// a command: `None` once discharged (a timer may fire for a patient
    /// discharged by another process, e.g. `vigil admin`), and the engine
    /// re-admits the patient when their episode changed underneath it. One
    /// read at most when nothing changed.
    async fn current_episode(
        &mut self,
        patient: i64,
        read: Option<vigil_store::EpisodeSettings>,
    ) -> Option<(i64, Option<vigil_rules::Pathway>)> {
        let stored = match read {
            Some(s) => Ok(Some(s)),
            None => self.store.episode_settings(patient).await,
        };
        let settings = match stored {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.engine.discharge(patient);
                self.in_engine.remove(&patient);
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, patient, "cannot read the episode; rule output dropped");
                return None;
            }
        };
        if self.in_engine.get(&patient) != Some(&settings) {
            self.in_engine.remove(&patient);
            self.ensure_in_engine(patient).await?;
        }
        Some((
            settings.ward_id,
            self.engine.pathways().get(&settings.pathway).cloned(),
        ))
    }

    /// Store firings in one transaction and announce what they did. Should
    /// the batch fail (a PostgreSQL deadlock with another instance, say),
    /// each firing is tried on its own, so one bad firing loses no other.
    async fn fire(&self, firings: Vec<vigil_store::BatchFiring>) {
        if firings.is_empty() {
            return;
        }
        let received = self.batch_received;
        let fired = match self.store.alert_fire_many(&firings, Utc::now()).await {
            Ok(fired) => fired,
            Err(e) => {
                tracing::warn!(error = %e, firings = firings.len(), "storing a pass's alerts together failed; storing them one by one");
                let mut fired = Vec::new();
                for f in &firings {
                    match self
                        .store
                        .alert_fire_many(std::slice::from_ref(f), Utc::now())
                        .await
                    {
                        Ok(one) => fired.extend(one),
                        Err(e) => tracing::error!(error = %e, "storing an alert failed"),
                    }
                }
                fired
            }
        };
        for (alert, outcome) in fired.into_iter().flatten() {
            self.announce(alert, outcome, received);
        }
    }

    /// Remember that `alert`'s rule is live for its patient (if their
    /// live alerts are known at all).
    fn note_live(&self, alert: &vigil_store::AlertRow) {
        if let Ok(mut o) = self.open_rules.lock()
            && let Some(live) = o.get_mut(&alert.patient_id)
        {
            live.insert(alert.rule_id.clone());
        }
    }

    async fn persist_firing(&self, firing: AlertFiring, received: chrono::DateTime<Utc>) {
        match self.store.alert_fire(firing, Utc::now()).await {
            Ok((alert, outcome)) => self.announce(alert, outcome, received),
            Err(e) => tracing::error!(error = %e, "storing an alert failed"),
        }
    }

    /// Count and push a stored firing (`received`: when the worker had it).
    fn announce(
        &self,
        alert: vigil_store::AlertRow,
        outcome: FiringOutcome,
        received: chrono::DateTime<Utc>,
    ) {
        match outcome {
            FiringOutcome::Raised => {
                self.note_live(&alert);
                tracing::info!(alert_id = alert.id, patient = alert.patient_id, rule = %alert.rule_id, severity = alert.severity.as_str(), "alert raised");
                self.metrics
                    .alerts_raised
                    .with_label_values(&[alert.severity.as_str()])
                    .inc();
                let latency = (Utc::now() - received)
                    .num_microseconds()
                    .unwrap_or(0)
                    .max(0) as f64
                    / 1e6;
                self.metrics.alert_latency.observe(latency);
                let _ = self.events.send(LiveEvent::Alert {
                    ward_id: alert.ward_id,
                    alert,
                });
            }
            FiringOutcome::Updated => {
                self.note_live(&alert);
                let _ = self.events.send(LiveEvent::AlertUpdate {
                    ward_id: alert.ward_id,
                    alert,
                    action: "updated".into(),
                    actor: "system".into(),
                });
            }
            FiringOutcome::Superseded => {}
        }
    }

    /// Run each patch's analysis over its newly stored chunks, in time order;
    /// store beats and the derived heart rate, push quality and AF changes.
    async fn analyse_ecg(
        &mut self,
        mut fresh: Vec<PendingEcg>,
        stored_at: chrono::DateTime<Utc>,
        to_score: &mut BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>>,
    ) {
        fresh.sort_by(|a, b| {
            (a.device_id.as_str(), a.chunk.t0_ms).cmp(&(b.device_id.as_str(), b.chunk.t0_ms))
        });
        // Every chunk's beats and every heart rate in one transaction,
        // after the loop (a write per heart rate waited its turn for
        // SQLite's write lock each time, and so did the beats').
        let mut beats = Vec::new();
        let mut rates: Vec<(NewDerivedObservation, i64)> = Vec::new();
        for c in fresh {
            let d = self.ecg.feed(&c.device_id, &c.chunk);
            if !d.beats.is_empty() {
                beats.push(vigil_store::PatchBeats {
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    beats: d.beats.clone(),
                });
            }
            if let Some((at, bpm)) = d.heart_rate {
                let o = NewDerivedObservation {
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    seq: c.chunk.seq,
                    observation: NewObservation {
                        code: "pulse".into(),
                        value: ObsValue::Number(bpm),
                        unit: Some("/min".into()),
                    },
                    measured_at: at,
                    received_at: stored_at,
                };
                rates.push((o, c.ward_id));
            }
            // The patch's signal quality is a device fact for the rules
            // (lead off → the pathway's device alert).
            if let Some((_, q)) = d.quality.last().copied() {
                let ds = vigil_rules::DeviceStatus {
                    online: true,
                    battery_pct: None,
                    signal: Some(q.to_string()),
                };
                let now = Utc::now();
                if self.ensure_in_engine(c.patient_id).await.is_some()
                    && let Ok(outputs) =
                        self.engine
                            .device_status(c.patient_id, &c.device_id, ds, now)
                {
                    self.apply_outputs(outputs, now).await;
                }
                if q != "lead_off" {
                    self.auto_resolve(
                        c.patient_id,
                        &[format!("device-lead-off:{}", c.device_id)],
                        "ECG signal back",
                    )
                    .await;
                }
            }
            if d.possible_af.iter().any(|(_, active)| *active) {
                let at = d
                    .possible_af
                    .iter()
                    .rev()
                    .find(|(_, a)| *a)
                    .map(|(t, _)| *t)
                    .unwrap_or(c.chunk.t0_ms);
                let pathway = self
                    .store
                    .episode_settings(c.patient_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|s| s.pathway)
                    .unwrap_or_default();
                let firing = AlertFiring {
                    patient_id: c.patient_id,
                    ward_id: c.ward_id,
                    rule_id: format!("ecg-possible-af:{}", c.device_id),
                    severity: Severity::Low,
                    message: "Possible AF — review the ECG strip (a prompt, not a diagnosis)"
                        .into(),
                    value: serde_json::json!({"t_ms": at}),
                    evidence: vec![],
                    at: chrono::DateTime::from_timestamp_millis(at).unwrap_or(stored_at),
                    escalate_at: self
                        .escalation_for(&pathway, Severity::Low)
                        .map(|d| Utc::now() + d),
                };
                self.persist_firing(firing, stored_at).await;
            }
            for (t_ms, q) in d.quality {
                let _ = self.events.send(LiveEvent::EcgStatus {
                    ward_id: c.ward_id,
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    t_ms,
                    quality: Some(q.to_string()),
                    possible_af: None,
                });
            }
            for (t_ms, active) in d.possible_af {
                tracing::info!(device = %c.device_id, active, "possible-AF prompt changed");
                let _ = self.events.send(LiveEvent::EcgStatus {
                    ward_id: c.ward_id,
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    t_ms,
                    quality: None,
                    possible_af: Some(active),
                });
            }
        }
        // The beats and the heart rates in one transaction; if it fails,
        // each on its own, so that a refused write of one loses nothing of
        // the other.
        let (derived, wards): (Vec<NewDerivedObservation>, Vec<i64>) = rates.into_iter().unzip();
        let ids = match self.store.store_ecg_results(&beats, &derived).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, patches = beats.len(), rates = derived.len(), "storing the ECG analysis failed; storing beats and heart rates apart");
                if let Err(e) = self.store.store_beats(&beats).await {
                    tracing::error!(error = %e, patches = beats.len(), "storing beats failed");
                }
                match self.store.store_derived(&derived).await {
                    Ok(ids) => ids,
                    Err(e) => {
                        tracing::error!(error = %e, rates = derived.len(), "storing ECG heart rates failed");
                        return;
                    }
                }
            }
        };
        for ((o, ward_id), id) in derived.into_iter().zip(wards).zip(ids) {
            let ObsValue::Number(bpm) = o.observation.value else {
                continue;
            };
            to_score
                .entry(o.patient_id)
                .or_default()
                .insert(o.measured_at);
            if let Some(r) = crate::rules::reading(
                "pulse",
                &o.observation.value,
                Some("/min"),
                o.measured_at,
                &o.device_id,
                id,
            ) {
                self.feed.push((o.patient_id, r));
            }
            let _ = self.events.send(LiveEvent::Observation {
                ward_id,
                patient_id: o.patient_id,
                device_id: o.device_id,
                seq: o.seq,
                measured_at: o.measured_at,
                obs: vec![LiveObservation {
                    id,
                    code: "pulse".into(),
                    value: ObsValue::Number(bpm),
                    unit: Some("/min".into()),
                }],
            });
        }
    }

    /// Score each patient at the measurement time of each new reading. A
    /// late reading (older than the newest score) adds history at its own
    /// time, and the newest score is recomputed with it, keeping its own
    /// time: the current score never claims a fresher state than its
    /// readings have. The pass's scores are stored in one transaction. Then
    /// every score that was the patient's newest state at its time drives
    /// the built-in NEWS2 alerts, in time order (several readings of one
    /// patient in one pass each count, as if they had come one by one), and
    /// the newest is pushed once stored. Stores nothing itself: it returns
    /// the scores, their pushes and alerts for [`Worker::store_pass`] (a
    /// pass stores them with the pathway rules' alerts, in one
    /// transaction), and the episode settings it read, by patient.
    async fn score_new(
        &mut self,
        to_score: BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>>,
        mut clock: Option<&mut StageClock<'_>>,
    ) -> Scored {
        let mut lap = |stage: &str| {
            if let Some(c) = clock.as_mut() {
                c.lap(stage);
            }
        };
        struct Current {
            push: bool,
            settings: vigil_store::EpisodeSettings,
            score: vigil_clinical::News2Score,
            risk: Option<String>,
            /// Index of its row in `rows` (whose detail the push moves out).
            row: usize,
            prev: Option<(Option<i64>, Option<String>)>,
            min_24h: Option<i64>,
            at: chrono::DateTime<Utc>,
        }
        let now = Utc::now();
        let mut settings_of = HashMap::new();
        let mut rows = Vec::new();
        let mut current = Vec::new();
        // Every patient's episode in one read, and (below) every patient's
        // readings in one more: per-patient round trips were most of a pass.
        let patients: Vec<i64> = to_score.keys().copied().collect();
        let mut episodes = match self.store.episode_settings_many(&patients).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, patients = patients.len(), "cannot read the episodes; scoring skipped");
                return Scored {
                    settings: settings_of,
                    ..Scored::default()
                };
            }
        };
        // (patient, settings, the times to score at: (time, the newest state
        // at that time, the newest of the pass))
        let mut plans = Vec::new();
        let mut spans = Vec::new();
        for (patient, times) in to_score {
            let (Some(first), Some(newest)) = (times.first().copied(), times.last().copied())
            else {
                continue;
            };
            let Some(settings) = episodes.remove(&patient) else {
                // Discharged: nothing more to score.
                self.history.remove(&patient);
                continue;
            };
            if !self
                .load_history(patient, first - chrono::Duration::hours(24))
                .await
            {
                continue;
            }
            let latest = self.history.get(&patient).and_then(|h| h.latest);
            // (time, the newest state at that time, the newest of the pass)
            let mut at_times: Vec<(chrono::DateTime<Utc>, bool, bool)> = times
                .iter()
                .map(|t| {
                    let current = latest.is_none_or(|l| *t >= l);
                    (*t, current, current && *t == newest)
                })
                .collect();
            if let Some(l) = latest.filter(|l| newest < *l) {
                at_times.push((l, true, true));
            }
            let last = at_times.last().map(|a| a.0).unwrap_or(newest);
            spans.push((patient, first, last));
            plans.push((patient, settings, at_times));
        }
        // Only the codes NEWS2 reads.
        let codes = vigil_clinical::SCORED_CODES.map(vigil_clinical::Code::as_str);
        let mut reads = match self.store.readings_for_scoring(&spans, &codes).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, patients = spans.len(), "cannot read the readings; scoring skipped");
                return Scored {
                    settings: settings_of,
                    ..Scored::default()
                };
            }
        };
        lap("score_read");
        for (patient, settings, at_times) in plans {
            let r = reads.remove(&patient).unwrap_or_default();
            let mut readings = AsOf::new(r.base, r.later);
            for (at, current_then, push) in at_times {
                let score = self.score_of(&settings, readings.at(at), at);
                let row = vigil_store::scoring::to_new_score(patient, &score, at, now);
                let Some(h) = self.history.get_mut(&patient) else {
                    continue;
                };
                // The previous day as it was before this score.
                let (prev, min_24h) = if current_then {
                    h.day_before(at)
                } else {
                    (None, None)
                };
                h.add(at, row.total, row.risk.clone());
                if current_then {
                    current.push(Current {
                        push,
                        settings: settings.clone(),
                        score,
                        risk: row.risk.clone(),
                        row: rows.len(),
                        prev,
                        min_24h,
                        at,
                    });
                }
                rows.push(row);
            }
            settings_of.insert(patient, settings);
        }
        lap("score");
        // The built-in alerts of every score. Only the scores that may fire
        // need the live alerts: those of all their patients are read at
        // once (a read per score was a round trip each; nothing is written
        // before the pass stores its alerts).
        let facts = |total: Option<i64>, risk: Option<&str>| alerts::ScoreFacts {
            total: total.and_then(|t| u8::try_from(t).ok()),
            severity: risk.and_then(alerts::severity_of_risk),
        };
        // (the decision, whether it may fire)
        let decisions: Vec<(Decision, bool)> = current
            .iter()
            .map(|c| {
                let d = Decision {
                    prev: c
                        .prev
                        .as_ref()
                        .map(|(total, risk)| facts(*total, risk.as_deref())),
                    now: facts(c.score.total.map(i64::from), c.risk.as_deref()),
                    partial: c.score.partial,
                    min_total_24h: c.min_24h.and_then(|t| u8::try_from(t).ok()),
                };
                (d, d.may_fire())
            })
            .collect();
        let may_fire: Vec<i64> = current
            .iter()
            .zip(&decisions)
            .filter(|(_, (_, may))| *may)
            .map(|(c, _)| c.settings.patient_id)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        let live = match self.store.live_alert_rules(&may_fire).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, patients = may_fire.len(), "cannot read live alerts; built-in alerts skipped");
                None
            }
        };
        let mut firings = Vec::new();
        let mut pushes = Vec::new();
        for (c, (decide, may)) in current.into_iter().zip(&decisions) {
            if let Some(live) = live.as_ref().filter(|_| *may) {
                let live = live
                    .get(&c.settings.patient_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let fired = self.builtin_alerts(
                    &c.settings,
                    &c.score,
                    c.risk.as_deref(),
                    c.at,
                    decide,
                    live,
                    &firings,
                );
                firings.extend(fired.into_iter().map(|firing| vigil_store::BatchFiring {
                    firing,
                    update_only: false,
                }));
            }
            if c.push {
                pushes.push((c.settings.ward_id, c.settings.patient_id, c.row));
            }
        }
        lap("alerts");
        Scored {
            settings: settings_of,
            rows,
            pushes,
            firings,
        }
    }

    /// Store a pass's scores and alerts in one transaction, then push the
    /// scores to the live page and announce the alerts. If that fails the
    /// two are tried apart, so that an alert is not lost to a score that
    /// cannot be stored (nor a score to an alert).
    async fn store_pass(
        &mut self,
        rows: Vec<vigil_store::NewScore>,
        pushes: Vec<(i64, i64, usize)>,
        firings: Vec<vigil_store::BatchFiring>,
    ) {
        if rows.is_empty() && firings.is_empty() {
            return;
        }
        let received = self.batch_received;
        match self.store.score_and_fire(&rows, &firings, Utc::now()).await {
            Ok(fired) => {
                self.push_scores(rows, pushes);
                for (alert, outcome) in fired.into_iter().flatten() {
                    self.announce(alert, outcome, received);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, scores = rows.len(), firings = firings.len(), "storing a pass's scores and alerts together failed; storing them apart");
                match self.store.score_insert_many(&rows).await {
                    Ok(()) => self.push_scores(rows, pushes),
                    Err(e) => {
                        tracing::error!(error = %e, scores = rows.len(), "storing scores failed");
                        // The remembered history now holds scores that are not stored.
                        for r in &rows {
                            self.history.remove(&r.patient_id);
                        }
                    }
                }
                self.fire(firings).await;
            }
        }
    }

    /// Push stored scores to the live page: `pushes` are (ward, patient,
    /// index in `rows`). The details go as they are (a score's detail is a
    /// large map: copying it was a tenth of a pass).
    fn push_scores(&self, rows: Vec<vigil_store::NewScore>, pushes: Vec<(i64, i64, usize)>) {
        let mut details: Vec<serde_json::Value> = rows.into_iter().map(|r| r.detail).collect();
        for (ward_id, patient_id, row) in pushes {
            let score = std::mem::take(&mut details[row]);
            let _ = self.events.send(LiveEvent::Score {
                ward_id,
                patient_id,
                score,
            });
        }
    }

    /// Make sure the remembered score history of `patient` covers `from`
    /// onwards, reading it from the store if not; `false` if it cannot.
    async fn load_history(&mut self, patient: i64, from: chrono::DateTime<Utc>) -> bool {
        if self.history.get(&patient).is_some_and(|h| h.from <= from) {
            return true;
        }
        let loaded = async {
            let latest = self.store.latest_score_time(patient).await?;
            let rows = self.store.scores(patient, Some(from), None).await?;
            Ok::<_, vigil_store::StoreError>(ScoreHistory {
                from,
                latest,
                rows: rows
                    .into_iter()
                    .map(|r| (r.scored_at, r.total, r.risk))
                    .collect(),
            })
        };
        match loaded.await {
            Ok(h) => {
                self.history.insert(patient, h);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, patient, "cannot read score history; scoring skipped");
                false
            }
        }
    }

    /// The patient's NEWS2 as of `at` from the latest stored row of each code.
    fn score_of(
        &self,
        settings: &vigil_store::EpisodeSettings,
        rows: Vec<ObservationRow>,
        at: chrono::DateTime<Utc>,
    ) -> vigil_clinical::News2Score {
        let window = self
            .engine
            .pathways()
            .get(&settings.pathway)
            .map(|p| p.freshness)
            .unwrap_or_else(vigil_clinical::default_freshness);
        let episode = vigil_store::scoring::clinical_episode(settings);
        vigil_clinical::score_home(&vigil_store::scoring::readings(&rows), &episode, window, at)
    }

    /// The pathway's escalation delay for a severity (CONTRACTS.md §5
    /// defaults if the pathway is unknown).
    fn escalation_for(&self, pathway: &str, sev: Severity) -> Option<chrono::Duration> {
        match self.engine.pathways().get(pathway) {
            Some(p) => crate::rules::escalation(p, sev),
            None => escalation_delay(sev),
        }
    }

    /// The built-in NEWS2 alerts of one score (docs/alerts.md): `decide`
    /// says what fires given which of its two rules are live, `live` is the
    /// patient's live alert rules as stored, and `pending` the firings of
    /// earlier scores of this pass, yet to be stored.
    #[expect(
        clippy::too_many_arguments,
        reason = "one score's inputs, each from a different stage of the pass"
    )]
    fn builtin_alerts(
        &self,
        settings: &vigil_store::EpisodeSettings,
        score: &vigil_clinical::News2Score,
        risk: Option<&str>,
        at: chrono::DateTime<Utc>,
        decide: &Decision,
        live: &[String],
        pending: &[vigil_store::BatchFiring],
    ) -> Vec<AlertFiring> {
        let is_live = |rule: &str| {
            live.iter().any(|r| r == rule)
                || pending
                    .iter()
                    .any(|b| b.firing.patient_id == settings.patient_id && b.firing.rule_id == rule)
        };
        let firings = decide.firings(is_live(alerts::NEWS2), is_live(alerts::NEWS2_RISING));
        let evidence: Vec<i64> = score.subscores.iter().filter_map(|s| s.obs_id).collect();
        firings
            .into_iter()
            .map(|f| AlertFiring {
                patient_id: settings.patient_id,
                ward_id: settings.ward_id,
                rule_id: f.rule_id.to_string(),
                severity: f.severity,
                message: f.message,
                value: serde_json::json!({"total": score.total, "risk": risk, "partial": score.partial}),
                evidence: evidence.clone(),
                at,
                escalate_at: self.escalation_for(&settings.pathway, f.severity).map(|d| Utc::now() + d),
            })
            .collect()
    }

    /// The pass's device status messages: all kept as their devices' last
    /// status in one transaction and routed in one query (one write per
    /// message was most of a pass when thousands of devices connected at
    /// once, docs/benchmarks.md), then each, in arrival order, to the rules
    /// engine, the auto-resolution of device alerts and the live page.
    async fn statuses(&mut self, items: Vec<(String, bytes::Bytes)>) {
        if items.is_empty() {
            return;
        }
        let now = Utc::now();
        let parsed: Vec<(String, serde_json::Value)> = items
            .into_iter()
            .filter_map(|(device, payload)| {
                match serde_json::from_slice::<serde_json::Value>(&payload) {
                    Ok(status) => Some((device, status)),
                    Err(_) => {
                        tracing::info!(device, "unreadable status ignored");
                        None
                    }
                }
            })
            .collect();
        // Keep each as the device's last status (shown on the patient page).
        let reports: Vec<_> = parsed
            .iter()
            .map(|(d, s)| (d.clone(), crate::status::report(s, now)))
            .collect();
        if let Err(e) = self.store.device_status_record_many(&reports).await {
            tracing::warn!(statuses = reports.len(), error = %e, "device statuses not stored");
        }
        let devices: BTreeSet<&str> = parsed.iter().map(|(d, _)| d.as_str()).collect();
        let routes = match self
            .store
            .device_routes(&devices.into_iter().collect::<Vec<_>>())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot route device statuses");
                return;
            }
        };
        for (device, status) in parsed {
            let Some(route) = routes.get(&device) else {
                continue;
            };
            let ds = vigil_rules::DeviceStatus {
                online: status
                    .get("online")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true),
                battery_pct: status
                    .get("battery_pct")
                    .and_then(|v| v.as_u64())
                    .and_then(|v| u8::try_from(v).ok()),
                signal: status
                    .get("signal")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            };
            let now = Utc::now();
            let mut cleared = vec![format!("device-offline:{device}")];
            if ds.signal.as_deref() != Some("lead_off") {
                cleared.push(format!("device-lead-off:{device}"));
            }
            if ds.battery_pct.is_some_and(|b| b >= 30) {
                cleared.push(format!("device-battery-low:{device}"));
            }
            if self.ensure_in_engine(route.patient_id).await.is_some() {
                match self
                    .engine
                    .device_status(route.patient_id, &device, ds, now)
                {
                    Ok(outputs) => self.apply_outputs(outputs, now).await,
                    Err(e) => tracing::error!(error = %e, "rules engine refused a device status"),
                }
            }
            self.auto_resolve(route.patient_id, &cleared, "device reports normally again")
                .await;
            let _ = self.events.send(LiveEvent::DeviceStatus {
                ward_id: route.ward_id,
                patient_id: route.patient_id,
                device_id: device,
                status,
            });
        }
    }
}

/// A pass's scoring, computed and not yet stored.
#[derive(Default)]
struct Scored {
    /// The episode settings read, by patient.
    settings: HashMap<i64, vigil_store::EpisodeSettings>,
    rows: Vec<vigil_store::NewScore>,
    /// (ward, patient, index in `rows`) of each score to push once stored.
    pushes: Vec<(i64, i64, usize)>,
    /// The built-in NEWS2 alerts the scores raise, in order.
    firings: Vec<vigil_store::BatchFiring>,
}

/// Adds the time since the last lap to a stage's counter.
struct StageClock<'a> {
    counter: &'a prometheus::CounterVec,
    last: std::time::Instant,
}

impl<'a> StageClock<'a> {
    fn new(counter: &'a prometheus::CounterVec) -> Self {
        StageClock {
            counter,
            last: std::time::Instant::now(),
        }
    }

    fn lap(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        self.counter
            .with_label_values(&[stage])
            .inc_by((now - self.last).as_secs_f64());
        self.last = now;
    }
}

/// Publish `body` on the device's `cmd` topic.
async fn send_cmd(client: &AsyncClient, device: &str, body: serde_json::Value) {
    let payload = body.to_string();
    if let Err(e) = client
        .publish(acl::cmd_topic(device), QoS::AtLeastOnce, false, payload)
        .await
    {
        tracing::warn!(error = %e, device, "could not queue cmd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn a_backlog_is_the_batch_without_waiting_for_company() {
        let (tx, mut rx) = mpsc::channel(16);
        for i in 1..=3 {
            tx.send(i).await.unwrap();
        }
        let mut batch = vec![0];
        let start = std::time::Instant::now();
        collect(&mut rx, &mut batch, Duration::from_secs(10)).await;
        assert_eq!(batch, vec![0, 1, 2, 3]);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "waited for company behind a backlog: {:?}",
            start.elapsed()
        );
        drop(tx);
    }

    #[tokio::test]
    async fn a_lone_message_waits_a_moment_for_company() {
        let (tx, mut rx) = mpsc::channel(16);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(1).await;
        });
        let mut batch = vec![0];
        collect(&mut rx, &mut batch, Duration::from_secs(2)).await;
        assert_eq!(batch, vec![0, 1]);
    }

    #[tokio::test]
    async fn a_batch_stops_at_its_largest() {
        let (tx, mut rx) = mpsc::channel(MAX_BATCH + 8);
        for i in 1..MAX_BATCH + 8 {
            tx.send(i).await.unwrap();
        }
        let mut batch = vec![0];
        collect(&mut rx, &mut batch, Duration::from_secs(10)).await;
        assert_eq!(batch.len(), MAX_BATCH);
        assert_eq!(rx.len(), 8);
    }

    fn t(h: i64) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    #[test]
    fn score_history_gives_the_previous_day_and_forgets_older_rows() {
        let mut h = ScoreHistory {
            from: t(-48),
            latest: None,
            rows: Vec::new(),
        };
        assert_eq!(h.day_before(t(0)), (None, None));
        h.add(t(-20), Some(1), Some("low".into()));
        h.add(t(-2), Some(5), Some("medium".into()));
        h.add(t(-10), Some(3), Some("low".into()));
        assert_eq!(h.latest, Some(t(-2)));
        assert_eq!(
            h.from,
            t(-27),
            "rows more than 25 h behind the newest are forgotten"
        );
        // Out of order adds are kept in time order; the day ends at `at`, inclusive.
        assert_eq!(
            h.day_before(t(0)),
            (Some((Some(5), Some("medium".into()))), Some(1))
        );
        assert_eq!(
            h.day_before(t(5)),
            (Some((Some(5), Some("medium".into()))), Some(3)),
            "t(-20) is more than a day before t(5)"
        );
        assert_eq!(
            h.day_before(t(-10)),
            (Some((Some(3), Some("low".into()))), Some(1))
        );
        assert_eq!(h.day_before(t(-21)), (None, None));
        // The newest score moves on: t(-20) falls out, and `from` says so.
        h.add(t(10), None, None);
        assert_eq!(h.from, t(-15));
        assert_eq!(
            h.rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [t(-10), t(-2), t(10)]
        );
        assert_eq!(
            h.day_before(t(10)),
            (Some((None, None)), Some(3)),
            "a partial score has no total, and is the newest"
        );
    }

    fn row(id: i64, code: &str, value: f64, at: chrono::DateTime<Utc>) -> ObservationRow {
        ObservationRow {
            id,
            code: code.into(),
            value: ObsValue::Number(value),
            unit: None,
            measured_at: at,
            received_at: at,
            device_id: "d".into(),
            seq: id as u32,
        }
    }

    #[test]
    fn as_of_answers_like_latest_per_code_for_ascending_times() {
        let values = |rows: Vec<ObservationRow>| {
            rows.iter()
                .map(|r| (r.code.clone(), r.id))
                .collect::<Vec<_>>()
        };
        // Base: the latest at t(0). Later rows arrive unsorted, one of them
        // at t(0) again (the range read includes its lower edge).
        let mut a = AsOf::new(
            vec![row(1, "pulse", 70.0, t(-1)), row(2, "spo2", 97.0, t(0))],
            vec![
                row(6, "spo2", 90.0, t(2)),
                row(2, "spo2", 97.0, t(0)),
                row(4, "pulse", 80.0, t(1)),
                row(5, "pulse", 81.0, t(1)),
            ],
        );
        assert_eq!(
            values(a.at(t(0))),
            [("pulse".into(), 1), ("spo2".into(), 2)]
        );
        // Two rows at the same time: the later insert wins.
        assert_eq!(
            values(a.at(t(1))),
            [("pulse".into(), 5), ("spo2".into(), 2)]
        );
        assert_eq!(
            values(a.at(t(3))),
            [("pulse".into(), 5), ("spo2".into(), 6)]
        );
    }

    #[test]
    fn stored_work_merges_keeping_the_earliest_arrival() {
        let mut a = Stored {
            received_at: Some(t(2)),
            to_score: BTreeMap::from([(1, BTreeSet::from([t(1)]))]),
            ..Stored::default()
        };
        assert!(!a.is_empty());
        a.merge(Stored {
            received_at: Some(t(1)),
            to_score: BTreeMap::from([(1, BTreeSet::from([t(2)])), (2, BTreeSet::from([t(0)]))]),
            ..Stored::default()
        });
        assert_eq!(a.received_at, Some(t(1)));
        assert_eq!(a.to_score[&1], BTreeSet::from([t(1), t(2)]));
        assert_eq!(a.to_score.len(), 2);
        assert!(Stored::default().is_empty());
    }
}
