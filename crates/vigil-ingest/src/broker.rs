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
        f.debug_struct("ServiceAccount").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A running embedded broker.
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    scx: ServerContext,
    policy: Arc<Policy>,
}

impl EmbeddedBroker {
    /// Drop the live session of the device logged in as `username`, if any
    /// (a revoked device must not keep publishing on an open connection).
    pub async fn kick(&self, username: &str) -> bool {
        let id = self.policy.sessions.lock().map(|m| m.get(username).cloned()).ok().flatten();
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

/// Bind the broker on `listen` (port 0 is fine) and run it until `cancel`.
/// Returns the broker handle and the task running it.
pub async fn start(
    listen: SocketAddr,
    store: Arc<dyn Store>,
    service: ServiceAccount,
    connections: prometheus::IntGauge,
    cancel: CancellationToken,
) -> anyhow::Result<(Arc<EmbeddedBroker>, tokio::task::JoinHandle<()>)> {
    let scx = ServerContext::new().build().await;
    let register = scx.extends.hook_mgr().register();
    let policy = Arc::new(Policy { store, service, sessions: Default::default(), connections });
    for typ in [
        Type::ClientAuthenticate,
        Type::MessagePublishCheckAcl,
        Type::ClientSubscribeCheckAcl,
        Type::ClientConnected,
        Type::ClientDisconnected,
    ] {
        register.add(typ, Box::new(Hook(policy.clone()))).await;
    }
    register.start().await;

    let listener = Builder::new()
        .name("vigil/tcp")
        .laddr(listen)
        .allow_anonymous(false)
        // A restarted daemon must rebind at once, not wait out the dead
        // one's TIME_WAIT connections.
        .reuseaddr(Some(true))
        .max_packet_size(crate::decode::MAX_PAYLOAD as u32 + 1024)
        .bind()
        .map_err(|e| anyhow::anyhow!("mqtt.listen {listen}: {e}"))?
        .tcp()?;
    let addr = listener.local_addr()?;
    let server = MqttServer::new(scx.clone()).listener(listener).build();
    let task = tokio::spawn(async move {
        tokio::select! {
            r = server.run() => if let Err(e) = r { tracing::error!(error = %e, "embedded broker stopped") },
            _ = cancel.cancelled() => {}
        }
    });
    tracing::info!(%addr, "embedded MQTT broker listening");
    Ok((Arc::new(EmbeddedBroker { addr, scx, policy }), task))
}

struct Policy {
    store: Arc<dyn Store>,
    service: ServiceAccount,
    /// Live sessions by username, so a revoked device can be dropped.
    sessions: std::sync::Mutex<std::collections::HashMap<String, rmqtt::types::Id>>,
    /// `vigil_mqtt_connections`
    connections: prometheus::IntGauge,
}

impl Policy {
    async fn authenticate(&self, username: Option<&str>, password: Option<&[u8]>) -> AuthResult {
        let (Some(user), Some(pass)) = (username, password) else {
            return AuthResult::NotAuthorized;
        };
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
        match self.store.device_credentials(user).await {
            Ok(Some(c)) if c.revoked => {
                tracing::info!(device = %c.device_id, "refused CONNECT: device revoked");
                AuthResult::NotAuthorized
            }
            Ok(Some(c)) if ct_eq(&hash_secret(pass), &c.secret_hash) => AuthResult::Allow(false, None),
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
                (false, Some(HookResult::AuthResult(this.authenticate(user, pass).await)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let user = session.id.username.as_deref();
                let allowed = this.is_service(user) || user.is_some_and(|d| acl::may_publish(d, &publish.topic));
                if !allowed {
                    tracing::warn!(device = user.unwrap_or("-"), "publish refused by topic ACL");
                }
                let result = if allowed { PublishAclResult::allow() } else { PublishAclResult::rejected(true, None) };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, sub) => {
                let user = session.id.username.as_deref();
                let filter: &str = &sub.topic_filter;
                let allowed = this.is_service(user) || user.is_some_and(|d| acl::may_subscribe(d, filter));
                let result = if allowed {
                    SubscribeAclResult::new_success(sub.opts.qos(), None)
                } else {
                    tracing::warn!(device = user.unwrap_or("-"), "subscribe refused by topic ACL");
                    SubscribeAclResult::new_failure(rmqtt::codec::v5::SubscribeAckReason::NotAuthorized)
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::ClientConnected(session) => {
                if let (Some(user), Ok(mut m)) = (session.id.username.as_deref(), this.sessions.lock()) {
                    m.insert(user.to_string(), session.id.clone());
                    this.connections.set(m.len() as i64);
                }
                (true, acc)
            }
            Parameter::ClientDisconnected(session, _) => {
                if let (Some(user), Ok(mut m)) = (session.id.username.as_deref(), this.sessions.lock()) {
                    if m.get(user).is_some_and(|id| id.client_id == session.id.client_id) {
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
pub async fn drop_revoked(broker: Arc<EmbeddedBroker>, store: Arc<dyn Store>, cancel: CancellationToken) {
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
