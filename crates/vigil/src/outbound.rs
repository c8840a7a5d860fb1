//! HTTP clients for the services Vigil calls out to: the alert webhook and
//! the single sign-on provider.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A client that follows no redirects, gives up on a request after
/// `timeout`, and speaks TLS through Vigil's own rustls set-up: for an
/// `https` service, trusting `ca_file` or else the system's store (`key`
/// names the setting in errors).
///
/// The TLS set-up is given even to a plain-`http` client: the daemon's
/// reqwest is built without a default crypto provider (Vigil chooses its
/// own), and a client built without one panics. A plain client's set-up
/// trusts no certificate, so it can reach nothing over TLS.
pub fn client(
    https: bool,
    key: &str,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<reqwest::Client> {
    let tls = if https {
        Arc::unwrap_or_clone(vigil_ingest::tls_client_config_for(key, ca_file)?)
    } else {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .use_preconfigured_tls(tls)
        .build()?)
}
