//! A ward's activity over a period, for the ward manager: how many people
//! it held and for how long, and how fast its alerts were answered. The
//! figures a virtual ward reports (NHS England's virtual ward capacity and
//! occupancy collection counts occupancy, admissions and discharges) and
//! the ones its clinical lead watches (time to acknowledge). Counts only:
//! no patient is named.
//!
//! `GET /api/v1/wards/{id}/report?from=&to=`. The figures are computed by
//! [`build`], a pure function of the ward's stays and alert courses.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use vigil_store::{AlertCourse, Stay};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Id};
use crate::openapi::ErrorBody;

/// The period when none is given: the last week.
const DEFAULT_DAYS: i64 = 7;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/wards/{id}/report", get(report))
        .route("/api/v1/wards/{id}/report.csv", get(report_csv))
}

/// How many, and the middle and the slow end of them.
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Spread {
    pub count: usize,
    /// The median (`null` with none).
    pub median: Option<f64>,
    /// The 90th centile, nearest rank (`null` with none).
    pub p90: Option<f64>,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n == 0 {
            return Spread::default();
        }
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        // Nearest rank: the smallest value with at least 90 % at or below.
        let rank = (n * 9).div_ceil(10).max(1);
        Spread {
            count: n,
            median: Some(round2(median)),
            p90: Some(round2(values[rank - 1])),
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Who the ward held.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct Patients {
    /// On the ward when the period began.
    pub at_start: usize,
    /// On the ward when it ended.
    pub at_end: usize,
    /// Stays begun in the period (a person admitted again counts again).
    pub admitted: usize,
    /// Stays ended in the period.
    pub discharged: usize,
    /// Days of stay within the period, summed over everyone (a virtual
    /// ward's occupied bed-days).
    pub bed_days: f64,
    /// The mean number on the ward over the period: bed-days over days.
    pub mean_occupancy: f64,
    /// Length of the stays that ended in the period, in days.
    pub length_of_stay_days: Spread,
}

/// How the ward's alerts were answered.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct Alerts {
    /// Alerts Vigil raised in the period (every figure below is of these;
    /// an alert raised before the period is in an earlier period's report).
    pub raised: usize,
    /// Those, by the highest severity each reached.
    pub by_severity: BTreeMap<String, usize>,
    /// Minutes from raised to first acknowledged, for those acknowledged
    /// by the period's end.
    pub minutes_to_acknowledge: Spread,
    /// Not acknowledged by the period's end: resolved without it, or not yet.
    pub never_acknowledged: usize,
    /// Escalated by the period's end, by a clinician or the timer.
    pub escalated: usize,
    /// Escalated by the timer: nobody acknowledged them in time.
    pub escalated_by_timer: usize,
    /// Of those raised in the period, not resolved by its end.
    pub live_at_end: usize,
    /// Of those raised in the period, how the ones resolved by its end were
    /// resolved, by outcome.
    pub outcomes: BTreeMap<String, usize>,
}

/// A ward's activity from `from` to `to`.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct Report {
    pub ward_id: i64,
    pub ward: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub patients: Patients,
    pub alerts: Alerts,
}

fn days(d: Duration) -> f64 {
    d.num_seconds() as f64 / 86_400.0
}

/// The report of `stays` (those overlapping the period) and `alerts`
/// (those raised in it), from `from` to `to`.
pub fn build(
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    stays: &[Stay],
    alerts: &[AlertCourse],
) -> (Patients, Alerts) {
    let on_at =
        |t: DateTime<Utc>, s: &Stay| s.admitted_at <= t && s.discharged_at.is_none_or(|d| d > t);
    let within = |t: DateTime<Utc>| t >= from && t <= to;
    let bed_days: f64 = stays
        .iter()
        .map(|s| {
            let start = s.admitted_at.max(from);
            let end = s.discharged_at.unwrap_or(to).min(to);
            days((end - start).max(Duration::zero()))
        })
        .sum();
    let period = days(to - from);
    let patients = Patients {
        at_start: stays.iter().filter(|s| on_at(from, s)).count(),
        at_end: stays.iter().filter(|s| on_at(to, s)).count(),
        admitted: stays.iter().filter(|s| within(s.admitted_at)).count(),
        discharged: stays
            .iter()
            .filter(|s| s.discharged_at.is_some_and(within))
            .count(),
        bed_days: round2(bed_days),
        mean_occupancy: if period > 0.0 {
            round2(bed_days / period)
        } else {
            0.0
        },
        length_of_stay_days: Spread::of(
            stays
                .iter()
                .filter_map(|s| {
                    s.discharged_at
                        .filter(|d| within(*d))
                        .map(|d| days(d - s.admitted_at))
                })
                .collect(),
        ),
    };
    // Only what had happened by the period's end: an alert acknowledged
    // after it was unacknowledged then.
    let by_end = |t: Option<DateTime<Utc>>| t.filter(|t| *t <= to);
    let mut by_severity = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for a in alerts {
        *by_severity.entry(a.severity.clone()).or_insert(0) += 1;
        if let (Some(r), Some(o)) = (a.resolved, &a.outcome)
            && within(r)
        {
            *outcomes.entry(o.clone()).or_insert(0) += 1;
        }
    }
    let alerts = Alerts {
        raised: alerts.len(),
        by_severity,
        minutes_to_acknowledge: Spread::of(
            alerts
                .iter()
                .filter_map(|a| {
                    by_end(a.acknowledged).map(|k| (k - a.raised).num_seconds() as f64 / 60.0)
                })
                .collect(),
        ),
        never_acknowledged: alerts
            .iter()
            .filter(|a| by_end(a.acknowledged).is_none())
            .count(),
        escalated: alerts
            .iter()
            .filter(|a| by_end(a.escalated).is_some())
            .count(),
        escalated_by_timer: alerts
            .iter()
            .filter(|a| a.escalated_by_timer && by_end(a.escalated).is_some())
            .count(),
        live_at_end: alerts
            .iter()
            .filter(|a| a.resolved.is_none_or(|r| r > to))
            .count(),
        outcomes,
    };
    (patients, alerts)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Period {
    /// RFC 3339; default: a week before `to`
    from: Option<DateTime<Utc>>,
    /// RFC 3339; default (and at the latest): now
    to: Option<DateTime<Utc>>,
}

/// `GET /api/v1/wards/{id}/report`: the ward's activity over a period.
#[utoipa::path(
    get, path = "/api/v1/wards/{id}/report", tag = "wards",
    params(("id" = i64, Path, description = "Ward id"), Period),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The ward's activity: counts only, no patient named", body = Report),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "Not one of your wards", body = ErrorBody),
        (status = 422, description = "A bad period: `from` not before `to` (a `to` in the future is now)", body = ErrorBody),
    )
)]
pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Id(ward_id): Id,
    q: Result<Query<Period>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    read(&state, &caller, ward_id, q, "json").await.map(Json)
}

/// `GET /api/v1/wards/{id}/report.csv`: the same report as a CSV file to
/// download: a header row and one row of figures, the same columns in the
/// same order every time, so that a month's row can be put under the last
/// month's in a spreadsheet ([`csv`]).
#[utoipa::path(
    get, path = "/api/v1/wards/{id}/report.csv", tag = "wards",
    params(("id" = i64, Path, description = "Ward id"), Period),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The report as CSV (RFC 4180): a header row and one row of figures", content_type = "text/csv", body = String),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "Not one of your wards", body = ErrorBody),
        (status = 422, description = "A bad period: `from` not before `to` (a `to` in the future is now)", body = ErrorBody),
    )
)]
pub(crate) async fn report_csv(
    State(state): State<AppState>,
    caller: Caller,
    Id(ward_id): Id,
    q: Result<Query<Period>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let r = read(&state, &caller, ward_id, q, "csv").await?;
    // The ward by id, not by name: a name is the admins' to choose, and
    // goes into the file, not its header.
    let file = format!(
        "attachment; filename=\"ward-{}-report-{}-to-{}.csv\"",
        r.ward_id,
        r.from.format("%Y-%m-%dT%H%MZ"),
        r.to.format("%Y-%m-%dT%H%MZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        csv(&r),
    )
        .into_response())
}

/// The report of a ward the caller sees, audited (`ward.report`, with the
/// format asked for).
async fn read(
    state: &AppState,
    caller: &Caller,
    ward_id: i64,
    q: Result<Query<Period>, axum::extract::rejection::QueryRejection>,
    format: &str,
) -> Result<Report, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    if !caller.sees_ward(ward_id) {
        return Err(ApiError::NotFound("ward"));
    }
    // A period ending in the future ends now: nothing has happened since.
    let now = Utc::now();
    let to = q.to.map_or(now, |t| t.min(now));
    let from = q.from.unwrap_or(to - Duration::days(DEFAULT_DAYS));
    if from >= to {
        return Err(ApiError::Invalid(
            "from: must be before to (and before now)".into(),
        ));
    }
    let ward = crate::admin::wards_of(state.store.as_ref(), &[ward_id])
        .await?
        .pop()
        .ok_or(ApiError::NotFound("ward"))?;
    let stays = state.store.ward_stays(ward_id, from, to).await?;
    let courses = state.store.ward_alert_courses(ward_id, from, to).await?;
    let (patients, alerts) = build((from, to), &stays, &courses);
    crate::audit::record(
        state,
        caller,
        "ward.report",
        None,
        serde_json::json!({"ward": ward_id, "from": from, "to": to, "format": format}),
    )
    .await?;
    Ok(Report {
        ward_id,
        ward: ward.name,
        from,
        to,
        patients,
        alerts,
    })
}

/// The severities, highest first: a column each in the CSV.
const SEVERITIES: [&str; 4] = ["high", "medium", "low-medium", "low"];

/// The outcomes a resolved alert may have: a clinician's
/// ([`crate::alerts::OUTCOMES`]) and the system's own.
fn known_outcomes() -> impl Iterator<Item = &'static str> {
    crate::alerts::OUTCOMES.into_iter().chain([
        vigil_store::DATA_RESUMED,
        vigil_store::DEVICE_UNASSIGNED,
        vigil_store::DISCHARGED,
    ])
}

/// The report as CSV (RFC 4180, CRLF line ends): a header row, then one row
/// of figures. Every known severity and outcome has its column, 0 when
/// none, so the columns are the same in every report; an outcome Vigil
/// does not know of (none today) gets a column of its own at the end
/// rather than going uncounted. A figure of no value (a median of no
/// stays) is an empty field, never 0. The ward's name, the one text field,
/// is quoted, and one that begins as a spreadsheet formula would
/// (`=`, `+`, `-`, `@`) is written after an apostrophe (OWASP's CSV
/// injection advice): a name is an admin's to choose, and a file opened
/// in a spreadsheet must not run it.
pub fn csv(r: &Report) -> String {
    let p = &r.patients;
    let a = &r.alerts;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut cols: Vec<(String, String)> = vec![
        ("ward_id".into(), r.ward_id.to_string()),
        ("ward".into(), text_field(&r.ward)),
        (
            "from".into(),
            r.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        (
            "to".into(),
            r.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ("patients_at_start".into(), p.at_start.to_string()),
        ("patients_at_end".into(), p.at_end.to_string()),
        ("admitted".into(), p.admitted.to_string()),
        ("discharged".into(), p.discharged.to_string()),
        ("bed_days".into(), p.bed_days.to_string()),
        ("mean_occupancy".into(), p.mean_occupancy.to_string()),
        (
            "stays_ended".into(),
            p.length_of_stay_days.count.to_string(),
        ),
        (
            "length_of_stay_days_median".into(),
            opt(p.length_of_stay_days.median),
        ),
        (
            "length_of_stay_days_p90".into(),
            opt(p.length_of_stay_days.p90),
        ),
        ("alerts_raised".into(), a.raised.to_string()),
    ];
    for s in SEVERITIES {
        let n = a.by_severity.get(s).copied().unwrap_or(0);
        cols.push((format!("alerts_{}", s.replace('-', "_")), n.to_string()));
    }
    cols.extend([
        (
            "alerts_acknowledged".into(),
            a.minutes_to_acknowledge.count.to_string(),
        ),
        (
            "minutes_to_acknowledge_median".into(),
            opt(a.minutes_to_acknowledge.median),
        ),
        (
            "minutes_to_acknowledge_p90".into(),
            opt(a.minutes_to_acknowledge.p90),
        ),
        (
            "never_acknowledged".into(),
            a.never_acknowledged.to_string(),
        ),
        ("escalated".into(), a.escalated.to_string()),
        (
            "escalated_by_timer".into(),
            a.escalated_by_timer.to_string(),
        ),
        ("live_at_end".into(), a.live_at_end.to_string()),
    ]);
    for o in known_outcomes() {
        let n = a.outcomes.get(o).copied().unwrap_or(0);
        cols.push((format!("resolved_{}", o.replace('-', "_")), n.to_string()));
    }
    for (o, n) in &a.outcomes {
        if !known_outcomes().any(|k| k == o) {
            cols.push((
                format!(
                    "resolved_{}",
                    o.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                ),
                n.to_string(),
            ));
        }
    }
    let (names, values): (Vec<_>, Vec<_>) = cols.into_iter().unzip();
    format!("{}\r\n{}\r\n", names.join(","), values.join(","))
}

/// A text field, quoted (RFC 4180: a quote doubled), and kept from being
/// read as a formula.
fn text_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    format!("\"{}\"", v.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(day: i64, hour: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
            + Duration::days(day)
            + Duration::hours(hour)
    }

    fn stay(a: DateTime<Utc>, d: Option<DateTime<Utc>>) -> Stay {
        Stay {
            admitted_at: a,
            discharged_at: d,
        }
    }

    fn course(raised: DateTime<Utc>, ack_min: Option<i64>, severity: &str) -> AlertCourse {
        AlertCourse {
            severity: severity.into(),
            raised,
            acknowledged: ack_min.map(|m| raised + Duration::minutes(m)),
            escalated: None,
            escalated_by_timer: false,
            resolved: None,
            outcome: None,
        }
    }

    #[test]
    fn stays_give_occupancy_admissions_discharges_and_length_of_stay() {
        // A week: day 0 to day 7.
        let stays = [
            stay(t(-3, 0), None),          // there throughout: 7 days
            stay(t(-2, 0), Some(t(2, 0))), // 2 days in the week, a stay of 4
            stay(t(1, 0), Some(t(4, 12))), // 3.5 days, a stay of 3.5
            stay(t(5, 0), None),           // 2 days, still there
        ];
        let (p, _) = build((t(0, 0), t(7, 0)), &stays, &[]);
        assert_eq!((p.at_start, p.at_end), (2, 2));
        assert_eq!((p.admitted, p.discharged), (2, 2));
        assert_eq!(p.bed_days, 14.5);
        assert_eq!(p.mean_occupancy, round2(14.5 / 7.0));
        assert_eq!(
            p.length_of_stay_days,
            Spread {
                count: 2,
                median: Some(3.75),
                p90: Some(4.0)
            }
        );
    }

    #[test]
    fn alerts_give_time_to_acknowledge_escalations_and_outcomes() {
        let mut late = course(t(1, 0), Some(40), "medium");
        late.escalated = Some(t(1, 0) + Duration::minutes(15));
        late.escalated_by_timer = true;
        let mut resolved = course(t(2, 0), Some(4), "high");
        resolved.resolved = Some(t(2, 1));
        resolved.outcome = Some("advice-given".into());
        let mut after = course(t(3, 0), None, "low");
        after.resolved = Some(t(9, 0)); // resolved after the period
        after.outcome = Some("reviewed-no-action".into());
        // Acknowledged, escalated and resolved only after the period.
        let mut later = course(t(6, 23), Some(120), "low");
        later.escalated = Some(t(7, 1));
        later.escalated_by_timer = true;
        let alerts = [
            later,
            course(t(0, 1), Some(2), "medium"),
            late,
            resolved,
            after,
            course(t(4, 0), None, "low-medium"),
        ];
        let (_, a) = build((t(0, 0), t(7, 0)), &[], &alerts);
        assert_eq!(a.raised, 6);
        assert_eq!(
            a.by_severity,
            BTreeMap::from([
                ("high".to_string(), 1),
                ("low".to_string(), 2),
                ("low-medium".to_string(), 1),
                ("medium".to_string(), 2)
            ])
        );
        assert_eq!(
            a.minutes_to_acknowledge,
            Spread {
                count: 3,
                median: Some(4.0),
                p90: Some(40.0)
            }
        );
        assert_eq!(
            a.never_acknowledged, 3,
            "one acknowledged only after the end"
        );
        assert_eq!((a.escalated, a.escalated_by_timer), (1, 1));
        assert_eq!(
            a.live_at_end, 5,
            "only the one resolved in the period is not live"
        );
        assert_eq!(
            a.outcomes,
            BTreeMap::from([("advice-given".to_string(), 1)])
        );
    }

    #[test]
    fn a_spread_of_nothing_says_so_and_the_p90_is_a_value_seen() {
        assert_eq!(Spread::of(vec![]), Spread::default());
        let s = Spread::of((1..=10).map(f64::from).collect());
        assert_eq!((s.median, s.p90), (Some(5.5), Some(9.0)));
        let one = Spread::of(vec![7.0]);
        assert_eq!((one.median, one.p90), (Some(7.0), Some(7.0)));
    }

    /// The CSV's header and row, as a map of column to field.
    fn csv_columns(r: &Report) -> Vec<(String, String)> {
        let text = csv(r);
        assert!(text.ends_with("\r\n"), "{text:?}");
        let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
        assert_eq!(lines.len(), 2, "a header and a row: {text:?}");
        // No field here holds a comma but the quoted name, split on its own.
        let (name_start, name_end) = (
            lines[1].find('"').expect("quoted"),
            lines[1].rfind('"').expect("quoted"),
        );
        let name = &lines[1][name_start..=name_end];
        let row = lines[1].replace(name, "NAME");
        let values: Vec<String> = row
            .split(',')
            .map(|v| {
                if v == "NAME" {
                    name.to_string()
                } else {
                    v.to_string()
                }
            })
            .collect();
        let names: Vec<String> = lines[0].split(',').map(str::to_string).collect();
        assert_eq!(names.len(), values.len(), "{text:?}");
        names.into_iter().zip(values).collect()
    }

    #[test]
    fn the_csv_has_the_same_columns_every_time_and_every_figure() {
        let mut resolved = course(t(1, 0), Some(4), "high");
        resolved.resolved = Some(t(1, 2));
        resolved.outcome = Some("advice-given".into());
        let mut odd = course(t(2, 0), None, "medium");
        odd.resolved = Some(t(2, 1));
        odd.outcome = Some("a new one".into());
        let (patients, alerts) = build(
            (t(0, 0), t(7, 0)),
            &[stay(t(-3, 0), None)],
            &[resolved, odd],
        );
        let report = |ward: &str, patients, alerts| Report {
            ward_id: 3,
            ward: ward.into(),
            from: t(0, 0),
            to: t(7, 0),
            patients,
            alerts,
        };
        let busy = csv_columns(&report("Ward 7, \"East\"", patients, alerts));
        let get = |cols: &[(String, String)], k: &str| {
            cols.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no column {k}: {cols:?}"))
        };
        assert_eq!(get(&busy, "ward"), "\"Ward 7, \"\"East\"\"\"");
        assert_eq!(get(&busy, "from"), "2026-11-01T00:00:00Z");
        assert_eq!(get(&busy, "bed_days"), "7");
        assert_eq!(get(&busy, "alerts_raised"), "2");
        assert_eq!(get(&busy, "alerts_high"), "1");
        assert_eq!(get(&busy, "alerts_low_medium"), "0", "a severity with none");
        assert_eq!(get(&busy, "minutes_to_acknowledge_median"), "4");
        assert_eq!(get(&busy, "resolved_advice_given"), "1");
        assert_eq!(get(&busy, "resolved_discharged"), "0");
        assert_eq!(
            busy.last().map(|(n, v)| (n.as_str(), v.as_str())),
            Some(("resolved_a_new_one", "1")),
            "an outcome not known of is counted, at the end"
        );
        assert_eq!(
            get(&busy, "length_of_stay_days_median"),
            "",
            "no stay ended: no median, not 0"
        );

        // A quiet week: the same columns in the same order (but the unknown outcome's).
        let (patients, alerts) = build((t(0, 0), t(7, 0)), &[], &[]);
        let quiet = csv_columns(&report("=HYPERLINK(\"x\")", patients, alerts));
        let names = |c: &[(String, String)]| c.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&quiet), names(&busy[..busy.len() - 1]));
        assert_eq!(
            get(&quiet, "ward"),
            "\"'=HYPERLINK(\"\"x\"\")\"",
            "not read as a formula"
        );
    }
}
