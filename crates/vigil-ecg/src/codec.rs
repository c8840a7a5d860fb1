//! Compact lossless storage of raw i16 ECG samples.
//!
//! Encoding: first difference (wrapping in i16, so every input round-trips)
//! → zigzag (small magnitudes of either sign become small unsigned values)
//! → LEB128 varint (7 bits per byte, high bit = more follows). ECG changes
//! slowly between samples except in the QRS, so most differences fit one
//! byte; no difference ever needs more than three. The first sample is
//! coded as a difference from 0. No length prefix: the caller stores the
//! sample count beside the bytes (the ECG chunk header already has it).
//!
//! Measured on MIT-BIH in docs/ecg.md.

use crate::error::EcgError;

/// Encode samples; see the module docs for the format.
pub fn encode_samples(samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() + samples.len() / 4);
    let mut prev = 0i16;
    for &s in samples {
        let d = s.wrapping_sub(prev);
        prev = s;
        let mut z = ((d << 1) ^ (d >> 15)) as u16;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    out
}

/// Decode bytes made by [`encode_samples`]. Fails on a truncated or
/// over-long varint rather than guessing.
pub fn decode_samples(bytes: &[u8]) -> Result<Vec<i16>, EcgError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut prev = 0i16;
    let mut i = 0usize;
    while i < bytes.len() {
        let start = i;
        let mut z: u32 = 0;
        let mut shift = 0u32;
        loop {
            let b = *bytes.get(i).ok_or(EcgError::BadEncoding(start))?;
            i += 1;
            z |= u32::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 14 {
                return Err(EcgError::BadEncoding(start));
            }
        }
        let z = u16::try_from(z).map_err(|_| EcgError::BadEncoding(start))?;
        let d = ((z >> 1) as i16) ^ -((z & 1) as i16);
        prev = prev.wrapping_add(d);
        out.push(prev);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_steps_take_one_byte_each() {
        let s = [0i16, 1, -1, 30, 60, 40];
        assert_eq!(encode_samples(&s).len(), s.len());
    }

    #[test]
    fn extremes_round_trip() {
        let s = [i16::MIN, i16::MAX, i16::MIN, 0, -1, i16::MAX];
        let e = encode_samples(&s);
        assert!(e.len() <= 3 * s.len());
        assert_eq!(decode_samples(&e).ok(), Some(s.to_vec()));
    }

    #[test]
    fn truncated_and_overlong_input_is_an_error() {
        assert_eq!(decode_samples(&[0x80]), Err(EcgError::BadEncoding(0)));
        assert!(decode_samples(&[0xFF, 0xFF, 0xFF, 0x01]).is_err());
        assert!(decode_samples(&[0xFF, 0xFF, 0x7F]).is_err());
    }

    proptest! {
        #[test]
        fn encode_then_decode_returns_the_samples(s in proptest::collection::vec(any::<i16>(), 0..2000)) {
            prop_assert_eq!(decode_samples(&encode_samples(&s)).ok(), Some(s));
        }

        #[test]
        fn decode_never_panics_on_garbage(b in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = decode_samples(&b);
        }
    }
}
