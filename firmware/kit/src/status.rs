//! The `status` uplink (CONTRACTS.md §2): retained, also the MQTT last will.
//!
//! ```json
//! {"online":true,"battery_pct":80,"signal":"ok","fw":"0.1.0"}
//! ```
//!
//! Not sequenced and not queued: it is a retained state, where only the
//! latest value matters, so the caller publishes it directly (retain = true)
//! and registers `Status::offline()` as the last will at connect.

use core::fmt::Write;

use crate::error::EncodeError;
use crate::json::BufWriter;

/// Signal quality as the kit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Good signal.
    Ok,
    /// Poor signal.
    Poor,
    /// ECG leads off the patient.
    LeadOff,
}

impl Signal {
    /// The wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::Ok => "ok",
            Signal::Poor => "poor",
            Signal::LeadOff => "lead_off",
        }
    }
}

/// A device status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    /// Whether the device is online.
    pub online: bool,
    /// Battery charge, 0–100 % (clamped when encoding).
    pub battery_pct: Option<u8>,
    /// Signal quality.
    pub signal: Option<Signal>,
    /// Firmware version, `x.y.z`.
    pub fw: Option<&'a str>,
}

impl Status<'_> {
    /// The last-will payload: `{"online":false}`.
    pub const fn offline() -> Status<'static> {
        Status {
            online: false,
            battery_pct: None,
            signal: None,
            fw: None,
        }
    }

    /// Writes the JSON text into `buf` and returns its length; absent
    /// fields are left out.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = BufWriter::new(buf);
        let _ = write!(w, "{{\"online\":{}", self.online);
        if let Some(b) = self.battery_pct {
            let _ = write!(w, ",\"battery_pct\":{}", b.min(100));
        }
        if let Some(s) = self.signal {
            w.raw(",\"signal\":");
            w.string(s.as_str());
        }
        if let Some(fw) = self.fw {
            w.raw(",\"fw\":");
            w.string(fw);
        }
        w.raw("}");
        w.finish()
            .map_err(|needed| EncodeError::BufferTooSmall { needed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &Status<'_>) -> heapless::String<128> {
        let mut buf = [0u8; 128];
        let n = s.encode(&mut buf).unwrap();
        let mut out = heapless::String::new();
        out.push_str(core::str::from_utf8(&buf[..n]).unwrap())
            .unwrap();
        out
    }

    #[test]
    fn encodes_every_field_in_contract_form() {
        let s = Status {
            online: true,
            battery_pct: Some(180),
            signal: Some(Signal::LeadOff),
            fw: Some("0.1.0"),
        };
        assert_eq!(
            text(&s).as_str(),
            r#"{"online":true,"battery_pct":100,"signal":"lead_off","fw":"0.1.0"}"#
        );
    }

    #[test]
    fn last_will_is_offline_only() {
        assert_eq!(text(&Status::offline()).as_str(), r#"{"online":false}"#);
        let mut small = [0u8; 5];
        assert_eq!(
            Status::offline().encode(&mut small),
            Err(EncodeError::BufferTooSmall { needed: 16 })
        );
    }

    #[test]
    fn firmware_text_is_escaped_into_valid_json() {
        let s = Status {
            fw: Some("1.0\"x"),
            ..Status::offline()
        };
        let t = text(&s);
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["fw"], "1.0\"x");
    }
}
