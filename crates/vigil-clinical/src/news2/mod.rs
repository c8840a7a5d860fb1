//! NEWS2 (Royal College of Physicians, National Early Warning Score 2, 2017).
//!
//! One file per chart row ([`resp_rate`], [`spo2`], [`oxygen`], [`systolic`],
//! [`pulse`], [`consciousness`], [`temperature`]), each with its printed
//! bands and a `score` over the quantised value; [`risk`] holds Charts 3 and
//! 4. This module assembles them: [`score`] turns a set of (optional,
//! provenance-carrying) parameter values into a [`News2Score`].
//!
//! Values are quantised before lookup (see [`crate::quantise`]): round half
//! up to whole numbers, temperature to 0.1 °C, on the decimal as written.
//! The raw value is kept beside the quantised one in every [`SubScore`].
//!
//! A missing parameter contributes nothing and makes the score `partial`:
//! the total and the risk of a partial score are **lower bounds** (a missing
//! parameter can only add), and a partial score is never complete.

pub mod band;
pub mod consciousness;
pub mod oxygen;
pub mod pulse;
pub mod resp_rate;
pub mod risk;
pub mod spo2;
pub mod systolic;
pub mod temperature;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::obs::Value;
use crate::quantise::{format_scaled, quantise, scaled_to_f64};

pub use band::Band;
pub use consciousness::Acvpu;
pub use risk::{Monitoring, Response, Risk};
pub use spo2::Spo2Scale;

/// A NEWS2 chart row. Serialises as the `vigil score` key of the row:
/// `resp_rate`, `spo2`, `o2`, `systolic`, `pulse`, `acvpu`, `temp`.
/// Ordered as the chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Parameter {
    /// Respiration rate.
    #[serde(rename = "resp_rate")]
    RespRate,
    /// SpO2 (scale 1 or 2).
    #[serde(rename = "spo2")]
    Spo2,
    /// Air or oxygen.
    #[serde(rename = "o2")]
    Oxygen,
    /// Systolic blood pressure.
    #[serde(rename = "systolic")]
    Systolic,
    /// Pulse.
    #[serde(rename = "pulse")]
    Pulse,
    /// Consciousness (ACVPU).
    #[serde(rename = "acvpu")]
    Consciousness,
    /// Temperature (core only).
    #[serde(rename = "temp")]
    Temperature,
}

impl Parameter {
    /// The seven rows, in chart order.
    pub const ALL: [Parameter; 7] = [
        Parameter::RespRate,
        Parameter::Spo2,
        Parameter::Oxygen,
        Parameter::Systolic,
        Parameter::Pulse,
        Parameter::Consciousness,
        Parameter::Temperature,
    ];

    /// The row's key (`resp_rate`, `spo2`, `o2`, `systolic`, `pulse`, `acvpu`, `temp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Parameter::RespRate => "resp_rate",
            Parameter::Spo2 => "spo2",
            Parameter::Oxygen => "o2",
            Parameter::Systolic => "systolic",
            Parameter::Pulse => "pulse",
            Parameter::Consciousness => "acvpu",
            Parameter::Temperature => "temp",
        }
    }
}

impl std::fmt::Display for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who entered a value that did not come from a device.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum EnteredBy {
    /// A clinician on the episode (user name or id).
    Clinician {
        /// The clinician's user name or id.
        user: String,
    },
    /// The patient's self-report.
    Patient,
}

/// Whether the patient is on supplemental oxygen, as scored in the oxygen row.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OxygenStatus {
    /// On supplemental oxygen.
    pub on_oxygen: bool,
    /// The flow, when it came from an `o2_flow` reading (0 = air).
    pub flow_l_min: Option<f64>,
}

impl OxygenStatus {
    /// Room air.
    pub const AIR: OxygenStatus = OxygenStatus {
        on_oxygen: false,
        flow_l_min: None,
    };
    /// Supplemental oxygen, flow not known.
    pub const OXYGEN: OxygenStatus = OxygenStatus {
        on_oxygen: true,
        flow_l_min: None,
    };

    /// From an `o2_flow` reading: any flow above 0 L/min is oxygen.
    pub fn from_flow(flow_l_min: f64) -> OxygenStatus {
        OxygenStatus {
            on_oxygen: flow_l_min > 0.0,
            flow_l_min: Some(flow_l_min),
        }
    }
}

/// A value for one chart row with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured<T> {
    /// The value as measured or entered.
    pub value: T,
    /// When it was measured (or entered); `None` for `vigil score` lines.
    pub measured_at: Option<DateTime<Utc>>,
    /// The device that measured it, if any.
    pub source: Option<String>,
    /// The stored observation it came from, if any.
    pub obs_id: Option<i64>,
    /// Who entered it, when it was entered rather than measured by a device.
    pub entered_by: Option<EnteredBy>,
}

impl<T> Measured<T> {
    /// A bare value with no provenance (used by `vigil score`).
    pub fn new(value: T) -> Self {
        Measured {
            value,
            measured_at: None,
            source: None,
            obs_id: None,
            entered_by: None,
        }
    }
}

/// The values NEWS2 scores, each optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct News2Inputs {
    /// Respiration rate, /min.
    pub resp_rate: Option<Measured<f64>>,
    /// SpO2, %.
    pub spo2: Option<Measured<f64>>,
    /// Air or oxygen.
    pub oxygen: Option<Measured<OxygenStatus>>,
    /// Systolic BP, mmHg.
    pub systolic: Option<Measured<f64>>,
    /// Pulse, /min.
    pub pulse: Option<Measured<f64>>,
    /// Consciousness.
    pub consciousness: Option<Measured<Acvpu>>,
    /// Core temperature, °C. Never skin temperature.
    pub temperature: Option<Measured<f64>>,
    /// The SpO2 scale setting (default scale 1).
    pub spo2_scale: Spo2ScaleSetting,
}

/// The SpO2 scale of an episode, with who chose it and when (audit).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spo2ScaleSetting {
    /// The scale.
    pub scale: Spo2Scale,
    /// The clinician who recorded hypercapnic respiratory failure (scale 2),
    /// or `None` for the default.
    pub set_by: Option<String>,
    /// When it was set.
    pub set_at: Option<DateTime<Utc>>,
}

impl Spo2ScaleSetting {
    /// A bare scale with no audit fields.
    pub fn scale(scale: Spo2Scale) -> Self {
        Spo2ScaleSetting {
            scale,
            set_by: None,
            set_at: None,
        }
    }
}

/// Why NEWS2 does not apply to a patient (RCP: not validated for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotApplicable {
    /// The patient is under 16.
    Under16,
    /// The patient is pregnant.
    Pregnant,
}

/// One row's contribution to a score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubScore {
    /// The row.
    pub parameter: Parameter,
    /// The sub-score, 0–3.
    pub score: u8,
    /// The value as measured (a number; an ACVPU letter; for oxygen the flow
    /// in L/min or `"air"` / `"oxygen"`).
    pub raw: Value,
    /// The value looked up after quantisation (`35.05` → `35.1`; for oxygen
    /// `"air"` / `"oxygen"`).
    pub quantised: Value,
    /// When it was measured or entered.
    pub measured_at: Option<DateTime<Utc>>,
    /// The device that measured it.
    pub source: Option<String>,
    /// The stored observation used.
    pub obs_id: Option<i64>,
    /// Who entered it, if not a device.
    pub entered_by: Option<EnteredBy>,
    /// One line for a clinician, e.g. `SpO2 91% on scale 1 → 3`.
    pub reason: String,
}

/// A NEWS2 result: what the daemon stores and pushes, and what `vigil score`
/// prints a subset of.
///
/// When `not_applicable` is set, `total`, `risk`, `monitoring` and `response`
/// are `None` and nothing is scored. Otherwise they are always `Some`; when
/// `partial` they are lower bounds computed from the parameters present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct News2Score {
    /// Sum of the sub-scores present.
    pub total: Option<u8>,
    /// Clinical risk (Chart 3).
    pub risk: Option<Risk>,
    /// True when any parameter is missing or stale: never a complete score.
    pub partial: bool,
    /// Rows with no usable value, in chart order.
    pub missing: Vec<Parameter>,
    /// Rows whose latest value is older than the freshness window, in chart order.
    pub stale: Vec<Parameter>,
    /// The rows scored, in chart order.
    pub subscores: Vec<SubScore>,
    /// Why NEWS2 was not applied, if it was not.
    pub not_applicable: Option<NotApplicable>,
    /// Minimum monitoring frequency (Chart 4).
    pub monitoring: Option<Monitoring>,
    /// Clinical response (Chart 4).
    pub response: Option<Response>,
    /// Whether any single parameter scored 3 ("red score").
    pub red_score: bool,
    /// The SpO2 scale used, with who set it.
    pub spo2_scale: Spo2ScaleSetting,
    /// The time the score is for (home scoring's `now`); `None` for `vigil score`.
    pub scored_at: Option<DateTime<Utc>>,
}

impl News2Score {
    /// The result for a patient NEWS2 is not validated for.
    pub fn not_applicable(
        why: NotApplicable,
        spo2_scale: Spo2ScaleSetting,
        scored_at: Option<DateTime<Utc>>,
    ) -> Self {
        News2Score {
            total: None,
            risk: None,
            partial: false,
            missing: Vec::new(),
            stale: Vec::new(),
            subscores: Vec::new(),
            not_applicable: Some(why),
            monitoring: None,
            response: None,
            red_score: false,
            spo2_scale,
            scored_at,
        }
    }

    /// The sub-score of one row, if it was scored.
    pub fn subscore(&self, p: Parameter) -> Option<&SubScore> {
        self.subscores.iter().find(|s| s.parameter == p)
    }
}

/// Scores a set of values. Never fails: a row with no value, or with a value
/// that has no quantised form (NaN or infinite, impossible for a validated
/// [`crate::Observation`]), is `missing` and makes the result `partial`.
///
/// When the oxygen row is missing, SpO2 on scale 2 is looked up as on air,
/// the lower bound (the row's reason says so); scale 1 does not depend on it.
pub fn score(inputs: &News2Inputs) -> News2Score {
    score_with(inputs, Reasons::Written)
}

/// Whether a score's rows carry their one-line reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reasons {
    /// Each [`SubScore::reason`] is written: what is stored and shown.
    Written,
    /// Each [`SubScore::reason`] is empty; every other field is as
    /// [`Reasons::Written`] gives it (the same code computes both). For a
    /// caller that only reads the numbers, many times a reading (the rules
    /// engine): writing the reasons was most of a score's cost.
    Skipped,
}

impl Reasons {
    /// `text()`, or nothing if reasons are skipped.
    fn write(self, text: impl FnOnce() -> String) -> String {
        match self {
            Reasons::Written => text(),
            Reasons::Skipped => String::new(),
        }
    }
}

/// [`score`], with or without the rows' reasons.
pub fn score_with(inputs: &News2Inputs, reasons: Reasons) -> News2Score {
    let scale = inputs.spo2_scale.scale;
    let on_oxygen = inputs.oxygen.as_ref().map(|m| m.value.on_oxygen);
    let mut subscores = Vec::with_capacity(7);
    let mut missing = Vec::new();

    let mut push = |p: Parameter, s: Option<SubScore>| match s {
        Some(s) => subscores.push(s),
        None => missing.push(p),
    };

    push(
        Parameter::RespRate,
        inputs.resp_rate.as_ref().and_then(|m| {
            numeric(m, resp_rate::DECIMALS, Parameter::RespRate, |q| {
                let s = resp_rate::score(q);
                (
                    s,
                    reasons.write(|| {
                        format!(
                            "Respiration rate {} → {s}",
                            shown(m.value, q, resp_rate::DECIMALS, "/min")
                        )
                    }),
                )
            })
        }),
    );
    push(
        Parameter::Spo2,
        inputs.spo2.as_ref().and_then(|m| {
            numeric(m, spo2::DECIMALS, Parameter::Spo2, |q| {
                let s = spo2::score(q, scale, on_oxygen.unwrap_or(false));
                let reason = reasons.write(|| {
                    let value = shown(m.value, q, spo2::DECIMALS, "%");
                    let context = match (scale, on_oxygen) {
                        (Spo2Scale::One, _) => "on scale 1",
                        (Spo2Scale::Two, Some(true)) => "on scale 2 on oxygen",
                        (Spo2Scale::Two, Some(false)) => "on scale 2 on air",
                        (Spo2Scale::Two, None) => "on scale 2, oxygen unknown so scored as on air",
                    };
                    format!("SpO2 {value} {context} → {s}")
                });
                (s, reason)
            })
        }),
    );
    push(
        Parameter::Oxygen,
        inputs.oxygen.as_ref().map(|m| {
            let st = m.value;
            let s = oxygen::score(st.on_oxygen);
            let word = if st.on_oxygen { "oxygen" } else { "air" };
            let raw = match st.flow_l_min {
                Some(f) => Value::Number(f),
                None => Value::Text(word.into()),
            };
            let reason = reasons.write(|| {
                let what = match st.flow_l_min {
                    Some(f) => format!("O2 flow {f} L/min ({word})"),
                    None if st.on_oxygen => "On oxygen".to_string(),
                    None => "On air".to_string(),
                };
                format!("{what} → {s}")
            });
            provenance(
                m,
                Parameter::Oxygen,
                s,
                raw,
                Value::Text(word.into()),
                reason,
            )
        }),
    );
    push(
        Parameter::Systolic,
        inputs.systolic.as_ref().and_then(|m| {
            numeric(m, systolic::DECIMALS, Parameter::Systolic, |q| {
                let s = systolic::score(q);
                (
                    s,
                    reasons.write(|| {
                        format!(
                            "Systolic BP {} → {s}",
                            shown(m.value, q, systolic::DECIMALS, " mmHg")
                        )
                    }),
                )
            })
        }),
    );
    push(
        Parameter::Pulse,
        inputs.pulse.as_ref().and_then(|m| {
            numeric(m, pulse::DECIMALS, Parameter::Pulse, |q| {
                let s = pulse::score(q);
                (
                    s,
                    reasons.write(|| {
                        format!("Pulse {} → {s}", shown(m.value, q, pulse::DECIMALS, "/min"))
                    }),
                )
            })
        }),
    );
    push(
        Parameter::Consciousness,
        inputs.consciousness.as_ref().map(|m| {
            let level = m.value;
            let s = consciousness::score(level);
            let v = Value::Text(level.letter().into());
            let reason = reasons.write(|| {
                format!(
                    "Consciousness {} ({}) → {s}",
                    level.letter(),
                    level.describe()
                )
            });
            provenance(m, Parameter::Consciousness, s, v.clone(), v, reason)
        }),
    );
    push(
        Parameter::Temperature,
        inputs.temperature.as_ref().and_then(|m| {
            numeric(m, temperature::DECIMALS, Parameter::Temperature, |q| {
                let s = temperature::score(q);
                (
                    s,
                    reasons.write(|| {
                        format!(
                            "Temperature {} → {s}",
                            shown(m.value, q, temperature::DECIMALS, " °C")
                        )
                    }),
                )
            })
        }),
    );

    let total: u8 = subscores.iter().map(|s| s.score).sum();
    let red = subscores.iter().any(|s| s.score == 3);
    News2Score {
        total: Some(total),
        risk: Some(risk::risk(total, red)),
        partial: !missing.is_empty(),
        missing,
        stale: Vec::new(),
        subscores,
        not_applicable: None,
        monitoring: Some(risk::monitoring(total, red)),
        response: Some(risk::response(total, red)),
        red_score: red,
        spo2_scale: inputs.spo2_scale.clone(),
        scored_at: None,
    }
}

/// Quantises a numeric row and builds its sub-score; `None` if the value has
/// no quantised form.
fn numeric(
    m: &Measured<f64>,
    decimals: u32,
    p: Parameter,
    look_up: impl FnOnce(i64) -> (u8, String),
) -> Option<SubScore> {
    let q = quantise(m.value, decimals)?;
    let (s, reason) = look_up(q);
    Some(provenance(
        m,
        p,
        s,
        Value::Number(m.value),
        Value::Number(scaled_to_f64(q, decimals)),
        reason,
    ))
}

fn provenance<T>(
    m: &Measured<T>,
    parameter: Parameter,
    score: u8,
    raw: Value,
    quantised: Value,
    reason: String,
) -> SubScore {
    SubScore {
        parameter,
        score,
        raw,
        quantised,
        measured_at: m.measured_at,
        source: m.source.clone(),
        obs_id: m.obs_id,
        entered_by: m.entered_by.clone(),
        reason,
    }
}

/// `91%`, or `20.5/min → 21/min` when quantisation changed the value.
fn shown(raw: f64, q: i64, decimals: u32, unit: &str) -> String {
    let looked_up = format_scaled(q, decimals);
    if scaled_to_f64(q, decimals) == raw {
        format!("{looked_up}{unit}")
    } else {
        format!("{raw}{unit} → {looked_up}{unit}")
    }
}

#[cfg(test)]
mod tests;
