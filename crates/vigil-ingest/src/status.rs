//! Device `status` messages (docs/mqtt.md): each device's last one is kept
//! in the store, so the patient page shows battery and signal as soon as it
//! opens, not only once the next status arrives on the websocket.

use chrono::{DateTime, Utc};
use vigil_store::DeviceStatusReport;

/// The signal words of the contract; anything else is stored as unknown.
const SIGNALS: [&str; 3] = ["ok", "poor", "lead_off"];

/// The stored form of a status message received at `now`. A missing
/// `online` means online (a device that can publish is connected; the last
/// will says `false`); a field missing or out of range is unknown (`None`).
pub fn report(status: &serde_json::Value, now: DateTime<Utc>) -> DeviceStatusReport {
    DeviceStatusReport {
        online: status
            .get("online")
            .and_then(|v| v.as_bool())
            .unwrap_or(true),
        battery_pct: status
            .get("battery_pct")
            .and_then(|v| v.as_u64())
            .and_then(|v| u8::try_from(v).ok())
            .filter(|b| *b <= 100),
        signal: status
            .get("signal")
            .and_then(|v| v.as_str())
            .filter(|s| SIGNALS.contains(s))
            .map(str::to_string),
        fw: status
            .get("fw")
            .and_then(|v| v.as_str())
            // A control character (NUL above all, which PostgreSQL cannot
            // store) makes the version unknown, not the whole status lost.
            .filter(|s| s.len() <= 32 && !s.chars().any(char::is_control))
            .map(str::to_string),
        reported_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_keeps_known_fields_and_drops_the_rest_as_unknown() {
        let now = Utc::now();
        let r = report(
            &json!({"online": true, "battery_pct": 71, "signal": "ok", "fw": "1.2.3"}),
            now,
        );
        assert_eq!(
            (
                r.online,
                r.battery_pct,
                r.signal.as_deref(),
                r.fw.as_deref()
            ),
            (true, Some(71), Some("ok"), Some("1.2.3"))
        );
        let r = report(&json!({"online": false}), now);
        assert_eq!(
            (r.online, r.battery_pct, r.signal, r.fw),
            (false, None, None, None)
        );
        let r = report(&json!({"battery_pct": 101, "signal": "excellent"}), now);
        assert_eq!((r.online, r.battery_pct, r.signal), (true, None, None));
        assert_eq!(report(&json!({"battery_pct": -1}), now).battery_pct, None);
        assert_eq!(report(&json!({"battery_pct": 0}), now).battery_pct, Some(0));
        let r = report(&json!({"battery_pct": 80, "fw": "1.2\u{0}"}), now);
        assert_eq!(
            (r.battery_pct, r.fw),
            (Some(80), None),
            "a NUL makes fw unknown"
        );
    }
}
