//! One ECG patch's live analysis, for the ingest daemon.
//!
//! [`EcgStream`] takes the patch's chunks in order (the MQTT `ecg` payload:
//! t0 in Unix ms, sample rate, microvolts per count, i16 samples) and
//! returns [`EcgEvent`]s: beats, a rolling heart rate, signal-quality
//! changes, and the possible-AF prompt. Time is taken only from the chunks,
//! so replaying stored chunks gives the same events.
//!
//! - Epochs: quality is judged per one-second epoch ([`crate::sqi`]).
//! - Heart rate: 60 000 / median RR over the last [`HR_WINDOW_S`] epochs,
//!   emitted once per epoch, and only when every epoch in the window is
//!   good and at least two RR intervals lie wholly inside it. A window
//!   with lead-off or noise gives no heart rate (never 0 bpm).
//! - Possible AF: every 10 s, [`crate::af::assess`] over the RR intervals of
//!   the last [`AF_WINDOW_S`] seconds whose both beats fall in good epochs;
//!   an event when the flag turns on or off.
//! - Gaps: a chunk starting more than [`GAP_TOLERANCE_MS`] after the
//!   expected time, or with another sample rate or gain, starts a new
//!   segment (detector, RR history and windows restart; a
//!   [`EcgEvent::Gap`] is emitted). A chunk starting before the expected
//!   time overlaps samples already analysed and is rejected: the daemon
//!   dedups by sequence number and must feed chunks in time order.
//!
//! Memory is bounded: a [`Detector`] (two rings sized for the sample rate)
//! plus a fixed ring of [`RR_CAPACITY`] RR intervals; see [`EcgStream::heap_bytes`].

use crate::af::{self, AfAssessment};
use crate::detector::{Beat, Detector};
use crate::error::EcgError;
use crate::sqi::{EpochStats, MIN_RR_MS, Quality};

/// Heart-rate window, seconds (epochs).
pub const HR_WINDOW_S: u32 = 10;
/// AF assessment window, seconds.
pub const AF_WINDOW_S: u32 = 120;
/// How often the AF assessment runs, seconds.
pub const AF_EVERY_S: u64 = 10;
/// Allowed difference between a chunk's t0 and the time implied by the
/// samples already received, before it counts as a gap (or an overlap).
pub const GAP_TOLERANCE_MS: i64 = 100;
/// RR intervals kept: two minutes at 250 bpm.
pub const RR_CAPACITY: usize = 512;

/// One chunk as carried by the `vigil/v1/dev/{device}/ecg` payload.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// Measurement time of the first sample, Unix ms.
    pub t0_ms: i64,
    pub fs_hz: u16,
    pub uv_per_count: f32,
    pub samples: &'a [i16],
}

/// What the stream reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EcgEvent {
    /// A detected heartbeat (R peak), with the interval from the previous
    /// beat of the same segment.
    Beat { t_ms: i64, rr_ms: Option<u32> },
    /// Rolling heart rate at the end of a clean window.
    HeartRate { t_ms: i64, bpm: f32 },
    /// Signal quality changed (judged per one-second epoch ending at `t_ms`).
    Quality { t_ms: i64, quality: Quality },
    /// The possible-AF prompt turned on or off. A prompt to review the
    /// strip, not a diagnosis.
    PossibleAf {
        t_ms: i64,
        active: bool,
        assessment: AfAssessment,
    },
    /// A discontinuity: analysis restarted at `t_ms`.
    Gap { t_ms: i64 },
}

#[derive(Debug, Clone, Copy, Default)]
struct RrEntry {
    /// Epoch of the later beat.
    epoch: u32,
    /// Epochs back to the earlier beat.
    span: u16,
    rr_ms: u16,
}

#[derive(Debug, Clone)]
struct Segment {
    t0_ms: i64,
    fs: u32,
    uv_per_count: f32,
    detector: Detector,
    epoch: EpochStats,
    /// Completed epochs in this segment.
    epochs: u32,
    /// Bit k set: epoch `epochs - 1 - k` was good.
    good: u128,
    last_beat: Option<u64>,
}

/// Live analysis of one ECG patch. See the module docs.
#[derive(Debug, Clone)]
pub struct EcgStream {
    seg: Option<Segment>,
    rr: Vec<RrEntry>,
    rr_head: usize,
    rr_len: usize,
    quality: Option<Quality>,
    heart_rate: Option<f32>,
    af: Option<AfAssessment>,
    af_active: bool,
    beats_buf: Vec<Beat>,
}

impl Default for EcgStream {
    fn default() -> Self {
        Self::new()
    }
}

impl EcgStream {
    pub fn new() -> Self {
        Self {
            seg: None,
            rr: vec![RrEntry::default(); RR_CAPACITY],
            rr_head: 0,
            rr_len: 0,
            quality: None,
            heart_rate: None,
            af: None,
            af_active: false,
            beats_buf: Vec::new(),
        }
    }

    /// Latest rolling heart rate; `None` while the signal is not clean.
    pub fn heart_rate(&self) -> Option<f32> {
        self.heart_rate
    }

    /// Quality of the last completed epoch.
    pub fn quality(&self) -> Option<Quality> {
        self.quality
    }

    /// Latest AF assessment (with its `possible_af` flag).
    pub fn af(&self) -> Option<AfAssessment> {
        self.af
    }

    /// Heap bytes held (detector rings and the RR ring); the struct itself
    /// is `size_of::<EcgStream>()` more.
    pub fn heap_bytes(&self) -> usize {
        self.seg.as_ref().map_or(0, |s| s.detector.heap_bytes())
            + self.rr.capacity() * core::mem::size_of::<RrEntry>()
            + self.beats_buf.capacity() * core::mem::size_of::<Beat>()
    }

    /// Feed one chunk; returns the events it caused, in time order per kind.
    pub fn push_chunk(&mut self, chunk: &Chunk<'_>) -> Result<Vec<EcgEvent>, EcgError> {
        let mut events = Vec::new();
        self.push_chunk_into(chunk, &mut events)?;
        Ok(events)
    }

    /// [`Self::push_chunk`] appending to `events`.
    pub fn push_chunk_into(
        &mut self,
        chunk: &Chunk<'_>,
        events: &mut Vec<EcgEvent>,
    ) -> Result<(), EcgError> {
        if !(chunk.uv_per_count.is_finite() && chunk.uv_per_count > 0.0) {
            return Err(EcgError::BadChunk("microvolts per count must be positive"));
        }
        let fs = u32::from(chunk.fs_hz);
        let restart = match &self.seg {
            None => true,
            Some(s) => {
                let expected = s
                    .t0_ms
                    .saturating_add(ms_of(s.detector.samples_seen(), s.fs));
                if chunk.t0_ms < expected.saturating_sub(GAP_TOLERANCE_MS) {
                    return Err(EcgError::BadChunk(
                        "chunk overlaps samples already analysed (out of order?)",
                    ));
                }
                s.fs != fs
                    || s.uv_per_count != chunk.uv_per_count
                    || chunk.t0_ms > expected.saturating_add(GAP_TOLERANCE_MS)
            }
        };
        if restart {
            let detector = Detector::new(fs)?;
            if self.seg.is_some() {
                self.flush(events);
                events.push(EcgEvent::Gap { t_ms: chunk.t0_ms });
            }
            self.seg = Some(Segment {
                t0_ms: chunk.t0_ms,
                fs,
                uv_per_count: chunk.uv_per_count,
                detector,
                epoch: EpochStats::default(),
                epochs: 0,
                good: 0,
                last_beat: None,
            });
            self.rr_len = 0;
            self.heart_rate = None;
            self.af = None;
            self.af_active = false;
        }
        let mut rest = chunk.samples;
        while !rest.is_empty() {
            let Some(seg) = self.seg.as_mut() else { break };
            // Feed up to the end of the current epoch, so epoch boundaries
            // fall at the same sample whatever the chunking.
            let left = (seg.fs - seg.epoch.len()) as usize;
            let (now, later) = rest.split_at(left.min(rest.len()));
            rest = later;
            for &s in now {
                seg.epoch.add(s);
            }
            let mut beats = core::mem::take(&mut self.beats_buf);
            seg.detector.push_into(now, &mut beats);
            for b in beats.drain(..) {
                self.on_beat(b, events);
            }
            self.beats_buf = beats;
            if self.seg.as_ref().is_some_and(|s| s.epoch.len() == s.fs) {
                self.end_epoch(events);
            }
        }
        Ok(())
    }

    /// End of the stream (patch removed, daemon stopping): report the beats
    /// still pending in the detector.
    pub fn finish(&mut self) -> Vec<EcgEvent> {
        let mut events = Vec::new();
        self.flush(&mut events);
        events
    }

    fn flush(&mut self, events: &mut Vec<EcgEvent>) {
        if let Some(seg) = self.seg.as_mut() {
            for b in seg.detector.finish() {
                self.on_beat(b, events);
            }
        }
    }

    fn on_beat(&mut self, b: Beat, events: &mut Vec<EcgEvent>) {
        let Some(seg) = self.seg.as_mut() else { return };
        let t_ms = seg.t0_ms.saturating_add(ms_of(b.sample, seg.fs));
        let rr_ms = seg
            .last_beat
            .map(|p| ms_of(b.sample - p, seg.fs).clamp(0, u32::MAX as i64) as u32);
        let epoch = (b.sample / u64::from(seg.fs)) as u32;
        if let (Some(rr), Some(p)) = (rr_ms, seg.last_beat) {
            let prev_epoch = (p / u64::from(seg.fs)) as u32;
            if rr < MIN_RR_MS {
                // Too close to be two heartbeats: the epoch is artefact.
                if epoch >= seg.epochs {
                    seg.epoch.close_beats = true;
                } else {
                    let k = seg.epochs - 1 - epoch;
                    if k < 128 {
                        seg.good &= !(1u128 << k);
                    }
                }
            }
            let e = RrEntry {
                epoch,
                span: (epoch - prev_epoch).min(u32::from(u16::MAX)) as u16,
                rr_ms: rr.min(u32::from(u16::MAX)) as u16,
            };
            self.rr[self.rr_head] = e;
            self.rr_head = (self.rr_head + 1) % RR_CAPACITY;
            self.rr_len = (self.rr_len + 1).min(RR_CAPACITY);
        }
        seg.last_beat = Some(b.sample);
        events.push(EcgEvent::Beat { t_ms, rr_ms });
    }

    fn end_epoch(&mut self, events: &mut Vec<EcgEvent>) {
        let Some(seg) = self.seg.as_mut() else { return };
        let q = seg.epoch.quality(seg.uv_per_count, seg.fs);
        seg.epoch = EpochStats::default();
        seg.good = (seg.good << 1) | u128::from(q == Quality::Good);
        seg.epochs += 1;
        let e_last = seg.epochs - 1;
        let t_ms = seg
            .t0_ms
            .saturating_add(ms_of(u64::from(seg.epochs) * u64::from(seg.fs), seg.fs));
        if self.quality != Some(q) {
            self.quality = Some(q);
            events.push(EcgEvent::Quality { t_ms, quality: q });
        }
        let good = seg.good;
        let epochs = seg.epochs;
        let is_good = |epoch: u32| {
            let k = e_last.wrapping_sub(epoch);
            epoch <= e_last && k < 128 && good & (1u128 << k) != 0
        };

        // Heart rate over the last HR_WINDOW_S epochs, all good.
        self.heart_rate = None;
        if epochs >= HR_WINDOW_S {
            let first = epochs - HR_WINDOW_S;
            if (first..epochs).all(is_good) {
                let mut rr: Vec<u16> = self
                    .recent_rr()
                    .filter(|r| r.epoch >= first && r.epoch - u32::from(r.span) >= first)
                    .map(|r| r.rr_ms)
                    .collect();
                if rr.len() >= 2 {
                    rr.sort_unstable();
                    let m = rr.len() / 2;
                    let median = if rr.len() % 2 == 1 {
                        f32::from(rr[m])
                    } else {
                        (f32::from(rr[m - 1]) + f32::from(rr[m])) / 2.0
                    };
                    let bpm = 60_000.0 / median;
                    self.heart_rate = Some(bpm);
                    events.push(EcgEvent::HeartRate { t_ms, bpm });
                }
            }
        }

        // Possible AF every AF_EVERY_S seconds over the last AF_WINDOW_S.
        if u64::from(epochs) % AF_EVERY_S == 0 && epochs >= AF_WINDOW_S / 2 {
            let first = epochs.saturating_sub(AF_WINDOW_S);
            let mut rr: Vec<u16> = self
                .recent_rr()
                .filter(|r| {
                    r.epoch >= first
                        && r.epoch - u32::from(r.span) >= first
                        && is_good(r.epoch)
                        && is_good(r.epoch - u32::from(r.span))
                })
                .map(|r| r.rr_ms)
                .collect();
            rr.reverse(); // oldest first
            self.af = af::assess(&rr);
            let active = self.af.is_some_and(|a| a.possible_af);
            if active != self.af_active {
                self.af_active = active;
                if let Some(assessment) = self.af {
                    events.push(EcgEvent::PossibleAf {
                        t_ms,
                        active,
                        assessment,
                    });
                }
            }
        }
    }

    /// RR entries, newest first.
    fn recent_rr(&self) -> impl Iterator<Item = RrEntry> + '_ {
        (0..self.rr_len).map(move |i| self.rr[(self.rr_head + RR_CAPACITY - 1 - i) % RR_CAPACITY])
    }
}

/// Milliseconds spanned by `samples` at `fs` Hz, rounded.
fn ms_of(samples: u64, fs: u32) -> i64 {
    ((samples as u128 * 1000 + u128::from(fs) / 2) / u128::from(fs)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Lcg, beat_samples, render};

    const FS: u32 = 250;
    const T0: i64 = 1_795_000_000_000;

    fn feed(stream: &mut EcgStream, samples: &[i16], t0: i64, chunk: usize) -> Vec<EcgEvent> {
        let mut events = Vec::new();
        for (k, c) in samples.chunks(chunk).enumerate() {
            let t0_ms = t0 + ms_of((k * chunk) as u64, FS);
            stream
                .push_chunk_into(
                    &Chunk {
                        t0_ms,
                        fs_hz: FS as u16,
                        uv_per_count: 2.5,
                        samples: c,
                    },
                    &mut events,
                )
                .expect("chunk accepted");
        }
        events
    }

    fn rhythm(seconds: f64, rr: impl FnMut() -> f64) -> Vec<i16> {
        let mut rr = rr;
        let mut rrs = Vec::new();
        let mut t = 500.0;
        while t < seconds * 1000.0 {
            let r = rr();
            rrs.push(r);
            t += r;
        }
        let beats = beat_samples(FS, 500.0, &rrs);
        render(FS, (seconds * f64::from(FS)) as usize, &beats, 2.5, 20.0, 1)
    }

    fn heart_rates(ev: &[EcgEvent]) -> Vec<f32> {
        ev.iter()
            .filter_map(|e| match e {
                EcgEvent::HeartRate { bpm, .. } => Some(*bpm),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn heart_rate_of_a_clean_75_bpm_rhythm_is_75() {
        let sig = rhythm(60.0, || 800.0);
        let mut s = EcgStream::new();
        let ev = feed(&mut s, &sig, T0, 250);
        let hr = heart_rates(&ev);
        assert!(
            hr.len() > 40,
            "a heart rate every second once the window is full"
        );
        assert!(hr.iter().all(|b| (b - 75.0).abs() < 1.0), "{hr:?}");
        assert_eq!(s.quality(), Some(Quality::Good));
    }

    #[test]
    fn lead_off_gives_no_heart_rate_and_never_zero_bpm() {
        let mut sig = rhythm(30.0, || 800.0);
        // electrode detached: amplifier output flat for 20 s
        sig.extend(core::iter::repeat_n(3, 20 * FS as usize));
        let mut s = EcgStream::new();
        let ev = feed(&mut s, &sig, T0, 125);
        assert!(ev.contains(&EcgEvent::Quality {
            t_ms: T0 + 31_000,
            quality: Quality::LeadOff
        }));
        assert_eq!(s.heart_rate(), None);
        assert!(
            heart_rates(&ev).iter().all(|b| *b > 70.0),
            "no bradycardia from a flat line"
        );
        let last_hr_t = ev
            .iter()
            .filter_map(|e| match e {
                EcgEvent::HeartRate { t_ms, .. } => Some(*t_ms),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        assert!(
            last_hr_t <= T0 + 30_000,
            "no heart rate once the lead is off"
        );
    }

    #[test]
    fn saturated_lead_is_lead_off_not_a_heart_rate() {
        let mut sig = rhythm(20.0, || 800.0);
        sig.extend((0..10 * FS as usize).map(|i| if i % 50 < 40 { i16::MAX } else { 0 }));
        let mut s = EcgStream::new();
        let ev = feed(&mut s, &sig, T0, 500);
        assert_eq!(s.quality(), Some(Quality::LeadOff));
        assert_eq!(s.heart_rate(), None);
        assert!(ev.iter().any(|e| matches!(
            e,
            EcgEvent::Quality {
                quality: Quality::LeadOff,
                ..
            }
        )));
    }

    #[test]
    fn motion_artefact_withholds_heart_rate_instead_of_counting_artefact_as_beats() {
        let mut sig = rhythm(40.0, || 800.0);
        // 10 s of electrode motion from 20 s: the baseline lurches by up to
        // ±6 mV twice a second (electrode pops) under broadband muscle noise.
        let mut rng = Lcg(9);
        let mut baseline = 0.0f64;
        for (i, v) in sig
            .iter_mut()
            .enumerate()
            .take(30 * FS as usize)
            .skip(20 * FS as usize)
        {
            if i % (FS as usize / 2) == 0 {
                baseline = (rng.next_f64() * 2.0 - 1.0) * 6000.0;
            }
            let emg = (rng.next_f64() * 2.0 - 1.0) * 300.0;
            *v = v.saturating_add(((baseline + emg) / 2.5) as i16);
        }
        let mut s = EcgStream::new();
        let ev = feed(&mut s, &sig, T0, 250);
        let during: Vec<f32> = ev
            .iter()
            .filter_map(|e| match e {
                EcgEvent::HeartRate { t_ms, bpm }
                    if *t_ms > T0 + 20_000 && *t_ms <= T0 + 40_000 =>
                {
                    Some(*bpm)
                }
                _ => None,
            })
            .collect();
        assert!(
            during.iter().all(|b| (b - 75.0).abs() < 2.0),
            "artefact must not raise the heart rate: {during:?}"
        );
        assert!(ev.iter().any(|e| matches!(
            e,
            EcgEvent::Quality {
                quality: Quality::Noisy,
                ..
            }
        )));
    }

    #[test]
    fn a_train_of_sharp_artefact_spikes_withholds_heart_rate() {
        let mut sig = rhythm(40.0, || 800.0);
        // 10 s of tapping on the electrode: sharp 6 mV spikes every 148 ms
        for (i, v) in sig
            .iter_mut()
            .enumerate()
            .take(30 * FS as usize)
            .skip(20 * FS as usize)
        {
            if i % 37 < 4 {
                *v = v.saturating_add(2400);
            }
        }
        let mut s = EcgStream::new();
        let ev = feed(&mut s, &sig, T0, 250);
        let during: Vec<f32> = ev
            .iter()
            .filter_map(|e| match e {
                EcgEvent::HeartRate { t_ms, bpm } if *t_ms > T0 + 20_000 => Some(*bpm),
                _ => None,
            })
            .collect();
        assert!(during.iter().all(|b| (b - 75.0).abs() < 2.0), "{during:?}");
    }

    #[test]
    fn irregularly_irregular_rhythm_raises_possible_af_with_its_evidence() {
        let mut rng = Lcg(42);
        let sig = rhythm(200.0, || 420.0 + 560.0 * rng.next_f64());
        let mut s = EcgStream::new();
        let ev = feed(&mut s, &sig, T0, 400);
        let af: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                EcgEvent::PossibleAf {
                    t_ms,
                    active,
                    assessment,
                } => Some((*t_ms, *active, *assessment)),
                _ => None,
            })
            .collect();
        let (t, active, a) = af.first().copied().expect("a possible-AF prompt");
        assert!(active);
        assert!(t >= T0 + 60_000, "never from less than a minute of beats");
        assert!(a.intervals >= crate::af::MIN_INTERVALS);
        assert!(a.nrmssd > crate::af::NRMSSD_THRESHOLD);
        assert!(a.sample_entropy > crate::af::SAMPLE_ENTROPY_THRESHOLD);
        assert!(s.af().is_some_and(|a| a.possible_af));
    }

    #[test]
    fn regular_rhythm_with_bigeminy_does_not_raise_possible_af() {
        let mut k = 0;
        let sig = rhythm(200.0, || {
            k += 1;
            if k % 2 == 0 { 520.0 } else { 1080.0 }
        });
        let mut s = EcgStream::new();
        let ev = feed(&mut s, &sig, T0, 400);
        assert!(!ev.iter().any(|e| matches!(e, EcgEvent::PossibleAf { .. })));
        assert!(s.af().is_some_and(|a| !a.possible_af));
    }

    #[test]
    fn a_gap_restarts_analysis_and_an_overlap_is_rejected() {
        let sig = rhythm(20.0, || 800.0);
        let mut s = EcgStream::new();
        feed(&mut s, &sig, T0, 250);
        let later = feed(&mut s, &sig, T0 + 60_000, 250);
        let gap = later
            .iter()
            .position(|e| *e == EcgEvent::Gap { t_ms: T0 + 60_000 })
            .expect("a gap event");
        // Before the gap only the first segment's last pending beat is flushed.
        assert!(
            later[..gap]
                .iter()
                .all(|e| matches!(e, EcgEvent::Beat { t_ms, .. } if *t_ms < T0 + 20_000))
        );
        assert!(
            !later[gap..]
                .iter()
                .any(|e| matches!(e, EcgEvent::HeartRate { t_ms, .. } if *t_ms < T0 + 70_000)),
            "the heart-rate window restarts after a gap"
        );
        let overlap = Chunk {
            t0_ms: T0 + 60_000,
            fs_hz: FS as u16,
            uv_per_count: 2.5,
            samples: &sig[..10],
        };
        assert!(matches!(s.push_chunk(&overlap), Err(EcgError::BadChunk(_))));
    }

    #[test]
    fn bad_chunks_are_errors_not_panics() {
        let mut s = EcgStream::new();
        let c = |fs_hz: u16, uv: f32| Chunk {
            t0_ms: T0,
            fs_hz,
            uv_per_count: uv,
            samples: &[0; 10],
        };
        assert!(s.push_chunk(&c(250, f32::NAN)).is_err());
        assert!(s.push_chunk(&c(250, -1.0)).is_err());
        assert_eq!(
            s.push_chunk(&c(50, 1.0)),
            Err(EcgError::UnsupportedSampleRate(50))
        );
        assert!(s.push_chunk(&c(250, 1.0)).is_ok());
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let sig = rhythm(3.0, || 800.0);
        for t0 in [i64::MIN, -1, i64::MAX - 10, i64::MAX] {
            let mut s = EcgStream::new();
            for c in sig.chunks(100) {
                let _ = s.push_chunk(&Chunk {
                    t0_ms: t0,
                    fs_hz: FS as u16,
                    uv_per_count: 2.5,
                    samples: c,
                });
            }
            let _ = s.finish();
        }
    }

    #[test]
    fn memory_per_stream_is_small_and_bounded() {
        let mut s = EcgStream::new();
        let sig = rhythm(130.0, || 800.0);
        let c = Chunk {
            t0_ms: T0,
            fs_hz: FS as u16,
            uv_per_count: 2.5,
            samples: &sig,
        };
        s.push_chunk(&c).expect("accepted");
        let total = core::mem::size_of::<EcgStream>() + s.heap_bytes();
        assert!(total < 16 * 1024, "{total} bytes");
    }
}
