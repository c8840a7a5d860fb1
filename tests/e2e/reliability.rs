//! Reliability end to end: the real `vigil` binary is killed, the broker is
//! restarted, a kit goes offline for hours, and nothing is lost or
//! duplicated (ARCHITECTURE.md, "Delivery is end to end").
//!
//! The load comes from `vigil-devsim`'s library in-process (simulated kits
//! with the `vigil-kit` outbox over real MQTT). The daemon runs as a child
//! process (`vigil serve`) on fixed free ports picked at the start, so the
//! kits reconnect to the same address after a restart; the ward, admin and
//! token are created with the real `vigil admin` commands against the same
//! database. Child processes are killed when a test fails ([`Child`] guard).
//!
//! The Mosquitto test needs the `mosquitto` binary (Debian package
//! `mosquitto`); without it the test fails, unless `VIGIL_SKIP_MOSQUITTO=1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_devsim::http::DeviceCreds as SimCreds;
use vigil_devsim::load::{self, LoadConfig, LoadReport, Progress};
use vigil_devsim::patient::{Patient, PatientSpec, What};
use vigil_devsim::scenario::Scenario;
use vigil_devsim::ward::{self, Clock, SimPatient, Stamp, WardConfig};

use crate::helpers::TestApp;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const WARD: &str = "Ward R";

pub(crate) use vigil_devsim::daemon::Child;

/// A free port on 127.0.0.1 ([`vigil_devsim::daemon::free_port`]).
pub(crate) fn free_port() -> u16 {
    vigil_devsim::daemon::free_port().expect("a free port")
}

/// A `vigil serve` child with its own database, on fixed ports: devsim's
/// [`vigil_devsim::daemon::Daemon`] (what `devsim bench` runs), with the
/// shipped pathways, failing the test where that returns an error.
pub(crate) struct Daemon {
    inner: vigil_devsim::daemon::Daemon,
    pub(crate) mqtt_port: u16,
}

impl Daemon {
    /// `external`: the port of an external broker, or `None` for the embedded one.
    pub(crate) fn new(external: Option<u16>) -> Daemon {
        Daemon::with_account(external, None)
    }

    /// As [`Daemon::new`], with the ingest's `(username, password)` on the
    /// external broker (`mqtt.username`, `mqtt.password`).
    pub(crate) fn with_account(external: Option<u16>, account: Option<(&str, &str)>) -> Daemon {
        let pathways = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways");
        let inner = vigil_devsim::daemon::Daemon::with_account(
            Path::new(VIGIL),
            external,
            Some(&pathways),
            account,
        )
        .expect("daemon config");
        Daemon {
            mqtt_port: inner.mqtt_port,
            inner,
        }
    }

    fn http(&self) -> String {
        self.inner.http()
    }

    /// The daemon's folder (config, database, logs).
    pub(crate) fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// Its `vigil.toml`.
    pub(crate) fn config(&self) -> &Path {
        self.inner.config()
    }

    /// Runs `vigil admin ARGS --config ...` and returns its JSON.
    pub(crate) fn admin(&self, args: &[&str], stdin: Option<&str>) -> Value {
        self.inner
            .admin(args, stdin)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Ward, admin user and API token through `vigil admin`; returns the token.
    fn setup(&self) -> String {
        self.inner
            .setup(WARD, "loadadmin", "a-long-password")
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub(crate) fn stats(&self) -> Value {
        self.admin(&["stats"], None)
    }

    /// Starts `vigil serve`, waits for its `listening` line and `/readyz`,
    /// retrying while the fixed ports are still held by a killed daemon (a
    /// listener without SO_REUSEADDR cannot rebind while the killed
    /// daemon's connections sit in TIME_WAIT, 60 s on Linux).
    pub(crate) async fn start(&mut self) {
        let took = self.inner.start().await.unwrap_or_else(|e| panic!("{e:#}"));
        if took > Duration::from_secs(5) {
            println!(
                "NOTE: vigil serve needed {:.0} s to rebind its fixed ports after the kill (TIME_WAIT; the embedded broker's listener lacks SO_REUSEADDR)",
                took.as_secs_f64()
            );
        }
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        self.inner.kill();
    }
}

fn load_config(
    d: &Daemon,
    token: &str,
    mqtt_port: u16,
    patients: u32,
    messages: u32,
    rate: f64,
) -> LoadConfig {
    LoadConfig {
        http: d.http(),
        token: token.to_string(),
        mqtt_host: "127.0.0.1".into(),
        mqtt_port,
        ward: WARD.into(),
        patients,
        messages,
        rate,
        // Long enough to outlast a restart that waits for TIME_WAIT.
        timeout: Duration::from_secs(100),
        resend_after: Duration::from_secs(2),
        seed: 7,
        tls: None,
    }
}

async fn wait_for_acks(p: &Progress, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.acked.load(Ordering::Relaxed) < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} acks before the restart",
            p.acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_nothing_lost_or_duplicated(
    what: &str,
    r: &LoadReport,
    stats: &Value,
    total: u64,
    elapsed: Duration,
) {
    println!(
        "{what}: sent {} acked {} resent {} rejected {} unacked {} dropped {}; stored obs_messages {}; ack latency p50 {} ms p99 {} ms; {:.1} s",
        r.sent,
        r.acked,
        r.resent,
        r.rejected,
        r.unacked,
        r.dropped,
        stats["obs_messages"],
        r.ack_latency_ms.p50,
        r.ack_latency_ms.p99,
        elapsed.as_secs_f64()
    );
    assert_eq!(r.sent, total, "{what}: every message sent");
    assert_eq!(
        (r.unacked, r.dropped, r.rejected),
        (0, 0, 0),
        "{what}: {r:?}"
    );
    assert_eq!(r.acked, r.sent, "{what}: {r:?}");
    assert_eq!(
        stats["obs_messages"].as_u64(),
        Some(r.sent),
        "{what}: stored exactly once: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemon_killed_mid_load_stores_every_message_exactly_once() {
    let started = Instant::now();
    let mut d = Daemon::new(None);
    let token = d.setup();
    d.start().await;
    let (patients, messages) = (4, 150);
    let progress = Arc::new(Progress::default());
    let run = tokio::spawn(load::run(
        load_config(&d, &token, d.mqtt_port, patients, messages, 60.0),
        Some(progress.clone()),
    ));
    wait_for_acks(&progress, 150).await;
    d.kill();
    println!(
        "SIGKILLed vigil serve after {} acks",
        progress.acked.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.start().await;
    let report = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("load finishes")
        .expect("join")
        .expect("load runs");
    let stats = d.stats();
    assert_nothing_lost_or_duplicated(
        "embedded broker, daemon SIGKILL",
        &report,
        &stats,
        u64::from(patients * messages),
        started.elapsed(),
    );
    assert!(
        report.resent > 0,
        "the restart must have caused resends: {report:?}"
    );
    assert_every_message_scored(&d).await;
}

/// Every stored observation message has a score at its measurement time:
/// readings the killed daemon had stored and acked but not yet scored are
/// scored by the next one (hazard AL-19). Waits for the worker to finish
/// what the load left it.
async fn assert_every_message_scored(d: &Daemon) {
    let url = format!("sqlite://{}", d.dir().join("vigil.db").display());
    let db = sqlx::SqlitePool::connect(&url)
        .await
        .expect("the daemon's database");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let unscored: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM obs_messages m WHERE NOT EXISTS (
                SELECT 1 FROM scores s WHERE s.patient_id = m.patient_id AND s.scored_at = m.measured_at)",
        )
        .fetch_one(&db)
        .await
        .expect("count unscored");
        if unscored == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{unscored} stored messages never scored after the kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `mosquitto` binary; without it the calling test fails, unless
/// `VIGIL_SKIP_MOSQUITTO=1`, when this returns `None` and the test skips.
pub(crate) fn mosquitto_or_skip() -> Option<PathBuf> {
    if let Some(bin) = mosquitto_binary() {
        return Some(bin);
    }
    if std::env::var("VIGIL_SKIP_MOSQUITTO").as_deref() == Ok("1") {
        println!("SKIPPED: mosquitto not installed and VIGIL_SKIP_MOSQUITTO=1");
        return None;
    }
    panic!(
        "mosquitto is not installed (Debian: apt-get install -y mosquitto); set VIGIL_SKIP_MOSQUITTO=1 to skip this test"
    );
}

fn mosquitto_binary() -> Option<PathBuf> {
    vigil_devsim::daemon::mosquitto_binary()
}

/// An anonymous Mosquitto on 127.0.0.1:port without persistence.
fn start_mosquitto(bin: &Path, dir: &Path, port: u16) -> Child {
    start_mosquitto_with(bin, dir, port, "allow_anonymous true\n")
}

/// A Mosquitto on 127.0.0.1:port without persistence, with `extra`
/// configuration lines ([`vigil_devsim::daemon::start_mosquitto`]).
pub(crate) fn start_mosquitto_with(bin: &Path, dir: &Path, port: u16, extra: &str) -> Child {
    vigil_devsim::daemon::start_mosquitto(bin, dir, port, extra).unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn external_mosquitto_restarted_mid_load_loses_nothing() {
    let Some(bin) = mosquitto_or_skip() else {
        return;
    };
    let started = Instant::now();
    let mdir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut broker = start_mosquitto(&bin, mdir.path(), port);
    let mut d = Daemon::new(Some(port));
    let token = d.setup();
    d.start().await;
    let (patients, messages) = (4, 150);
    let progress = Arc::new(Progress::default());
    let run = tokio::spawn(load::run(
        load_config(&d, &token, port, patients, messages, 60.0),
        Some(progress.clone()),
    ));
    wait_for_acks(&progress, 150).await;
    drop(broker); // SIGKILL
    println!(
        "SIGKILLed mosquitto after {} acks",
        progress.acked.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker = start_mosquitto(&bin, mdir.path(), port);
    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("load finishes")
        .expect("join")
        .expect("load runs");
    let stats = d.stats();
    assert_nothing_lost_or_duplicated(
        "external mosquitto restarted",
        &report,
        &stats,
        u64::from(patients * messages),
        started.elapsed(),
    );
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resends_before_the_ack_are_stored_once() {
    // A resend timeout far below the ack round trip: most messages go out
    // several times; Vigil must store each (device, seq) once.
    let app = TestApp::spawn().await;
    let cfg = LoadConfig {
        http: app.http.clone(),
        token: app.token.clone(),
        mqtt_host: app.mqtt_host.clone(),
        mqtt_port: app.mqtt_port,
        ward: app.ward.clone(),
        patients: 3,
        messages: 40,
        rate: 200.0,
        timeout: Duration::from_secs(20),
        resend_after: Duration::from_millis(1),
        seed: 3,
        tls: None,
    };
    let r = tokio::time::timeout(Duration::from_secs(40), load::run(cfg, None))
        .await
        .expect("finishes")
        .expect("runs");
    let stats = app.stats().await;
    println!(
        "eager resends: sent {} resent {} acked {} stored {}",
        r.sent, r.resent, r.acked, stats.obs_messages
    );
    assert!(r.resent > 0, "{r:?}");
    assert_eq!(
        (r.sent, r.acked, r.unacked, r.dropped),
        (120, 120, 0, 0),
        "{r:?}"
    );
    assert_eq!(stats.obs_messages, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kit_offline_for_two_hours_backfills_in_place_without_an_alert_storm() {
    let started = Instant::now();
    let app = TestApp::spawn().await;
    let pid = app.admit("general").await;
    let creds = |c: crate::helpers::DeviceCreds| SimCreds {
        device_id: c.device_id,
        username: c.username,
        password: c.password,
    };
    let hub = creds(app.provision("hub", Some(pid)).await);
    let patch = creds(app.provision("ecg-patch", Some(pid)).await);

    // Replay the last three hours at 3600x: offline from 30 min to 2 h 30 min.
    let now = chrono::Utc::now().timestamp_millis();
    let start_ms = now - 3 * 3_600_000;
    let mut plan = Scenario::OfflineGap.plan();
    plan.onset_ms = 30 * 60_000;
    plan.duration_ms = 2 * 3_600_000;
    let (gap_from, gap_to) = (
        start_ms + plan.onset_ms,
        start_ms + plan.onset_ms + plan.duration_ms,
    );
    let spec = PatientSpec {
        plan,
        pathway: "general".into(),
        patch: true,
        spot_per_day: 24,
        seed: 11,
        start_ms,
    };
    let cfg_outbox = vigil_devsim::vigil_kit::outbox::Config {
        resend_after_ms: 2_000,
        ..Default::default()
    };
    let cfg = WardConfig {
        host: app.mqtt_host.clone(),
        port: app.mqtt_port,
        patients: vec![SimPatient {
            spec: spec.clone(),
            hub,
            patch: Some(patch),
        }],
        clock: Clock {
            start_ms,
            speed: 3600.0,
            stamp: Stamp::Simulated,
        },
        ecg: false,
        recordings: Vec::new(),
        tick: Duration::from_millis(20),
        outbox: cfg_outbox,
        tls: None,
    };
    // What the patient measured inside the gap (the simulation is a pure
    // function of its seed and time, whatever the window sizes).
    let mut twin = Patient::new(spec, None);
    let until_gap_end: Vec<i64> = twin
        .step(gap_to)
        .into_iter()
        .filter(|r| matches!(r.what, What::Obs(_)))
        .map(|r| r.at_ms)
        .collect();
    let expected: Vec<i64> = until_gap_end
        .iter()
        .copied()
        .filter(|t| (gap_from..gap_to).contains(t))
        .collect();
    let cancel = tokio_util::sync::CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let running = ward::start(cfg, cancel.clone());
    let handles = running.handles();

    // The replay reaches the present after ~3 s; then wait for the backfill.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let all: Vec<_> = handles.iter().map(|h| h.stats()).collect();
        let acked: u64 = all.iter().map(|s| s.outbox.acked).sum();
        let queued: usize = all.iter().map(|s| s.outbox.queued).sum();
        if acked as usize >= until_gap_end.len() && queued == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backfill did not finish: acked {acked}, queued {queued}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reconnects: u64 = handles.iter().map(|h| h.stats().connects).sum();
    assert!(
        reconnects >= 4,
        "both devices connected, went offline and came back: {reconnects} connects"
    );

    let iso = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let q = format!("from={}&to={}", iso(gap_from), iso(gap_to - 1));
    let obs: Vec<Value> = app
        .get(&format!("/api/v1/patients/{pid}/observations?{q}"))
        .send()
        .await
        .expect("obs")
        .json()
        .await
        .expect("json");
    let mut measured: Vec<i64> = obs
        .iter()
        .filter_map(|o| chrono::DateTime::parse_from_rfc3339(o["measured_at"].as_str()?).ok())
        .map(|t| t.timestamp_millis())
        .collect();
    measured.sort_unstable();
    measured.dedup();
    let mut want = expected.clone();
    want.sort_unstable();
    want.dedup();
    assert_eq!(
        measured, want,
        "every reading of the gap stored at its measurement time"
    );

    let scores: Vec<Value> = app
        .get(&format!("/api/v1/patients/{pid}/scores?{q}"))
        .send()
        .await
        .expect("scores")
        .json()
        .await
        .expect("json");
    let scored_in_gap = scores
        .iter()
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s["scored_at"].as_str()?).ok())
        .filter(|t| (gap_from..gap_to).contains(&t.timestamp_millis()))
        .count();
    assert!(
        scored_in_gap >= want.len() / 2,
        "scores at the gap's times: {scored_in_gap} for {} readings",
        want.len()
    );

    let alerts = app
        .get(&format!("/api/v1/alerts?patient={pid}"))
        .send()
        .await
        .expect("alerts");
    let alert_note = if alerts.status() == 200 {
        let list: Vec<Value> = alerts.json().await.expect("json");
        let mut per_rule = std::collections::BTreeMap::<String, usize>::new();
        for a in &list {
            *per_rule
                .entry(a["rule_id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
        assert!(
            per_rule.values().all(|&n| n <= 1),
            "alert storm after backfill: {per_rule:?}"
        );
        format!(
            "{} alert(s), at most one per rule: {per_rule:?}",
            list.len()
        )
    } else {
        format!(
            "GET /api/v1/alerts answered {}; checked scores only",
            alerts.status()
        )
    };
    println!(
        "offline 2 h backfill: {} readings in the gap stored at their times ({} observations), {} scores in the gap, {}; {:.1} s",
        want.len(),
        obs.len(),
        scored_in_gap,
        alert_note,
        started.elapsed().as_secs_f64()
    );
    drop(running);
}

/// One MQTT 3.1.1 CONNECT with a username and password nobody has.
fn connect_packet(client: &str) -> Vec<u8> {
    let field = |s: &str| {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    };
    // Protocol name, level 4, flags: username, password, clean session;
    // keep-alive 60 s.
    let mut body = field("MQTT");
    body.extend_from_slice(&[4, 0xC2, 0, 60]);
    body.extend(field(client));
    body.extend(field("nobody"));
    body.extend(field("not-a-password"));
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

/// A service manager starts `vigil serve` with a soft open-files limit of
/// 1,024 (systemd's default) while allowing more; every device is a socket.
/// Started here under a soft limit of 256, the daemon still accepts 400
/// devices at once (counted in `/proc/PID/fd`) and answers each with a
/// CONNACK (a refusal, with these credentials). Without raising the limit
/// the broker cannot accept past about 200, and the rest wait unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_devices_than_the_soft_open_files_limit_are_all_accepted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const DEVICES: usize = 400;
    let dir = tempfile::tempdir().expect("temp dir");
    let wrapper = dir.path().join("vigil-soft-256");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nulimit -Sn 256\nexec '{VIGIL}' \"$@\"\n"),
    )
    .expect("wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut d = vigil_devsim::daemon::Daemon::new(&wrapper, None, None).expect("daemon config");
    d.start().await.unwrap_or_else(|e| panic!("{e:#}"));
    let pid = d.pid().expect("running");
    let soft = vigil_devsim::daemon::open_files_limit(&pid.to_string()).expect("soft limit");
    assert!(soft > 256, "the soft limit was raised: {soft}");

    // Every device's socket open at once, before any says a word: the
    // broker must accept them all and hold them waiting for CONNECT.
    let mut socks = Vec::new();
    for _ in 0..DEVICES {
        socks.push(
            tokio::net::TcpStream::connect(("127.0.0.1", d.mqtt_port))
                .await
                .expect("connect"),
        );
    }
    let open_fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |r| r.count());
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() < DEVICES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        open_fds() >= DEVICES,
        "vigil accepted every device: {} files open for {DEVICES} devices",
        open_fds()
    );
    let tries = socks.into_iter().enumerate().map(|(i, mut s)| {
        tokio::spawn(async move {
            s.write_all(&connect_packet(&format!("fd-{i}"))).await?;
            let mut ack = [0u8; 4];
            tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut ack))
                .await
                .map_err(std::io::Error::other)??;
            Ok::<_, std::io::Error>(ack)
        })
    });
    let mut answered = 0;
    let mut first_error = None;
    for t in futures::future::join_all(tries).await {
        match t.expect("join") {
            Ok(ack) => {
                assert_eq!(ack[0], 0x20, "a CONNACK: {ack:?}");
                answered += 1;
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    assert_eq!(
        answered,
        DEVICES,
        "every device answered (first failure: {first_error:?}; vigil log: {})",
        d.log()
    );
}
