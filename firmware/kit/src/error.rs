//! The error returned when a message cannot be encoded.

/// Why an uplink message could not be encoded. None of these is transient:
/// retrying the same input gives the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The caller's buffer is too small for the message.
    #[error("buffer too small: {needed} bytes needed")]
    BufferTooSmall {
        /// Exact bytes needed.
        needed: usize,
    },
    /// An observation message must carry at least one observation.
    #[error("observation message with no observations")]
    NoObservations,
    /// The measurement time is before [`crate::time::MIN_VALID_TS_MS`]: the
    /// device clock has not been set.
    #[error("measurement time before 2024: device clock not set")]
    ClockNotSet,
    /// The measurement time is past year 9999.
    #[error("measurement time out of range")]
    TimeOutOfRange,
    /// More than `u16::MAX` ECG samples.
    #[error("too many ECG samples in one chunk")]
    TooManySamples,
    /// ECG sample rate of zero.
    #[error("ECG sample rate must be positive")]
    InvalidSampleRate,
    /// ECG scale not finite or not positive.
    #[error("ECG microvolts per count must be finite and positive")]
    InvalidScale,
}
