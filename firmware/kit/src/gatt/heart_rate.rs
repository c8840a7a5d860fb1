//! Heart Rate Measurement, characteristic 0x2A37 (HRS v1.0 §3.1;
//! GSS `heart_rate_measurement`).
//!
//! | field | size | present when |
//! |---|---|---|
//! | Flags | 1 | always: bit 0 value format (0 u8, 1 u16), bits 1–2 sensor contact status, bit 3 energy expended, bit 4 RR intervals |
//! | Heart Rate Measurement Value | 1 or 2, beats/min | always |
//! | Energy Expended | 2, kJ | flag bit 3 |
//! | RR-Interval | 2 each, 1/1024 s | flag bit 4: every remaining pair of octets |
//!
//! Sensor contact status: 0 or 1 not supported, 2 supported but no contact,
//! 3 supported and in contact. A strap that reports "no contact" is not
//! measuring the patient, so its value is refused. A heart rate of 0 is
//! treated as "no value": straps send it while they search for a signal.

use super::{DateTime, GattError, Measurement, Reader};
use crate::obs::{Code, Observation};

/// The characteristic's 16-bit UUID.
pub const UUID: u16 = 0x2A37;

/// Sensor contact as the strap reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorContact {
    /// The sensor does not report contact (status 0 or 1).
    NotSupported,
    /// Supported and in contact (status 3).
    Detected,
}

/// A parsed heart rate measurement, borrowing its RR intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeartRate<'a> {
    /// Heart rate as a `pulse` observation.
    pub pulse: Observation,
    /// Contact status.
    pub contact: SensorContact,
    /// Energy expended since the last reset, kJ.
    pub energy_expended_kj: Option<u16>,
    rr_raw: &'a [u8],
}

impl<'a> HeartRate<'a> {
    /// RR intervals in units of 1/1024 s, oldest first.
    pub fn rr_intervals_raw(&self) -> impl ExactSizeIterator<Item = u16> + 'a {
        self.rr_raw
            .as_chunks::<2>()
            .0
            .iter()
            .map(|c| u16::from_le_bytes(*c))
    }

    /// RR intervals in milliseconds, oldest first.
    pub fn rr_intervals_ms(&self) -> impl ExactSizeIterator<Item = f64> + 'a {
        self.rr_intervals_raw()
            .map(|v| f64::from(v) * 1000.0 / 1024.0)
    }
}

/// Parses a Heart Rate Measurement value.
pub fn parse(bytes: &[u8]) -> Result<HeartRate<'_>, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let hr = if flags & 0x01 != 0 {
        r.u16("heart rate (u16)")?
    } else {
        u16::from(r.u8("heart rate (u8)")?)
    };
    let contact = match (flags >> 1) & 0b11 {
        2 => return Err(GattError::Unusable("no sensor contact")),
        3 => SensorContact::Detected,
        _ => SensorContact::NotSupported,
    };
    let energy_expended_kj = if flags & 0x08 != 0 {
        Some(r.u16("energy expended")?)
    } else {
        None
    };
    let rr_raw = if flags & 0x10 != 0 {
        let rest = r.rest();
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(GattError::Truncated {
                field: "RR-interval",
                needed: bytes.len() + if rest.is_empty() { 2 } else { 1 },
                len: bytes.len(),
            });
        }
        rest
    } else {
        &[]
    };
    if hr == 0 {
        return Err(GattError::Unusable("heart rate 0: no signal"));
    }
    Ok(HeartRate {
        pulse: Observation::number(Code::Pulse, f64::from(hr))?,
        contact,
        energy_expended_kj,
        rr_raw,
    })
}

impl Measurement for HeartRate<'_> {
    fn observations(&self) -> heapless::Vec<Observation, 4> {
        let mut v = heapless::Vec::new();
        let _ = v.push(self.pulse);
        v
    }

    fn timestamp(&self) -> Option<DateTime> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::Value;

    fn num(o: Observation) -> f64 {
        match o.value() {
            Value::Number(v) => v,
            _ => panic!("not a number"),
        }
    }

    // HRS v1.0 §3.1 / GSS heart_rate_measurement: flags 0 (u8 format, contact
    // not supported), 72 bpm.
    #[test]
    fn u8_format_heart_rate() {
        let m = parse(&[0x00, 72]).unwrap();
        assert_eq!(num(m.pulse), 72.0);
        assert_eq!(m.contact, SensorContact::NotSupported);
        assert_eq!(m.rr_intervals_raw().len(), 0);
        assert_eq!(m.observations()[0].unit(), Some("/min"));
    }

    // HRS v1.0 §3.1: flag bit 0 = 1 → u16 value; bits 1–2 = 3 contact detected;
    // bit 3 energy expended 300 kJ; bit 4 two RR intervals 1024 (1 s) and 768.
    #[test]
    fn u16_format_with_energy_and_rr_intervals() {
        let b = [0x1F, 0x2C, 0x01, 0x2C, 0x01, 0x00, 0x04, 0x00, 0x03];
        let m = parse(&b).unwrap();
        assert_eq!(num(m.pulse), 300.0);
        assert_eq!(m.contact, SensorContact::Detected);
        assert_eq!(m.energy_expended_kj, Some(300));
        assert!(m.rr_intervals_raw().eq([1024, 768]));
        assert!(m.rr_intervals_ms().eq([1000.0, 750.0]));
    }

    // HRS v1.0 §3.1 sensor contact status 2: supported, not detected.
    #[test]
    fn no_sensor_contact_is_refused() {
        assert_eq!(
            parse(&[0x04, 72]),
            Err(GattError::Unusable("no sensor contact"))
        );
    }

    // HRS v1.0 §3.1: truncated u16 value, missing energy, odd RR octet,
    // RR flag with no intervals.
    #[test]
    fn truncated_and_malformed_values_are_errors() {
        assert!(matches!(parse(&[]), Err(GattError::Truncated { .. })));
        assert!(matches!(
            parse(&[0x01, 0x48]),
            Err(GattError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&[0x08, 72, 0x01]),
            Err(GattError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&[0x10, 72, 0x00, 0x04, 0x00]),
            Err(GattError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&[0x10, 72]),
            Err(GattError::Truncated { .. })
        ));
    }

    #[test]
    fn zero_and_impossible_rates_are_refused() {
        assert!(matches!(parse(&[0x00, 0]), Err(GattError::Unusable(_))));
        // 1000 bpm in u16 format
        assert!(matches!(
            parse(&[0x01, 0xE8, 0x03]),
            Err(GattError::Observation(_))
        ));
    }
}
