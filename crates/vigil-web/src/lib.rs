//! Vigil's HTTP side: the REST API of CONTRACTS.md §3, the websocket push,
//! sessions and bearer tokens, and the dashboard the binary serves.
//!
//! # Layout
//! - [`auth`]: login/logout, the [`auth::Caller`] extractor.
//! - [`patients`], [`devices`], [`alerts`]: one module per resource, each with its `router()`.
//! - [`stream`]: the websocket.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`admin`]: operations shared with `vigil admin` (admit, provision, users, tokens).
//! - [`dashboard`]: the embedded web page.
//! - [`audit`]: the append-only audit trail and `GET /api/v1/audit`.
//! - [`error`]: [`error::ApiError`], the one error shape.
//! - [`openapi`]: the OpenAPI 3.1 description, `GET /api/v1/openapi.json`.
//! - [`tls`]: HTTPS (rustls) behind axum's listener.

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod devices;
pub mod entered;
pub mod error;
pub mod fhir;
pub mod follow_ups;
mod history;
pub mod openapi;
pub mod ops;
pub mod patients;
pub mod report;
pub mod sso;
pub mod stream;
pub mod summary;
pub mod text;
pub mod tls;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigil_store::Store;

impl AppState {
    /// The freshness window of a pathway (6 h if unknown).
    pub fn freshness(&self, pathway: &str) -> chrono::Duration {
        self.pathways
            .get(pathway)
            .map(|p| p.freshness)
            .unwrap_or_else(vigil_clinical::default_freshness)
    }
}

/// What the web side needs of a loaded pathway (the rules stay the
/// engine's).
#[derive(Clone, Debug)]
pub struct PathwayInfo {
    /// The pathway file's `title`.
    pub title: String,
    /// The pathway file's `spo2_scale` (1 or 2): what its rules use until
    /// a clinician records one. NEWS2 starts on scale 1 whatever it says
    /// (hazard CS-01).
    pub spo2_scale: u8,
    /// Its own SpO2 target (`spo2_target`, low and high %), if it sets one.
    pub spo2_target: Option<(u8, u8)>,
    /// How old a reading may be and still count.
    pub freshness: chrono::Duration,
}

/// Web metrics.
#[derive(Clone)]
pub struct WebMetrics {
    /// `vigil_ws_clients`
    pub ws_clients: IntGauge,
    /// `vigil_ws_resyncs_total`: streams that fell behind the event hub
    /// and were told to refetch.
    pub ws_resyncs: IntCounter,
    /// `vigil_ws_missed_events_total`: the events those streams missed.
    pub ws_missed: IntCounter,
    /// `vigil_entered_readings_total{outcome}`: entries of readings by
    /// clinicians, `stored` or `failed` (the store did not confirm them).
    pub entered: prometheus::IntCounterVec,
    /// `vigil_sso_signins_total{outcome}`: sign-ins through the provider,
    /// `signed_in` or why not (the `sso_error` codes).
    pub sso: prometheus::IntCounterVec,
    /// `vigil_sso_logouts_total{outcome}`: the provider's back-channel
    /// logouts, `ended` (taken: the sessions it named ended) or `refused`.
    pub sso_logouts: prometheus::IntCounterVec,
    /// `vigil_sqlite_file_bytes{file}`: the SQLite database file (`db`) and
    /// its WAL (`wal`), read at each scrape; absent on PostgreSQL.
    pub sqlite_files: prometheus::IntGaugeVec,
}

impl WebMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let ws_clients = IntGauge::new("vigil_ws_clients", "Connected websocket clients")?;
        registry.register(Box::new(ws_clients.clone()))?;
        let ws_resyncs = IntCounter::new(
            "vigil_ws_resyncs_total",
            "Websocket streams that fell behind the event hub and were told to resync",
        )?;
        registry.register(Box::new(ws_resyncs.clone()))?;
        let ws_missed = IntCounter::new(
            "vigil_ws_missed_events_total",
            "Live events that lagging websocket streams missed (each told to resync)",
        )?;
        registry.register(Box::new(ws_missed.clone()))?;
        let entered = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "vigil_entered_readings_total",
                "Entries of readings by clinicians (POST /api/v1/patients/{id}/observations), by outcome: stored, or failed (not confirmed stored)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(entered.clone()))?;
        for outcome in ["stored", "failed"] {
            entered.with_label_values(&[outcome]);
        }
        let sso = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "vigil_sso_signins_total",
                "Sign-ins through the single sign-on provider, by outcome: signed_in, or cancelled, expired, provider (unreachable), refused (the ID token failed a check), no-account",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(sso.clone()))?;
        for outcome in [
            "signed_in",
            "cancelled",
            "expired",
            "provider",
            "refused",
            "no-account",
        ] {
            sso.with_label_values(&[outcome]);
        }
        let sso_logouts = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "vigil_sso_logouts_total",
                "Back-channel logouts from the single sign-on provider, by outcome: ended (the sessions of the sign-in it named ended), or refused (the logout token failed a check)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(sso_logouts.clone()))?;
        for outcome in ["ended", "refused"] {
            sso_logouts.with_label_values(&[outcome]);
        }
        let sqlite_files = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "vigil_sqlite_file_bytes",
                "Size of the SQLite database's files, read at this scrape: db (the database) and wal (its write-ahead log, which grows while a backup or other long read lasts)",
            ),
            &["file"],
        )?;
        registry.register(Box::new(sqlite_files.clone()))?;
        Ok(WebMetrics {
            sqlite_files,
            sso,
            sso_logouts,
            ws_clients,
            ws_resyncs,
            ws_missed,
            entered,
        })
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub events: vigil_store::LiveHub,
    pub registry: Registry,
    pub metrics: WebMetrics,
    pub broker_connected: watch::Receiver<bool>,
    /// Ask the scorer to recompute a patient's NEWS2 now.
    pub rescore: tokio::sync::mpsc::Sender<i64>,
    /// Readings clinicians entered, for the ingest to store.
    pub entered: tokio::sync::mpsc::Sender<vigil_store::EnteredReading>,
    /// Clinician alert actions for the rules engine.
    pub rule_actions: tokio::sync::mpsc::Sender<vigil_store::RuleAction>,
    /// The loaded pathways, by name.
    pub pathways: Arc<std::collections::BTreeMap<String, PathwayInfo>>,
    /// Served over HTTPS: cookies get `Secure`, responses get HSTS.
    pub tls: bool,
    /// Sign-ins of one account one at a time (the throttle's count).
    pub login_gate: Arc<crate::auth::LoginGate>,
    /// Single sign-on through the trust's OpenID Connect provider.
    pub sso: Option<Arc<sso::Sso>>,
    /// Whether `POST /api/v1/login` takes passwords (`sso.password_login`).
    pub password_login: bool,
    pub cancel: CancellationToken,
}

/// The largest request body any route accepts. The biggest legitimate body
/// is an admission or an episode update, well under 4 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The dashboard's Content-Security-Policy: everything from our own origin
/// only, no inline script or style, no framing, no plug-ins. The page is
/// built for it (one script file, one style sheet, no inline handlers).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every response (API and dashboard alike).
fn security_headers(tls: bool, mut res: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    use axum::http::header;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Patient data must not linger in shared caches or the browser's disk cache.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let tls = state.tls;
    Router::new()
        .route("/api/v1/login", post(auth::login))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/me/password", post(auth::change_password))
        .route("/api/v1/auth/methods", get(sso::methods))
        .route("/api/v1/auth/sso/login", get(sso::login))
        .route("/api/v1/auth/sso/callback", get(sso::callback))
        .route(
            "/api/v1/auth/sso/backchannel-logout",
            post(sso::backchannel_logout),
        )
        .route("/api/v1/stream", get(stream::upgrade))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .merge(patients::router())
        .merge(devices::router())
        .merge(alerts::router())
        .merge(audit::router())
        .merge(users::router())
        .merge(report::router())
        .merge(fhir::router())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(dashboard::router())
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(move |res| async move {
            security_headers(tls, res)
        }))
        .with_state(state)
}

/// How long an HTTP/1.1 client may take to send a request's headers. A
/// client that trickles them (slowloris) is disconnected instead of holding a
/// connection for ever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a stop waits for requests in flight before closing them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serve `router` on `listener` until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    serve_on(listener, router, cancel).await
}

/// Serve `router` over HTTPS on `listener` until `cancel` fires.
pub async fn serve_tls(
    listener: tls::TlsListener,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    serve_on(listener, router, cancel).await
}

/// The connection loop behind [`serve`] and [`serve_tls`]: hyper with a
/// header-read timeout (axum's own `serve` has none), websocket upgrades,
/// the client address for the audit trail, and a graceful stop.
async fn serve_on<L>(
    mut listener: L,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use tower::ServiceExt;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            _ = cancel.cancelled() => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                router.clone().oneshot(req)
            },
        );
        let conn = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("stopping with http connections still open");
    }
    Ok(())
}
