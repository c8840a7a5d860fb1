//! The `vigil` binary's library: command line, configuration, wiring.
//!
//! `main.rs` only parses arguments and calls [`run`]; everything here is
//! callable from tests, which start the whole system in-process with
//! [`app::App::build`].
//!
//! # Layout
//! - [`cli`]: the commands and flags of CONTRACTS.md §1.
//! - [`config`]: layered configuration with unknown keys refused.
//! - [`app`]: build and run the daemon (broker, ingest, web).
//! - [`admin_cmd`]: `vigil admin …`.
//! - [`mqtt_export`]: `vigil admin mqtt export`, Mosquitto's password and ACL files.
//! - [`demo`]: `vigil demo` and its small built-in ward simulation.
//! - [`notify`]: the alert webhook (`[notify]`).

pub mod admin_cmd;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod limits;
pub mod mqtt_export;
pub mod notify;
pub mod outbound;

use cli::{Cli, Command, ConfigArg};
use config::Config;

/// How a command failed, which decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Usage or configuration error: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else: exit 1.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Other(_) => 1,
        }
    }
}

fn load(arg: &ConfigArg) -> Result<Config, Failure> {
    let c = Config::load(arg.config.as_deref(), None).map_err(|e| Failure::Usage(e.0))?;
    c.validate().map_err(|e| Failure::Usage(e.0))?;
    Ok(c)
}

/// Start logging to stderr. `RUST_LOG` filters; `log.format = "json"` is
/// for production log shippers. Logs carry pseudonymous ids only.
pub fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,rmqtt=warn,rmqtt_net=warn,sqlx=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

fn other(e: impl std::fmt::Display) -> Failure {
    Failure::Other(e.to_string())
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Demo(args) => {
            init_logging(config::LogFormat::Text);
            limits::raise_open_files();
            demo::run(args)
                .await
                .map_err(|e| Failure::Other(format!("{e:#}")))
        }
        Command::Serve(arg) => {
            let config = load(&arg)?;
            init_logging(config.log.format);
            limits::raise_open_files();
            let app = app::App::build(config)
                .await
                .map_err(|e| Failure::Other(format!("{e:#}")))?;
            // Signal handlers first, so a supervisor that reacts to the
            // line below can already stop us cleanly.
            let signals = shutdown_signal().map_err(other)?;
            let stop = app.cancel.clone();
            tokio::spawn(async move {
                signals.await;
                stop.cancel();
            });
            // One machine-readable line once every socket is bound, so
            // supervisors and tests can use port 0 and learn the ports.
            println!(
                "{}",
                serde_json::json!({"event": "listening", "http": app.http_addr.to_string(), "mqtt": app.mqtt_addr})
            );
            app.run_until_stopped()
                .await
                .map_err(|e| Failure::Other(format!("{e:#}")))
        }
        Command::Migrate(arg) => {
            let config = load(&arg)?;
            vigil_store::connect_with(&config.database.url, config.database.max_connections)
                .await
                .map_err(other)?;
            println!("{}", serde_json::json!({"migrated": true}));
            Ok(())
        }
        Command::Admin(args) => {
            let config = load(&args.config)?;
            let store =
                vigil_store::connect_with(&config.database.url, config.database.max_connections)
                    .await
                    .map_err(other)?;
            let pathways = config.load_pathways().map_err(|e| Failure::Usage(e.0))?;
            let out = admin_cmd::run(store.as_ref(), &pathways, &config, args.command).await?;
            println!("{out}");
            Ok(())
        }
        Command::Score => score_stdin(),
        Command::Ecg(cli::EcgCommand::Detect { record, channel }) => ecg_detect(&record, channel),
    }
}

/// `vigil score`: one JSON line of NEWS2 out per JSON line in
/// (CONTRACTS.md §4). A bad line gets an `{"error": …}` line, so output stays
/// aligned with input.
fn score_stdin() -> Result<(), Failure> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line.map_err(other)?;
        if line.trim().is_empty() {
            continue;
        }
        writeln!(out, "{}", vigil_clinical::score_line(&line)).map_err(other)?;
    }
    out.flush().map_err(other)
}

/// `vigil ecg detect`: read a WFDB record and print the detected beats.
fn ecg_detect(record: &std::path::Path, channel: usize) -> Result<(), Failure> {
    use std::io::Write;
    let hea_path = record.with_extension("hea");
    let hea = std::fs::read_to_string(&hea_path).map_err(|e| {
        Failure::Usage(format!("--record: cannot read {}: {e}", hea_path.display()))
    })?;
    let header = vigil_ecg::wfdb::parse_header(&hea)
        .map_err(|e| Failure::Usage(format!("--record: {e}")))?;
    let spec = header.signals.get(channel).ok_or_else(|| {
        Failure::Usage(format!(
            "--channel: record has {} signals",
            header.signals.len()
        ))
    })?;
    let dat_path = hea_path.with_file_name(&spec.file);
    let dat = std::fs::read(&dat_path).map_err(|e| {
        Failure::Usage(format!("--record: cannot read {}: {e}", dat_path.display()))
    })?;
    let beats =
        vigil_ecg::detect_record(&hea, &dat, channel).map_err(|e| Failure::Other(e.to_string()))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for b in beats {
        writeln!(out, "{} {:.3}", b.sample, b.sample as f64 / header.fs_hz).map_err(other)?;
    }
    out.flush().map_err(other)
}

/// Register SIGINT and SIGTERM now; the returned future completes on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
