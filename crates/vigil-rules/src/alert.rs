//! The alert lifecycle as a pure state machine.
//!
//! ```text
//!            repeat (count+1, latest value, severity only upwards)
//!              ┌──┐
//!              ▼  │
//!  raise ──▶ open ──acknowledge──▶ acknowledged ──resolve──▶ resolved
//!              │                        │                       ▲
//!              │ unacknowledged past    │ escalate (manual)     │
//!              │ [escalation] time,     ▼                       │
//!              └── or manual ──▶   escalated ───────resolve─────┘
//!                                       │ acknowledge (stays escalated,
//!                                       └ the consultant has seen it)
//! ```
//!
//! One open alert per (patient, rule): while an alert is not resolved, the
//! rule firing again updates it. `resolved` is terminal; the rule firing
//! after that opens a new alert. Every transition appends an [`AlertEvent`]
//! with who, when and why.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::PatientId;

/// Alert severity: the NEWS2 risk words (`low`, `low-medium`, `medium`, `high`).
pub type Severity = vigil_clinical::Risk;

/// Where an alert comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Built-in NEWS2 risk alert (rule `news2`).
    News2,
    /// Built-in NEWS2 rising alert (rule `news2-rising`).
    News2Rising,
    /// A pathway `[[rule]]`.
    Pathway,
    /// A pathway `[[expect]]` (missed reading).
    MissedReading,
    /// A built-in device rule.
    Device,
}

/// Lifecycle status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Raised, nobody has acknowledged it.
    Open,
    /// A clinician has taken it.
    Acknowledged,
    /// Passed up (to the consultant on call), automatically or by hand.
    Escalated,
    /// Closed with an outcome. Terminal.
    Resolved,
}

impl AlertStatus {
    /// `open`, `acknowledged`, `escalated` or `resolved` (as in the HTTP API).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Escalated => "escalated",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Who made a transition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", content = "user", rename_all = "snake_case")]
pub enum Actor {
    /// The engine (raise, repeat, automatic escalation).
    System,
    /// A signed-in user.
    User(String),
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The alert was opened.
    Raised,
    /// The rule fired again (count and value updated). Sent in
    /// [`crate::Output::AlertUpdated`]; not kept in [`Alert::events`].
    Repeated,
    /// The rule fired again at a higher severity (kept in the history).
    SeverityRaised,
    /// Acknowledged by a clinician.
    Acknowledged,
    /// Escalated (system: past the deadline; user: by hand).
    Escalated,
    /// Resolved with an outcome.
    Resolved,
}

/// One recorded transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// What.
    pub kind: EventKind,
    /// When (processing time, as passed to the engine).
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// Why (system: the rule's reason; user: their note).
    pub reason: String,
    /// Resolve only: the outcome (e.g. `reviewed-no-action`, `admitted`).
    pub outcome: Option<String>,
    /// Severity after this event.
    pub severity: Severity,
}

/// An alert and its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Engine-assigned id, unique per engine (see [`crate::Engine::restore_alert`]).
    pub id: u64,
    /// The patient.
    pub patient: PatientId,
    /// The rule id (`news2`, `spo2-below-target`, `missed-spo2`, `device-offline:oxi-7`).
    pub rule: String,
    /// Where it comes from.
    pub kind: AlertKind,
    /// Current severity; only ever rises.
    pub severity: Severity,
    /// Current status.
    pub status: AlertStatus,
    /// Clinician-facing text (the latest firing's).
    pub message: String,
    /// How many times the rule fired into this alert (1 when raised).
    pub count: u32,
    /// The latest value behind it, for display (e.g. `"SpO2 87 %"`, `"NEWS2 6"`).
    pub latest_value: Option<String>,
    /// Measurement time of the latest reading behind it.
    pub latest_measured_at: Option<DateTime<Utc>>,
    /// Stored observation ids behind it (latest last, at most 32 kept).
    pub obs_ids: Vec<i64>,
    /// When it was raised (processing time).
    pub raised_at: DateTime<Utc>,
    /// When it escalates automatically if nobody acknowledges it.
    pub escalate_at: Option<DateTime<Utc>>,
    /// Every lifecycle transition (raised, severity raised, acknowledged,
    /// escalated, resolved), oldest first. Plain repeats are counted in
    /// `count` and each is sent once as the event of its
    /// [`crate::Output::AlertUpdated`], so this stays short however long the
    /// alert lives.
    pub events: Vec<AlertEvent>,
}

/// A clinician action that does not fit the alert's state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No such alert in the engine.
    #[error("no alert with id {0}")]
    UnknownAlert(u64),
    /// The alert is already resolved.
    #[error("alert {0} is already resolved")]
    AlreadyResolved(u64),
    /// The alert is already in that state.
    #[error("alert {id} is already {status}")]
    AlreadyInState {
        /// The alert.
        id: u64,
        /// Its status.
        status: &'static str,
    },
    /// Resolve needs an outcome.
    #[error("resolving needs an outcome")]
    MissingOutcome,
}

const MAX_OBS_IDS: usize = 32;

/// What fired: the input to [`Alert::raise`] and [`Alert::repeat`].
#[derive(Clone, Debug, PartialEq)]
pub struct Firing {
    /// Severity of this firing.
    pub severity: Severity,
    /// Clinician-facing text.
    pub message: String,
    /// Value for display.
    pub value: Option<String>,
    /// Measurement time of the reading behind it.
    pub measured_at: Option<DateTime<Utc>>,
    /// Stored observation id behind it.
    pub obs_id: Option<i64>,
}

impl Alert {
    /// Opens a new alert.
    pub fn raise(
        id: u64,
        patient: PatientId,
        rule: &str,
        kind: AlertKind,
        f: Firing,
        now: DateTime<Utc>,
        escalate_after: Option<Duration>,
    ) -> Alert {
        Alert {
            id,
            patient,
            rule: rule.to_string(),
            kind,
            severity: f.severity,
            status: AlertStatus::Open,
            message: f.message.clone(),
            count: 1,
            latest_value: f.value,
            latest_measured_at: f.measured_at,
            obs_ids: f.obs_id.into_iter().collect(),
            raised_at: now,
            escalate_at: escalate_after.map(|d| now + d),
            events: vec![AlertEvent {
                kind: EventKind::Raised,
                at: now,
                actor: Actor::System,
                reason: f.message,
                outcome: None,
                severity: f.severity,
            }],
        }
    }

    /// The rule fired again into this (unresolved) alert: count, latest
    /// value, severity only upwards. A rise in severity brings the escalation
    /// deadline forward to `now + escalate_after` if that is sooner, and is
    /// kept in the history. Returns the event to record.
    pub fn repeat(
        &mut self,
        f: Firing,
        now: DateTime<Utc>,
        escalate_after: Option<Duration>,
    ) -> AlertEvent {
        self.count = self.count.saturating_add(1);
        let rose = f.severity > self.severity;
        if rose {
            self.severity = f.severity;
            if self.status == AlertStatus::Open
                && let Some(d) = escalate_after
            {
                let new = now + d;
                self.escalate_at = Some(self.escalate_at.map_or(new, |old| old.min(new)));
            }
        }
        self.message = f.message.clone();
        if f.value.is_some() {
            self.latest_value = f.value;
        }
        if f.measured_at > self.latest_measured_at {
            self.latest_measured_at = f.measured_at;
        }
        if let Some(id) = f.obs_id {
            self.obs_ids.push(id);
            if self.obs_ids.len() > MAX_OBS_IDS {
                self.obs_ids.remove(0);
            }
        }
        let event = AlertEvent {
            kind: if rose {
                EventKind::SeverityRaised
            } else {
                EventKind::Repeated
            },
            at: now,
            actor: Actor::System,
            reason: f.message,
            outcome: None,
            severity: self.severity,
        };
        if rose {
            self.events.push(event.clone());
        }
        event
    }

    /// Acknowledge: `open → acknowledged`; on an escalated alert it records
    /// the acknowledgement and the status stays `escalated`.
    pub fn acknowledge(
        &mut self,
        user: &str,
        at: DateTime<Utc>,
        note: &str,
    ) -> Result<(), ActionError> {
        match self.status {
            AlertStatus::Resolved => return Err(ActionError::AlreadyResolved(self.id)),
            AlertStatus::Acknowledged => {
                return Err(ActionError::AlreadyInState {
                    id: self.id,
                    status: "acknowledged",
                });
            }
            AlertStatus::Open => self.status = AlertStatus::Acknowledged,
            AlertStatus::Escalated => {}
        }
        self.escalate_at = None;
        self.push(
            EventKind::Acknowledged,
            at,
            Actor::User(user.into()),
            note,
            None,
        );
        Ok(())
    }

    /// Escalate by hand (from open or acknowledged).
    pub fn escalate(
        &mut self,
        user: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), ActionError> {
        self.escalate_as(Actor::User(user.into()), at, reason)
    }

    fn escalate_as(
        &mut self,
        actor: Actor,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), ActionError> {
        match self.status {
            AlertStatus::Resolved => Err(ActionError::AlreadyResolved(self.id)),
            AlertStatus::Escalated => Err(ActionError::AlreadyInState {
                id: self.id,
                status: "escalated",
            }),
            AlertStatus::Open | AlertStatus::Acknowledged => {
                self.status = AlertStatus::Escalated;
                self.escalate_at = None;
                self.push(EventKind::Escalated, at, actor, reason, None);
                Ok(())
            }
        }
    }

    /// Escalates automatically if open and `now` has reached the deadline
    /// (exactly at the deadline counts). Returns whether it did.
    pub fn escalate_if_due(&mut self, now: DateTime<Utc>) -> bool {
        match (self.status, self.escalate_at) {
            (AlertStatus::Open, Some(due)) if now >= due => {
                let reason = format!(
                    "not acknowledged within {} of being raised at {}",
                    crate::duration::format(due - self.raised_at),
                    self.raised_at.to_rfc3339()
                );
                self.escalate_as(Actor::System, now, &reason).is_ok()
            }
            _ => false,
        }
    }

    /// Resolve with an outcome and a note. Terminal.
    pub fn resolve(
        &mut self,
        user: &str,
        at: DateTime<Utc>,
        outcome: &str,
        note: &str,
    ) -> Result<(), ActionError> {
        if self.status == AlertStatus::Resolved {
            return Err(ActionError::AlreadyResolved(self.id));
        }
        if outcome.trim().is_empty() {
            return Err(ActionError::MissingOutcome);
        }
        self.status = AlertStatus::Resolved;
        self.escalate_at = None;
        self.push(
            EventKind::Resolved,
            at,
            Actor::User(user.into()),
            note,
            Some(outcome.into()),
        );
        Ok(())
    }

    /// When it was resolved, if it is.
    pub fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.events
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::Resolved)
            .map(|e| e.at)
    }

    /// The latest event.
    pub fn last_event(&self) -> Option<&AlertEvent> {
        self.events.last()
    }

    fn push(
        &mut self,
        kind: EventKind,
        at: DateTime<Utc>,
        actor: Actor,
        reason: &str,
        outcome: Option<String>,
    ) {
        self.events.push(AlertEvent {
            kind,
            at,
            actor,
            reason: reason.to_string(),
            outcome,
            severity: self.severity,
        });
    }
}
