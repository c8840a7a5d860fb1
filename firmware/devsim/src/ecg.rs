//! The ECG patch's signal: a recording replayed, or a synthetic one.
//!
//! - **MIT-BIH replay** ([`Recording`]): a record of the MIT-BIH Arrhythmia
//!   Database (Moody & Mark 2001, on PhysioNet: Goldberger et al. 2000),
//!   channel 0 (MLII), read with `vigil_ecg::wfdb`, baseline removed and
//!   resampled from 360 to 250 Hz ([`crate::resample`]). Each patch starts
//!   at its own offset and loops. Real morphology, noise and ectopy; the
//!   heart rate is the recording's, not the simulated patient's.
//! - **Synthetic** ([`Synthetic`]): `vigil_ecg::synth` beats placed at RR
//!   intervals drawn from the patient's current pulse and rhythm: sinus
//!   with respiratory and random variability, or atrial fibrillation
//!   (irregularly irregular RR). Used for long runs, for the AF scenario,
//!   and whenever the recordings are absent.
//!
//! Faults change the signal as a real patch would see them: lead off gives a
//! flat line (under the detector's 30 µV peak-to-peak lead-off threshold),
//! poor signal adds motion artefact.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_ecg::synth;
use vigil_ecg::wfdb;

use crate::physiology::Rhythm;
use crate::resample::resample;
use crate::rng::SimRng;
use crate::schedule::ECG_FS_HZ;

/// Microvolts per count of the synthetic signal.
pub const SYNTH_UV_PER_COUNT: f32 = 2.5;

/// Signal condition at the electrodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// Good contact.
    Good,
    /// Leads off: a flat line.
    LeadOff,
    /// Motion artefact.
    Poor,
}

/// A MIT-BIH record, resampled to the patch rate, shared between patches.
#[derive(Debug)]
pub struct Recording {
    /// Record name, e.g. `"201"`.
    pub name: String,
    /// Samples at [`ECG_FS_HZ`], baseline removed, in counts.
    pub samples: Vec<i16>,
    /// Microvolts per count.
    pub uv_per_count: f32,
}

/// Errors reading a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// File missing or unreadable.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a readable WFDB record.
    #[error("record {name}: {source}")]
    Wfdb {
        /// The record.
        name: String,
        /// The cause.
        source: vigil_ecg::EcgError,
    },
}

impl Recording {
    /// Reads record `name` (e.g. `"201"`) from `dir`: `.hea` and its `.dat`.
    pub fn load(dir: &Path, name: &str) -> Result<Recording, RecordError> {
        let read =
            |p: PathBuf| std::fs::read(&p).map_err(|source| RecordError::Io { path: p, source });
        let hea_bytes = read(dir.join(format!("{name}.hea")))?;
        let hea = String::from_utf8_lossy(&hea_bytes);
        let wf = |source| RecordError::Wfdb {
            name: name.to_string(),
            source,
        };
        let header = wfdb::parse_header(&hea).map_err(wf)?;
        let spec = header.signals.first().ok_or_else(|| {
            wf(vigil_ecg::EcgError::NoSuchChannel {
                channel: 0,
                available: 0,
            })
        })?;
        let dat = read(dir.join(&spec.file))?;
        let raw = wfdb::decode_channel(&header, &dat, 0).map_err(wf)?;
        let uv_per_count = spec.microvolts_per_count();
        let baseline = spec.baseline;
        let centred: Vec<i32> = raw.iter().map(|&v| v - baseline).collect();
        let resampled = resample(&centred, header.fs_hz, f64::from(ECG_FS_HZ));
        let samples = resampled
            .iter()
            .map(|&v| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
            .collect();
        Ok(Recording {
            name: name.to_string(),
            samples,
            uv_per_count,
        })
    }

    /// The record names in `dir` (those with a `.hea`), sorted.
    pub fn list(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                (p.extension()? == "hea").then(|| p.file_stem()?.to_str().map(String::from))?
            })
            .collect();
        names.sort();
        names
    }

    /// Loads up to `max` records from `dir`, skipping unreadable ones.
    pub fn load_dir(dir: &Path, max: usize) -> Vec<Arc<Recording>> {
        Recording::list(dir)
            .iter()
            .take(max)
            .filter_map(|n| match Recording::load(dir, n) {
                Ok(r) if !r.samples.is_empty() => Some(Arc::new(r)),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping ECG record");
                    None
                }
            })
            .collect()
    }
}

/// Synthetic ECG with beats at RR intervals from the current pulse and rhythm.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// R peaks (absolute sample index) not yet fully rendered.
    beats: VecDeque<u64>,
    /// Where the next beat goes.
    next_beat: u64,
    rng: SimRng,
    seed: u64,
}

impl Synthetic {
    /// A generator with its own random stream.
    pub fn new(seed: u64) -> Synthetic {
        let mut rng = SimRng::seeded(seed);
        let next_beat = (rng.uniform(0.1, 0.8) * f64::from(ECG_FS_HZ)) as u64;
        Synthetic {
            beats: VecDeque::new(),
            next_beat,
            rng,
            seed,
        }
    }

    /// The R peaks generated so far that are still buffered (for tests).
    pub fn pending_beats(&self) -> impl Iterator<Item = u64> + '_ {
        self.beats.iter().copied()
    }

    /// Samples `[pos, pos + n)` at [`ECG_FS_HZ`] for a heart at `pulse`
    /// /min in `rhythm`. Calls must be consecutive (`pos` advancing by `n`).
    pub fn chunk(&mut self, pos: u64, n: usize, pulse: f64, rhythm: Rhythm) -> Vec<i16> {
        let fs = u64::from(ECG_FS_HZ);
        let margin = fs / 2; // waves reach 0.3 s before and 0.5 s after R
        let end = pos + n as u64;
        while self.next_beat < end + margin {
            self.beats.push_back(self.next_beat);
            let mean_rr = 60.0 / pulse.clamp(30.0, 220.0);
            let rr = match rhythm {
                Rhythm::Sinus => mean_rr * (1.0 + self.rng.gauss(0.03)).clamp(0.85, 1.15),
                // Irregularly irregular: independent RRs over ±35 %.
                Rhythm::AtrialFibrillation => mean_rr * self.rng.uniform(0.65, 1.35),
            };
            self.next_beat += ((rr * fs as f64) as u64).max(fs / 5);
        }
        while self.beats.front().is_some_and(|&b| b + margin < pos) {
            self.beats.pop_front();
        }
        let w0 = pos.saturating_sub(margin);
        let len = (end + margin - w0) as usize;
        let rel: Vec<u64> = self
            .beats
            .iter()
            .filter(|&&b| b >= w0)
            .map(|&b| b - w0)
            .collect();
        let win = synth::render(
            u32::from(ECG_FS_HZ),
            len,
            &rel,
            SYNTH_UV_PER_COUNT,
            20.0,
            self.seed ^ pos,
        );
        let off = (pos - w0) as usize;
        win[off..off + n].to_vec()
    }
}

/// One patch's signal source.
#[derive(Debug, Clone)]
pub enum EcgSource {
    /// A recording, looped from an offset.
    Replay {
        /// The record.
        rec: Arc<Recording>,
        /// Offset into the record of stream sample 0.
        offset: usize,
    },
    /// Synthetic.
    Synth(Box<Synthetic>),
}

/// The patch's ECG stream.
#[derive(Debug, Clone)]
pub struct EcgStream {
    source: EcgSource,
    pos: u64,
    rng: SimRng,
}

impl EcgStream {
    /// A stream from `source`.
    pub fn new(source: EcgSource, seed: u64) -> EcgStream {
        EcgStream {
            source,
            pos: 0,
            rng: SimRng::seeded(seed ^ 0x5eed),
        }
    }

    /// Microvolts per count of this stream.
    pub fn uv_per_count(&self) -> f32 {
        match &self.source {
            EcgSource::Replay { rec, .. } => rec.uv_per_count,
            EcgSource::Synth(_) => SYNTH_UV_PER_COUNT,
        }
    }

    /// Name of the source, for logs: the record or `synthetic`.
    pub fn source_name(&self) -> String {
        match &self.source {
            EcgSource::Replay { rec, .. } => format!("mitdb/{}", rec.name),
            EcgSource::Synth(_) => "synthetic".into(),
        }
    }

    /// The next `n` samples.
    pub fn next_chunk(
        &mut self,
        n: usize,
        pulse: f64,
        rhythm: Rhythm,
        contact: Contact,
    ) -> Vec<i16> {
        let pos = self.pos;
        self.pos += n as u64;
        let uv = self.uv_per_count();
        let mut s = match &mut self.source {
            EcgSource::Replay { rec, offset } => {
                let len = rec.samples.len();
                (0..n)
                    .map(|i| rec.samples[(*offset + pos as usize + i) % len])
                    .collect()
            }
            EcgSource::Synth(g) => g.chunk(pos, n, pulse, rhythm),
        };
        match contact {
            Contact::Good => {}
            Contact::LeadOff => {
                for v in s.iter_mut() {
                    *v = (self.rng.uniform(-5.0, 5.0) / f64::from(uv)).round() as i16;
                }
            }
            Contact::Poor => {
                // Motion artefact: a wandering baseline with sharp steps.
                let mut base = self.rng.uniform(-800.0, 800.0);
                for v in s.iter_mut() {
                    if self.rng.chance(0.02) {
                        base = self.rng.uniform(-3000.0, 3000.0);
                    }
                    let noisy = f64::from(*v) + (base + self.rng.gauss(250.0)) / f64::from(uv);
                    *v = noisy.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
                }
            }
        }
        s
    }
}

/// The default place of the MIT-BIH records: `../shared/data/mitdb`
/// relative to the working directory, or `$VIGIL_MITDB`.
pub fn default_mitdb_dir() -> PathBuf {
    std::env::var_os("VIGIL_MITDB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/mitdb"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beats_of(samples: &[i16]) -> Vec<u64> {
        vigil_ecg::detect_all(u32::from(ECG_FS_HZ), samples)
            .expect("detector")
            .iter()
            .map(|b| b.sample)
            .collect()
    }

    fn rr_cv(beats: &[u64]) -> f64 {
        let rr: Vec<f64> = beats.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = rr.iter().sum::<f64>() / rr.len() as f64;
        (rr.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rr.len() as f64).sqrt() / mean
    }

    fn stream(rhythm: Rhythm, pulse: f64, secs: usize) -> Vec<i16> {
        let mut s = EcgStream::new(EcgSource::Synth(Box::new(Synthetic::new(11))), 11);
        (0..secs)
            .flat_map(|_| s.next_chunk(250, pulse, rhythm, Contact::Good))
            .collect()
    }

    #[test]
    fn synthetic_sinus_gives_the_asked_heart_rate_to_the_detector() {
        let sig = stream(Rhythm::Sinus, 72.0, 120);
        let beats = beats_of(&sig);
        let hr =
            60.0 * (beats.len() - 1) as f64 / ((beats[beats.len() - 1] - beats[0]) as f64 / 250.0);
        assert!((hr - 72.0).abs() < 3.0, "hr {hr}");
        assert!(rr_cv(&beats) < 0.06, "cv {}", rr_cv(&beats));
    }

    #[test]
    fn synthetic_af_is_irregularly_irregular() {
        let sig = stream(Rhythm::AtrialFibrillation, 110.0, 120);
        let beats = beats_of(&sig);
        assert!(rr_cv(&beats) > 0.12, "cv {}", rr_cv(&beats));
    }

    #[test]
    fn chunks_join_without_seams() {
        // Chunked output equals the same beats rendered in one piece.
        let mut g = Synthetic::new(3);
        let chunked: Vec<i16> = (0..10)
            .flat_map(|k| g.chunk(k * 250, 250, 70.0, Rhythm::Sinus))
            .collect();
        let beats = beats_of(&chunked);
        let rr: Vec<u64> = beats.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(rr.iter().all(|&r| (180..=250).contains(&r)), "{rr:?}");
    }

    #[test]
    fn lead_off_is_flat_enough_for_the_lead_off_rule() {
        let mut s = EcgStream::new(EcgSource::Synth(Box::new(Synthetic::new(1))), 1);
        let c = s.next_chunk(250, 70.0, Rhythm::Sinus, Contact::LeadOff);
        let (lo, hi) = (
            c.iter().min().copied().unwrap_or(0),
            c.iter().max().copied().unwrap_or(0),
        );
        assert!(f32::from(hi - lo) * SYNTH_UV_PER_COUNT < vigil_ecg::sqi::FLAT_UV);
    }
}
