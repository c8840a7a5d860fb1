//! Hosting the pathway rules engine (vigil-rules) in the daemon.
//!
//! The engine is pure and keeps per-patient state in memory; this module
//! feeds it (stored observations, device status, clinician actions, time)
//! and turns its outputs into stored alerts and device `cmd` messages.
//!
//! The database stays authoritative for the alert lifecycle (see
//! docs/alerts.md): pathway, missed-reading and device alerts are written
//! through `Store::alert_fire` with the pathway's escalation time, and the
//! daemon's escalation timer escalates them. The engine runs without its
//! NEWS2 built-ins (`Engine::without_news2_rules`: the NEWS2 alerts come
//! from the stored current score, [`crate::alerts`]) and its escalation
//! outputs are not used. Clinician acknowledgements
//! and resolutions are forwarded to the engine so that a rule resolved by a
//! nurse can fire again later.

use std::path::Path;

use chrono::{DateTime, Utc};
use vigil_clinical::{Reading, Value};
use vigil_rules::{AdviceLevel, Alert, EventKind, Output, Pathways, PatientSetup};
use vigil_store::{AlertFiring, EpisodeSettings, ObsValue, Severity};

/// The pathway files shipped with Vigil, used when `pathways.dir` is left
/// at its default and that folder does not exist (e.g. running the binary
/// outside a checkout).
pub const SHIPPED: [(&str, &str); 4] = [
    (
        "general.toml",
        include_str!("../../../pathways/general.toml"),
    ),
    ("copd.toml", include_str!("../../../pathways/copd.toml")),
    (
        "heart-failure.toml",
        include_str!("../../../pathways/heart-failure.toml"),
    ),
    ("asthma.toml", include_str!("../../../pathways/asthma.toml")),
];

/// Load every `*.toml` in `dir` (or the shipped set when `dir` is `None`).
/// The error is one line: `file:line: reason`.
pub fn load_pathways(dir: Option<&Path>) -> Result<Pathways, String> {
    let Some(dir) = dir else {
        return Pathways::load(SHIPPED).map_err(|e| e.to_string());
    };
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("pathways.dir {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("pathways.dir {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "pathways.dir {}: no *.toml pathway files",
            dir.display()
        ));
    }
    Pathways::load(files.iter().map(|(f, t)| (f.as_str(), t.as_str()))).map_err(|e| e.to_string())
}

/// The engine's severity words are NEWS2 risk words, like the store's.
pub fn severity(s: vigil_rules::Severity) -> Severity {
    match s {
        vigil_rules::Severity::Low => Severity::Low,
        vigil_rules::Severity::LowMedium => Severity::LowMedium,
        vigil_rules::Severity::Medium => Severity::Medium,
        vigil_rules::Severity::High => Severity::High,
    }
}

fn risk(s: Severity) -> vigil_rules::Severity {
    match s {
        Severity::Low => vigil_rules::Severity::Low,
        Severity::LowMedium => vigil_rules::Severity::LowMedium,
        Severity::Medium => vigil_rules::Severity::Medium,
        Severity::High => vigil_rules::Severity::High,
    }
}

/// The engine's setup for an episode.
pub fn setup(s: &EpisodeSettings, admitted_at: DateTime<Utc>) -> PatientSetup {
    let episode = vigil_store::scoring::clinical_episode(s);
    let mut setup = PatientSetup::new(&s.pathway, admitted_at);
    // A scale recorded by a clinician overrides the pathway default.
    if s.spo2_scale_set_by.is_some() {
        setup.spo2_scale = Some(episode.spo2_scale.clone());
    }
    setup.episode = episode;
    setup.obs_every_minutes = s.obs_every_minutes.and_then(|m| u32::try_from(m).ok());
    setup
}

/// A stored observation as the engine reads it.
pub fn reading(
    code: &str,
    value: &ObsValue,
    unit: Option<&str>,
    at: DateTime<Utc>,
    device: &str,
    id: i64,
) -> Option<Reading> {
    let v = match value {
        ObsValue::Number(n) => Value::Number(*n),
        ObsValue::Text(t) => Value::Text(t.clone()),
    };
    let observation = vigil_clinical::validate(code, unit, &v).ok()?;
    Some(Reading {
        observation,
        measured_at: at,
        source: Some(device.to_string()),
        obs_id: Some(id),
    })
}

/// [`reading`] of a stored observation row.
pub fn stored_reading(r: &vigil_store::ObservationRow) -> Option<Reading> {
    reading(
        &r.code,
        &r.value,
        r.unit.as_deref(),
        r.measured_at,
        &r.device_id,
        r.id,
    )
}

/// How long an unacknowledged alert of `sev` waits on this pathway before
/// it escalates; `None` means it does not escalate.
pub fn escalation(p: &vigil_rules::Pathway, sev: Severity) -> Option<chrono::Duration> {
    p.escalation.after(risk(sev))
}

/// What the daemon should do with one engine output.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Raise or update a stored alert.
    Fire {
        firing: AlertFiring,
        update_only: bool,
    },
    /// Send a message to a device's `cmd` topic.
    Cmd {
        device: String,
        body: serde_json::Value,
    },
}

/// Translate an output. Escalations are the daemon's own (see the module
/// docs) and produce nothing here; the engine runs without its NEWS2
/// built-ins, and pathways may not name a rule `news2` or `news2-rising`,
/// so no NEWS2 alert comes this way.
pub fn effect(
    pathway: Option<&vigil_rules::Pathway>,
    ward_id: i64,
    out: Output,
    now: DateTime<Utc>,
) -> Option<Effect> {
    let fire = |a: Alert, update_only: bool| {
        let sev = severity(a.severity);
        // The pathway's escalation delay for this severity, from now.
        let escalate_at = pathway.and_then(|p| escalation(p, sev)).map(|d| now + d);
        Effect::Fire {
            firing: AlertFiring {
                patient_id: a.patient,
                ward_id,
                rule_id: a.rule.clone(),
                severity: sev,
                message: a.message.clone(),
                value: serde_json::json!({"latest": a.latest_value}),
                evidence: a.obs_ids.clone(),
                at: a.latest_measured_at.unwrap_or(now),
                escalate_at,
            },
            update_only,
        }
    };
    match out {
        Output::AlertRaised(a) => Some(fire(a, false)),
        // Repeats and severity rises update the stored alert; the engine's
        // own acknowledge/resolve echoes and escalations are the store's
        // business already.
        Output::AlertUpdated { alert, event }
            if matches!(event.kind, EventKind::Repeated | EventKind::SeverityRaised) =>
        {
            Some(fire(alert, true))
        }
        Output::AlertUpdated { .. } | Output::AlertEscalated { .. } => None,
        Output::Advice {
            device: Some(device),
            level,
            text,
            ..
        } => {
            let level = match level {
                AdviceLevel::Routine => "routine",
                AdviceLevel::Urgent => "urgent",
                AdviceLevel::Emergency => "emergency",
            };
            Some(Effect::Cmd {
                device,
                body: serde_json::json!({"type": "advice", "level": level, "text": text}),
            })
        }
        Output::Repeat {
            device: Some(device),
            code,
            reason,
            ..
        } => Some(Effect::Cmd {
            device,
            body: serde_json::json!({"type": "repeat", "code": code.as_str(), "reason": reason}),
        }),
        Output::Advice { device: None, .. } | Output::Repeat { device: None, .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_pathways_load_and_a_bad_dir_is_one_line() {
        let p = load_pathways(None).expect("shipped pathways");
        for name in ["general", "copd", "heart-failure", "asthma"] {
            assert!(p.get(name).is_some(), "{name}");
        }
        let e = load_pathways(Some(Path::new("/no/such/dir"))).expect_err("missing dir");
        assert!(
            e.starts_with("pathways.dir /no/such/dir") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn a_bad_pathway_file_is_refused_with_file_and_line() {
        let dir = std::env::temp_dir().join(format!("vigil-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("x.toml"),
            "name = \"x\"\ntitle = \"X\"\nfreshnes = \"6h\"\n",
        )
        .expect("write");
        let e = load_pathways(Some(&dir)).expect_err("unknown key");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("x.toml:3") && e.contains("freshnes"), "{e}");
    }
}
