//! NEWS2 consciousness row (RCP NEWS2 2017, Chart 1): ACVPU.
//!
//! | Alert | new Confusion, Voice, Pain, Unresponsive |
//! |---|---|
//! | 0 | 3 |

use serde::{Deserialize, Serialize};

/// A level on the ACVPU scale. Serialises as its letter (`"A"` ... `"U"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Acvpu {
    /// Alert.
    #[serde(rename = "A")]
    Alert,
    /// New confusion (new-onset or worsening confusion, delirium).
    #[serde(rename = "C")]
    Confusion,
    /// Responds to voice.
    #[serde(rename = "V")]
    Voice,
    /// Responds to pain.
    #[serde(rename = "P")]
    Pain,
    /// Unresponsive.
    #[serde(rename = "U")]
    Unresponsive,
}

impl Acvpu {
    /// Every level, from Alert to Unresponsive.
    pub const ALL: [Acvpu; 5] = [
        Acvpu::Alert,
        Acvpu::Confusion,
        Acvpu::Voice,
        Acvpu::Pain,
        Acvpu::Unresponsive,
    ];

    /// Parses the letter `A`, `C`, `V`, `P` or `U` (upper case, as in the
    /// MQTT contract).
    pub fn parse(s: &str) -> Option<Acvpu> {
        Acvpu::ALL.into_iter().find(|a| a.letter() == s)
    }

    /// The letter.
    pub fn letter(self) -> &'static str {
        match self {
            Acvpu::Alert => "A",
            Acvpu::Confusion => "C",
            Acvpu::Voice => "V",
            Acvpu::Pain => "P",
            Acvpu::Unresponsive => "U",
        }
    }

    /// A short description for reasons shown to clinicians.
    pub fn describe(self) -> &'static str {
        match self {
            Acvpu::Alert => "alert",
            Acvpu::Confusion => "new confusion",
            Acvpu::Voice => "responds to voice",
            Acvpu::Pain => "responds to pain",
            Acvpu::Unresponsive => "unresponsive",
        }
    }
}

/// Sub-score of a consciousness level.
pub fn score(level: Acvpu) -> u8 {
    match level {
        Acvpu::Alert => 0,
        Acvpu::Confusion | Acvpu::Voice | Acvpu::Pain | Acvpu::Unresponsive => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_acvpu_level_scores_per_chart() {
        let want = [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)];
        for (letter, s) in want {
            let level = Acvpu::parse(letter).unwrap();
            assert_eq!(level.letter(), letter);
            assert_eq!(score(level), s, "{letter}");
            assert_eq!(
                serde_json::to_string(&level).unwrap(),
                format!("\"{letter}\"")
            );
        }
        assert_eq!(Acvpu::parse("a"), None);
        assert_eq!(Acvpu::parse("X"), None);
    }
}
