//! The ingest loop: MQTT in, durable store, end-to-end acks out.
//!
//! ```text
//! rumqttc event loop ──publish──▶ Intake: batch ── decode/validate/route ──▶ store_routed_batch (one tx)
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
//! `store_routed_batch` stored the batch (the commit happened). If the commit
//! fails, nothing is acked; the device keeps the message and resends it,
//! and the `(device, seq)` key makes the resend harmless. A commit that
//! reports an error may still have happened (a connection lost during
//! `COMMIT`); the resend is then a duplicate and feeds nothing to scoring,
//! so the intake has the worker take up whatever such a batch stored before
//! it commits anything else (`Intake::check_unsure_commit`). The client uses
//! manual MQTT acks too, so with an external broker and a persistent
//! session a message is redelivered if the daemon dies mid-batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use vigil_store::{
    AlertFiring, AlertStatus, BatchOutcome, EnteredReading, FiringOutcome, LiveEvent,
    LiveObservation, NewDerivedObservation, NewEcgChunk, NewObsMessage, NewObservation,
    NewRejected, ObsValue, ObservationRow, PassProgress, RuleAction, Severity, Store,
};

use crate::alerts::Decision;
use crate::decode::{Rejection, decode_obs};
use crate::metrics::IngestMetrics;
use crate::{IngestConfig, acl, alerts, ecg};

mod readings;
mod routes;
mod worker;
use worker::Worker;

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
    events: vigil_store::LiveHub,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let now = Utc::now();
        fire_follow_ups(store.as_ref(), &events, now).await;
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

/// Follow-ups put in the queue a second at most: more waits a second.
const FOLLOW_UPS_PER_TICK: i64 = 100;

/// Put each follow-up whose time has come in its ward's alert queue, as a
/// `follow-up` alert of low severity (docs/alerts.md "Follow-ups"). Raised
/// first and marked after, so that a crash between the two raises it again
/// (merged into the live alert) rather than losing it. Its reason is free
/// text: it goes in the alert's `latest_value`, not its message, which the
/// alert webhook posts.
pub async fn fire_follow_ups(
    store: &dyn Store,
    events: &vigil_store::LiveHub,
    now: chrono::DateTime<Utc>,
) {
    let due = match store.follow_ups_due(now, FOLLOW_UPS_PER_TICK).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the follow-ups due");
            return;
        }
    };
    for d in due {
        let f = &d.follow_up;
        let firing = AlertFiring {
            patient_id: f.patient_id,
            ward_id: d.ward_id,
            rule_id: vigil_store::FOLLOW_UP_RULE.into(),
            severity: Severity::Low,
            message: format!(
                "Follow-up due at {}, asked for by {}",
                f.due_at.format("%H:%M UTC"),
                f.set_by
            ),
            value: serde_json::json!({
                "follow_up_id": f.id, "reason": f.reason, "due_at": f.due_at,
                "set_by": f.set_by, "set_at": f.set_at,
            }),
            evidence: Vec::new(),
            at: f.due_at,
            escalate_at: None,
        };
        let alert_id = match store.alert_fire(firing, now).await {
            Ok((alert, outcome)) => {
                let id = alert.id;
                tracing::info!(
                    alert_id = id,
                    patient = alert.patient_id,
                    follow_up = f.id,
                    "follow-up due: put in the alert queue"
                );
                let ward_id = alert.ward_id;
                let _ = match outcome {
                    FiringOutcome::Raised => events.send(LiveEvent::Alert { ward_id, alert }),
                    FiringOutcome::Updated => events.send(LiveEvent::AlertUpdate {
                        ward_id,
                        alert,
                        action: "updated".into(),
                        actor: "system".into(),
                    }),
                    FiringOutcome::Superseded => 0,
                };
                Some(id)
            }
            // The stay has ended: nothing is raised for a discharged patient.
            Err(vigil_store::StoreError::NotFound(_)) => None,
            Err(e) => {
                tracing::error!(error = %e, follow_up = f.id, "cannot raise a follow-up's alert; trying again");
                continue;
            }
        };
        if let Err(e) = store.follow_up_raised(f.id, alert_id, now).await {
            tracing::error!(error = %e, follow_up = f.id, "cannot mark a follow-up raised; it may be raised again (merged into its live alert)");
        }
    }
}

/// How long the intake waits before asking again whether a batch whose
/// commit reported an error was stored, when the store could not be read.
const UNSURE_RETRY: Duration = Duration::from_secs(1);

/// How many times a batch is routed and committed when devices' routes
/// keep changing under it (each change moves the route generation), before
/// it is left unacked for the devices to resend.
const ROUTE_TRIES: usize = 3;

/// Seqs an entered reading tries before giving up: one clinician entering
/// this many readings within a second is not a person typing.
const ENTERED_TRIES: u32 = 8;
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
    /// Send when stored observations were deleted (retention): the worker
    /// then forgets the readings it holds for scoring.
    pub readings_deleted: mpsc::Sender<()>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start the ingest client against `config.broker`. `rescore` carries
/// patient ids whose score must be recomputed now (an episode setting
/// changed); `entered`, readings clinicians entered, to be stored.
#[expect(
    clippy::too_many_arguments,
    reason = "the daemon's wiring: each is a distinct channel or handle"
)]
pub fn spawn(
    config: IngestConfig,
    store: Arc<dyn Store>,
    events: vigil_store::LiveHub,
    metrics: IngestMetrics,
    rescore: mpsc::Receiver<i64>,
    entered: mpsc::Receiver<EnteredReading>,
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
        routes: routes::Routes::default(),
        unsure_commit: false,
        client: client.clone(),
        store: store.clone(),
        events: events.clone(),
        metrics: metrics.clone(),
    };
    let escalate = tokio::spawn(escalator(store.clone(), events.clone(), cancel.clone()));
    let worker = Worker::new(pathways, client, store, events, metrics);
    let (stored_tx, stored_rx) = mpsc::channel(STORED_QUEUE);
    // The intake commits nothing until the worker has taken up what the
    // last run stored and did not finish (`Worker::catch_up`): those
    // readings are then exactly the ones above the worker's progress.
    let (caught_up_tx, caught_up) = oneshot::channel();
    let batch = tokio::spawn(intake.run(rx, entered, stored_tx, caught_up, cancel.clone()));
    let (readings_deleted, deleted) = mpsc::channel(1);
    let work = tokio::spawn(worker.run(
        stored_rx,
        rescore,
        rule_actions,
        deleted,
        caught_up_tx,
        cancel,
    ));
    Running {
        connected,
        readings_deleted,
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
    routes: routes::Routes,
    /// The last batch's commit reported an error (it may have happened).
    unsure_commit: bool,
    client: AsyncClient,
    store: Arc<dyn Store>,
    events: vigil_store::LiveHub,
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
    /// Patients whose observations may be stored without being in `feed`:
    /// their batch's commit reported an error (it may have happened), or a
    /// resend was a duplicate (of a message the worker may not have seen).
    unsure: BTreeSet<i64>,
    /// The highest id of the observations stored here: once the pass that
    /// takes this work has stored its scores and alerts, the worker's
    /// progress (`Store::worker_progress`) moves up to it.
    last_observation_id: Option<i64>,
    /// Set by the intake after a batch whose commit reported an error:
    /// once this work's pass is done, the worker takes up whatever that
    /// batch stored and answers here (`Worker::check_unsure_commit`).
    check: Option<oneshot::Sender<bool>>,
}

impl Stored {
    fn is_empty(&self) -> bool {
        self.to_score.is_empty()
            && self.feed.is_empty()
            && self.ecg.is_empty()
            && self.statuses.is_empty()
            && self.unsure.is_empty()
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
        self.unsure.extend(later.unsure);
        self.last_observation_id = self.last_observation_id.max(later.last_observation_id);
        // At most one is ever queued: the intake waits for its answer.
        self.check = self.check.take().or(later.check);
    }
}

/// The outcomes of a batch's messages and of its chunks, in order (`None`
/// for a part the batch did not have).
type Outcomes = (Option<Vec<BatchOutcome>>, Option<Vec<BatchOutcome>>);

/// What one try at committing a batch did.
enum Committed {
    /// The outcomes, or `None`: failed, nothing acked.
    Done(Option<Outcomes>),
    /// Nothing stored: the devices' routes changed since they were looked up.
    RoutesChanged,
    /// The commit reported an error: nothing acked, but it may have
    /// happened.
    Failed,
}

/// Which uplink a rejected message came on.
#[derive(Clone, Copy)]
enum Uplink {
    Obs,
    Ecg,
}

/// One ECG chunk that passed decoding and routing, waiting for the commit.
struct PendingEcg {
    /// Its place in the batch.
    at: usize,
    device_id: String,
    patient_id: i64,
    ward_id: i64,
    received_at: chrono::DateTime<Utc>,
    chunk: ecg::DecodedChunk,
}

/// One message that passed decoding and routing, waiting for the commit.
struct Pending {
    /// Its place in the batch.
    at: usize,
    msg: NewObsMessage,
    ward_id: i64,
}

impl Intake {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Publish>,
        mut entered: mpsc::Receiver<EnteredReading>,
        out: mpsc::Sender<Stored>,
        caught_up: oneshot::Receiver<()>,
        cancel: CancellationToken,
    ) {
        // Sent, or dropped by a worker that could not catch up: go on
        // either way.
        tokio::select! {
            _ = caught_up => {}
            _ = cancel.cancelled() => return,
        }
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let stored = tokio::select! {
                p = rx.recv() => {
                    let Some(first) = p else { break };
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
                    stored
                }
                Some(r) = entered.recv() => self.entered(r).await,
                _ = cancel.cancelled() => break,
            };
            if std::mem::take(&mut self.unsure_commit) {
                if !self.check_unsure_commit(stored, &out, &cancel).await {
                    break;
                }
                continue;
            }
            if !stored.is_empty() && out.send(stored).await.is_err() {
                break;
            }
        }
    }

    /// After a batch whose commit reported an error: hand the worker this
    /// batch's work with a request to take up whatever the batch stored,
    /// and commit nothing until it has (`Worker::check_unsure_commit`;
    /// hazard AL-25). If the store cannot be read yet, ask again every
    /// [`UNSURE_RETRY`]. `false` if the daemon is stopping.
    async fn check_unsure_commit(
        &mut self,
        mut work: Stored,
        out: &mpsc::Sender<Stored>,
        cancel: &CancellationToken,
    ) -> bool {
        loop {
            let (tx, rx) = oneshot::channel();
            work.check = Some(tx);
            if out.send(work).await.is_err() {
                return false;
            }
            let checked = tokio::select! {
                r = rx => r.unwrap_or(false),
                _ = cancel.cancelled() => return false,
            };
            if checked {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(UNSURE_RETRY) => {}
                _ = cancel.cancelled() => return false,
            }
            work = Stored::default();
        }
    }

    /// Commit one batch and ack it; returns the work for the worker.
    async fn process(&mut self, batch: &[Publish]) -> Stored {
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
        let mut routes_at = None;
        let routes = if devices.is_empty() {
            // Statuses only: nothing is routed.
            Some(self.routes.known())
        } else {
            match self
                .routes
                .refresh(&*self.store, &devices.into_iter().collect::<Vec<_>>())
                .await
            {
                Ok(generation) => {
                    routes_at = Some(generation);
                    Some(self.routes.known())
                }
                Err(e) => {
                    tracing::error!(error = %e, "device lookup failed; batch left unacked");
                    None
                }
            }
        };
        let mut pending: Vec<Pending> = Vec::new();
        let mut pending_ecg: Vec<PendingEcg> = Vec::new();
        for (at, (p, topic)) in batch.iter().zip(&topics).enumerate() {
            let Some((device, kind)) = *topic else {
                tracing::warn!("message on unexpected topic ignored");
                continue;
            };
            match kind {
                "obs" => match self.accept_obs(at, device, &p.payload, now, routes) {
                    Ok(Some(msg)) => pending.push(msg),
                    Ok(None) => {}
                    Err(r) => {
                        self.reject(Uplink::Obs, device, &p.topic, &p.payload, r, now)
                            .await
                    }
                },
                "ecg" => match self.accept_ecg(at, device, &p.payload, now, routes) {
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
            .commit(batch, &mut pending, &mut pending_ecg, routes_at, now)
            .await
            .unwrap_or_default();
        let stored_at = Utc::now();
        match &obs_outcomes {
            Some(outcomes) => {
                for (p, outcome) in pending.iter().zip(outcomes) {
                    acks.entry(p.msg.device_id.clone())
                        .or_default()
                        .push(p.msg.seq);
                    match outcome {
                        BatchOutcome::Stored { .. } => {
                            work.to_score
                                .entry(p.msg.patient_id)
                                .or_default()
                                .insert(p.msg.measured_at);
                        }
                        BatchOutcome::Duplicate => {
                            work.unsure.insert(p.msg.patient_id);
                        }
                    }
                }
            }
            // The commit may have happened all the same.
            None => work.unsure.extend(pending.iter().map(|p| p.msg.patient_id)),
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
            work.last_observation_id = outcomes
                .iter()
                .filter_map(|o| match o {
                    BatchOutcome::Stored { observation_ids } => observation_ids.iter().max(),
                    BatchOutcome::Duplicate => None,
                })
                .max()
                .copied();
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

    /// Store a reading a clinician entered, as a message of its own
    /// (source `manual:{username}`), between device batches: observation
    /// ids stay in the order the worker takes them up, so its progress
    /// (and a restart's catch-up) covers entered readings too. Answers the
    /// request once it is committed, or has failed.
    async fn entered(&mut self, r: EnteredReading) -> Stored {
        let now = Utc::now();
        let mut work = Stored {
            received_at: Some(now),
            ..Stored::default()
        };
        // Messages are keyed by (source, seq): the second of entry, moved
        // past another entry by the same clinician in the same second.
        let mut seq = u32::try_from(now.timestamp()).unwrap_or(u32::MAX);
        for _ in 0..ENTERED_TRIES {
            let msg = NewObsMessage {
                device_id: r.source.clone(),
                seq,
                patient_id: r.patient_id,
                measured_at: r.measured_at,
                received_at: now,
                obs: r.obs.clone(),
            };
            let outcome = self
                .store
                .store_uplink_batch(std::slice::from_ref(&msg), &[])
                .await
                .map(|(mut o, _)| o.pop());
            match outcome {
                Ok(Some(BatchOutcome::Stored { observation_ids })) => {
                    work.to_score
                        .entry(r.patient_id)
                        .or_default()
                        .insert(r.measured_at);
                    work.last_observation_id = observation_ids.iter().max().copied();
                    let p = Pending {
                        at: 0,
                        msg,
                        ward_id: r.ward_id,
                    };
                    self.observation_event(&p, observation_ids.clone(), &mut work.feed);
                    let _ = r.done.send(Some(observation_ids));
                    return work;
                }
                Ok(Some(BatchOutcome::Duplicate)) => seq = seq.wrapping_add(1),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, patient_id = r.patient_id, "store failed; an entered reading may not be stored");
                    // As after a device batch's failed commit: the worker
                    // takes up whatever it stored before anything more is.
                    self.unsure_commit = true;
                    work.unsure.insert(r.patient_id);
                    break;
                }
            }
        }
        let _ = r.done.send(None);
        work
    }

    /// Commit the batch's messages and ECG chunks, routed under route
    /// generation `routes_at`, in one transaction: the outcomes of each
    /// (`None` if it had none), or nothing acked at all on failure. If the
    /// routes changed meanwhile, nothing was stored: route the batch again
    /// with routes looked up afresh (rejecting what has no route now) and
    /// commit that, up to [`ROUTE_TRIES`] times.
    async fn commit(
        &mut self,
        batch: &[Publish],
        pending: &mut Vec<Pending>,
        pending_ecg: &mut Vec<PendingEcg>,
        routes_at: Option<i64>,
        now: chrono::DateTime<Utc>,
    ) -> Option<Outcomes> {
        // No generation: no device was routed, so nothing is pending.
        let mut routes_at = routes_at?;
        for tries in 1..=ROUTE_TRIES {
            match self.store_uplink(pending, pending_ecg, routes_at).await {
                Committed::Done(outcomes) => return outcomes,
                Committed::Failed => {
                    self.unsure_commit = true;
                    return None;
                }
                Committed::RoutesChanged => {}
            }
            self.routes.forget();
            if tries < ROUTE_TRIES {
                routes_at = self.reroute(batch, pending, pending_ecg, now).await?;
            }
        }
        tracing::error!(
            tries = ROUTE_TRIES,
            "devices' routes changed under every try; batch left unacked"
        );
        self.count_unacked(pending.len(), pending_ecg.len());
        None
    }

    /// Count messages and chunks left unacked by a failed commit (the
    /// devices resend them).
    fn count_unacked(&self, messages: usize, chunks: usize) {
        self.metrics
            .obs_messages
            .with_label_values(&["error"])
            .inc_by(messages as u64);
        self.metrics
            .ecg_chunks
            .with_label_values(&["error"])
            .inc_by(chunks as u64);
    }

    /// Route the batch's pending messages and chunks again, with routes
    /// looked up afresh; those whose device has no route now are rejected
    /// (`no_patient`) and dropped. Returns the generation they were routed
    /// under, or `None` if the look-up failed (the batch is left unacked).
    async fn reroute(
        &mut self,
        batch: &[Publish],
        pending: &mut Vec<Pending>,
        pending_ecg: &mut Vec<PendingEcg>,
        now: chrono::DateTime<Utc>,
    ) -> Option<i64> {
        let devices: BTreeSet<&str> = pending
            .iter()
            .map(|p| p.msg.device_id.as_str())
            .chain(pending_ecg.iter().map(|c| c.device_id.as_str()))
            .collect();
        let devices: Vec<&str> = devices.into_iter().collect();
        let generation = match self.routes.refresh(&*self.store, &devices).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "device lookup failed; batch left unacked");
                return None;
            }
        };
        let routes = Some(self.routes.known());
        let mut refused = Vec::new();
        pending.retain_mut(|p| {
            let routed = self.route(
                &p.msg.device_id,
                p.msg.seq,
                routes,
                &self.metrics.obs_messages,
            );
            match routed {
                Ok(Some(r)) => {
                    p.msg.patient_id = r.patient_id;
                    p.ward_id = r.ward_id;
                    true
                }
                Ok(None) => false,
                Err(r) => {
                    refused.push((Uplink::Obs, p.at, p.msg.device_id.clone(), r));
                    false
                }
            }
        });
        pending_ecg.retain_mut(|c| {
            let routed = self.route(&c.device_id, c.chunk.seq, routes, &self.metrics.ecg_chunks);
            match routed {
                Ok(Some(r)) => {
                    c.patient_id = r.patient_id;
                    c.ward_id = r.ward_id;
                    true
                }
                Ok(None) => false,
                Err(r) => {
                    refused.push((Uplink::Ecg, c.at, c.device_id.clone(), r));
                    false
                }
            }
        });
        for (kind, at, device, r) in refused {
            let p = &batch[at];
            self.reject(kind, &device, &p.topic, &p.payload, r, now)
                .await;
        }
        Some(generation)
    }

    /// Commit the batch's messages and ECG chunks in one transaction,
    /// checked against route generation `routes_at`.
    async fn store_uplink(
        &self,
        pending: &[Pending],
        pending_ecg: &[PendingEcg],
        routes_at: i64,
    ) -> Committed {
        if pending.is_empty() && pending_ecg.is_empty() {
            return Committed::Done(None);
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
        match self
            .store
            .store_routed_batch(routes_at, &msgs, &chunks)
            .await
        {
            Ok(Some((obs, ecg))) => Committed::Done(Some((
                (!msgs.is_empty()).then_some(obs),
                (!chunks.is_empty()).then_some(ecg),
            ))),
            Ok(None) => Committed::RoutesChanged,
            Err(e) => {
                // Nothing is acked: every device keeps its messages and resends.
                tracing::error!(error = %e, messages = msgs.len(), chunks = chunks.len(), "store failed; batch not acked");
                self.count_unacked(msgs.len(), chunks.len());
                Committed::Failed
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
                    self.observation_event(p, observation_ids, feed);
                }
            }
        }
    }

    /// A stored message's readings: to the rules engine's feed, and to the
    /// dashboards as an `observation` event.
    fn observation_event(
        &self,
        p: &Pending,
        observation_ids: Vec<i64>,
        feed: &mut Vec<(i64, vigil_clinical::Reading)>,
    ) {
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
        at: usize,
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
            at,
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
        at: usize,
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
            at,
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

/// The QoS a `cmd` message goes at (docs/mqtt.md, "QoS of `cmd`").
///
/// Acks and rejects at 0. They are end to end already: a device keeps every
/// message until it is acked or rejected and resends it after a timeout and
/// on every reconnect, and Vigil answers a resend of a stored message with
/// the same ack. So an ack that a dropped connection loses costs a resend,
/// nothing more, and at QoS 1 each ack cost the broker and the device two
/// more packets (the PUBACKs), about one for every message stored.
///
/// Everything else (patient advice, repeat requests, settings) at 1: nothing
/// sends those again, so the broker's redelivery is their only retry.
fn cmd_qos(body: &serde_json::Value) -> QoS {
    match body["type"].as_str() {
        Some("ack" | "reject") => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    }
}

/// Publish `body` on the device's `cmd` topic.
async fn send_cmd(client: &AsyncClient, device: &str, body: serde_json::Value) {
    let qos = cmd_qos(&body);
    let payload = body.to_string();
    if let Err(e) = client
        .publish(acl::cmd_topic(device), qos, false, payload)
        .await
    {
        tracing::warn!(error = %e, device, "could not queue cmd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn acks_and_rejects_go_at_qos_0_and_everything_else_at_qos_1() {
        use serde_json::json;
        assert_eq!(
            cmd_qos(&json!({"type": "ack", "seqs": [1]})),
            QoS::AtMostOnce
        );
        assert_eq!(
            cmd_qos(&json!({"type": "reject", "seq": 1, "reason": "bad_json"})),
            QoS::AtMostOnce
        );
        for other in ["advice", "repeat", "settings", "anything new"] {
            assert_eq!(
                cmd_qos(&json!({"type": other})),
                QoS::AtLeastOnce,
                "{other}"
            );
        }
        assert_eq!(cmd_qos(&json!({})), QoS::AtLeastOnce);
    }

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
