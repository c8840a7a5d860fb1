//! Pure clinical domain for Vigil: observation codes and units, their
//! physiological validity ranges, and NEWS2 scoring.
//!
//! The crate does no I/O and reads no clock: time is always an input, so the
//! same readings always give the same result.
//!
//! # Layout
//!
//! - [`obs`]: observation [`Code`]s, UCUM units, validity ranges and
//!   [`validate`], the boundary where a device's raw value becomes an
//!   [`Observation`].
//! - [`quantise`]: round half up to the chart's precision on the decimal as
//!   written, with integer arithmetic.
//! - [`news2`]: one file per NEWS2 chart row, risk (Charts 3/4), and
//!   [`news2::score`], which assembles a [`News2Score`].

pub mod home;
pub mod news2;
pub mod obs;
pub mod quantise;
pub mod score_line;
pub mod thresholds;

pub use home::{Attested, Episode, Reading, default_freshness, score_home};
pub use news2::{News2Score, Parameter, Risk, Spo2Scale};
pub use obs::{Code, Observation, RejectReason, Value, validate};
pub use score_line::score_line;
