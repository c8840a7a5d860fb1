//! `devsim bench` end to end at a tiny scale: a fresh `vigil serve` child,
//! patients admitted over HTTP, hubs and ECG patches over real MQTT, a
//! dashboard websocket, then the counting-subscriber ceiling on Mosquitto.
//! The numbers are not judged (the machine is shared); that the report is
//! whole, nothing is lost and something was stored, is.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vigil_devsim::bench::{self, BenchConfig, Broker, Scale};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_at_a_tiny_scale_stores_everything_and_reports_every_field() {
    let started = Instant::now();
    let mosquitto = vigil_devsim::daemon::mosquitto_binary().is_some();
    if !mosquitto && std::env::var("VIGIL_SKIP_MOSQUITTO").as_deref() != Ok("1") {
        panic!(
            "mosquitto is not installed (Debian: apt-get install -y mosquitto); set VIGIL_SKIP_MOSQUITTO=1 to skip its phase"
        );
    }
    let cfg = BenchConfig {
        vigil: PathBuf::from(env!("CARGO_BIN_EXE_vigil")),
        scale: Scale::Ward,
        patients: Some(10),
        duration: Duration::from_secs(3),
        in_flight: 32,
        deteriorate_every: 5,
        ecg: true,
        passthrough: mosquitto,
        broker: Broker::Embedded,
        drain: Duration::from_secs(20),
        // The queue national-scale runs need; the real kit's queue is
        // driven by every other simulator test.
        small_queues: true,
        // Two dashboards: an alert counts once both have it.
        dashboards: 2,
        seed: 3,
    };
    let r = bench::run(cfg).await.expect("the bench runs");
    println!(
        "{}  ({:.1} s)",
        bench::summary(&r),
        started.elapsed().as_secs_f64()
    );
    let v = serde_json::to_value(&r).expect("json");
    for k in [
        "scale",
        "patients",
        "stored_msgs_per_s",
        "passthrough_msgs_per_s",
        "ratio",
        "ecg_chunks_per_s",
        "rss_mb",
        "lost",
    ] {
        assert!(!v[k].is_null(), "report field {k}: {v}");
    }
    assert_eq!((r.scale.as_str(), r.patients), ("ward", 10));
    assert!(
        r.stored.obs_msgs > 0 && r.stored_msgs_per_s > 0.0,
        "something was stored: {v}"
    );
    assert_eq!(r.lost, 0, "every observation message sent was stored: {v}");
    assert_eq!(r.ecg_lost, 0, "every ECG chunk sent was stored: {v}");
    assert!(r.ecg_chunks_per_s > 0.0, "ECG chunks were stored: {v}");
    assert_eq!(
        (r.alert_latency_ms.n, r.alert_latency_ms.missing),
        (2, 0),
        "both sentinels' alerts arrived: {v}"
    );
    assert!(r.alert_latency_ms.p50 <= r.alert_latency_ms.p99, "{v}");
    assert_eq!((r.dashboards, r.ws_resyncs), (2, 0), "{v}");
    assert!(
        r.rss_mb > 0.0 && r.cpu_s >= 0.0,
        "vigil's process was measured: {v}"
    );
    if mosquitto {
        let p = r.passthrough.as_ref().expect("the passthrough phase ran");
        assert!(
            p.obs_msgs > 0 && r.passthrough_msgs_per_s > 0.0 && r.ratio > 0.0,
            "{v}"
        );
        assert_eq!(p.unacked, 0, "the counter acked everything: {v}");
    }
}
