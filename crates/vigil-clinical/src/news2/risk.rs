//! Clinical risk, response and minimum monitoring frequency from a NEWS2 total
//! (RCP NEWS2 2017, Charts 3 and 4). The highest applicable row wins.
//!
//! | NEWS2 | risk | response | minimum monitoring |
//! |---|---|---|---|
//! | 0 | low | routine | 12-hourly |
//! | 1–4 | low | ward-based assessment | 4–6-hourly |
//! | a 3 in any single parameter (total 3–4) | low-medium | urgent ward-based response | hourly |
//! | 5–6 | medium | urgent response (key threshold) | hourly |
//! | ≥7 | high | emergency response | continuous |

use serde::{Deserialize, Serialize};

/// Clinical risk. Ordered: `Low < LowMedium < Medium < High`. Serialises as
/// `low`, `low-medium`, `medium`, `high` (also the alert severity words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    /// Total 0–4 with no single-parameter 3.
    Low,
    /// A 3 in any single parameter, total below 5.
    LowMedium,
    /// Total 5–6.
    Medium,
    /// Total 7 or more.
    High,
}

impl Risk {
    /// `low`, `low-medium`, `medium` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::LowMedium => "low-medium",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// Clinical response (Chart 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    /// Total 0: continue routine monitoring.
    Routine,
    /// Total 1–4: assessment by a registered nurse.
    WardBasedAssessment,
    /// A single-parameter 3: urgent ward-based response.
    UrgentWardBasedResponse,
    /// Total 5–6 (key threshold): urgent review by a clinician competent in
    /// acute illness.
    UrgentResponse,
    /// Total ≥7: emergency assessment by a critical-care team.
    EmergencyResponse,
}

/// Minimum monitoring frequency (Chart 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Monitoring {
    /// Total 0: at least every 12 hours.
    #[serde(rename = "12-hourly")]
    TwelveHourly,
    /// Total 1–4: at least every 4–6 hours.
    #[serde(rename = "4-6-hourly")]
    FourToSixHourly,
    /// Single-parameter 3, or total 5–6: at least hourly.
    #[serde(rename = "hourly")]
    Hourly,
    /// Total ≥7: continuous monitoring of vital signs.
    #[serde(rename = "continuous")]
    Continuous,
}

impl Monitoring {
    /// The longest gap allowed between full sets of observations (the lower
    /// frequency of a range, so 6 h for "4–6-hourly"); `None` for continuous.
    pub fn max_interval(self) -> Option<chrono::Duration> {
        match self {
            Monitoring::TwelveHourly => Some(chrono::Duration::hours(12)),
            Monitoring::FourToSixHourly => Some(chrono::Duration::hours(6)),
            Monitoring::Hourly => Some(chrono::Duration::hours(1)),
            Monitoring::Continuous => None,
        }
    }
}

/// Risk from a total and whether any single parameter scored 3.
pub fn risk(total: u8, red: bool) -> Risk {
    match total {
        7.. => Risk::High,
        5..=6 => Risk::Medium,
        _ if red => Risk::LowMedium,
        _ => Risk::Low,
    }
}

/// Clinical response for a total and whether any single parameter scored 3.
pub fn response(total: u8, red: bool) -> Response {
    match total {
        7.. => Response::EmergencyResponse,
        5..=6 => Response::UrgentResponse,
        _ if red => Response::UrgentWardBasedResponse,
        1..=4 => Response::WardBasedAssessment,
        0 => Response::Routine,
    }
}

/// Minimum monitoring frequency for a total and whether any single parameter
/// scored 3.
pub fn monitoring(total: u8, red: bool) -> Monitoring {
    match total {
        7.. => Monitoring::Continuous,
        5..=6 => Monitoring::Hourly,
        _ if red => Monitoring::Hourly,
        1..=4 => Monitoring::FourToSixHourly,
        0 => Monitoring::TwelveHourly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_rows_of_chart_3_with_highest_row_winning() {
        let table = [
            (
                0,
                false,
                Risk::Low,
                Response::Routine,
                Monitoring::TwelveHourly,
            ),
            (
                1,
                false,
                Risk::Low,
                Response::WardBasedAssessment,
                Monitoring::FourToSixHourly,
            ),
            (
                4,
                false,
                Risk::Low,
                Response::WardBasedAssessment,
                Monitoring::FourToSixHourly,
            ),
            (
                3,
                true,
                Risk::LowMedium,
                Response::UrgentWardBasedResponse,
                Monitoring::Hourly,
            ),
            (
                4,
                true,
                Risk::LowMedium,
                Response::UrgentWardBasedResponse,
                Monitoring::Hourly,
            ),
            (
                5,
                false,
                Risk::Medium,
                Response::UrgentResponse,
                Monitoring::Hourly,
            ),
            (
                5,
                true,
                Risk::Medium,
                Response::UrgentResponse,
                Monitoring::Hourly,
            ),
            (
                6,
                true,
                Risk::Medium,
                Response::UrgentResponse,
                Monitoring::Hourly,
            ),
            (
                7,
                false,
                Risk::High,
                Response::EmergencyResponse,
                Monitoring::Continuous,
            ),
            (
                7,
                true,
                Risk::High,
                Response::EmergencyResponse,
                Monitoring::Continuous,
            ),
            (
                20,
                true,
                Risk::High,
                Response::EmergencyResponse,
                Monitoring::Continuous,
            ),
        ];
        for (total, red, r, resp, mon) in table {
            assert_eq!(risk(total, red), r, "{total} {red}");
            assert_eq!(response(total, red), resp, "{total} {red}");
            assert_eq!(monitoring(total, red), mon, "{total} {red}");
        }
    }

    #[test]
    fn risk_words_are_the_contract_words() {
        for (r, w) in [
            (Risk::Low, "low"),
            (Risk::LowMedium, "low-medium"),
            (Risk::Medium, "medium"),
            (Risk::High, "high"),
        ] {
            assert_eq!(r.as_str(), w);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{w}\""));
        }
        assert!(
            Risk::Low < Risk::LowMedium
                && Risk::LowMedium < Risk::Medium
                && Risk::Medium < Risk::High
        );
        assert_eq!(
            serde_json::to_string(&Monitoring::FourToSixHourly).unwrap(),
            "\"4-6-hourly\""
        );
    }
}
