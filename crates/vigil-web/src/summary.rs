//! `GET /api/v1/patients/{id}/summary`: one patient's stay as plain text,
//! for a nurse to read out on a call or paste into a referral when the
//! patient is handed on (a 999 call, an admission through the acute
//! medical team, the GP): situation, background and assessment in the
//! order of SBAR, the handover the NHS uses. The recommendation is the
//! clinician's own and is left to them.
//!
//! A virtual ward's nurse is not at the patient's side, so what the
//! hospital team hears of the patient is what the nurse reads out of
//! Vigil. Read off a screen, the escalation plan, a missing row of a
//! partial score or a reading hours old is easy to leave out; here each
//! is a line of its own, in words, with the time of every reading
//! (docs/clinical.md, "A summary for a call or a transfer"; hazard DB-25).
//!
//! [`write`] is pure (the facts and the time in, text out), so what it
//! says is unit-tested line by line; the handler only gathers the facts.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use vigil_clinical::News2Score;
use vigil_clinical::news2::{Monitoring, NotApplicable, Parameter, Response as Chart4};
use vigil_store::{
    AlertRow, AlertStatus, EarlierScore, EpisodeSettings, FollowUp, HistoryPage, NoteRow, ObsValue,
    ObservationQuery, ObservationRow, PatientDetail, ScoreRow,
};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Id};
use crate::openapi::ErrorBody;
use crate::patients::visible_patient;

/// How far back the summary looks for the highest score and for notes.
pub const SUMMARY_SPAN: Duration = Duration::hours(24);

/// One code's readings over the summary's span (the last 24 hours of the
/// stay): what a listener asks next ("and what is their usual?").
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    pub code: String,
    pub low: f64,
    pub high: f64,
    pub count: i64,
}

/// Everything the summary says, gathered by the handler.
pub struct Facts<'a> {
    /// The ward's name.
    pub ward: &'a str,
    /// Who asked for it (their username).
    pub written_for: &'a str,
    pub patient: &'a PatientDetail,
    /// The pathway file's title, if the pathway is loaded.
    pub pathway_title: Option<&'a str>,
    pub settings: &'a EpisodeSettings,
    /// NEWS2 as of `now`.
    pub news2: &'a News2Score,
    /// The score the ward list compares with (24 hours before, else the stay's first).
    pub earlier: Option<&'a EarlierScore>,
    /// The highest stored score of the last 24 hours.
    pub highest: Option<&'a ScoreRow>,
    /// The patient's alerts not yet resolved.
    pub alerts: &'a [AlertRow],
    /// The newest reading of each code.
    pub latest: &'a [ObservationRow],
    /// Notes of the last 24 hours, the newest first.
    pub notes: &'a [NoteRow],
    /// The numeric codes' ranges over the last 24 hours of the stay.
    pub ranges: &'a [Range],
    /// Follow-ups asked for and not yet due, the earliest first.
    pub follow_ups: &'a [FollowUp],
}

/// The summary as text: lines of at most a few hundred characters, each
/// time in UTC with how long before `now` it was.
pub fn write(f: &Facts, now: DateTime<Utc>) -> String {
    let mut s = String::new();
    let p = f.patient;
    let _ = writeln!(s, "Vigil: summary for a call or a transfer");
    let _ = writeln!(
        s,
        "{}. Written {} for {}, from the record as it was then: check the live record before acting on it.",
        f.ward,
        stamp(now),
        f.written_for
    );
    s.push('\n');
    let _ = writeln!(
        s,
        "Patient: {}, NHS number {}",
        p.name,
        nhs_spaced(&p.nhs_number)
    );
    let pathway = match f.pathway_title {
        Some(t) => format!("{t} ({})", f.settings.pathway),
        None => f.settings.pathway.clone(),
    };
    match &p.episode {
        Some(e) => {
            let _ = writeln!(
                s,
                "On the virtual ward since {}, pathway {pathway}",
                at(e.admitted_at, now)
            );
        }
        None => {
            let _ = writeln!(s, "Pathway {pathway}");
        }
    }
    let _ = writeln!(s, "Escalation plan: {}", plan_line(f.settings));
    if let Some(note) = f.settings.escalation_note.as_deref() {
        let _ = writeln!(s, "  Details: {}", one_line(note));
    }
    if let (Some(by), Some(when)) = (
        &f.settings.escalation_set_by,
        f.settings
            .escalation_set_at
            .filter(|_| f.settings.escalation_plan.is_some()),
    ) {
        let _ = writeln!(s, "  Recorded by {by}, {}", at(when, now));
    }

    s.push_str("\nSITUATION\n");
    news2_lines(&mut s, f.news2, now);
    // As on the ward list: none when no reading has come since it (it is
    // the score now).
    let newest = f.latest.iter().map(|o| o.measured_at).max();
    if let Some(e) = f
        .earlier
        .filter(|e| newest.is_some_and(|n| n > e.scored_at))
    {
        let _ = writeln!(
            s,
            "Earlier NEWS2 to compare with: {}, scored {}",
            stored_total(e.total, e.risk.as_deref(), e.partial),
            at(e.scored_at, now)
        );
    }
    if let Some(h) = f.highest {
        let _ = writeln!(
            s,
            "Highest NEWS2 of the last 24 hours: {}, scored {}",
            stored_total(h.total, h.risk.as_deref(), h.partial),
            at(h.scored_at, now)
        );
    }
    if f.alerts.is_empty() {
        let _ = writeln!(s, "Alerts not yet resolved: none");
    } else {
        let _ = writeln!(s, "Alerts not yet resolved ({}):", f.alerts.len());
        for a in f.alerts {
            let _ = writeln!(
                s,
                "  - {} ({} severity, {}), raised {}",
                one_line(&a.message),
                a.severity.as_str(),
                status_word(a.status),
                at(a.raised_at, now)
            );
        }
    }

    if f.follow_ups.is_empty() {
        let _ = writeln!(s, "Follow-ups asked for: none");
    } else {
        let _ = writeln!(s, "Follow-ups asked for ({}):", f.follow_ups.len());
        for u in f.follow_ups {
            let _ = writeln!(
                s,
                "  - due {} ({}): {} (asked for by {})",
                stamp(u.due_at),
                ahead(u.due_at - now),
                one_line(&u.reason),
                u.set_by
            );
        }
    }

    s.push_str("\nBACKGROUND\n");
    let st = f.settings;
    let _ = writeln!(
        s,
        "SpO2 scale: {}",
        match (st.spo2_scale, &st.spo2_scale_set_by, st.spo2_scale_set_at) {
            (2, Some(by), Some(t)) => format!(
                "2 (hypercapnic respiratory failure), recorded by {by}, {}",
                at(t, now)
            ),
            (2, _, _) => "2 (hypercapnic respiratory failure)".to_string(),
            (n, _, _) => format!("{n}"),
        }
    );
    let _ = writeln!(
        s,
        "Air or oxygen: {}",
        recorded(
            st.oxygen
                .map(|o| if o { "on oxygen" } else { "on air" }.to_string()),
            &st.oxygen_set_by,
            st.oxygen_set_at,
            now
        )
    );
    let _ = writeln!(
        s,
        "Consciousness (ACVPU): {}",
        recorded(st.acvpu.clone(), &st.acvpu_set_by, st.acvpu_set_at, now)
    );
    let _ = writeln!(
        s,
        "Observations asked for: {}",
        match st.obs_every_minutes {
            Some(m) => recorded(
                Some(format!("every {}", minutes(m))),
                &st.obs_every_set_by,
                st.obs_every_set_at,
                now
            ),
            None => "as the pathway sets".to_string(),
        }
    );
    let devices: Vec<&str> = p
        .devices
        .iter()
        .filter(|d| d.revoked_at.is_none())
        .map(|d| d.kind.as_str())
        .collect();
    let _ = writeln!(
        s,
        "Devices at home: {}",
        if devices.is_empty() {
            "none".to_string()
        } else {
            devices.join(", ")
        }
    );

    s.push_str("\nASSESSMENT\n");
    if f.news2.not_applicable.is_none() {
        let _ = writeln!(s, "What NEWS2 scored:");
        for sub in &f.news2.subscores {
            let when = sub
                .measured_at
                .map(|t| format!(", {}", at(t, now)))
                .unwrap_or_default();
            let range = range_text(f, param_code(sub.parameter));
            let _ = writeln!(s, "  {}{when}{range}", sub.reason);
        }
        // A stale row is not scored: its reading is given with its age.
        for p in &f.news2.stale {
            let code = param_code(*p);
            match f.latest.iter().find(|o| o.code == code) {
                Some(o) => {
                    let _ = writeln!(
                        s,
                        "  {} {}, {}: too old to count, not scored{}",
                        param_name(*p),
                        value_text(&o.value, o.unit.as_deref()),
                        at(o.measured_at, now),
                        range_text(f, code)
                    );
                }
                None => {
                    let _ = writeln!(s, "  {}: too old to count, not scored", param_name(*p));
                }
            }
        }
        for m in &f.news2.missing {
            let _ = writeln!(s, "  {}: none recorded", param_name(*m));
        }
    }
    let others: Vec<&ObservationRow> = f
        .latest
        .iter()
        .filter(|o| {
            !vigil_clinical::SCORED_CODES
                .iter()
                .any(|c| c.as_str() == o.code)
        })
        .collect();
    if !others.is_empty() {
        let _ = writeln!(s, "Other latest readings:");
        for o in others {
            let _ = writeln!(
                s,
                "  {} {}, {}{}",
                code_name(&o.code),
                value_text(&o.value, o.unit.as_deref()),
                at(o.measured_at, now),
                range_text(f, &o.code)
            );
        }
    }
    if f.notes.is_empty() {
        let _ = writeln!(s, "Notes of the last 24 hours: none");
    } else {
        let _ = writeln!(s, "Notes of the last 24 hours, the newest first:");
        for n in f.notes {
            let _ = writeln!(
                s,
                "  {}, {}: {}",
                at(n.at, now),
                n.author,
                one_line(&n.text)
            );
        }
    }

    s.push_str("\nRECOMMENDATION\nYours to give.\n");
    s
}

fn news2_lines(s: &mut String, n: &News2Score, now: DateTime<Utc>) {
    if let Some(why) = n.not_applicable {
        let _ = writeln!(
            s,
            "NEWS2 now: not applied ({}: NEWS2 is not validated for them)",
            match why {
                NotApplicable::Under16 => "under 16",
                NotApplicable::Pregnant => "pregnant",
            }
        );
        return;
    }
    let total = n.total.unwrap_or(0);
    let risk = n.risk.map(|r| r.as_str()).unwrap_or("unknown");
    let when = n
        .scored_at
        .map(|t| format!(", as of {}", at(t, now)))
        .unwrap_or_default();
    if n.partial {
        let _ = writeln!(
            s,
            "NEWS2 now: at least {total}, {risk} risk at least (partial: a missing or old reading can only add){when}"
        );
        if !n.missing.is_empty() {
            let _ = writeln!(s, "  Missing: {}", names(&n.missing));
        }
        if !n.stale.is_empty() {
            let _ = writeln!(s, "  Too old to count: {}", names(&n.stale));
        }
    } else {
        let _ = writeln!(s, "NEWS2 now: {total}, {risk} risk{when}");
    }
    if n.red_score {
        let _ = writeln!(s, "  A single reading scored 3");
    }
    if let (Some(r), Some(m)) = (n.response, n.monitoring) {
        let _ = writeln!(
            s,
            "  NEWS2's response: {}; observations {}{}",
            response_words(r),
            monitoring_words(m),
            if n.partial {
                " (at least: the score is partial)"
            } else {
                ""
            }
        );
    }
}

/// The code a NEWS2 row reads.
fn param_code(p: Parameter) -> &'static str {
    match p {
        Parameter::Oxygen => "o2_flow",
        other => other.as_str(),
    }
}

/// "; 24 h range 88–95% (12 readings)", or that it was the only one; ""
/// for a code with no range (text values; the assessment's rows).
fn range_text(f: &Facts, code: &str) -> String {
    let Some(r) = f.ranges.iter().find(|r| r.code == code) else {
        return String::new();
    };
    let unit = f
        .latest
        .iter()
        .find(|o| o.code == code)
        .and_then(|o| o.unit.as_deref());
    if r.count <= 1 {
        return "; the only reading in 24 hours".to_string();
    }
    format!(
        "; 24 h range {}–{} ({} readings)",
        r.low,
        value_text(&ObsValue::Number(r.high), unit),
        r.count
    )
}

/// The plan in the words the dashboard uses (`plan.ts`).
fn plan_line(st: &EpisodeSettings) -> &'static str {
    match st.escalation_plan.as_deref() {
        Some("hospital") => "For transfer to hospital if they deteriorate",
        Some("home") => "For treatment at home: not for transfer to hospital",
        Some("comfort") => "For comfort care at home (end of life)",
        _ => "None recorded: ask the patient's team what was agreed",
    }
}

fn response_words(r: Chart4) -> &'static str {
    match r {
        Chart4::Routine => "routine",
        Chart4::WardBasedAssessment => "ward-based assessment",
        Chart4::UrgentWardBasedResponse => "urgent ward-based response",
        Chart4::UrgentResponse => "urgent response (key threshold)",
        Chart4::EmergencyResponse => "emergency response",
    }
}

fn monitoring_words(m: Monitoring) -> &'static str {
    match m {
        Monitoring::TwelveHourly => "at least every 12 hours",
        Monitoring::FourToSixHourly => "at least every 4 to 6 hours",
        Monitoring::Hourly => "at least hourly",
        Monitoring::Continuous => "continuous",
    }
}

fn status_word(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::Open => "open, not yet taken by anyone",
        AlertStatus::Acknowledged => "acknowledged",
        AlertStatus::Escalated => "escalated",
        AlertStatus::Resolved => "resolved",
    }
}

fn param_name(p: Parameter) -> &'static str {
    match p {
        Parameter::RespRate => "Respiration rate",
        Parameter::Spo2 => "SpO2",
        Parameter::Oxygen => "Air or oxygen",
        Parameter::Systolic => "Systolic BP",
        Parameter::Pulse => "Pulse",
        Parameter::Consciousness => "Consciousness (ACVPU)",
        Parameter::Temperature => "Temperature",
    }
}

fn names(ps: &[Parameter]) -> String {
    ps.iter()
        .map(|p| param_name(*p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The codes NEWS2 does not score, in words (docs/mqtt.md's codes).
fn code_name(code: &str) -> &str {
    match code {
        "diastolic" => "Diastolic BP",
        "skin_temp" => "Skin temperature",
        "pef" => "Peak flow",
        "fev1" => "FEV1",
        "weight" => "Weight",
        "posture" => "Posture",
        other => other,
    }
}

fn value_text(v: &ObsValue, unit: Option<&str>) -> String {
    let unit = match unit {
        Some("Cel") => " °C",
        Some("mm[Hg]") => " mmHg",
        Some("%") => "%",
        Some(u) => return format!("{} {u}", bare(v)),
        None => "",
    };
    format!("{}{unit}", bare(v))
}

fn bare(v: &ObsValue) -> String {
    match v {
        ObsValue::Number(n) => format!("{n}"),
        ObsValue::Text(t) => one_line(t),
    }
}

/// A stored score's total: "5, medium risk", "at least 3, low risk at least (partial)".
fn stored_total(total: Option<i64>, risk: Option<&str>, partial: bool) -> String {
    match (total, partial) {
        (None, _) => "not applied".to_string(),
        (Some(t), false) => format!("{t}, {} risk", risk.unwrap_or("unknown")),
        (Some(t), true) => format!(
            "at least {t}, {} risk at least (partial)",
            risk.unwrap_or("unknown")
        ),
    }
}

/// "on oxygen, recorded by sam, 2026-12-07 21:30 UTC (3 hours ago)", or "not recorded".
fn recorded(
    what: Option<String>,
    by: &Option<String>,
    when: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    match (what, by, when) {
        (Some(w), Some(by), Some(t)) => format!("{w}, recorded by {by}, {}", at(t, now)),
        (Some(w), _, _) => w,
        (None, _, _) => "not recorded".to_string(),
    }
}

fn minutes(m: i64) -> String {
    if m % 60 == 0 {
        match m / 60 {
            1 => "hour".to_string(),
            h => format!("{h} hours"),
        }
    } else {
        format!("{m} minutes")
    }
}

/// `2026-12-07 21:30 UTC`.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2026-12-07 21:30 UTC (12 minutes ago)`.
fn at(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", stamp(t), ago(now - t))
}

fn ago(d: Duration) -> String {
    let m = d.num_minutes();
    if m < 0 {
        "after this summary was written".to_string()
    } else if m < 1 {
        "under a minute ago".to_string()
    } else if m < 120 {
        format!("{m} minute{} ago", if m == 1 { "" } else { "s" })
    } else if m < 48 * 60 {
        format!("{} hours ago", m / 60)
    } else {
        format!("{} days ago", m / (24 * 60))
    }
}

/// How long until a time to come: "in 45 minutes", "in 3 hours".
fn ahead(d: Duration) -> String {
    let m = d.num_minutes();
    if m < 1 {
        "due now".to_string()
    } else if m < 120 {
        format!("in {m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("in {} hours", m / 60)
    }
}

/// `943 476 5919`, as the NHS writes it.
fn nhs_spaced(n: &str) -> String {
    if n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) {
        format!("{} {} {}", &n[..3], &n[3..6], &n[6..])
    } else {
        n.to_string()
    }
}

/// Free text on one line: a line break in a note becomes " / ", so that
/// what follows is not read as a line of the summary's own.
fn one_line(t: &str) -> String {
    t.split(['\n', '\r'])
        .filter(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `GET /api/v1/patients/{id}/summary`: the open stay as text, for a call
/// or a transfer (read on the audit trail as `patient.summary`).
#[utoipa::path(
    get, path = "/api/v1/patients/{id}/summary", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The summary: plain text, UTF-8 (docs/http.md)", content_type = "text/plain", body = String),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such patient on your wards, or no open stay", body = ErrorBody),
    )
)]
pub(crate) async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Response, ApiError> {
    let p = visible_patient(&state, &caller, id).await?;
    if p.episode.as_ref().is_none_or(|e| e.discharged_at.is_some()) {
        return Err(ApiError::NotFound("open episode"));
    }
    let now = Utc::now();
    let Some(settings) = state.store.episode_settings(id).await? else {
        // Discharged between the two reads.
        return Err(ApiError::NotFound("open episode"));
    };
    // Read once: NEWS2 scores these rows, and the summary lists them.
    let latest = state.store.latest_per_code(id, now).await?;
    let news2 = vigil_store::scoring::score_latest(
        &settings,
        &latest,
        state.freshness(&settings.pathway),
        now,
    );
    crate::audit::record(
        &state,
        &caller,
        "patient.summary",
        Some(id),
        serde_json::json!({}),
    )
    .await?;
    let ward = state.store.ward_find(&p.ward_id.to_string()).await?;
    let earlier = state
        .store
        .scores_earlier(
            &[(id, settings.earlier_stay_ended)],
            now - vigil_store::scoring::EARLIER_SCORE_AGO,
        )
        .await?
        .into_iter()
        .next()
        .map(|(_, e)| e);
    // Each stretch keeps its lowest and highest: the highest of all is kept.
    let since = (now - SUMMARY_SPAN).max(settings.earlier_stay_ended.unwrap_or(now - SUMMARY_SPAN));
    let highest = state
        .store
        .scores_downsampled(id, Some(since), Some(now), 2)
        .await?
        .into_iter()
        .filter(|r| r.total.is_some())
        .max_by_key(|r| (r.total, r.scored_at));
    // The live ones only, by status: a long stay's resolved alerts are many.
    let mut alerts: Vec<AlertRow> = Vec::new();
    for status in [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Escalated,
    ] {
        alerts.extend(
            state
                .store
                .alerts_list(&[p.ward_id], Some(status), Some(id))
                .await?,
        );
    }
    alerts.sort_by_key(|a| (a.raised_at, a.id));
    let notes: Vec<NoteRow> = state
        .store
        .notes_list(id)
        .await?
        .into_iter()
        .filter(|n| n.at >= now - SUMMARY_SPAN)
        .collect();
    // Each numeric code's range over the last 24 hours (none of an earlier
    // stay): its lowest
    // and highest kept by the downsampling, however many readings.
    // (Not from the admission: a device's reading taken at the admitting
    // visit may be stamped a moment before it, and NEWS2 scores it.)
    let from = since;
    let mut ranges = Vec::new();
    for o in latest
        .iter()
        .filter(|o| matches!(o.value, ObsValue::Number(_)))
    {
        let page = HistoryPage::span(id, Some(from), Some(now), i64::MAX);
        let count = state.store.observations_count(&page, &o.code).await?;
        let kept = state
            .store
            .observations_downsampled(
                &ObservationQuery {
                    patient_id: id,
                    code: Some(o.code.clone()),
                    from: Some(from),
                    to: Some(now),
                    max_points: None,
                },
                2,
            )
            .await?;
        let values = kept.iter().filter_map(|k| match k.value {
            ObsValue::Number(v) => Some(v),
            ObsValue::Text(_) => None,
        });
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        if count > 0 && low.is_finite() {
            ranges.push(Range {
                code: o.code.clone(),
                low,
                high,
                count,
            });
        }
    }
    let follow_ups = state.store.follow_ups_pending(id).await?;
    let text = write(
        &Facts {
            ward: ward.as_ref().map(|w| w.name.as_str()).unwrap_or("Ward"),
            written_for: &caller.0.username,
            patient: &p,
            pathway_title: state
                .pathways
                .get(&settings.pathway)
                .map(|p| p.title.as_str()),
            settings: &settings,
            news2: &news2,
            earlier: earlier.as_ref(),
            highest: highest.as_ref(),
            alerts: &alerts,
            latest: &latest,
            notes: &notes,
            ranges: &ranges,
            follow_ups: &follow_ups,
        },
        now,
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_store::scoring::{clinical_episode, readings};
    use vigil_store::{DeviceInfo, Episode, Severity};

    fn now() -> DateTime<Utc> {
        "2026-12-07T21:40:00Z".parse().expect("a time")
    }

    fn obs(
        id: i64,
        code: &str,
        value: ObsValue,
        unit: Option<&str>,
        mins_ago: i64,
    ) -> ObservationRow {
        let t = now() - Duration::minutes(mins_ago);
        ObservationRow {
            id,
            code: code.into(),
            value,
            unit: unit.map(Into::into),
            measured_at: t,
            received_at: t,
            device_id: "ox-1".into(),
            seq: id as u32,
        }
    }

    fn patient() -> PatientDetail {
        PatientDetail {
            id: 7,
            ward_id: 1,
            name: "Ada Lovelace".into(),
            nhs_number: "9434765919".into(),
            episode: Some(Episode {
                id: 3,
                pathway: "copd".into(),
                spo2_scale: 1,
                spo2_scale_set_by: None,
                spo2_scale_set_at: None,
                admitted_at: now() - Duration::days(6),
                discharged_at: None,
            }),
            previous_episodes: vec![],
            devices: vec![
                DeviceInfo {
                    id: "ox-1".into(),
                    kind: "oximeter".into(),
                    revoked_at: None,
                    status: None,
                },
                DeviceInfo {
                    id: "cuff-0".into(),
                    kind: "bp-cuff".into(),
                    revoked_at: Some(now()),
                    status: None,
                },
            ],
        }
    }

    fn settings() -> EpisodeSettings {
        EpisodeSettings {
            patient_id: 7,
            ward_id: 1,
            pathway: "copd".into(),
            spo2_scale: 1,
            ..EpisodeSettings::default()
        }
    }

    fn summary(
        st: &EpisodeSettings,
        latest: &[ObservationRow],
        alerts: &[AlertRow],
        notes: &[NoteRow],
    ) -> String {
        summary_with(st, latest, alerts, notes, &[], &[])
    }

    fn summary_with(
        st: &EpisodeSettings,
        latest: &[ObservationRow],
        alerts: &[AlertRow],
        notes: &[NoteRow],
        ranges: &[Range],
        follow_ups: &[FollowUp],
    ) -> String {
        let news2 = vigil_clinical::score_home(
            &readings(latest),
            &clinical_episode(st),
            Duration::hours(1),
            now(),
        );
        write(
            &Facts {
                ward: "Demo ward",
                written_for: "nurse1",
                patient: &patient(),
                pathway_title: Some("COPD"),
                settings: st,
                news2: &news2,
                earlier: None,
                highest: None,
                alerts,
                latest,
                notes,
                ranges,
                follow_ups,
            },
            now(),
        )
    }

    fn follow_ups() -> Vec<FollowUp> {
        vec![FollowUp {
            id: 1,
            patient_id: 7,
            due_at: now() + Duration::minutes(45),
            reason: "Call back: inhaler\nhelped?".into(),
            set_by: "sam".into(),
            set_at: now() - Duration::minutes(15),
        }]
    }

    fn alert(status: AlertStatus) -> AlertRow {
        AlertRow {
            id: 11,
            patient_id: 7,
            ward_id: 1,
            rule_id: "news2-high".into(),
            severity: Severity::High,
            status,
            message: "NEWS2 8 (high)".into(),
            count: 1,
            latest_value: serde_json::json!(8),
            evidence: vec![],
            raised_at: now() - Duration::minutes(12),
            updated_at: now(),
            escalate_at: None,
            resolved_at: None,
            outcome: None,
            note: None,
        }
    }

    #[test]
    fn the_summary_says_the_plan_the_score_with_what_is_missing_and_when_each_reading_was_taken() {
        let st = EpisodeSettings {
            oxygen: Some(false),
            oxygen_set_by: Some("sam".into()),
            oxygen_set_at: Some(now() - Duration::hours(3)),
            escalation_plan: Some("home".into()),
            escalation_note: Some("ReSPECT form with the GP".into()),
            escalation_set_by: Some("dr.jones".into()),
            escalation_set_at: Some(now() - Duration::days(2)),
            obs_every_minutes: Some(240),
            obs_every_set_by: Some("sam".into()),
            obs_every_set_at: Some(now() - Duration::hours(5)),
            ..settings()
        };
        let latest = [
            obs(1, "resp_rate", ObsValue::Number(25.0), Some("/min"), 12),
            obs(2, "spo2", ObsValue::Number(91.0), Some("%"), 12),
            obs(3, "pulse", ObsValue::Number(118.0), Some("/min"), 12),
            obs(4, "systolic", ObsValue::Number(104.0), Some("mm[Hg]"), 90),
            obs(5, "pef", ObsValue::Number(310.0), Some("L/min"), 30),
        ];
        let notes = [NoteRow {
            id: 1,
            patient_id: 7,
            at: now() - Duration::minutes(5),
            author: "sam".into(),
            text: "Called: more breathless.\nNEWS2 now: 0".into(),
        }];
        let range = |code: &str, low, high, count| Range {
            code: code.into(),
            low,
            high,
            count,
        };
        let ranges = [
            range("spo2", 90.0, 96.0, 31),
            range("systolic", 104.0, 132.0, 4),
            range("pef", 310.0, 310.0, 1),
        ];
        let s = summary_with(
            &st,
            &latest,
            &[alert(AlertStatus::Acknowledged)],
            &notes,
            &ranges,
            &follow_ups(),
        );
        let lines: Vec<&str> = s.lines().collect();
        let has = |l: &str| assert!(lines.contains(&l), "no line {l:?} in:\n{s}");
        has(
            "Demo ward. Written 2026-12-07 21:40 UTC for nurse1, from the record as it was then: check the live record before acting on it.",
        );
        has("Patient: Ada Lovelace, NHS number 943 476 5919");
        has("On the virtual ward since 2026-12-01 21:40 UTC (6 days ago), pathway COPD (copd)");
        has("Escalation plan: For treatment at home: not for transfer to hospital");
        has("  Details: ReSPECT form with the GP");
        has("  Recorded by dr.jones, 2026-12-05 21:40 UTC (2 days ago)");
        // Temperature and consciousness are missing, the BP is too old: a lower bound, said so.
        has(
            "NEWS2 now: at least 8, high risk at least (partial: a missing or old reading can only add), as of 2026-12-07 21:40 UTC (under a minute ago)",
        );
        has("  Missing: Consciousness (ACVPU), Temperature");
        has("  Too old to count: Systolic BP");
        has(
            "  NEWS2's response: emergency response; observations continuous (at least: the score is partial)",
        );
        has(
            "  - NEWS2 8 (high) (high severity, acknowledged), raised 2026-12-07 21:28 UTC (12 minutes ago)",
        );
        has("Air or oxygen: on air, recorded by sam, 2026-12-07 18:40 UTC (3 hours ago)");
        has("Consciousness (ACVPU): not recorded");
        has(
            "Observations asked for: every 4 hours, recorded by sam, 2026-12-07 16:40 UTC (5 hours ago)",
        );
        has("Devices at home: oximeter");
        has("  Temperature: none recorded");
        has(
            "  Systolic BP 104 mmHg, 2026-12-07 20:10 UTC (90 minutes ago): too old to count, not scored; 24 h range 104–132 mmHg (4 readings)",
        );
        has(
            "  SpO2 91% on scale 1 → 3, 2026-12-07 21:28 UTC (12 minutes ago); 24 h range 90–96% (31 readings)",
        );
        // No range known: none said.
        has("  Pulse 118/min → 2, 2026-12-07 21:28 UTC (12 minutes ago)");
        has("Follow-ups asked for (1):");
        has(
            "  - due 2026-12-07 22:25 UTC (in 45 minutes): Call back: inhaler / helped? (asked for by sam)",
        );
        has("Other latest readings:");
        has(
            "  Peak flow 310 L/min, 2026-12-07 21:10 UTC (30 minutes ago); the only reading in 24 hours",
        );
        // A note cannot add a line of the summary's own.
        has("  2026-12-07 21:35 UTC (5 minutes ago), sam: Called: more breathless. / NEWS2 now: 0");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("NEWS2 now")).count(),
            1,
            "{s}"
        );
        // SBAR's headings in order; the recommendation is the clinician's.
        let at = |h: &str| {
            lines
                .iter()
                .position(|l| *l == h)
                .unwrap_or_else(|| panic!("{h} in {s}"))
        };
        assert!(
            at("SITUATION") < at("BACKGROUND")
                && at("BACKGROUND") < at("ASSESSMENT")
                && at("ASSESSMENT") < at("RECOMMENDATION")
        );
        has("Yours to give.");
    }

    #[test]
    fn no_plan_no_alerts_and_no_notes_are_said_not_left_out() {
        let st = EpisodeSettings {
            oxygen: Some(false),
            oxygen_set_by: Some("sam".into()),
            oxygen_set_at: Some(now()),
            acvpu: Some("A".into()),
            acvpu_set_by: Some("sam".into()),
            acvpu_set_at: Some(now()),
            ..settings()
        };
        let latest = [
            obs(1, "resp_rate", ObsValue::Number(16.0), Some("/min"), 2),
            obs(2, "spo2", ObsValue::Number(97.0), Some("%"), 2),
            obs(3, "pulse", ObsValue::Number(70.0), Some("/min"), 2),
            obs(4, "systolic", ObsValue::Number(125.0), Some("mm[Hg]"), 2),
            obs(5, "temp", ObsValue::Number(36.8), Some("Cel"), 2),
        ];
        let s = summary(&st, &latest, &[], &[]);
        let lines: Vec<&str> = s.lines().collect();
        let has = |l: &str| assert!(lines.contains(&l), "no line {l:?} in:\n{s}");
        has("Escalation plan: None recorded: ask the patient's team what was agreed");
        has("NEWS2 now: 0, low risk, as of 2026-12-07 21:40 UTC (under a minute ago)");
        has("  NEWS2's response: routine; observations at least every 12 hours");
        has("Alerts not yet resolved: none");
        has("Follow-ups asked for: none");
        has("Notes of the last 24 hours: none");
        has("Observations asked for: as the pathway sets");
        assert!(!s.contains("Missing:") && !s.contains("Details:"), "{s}");
        assert!(!lines.iter().any(|l| l.ends_with(": none recorded")), "{s}");
        assert!(!s.contains("Other latest readings"), "{s}");
    }

    #[test]
    fn a_patient_news2_does_not_apply_to_is_said_so_with_no_total() {
        let st = EpisodeSettings {
            pregnant: true,
            ..settings()
        };
        let latest = [obs(1, "spo2", ObsValue::Number(90.0), Some("%"), 2)];
        let s = summary(&st, &latest, &[alert(AlertStatus::Open)], &[]);
        assert!(
            s.contains("NEWS2 now: not applied (pregnant: NEWS2 is not validated for them)"),
            "{s}"
        );
        assert!(!s.contains("What NEWS2 scored"), "{s}");
        assert!(
            s.contains("(high severity, open, not yet taken by anyone)"),
            "{s}"
        );
    }

    #[test]
    fn the_earlier_score_is_given_only_when_a_reading_came_since() {
        let st = settings();
        let latest = [obs(1, "spo2", ObsValue::Number(95.0), Some("%"), 10)];
        let news2 = vigil_clinical::score_home(
            &readings(&latest),
            &clinical_episode(&st),
            Duration::hours(1),
            now(),
        );
        let with = |earlier: &EarlierScore| {
            write(
                &Facts {
                    ward: "W",
                    written_for: "sam",
                    patient: &patient(),
                    pathway_title: None,
                    settings: &st,
                    news2: &news2,
                    earlier: Some(earlier),
                    highest: None,
                    alerts: &[],
                    latest: &latest,
                    notes: &[],
                    ranges: &[],
                    follow_ups: &[],
                },
                now(),
            )
        };
        let day_ago = EarlierScore {
            total: Some(1),
            risk: Some("low".into()),
            partial: false,
            scored_at: now() - Duration::hours(25),
        };
        let s = with(&day_ago);
        assert!(
            s.lines().any(|l| l
                == "Earlier NEWS2 to compare with: 1, low risk, scored 2026-12-06 20:40 UTC (25 hours ago)"),
            "{s}"
        );
        // Scored at the newest reading: it is the score now, not an earlier one.
        let same = EarlierScore {
            scored_at: now() - Duration::minutes(10),
            ..day_ago
        };
        assert!(!with(&same).contains("Earlier NEWS2"), "{}", with(&same));
    }

    #[test]
    fn ages_read_as_a_nurse_says_them() {
        assert_eq!(ago(Duration::seconds(30)), "under a minute ago");
        assert_eq!(ago(Duration::minutes(1)), "1 minute ago");
        assert_eq!(ago(Duration::minutes(119)), "119 minutes ago");
        assert_eq!(ago(Duration::minutes(120)), "2 hours ago");
        assert_eq!(ago(Duration::hours(47)), "47 hours ago");
        assert_eq!(ago(Duration::hours(48)), "2 days ago");
        assert_eq!(ago(Duration::minutes(-3)), "after this summary was written");
        assert_eq!(minutes(60), "hour");
        assert_eq!(ahead(Duration::seconds(30)), "due now");
        assert_eq!(ahead(Duration::minutes(1)), "in 1 minute");
        assert_eq!(ahead(Duration::minutes(150)), "in 2 hours");
        assert_eq!(minutes(90), "90 minutes");
        assert_eq!(nhs_spaced("9434765919"), "943 476 5919");
        assert_eq!(
            stored_total(Some(3), Some("low"), true),
            "at least 3, low risk at least (partial)"
        );
    }
}
