//! How the possible-AF thresholds were chosen, reproducibly.
//!
//! ```text
//! cargo run --release -p vigil-ecg --example af_tune -- ../shared/data/mitdb
//! ```
//!
//! Runs the detector over channel 0 of every record, cuts the detected RR
//! series into 120 s windows every 10 s, labels each window from the
//! reference rhythm annotations (`(AFIB` in the aux text of `+`
//! annotations): AF when at least 90% of the window is AF, non-AF when
//! none of it is, mixed windows are left out. Prints window sensitivity and
//! specificity over a grid of thresholds, then per record at the shipped
//! thresholds ([`vigil_ecg::af::NRMSSD_THRESHOLD`], [`vigil_ecg::af::SAMPLE_ENTROPY_THRESHOLD`]).

use std::path::PathBuf;

use vigil_ecg::af;
use vigil_ecg::wfdb::{self, RHYTHM};

struct Window {
    record: String,
    af: bool,
    nrmssd: f64,
    sampen: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: af_tune DATA_DIR")?
        .into();
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "atr").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    let mut windows = Vec::new();
    for name in &names {
        let hea = std::fs::read_to_string(dir.join(format!("{name}.hea")))?;
        let header = wfdb::parse_header(&hea)?;
        let dat = std::fs::read(dir.join(&header.signals[0].file))?;
        let signal = wfdb::decode_channel(&header, &dat, 0)?;
        let fs = header.fs_hz;
        let anns = wfdb::parse_annotations(&std::fs::read(dir.join(format!("{name}.atr")))?)?;
        // AF intervals from rhythm annotations
        let mut af_spans: Vec<(u64, u64)> = Vec::new();
        let mut open: Option<u64> = None;
        for a in anns.iter().filter(|a| a.code == RHYTHM) {
            let is_af = a.aux.as_deref().is_some_and(|t| t.starts_with("(AFIB"));
            match (open, is_af) {
                (None, true) => open = Some(a.sample),
                (Some(s), false) => {
                    af_spans.push((s, a.sample));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(s) = open {
            af_spans.push((s, signal.len() as u64));
        }
        let beats = vigil_ecg::detect_all(fs.round() as u32, &signal)?;
        let t: Vec<u64> = beats.iter().map(|b| b.sample).collect();
        let win = (120.0 * fs) as u64;
        let step = (10.0 * fs) as u64;
        let mut start = 0u64;
        while start + win <= signal.len() as u64 {
            let end = start + win;
            let af_len: u64 = af_spans
                .iter()
                .map(|&(a, b)| b.min(end).saturating_sub(a.max(start)))
                .sum();
            let frac = af_len as f64 / win as f64;
            let label = if frac >= 0.9 {
                Some(true)
            } else if frac == 0.0 {
                Some(false)
            } else {
                None
            };
            if let Some(label) = label {
                let rr: Vec<u16> = t
                    .windows(2)
                    .filter(|w| w[0] >= start && w[1] < end)
                    .map(|w| ((w[1] - w[0]) as f64 * 1000.0 / fs).round().min(65535.0) as u16)
                    .collect();
                if let Some(a) = af::assess_with(&rr, 0.0, 0.0) {
                    windows.push(Window {
                        record: name.clone(),
                        af: label,
                        nrmssd: a.nrmssd,
                        sampen: a.sample_entropy,
                    });
                }
            }
            start += step;
        }
    }
    let n_af = windows.iter().filter(|w| w.af).count();
    println!(
        "{} windows of 120 s ({} AF, {} non-AF)\n",
        windows.len(),
        n_af,
        windows.len() - n_af
    );
    println!("| nRMSSD > | SampEn > | Se % | Sp % |");
    println!("|---:|---:|---:|---:|");
    for t1 in [0.06, 0.08, 0.10, 0.12, 0.15] {
        for t2 in [0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8] {
            let (se, sp) = rates(&windows, t1, t2);
            println!("| {t1:.2} | {t2:.1} | {se:.1} | {sp:.1} |");
        }
    }
    println!(
        "\nper record at nRMSSD > {} and SampEn > {}:\n",
        af::NRMSSD_THRESHOLD,
        af::SAMPLE_ENTROPY_THRESHOLD
    );
    println!("| record | AF windows flagged | non-AF windows flagged |");
    println!("|---|---:|---:|");
    for name in &names {
        let w: Vec<&Window> = windows.iter().filter(|w| &w.record == name).collect();
        let flag = |w: &&&&Window| {
            w.nrmssd > af::NRMSSD_THRESHOLD && w.sampen > af::SAMPLE_ENTROPY_THRESHOLD
        };
        let afw: Vec<_> = w.iter().filter(|w| w.af).collect();
        let non: Vec<_> = w.iter().filter(|w| !w.af).collect();
        println!(
            "| {name} | {}/{} | {}/{} |",
            afw.iter().filter(flag).count(),
            afw.len(),
            non.iter().filter(flag).count(),
            non.len()
        );
    }
    Ok(())
}

fn rates(w: &[Window], t1: f64, t2: f64) -> (f64, f64) {
    let flag = |w: &Window| w.nrmssd > t1 && w.sampen > t2;
    let af: Vec<_> = w.iter().filter(|w| w.af).collect();
    let non: Vec<_> = w.iter().filter(|w| !w.af).collect();
    let se = 100.0 * af.iter().filter(|w| flag(w)).count() as f64 / af.len().max(1) as f64;
    let sp = 100.0 * non.iter().filter(|w| !flag(w)).count() as f64 / non.len().max(1) as f64;
    (se, sp)
}
