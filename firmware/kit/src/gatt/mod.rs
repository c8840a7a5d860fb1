//! Bluetooth SIG health characteristics a kit receives, parsed into
//! validated [`Observation`]s.
//!
//! One module per characteristic:
//!
//! | UUID | characteristic | module | specification |
//! |---|---|---|---|
//! | 0x2A35 | Blood Pressure Measurement | [`blood_pressure`] | Blood Pressure Service (BLS) v1.1.1 §3.1; GATT Specification Supplement (GSS), `org.bluetooth.characteristic.blood_pressure_measurement` |
//! | 0x2A5E | PLX Spot-Check Measurement | [`plx_spot_check`] | Pulse Oximeter Service (PLXS) v1.0.1 §3.1; GSS `plx_spot_check_measurement` |
//! | 0x2A5F | PLX Continuous Measurement | [`plx_continuous`] | PLXS v1.0.1 §3.2; GSS `plx_continuous_measurement` |
//! | 0x2A37 | Heart Rate Measurement | [`heart_rate`] | Heart Rate Service (HRS) v1.0 §3.1; GSS `heart_rate_measurement` |
//! | 0x2A1C | Temperature Measurement | [`temperature`] | Health Thermometer Service (HTS) v1.0 §3.1; GSS `temperature_measurement` |
//!
//! Field layouts are those of the GSS characteristic definitions; numeric
//! fields use IEEE 11073-20601 `SFLOAT`/`FLOAT` ([`crate::ieee11073`]) and
//! timestamps the GSS `date_time` structure ([`DateTime`]).
//!
//! Common rules, from the specifications and from what a clinical system
//! needs:
//! - Flag bits marked "Reserved for Future Use" are ignored, as the Core
//!   Specification asks of a receiver; octets after the last field the flags
//!   announce are ignored too, so a device implementing a later revision
//!   that appends fields still works.
//! - A value the flags announce but the bytes do not hold is
//!   [`GattError::Truncated`]; nothing is guessed.
//! - IEEE 11073 special values ([`crate::ieee11073::Special`]) are never turned
//!   into numbers. A mandatory field (systolic, SpO2, ...) that holds one
//!   makes the whole measurement an error; an optional field (pulse rate in a
//!   BP measurement, mean arterial pressure) that holds one is treated as
//!   absent.
//! - Units are converted to the contract's (kPa → `mm[Hg]`, °F → Cel) here,
//!   once, with the original unit kept on the parsed struct for audit.
//! - A device timestamp is kept as the device sent it ([`DateTime`]); turning
//!   it into UTC needs the device's UTC offset, which only the caller knows.

pub mod blood_pressure;
pub mod heart_rate;
pub mod plx;
pub mod plx_continuous;
pub mod plx_spot_check;
pub mod temperature;

use crate::ieee11073::{self, Special};
use crate::obs::{ObsError, Observation};
use crate::time::{days_from_civil, is_valid_date};

/// Why a characteristic value was not turned into observations.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum GattError {
    /// The value ends before a field its flags announce.
    #[error("{field}: value truncated ({len} bytes, {needed} needed)")]
    Truncated {
        /// The field that did not fit.
        field: &'static str,
        /// Bytes needed up to the end of that field.
        needed: usize,
        /// Bytes received.
        len: usize,
    },
    /// A mandatory numeric field holds an IEEE 11073 special value.
    #[error("{field}: no numeric value ({special})")]
    NoValue {
        /// The field.
        field: &'static str,
        /// What the device sent instead.
        special: Special,
    },
    /// A value is not a possible measurement (e.g. SpO2 above 100 %).
    #[error(transparent)]
    Observation(#[from] ObsError),
    /// The device timestamp is not a real date and time.
    #[error("device timestamp is not a valid date and time")]
    InvalidTimestamp,
    /// The values contradict each other (e.g. diastolic above systolic).
    #[error("implausible measurement: {0}")]
    Implausible(&'static str),
    /// The device flags the measurement itself as unusable (invalid,
    /// unavailable, demonstration or test data, sensor off the patient ...).
    #[error("device reports the measurement unusable: {0}")]
    Unusable(&'static str),
    /// A stored measurement whose time the device does not know: it can
    /// neither be placed by its own time nor by the time it arrived.
    #[error("stored measurement with unknown measurement time")]
    UnknownMeasurementTime,
}

/// A device date and time (GSS "Date Time", 0x2A08): local to the device,
/// no time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Year 1582..=9999.
    pub year: u16,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
    /// Hours 0..=23.
    pub hours: u8,
    /// Minutes 0..=59.
    pub minutes: u8,
    /// Seconds 0..=59.
    pub seconds: u8,
}

impl DateTime {
    /// Length on the wire.
    pub const LEN: usize = 7;

    /// Parses the 7-byte field. `Ok(None)` when the device says the date is
    /// not known (year, month or day 0, as the GSS defines), an error when it
    /// is not a real date and time.
    pub fn parse(b: [u8; 7]) -> Result<Option<DateTime>, GattError> {
        let [y0, y1, month, day, hours, minutes, seconds] = b;
        let year = u16::from_le_bytes([y0, y1]);
        if year == 0 || month == 0 || day == 0 {
            return Ok(None);
        }
        if !(1582..=9999).contains(&year)
            || !is_valid_date(i64::from(year), month, day)
            || hours > 23
            || minutes > 59
            || seconds > 59
        {
            return Err(GattError::InvalidTimestamp);
        }
        Ok(Some(DateTime {
            year,
            month,
            day,
            hours,
            minutes,
            seconds,
        }))
    }

    /// Unix milliseconds, given the device clock's offset from UTC in
    /// minutes (UK winter 0, summer +60).
    pub fn to_unix_ms(&self, utc_offset_minutes: i32) -> i64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hours) * 3600
            + i64::from(self.minutes) * 60
            + i64::from(self.seconds)
            - i64::from(utc_offset_minutes) * 60;
        secs * 1000
    }
}

/// What every parsed characteristic offers: its observations in contract
/// form and the device's own measurement time, if it sent a usable one.
pub trait Measurement {
    /// The observations, validated.
    fn observations(&self) -> heapless::Vec<Observation, 4>;
    /// The device's timestamp, `None` when absent, unknown or flagged as
    /// not set; the caller then uses the time of receipt.
    fn timestamp(&self) -> Option<DateTime>;
}

/// A bounds-checked little-endian cursor over a characteristic value.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }

    pub(crate) fn take<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], GattError> {
        let end = self.pos.saturating_add(N);
        let slice = self.b.get(self.pos..end).ok_or(GattError::Truncated {
            field,
            needed: end,
            len: self.b.len(),
        })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, GattError> {
        let [b] = self.take::<1>(field)?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, GattError> {
        Ok(u16::from_le_bytes(self.take::<2>(field)?))
    }

    pub(crate) fn u24(&mut self, field: &'static str) -> Result<u32, GattError> {
        let [a, b, c] = self.take::<3>(field)?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, GattError> {
        Ok(u32::from_le_bytes(self.take::<4>(field)?))
    }

    /// An SFLOAT, keeping a special value as `Err(Special)` for the caller
    /// to judge (mandatory vs optional field).
    pub(crate) fn sfloat(
        &mut self,
        field: &'static str,
    ) -> Result<Result<f64, Special>, GattError> {
        Ok(ieee11073::sfloat(self.u16(field)?))
    }

    /// A mandatory SFLOAT: a special value is an error.
    pub(crate) fn sfloat_required(&mut self, field: &'static str) -> Result<f64, GattError> {
        self.sfloat(field)?
            .map_err(|special| GattError::NoValue { field, special })
    }

    pub(crate) fn date_time(&mut self, field: &'static str) -> Result<Option<DateTime>, GattError> {
        DateTime::parse(self.take::<7>(field)?)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // GSS §3.70 Date Time: year u16, month, day, hours, minutes, seconds.
    #[test]
    fn date_time_parses_known_unknown_and_invalid() {
        let b = [0xEA, 0x07, 11, 22, 8, 15, 3]; // 2026-11-22 08:15:03
        let dt = DateTime::parse(b).unwrap().unwrap();
        assert_eq!(dt.to_unix_ms(0), 1_795_335_303_000);
        assert_eq!(dt.to_unix_ms(60), 1_795_335_303_000 - 3_600_000);
        assert_eq!(DateTime::parse([0, 0, 11, 22, 8, 15, 3]), Ok(None));
        assert_eq!(DateTime::parse([0xEA, 0x07, 0, 22, 8, 15, 3]), Ok(None));
        assert_eq!(
            DateTime::parse([0xEA, 0x07, 2, 30, 8, 15, 3]),
            Err(GattError::InvalidTimestamp)
        );
        assert_eq!(
            DateTime::parse([0xEA, 0x07, 13, 1, 8, 15, 3]),
            Err(GattError::InvalidTimestamp)
        );
        assert_eq!(
            DateTime::parse([0xEA, 0x07, 1, 1, 24, 0, 0]),
            Err(GattError::InvalidTimestamp)
        );
    }
}
