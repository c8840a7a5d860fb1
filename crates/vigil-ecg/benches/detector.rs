//! Detector and stream throughput (samples per second on one core), and
//! memory per stream.
//!
//! ```text
//! cargo bench -p vigil-ecg --bench detector
//! ```
//!
//! Input is one minute of synthetic ECG (75 bpm with ±10% RR variation and
//! 20 µV noise) so the bench runs without the MIT-BIH files; the `ec57`
//! example reports throughput on the real records too.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group};
use vigil_ecg::synth::{Lcg, beat_samples, render};
use vigil_ecg::{Chunk, Detector, EcgStream};

fn minute(fs: u32) -> Vec<i16> {
    let mut rng = Lcg(1);
    let rr: Vec<f64> = (0..80).map(|_| 720.0 + 160.0 * rng.next_f64()).collect();
    let beats = beat_samples(fs, 300.0, &rr);
    render(fs, 60 * fs as usize, &beats, 2.5, 20.0, 3)
}

fn detector(c: &mut Criterion) {
    let mut g = c.benchmark_group("detector");
    for fs in [125u32, 250, 360, 1000] {
        let sig = minute(fs);
        g.throughput(Throughput::Elements(sig.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(fs), &sig, |b, sig| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                let mut d = Detector::new(fs).expect("supported rate");
                out.clear();
                d.push_into(black_box(sig), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    for fs in [250u32, 1000] {
        let sig = minute(fs);
        g.throughput(Throughput::Elements(sig.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(fs), &sig, |b, sig| {
            let mut events = Vec::with_capacity(1024);
            b.iter(|| {
                let mut s = EcgStream::new();
                events.clear();
                // one-second chunks, as a patch would send them
                for (k, chunk) in sig.chunks(fs as usize).enumerate() {
                    s.push_chunk_into(
                        &Chunk {
                            t0_ms: k as i64 * 1000,
                            fs_hz: fs as u16,
                            uv_per_count: 2.5,
                            samples: chunk,
                        },
                        &mut events,
                    )
                    .expect("in order");
                }
                black_box(events.len())
            })
        });
    }
    g.finish();
}

fn memory() {
    println!("memory per stream (stack struct + heap after two minutes of input):");
    for fs in [125u32, 250, 360, 500, 1000] {
        let d = Detector::new(fs).expect("supported rate");
        let mut s = EcgStream::new();
        let sig = minute(fs);
        for rep in 0..2 {
            s.push_chunk(&Chunk {
                t0_ms: rep * 60_000,
                fs_hz: fs as u16,
                uv_per_count: 2.5,
                samples: &sig,
            })
            .expect("in order");
        }
        println!(
            "  {fs:>4} Hz: Detector {} B + {} B heap; EcgStream {} B + {} B heap = {} B",
            core::mem::size_of::<Detector>(),
            d.heap_bytes(),
            core::mem::size_of::<EcgStream>(),
            s.heap_bytes(),
            core::mem::size_of::<EcgStream>() + s.heap_bytes()
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = detector, stream
}

fn main() {
    memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
