//! Vigil's MQTT side: the embedded broker, device authentication and topic
//! ACL, payload decoding, batching, and end-to-end acknowledgements.
//!
//! The ingest talks MQTT to the broker like any other client, so the
//! embedded broker can be replaced by Mosquitto or EMQX by configuration.
//! See ARCHITECTURE.md "Data flow" and docs/mqtt.md.
//!
//! # Layout
//! - [`acl`]: which topics a device may use (pure).
//! - [`alerts`]: built-in NEWS2 alert decisions (pure).
//! - [`decode`]: `obs` payload → validated message or a counted rejection (pure).
//! - [`ecg`]: ECG chunk decoding and one streaming analysis per patch.
//! - [`broker`]: the embedded rmqtt broker and its auth/ACL hooks.
//! - [`mosquitto`]: the same identity and topic rules as Mosquitto password and ACL files (pure).
//! - [`pipeline`]: the ingest client: batch, commit, then ack.
//! - [`rules`]: hosting the pathway rules engine: loading pathways, outputs → alerts and device advice.
//! - [`metrics`]: the Prometheus counters of CONTRACTS.md §6.

pub mod acl;
pub mod alerts;
pub mod broker;
pub mod decode;
pub mod ecg;
pub mod metrics;
pub mod mosquitto;
pub mod pipeline;
pub mod rules;

pub use broker::{EmbeddedBroker, ServiceAccount};
pub use metrics::IngestMetrics;

/// Where and how the ingest client connects.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    pub broker_host: String,
    pub broker_port: u16,
    pub client_id: String,
    pub username: String,
    pub password: String,
}
