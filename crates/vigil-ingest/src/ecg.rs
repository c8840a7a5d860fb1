//! ECG chunks: decode and validate the binary payload (CONTRACTS.md §2), and
//! run one streaming analysis per patch (vigil-ecg) over the chunks that were
//! newly stored.
//!
//! Order of work per batch: store the raw chunks (one transaction), ack them,
//! then analyse. A chunk is safe once stored; if the daemon dies before the
//! analysis, the next start analyses it from the store (`stored_chunk`;
//! hazard TS-24), each patch's detector starting afresh, as after any gap.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use vigil_ecg::{Chunk, EcgEvent, EcgStream, Quality};
use vigil_store::BeatRow;

use crate::decode::{MAX_FUTURE, Rejection};

/// The detector's supported sample rates (vigil-ecg).
pub const FS_RANGE: std::ops::RangeInclusive<u16> = 125..=1000;

/// How often a patch's heart rate becomes a stored `pulse` observation.
/// NEWS2 needs a current value, not one per beat.
pub const HR_EVERY_MS: i64 = 60_000;

/// Name of the stored sample encoding (vigil_ecg::encode_samples).
pub const ENCODING: &str = vigil_ecg::SAMPLE_ENCODING;

/// A decoded, validated chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedChunk {
    pub seq: u32,
    pub t0_ms: i64,
    pub fs_hz: u16,
    pub uv_per_count: f32,
    pub samples: Vec<i16>,
}

/// Decode an `ecg` payload received at `now`.
pub fn decode_chunk(payload: &[u8], now: DateTime<Utc>) -> Result<DecodedChunk, Rejection> {
    let c = vigil_kit::ecg_chunk::EcgChunk::decode(payload).map_err(|e| Rejection {
        seq: None,
        reason: "ecg_format",
        detail: e.to_string(),
    })?;
    let seq = Some(c.seq);
    if !FS_RANGE.contains(&c.sample_rate_hz) {
        return Err(Rejection {
            seq,
            reason: "range",
            detail: format!("sample rate {} Hz outside 125–1000", c.sample_rate_hz),
        });
    }
    if c.is_empty() {
        return Err(Rejection {
            seq,
            reason: "schema",
            detail: "no samples".into(),
        });
    }
    if c.t0_ms > (now + MAX_FUTURE).timestamp_millis() {
        return Err(Rejection {
            seq,
            reason: "future_ts",
            detail: "t0 is in the future".into(),
        });
    }
    Ok(DecodedChunk {
        seq: c.seq,
        t0_ms: c.t0_ms,
        fs_hz: c.sample_rate_hz,
        uv_per_count: c.uv_per_count,
        samples: c.samples().collect(),
    })
}

/// A stored chunk back as the analysis takes it (the worker's catch-up of
/// chunks no pass analysed). An error if its encoding is not ours or its
/// samples do not decode to the count stored.
pub fn stored_chunk(row: &vigil_store::EcgChunkRow) -> Result<DecodedChunk, String> {
    if row.encoding != ENCODING {
        return Err(format!("unknown sample encoding {:?}", row.encoding));
    }
    let samples = vigil_ecg::decode_samples(&row.samples).map_err(|e| e.to_string())?;
    if samples.len() != row.n_samples as usize {
        return Err(format!(
            "{} samples stored as {}",
            samples.len(),
            row.n_samples
        ));
    }
    Ok(DecodedChunk {
        seq: row.seq,
        t0_ms: row.t0_ms,
        fs_hz: row.fs_hz,
        uv_per_count: row.uv_per_count,
        samples,
    })
}

/// What one chunk's analysis produced, for the pipeline to store and push.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Derived {
    pub beats: Vec<BeatRow>,
    /// A heart rate to store as a `pulse` observation: (measured at, bpm).
    pub heart_rate: Option<(DateTime<Utc>, f64)>,
    /// Quality changes: (t_ms, "ok" | "poor" | "lead_off").
    pub quality: Vec<(i64, &'static str)>,
    /// Possible-AF prompt changes: (t_ms, active).
    pub possible_af: Vec<(i64, bool)>,
}

fn quality_word(q: Quality) -> &'static str {
    match q {
        Quality::Good => "ok",
        Quality::Noisy => "poor",
        Quality::LeadOff => "lead_off",
    }
}

struct Patch {
    /// Whose signal this analysis has been reading.
    patient_id: i64,
    stream: EcgStream,
    last_hr_ms: Option<i64>,
}

impl Patch {
    fn new(patient_id: i64) -> Patch {
        Patch {
            patient_id,
            stream: EcgStream::new(),
            last_hr_ms: None,
        }
    }
}

/// One analysis per patch, kept in memory by the ingest worker.
#[derive(Default)]
pub struct EcgAnalysis {
    patches: HashMap<String, Patch>,
}

impl EcgAnalysis {
    /// Feed one newly stored chunk of `device`, worn by `patient`. A patch
    /// moved to another patient starts a fresh analysis: nothing of the
    /// last wearer's rhythm (the RR window behind the possible-AF prompt,
    /// the signal quality, the heart rate's pacing) carries over.
    pub fn feed(&mut self, device: &str, patient: i64, c: &DecodedChunk) -> Derived {
        let patch = self
            .patches
            .entry(device.to_string())
            .or_insert_with(|| Patch::new(patient));
        if patch.patient_id != patient {
            *patch = Patch::new(patient);
        }
        let chunk = Chunk {
            t0_ms: c.t0_ms,
            fs_hz: c.fs_hz,
            uv_per_count: c.uv_per_count,
            samples: &c.samples,
        };
        let events = match patch.stream.push_chunk(&chunk) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(device, error = %e, "ECG analysis refused a chunk; restarting this patch's analysis");
                patch.stream = EcgStream::new();
                return Derived::default();
            }
        };
        let mut d = Derived::default();
        for ev in events {
            match ev {
                EcgEvent::Beat { t_ms, rr_ms } => d.beats.push(BeatRow { t_ms, rr_ms }),
                EcgEvent::HeartRate { t_ms, bpm } => {
                    if patch
                        .last_hr_ms
                        .is_none_or(|last| t_ms - last >= HR_EVERY_MS)
                        && let Some(at) = Utc.timestamp_millis_opt(t_ms).single()
                    {
                        patch.last_hr_ms = Some(t_ms);
                        d.heart_rate = Some((at, f64::from(bpm).round()));
                    }
                }
                EcgEvent::Quality { t_ms, quality } => {
                    d.quality.push((t_ms, quality_word(quality)))
                }
                EcgEvent::PossibleAf { t_ms, active, .. } => d.possible_af.push((t_ms, active)),
                EcgEvent::Gap { .. } => {}
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(seq: u32, t0_ms: i64, fs: u16, samples: &[i16]) -> Vec<u8> {
        let chunk = vigil_kit::ecg_chunk::EcgChunk {
            seq,
            t0_ms,
            sample_rate_hz: fs,
            uv_per_count: 1.0,
            samples,
        };
        let mut buf = vec![0u8; 25 + 2 * samples.len()];
        let n = chunk.encode(&mut buf).expect("encode");
        buf.truncate(n);
        buf
    }

    #[test]
    fn chunk_round_trips_and_bad_ones_have_reasons() {
        let now = Utc::now();
        let t0 = now.timestamp_millis();
        let c = decode_chunk(&encode(9, t0, 250, &[1, -2, 3]), now).expect("valid");
        assert_eq!(
            (c.seq, c.fs_hz, c.samples.as_slice()),
            (9, 250, &[1, -2, 3][..])
        );
        assert_eq!(
            decode_chunk(b"VECG", now).expect_err("short").reason,
            "ecg_format"
        );
        assert_eq!(
            decode_chunk(&encode(1, t0, 50, &[0; 10]), now)
                .expect_err("fs")
                .reason,
            "range"
        );
        assert_eq!(
            decode_chunk(&encode(1, t0 + 3_600_000, 250, &[0; 10]), now)
                .expect_err("future")
                .reason,
            "future_ts"
        );
        let mut bad = encode(1, t0, 250, &[0; 10]);
        bad[0] = b'X';
        assert_eq!(
            decode_chunk(&bad, now).expect_err("magic").reason,
            "ecg_format"
        );
    }

    #[test]
    fn analysis_turns_synthetic_ecg_into_beats_and_a_rate_limited_heart_rate() {
        let fs = 250u32;
        let rr = vec![800.0; 120]; // 75 /min
        let beats = vigil_ecg::synth::beat_samples(fs, 500.0, &rr);
        let n = (fs as usize) * 90;
        let signal = vigil_ecg::synth::render(fs, n, &beats, 5.0, 20.0, 7);
        let mut a = EcgAnalysis::default();
        let t0 = 1_790_000_000_000i64;
        let (mut n_beats, mut rates) = (0, Vec::new());
        for (i, chunk) in signal.chunks(fs as usize).enumerate() {
            let c = DecodedChunk {
                seq: i as u32,
                t0_ms: t0 + i as i64 * 1000,
                fs_hz: fs as u16,
                uv_per_count: 5.0,
                samples: chunk.to_vec(),
            };
            let d = a.feed("patch-1", 1, &c);
            n_beats += d.beats.len();
            rates.extend(d.heart_rate);
        }
        assert!(
            (100..=115).contains(&n_beats),
            "{n_beats} beats in 90 s at 75/min"
        );
        assert!(
            !rates.is_empty() && rates.len() <= 2,
            "one stored rate per minute at most: {rates:?}"
        );
        assert!(
            rates.iter().all(|(_, bpm)| (74.0..=76.0).contains(bpm)),
            "{rates:?}"
        );
    }

    /// What a moved patch's analysis gives for its new wearer is what a new
    /// patch's would: here the first wearer's rhythm is irregular (as in
    /// AF), the second's regular.
    #[test]
    fn a_patch_moved_to_another_patient_starts_a_fresh_analysis() {
        let fs = 250u32;
        let t0 = 1_790_000_000_000i64;
        let chunks = |rr: &[f64], seed: u64, from: i64| -> Vec<DecodedChunk> {
            let beats = vigil_ecg::synth::beat_samples(fs, 500.0, rr);
            let n = (fs as usize) * 60;
            let signal = vigil_ecg::synth::render(fs, n, &beats, 5.0, 20.0, seed);
            signal
                .chunks(fs as usize)
                .enumerate()
                .map(|(i, chunk)| DecodedChunk {
                    seq: (from + i as i64) as u32,
                    t0_ms: t0 + (from + i as i64) * 1000,
                    fs_hz: fs as u16,
                    uv_per_count: 5.0,
                    samples: chunk.to_vec(),
                })
                .collect()
        };
        // Irregular: RR alternating widely, as in AF.
        let irregular: Vec<f64> = (0..100)
            .map(|i| [520.0, 910.0, 640.0, 1010.0, 580.0][i % 5])
            .collect();
        let first = chunks(&irregular, 3, 0);
        let second = chunks(&[800.0; 100], 7, 60);

        let mut moved = EcgAnalysis::default();
        for c in &first {
            moved.feed("patch-1", 1, c);
        }
        let mut fresh = EcgAnalysis::default();
        for c in &second {
            assert_eq!(
                moved.feed("patch-1", 2, c),
                fresh.feed("patch-1", 2, c),
                "chunk {}",
                c.seq
            );
        }
        // And without the move the first wearer's analysis would have
        // carried over: the same chunks as the same patient differ.
        let mut kept = EcgAnalysis::default();
        for c in &first {
            kept.feed("patch-1", 1, c);
        }
        let mut fresh = EcgAnalysis::default();
        assert!(
            second
                .iter()
                .any(|c| kept.feed("patch-1", 1, c) != fresh.feed("patch-1", 1, c)),
            "the test's two wearers must be told apart by the analysis"
        );
    }
}
