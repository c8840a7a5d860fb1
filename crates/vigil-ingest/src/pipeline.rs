//! The ingest loop: MQTT in, durable store, end-to-end acks out.
//!
//! ```text
//! rumqttc event loop ──publish──▶ batcher ── decode/validate/route ──▶ store_obs_batch (one tx)
//!                                    │                                     │ Ok
//!                                    │ rejected: dead-letter, then reject  ▼
//!                                    └──────────────────────────── ack {"seqs"} on cmd, events
//! ```
//!
//! The order is the safety property: an `ack` is published only after
//! `store_obs_batch` returned `Ok` (the commit happened). If the commit
//! fails, nothing is acked; the device keeps the message and resends it,
//! and the `(device, seq)` key makes the resend harmless. The client uses
//! manual MQTT acks too, so with an external broker and a persistent
//! session a message is redelivered if the daemon dies mid-batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use vigil_store::{
    AlertFiring, AlertStatus, FiringOutcome, RuleAction, Severity, BatchOutcome, LiveEvent, LiveObservation, NewDerivedObservation, NewEcgChunk, NewObsMessage, NewObservation, NewRejected,
    ObsValue, Store,
};

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
pub async fn escalator(store: Arc<dyn Store>, events: broadcast::Sender<LiveEvent>, cancel: CancellationToken) {
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
            match store.alert_act(a.id, vigil_store::AlertAction::Escalate, "system", now).await {
                Ok(alert) => {
                    tracing::warn!(alert_id = alert.id, patient = alert.patient_id, severity = alert.severity.as_str(), "alert escalated: unacknowledged past its time");
                    let _ = events.send(LiveEvent::AlertUpdate { ward_id: alert.ward_id, alert, action: "escalated".into(), actor: "system".into() });
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
/// How long the first message of a batch may wait for company.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// Handles to the running ingest.
pub struct Running {
    /// `true` while the MQTT connection is up (for `/readyz`).
    pub connected: watch::Receiver<bool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start the ingest client against `config.broker`. `rescore` carries
/// patient ids whose score must be recomputed now (an episode setting changed).
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
    let mut opts = MqttOptions::new(config.client_id.clone(), config.broker_host.clone(), config.broker_port);
    opts.set_credentials(config.username.clone(), config.password.clone());
    opts.set_keep_alive(Duration::from_secs(15));
    // A persistent session: an external broker queues messages for us
    // while we restart.
    opts.set_clean_session(false);
    opts.set_manual_acks(true);
    opts.set_max_packet_size(crate::decode::MAX_PAYLOAD + 1024, crate::decode::MAX_PAYLOAD + 1024);
    opts.set_inflight(1000);
    if let Some(tls) = &config.tls {
        opts.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls.clone())));
    }
    let (client, eventloop) = AsyncClient::new(opts, 4096);
    let (tx, rx) = mpsc::channel(8192);
    let (connected_tx, connected) = watch::channel(false);
    let poll = tokio::spawn(poll_loop(eventloop, client.clone(), tx, connected_tx, cancel.clone()));
    let worker = Worker {
        ecg: ecg::EcgAnalysis::default(),
        engine: vigil_rules::Engine::new(pathways),
        in_engine: std::collections::HashMap::new(),
        feed: Vec::new(),
        batch_received: Utc::now(),
        client,
        store,
        events,
        metrics,
    };
    let escalate = tokio::spawn(escalator(worker.store.clone(), worker.events.clone(), cancel.clone()));
    let batch = tokio::spawn(worker.run(rx, rescore, rule_actions, cancel));
    Running { connected, tasks: vec![poll, batch, escalate] }
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

struct Worker {
    ecg: ecg::EcgAnalysis,
    /// The pathway rules engine and, per patient it knows, their ward.
    engine: vigil_rules::Engine,
    in_engine: std::collections::HashMap<i64, i64>,
    /// Stored observations waiting for the rules engine (after scoring).
    feed: Vec<(i64, vigil_clinical::Reading)>,
    /// When the batch being processed arrived.
    batch_received: chrono::DateTime<Utc>,
    client: AsyncClient,
    store: Arc<dyn Store>,
    events: broadcast::Sender<LiveEvent>,
    metrics: IngestMetrics,
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

impl Worker {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Publish>,
        mut rescore: mpsc::Receiver<i64>,
        mut rule_actions: mpsc::Receiver<RuleAction>,
        cancel: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // Sleep until the engine's next timer (missed readings, device
            // offline), but wake at least every 30 s.
            let now = Utc::now();
            let wake = self.engine.next_deadline().map(|d| d.min(now + chrono::Duration::seconds(30))).unwrap_or(now + chrono::Duration::seconds(30));
            let sleep = (wake - now).to_std().unwrap_or(Duration::ZERO);
            let first = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => break },
                Some(patient) = rescore.recv() => {
                    let now = Utc::now();
                    self.batch_received = now;
                    self.in_engine.remove(&patient);
                    self.ensure_in_engine(patient).await;
                    self.score_at(patient, now, now, true).await;
                    continue;
                }
                Some(action) = rule_actions.recv() => {
                    self.forward_action(action);
                    continue;
                }
                _ = tokio::time::sleep(sleep) => {
                    let now = Utc::now();
                    self.batch_received = now;
                    let outputs = self.engine.tick(now);
                    self.apply_outputs(outputs, now).await;
                    continue;
                }
                _ = cancel.cancelled() => break,
            };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    _ => break,
                }
            }
            self.metrics.batch_size.observe(batch.len() as f64);
            self.metrics.queue_depth.set(rx.len() as i64);
            self.process(&batch).await;
            for p in batch.drain(..) {
                if let Err(e) = self.client.ack(&p).await {
                    tracing::warn!(error = %e, "mqtt ack failed");
                }
            }
        }
    }

    async fn process(&mut self, batch: &[Publish]) {
        let now = Utc::now();
        self.batch_received = now;
        let mut pending: Vec<Pending> = Vec::new();
        let mut pending_ecg: Vec<PendingEcg> = Vec::new();
        for p in batch {
            let Some((device, kind)) = acl::parse_topic(&p.topic) else {
                tracing::warn!("message on unexpected topic ignored");
                continue;
            };
            match kind {
                "obs" => match self.accept_obs(device, &p.payload, now).await {
                    Ok(Some(msg)) => pending.push(msg),
                    Ok(None) => {}
                    Err(r) => self.reject(Uplink::Obs, device, &p.topic, &p.payload, r, now).await,
                },
                "ecg" => match self.accept_ecg(device, &p.payload, now).await {
                    Ok(Some(c)) => pending_ecg.push(c),
                    Ok(None) => {}
                    Err(r) => self.reject(Uplink::Ecg, device, &p.topic, &p.payload, r, now).await,
                },
                _ => self.status(device, &p.payload).await,
            }
        }
        let mut acks: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut to_score: BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>> = BTreeMap::new();
        let obs_outcomes = self.store_obs(&pending).await;
        let ecg_outcomes = self.store_ecg(&pending_ecg).await;
        let stored_at = Utc::now();
        if let Some(outcomes) = &obs_outcomes {
            for (p, outcome) in pending.iter().zip(outcomes) {
                acks.entry(p.msg.device_id.clone()).or_default().push(p.msg.seq);
                if let BatchOutcome::Stored { .. } = outcome {
                    to_score.entry(p.msg.patient_id).or_default().insert(p.msg.measured_at);
                }
            }
        }
        if let Some(outcomes) = &ecg_outcomes {
            for (c, _) in pending_ecg.iter().zip(outcomes) {
                acks.entry(c.device_id.clone()).or_default().push(c.chunk.seq);
            }
        }
        // Acks go out first: everything acked here is committed.
        for (device, mut seqs) in acks {
            seqs.sort_unstable();
            let ack = serde_json::json!({"type": "ack", "seqs": seqs});
            self.send_cmd(&device, ack).await;
        }
        if let Some(outcomes) = obs_outcomes {
            self.observation_events(&pending, outcomes, stored_at);
        }
        if let Some(outcomes) = ecg_outcomes {
            self.analyse_ecg(pending_ecg, outcomes, stored_at, &mut to_score).await;
        }
        // Scoring happens after the acks: a reading is safe once stored,
        // and a scoring failure must never make a device resend.
        for (patient, times) in to_score {
            self.score_new_readings(patient, times, stored_at).await;
        }
        // Then the pathway rules see every new observation, and
        // missed-reading and device-offline alerts resolve themselves now
        // that data has resumed.
        let feed = std::mem::take(&mut self.feed);
        let mut resumed: BTreeMap<i64, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        for (patient, reading) in feed {
            let entry = resumed.entry(patient).or_default();
            entry.0.insert(reading.observation.code.as_str().to_string());
            if let Some(d) = &reading.source {
                entry.1.insert(d.clone());
            }
            self.observe(patient, reading, stored_at).await;
        }
        for (patient, (codes, devices)) in resumed {
            let mut rules: Vec<String> = devices.iter().map(|d| format!("device-offline:{d}")).collect();
            if let Ok(Some(s)) = self.store.episode_settings(patient).await {
                if let Some(p) = self.engine.pathways().get(&s.pathway) {
                    for e in &p.expects {
                        if e.codes.iter().any(|c| codes.contains(c.as_str())) {
                            rules.push(e.id.clone());
                        }
                    }
                }
            }
            self.auto_resolve(patient, &rules, "readings resumed").await;
        }
    }

    /// Resolve the live alerts of `rules` for `patient` as the system: a
    /// missed-reading or device alert whose cause has gone. Clinical alerts
    /// are never passed here: they need a person.
    async fn auto_resolve(&mut self, patient: i64, rules: &[String], why: &str) {
        if rules.is_empty() {
            return;
        }
        let Some(ward) = self.ensure_in_engine(patient).await else { return };
        let live = match self.store.alerts_list(&[ward], None, Some(patient)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read alerts to resolve");
                return;
            }
        };
        let now = Utc::now();
        for a in live.into_iter().filter(|a| a.status != AlertStatus::Resolved && rules.contains(&a.rule_id)) {
            let action = vigil_store::AlertAction::Resolve { outcome: "data-resumed".into(), note: why.into() };
            match self.store.alert_act(a.id, action.clone(), "system", now).await {
                Ok(alert) => {
                    tracing::info!(alert_id = alert.id, rule = %alert.rule_id, "alert resolved: {why}");
                    self.forward_action(RuleAction { patient_id: patient, rule_id: alert.rule_id.clone(), action, actor: "system".into(), at: now });
                    let _ = self.events.send(LiveEvent::AlertUpdate { ward_id: alert.ward_id, alert, action: "resolved".into(), actor: "system".into() });
                }
                Err(e) => tracing::debug!(error = %e, "alert already resolved"),
            }
        }
    }

    /// Make sure the engine knows `patient` with their current episode;
    /// returns their ward, or `None` (and forgets them) once discharged.
    async fn ensure_in_engine(&mut self, patient: i64) -> Option<i64> {
        if let Some(ward) = self.in_engine.get(&patient) {
            return Some(*ward);
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
        if let Err(e) = self.engine.admit(patient, crate::rules::setup(&settings, admitted_at)) {
            tracing::error!(error = %e, patient, "rules engine refused the episode");
            return None;
        }
        self.in_engine.insert(patient, settings.ward_id);
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
                let cutoff = chrono::DateTime::from_timestamp_millis(self.batch_received.timestamp_millis()).unwrap_or(self.batch_received);
                for r in rows.into_iter().filter(|r| r.received_at < cutoff) {
                    if let Some(reading) = crate::rules::reading(&r.code, &r.value, r.unit.as_deref(), r.measured_at, &r.device_id, r.id) {
                        let _ = self.engine.observe(patient, reading, now);
                    }
                }
            }
        }
        Some(settings.ward_id)
    }

    async fn observe(&mut self, patient: i64, reading: vigil_clinical::Reading, now: chrono::DateTime<Utc>) {
        if self.ensure_in_engine(patient).await.is_none() {
            return;
        }
        match self.engine.observe(patient, reading, now) {
            Ok(outputs) => self.apply_outputs(outputs, now).await,
            Err(e) => tracing::error!(error = %e, patient, "rules engine refused an observation"),
        }
    }

    fn forward_action(&mut self, a: RuleAction) {
        let Some(id) = self.engine.open_alert(a.patient_id, &a.rule_id).map(|al| al.id) else { return };
        let r = match &a.action {
            vigil_store::AlertAction::Acknowledge => self.engine.acknowledge(id, &a.actor, a.at, "").map(|_| ()),
            vigil_store::AlertAction::Resolve { outcome, note } => self.engine.resolve(id, &a.actor, a.at, outcome, note).map(|_| ()),
            vigil_store::AlertAction::Escalate => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "engine alert already in that state");
        }
    }

    /// Persist and push what the engine decided.
    async fn apply_outputs(&mut self, outputs: Vec<vigil_rules::Output>, now: chrono::DateTime<Utc>) {
        for out in outputs {
            let patient = match &out {
                vigil_rules::Output::AlertRaised(a)
                | vigil_rules::Output::AlertUpdated { alert: a, .. }
                | vigil_rules::Output::AlertEscalated { alert: a, .. } => a.patient,
                vigil_rules::Output::Advice { patient, .. } | vigil_rules::Output::Repeat { patient, .. } => *patient,
            };
            // A timer may fire for a patient discharged by another process.
            self.in_engine.remove(&patient);
            let Some(ward) = self.ensure_in_engine(patient).await else { continue };
            let pathway = match self.store.episode_settings(patient).await {
                Ok(Some(s)) => self.engine.pathways().get(&s.pathway).cloned(),
                _ => None,
            };
            match crate::rules::effect(pathway.as_ref(), ward, out, now) {
                Some(crate::rules::Effect::Fire { firing, update_only }) => self.fire(firing, update_only).await,
                Some(crate::rules::Effect::Cmd { device, body }) => self.send_cmd(&device, body).await,
                None => {}
            }
        }
    }

    async fn fire(&self, firing: AlertFiring, update_only: bool) {
        if update_only {
            let live = self
                .store
                .alerts_list(&[firing.ward_id], None, Some(firing.patient_id))
                .await
                .map(|a| a.iter().any(|a| a.rule_id == firing.rule_id && a.status != AlertStatus::Resolved))
                .unwrap_or(false);
            if !live {
                return;
            }
        }
        self.persist_firing(firing, Utc::now()).await;
    }

    async fn persist_firing(&self, firing: AlertFiring, received: chrono::DateTime<Utc>) {
        match self.store.alert_fire(firing, Utc::now()).await {
            Ok((alert, FiringOutcome::Raised)) => {
                tracing::info!(alert_id = alert.id, patient = alert.patient_id, rule = %alert.rule_id, severity = alert.severity.as_str(), "alert raised");
                self.metrics.alerts_raised.with_label_values(&[alert.severity.as_str()]).inc();
                let _ = self.events.send(LiveEvent::Alert { ward_id: alert.ward_id, alert });
                let latency = (Utc::now() - received).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
                self.metrics.alert_latency.observe(latency);
            }
            Ok((alert, FiringOutcome::Updated)) => {
                let _ = self.events.send(LiveEvent::AlertUpdate { ward_id: alert.ward_id, alert, action: "updated".into(), actor: "system".into() });
            }
            Ok((_, FiringOutcome::Superseded)) => {}
            Err(e) => tracing::error!(error = %e, "storing an alert failed"),
        }
    }

    /// Commit the observation messages; `None` (nothing acked) on failure.
    async fn store_obs(&self, pending: &[Pending]) -> Option<Vec<BatchOutcome>> {
        if pending.is_empty() {
            return None;
        }
        let msgs: Vec<NewObsMessage> = pending.iter().map(|p| p.msg.clone()).collect();
        let _timer = self.metrics.store_write.with_label_values(&["obs"]).start_timer();
        match self.store.store_obs_batch(&msgs).await {
            Ok(o) => Some(o),
            Err(e) => {
                // Nothing is acked: every device keeps its messages and resends.
                tracing::error!(error = %e, messages = msgs.len(), "store failed; batch not acked");
                self.metrics.obs_messages.with_label_values(&["error"]).inc_by(msgs.len() as u64);
                None
            }
        }
    }

    /// Commit the ECG chunks; `None` (nothing acked) on failure.
    async fn store_ecg(&self, pending: &[PendingEcg]) -> Option<Vec<BatchOutcome>> {
        if pending.is_empty() {
            return None;
        }
        let rows: Vec<NewEcgChunk> = pending
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
        let _timer = self.metrics.store_write.with_label_values(&["ecg"]).start_timer();
        match self.store.store_ecg_batch(&rows).await {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::error!(error = %e, chunks = rows.len(), "ECG store failed; chunks not acked");
                self.metrics.ecg_chunks.with_label_values(&["error"]).inc_by(rows.len() as u64);
                None
            }
        }
    }

    fn observation_events(&mut self, pending: &[Pending], outcomes: Vec<BatchOutcome>, stored_at: chrono::DateTime<Utc>) {
        for (p, outcome) in pending.iter().zip(outcomes) {
            match outcome {
                BatchOutcome::Duplicate => self.metrics.obs_messages.with_label_values(&["duplicate"]).inc(),
                BatchOutcome::Stored { observation_ids } => {
                    self.metrics.obs_messages.with_label_values(&["stored"]).inc();
                    let lag = (stored_at - p.msg.measured_at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.ingest_lag.observe(lag);
                    let obs: Vec<LiveObservation> = p
                        .msg
                        .obs
                        .iter()
                        .zip(observation_ids)
                        .map(|(o, id)| LiveObservation { id, code: o.code.clone(), value: o.value.clone(), unit: o.unit.clone() })
                        .collect();
                    for o in &obs {
                        if let Some(r) = crate::rules::reading(&o.code, &o.value, o.unit.as_deref(), p.msg.measured_at, &p.msg.device_id, o.id) {
                            self.feed.push((p.msg.patient_id, r));
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

    /// Run each patch's analysis over its newly stored chunks, in time order;
    /// store beats and the derived heart rate, push quality and AF changes.
    async fn analyse_ecg(
        &mut self,
        mut pending: Vec<PendingEcg>,
        outcomes: Vec<BatchOutcome>,
        stored_at: chrono::DateTime<Utc>,
        to_score: &mut BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>>,
    ) {
        let mut fresh = Vec::new();
        for (c, o) in pending.drain(..).zip(outcomes) {
            match o {
                BatchOutcome::Duplicate => self.metrics.ecg_chunks.with_label_values(&["duplicate"]).inc(),
                BatchOutcome::Stored { .. } => {
                    self.metrics.ecg_chunks.with_label_values(&["stored"]).inc();
                    fresh.push(c);
                }
            }
        }
        fresh.sort_by(|a, b| (a.device_id.as_str(), a.chunk.t0_ms).cmp(&(b.device_id.as_str(), b.chunk.t0_ms)));
        for c in fresh {
            let d = self.ecg.feed(&c.device_id, &c.chunk);
            if !d.beats.is_empty() {
                if let Err(e) = self.store.store_beats(c.patient_id, &c.device_id, &d.beats).await {
                    tracing::error!(error = %e, device = %c.device_id, "storing beats failed");
                }
            }
            if let Some((at, bpm)) = d.heart_rate {
                let o = NewDerivedObservation {
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    seq: c.chunk.seq,
                    observation: NewObservation { code: "pulse".into(), value: ObsValue::Number(bpm), unit: Some("/min".into()) },
                    measured_at: at,
                    received_at: stored_at,
                };
                match self.store.store_derived(o).await {
                    Ok(id) => {
                        to_score.entry(c.patient_id).or_default().insert(at);
                        if let Some(r) = crate::rules::reading("pulse", &ObsValue::Number(bpm), Some("/min"), at, &c.device_id, id) {
                            self.feed.push((c.patient_id, r));
                        }
                        let _ = self.events.send(LiveEvent::Observation {
                            ward_id: c.ward_id,
                            patient_id: c.patient_id,
                            device_id: c.device_id.clone(),
                            seq: c.chunk.seq,
                            measured_at: at,
                            obs: vec![LiveObservation { id, code: "pulse".into(), value: ObsValue::Number(bpm), unit: Some("/min".into()) }],
                        });
                    }
                    Err(e) => tracing::error!(error = %e, device = %c.device_id, "storing ECG heart rate failed"),
                }
            }
            // The patch's signal quality is a device fact for the rules
            // (lead off → the pathway's device alert).
            if let Some((_, q)) = d.quality.last().copied() {
                let ds = vigil_rules::DeviceStatus { online: true, battery_pct: None, signal: Some(q.to_string()) };
                let now = Utc::now();
                if self.ensure_in_engine(c.patient_id).await.is_some() {
                    if let Ok(outputs) = self.engine.device_status(c.patient_id, &c.device_id, ds, now) {
                        self.apply_outputs(outputs, now).await;
                    }
                }
                if q != "lead_off" {
                    self.auto_resolve(c.patient_id, &[format!("device-lead-off:{}", c.device_id)], "ECG signal back").await;
                }
            }
            if d.possible_af.iter().any(|(_, active)| *active) {
                let at = d.possible_af.iter().rev().find(|(_, a)| *a).map(|(t, _)| *t).unwrap_or(c.chunk.t0_ms);
                let pathway = self.store.episode_settings(c.patient_id).await.ok().flatten().map(|s| s.pathway).unwrap_or_default();
                let firing = AlertFiring {
                    patient_id: c.patient_id,
                    ward_id: c.ward_id,
                    rule_id: format!("ecg-possible-af:{}", c.device_id),
                    severity: Severity::Low,
                    message: "Possible AF — review the ECG strip (a prompt, not a diagnosis)".into(),
                    value: serde_json::json!({"t_ms": at}),
                    evidence: vec![],
                    at: chrono::DateTime::from_timestamp_millis(at).unwrap_or(stored_at),
                    escalate_at: self.escalation_for(&pathway, Severity::Low).map(|d| Utc::now() + d),
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
    }

    /// Decode, validate and route one `ecg` chunk.
    async fn accept_ecg(
        &self,
        device: &str,
        payload: &[u8],
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<PendingEcg>, Rejection> {
        let chunk = ecg::decode_chunk(payload, now)?;
        let route = match self.store.device_route(device).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, device, "device lookup failed; chunk left unacked");
                self.metrics.ecg_chunks.with_label_values(&["error"]).inc();
                return Ok(None);
            }
        };
        let Some(route) = route else {
            return Err(Rejection {
                seq: Some(chunk.seq),
                reason: "no_patient",
                detail: "device is not assigned to an admitted patient".into(),
            });
        };
        Ok(Some(PendingEcg {
            device_id: device.to_string(),
            patient_id: route.patient_id,
            ward_id: route.ward_id,
            received_at: now,
            chunk,
        }))
    }

    /// Score a patient at the measurement time of each new reading. A late
    /// reading (older than the newest score) adds history at its own time,
    /// and the newest score is recomputed with it, keeping its own time: the
    /// current score never claims a fresher state than its readings have.
    async fn score_new_readings(&self, patient: i64, times: BTreeSet<chrono::DateTime<Utc>>, now: chrono::DateTime<Utc>) {
        let latest = match self.store.latest_score_time(patient).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, patient, "cannot read score history; scoring skipped");
                return;
            }
        };
        let newest_new = times.iter().next_back().copied();
        for t in &times {
            let push = Some(*t) == newest_new && latest.is_none_or(|l| *t >= l);
            self.score_at(patient, *t, now, push).await;
        }
        if let (Some(l), Some(n)) = (latest, newest_new) {
            if n < l {
                self.score_at(patient, l, now, true).await;
            }
        }
    }

    /// Score `patient` as of `at` and store it. `current` scores (the newest
    /// state) are pushed and drive the built-in NEWS2 alerts; history
    /// scores for late readings are stored only. `received` is when the
    /// triggering message arrived (for the alert latency metric).
    async fn score_at(&self, patient: i64, at: chrono::DateTime<Utc>, received: chrono::DateTime<Utc>, current: bool) {
        let pathways = self.engine.pathways();
        let freshness = |p: &str| pathways.get(p).map(|p| p.freshness).unwrap_or_else(vigil_clinical::default_freshness);
        let scored = match vigil_store::scoring::score_patient(self.store.as_ref(), patient, at, &freshness).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, patient, "scoring failed");
                return;
            }
        };
        let (settings, score) = scored;
        // The scores of the previous day, read before this one is stored.
        let recent = if current {
            match self.store.scores(patient, Some(at - chrono::Duration::hours(24)), Some(at)).await {
                Ok(r) => r,
                Err(e) => {
                    // Without history the rising rule cannot be judged; the
                    // NEWS2 alert still can.
                    tracing::error!(error = %e, patient, "cannot read score history");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let row = vigil_store::scoring::to_new_score(patient, &score, at, Utc::now());
        let detail = row.detail.clone();
        if let Err(e) = self.store.score_insert(row).await {
            tracing::error!(error = %e, patient, "storing the score failed");
            return;
        }
        if !current {
            return;
        }
        let _ = self.events.send(LiveEvent::Score { ward_id: settings.ward_id, patient_id: patient, score: detail.clone() });
        self.builtin_alerts(&settings, &score, &detail, &recent, at, received).await;
    }

    /// The pathway's escalation delay for a severity (CONTRACTS.md §5
    /// defaults if the pathway is unknown).
    fn escalation_for(&self, pathway: &str, sev: Severity) -> Option<chrono::Duration> {
        match self.engine.pathways().get(pathway) {
            Some(p) => crate::rules::escalation(p, sev),
            None => escalation_delay(sev),
        }
    }

    async fn builtin_alerts(
        &self,
        settings: &vigil_store::EpisodeSettings,
        score: &vigil_clinical::News2Score,
        detail: &serde_json::Value,
        recent: &[vigil_store::ScoreRow],
        at: chrono::DateTime<Utc>,
        received: chrono::DateTime<Utc>,
    ) {
        let facts = |total: Option<i64>, risk: Option<&str>| alerts::ScoreFacts {
            total: total.and_then(|t| u8::try_from(t).ok()),
            severity: risk.and_then(alerts::severity_of_risk),
        };
        let prev = recent.last().map(|r| facts(r.total, r.risk.as_deref()));
        let now_facts = facts(score.total.map(i64::from), detail.get("risk").and_then(|r| r.as_str()));
        let min_24h = recent.iter().filter_map(|r| r.total).min().and_then(|t| u8::try_from(t).ok());
        let live = match self.store.alerts_list(&[settings.ward_id], None, Some(settings.patient_id)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read live alerts; built-in alerts skipped");
                return;
            }
        };
        let is_live = |rule: &str| live.iter().any(|a| a.rule_id == rule && a.status != AlertStatus::Resolved);
        let firings =
            alerts::decide(prev, now_facts, score.partial, is_live(alerts::NEWS2), is_live(alerts::NEWS2_RISING), min_24h);
        let evidence: Vec<i64> = score.subscores.iter().filter_map(|s| s.obs_id).collect();
        for f in firings {
            let firing = AlertFiring {
                patient_id: settings.patient_id,
                ward_id: settings.ward_id,
                rule_id: f.rule_id.to_string(),
                severity: f.severity,
                message: f.message,
                value: serde_json::json!({"total": score.total, "risk": detail.get("risk"), "partial": score.partial}),
                evidence: evidence.clone(),
                at,
                escalate_at: self.escalation_for(&settings.pathway, f.severity).map(|d| Utc::now() + d),
            };
            self.persist_firing(firing, received).await;
        }
    }

    /// Decode, validate and route one `obs` message.
    async fn accept_obs(
        &self,
        device: &str,
        payload: &[u8],
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<Pending>, Rejection> {
        let m = decode_obs(payload, now)?;
        let route = match self.store.device_route(device).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, device, "device lookup failed; message left unacked");
                self.metrics.obs_messages.with_label_values(&["error"]).inc();
                return Ok(None);
            }
        };
        let Some(route) = route else {
            return Err(Rejection {
                seq: Some(m.seq),
                reason: "no_patient",
                detail: "device is not assigned to an admitted patient".into(),
            });
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

    async fn reject(&self, kind: Uplink, device: &str, topic: &str, payload: &[u8], r: Rejection, now: chrono::DateTime<Utc>) {
        tracing::info!(device, reason = r.reason, seq = ?r.seq, "message rejected");
        let rec = NewRejected {
            device_id: Some(device.to_string()),
            seq: r.seq,
            topic: topic.to_string(),
            reason: r.reason.to_string(),
            detail: r.detail.clone(),
            payload: payload.iter().copied().take(crate::decode::MAX_PAYLOAD).collect(),
            received_at: now,
        };
        if let Err(e) = self.store.store_rejected(rec).await {
            // Not durably rejected, so do not tell the device to drop it.
            tracing::error!(error = %e, "dead-letter write failed; reject not sent");
            self.metrics.obs_messages.with_label_values(&["error"]).inc();
            return;
        }
        match kind {
            Uplink::Obs => {
                self.metrics.obs_messages.with_label_values(&["rejected"]).inc();
                self.metrics.obs_rejected.with_label_values(&[r.reason]).inc();
            }
            Uplink::Ecg => self.metrics.ecg_chunks.with_label_values(&["rejected"]).inc(),
        }
        if let Some(seq) = r.seq {
            self.send_cmd(device, serde_json::json!({"type": "reject", "seq": seq, "reason": r.reason})).await;
        }
    }

    async fn status(&mut self, device: &str, payload: &[u8]) {
        let Ok(status) = serde_json::from_slice::<serde_json::Value>(payload) else {
            tracing::info!(device, "unreadable status ignored");
            return;
        };
        // Keep it as the device's last status (shown on the patient page).
        crate::status::record(self.store.as_ref(), device, &status).await;
        if let Ok(Some(route)) = self.store.device_route(device).await {
            let ds = vigil_rules::DeviceStatus {
                online: status.get("online").and_then(|v| v.as_bool()).unwrap_or(true),
                battery_pct: status.get("battery_pct").and_then(|v| v.as_u64()).and_then(|v| u8::try_from(v).ok()),
                signal: status.get("signal").and_then(|v| v.as_str()).map(str::to_string),
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
                match self.engine.device_status(route.patient_id, device, ds, now) {
                    Ok(outputs) => self.apply_outputs(outputs, now).await,
                    Err(e) => tracing::error!(error = %e, "rules engine refused a device status"),
                }
            }
            self.auto_resolve(route.patient_id, &cleared, "device reports normally again").await;
            let _ = self.events.send(LiveEvent::DeviceStatus {
                ward_id: route.ward_id,
                patient_id: route.patient_id,
                device_id: device.to_string(),
                status,
            });
        }
    }

    async fn send_cmd(&self, device: &str, body: serde_json::Value) {
        let payload = body.to_string();
        if let Err(e) = self.client.publish(acl::cmd_topic(device), QoS::AtLeastOnce, false, payload).await {
            tracing::warn!(error = %e, device, "could not queue cmd");
        }
    }
}
