//! `GET /api/v1/stream`: the websocket that pushes live events to the
//! dashboard, filtered to the caller's wards.
//!
//! If a slow client falls behind the event hub's buffer, it is told so with
//! `{"type":"resync","missed":N}` and should refetch: a dashboard must never
//! silently show a stale picture.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;
use vigil_store::AuthUser;

use crate::AppState;
use crate::auth::Caller;

/// The largest websocket message or frame a client may send.
pub const WS_MAX_MESSAGE: usize = 4096;

/// `GET /api/v1/stream`: a websocket of live events for your wards (see docs/http.md).
#[utoipa::path(
    get, path = "/api/v1/stream", tag = "meta",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 101, description = "Switching to the websocket; the server sends JSON text messages"),
        (status = 400, description = "Not a websocket upgrade request (axum's plain-text rejection)", content_type = "text/plain", body = String),
        (status = 401, description = "No or bad credentials", body = crate::openapi::ErrorBody),
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Result<Response, crate::error::ApiError> {
    crate::audit::record(
        &state,
        &caller,
        "stream.open",
        None,
        serde_json::json!({"ward_ids": caller.0.ward_ids}),
    )
    .await?;
    let Caller(user, info) = caller;
    // The stream is server → client; a client sends at most pings and a
    // close, so anything bigger than a few KiB is refused (connection closed).
    let ws = ws
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE);
    Ok(ws.on_upgrade(move |socket| serve(state, user, info.token_hash, socket)))
}

/// How often an open stream re-checks its credential.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// The credential behind `token_hash` still valid (not revoked, not past its
/// expiry or idle limit)? A store error counts as valid: the stream is not
/// cut because the database blinked, and the next check decides.
async fn still_valid(state: &AppState, token_hash: &str) -> bool {
    let idle = chrono::Duration::minutes(crate::auth::SESSION_IDLE_MINUTES);
    match state
        .store
        .token_user(token_hash, chrono::Utc::now(), idle)
        .await
    {
        Ok(found) => found.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "websocket credential re-check failed");
            true
        }
    }
}

async fn serve(state: AppState, user: AuthUser, token_hash: String, mut socket: WebSocket) {
    let mut rx = state.events.subscribe();
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    state.metrics.ws_clients.inc();
    let hello = serde_json::json!({"type": "hello", "ward_ids": user.ward_ids});
    let mut ok = socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok();
    while ok {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) if user.ward_ids.contains(&ev.ward_id()) => {
                    match serde_json::to_string(&ev) {
                        Ok(text) => ok = socket.send(Message::Text(text.into())).await.is_ok(),
                        Err(e) => tracing::error!(error = %e, "event not serialisable"),
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    let msg = serde_json::json!({"type": "resync", "missed": n});
                    ok = socket.send(Message::Text(msg.to_string().into())).await.is_ok();
                }
                Err(RecvError::Closed) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = recheck.tick() => {
                // Signed out, revoked or expired: tell the page, then close.
                if !still_valid(&state, &token_hash).await {
                    let msg = serde_json::json!({"type": "session_ended"});
                    let _ = socket.send(Message::Text(msg.to_string().into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            }
            _ = state.cancel.cancelled() => break,
        }
    }
    state.metrics.ws_clients.dec();
}
