//! TLS for the simulator's connections to Vigil: HTTPS to the API and MQTT
//! over TLS to the broker, so it can drive a deployment that listens on
//! TLS only (docs/devsim.md, "TLS").
//!
//! One rustls set-up serves both, with the aws-lc-rs provider chosen here:
//! the workspace's reqwest is built without a default provider, and a
//! client built without one panics, so even a plain-HTTP client is given
//! a set-up (one that trusts nothing).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

fn with_roots(roots: rustls::RootCertStore) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// What a run trusts, and which of its connections use it: HTTPS follows
/// the API's URL (`https://`), MQTT needs saying (`mqtts://HOST:PORT`).
#[derive(Clone, Debug)]
pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    /// MQTT over TLS.
    pub mqtt: bool,
}

/// The broker of `--mqtt` (`HOST:PORT`, `mqtt://HOST:PORT` or
/// `mqtts://HOST:PORT`, the last over TLS) and the TLS the run needs with
/// `--http` `http` and `--ca-file` `ca_file`; `None` when nothing is TLS.
pub fn target(
    http: &str,
    mqtt: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<(String, u16, Option<TlsTarget>)> {
    let (mqtt_tls, addr) = match mqtt.split_once("://") {
        Some(("mqtts", rest)) => (true, rest),
        Some(("mqtt", rest)) => (false, rest),
        Some((scheme, _)) => anyhow::bail!("--mqtt: expected mqtt:// or mqtts://, got {scheme}://"),
        None => (false, mqtt),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--mqtt: expected HOST:PORT, got {mqtt:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--mqtt: bad port in {mqtt:?}"))?;
    let https = http.starts_with("https://");
    let tls = match (https || mqtt_tls, ca_file) {
        (true, ca) => Some(TlsTarget {
            config: client_config(ca)?,
            mqtt: mqtt_tls,
        }),
        (false, Some(_)) => {
            anyhow::bail!("--ca-file: only with an https:// --http or an mqtts:// --mqtt")
        }
        (false, None) => None,
    };
    Ok((host.to_string(), port, tls))
}

/// A client set-up trusting the CA certificate(s) in `ca_file`, or else
/// the system's store.
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("--ca-file {}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("--ca-file {}", path.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--ca-file {}: no certificate in it",
                path.display()
            );
            for c in certs {
                roots
                    .add(c)
                    .with_context(|| format!("--ca-file {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            anyhow::ensure!(
                added > 0,
                "TLS needs trusted CA certificates: none in the system store; give --ca-file"
            );
        }
    }
    Ok(Arc::new(with_roots(roots)?))
}

/// An HTTP client: over TLS with `tls`, else plain (its TLS set-up trusts
/// nothing). Idle connections are kept 5 s, under Vigil's 10 s
/// (docs/http.md, "Connections").
pub fn http_client(tls: Option<&Arc<ClientConfig>>) -> anyhow::Result<reqwest::Client> {
    let config = match tls {
        Some(c) => ClientConfig::clone(c),
        None => with_roots(rustls::RootCertStore::empty())?,
    };
    Ok(reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .use_preconfigured_tls(config)
        .build()?)
}
