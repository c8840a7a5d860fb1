//! The one error type at the crate boundary.

use thiserror::Error;

/// Everything that can go wrong in `vigil-ecg`. Nothing here carries
/// patient data, so an error can be logged as it is.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EcgError {
    /// The detector is designed (filters, windows, ring sizes) for 125–1000 Hz.
    #[error("sample rate {0} Hz is outside the supported 125-1000 Hz")]
    UnsupportedSampleRate(u32),
    /// A WFDB header line could not be understood.
    #[error("WFDB header line {line}: {reason}")]
    Header { line: usize, reason: String },
    /// The header names a storage format this crate does not decode.
    #[error("WFDB signal format {0} is not supported (only 212 and 16)")]
    UnsupportedFormat(u16),
    /// The requested channel is not in the record.
    #[error("channel {channel} not in record with {available} signal(s)")]
    NoSuchChannel { channel: usize, available: usize },
    /// The signal bytes end in the middle of a frame or are shorter than the header says.
    #[error("signal data truncated: {0}")]
    TruncatedSignal(String),
    /// An annotation file is malformed.
    #[error("annotation data malformed at byte {offset}: {reason}")]
    Annotation { offset: usize, reason: &'static str },
    /// A stream chunk disagrees with the stream's configuration.
    #[error("chunk rejected: {0}")]
    BadChunk(&'static str),
    /// Compressed sample bytes are malformed.
    #[error("encoded samples malformed at byte {0}")]
    BadEncoding(usize),
}
