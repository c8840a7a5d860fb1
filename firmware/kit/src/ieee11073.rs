//! IEEE 11073-20601 base-10 floats as carried by Bluetooth health profiles:
//! `SFLOAT` (16-bit, GATT Specification Supplement "medfloat16") and `FLOAT`
//! (32-bit, "medfloat32").
//!
//! `SFLOAT`: 4-bit signed exponent (bits 15..12), 12-bit signed mantissa
//! (bits 11..0), value = mantissa × 10^exponent. `FLOAT`: 8-bit signed
//! exponent (bits 31..24), 24-bit signed mantissa.
//!
//! The reserved mantissas are not numbers and are never turned into one:
//!
//! | meaning | SFLOAT | FLOAT |
//! |---|---|---|
//! | NaN (no value) | 0x07FF | 0x007FFFFF |
//! | NRes (not at this resolution) | 0x0800 | 0x00800000 |
//! | +INFINITY | 0x07FE | 0x007FFFFE |
//! | −INFINITY | 0x0802 | 0x00800002 |
//! | reserved for future use | 0x0801 | 0x00800001 |
//!
//! The standard defines them with exponent 0. A reserved mantissa with any
//! other exponent is treated as the same special value rather than as a
//! number: no device writes e.g. −2048 × 10¹ for a vital sign, and reading
//! such a pattern as a number is exactly the mistake this module exists to
//! prevent.

/// A special (non-numeric) IEEE 11073 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// Not a Number: the device has no value for this field.
    NaN,
    /// Not at this Resolution: the value cannot be represented.
    NRes,
    /// Positive infinity (above the measurable range).
    PositiveInfinity,
    /// Negative infinity (below the measurable range).
    NegativeInfinity,
    /// Reserved for future use.
    Reserved,
}

impl core::fmt::Display for Special {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Special::NaN => "NaN",
            Special::NRes => "NRes",
            Special::PositiveInfinity => "+INFINITY",
            Special::NegativeInfinity => "-INFINITY",
            Special::Reserved => "reserved",
        })
    }
}

/// Exact powers of ten representable in f64 (10^0 ..= 10^22).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// mantissa × 10^exponent, dividing by an exact power for negative exponents
/// so that e.g. 371 × 10⁻¹ gives the f64 nearest to 37.1.
fn scale(mantissa: i32, exponent: i32) -> f64 {
    let m = f64::from(mantissa);
    let k = exponent.unsigned_abs() as usize;
    let p = POW10
        .get(k)
        .copied()
        .unwrap_or_else(|| libm::pow(10.0, f64::from(exponent.unsigned_abs())));
    if exponent >= 0 { m * p } else { m / p }
}

/// Decodes a 16-bit `SFLOAT`.
pub fn sfloat(raw: u16) -> Result<f64, Special> {
    let mantissa_bits = raw & 0x0FFF;
    match mantissa_bits {
        0x07FF => return Err(Special::NaN),
        0x0800 => return Err(Special::NRes),
        0x07FE => return Err(Special::PositiveInfinity),
        0x0802 => return Err(Special::NegativeInfinity),
        0x0801 => return Err(Special::Reserved),
        _ => {}
    }
    // Sign-extend 12 and 4 bits.
    let mantissa = i32::from(((mantissa_bits << 4) as i16) >> 4);
    let exponent = i32::from((raw as i16) >> 12);
    Ok(scale(mantissa, exponent))
}

/// Decodes a 32-bit `FLOAT`.
pub fn float(raw: u32) -> Result<f64, Special> {
    let mantissa_bits = raw & 0x00FF_FFFF;
    match mantissa_bits {
        0x007F_FFFF => return Err(Special::NaN),
        0x0080_0000 => return Err(Special::NRes),
        0x007F_FFFE => return Err(Special::PositiveInfinity),
        0x0080_0002 => return Err(Special::NegativeInfinity),
        0x0080_0001 => return Err(Special::Reserved),
        _ => {}
    }
    let mantissa = ((mantissa_bits << 8) as i32) >> 8;
    let exponent = (raw as i32) >> 24;
    Ok(scale(mantissa, exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // GATT Specification Supplement §2.2 (medfloat16) / IEEE 11073-20601 §F.8.
    #[test]
    fn sfloat_decodes_signed_mantissa_and_exponent() {
        assert_eq!(sfloat(0x0078), Ok(120.0)); // 120 × 10^0
        assert_eq!(sfloat(0xF173), Ok(37.1)); // 371 × 10^-1
        assert_eq!(sfloat(0xF0A0), Ok(16.0)); // 160 × 10^-1
        assert_eq!(sfloat(0x0FFF), Ok(-1.0)); // mantissa -1
        assert_eq!(sfloat(0x2001), Ok(100.0)); // 1 × 10^2
        assert_eq!(sfloat(0x87FD), Ok(2045e-8)); // 2045 × 10^-8
        assert_eq!(sfloat(0x7803), Ok(-2045e7)); // -2045 × 10^7
        assert_eq!(sfloat(0x0000), Ok(0.0));
    }

    #[test]
    fn sfloat_special_values_are_never_numbers() {
        assert_eq!(sfloat(0x07FF), Err(Special::NaN));
        assert_eq!(sfloat(0x0800), Err(Special::NRes));
        assert_eq!(sfloat(0x07FE), Err(Special::PositiveInfinity));
        assert_eq!(sfloat(0x0802), Err(Special::NegativeInfinity));
        assert_eq!(sfloat(0x0801), Err(Special::Reserved));
        // Same mantissa, non-zero exponent: still not a number.
        assert_eq!(sfloat(0xF7FF), Err(Special::NaN));
        assert_eq!(sfloat(0x1800), Err(Special::NRes));
    }

    // GATT Specification Supplement §2.2 (medfloat32) / IEEE 11073-20601 §F.7.
    #[test]
    fn float_decodes_signed_mantissa_and_exponent() {
        assert_eq!(float(0xFF00_0173), Ok(37.1)); // 371 × 10^-1
        assert_eq!(float(0x0000_0078), Ok(120.0));
        assert_eq!(float(0x00FF_FFFF), Ok(-1.0));
        assert_eq!(float(0x0200_0001), Ok(100.0));
        let tiny = float(0x8000_0001).unwrap(); // 1 × 10^-128
        assert!((tiny / 1e-128 - 1.0).abs() < 1e-12);
        let huge = float(0x7F00_0001).unwrap(); // 1 × 10^127
        assert!((huge / 1e127 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn float_special_values_are_never_numbers() {
        assert_eq!(float(0x007F_FFFF), Err(Special::NaN));
        assert_eq!(float(0x0080_0000), Err(Special::NRes));
        assert_eq!(float(0x007F_FFFE), Err(Special::PositiveInfinity));
        assert_eq!(float(0x0080_0002), Err(Special::NegativeInfinity));
        assert_eq!(float(0x0080_0001), Err(Special::Reserved));
        assert_eq!(float(0xFE7F_FFFF), Err(Special::NaN));
    }

    proptest! {
        #[test]
        fn every_sfloat_is_a_finite_number_or_special(raw in any::<u16>()) {
            if let Ok(v) = sfloat(raw) {
                prop_assert!(v.is_finite());
            }
        }

        #[test]
        fn every_float_is_a_finite_number_or_special(raw in any::<u32>()) {
            if let Ok(v) = float(raw) {
                prop_assert!(v.is_finite());
            }
        }
    }
}
