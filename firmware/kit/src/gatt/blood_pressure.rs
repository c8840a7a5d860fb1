//! Blood Pressure Measurement, characteristic 0x2A35 (BLS v1.1.1 §3.1;
//! GSS `blood_pressure_measurement`).
//!
//! | field | size | present when |
//! |---|---|---|
//! | Flags | 1 | always: bit 0 units (0 mmHg, 1 kPa), 1 time stamp, 2 pulse rate, 3 user ID, 4 measurement status |
//! | Systolic, Diastolic, Mean Arterial Pressure | 3 × SFLOAT | always, in the unit of flag bit 0 |
//! | Time Stamp | 7 (`date_time`) | flag bit 1 |
//! | Pulse Rate | SFLOAT, beats/min | flag bit 2 |
//! | User ID | 1 (255 = unknown user) | flag bit 3 |
//! | Measurement Status | 2 | flag bit 4 |
//!
//! A cuff set to kPa sends e.g. 16.0 for 120 mmHg. Read as mmHg that is a
//! systolic of 16, a NEWS2 emergency that is not there; the other way round
//! hides a real one. So the unit flag is always honoured and kPa is
//! converted here (1 mmHg = 133.322387415 Pa), rounded to 0.1 `mm[Hg]`, finer
//! than any cuff resolves.

use super::{DateTime, GattError, Measurement, Reader};
use crate::obs::{Code, Observation};

/// The characteristic's 16-bit UUID.
pub const UUID: u16 = 0x2A35;

/// Pascals in one millimetre of mercury (the conventional mmHg).
const PA_PER_MMHG: f64 = 133.322_387_415;

/// The unit the cuff used on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressureUnit {
    /// Millimetres of mercury.
    MmHg,
    /// Kilopascals (converted to `mm[Hg]` by the parser).
    KPa,
}

/// BP Measurement Status bits (GSS `blood_pressure_measurement`, field
/// "Measurement Status").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpStatus(pub u16);

impl BpStatus {
    /// Bit 0: body movement during measurement.
    pub const fn body_movement(self) -> bool {
        self.0 & 1 != 0
    }
    /// Bit 1: cuff too loose.
    pub const fn cuff_too_loose(self) -> bool {
        self.0 & (1 << 1) != 0
    }
    /// Bit 2: irregular pulse detected.
    pub const fn irregular_pulse(self) -> bool {
        self.0 & (1 << 2) != 0
    }
    /// Bits 3–4: 0 pulse within range, 1 above upper limit, 2 below lower
    /// limit, 3 reserved.
    pub const fn pulse_rate_range(self) -> u8 {
        ((self.0 >> 3) & 0b11) as u8
    }
    /// Bit 5: improper measurement position.
    pub const fn improper_position(self) -> bool {
        self.0 & (1 << 5) != 0
    }
    /// Whether the cuff says the technique was wrong (movement, loose cuff,
    /// position): the reading stands but the patient should be asked to repeat.
    pub const fn technique_problem(self) -> bool {
        self.body_movement() || self.cuff_too_loose() || self.improper_position()
    }
}

/// A parsed, validated blood pressure measurement (values in `mm[Hg]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BloodPressure {
    /// Systolic pressure.
    pub systolic: Observation,
    /// Diastolic pressure.
    pub diastolic: Observation,
    /// Mean arterial pressure in `mm[Hg]`; `None` when the cuff sent NaN or
    /// another special value (the BLS allows a cuff not to compute it).
    pub mean_arterial_mmhg: Option<f64>,
    /// Pulse rate, when present and numeric.
    pub pulse: Option<Observation>,
    /// The unit on the wire (kept for audit; values are already `mm[Hg]`).
    pub unit_sent: PressureUnit,
    /// The cuff's own measurement time, when present and known.
    pub time_stamp: Option<DateTime>,
    /// User ID on a multi-user cuff; 255 means "unknown user".
    pub user_id: Option<u8>,
    /// Measurement status, when present.
    pub status: Option<BpStatus>,
}

fn to_mmhg(v: f64, unit: PressureUnit) -> f64 {
    match unit {
        PressureUnit::MmHg => v,
        PressureUnit::KPa => libm::round(v * 1000.0 / PA_PER_MMHG * 10.0) / 10.0,
    }
}

/// Parses a Blood Pressure Measurement value.
pub fn parse(bytes: &[u8]) -> Result<BloodPressure, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let unit_sent = if flags & 0x01 != 0 {
        PressureUnit::KPa
    } else {
        PressureUnit::MmHg
    };
    let systolic = to_mmhg(r.sfloat_required("systolic")?, unit_sent);
    let diastolic = to_mmhg(r.sfloat_required("diastolic")?, unit_sent);
    let mean_arterial_mmhg = r
        .sfloat("mean arterial pressure")?
        .ok()
        .map(|v| to_mmhg(v, unit_sent));
    let time_stamp = if flags & 0x02 != 0 {
        r.date_time("time stamp")?
    } else {
        None
    };
    let pulse = if flags & 0x04 != 0 {
        match r.sfloat("pulse rate")? {
            Ok(v) => Some(Observation::number(Code::Pulse, v)?),
            Err(_) => None,
        }
    } else {
        None
    };
    let user_id = if flags & 0x08 != 0 {
        Some(r.u8("user id")?)
    } else {
        None
    };
    let status = if flags & 0x10 != 0 {
        Some(BpStatus(r.u16("measurement status")?))
    } else {
        None
    };
    let systolic = Observation::number(Code::Systolic, systolic)?;
    let diastolic = Observation::number(Code::Diastolic, diastolic)?;
    if let (crate::Value::Number(s), crate::Value::Number(d)) =
        (systolic.value(), diastolic.value())
        && d >= s
    {
        return Err(GattError::Implausible("diastolic not below systolic"));
    }
    Ok(BloodPressure {
        systolic,
        diastolic,
        mean_arterial_mmhg,
        pulse,
        unit_sent,
        time_stamp,
        user_id,
        status,
    })
}

impl Measurement for BloodPressure {
    fn observations(&self) -> heapless::Vec<Observation, 4> {
        let mut v = heapless::Vec::new();
        // Capacity 4 ≥ 3 pushes: cannot fail.
        let _ = v.push(self.systolic);
        let _ = v.push(self.diastolic);
        if let Some(p) = self.pulse {
            let _ = v.push(p);
        }
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

    // BLS v1.1.1 §3.1 / GSS blood_pressure_measurement: flags 0x00 (mmHg, no
    // optional fields), systolic 120, diastolic 80, MAP 93 as SFLOAT exp 0.
    #[test]
    fn minimal_mmhg_measurement() {
        let b = [0x00, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00];
        let bp = parse(&b).unwrap();
        assert_eq!(num(bp.systolic), 120.0);
        assert_eq!(num(bp.diastolic), 80.0);
        assert_eq!(bp.mean_arterial_mmhg, Some(93.0));
        assert_eq!(bp.unit_sent, PressureUnit::MmHg);
        assert_eq!(bp.observations().len(), 2);
        assert_eq!(bp.systolic.unit(), Some("mm[Hg]"));
        assert_eq!(bp.timestamp(), None);
    }

    // BLS v1.1.1 §3.1 / GSS blood_pressure_measurement, flag bit 0 = 1 (kPa):
    // 16.0 kPa = 0xF0A0 (160 × 10^-1), 10.7 kPa = 0xF06B, MAP NaN (0x07FF).
    #[test]
    fn kpa_is_converted_to_mmhg_never_read_as_mmhg() {
        let b = [0x01, 0xA0, 0xF0, 0x6B, 0xF0, 0xFF, 0x07];
        let bp = parse(&b).unwrap();
        assert_eq!(bp.unit_sent, PressureUnit::KPa);
        assert_eq!(num(bp.systolic), 120.0); // 16.0 kPa = 120.009 mmHg
        assert_eq!(num(bp.diastolic), 80.3); // 10.7 kPa = 80.256 mmHg
        assert_eq!(bp.mean_arterial_mmhg, None);
    }

    // BLS v1.1.1 §3.1 / GSS blood_pressure_measurement: all optional fields
    // (flags 0x1E): time stamp 2026-11-22 08:15:03, pulse 72, user 1,
    // status with body movement (bit 0) and irregular pulse (bit 2).
    #[test]
    fn all_optional_fields_in_order() {
        let b = [
            0x1E, 0x82, 0x00, 0x55, 0x00, 0x64, 0x00, // 130/85, MAP 100
            0xEA, 0x07, 11, 22, 8, 15, 3, // time stamp
            0x48, 0x00, // pulse 72
            0x01, // user id
            0x05, 0x00, // status
        ];
        let bp = parse(&b).unwrap();
        assert_eq!(num(bp.systolic), 130.0);
        assert_eq!(bp.pulse.map(num), Some(72.0));
        assert_eq!(bp.user_id, Some(1));
        let st = bp.status.unwrap();
        assert!(st.body_movement() && st.irregular_pulse() && !st.cuff_too_loose());
        assert!(st.technique_problem());
        assert_eq!(bp.timestamp().unwrap().to_unix_ms(0), 1_795_335_303_000);
        assert_eq!(bp.observations().len(), 3);
        assert_eq!(bp.observations()[2].code(), Code::Pulse);
    }

    // BLS v1.1.1 §3.1: flags announce a field the value does not carry.
    #[test]
    fn truncated_values_are_errors() {
        let full = [
            0x1E, 0x82, 0x00, 0x55, 0x00, 0x64, 0x00, 0xEA, 0x07, 11, 22, 8, 15, 3, 0x48, 0x00,
            0x01, 0x05, 0x00,
        ];
        for n in 0..full.len() {
            assert!(
                matches!(parse(&full[..n]), Err(GattError::Truncated { .. })),
                "{n} bytes"
            );
        }
        assert!(parse(&full).is_ok());
    }

    // GSS medfloat16 special values in mandatory fields: no number invented.
    #[test]
    fn special_value_in_systolic_is_no_value() {
        let b = [0x00, 0xFF, 0x07, 0x50, 0x00, 0x5D, 0x00];
        assert_eq!(
            parse(&b),
            Err(GattError::NoValue {
                field: "systolic",
                special: Special::NaN
            })
        );
        let b = [0x00, 0x78, 0x00, 0xFE, 0x07, 0x5D, 0x00];
        assert_eq!(
            parse(&b),
            Err(GattError::NoValue {
                field: "diastolic",
                special: Special::PositiveInfinity
            })
        );
    }

    // BLS v1.1.1 §3.1: pulse rate NaN in an optional field is "absent".
    #[test]
    fn special_value_in_pulse_rate_drops_only_the_pulse() {
        let b = [0x04, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x00, 0x08];
        let bp = parse(&b).unwrap();
        assert_eq!(bp.pulse, None);
        assert_eq!(bp.observations().len(), 2);
    }

    #[test]
    fn impossible_or_inverted_pressures_are_refused() {
        // systolic 500 mmHg
        let b = [0x00, 0xF4, 0x01, 0x50, 0x00, 0x5D, 0x00];
        assert!(matches!(parse(&b), Err(GattError::Observation(_))));
        // 80/120: diastolic above systolic
        let b = [0x00, 0x50, 0x00, 0x78, 0x00, 0x5D, 0x00];
        assert!(matches!(parse(&b), Err(GattError::Implausible(_))));
        // negative diastolic
        let b = [0x00, 0x78, 0x00, 0xFF, 0x0F, 0x5D, 0x00];
        assert!(matches!(parse(&b), Err(GattError::Observation(_))));
    }

    // GSS date_time: year 0 = unknown (dropped); month 13 = invalid (refused).
    #[test]
    fn unknown_time_stamp_is_absent_and_invalid_one_is_refused() {
        let mut b = [
            0x02, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0, 0, 1, 1, 0, 0, 0,
        ];
        assert_eq!(parse(&b).unwrap().time_stamp, None);
        b[7..11].copy_from_slice(&[0xEA, 0x07, 13, 1]);
        assert_eq!(parse(&b), Err(GattError::InvalidTimestamp));
    }

    // Core spec: reserved flag bits are ignored; GSS: trailing octets ignored.
    #[test]
    fn reserved_flags_and_trailing_octets_are_ignored() {
        let b = [0xE0, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0xAA, 0xBB];
        assert!(parse(&b).is_ok());
    }
}
