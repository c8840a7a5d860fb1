//! The embedded MQTT broker (rmqtt) with Vigil's device authentication and
//! topic ACL. See docs/decisions/0001-embedded-broker.md for why rmqtt.
//!
//! Every CONNECT is checked against the store, so a device provisioned a
//! moment ago can connect at once and a revoked one is refused at once; no
//! cache to go stale. Device passwords are 256-bit random secrets, so a
//! single SHA-256 is a sound verifier (nothing to brute-force) and cheap
//! enough for a reconnect storm. The ingest itself connects as a service
//! account whose password is generated per process.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::types::{AuthResult, PublishAclResult, SubscribeAclResult};
use tokio_util::sync::CancellationToken;
use vigil_store::Store;
use vigil_store::secrets::{ct_eq, hash_secret};

use crate::acl;

/// Credentials of the in-process service account the ingest uses.
#[derive(Clone)]
pub struct ServiceAccount {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The embedded broker's MQTT-over-TLS listener.
#[derive(Clone, Debug)]
pub struct BrokerTls {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key.
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// PEM CA certificate(s) that sign devices' client certificates. Set,
    /// the listener takes only clients presenting a certificate one of them
    /// signed (mutual TLS), and a client's certificate must name it: its
    /// Common Name is its MQTT username. The password is still checked.
    pub client_ca: Option<std::path::PathBuf>,
}

/// The CA certificates in `path`, or a line naming `mqtt.tls_client_ca`:
/// rustls would take an empty file as "no roots" with a message naming
/// neither the key nor the file.
fn client_cas(path: &std::path::Path) -> anyhow::Result<()> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let n = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("mqtt.tls_client_ca: {}: {e}", path.display()))?
        .len();
    anyhow::ensure!(
        n > 0,
        "mqtt.tls_client_ca: {}: no PEM certificate in it",
        path.display()
    );
    Ok(())
}

/// A running embedded broker.
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    /// The MQTT-over-TLS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    scx: ServerContext,
    policy: Arc<Policy>,
}

impl EmbeddedBroker {
    /// Drop the live session of the device logged in as `username`, if any
    /// (a revoked device must not keep publishing on an open connection).
    pub async fn kick(&self, username: &str) -> bool {
        let id = self
            .policy
            .sessions
            .lock()
            .map(|m| m.get(username).cloned())
            .ok()
            .flatten();
        let Some(id) = id else { return false };
        let mut entry = self.scx.extends.shared().await.entry(id);
        match entry.kick(true, true, true).await {
            Ok(_) => {
                tracing::info!(device = username, "live MQTT session dropped");
                true
            }
            Err(e) => {
                tracing::warn!(device = username, error = %e, "could not drop MQTT session");
                false
            }
        }
    }
}

/// Unacknowledged deliveries the broker keeps in flight to the ingest's
/// session (rmqtt's listener default, 16, is every other session's): the
/// ingest acks a message only once its batch is committed, so this window
/// bounds how much one batch can hold.
pub const INGEST_INFLIGHT: u16 = 1024;
/// Messages queued for the ingest's session beyond the window before the
/// broker drops new ones (the devices then resend them). rmqtt's default,
/// 1,000, is kept for devices, whose queue holds only `cmd` messages.
pub const INGEST_QUEUE: usize = 20_000;

/// Gives the ingest's session (the service account) its own delivery
/// window and queue; every other session keeps the listener's.
struct IngestWindow {
    service: String,
}

impl rmqtt::fitter::FitterManager for IngestWindow {
    fn create(
        &self,
        conn_info: Arc<rmqtt::types::ConnectInfo>,
        id: rmqtt::types::Id,
        cfg: rmqtt::types::ListenerConfig,
    ) -> rmqtt::types::FitterType {
        let cfg = if conn_info.username().is_some_and(|u| **u == *self.service) {
            let mut c = (*cfg).clone();
            c.max_inflight = std::num::NonZeroU16::new(INGEST_INFLIGHT).unwrap_or(c.max_inflight);
            c.max_mqueue_len = INGEST_QUEUE;
            Arc::new(c)
        } else {
            cfg
        };
        Arc::new(rmqtt::fitter::DefaultFitter::new(conn_info, id, cfg))
    }
}

/// Bind the broker on `listen` (port 0 is fine), and on `tls.listen` for
/// MQTT over TLS, and run it until `cancel`. Both listeners apply the same
/// authentication and ACL hooks. Returns the broker handle and the task
/// running it.
pub async fn start(
    listen: SocketAddr,
    tls: Option<BrokerTls>,
    store: Arc<dyn Store>,
    service: ServiceAccount,
    connections: prometheus::IntGauge,
    dropped: prometheus::IntCounterVec,
    cancel: CancellationToken,
) -> anyhow::Result<(Arc<EmbeddedBroker>, tokio::task::JoinHandle<()>)> {
    let scx = ServerContext::new().build().await;
    let service_name = service.username.clone();
    let register = scx.extends.hook_mgr().register();
    let policy = Arc::new(Policy {
        store: Arc::downgrade(&store),
        service,
        sessions: Default::default(),
        connections,
        dropped,
    });
    for typ in [
        Type::ClientAuthenticate,
        Type::MessagePublishCheckAcl,
        Type::ClientSubscribeCheckAcl,
        Type::ClientConnected,
        Type::ClientDisconnected,
        Type::MessageDropped,
    ] {
        register.add(typ, Box::new(Hook(policy.clone()))).await;
    }
    register.start().await;
    *scx.extends.fitter_mgr_mut().await = Box::new(IngestWindow {
        service: service_name.clone(),
    });

    let builder = |name: &str, laddr: SocketAddr| {
        Builder::new()
            .name(name)
            .laddr(laddr)
            .allow_anonymous(false)
            // A restarted daemon must rebind at once, not wait out the dead
            // one's TIME_WAIT connections.
            .reuseaddr(Some(true))
            .max_packet_size(crate::decode::MAX_PAYLOAD as u32 + 1024)
    };
    let listener = builder("vigil/tcp", listen)
        .bind()
        .map_err(|e| anyhow::anyhow!("mqtt.listen {listen}: {e}"))?
        .tcp()?;
    let addr = listener.local_addr()?;
    // Listener ids are explicit: rmqtt keys listeners by port by default,
    // and two listeners on port 0 (tests) would collide.
    let mut server = MqttServer::new(scx.clone()).listener_by_id(listener, 1);
    let mut tls_addr = None;
    if let Some(tls) = tls {
        let mut b = builder("vigil/tls", tls.listen)
            .tls_cert(Some(tls.cert.display().to_string()))
            .tls_key(Some(tls.key.display().to_string()));
        if let Some(ca) = &tls.client_ca {
            client_cas(ca)?;
            // The handshake refuses a client without a certificate from
            // these CAs; the certificate's names reach the authentication
            // hook, which holds its Common Name to the username.
            b = b
                .tls_cross_certificate(true)
                .tls_client_ca_certs(Some(ca.display().to_string()))
                .collect_cert_info(true);
        }
        let listener = b
            .bind()
            .map_err(|e| anyhow::anyhow!("mqtt.tls_listen {}: {e}", tls.listen))?
            .tls()
            .map_err(|e| anyhow::anyhow!("mqtt.tls_cert/mqtt.tls_key: {e:#}"))?;
        tls_addr = Some(listener.local_addr()?);
        server = server.listener_by_id(listener, 2);
    }
    let server = server.build();
    let task = tokio::spawn(async move {
        tokio::select! {
            r = server.run() => if let Err(e) = r { tracing::error!(error = %e, "embedded broker stopped") },
            _ = cancel.cancelled() => {}
        }
    });
    tracing::info!(%addr, tls = ?tls_addr, "embedded MQTT broker listening");
    Ok((
        Arc::new(EmbeddedBroker {
            addr,
            tls_addr,
            scx,
            policy,
        }),
        task,
    ))
}

struct Policy {
    /// Weak: rmqtt's server context is not freed when the broker stops (its
    /// parts hold one another), so a strong reference here would keep the
    /// store, and its pool of open database connections, after the daemon
    /// that built it is gone: in the test suite, one pool per test, until
    /// PostgreSQL refused new connections. The daemon holds the store
    /// while it runs.
    store: std::sync::Weak<dyn Store>,
    service: ServiceAccount,
    /// Live sessions by username, so a revoked device can be dropped.
    sessions: std::sync::Mutex<std::collections::HashMap<String, rmqtt::types::Id>>,
    /// `vigil_mqtt_connections`
    connections: prometheus::IntGauge,
    /// `vigil_mqtt_dropped_total{to,reason}`
    dropped: prometheus::IntCounterVec,
}

impl Policy {
    /// `cert_cn`: the Common Name of the client's certificate, on a listener
    /// that asks for one (`Some(None)`: a certificate without one).
    async fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        cert_cn: Option<Option<&str>>,
    ) -> AuthResult {
        let (Some(user), Some(pass)) = (username, password) else {
            return AuthResult::NotAuthorized;
        };
        if let Some(cn) = cert_cn
            && cn != Some(user)
        {
            // One device's certificate with another's secret: both must be
            // the same device's.
            tracing::info!("refused CONNECT: the client certificate names another client");
            return AuthResult::NotAuthorized;
        }
        let Ok(pass) = std::str::from_utf8(pass) else {
            return AuthResult::BadUsernameOrPassword;
        };
        if user == self.service.username {
            return if ct_eq(pass, &self.service.password) {
                AuthResult::Allow(true, None)
            } else {
                AuthResult::BadUsernameOrPassword
            };
        }
        let Some(store) = self.store.upgrade() else {
            tracing::info!("refused CONNECT: the daemon is stopping");
            return AuthResult::NotAuthorized;
        };
        match store.device_credentials(user).await {
            Ok(Some(c)) if c.revoked => {
                tracing::info!(device = %c.device_id, "refused CONNECT: device revoked");
                AuthResult::NotAuthorized
            }
            Ok(Some(c)) if ct_eq(&hash_secret(pass), &c.secret_hash) => {
                AuthResult::Allow(false, None)
            }
            Ok(_) => {
                tracing::info!("refused CONNECT: bad device credentials");
                AuthResult::BadUsernameOrPassword
            }
            Err(e) => {
                tracing::error!(error = %e, "device credential lookup failed; refusing CONNECT");
                AuthResult::NotAuthorized
            }
        }
    }

    fn is_service(&self, username: Option<&str>) -> bool {
        username == Some(self.service.username.as_str())
    }
}

/// The labels of `vigil_mqtt_dropped_total` for a message the broker
/// dropped: for whom (`Some(true)`: the ingest's session; `None`: no
/// session, dropped as it was published) and why.
fn drop_labels(
    to_service: Option<bool>,
    reason: &rmqtt::types::Reason,
) -> (&'static str, &'static str) {
    use rmqtt::types::Reason as R;
    let to = match to_service {
        Some(true) => "ingest",
        Some(false) => "device",
        None => "none",
    };
    let reason = match reason {
        R::MessageQueueFull | R::InflightWindowFull => "queue_full",
        R::MessageExpiration | R::SessionExpiration => "expired",
        R::PublishResult(_) => "refused",
        _ => "other",
    };
    (to, reason)
}

/// The broker wants one boxed handler per hook type; they share one policy.
struct Hook(Arc<Policy>);

#[async_trait]
impl Handler for Hook {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let this = &self.0;
        match param {
            Parameter::ClientAuthenticate(ci) => {
                let user = ci.username().map(|u| u.as_ref());
                let pass = ci.password().map(|p| p.as_ref());
                let cn = ci.cert().map(|c| c.common_name.as_deref());
                (
                    false,
                    Some(HookResult::AuthResult(
                        this.authenticate(user, pass, cn).await,
                    )),
                )
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let user = session.id.username.as_deref();
                let allowed = this.is_service(user)
                    || user.is_some_and(|d| acl::may_publish(d, &publish.topic));
                if !allowed {
                    tracing::warn!(device = user.unwrap_or("-"), "publish refused by topic ACL");
                }
                let result = if allowed {
                    PublishAclResult::allow()
                } else {
                    PublishAclResult::rejected(true, None)
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, sub) => {
                let user = session.id.username.as_deref();
                let filter: &str = &sub.topic_filter;
                let allowed =
                    this.is_service(user) || user.is_some_and(|d| acl::may_subscribe(d, filter));
                let result = if allowed {
                    SubscribeAclResult::new_success(sub.opts.qos(), None)
                } else {
                    tracing::warn!(
                        device = user.unwrap_or("-"),
                        "subscribe refused by topic ACL"
                    );
                    SubscribeAclResult::new_failure(
                        rmqtt::codec::v5::SubscribeAckReason::NotAuthorized,
                    )
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessageDropped(to, _, _, reason) => {
                let to = to
                    .as_ref()
                    .map(|id| this.is_service(id.username.as_deref()));
                let (to, reason) = drop_labels(to, reason);
                this.dropped.with_label_values(&[to, reason]).inc();
                (true, acc)
            }
            Parameter::ClientConnected(session) => {
                if let (Some(user), Ok(mut m)) =
                    (session.id.username.as_deref(), this.sessions.lock())
                {
                    m.insert(user.to_string(), session.id.clone());
                    this.connections.set(m.len() as i64);
                }
                (true, acc)
            }
            Parameter::ClientDisconnected(session, _) => {
                if let (Some(user), Ok(mut m)) =
                    (session.id.username.as_deref(), this.sessions.lock())
                {
                    if m.get(user)
                        .is_some_and(|id| id.client_id == session.id.client_id)
                    {
                        m.remove(user);
                    }
                    this.connections.set(m.len() as i64);
                }
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}

/// Drop the live sessions of devices revoked while the daemon runs, checking
/// the store every second (revocation may come from `vigil admin` in another
/// process).
pub async fn drop_revoked(
    broker: Arc<EmbeddedBroker>,
    store: Arc<dyn Store>,
    cancel: CancellationToken,
) {
    let mut since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let checked_at = chrono::Utc::now();
        match store.devices_revoked_since(since).await {
            Ok(devices) => {
                for d in devices {
                    broker.kick(&d).await;
                }
                // Overlap by a second so a revocation committed during the
                // query is seen next time; kicking twice is harmless.
                since = checked_at - chrono::Duration::seconds(1);
            }
            Err(e) => tracing::error!(error = %e, "revocation check failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::drop_labels;
    use rmqtt::types::Reason;

    #[test]
    fn a_drop_is_labelled_by_recipient_and_reason() {
        assert_eq!(
            drop_labels(Some(true), &Reason::MessageQueueFull),
            ("ingest", "queue_full")
        );
        assert_eq!(
            drop_labels(Some(false), &Reason::InflightWindowFull),
            ("device", "queue_full")
        );
        assert_eq!(
            drop_labels(Some(false), &Reason::MessageExpiration),
            ("device", "expired")
        );
        assert_eq!(drop_labels(None, &Reason::Unknown), ("none", "other"));
    }
}
