//! Observation codes, their UCUM units and physiological validity ranges.
//!
//! This is the boundary where a device's raw `{"code","value","unit"}` triple
//! (CONTRACTS.md §2) becomes a validated [`Observation`]. Everything
//! downstream (NEWS2, home thresholds, the rules engine) takes only validated
//! observations, so an impossible value can never be scored.
//!
//! The validity ranges are deliberately wide: "possible in a living patient
//! measured by a home device", not clinical-normal ranges. Rejecting a real
//! (if extreme) reading would hide exactly the patient who most needs an
//! alert, so a range only excludes values that cannot be a measurement of a
//! living person (e.g. SpO2 above 100 %). The reasoning for each range is in
//! `docs/clinical.md` ("Validity ranges").

use serde::{Deserialize, Serialize};

/// An observation code, as carried in the MQTT `obs` payload (CONTRACTS.md §2).
///
/// Serialises as its snake_case wire name (`"spo2"`, `"resp_rate"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Peripheral oxygen saturation, %.
    Spo2,
    /// Heart rate, /min (oximeter, cuff or ECG patch).
    Pulse,
    /// Respiration rate, /min.
    RespRate,
    /// Systolic blood pressure, mmHg.
    Systolic,
    /// Diastolic blood pressure, mmHg.
    Diastolic,
    /// Core (body) temperature, °C. The only temperature NEWS2 scores.
    Temp,
    /// Skin temperature from an ECG patch, °C. Reads below core temperature;
    /// never feeds the NEWS2 temperature row.
    SkinTemp,
    /// Peak expiratory flow, L/min.
    Pef,
    /// Forced expiratory volume in one second, L.
    Fev1,
    /// Supplemental oxygen flow, L/min (0 = room air).
    O2Flow,
    /// Level of consciousness, one of `A`, `C`, `V`, `P`, `U`.
    Acvpu,
    /// Posture at measurement, one of `upright`, `lying`, `moving`.
    Posture,
    /// Body weight, kg.
    Weight,
}

impl Code {
    /// Every code, in declaration order.
    pub const ALL: [Code; 13] = [
        Code::Spo2,
        Code::Pulse,
        Code::RespRate,
        Code::Systolic,
        Code::Diastolic,
        Code::Temp,
        Code::SkinTemp,
        Code::Pef,
        Code::Fev1,
        Code::O2Flow,
        Code::Acvpu,
        Code::Posture,
        Code::Weight,
    ];

    /// Parses a wire name (`"spo2"`, `"resp_rate"`, ...). Exact, case-sensitive.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Spo2 => "spo2",
            Code::Pulse => "pulse",
            Code::RespRate => "resp_rate",
            Code::Systolic => "systolic",
            Code::Diastolic => "diastolic",
            Code::Temp => "temp",
            Code::SkinTemp => "skin_temp",
            Code::Pef => "pef",
            Code::Fev1 => "fev1",
            Code::O2Flow => "o2_flow",
            Code::Acvpu => "acvpu",
            Code::Posture => "posture",
            Code::Weight => "weight",
        }
    }

    /// The UCUM unit a message must carry (CONTRACTS.md §2); `None` for the
    /// coded (text) observations `acvpu` and `posture`.
    pub fn unit(self) -> Option<&'static str> {
        match self {
            Code::Spo2 => Some("%"),
            Code::Pulse | Code::RespRate => Some("/min"),
            Code::Systolic | Code::Diastolic => Some("mm[Hg]"),
            Code::Temp | Code::SkinTemp => Some("Cel"),
            Code::Pef | Code::O2Flow => Some("L/min"),
            Code::Fev1 => Some("L"),
            Code::Weight => Some("kg"),
            Code::Acvpu | Code::Posture => None,
        }
    }

    /// Whether the code carries a number (as opposed to a coded text value).
    pub fn is_numeric(self) -> bool {
        self.unit().is_some()
    }

    /// The inclusive range of values possible in a living patient measured by
    /// a home device; `None` for text codes. See `docs/clinical.md`.
    pub fn valid_range(self) -> Option<(f64, f64)> {
        match self {
            Code::Spo2 => Some((20.0, 100.0)),
            Code::Pulse => Some((20.0, 300.0)),
            Code::RespRate => Some((1.0, 80.0)),
            Code::Systolic => Some((40.0, 300.0)),
            Code::Diastolic => Some((10.0, 200.0)),
            Code::Temp => Some((25.0, 45.0)),
            Code::SkinTemp => Some((15.0, 45.0)),
            Code::Pef => Some((20.0, 1000.0)),
            Code::Fev1 => Some((0.1, 10.0)),
            Code::O2Flow => Some((0.0, 60.0)),
            Code::Weight => Some((0.5, 500.0)),
            Code::Acvpu | Code::Posture => None,
        }
    }

    /// The allowed text values of a coded observation; `None` for numeric codes.
    pub fn allowed_text(self) -> Option<&'static [&'static str]> {
        match self {
            Code::Acvpu => Some(&["A", "C", "V", "P", "U"]),
            Code::Posture => Some(&["upright", "lying", "moving"]),
            _ => None,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An observation value as it appears in JSON: a number or a string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A numeric value (every code with a unit).
    Number(f64),
    /// A coded value (`acvpu`, `posture`).
    Text(String),
}

impl Value {
    /// The number, if this is a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Text(_) => None,
        }
    }

    /// The text, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            Value::Number(_) => None,
        }
    }
}

/// A validated observation: known code, correct unit, right value type, value
/// inside the code's validity range.
///
/// Only [`validate`] builds one (the struct is `#[non_exhaustive]`), so holding
/// an `Observation` proves it passed validation. Fields are readable.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Observation {
    /// The code.
    pub code: Code,
    /// The value: a finite in-range number for numeric codes, one of the
    /// allowed words for `acvpu` / `posture`.
    pub value: Value,
}

/// Why an observation was rejected (the `reason` of a `reject` command and the
/// `reason` label of `vigil_obs_rejected_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RejectReason {
    /// The code is not one of [`Code::ALL`].
    #[error("unknown observation code")]
    UnknownCode,
    /// The unit is not the code's UCUM unit (or is present on a text code).
    #[error("wrong unit for the observation code")]
    Unit,
    /// The value is outside the physiologically possible range for the code.
    #[error("value outside the physiologically possible range")]
    Range,
    /// A number where text was expected, or the reverse, a non-finite number,
    /// or a text value that is not one of the allowed words.
    #[error("wrong value type for the observation code")]
    ValueType,
}

impl RejectReason {
    /// The stable wire word: `unknown_code`, `unit`, `range`, `value_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnknownCode => "unknown_code",
            RejectReason::Unit => "unit",
            RejectReason::Range => "range",
            RejectReason::ValueType => "value_type",
        }
    }
}

/// Validates one raw observation from a device message.
///
/// Checks, in order: the code is known ([`RejectReason::UnknownCode`]); the
/// unit equals the code's UCUM unit exactly, or for `acvpu`/`posture` is
/// absent or empty ([`RejectReason::Unit`]); the value has the right type — a
/// finite number, or one of the allowed words, case-sensitive
/// ([`RejectReason::ValueType`]); a number lies inside
/// [`Code::valid_range`] ([`RejectReason::Range`]).
pub fn validate(
    code: &str,
    unit: Option<&str>,
    value: &Value,
) -> Result<Observation, RejectReason> {
    let code = Code::parse(code).ok_or(RejectReason::UnknownCode)?;
    match code.unit() {
        Some(expected) if unit != Some(expected) => return Err(RejectReason::Unit),
        None if !unit.is_none_or(str::is_empty) => return Err(RejectReason::Unit),
        _ => {}
    }
    match (code.valid_range(), code.allowed_text(), value) {
        (Some((lo, hi)), _, Value::Number(n)) => {
            if !n.is_finite() {
                return Err(RejectReason::ValueType);
            }
            if *n < lo || *n > hi {
                return Err(RejectReason::Range);
            }
        }
        (_, Some(words), Value::Text(t)) => {
            if !words.contains(&t.as_str()) {
                return Err(RejectReason::ValueType);
            }
        }
        _ => return Err(RejectReason::ValueType),
    }
    Ok(Observation {
        code,
        value: value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(code: Code, v: f64) -> Result<Observation, RejectReason> {
        validate(code.as_str(), code.unit(), &Value::Number(v))
    }

    #[test]
    fn every_code_round_trips_through_its_wire_name() {
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            let back: Code = serde_json::from_str(&json).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn units_match_contracts_section_2() {
        let expected = [
            "%", "/min", "/min", "mm[Hg]", "mm[Hg]", "Cel", "Cel", "L/min", "L", "L/min",
        ];
        for (c, u) in Code::ALL.iter().zip(expected) {
            assert_eq!(c.unit(), Some(u), "{c}");
        }
        assert_eq!(Code::Acvpu.unit(), None);
        assert_eq!(Code::Posture.unit(), None);
        assert_eq!(Code::Weight.unit(), Some("kg"));
    }

    #[test]
    fn unknown_code_is_checked_first() {
        assert_eq!(
            validate("SpO2", Some("nonsense"), &Value::Text("x".into())),
            Err(RejectReason::UnknownCode)
        );
        assert_eq!(Code::parse("heart_rate"), None);
        assert_eq!(Code::parse(""), None);
    }

    #[test]
    fn wrong_or_missing_unit_is_rejected() {
        let v = Value::Number(95.0);
        assert_eq!(validate("spo2", None, &v), Err(RejectReason::Unit));
        assert_eq!(validate("spo2", Some(""), &v), Err(RejectReason::Unit));
        assert_eq!(validate("spo2", Some("%25"), &v), Err(RejectReason::Unit));
        assert_eq!(
            validate("temp", Some("degC"), &Value::Number(37.0)),
            Err(RejectReason::Unit)
        );
        assert_eq!(
            validate("systolic", Some("mmHg"), &Value::Number(120.0)),
            Err(RejectReason::Unit)
        );
        assert_eq!(
            validate("pef", Some("L"), &Value::Number(400.0)),
            Err(RejectReason::Unit)
        );
        assert_eq!(
            validate("fev1", Some("L/min"), &Value::Number(2.0)),
            Err(RejectReason::Unit)
        );
    }

    #[test]
    fn text_codes_accept_absent_or_empty_unit_only() {
        let a = Value::Text("A".into());
        assert!(validate("acvpu", None, &a).is_ok());
        assert!(validate("acvpu", Some(""), &a).is_ok());
        assert_eq!(validate("acvpu", Some("1"), &a), Err(RejectReason::Unit));
        let p = Value::Text("lying".into());
        assert!(validate("posture", None, &p).is_ok());
        assert_eq!(
            validate("posture", Some("{posture}"), &p),
            Err(RejectReason::Unit)
        );
    }

    #[test]
    fn value_type_is_checked_per_code() {
        assert_eq!(
            validate("spo2", Some("%"), &Value::Text("95".into())),
            Err(RejectReason::ValueType)
        );
        assert_eq!(
            validate("spo2", Some("%"), &Value::Number(f64::NAN)),
            Err(RejectReason::ValueType)
        );
        assert_eq!(
            validate("pulse", Some("/min"), &Value::Number(f64::INFINITY)),
            Err(RejectReason::ValueType)
        );
        assert_eq!(
            validate("acvpu", None, &Value::Number(1.0)),
            Err(RejectReason::ValueType)
        );
        assert_eq!(
            validate("acvpu", None, &Value::Text("a".into())),
            Err(RejectReason::ValueType)
        );
        assert_eq!(
            validate("acvpu", None, &Value::Text("X".into())),
            Err(RejectReason::ValueType)
        );
        assert_eq!(
            validate("posture", None, &Value::Text("Upright".into())),
            Err(RejectReason::ValueType)
        );
        assert_eq!(
            validate("posture", None, &Value::Text("sitting".into())),
            Err(RejectReason::ValueType)
        );
        for w in ["A", "C", "V", "P", "U"] {
            assert!(
                validate("acvpu", None, &Value::Text(w.into())).is_ok(),
                "{w}"
            );
        }
        for w in ["upright", "lying", "moving"] {
            assert!(
                validate("posture", None, &Value::Text(w.into())).is_ok(),
                "{w}"
            );
        }
    }

    #[test]
    fn spo2_of_250_is_out_of_range() {
        assert_eq!(num(Code::Spo2, 250.0), Err(RejectReason::Range));
    }

    #[test]
    fn every_range_edge_is_inclusive_and_the_next_value_out_is_rejected() {
        // One step beyond each edge, at a resolution finer than any device reports.
        const STEP: f64 = 0.01;
        for c in Code::ALL {
            let Some((lo, hi)) = c.valid_range() else {
                continue;
            };
            assert!(num(c, lo).is_ok(), "{c} low edge {lo}");
            assert!(num(c, hi).is_ok(), "{c} high edge {hi}");
            assert!(num(c, (lo + hi) / 2.0).is_ok(), "{c} mid");
            assert_eq!(
                num(c, lo - STEP),
                Err(RejectReason::Range),
                "{c} below {lo}"
            );
            assert_eq!(
                num(c, hi + STEP),
                Err(RejectReason::Range),
                "{c} above {hi}"
            );
        }
    }

    #[test]
    fn documented_ranges_are_exactly_these() {
        let table = [
            (Code::Spo2, 20.0, 100.0),
            (Code::Pulse, 20.0, 300.0),
            (Code::RespRate, 1.0, 80.0),
            (Code::Systolic, 40.0, 300.0),
            (Code::Diastolic, 10.0, 200.0),
            (Code::Temp, 25.0, 45.0),
            (Code::SkinTemp, 15.0, 45.0),
            (Code::Pef, 20.0, 1000.0),
            (Code::Fev1, 0.1, 10.0),
            (Code::O2Flow, 0.0, 60.0),
            (Code::Weight, 0.5, 500.0),
        ];
        for (c, lo, hi) in table {
            assert_eq!(c.valid_range(), Some((lo, hi)), "{c}");
        }
        assert_eq!(num(Code::Spo2, 100.5), Err(RejectReason::Range));
        assert_eq!(num(Code::Spo2, 19.0), Err(RejectReason::Range));
        assert_eq!(num(Code::O2Flow, -0.5), Err(RejectReason::Range));
        assert!(num(Code::O2Flow, 0.0).is_ok());
    }

    #[test]
    fn json_numbers_and_strings_deserialise_into_value() {
        let v: Value = serde_json::from_str("94").unwrap();
        assert_eq!(v, Value::Number(94.0));
        let v: Value = serde_json::from_str("37.25").unwrap();
        assert_eq!(v, Value::Number(37.25));
        let v: Value = serde_json::from_str("\"A\"").unwrap();
        assert_eq!(v, Value::Text("A".into()));
        assert_eq!(
            serde_json::to_string(&Value::Text("V".into())).unwrap(),
            "\"V\""
        );
    }

    #[test]
    fn reject_reasons_have_stable_words() {
        assert_eq!(RejectReason::UnknownCode.as_str(), "unknown_code");
        assert_eq!(RejectReason::Unit.as_str(), "unit");
        assert_eq!(RejectReason::Range.as_str(), "range");
        assert_eq!(RejectReason::ValueType.as_str(), "value_type");
    }

    #[test]
    fn a_valid_observation_keeps_code_and_value() {
        let o = num(Code::Temp, 37.2).unwrap();
        assert_eq!(o.code, Code::Temp);
        assert_eq!(o.value.as_number(), Some(37.2));
    }
}
