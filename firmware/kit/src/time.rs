//! Time as an input: Unix milliseconds to RFC 3339 text, without `std` or a
//! calendar crate.
//!
//! The kit never reads a clock. Callers pass `now_ms`/`ts_ms` in; this module
//! only turns them into the `ts` text of an observation message.

use core::fmt::{self, Write};

/// Earliest measurement time the kit will encode: 2024-01-01T00:00:00Z.
///
/// A hub or cuff whose real-time clock was reset (flat battery, power cut)
/// typically restarts at 1970 or 2000. A reading stamped with such a time
/// would be stored in the wrong place of the patient's history, so encoding
/// refuses it ([`crate::EncodeError::ClockNotSet`]) instead of sending it.
pub const MIN_VALID_TS_MS: i64 = 1_704_067_200_000;

/// Latest encodable time: 9999-12-31T23:59:59.999Z (RFC 3339 has four-digit years).
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// A civil UTC date and time broken out of Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    /// Year (1970..=9999 for encodable times).
    pub year: i64,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=59.
    pub second: u8,
    /// Millisecond 0..=999.
    pub millis: u16,
}

impl UtcDateTime {
    /// Breaks Unix milliseconds into a civil UTC date (proleptic Gregorian).
    pub fn from_unix_ms(ms: i64) -> Self {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        // rem < 86_400_000, so every cast below is in range.
        let secs = rem / 1000;
        UtcDateTime {
            year,
            month,
            day,
            hour: (secs / 3600) as u8,
            minute: ((secs / 60) % 60) as u8,
            second: (secs % 60) as u8,
            millis: (rem % 1000) as u16,
        }
    }
}

impl fmt::Display for UtcDateTime {
    /// `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` before the `Z` only when the
    /// milliseconds are not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.millis != 0 {
            write!(f, ".{:03}", self.millis)?;
        }
        f.write_char('Z')
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's
/// `civil_from_days`, valid for the whole i64 day range we feed it.
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (inverse of `civil_from_days`).
pub(crate) fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `day` exists in `month` of `year`.
pub(crate) fn is_valid_date(year: i64, month: u8, day: u8) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let last = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=last).contains(&day)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn formats_the_contract_example() {
        // 2026-11-22T08:15:03Z
        let ms = 1_795_335_303_000;
        assert_eq!(
            UtcDateTime::from_unix_ms(ms).to_string(),
            "2026-11-22T08:15:03Z"
        );
        assert_eq!(
            UtcDateTime::from_unix_ms(ms + 250).to_string(),
            "2026-11-22T08:15:03.250Z"
        );
    }

    #[test]
    fn leap_day_and_epoch_and_max() {
        assert_eq!(
            UtcDateTime::from_unix_ms(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        // 2024-02-29T23:59:59.999Z
        let d = days_from_civil(2024, 2, 29);
        let ms = d * 86_400_000 + 86_399_999;
        assert_eq!(
            UtcDateTime::from_unix_ms(ms).to_string(),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            UtcDateTime::from_unix_ms(MAX_TS_MS).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            UtcDateTime::from_unix_ms(MIN_VALID_TS_MS).to_string(),
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn days_round_trip() {
        for days in (-800_000i64..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert!(is_valid_date(y, m, d));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
