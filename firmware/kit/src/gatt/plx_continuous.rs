//! PLX Continuous Measurement, characteristic 0x2A5F (PLXS v1.0.1 §3.2;
//! GSS `plx_continuous_measurement`).
//!
//! | field | size | present when |
//! |---|---|---|
//! | Flags | 1 | always: bit 0 SpO2PR-Fast, 1 SpO2PR-Slow, 2 measurement status, 3 device and sensor status, 4 pulse amplitude index |
//! | SpO2PR-Normal (SpO2, PR) | 2 × SFLOAT | always |
//! | SpO2PR-Fast | 2 × SFLOAT | flag bit 0 |
//! | SpO2PR-Slow | 2 × SFLOAT | flag bit 1 |
//! | Measurement Status | 2 | flag bit 2 |
//! | Device and Sensor Status | 3 | flag bit 3 |
//! | Pulse Amplitude Index | SFLOAT | flag bit 4 |
//!
//! The observations are the "Normal" averaging; Fast and Slow are kept on
//! the struct. Continuous values carry no timestamp: they are measured now.

use super::plx::{DeviceSensorStatus, MeasurementStatus};
use super::{DateTime, GattError, Measurement, Reader};
use crate::ieee11073::Special;
use crate::obs::{Code, Observation};

/// The characteristic's 16-bit UUID.
pub const UUID: u16 = 0x2A5F;

/// A parsed, validated continuous reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlxContinuous {
    /// SpO2 (normal averaging).
    pub spo2: Observation,
    /// Pulse rate (normal averaging).
    pub pulse: Observation,
    /// SpO2 and PR with fast averaging, as sent (either may be special).
    pub fast: Option<(Result<f64, Special>, Result<f64, Special>)>,
    /// SpO2 and PR with slow averaging, as sent.
    pub slow: Option<(Result<f64, Special>, Result<f64, Special>)>,
    /// Measurement status, when present (already checked).
    pub measurement_status: Option<MeasurementStatus>,
    /// Device and sensor status, when present (already checked).
    pub device_status: Option<DeviceSensorStatus>,
    /// Pulse amplitude index in %, when present and numeric.
    pub pulse_amplitude_index: Option<f64>,
}

/// Parses a PLX Continuous Measurement value.
pub fn parse(bytes: &[u8]) -> Result<PlxContinuous, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let spo2 = r.sfloat_required("SpO2")?;
    let pr = r.sfloat_required("pulse rate")?;
    let fast = if flags & 0x01 != 0 {
        Some((r.sfloat("SpO2 fast")?, r.sfloat("pulse rate fast")?))
    } else {
        None
    };
    let slow = if flags & 0x02 != 0 {
        Some((r.sfloat("SpO2 slow")?, r.sfloat("pulse rate slow")?))
    } else {
        None
    };
    let measurement_status = if flags & 0x04 != 0 {
        Some(MeasurementStatus(r.u16("measurement status")?))
    } else {
        None
    };
    let device_status = if flags & 0x08 != 0 {
        Some(DeviceSensorStatus(r.u24("device and sensor status")?))
    } else {
        None
    };
    let pulse_amplitude_index = if flags & 0x10 != 0 {
        r.sfloat("pulse amplitude index")?.ok()
    } else {
        None
    };
    if let Some(s) = measurement_status {
        s.check()?;
    }
    if let Some(s) = device_status {
        s.check()?;
    }
    Ok(PlxContinuous {
        spo2: Observation::number(Code::Spo2, spo2)?,
        pulse: Observation::number(Code::Pulse, pr)?,
        fast,
        slow,
        measurement_status,
        device_status,
        pulse_amplitude_index,
    })
}

impl Measurement for PlxContinuous {
    fn observations(&self) -> heapless::Vec<Observation, 4> {
        let mut v = heapless::Vec::new();
        let _ = v.push(self.spo2);
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

    // PLXS v1.0.1 §3.2 / GSS plx_continuous_measurement: flags 0, normal
    // SpO2 95 %, PR 70 /min.
    #[test]
    fn minimal_continuous() {
        let m = parse(&[0x00, 0x5F, 0x00, 0x46, 0x00]).unwrap();
        assert_eq!(num(m.spo2), 95.0);
        assert_eq!(num(m.pulse), 70.0);
        assert_eq!(m.fast, None);
        assert_eq!(m.timestamp(), None);
    }

    // PLXS v1.0.1 §3.2: all optional fields (flags 0x1F), fast SpO2 NaN.
    #[test]
    fn all_optional_fields_in_order() {
        let b = [
            0x1F, 0x5F, 0x00, 0x46, 0x00, // normal 95 / 70
            0xFF, 0x07, 0x47, 0x00, // fast NaN / 71
            0x60, 0x00, 0x45, 0x00, // slow 96 / 69
            0x80, 0x00, // status: validated
            0x00, 0x00, 0x00, // device status
            0x0A, 0x00, // PAI 10
        ];
        let m = parse(&b).unwrap();
        assert_eq!(m.fast, Some((Err(Special::NaN), Ok(71.0))));
        assert_eq!(m.slow, Some((Ok(96.0), Ok(69.0))));
        assert_eq!(m.pulse_amplitude_index, Some(10.0));
        for n in 0..b.len() {
            assert!(
                matches!(parse(&b[..n]), Err(GattError::Truncated { .. })),
                "{n}"
            );
        }
    }

    // PLXS v1.0.1 §3.2 Measurement Status bit 13 "Measurement Unavailable",
    // Device and Sensor Status bit 15 "Sensor Disconnected".
    #[test]
    fn unavailable_or_disconnected_is_refused() {
        let b = [0x04, 0x5F, 0x00, 0x46, 0x00, 0x00, 0x20];
        assert_eq!(
            parse(&b),
            Err(GattError::Unusable("measurement unavailable"))
        );
        let b = [0x08, 0x5F, 0x00, 0x46, 0x00, 0x00, 0x80, 0x00];
        assert_eq!(parse(&b), Err(GattError::Unusable("sensor disconnected")));
    }

    // GSS medfloat16: normal SpO2 +INF is not a number.
    #[test]
    fn special_normal_spo2_is_no_value() {
        assert!(matches!(
            parse(&[0x00, 0xFE, 0x07, 0x46, 0x00]),
            Err(GattError::NoValue { .. })
        ));
    }
}
