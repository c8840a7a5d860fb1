//! EC57 / `bxb`-style evaluation of the detector over a folder of WFDB records.
//!
//! ```text
//! cargo run --release -p vigil-ecg --example ec57 -- ../shared/data/mitdb [--channel 0] [--beats OUTDIR]
//! ```
//!
//! Prints a markdown table (per record and gross Se, +P), the detector's
//! throughput, and a second table from the full [`vigil_ecg::EcgStream`]
//! (1 s chunks): share of seconds with a heart rate, minutes with the
//! possible-AF prompt on against minutes of reference `(AFIB`, and the
//! size of the raw samples under [`vigil_ecg::encode_samples`]. With `--beats OUTDIR` it also writes `OUTDIR/<record>.txt`
//! (one detected sample index per line) for `tools/ecg/compare.py`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil_ecg::eval::{Score, score};
use vigil_ecg::wfdb::{self, RHYTHM};
use vigil_ecg::{Chunk, EcgEvent, EcgStream};

/// Score, samples, detector seconds, scored reference beats, stream figures.
type RecordResult = (Score, u64, f64, usize, StreamStats);

struct StreamStats {
    hr_pct: f64,
    af_prompt_min: f64,
    af_ref_min: f64,
    bytes_per_sample: f64,
}

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
    let mut stream_rows = Vec::new();
    for rec in &records {
        let (s, n, secs, nref, st) = run(&dir, rec, channel, beats_out.as_deref())?;
        stream_rows.push((rec.clone(), st));
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
    println!(
        "\n| record | heart rate available % of s | possible-AF prompt min | reference AF min | codec bytes/sample |"
    );
    println!("|---|---:|---:|---:|---:|");
    let (mut bytes, mut n) = (0f64, 0f64);
    for (rec, st) in &stream_rows {
        println!(
            "| {rec} | {:.1} | {:.1} | {:.1} | {:.3} |",
            st.hr_pct, st.af_prompt_min, st.af_ref_min, st.bytes_per_sample
        );
        bytes += st.bytes_per_sample;
        n += 1.0;
    }
    println!(
        "\ncodec: mean {:.3} bytes/sample, compression ratio {:.2} against 2 bytes/sample",
        bytes / n,
        2.0 / (bytes / n)
    );
    Ok(())
}

fn stream_stats(
    signal: &[i32],
    fs: u32,
    uv_per_count: f32,
    anns: &[wfdb::Annotation],
) -> Result<StreamStats, Box<dyn std::error::Error>> {
    let samples: Vec<i16> = signal
        .iter()
        .map(|&v| v.clamp(i16::MIN as i32, i16::MAX as i32) as i16)
        .collect();
    let mut stream = EcgStream::new();
    let t0 = 0i64;
    let (mut hr_secs, mut af_on_since, mut af_ms) = (0u64, None::<i64>, 0i64);
    let mut events = Vec::new();
    for (k, c) in samples.chunks(fs as usize).enumerate() {
        events.clear();
        stream.push_chunk_into(
            &Chunk {
                t0_ms: t0 + k as i64 * 1000,
                fs_hz: fs as u16,
                uv_per_count,
                samples: c,
            },
            &mut events,
        )?;
        for e in &events {
            match *e {
                EcgEvent::HeartRate { .. } => hr_secs += 1,
                EcgEvent::PossibleAf {
                    t_ms, active: true, ..
                } => af_on_since = Some(t_ms),
                EcgEvent::PossibleAf {
                    t_ms,
                    active: false,
                    ..
                } => {
                    if let Some(s) = af_on_since.take() {
                        af_ms += t_ms - s;
                    }
                }
                _ => {}
            }
        }
    }
    let end_ms = samples.len() as i64 * 1000 / fs as i64;
    if let Some(s) = af_on_since {
        af_ms += end_ms - s;
    }
    let mut af_ref = 0u64;
    let mut open: Option<u64> = None;
    for a in anns.iter().filter(|a| a.code == RHYTHM) {
        let is_af = a.aux.as_deref().is_some_and(|t| t.starts_with("(AFIB"));
        match (open, is_af) {
            (None, true) => open = Some(a.sample),
            (Some(s), false) => {
                af_ref += a.sample - s;
                open = None;
            }
            _ => {}
        }
    }
    if let Some(s) = open {
        af_ref += samples.len() as u64 - s;
    }
    Ok(StreamStats {
        hr_pct: 100.0 * hr_secs as f64 / (samples.len() as f64 / fs as f64),
        af_prompt_min: af_ms as f64 / 60_000.0,
        af_ref_min: af_ref as f64 / fs as f64 / 60.0,
        bytes_per_sample: vigil_ecg::encode_samples(&samples).len() as f64 / samples.len() as f64,
    })
}

fn run(
    dir: &Path,
    rec: &str,
    channel: usize,
    beats_out: Option<&Path>,
) -> Result<RecordResult, Box<dyn std::error::Error>> {
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
    let reference: Vec<u64> = atr
        .iter()
        .filter(|a| a.is_beat())
        .map(|a| a.sample)
        .collect();
    let fsf = header.fs_hz;
    let s = score(
        &reference,
        &det,
        (0.150 * fsf).round() as u64,
        (300.0 * fsf).round() as u64,
    );
    let nref = reference
        .iter()
        .filter(|&&r| r as f64 >= 300.0 * fsf)
        .count();
    let st = stream_stats(&signal, fs, spec.microvolts_per_count(), &atr)?;
    Ok((s, signal.len() as u64, secs, nref, st))
}
