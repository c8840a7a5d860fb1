//! Temperature Measurement, characteristic 0x2A1C (HTS v1.0 §3.1;
//! GSS `temperature_measurement`).
//!
//! | field | size | present when |
//! |---|---|---|
//! | Flags | 1 | always: bit 0 units (0 °C, 1 °F), bit 1 time stamp, bit 2 temperature type |
//! | Temperature Measurement Value | FLOAT (32-bit) | always |
//! | Time Stamp | 7 (`date_time`) | flag bit 1 |
//! | Temperature Type | 1 | flag bit 2 |
//!
//! Fahrenheit is converted to Celsius here (rounded to 0.01 Cel). The
//! temperature type maps to the contract code: finger and toe are
//! `skin_temp`, every other site (and no type) is `temp`.

use super::{DateTime, GattError, Measurement, Reader};
use crate::ieee11073;
use crate::obs::{Code, Observation};

/// The characteristic's 16-bit UUID.
pub const UUID: u16 = 0x2A1C;

/// Temperature unit on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemperatureUnit {
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit (converted by the parser).
    Fahrenheit,
}

/// A parsed, validated temperature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Temperature {
    /// `temp` or `skin_temp`, in Cel.
    pub temperature: Observation,
    /// Unit on the wire.
    pub unit_sent: TemperatureUnit,
    /// Device measurement time, when present and known.
    pub time_stamp: Option<DateTime>,
    /// Temperature Type (HTS §3.2: 1 armpit, 2 body, 3 ear, 4 finger,
    /// 5 gastro-intestinal, 6 mouth, 7 rectum, 8 toe, 9 tympanum).
    pub site: Option<u8>,
}

/// Parses a Temperature Measurement value.
pub fn parse(bytes: &[u8]) -> Result<Temperature, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let raw = r.u32("temperature")?;
    let value = ieee11073::float(raw).map_err(|special| GattError::NoValue {
        field: "temperature",
        special,
    })?;
    let time_stamp = if flags & 0x02 != 0 {
        r.date_time("time stamp")?
    } else {
        None
    };
    let site = if flags & 0x04 != 0 {
        Some(r.u8("temperature type")?)
    } else {
        None
    };
    let (unit_sent, celsius) = if flags & 0x01 != 0 {
        (
            TemperatureUnit::Fahrenheit,
            libm::round((value - 32.0) * 5.0 / 9.0 * 100.0) / 100.0,
        )
    } else {
        (TemperatureUnit::Celsius, value)
    };
    let code = match site {
        Some(4 | 8) => Code::SkinTemp,
        _ => Code::Temp,
    };
    Ok(Temperature {
        temperature: Observation::number(code, celsius)?,
        unit_sent,
        time_stamp,
        site,
    })
}

impl Measurement for Temperature {
    fn observations(&self) -> heapless::Vec<Observation, 4> {
        let mut v = heapless::Vec::new();
        let _ = v.push(self.temperature);
        v
    }

    fn timestamp(&self) -> Option<DateTime> {
        self.time_stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ieee11073::Special;
    use crate::obs::Value;

    fn num(o: Observation) -> f64 {
        match o.value() {
            Value::Number(v) => v,
            _ => panic!("not a number"),
        }
    }

    // HTS v1.0 §3.1 / GSS temperature_measurement: Celsius, 37.1 as FLOAT
    // 371 × 10^-1 = 0xFF000173.
    #[test]
    fn celsius_temperature() {
        let t = parse(&[0x00, 0x73, 0x01, 0x00, 0xFF]).unwrap();
        assert_eq!(num(t.temperature), 37.1);
        assert_eq!(t.temperature.code(), Code::Temp);
        assert_eq!(t.temperature.unit(), Some("Cel"));
    }

    // HTS v1.0 §3.1 flag bit 0 = 1: 98.6 °F = 986 × 10^-1 → 37.0 Cel; with
    // time stamp and type 4 (finger) → skin_temp.
    #[test]
    fn fahrenheit_is_converted_and_finger_is_skin_temp() {
        let b = [
            0x07, 0xDA, 0x03, 0x00, 0xFF, 0xEA, 0x07, 11, 22, 8, 15, 3, 0x04,
        ];
        let t = parse(&b).unwrap();
        assert_eq!(num(t.temperature), 37.0);
        assert_eq!(t.unit_sent, TemperatureUnit::Fahrenheit);
        assert_eq!(t.temperature.code(), Code::SkinTemp);
        assert!(t.timestamp().is_some());
        for n in 0..b.len() {
            assert!(
                matches!(parse(&b[..n]), Err(GattError::Truncated { .. })),
                "{n}"
            );
        }
    }

    // GSS medfloat32 special value NaN (0x007FFFFF).
    #[test]
    fn special_temperature_is_no_value() {
        assert_eq!(
            parse(&[0x00, 0xFF, 0xFF, 0x7F, 0x00]),
            Err(GattError::NoValue {
                field: "temperature",
                special: Special::NaN
            })
        );
    }
}
