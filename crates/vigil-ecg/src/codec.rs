//! Compact lossless storage of raw i16 ECG samples.
//!
//! Format (all bit fields most-significant bit first):
//! 1. the sample count as a LEB128 varint (7 bits per byte, high bit =
//!    more follows);
//! 2. the samples in blocks of [`BLOCK`] (the last may be shorter). Each
//!    block is a 4-bit Rice parameter `k` followed by one code per sample;
//! 3. each sample is predicted from the previous two (`2·x[n−1] − x[n−2]`,
//!    wrapping in i16 so every input round-trips; the first two samples are
//!    predicted from zeros), the residual is zigzag-mapped to unsigned
//!    (0, −1, 1, −2, … → 0, 1, 2, 3, …) and Rice-coded: `z >> k` in unary
//!    (that many 1 bits, then a 0) and the low `k` bits of `z`. A quotient
//!    of [`ESCAPE`] or more is written as [`ESCAPE`] 1 bits and `z` in 16 bits,
//!    which bounds a sample's cost at 4 + 16 + ESCAPE bits even for noise.
//!
//! The encoder picks each block's `k` by trying all 15 and keeping the
//! cheapest, so the code adapts within a second to quiet and busy stretches.
//! Why these choices: ECG is smooth between QRS complexes, so a linear
//! predictor leaves residuals of a few counts, and a Rice code spends about
//! `k + 1` bits on them where any byte-aligned code spends at least 8.
//! Measured on MIT-BIH in docs/ecg.md.

use crate::error::EcgError;

/// Name and version of this format, to store beside encoded samples so a
/// reader knows how to decode them. A format change gets a new name; the
/// old decoder then stays available under the old one.
pub const SAMPLE_ENCODING: &str = "vigil-rice-1";

/// Samples per Rice block.
pub const BLOCK: usize = 64;
/// Unary quotients of this length switch to a raw 16-bit residual.
pub const ESCAPE: u32 = 20;

#[inline]
fn zigzag(d: i16) -> u16 {
    ((d << 1) ^ (d >> 15)) as u16
}

#[inline]
fn unzigzag(z: u16) -> i16 {
    ((z >> 1) as i16) ^ -((z & 1) as i16)
}

#[inline]
fn predict(p1: i16, p2: i16) -> i16 {
    p1.wrapping_mul(2).wrapping_sub(p2)
}

fn rice_bits(z: u16, k: u32) -> u64 {
    let q = u32::from(z) >> k;
    if q >= ESCAPE {
        u64::from(ESCAPE + 16)
    } else {
        u64::from(q + 1 + k)
    }
}

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    #[inline]
    fn put(&mut self, value: u32, bits: u32) {
        // bits ≤ 32, acc holds < 8 pending bits: fits in 64.
        self.acc = (self.acc << bits) | u64::from(value) & ((1u64 << bits) - 1);
        self.n += bits;
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
    }

    fn ones(&mut self, count: u32) {
        let mut c = count;
        while c > 0 {
            let b = c.min(24);
            self.put((1u32 << b) - 1, b);
            c -= b;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize, // bit position
}

impl BitReader<'_> {
    #[inline]
    fn bit(&mut self) -> Result<u32, EcgError> {
        let byte = *self
            .bytes
            .get(self.pos / 8)
            .ok_or(EcgError::BadEncoding(self.pos / 8))?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Result<u32, EcgError> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }
}

/// Encode samples; see the module docs for the format.
pub fn encode_samples(samples: &[i16]) -> Vec<u8> {
    let mut w = BitWriter {
        out: Vec::with_capacity(samples.len() / 2 + 16),
        acc: 0,
        n: 0,
    };
    let mut count = samples.len() as u64;
    loop {
        let byte = (count & 0x7F) as u8;
        count >>= 7;
        if count == 0 {
            w.put(u32::from(byte), 8);
            break;
        }
        w.put(u32::from(byte | 0x80), 8);
    }
    let (mut p1, mut p2) = (0i16, 0i16);
    let mut z = [0u16; BLOCK];
    for block in samples.chunks(BLOCK) {
        for (zi, &s) in z.iter_mut().zip(block) {
            *zi = zigzag(s.wrapping_sub(predict(p1, p2)));
            p2 = p1;
            p1 = s;
        }
        let z = &z[..block.len()];
        let k = (0..15u32)
            .min_by_key(|&k| z.iter().map(|&v| rice_bits(v, k)).sum::<u64>())
            .unwrap_or(0);
        w.put(k, 4);
        for &v in z {
            let q = u32::from(v) >> k;
            if q >= ESCAPE {
                w.ones(ESCAPE);
                w.put(u32::from(v), 16);
            } else {
                w.ones(q);
                w.put(0, 1);
                w.put(u32::from(v), k);
            }
        }
    }
    w.finish()
}

/// Decode bytes made by [`encode_samples`]. Fails on truncated input, an
/// over-long count, or an invalid Rice parameter rather than guessing.
pub fn decode_samples(bytes: &[u8]) -> Result<Vec<i16>, EcgError> {
    let mut count: u64 = 0;
    let mut i = 0usize;
    loop {
        let b = *bytes.get(i).ok_or(EcgError::BadEncoding(i))?;
        count |= u64::from(b & 0x7F) << (7 * i);
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i >= 9 {
            return Err(EcgError::BadEncoding(0));
        }
    }
    // Every sample costs at least one bit: a larger count is a lie, and
    // must not make us allocate.
    let max = (bytes.len() - i) as u64 * 8;
    if count > max {
        return Err(EcgError::BadEncoding(0));
    }
    let count = count as usize;
    let mut r = BitReader { bytes, pos: i * 8 };
    let mut out = Vec::with_capacity(count);
    let (mut p1, mut p2) = (0i16, 0i16);
    while out.len() < count {
        let k = r.bits(4)?;
        if k >= 15 {
            return Err(EcgError::BadEncoding(r.pos / 8));
        }
        for _ in 0..BLOCK.min(count - out.len()) {
            let mut q = 0u32;
            while q < ESCAPE && r.bit()? == 1 {
                q += 1;
            }
            let z = if q == ESCAPE {
                r.bits(16)?
            } else {
                (q << k) | r.bits(k)?
            };
            let z = u16::try_from(z).map_err(|_| EcgError::BadEncoding(r.pos / 8))?;
            let s = predict(p1, p2).wrapping_add(unzigzag(z));
            p2 = p1;
            p1 = s;
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn smooth_signal_takes_well_under_a_byte_per_sample() {
        let s: Vec<i16> = (0..3600)
            .map(|i| (200.0 * (i as f64 / 50.0).sin()) as i16)
            .collect();
        let e = encode_samples(&s);
        assert!(
            e.len() * 2 < s.len(),
            "{} bytes for {} samples",
            e.len(),
            s.len()
        );
        assert_eq!(decode_samples(&e).ok(), Some(s));
    }

    #[test]
    fn extremes_round_trip_with_bounded_cost() {
        let s = [i16::MIN, i16::MAX, i16::MIN, 0, -1, i16::MAX];
        let e = encode_samples(&s);
        assert!(e.len() <= 2 + (4 + s.len() * (16 + ESCAPE as usize)) / 8 + 1);
        assert_eq!(decode_samples(&e).ok(), Some(s.to_vec()));
    }

    #[test]
    fn empty_input_round_trips() {
        assert_eq!(decode_samples(&encode_samples(&[])).ok(), Some(vec![]));
    }

    #[test]
    fn truncated_or_lying_input_is_an_error() {
        let e = encode_samples(&[5, -300, 7000, 2, 2, 2]);
        assert!(decode_samples(&e[..e.len() - 1]).is_err());
        assert!(decode_samples(&[]).is_err());
        // a count of a billion samples in three bytes
        assert!(decode_samples(&[0x80, 0x94, 0xEB, 0xDC, 0x03, 0, 0]).is_err());
        // Rice parameter 15 is never written
        assert!(decode_samples(&[0x01, 0xF0]).is_err());
    }

    proptest! {
        #[test]
        fn encode_then_decode_returns_the_samples(s in proptest::collection::vec(any::<i16>(), 0..2000)) {
            prop_assert_eq!(decode_samples(&encode_samples(&s)).ok(), Some(s));
        }

        #[test]
        fn encode_then_decode_returns_ecg_like_samples(
            start in -2000i16..2000,
            steps in proptest::collection::vec(-40i16..40, 0..3000),
        ) {
            let s: Vec<i16> = steps.iter().scan(start, |acc, d| { *acc = acc.saturating_add(*d); Some(*acc) }).collect();
            prop_assert_eq!(decode_samples(&encode_samples(&s)).ok(), Some(s));
        }

        #[test]
        fn decode_never_panics_on_garbage(b in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = decode_samples(&b);
        }
    }
}
