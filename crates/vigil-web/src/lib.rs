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

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod devices;
pub mod error;
pub mod fhir;
pub mod openapi;
pub mod ops;
pub mod patients;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use prometheus::{IntGauge, Registry};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use vigil_store::{LiveEvent, Store};

impl AppState {
    /// The freshness window of a pathway (6 h if unknown).
    pub fn freshness(&self, pathway: &str) -> chrono::Duration {
        self.pathways.get(pathway).copied().unwrap_or_else(vigil_clinical::default_freshness)
    }
}

/// Web metrics.
#[derive(Clone)]
pub struct WebMetrics {
    /// `vigil_ws_clients`
    pub ws_clients: IntGauge,
}

impl WebMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let ws_clients = IntGauge::new("vigil_ws_clients", "Connected websocket clients")?;
        registry.register(Box::new(ws_clients.clone()))?;
        Ok(WebMetrics { ws_clients })
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub events: broadcast::Sender<LiveEvent>,
    pub registry: Registry,
    pub metrics: WebMetrics,
    pub broker_connected: watch::Receiver<bool>,
    /// Ask the scorer to recompute a patient's NEWS2 now.
    pub rescore: tokio::sync::mpsc::Sender<i64>,
    /// Failed sign-ins per account and address.
    pub throttle: Arc<auth::Throttle>,
    /// Clinician alert actions for the rules engine.
    pub rule_actions: tokio::sync::mpsc::Sender<vigil_store::RuleAction>,
    /// The loaded pathways' names and freshness windows.
    pub pathways: Arc<std::collections::BTreeMap<String, chrono::Duration>>,
    pub cancel: CancellationToken,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/login", post(auth::login))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/stream", get(stream::upgrade))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .merge(patients::router())
        .merge(devices::router())
        .merge(alerts::router())
        .merge(audit::router())
        .merge(fhir::router())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(dashboard::router())
        .fallback(|| async { error::ApiError::NotFound("route") })
        .with_state(state)
}

/// Serve `router` on `listener` until `cancel` fires.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}
