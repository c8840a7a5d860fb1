//! Encode, decode and parse costs of the kit's hot paths.
//!
//! `cargo bench -p vigil-kit --bench kit`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil_kit::gatt::{blood_pressure, plx_spot_check};
use vigil_kit::outbox::{Config, Outbox};
use vigil_kit::{Code, EcgChunk, ObsMessage, Observation, cmd};

const TS: i64 = 1_795_335_303_000;

fn benches(c: &mut Criterion) {
    let obs = [
        Observation::number(Code::Spo2, 94.0).unwrap(),
        Observation::number(Code::Pulse, 88.0).unwrap(),
        Observation::number(Code::Temp, 37.1).unwrap(),
    ];
    let msg = ObsMessage {
        seq: 1842,
        ts_ms: TS,
        obs: &obs,
    };
    let mut buf = [0u8; 2048];
    c.bench_function("obs_message_encode_3_obs", |b| {
        b.iter(|| black_box(&msg).encode(black_box(&mut buf)).unwrap())
    });

    let samples: Vec<i16> = (0..500).map(|i| (i * 37 % 2000) as i16 - 1000).collect();
    let chunk = EcgChunk {
        seq: 7,
        t0_ms: TS,
        sample_rate_hz: 250,
        uv_per_count: 2.5,
        samples: &samples,
    };
    let mut ecg = vec![0u8; EcgChunk::encoded_len(samples.len())];
    c.bench_function("ecg_chunk_encode_500", |b| {
        b.iter(|| black_box(&chunk).encode(black_box(&mut ecg)).unwrap())
    });
    c.bench_function("ecg_chunk_decode_and_sum_500", |b| {
        b.iter(|| {
            let d = EcgChunk::decode(black_box(&ecg)).unwrap();
            d.samples().map(i64::from).sum::<i64>()
        })
    });

    let bp = [
        0x1E, 0x82, 0x00, 0x55, 0x00, 0x64, 0x00, 0xEA, 0x07, 11, 22, 8, 15, 3, 0x48, 0x00, 0x01,
        0x05, 0x00,
    ];
    c.bench_function("gatt_blood_pressure_parse_all_fields", |b| {
        b.iter(|| blood_pressure::parse(black_box(&bp)).unwrap())
    });
    let plx = [0x00, 0x5E, 0x00, 0x58, 0x00];
    c.bench_function("gatt_plx_spot_check_parse", |b| {
        b.iter(|| plx_spot_check::parse(black_box(&plx)).unwrap())
    });

    let ack = br#"{"type":"ack","seqs":[1842,1843,1844,1845,1846,1847,1848,1849]}"#;
    c.bench_function("cmd_parse_ack_8_seqs", |b| {
        b.iter(|| match cmd::parse(black_box(ack)).unwrap() {
            cmd::Command::Ack(s) => s.iter().sum::<u32>(),
            _ => 0,
        })
    });

    // One message's whole life in a queue with 63 others in flight:
    // push (encode into the arena), poll (scan 64 entries), ack (compact).
    let mut q: Box<Outbox<64, 16384>> = Box::new(Outbox::new(Config {
        max_in_flight: usize::MAX,
        ..Config::default()
    }));
    let mut seq = 0u32;
    for _ in 0..63 {
        seq += 1;
        q.push_obs(&ObsMessage { seq, ..msg }).unwrap();
    }
    while q.poll(0).is_some() {}
    c.bench_function("outbox_push_poll_ack_with_63_in_flight", |b| {
        b.iter(|| {
            seq += 1;
            q.push_obs(&ObsMessage { seq, ..msg }).unwrap();
            let sent = q.poll(0).map(|m| m.seq);
            q.on_ack([seq]);
            sent
        })
    });
}

criterion_group!(kit, benches);
criterion_main!(kit);
