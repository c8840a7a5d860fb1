//! Durations in human form (`"90s"`, `"15m"`, `"6h"`, `"7d"`), as pathway
//! files and rule functions write them.

use chrono::Duration;

/// Parses a human duration (humantime syntax) into a [`chrono::Duration`].
///
/// Returns a one-line reason on failure; a zero duration is refused because
/// every duration in a pathway is a window or a deadline.
pub fn parse(s: &str) -> Result<Duration, String> {
    let std =
        humantime::parse_duration(s.trim()).map_err(|e| format!("bad duration {s:?}: {e}"))?;
    if std.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Duration::from_std(std).map_err(|_| format!("duration {s:?} is too long"))
}

/// Formats a duration back in human form (for messages).
pub fn format(d: Duration) -> String {
    match d.to_std() {
        Ok(s) => humantime::format_duration(s).to_string(),
        Err(_) => format!("{}s", d.num_seconds()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_forms_parse() {
        assert_eq!(parse("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse("15m"), Ok(Duration::minutes(15)));
        assert_eq!(parse("6h"), Ok(Duration::hours(6)));
        assert_eq!(parse("7d"), Ok(Duration::days(7)));
        assert_eq!(parse("1h 30m"), Ok(Duration::minutes(90)));
    }

    #[test]
    fn nonsense_and_zero_are_refused() {
        assert!(parse("soon").is_err());
        assert!(parse("6").is_err());
        assert!(parse("0s").is_err());
    }

    #[test]
    fn formats_back() {
        assert_eq!(format(Duration::minutes(15)), "15m");
    }
}
