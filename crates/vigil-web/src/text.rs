//! Free text a user types (a note, a resolution's note, a patient's name,
//! a ward or a username looked up), checked before it reaches the store.
//!
//! A control character is never meant in clinical text, and NUL cannot be
//! stored in PostgreSQL text at all: unchecked, it was a 500 on that
//! backend and stored silently on SQLite. New lines and tabs are text in a
//! note; a name is one line.

/// `field: …` if `s` holds a control character (other than a new line,
/// carriage return or tab where `multiline`).
pub fn check(field: &str, s: &str, multiline: bool) -> Result<(), String> {
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    match s.chars().find(|&c| c.is_control() && !allowed(c)) {
        None => Ok(()),
        Some(c) if c == '\n' || c == '\r' => Err(format!("{field}: one line, no line breaks")),
        Some(c) => Err(format!(
            "{field}: control character U+{:04X} is not text",
            u32::from(c)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_a_control_character_is_named_and_line_breaks_only_where_multiline() {
        assert_eq!(check("text", "line one\n\tline two\r\n", true), Ok(()));
        assert_eq!(check("name", "Ann Smith-Jones", false), Ok(()));
        assert_eq!(
            check("text", "called\0back", true),
            Err("text: control character U+0000 is not text".into())
        );
        assert_eq!(
            check("note", "bell\u{7}", true),
            Err("note: control character U+0007 is not text".into())
        );
        assert_eq!(
            check("name", "Ann\nSmith", false),
            Err("name: one line, no line breaks".into())
        );
        assert!(
            check("name", "Ann\u{85}", false).is_err(),
            "C1 controls too"
        );
        assert_eq!(check("name", "Zoë Ó Briain", false), Ok(()));
    }
}
