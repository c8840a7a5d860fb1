//! The search parameters Vigil supports: `code` (token) and `date` (with
//! `eq`, `ge`, `le`, `gt`, `lt` prefixes, repeatable), per FHIR R4
//! search.html. Repeated parameters must all hold (AND); commas inside one
//! `code` value are alternatives (OR).

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::FhirError;

/// One alternative of a `code` token: `system|code`, `|code` (no system),
/// or `code` (any system).
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// `None`: any system. `Some("")`: no system.
    pub system: Option<String>,
    pub code: String,
}

impl Token {
    pub fn matches(&self, system: &str, code: &str) -> bool {
        self.code == code && self.system.as_deref().is_none_or(|s| s == system)
    }
}

/// Parse one `code` value (comma-separated alternatives).
pub fn parse_token_list(raw: &str) -> Result<Vec<Token>, FhirError> {
    let mut out = Vec::new();
    for alt in raw.split(',') {
        let (system, code) = match alt.split_once('|') {
            Some((s, c)) => (Some(s.to_string()), c),
            None => (None, alt),
        };
        if code.is_empty() {
            return Err(FhirError::Invalid(format!(
                "code: expected system|code or code, got {raw:?}"
            )));
        }
        out.push(Token {
            system,
            code: code.to_string(),
        });
    }
    Ok(out)
}

/// A `date` comparison prefix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prefix {
    Eq,
    Ge,
    Le,
    Gt,
    Lt,
}

/// One `date` parameter: a prefix and the interval its value denotes
/// (a whole day for `2026-11-22`, one instant for a full date-time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DateParam {
    pub prefix: Prefix,
    /// First instant of the interval.
    pub lo: DateTime<Utc>,
    /// Last instant of the interval (inclusive).
    pub hi: DateTime<Utc>,
}

impl DateParam {
    pub fn parse(raw: &str) -> Result<DateParam, FhirError> {
        let (prefix, value) = match raw.get(..2) {
            Some("eq") => (Prefix::Eq, &raw[2..]),
            Some("ge") => (Prefix::Ge, &raw[2..]),
            Some("le") => (Prefix::Le, &raw[2..]),
            Some("gt") => (Prefix::Gt, &raw[2..]),
            Some("lt") => (Prefix::Lt, &raw[2..]),
            _ => (Prefix::Eq, raw),
        };
        let bad = || {
            FhirError::Invalid(format!(
                "date: expected [eq|ge|le|gt|lt] then YYYY-MM-DD or an RFC 3339 date-time with zone, got {raw:?}"
            ))
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(value) {
            let t = t.with_timezone(&Utc);
            return Ok(DateParam {
                prefix,
                lo: t,
                hi: t,
            });
        }
        let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad())?;
        // A date without a time is a whole day; Vigil reads it in UTC.
        let lo = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
        Ok(DateParam {
            prefix,
            lo,
            hi: lo + Duration::days(1) - Duration::nanoseconds(1),
        })
    }

    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        match self.prefix {
            Prefix::Eq => self.lo <= t && t <= self.hi,
            Prefix::Ge => t >= self.lo,
            Prefix::Le => t <= self.hi,
            Prefix::Gt => t > self.hi,
            Prefix::Lt => t < self.lo,
        }
    }
}

/// The narrowest `[from, to]` (inclusive) that contains every match of all
/// of `dates`, to narrow the store query; exact matching happens after.
pub fn bounds(dates: &[DateParam]) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut from: Option<DateTime<Utc>> = None;
    let mut to: Option<DateTime<Utc>> = None;
    for d in dates {
        let (lo, hi) = match d.prefix {
            Prefix::Eq => (Some(d.lo), Some(d.hi)),
            Prefix::Ge => (Some(d.lo), None),
            Prefix::Gt => (Some(d.hi), None),
            Prefix::Le => (None, Some(d.hi)),
            Prefix::Lt => (None, Some(d.lo)),
        };
        if let Some(lo) = lo {
            from = Some(from.map_or(lo, |f| f.max(lo)));
        }
        if let Some(hi) = hi {
            to = Some(to.map_or(hi, |t| t.min(hi)));
        }
    }
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn tokens_take_system_and_code_or_code_alone() {
        let ts = parse_token_list("http://loinc.org|8867-4,9279-1").expect("tokens");
        assert!(ts[0].matches("http://loinc.org", "8867-4"));
        assert!(!ts[0].matches("http://snomed.info/sct", "8867-4"));
        assert!(ts[1].matches("http://loinc.org", "9279-1"));
        assert!(ts[1].matches("anything", "9279-1"));
        assert!(parse_token_list("http://loinc.org|").is_err());
        assert!(parse_token_list("").is_err());
    }

    #[test]
    fn date_prefixes_compare_against_the_whole_day_or_the_instant() {
        let ge = DateParam::parse("ge2026-11-22").expect("ge");
        assert!(ge.matches(t("2026-11-22T00:00:00Z")));
        assert!(!ge.matches(t("2026-11-21T23:59:59Z")));
        let le = DateParam::parse("le2026-11-22").expect("le");
        assert!(le.matches(t("2026-11-22T23:59:59Z")));
        assert!(!le.matches(t("2026-11-23T00:00:00Z")));
        let gt = DateParam::parse("gt2026-11-22T08:00:00Z").expect("gt");
        assert!(!gt.matches(t("2026-11-22T08:00:00Z")));
        assert!(gt.matches(t("2026-11-22T08:00:01Z")));
        let lt = DateParam::parse("lt2026-11-22T08:00:00+01:00").expect("lt");
        assert!(lt.matches(t("2026-11-22T06:59:59Z")));
        assert!(!lt.matches(t("2026-11-22T07:00:00Z")));
        let eq = DateParam::parse("2026-11-22").expect("eq");
        assert!(eq.matches(t("2026-11-22T12:00:00Z")));
        assert!(!eq.matches(t("2026-11-23T12:00:00Z")));
        assert!(DateParam::parse("ge22/11/2026").is_err());
        assert!(DateParam::parse("sa2026-11-22").is_err());
    }

    #[test]
    fn bounds_intersect_every_parameter() {
        let ds = [
            DateParam::parse("ge2026-11-20").expect("ge"),
            DateParam::parse("le2026-11-22T10:00:00Z").expect("le"),
        ];
        assert_eq!(
            bounds(&ds),
            (
                Some(t("2026-11-20T00:00:00Z")),
                Some(t("2026-11-22T10:00:00Z"))
            )
        );
        assert_eq!(bounds(&[]), (None, None));
    }
}

/// Matches a searchset Bundle holds when the search gives no `_count`.
pub const DEFAULT_COUNT: usize = 100;
/// The most a `_count` is given (a larger one is served as this: FHIR lets a
/// server return fewer than asked, never more).
pub const MAX_COUNT: usize = 1000;

/// `_count` and `_cursor`: how many matches one Bundle holds and where it
/// starts. A Bundle with more to come links to the next page (`next`),
/// carrying the `_cursor` this server made; clients follow the link rather
/// than build one (FHIR R4 search.html, "Paging").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Paging {
    count: Option<usize>,
    pub cursor: Option<String>,
}

impl Paging {
    /// Take `key=value` if it is `_count` or `_cursor` (`Ok(true)`).
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, FhirError> {
        let once = |k: &str| FhirError::Invalid(format!("{k}: give it once"));
        match key {
            "_count" if self.count.is_some() => Err(once(key)),
            "_count" => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        FhirError::Invalid(format!(
                            "_count: expected a whole number from 1 to {MAX_COUNT}, got {value:?}"
                        ))
                    })?;
                self.count = Some(n.min(MAX_COUNT));
                Ok(true)
            }
            "_cursor" if self.cursor.is_some() => Err(once(key)),
            "_cursor" => {
                self.cursor = Some(value.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// How many matches this page holds at most.
    pub fn count(&self) -> usize {
        self.count.unwrap_or(DEFAULT_COUNT)
    }
}

/// The refusal of a `_cursor` this server did not make.
pub fn bad_cursor() -> FhirError {
    FhirError::Invalid("_cursor: not one this server gave (follow the Bundle's next link)".into())
}

/// One page of a search's matches.
pub struct Found {
    pub entries: Vec<serde_json::Value>,
    /// Every match, when known without reading them all.
    pub total: Option<usize>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}

impl Found {
    /// A page of a list already read whole (a patient's alerts, notes or
    /// stays: tens, not millions): the cursor is an offset into it.
    pub fn slice(all: Vec<serde_json::Value>, paging: &Paging) -> Result<Found, FhirError> {
        let total = all.len();
        let start = match &paging.cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|s| *s <= total)
                .ok_or_else(bad_cursor)?,
        };
        let end = start.saturating_add(paging.count()).min(total);
        Ok(Found {
            entries: all.into_iter().skip(start).take(end - start).collect(),
            total: Some(total),
            next: (end < total).then(|| end.to_string()),
        })
    }
}

#[cfg(test)]
mod paging_tests {
    use super::*;

    #[test]
    fn count_is_a_positive_number_capped_and_each_given_once() {
        let mut p = Paging::default();
        assert_eq!(p.count(), DEFAULT_COUNT);
        assert!(p.take("_count", "5000").expect("taken"));
        assert_eq!(p.count(), MAX_COUNT);
        assert!(p.take("_count", "5").is_err(), "twice");
        for bad in ["0", "-1", "ten", ""] {
            assert!(Paging::default().take("_count", bad).is_err(), "{bad}");
        }
        assert!(!p.take("code", "x").expect("not paging"));
    }

    #[test]
    fn a_whole_list_pages_by_offset_to_its_end() {
        let all: Vec<serde_json::Value> = (0..5).map(|i| serde_json::json!(i)).collect();
        let mut p = Paging::default();
        p.take("_count", "2").expect("count");
        let first = Found::slice(all.clone(), &p).expect("page");
        assert_eq!(
            (first.entries.len(), first.total, first.next.as_deref()),
            (2, Some(5), Some("2"))
        );
        p.cursor = Some("4".into());
        let last = Found::slice(all.clone(), &p).expect("page");
        assert_eq!(
            (last.entries, last.next),
            (vec![serde_json::json!(4)], None)
        );
        for bad in ["6", "x", "-1"] {
            p.cursor = Some(bad.into());
            assert!(Found::slice(all.clone(), &p).is_err(), "{bad}");
        }
    }
}
