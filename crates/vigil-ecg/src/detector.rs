//! Streaming QRS detector: Pan–Tompkins signal path, Hamilton–Tompkins decision rules.
//!
//! Signal path, per sample (Pan & Tompkins 1985):
//! band-pass 5–15 Hz (2nd-order Butterworth high-pass, 4th-order
//! Butterworth low-pass, designed for the stream's sample rate) → 10 ms
//! difference → absolute value → 120 ms moving-window integral (MWI).
//!
//! Decisions (Hamilton & Tompkins 1986, as in their open-source OSEA
//! detector, re-derived for any sample rate):
//! - a *peak* is a local maximum of the MWI, declared when the MWI falls to
//!   half of it or 95 ms pass without a larger value;
//! - a peak becomes a *candidate* only if no larger peak follows within
//!   200 ms (one candidate per QRS, and the refractory period);
//! - a candidate is a QRS when it exceeds the detection threshold
//!   `noise + 0.3125 · (qrs − noise)` (means of the last 8 QRS and noise
//!   peak heights), its derivative is biphasic within 150 ms (not a
//!   baseline shift), and, if it is within 360 ms of the previous QRS, its
//!   steepest slope is at least half of that QRS's (T-wave discrimination);
//! - search-back: when no QRS has been found for 1.5 mean RR intervals, the
//!   largest candidate since the last QRS (at least 360 ms after it) is
//!   accepted if it exceeds half the threshold;
//! - the QRS level decays if nothing is detected for several seconds, so an
//!   amplitude drop (electrode moved) is re-learnt rather than ignored.
//!
//! Chunk invariance: all state lives in [`Detector`] and is advanced one
//! sample at a time; decisions depend only on sample indices, never on
//! where a chunk ends. A beat is reported at most [`Detector::max_delay`]
//! samples after its R peak (plus the search-back interval when it was
//! found by search-back), whichever way the input is cut.

use crate::error::EcgError;
use crate::filter::{Biquad, group_delay};

/// One detected heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Beat {
    /// Absolute sample index of the R peak (0 = first sample pushed).
    pub sample: u64,
}

/// Peak heights kept for the QRS and noise levels, and RR intervals for the mean RR.
const HISTORY: usize = 8;
/// Hamilton & Tompkins' threshold coefficient.
const TH: f32 = 0.3125;

#[derive(Debug, Clone, Copy, Default)]
struct Analysis {
    /// Beat location (sample index of the R peak estimate).
    loc: u64,
    /// Steepest positive slope in the QRS window (band-passed units).
    max_slope: f32,
    /// Derivative shows a QRS-like up-and-down pair rather than a baseline step.
    biphasic: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    height: f32,
    /// MWI index of the peak: the time base of all decision intervals.
    at: u64,
    info: Analysis,
}

/// Durations in samples, fixed at construction from the sample rate.
#[derive(Debug, Clone, Copy)]
struct Timing {
    deriv_lag: usize,
    mwi_len: usize,
    ms95: u64,
    ms150: u64,
    ms200: u64,
    ms360: u64,
    learn: u64,
    one_s: u64,
    decay_after: u64,
    /// Samples between the band-passed R peak and the raw R peak.
    group_delay: u64,
    /// Samples searched before the MWI peak for the R peak and its slopes.
    window: u64,
}

/// A streaming QRS detector for one ECG lead.
///
/// ```
/// use vigil_ecg::Detector;
/// let mut d = Detector::new(360)?;
/// let mut beats = d.push(&[0i16; 1000]);
/// beats.extend(d.finish());
/// assert!(beats.is_empty()); // a flat line has no beats
/// # Ok::<(), vigil_ecg::EcgError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Detector {
    fs: u32,
    t: Timing,
    /// Absolute index of the next sample to be pushed.
    n: u64,
    /// First sample, subtracted from all input so the high-pass starts at
    /// rest instead of ringing on the record's DC offset.
    offset: Option<f32>,
    hp: Biquad,
    lp1: Biquad,
    lp2: Biquad,
    /// Band-passed signal history (power-of-two ring).
    bp: Vec<f32>,
    mask: usize,
    /// Rectified-derivative history for the moving-window integral.
    mwi: Vec<f32>,
    mwi_pos: usize,
    mwi_sum: f32,
    // -- peak tracker on the MWI
    pk_max: f32,
    pk_at: u64,
    pk_age: u64,
    prev_mwi: f32,
    // -- 200 ms pre-blanking: the pending candidate
    pending: Option<Candidate>,
    pending_left: u64,
    // -- learning (first seconds): per-second MWI maxima
    learn_max: [f32; 3],
    // -- decision state
    learnt: bool,
    qrs: [f32; HISTORY],
    noise: [f32; HISTORY],
    rr: [u64; HISTORY],
    hist_pos: (usize, usize, usize),
    threshold: f32,
    rr_mean: u64,
    last_qrs: Option<Candidate>,
    /// Next sample at which the QRS level decays if no QRS comes first.
    next_decay: u64,
    /// First sample at which search-back may fire (1.5 mean RR after the last QRS).
    searchback_due: u64,
    searchback: Option<Candidate>,
    last_emitted: Option<u64>,
}

impl Detector {
    /// A detector for a stream sampled at `fs_hz` (125–1000 Hz).
    pub fn new(fs_hz: u32) -> Result<Self, EcgError> {
        if !(125..=1000).contains(&fs_hz) {
            return Err(EcgError::UnsupportedSampleRate(fs_hz));
        }
        let fs = fs_hz as f64;
        let ms = |v: f64| ((v * fs / 1000.0).round() as u64).max(1);
        let hp = Biquad::highpass(fs, 5.0, core::f64::consts::FRAC_1_SQRT_2);
        // 4th-order Butterworth low-pass as two sections (Q of each pole pair).
        let lp1 = Biquad::lowpass(fs, 15.0, 0.541_196_1);
        let lp2 = Biquad::lowpass(fs, 15.0, 1.306_563);
        let gd = group_delay(&[hp, lp1, lp2], fs, 10.0).max(0.0).round() as u64;
        let mwi_len = ms(120.0) as usize;
        let deriv_lag = ms(10.0) as usize;
        let t = Timing {
            deriv_lag,
            mwi_len,
            ms95: ms(95.0),
            ms150: ms(150.0),
            ms200: ms(200.0),
            ms360: ms(360.0),
            learn: ms(3000.0),
            one_s: ms(1000.0),
            decay_after: ms(3000.0),
            group_delay: gd,
            window: mwi_len as u64 + deriv_lag as u64 + ms(60.0),
        };
        // History needed: the decision lags the MWI peak by up to
        // 95 ms + 200 ms; the analysis looks `window` before that peak.
        let need = (t.ms95 + t.ms200 + t.window + 8) as usize;
        let size = need.next_power_of_two();
        Ok(Self {
            fs: fs_hz,
            t,
            n: 0,
            offset: None,
            hp,
            lp1,
            lp2,
            bp: vec![0.0; size],
            mask: size - 1,
            mwi: vec![0.0; mwi_len],
            mwi_pos: 0,
            mwi_sum: 0.0,
            pk_max: 0.0,
            pk_at: 0,
            pk_age: 0,
            prev_mwi: 0.0,
            pending: None,
            pending_left: 0,
            learn_max: [0.0; 3],
            learnt: false,
            qrs: [0.0; HISTORY],
            noise: [0.0; HISTORY],
            rr: [0; HISTORY],
            hist_pos: (0, 0, 0),
            threshold: 0.0,
            rr_mean: t.one_s,
            last_qrs: None,
            next_decay: u64::MAX,
            searchback_due: u64::MAX,
            searchback: None,
            last_emitted: None,
        })
    }

    /// Sample rate this detector was built for.
    pub fn fs_hz(&self) -> u32 {
        self.fs
    }

    /// Number of samples pushed so far (the index the next sample will get).
    pub fn samples_seen(&self) -> u64 {
        self.n
    }

    /// Upper bound, in samples, on how long after its R peak a beat found by
    /// the threshold rule is reported (search-back beats come later, at most
    /// 1.5 mean RR after the previous beat).
    pub fn max_delay(&self) -> u64 {
        self.t.group_delay + self.t.window + self.t.ms95 + self.t.ms200
    }

    /// Bytes this detector holds on the heap (its two rings).
    pub fn heap_bytes(&self) -> usize {
        (self.bp.capacity() + self.mwi.capacity()) * core::mem::size_of::<f32>()
    }

    /// Push samples; returns the beats decided during this call.
    pub fn push<S: Copy + Into<i32>>(&mut self, samples: &[S]) -> Vec<Beat> {
        let mut out = Vec::new();
        self.push_into(samples, &mut out);
        out
    }

    /// Push samples, appending the beats decided during this call to `out`
    /// (no allocation when `out` has room).
    pub fn push_into<S: Copy + Into<i32>>(&mut self, samples: &[S], out: &mut Vec<Beat>) {
        for &s in samples {
            self.step(s.into() as f32, out);
        }
    }

    /// End of signal: decide the pending candidate now instead of waiting
    /// for samples that will not come. The detector can be reused
    /// afterwards, but it then behaves as if a gap had ended the beat stream.
    pub fn finish(&mut self) -> Vec<Beat> {
        let mut out = Vec::new();
        if self.pk_max > 0.0 {
            let (h, at) = (self.pk_max, self.pk_at);
            self.pk_max = 0.0;
            self.pk_age = 0;
            self.on_peak(h, at, &mut out);
        }
        if let Some(c) = self.pending.take() {
            self.decide(c, &mut out);
        }
        out
    }

    #[inline(always)]
    fn step(&mut self, x: f32, out: &mut Vec<Beat>) {
        let n = self.n;
        let x0 = *self.offset.get_or_insert(x);
        let y = self.lp2.step(self.lp1.step(self.hp.step(x - x0)));
        let i = n as usize & self.mask;
        self.bp[i] = y;
        let d = (y - self.bp[(n as usize).wrapping_sub(self.t.deriv_lag) & self.mask]).abs();
        // Moving-window integral as a running f32 sum, recomputed exactly
        // once per window so rounding error cannot accumulate over days.
        let old = self.mwi[self.mwi_pos];
        self.mwi[self.mwi_pos] = d;
        self.mwi_pos += 1;
        if self.mwi_pos == self.t.mwi_len {
            self.mwi_pos = 0;
            self.mwi_sum = self.mwi.iter().sum();
        } else {
            self.mwi_sum += d - old;
        }
        let v = self.mwi_sum;
        self.n = n + 1;

        // Peak tracker (OSEA's Peak()): a maximum is declared when the MWI
        // drops to half of it, or 95 ms pass without a larger value.
        if v > self.prev_mwi && v > self.pk_max {
            self.pk_max = v;
            self.pk_at = n;
            self.pk_age = 1;
        } else if self.pk_age > 0 {
            self.pk_age += 1;
            if v < self.pk_max * 0.5 || self.pk_age > self.t.ms95 {
                let (h, at) = (self.pk_max, self.pk_at);
                self.pk_max = 0.0;
                self.pk_age = 0;
                self.on_peak(h, at, out);
            }
        }
        self.prev_mwi = v;

        if self.pending.is_some() {
            self.pending_left -= 1;
            if self.pending_left == 0
                && let Some(c) = self.pending.take()
            {
                self.decide(c, out);
            }
        }

        if !self.learnt {
            let sec = (n / self.t.one_s) as usize;
            if sec < self.learn_max.len() {
                self.learn_max[sec] = self.learn_max[sec].max(v);
            }
            if n + 1 >= self.t.learn {
                self.end_learning();
            }
            return;
        }
        self.check_searchback(n, out);
    }

    fn end_learning(&mut self) {
        self.learnt = true;
        for (k, q) in self.qrs.iter_mut().enumerate() {
            *q = self.learn_max[k % self.learn_max.len()];
        }
        self.noise = [0.0; HISTORY];
        self.rr = [self.t.one_s; HISTORY];
        self.rr_mean = self.t.one_s;
        self.next_decay = self.n + self.t.decay_after;
        self.update_threshold();
    }

    /// A peak of the MWI: keep the larger of peaks closer than 200 ms.
    fn on_peak(&mut self, height: f32, at: u64, out: &mut Vec<Beat>) {
        match self.pending {
            Some(p) if height > p.height => {
                self.pending = Some(Candidate {
                    height,
                    at,
                    info: Analysis::default(),
                });
                self.pending_left = self.t.ms200;
            }
            Some(_) => {}
            None => {
                self.pending = Some(Candidate {
                    height,
                    at,
                    info: Analysis::default(),
                });
                self.pending_left = self.t.ms200;
            }
        }
        let _ = out;
    }

    /// Look back from MWI peak `at` for the R peak and the slopes.
    fn analyse(&self, at: u64) -> Analysis {
        let w = self.t.window.min(at);
        let start = at - w;
        // The ring is sized so the analysis window is still in it.
        debug_assert!(self.n - start <= self.bp.len() as u64);
        let (mut best, mut best_i) = (0.0f32, at);
        let (mut dmax, mut dmax_i, mut dmin, mut dmin_i) = (0.0f32, at, 0.0f32, at);
        let lag = self.t.deriv_lag as u64;
        for k in start..=at {
            let y = self.bp[k as usize & self.mask];
            if y.abs() > best {
                best = y.abs();
                best_i = k;
            }
            if k >= lag {
                let d = y - self.bp[(k - lag) as usize & self.mask];
                if d > dmax {
                    dmax = d;
                    dmax_i = k;
                } else if d < dmin {
                    dmin = d;
                    dmin_i = k;
                }
            }
        }
        let dmin = -dmin;
        let biphasic =
            dmax > dmin / 8.0 && dmin > dmax / 8.0 && dmax_i.abs_diff(dmin_i) < self.t.ms150;
        Analysis {
            loc: best_i.saturating_sub(self.t.group_delay),
            max_slope: dmax.max(dmin),
            biphasic,
        }
    }

    fn decide(&mut self, mut c: Candidate, out: &mut Vec<Beat>) {
        if !self.learnt {
            return;
        }
        c.info = self.analyse(c.at);
        let since = self
            .last_qrs
            .map_or(u64::MAX, |l| c.at.saturating_sub(l.at));
        let slope_ok = since > self.t.ms360
            || self
                .last_qrs
                .is_none_or(|l| c.info.max_slope > 0.5 * l.info.max_slope);
        if c.height > self.threshold && c.info.biphasic && slope_ok && since > self.t.ms200 {
            self.accept(c, out);
        } else {
            self.push_noise(c.height);
            if since > self.t.ms360
                && c.info.biphasic
                && self.searchback.is_none_or(|s| c.height > s.height)
            {
                self.searchback = Some(c);
            }
        }
    }

    /// Per-sample checks, kept to two comparisons: the due times are
    /// computed when a QRS is accepted, not on every sample.
    #[inline(always)]
    fn check_searchback(&mut self, n: u64, out: &mut Vec<Beat>) {
        if n >= self.searchback_due
            && let Some(s) = self.searchback
            && s.height > 0.5 * self.threshold
        {
            self.searchback = None;
            self.accept(s, out);
            return;
        }
        if n >= self.next_decay {
            // After `decay_after` without a QRS, halve the QRS level once a
            // second: a lead re-attached with a smaller amplitude must not
            // stay invisible.
            self.next_decay = n + self.t.one_s;
            for q in &mut self.qrs {
                *q *= 0.5;
            }
            self.update_threshold();
        }
    }

    fn accept(&mut self, c: Candidate, out: &mut Vec<Beat>) {
        if let Some(l) = self.last_qrs {
            let rr = c.at.saturating_sub(l.at);
            self.rr[self.hist_pos.2] = rr;
            self.hist_pos.2 = (self.hist_pos.2 + 1) % HISTORY;
            self.rr_mean = self.rr.iter().sum::<u64>() / HISTORY as u64;
        }
        self.qrs[self.hist_pos.0] = c.height;
        self.hist_pos.0 = (self.hist_pos.0 + 1) % HISTORY;
        self.update_threshold();
        self.last_qrs = Some(c);
        self.next_decay = c.at + self.t.decay_after;
        // Search-back once 1.5 mean RR have passed and the candidates that
        // could still arrive for that stretch (95 ms peak + 200 ms blank) are in.
        self.searchback_due =
            c.at + self.rr_mean + self.rr_mean / 2 + self.t.ms95 + self.t.ms200 + 1;
        self.searchback = None;
        if self.last_emitted.is_none_or(|e| c.info.loc > e) {
            self.last_emitted = Some(c.info.loc);
            out.push(Beat { sample: c.info.loc });
        }
    }

    fn push_noise(&mut self, h: f32) {
        self.noise[self.hist_pos.1] = h;
        self.hist_pos.1 = (self.hist_pos.1 + 1) % HISTORY;
        self.update_threshold();
    }

    fn update_threshold(&mut self) {
        let q = self.qrs.iter().sum::<f32>() / HISTORY as f32;
        let nz = self.noise.iter().sum::<f32>() / HISTORY as f32;
        self.threshold = nz + TH * (q - nz);
    }
}

/// Run the detector over a whole signal in one call.
pub fn detect_all<S: Copy + Into<i32>>(fs_hz: u32, samples: &[S]) -> Result<Vec<Beat>, EcgError> {
    let mut d = Detector::new(fs_hz)?;
    let mut beats = d.push(samples);
    beats.extend(d.finish());
    Ok(beats)
}
