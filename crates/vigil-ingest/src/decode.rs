//! Decoding an `obs` payload (CONTRACTS.md §2) into a validated message.
//!
//! A message is the unit of acknowledgement, so it is also the unit of
//! rejection: one impossible value refuses the whole message, with the reason
//! of the first bad observation. Every refusal has a short machine reason
//! (counted in `vigil_obs_rejected_total{reason}` and sent to the device) and
//! a human detail for the dead-letter table. Neither carries patient data.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::Deserialize;
use vigil_clinical::{Value, validate};
use vigil_store::{NewObservation, ObsValue};

/// How far in the future a measurement time may be before it is refused
/// (device clocks drift; more than this is a wrong clock, not a reading).
pub const MAX_FUTURE: Duration = Duration::minutes(5);

/// Largest payload accepted; bigger is refused unread.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// A well-formed, validated observation message.
#[derive(Clone, Debug, PartialEq)]
pub struct ObsMessage {
    pub seq: u32,
    pub measured_at: DateTime<Utc>,
    pub obs: Vec<NewObservation>,
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The sequence number, when the payload got far enough to have one.
    pub seq: Option<u32>,
    /// Stable machine reason: `json`, `schema`, `too_large`, `unknown_code`,
    /// `unit`, `range`, `value_type`, `timestamp`, `future_ts`, `no_patient`.
    pub reason: &'static str,
    pub detail: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    seq: u32,
    ts: String,
    obs: Vec<RawObs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObs {
    code: String,
    value: Value,
    #[serde(default)]
    unit: Option<String>,
}

/// Decode and validate an `obs` payload received at `now`.
pub fn decode_obs(payload: &[u8], now: DateTime<Utc>) -> Result<ObsMessage, Rejection> {
    let reject = |seq, reason, detail: String| Rejection {
        seq,
        reason,
        detail,
    };
    if payload.len() > MAX_PAYLOAD {
        return Err(reject(
            None,
            "too_large",
            format!("{} bytes > {MAX_PAYLOAD}", payload.len()),
        ));
    }
    // First learn the seq if there is one, so even a schema error can be
    // answered with a `reject` the device can match to its queue.
    let seq = serde_json::from_slice::<serde_json::Value>(payload)
        .map_err(|e| reject(None, "json", format!("not JSON: {e}")))?
        .get("seq")
        .and_then(|s| s.as_u64())
        .and_then(|s| u32::try_from(s).ok());
    let raw: RawMessage = serde_json::from_slice(payload)
        .map_err(|e| reject(seq, "schema", format!("bad message: {e}")))?;
    let seq = Some(raw.seq);
    // To the millisecond, as both stores keep it: what the worker holds
    // for scoring must be what it would read back (decision 0006).
    let measured_at = DateTime::parse_from_rfc3339(&raw.ts)
        .map_err(|e| reject(seq, "timestamp", format!("ts is not RFC 3339: {e}")))?
        .with_timezone(&Utc)
        .trunc_subsecs(3);
    if measured_at > now + MAX_FUTURE {
        return Err(reject(
            seq,
            "future_ts",
            format!("ts is {}s in the future", (measured_at - now).num_seconds()),
        ));
    }
    if raw.obs.is_empty() {
        return Err(reject(seq, "schema", "obs is empty".into()));
    }
    let mut obs = Vec::with_capacity(raw.obs.len());
    for o in raw.obs {
        let v = validate(&o.code, o.unit.as_deref(), &o.value).map_err(|r| {
            // The code is from a fixed vocabulary or refused as unknown; only
            // the first 32 characters of an unknown one are echoed.
            let code: String = o.code.chars().take(32).collect();
            reject(
                seq,
                r.as_str(),
                format!("observation {code:?}: {}", r.as_str()),
            )
        })?;
        obs.push(NewObservation {
            code: v.code.as_str().to_string(),
            value: match v.value {
                Value::Number(n) => ObsValue::Number(n),
                Value::Text(t) => ObsValue::Text(t),
            },
            unit: v.code.unit().map(str::to_string),
        });
    }
    Ok(ObsMessage {
        seq: raw.seq,
        measured_at,
        obs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T08:20:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn reason(payload: &str) -> &'static str {
        decode_obs(payload.as_bytes(), now())
            .expect_err("should be rejected")
            .reason
    }

    #[test]
    fn contract_example_decodes() {
        let m = decode_obs(
            br#"{"seq": 1842, "ts": "2026-11-22T08:15:03Z",
                 "obs": [{"code": "spo2", "value": 94, "unit": "%"},
                         {"code": "pulse", "value": 88, "unit": "/min"},
                         {"code": "acvpu", "value": "A"}]}"#,
            now(),
        )
        .expect("valid");
        assert_eq!(m.seq, 1842);
        assert_eq!(m.obs.len(), 3);
        assert_eq!(m.obs[0].value, ObsValue::Number(94.0));
        assert_eq!(m.obs[2].value, ObsValue::Text("A".into()));
    }

    #[test]
    fn a_measurement_time_is_kept_to_the_millisecond() {
        // As both stores keep it: what the scorer holds is what it would
        // read back.
        let m = decode_obs(
            br#"{"seq": 1, "ts": "2026-11-22T08:15:03.123456789+01:00",
                 "obs": [{"code": "spo2", "value": 94, "unit": "%"}]}"#,
            now(),
        )
        .expect("valid");
        assert_eq!(
            m.measured_at,
            DateTime::parse_from_rfc3339("2026-11-22T07:15:03.123Z").expect("valid")
        );
    }

    #[test]
    fn each_kind_of_bad_message_has_its_own_reason() {
        let ok_obs = r#"[{"code":"spo2","value":94,"unit":"%"}]"#;
        assert_eq!(reason("{not json"), "json");
        assert_eq!(reason(r#"{"seq":1,"obs":[]}"#), "schema");
        assert_eq!(
            reason(&format!(
                r#"{{"seq":1,"ts":"2026-11-22T08:15:03Z","obs":{ok_obs},"x":1}}"#
            )),
            "schema"
        );
        assert_eq!(
            reason(r#"{"seq":1,"ts":"2026-11-22T08:15:03Z","obs":[]}"#),
            "schema"
        );
        assert_eq!(
            reason(&format!(r#"{{"seq":1,"ts":"yesterday","obs":{ok_obs}}}"#)),
            "timestamp"
        );
        assert_eq!(
            reason(&format!(
                r#"{{"seq":1,"ts":"2026-11-22T09:20:00Z","obs":{ok_obs}}}"#
            )),
            "future_ts"
        );
        assert_eq!(
            reason(r#"{"seq":1,"ts":"2026-11-22T08:15:03Z","obs":[{"code":"mood","value":3}]}"#),
            "unknown_code"
        );
        assert_eq!(
            reason(
                r#"{"seq":1,"ts":"2026-11-22T08:15:03Z","obs":[{"code":"spo2","value":94,"unit":"mmHg"}]}"#
            ),
            "unit"
        );
        assert_eq!(
            reason(
                r#"{"seq":1,"ts":"2026-11-22T08:15:03Z","obs":[{"code":"spo2","value":250,"unit":"%"}]}"#
            ),
            "range"
        );
        assert_eq!(
            reason(
                r#"{"seq":1,"ts":"2026-11-22T08:15:03Z","obs":[{"code":"spo2","value":"high","unit":"%"}]}"#
            ),
            "value_type"
        );
    }

    #[test]
    fn a_reading_four_minutes_ahead_is_clock_drift_and_accepted() {
        let p = r#"{"seq":1,"ts":"2026-11-22T08:24:00Z","obs":[{"code":"pulse","value":70,"unit":"/min"}]}"#;
        assert!(decode_obs(p.as_bytes(), now()).is_ok());
    }

    #[test]
    fn rejection_keeps_the_seq_when_it_can() {
        let r = decode_obs(br#"{"seq":77,"ts":"2026-11-22T08:15:03Z","obs":[{"code":"spo2","value":250,"unit":"%"}]}"#, now())
            .expect_err("range");
        assert_eq!(r.seq, Some(77));
        assert_eq!(decode_obs(b"[1,2", now()).expect_err("json").seq, None);
    }
}
