//! `GET /api/v1/stream`: the websocket that pushes live events to the
//! dashboard, filtered to the caller's wards.
//!
//! If a slow client falls behind the event hub's buffer, it is told so with
//! `{"type":"resync","missed":N}` and should refetch: a dashboard must never
//! silently show a stale picture.

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::SinkExt;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
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

/// The most events a stream writes before it flushes them to the socket.
const BURST: usize = 256;

/// How often an open stream re-checks its credential.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// What a re-check of an open stream's credential found.
enum Recheck {
    /// Still valid, for the same wards (or the store could not say: the
    /// stream is not cut because the database blinked, and the next check
    /// decides).
    Same,
    /// Signed out, revoked, disabled or past its expiry or idle limit.
    Ended,
    /// Still valid, but an administrator changed the account's wards.
    Wards(Vec<i64>),
}

async fn recheck(state: &AppState, token_hash: &str, wards: &[i64]) -> Recheck {
    let idle = chrono::Duration::minutes(crate::auth::SESSION_IDLE_MINUTES);
    match state
        .store
        .token_user(token_hash, chrono::Utc::now(), idle)
        .await
    {
        Ok(None) => Recheck::Ended,
        Ok(Some(u)) => {
            let (mut now, mut before) = (u.ward_ids, wards.to_vec());
            now.sort_unstable();
            before.sort_unstable();
            if now == before {
                Recheck::Same
            } else {
                Recheck::Wards(now)
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "websocket credential re-check failed");
            Recheck::Same
        }
    }
}

async fn serve(state: AppState, user: AuthUser, token_hash: String, mut socket: WebSocket) {
    let mut rx = state.events.subscribe();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    state.metrics.ws_clients.inc();
    let hello = serde_json::json!({"type": "hello", "ward_ids": user.ward_ids});
    let mut ok = socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok();
    while ok {
        tokio::select! {
            ev = rx.recv() => {
                // This event, then whatever else is already waiting (up to
                // BURST), written together and flushed once: a pass's
                // scores come as one burst, and a write each would be a
                // system call each.
                let mut next = Some(ev.map_err(|e| match e {
                    RecvError::Lagged(n) => TryRecvError::Lagged(n),
                    RecvError::Closed => TryRecvError::Closed,
                }));
                let mut taken = 0;
                while let Some(item) = next.take() {
                    taken += 1;
                    let text = match item {
                        Ok(ev) if user.ward_ids.contains(&ev.ward_id()) => {
                            ev.json().and_then(|j| Utf8Bytes::try_from(j.clone()).ok())
                        }
                        Ok(_) | Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Lagged(n)) => {
                            state.metrics.ws_resyncs.inc();
                            state.metrics.ws_missed.inc_by(n);
                            Some(serde_json::json!({"type": "resync", "missed": n}).to_string().into())
                        }
                        Err(TryRecvError::Closed) => {
                            ok = false;
                            break;
                        }
                    };
                    if let Some(text) = text
                        && socket.feed(Message::Text(text)).await.is_err()
                    {
                        ok = false;
                        break;
                    }
                    if taken < BURST {
                        next = match rx.try_recv() {
                            Err(TryRecvError::Empty) => None,
                            more => Some(more),
                        };
                    }
                }
                ok = ok && socket.flush().await.is_ok();
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ticks.tick() => {
                // Signed out, revoked or expired: tell the page, then close.
                // Its wards changed: tell the page, then close, so that it
                // reloads what it shows for the new set, over a new stream
                // whose hello names it (a ward taken away sends nothing
                // more from this moment).
                let msg = match recheck(&state, &token_hash, &user.ward_ids).await {
                    Recheck::Same => continue,
                    Recheck::Ended => serde_json::json!({"type": "session_ended"}),
                    Recheck::Wards(ward_ids) => {
                        serde_json::json!({"type": "wards_changed", "ward_ids": ward_ids})
                    }
                };
                let _ = socket.send(Message::Text(msg.to_string().into())).await;
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
            _ = state.cancel.cancelled() => break,
        }
    }
    state.metrics.ws_clients.dec();
}
