//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use prometheus::{Encoder, TextEncoder};

use crate::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the database answers and the ingest is connected to the broker.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = state.store.ping().await.is_ok();
    let broker = *state.broker_connected.borrow();
    let status = if db && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({"database": db, "broker": broker})),
    )
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Two `stat`s: cheap enough to read fresh at each scrape.
    for (file, bytes) in state.store.file_sizes() {
        state
            .metrics
            .sqlite_files
            .with_label_values(&[file])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&state.registry.gather(), &mut buf) {
        tracing::error!(error = %e, "metrics encoding failed");
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new()).into_response();
    }
    ([("content-type", "text/plain; version=0.0.4")], buf).into_response()
}
