//! Vigil patient kit core (work in progress).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod cmd;
pub mod ecg_chunk;
pub mod error;
pub mod gatt;
pub mod ieee11073;
pub mod json;
pub mod obs;
pub mod obs_message;
pub mod outbox;
#[cfg(feature = "std")]
pub mod persist;
pub mod seq;
pub mod time;

pub use ecg_chunk::{DecodeError, EcgChunk, EcgChunkRef};
pub use error::EncodeError;
pub use obs::{Acvpu, Code, ObsError, Observation, Posture, Value};
pub use obs_message::ObsMessage;
