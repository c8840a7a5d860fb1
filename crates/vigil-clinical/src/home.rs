//! NEWS2-style scoring at home (CLINICAL.md, "Scoring at home").
//!
//! Home devices rarely give all seven NEWS2 parameters at one moment, so
//! Vigil scores the **latest value of each parameter within a freshness
//! window** (a pathway setting, default 6 h). Every result lists which rows
//! are `missing` (never measured) and which are `stale` (latest value older
//! than the window, not scored), and is `partial` when any is: a partial
//! score is a lower bound and is never shown as a complete low score.
//!
//! Where each row comes from:
//!
//! | row | source |
//! |---|---|
//! | resp_rate, spo2, systolic, pulse | the latest reading of that code, from any device (heart rate from oximeter, cuff or ECG patch: latest wins, the device is recorded) |
//! | temp | the latest `temp` reading only; `skin_temp` (ECG patch, reads below core) never feeds it |
//! | acvpu | the later of the episode's entry (clinician- or patient-entered) and the latest `acvpu` reading; subject to the freshness window like any observation |
//! | o2 | the later of the episode's oxygen status and the latest `o2_flow` reading (0 = air); a standing status that holds until changed, so it is never stale |
//!
//! The patient record can say NEWS2 does not apply (under 16, pregnant: not
//! validated by the RCP); the result is then "not applicable" with no total.
//!
//! The function scores the readings it is given, as of `now`. A reading
//! measured after `now` (a device clock slightly ahead, within ingest's
//! 5-minute limit) counts as fresh; a replay that wants the state at an
//! earlier time passes only the readings measured up to it.

use std::borrow::Borrow;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::news2::{
    self, Acvpu, EnteredBy, Measured, News2Inputs, News2Score, NotApplicable, OxygenStatus,
    Parameter, Reasons, Spo2ScaleSetting,
};
use crate::obs::{Code, Observation};

/// The default freshness window: 6 hours (CLINICAL.md).
pub fn default_freshness() -> Duration {
    Duration::hours(6)
}

/// A stored, validated observation with its measurement time and provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The validated observation.
    pub observation: Observation,
    /// When the device measured it (not when it arrived).
    pub measured_at: DateTime<Utc>,
    /// The device id that sent it, or [`entered_source`] for a reading a
    /// clinician entered.
    pub source: Option<String>,
    /// The stored observation id.
    pub obs_id: Option<i64>,
}

/// The source of readings a clinician entered (a count of breaths on a
/// video call, a blood pressure read out over the phone) rather than a
/// device sent: `manual:{username}`. No device id has a colon (the ingest
/// takes ASCII letters, digits and `-` only), so the two never meet.
pub fn entered_source(username: &str) -> String {
    format!("{MANUAL_PREFIX}{username}")
}

const MANUAL_PREFIX: &str = "manual:";

/// Who entered a reading whose source is [`entered_source`]; `None` for a
/// device's.
pub fn entered_by(source: &str) -> Option<&str> {
    source.strip_prefix(MANUAL_PREFIX)
}

/// A value entered on the episode rather than measured by a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attested<T> {
    /// The value.
    pub value: T,
    /// When it was entered (for consciousness: when the patient was assessed).
    pub recorded_at: DateTime<Utc>,
    /// Who entered it: a clinician, or the patient's self-report.
    pub entered_by: EnteredBy,
}

/// The episode settings scoring needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// SpO2 scale, with who set it and when (default scale 1).
    pub spo2_scale: Spo2ScaleSetting,
    /// On supplemental oxygen (`true`) or air (`false`), as last entered.
    pub oxygen: Option<Attested<bool>>,
    /// Level of consciousness, as last entered.
    pub consciousness: Option<Attested<Acvpu>>,
    /// The patient is under 16: NEWS2 is not applicable.
    pub under_16: bool,
    /// The patient is pregnant: NEWS2 is not applicable.
    pub pregnant: bool,
}

/// The only codes [`score_home`] reads: readings of any other code (skin
/// temperature, diastolic, peak flow, weight, …) never change its result,
/// so a caller may fetch only these.
pub const SCORED_CODES: [Code; 7] = [
    Code::RespRate,
    Code::Spo2,
    Code::O2Flow,
    Code::Systolic,
    Code::Pulse,
    Code::Acvpu,
    Code::Temp,
];

/// Scores a patient at home as of `now`.
///
/// `readings` may hold any number of readings of any codes (e.g. the latest
/// per code and device, or everything in the last day); for each row the
/// latest by measurement time is used (ties: the higher `obs_id`). See the
/// module docs for where each row comes from. The result has `scored_at =
/// Some(now)`, so each sub-score's age is `now - measured_at`
/// ([`News2Score::age_of`]).
pub fn score_home<R: Borrow<Reading>>(
    readings: &[R],
    episode: &Episode,
    freshness: Duration,
    now: DateTime<Utc>,
) -> News2Score {
    score_home_with(readings, episode, freshness, now, Reasons::Written)
}

/// [`score_home`], with or without the rows' reasons ([`Reasons`]): the
/// same code, so the same numbers either way.
pub fn score_home_with<R: Borrow<Reading>>(
    readings: &[R],
    episode: &Episode,
    freshness: Duration,
    now: DateTime<Utc>,
    reasons: Reasons,
) -> News2Score {
    if episode.under_16 {
        return News2Score::not_applicable(
            NotApplicable::Under16,
            episode.spo2_scale.clone(),
            Some(now),
        );
    }
    if episode.pregnant {
        return News2Score::not_applicable(
            NotApplicable::Pregnant,
            episode.spo2_scale.clone(),
            Some(now),
        );
    }

    let is_fresh = |t: DateTime<Utc>| now.signed_duration_since(t) <= freshness;
    let mut stale = Vec::new();

    let mut number = |p: Parameter, code: Code| -> Option<Measured<f64>> {
        let r = latest(readings, code)?;
        if !is_fresh(r.measured_at) {
            stale.push(p);
            return None;
        }
        let value = r.observation.value.as_number()?;
        Some(from_reading(r, value))
    };
    let resp_rate = number(Parameter::RespRate, Code::RespRate);
    let spo2 = number(Parameter::Spo2, Code::Spo2);
    let systolic = number(Parameter::Systolic, Code::Systolic);
    let pulse = number(Parameter::Pulse, Code::Pulse);
    // Core temperature only: skin_temp is deliberately not looked at.
    let temperature = number(Parameter::Temperature, Code::Temp);

    let oxygen = later(
        episode.oxygen.as_ref().map(|a| {
            let status = if a.value {
                OxygenStatus::OXYGEN
            } else {
                OxygenStatus::AIR
            };
            from_entry(a, status)
        }),
        latest(readings, Code::O2Flow).and_then(|r| {
            let flow = r.observation.value.as_number()?;
            Some(from_reading(r, OxygenStatus::from_flow(flow)))
        }),
    );

    let consciousness = later(
        episode
            .consciousness
            .as_ref()
            .map(|a| from_entry(a, a.value)),
        latest(readings, Code::Acvpu).and_then(|r| {
            let level = Acvpu::parse(r.observation.value.as_text()?)?;
            Some(from_reading(r, level))
        }),
    )
    .and_then(|m| match m.measured_at {
        Some(t) if !is_fresh(t) => {
            stale.push(Parameter::Consciousness);
            None
        }
        _ => Some(m),
    });

    let inputs = News2Inputs {
        resp_rate,
        spo2,
        oxygen,
        systolic,
        pulse,
        consciousness,
        temperature,
        spo2_scale: episode.spo2_scale.clone(),
    };
    let mut result = news2::score_with(&inputs, reasons);
    stale.sort();
    result.missing.retain(|p| !stale.contains(p));
    result.partial = !result.missing.is_empty() || !stale.is_empty();
    result.stale = stale;
    result.scored_at = Some(now);
    result
}

/// The latest reading of `code` (by measurement time, then obs id).
fn latest<R: Borrow<Reading>>(readings: &[R], code: Code) -> Option<&Reading> {
    readings
        .iter()
        .map(Borrow::borrow)
        .filter(|r| r.observation.code == code)
        .max_by_key(|r| (r.measured_at, r.obs_id))
}

/// The later of an episode entry and a device reading; on a tie the entry.
fn later<T>(entry: Option<Measured<T>>, reading: Option<Measured<T>>) -> Option<Measured<T>> {
    match (entry, reading) {
        (Some(e), Some(r)) => {
            if r.measured_at > e.measured_at {
                Some(r)
            } else {
                Some(e)
            }
        }
        (e, r) => e.or(r),
    }
}

fn from_reading<T>(r: &Reading, value: T) -> Measured<T> {
    Measured {
        value,
        measured_at: Some(r.measured_at),
        source: r.source.clone(),
        obs_id: r.obs_id,
        entered_by: None,
    }
}

fn from_entry<T, U>(a: &Attested<T>, value: U) -> Measured<U> {
    Measured {
        value,
        measured_at: Some(a.recorded_at),
        source: None,
        obs_id: None,
        entered_by: Some(a.entered_by.clone()),
    }
}

impl News2Score {
    /// How old the value behind a scored row was at `scored_at`.
    pub fn age_of(&self, p: Parameter) -> Option<Duration> {
        let s = self.subscore(p)?;
        Some(self.scored_at?.signed_duration_since(s.measured_at?))
    }
}

#[cfg(test)]
mod tests;
