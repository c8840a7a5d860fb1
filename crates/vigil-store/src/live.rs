//! The hub that carries [`LiveEvent`]s to every open dashboard stream.
//!
//! A ward's dashboards are many (every nurse's screen, the consultant's, a
//! wall display) and they all hear the same events: an observation for
//! every message stored, a score for every patient a pass scores, and the
//! alerts. A plain broadcast channel gives each stream its own deep copy of
//! each event, which that stream then puts into JSON: the work grows with
//! the number of screens. Here an event is shared (`Arc`) and put into JSON
//! once, by whichever stream sends it first; the other streams send the same
//! bytes. An event no stream listens for is never put into JSON at all.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::model::LiveEvent;

/// One event on its way to the streams, with its JSON once made.
#[derive(Debug)]
pub struct Shared {
    event: LiveEvent,
    json: OnceLock<Option<Bytes>>,
}

impl Shared {
    /// The ward the event belongs to (streams deliver it only there).
    pub fn ward_id(&self) -> i64 {
        self.event.ward_id()
    }

    /// The event as JSON text (UTF-8), made by the first caller and shared
    /// with the rest; `None` if it cannot be put into JSON (logged once).
    pub fn json(&self) -> Option<&Bytes> {
        self.json
            .get_or_init(|| match serde_json::to_vec(&self.event) {
                Ok(v) => Some(Bytes::from(v)),
                Err(e) => {
                    tracing::error!(error = %e, "live event not serialisable");
                    None
                }
            })
            .as_ref()
    }
}

/// The sending side, cloned into everything that reports live events.
#[derive(Clone, Debug)]
pub struct LiveHub {
    tx: broadcast::Sender<Arc<Shared>>,
}

impl LiveHub {
    /// A hub that keeps the last `capacity` events for streams that fall
    /// behind; a stream further behind than that is told how many it missed
    /// (and the dashboard refetches).
    pub fn new(capacity: usize) -> LiveHub {
        let (tx, _) = broadcast::channel(capacity);
        LiveHub { tx }
    }

    /// Sends `event` to every open stream; returns how many there are
    /// (none is not an error: nobody is watching).
    pub fn send(&self, event: LiveEvent) -> usize {
        self.tx
            .send(Arc::new(Shared {
                event,
                json: OnceLock::new(),
            }))
            .unwrap_or(0)
    }

    /// A new stream's receiver: every event sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Shared>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(ward_id: i64, patient_id: i64) -> LiveEvent {
        LiveEvent::Score {
            ward_id,
            patient_id,
            score: serde_json::json!({"total": 3, "risk": "low"}),
        }
    }

    #[test]
    fn every_stream_gets_the_same_json_made_once() {
        let hub = LiveHub::new(8);
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        assert_eq!(hub.send(score(1, 7)), 2);
        let (ea, eb) = (a.try_recv().unwrap(), b.try_recv().unwrap());
        assert!(Arc::ptr_eq(&ea, &eb), "one shared event, not a copy each");
        let ja = ea.json().unwrap().clone();
        let jb = eb.json().unwrap();
        // The same bytes (one buffer), and the event's own JSON.
        assert_eq!(ja.as_ptr(), jb.as_ptr());
        let v: serde_json::Value = serde_json::from_slice(&ja).unwrap();
        assert_eq!(v, serde_json::to_value(score(1, 7)).unwrap());
        assert_eq!(v["type"], "score");
        assert_eq!(ea.ward_id(), 1);
    }

    #[test]
    fn with_nobody_listening_an_event_is_dropped_not_an_error() {
        let hub = LiveHub::new(8);
        assert_eq!(hub.send(score(1, 7)), 0);
        let mut late = hub.subscribe();
        assert!(
            late.try_recv().is_err(),
            "a stream hears only what comes after it"
        );
    }
}
