//! The `ecg` uplink: a binary ECG chunk (CONTRACTS.md §2), encode and
//! zero-copy decode.
//!
//! Layout, all little-endian, 25-byte header then samples:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0  | 4  | magic `VECG` |
//! | 4  | 1  | version = 1 |
//! | 5  | 4  | seq (u32) |
//! | 9  | 8  | t0, Unix ms of the first sample (i64) |
//! | 17 | 2  | sample rate, Hz (u16) |
//! | 19 | 4  | microvolts per count (f32) |
//! | 23 | 2  | n samples (u16) |
//! | 25 | 2n | samples (i16) |
//!
//! The decoder is shared with the server-side ingest: it accepts exactly the
//! bytes the encoder produces and nothing else, and names what is wrong.

use crate::error::EncodeError;
use crate::time::MIN_VALID_TS_MS;

/// The four magic bytes.
pub const MAGIC: [u8; 4] = *b"VECG";
/// The only version this crate reads and writes.
pub const VERSION: u8 = 1;
/// Bytes before the first sample.
pub const HEADER_LEN: usize = 25;

/// An ECG chunk to encode, borrowing its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcgChunk<'a> {
    /// The device's sequence number (shared with `obs`).
    pub seq: u32,
    /// Measurement time of the first sample, Unix ms.
    pub t0_ms: i64,
    /// Samples per second.
    pub sample_rate_hz: u16,
    /// Microvolts per ADC count.
    pub uv_per_count: f32,
    /// Raw ADC counts.
    pub samples: &'a [i16],
}

/// Why bytes are not a valid ECG chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header.
    #[error("ECG chunk too short: {len} bytes, header is 25")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// First four bytes are not `VECG`.
    #[error("ECG chunk has bad magic")]
    BadMagic,
    /// A version other than 1.
    #[error("ECG chunk version {0} not supported")]
    BadVersion(u8),
    /// Total length disagrees with the sample count in the header.
    #[error("ECG chunk length {actual} but header says {expected}")]
    LengthMismatch {
        /// `25 + 2 * n` from the header.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// Sample rate of zero.
    #[error("ECG chunk sample rate is zero")]
    InvalidSampleRate,
    /// Scale NaN, infinite, zero or negative.
    #[error("ECG chunk microvolts per count not finite and positive")]
    InvalidScale,
}

impl<'a> EcgChunk<'a> {
    /// Encoded size of a chunk with `n` samples.
    pub const fn encoded_len(n: usize) -> usize {
        HEADER_LEN + 2 * n
    }

    /// Writes the chunk into `buf`, returning its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let n = u16::try_from(self.samples.len()).map_err(|_| EncodeError::TooManySamples)?;
        if self.sample_rate_hz == 0 {
            return Err(EncodeError::InvalidSampleRate);
        }
        if !(self.uv_per_count.is_finite() && self.uv_per_count > 0.0) {
            return Err(EncodeError::InvalidScale);
        }
        if self.t0_ms < MIN_VALID_TS_MS {
            return Err(EncodeError::ClockNotSet);
        }
        let needed = Self::encoded_len(self.samples.len());
        let Some(out) = buf.get_mut(..needed) else {
            return Err(EncodeError::BufferTooSmall { needed });
        };
        let (head, body) = out.split_at_mut(HEADER_LEN);
        head[0..4].copy_from_slice(&MAGIC);
        head[4] = VERSION;
        head[5..9].copy_from_slice(&self.seq.to_le_bytes());
        head[9..17].copy_from_slice(&self.t0_ms.to_le_bytes());
        head[17..19].copy_from_slice(&self.sample_rate_hz.to_le_bytes());
        head[19..23].copy_from_slice(&self.uv_per_count.to_le_bytes());
        head[23..25].copy_from_slice(&n.to_le_bytes());
        for (dst, s) in body.as_chunks_mut::<2>().0.iter_mut().zip(self.samples) {
            *dst = s.to_le_bytes();
        }
        Ok(needed)
    }

    /// Checks `bytes` and returns a view over them; no copy of the samples.
    pub fn decode(bytes: &'a [u8]) -> Result<EcgChunkRef<'a>, DecodeError> {
        let Some((head, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::TooShort { len: bytes.len() });
        };
        if le::<4>(head, 0) != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let [version] = le::<1>(head, 4);
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let seq = u32::from_le_bytes(le(head, 5));
        let t0_ms = i64::from_le_bytes(le(head, 9));
        let sample_rate_hz = u16::from_le_bytes(le(head, 17));
        let uv_per_count = f32::from_le_bytes(le(head, 19));
        let n = usize::from(u16::from_le_bytes(le(head, 23)));
        let expected = HEADER_LEN + 2 * n;
        if bytes.len() != expected {
            return Err(DecodeError::LengthMismatch {
                expected,
                actual: bytes.len(),
            });
        }
        if sample_rate_hz == 0 {
            return Err(DecodeError::InvalidSampleRate);
        }
        if !(uv_per_count.is_finite() && uv_per_count > 0.0) {
            return Err(DecodeError::InvalidScale);
        }
        Ok(EcgChunkRef {
            seq,
            t0_ms,
            sample_rate_hz,
            uv_per_count,
            raw_samples: body,
        })
    }
}

/// `N` bytes of the header from offset `at` (all offsets used are constants
/// inside the 25-byte header; out of range would give zeros, never a panic).
fn le<const N: usize>(head: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = head.get(at..at.saturating_add(N)) {
        out.copy_from_slice(src);
    }
    out
}

/// A decoded chunk borrowing the received bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcgChunkRef<'a> {
    /// Sequence number.
    pub seq: u32,
    /// Measurement time of the first sample, Unix ms (not range-checked:
    /// time policy is the receiver's).
    pub t0_ms: i64,
    /// Samples per second (non-zero).
    pub sample_rate_hz: u16,
    /// Microvolts per count (finite, positive).
    pub uv_per_count: f32,
    raw_samples: &'a [u8],
}

impl<'a> EcgChunkRef<'a> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.raw_samples.len() / 2
    }

    /// Whether the chunk has no samples.
    pub fn is_empty(&self) -> bool {
        self.raw_samples.is_empty()
    }

    /// Sample `i` in counts, `None` past the end.
    pub fn sample(&self, i: usize) -> Option<i16> {
        let at = i.checked_mul(2)?;
        let b = self.raw_samples.get(at..at.checked_add(2)?)?;
        let [lo, hi] = <[u8; 2]>::try_from(b).ok()?;
        Some(i16::from_le_bytes([lo, hi]))
    }

    /// Samples in counts.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        self.raw_samples
            .as_chunks::<2>()
            .0
            .iter()
            .map(|c| i16::from_le_bytes(*c))
    }

    /// Samples in microvolts.
    pub fn microvolts(&self) -> impl ExactSizeIterator<Item = f32> + 'a {
        let k = self.uv_per_count;
        self.samples().map(move |s| f32::from(s) * k)
    }

    /// The sample bytes as received (little-endian i16 pairs).
    pub fn raw_samples(&self) -> &'a [u8] {
        self.raw_samples
    }

    /// Measurement time of sample `i`, Unix ms (rounded down).
    pub fn sample_time_ms(&self, i: usize) -> i64 {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        let offset = i.saturating_mul(1000) / i64::from(self.sample_rate_hz.max(1));
        self.t0_ms.saturating_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_335_303_000;

    fn chunk(samples: &[i16]) -> EcgChunk<'_> {
        EcgChunk {
            seq: 0x0102_0304,
            t0_ms: T0,
            sample_rate_hz: 250,
            uv_per_count: 2.5,
            samples,
        }
    }

    #[test]
    fn encodes_the_contract_layout_byte_for_byte() {
        let mut buf = [0u8; 64];
        let n = chunk(&[1, -2]).encode(&mut buf).unwrap();
        let mut expected = [0u8; 29];
        expected[..4].copy_from_slice(b"VECG");
        expected[4] = 1;
        expected[5..9].copy_from_slice(&[0x04, 0x03, 0x02, 0x01]);
        expected[9..17].copy_from_slice(&T0.to_le_bytes());
        expected[17..19].copy_from_slice(&[250, 0]);
        expected[19..23].copy_from_slice(&[0x00, 0x00, 0x20, 0x40]); // 2.5f32
        expected[23..25].copy_from_slice(&[2, 0]);
        expected[25..29].copy_from_slice(&[0x01, 0x00, 0xFE, 0xFF]);
        assert_eq!(&buf[..n], &expected);
    }

    #[test]
    fn decode_reads_back_what_encode_wrote() {
        let samples = [0i16, 1, -1, i16::MAX, i16::MIN, 1234];
        let mut buf = [0u8; 64];
        let n = chunk(&samples).encode(&mut buf).unwrap();
        let c = EcgChunk::decode(&buf[..n]).unwrap();
        assert_eq!(c.seq, 0x0102_0304);
        assert_eq!(c.t0_ms, T0);
        assert_eq!(c.sample_rate_hz, 250);
        assert_eq!(c.uv_per_count, 2.5);
        assert_eq!(c.len(), samples.len());
        assert!(c.samples().eq(samples.iter().copied()));
        assert_eq!(c.sample(3), Some(i16::MAX));
        assert_eq!(c.sample(6), None);
        assert_eq!(c.microvolts().nth(2), Some(-2.5));
        assert_eq!(c.sample_time_ms(250), T0 + 1000);
    }

    #[test]
    fn decode_names_each_structural_fault() {
        let mut buf = [0u8; 64];
        let n = chunk(&[5, 6]).encode(&mut buf).unwrap();
        let good = &buf[..n];

        assert_eq!(
            EcgChunk::decode(&good[..24]),
            Err(DecodeError::TooShort { len: 24 })
        );
        assert_eq!(EcgChunk::decode(&[]), Err(DecodeError::TooShort { len: 0 }));

        let mut bad = [0u8; 29];
        bad.copy_from_slice(good);
        bad[0] = b'X';
        assert_eq!(EcgChunk::decode(&bad), Err(DecodeError::BadMagic));

        bad.copy_from_slice(good);
        bad[4] = 2;
        assert_eq!(EcgChunk::decode(&bad), Err(DecodeError::BadVersion(2)));

        assert_eq!(
            EcgChunk::decode(&good[..n - 1]),
            Err(DecodeError::LengthMismatch {
                expected: 29,
                actual: 28
            })
        );
        assert_eq!(
            EcgChunk::decode(&buf[..n + 2]),
            Err(DecodeError::LengthMismatch {
                expected: 29,
                actual: 31
            })
        );

        bad.copy_from_slice(good);
        bad[17] = 0;
        bad[18] = 0;
        assert_eq!(EcgChunk::decode(&bad), Err(DecodeError::InvalidSampleRate));

        bad.copy_from_slice(good);
        bad[19..23].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(EcgChunk::decode(&bad), Err(DecodeError::InvalidScale));
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        let mut buf = [0u8; 64];
        let mut c = chunk(&[1]);
        c.sample_rate_hz = 0;
        assert_eq!(c.encode(&mut buf), Err(EncodeError::InvalidSampleRate));
        let mut c = chunk(&[1]);
        c.uv_per_count = -1.0;
        assert_eq!(c.encode(&mut buf), Err(EncodeError::InvalidScale));
        let mut c = chunk(&[1]);
        c.t0_ms = 0;
        assert_eq!(c.encode(&mut buf), Err(EncodeError::ClockNotSet));
        assert_eq!(
            chunk(&[1, 2]).encode(&mut buf[..28]),
            Err(EncodeError::BufferTooSmall { needed: 29 })
        );
        let big = [0i16; 65_536];
        assert_eq!(
            chunk(&big).encode(&mut buf),
            Err(EncodeError::TooManySamples)
        );
    }

    #[test]
    fn empty_chunk_round_trips() {
        let mut buf = [0u8; 32];
        let n = chunk(&[]).encode(&mut buf).unwrap();
        let c = EcgChunk::decode(&buf[..n]).unwrap();
        assert!(c.is_empty());
    }
}
