//! PLX Spot-Check Measurement, characteristic 0x2A5E (PLXS v1.0.1 §3.1;
//! GSS `plx_spot_check_measurement`).
//!
//! | field | size | present when |
//! |---|---|---|
//! | Flags | 1 | always: bit 0 timestamp, 1 measurement status, 2 device and sensor status, 3 pulse amplitude index, 4 device clock is not set |
//! | SpO2, PR | 2 × SFLOAT (%, beats/min) | always |
//! | Timestamp | 7 (`date_time`) | flag bit 0 |
//! | Measurement Status | 2 | flag bit 1 |
//! | Device and Sensor Status | 3 | flag bit 2 |
//! | Pulse Amplitude Index | SFLOAT, % | flag bit 3 |
//!
//! Time: with flag bit 4 ("Device Clock is Not Set") the timestamp is
//! meaningless and is dropped, so the caller falls back to the time of
//! receipt. That fallback is only right for a live reading: a reading the
//! oximeter replays from its memory ("Data from Measurement Storage") with an
//! unset clock has no knowable time, and is refused
//! ([`GattError::UnknownMeasurementTime`]) instead of being filed at the
//! time of the upload.

use super::plx::{DeviceSensorStatus, MeasurementStatus};
use super::{DateTime, GattError, Measurement, Reader};
use crate::obs::{Code, Observation};

/// The characteristic's 16-bit UUID.
pub const UUID: u16 = 0x2A5E;

/// A parsed, validated spot-check reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlxSpotCheck {
    /// SpO2.
    pub spo2: Observation,
    /// Pulse rate.
    pub pulse: Observation,
    /// The device's measurement time, when present, known and the clock set.
    pub time_stamp: Option<DateTime>,
    /// Flag bit 4: the device clock is not set.
    pub clock_not_set: bool,
    /// Measurement status, when present (already checked: nothing in it
    /// makes the reading unusable).
    pub measurement_status: Option<MeasurementStatus>,
    /// Device and sensor status, when present (already checked likewise).
    pub device_status: Option<DeviceSensorStatus>,
    /// Pulse amplitude index in %, when present and numeric.
    pub pulse_amplitude_index: Option<f64>,
}

/// Parses a PLX Spot-Check Measurement value.
pub fn parse(bytes: &[u8]) -> Result<PlxSpotCheck, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let spo2 = r.sfloat_required("SpO2")?;
    let pr = r.sfloat_required("pulse rate")?;
    let time_stamp = if flags & 0x01 != 0 {
        r.date_time("timestamp")?
    } else {
        None
    };
    let measurement_status = if flags & 0x02 != 0 {
        Some(MeasurementStatus(r.u16("measurement status")?))
    } else {
        None
    };
    let device_status = if flags & 0x04 != 0 {
        Some(DeviceSensorStatus(r.u24("device and sensor status")?))
    } else {
        None
    };
    let pulse_amplitude_index = if flags & 0x08 != 0 {
        r.sfloat("pulse amplitude index")?.ok()
    } else {
        None
    };
    let clock_not_set = flags & 0x10 != 0;

    if let Some(s) = measurement_status {
        s.check()?;
    }
    if let Some(s) = device_status {
        s.check()?;
    }
    let from_storage = measurement_status.is_some_and(|s| s.has(MeasurementStatus::FROM_STORAGE));
    let time_stamp = if clock_not_set { None } else { time_stamp };
    if from_storage && time_stamp.is_none() {
        return Err(GattError::UnknownMeasurementTime);
    }
    Ok(PlxSpotCheck {
        spo2: Observation::number(Code::Spo2, spo2)?,
        pulse: Observation::number(Code::Pulse, pr)?,
        time_stamp,
        clock_not_set,
        measurement_status,
        device_status,
        pulse_amplitude_index,
    })
}

impl Measurement for PlxSpotCheck {
    fn observations(&self) -> heapless::Vec<Observation, 4> {
        let mut v = heapless::Vec::new();
        let _ = v.push(self.spo2);
        let _ = v.push(self.pulse);
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

    // PLXS v1.0.1 §3.1 / GSS plx_spot_check_measurement: flags 0, SpO2 97 %,
    // PR 64 /min.
    #[test]
    fn minimal_spot_check() {
        let m = parse(&[0x00, 0x61, 0x00, 0x40, 0x00]).unwrap();
        assert_eq!(num(m.spo2), 97.0);
        assert_eq!(num(m.pulse), 64.0);
        assert_eq!(m.spo2.unit(), Some("%"));
        assert_eq!(m.pulse.unit(), Some("/min"));
        assert_eq!(m.observations().len(), 2);
        assert_eq!(m.timestamp(), None);
    }

    // PLXS v1.0.1 §3.1: all optional fields (flags 0x0F): timestamp, status
    // "validated" (bit 7), device status "low perfusion" (bit 5), PAI 2.5 %.
    #[test]
    fn all_optional_fields_in_order() {
        let b = [
            0x0F, 0x5E, 0x00, 0x58, 0x00, // SpO2 94, PR 88
            0xEA, 0x07, 11, 22, 8, 15, 3, // timestamp
            0x80, 0x00, // measurement status: validated
            0x20, 0x00, 0x00, // device status: low perfusion
            0x19, 0xF0, // PAI 25 × 10^-1
        ];
        let m = parse(&b).unwrap();
        assert_eq!(num(m.spo2), 94.0);
        assert_eq!(m.timestamp().unwrap().to_unix_ms(0), 1_795_335_303_000);
        assert!(
            m.measurement_status
                .unwrap()
                .has(MeasurementStatus::VALIDATED)
        );
        assert!(m.device_status.unwrap().signal_doubtful());
        assert_eq!(m.pulse_amplitude_index, Some(2.5));
    }

    // PLXS v1.0.1 §3.1, every prefix of a full value is truncated.
    #[test]
    fn truncated_values_are_errors() {
        let b = [
            0x0F, 0x5E, 0x00, 0x58, 0x00, 0xEA, 0x07, 11, 22, 8, 15, 3, 0x80, 0x00, 0x20, 0x00,
            0x00, 0x19, 0xF0,
        ];
        for n in 0..b.len() {
            assert!(
                matches!(parse(&b[..n]), Err(GattError::Truncated { .. })),
                "{n}"
            );
        }
    }

    // PLXS v1.0.1 §3.1 Measurement Status bit 15 / bit 10 and Device and
    // Sensor Status bit 11: the device disowns the reading.
    #[test]
    fn readings_the_device_disowns_are_refused() {
        let invalid = [0x02, 0x5E, 0x00, 0x58, 0x00, 0x00, 0x80];
        assert_eq!(
            parse(&invalid),
            Err(GattError::Unusable("invalid measurement detected"))
        );
        let demo = [0x02, 0x5E, 0x00, 0x58, 0x00, 0x00, 0x04];
        assert_eq!(
            parse(&demo),
            Err(GattError::Unusable("data for demonstration"))
        );
        let off_finger = [0x04, 0x5E, 0x00, 0x58, 0x00, 0x00, 0x08, 0x00];
        assert_eq!(
            parse(&off_finger),
            Err(GattError::Unusable("sensor not on the patient"))
        );
    }

    // GSS medfloat16: SpO2 NaN / NRes never becomes a number.
    #[test]
    fn special_spo2_is_no_value() {
        assert_eq!(
            parse(&[0x00, 0xFF, 0x07, 0x40, 0x00]),
            Err(GattError::NoValue {
                field: "SpO2",
                special: Special::NaN
            })
        );
        assert_eq!(
            parse(&[0x00, 0x61, 0x00, 0x00, 0x08]),
            Err(GattError::NoValue {
                field: "pulse rate",
                special: Special::NRes
            })
        );
    }

    #[test]
    fn spo2_above_100_is_refused() {
        // 101 %
        assert!(matches!(
            parse(&[0x00, 0x65, 0x00, 0x40, 0x00]),
            Err(GattError::Observation(_))
        ));
    }

    // PLXS v1.0.1 §3.1 flag bit 4 "Device Clock is Not Set": the timestamp
    // is dropped for a live reading and the reading refused when it was
    // replayed from storage (Measurement Status bit 9).
    #[test]
    fn unset_device_clock_drops_timestamp_and_refuses_stored_readings() {
        let live = [0x11, 0x5E, 0x00, 0x58, 0x00, 0xD0, 0x07, 1, 1, 0, 0, 0];
        let m = parse(&live).unwrap();
        assert!(m.clock_not_set);
        assert_eq!(m.timestamp(), None);

        let stored = [
            0x13, 0x5E, 0x00, 0x58, 0x00, 0xD0, 0x07, 1, 1, 0, 0, 0, 0x00, 0x02,
        ];
        assert_eq!(parse(&stored), Err(GattError::UnknownMeasurementTime));

        let stored_with_clock = [
            0x03, 0x5E, 0x00, 0x58, 0x00, 0xEA, 0x07, 11, 22, 8, 15, 3, 0x00, 0x02,
        ];
        assert!(parse(&stored_with_clock).unwrap().timestamp().is_some());
    }
}
