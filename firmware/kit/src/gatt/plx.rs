//! Status fields shared by the two Pulse Oximeter characteristics
//! (PLXS v1.0.1 §3.1 and §3.2; GSS `plx_spot_check_measurement` /
//! `plx_continuous_measurement`, "Measurement Status" and "Device and Sensor
//! Status").
//!
//! The oximeter can say its own reading is not to be trusted. Those flags
//! are honoured here: a reading the device calls invalid, unavailable,
//! demonstration or test data, or taken with the sensor off the patient, is
//! refused ([`GattError::Unusable`]) rather than scored. Softer flags
//! (questionable, low perfusion, poor signal) are kept on the parsed struct
//! for the caller to show the patient ("please repeat").

use super::GattError;

/// PLX Measurement Status (16 bits; bits 0–4 reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasurementStatus(pub u16);

impl MeasurementStatus {
    /// Bit 5: measurement ongoing.
    pub const MEASUREMENT_ONGOING: u16 = 1 << 5;
    /// Bit 6: early estimated data.
    pub const EARLY_ESTIMATE: u16 = 1 << 6;
    /// Bit 7: validated data.
    pub const VALIDATED: u16 = 1 << 7;
    /// Bit 8: fully qualified data.
    pub const FULLY_QUALIFIED: u16 = 1 << 8;
    /// Bit 9: data from measurement storage.
    pub const FROM_STORAGE: u16 = 1 << 9;
    /// Bit 10: data for demonstration.
    pub const DEMONSTRATION: u16 = 1 << 10;
    /// Bit 11: data for testing.
    pub const TESTING: u16 = 1 << 11;
    /// Bit 12: calibration ongoing.
    pub const CALIBRATION_ONGOING: u16 = 1 << 12;
    /// Bit 13: measurement unavailable.
    pub const UNAVAILABLE: u16 = 1 << 13;
    /// Bit 14: questionable measurement detected.
    pub const QUESTIONABLE: u16 = 1 << 14;
    /// Bit 15: invalid measurement detected.
    pub const INVALID: u16 = 1 << 15;

    /// Whether `bit` is set.
    pub const fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// Refuses the measurement if the device says it is not a real reading
    /// of this patient.
    pub(crate) fn check(self) -> Result<(), GattError> {
        const REFUSE: [(u16, &str); 5] = [
            (MeasurementStatus::INVALID, "invalid measurement detected"),
            (MeasurementStatus::UNAVAILABLE, "measurement unavailable"),
            (MeasurementStatus::DEMONSTRATION, "data for demonstration"),
            (MeasurementStatus::TESTING, "data for testing"),
            (
                MeasurementStatus::CALIBRATION_ONGOING,
                "calibration ongoing",
            ),
        ];
        for (bit, why) in REFUSE {
            if self.has(bit) {
                return Err(GattError::Unusable(why));
            }
        }
        Ok(())
    }
}

/// PLX Device and Sensor Status (24 bits; bits 16–23 reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSensorStatus(pub u32);

impl DeviceSensorStatus {
    /// Bit 1: equipment malfunction detected.
    pub const EQUIPMENT_MALFUNCTION: u32 = 1 << 1;
    /// Bit 2: signal processing irregularity detected.
    pub const SIGNAL_PROCESSING_IRREGULARITY: u32 = 1 << 2;
    /// Bit 3: inadequate signal detected.
    pub const INADEQUATE_SIGNAL: u32 = 1 << 3;
    /// Bit 4: poor signal detected.
    pub const POOR_SIGNAL: u32 = 1 << 4;
    /// Bit 5: low perfusion detected.
    pub const LOW_PERFUSION: u32 = 1 << 5;
    /// Bit 6: erratic signal detected.
    pub const ERRATIC_SIGNAL: u32 = 1 << 6;
    /// Bit 7: nonpulsatile signal detected.
    pub const NONPULSATILE_SIGNAL: u32 = 1 << 7;
    /// Bit 8: questionable pulse detected.
    pub const QUESTIONABLE_PULSE: u32 = 1 << 8;
    /// Bit 11: sensor unconnected to user.
    pub const SENSOR_UNCONNECTED: u32 = 1 << 11;
    /// Bit 12: unknown sensor connected.
    pub const UNKNOWN_SENSOR: u32 = 1 << 12;
    /// Bit 13: sensor displaced.
    pub const SENSOR_DISPLACED: u32 = 1 << 13;
    /// Bit 14: sensor malfunctioning.
    pub const SENSOR_MALFUNCTIONING: u32 = 1 << 14;
    /// Bit 15: sensor disconnected.
    pub const SENSOR_DISCONNECTED: u32 = 1 << 15;

    /// Whether `bit` is set.
    pub const fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// Refuses the measurement when the sensor was not measuring this
    /// patient or the equipment reports a fault.
    pub(crate) fn check(self) -> Result<(), GattError> {
        const REFUSE: [(u32, &str); 6] = [
            (
                DeviceSensorStatus::EQUIPMENT_MALFUNCTION,
                "equipment malfunction",
            ),
            (
                DeviceSensorStatus::SENSOR_UNCONNECTED,
                "sensor not on the patient",
            ),
            (
                DeviceSensorStatus::UNKNOWN_SENSOR,
                "unknown sensor connected",
            ),
            (DeviceSensorStatus::SENSOR_DISPLACED, "sensor displaced"),
            (
                DeviceSensorStatus::SENSOR_MALFUNCTIONING,
                "sensor malfunctioning",
            ),
            (
                DeviceSensorStatus::SENSOR_DISCONNECTED,
                "sensor disconnected",
            ),
        ];
        for (bit, why) in REFUSE {
            if self.has(bit) {
                return Err(GattError::Unusable(why));
            }
        }
        Ok(())
    }

    /// Whether the device flags the signal as doubtful (poor, low perfusion,
    /// erratic, questionable pulse ...): a reason to ask for a repeat.
    pub const fn signal_doubtful(self) -> bool {
        self.has(
            Self::SIGNAL_PROCESSING_IRREGULARITY
                | Self::INADEQUATE_SIGNAL
                | Self::POOR_SIGNAL
                | Self::LOW_PERFUSION
                | Self::ERRATIC_SIGNAL
                | Self::NONPULSATILE_SIGNAL
                | Self::QUESTIONABLE_PULSE,
        )
    }
}
