//! Vigil's streaming rules engine: pathway files, the rule language, per
//! patient state, built-in NEWS2 and device alerts, missed-reading timers and
//! the alert lifecycle, as a pure library.
//!
//! The crate does no I/O and reads no clock. Pathway files are parsed from
//! text the daemon read; every call that depends on time takes `now`.
//! Readings are scored by measurement time, in their place, whatever order
//! they arrive in. The same calls with the same arguments give the same
//! outputs, live or in a replay.
//!
//! # Layout
//!
//! - [`pathway`]: pathway TOML files (CONTRACTS.md §5) → [`Pathway`], with
//!   `file:line: reason` errors ([`PathwayError`]).
//! - `expr` (private): the rule language, CEL via the `cel`
//!   crate, with Vigil's variables and trend functions (`docs/rules.md`).
//! - [`state`]: per-patient state: [`PatientSetup`], [`DeviceStatus`],
//!   readings in measurement order, NEWS2 history.
//! - [`engine`]: [`Engine`], which turns observations, device status, ticks
//!   and clinician actions into [`Output`]s.
//! - [`alert`]: the lifecycle state machine ([`Alert`], [`AlertEvent`]).
//! - [`duration`]: human durations (`"15m"`).
//!
//! # How the daemon drives it
//!
//! ```
//! use chrono::{DateTime, Duration, Utc};
//! use vigil_clinical::{Reading, validate, Value};
//! use vigil_rules::{Engine, Output, PatientSetup, Pathways, Severity};
//!
//! // 1. At start: load every pathway file (fails with file:line: reason).
//! let copd = r#"
//!     name = "copd"
//!     title = "COPD exacerbation"
//!     spo2_scale = 2
//!     [[expect]]
//!     codes = ["spo2"]
//!     every = "8h"
//!     grace = "1h"
//!     severity = "low"
//!     [[rule]]
//!     id = "spo2-below-target"
//!     when = "spo2 < patient.spo2_lo"
//!     severity = "medium"
//!     message = "SpO2 below the patient's target"
//!     advice = { level = "urgent", text = "Your oxygen is low. Call 111 now." }
//!     [escalation]
//!     high = "5m"
//!     medium = "15m"
//!     low-medium = "30m"
//! "#;
//! let pathways = Pathways::load([("copd.toml", copd)]).unwrap();
//! let mut engine = Engine::new(pathways);
//!
//! // 2. Per episode: admit with the pathway and the patient's settings.
//! let t0: DateTime<Utc> = "2026-11-22T08:00:00Z".parse().unwrap();
//! engine.admit(42, PatientSetup::new("copd", t0)).unwrap(); // scale 2 → target 88–92
//!
//! // 3. Per stored observation: feed it with its id, device and measured_at.
//! let reading = Reading {
//!     observation: validate("spo2", Some("%"), &Value::Number(86.0)).unwrap(),
//!     measured_at: t0 + Duration::minutes(5),
//!     source: Some("oxi-7".into()),
//!     obs_id: Some(1001),
//! };
//! let now = t0 + Duration::minutes(6);
//! let out = engine.observe(42, reading, now).unwrap();
//! let Output::AlertRaised(alert) = &out[0] else { panic!() };
//! assert_eq!((alert.rule.as_str(), alert.severity), ("spo2-below-target", Severity::Medium));
//! assert!(matches!(&out[1], Output::Advice { .. })); // → the device's cmd topic
//!
//! // 4. Timers: sleep until next_deadline(), then tick(now).
//! assert_eq!(engine.next_deadline(), Some(now + Duration::minutes(15)));
//! let out = engine.tick(now + Duration::minutes(15));
//! assert!(matches!(&out[0], Output::AlertEscalated { alert: a, .. } if a.id == alert.id));
//!
//! // 5. Clinician actions, with who and when.
//! let later = now + Duration::minutes(20);
//! engine.acknowledge(alert.id, "nurse.jones", later, "calling patient").unwrap();
//! engine.resolve(alert.id, "dr.patel", later, "treatment-started", "rescue pack").unwrap();
//! ```
//!
//! Every [`Output`] is persisted and pushed by the daemon: alerts (and, for
//! updates, the [`AlertEvent`] to append) to the store and the websocket hub, `Advice`/`Repeat` to `vigil/v1/dev/{device}/cmd`.
//! After a restart, [`Engine::restore_alert`] the unresolved alerts, then
//! replay recent observations: they merge into the restored alerts.

pub mod alert;
pub mod duration;
pub mod engine;
mod expr;
pub mod pathway;
pub mod state;

/// A patient id, as stored.
pub type PatientId = i64;

pub use alert::{
    ActionError, Actor, Alert, AlertEvent, AlertKind, AlertStatus, EventKind, Firing, Severity,
};
pub use engine::{AdviceLevel, Engine, EngineError, Output};
pub use expr::{TrendCall, TrendFn};
pub use pathway::{Pathway, PathwayError, Pathways, Rule};
pub use state::{DeviceState, DeviceStatus, PatientSetup};
