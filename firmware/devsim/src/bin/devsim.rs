//! `devsim`: simulated patients and devices against a running Vigil.

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use vigil_devsim::bench::{self, BenchConfig, Broker, Scale};
use vigil_devsim::load::{self, LoadConfig};
use vigil_devsim::ward::{self, Clock, SimPatient, Stamp, WardConfig};

/// Simulated patients and their home kits, over real MQTT, for Vigil.
#[derive(Parser, Debug)]
#[command(name = "devsim", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Admit N patients with a hub each, publish M messages per hub at R/s, report.
    Load(LoadArgs),
    /// Admit N patients with scenarios and run them as a ward until Ctrl-C.
    Ward(WardArgs),
    /// Start a fresh `vigil serve`, drive a ward, region or nation of kits, measure, report.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// The vigil binary to benchmark
    #[arg(long)]
    vigil: PathBuf,
    /// ward (300 patients), region (3,000) or national (25,000)
    #[arg(long)]
    scale: String,
    /// How long each phase drives the load, e.g. 30s or 2m
    #[arg(long)]
    duration: String,
    /// Write the JSON report here
    #[arg(long)]
    report: PathBuf,
    /// Vigil's broker: embedded, or mosquitto (the one the counting subscriber uses)
    #[arg(long, default_value = "embedded")]
    broker: String,
    /// Observation messages all hubs together keep waiting for an ack
    #[arg(long, default_value_t = 512)]
    in_flight: usize,
    /// Every Nth patient deteriorates and raises a NEWS2 alert [default:
    /// about 100 sentinels, between every 3rd and every 10th patient]
    #[arg(long)]
    deteriorate_every: Option<u32>,
    /// Seconds to wait for outstanding acks after each phase
    #[arg(long, default_value_t = 30.0)]
    drain: f64,
    /// Hubs only: no ECG patches
    #[arg(long)]
    no_ecg: bool,
    /// Skip the counting-subscriber (ceiling) phase
    #[arg(long)]
    no_passthrough: bool,
    /// Override the scale's patient count (tests, or a scale this machine
    /// cannot hold in full)
    #[arg(long)]
    patients: Option<u32>,
    /// A small queue (256 messages, 128 KiB) per simulated device instead
    /// of a real kit's (4,096, 1 MiB), so that tens of thousands fit
    #[arg(long)]
    small_queues: bool,
    /// Dashboards watching the ward's websocket stream (an alert's
    /// latency is its arrival at the last of them)
    #[arg(long, default_value_t = 1)]
    dashboards: u32,
    /// Seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
struct Target {
    /// Vigil's HTTP base URL, e.g. http://127.0.0.1:8080 or https://vigil.example:8443
    #[arg(long)]
    http: String,
    /// An admin's API token (vigil admin token create)
    #[arg(long)]
    token: String,
    /// The MQTT broker devices connect to, HOST:PORT, or mqtts://HOST:PORT over TLS
    #[arg(long)]
    mqtt: String,
    /// PEM CA certificate(s) trusted for an https:// --http or an mqtts://
    /// --mqtt (default: the system's trust store)
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Ward to admit patients into (name or id)
    #[arg(long)]
    ward: String,
    /// Number of patients
    #[arg(long)]
    patients: u32,
}

#[derive(Args, Debug)]
struct LoadArgs {
    #[command(flatten)]
    target: Target,
    /// Observation messages per hub
    #[arg(long)]
    messages: u32,
    /// Messages per second, all hubs together
    #[arg(long)]
    rate: f64,
    /// Write the JSON report here
    #[arg(long)]
    report: PathBuf,
    /// Seconds to keep waiting for acks after the last message is queued
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Seconds before an unacked message is first resent
    #[arg(long, default_value_t = 5.0)]
    resend_after: f64,
    /// Seed for NHS numbers and values
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
struct WardArgs {
    #[command(flatten)]
    target: Target,
    /// Scenario clock speed (simulated seconds per second)
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Give every Nth patient an ECG patch (0: none)
    #[arg(long, default_value_t = 3)]
    patch_every: u32,
    /// Folder of MIT-BIH records to replay on patches (default ../shared/data/mitdb or $VIGIL_MITDB)
    #[arg(long)]
    mitdb: Option<PathBuf>,
    /// Spot checks per day (2-4 on a real ward)
    #[arg(long, default_value_t = 4)]
    spot_per_day: u32,
    /// Seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The broker and the TLS of `t`; a bad flag or CA file ends the run.
fn connect_to(t: &Target) -> (String, u16, Option<vigil_devsim::tls::TlsTarget>) {
    vigil_devsim::tls::target(&t.http, &t.mqtt, t.ca_file.as_deref())
        .unwrap_or_else(|e| usage(format!("{e:#}")))
}

fn secs(flag: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("{flag}: expected a non-negative number of seconds, got {v}"))
}

fn usage(msg: String) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!(
                "{}",
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("error: bad arguments")
            );
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Every simulated device is a socket: a thousand patients' kits are
    // past a login shell's soft limit of 1,024. Raise it to the hard limit,
    // as `vigil serve` does; the bench's preflight still refuses a run that
    // the hard limit cannot hold.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-files limit");
    }
    let code = match cli.cmd {
        Cmd::Load(a) => run_load(a).await,
        Cmd::Ward(a) => run_ward(a).await,
        Cmd::Bench(a) => run_bench(a).await,
    };
    std::process::exit(code);
}

async fn run_load(a: LoadArgs) -> i32 {
    let (mqtt_host, mqtt_port, tls) = connect_to(&a.target);
    let cfg = LoadConfig {
        http: a.target.http,
        token: a.target.token,
        mqtt_host,
        mqtt_port,
        ward: a.target.ward,
        patients: a.target.patients,
        messages: a.messages,
        rate: a.rate,
        timeout: secs("--timeout", a.timeout).unwrap_or_else(|e| usage(e)),
        resend_after: secs("--resend-after", a.resend_after).unwrap_or_else(|e| usage(e)),
        seed: a.seed,
        tls,
    };
    if let Err(e) = cfg.validate() {
        usage(e);
    }
    match load::run(cfg, None).await {
        Ok(r) => {
            let text = serde_json::to_string_pretty(&r).unwrap_or_default();
            if let Err(e) = std::fs::write(&a.report, format!("{text}\n")) {
                eprintln!("error: writing {}: {e}", a.report.display());
                return 1;
            }
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            if r.unacked > 0 {
                eprintln!(
                    "error: {} message(s) still unacknowledged at the timeout",
                    r.unacked
                );
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

async fn run_bench(a: BenchArgs) -> i32 {
    let scale = Scale::parse(&a.scale).unwrap_or_else(|e| usage(e));
    let patients = a.patients.unwrap_or_else(|| scale.patients());
    let cfg = BenchConfig {
        vigil: a.vigil,
        scale,
        patients: a.patients,
        duration: bench::parse_duration(&a.duration).unwrap_or_else(|e| usage(e)),
        in_flight: a.in_flight,
        deteriorate_every: a
            .deteriorate_every
            .unwrap_or_else(|| bench::default_deteriorate_every(patients)),
        ecg: !a.no_ecg,
        passthrough: !a.no_passthrough,
        broker: match a.broker.as_str() {
            "embedded" => Broker::Embedded,
            "mosquitto" => Broker::Mosquitto,
            other => usage(format!(
                "--broker: expected embedded or mosquitto, got {other:?}"
            )),
        },
        drain: secs("--drain", a.drain).unwrap_or_else(|e| usage(e)),
        small_queues: a.small_queues,
        dashboards: a.dashboards,
        seed: a.seed,
    };
    if let Err(e) = cfg.validate() {
        usage(e);
    }
    match bench::run(cfg).await {
        Ok(r) => {
            let text = serde_json::to_string_pretty(&r).unwrap_or_default();
            if let Err(e) = std::fs::write(&a.report, format!("{text}\n")) {
                eprintln!("error: writing {}: {e}", a.report.display());
                return 1;
            }
            println!("{}", bench::summary(&r));
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

async fn run_ward(a: WardArgs) -> i32 {
    let (host, port, tls) = connect_to(&a.target);
    if !(a.speed.is_finite() && a.speed > 0.0) {
        usage("--speed: must be a positive number".into());
    }
    let api = match vigil_devsim::http::Api::with_tls(
        &a.target.http,
        &a.target.token,
        tls.as_ref().map(|t| &t.config),
    ) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 1;
        }
    };
    let mut rng = vigil_devsim::rng::SimRng::seeded(a.seed);
    let mut patients = Vec::new();
    for i in 0..a.target.patients {
        let spec = vigil_devsim::scenario::demo_spec(
            i as usize,
            a.spot_per_day,
            a.seed.wrapping_add(u64::from(i)),
        );
        let nhs = vigil_devsim::nhs::random_test_number(&mut rng);
        let made = async {
            let pid = api
                .admit_simulated(
                    &a.target.ward,
                    &format!("Sim patient {:03}", i + 1),
                    &nhs,
                    &spec.pathway,
                )
                .await?;
            let hub = api.provision("hub", pid).await?;
            let patch = if a.patch_every > 0 && i % a.patch_every == 0 {
                Some(api.provision("ecg-patch", pid).await?)
            } else {
                None
            };
            Ok::<_, vigil_devsim::http::ApiError>(SimPatient {
                spec: spec.clone(),
                hub,
                patch,
            })
        };
        match made.await {
            Ok(p) => patients.push(p),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    }
    let dir = a.mitdb.unwrap_or_else(vigil_devsim::ecg::default_mitdb_dir);
    let recordings = vigil_devsim::ecg::Recording::load_dir(&dir, 8);
    let cfg = WardConfig {
        host,
        port,
        patients,
        clock: Clock {
            start_ms: chrono::Utc::now().timestamp_millis(),
            speed: a.speed,
            stamp: Stamp::WallClock,
        },
        ecg: true,
        recordings,
        tick: Duration::from_millis(250),
        outbox: vigil_kit::outbox::Config::default(),
        tls: tls.filter(|t| t.mqtt).map(|t| t.config),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = ward::start(cfg, cancel.clone());
    eprintln!(
        "devsim: {} patients running; Ctrl-C to stop",
        running.devices.len()
    );
    let _ = tokio::signal::ctrl_c().await;
    cancel.cancel();
    0
}
