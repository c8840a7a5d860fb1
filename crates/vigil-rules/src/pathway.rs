//! Pathway files (CONTRACTS.md §5): parsing, validation and the typed
//! [`Pathway`] the engine runs.
//!
//! Parsing takes the file's text and its name (for messages); the daemon
//! reads the files. Every error names the file, the line and the reason:
//! unknown keys, bad durations, unknown codes or severities, and rule
//! expressions that do not compile are all refused at load, never at the
//! bedside. The full key reference is in `docs/rules.md`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use vigil_clinical::thresholds::spo2::Spo2Target;
use vigil_clinical::{Code, Spo2Scale};

use crate::duration;
use crate::expr::Compiled;
use crate::{AdviceLevel, Severity};

/// A pathway file that could not be loaded: `file:line: reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PathwayError {
    /// The file name as given to [`Pathway::parse`].
    pub file: String,
    /// 1-based line of the offending key (1 when the file as a whole is wrong).
    pub line: usize,
    /// One line saying what is wrong.
    pub reason: String,
}

/// A missed-reading rule: no reading of any of `codes` for `every + grace`.
#[derive(Clone, Debug)]
pub struct Expect {
    /// Rule id (`missed-` + codes unless given).
    pub id: String,
    /// Any of these codes satisfies the rule.
    pub codes: Vec<Code>,
    /// Expected interval.
    pub every: Duration,
    /// Slack after the interval before the alert.
    pub grace: Duration,
    /// Alert severity.
    pub severity: Severity,
    /// Alert text.
    pub message: String,
}

/// Patient-facing guidance sent on the device `cmd` topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceSpec {
    /// `routine`, `urgent` or `emergency`.
    pub level: AdviceLevel,
    /// What the patient reads.
    pub text: String,
}

/// A request to measure again, sent on the device `cmd` topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepeatSpec {
    /// The code to measure again.
    pub code: Code,
    /// Why (patient-facing).
    pub reason: String,
}

/// A pathway rule: an expression over the patient's current state.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique within the pathway; the alert key with the patient.
    pub id: String,
    /// The CEL source, as written.
    pub when: String,
    /// Alert severity; `None` for a feedback-only rule (no alert).
    pub severity: Option<Severity>,
    /// Alert text for the clinician.
    pub message: String,
    /// Patient advice when the rule fires.
    pub advice: Option<AdviceSpec>,
    /// Repeat request when the rule fires.
    pub repeat: Option<RepeatSpec>,
    /// The codes whose new readings make the rule run (from `on`, else the
    /// codes the expression reads; empty = every reading).
    pub triggers: BTreeSet<Code>,
    pub(crate) compiled: Compiled,
}

/// Unacknowledged for this long → escalated. `None`: never automatically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Escalation {
    /// Per severity.
    pub after: BTreeMap<Severity, Duration>,
}

impl Escalation {
    /// The escalation delay for `severity`, if any.
    pub fn after(&self, severity: Severity) -> Option<Duration> {
        self.after.get(&severity).copied()
    }
}

/// Device rules (`[device]`): battery, lead-off, offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRules {
    /// Battery at or below this percentage raises `device-battery-low`.
    pub battery_low_pct: u8,
    /// No message from a device for this long raises `device-offline`.
    pub offline_after: Duration,
    /// Severity of device alerts.
    pub severity: Severity,
}

impl Default for DeviceRules {
    fn default() -> Self {
        DeviceRules {
            battery_low_pct: 15,
            offline_after: Duration::hours(2),
            severity: Severity::Low,
        }
    }
}

/// A loaded, validated pathway.
#[derive(Clone, Debug)]
pub struct Pathway {
    /// Machine name, e.g. `copd`.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Default SpO2 scale for episodes on this pathway.
    pub spo2_scale: Spo2Scale,
    /// Default individual SpO2 target (else 88–92 on scale 2, 94–98 on scale 1).
    pub spo2_target: Option<Spo2Target>,
    /// Readings older than this do not count (NEWS2 and rules).
    pub freshness: Duration,
    /// Patient feedback is sent only for readings at most this old on arrival.
    pub feedback_max_age: Duration,
    /// NEWS2 climbing by at least 2 within this window raises `news2-rising`.
    pub rising_window: Duration,
    /// Missed-reading rules.
    pub expects: Vec<Expect>,
    /// Pathway rules.
    pub rules: Vec<Rule>,
    /// Escalation delays.
    pub escalation: Escalation,
    /// Device rules.
    pub device: DeviceRules,
}

/// Rule ids the engine uses itself; a pathway may not reuse them.
pub const BUILT_IN_RULES: [&str; 5] = [
    "news2",
    "news2-rising",
    "device-battery-low",
    "device-lead-off",
    "device-offline",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPathway {
    name: Spanned<String>,
    title: String,
    spo2_scale: Option<Spanned<u8>>,
    spo2_target: Option<Spanned<(u8, u8)>>,
    freshness: Option<Spanned<String>>,
    feedback_max_age: Option<Spanned<String>>,
    rising_window: Option<Spanned<String>>,
    #[serde(default)]
    expect: Vec<RawExpect>,
    #[serde(default)]
    rule: Vec<RawRule>,
    escalation: Option<RawEscalation>,
    device: Option<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    id: Option<Spanned<String>>,
    codes: Spanned<Vec<String>>,
    every: Spanned<String>,
    grace: Option<Spanned<String>>,
    severity: Spanned<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    when: Spanned<String>,
    severity: Option<Spanned<String>>,
    message: String,
    on: Option<Spanned<Vec<String>>>,
    advice: Option<Spanned<RawAdvice>>,
    repeat: Option<Spanned<RawRepeat>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvice {
    level: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepeat {
    code: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    high: Option<Spanned<String>>,
    medium: Option<Spanned<String>>,
    #[serde(rename = "low-medium")]
    low_medium: Option<Spanned<String>>,
    low: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    battery_low_pct: Option<Spanned<u8>>,
    offline_after: Option<Spanned<String>>,
    severity: Option<Spanned<String>>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        reason: impl Into<String>,
    ) -> Result<T, PathwayError> {
        Err(PathwayError {
            file: self.file.to_string(),
            line: self.line(span.start),
            reason: reason.into(),
        })
    }

    fn duration(&self, s: &Spanned<String>, key: &str) -> Result<Duration, PathwayError> {
        duration::parse(s.get_ref()).or_else(|r| self.err(s.span(), format!("`{key}`: {r}")))
    }

    fn severity(&self, s: &Spanned<String>) -> Result<Severity, PathwayError> {
        parse_severity(s.get_ref()).map_or_else(
            || {
                self.err(
                    s.span(),
                    format!(
                        "unknown severity {:?} (expected low, low-medium, medium or high)",
                        s.get_ref()
                    ),
                )
            },
            Ok,
        )
    }

    fn code(&self, s: &str, span: std::ops::Range<usize>) -> Result<Code, PathwayError> {
        Code::parse(s).map_or_else(
            || self.err(span, format!("unknown observation code {s:?}")),
            Ok,
        )
    }
}

/// `low`, `low-medium`, `medium` or `high`.
pub fn parse_severity(s: &str) -> Option<Severity> {
    match s {
        "low" => Some(Severity::Low),
        "low-medium" => Some(Severity::LowMedium),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

impl Pathway {
    /// Parses and validates one pathway file. `file` is used only in errors.
    pub fn parse(file: &str, text: &str) -> Result<Pathway, PathwayError> {
        let cx = Ctx { file, text };
        let raw: RawPathway = toml::from_str(text).map_err(|e| PathwayError {
            file: file.to_string(),
            line: e.span().map_or(1, |s| cx.line(s.start)),
            reason: e.message().trim().to_string(),
        })?;

        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return cx.err(
                raw.name.span(),
                "`name` must be lowercase letters, digits and '-'",
            );
        }
        let spo2_scale = match raw.spo2_scale.as_ref().map(|s| (*s.get_ref(), s.span())) {
            None | Some((1, _)) => Spo2Scale::One,
            Some((2, _)) => Spo2Scale::Two,
            Some((_, span)) => return cx.err(span, "`spo2_scale` must be 1 or 2"),
        };
        let spo2_target = match &raw.spo2_target {
            None => None,
            Some(t) => {
                let (lo, hi) = *t.get_ref();
                match Spo2Target::new(lo, hi) {
                    Ok(t) => Some(t),
                    Err(e) => return cx.err(t.span(), format!("`spo2_target`: {e}")),
                }
            }
        };
        let dur_or = |s: &Option<Spanned<String>>, key: &str, d: Duration| {
            s.as_ref().map_or(Ok(d), |s| cx.duration(s, key))
        };
        let freshness = dur_or(
            &raw.freshness,
            "freshness",
            vigil_clinical::default_freshness(),
        )?;
        let feedback_max_age = dur_or(
            &raw.feedback_max_age,
            "feedback_max_age",
            Duration::minutes(15),
        )?;
        let rising_window = dur_or(&raw.rising_window, "rising_window", Duration::hours(24))?;

        let mut ids: BTreeSet<String> = BUILT_IN_RULES.iter().map(|s| s.to_string()).collect();
        let mut claim = |id: &str, span: std::ops::Range<usize>| -> Result<(), PathwayError> {
            if id.is_empty() {
                return cx.err(span, "rule `id` must not be empty");
            }
            if !ids.insert(id.to_string()) {
                return cx.err(span, format!("rule id {id:?} is used twice or is built in"));
            }
            Ok(())
        };

        let mut expects = Vec::new();
        for e in &raw.expect {
            if e.codes.get_ref().is_empty() {
                return cx.err(e.codes.span(), "`codes` must name at least one code");
            }
            let codes = e
                .codes
                .get_ref()
                .iter()
                .map(|c| cx.code(c, e.codes.span()))
                .collect::<Result<Vec<_>, _>>()?;
            let id = match &e.id {
                Some(id) => id.get_ref().clone(),
                None => format!(
                    "missed-{}",
                    codes
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join("-")
                ),
            };
            claim(&id, e.id.as_ref().map_or(e.codes.span(), |s| s.span()))?;
            let every = cx.duration(&e.every, "every")?;
            let grace = match &e.grace {
                Some(g) => cx.duration(g, "grace")?,
                None => Duration::zero(),
            };
            let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            expects.push(Expect {
                message: e.message.clone().unwrap_or_else(|| {
                    format!(
                        "No {} reading for {}",
                        names.join(" or "),
                        duration::format(every + grace)
                    )
                }),
                id,
                codes,
                every,
                grace,
                severity: cx.severity(&e.severity)?,
            });
        }

        let mut rules = Vec::new();
        for r in &raw.rule {
            let id = r.id.get_ref().clone();
            claim(&id, r.id.span())?;
            let compiled = match Compiled::compile(r.when.get_ref()) {
                Ok(c) => c,
                Err(reason) => {
                    return cx.err(
                        r.when.span(),
                        format!("rule {id:?}: `when` does not compile: {reason}"),
                    );
                }
            };
            let severity = r.severity.as_ref().map(|s| cx.severity(s)).transpose()?;
            let advice = match &r.advice {
                None => None,
                Some(a) => {
                    let level = match a.get_ref().level.as_str() {
                        "routine" => AdviceLevel::Routine,
                        "urgent" => AdviceLevel::Urgent,
                        "emergency" => AdviceLevel::Emergency,
                        other => {
                            return cx.err(
                                a.span(),
                                format!("unknown advice level {other:?} (expected routine, urgent or emergency)"),
                            );
                        }
                    };
                    Some(AdviceSpec {
                        level,
                        text: a.get_ref().text.clone(),
                    })
                }
            };
            let repeat = match &r.repeat {
                None => None,
                Some(p) => Some(RepeatSpec {
                    code: cx.code(&p.get_ref().code, p.span())?,
                    reason: p.get_ref().reason.clone(),
                }),
            };
            if severity.is_none() && advice.is_none() && repeat.is_none() {
                return cx.err(
                    r.id.span(),
                    format!("rule {id:?} has no severity, advice or repeat: it would do nothing"),
                );
            }
            let triggers = match &r.on {
                Some(on) => on
                    .get_ref()
                    .iter()
                    .map(|c| cx.code(c, on.span()))
                    .collect::<Result<BTreeSet<_>, _>>()?,
                None => compiled.codes.clone(),
            };
            rules.push(Rule {
                id,
                when: r.when.get_ref().clone(),
                severity,
                message: r.message.clone(),
                advice,
                repeat,
                triggers,
                compiled,
            });
        }

        let mut escalation = Escalation::default();
        if let Some(e) = &raw.escalation {
            for (sev, d, key) in [
                (Severity::High, &e.high, "high"),
                (Severity::Medium, &e.medium, "medium"),
                (Severity::LowMedium, &e.low_medium, "low-medium"),
                (Severity::Low, &e.low, "low"),
            ] {
                if let Some(d) = d {
                    escalation.after.insert(sev, cx.duration(d, key)?);
                }
            }
        }
        for (sev, key) in [
            (Severity::High, "high"),
            (Severity::Medium, "medium"),
            (Severity::LowMedium, "low-medium"),
        ] {
            if escalation.after(sev).is_none() {
                return cx.err(0..0, format!("`[escalation]` must set `{key}`: an unacknowledged {key} alert has to escalate"));
            }
        }

        let mut device = DeviceRules::default();
        if let Some(d) = &raw.device {
            if let Some(b) = &d.battery_low_pct {
                if *b.get_ref() > 100 {
                    return cx.err(b.span(), "`battery_low_pct` must be 0–100");
                }
                device.battery_low_pct = *b.get_ref();
            }
            if let Some(o) = &d.offline_after {
                device.offline_after = cx.duration(o, "offline_after")?;
            }
            if let Some(s) = &d.severity {
                device.severity = cx.severity(s)?;
            }
        }

        Ok(Pathway {
            name,
            title: raw.title,
            spo2_scale,
            spo2_target,
            freshness,
            feedback_max_age,
            rising_window,
            expects,
            rules,
            escalation,
            device,
        })
    }

    /// The longest window any rule looks back over (trend functions,
    /// freshness, expect intervals, the rising window): how much history the
    /// engine keeps for a patient on this pathway.
    pub fn history_needed(&self) -> Duration {
        let mut d = self.freshness.max(self.rising_window);
        for r in &self.rules {
            for t in &r.compiled.trends {
                d = d.max(t.window);
            }
        }
        for e in &self.expects {
            d = d.max(e.every + e.grace);
        }
        d + self.freshness
    }

    /// Each code a trend call reads, with how far back its readings must
    /// be held for every trend over it to answer from now on: the longest
    /// window over the code, plus the freshness a late reading may be
    /// measured within. What a rebuilt engine (after a restart) must be
    /// given of a patient's stored history; every other code's rules read
    /// only its newest reading.
    pub fn trend_history(&self) -> BTreeMap<Code, Duration> {
        let mut by_code: BTreeMap<Code, Duration> = BTreeMap::new();
        for r in &self.rules {
            for t in &r.compiled.trends {
                let w = by_code.entry(t.code).or_insert(t.window);
                *w = (*w).max(t.window);
            }
        }
        for w in by_code.values_mut() {
            *w += self.freshness;
        }
        by_code
    }
}

/// The set of loaded pathways, by name.
#[derive(Clone, Debug, Default)]
pub struct Pathways {
    by_name: BTreeMap<String, Pathway>,
}

impl Pathways {
    /// Loads `(file name, text)` pairs; fails on the first bad file, or on
    /// two files with the same `name`.
    pub fn load<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Pathways, PathwayError> {
        let mut by_name = BTreeMap::new();
        for (file, text) in files {
            let p = Pathway::parse(file, text)?;
            if by_name.contains_key(&p.name) {
                return Err(PathwayError {
                    file: file.to_string(),
                    line: 1,
                    reason: format!(
                        "pathway name {:?} is already loaded from another file",
                        p.name
                    ),
                });
            }
            by_name.insert(p.name.clone(), p);
        }
        Ok(Pathways { by_name })
    }

    /// The pathway called `name`.
    pub fn get(&self, name: &str) -> Option<&Pathway> {
        self.by_name.get(name)
    }

    /// Every pathway, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Pathway> {
        self.by_name.values()
    }

    /// Adds or replaces one pathway.
    pub fn insert(&mut self, p: Pathway) {
        self.by_name.insert(p.name.clone(), p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: [(&str, &str); 4] = [
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

    const MINIMAL: &str = "name = \"t\"\ntitle = \"T\"\n[escalation]\nhigh = \"5m\"\nmedium = \"15m\"\nlow-medium = \"30m\"\n";

    #[test]
    fn every_shipped_pathway_loads() {
        let all = Pathways::load(SHIPPED).unwrap();
        for name in ["general", "copd", "heart-failure", "asthma"] {
            let p = all.get(name).unwrap();
            assert!(!p.rules.is_empty() && !p.expects.is_empty(), "{name}");
            assert_eq!(
                p.escalation.after(Severity::High),
                Some(Duration::minutes(5))
            );
        }
        let copd = all.get("copd").unwrap();
        assert_eq!(copd.spo2_scale, Spo2Scale::Two);
        assert_eq!(copd.spo2_target, Some(Spo2Target::HYPERCAPNIC));
    }

    #[test]
    fn trend_history_is_each_trend_codes_longest_window_plus_freshness() {
        let all = Pathways::load(SHIPPED).unwrap();
        let hf = all.get("heart-failure").unwrap();
        // change("weight", "3d") and median("pulse", "24h"); freshness 6h.
        assert_eq!(
            hf.trend_history(),
            BTreeMap::from([
                (Code::Weight, Duration::days(3) + Duration::hours(6)),
                (Code::Pulse, Duration::hours(24) + Duration::hours(6)),
            ])
        );
        let text = format!(
            "freshness = \"1h\"\n{MINIMAL}\n[[rule]]\nid = \"a\"\nwhen = 'change(\"spo2\", \"2h\") < -3 || mean(\"spo2\", \"30m\") < 90'\nseverity = \"low\"\nmessage = \"m\"\n[[rule]]\nid = \"b\"\nwhen = \"pulse > 130\"\nseverity = \"low\"\nmessage = \"m\"\n"
        );
        let p = Pathway::parse("t.toml", &text).unwrap();
        assert_eq!(
            p.trend_history(),
            BTreeMap::from([(Code::Spo2, Duration::hours(3))]),
            "the longest window over a code, and no code only read as it stands"
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = format!(
            "{MINIMAL}\n[[rule]]\nid = \"x\"\nwhen = \"spo2 < 90\"\nseverity = \"low\"\nmessage = \"m\"\nthreshold = 3\n"
        );
        let e = Pathway::parse("bad.toml", &text).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("bad.toml", 13), "{e}");
        assert!(e.reason.contains("threshold"), "{e}");
        assert!(e.to_string().starts_with("bad.toml:13: "), "{e}");
    }

    #[test]
    fn rule_that_does_not_compile_is_refused_with_file_line_and_reason() {
        let text = format!(
            "{MINIMAL}\n[[rule]]\nid = \"x\"\nwhen = \"spo2 <\"\nseverity = \"low\"\nmessage = \"m\"\n"
        );
        let e = Pathway::parse("p.toml", &text).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.reason.contains("does not compile"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_line() {
        for (extra, line, want) in [
            ("freshness = \"soon\"\n", 1, "bad duration"),
            (
                "[[expect]]\ncodes = [\"spo3\"]\nevery = \"8h\"\nseverity = \"low\"\n",
                8,
                "unknown observation code",
            ),
            (
                "[[expect]]\ncodes = [\"spo2\"]\nevery = \"8h\"\nseverity = \"urgent\"\n",
                10,
                "unknown severity",
            ),
            (
                "[[rule]]\nid = \"news2\"\nwhen = \"true\"\nseverity = \"low\"\nmessage = \"m\"\n",
                8,
                "built in",
            ),
            (
                "[[rule]]\nid = \"r\"\nwhen = \"true\"\nmessage = \"m\"\n",
                8,
                "do nothing",
            ),
        ] {
            // Top-level keys go before the tables, table entries after.
            let text = if extra.starts_with("freshness") {
                format!("{extra}{MINIMAL}")
            } else {
                format!("{MINIMAL}{extra}")
            };
            let e = Pathway::parse("p.toml", &text).unwrap_err();
            assert!(e.reason.contains(want), "{extra}: {e}");
            assert_eq!(e.line, line, "{extra}: {e}");
        }
    }

    #[test]
    fn escalation_must_cover_the_urgent_severities() {
        let e = Pathway::parse("p.toml", "name = \"t\"\ntitle = \"T\"\n").unwrap_err();
        assert!(e.reason.contains("escalation"), "{e}");
    }

    #[test]
    fn two_files_with_one_name_are_refused() {
        let e = Pathways::load([("a.toml", MINIMAL), ("b.toml", MINIMAL)]).unwrap_err();
        assert_eq!(e.file, "b.toml");
    }
}
