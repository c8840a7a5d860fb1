//! Quantisation to the chart's precision before band lookup.
//!
//! RCP NEWS2 (2017) prints bands at whole numbers (temperature at 0.1 °C), so a
//! value between two printed bands must be rounded before it is looked up.
//! Vigil rounds **half up** to the chart precision (CLINICAL.md: 35.04 °C →
//! 35.0 → 3; 35.05 °C → 35.1 → 1; RR 20.5 → 21 → 2).
//!
//! # How a binary float is treated
//!
//! Readings arrive as JSON numbers and are held as `f64`. Most decimals have no
//! exact binary form: `35.05_f64` is really 35.04999999999999715…, and
//! comparing or scaling it as a float (`(x * 10.0).round()` or `x >= 35.05`)
//! would put it in the wrong band. Vigil instead rounds the number **as it was
//! written**: the shortest decimal that reads back as the same `f64` (Rust's
//! `{:e}` formatting gives exactly these digits). That decimal is then rounded
//! half up with integer arithmetic only. For every input with at most 15
//! significant digits (every real device reading) the shortest decimal is the
//! decimal the device sent, so `35.05` always means 35.05.
//!
//! Values above [`CLAMP`] are clamped to it first (every NEWS2 band above it is
//! open-ended, so the score cannot change) and negative values are clamped to
//! 0 (every band below 0 is open-ended too); non-finite values have no
//! quantised form.

use std::fmt::Write as _;

/// Values at or above this are treated as this value (far above the top
/// printed band of every NEWS2 row).
pub const CLAMP: f64 = 1_000_000.0;

/// Rounds `raw` half up to `decimals` decimal places (0 or 1 in NEWS2) and
/// returns it scaled by `10^decimals`: `quantise(35.05, 1) == Some(351)`,
/// `quantise(20.5, 0) == Some(21)`.
///
/// Returns `None` for NaN or infinity. Negative values are clamped to 0 and
/// values above [`CLAMP`] to [`CLAMP`] (see the module docs).
pub fn quantise(raw: f64, decimals: u32) -> Option<i64> {
    if !raw.is_finite() {
        return None;
    }
    let x = raw.clamp(0.0, CLAMP);
    let (digits, exp10) = shortest_decimal(x)?;
    // x == digits * 10^exp10 exactly (as a decimal); we want
    // round_half_up(x * 10^decimals) = round_half_up(digits * 10^shift).
    let shift = exp10 + i32::try_from(decimals).ok()?;
    let digits = u128::from(digits);
    let q = if shift >= 0 {
        digits.checked_mul(10u128.checked_pow(shift.unsigned_abs())?)?
    } else {
        let k = shift.unsigned_abs();
        // digits < 10^17, so dividing by 10^18 or more rounds to 0.
        if k >= 18 {
            0
        } else {
            let div = 10u128.pow(k);
            (2 * digits + div) / (2 * div)
        }
    };
    i64::try_from(q).ok()
}

/// The shortest decimal `digits × 10^exp10` that reads back as `x`
/// (`x` finite, non-negative).
fn shortest_decimal(x: f64) -> Option<(u64, i32)> {
    let mut buf = StackBuf::default();
    // `{:e}` prints the shortest round-trip digits, e.g. "3.505e1", "2.05e1", "0e0".
    write!(buf, "{x:e}").ok()?;
    let s = buf.as_str()?;
    let (mantissa, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: u64 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        digits = digits.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let frac_len = i32::try_from(frac_part.len()).ok()?;
    Some((digits, exp - frac_len))
}

/// A fixed buffer so quantising never allocates (it runs per observation).
struct StackBuf {
    bytes: [u8; 40],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        StackBuf {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl StackBuf {
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.bytes.get(..self.len)?).ok()
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let dst = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Formats a value scaled by `10^decimals` back as a decimal string
/// (`format_scaled(351, 1) == "35.1"`), for human-readable reasons.
pub fn format_scaled(q: i64, decimals: u32) -> String {
    if decimals == 0 {
        return q.to_string();
    }
    let div = 10i64.pow(decimals);
    let sign = if q < 0 { "-" } else { "" };
    let a = q.unsigned_abs();
    let d = div.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        a / d,
        a % d,
        width = decimals as usize
    )
}

/// A scaled integer back as `f64` (`351, 1` → 35.1, the nearest float).
pub fn scaled_to_f64(q: i64, decimals: u32) -> f64 {
    // i64 → f64 is exact for every value quantise can return (< 2^53).
    q as f64 / 10f64.powi(decimals as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_md_examples_round_half_up_on_the_written_decimal() {
        assert_eq!(quantise(35.04, 1), Some(350));
        assert_eq!(quantise(35.05, 1), Some(351));
        assert_eq!(quantise(20.5, 0), Some(21));
        assert_eq!(quantise(20.49, 0), Some(20));
        assert_eq!(quantise(20.4999999, 0), Some(20));
    }

    #[test]
    fn float_traps_are_rounded_as_written() {
        // Each of these is stored just below the written half in binary.
        for (x, want) in [(0.15, 2), (36.05, 361), (38.05, 381), (39.05, 391)] {
            assert_eq!(quantise(x, 1), Some(want), "{x}");
        }
        assert_eq!(quantise(2.675, 2), Some(268));
        assert_eq!(quantise(90.5, 0), Some(91));
        assert_eq!(quantise(219.5, 0), Some(220));
    }

    #[test]
    fn whole_numbers_and_exact_values_are_unchanged() {
        for i in 0..=400 {
            assert_eq!(quantise(f64::from(i), 0), Some(i64::from(i)));
            assert_eq!(quantise(f64::from(i), 1), Some(i64::from(i) * 10));
        }
        for t in 250..=450 {
            let x = f64::from(t) / 10.0;
            assert_eq!(quantise(x, 1), Some(i64::from(t)), "{x}");
        }
    }

    #[test]
    fn non_finite_has_no_quantised_form_and_extremes_clamp() {
        assert_eq!(quantise(f64::NAN, 0), None);
        assert_eq!(quantise(f64::INFINITY, 0), None);
        assert_eq!(quantise(-3.0, 0), Some(0));
        assert_eq!(quantise(1e300, 1), Some(10_000_000));
        assert_eq!(quantise(1e-300, 1), Some(0));
        assert_eq!(quantise(0.05, 1), Some(1));
        assert_eq!(quantise(0.04999, 1), Some(0));
    }

    #[test]
    fn scaled_values_format_back() {
        assert_eq!(format_scaled(351, 1), "35.1");
        assert_eq!(format_scaled(350, 1), "35.0");
        assert_eq!(format_scaled(5, 1), "0.5");
        assert_eq!(format_scaled(21, 0), "21");
        assert_eq!(scaled_to_f64(351, 1), 35.1);
    }
}
