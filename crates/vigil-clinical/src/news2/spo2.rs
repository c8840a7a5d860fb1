//! NEWS2 SpO2 rows (RCP NEWS2 2017, Chart 1), %: scale 1 and scale 2.
//!
//! | scale | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! |---|---|---|---|---|---|---|---|
//! | 1 | ≤91 | 92–93 | 94–95 | ≥96 | | | |
//! | 2 | ≤83 | 84–85 | 86–87 | 88–92, or ≥93 on air | 93–94 on oxygen | 95–96 on oxygen | ≥97 on oxygen |
//!
//! Scale 2 is for patients with hypercapnic respiratory failure, recorded by a
//! clinician (BTS oxygen guideline target 88–92 %); the default is scale 1.
//! On scale 2, a patient **on air** scores 0 for every value ≥ 88; on
//! **oxygen**, values above the 88–92 target score 1–3 (over-oxygenation).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::band::Band;

/// Chart precision: whole percent.
pub const DECIMALS: u32 = 0;

/// Which SpO2 row to score. Serialises as the number `1` or `2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Spo2Scale {
    /// Scale 1, the default.
    #[default]
    One,
    /// Scale 2, only for hypercapnic respiratory failure recorded by a clinician.
    Two,
}

impl Spo2Scale {
    /// `1` or `2`.
    pub fn number(self) -> u8 {
        match self {
            Spo2Scale::One => 1,
            Spo2Scale::Two => 2,
        }
    }

    /// The scale numbered `n`, if `n` is 1 or 2.
    pub fn from_number(n: u8) -> Option<Spo2Scale> {
        match n {
            1 => Some(Spo2Scale::One),
            2 => Some(Spo2Scale::Two),
            _ => None,
        }
    }
}

impl Serialize for Spo2Scale {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for Spo2Scale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(d)?;
        Spo2Scale::from_number(n)
            .ok_or_else(|| serde::de::Error::custom(format!("SpO2 scale must be 1 or 2, not {n}")))
    }
}

/// Scale 1 bands, low to high.
pub const BANDS_SCALE_1: [Band; 4] = [
    Band::up_to(91, 3),
    Band::between(92, 93, 2),
    Band::between(94, 95, 1),
    Band::from(96, 0),
];

/// Scale 2 bands for a patient on air, low to high.
pub const BANDS_SCALE_2_AIR: [Band; 4] = [
    Band::up_to(83, 3),
    Band::between(84, 85, 2),
    Band::between(86, 87, 1),
    Band::from(88, 0),
];

/// Scale 2 bands for a patient on oxygen, low to high.
pub const BANDS_SCALE_2_OXYGEN: [Band; 7] = [
    Band::up_to(83, 3),
    Band::between(84, 85, 2),
    Band::between(86, 87, 1),
    Band::between(88, 92, 0),
    Band::between(93, 94, 1),
    Band::between(95, 96, 2),
    Band::from(97, 3),
];

/// Sub-score of a quantised SpO2 (whole %) on `scale`. `on_oxygen` matters
/// only on scale 2 at 93 % and above.
pub fn score(q: i64, scale: Spo2Scale, on_oxygen: bool) -> u8 {
    match scale {
        Spo2Scale::One => match q {
            ..=91 => 3,
            92..=93 => 2,
            94..=95 => 1,
            96.. => 0,
        },
        Spo2Scale::Two => match (q, on_oxygen) {
            (..=83, _) => 3,
            (84..=85, _) => 2,
            (86..=87, _) => 1,
            (88..=92, _) => 0,
            (93.., false) => 0,
            (93..=94, true) => 1,
            (95..=96, true) => 2,
            (97.., true) => 3,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::news2::band::testing::assert_partition;

    #[test]
    fn scale_1_edges_score_on_both_sides() {
        for (q, want) in [
            (91, 3),
            (92, 2),
            (93, 2),
            (94, 1),
            (95, 1),
            (96, 0),
            (100, 0),
            (20, 3),
        ] {
            assert_eq!(score(q, Spo2Scale::One, false), want, "scale 1 air {q}");
            // oxygen never changes a scale 1 SpO2 sub-score
            assert_eq!(score(q, Spo2Scale::One, true), want, "scale 1 oxygen {q}");
        }
    }

    #[test]
    fn scale_2_on_air_scores_0_from_88_up() {
        for (q, want) in [
            (83, 3),
            (84, 2),
            (85, 2),
            (86, 1),
            (87, 1),
            (88, 0),
            (92, 0),
            (93, 0),
            (94, 0),
            (95, 0),
            (96, 0),
            (97, 0),
            (100, 0),
        ] {
            assert_eq!(score(q, Spo2Scale::Two, false), want, "scale 2 air {q}");
        }
    }

    #[test]
    fn scale_2_on_oxygen_scores_over_oxygenation() {
        for (q, want) in [
            (83, 3),
            (84, 2),
            (85, 2),
            (86, 1),
            (87, 1),
            (88, 0),
            (92, 0),
            (93, 1),
            (94, 1),
            (95, 2),
            (96, 2),
            (97, 3),
            (100, 3),
        ] {
            assert_eq!(score(q, Spo2Scale::Two, true), want, "scale 2 oxygen {q}");
        }
    }

    #[test]
    fn bands_cover_every_integer_once_on_every_row() {
        assert_partition("spo2 scale 1", &BANDS_SCALE_1, -1..=150, |q| {
            score(q, Spo2Scale::One, false)
        });
        assert_partition("spo2 scale 2 air", &BANDS_SCALE_2_AIR, -1..=150, |q| {
            score(q, Spo2Scale::Two, false)
        });
        assert_partition(
            "spo2 scale 2 oxygen",
            &BANDS_SCALE_2_OXYGEN,
            -1..=150,
            |q| score(q, Spo2Scale::Two, true),
        );
    }

    #[test]
    fn scale_serialises_as_its_number() {
        assert_eq!(serde_json::to_string(&Spo2Scale::Two).unwrap(), "2");
        assert_eq!(
            serde_json::from_str::<Spo2Scale>("1").unwrap(),
            Spo2Scale::One
        );
        assert!(serde_json::from_str::<Spo2Scale>("3").is_err());
        assert_eq!(Spo2Scale::default(), Spo2Scale::One);
    }
}
