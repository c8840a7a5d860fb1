//! Pure clinical domain for Vigil: observation codes and units, their
//! physiological validity ranges, and (as the crate grows) NEWS2 scoring and
//! the home-monitoring thresholds of `docs/clinical.md`.
//!
//! The crate does no I/O and reads no clock: time is always an input, so the
//! same readings always give the same result.
//!
//! # Layout
//!
//! - [`obs`]: observation [`Code`]s, UCUM units, validity ranges and
//!   [`validate`], the boundary where a device's raw value becomes an
//!   [`Observation`].

pub mod obs;

pub use obs::{Code, Observation, RejectReason, Value, validate};
