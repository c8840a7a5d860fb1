//! `vigil score` lines (CONTRACTS.md §4): one JSON observation set in, one
//! JSON NEWS2 result out, for audit and validation against external vectors.
//!
//! Input: a JSON object with any of these keys (all optional; `null` is the
//! same as absent):
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `resp_rate` | number | respiration rate, /min |
//! | `spo2` | number, 0–100 | SpO2, % |
//! | `spo2_scale` | `1` or `2` | SpO2 scale; absent means scale 1 (the NEWS2 default) |
//! | `o2` | bool | on supplemental oxygen |
//! | `systolic` | number | systolic BP, mmHg |
//! | `pulse` | number | pulse, /min |
//! | `acvpu` | `"A"` `"C"` `"V"` `"P"` `"U"` | consciousness |
//! | `temp` | number | temperature, °C |
//!
//! Output, one line, keys in this order:
//! `{"total":0,"risk":"low","partial":false,"missing":[],"subscores":{"resp_rate":0,...}}`
//! where `subscores` has a key for each row present (chart order) and
//! `missing` lists the absent rows, in chart order, by the same keys
//! (`resp_rate`, `spo2`, `o2`, `systolic`, `pulse`, `acvpu`, `temp`).
//!
//! Decisions (see `docs/clinical.md`):
//! - An absent `o2` is a missing row like any other: it is listed in
//!   `missing`, the result is partial, and it adds nothing. It is **not**
//!   assumed to be air. On scale 2, SpO2 ≥ 93 is then looked up as on air
//!   (0), the lower bound, consistent with a partial total being a lower bound.
//! - An absent `spo2_scale` is scale 1, not a missing row (it is a setting).
//! - Numbers are scored as the chart prints them (any non-negative value
//!   falls in some band); they are not checked against the ingest validity
//!   ranges. Values that cannot be a measurement at all are errors: a
//!   negative number, SpO2 above 100.
//! - Anything else malformed (not JSON, not an object, an unknown key, a
//!   wrong type, an empty line) gives `{"error":"..."}` on that line, so
//!   output stays aligned line-for-line with input.

use serde::Serialize;

use crate::news2::{
    self, Acvpu, Measured, News2Inputs, News2Score, OxygenStatus, Parameter, Risk, Spo2Scale,
    Spo2ScaleSetting,
};

/// Why a `vigil score` line could not be scored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The line is JSON but not an object.
    #[error("expected a JSON object")]
    NotAnObject,
    /// A key this contract does not define.
    #[error("unknown key \"{0}\"")]
    UnknownKey(String),
    /// A key with a value of the wrong type or outside its domain.
    #[error("{key}: {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

/// Scores one input line and returns one output line (no trailing newline):
/// the result, or `{"error":"..."}`.
pub fn score_line(line: &str) -> String {
    let out = match parse_line(line) {
        Ok(inputs) => serde_json::to_string(&LineResult::from(&news2::score(&inputs))),
        Err(e) => serde_json::to_string(&LineErrorOut {
            error: e.to_string(),
        }),
    };
    // Serialising these plain structs cannot fail; keep the line shape anyway.
    out.unwrap_or_else(|_| r#"{"error":"internal: could not serialise result"}"#.to_string())
}

/// Parses one input line into NEWS2 inputs.
pub fn parse_line(line: &str) -> Result<News2Inputs, LineError> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| LineError::Json(e.to_string()))?;
    let obj = v.as_object().ok_or(LineError::NotAnObject)?;
    let mut inputs = News2Inputs::default();
    for (key, value) in obj {
        if value.is_null() {
            // null is the same as absent, for every known key
            if !KEYS.contains(&key.as_str()) {
                return Err(LineError::UnknownKey(key.clone()));
            }
            continue;
        }
        match key.as_str() {
            "resp_rate" => inputs.resp_rate = Some(Measured::new(number("resp_rate", value)?)),
            "spo2" => {
                let n = number("spo2", value)?;
                if n > 100.0 {
                    return Err(LineError::BadValue {
                        key: "spo2",
                        expected: "a percentage, 0 to 100",
                    });
                }
                inputs.spo2 = Some(Measured::new(n));
            }
            "spo2_scale" => {
                let scale = value
                    .as_f64()
                    .and_then(|n| {
                        if n == 1.0 {
                            Some(Spo2Scale::One)
                        } else if n == 2.0 {
                            Some(Spo2Scale::Two)
                        } else {
                            None
                        }
                    })
                    .ok_or(LineError::BadValue {
                        key: "spo2_scale",
                        expected: "1 or 2",
                    })?;
                inputs.spo2_scale = Spo2ScaleSetting::scale(scale);
            }
            "o2" => {
                let on = value.as_bool().ok_or(LineError::BadValue {
                    key: "o2",
                    expected: "true or false",
                })?;
                let status = if on {
                    OxygenStatus::OXYGEN
                } else {
                    OxygenStatus::AIR
                };
                inputs.oxygen = Some(Measured::new(status));
            }
            "systolic" => inputs.systolic = Some(Measured::new(number("systolic", value)?)),
            "pulse" => inputs.pulse = Some(Measured::new(number("pulse", value)?)),
            "acvpu" => {
                let level = value
                    .as_str()
                    .and_then(Acvpu::parse)
                    .ok_or(LineError::BadValue {
                        key: "acvpu",
                        expected: "one of \"A\", \"C\", \"V\", \"P\", \"U\"",
                    })?;
                inputs.consciousness = Some(Measured::new(level));
            }
            "temp" => inputs.temperature = Some(Measured::new(number("temp", value)?)),
            _ => return Err(LineError::UnknownKey(key.clone())),
        }
    }
    Ok(inputs)
}

const KEYS: [&str; 8] = [
    "resp_rate",
    "spo2",
    "spo2_scale",
    "o2",
    "systolic",
    "pulse",
    "acvpu",
    "temp",
];

fn number(key: &'static str, v: &serde_json::Value) -> Result<f64, LineError> {
    v.as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or(LineError::BadValue {
            key,
            expected: "a non-negative number",
        })
}

#[derive(Serialize)]
struct LineErrorOut {
    error: String,
}

/// The output line.
#[derive(Serialize)]
struct LineResult {
    total: u8,
    risk: Risk,
    partial: bool,
    missing: Vec<Parameter>,
    subscores: LineSubscores,
}

/// Sub-scores in chart order, only for rows present.
#[derive(Serialize, Default)]
struct LineSubscores {
    #[serde(skip_serializing_if = "Option::is_none")]
    resp_rate: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spo2: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    o2: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    systolic: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pulse: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acvpu: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temp: Option<u8>,
}

impl From<&News2Score> for LineResult {
    fn from(r: &News2Score) -> Self {
        let mut subs = LineSubscores::default();
        for s in &r.subscores {
            let slot = match s.parameter {
                Parameter::RespRate => &mut subs.resp_rate,
                Parameter::Spo2 => &mut subs.spo2,
                Parameter::Oxygen => &mut subs.o2,
                Parameter::Systolic => &mut subs.systolic,
                Parameter::Pulse => &mut subs.pulse,
                Parameter::Consciousness => &mut subs.acvpu,
                Parameter::Temperature => &mut subs.temp,
            };
            *slot = Some(s.score);
        }
        LineResult {
            // news2::score always sets these; a line is never "not applicable".
            total: r.total.unwrap_or(0),
            risk: r.risk.unwrap_or(Risk::Low),
            partial: r.partial,
            missing: r.missing.clone(),
            subscores: subs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as J, json};

    fn run(line: &str) -> J {
        serde_json::from_str(&score_line(line)).unwrap()
    }

    #[test]
    fn the_contract_example_scores_0_low_complete() {
        let out = score_line(
            r#"{"resp_rate":18,"spo2":96,"spo2_scale":1,"o2":false,"systolic":120,"pulse":80,"acvpu":"A","temp":37.1}"#,
        );
        assert_eq!(
            out,
            r#"{"total":0,"risk":"low","partial":false,"missing":[],"subscores":{"resp_rate":0,"spo2":0,"o2":0,"systolic":0,"pulse":0,"acvpu":0,"temp":0}}"#
        );
        assert!(!out.contains('\n'));
    }

    #[test]
    fn a_high_risk_set() {
        let out = run(
            r#"{"resp_rate":25,"spo2":91,"o2":true,"systolic":90,"pulse":131,"acvpu":"V","temp":39.1}"#,
        );
        assert_eq!(out["total"], 3 + 3 + 2 + 3 + 3 + 3 + 2);
        assert_eq!(out["risk"], "high");
        assert_eq!(out["partial"], false);
    }

    #[test]
    fn clinical_md_rounding_examples() {
        assert_eq!(run(r#"{"temp":35.04}"#)["subscores"]["temp"], 3);
        assert_eq!(run(r#"{"temp":35.05}"#)["subscores"]["temp"], 1);
        assert_eq!(run(r#"{"resp_rate":20.5}"#)["subscores"]["resp_rate"], 2);
    }

    #[test]
    fn missing_keys_are_listed_in_chart_order_and_make_it_partial() {
        let out = run(r#"{"spo2":95,"pulse":80}"#);
        assert_eq!(out["partial"], true);
        assert_eq!(
            out["missing"],
            json!(["resp_rate", "o2", "systolic", "acvpu", "temp"])
        );
        assert_eq!(out["subscores"], json!({"spo2": 1, "pulse": 0}));
        assert_eq!(out["total"], 1);
        assert_eq!(out["risk"], "low");
    }

    #[test]
    fn an_absent_o2_is_missing_and_scale_2_is_then_scored_as_on_air() {
        let out = run(
            r#"{"resp_rate":18,"spo2":97,"spo2_scale":2,"systolic":120,"pulse":80,"acvpu":"A","temp":37.1}"#,
        );
        assert_eq!(out["missing"], json!(["o2"]));
        assert_eq!(out["partial"], true);
        assert_eq!(out["subscores"]["spo2"], 0);
        assert_eq!(out["total"], 0);
    }

    #[test]
    fn scale_2_on_oxygen_and_on_air() {
        let base =
            r#""resp_rate":18,"spo2_scale":2,"systolic":120,"pulse":80,"acvpu":"A","temp":37.1"#;
        let on = |spo2: u32, o2: bool| run(&format!(r#"{{{base},"spo2":{spo2},"o2":{o2}}}"#));
        assert_eq!(on(97, true)["subscores"]["spo2"], 3);
        assert_eq!(on(97, true)["total"], 5);
        assert_eq!(on(97, true)["risk"], "medium");
        assert_eq!(on(97, false)["subscores"]["spo2"], 0);
        assert_eq!(on(93, true)["subscores"]["spo2"], 1);
        assert_eq!(on(95, true)["subscores"]["spo2"], 2);
        assert_eq!(on(88, true)["subscores"]["spo2"], 0);
        assert_eq!(on(83, false)["subscores"]["spo2"], 3);
    }

    #[test]
    fn null_is_absent() {
        let out = run(r#"{"spo2":null,"o2":null,"spo2_scale":null}"#);
        assert_eq!(out["missing"].as_array().map(Vec::len), Some(7));
    }

    #[test]
    fn malformed_lines_give_one_error_object_line() {
        for bad in [
            "",
            "not json",
            "[1,2]",
            "42",
            r#"{"spo2":"96"}"#,
            r#"{"spo2":101}"#,
            r#"{"pulse":-1}"#,
            r#"{"spo2_scale":3}"#,
            r#"{"spo2_scale":"2"}"#,
            r#"{"o2":1}"#,
            r#"{"acvpu":"a"}"#,
            r#"{"acvpu":"X"}"#,
            r#"{"sp02":96}"#,
            r#"{"temp":1e400}"#,
            r#"{"spo2":96"#,
        ] {
            let out = score_line(bad);
            assert!(!out.contains('\n'), "{bad}");
            let v: J = serde_json::from_str(&out).unwrap();
            assert!(v["error"].is_string(), "{bad} gave {out}");
            assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{bad}");
        }
        assert_eq!(
            score_line(r#"{"sp02":96}"#),
            r#"{"error":"unknown key \"sp02\""}"#
        );
    }

    #[test]
    fn an_empty_object_is_partial_with_everything_missing() {
        let out = run("{}");
        assert_eq!(out["total"], 0);
        assert_eq!(out["partial"], true);
        assert_eq!(out["subscores"], json!({}));
    }

    #[test]
    fn every_acvpu_letter_scores() {
        for (l, s) in [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)] {
            let out = run(&format!(r#"{{"acvpu":"{l}"}}"#));
            assert_eq!(out["subscores"]["acvpu"], s, "{l}");
            let risk = if s == 3 { "low-medium" } else { "low" };
            assert_eq!(out["risk"], risk);
        }
    }

    #[test]
    fn every_printed_edge_through_the_json_path() {
        let cases: &[(&str, &str, u8)] = &[
            ("resp_rate", "8", 3),
            ("resp_rate", "9", 1),
            ("resp_rate", "11", 1),
            ("resp_rate", "12", 0),
            ("resp_rate", "20", 0),
            ("resp_rate", "21", 2),
            ("resp_rate", "24", 2),
            ("resp_rate", "25", 3),
            ("spo2", "91", 3),
            ("spo2", "92", 2),
            ("spo2", "93", 2),
            ("spo2", "94", 1),
            ("spo2", "95", 1),
            ("spo2", "96", 0),
            ("systolic", "90", 3),
            ("systolic", "91", 2),
            ("systolic", "100", 2),
            ("systolic", "101", 1),
            ("systolic", "110", 1),
            ("systolic", "111", 0),
            ("systolic", "219", 0),
            ("systolic", "220", 3),
            ("pulse", "40", 3),
            ("pulse", "41", 1),
            ("pulse", "50", 1),
            ("pulse", "51", 0),
            ("pulse", "90", 0),
            ("pulse", "91", 1),
            ("pulse", "110", 1),
            ("pulse", "111", 2),
            ("pulse", "130", 2),
            ("pulse", "131", 3),
            ("temp", "35.0", 3),
            ("temp", "35.1", 1),
            ("temp", "36.0", 1),
            ("temp", "36.1", 0),
            ("temp", "38.0", 0),
            ("temp", "38.1", 1),
            ("temp", "39.0", 1),
            ("temp", "39.1", 2),
        ];
        for (key, value, want) in cases {
            let out = run(&format!(r#"{{"{key}":{value}}}"#));
            assert_eq!(out["subscores"][key], *want, "{key} {value}");
        }
    }

    #[test]
    fn every_hundredth_of_a_degree_from_30_to_45_rounds_half_up_from_json_text() {
        for h in 3000..=4500u32 {
            let text = format!("{}.{:02}", h / 100, h % 100);
            let tenths = i64::from((h + 5) / 10);
            let want = crate::news2::temperature::score(tenths);
            let out = run(&format!(r#"{{"temp":{text}}}"#));
            assert_eq!(out["subscores"]["temp"], want, "temp {text}");
        }
    }

    #[test]
    fn every_half_from_json_text_rounds_up_on_whole_number_rows() {
        for n in 0..=300u32 {
            let below = format!("{n}.49");
            let half = format!("{n}.5");
            for key in ["resp_rate", "systolic", "pulse"] {
                let s =
                    |text: &str| run(&format!(r#"{{"{key}":{text}}}"#))["subscores"][key].clone();
                let score_of = |q: i64| match key {
                    "resp_rate" => crate::news2::resp_rate::score(q),
                    "systolic" => crate::news2::systolic::score(q),
                    _ => crate::news2::pulse::score(q),
                };
                assert_eq!(s(&below), score_of(i64::from(n)), "{key} {below}");
                assert_eq!(s(&half), score_of(i64::from(n) + 1), "{key} {half}");
            }
        }
    }

    #[test]
    fn spo2_scale_accepts_1_0_and_2_0() {
        assert_eq!(
            run(r#"{"spo2":90,"spo2_scale":2.0,"o2":false}"#)["subscores"]["spo2"],
            0
        );
        assert_eq!(run(r#"{"spo2":90,"spo2_scale":1}"#)["subscores"]["spo2"], 3);
    }
}
