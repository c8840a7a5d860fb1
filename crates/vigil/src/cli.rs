//! The command line of CONTRACTS.md §1.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "Vigil: an open-source virtual ward",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embedded broker + SQLite + web + a simulated ward, no setup needed.
    Demo(DemoArgs),
    /// Run the daemon.
    Serve(ConfigArg),
    /// Apply database migrations and exit.
    Migrate(ConfigArg),
    /// Administration against the configured database (prints one JSON object).
    Admin(AdminArgs),
    /// NEWS2 for JSON lines of observation sets on stdin (CONTRACTS.md §4).
    Score,
    /// ECG tools.
    #[command(subcommand)]
    Ecg(EcgCommand),
}

#[derive(Debug, Subcommand)]
pub enum EcgCommand {
    /// Run the streaming QRS detector over a WFDB record; one beat per line:
    /// sample index, then time in seconds.
    Detect {
        /// Record path without extension (`PATH.hea` and the signal file it names).
        #[arg(long, value_name = "PATH")]
        record: PathBuf,
        /// Signal (channel) index in the record.
        #[arg(long, default_value_t = 0)]
        channel: usize,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated patients.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub patients: u32,
    /// Web address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Embedded MQTT broker address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1883")]
    pub mqtt: SocketAddr,
    /// Where the demo keeps its SQLite database.
    #[arg(long, value_name = "DIR", default_value = "vigil-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Wards.
    #[command(subcommand)]
    Ward(WardCommand),
    /// Clinician accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// API bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Admission and discharge.
    #[command(subcommand)]
    Patient(PatientCommand),
    /// Device credentials and assignment.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The alert webhook (`[notify]`).
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Files for an external MQTT broker.
    #[command(subcommand)]
    Mqtt(MqttCommand),
    /// Counts of what is durably stored.
    Stats,
    /// A consistent copy of the SQLite database in a new file (mode 0600),
    /// safe while `serve` runs. PostgreSQL is backed up with its own tools.
    Backup {
        /// The file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum WardCommand {
    Add {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from stdin.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = ["nurse", "consultant", "admin"])]
        role: String,
        /// Ward name or id; repeat for several.
        #[arg(long = "ward", required = true)]
        wards: Vec<String>,
        /// No password (none is read): the user signs in through single
        /// sign-on only, as the provider's username claim names them.
        #[arg(long)]
        sso_only: bool,
    },
    /// Every account: role, wards, and whether it is disabled.
    List,
    /// Disable an account (a leaver): it signs in to nothing, and its
    /// sessions and API tokens are revoked at once.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled account again (its old sessions and tokens stay revoked).
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Set an account's password, read from stdin; its sessions end.
    Password {
        #[arg(long)]
        username: String,
    },
    /// Give an account another role; its sessions end, so its dashboards
    /// sign in again as what it now is.
    Role {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = ["nurse", "consultant", "admin"])]
        role: String,
    },
    /// Give an account exactly these wards (a move, or cover of a second
    /// ward); the ones not named are taken away.
    Wards {
        #[arg(long)]
        username: String,
        /// Ward name or id; repeat for several.
        #[arg(long = "ward", required = true)]
        wards: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    Create {
        #[arg(long)]
        username: String,
        /// Lifetime of the token, e.g. "90d", "12h", or "never".
        #[arg(long = "expires-in", value_name = "DURATION", default_value = "90d")]
        expires_in: String,
    },
    Revoke {
        #[arg(long)]
        token: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PatientCommand {
    Admit {
        #[arg(long)]
        ward: String,
        #[arg(long)]
        name: String,
        #[arg(long = "nhs-number")]
        nhs_number: String,
        #[arg(long)]
        pathway: String,
        #[arg(long = "spo2-scale", value_parser = clap::value_parser!(u8).range(1..=2))]
        spo2_scale: Option<u8>,
    },
    Discharge {
        #[arg(long)]
        patient: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    Provision {
        #[arg(long, value_parser = ["oximeter", "bp-cuff", "peak-flow", "ecg-patch", "hub"])]
        kind: String,
        #[arg(long)]
        patient: Option<i64>,
    },
    Assign {
        #[arg(long)]
        device: String,
        #[arg(long)]
        patient: i64,
    },
    Revoke {
        #[arg(long)]
        device: String,
    },
    /// Take a device back from its patient during their stay (a kit
    /// swapped, or no longer needed): it becomes no one's.
    Unassign {
        #[arg(long)]
        device: String,
    },
    /// Every device, by id, with its patient, ward, last message and status.
    List {
        /// Only the devices that are no one's now.
        #[arg(long)]
        unassigned: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Post a signed test event to `notify.webhook_url` and say how the
    /// receiver answered.
    Test,
}

#[derive(Debug, Subcommand)]
pub enum MqttCommand {
    /// Write a Mosquitto password file and ACL file for every unrevoked
    /// device and the ingest's account (`mqtt.username`, `mqtt.password`).
    Export {
        /// Folder for `mosquitto.passwd` and `mosquitto.acl` (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}
