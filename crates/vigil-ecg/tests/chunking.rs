//! However the signal is cut into chunks, the detector and the stream give
//! exactly what one-shot processing gives.
//!
//! Uses 60 s of MIT-BIH record 208 (frequent PVCs, so search-back and the
//! T-wave rule are exercised) when `shared/data/mitdb` is present, else a
//! synthetic irregular rhythm. MIT-BIH: Moody & Mark 2001; Goldberger et al. 2000.

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use vigil_ecg::synth::{Lcg, beat_samples, render};
use vigil_ecg::{Chunk, Detector, EcgEvent, EcgStream, wfdb};

const T0: i64 = 1_795_000_000_000;

/// (fs, samples as i16)
fn segment() -> &'static (u32, Vec<i16>) {
    static SEG: OnceLock<(u32, Vec<i16>)> = OnceLock::new();
    SEG.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mitdb");
        let real = (|| {
            let hea = std::fs::read_to_string(dir.join("208.hea")).ok()?;
            let h = wfdb::parse_header(&hea).ok()?;
            let dat = std::fs::read(dir.join(&h.signals[0].file)).ok()?;
            let s = wfdb::decode_channel(&h, &dat, 0).ok()?;
            let fs = h.fs_hz.round() as u32;
            // 60 s starting at 10 min
            let start = 600 * fs as usize;
            Some((
                fs,
                s[start..start + 60 * fs as usize]
                    .iter()
                    .map(|&v| v as i16)
                    .collect(),
            ))
        })();
        real.unwrap_or_else(|| {
            println!(
                "MIT-BIH not found at {}: using a synthetic rhythm",
                dir.display()
            );
            let mut rng = Lcg(5);
            let rr: Vec<f64> = (0..90).map(|_| 450.0 + 500.0 * rng.next_f64()).collect();
            let beats = beat_samples(360, 400.0, &rr);
            (360, render(360, 60 * 360, &beats, 5.0, 30.0, 2))
        })
    })
}

fn cuts(len: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut i, mut k) = (0, 0);
    while i < len {
        let end = (i + sizes[k % sizes.len()]).min(len);
        out.push((i, end));
        i = end;
        k += 1;
    }
    out
}

fn stream_events(fs: u32, samples: &[i16], sizes: &[usize]) -> Vec<EcgEvent> {
    let mut s = EcgStream::new();
    let mut ev = Vec::new();
    for (a, b) in cuts(samples.len(), sizes) {
        let t0_ms = T0 + (a as i64 * 1000 + fs as i64 / 2) / fs as i64;
        s.push_chunk_into(
            &Chunk {
                t0_ms,
                fs_hz: fs as u16,
                uv_per_count: 5.0,
                samples: &samples[a..b],
            },
            &mut ev,
        )
        .expect("in-order chunk");
    }
    ev.extend(s.finish());
    ev
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn detector_beats_do_not_depend_on_chunking(sizes in prop::collection::vec(1usize..5000, 1..12)) {
        let (fs, sig) = segment();
        let one_shot = vigil_ecg::detect_all(*fs, sig).expect("detector");
        prop_assert!(one_shot.len() > 40);
        let mut d = Detector::new(*fs).expect("detector");
        let mut chunked = Vec::new();
        for (a, b) in cuts(sig.len(), &sizes) {
            d.push_into(&sig[a..b], &mut chunked);
        }
        chunked.extend(d.finish());
        prop_assert_eq!(one_shot, chunked);
    }

    #[test]
    fn stream_events_do_not_depend_on_chunking(sizes in prop::collection::vec(1usize..5000, 1..12)) {
        let (fs, sig) = segment();
        let one_shot = stream_events(*fs, sig, &[sig.len()]);
        let has_hr = one_shot.iter().any(|e| matches!(e, EcgEvent::HeartRate { .. }));
        prop_assert!(has_hr, "the segment yields heart rates");
        prop_assert_eq!(one_shot, stream_events(*fs, sig, &sizes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever a device sends (after the chunk decoder), analysis answers
    /// with events or an error, never a panic.
    #[test]
    fn stream_never_panics_on_arbitrary_chunks(
        chunks in prop::collection::vec(
            (any::<i64>(), 0u16..1200, prop_oneof![Just(2.5f32), any::<f32>()], prop::collection::vec(any::<i16>(), 0..700)),
            1..8,
        )
    ) {
        let mut s = EcgStream::new();
        for (t0_ms, fs_hz, uv_per_count, samples) in &chunks {
            let _ = s.push_chunk(&Chunk { t0_ms: *t0_ms, fs_hz: *fs_hz, uv_per_count: *uv_per_count, samples });
        }
        let _ = s.finish();
    }
}
