//! Ingest metrics (CONTRACTS.md §6), registered in the registry the caller
//! passes in, so two daemons in one test process never share counters.

use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
};

/// Counters and histograms the ingest updates.
#[derive(Clone)]
pub struct IngestMetrics {
    /// `vigil_obs_messages_total{outcome="stored"|"duplicate"|"rejected"|"error"}`
    pub obs_messages: IntCounterVec,
    /// `vigil_obs_rejected_total{reason}`
    pub obs_rejected: IntCounterVec,
    /// `vigil_ecg_chunks_total{outcome}`
    pub ecg_chunks: IntCounterVec,
    /// `vigil_ingest_lag_seconds`: measurement time to stored.
    pub ingest_lag: Histogram,
    /// `vigil_alerts_raised_total{severity}`
    pub alerts_raised: IntCounterVec,
    /// `vigil_alert_latency_seconds`: message received to alert pushed.
    pub alert_latency: Histogram,
    /// `vigil_ingest_batch_size`: messages per processed batch.
    pub batch_size: Histogram,
    /// `vigil_store_write_seconds{kind="obs"|"ecg"|"obs_ecg"}`: one batch transaction (messages, ECG chunks, or both).
    pub store_write: HistogramVec,
    /// `vigil_ingest_queue_depth`: messages received, waiting for the batcher.
    pub queue_depth: IntGauge,
    /// `vigil_ingest_pass_seconds`: one scoring pass of the worker (ECG
    /// analysis, scores, rules, alerts) over committed work.
    pub pass_seconds: Histogram,
    /// `vigil_ingest_pass_batches`: committed batches merged into one pass
    /// (more than one: the worker is behind the intake).
    pub pass_batches: Histogram,
    /// `vigil_ingest_worker_lag_seconds`: from the arrival of the oldest
    /// message in a pass to the start of the pass (how far scoring is behind).
    pub worker_lag: Histogram,
    /// `vigil_ingest_pass_stage_seconds_total{stage="ecg"|"score_read"|"score"|"alerts"|"rules"|"store"|"beats"|"resolve"|"status"}`:
    /// the worker's time by stage of a pass (`rate()` of it: where a busy
    /// worker spends its time).
    pub pass_stage: CounterVec,
    /// `vigil_mqtt_connections`: MQTT sessions on the embedded broker
    /// (devices, and the ingest's own).
    pub mqtt_connections: IntGauge,
    /// `vigil_mqtt_dropped_total{to="ingest"|"device"|"none",reason="queue_full"|"expired"|"refused"|"other"}`:
    /// messages the embedded broker dropped instead of delivering. Queue
    /// drops for the ingest mean the server is past its capacity (the
    /// devices resend what was dropped).
    pub mqtt_dropped: IntCounterVec,
    /// `vigil_news2_superseded_total{risk="low-medium"|"medium"|"high"}`:
    /// scores at or past the alerting band computed for a moment already
    /// superseded when their readings arrived (a late reading: no alert,
    /// hazard AL-04). Deteriorations that reached Vigil only after a
    /// later reading: store-and-forward backfill, or overload resends.
    pub news2_superseded: IntCounterVec,
    /// `vigil_ingest_caught_up_total{kind="observations"|"ecg_chunks"}`:
    /// stored and acked, but not through the worker when the daemon
    /// stopped (or in a batch whose commit reported an error), then taken
    /// up (hazards AL-19, TS-24).
    pub caught_up: IntCounterVec,
}

impl IngestMetrics {
    /// Create and register the ingest metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let obs_messages = IntCounterVec::new(
            Opts::new(
                "vigil_obs_messages_total",
                "Observation messages by outcome",
            ),
            &["outcome"],
        )?;
        let obs_rejected = IntCounterVec::new(
            Opts::new("vigil_obs_rejected_total", "Rejected messages by reason"),
            &["reason"],
        )?;
        let ecg_chunks = IntCounterVec::new(
            Opts::new("vigil_ecg_chunks_total", "ECG chunks by outcome"),
            &["outcome"],
        )?;
        let ingest_lag = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_ingest_lag_seconds",
                "Measurement time to durably stored",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0, 86400.0,
            ]),
        )?;
        let alerts_raised = IntCounterVec::new(
            Opts::new("vigil_alerts_raised_total", "Alerts raised by severity"),
            &["severity"],
        )?;
        let alert_latency = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_alert_latency_seconds",
                "Message received to alert pushed",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_ingest_batch_size",
                "Messages per processed ingest batch",
            )
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 512.0]),
        )?;
        let store_write = HistogramVec::new(
            HistogramOpts::new(
                "vigil_store_write_seconds",
                "Duration of one ingest batch transaction",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["kind"],
        )?;
        let pass_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_ingest_pass_seconds",
                "Duration of one scoring pass over committed batches",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        let pass_batches = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_ingest_pass_batches",
                "Committed batches merged into one scoring pass",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )?;
        let worker_lag = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_ingest_worker_lag_seconds",
                "Oldest message of a scoring pass received to the pass starting",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let pass_stage = CounterVec::new(
            Opts::new(
                "vigil_ingest_pass_stage_seconds_total",
                "Time the scoring worker spent in each stage of its passes",
            ),
            &["stage"],
        )?;
        let queue_depth = IntGauge::new(
            "vigil_ingest_queue_depth",
            "Received messages waiting for the batcher",
        )?;
        let mqtt_connections = IntGauge::new(
            "vigil_mqtt_connections",
            "MQTT sessions on the embedded broker (devices and the ingest)",
        )?;
        let mqtt_dropped = IntCounterVec::new(
            Opts::new(
                "vigil_mqtt_dropped_total",
                "Messages the embedded broker dropped, by recipient and reason",
            ),
            &["to", "reason"],
        )?;
        let news2_superseded = IntCounterVec::new(
            Opts::new(
                "vigil_news2_superseded_total",
                "NEWS2 scores of low-medium risk or worse for a moment already superseded when their readings arrived (no alert)",
            ),
            &["risk"],
        )?;
        let caught_up = IntCounterVec::new(
            Opts::new(
                "vigil_ingest_caught_up_total",
                "Observations and ECG chunks stored and acked but not through the worker when the daemon stopped (or in a batch whose commit reported an error), taken up since",
            ),
            &["kind"],
        )?;
        for c in [
            Box::new(batch_size.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(news2_superseded.clone()),
            Box::new(caught_up.clone()),
            Box::new(mqtt_dropped.clone()),
            Box::new(store_write.clone()),
            Box::new(queue_depth.clone()),
            Box::new(mqtt_connections.clone()),
            Box::new(pass_seconds.clone()),
            Box::new(pass_batches.clone()),
            Box::new(worker_lag.clone()),
            Box::new(pass_stage.clone()),
        ] {
            registry.register(c)?;
        }
        registry.register(Box::new(alerts_raised.clone()))?;
        registry.register(Box::new(alert_latency.clone()))?;
        registry.register(Box::new(obs_messages.clone()))?;
        registry.register(Box::new(obs_rejected.clone()))?;
        registry.register(Box::new(ecg_chunks.clone()))?;
        registry.register(Box::new(ingest_lag.clone()))?;
        Ok(IngestMetrics {
            obs_messages,
            obs_rejected,
            ecg_chunks,
            ingest_lag,
            alerts_raised,
            alert_latency,
            batch_size,
            store_write,
            queue_depth,
            pass_seconds,
            pass_batches,
            worker_lag,
            pass_stage,
            mqtt_connections,
            mqtt_dropped,
            news2_superseded,
            caught_up,
        })
    }
}
