//! Resampling MIT-BIH (360 Hz) to the patch's 250 Hz keeps the beats where
//! they were: the detector on the resampled signal finds the reference
//! beats at their (rescaled) times.
//!
//! Data: Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database.
//! IEEE Eng Med Biol 20(3):45-50 (2001); Goldberger AL et al. PhysioBank,
//! PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220 (2000).

use std::path::PathBuf;

use vigil_devsim::ecg::Recording;
use vigil_ecg::eval::score;
use vigil_ecg::wfdb;

fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mitdb");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("SKIPPED: MIT-BIH data not found at {}", dir.display());
        None
    }
}

#[test]
fn resampled_mitdb_keeps_beat_times() {
    let Some(dir) = data_dir() else { return };
    for name in ["101", "201", "208"] {
        let rec = Recording::load(&dir, name).expect("record loads");
        let atr = std::fs::read(dir.join(format!("{name}.atr"))).expect("annotations");
        let reference: Vec<u64> = wfdb::parse_annotations(&atr)
            .expect("parse")
            .iter()
            .filter(|a| a.is_beat())
            .map(|a| (a.sample as f64 * 250.0 / 360.0).round() as u64)
            .collect();
        let beats = vigil_ecg::detect_all(250, &rec.samples).expect("detector");
        let detected: Vec<u64> = beats.iter().map(|b| b.sample).collect();
        // EC57 window: 150 ms; evaluation from 5 minutes in, as the EC57 runs.
        let s = score(
            &reference,
            &detected,
            (0.150f64 * 250.0).round() as u64,
            300 * 250,
        );
        // Timing: for each matched beat, |detected - reference|.
        let mut errs: Vec<i64> = Vec::new();
        for &r in reference.iter().filter(|&&r| r >= 300 * 250) {
            if let Some(&d) = detected
                .iter()
                .min_by_key(|&&d| (d as i64 - r as i64).abs())
            {
                let e = (d as i64 - r as i64).abs();
                if e <= 37 {
                    errs.push(e);
                }
            }
        }
        errs.sort_unstable();
        let median_ms = errs[errs.len() / 2] as f64 * 4.0;
        println!(
            "{name} at 250 Hz: Se {:.2} +P {:.2} (TP {} FN {} FP {}), median |error| {median_ms} ms, uV/count {}",
            s.sensitivity(),
            s.positive_predictivity(),
            s.tp,
            s.fn_,
            s.fp,
            rec.uv_per_count
        );
        assert!(
            s.sensitivity() >= 99.0 && s.positive_predictivity() >= 99.0,
            "{name}: {s:?}"
        );
        // The same detector on the original 360 Hz signal: the beats it finds
        // must be at the same times (ms) in the resampled one.
        let hea = std::fs::read_to_string(dir.join(format!("{name}.hea"))).expect("hea");
        let header = wfdb::parse_header(&hea).expect("header");
        let dat = std::fs::read(dir.join(&header.signals[0].file)).expect("dat");
        let raw = wfdb::decode_channel(&header, &dat, 0).expect("decode");
        let at360: Vec<f64> = vigil_ecg::detect_all(360, &raw)
            .expect("detector")
            .iter()
            .map(|b| b.sample as f64 / 0.360)
            .collect();
        let at250: Vec<f64> = detected.iter().map(|&d| d as f64 * 4.0).collect();
        let mut shifts: Vec<f64> = at360
            .iter()
            .filter_map(|&t| {
                let i = at250.partition_point(|&x| x < t);
                let near = [i.checked_sub(1), Some(i)]
                    .into_iter()
                    .flatten()
                    .filter_map(|j| at250.get(j))
                    .map(|&x| (x - t).abs());
                near.fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.min(d))))
            })
            .filter(|&d| d <= 150.0)
            .collect();
        shifts.sort_by(f64::total_cmp);
        let med = shifts[shifts.len() / 2];
        let p95 = shifts[shifts.len() * 95 / 100];
        println!(
            "{name}: 360 Hz vs 250 Hz detections: {} matched of {}, median shift {med:.1} ms, p95 {p95:.1} ms",
            shifts.len(),
            at360.len()
        );
        assert!(
            shifts.len() as f64 >= 0.99 * at360.len() as f64,
            "{name}: beats lost by resampling"
        );
        assert!(med <= 4.0, "{name}: median shift {med} ms");
        assert!(
            median_ms <= 20.0,
            "{name}: median beat time error {median_ms} ms"
        );
    }
}
