//! Signal quality per one-second epoch: lead-off, noise, or good.
//!
//! Rules (in microvolts, so they hold for any patch gain):
//! - **lead off** when the epoch is flat (peak-to-peak below
//!   [`FLAT_UV`]: an ECG always has at least that much from the QRS or
//!   from noise when an electrode touches skin) or saturated (at least a
//!   quarter of samples on the i16 rails, or one value repeated for half
//!   the epoch: an amplifier pinned by a detached electrode);
//! - **noisy** when the peak-to-peak exceeds [`MOTION_UV`] (electrode
//!   motion, far beyond any surface QRS), when the signal moves faster than
//!   [`MAX_SLEW_UV_PER_MS`] between two samples (an electrode "pop": no
//!   sample-to-sample step on the MIT-BIH records exceeds 230 µV/ms), or when the
//!   detector found beats closer than [`MIN_RR_MS`] (300 bpm: artefact,
//!   not a heartbeat).
//!
//! Heart rate and AF are computed only from good epochs; a lead-off epoch
//! yields no heart rate, never 0 bpm (which would read as asystole).

/// Below this peak-to-peak over one second the lead is taken as off.
pub const FLAT_UV: f32 = 30.0;
/// Above this peak-to-peak over one second the epoch is motion artefact.
pub const MOTION_UV: f32 = 8000.0;
/// Faster than this between consecutive samples is an electrode pop, not ECG.
pub const MAX_SLEW_UV_PER_MS: f32 = 500.0;
/// Beats closer than this are artefact (300 bpm).
pub const MIN_RR_MS: u32 = 200;

/// Quality of an epoch or window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    Good,
    Noisy,
    LeadOff,
}

/// Accumulates one epoch of samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EpochStats {
    min: i16,
    max: i16,
    n: u32,
    rail: u32,
    run: u32,
    longest_run: u32,
    last: i16,
    max_step: u16,
    pub(crate) close_beats: bool,
}

impl Default for EpochStats {
    fn default() -> Self {
        Self {
            min: i16::MAX,
            max: i16::MIN,
            n: 0,
            rail: 0,
            run: 0,
            longest_run: 0,
            last: 0,
            max_step: 0,
            close_beats: false,
        }
    }
}

impl EpochStats {
    #[inline]
    pub(crate) fn add(&mut self, raw: i16) {
        self.min = self.min.min(raw);
        self.max = self.max.max(raw);
        if raw == i16::MAX || raw == i16::MIN {
            self.rail += 1;
        }
        if self.n > 0 && raw == self.last {
            self.run += 1;
        } else {
            self.run = 1;
        }
        if self.n > 0 {
            self.max_step = self.max_step.max(raw.abs_diff(self.last));
        }
        self.longest_run = self.longest_run.max(self.run);
        self.last = raw;
        self.n += 1;
    }

    pub(crate) fn len(&self) -> u32 {
        self.n
    }

    /// Quality of the epoch for a patch with `uv_per_count` microvolts per
    /// count sampled at `fs_hz`.
    pub(crate) fn quality(&self, uv_per_count: f32, fs_hz: u32) -> Quality {
        if self.n == 0 {
            return Quality::LeadOff;
        }
        let p2p = (i32::from(self.max) - i32::from(self.min)) as f32 * uv_per_count;
        if p2p < FLAT_UV || self.rail * 4 >= self.n || self.longest_run * 2 >= self.n {
            Quality::LeadOff
        } else if p2p > MOTION_UV
            || f32::from(self.max_step) * uv_per_count * fs_hz as f32 / 1000.0 > MAX_SLEW_UV_PER_MS
            || self.close_beats
        {
            Quality::Noisy
        } else {
            Quality::Good
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(samples: impl Iterator<Item = i16>) -> EpochStats {
        let mut e = EpochStats::default();
        for s in samples {
            e.add(s);
        }
        e
    }

    #[test]
    fn flat_line_is_lead_off() {
        assert_eq!(
            epoch(core::iter::repeat_n(100, 360)).quality(5.0, 360),
            Quality::LeadOff
        );
        assert_eq!(
            epoch((0..360).map(|i| (i % 3) as i16)).quality(5.0, 360),
            Quality::LeadOff
        );
    }

    #[test]
    fn saturated_signal_is_lead_off() {
        let e = epoch((0..360).map(|i| if i % 2 == 0 { i16::MAX } else { 0 }));
        assert_eq!(e.quality(5.0, 360), Quality::LeadOff);
    }

    #[test]
    fn ecg_like_signal_is_good_and_huge_excursions_are_noisy() {
        let ecg = (0..360).map(|i| if i % 300 < 10 { 200 } else { (i % 7) as i16 });
        assert_eq!(epoch(ecg).quality(5.0, 360), Quality::Good);
        // electrode motion: a slow swing of ±9 mV
        let motion = (0..360).map(|i| (i * 10 - 1800) as i16);
        assert_eq!(epoch(motion).quality(5.0, 360), Quality::Noisy);
        let pop = (0..360).map(|i| (i % 5) as i16 + if i < 200 { 0 } else { 400 });
        assert_eq!(epoch(pop).quality(5.0, 360), Quality::Noisy);
    }
}
