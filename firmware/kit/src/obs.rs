//! Observation codes, units and values as CONTRACTS.md §2 defines them.
//!
//! Parse, don't validate: an [`Observation`] can only be built through
//! [`Observation::number`] or the typed constructors for the two text codes,
//! so every observation the kit encodes has a known code, the unit that goes
//! with it, and a finite value inside the physically possible range.
//!
//! The ranges here are deliberately wider than any clinical limit (they are
//! "the sensor cannot mean this" bounds, e.g. SpO2 above 100 %). The server is
//! the authority on what it accepts; the kit only refuses values that cannot be
//! a measurement, so that a garbled Bluetooth frame is caught at the bedside
//! rather than scored.

use core::fmt;

/// An observation code from CONTRACTS.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Peripheral oxygen saturation, `%`.
    Spo2,
    /// Pulse rate, `/min`.
    Pulse,
    /// Respiratory rate, `/min`.
    RespRate,
    /// Systolic blood pressure, `mm[Hg]`.
    Systolic,
    /// Diastolic blood pressure, `mm[Hg]`.
    Diastolic,
    /// Core temperature, `Cel`.
    Temp,
    /// Skin temperature, `Cel`.
    SkinTemp,
    /// Peak expiratory flow, `L/min`.
    Pef,
    /// Forced expiratory volume in one second, `L`.
    Fev1,
    /// Supplemental oxygen flow, `L/min` (0 = room air).
    O2Flow,
    /// Level of consciousness, text value, no unit.
    Acvpu,
    /// Posture, text value, no unit.
    Posture,
    /// Body weight, `kg`.
    Weight,
}

impl Code {
    /// Every code, in contract order.
    pub const ALL: [Code; 13] = [
        Code::Spo2,
        Code::Pulse,
        Code::RespRate,
        Code::Systolic,
        Code::Diastolic,
        Code::Temp,
        Code::SkinTemp,
        Code::Pef,
        Code::Fev1,
        Code::O2Flow,
        Code::Acvpu,
        Code::Posture,
        Code::Weight,
    ];

    /// The wire name (`"spo2"`, `"resp_rate"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Spo2 => "spo2",
            Code::Pulse => "pulse",
            Code::RespRate => "resp_rate",
            Code::Systolic => "systolic",
            Code::Diastolic => "diastolic",
            Code::Temp => "temp",
            Code::SkinTemp => "skin_temp",
            Code::Pef => "pef",
            Code::Fev1 => "fev1",
            Code::O2Flow => "o2_flow",
            Code::Acvpu => "acvpu",
            Code::Posture => "posture",
            Code::Weight => "weight",
        }
    }

    /// Parses a wire name; `None` for anything not in the contract.
    pub fn from_wire(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The UCUM unit, or `None` for the text-valued codes (`acvpu`, `posture`).
    pub const fn unit(self) -> Option<&'static str> {
        match self {
            Code::Spo2 => Some("%"),
            Code::Pulse | Code::RespRate => Some("/min"),
            Code::Systolic | Code::Diastolic => Some("mm[Hg]"),
            Code::Temp | Code::SkinTemp => Some("Cel"),
            Code::Pef | Code::O2Flow => Some("L/min"),
            Code::Fev1 => Some("L"),
            Code::Weight => Some("kg"),
            Code::Acvpu | Code::Posture => None,
        }
    }

    /// Inclusive bounds a numeric value of this code must lie in to be a
    /// possible measurement at all; `None` for text-valued codes.
    pub const fn bounds(self) -> Option<(f64, f64)> {
        match self {
            Code::Spo2 => Some((0.0, 100.0)),
            Code::Pulse => Some((0.0, 400.0)),
            Code::RespRate => Some((0.0, 200.0)),
            Code::Systolic | Code::Diastolic => Some((0.0, 400.0)),
            Code::Temp | Code::SkinTemp => Some((0.0, 50.0)),
            Code::Pef => Some((0.0, 1200.0)),
            Code::Fev1 => Some((0.0, 10.0)),
            Code::O2Flow => Some((0.0, 60.0)),
            Code::Weight => Some((0.0, 700.0)),
            Code::Acvpu | Code::Posture => None,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ACVPU level of consciousness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acvpu {
    /// Alert.
    A,
    /// New confusion.
    C,
    /// Responds to voice.
    V,
    /// Responds to pain.
    P,
    /// Unresponsive.
    U,
}

impl Acvpu {
    /// The wire string (`"A"` .. `"U"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Acvpu::A => "A",
            Acvpu::C => "C",
            Acvpu::V => "V",
            Acvpu::P => "P",
            Acvpu::U => "U",
        }
    }
}

/// Patient posture during the measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Posture {
    /// Sitting or standing.
    Upright,
    /// Lying down.
    Lying,
    /// Moving.
    Moving,
}

impl Posture {
    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Posture::Upright => "upright",
            Posture::Lying => "lying",
            Posture::Moving => "moving",
        }
    }
}

/// An observation value: a finite number or one of the two text enumerations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A finite number in the code's unit.
    Number(f64),
    /// An ACVPU level (only with [`Code::Acvpu`]).
    Acvpu(Acvpu),
    /// A posture (only with [`Code::Posture`]).
    Posture(Posture),
}

/// Why a value cannot become an [`Observation`].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ObsError {
    /// NaN or infinite.
    #[error("{code}: value is not a finite number")]
    NotFinite {
        /// The code.
        code: Code,
    },
    /// Outside the code's physically possible bounds.
    #[error("{code}: value {value} outside the possible range")]
    OutOfRange {
        /// The code.
        code: Code,
        /// The offending value.
        value: f64,
    },
    /// A number for a text code, or the other way round.
    #[error("{code}: wrong value kind for this code")]
    WrongKind {
        /// The code.
        code: Code,
    },
}

/// One validated observation: code, value, and (implied by the code) unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    code: Code,
    value: Value,
}

impl Observation {
    /// A numeric observation; refuses text codes, non-finite values and
    /// values outside [`Code::bounds`].
    pub fn number(code: Code, value: f64) -> Result<Self, ObsError> {
        let Some((lo, hi)) = code.bounds() else {
            return Err(ObsError::WrongKind { code });
        };
        if !value.is_finite() {
            return Err(ObsError::NotFinite { code });
        }
        if value < lo || value > hi {
            return Err(ObsError::OutOfRange { code, value });
        }
        Ok(Observation {
            code,
            value: Value::Number(value),
        })
    }

    /// An ACVPU observation.
    pub const fn acvpu(level: Acvpu) -> Self {
        Observation {
            code: Code::Acvpu,
            value: Value::Acvpu(level),
        }
    }

    /// A posture observation.
    pub const fn posture(posture: Posture) -> Self {
        Observation {
            code: Code::Posture,
            value: Value::Posture(posture),
        }
    }

    /// The code.
    pub const fn code(&self) -> Code {
        self.code
    }

    /// The value.
    pub const fn value(&self) -> Value {
        self.value
    }

    /// The unit, `None` for text codes.
    pub const fn unit(&self) -> Option<&'static str> {
        self.code.unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_code_has_a_unit_and_bounds_and_text_codes_have_neither() {
        for c in Code::ALL {
            assert_eq!(c.unit().is_some(), c.bounds().is_some(), "{c}");
            assert_eq!(Code::from_wire(c.as_str()), Some(c));
        }
        assert_eq!(Code::from_wire("SpO2"), None);
    }

    #[test]
    fn impossible_values_are_refused() {
        assert!(matches!(
            Observation::number(Code::Spo2, 101.0),
            Err(ObsError::OutOfRange { .. })
        ));
        assert!(matches!(
            Observation::number(Code::Pulse, f64::NAN),
            Err(ObsError::NotFinite { .. })
        ));
        assert!(matches!(
            Observation::number(Code::Acvpu, 1.0),
            Err(ObsError::WrongKind { .. })
        ));
        assert!(Observation::number(Code::Spo2, 94.0).is_ok());
    }
}
