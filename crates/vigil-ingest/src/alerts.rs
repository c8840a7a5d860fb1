//! Built-in NEWS2 alerts, decided from consecutive current scores.
//!
//! Pure: given the previous current score's risk and total, the new one, and
//! the lowest total of the last 24 hours, say which built-in rules fire.
//! Alerts fire on *entering* a worse state: a live alert is updated by every
//! score that keeps the patient there, but once a clinician resolves it, the
//! same state does not raise it again (only a worse one does). That keeps
//! the queue about changes a nurse must act on, not a drumbeat.
//!
//! The pathway rules engine (vigil-rules) adds pathway rules, missed
//! readings and trends; these built-ins are the NEWS2 floor every pathway has.

use vigil_store::Severity;

/// Rule id of the NEWS2 risk alert.
pub const NEWS2: &str = "news2";
/// Rule id of the "NEWS2 rising" alert.
pub const NEWS2_RISING: &str = "news2-rising";

/// The part of a score the alert rules read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreFacts {
    pub total: Option<u8>,
    pub severity: Option<Severity>,
}

/// One built-in rule firing.
#[derive(Clone, Debug, PartialEq)]
pub struct Firing {
    pub rule_id: &'static str,
    pub severity: Severity,
    pub message: String,
}

/// Map a NEWS2 risk word to an alert severity; `low` risk raises nothing.
pub fn severity_of_risk(risk: &str) -> Option<Severity> {
    match risk {
        "low-medium" => Some(Severity::LowMedium),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

/// Everything a current score's built-in firings depend on except which of
/// its rules are live: the live alerts are read only for the scores that
/// may fire at all, all of a pass's at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub prev: Option<ScoreFacts>,
    pub now: ScoreFacts,
    pub partial: bool,
    pub min_total_24h: Option<u8>,
}

impl Decision {
    /// [`decide`] with these facts.
    pub fn firings(&self, live_news2: bool, live_rising: bool) -> Vec<Firing> {
        decide(
            self.prev,
            self.now,
            self.partial,
            live_news2,
            live_rising,
            self.min_total_24h,
        )
    }

    /// Whether anything fires for some state of the live alerts; most
    /// scores fire nothing whatever is live.
    pub fn may_fire(&self) -> bool {
        [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .any(|(a, b)| !self.firings(a, b).is_empty())
    }
}

/// Decide the built-in firings for a new current score.
///
/// - `prev`: the previous current score (None if this is the first).
/// - `live_news2`: whether a NEWS2 alert is live (open/acknowledged/escalated).
/// - `live_rising`: whether a rising alert is live.
/// - `min_total_24h`: the lowest total among the last 24 h of scores before this one.
pub fn decide(
    prev: Option<ScoreFacts>,
    now: ScoreFacts,
    partial: bool,
    live_news2: bool,
    live_rising: bool,
    min_total_24h: Option<u8>,
) -> Vec<Firing> {
    let mut out = Vec::new();
    let lower = if partial {
        " (partial score: at least this)"
    } else {
        ""
    };
    if let (Some(sev), Some(total)) = (now.severity, now.total) {
        let prev_sev = prev.and_then(|p| p.severity);
        if live_news2 || prev_sev.is_none_or(|p| sev > p) {
            out.push(Firing {
                rule_id: NEWS2,
                severity: sev,
                message: format!("NEWS2 {total}: {} risk{lower}", sev.as_str()),
            });
        }
    }
    if let (Some(total), Some(min)) = (now.total, min_total_24h) {
        let climbed = total.saturating_sub(min) >= 2;
        let was_rising = prev
            .and_then(|p| p.total)
            .is_some_and(|p| p.saturating_sub(min) >= 2);
        if climbed && (live_rising || !was_rising) {
            out.push(Firing {
                rule_id: NEWS2_RISING,
                severity: Severity::Low,
                message: format!("NEWS2 rising: {min} → {total} within 24 h{lower}"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(total: u8, sev: Option<Severity>) -> ScoreFacts {
        ScoreFacts {
            total: Some(total),
            severity: sev,
        }
    }

    #[test]
    fn entering_a_worse_band_fires_and_staying_updates_only_while_live() {
        let med = Some(Severity::Medium);
        assert_eq!(
            decide(None, f(5, med), false, false, false, None)[0].severity,
            Severity::Medium
        );
        // Still medium, alert live: the repeat updates it.
        assert_eq!(
            decide(Some(f(5, med)), f(6, med), false, true, false, None).len(),
            1
        );
        // Still medium, alert resolved by a clinician: no new alert.
        assert!(decide(Some(f(5, med)), f(6, med), false, false, false, None).is_empty());
        // Worse: fires again.
        assert_eq!(
            decide(
                Some(f(6, med)),
                f(7, Some(Severity::High)),
                false,
                false,
                false,
                None
            )[0]
            .severity,
            Severity::High
        );
        // Low risk never fires the NEWS2 alert.
        assert!(decide(None, f(2, None), false, false, false, None).is_empty());
    }

    #[test]
    fn rising_fires_once_on_a_climb_of_two_within_a_day() {
        let r = decide(Some(f(1, None)), f(3, None), false, false, false, Some(1));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].rule_id, NEWS2_RISING);
        // Already rising and resolved: no repeat for the same climb.
        assert!(decide(Some(f(3, None)), f(3, None), false, false, false, Some(1)).is_empty());
        assert!(decide(Some(f(1, None)), f(2, None), false, false, false, Some(1)).is_empty());
    }

    #[test]
    fn partial_scores_say_so_in_the_message() {
        let r = decide(None, f(5, Some(Severity::Medium)), true, false, false, None);
        assert!(r[0].message.contains("partial"));
    }
}
