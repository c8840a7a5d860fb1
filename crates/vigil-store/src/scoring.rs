//! From what is stored to a NEWS2 result: load the patient's latest reading
//! of each code as of a time, and their episode settings, and hand them to
//! `vigil_clinical::score_home`. The clinical logic stays in the pure crate;
//! this module only translates records.

use chrono::{DateTime, Duration, Utc};
use vigil_clinical::news2::{Acvpu, EnteredBy, Spo2ScaleSetting};
use vigil_clinical::{Attested, Episode, News2Score, Reading, Spo2Scale, Value, validate};

use crate::model::{EpisodeSettings, NewScore, ObsValue, ObservationRow};
use crate::{Result, Store};

/// The clinical episode of stored settings. Nurse-entered facts carry the
/// user who entered them.
pub fn clinical_episode(s: &EpisodeSettings) -> Episode {
    let by = |u: &Option<String>| EnteredBy::Clinician {
        user: u.clone().unwrap_or_else(|| "unknown".into()),
    };
    Episode {
        spo2_scale: Spo2ScaleSetting {
            scale: if s.spo2_scale == 2 {
                Spo2Scale::Two
            } else {
                Spo2Scale::One
            },
            set_by: s.spo2_scale_set_by.clone(),
            set_at: s.spo2_scale_set_at,
        },
        oxygen: match (s.oxygen, s.oxygen_set_at) {
            (Some(v), Some(at)) => Some(Attested {
                value: v,
                recorded_at: at,
                entered_by: by(&s.oxygen_set_by),
            }),
            _ => None,
        },
        consciousness: match (s.acvpu.as_deref().and_then(Acvpu::parse), s.acvpu_set_at) {
            (Some(v), Some(at)) => Some(Attested {
                value: v,
                recorded_at: at,
                entered_by: by(&s.acvpu_set_by),
            }),
            _ => None,
        },
        under_16: s.under_16,
        pregnant: s.pregnant,
    }
}

/// Stored rows back to validated readings. A row that no longer validates
/// (a range tightened since it was stored) is left out, and so shows as
/// missing rather than being scored.
pub fn readings(rows: &[ObservationRow]) -> Vec<Reading> {
    rows.iter()
        .filter_map(|r| {
            let value = match &r.value {
                ObsValue::Number(n) => Value::Number(*n),
                ObsValue::Text(t) => Value::Text(t.clone()),
            };
            let observation = validate(&r.code, r.unit.as_deref(), &value).ok()?;
            Some(Reading {
                observation,
                measured_at: r.measured_at,
                source: Some(r.device_id.clone()),
                obs_id: Some(r.id),
            })
        })
        .collect()
}

/// Score a patient as of `at` from what is stored. `None` when the patient
/// has no open episode.
/// `freshness` gives the window for the episode's pathway.
pub async fn score_patient(
    store: &dyn Store,
    patient_id: i64,
    at: DateTime<Utc>,
    freshness: &(dyn Fn(&str) -> Duration + Send + Sync),
) -> Result<Option<(EpisodeSettings, News2Score)>> {
    let Some(settings) = store.episode_settings(patient_id).await? else {
        return Ok(None);
    };
    let rows = store.latest_per_code(patient_id, at).await?;
    let score = score_latest(&settings, &rows, freshness(&settings.pathway), at);
    Ok(Some((settings, score)))
}

/// NEWS2 as of `at` from the episode's settings and the newest stored
/// reading of each code (`Store::latest_per_code`), for a caller that
/// reads those rows for more than the score.
pub fn score_latest(
    settings: &EpisodeSettings,
    rows: &[ObservationRow],
    window: Duration,
    at: DateTime<Utc>,
) -> News2Score {
    vigil_clinical::score_home(&readings(rows), &clinical_episode(settings), window, at)
}

/// The row to store for a score.
pub fn to_new_score(
    patient_id: i64,
    score: &News2Score,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> NewScore {
    let detail = serde_json::to_value(score).unwrap_or(serde_json::Value::Null);
    NewScore {
        patient_id,
        scored_at: at,
        computed_at: now,
        total: score.total.map(i64::from),
        risk: detail
            .get("risk")
            .and_then(|r| r.as_str())
            .map(str::to_string),
        partial: score.partial,
        obs_ids: score.subscores.iter().filter_map(|s| s.obs_id).collect(),
        detail,
    }
}

/// How far back the ward list looks for the NEWS2 a patient's score now is
/// compared with ([`crate::Store::scores_earlier`]): a day, the span a ward
/// round asks about ("how were they yesterday?").
pub const EARLIER_SCORE_AGO: Duration = Duration::hours(24);
