//! Pure clinical domain for Vigil: observation codes, units and validity
//! ranges; NEWS2 (RCP 2017) with exact quantisation; NEWS2-style scoring at
//! home from the latest fresh reading of each parameter; and the other
//! home-monitoring thresholds (Oximetry @home, peak-flow zones, NICE NG136
//! blood pressure, heart-rate bands).
//!
//! The crate does no I/O and reads no clock: time is always an input, so the
//! same readings always give the same result, live or in a replay. The tables
//! it implements, with their sources, are in `docs/clinical.md`.
//!
//! # Layout
//!
//! - [`obs`]: observation [`Code`]s, UCUM units, validity ranges and
//!   [`validate`], the boundary where a device's raw value becomes an
//!   [`Observation`].
//! - [`quantise`]: round half up to the chart's precision on the decimal as
//!   written, with integer arithmetic.
//! - [`news2`]: one file per NEWS2 chart row, [`news2::risk`] (Charts 3/4),
//!   and [`news2::score`], which turns a set of values into a [`News2Score`].
//! - [`home`]: [`score_home`], the live score: latest value per parameter
//!   within the pathway's freshness window, missing and stale rows, episode
//!   settings (SpO2 scale, oxygen, consciousness, under-16/pregnant).
//! - [`mod@score_line`]: [`score_line()`], one `vigil score` line in, one out
//!   (CONTRACTS.md §4).
//! - [`thresholds`]: the other home thresholds, as functions for rules.
//!
//! # Live scoring
//!
//! The daemon calls [`score_home`] after every stored observation with the
//! patient's recent readings, stores the [`News2Score`] and pushes it:
//!
//! ```
//! use chrono::{DateTime, Duration, Utc};
//! use vigil_clinical::news2::{Acvpu, EnteredBy};
//! use vigil_clinical::{
//!     Attested, Episode, Parameter, Reading, Risk, Value, default_freshness, score_home, validate,
//! };
//!
//! let now: DateTime<Utc> = "2026-11-22T08:30:00Z".parse().unwrap();
//! let reading = |code: &str, unit: &str, v: f64, mins_ago: i64, device: &str, id: i64| Reading {
//!     observation: validate(code, Some(unit), &Value::Number(v)).unwrap(),
//!     measured_at: now - Duration::minutes(mins_ago),
//!     source: Some(device.into()),
//!     obs_id: Some(id),
//! };
//! let readings = [
//!     reading("spo2", "%", 93.0, 5, "oxi-7", 101),
//!     reading("pulse", "/min", 112.0, 5, "oxi-7", 102),
//!     reading("systolic", "mm[Hg]", 118.0, 20, "cuff-3", 103),
//!     reading("temp", "Cel", 38.05, 40, "thermo-1", 104),
//!     reading("resp_rate", "/min", 20.5, 400, "patch-2", 105), // 6 h 40 min old: stale
//! ];
//! let episode = Episode {
//!     oxygen: Some(Attested {
//!         value: false,
//!         recorded_at: now - Duration::days(1),
//!         entered_by: EnteredBy::Clinician { user: "nurse.jones".into() },
//!     }),
//!     consciousness: Some(Attested {
//!         value: Acvpu::Alert,
//!         recorded_at: now - Duration::hours(2),
//!         entered_by: EnteredBy::Patient,
//!     }),
//!     ..Episode::default() // SpO2 scale 1, adult, not pregnant
//! };
//!
//! let score = score_home(&readings, &episode, default_freshness(), now);
//! assert_eq!(score.total, Some(2 + 2 + 1)); // SpO2 93 → 2, pulse 112 → 2, temp 38.05 → 38.1 → 1
//! assert_eq!(score.risk, Some(Risk::Medium));
//! assert!(score.partial); // never shown as complete:
//! assert_eq!(score.stale, vec![Parameter::RespRate]);
//! assert!(score.missing.is_empty());
//! let pulse = score.subscore(Parameter::Pulse).unwrap();
//! assert_eq!(pulse.source.as_deref(), Some("oxi-7"));
//! assert_eq!(pulse.reason, "Pulse 112/min → 2");
//! ```
//!
//! # `vigil score`
//!
//! ```
//! let out = vigil_clinical::score_line(r#"{"resp_rate":21,"spo2":96,"o2":false,"systolic":120,"pulse":80,"acvpu":"A","temp":37.1}"#);
//! assert_eq!(out, r#"{"total":2,"risk":"low","partial":false,"missing":[],"subscores":{"resp_rate":2,"spo2":0,"o2":0,"systolic":0,"pulse":0,"acvpu":0,"temp":0}}"#);
//! ```

pub mod home;
pub mod news2;
pub mod obs;
pub mod quantise;
pub mod score_line;
pub mod thresholds;

pub use home::{
    Attested, Episode, Reading, SCORED_CODES, default_freshness, entered_by, entered_source,
    score_home, score_home_with,
};
pub use news2::{News2Score, Parameter, Reasons, Risk, Spo2Scale, SubScore};
pub use obs::{Code, Observation, RejectReason, Value, validate};
pub use score_line::score_line;
