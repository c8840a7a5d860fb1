//! `/api/v1/patients`: the ward list, one patient, their observations,
//! admission and discharge. A patient outside the caller's wards is a 404,
//! not a 403, so ids cannot be probed.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use vigil_clinical::News2Score;
use vigil_clinical::thresholds::spo2::Spo2Target;
use vigil_store::{
    EpisodeSettings, EpisodeUpdate, HistoryPage, NoteRow, ObservationQuery, ObservationRow,
    PatientDetail, PatientSummary, Role, ScoreRow,
};

use crate::AppState;
use crate::admin::{AdminError, AdmitRequest, admit};
use crate::auth::Caller;
use crate::error::{ApiError, Id, bad_json};
use crate::openapi::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/patients", get(list).post(create))
        .route("/api/v1/patients/discharged", get(discharged))
        .route("/api/v1/patients/notes", get(ward_notes))
        .route("/api/v1/patients/plans", get(ward_plans))
        .route(
            "/api/v1/patients/follow-ups",
            get(crate::follow_ups::upcoming),
        )
        .route("/api/v1/patients/{id}", get(one))
        .route(
            "/api/v1/patients/{id}/observations",
            get(observations).post(crate::entered::enter),
        )
        .route("/api/v1/patients/{id}/discharge", post(discharge))
        .route("/api/v1/patients/{id}/notes", get(notes).post(add_note))
        .route("/api/v1/patients/{id}/scores", get(scores))
        .route(
            "/api/v1/patients/{id}/summary",
            get(crate::summary::summary),
        )
        .route(
            "/api/v1/patients/{id}/follow-ups",
            get(crate::follow_ups::list).post(crate::follow_ups::add),
        )
        .route(
            "/api/v1/patients/{id}/follow-ups/{follow_up}/cancel",
            post(crate::follow_ups::cancel),
        )
        .route("/api/v1/patients/{id}/ecg", get(ecg))
        .route(
            "/api/v1/patients/{id}/episode",
            axum::routing::patch(update_episode),
        )
        .route("/api/v1/pathways", get(pathways))
}

/// A pathway a patient can be admitted on.
#[derive(Serialize, ToSchema)]
pub(crate) struct PathwayView {
    /// What `POST /api/v1/patients` takes as `pathway`.
    name: String,
    /// The pathway file's title.
    title: String,
    /// The pathway file's `spo2_scale`: what its rules use until a
    /// clinician records one (NEWS2 starts on scale 1: hazard CS-01).
    spo2_scale: u8,
    /// Its own SpO2 target (`[low, high]` %), if it sets one; else the scale's.
    spo2_target: Option<(u8, u8)>,
}

/// `GET /api/v1/pathways`: the pathways this server loaded, by name: what
/// an admission form offers.
#[utoipa::path(
    get, path = "/api/v1/pathways", tag = "patients",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The loaded pathways, by name", body = Vec<PathwayView>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    )
)]
pub(crate) async fn pathways(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<Vec<PathwayView>> {
    Json(
        state
            .pathways
            .iter()
            .map(|(name, p)| PathwayView {
                name: name.clone(),
                title: p.title.clone(),
                spo2_scale: p.spo2_scale,
                spo2_target: p.spo2_target,
            })
            .collect(),
    )
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// One of your wards (default: all of them); another ward is a 404.
    ward: Option<i64>,
}

/// A ward-list row: the patient, their latest readings, and NEWS2 as of
/// now. Scoring at request time means a reading that has aged past the
/// freshness window shows as stale the moment it is, not at the next reading.
#[derive(Serialize, ToSchema)]
pub(crate) struct WardRow {
    #[serde(flatten)]
    patient: PatientSummary,
    /// NEWS2 as of the request (docs/http.md, "NEWS2 objects"); null before any reading.
    #[schema(value_type = Option<Object>)]
    news2: Option<News2Score>,
    /// The stored NEWS2 to compare `news2` with: the newest measured 24
    /// hours or more before the request, else this stay's first; null
    /// before any score (`Store::scores_earlier`).
    news2_earlier: Option<vigil_store::EarlierScore>,
    /// The stay's treatment escalation plan (`hospital`, `home` or
    /// `comfort`), null if none is recorded: what whoever answers the
    /// patient's alert is to do (`GET /api/v1/patients/{id}` gives who
    /// recorded it and when).
    escalation_plan: Option<String>,
    /// The plan's details in words, if any.
    escalation_note: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DischargedQuery {
    /// One of your wards (default: all of them); another ward is a 404.
    ward: Option<i64>,
    /// How many days back (default 30; 1 to 365).
    #[param(minimum = 1, maximum = 365)]
    days: Option<i64>,
}

/// `GET /api/v1/patients/discharged`: patients discharged from your wards
/// in the last `days` and not admitted again, the latest discharge first:
/// whom a nurse looks up when a discharged patient calls back.
#[utoipa::path(
    get, path = "/api/v1/patients/discharged", tag = "patients", params(DischargedQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Each recently discharged patient with their latest stay", body = Vec<vigil_store::DischargedPatient>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn discharged(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<DischargedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<vigil_store::DischargedPatient>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let wards = caller.wards(q.ward)?;
    let days = q.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::Invalid("days: 1 to 365".into()));
    }
    let since = Utc::now() - chrono::Duration::days(days);
    let rows = state.store.patients_discharged(&wards, since).await?;
    let ids: Vec<i64> = rows.iter().map(|p| p.id).collect();
    crate::audit::record(
        &state,
        &caller,
        "patients.discharged",
        None,
        serde_json::json!({"wards": wards, "days": days, "patients": ids}),
    )
    .await?;
    Ok(Json(rows))
}

/// `GET /api/v1/patients`: patients with an open episode on your wards.
#[utoipa::path(
    get, path = "/api/v1/patients", tag = "patients", params(ListQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Each patient with latest readings and NEWS2 as of now", body = Vec<WardRow>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<WardRow>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let wards = caller.wards(q.ward)?;
    let now = Utc::now();
    let mut rows = Vec::new();
    let patients = state.store.patients_list(&wards).await?;
    let ids: Vec<i64> = patients.iter().map(|p| p.id).collect();
    crate::audit::record(
        &state,
        &caller,
        "patients.list",
        None,
        serde_json::json!({"wards": wards, "patients": ids}),
    )
    .await?;
    let mut since = Vec::with_capacity(patients.len());
    for patient in patients {
        let freshness = |p: &str| state.freshness(p);
        let scored =
            vigil_store::scoring::score_patient(state.store.as_ref(), patient.id, now, &freshness)
                .await?;
        // None: discharged since the list was read.
        let (news2, plan) = match scored {
            Some((settings, score)) => {
                since.push((patient.id, settings.earlier_stay_ended));
                (
                    Some(score),
                    (settings.escalation_plan, settings.escalation_note),
                )
            }
            None => (None, (None, None)),
        };
        rows.push(WardRow {
            patient,
            news2,
            news2_earlier: None,
            escalation_plan: plan.0,
            escalation_note: plan.1,
        });
    }
    let then = now - vigil_store::scoring::EARLIER_SCORE_AGO;
    let mut earlier: std::collections::HashMap<i64, _> = state
        .store
        .scores_earlier(&since, then)
        .await?
        .into_iter()
        .collect();
    for row in &mut rows {
        row.news2_earlier = earlier.remove(&row.patient.id);
    }
    Ok(Json(rows))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RangeQuery {
    /// RFC 3339
    from: Option<DateTime<Utc>>,
    /// RFC 3339
    to: Option<DateTime<Utc>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ScoreQuery {
    /// RFC 3339
    from: Option<DateTime<Utc>>,
    /// RFC 3339
    to: Option<DateTime<Utc>>,
    /// Keep the history within this many points: each stretch's lowest and
    /// highest total, read a run at a time (a chart of a whole episode)
    #[param(minimum = 1)]
    max_points: Option<usize>,
    /// Only the newest this many, in time order (a table of the latest);
    /// not with `max_points`
    #[param(minimum = 1, maximum = 1000)]
    newest: Option<i64>,
}

/// The most scores `newest` may ask for.
const MAX_NEWEST_SCORES: i64 = 1000;

/// `GET /api/v1/patients/{id}/scores`: NEWS2 history, by the measurement
/// time each score describes.
#[utoipa::path(
    get, path = "/api/v1/patients/{id}/scores", tag = "patients",
    params(("id" = i64, Path, description = "Patient id"), ScoreQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "NEWS2 history ordered by `scored_at`", body = Vec<ScoreRow>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn scores(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    q: Result<Query<ScoreQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    visible_patient(&state, &caller, id).await?;
    if q.max_points == Some(0) {
        return Err(ApiError::Invalid("max_points: must be at least 1".into()));
    }
    if q.newest
        .is_some_and(|n| !(1..=MAX_NEWEST_SCORES).contains(&n))
    {
        return Err(ApiError::Invalid(format!(
            "newest: 1 to {MAX_NEWEST_SCORES}"
        )));
    }
    if q.newest.is_some() && q.max_points.is_some() {
        return Err(ApiError::Invalid(
            "newest and max_points: one or the other".into(),
        ));
    }
    crate::audit::record(
        &state,
        &caller,
        "patient.scores",
        Some(id),
        serde_json::json!({"from": q.from, "to": q.to}),
    )
    .await?;
    let rows = match (q.max_points, q.newest) {
        (Some(max), _) => {
            state
                .store
                .scores_downsampled(id, q.from, q.to, max)
                .await?
        }
        (None, Some(n)) => state.store.scores_newest(id, q.from, q.to, n).await?,
        (None, None) => {
            // Whole: written a run at a time, never held whole.
            let store = state.store.clone();
            let read = move |(), page: HistoryPage| {
                let store = store.clone();
                async move { store.scores_page(&page).await }
            };
            let start = HistoryPage::span(id, q.from, q.to, crate::history::RUN);
            return Ok(crate::history::json_array(vec![()], start, read, "scores", id).await?);
        }
    };
    Ok(Json(rows).into_response())
}

/// The longest ECG window one request may ask for (a strip, not a download).
const MAX_ECG_WINDOW_MINUTES: i64 = 15;

#[derive(Serialize, ToSchema)]
pub(crate) struct EcgStrip {
    device_id: String,
    seq: u32,
    t0_ms: i64,
    fs_hz: u16,
    uv_per_count: f32,
    /// ADC counts; times `uv_per_count` gives microvolts.
    samples: Vec<i16>,
}

/// An ECG window: the chunks that overlap it and the beats found in it.
#[derive(Serialize, ToSchema)]
pub(crate) struct EcgWindow {
    chunks: Vec<EcgStrip>,
    beats: Vec<vigil_store::BeatRow>,
}

/// `GET /api/v1/patients/{id}/ecg?from=&to=`: raw samples (ADC counts; times
/// µV per count gives microvolts) and the beats the detector found.
#[utoipa::path(
    get, path = "/api/v1/patients/{id}/ecg", tag = "patients",
    params(
        ("id" = i64, Path, description = "Patient id"),
        ("from" = DateTime<Utc>, Query, description = "Window start, RFC 3339 (required)"),
        ("to" = DateTime<Utc>, Query, description = "Window end, RFC 3339 (required): not before `from`, at most 15 minutes after it"),
    ),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "ECG chunks and detected beats", body = EcgWindow),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
        (status = 422, description = "`from` and `to` are both required, `to` not before `from`, at most 15 minutes apart", body = ErrorBody),
    )
)]
pub(crate) async fn ecg(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EcgWindow>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    visible_patient(&state, &caller, id).await?;
    let (Some(from), Some(to)) = (q.from, q.to) else {
        return Err(ApiError::Invalid(
            "from and to: both required (RFC 3339)".into(),
        ));
    };
    if to < from || to - from > chrono::Duration::minutes(MAX_ECG_WINDOW_MINUTES) {
        return Err(ApiError::Invalid(format!(
            "to - from: between 0 and {MAX_ECG_WINDOW_MINUTES} minutes"
        )));
    }
    crate::audit::record(
        &state,
        &caller,
        "patient.ecg",
        Some(id),
        serde_json::json!({"from": from, "to": to}),
    )
    .await?;
    let (chunks, beats) = state
        .store
        .ecg_range(id, from.timestamp_millis(), to.timestamp_millis())
        .await?;
    let mut strips = Vec::with_capacity(chunks.len());
    for c in chunks {
        let samples = vigil_ecg::decode_samples(&c.samples).map_err(|e| {
            ApiError::Internal(format!(
                "stored ECG chunk {}/{} undecodable: {e}",
                c.device_id, c.seq
            ))
        })?;
        strips.push(EcgStrip {
            device_id: c.device_id,
            seq: c.seq,
            t0_ms: c.t0_ms,
            fs_hz: c.fs_hz,
            uv_per_count: c.uv_per_count,
            samples,
        });
    }
    Ok(Json(EcgWindow {
        chunks: strips,
        beats,
    }))
}

/// The shortest interval a clinician can ask observations at (a home
/// device is not a bedside monitor), and the longest (a week).
const OBS_EVERY_MIN: i64 = 15;
const OBS_EVERY_MAX: i64 = 7 * 24 * 60;

/// `PATCH /api/v1/patients/{id}/episode`: a clinician records the SpO2
/// scale, oxygen, consciousness, the under-16/pregnancy flags, how often
/// the patient's observations are expected, or the treatment escalation
/// plan. Each is stored with who and when, and the score and the
/// missed-reading clocks follow at once.
#[utoipa::path(
    patch, path = "/api/v1/patients/{id}/episode", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    request_body = EpisodeUpdate,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The episode settings after the change", body = EpisodeSettings),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
        (status = 422, description = "Bad body, or nothing to change", body = ErrorBody),
    )
)]
pub(crate) async fn update_episode(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: Result<Json<EpisodeUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<EpisodeSettings>, ApiError> {
    let Json(u) = body.map_err(bad_json)?;
    visible_patient(&state, &caller, id).await?;
    if u.spo2_scale.is_some_and(|s| s != 1 && s != 2) {
        return Err(ApiError::Invalid("spo2_scale: must be 1 or 2".into()));
    }
    if u.acvpu
        .as_deref()
        .is_some_and(|a| !["A", "C", "V", "P", "U"].contains(&a))
    {
        return Err(ApiError::Invalid("acvpu: one of A, C, V, P, U".into()));
    }
    if u.obs_every_minutes
        .is_some_and(|m| m != 0 && !(OBS_EVERY_MIN..=OBS_EVERY_MAX).contains(&m))
    {
        return Err(ApiError::Invalid(format!(
            "obs_every_minutes: {OBS_EVERY_MIN} to {OBS_EVERY_MAX}, or 0 for the pathway's"
        )));
    }
    let u = escalation_checked(u)?;
    if u == EpisodeUpdate::default() {
        return Err(ApiError::Invalid("nothing to change".into()));
    }
    // Only the plan changed: nothing NEWS2 or the rules read did.
    let rescore = EpisodeUpdate {
        escalation_plan: None,
        escalation_note: None,
        ..u.clone()
    } != EpisodeUpdate::default();
    // The plan, not its details: those are clinical text, kept in the
    // episode (as a note's text is kept in its table, not the trail).
    let detail = serde_json::json!({"spo2_scale": u.spo2_scale, "oxygen": u.oxygen, "acvpu": u.acvpu, "under_16": u.under_16, "pregnant": u.pregnant, "obs_every_minutes": u.obs_every_minutes, "escalation_plan": u.escalation_plan, "escalation_note": u.escalation_note.is_some()});
    state
        .store
        .episode_update(id, u, &caller.0.username, Utc::now())
        .await?;
    crate::audit::record(&state, &caller, "patient.episode", Some(id), detail).await?;
    tracing::info!(
        patient_id = id,
        by = caller.0.id,
        "episode settings changed"
    );
    if rescore && state.rescore.send(id).await.is_err() {
        tracing::warn!(
            patient_id = id,
            "scorer not running; score will update with the next reading"
        );
    }
    let settings = state
        .store
        .episode_settings(id)
        .await?
        .ok_or(ApiError::NotFound("open episode"))?;
    // Every open page of the patient shows what was recorded, not only
    // the recorder's.
    let _ = state.events.send(vigil_store::LiveEvent::Episode {
        ward_id: settings.ward_id,
        patient_id: id,
        settings: settings.clone(),
    });
    Ok(Json(settings))
}

/// The longest details of an escalation plan, in characters: where the
/// full plan is and what it means for this patient, not the plan itself.
const ESCALATION_NOTE_MAX_CHARS: usize = 500;

/// The update with its escalation plan checked: one of
/// [`vigil_store::ESCALATION_PLANS`] or `not-recorded`, its details (only
/// with a plan, trimmed, none if blank) one paragraph of at most
/// [`ESCALATION_NOTE_MAX_CHARS`].
fn escalation_checked(mut u: EpisodeUpdate) -> Result<EpisodeUpdate, ApiError> {
    if let Some(plan) = u.escalation_plan.as_deref()
        && plan != "not-recorded"
        && !vigil_store::ESCALATION_PLANS.contains(&plan)
    {
        return Err(ApiError::Invalid(
            "escalation_plan: one of hospital, home, comfort, not-recorded".into(),
        ));
    }
    let Some(note) = u.escalation_note.take() else {
        return Ok(u);
    };
    match u.escalation_plan.as_deref() {
        None => {
            return Err(ApiError::Invalid(
                "escalation_note: only with escalation_plan (the plan it details)".into(),
            ));
        }
        Some("not-recorded") => {
            return Err(ApiError::Invalid(
                "escalation_note: a plan cleared (not-recorded) has no details".into(),
            ));
        }
        Some(_) => {}
    }
    let note = note.trim();
    crate::text::check("escalation_note", note, false).map_err(ApiError::Invalid)?;
    if note.chars().count() > ESCALATION_NOTE_MAX_CHARS {
        return Err(ApiError::Invalid(format!(
            "escalation_note: longer than {ESCALATION_NOTE_MAX_CHARS} characters"
        )));
    }
    u.escalation_note = (!note.is_empty()).then(|| note.to_owned());
    Ok(u)
}

/// The longest note, in characters: a call's summary, not a letter.
const NOTE_MAX_CHARS: usize = 4000;

/// `GET /api/v1/patients/{id}/notes`: what clinicians wrote on the
/// patient's record, the newest first.
#[utoipa::path(
    get, path = "/api/v1/patients/{id}/notes", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The patient's notes, the newest first", body = Vec<NoteRow>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
        (status = 422, description = "Bad id", body = ErrorBody),
    )
)]
pub(crate) async fn notes(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Vec<NoteRow>>, ApiError> {
    visible_patient(&state, &caller, id).await?;
    let notes = state.store.notes_list(id).await?;
    crate::audit::record(
        &state,
        &caller,
        "patient.notes",
        Some(id),
        serde_json::json!({"count": notes.len()}),
    )
    .await?;
    Ok(Json(notes))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WardNotesQuery {
    /// One of your wards (default: all of them); another ward is a 404.
    ward: Option<i64>,
    /// How many hours back (default 12, a shift; 1 to 168).
    #[param(minimum = 1, maximum = 168)]
    hours: Option<i64>,
}

/// `GET /api/v1/patients/notes`: notes written on your wards' patients in
/// the last `hours`, the newest first, each with its patient's name and NHS
/// number: the handover's notes, beside `GET /api/v1/alerts/resolved`.
#[utoipa::path(
    get, path = "/api/v1/patients/notes", tag = "patients", params(WardNotesQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Notes, the newest first", body = Vec<vigil_store::WardNote>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn ward_notes(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<WardNotesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<vigil_store::WardNote>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let wards = caller.wards(q.ward)?;
    let (hours, since) = shift_window(q.hours)?;
    let notes = state.store.notes_since(&wards, since).await?;
    let patients = distinct(notes.iter().map(|n| n.note.patient_id));
    crate::audit::record(
        &state,
        &caller,
        "patients.notes",
        None,
        serde_json::json!({"wards": wards, "hours": hours, "count": notes.len(), "patients": patients}),
    )
    .await?;
    Ok(Json(notes))
}

/// `GET /api/v1/patients/plans`: the escalation plans recorded, reviewed
/// or cleared on your wards' open stays in the last `hours`, each as it is
/// now, the latest first, with its patient's name and NHS number: the
/// handover's plans, so the shift coming on knows whose agreed response
/// changed (hazard DB-24).
#[utoipa::path(
    get, path = "/api/v1/patients/plans", tag = "patients", params(WardNotesQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Plans, the latest first", body = Vec<vigil_store::WardPlan>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`ward` is not one of yours", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn ward_plans(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<WardNotesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<vigil_store::WardPlan>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let wards = caller.wards(q.ward)?;
    let (hours, since) = shift_window(q.hours)?;
    let plans = state.store.plans_since(&wards, since).await?;
    let patients: Vec<i64> = plans.iter().map(|p| p.patient_id).collect();
    crate::audit::record(
        &state,
        &caller,
        "patients.plans",
        None,
        serde_json::json!({"wards": wards, "hours": hours, "patients": patients}),
    )
    .await?;
    Ok(Json(plans))
}

/// The handover's window: `hours` back from now (default 12, a shift; 1 to
/// 168, a week), for `GET /api/v1/patients/notes` and `/alerts/resolved`.
pub(crate) fn shift_window(hours: Option<i64>) -> Result<(i64, DateTime<Utc>), ApiError> {
    let hours = hours.unwrap_or(12);
    if !(1..=168).contains(&hours) {
        return Err(ApiError::Invalid("hours: 1 to 168".into()));
    }
    Ok((hours, Utc::now() - chrono::Duration::hours(hours)))
}

/// Patient ids once each, sorted: whom a list read was about, for the audit trail.
pub(crate) fn distinct(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A note to add: plain text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewNote {
    /// 1 to 4,000 characters once leading and trailing space is trimmed.
    text: String,
}

/// `POST /api/v1/patients/{id}/notes`: a clinician writes on the patient's
/// record (a call, the advice given, a plan). A note is never edited or
/// deleted; a correction is a new note. Every open page of the patient is
/// sent it (`note`).
#[utoipa::path(
    post, path = "/api/v1/patients/{id}/notes", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    request_body = NewNote,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The note as stored", body = NoteRow),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
        (status = 422, description = "Bad body: no text, or too long", body = ErrorBody),
    )
)]
pub(crate) async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: Result<Json<NewNote>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<NoteRow>), ApiError> {
    let Json(n) = body.map_err(bad_json)?;
    let patient = visible_patient(&state, &caller, id).await?;
    let text = n.text.trim();
    crate::text::check("text", text, true).map_err(ApiError::Invalid)?;
    if text.is_empty() {
        return Err(ApiError::Invalid("text: empty".into()));
    }
    if text.chars().count() > NOTE_MAX_CHARS {
        return Err(ApiError::Invalid(format!(
            "text: longer than {NOTE_MAX_CHARS} characters"
        )));
    }
    let note = state
        .store
        .note_add(id, &caller.0.username, text, Utc::now())
        .await?;
    // The note's id only: its text is clinical content, kept in its table.
    crate::audit::record(
        &state,
        &caller,
        "note.add",
        Some(id),
        serde_json::json!({"note": note.id}),
    )
    .await?;
    let _ = state.events.send(vigil_store::LiveEvent::Note {
        ward_id: patient.ward_id,
        note: note.clone(),
    });
    Ok((axum::http::StatusCode::CREATED, Json(note)))
}

/// Load a patient the caller may see, or 404.
pub(crate) async fn visible_patient(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<PatientDetail, ApiError> {
    match state.store.patient_get(id).await? {
        Some(p) if caller.sees_ward(p.ward_id) => Ok(p),
        _ => Err(ApiError::NotFound("patient")),
    }
}

/// One patient with the thresholds of their pathway.
#[derive(Serialize, ToSchema)]
pub(crate) struct PatientView {
    #[serde(flatten)]
    patient: PatientDetail,
    thresholds: Thresholds,
    /// What clinicians recorded for the open episode (SpO2 scale, air or
    /// oxygen, consciousness, each with who and when), as `PATCH
    /// …/episode` answers it; null without an open episode. What the
    /// dashboard's assessment form starts from.
    settings: Option<EpisodeSettings>,
}

/// The patient's own thresholds, besides NEWS2's (docs/http.md).
#[derive(Serialize, ToSchema)]
pub(crate) struct Thresholds {
    /// The SpO2 target range the pathway rules compare with; null without an open episode.
    spo2_target: Option<Spo2TargetView>,
    /// How long a reading, or a recorded consciousness level, counts in
    /// NEWS2 (the pathway's `freshness`), in seconds; null without an open
    /// episode.
    freshness_s: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Spo2TargetView {
    /// %, inclusive
    low: u8,
    /// %, inclusive
    high: u8,
    /// `pathway` (the pathway file's `spo2_target`) or `scale` (the default for the episode's SpO2 scale: 88–92 on scale 2, 94–98 on scale 1).
    source: &'static str,
}

/// The target as the rules engine takes it: the pathway's, else the scale's.
fn spo2_target(state: &AppState, p: &PatientDetail) -> Option<Spo2TargetView> {
    let ep = p.episode.as_ref().filter(|e| e.discharged_at.is_none())?;
    if let Some((low, high)) = state.pathways.get(&ep.pathway).and_then(|p| p.spo2_target) {
        return Some(Spo2TargetView {
            low,
            high,
            source: "pathway",
        });
    }
    let t = if ep.spo2_scale == 2 {
        Spo2Target::HYPERCAPNIC
    } else {
        Spo2Target::STANDARD
    };
    let (low, high) = t.into();
    Some(Spo2TargetView {
        low,
        high,
        source: "scale",
    })
}

/// `GET /api/v1/patients/{id}`: one patient with episode, devices and thresholds.
#[utoipa::path(
    get, path = "/api/v1/patients/{id}", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The patient", body = PatientView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
    )
)]
pub(crate) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<PatientView>, ApiError> {
    let p = visible_patient(&state, &caller, id).await?;
    crate::audit::record(
        &state,
        &caller,
        "patient.read",
        Some(id),
        serde_json::json!({}),
    )
    .await?;
    let thresholds = Thresholds {
        spo2_target: spo2_target(&state, &p),
        freshness_s: p
            .episode
            .as_ref()
            .filter(|e| e.discharged_at.is_none())
            .map(|e| state.freshness(&e.pathway).num_seconds()),
    };
    let settings = match &p.episode {
        Some(e) if e.discharged_at.is_none() => state.store.episode_settings(id).await?,
        _ => None,
    };
    Ok(Json(PatientView {
        patient: p,
        thresholds,
        settings,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ObsQuery {
    /// Only this code (e.g. `spo2`, `hr`)
    code: Option<String>,
    /// RFC 3339
    from: Option<DateTime<Utc>>,
    /// RFC 3339
    to: Option<DateTime<Utc>>,
    /// Keep each code's series within this many points (each bucket's minimum and maximum)
    #[param(minimum = 1)]
    max_points: Option<usize>,
}

/// `GET /api/v1/patients/{id}/observations`: observations ordered by code
/// then measurement time.
#[utoipa::path(
    get, path = "/api/v1/patients/{id}/observations", tag = "patients",
    params(("id" = i64, Path, description = "Patient id"), ObsQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Observations", body = Vec<ObservationRow>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such patient on your wards", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub(crate) async fn observations(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    q: Result<Query<ObsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Invalid(e.body_text()))?;
    visible_patient(&state, &caller, id).await?;
    if q.max_points == Some(0) {
        return Err(ApiError::Invalid("max_points: must be at least 1".into()));
    }
    if let Some(code) = &q.code {
        crate::text::check("code", code, false).map_err(ApiError::Invalid)?;
    }
    crate::audit::record(
        &state,
        &caller,
        "patient.observations",
        Some(id),
        serde_json::json!({"code": q.code, "from": q.from, "to": q.to}),
    )
    .await?;
    if q.max_points.is_none() {
        // Whole: each code's series written a run at a time, in the order
        // the whole read gave (code, then time, then id), never held whole.
        let codes = match q.code {
            Some(c) => vec![c],
            None => state.store.observation_codes(id).await?,
        };
        let store = state.store.clone();
        let read = move |code: String, page: HistoryPage| {
            let store = store.clone();
            async move { store.observations_page(&page, &code).await }
        };
        let start = HistoryPage::span(id, q.from, q.to, crate::history::RUN);
        return Ok(crate::history::json_array(codes, start, read, "readings", id).await?);
    }
    let rows = state
        .store
        .observations(ObservationQuery {
            patient_id: id,
            code: q.code,
            from: q.from,
            to: q.to,
            max_points: q.max_points,
        })
        .await?;
    Ok(Json(rows).into_response())
}

/// Admitted: the patient's id; `readmitted` when the person was
/// discharged from this ward before and their record (with its history)
/// has the new episode, rather than a new record.
#[derive(Serialize, ToSchema)]
pub(crate) struct Admitted {
    id: i64,
    readmitted: bool,
}

/// Discharged: the patient, when, and the alerts the discharge resolved.
#[derive(Serialize, ToSchema)]
pub(crate) struct Discharged {
    id: i64,
    discharged_at: DateTime<Utc>,
    /// Ids of the patient's live alerts, now resolved with outcome
    /// `discharged` (docs/alerts.md, "Discharge").
    resolved_alerts: Vec<i64>,
}

/// `POST /api/v1/patients` (admin): admit a patient.
#[utoipa::path(
    post, path = "/api/v1/patients", tag = "patients",
    request_body = AdmitRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Admitted", body = Admitted),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, or a cookie session without the CSRF header", body = ErrorBody),
        (status = 409, description = "The NHS number is already admitted (a patient with it has an open episode): discharge them first", body = ErrorBody),
        (status = 422, description = "Bad body: unknown ward or pathway, bad NHS number, empty name, SpO2 scale not 1 or 2", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<AdmitRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Admitted>), ApiError> {
    caller.require(Role::Admin)?;
    let Json(req) = body.map_err(bad_json)?;
    if !state.pathways.contains_key(&req.pathway) {
        let known: Vec<&str> = state.pathways.keys().map(String::as_str).collect();
        return Err(ApiError::Invalid(format!(
            "pathway: no pathway {:?} (loaded: {})",
            req.pathway,
            known.join(", ")
        )));
    }
    let ward = match state.store.ward_find(&req.ward).await? {
        Some(w) if caller.sees_ward(w.id) => w,
        _ => {
            return Err(ApiError::Invalid(format!(
                "ward: no ward {:?} among yours",
                req.ward
            )));
        }
    };
    let vigil_store::Admission { id, readmitted } =
        admit(state.store.as_ref(), req, &caller.0.username, Utc::now())
            .await
            .map_err(admin_error)?;
    tracing::info!(
        patient_id = id,
        by = caller.0.id,
        readmitted,
        "patient admitted"
    );
    crate::audit::record(
        &state,
        &caller,
        "patient.admit",
        Some(id),
        serde_json::json!({"readmitted": readmitted}),
    )
    .await?;
    // Open dashboards of the ward list the patient now, readings or not.
    let _ = state.events.send(vigil_store::LiveEvent::Patient {
        ward_id: ward.id,
        patient_id: id,
        change: "admitted".into(),
    });
    Ok((
        axum::http::StatusCode::CREATED,
        Json(Admitted { id, readmitted }),
    ))
}

/// `POST /api/v1/patients/{id}/discharge` (admin): close the open episode
/// and resolve the patient's live alerts.
#[utoipa::path(
    post, path = "/api/v1/patients/{id}/discharge", tag = "patients",
    params(("id" = i64, Path, description = "Patient id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Discharged", body = Discharged),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, or a cookie session without the CSRF header", body = ErrorBody),
        (status = 404, description = "No such patient on your wards, or no open episode (already discharged)", body = ErrorBody),
    )
)]
pub(crate) async fn discharge(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Discharged>, ApiError> {
    caller.require(Role::Admin)?;
    let ward_id = visible_patient(&state, &caller, id).await?.ward_id;
    let done = state
        .store
        .patient_discharge(id, &caller.0.username, Utc::now())
        .await?;
    let resolved_alerts: Vec<i64> = done.resolved.iter().map(|a| a.id).collect();
    tracing::info!(
        patient_id = id,
        by = caller.0.id,
        alerts_resolved = resolved_alerts.len(),
        "patient discharged"
    );
    crate::audit::record(
        &state,
        &caller,
        "patient.discharge",
        Some(id),
        serde_json::json!({"resolved_alerts": resolved_alerts}),
    )
    .await?;
    // Open dashboards take the alerts out of their queues, and the patient
    // off their ward list, now.
    for alert in done.resolved {
        let _ = state.events.send(vigil_store::LiveEvent::AlertUpdate {
            ward_id: alert.ward_id,
            alert,
            action: "resolved".into(),
            actor: caller.0.username.clone(),
        });
    }
    let _ = state.events.send(vigil_store::LiveEvent::Patient {
        ward_id,
        patient_id: id,
        change: "discharged".into(),
    });
    Ok(Json(Discharged {
        id,
        discharged_at: done.discharged_at,
        resolved_alerts,
    }))
}

pub fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Invalid(m) => ApiError::Invalid(m),
        AdminError::Conflict(m) => ApiError::Conflict(m),
        AdminError::Store(s) => s.into(),
    }
}
