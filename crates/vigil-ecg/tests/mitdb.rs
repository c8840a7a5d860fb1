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
