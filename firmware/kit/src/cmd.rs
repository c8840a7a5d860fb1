//! The `cmd` downlink (CONTRACTS.md §2): Vigil's messages to the kit.
//!
//! | `type` | parsed as | what the kit does |
//! |---|---|---|
//! | `ack` | [`Command::Ack`] with the `seqs` | drop those messages from the queue ([`crate::outbox::Outbox::on_ack`]) |
//! | `reject` | [`Command::Reject`] | drop that message, never resend, count it ([`crate::outbox::Outbox::on_reject`]) |
//! | `advice` | [`Command::Advice`] | show the text to the patient at its level |
//! | `repeat` | [`Command::Repeat`] | ask the patient to measure that code again |
//! | `config` | [`Command::Config`] | the whole object, for the application to read |
//! | anything else | [`Command::Unknown`] | surfaced, not an error, so a newer server does not break an older kit |
//!
//! Zero-copy: strings stay borrowed from the payload ([`JsonStr`]), and an
//! ack's `seqs` are read lazily ([`AckSeqs`]) so an ack of any length needs
//! no buffer. Every element of `seqs` is checked during [`parse`], so
//! iterating afterwards cannot fail.

use crate::json::{self, JsonArray, JsonError, JsonObject, JsonStr, JsonValue};
use crate::obs::Code;

/// A parsed `cmd` message borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// These seqs are durably stored.
    Ack(AckSeqs<'a>),
    /// This seq was stored as rejected: do not resend.
    Reject {
        /// The rejected message's seq.
        seq: u32,
        /// Vigil's reason code (e.g. `"unit"`), if given.
        reason: Option<JsonStr<'a>>,
    },
    /// Patient-facing guidance.
    Advice {
        /// How urgent.
        level: AdviceLevel<'a>,
        /// The text to show (escapes unresolved; see [`JsonStr::unescape_into`]).
        text: JsonStr<'a>,
    },
    /// Please measure again.
    Repeat {
        /// The code to repeat, if it is one this kit knows.
        code: Option<Code>,
        /// The code as sent.
        code_raw: JsonStr<'a>,
        /// Why, if given.
        reason: Option<JsonStr<'a>>,
    },
    /// Schedule and settings: the whole object.
    Config(JsonObject<'a>),
    /// A `type` this kit does not know.
    Unknown {
        /// The `type` as sent.
        kind: JsonStr<'a>,
        /// The whole object.
        body: JsonObject<'a>,
    },
}

/// Advice urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdviceLevel<'a> {
    /// Routine.
    Routine,
    /// Urgent (e.g. call 111).
    Urgent,
    /// Emergency (e.g. call 999).
    Emergency,
    /// A level this kit does not know. Still shown: dropping advice meant
    /// for the patient is worse than showing it at the wrong emphasis.
    Other(JsonStr<'a>),
}

/// The `seqs` of an ack, validated, read lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckSeqs<'a> {
    array: JsonArray<'a>,
    len: usize,
}

impl<'a> AckSeqs<'a> {
    /// The acknowledged seqs, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        // Checked in `parse`: every element is a u32.
        self.array.iter().filter_map(|v| v.as_u32())
    }

    /// How many seqs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the ack lists none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a `cmd` payload was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The payload is not UTF-8.
    #[error("cmd payload is not UTF-8")]
    NotUtf8,
    /// The payload is not a JSON object.
    #[error("cmd payload: {0}")]
    Json(#[from] JsonError),
}

fn field<'a>(o: &JsonObject<'a>, name: &'static str) -> Result<JsonValue<'a>, CmdError> {
    o.get(name).ok_or(CmdError::Json(JsonError::Field(name)))
}

fn string<'a>(o: &JsonObject<'a>, name: &'static str) -> Result<JsonStr<'a>, CmdError> {
    field(o, name)?
        .as_str()
        .ok_or(CmdError::Json(JsonError::Field(name)))
}

fn opt_string<'a>(o: &JsonObject<'a>, name: &'static str) -> Option<JsonStr<'a>> {
    o.get(name).and_then(|v| v.as_str())
}

/// A short enumeration word with its escapes resolved (so `"\u0061ck"` is
/// `ack`); `None` when longer than any word this module matches.
fn word<'b>(s: JsonStr<'_>, buf: &'b mut [u8; 16]) -> Option<&'b str> {
    s.unescape_into(buf)
}

/// Parses a `cmd` payload.
pub fn parse(payload: &[u8]) -> Result<Command<'_>, CmdError> {
    let text = core::str::from_utf8(payload).map_err(|_| CmdError::NotUtf8)?;
    let o = json::parse_object(text)?;
    let kind = string(&o, "type")?;
    let mut buf = [0u8; 16];
    Ok(match word(kind, &mut buf).unwrap_or("") {
        "ack" => {
            let JsonValue::Array(array) = field(&o, "seqs")? else {
                return Err(JsonError::Field("seqs").into());
            };
            let mut len = 0usize;
            for v in array.iter() {
                if v.as_u32().is_none() {
                    return Err(JsonError::Field("seqs").into());
                }
                len += 1;
            }
            Command::Ack(AckSeqs { array, len })
        }
        "reject" => Command::Reject {
            seq: field(&o, "seq")?
                .as_u32()
                .ok_or(CmdError::Json(JsonError::Field("seq")))?,
            reason: opt_string(&o, "reason"),
        },
        "advice" => {
            let level = string(&o, "level")?;
            let mut buf = [0u8; 16];
            let level = match word(level, &mut buf) {
                Some("routine") => AdviceLevel::Routine,
                Some("urgent") => AdviceLevel::Urgent,
                Some("emergency") => AdviceLevel::Emergency,
                _ => AdviceLevel::Other(level),
            };
            Command::Advice {
                level,
                text: string(&o, "text")?,
            }
        }
        "repeat" => {
            let code_raw = string(&o, "code")?;
            let mut buf = [0u8; 16];
            Command::Repeat {
                code: word(code_raw, &mut buf).and_then(Code::from_wire),
                code_raw,
                reason: opt_string(&o, "reason"),
            }
        }
        "config" => Command::Config(o),
        _ => Command::Unknown { kind, body: o },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_ack() {
        let Command::Ack(seqs) = parse(br#"{"type":"ack","seqs":[1842,1843]}"#).unwrap() else {
            panic!()
        };
        assert_eq!(seqs.len(), 2);
        assert!(seqs.iter().eq([1842, 1843]));
    }

    #[test]
    fn ack_of_any_length_needs_no_buffer() {
        let mut buf = [0u8; 12_000];
        let mut w = crate::json::BufWriter::new(&mut buf);
        w.raw(r#"{"type":"ack","seqs":["#);
        for i in 0..1000u32 {
            if i > 0 {
                w.raw(",");
            }
            let _ = core::fmt::Write::write_fmt(&mut w, format_args!("{}", 4_000_000_000 + i));
        }
        w.raw("]}");
        let n = w.finish().unwrap();
        let Command::Ack(seqs) = parse(&buf[..n]).unwrap() else {
            panic!()
        };
        assert_eq!(seqs.len(), 1000);
        assert_eq!(seqs.iter().last(), Some(4_000_000_999));
    }

    #[test]
    fn ack_with_a_non_u32_seq_is_refused_whole() {
        for bad in [
            r#"{"type":"ack","seqs":[1,-2]}"#,
            r#"{"type":"ack","seqs":[1,4294967296]}"#,
            r#"{"type":"ack","seqs":[1.5]}"#,
            r#"{"type":"ack","seqs":["1"]}"#,
            r#"{"type":"ack","seqs":1}"#,
            r#"{"type":"ack"}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_reject_with_and_without_reason() {
        assert_eq!(
            parse(br#"{"type":"reject","seq":1844,"reason":"unit"}"#).map(|c| match c {
                Command::Reject { seq, reason } => (seq, reason.map(|r| r.raw())),
                _ => (0, None),
            }),
            Ok((1844, Some("unit")))
        );
        assert!(matches!(
            parse(br#"{"seq":9,"type":"reject"}"#),
            Ok(Command::Reject {
                seq: 9,
                reason: None
            })
        ));
        assert!(parse(br#"{"type":"reject","seq":"9"}"#).is_err());
    }

    #[test]
    fn parses_advice_levels_and_keeps_unknown_levels() {
        let Command::Advice { level, text } =
            parse(br#"{"type":"advice","level":"emergency","text":"Call 999 \"now\""}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(level, AdviceLevel::Emergency);
        let mut out = [0u8; 32];
        assert_eq!(text.unescape_into(&mut out), Some("Call 999 \"now\""));
        assert!(matches!(
            parse(br#"{"type":"advice","level":"critical","text":"x"}"#),
            Ok(Command::Advice {
                level: AdviceLevel::Other(_),
                ..
            })
        ));
    }

    #[test]
    fn parses_repeat_config_and_unknown_types() {
        assert!(matches!(
            parse(br#"{"type":"repeat","code":"spo2","reason":"low"}"#),
            Ok(Command::Repeat {
                code: Some(Code::Spo2),
                ..
            })
        ));
        assert!(matches!(
            parse(br#"{"type":"repeat","code":"glucose"}"#),
            Ok(Command::Repeat { code: None, .. })
        ));
        let Command::Config(o) =
            parse(br#"{"type":"config","schedule":{"spo2":"8h"},"ecg":true}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(o.get("ecg"), Some(JsonValue::Bool(true)));
        assert!(matches!(
            parse(br#"{"type":"reboot"}"#),
            Ok(Command::Unknown { .. })
        ));
    }

    #[test]
    fn escaped_type_words_are_recognised() {
        assert!(matches!(
            parse(br#"{"type":"\u0061ck","seqs":[]}"#),
            Ok(Command::Ack(s)) if s.is_empty()
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(parse(&[0xFF, 0xFE]), Err(CmdError::NotUtf8));
        assert!(parse(b"").is_err());
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"{"type":1}"#).is_err());
        assert!(parse(br#"{"no_type":"ack"}"#).is_err());
    }
}
