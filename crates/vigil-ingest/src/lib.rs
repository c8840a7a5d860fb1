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
//! - [`status`]: keeping each device's last `status` message.
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
pub mod status;

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
    /// MQTT over TLS (an external `mqtts://` broker).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// A TLS client configuration for an external broker: trust the PEM CA
/// certificates in `ca_file`, or the system's trust store when there is none.
pub fn tls_client_config(
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    tls_client_config_for("mqtt.ca_file", ca_file)
}

/// [`tls_client_config`] for any TLS client of Vigil's, its errors naming
/// the configuration key `key` that gives `ca_file`.
pub fn tls_client_config_for(
    key: &str,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            anyhow::ensure!(
                added > 0,
                "{key} {}: no usable CA certificate",
                path.display()
            );
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            anyhow::ensure!(
                added > 0,
                "TLS needs trusted CA certificates: none in the system store; set {key}"
            );
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}
