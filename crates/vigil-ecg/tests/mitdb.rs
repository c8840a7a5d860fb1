//! EC57 evaluation on the MIT-BIH Arrhythmia Database records in `shared/data/mitdb`.
//!
//! Data: Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database.
//! IEEE Eng Med Biol 20(3):45-50 (2001); Goldberger AL et al. PhysioBank,
//! PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220 (2000).
//! The records are read from outside the repository, never copied into it.

use std::path::{Path, PathBuf};

use vigil_ecg::eval::{Score, score};
use vigil_ecg::{Detector, wfdb};

fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mitdb");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: MIT-BIH data not found at {} (the evaluation needs shared/data/mitdb beside the repository)",
            dir.display()
        );
        None
    }
}

struct Record {
    name: String,
    fs: f64,
    signal: Vec<i32>,
    reference: Vec<u64>,
}

fn load(dir: &Path, name: &str) -> Record {
    let hea = std::fs::read_to_string(dir.join(format!("{name}.hea"))).expect("read .hea");
    let header = wfdb::parse_header(&hea).expect("parse .hea");
    let dat = std::fs::read(dir.join(&header.signals[0].file)).expect("read .dat");
    let signal = wfdb::decode_channel(&header, &dat, 0).expect("decode .dat");
    let atr = std::fs::read(dir.join(format!("{name}.atr"))).expect("read .atr");
    let reference = wfdb::parse_annotations(&atr)
        .expect("parse .atr")
        .iter()
        .filter(|a| a.is_beat())
        .map(|a| a.sample)
        .collect();
    Record {
        name: name.to_string(),
        fs: header.fs_hz,
        signal,
        reference,
    }
}

fn records(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list data dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "atr").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}

#[test]
fn gross_sensitivity_and_positive_predictivity_on_mitdb_are_at_least_99_5_percent() {
    let Some(dir) = data_dir() else { return };
    let mut gross = Score::default();
    let names = records(&dir);
    assert!(!names.is_empty(), "no records in {}", dir.display());
    for name in &names {
        let r = load(&dir, name);
        let beats = vigil_ecg::detect_all(r.fs.round() as u32, &r.signal).expect("detector");
        let det: Vec<u64> = beats.iter().map(|b| b.sample).collect();
        let s = score(
            &r.reference,
            &det,
            (0.150 * r.fs).round() as u64,
            (300.0 * r.fs).round() as u64,
        );
        println!(
            "{}: Se {:.2} +P {:.2} (TP {} FN {} FP {})",
            r.name,
            s.sensitivity(),
            s.positive_predictivity(),
            s.tp,
            s.fn_,
            s.fp
        );
        gross += s;
    }
    println!(
        "gross over {} records: Se {:.2} +P {:.2}",
        names.len(),
        gross.sensitivity(),
        gross.positive_predictivity()
    );
    assert!(
        gross.sensitivity() >= 99.5,
        "gross Se {:.3}",
        gross.sensitivity()
    );
    assert!(
        gross.positive_predictivity() >= 99.5,
        "gross +P {:.3}",
        gross.positive_predictivity()
    );
}

#[test]
fn chunked_and_one_shot_detection_agree_on_a_whole_record() {
    let Some(dir) = data_dir() else { return };
    // 208: frequent PVCs and fusion beats, so search-back and T-wave rules fire.
    let r = load(&dir, "208");
    let fs = r.fs.round() as u32;
    let one_shot = vigil_ecg::detect_all(fs, &r.signal).expect("detector");
    let mut d = Detector::new(fs).expect("detector");
    let mut chunked = Vec::new();
    // Chunk lengths that are co-prime with every internal window length.
    let sizes = [1usize, 7, 250, 997, 3, 4096];
    let mut i = 0;
    let mut k = 0;
    while i < r.signal.len() {
        let end = (i + sizes[k % sizes.len()]).min(r.signal.len());
        d.push_into(&r.signal[i..end], &mut chunked);
        i = end;
        k += 1;
    }
    chunked.extend(d.finish());
    assert_eq!(one_shot, chunked);
}

/// Linear-interpolation resampling; a boxcar of the decimation length first
/// when going down, so 125 Hz does not alias muscle noise onto the QRS band.
fn resample(x: &[i32], from: f64, to: f64) -> Vec<i32> {
    let k = (from / to).ceil() as usize;
    let smooth: Vec<f64> = if k > 1 {
        (0..x.len())
            .map(|i| {
                let lo = i.saturating_sub(k / 2);
                let hi = (lo + k).min(x.len());
                x[lo..hi].iter().map(|&v| f64::from(v)).sum::<f64>() / (hi - lo) as f64
            })
            .collect()
    } else {
        x.iter().map(|&v| f64::from(v)).collect()
    };
    let n = ((x.len() as f64) * to / from) as usize;
    (0..n)
        .map(|j| {
            let p = j as f64 * from / to;
            let i = p.floor() as usize;
            let f = p - i as f64;
            let a = smooth[i.min(smooth.len() - 1)];
            let b = smooth[(i + 1).min(smooth.len() - 1)];
            (a + f * (b - a)).round() as i32
        })
        .collect()
}

#[test]
fn detector_holds_up_at_125_250_500_and_1000_hz() {
    let Some(dir) = data_dir() else { return };
    let names = records(&dir);
    for to in [125.0, 250.0, 500.0, 1000.0] {
        let mut gross = Score::default();
        for name in &names {
            let r = load(&dir, name);
            let sig = resample(&r.signal, r.fs, to);
            let reference: Vec<u64> = r
                .reference
                .iter()
                .map(|&s| (s as f64 * to / r.fs).round() as u64)
                .collect();
            let beats = vigil_ecg::detect_all(to as u32, &sig).expect("supported rate");
            let det: Vec<u64> = beats.iter().map(|b| b.sample).collect();
            gross += score(
                &reference,
                &det,
                (0.150 * to).round() as u64,
                (300.0 * to).round() as u64,
            );
        }
        println!(
            "MIT-BIH resampled to {to} Hz: gross Se {:.2} +P {:.2} (FN {} FP {})",
            gross.sensitivity(),
            gross.positive_predictivity(),
            gross.fn_,
            gross.fp
        );
        assert!(
            gross.sensitivity() >= 99.0,
            "{to} Hz: Se {:.3}",
            gross.sensitivity()
        );
        assert!(
            gross.positive_predictivity() >= 99.0,
            "{to} Hz: +P {:.3}",
            gross.positive_predictivity()
        );
    }
}
