//! A real `vigil serve` (and, when asked, a Mosquitto) as a child process
//! on free ports with its own SQLite database in a temp dir, set up with the
//! real `vigil admin` commands: what `devsim bench` measures and what the
//! end-to-end reliability tests kill and restart.
//!
//! Children are killed (SIGKILL) and reaped when their guard is dropped, so
//! a failed run or test leaves nothing behind.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first port the kernel gives outgoing connections as their local
/// end (`ip_local_port_range`; 32768 if it cannot be read).
fn outgoing_ports_from() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A free port on 127.0.0.1 for a server started later (a `vigil serve`
/// child, Mosquitto), bind-checked and released. Taken below the kernel's
/// range for outgoing connections' local ports (`ip_local_port_range`,
/// commonly 32768–60999): a port from that range (what binding port 0
/// gives) can be taken meanwhile as the local end of any client
/// connection, such as a test's PostgreSQL pool, and then held for as
/// long as that connection lives. Falls back to such a port if none below
/// is free.
pub fn free_port() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU32, Ordering};
    static PICKED: AtomicU32 = AtomicU32::new(0);
    let (from, to) = (10_000u32, u32::from(outgoing_ports_from()));
    if to > from + 100 {
        let span = to - from;
        // A random start per process (the std hasher's keys are random),
        // and a step per pick, so that concurrent tests spread out.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let start = (h.finish() % u64::from(span)) as u32;
        let offset = PICKED.fetch_add(101, Ordering::Relaxed);
        for k in 0..span.min(4_000) {
            let port = (from + (start + offset + k) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}

/// A `vigil serve` child with its own database, on fixed ports picked at
/// creation (so devices reconnect to the same address after a restart).
#[derive(Debug)]
pub struct Daemon {
    bin: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// The web server's port.
    pub http_port: u16,
    /// The broker's port (embedded, or the external one given).
    pub mqtt_port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Daemon {
    /// A daemon run from the binary `bin`. `external`: the port of an
    /// external broker on 127.0.0.1, or `None` for the embedded one.
    /// `pathways`: a pathways folder, or `None` for the built-in pathways.
    pub fn new(
        bin: &Path,
        external: Option<u16>,
        pathways: Option<&Path>,
    ) -> anyhow::Result<Daemon> {
        Daemon::with_account(bin, external, pathways, None)
    }

    /// As [`Daemon::new`], with the ingest's `(username, password)` on the
    /// external broker (`mqtt.username`, `mqtt.password`).
    pub fn with_account(
        bin: &Path,
        external: Option<u16>,
        pathways: Option<&Path>,
        account: Option<(&str, &str)>,
    ) -> anyhow::Result<Daemon> {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let http_port = free_port()?;
        let mqtt_port = match external {
            Some(p) => p,
            None => free_port()?,
        };
        let mqtt = match external {
            None => format!("embedded = true\nlisten = \"127.0.0.1:{mqtt_port}\"\n"),
            Some(p) => format!("embedded = false\nurl = \"mqtt://127.0.0.1:{p}\"\n"),
        };
        let mqtt = match account {
            Some((user, password)) => {
                format!("{mqtt}username = \"{user}\"\npassword = \"{password}\"\n")
            }
            None => mqtt,
        };
        let pathways = pathways
            .map(|p| format!("[pathways]\ndir = \"{}\"\n", p.display()))
            .unwrap_or_default();
        let config = dir.path().join("vigil.toml");
        let text = format!(
            "[http]\naddr = \"127.0.0.1:{http_port}\"\n[mqtt]\n{mqtt}[database]\nurl = \"sqlite://{}\"\n{pathways}",
            dir.path().join("vigil.db").display(),
        );
        std::fs::write(&config, text).context("writing vigil.toml")?;
        Ok(Daemon {
            bin: bin.to_path_buf(),
            dir,
            config,
            http_port,
            mqtt_port,
            child: None,
            starts: 0,
        })
    }

    /// The web server's base URL.
    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The daemon's folder (config, database, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its `vigil.toml`.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.0.id())
    }

    /// Runs `vigil admin ARGS --config ...` (with `stdin` as its input)
    /// and returns the JSON object it prints.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Value> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("admin")
            .arg("--config")
            .arg(&self.config)
            .args(args);
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .context("vigil admin: stdin")?;
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().context("vigil admin")?;
        if !out.status.success() {
            bail!(
                "vigil admin {}: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("vigil admin {args:?} printed no JSON object"))
    }

    /// Ward `ward`, an admin `admin` (password `password`) in it and an API
    /// token for that admin, through `vigil admin`; returns the token.
    pub fn setup(&self, ward: &str, admin: &str, password: &str) -> anyhow::Result<String> {
        self.admin(&["ward", "add", "--name", ward], None)?;
        self.add_user(admin, "admin", ward, password)?;
        let t = self.admin(&["token", "create", "--username", admin], None)?;
        t["token"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| anyhow!("vigil admin token create: no token in {t}"))
    }

    /// A user of `role` in `ward` with `password`.
    pub fn add_user(
        &self,
        username: &str,
        role: &str,
        ward: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        self.admin(
            &[
                "user",
                "add",
                "--username",
                username,
                "--role",
                role,
                "--ward",
                ward,
            ],
            Some(&format!("{password}\n")),
        )?;
        Ok(())
    }

    /// `vigil admin stats`: counts of what is durably stored.
    pub fn stats(&self) -> anyhow::Result<Value> {
        self.admin(&["stats"], None)
    }

    /// The log of the latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("serve-{start}.log"))
    }

    /// Starts `vigil serve` with `RUST_LOG=log_level`, waits for its
    /// `listening` line and `/readyz`. Retries for up to 75 s while the
    /// fixed ports are still held (a killed daemon's connections in
    /// TIME_WAIT). Returns how long it took.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        let first = Instant::now();
        let deadline = first + Duration::from_secs(75);
        loop {
            self.starts += 1;
            let log = std::fs::File::create(self.log_path(self.starts)).context("serve log")?;
            let mut child = Child(
                Command::new(&self.bin)
                    .arg("serve")
                    .arg("--config")
                    .arg(&self.config)
                    // DEVSIM_SERVE_LOG: the daemon's RUST_LOG, e.g.
                    // `warn,sqlx::query=debug` to time every statement while
                    // profiling (the log is serve-N.log in the temp dir).
                    .env(
                        "RUST_LOG",
                        std::env::var("DEVSIM_SERVE_LOG").unwrap_or_else(|_| "warn".into()),
                    )
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::from(log))
                    .spawn()
                    .with_context(|| format!("running {} serve", self.bin.display()))?,
            );
            let stdout = child.0.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(first)) = lines.next() {
                    let _ = tx.send(first);
                }
                for _ in lines {} // keep draining so the daemon never blocks on stdout
            });
            let line =
                tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(15)))
                    .await
                    .context("join")?;
            match line {
                Ok(l) => {
                    let v: Value = serde_json::from_str(&l)
                        .map_err(|_| anyhow!("vigil serve: first line is not JSON: {l}"))?;
                    if v["event"] != "listening" {
                        bail!("vigil serve: expected a listening event, got {l}");
                    }
                    self.child = Some(child);
                    self.wait_ready().await?;
                    return Ok(first.elapsed());
                }
                Err(_) => {
                    drop(child);
                    if Instant::now() >= deadline {
                        bail!("vigil serve did not start: {}", self.log());
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = crate::tls::http_client(None)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.http())).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("vigil did not become ready: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.0.kill();
            let _ = c.0.wait();
        }
    }
}

/// The `mosquitto` binary, if installed (Debian package `mosquitto`).
pub fn mosquitto_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/local/bin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// A Mosquitto on 127.0.0.1:port without persistence (a restart loses
/// every session and queued message), `extra` appended to its configuration
/// (who may connect: `allow_anonymous true`, or a password file); returns
/// once it accepts connections.
pub fn start_mosquitto(bin: &Path, dir: &Path, port: u16, extra: &str) -> anyhow::Result<Child> {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\npersistence false\n{extra}"),
    )
    .context("writing mosquitto.conf")?;
    let log = std::fs::File::create(dir.join("mosquitto.log")).context("mosquitto log")?;
    let child = Child(
        Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("running {}", bin.display()))?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            bail!("mosquitto did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// CPU time and memory of a process, from `/proc/PID/stat` and `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcUsage {
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// A process's soft open-files limit (`/proc/PID/limits`; `pid` may be
/// `self`), `None` if it cannot be read.
pub fn open_files_limit(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Reads a process's CPU time and memory; `None` if it is gone.
pub fn proc_usage(pid: u32) -> Option<ProcUsage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_proc(&stat, &status, clock_ticks_per_s())
}

/// Parses `/proc/PID/stat` (utime and stime, fields 14 and 15, after the
/// command name in parentheses, which may hold spaces) and the `VmRSS` and
/// `VmHWM` lines of `/proc/PID/status`.
pub fn parse_proc(stat: &str, status: &str, ticks_per_s: f64) -> Option<ProcUsage> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so utime (14) is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(ProcUsage {
        cpu_s: (utime + stime) / ticks_per_s,
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse_with_spaces_in_the_command_name() {
        let stat = "4242 (vigil serve) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1000 1000000 5000";
        let status = "Name:\tvigil\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        let u = parse_proc(stat, status, 100.0).expect("parses");
        assert_eq!(u.cpu_s, 3.0);
        assert_eq!((u.rss_kib, u.peak_rss_kib), (102_400, 204_800));
        assert_eq!(parse_proc("garbage", status, 100.0), None);
        assert_eq!(parse_proc(stat, "Name:\tvigil\n", 100.0), None);
    }

    #[test]
    fn free_ports_are_bindable_distinct_and_below_the_outgoing_range() {
        let ephemeral = outgoing_ports_from();
        let ports: Vec<u16> = (0..20).map(|_| free_port().expect("a port")).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for p in ports {
            assert!(
                (10_000..ephemeral).contains(&p),
                "{p} (outgoing from {ephemeral})"
            );
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("bindable");
        }
    }
}
