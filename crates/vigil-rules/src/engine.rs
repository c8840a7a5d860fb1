//! The [`Engine`]: per-patient state fed by observations, device status and
//! `tick(now)`, producing typed [`Output`]s.
//!
//! Built-in rules, for every pathway:
//!
//! | rule id | fires when | severity |
//! |---|---|---|
//! | `news2` | NEWS2 risk (home score, partial counts) is low-medium or higher | the risk |
//! | `news2-rising` | the NEWS2 rows scored both now and at some earlier result within the pathway's `rising_window` (24 h) add up to ≥ 2 more now | low (the risk itself is the `news2` alert) |
//! | `device-battery-low:{device}` | battery falls to `[device] battery_low_pct` | `[device] severity` |
//! | `device-lead-off:{device}` | status signal turns `lead_off` | `[device] severity` |
//! | `device-offline:{device}` | no message for `[device] offline_after` (on `tick`) | `[device] severity` |
//!
//! Pathway `[[rule]]`s run on each reading of a code they read, and
//! `[[expect]]` rules on `tick`.
//!
//! Late readings: a reading is put in its place in the history. It raises
//! nothing if a later reading of the same code already exists (its state is
//! superseded), if it is older than the pathway's freshness window relative
//! to the patient's newest reading, or (for a rule) if it was measured at or
//! before the time that rule's last alert was resolved.
//!
//! After a clinician resolves an alert, its rule raises a new one only for a
//! worse state (higher severity) or after the rule has been evaluated false
//! on a current reading in between (the state cleared and came back): the
//! same continuing state does not come straight back. Patient feedback
//! (advice, repeat) is sent only for readings at most `feedback_max_age` old
//! on arrival: a backfilled reading does not ask the patient to act now.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vigil_clinical::{Code, News2Score, Parameter, Reading, Reasons, Risk};

use crate::PatientId;
use crate::alert::{
    ActionError, Actor, Alert, AlertEvent, AlertKind, AlertStatus, EventKind, Firing, Severity,
};
use crate::pathway::Pathways;
use crate::state::{DeviceStatus, NEWS2_CODES, Patient, PatientSetup, Resolved, Scored};

/// Patient-facing advice level (CONTRACTS.md §2 `advice`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdviceLevel {
    /// Routine guidance.
    Routine,
    /// Seek urgent care (e.g. call 111).
    Urgent,
    /// Call 999.
    Emergency,
}

/// What the daemon persists and pushes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// A new alert.
    AlertRaised(Alert),
    /// An alert changed (repeat, severity raised, acknowledge, resolve).
    AlertUpdated {
        /// The alert after the change.
        alert: Alert,
        /// What changed, who, when, why: persist it.
        event: AlertEvent,
    },
    /// An alert was escalated (automatically or by hand).
    AlertEscalated {
        /// The alert after the change.
        alert: Alert,
        /// The escalation event: persist it.
        event: AlertEvent,
    },
    /// Advice for the patient, for the device's `cmd` topic.
    Advice {
        /// The patient.
        patient: PatientId,
        /// The device whose reading caused it.
        device: Option<String>,
        /// The rule.
        rule: String,
        /// Level.
        level: AdviceLevel,
        /// Text.
        text: String,
    },
    /// Ask the patient to measure again, for the device's `cmd` topic.
    Repeat {
        /// The patient.
        patient: PatientId,
        /// The device whose reading caused it.
        device: Option<String>,
        /// The rule.
        rule: String,
        /// The code to measure again.
        code: Code,
        /// Why.
        reason: String,
    },
}

/// Errors from feeding the engine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The patient was not admitted to the engine.
    #[error("patient {0} is not admitted")]
    UnknownPatient(PatientId),
    /// The setup names a pathway that is not loaded.
    #[error("no pathway called {0:?} is loaded")]
    UnknownPathway(String),
}

/// The streaming rules engine. See the crate docs for the calls.
#[derive(Clone, Debug)]
pub struct Engine {
    pathways: Pathways,
    patients: BTreeMap<PatientId, Patient>,
    alerts: BTreeMap<u64, Alert>,
    next_id: u64,
    news2_rules: bool,
}

impl Engine {
    /// An engine running `pathways`.
    pub fn new(pathways: Pathways) -> Engine {
        Engine {
            pathways,
            patients: BTreeMap::new(),
            alerts: BTreeMap::new(),
            next_id: 1,
            news2_rules: true,
        }
    }

    /// The same engine without its built-in NEWS2 rules (`news2`,
    /// `news2-rising`), for a host that raises NEWS2 alerts itself, as the
    /// daemon does from its stored scores. The engine then keeps no NEWS2
    /// history: NEWS2 as of every reading held is 48 bytes a reading, and
    /// recomputing it after every arrival is work nothing would read.
    /// `news2.*` in pathway rules still reads the current score.
    pub fn without_news2_rules(mut self) -> Engine {
        self.news2_rules = false;
        for p in self.patients.values_mut() {
            p.scores.clear();
        }
        self
    }

    /// The loaded pathways.
    pub fn pathways(&self) -> &Pathways {
        &self.pathways
    }

    /// Starts (or replaces the settings of) a patient's state.
    pub fn admit(&mut self, patient: PatientId, setup: PatientSetup) -> Result<(), EngineError> {
        let pathway = self
            .pathways
            .get(&setup.pathway)
            .ok_or_else(|| EngineError::UnknownPathway(setup.pathway.clone()))?;
        match self.patients.get_mut(&patient) {
            Some(p) => {
                let rescore = p.episode != setup.episode || p.setup.spo2_scale != setup.spo2_scale;
                p.setup = setup;
                p.apply_setup(pathway);
                if rescore && self.news2_rules {
                    p.rescore_all(pathway);
                }
            }
            None => {
                self.patients.insert(patient, Patient::new(setup, pathway));
            }
        }
        Ok(())
    }

    /// Drops a patient's state (discharge). Their unresolved alerts are
    /// returned and forgotten by the engine.
    pub fn discharge(&mut self, patient: PatientId) -> Vec<Alert> {
        let Some(p) = self.patients.remove(&patient) else {
            return Vec::new();
        };
        p.open
            .values()
            .filter_map(|id| self.alerts.remove(id))
            .collect()
    }

    /// Puts back an alert the daemon stored (after a restart), before
    /// replaying recent observations: a replayed reading then merges into it.
    /// A resolved alert only restores the "resolved at" time of its rule.
    pub fn restore_alert(&mut self, alert: Alert) -> Result<(), EngineError> {
        let p = self
            .patients
            .get_mut(&alert.patient)
            .ok_or(EngineError::UnknownPatient(alert.patient))?;
        self.next_id = self.next_id.max(alert.id + 1);
        if alert.status == AlertStatus::Resolved {
            if let Some(at) = alert.resolved_at()
                && p.resolved.get(&alert.rule).is_none_or(|r| r.at < at)
            {
                p.resolved.insert(
                    alert.rule.clone(),
                    Resolved {
                        at,
                        severity: alert.severity,
                        cleared: false,
                    },
                );
            }
        } else {
            p.open.insert(alert.rule.clone(), alert.id);
            self.alerts.insert(alert.id, alert);
        }
        Ok(())
    }

    /// Feeds one stored observation. `now` is the processing time (used for
    /// alert times, escalation deadlines and device last-seen).
    ///
    /// A reading measured after `now` (a device whose clock runs ahead; the
    /// intake accepts up to five minutes) is placed at `now`, when it
    /// arrived: left at its stamp it would be the newest of its code until
    /// the clock caught up, and every reading of that code measured before
    /// then, from any device, would count as superseded (hazard TS-19).
    pub fn observe(
        &mut self,
        patient: PatientId,
        mut reading: Reading,
        now: DateTime<Utc>,
    ) -> Result<Vec<Output>, EngineError> {
        reading.measured_at = reading.measured_at.min(now);
        let p = self
            .patients
            .get_mut(&patient)
            .ok_or(EngineError::UnknownPatient(patient))?;
        let pathway = self
            .pathways
            .get(&p.setup.pathway)
            .ok_or_else(|| EngineError::UnknownPathway(p.setup.pathway.clone()))?;
        let code = reading.observation.code;
        let measured_at = reading.measured_at;
        let obs_id = reading.obs_id;
        let device = reading.source.clone();
        let value = reading.observation.value.clone();
        // A reading a clinician entered comes from no device: it starts no
        // device's offline clock.
        if let Some(d) = device
            .as_deref()
            .filter(|d| vigil_clinical::entered_by(d).is_none())
        {
            let st = p.devices.entry(d.to_string()).or_default();
            if st.last_seen.is_none_or(|t| now > t) {
                st.last_seen = Some(now);
                st.offline_alerted = false;
            }
        }
        let Some(superseded) = p.insert(reading, pathway, self.news2_rules) else {
            return Ok(Vec::new());
        };
        let as_of = p.as_of.unwrap_or(measured_at);
        if superseded || as_of - measured_at > pathway.freshness {
            return Ok(Vec::new());
        }
        let feedback = now - measured_at <= pathway.feedback_max_age;
        let shown = show(code, &value);
        let mut fired: Vec<(String, AlertKind, Firing)> = Vec::new();
        // Rules evaluated false on this current reading: a resolved alert of
        // theirs may be raised again the next time they fire.
        let mut cleared: Vec<String> = Vec::new();
        let mut out = Vec::new();

        // The engine reads a score's numbers, never its reasons.
        let news2 = p.news2(pathway, Reasons::Skipped);
        if self.news2_rules
            && NEWS2_CODES.contains(&code)
            && let Some(s) = &news2
            && let (Some(total), Some(risk)) = (s.total, s.risk)
        {
            if risk < Risk::LowMedium {
                cleared.push("news2".into());
            } else {
                fired.push((
                    "news2".into(),
                    AlertKind::News2,
                    Firing {
                        severity: risk,
                        message: news2_message(s, total, risk),
                        value: Some(format!("NEWS2 {total}")),
                        measured_at: Some(measured_at),
                        obs_id,
                    },
                ));
            }
            let rise = p.largest_rise(&Scored::of(s), as_of, pathway.rising_window);
            if rise.is_none_or(|(r, _, _)| r < 2) {
                cleared.push("news2-rising".into());
            }
            if let Some((rise, then, then_total)) = rise
                && rise >= 2
            {
                let then_total = then_total.map_or_else(|| "n/a".to_string(), |t| t.to_string());
                fired.push((
                    "news2-rising".into(),
                    AlertKind::News2Rising,
                    Firing {
                        severity: Severity::Low,
                        message: format!(
                            "NEWS2 rising: the same parameters score {rise} more than at {} (total {total} now, {then_total} then)",
                            then.to_rfc3339()
                        ),
                        value: Some(format!("NEWS2 {total}")),
                        measured_at: Some(measured_at),
                        obs_id,
                    },
                ));
            }
        }

        let triggered: Vec<&crate::pathway::Rule> = pathway
            .rules
            .iter()
            .filter(|r| r.triggers.is_empty() || r.triggers.contains(&code))
            .collect();
        if !triggered.is_empty() {
            let compiled: Vec<_> = triggered.iter().map(|r| &r.compiled).collect();
            let facts = p.facts(pathway, news2.as_ref(), device.as_deref(), now, &compiled);
            let ctx = facts.context().ok();
            for rule in triggered {
                match ctx.as_ref().map(|c| rule.compiled.eval_in(c)) {
                    Some(Ok(true)) => {}
                    Some(Ok(false)) => {
                        cleared.push(rule.id.clone());
                        continue;
                    }
                    // No value to judge by: neither fires nor clears.
                    _ => continue,
                }
                if let Some(sev) = rule.severity {
                    fired.push((
                        rule.id.clone(),
                        AlertKind::Pathway,
                        Firing {
                            severity: sev,
                            message: rule.message.clone(),
                            value: Some(shown.clone()),
                            measured_at: Some(measured_at),
                            obs_id,
                        },
                    ));
                }
                if feedback {
                    if let Some(a) = &rule.advice {
                        out.push(Output::Advice {
                            patient,
                            device: device.clone(),
                            rule: rule.id.clone(),
                            level: a.level,
                            text: a.text.clone(),
                        });
                    }
                    if let Some(r) = &rule.repeat {
                        out.push(Output::Repeat {
                            patient,
                            device: device.clone(),
                            rule: rule.id.clone(),
                            code: r.code,
                            reason: r.reason.clone(),
                        });
                    }
                }
            }
        }

        for rule in cleared {
            if let Some(r) = p.resolved.get_mut(&rule) {
                r.cleared = true;
            }
        }
        let mut alerts_out = Vec::new();
        for (rule, kind, f) in fired {
            if let Some(o) = self.fire(patient, &rule, kind, f, now) {
                alerts_out.push(o);
            }
        }
        alerts_out.extend(out);
        Ok(alerts_out)
    }

    /// Feeds a device `status` message.
    pub fn device_status(
        &mut self,
        patient: PatientId,
        device: &str,
        status: DeviceStatus,
        now: DateTime<Utc>,
    ) -> Result<Vec<Output>, EngineError> {
        let p = self
            .patients
            .get_mut(&patient)
            .ok_or(EngineError::UnknownPatient(patient))?;
        let pathway = self
            .pathways
            .get(&p.setup.pathway)
            .ok_or_else(|| EngineError::UnknownPathway(p.setup.pathway.clone()))?;
        let rules = pathway.device.clone();
        let st = p.devices.entry(device.to_string()).or_default();
        let was_low = st
            .status
            .battery_pct
            .is_some_and(|b| b <= rules.battery_low_pct);
        let was_off = st.status.signal.as_deref() == Some("lead_off");
        let is_low = status
            .battery_pct
            .is_some_and(|b| b <= rules.battery_low_pct);
        let is_off = status.signal.as_deref() == Some("lead_off");
        let battery = status.battery_pct;
        if st.last_seen.is_none_or(|t| now > t) {
            st.last_seen = Some(now);
            st.offline_alerted = false;
        }
        st.status = status;
        let mut fired = Vec::new();
        if is_low && !was_low {
            fired.push((
                format!("device-battery-low:{device}"),
                format!("Device {device} battery low"),
                battery.map(|b| format!("battery {b} %")),
            ));
        }
        if is_off && !was_off {
            fired.push((
                format!("device-lead-off:{device}"),
                format!("Device {device} lead off: no usable signal"),
                Some("lead_off".into()),
            ));
        }
        let mut out = Vec::new();
        for (rule, message, value) in fired {
            let f = Firing {
                severity: rules.severity,
                message,
                value,
                measured_at: None,
                obs_id: None,
            };
            out.extend(self.fire(patient, &rule, AlertKind::Device, f, now));
        }
        Ok(out)
    }

    /// A message from `device` that is neither a reading nor a status (an
    /// ECG chunk): the device is not offline. Moves its offline clock and
    /// nothing else; the patch's signal quality comes as a status, and only
    /// when it changes, so a patch streaming a steady poor or lead-off
    /// signal (no heart rate, no change) would otherwise count as silent.
    pub fn heard_from(
        &mut self,
        patient: PatientId,
        device: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let p = self
            .patients
            .get_mut(&patient)
            .ok_or(EngineError::UnknownPatient(patient))?;
        let st = p.devices.entry(device.to_string()).or_default();
        if st.last_seen.is_none_or(|t| now > t) {
            st.last_seen = Some(now);
            st.offline_alerted = false;
        }
        Ok(())
    }

    /// Stops watching `patient`'s devices that are not in `keep` and have
    /// not been heard from since `since`: devices moved to another patient,
    /// or unassigned, whose silence is no longer this patient's (no
    /// `device-offline` alert comes for them). A device heard from since
    /// `since` is kept whatever `keep` says: `keep` was read at `since`,
    /// and a device assigned after it may already be sending. Returns the
    /// devices forgotten; live alerts are left as they are.
    pub fn forget_devices_except(
        &mut self,
        patient: PatientId,
        keep: &BTreeSet<String>,
        since: DateTime<Utc>,
    ) -> Vec<String> {
        let Some(p) = self.patients.get_mut(&patient) else {
            return Vec::new();
        };
        let gone: Vec<String> = p
            .devices
            .iter()
            .filter(|(d, st)| !keep.contains(*d) && st.last_seen.is_none_or(|t| t < since))
            .map(|(d, _)| d.clone())
            .collect();
        for d in &gone {
            p.devices.remove(d);
        }
        gone
    }

    /// Advances time: raises missed-reading and device-offline alerts that
    /// are due, and escalates unacknowledged alerts past their deadline
    /// (exactly at the deadline counts). Call it at [`Engine::next_deadline`].
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Output> {
        let mut fired = Vec::new();
        for (&id, p) in self.patients.iter_mut() {
            let Some(pathway) = self.pathways.get(&p.setup.pathway) else {
                continue;
            };
            for (e, clock) in pathway.expects.iter().zip(p.expects.iter_mut()) {
                let (every, clinicians) = p.setup.expect_every(e);
                let due = since_admission(clock.last, p.setup.admitted_at) + every + e.grace;
                if now >= due && clock.alerted_for != Some(due) {
                    clock.alerted_for = Some(due);
                    let since = clock
                        .last
                        .filter(|t| *t >= p.setup.admitted_at)
                        .map_or_else(
                            || "since admission".to_string(),
                            |t| format!("since {}", t.to_rfc3339()),
                        );
                    // The pathway's text names its own interval; under a
                    // clinician's, say theirs.
                    let message = if clinicians {
                        let names: Vec<&str> = e.codes.iter().map(|c| c.as_str()).collect();
                        format!(
                            "No {} reading for {} (every {} asked for this patient)",
                            names.join(" or "),
                            crate::duration::format(every + e.grace),
                            crate::duration::format(every)
                        )
                    } else {
                        e.message.clone()
                    };
                    fired.push((
                        id,
                        e.id.clone(),
                        AlertKind::MissedReading,
                        Firing {
                            severity: e.severity,
                            message,
                            value: Some(format!("no reading {since}")),
                            measured_at: None,
                            obs_id: None,
                        },
                    ));
                }
            }
            for (dev, st) in p.devices.iter_mut() {
                if let Some(seen) = st.last_seen
                    && !st.offline_alerted
                    && now
                        >= since_admission(Some(seen), p.setup.admitted_at)
                            + pathway.device.offline_after
                {
                    st.offline_alerted = true;
                    fired.push((
                        id,
                        format!("device-offline:{dev}"),
                        AlertKind::Device,
                        Firing {
                            severity: pathway.device.severity,
                            message: format!(
                                "Device {dev} offline for {}",
                                crate::duration::format(pathway.device.offline_after)
                            ),
                            value: Some(format!("last seen {}", seen.to_rfc3339())),
                            measured_at: None,
                            obs_id: None,
                        },
                    ));
                }
            }
        }
        let mut out = Vec::new();
        for (patient, rule, kind, f) in fired {
            out.extend(self.fire(patient, &rule, kind, f, now));
        }
        for a in self.alerts.values_mut() {
            if a.escalate_if_due(now) {
                out.push(escalated(a));
            }
        }
        out
    }

    /// The earliest time at which [`Engine::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| next = Some(next.map_or(t, |n| n.min(t)));
        for p in self.patients.values() {
            let Some(pathway) = self.pathways.get(&p.setup.pathway) else {
                continue;
            };
            for (e, clock) in pathway.expects.iter().zip(&p.expects) {
                let due = since_admission(clock.last, p.setup.admitted_at)
                    + p.setup.expect_every(e).0
                    + e.grace;
                if clock.alerted_for != Some(due) {
                    consider(due);
                }
            }
            for st in p.devices.values() {
                if let Some(seen) = st.last_seen
                    && !st.offline_alerted
                {
                    consider(
                        since_admission(Some(seen), p.setup.admitted_at)
                            + pathway.device.offline_after,
                    );
                }
            }
        }
        for a in self.alerts.values() {
            if a.status == AlertStatus::Open
                && let Some(t) = a.escalate_at
            {
                consider(t);
            }
        }
        next
    }

    /// A clinician acknowledges an alert.
    pub fn acknowledge(
        &mut self,
        alert: u64,
        user: &str,
        at: DateTime<Utc>,
        note: &str,
    ) -> Result<Output, ActionError> {
        let a = self
            .alerts
            .get_mut(&alert)
            .ok_or(ActionError::UnknownAlert(alert))?;
        a.acknowledge(user, at, note)?;
        Ok(updated(a))
    }

    /// A clinician escalates an alert by hand.
    pub fn escalate(
        &mut self,
        alert: u64,
        user: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<Output, ActionError> {
        let a = self
            .alerts
            .get_mut(&alert)
            .ok_or(ActionError::UnknownAlert(alert))?;
        a.escalate(user, at, reason)?;
        Ok(escalated(a))
    }

    /// A clinician resolves an alert with an outcome and a note. The engine
    /// then forgets it, remembering only when its rule was last resolved.
    pub fn resolve(
        &mut self,
        alert: u64,
        user: &str,
        at: DateTime<Utc>,
        outcome: &str,
        note: &str,
    ) -> Result<Output, ActionError> {
        let a = self
            .alerts
            .get_mut(&alert)
            .ok_or(ActionError::UnknownAlert(alert))?;
        a.resolve(user, at, outcome, note)?;
        let a = self
            .alerts
            .remove(&alert)
            .ok_or(ActionError::UnknownAlert(alert))?;
        if let Some(p) = self.patients.get_mut(&a.patient) {
            p.open.remove(&a.rule);
            p.resolved.insert(
                a.rule.clone(),
                Resolved {
                    at,
                    severity: a.severity,
                    cleared: false,
                },
            );
        }
        Ok(updated(&a))
    }

    /// An unresolved alert.
    pub fn alert(&self, id: u64) -> Option<&Alert> {
        self.alerts.get(&id)
    }

    /// Every unresolved alert, by id.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// The unresolved alert of `patient` for `rule`.
    pub fn open_alert(&self, patient: PatientId, rule: &str) -> Option<&Alert> {
        let id = self.patients.get(&patient)?.open.get(rule)?;
        self.alerts.get(id)
    }

    /// The patient's NEWS2 as of their newest reading.
    pub fn news2(&self, patient: PatientId) -> Option<News2Score> {
        let p = self.patients.get(&patient)?;
        p.news2(self.pathways.get(&p.setup.pathway)?, Reasons::Written)
    }

    /// The measurement schedule `patient`'s kit is told (the `config`
    /// message of CONTRACTS.md §2): each code one of their pathway's
    /// `[[expect]]` rules asks for, with the interval asked of this patient
    /// (a clinician's [`PatientSetup::obs_every_minutes`] in place of the
    /// rule's `every`), the shortest where two rules name one code. Grace
    /// is the ward's slack, not the patient's, so it is left out. `None`
    /// for a patient the engine does not hold.
    pub fn schedule(&self, patient: PatientId) -> Option<BTreeMap<&'static str, chrono::Duration>> {
        let p = self.patients.get(&patient)?;
        let pathway = self.pathways.get(&p.setup.pathway)?;
        let mut schedule: BTreeMap<&'static str, chrono::Duration> = BTreeMap::new();
        for expect in &pathway.expects {
            let (every, _) = p.setup.expect_every(expect);
            for code in &expect.codes {
                schedule
                    .entry(code.as_str())
                    .and_modify(|d| *d = (*d).min(every))
                    .or_insert(every);
            }
        }
        Some(schedule)
    }

    /// The devices the engine watches for `patient` (those that sent since
    /// its admission, or were assigned when it was read), by id.
    pub fn devices(&self, patient: PatientId) -> Vec<String> {
        self.patients
            .get(&patient)
            .map_or_else(Vec::new, |p| p.devices.keys().cloned().collect())
    }

    /// The readings the engine holds for `patient`, in measurement order.
    pub fn readings(&self, patient: PatientId) -> Vec<Reading> {
        self.patients
            .get(&patient)
            .map_or_else(Vec::new, |p| p.readings())
    }

    /// Whether the engine holds any reading of `patient`.
    pub fn holds_readings(&self, patient: PatientId) -> bool {
        self.patients
            .get(&patient)
            .is_some_and(|p| !p.history.is_empty())
    }

    /// The NEWS2 history the rising rule uses: total as of each reading
    /// (none [without the NEWS2 rules](Engine::without_news2_rules)).
    pub fn news2_history(&self, patient: PatientId) -> Vec<(DateTime<Utc>, Option<u8>)> {
        self.patients
            .get(&patient)
            .map(|p| p.scores.iter().map(|(k, v)| (k.0, v.total)).collect())
            .unwrap_or_default()
    }

    fn fire(
        &mut self,
        patient: PatientId,
        rule: &str,
        kind: AlertKind,
        f: Firing,
        now: DateTime<Utc>,
    ) -> Option<Output> {
        let p = self.patients.get_mut(&patient)?;
        let pathway = self.pathways.get(&p.setup.pathway)?;
        let after = pathway.escalation.after(f.severity);
        if let Some(a) = p.open.get(rule).and_then(|id| self.alerts.get_mut(id)) {
            let event = a.repeat(f, now, after);
            return Some(Output::AlertUpdated {
                alert: a.clone(),
                event,
            });
        }
        if let Some(r) = p.resolved.get(rule)
            && matches!(
                kind,
                AlertKind::News2 | AlertKind::News2Rising | AlertKind::Pathway
            )
        {
            // Measured before the clinician's decision: that decision covered it.
            if f.measured_at.is_some_and(|m| m <= r.at) {
                return None;
            }
            // The same state the clinician resolved, still going: not again.
            if !r.cleared && f.severity <= r.severity {
                return None;
            }
        }
        p.resolved.remove(rule);
        let id = self.next_id;
        self.next_id += 1;
        let a = Alert::raise(id, patient, rule, kind, f, now, after);
        p.open.insert(rule.to_string(), id);
        self.alerts.insert(id, a.clone());
        Some(Output::AlertRaised(a))
    }
}

/// The output for a lifecycle change whose event is the alert's last.
fn updated(a: &Alert) -> Output {
    Output::AlertUpdated {
        alert: a.clone(),
        event: a
            .events
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable_event(a)),
    }
}

fn escalated(a: &Alert) -> Output {
    Output::AlertEscalated {
        alert: a.clone(),
        event: a
            .events
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable_event(a)),
    }
}

/// Every alert has its `Raised` event; this only keeps the output total.
fn unreachable_event(a: &Alert) -> AlertEvent {
    AlertEvent {
        kind: EventKind::Raised,
        at: a.raised_at,
        actor: Actor::System,
        reason: a.message.clone(),
        outcome: None,
        severity: a.severity,
    }
}

fn show(code: Code, v: &vigil_clinical::Value) -> String {
    match (v, code.unit()) {
        (vigil_clinical::Value::Number(n), Some(u)) => format!("{} {n} {u}", code.as_str()),
        (vigil_clinical::Value::Number(n), None) => format!("{} {n}", code.as_str()),
        (vigil_clinical::Value::Text(t), _) => format!("{} {t}", code.as_str()),
    }
}

fn news2_message(s: &News2Score, total: u8, risk: Severity) -> String {
    let mut m = format!("NEWS2 {total} ({})", risk.as_str());
    if s.partial {
        let gaps: Vec<&str> = s
            .missing
            .iter()
            .chain(&s.stale)
            .map(|p: &Parameter| p.as_str())
            .collect();
        m.push_str(&format!(", partial: no fresh {}", gaps.join(", ")));
    }
    m
}

/// When a clock (a missed-reading or a device-offline one) runs from: the
/// last reading or report, but never before the admission. A patient
/// admitted again brings back their record's readings and devices'
/// reports from before (the rebuild replays them); they must not make a
/// reading, or a device, overdue at the moment of admission.
fn since_admission(last: Option<DateTime<Utc>>, admitted_at: DateTime<Utc>) -> DateTime<Utc> {
    last.map_or(admitted_at, |t| t.max(admitted_at))
}

#[cfg(test)]
mod tests;
