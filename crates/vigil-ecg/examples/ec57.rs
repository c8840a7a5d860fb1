//! EC57 / `bxb`-style evaluation of the detector over a folder of WFDB records.
//!
//! ```text
//! cargo run --release -p vigil-ecg --example ec57 -- ../shared/data/mitdb [--channel 0] [--beats OUTDIR]
//! ```
//!
//! Prints a markdown table (per record and gross Se, +P) and the detector's
//! throughput. With `--beats OUTDIR` it also writes `OUTDIR/<record>.txt`
//! (one detected sample index per line) for `tools/ecg/compare.py`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil_ecg::eval::{Score, score};
use vigil_ecg::wfdb;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut channel = 0usize;
    let mut beats_out: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--channel" => channel = args.next().ok_or("--channel needs a value")?.parse()?,
            "--beats" => beats_out = Some(args.next().ok_or("--beats needs a folder")?.into()),
            _ => dir = Some(a.into()),
        }
    }
    let dir = dir.ok_or("usage: ec57 DATA_DIR [--channel K] [--beats OUTDIR]")?;
    let mut records: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "atr").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    records.sort();
    if let Some(o) = &beats_out {
        std::fs::create_dir_all(o)?;
    }
    println!("| record | beats | TP | FN | FP | Se % | +P % |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut gross = Score::default();
    let (mut total_samples, mut total_secs) = (0u64, 0f64);
    for rec in &records {
        let (s, n, secs, nref) = run(&dir, rec, channel, beats_out.as_deref())?;
        total_samples += n;
        total_secs += secs;
        println!(
            "| {rec} | {nref} | {} | {} | {} | {:.2} | {:.2} |",
            s.tp,
            s.fn_,
            s.fp,
            s.sensitivity(),
            s.positive_predictivity()
        );
        gross += s;
    }
    println!(
        "| **gross** | {} | {} | {} | {} | **{:.2}** | **{:.2}** |",
        gross.tp + gross.fn_,
        gross.tp,
        gross.fn_,
        gross.fp,
        gross.sensitivity(),
        gross.positive_predictivity()
    );
    println!(
        "\ndetector: {} samples in {:.3} s = {:.1} M samples/s (one thread, channel {channel})",
        total_samples,
        total_secs,
        total_samples as f64 / total_secs / 1e6
    );
    Ok(())
}

fn run(
    dir: &Path,
    rec: &str,
    channel: usize,
    beats_out: Option<&Path>,
) -> Result<(Score, u64, f64, usize), Box<dyn std::error::Error>> {
    let hea = std::fs::read_to_string(dir.join(format!("{rec}.hea")))?;
    let header = wfdb::parse_header(&hea)?;
    let spec = header.signals.get(channel).ok_or("no such channel")?;
    let dat = std::fs::read(dir.join(&spec.file))?;
    let atr = wfdb::parse_annotations(&std::fs::read(dir.join(format!("{rec}.atr")))?)?;
    let signal = wfdb::decode_channel(&header, &dat, channel)?;
    let fs = header.fs_hz.round() as u32;
    let t = Instant::now();
    let beats = vigil_ecg::detect_all(fs, &signal)?;
    let secs = t.elapsed().as_secs_f64();
    let det: Vec<u64> = beats.iter().map(|b| b.sample).collect();
    if let Some(o) = beats_out {
        let text: String = det.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(o.join(format!("{rec}.txt")), text)?;
    }
    let reference: Vec<u64> = atr.iter().filter(|a| a.is_beat()).map(|a| a.sample).collect();
    let fsf = header.fs_hz;
    let s = score(
        &reference,
        &det,
        (0.150 * fsf).round() as u64,
        (300.0 * fsf).round() as u64,
    );
    let nref = reference.iter().filter(|&&r| r as f64 >= 300.0 * fsf).count();
    Ok((s, signal.len() as u64, secs, nref))
}
