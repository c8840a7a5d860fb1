//! The `obs` uplink: a JSON observation message (CONTRACTS.md §2).
//!
//! ```json
//! {"seq":1842,"ts":"2026-11-22T08:15:03Z","obs":[{"code":"spo2","value":94,"unit":"%"}]}
//! ```
//!
//! Encoded straight into a caller's buffer, no allocation. Field order and
//! spacing are fixed, so the same message always encodes to the same bytes
//! (the queue resends bytes, not structs, so this matters only for tests and
//! for reproducible benchmarks).

use core::fmt::Write;

use crate::error::EncodeError;
use crate::json::BufWriter;
use crate::obs::{Observation, Value};
use crate::time::{MAX_TS_MS, MIN_VALID_TS_MS, UtcDateTime};

/// One observation message, borrowing its observations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObsMessage<'a> {
    /// The device's sequence number for this message.
    pub seq: u32,
    /// Measurement time, Unix milliseconds (UTC).
    pub ts_ms: i64,
    /// The observations, all measured at `ts_ms`.
    pub obs: &'a [Observation],
}

impl ObsMessage<'_> {
    /// Writes the JSON text into `buf` and returns its length.
    ///
    /// Refuses an empty observation list and a measurement time the device
    /// could not have meant (clock not set, or past year 9999).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.obs.is_empty() {
            return Err(EncodeError::NoObservations);
        }
        if self.ts_ms < MIN_VALID_TS_MS {
            return Err(EncodeError::ClockNotSet);
        }
        if self.ts_ms > MAX_TS_MS {
            return Err(EncodeError::TimeOutOfRange);
        }
        let mut w = BufWriter::new(buf);
        let _ = write!(
            w,
            "{{\"seq\":{},\"ts\":\"{}\",\"obs\":[",
            self.seq,
            UtcDateTime::from_unix_ms(self.ts_ms)
        );
        for (i, o) in self.obs.iter().enumerate() {
            if i > 0 {
                w.raw(",");
            }
            w.raw("{\"code\":");
            w.string(o.code().as_str());
            w.raw(",\"value\":");
            match o.value() {
                // Observation guarantees finiteness, so Display never prints
                // NaN/inf; it prints the shortest text that round-trips.
                Value::Number(v) => {
                    let _ = write!(w, "{v}");
                }
                Value::Acvpu(a) => w.string(a.as_str()),
                Value::Posture(p) => w.string(p.as_str()),
            }
            if let Some(unit) = o.unit() {
                w.raw(",\"unit\":");
                w.string(unit);
            }
            w.raw("}");
        }
        w.raw("]}");
        w.finish()
            .map_err(|needed| EncodeError::BufferTooSmall { needed })
    }

    /// The exact encoded length (the same checks as [`ObsMessage::encode`]).
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        match self.encode(&mut []) {
            Err(EncodeError::BufferTooSmall { needed }) => Ok(needed),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::{Acvpu, Code, Posture};

    const TS: i64 = 1_795_335_303_000; // 2026-11-22T08:15:03Z

    fn encode(m: &ObsMessage<'_>) -> heapless::String<512> {
        let mut buf = [0u8; 512];
        let n = m.encode(&mut buf).unwrap();
        let mut s = heapless::String::new();
        s.push_str(core::str::from_utf8(&buf[..n]).unwrap())
            .unwrap();
        s
    }

    #[test]
    fn encodes_the_contract_example_byte_for_byte() {
        let obs = [
            Observation::number(Code::Spo2, 94.0).unwrap(),
            Observation::number(Code::Pulse, 88.0).unwrap(),
        ];
        let m = ObsMessage {
            seq: 1842,
            ts_ms: TS,
            obs: &obs,
        };
        assert_eq!(
            encode(&m).as_str(),
            r#"{"seq":1842,"ts":"2026-11-22T08:15:03Z","obs":[{"code":"spo2","value":94,"unit":"%"},{"code":"pulse","value":88,"unit":"/min"}]}"#
        );
    }

    #[test]
    fn text_codes_have_string_values_and_no_unit() {
        let obs = [
            Observation::acvpu(Acvpu::A),
            Observation::posture(Posture::Lying),
            Observation::number(Code::Temp, 37.1).unwrap(),
        ];
        let m = ObsMessage {
            seq: 7,
            ts_ms: TS + 5,
            obs: &obs,
        };
        assert_eq!(
            encode(&m).as_str(),
            r#"{"seq":7,"ts":"2026-11-22T08:15:03.005Z","obs":[{"code":"acvpu","value":"A"},{"code":"posture","value":"lying"},{"code":"temp","value":37.1,"unit":"Cel"}]}"#
        );
    }

    #[test]
    fn output_is_valid_json_that_serde_json_reads_back() {
        let obs = [
            Observation::number(Code::Systolic, 132.5).unwrap(),
            Observation::number(Code::Fev1, 0.000_001).unwrap(),
        ];
        let m = ObsMessage {
            seq: u32::MAX,
            ts_ms: TS,
            obs: &obs,
        };
        let s = encode(&m);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["seq"], u32::MAX);
        assert_eq!(v["obs"][0]["value"], 132.5);
        assert_eq!(v["obs"][1]["value"], 0.000_001);
        assert_eq!(v["obs"][0]["unit"], "mm[Hg]");
    }

    #[test]
    fn small_buffer_is_an_error_never_a_truncated_message() {
        let obs = [Observation::number(Code::Spo2, 94.0).unwrap()];
        let m = ObsMessage {
            seq: 1,
            ts_ms: TS,
            obs: &obs,
        };
        let full = encode(&m).len();
        assert_eq!(m.encoded_len(), Ok(full));
        for cap in 0..full {
            let mut buf = [0u8; 128];
            assert_eq!(
                m.encode(&mut buf[..cap]),
                Err(EncodeError::BufferTooSmall { needed: full })
            );
        }
    }

    #[test]
    fn unset_clock_and_empty_messages_are_refused() {
        let obs = [Observation::number(Code::Spo2, 94.0).unwrap()];
        let mut buf = [0u8; 128];
        let m = ObsMessage {
            seq: 1,
            ts_ms: 0,
            obs: &obs,
        };
        assert_eq!(m.encode(&mut buf), Err(EncodeError::ClockNotSet));
        let m = ObsMessage {
            seq: 1,
            ts_ms: TS,
            obs: &[],
        };
        assert_eq!(m.encode(&mut buf), Err(EncodeError::NoObservations));
        let m = ObsMessage {
            seq: 1,
            ts_ms: i64::MAX,
            obs: &obs,
        };
        assert_eq!(m.encode(&mut buf), Err(EncodeError::TimeOutOfRange));
    }
}
