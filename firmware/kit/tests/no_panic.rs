//! Property tests: nothing a device, the network or a corrupted disk can
//! hand the kit makes it panic, and what the kit encodes it decodes back.

use proptest::prelude::*;
use vigil_kit::gatt::{
    Measurement, blood_pressure, heart_rate, plx_continuous, plx_spot_check, temperature,
};
use vigil_kit::outbox::{Config, Outbox};
use vigil_kit::{EcgChunk, cmd, json};

/// Bytes biased towards the shapes parsers see: a flags byte with any bits,
/// then fields, sometimes truncated.
fn gatt_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn gatt_parsers_never_panic_and_only_yield_valid_observations(b in gatt_bytes()) {
        let mut all = Vec::new();
        if let Ok(m) = blood_pressure::parse(&b) { all.extend(m.observations()); }
        if let Ok(m) = plx_spot_check::parse(&b) { all.extend(m.observations()); }
        if let Ok(m) = plx_continuous::parse(&b) { all.extend(m.observations()); }
        if let Ok(m) = heart_rate::parse(&b) {
            all.extend(m.observations());
            prop_assert!(m.rr_intervals_ms().all(|v| v.is_finite()));
        }
        if let Ok(m) = temperature::parse(&b) { all.extend(m.observations()); }
        for o in all {
            if let vigil_kit::Value::Number(v) = o.value() {
                let (lo, hi) = o.code().bounds().unwrap();
                prop_assert!(v.is_finite() && v >= lo && v <= hi);
            }
        }
    }

    #[test]
    fn ecg_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(c) = EcgChunk::decode(&b) {
            prop_assert_eq!(c.samples().count(), c.len());
            prop_assert_eq!(b.len(), 25 + 2 * c.len());
        }
    }

    #[test]
    fn ecg_decode_of_a_valid_header_with_any_body_never_panics(
        n in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        let mut b = b"VECG\x01".to_vec();
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&250u16.to_le_bytes());
        b.extend_from_slice(&1.0f32.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&body);
        let ok = EcgChunk::decode(&b).is_ok();
        prop_assert_eq!(ok, body.len() == 2 * usize::from(n));
    }

    #[test]
    fn ecg_chunk_round_trips(
        seq in any::<u32>(),
        t0 in vigil_kit::time::MIN_VALID_TS_MS..vigil_kit::time::MAX_TS_MS,
        rate in 1u16..,
        scale in 0.001f32..1000.0,
        samples in proptest::collection::vec(any::<i16>(), 0..300),
    ) {
        let chunk = EcgChunk { seq, t0_ms: t0, sample_rate_hz: rate, uv_per_count: scale, samples: &samples };
        let mut buf = vec![0u8; EcgChunk::encoded_len(samples.len())];
        let n = chunk.encode(&mut buf).unwrap();
        let d = EcgChunk::decode(&buf[..n]).unwrap();
        prop_assert_eq!((d.seq, d.t0_ms, d.sample_rate_hz, d.uv_per_count), (seq, t0, rate, scale));
        prop_assert!(d.samples().eq(samples.iter().copied()));
    }

    #[test]
    fn cmd_parse_never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = cmd::parse(&b);
    }

    #[test]
    fn cmd_parse_never_panics_on_json_like_text(s in r#"[{}\[\]":,0-9a-z\\ .eE+-]{0,60}"#) {
        if let Ok(cmd::Command::Ack(seqs)) = cmd::parse(s.as_bytes()) {
            prop_assert_eq!(seqs.iter().count(), seqs.len());
        }
        if let Ok(o) = json::parse_object(&s) {
            for (k, v) in o.iter() {
                let mut buf = [0u8; 64];
                let _ = k.unescape_into(&mut buf);
                let _ = v.as_u32();
            }
        }
    }

    #[test]
    fn cmd_strings_with_any_escapes_never_panic(s in r#"(\\u[0-9a-fA-F]{4}|\\[nrtbf/"\\]|[a-z ]){0,20}"#) {
        let text = format!(r#"{{"type":"advice","level":"urgent","text":"{s}"}}"#);
        let c = cmd::parse(text.as_bytes()).unwrap();
        if let cmd::Command::Advice { text, .. } = c {
            let mut buf = [0u8; 256];
            prop_assert!(text.unescape_into(&mut buf).is_some());
        }
    }

    #[test]
    fn snapshot_restore_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut q = Outbox::<4, 256>::new(Config::default());
        if q.restore(&b).is_err() {
            prop_assert!(q.is_empty());
        }
    }
}
