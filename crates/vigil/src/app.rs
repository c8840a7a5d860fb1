//! Wiring: build the whole daemon from a [`Config`] and run it.
//!
//! [`App::build`] binds every socket before returning (port 0 works and the
//! real addresses are reported), so tests and `vigil demo` can start the
//! system in-process and talk to it at once.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use vigil_ingest::{IngestConfig, IngestMetrics, ServiceAccount};
use vigil_store::Store;
use vigil_store::secrets::{random_id, random_secret};
use vigil_web::{AppState, WebMetrics};

use crate::config::{Config, parse_mqtt_url};

/// A running Vigil: broker (if embedded), ingest, web.
pub struct App {
    pub http_addr: SocketAddr,
    /// Where devices connect (the embedded broker, or the external one).
    pub mqtt_addr: String,
    /// The embedded broker's MQTT-over-TLS listener, when configured.
    pub mqtt_tls_addr: Option<SocketAddr>,
    /// Serving HTTPS.
    pub https: bool,
    pub store: Arc<dyn Store>,
    pub cancel: CancellationToken,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

impl App {
    /// Open the store, start the broker, the ingest and the web server.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        config.validate()?;
        // Pathways first: a bad pathway file stops the start with file:line.
        config.load_pathways()?;
        let store =
            vigil_store::connect_with(&config.database.url, config.database.max_connections)
                .await
                .context("opening the database")?;
        if let Ok(Some(warning)) = vigil_store::pg_url::check(&config.database.url) {
            tracing::warn!("{warning}");
        }
        let registry = Registry::new();
        let ingest_metrics = IngestMetrics::new(&registry)?;
        let web_metrics = WebMetrics::new(&registry)?;
        let events = vigil_store::LiveHub::new(4096);
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();

        let mut mqtt_tls_addr = None;
        let (ingest, mqtt_addr) = if config.mqtt.embedded {
            let service = ServiceAccount {
                username: format!("vigil-ingest-{}", random_id(8)),
                password: random_secret(),
            };
            let (broker, task) = vigil_ingest::broker::start(
                config.mqtt.listen,
                broker_tls(&config),
                store.clone(),
                service.clone(),
                ingest_metrics.mqtt_connections.clone(),
                ingest_metrics.mqtt_dropped.clone(),
                cancel.clone(),
            )
            .await
            .context("starting the embedded MQTT broker")?;
            tasks.push(("broker", task));
            mqtt_tls_addr = broker.tls_addr;
            tasks.push((
                "revocations",
                tokio::spawn(vigil_ingest::broker::drop_revoked(
                    broker.clone(),
                    store.clone(),
                    cancel.clone(),
                )),
            ));
            let host = if broker.addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                broker.addr.ip().to_string()
            };
            let cfg = IngestConfig {
                broker_host: host,
                broker_port: broker.addr.port(),
                client_id: "vigil-ingest".into(),
                username: service.username,
                password: service.password,
                // In-process, over loopback.
                tls: None,
            };
            (cfg, broker.addr.to_string())
        } else {
            let url = config.mqtt.url.clone().unwrap_or_default();
            let url = parse_mqtt_url(&url)?;
            let tls = match url.tls {
                true => Some(vigil_ingest::tls_client_config(
                    config.mqtt.ca_file.as_deref(),
                )?),
                false => None,
            };
            let cfg = IngestConfig {
                broker_host: url.host.clone(),
                broker_port: url.port,
                client_id: "vigil-ingest".into(),
                username: config.mqtt.username.clone().unwrap_or_default(),
                password: config.mqtt.password.clone().unwrap_or_default(),
                tls,
            };
            (cfg, format!("{}:{}", url.host, url.port))
        };
        let pathways = config.load_pathways()?;
        let pathway_info: std::collections::BTreeMap<String, vigil_web::PathwayInfo> = pathways
            .iter()
            .map(|p| {
                let info = vigil_web::PathwayInfo {
                    title: p.title.clone(),
                    spo2_scale: p.spo2_scale.number(),
                    spo2_target: p.spo2_target.map(Into::into),
                    freshness: p.freshness,
                };
                (p.name.clone(), info)
            })
            .collect();
        let (rescore_tx, rescore_rx) = tokio::sync::mpsc::channel(256);
        let (actions_tx, actions_rx) = tokio::sync::mpsc::channel(256);
        let (entered_tx, entered_rx) = tokio::sync::mpsc::channel(64);
        let running = vigil_ingest::pipeline::spawn(
            ingest,
            store.clone(),
            events.clone(),
            ingest_metrics,
            rescore_rx,
            entered_rx,
            pathways,
            actions_rx,
            cancel.clone(),
        );
        for t in running.tasks {
            tasks.push(("ingest", t));
        }

        if let Some(settings) = config.notify_settings()? {
            let client = crate::notify::client(&settings).context("notify.webhook_url")?;
            let metrics = crate::notify::NotifyMetrics::new(&registry)?;
            tasks.push((
                "notify",
                tokio::spawn(crate::notify::run(
                    store.clone(),
                    settings,
                    client,
                    metrics,
                    cancel.clone(),
                )),
            ));
        }

        let keep = Retention {
            ecg: config.ecg_retention()?,
            history: config.history_retention()?,
        };
        tasks.push((
            "retention",
            tokio::spawn(retention(
                store.clone(),
                keep,
                running.readings_deleted,
                cancel.clone(),
            )),
        ));

        // The certificate is read before binding, so a bad file stops the
        // start with the file named, and nothing listens in plain text.
        let https = match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(
                vigil_web::tls::server_config(cert, key).context("http.tls_cert/http.tls_key")?,
            ),
            _ => None,
        };
        let sso = match config.sso_settings()? {
            Some(settings) => {
                // A slow provider fails a sign-in rather than holding it.
                let http = crate::outbound::client(
                    settings.issuer.starts_with("https://"),
                    "sso.ca_file",
                    config.sso.ca_file.as_deref(),
                    std::time::Duration::from_secs(10),
                )
                .context("sso.issuer")?;
                Some(Arc::new(vigil_web::sso::Sso::new(settings, http)))
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.http.addr)
            .await
            .with_context(|| format!("http.addr {}: cannot bind", config.http.addr))?;
        let http_addr = listener.local_addr()?;
        let state = AppState {
            store: store.clone(),
            events,
            registry,
            metrics: web_metrics,
            broker_connected: running.connected,
            rescore: rescore_tx,
            entered: entered_tx,
            rule_actions: actions_tx,
            pathways: Arc::new(pathway_info),
            tls: https.is_some(),
            login_gate: Default::default(),
            sso,
            password_login: config.sso.password_login,
            cancel: cancel.clone(),
        };
        let router = vigil_web::router(state);
        let web_cancel = cancel.clone();
        let served = match https.clone() {
            Some(tls) => {
                let listener = vigil_web::tls::TlsListener::new(listener, tls)?;
                tokio::spawn(async move {
                    if let Err(e) = vigil_web::serve_tls(listener, router, web_cancel).await {
                        tracing::error!(error = %e, "web server failed");
                    }
                })
            }
            None => tokio::spawn(async move {
                if let Err(e) = vigil_web::serve(listener, router, web_cancel).await {
                    tracing::error!(error = %e, "web server failed");
                }
            }),
        };
        tasks.push(("web", served));
        let https = https.is_some();
        tracing::info!(%http_addr, https, mqtt = %mqtt_addr, mqtts = ?mqtt_tls_addr, "vigil started");
        Ok(App {
            http_addr,
            mqtt_addr,
            mqtt_tls_addr,
            https,
            store,
            cancel,
            tasks,
        })
    }

    /// Run until `cancel` fires or a critical task dies (then stop loudly).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let App { cancel, tasks, .. } = self;
        let (names, handles): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
        let (ended, idx, _) = futures_select_all(handles).await;
        let died = !cancel.is_cancelled();
        cancel.cancel();
        if died {
            anyhow::bail!(
                "critical task {:?} stopped unexpectedly ({:?})",
                names[idx],
                ended.err()
            );
        }
        Ok(())
    }
}

/// The embedded broker's TLS listener from `mqtt.tls_*` (validated already).
fn broker_tls(config: &Config) -> Option<vigil_ingest::broker::BrokerTls> {
    let m = &config.mqtt;
    match (m.tls_listen, &m.tls_cert, &m.tls_key) {
        (Some(listen), Some(cert), Some(key)) => Some(vigil_ingest::broker::BrokerTls {
            listen,
            cert: cert.clone(),
            key: key.clone(),
            client_ca: m.tls_client_ca.clone(),
        }),
        _ => None,
    }
}

async fn futures_select_all(
    handles: Vec<tokio::task::JoinHandle<()>>,
) -> (
    Result<(), tokio::task::JoinError>,
    usize,
    Vec<tokio::task::JoinHandle<()>>,
) {
    futures::future::select_all(handles).await
}

/// Retention windows (`None`: keep).
struct Retention {
    ecg: std::time::Duration,
    history: (Option<std::time::Duration>, Option<std::time::Duration>),
}

/// Delete data older than its retention window, at start and hourly, and
/// log what went.
async fn retention(
    store: Arc<dyn Store>,
    keep: Retention,
    readings_deleted: tokio::sync::mpsc::Sender<()>,
    cancel: CancellationToken,
) {
    use vigil_store::HistoryKind;
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    let ago = |d: std::time::Duration| {
        chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(36500))
    };
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = cancel.cancelled() => return,
        }
        match store
            .ecg_delete_before(ago(keep.ecg).timestamp_millis())
            .await
        {
            Ok(n) => tracing::info!(kind = "ecg", deleted = n, "retention run"),
            Err(e) => tracing::error!(kind = "ecg", error = %e, "retention run failed"),
        }
        for (kind, name, window) in [
            (HistoryKind::Observations, "observations", keep.history.0),
            (HistoryKind::Scores, "scores", keep.history.1),
        ] {
            let Some(w) = window else { continue };
            match store.delete_history_before(kind, ago(w)).await {
                Ok(n) => {
                    tracing::info!(kind = name, deleted = n, "retention run");
                    // The scorer holds readings; some may be gone now.
                    if n > 0 && kind == HistoryKind::Observations {
                        let _ = readings_deleted.try_send(());
                    }
                }
                Err(e) => tracing::error!(kind = name, error = %e, "retention run failed"),
            }
        }
    }
}
