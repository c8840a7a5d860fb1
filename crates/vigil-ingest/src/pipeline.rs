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
use vigil_store::{BatchOutcome, LiveEvent, LiveObservation, NewObsMessage, NewRejected, Store};

use crate::decode::{Rejection, decode_obs};
use crate::metrics::IngestMetrics;
use crate::{acl, IngestConfig};

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
    let (client, eventloop) = AsyncClient::new(opts, 4096);
    let (tx, rx) = mpsc::channel(8192);
    let (connected_tx, connected) = watch::channel(false);
    let poll = tokio::spawn(poll_loop(eventloop, client.clone(), tx, connected_tx, cancel.clone()));
    let worker = Worker { client, store, events, metrics };
    let batch = tokio::spawn(worker.run(rx, rescore, cancel));
    Running { connected, tasks: vec![poll, batch] }
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
    client: AsyncClient,
    store: Arc<dyn Store>,
    events: broadcast::Sender<LiveEvent>,
    metrics: IngestMetrics,
}

/// One message that passed decoding and routing, waiting for the commit.
struct Pending {
    msg: NewObsMessage,
    ward_id: i64,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Publish>, mut rescore: mpsc::Receiver<i64>, cancel: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => break },
                Some(patient) = rescore.recv() => {
                    let now = Utc::now();
                    self.score_and_push(patient, now, now).await;
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
            self.process(&batch).await;
            for p in batch.drain(..) {
                if let Err(e) = self.client.ack(&p).await {
                    tracing::warn!(error = %e, "mqtt ack failed");
                }
            }
        }
    }

    async fn process(&self, batch: &[Publish]) {
        let now = Utc::now();
        let mut pending: Vec<Pending> = Vec::new();
        for p in batch {
            let Some((device, kind)) = acl::parse_topic(&p.topic) else {
                tracing::warn!("message on unexpected topic ignored");
                continue;
            };
            match kind {
                "obs" => match self.accept_obs(device, &p.payload, now).await {
                    Ok(Some(msg)) => pending.push(msg),
                    Ok(None) => {}
                    Err(r) => self.reject(device, &p.topic, &p.payload, r, now).await,
                },
                "status" => self.status(device, &p.payload).await,
                _ => {
                    // ECG chunks are not ingested yet: leave them unacked so
                    // the patch keeps them until ECG ingest ships.
                    self.metrics.ecg_chunks.with_label_values(&["not_ingested"]).inc();
                }
            }
        }
        if pending.is_empty() {
            return;
        }
        let msgs: Vec<NewObsMessage> = pending.iter().map(|p| p.msg.clone()).collect();
        let outcomes = match self.store.store_obs_batch(&msgs).await {
            Ok(o) => o,
            Err(e) => {
                // Nothing is acked: every device keeps its messages and resends.
                tracing::error!(error = %e, messages = msgs.len(), "store failed; batch not acked");
                self.metrics.obs_messages.with_label_values(&["error"]).inc_by(msgs.len() as u64);
                return;
            }
        };
        let stored_at = Utc::now();
        let mut acks: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        let mut to_score: BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>> = BTreeMap::new();
        for (p, outcome) in pending.iter().zip(outcomes) {
            acks.entry(p.msg.device_id.as_str()).or_default().push(p.msg.seq);
            match outcome {
                BatchOutcome::Duplicate => self.metrics.obs_messages.with_label_values(&["duplicate"]).inc(),
                BatchOutcome::Stored { observation_ids } => {
                    self.metrics.obs_messages.with_label_values(&["stored"]).inc();
                    to_score.entry(p.msg.patient_id).or_default().insert(p.msg.measured_at);
                    let lag = (stored_at - p.msg.measured_at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.ingest_lag.observe(lag);
                    let obs = p
                        .msg
                        .obs
                        .iter()
                        .zip(observation_ids)
                        .map(|(o, id)| LiveObservation { id, code: o.code.clone(), value: o.value.clone(), unit: o.unit.clone() })
                        .collect();
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
        for (device, seqs) in acks {
            let ack = serde_json::json!({"type": "ack", "seqs": seqs});
            self.send_cmd(device, ack).await;
        }
        // Scoring happens after the acks: a reading is safe once stored,
        // and a scoring failure must never make a device resend.
        for (patient, times) in to_score {
            self.score_new_readings(patient, times, stored_at).await;
        }
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

    async fn score_and_push(&self, patient: i64, at: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) {
        self.score_at(patient, at, now, true).await;
    }

    async fn score_at(&self, patient: i64, at: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>, push: bool) {
        let freshness = vigil_clinical::default_freshness();
        let scored = match vigil_store::scoring::score_patient(self.store.as_ref(), patient, at, freshness).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, patient, "scoring failed");
                return;
            }
        };
        let (settings, score) = scored;
        let row = vigil_store::scoring::to_new_score(patient, &score, at, now);
        let detail = row.detail.clone();
        if let Err(e) = self.store.score_insert(row).await {
            tracing::error!(error = %e, patient, "storing the score failed");
            return;
        }
        if push {
            let _ = self.events.send(LiveEvent::Score { ward_id: settings.ward_id, patient_id: patient, score: detail });
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

    async fn reject(&self, device: &str, topic: &str, payload: &[u8], r: Rejection, now: chrono::DateTime<Utc>) {
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
        self.metrics.obs_messages.with_label_values(&["rejected"]).inc();
        self.metrics.obs_rejected.with_label_values(&[r.reason]).inc();
        if let Some(seq) = r.seq {
            self.send_cmd(device, serde_json::json!({"type": "reject", "seq": seq, "reason": r.reason})).await;
        }
    }

    async fn status(&self, device: &str, payload: &[u8]) {
        let Ok(status) = serde_json::from_slice::<serde_json::Value>(payload) else {
            tracing::info!(device, "unreadable status ignored");
            return;
        };
        if let Ok(Some(route)) = self.store.device_route(device).await {
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
