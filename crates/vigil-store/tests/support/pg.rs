//! A throwaway PostgreSQL cluster for tests, started by the test binary
//! itself; no external service is assumed.
//!
//! Once per test binary (a `OnceLock`), [`fresh_database`] finds the server
//! binaries (`VIGIL_PG_BIN`, else Debian's `/usr/lib/postgresql/<newest>/bin`,
//! else `initdb` on `PATH`), runs `initdb` into a temp dir with trust auth,
//! and `pg_ctl start`s it listening on a free 127.0.0.1 port only, with its
//! unix socket in the same temp dir. PostgreSQL refuses to run as root, so
//! when the tests run as root the binaries run as the `postgres` OS user
//! (`runuser`) and the temp dir is handed to that user. Durability is off
//! (`fsync`, `synchronous_commit`, `full_page_writes`): the cluster is
//! thrown away. Each call then creates a new, empty database, collated
//! ICU en-US where the server supports it.
//!
//! A detached watchdog (`setsid sh`) polls for this process and, once it has
//! gone (normal exit, panic or kill -9), stops the cluster with `pg_ctl stop
//! -m immediate` and deletes the temp dir; statics are never dropped in
//! Rust, so a guard could not do it.
//!
//! Missing binaries fail loudly (CI installs them, and a silent skip would
//! hide breakage) unless `VIGIL_SKIP_POSTGRES=1`.
//!
//! This file depends only on `sqlx` (postgres) and `tempfile`, so another
//! test crate can include it with `#[path = ".../support/pg.rs"] mod pg;`.

// Each of the two test crates that include this file uses only part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The URL of a fresh, empty database on the shared throwaway cluster;
/// `None` only when `VIGIL_SKIP_POSTGRES=1`. Panics with the reason when the
/// cluster cannot be started.
pub async fn fresh_database() -> Option<String> {
    if std::env::var("VIGIL_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("VIGIL_SKIP_POSTGRES=1: PostgreSQL test skipped");
        return None;
    }
    let cluster = match CLUSTER.get_or_init(|| Cluster::start(None)) {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL test cluster: {e}\n(set VIGIL_SKIP_POSTGRES=1 to skip PostgreSQL tests)"
        ),
    };
    let db = format!(
        "vigil_test_{}",
        cluster.next_db.fetch_add(1, Ordering::Relaxed)
    );
    cluster.create_database(&db).await;
    Some(cluster.url(&db))
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

pub struct Cluster {
    port: u16,
    next_db: AtomicU32,
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    opts: String,
    as_root: bool,
}

/// A cluster of its own, for a test that stops and restarts PostgreSQL
/// (the shared one must stay up for the other tests). `None` only when
/// `VIGIL_SKIP_POSTGRES=1`.
pub fn dedicated_cluster() -> Option<Cluster> {
    if std::env::var("VIGIL_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("VIGIL_SKIP_POSTGRES=1: PostgreSQL test skipped");
        return None;
    }
    Some(Cluster::start(None).unwrap_or_else(|e| panic!("PostgreSQL test cluster: {e}")))
}

/// A cluster of its own that accepts TCP connections over TLS only, with
/// this certificate chain and key (PEM) as its server's (`ssl = on`;
/// `pg_hba.conf` rejects `hostnossl`). Its [`Cluster::fresh`] URLs carry
/// no `sslmode`, so the default (`prefer`) takes TLS. `None` only when
/// `VIGIL_SKIP_POSTGRES=1`.
pub fn dedicated_tls_cluster(cert_pem: &str, key_pem: &str) -> Option<Cluster> {
    if std::env::var("VIGIL_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("VIGIL_SKIP_POSTGRES=1: PostgreSQL test skipped");
        return None;
    }
    Some(
        Cluster::start(Some((cert_pem, key_pem)))
            .unwrap_or_else(|e| panic!("PostgreSQL test cluster: {e}")),
    )
}

impl Cluster {
    /// A fresh database on this cluster.
    pub async fn fresh(&self) -> String {
        let db = format!(
            "vigil_test_{}",
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        self.create_database(&db).await;
        self.url(&db)
    }

    fn pg_ctl(&self) -> Command {
        let exe = self.bin.join("pg_ctl");
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Stop the server now (fast shutdown: connections are dropped).
    pub fn stop(&self) {
        let out = self
            .pg_ctl()
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdin(Stdio::null())
            .output();
        assert!(out.is_ok_and(|o| o.status.success()), "pg_ctl stop");
    }

    /// Start it again on the same port.
    pub fn restart(&self) {
        let out = self
            .pg_ctl()
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &self.opts, "start"])
            .stdin(Stdio::null())
            .output();
        assert!(out.is_ok_and(|o| o.status.success()), "pg_ctl start");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    async fn create_database(&self, db: &str) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to test cluster");
        // A natural-language collation (ICU en-US, PostgreSQL 15+), as a
        // production database usually has, so a query whose order depends
        // on the locale shows up here; plain C where ICU is unavailable.
        let icu = format!(
            "CREATE DATABASE {db} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        );
        if sqlx::query(&icu).execute(&mut admin).await.is_err() {
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .expect("create test database");
        }
        admin.close().await.expect("close admin connection");
    }

    fn start(tls: Option<(&str, &str)>) -> Result<Cluster, String> {
        let bin = find_bin_dir()?;
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let run = |prog: &str| -> Command {
            let exe = bin.join(prog);
            if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(exe);
                c
            } else {
                Command::new(exe)
            }
        };

        let dir = tempfile::Builder::new()
            .prefix("vigil-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        let data = dir.join("data");
        let sock = dir.join("sock");
        std::fs::create_dir(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
        if as_root {
            check(
                Command::new("chown").args(["-R", "postgres:"]).arg(&dir),
                "chown temp dir to postgres",
            )?;
        }
        // The watchdog first, so the dir goes even if initdb fails.
        spawn_watchdog(&bin, &dir, &data, as_root)?;

        check(
            run("initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]),
            "initdb",
        )?;

        let mut ssl = "";
        if let Some((cert, key)) = tls {
            let write = |name: &str, text: &str| -> Result<(), String> {
                use std::os::unix::fs::PermissionsExt;
                let path = data.join(name);
                std::fs::write(&path, text).map_err(|e| format!("{name}: {e}"))?;
                // PostgreSQL refuses a key others can read.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("{name}: {e}"))?;
                if as_root {
                    check(
                        Command::new("chown").arg("postgres:").arg(&path),
                        "chown TLS file to postgres",
                    )?;
                }
                Ok(())
            };
            write("server.crt", cert)?;
            write("server.key", key)?;
            write(
                "pg_hba.conf",
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )?;
            ssl = " -c ssl=on";
        }

        // Another process may take the port between our probe and the
        // server's bind; try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=300{ssl}",
                sock.display()
            );
            let started = run("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "60", "-o", &opts, "start"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("pg_ctl: {e}"))?;
            if started.status.success() {
                return Ok(Cluster {
                    port,
                    next_db: AtomicU32::new(0),
                    bin: bin.clone(),
                    data,
                    dir,
                    opts,
                    as_root,
                });
            }
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            last = format!(
                "pg_ctl start failed: {}\n{log}",
                String::from_utf8_lossy(&started.stderr)
            );
        }
        Err(last)
    }
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("VIGIL_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            Ok(dir)
        } else {
            Err(format!(
                "VIGIL_PG_BIN={}: no initdb and pg_ctl there",
                dir.display()
            ))
        };
    }
    // Debian: /usr/lib/postgresql/<major>/bin; take the newest major.
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists());
    on_path.ok_or_else(|| {
        "PostgreSQL server binaries (initdb, pg_ctl) not found in VIGIL_PG_BIN, /usr/lib/postgresql/*/bin or PATH; \
         install them (Debian: apt-get install postgresql)"
            .to_string()
    })
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("probe port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("probe port: {e}"))
}

fn check(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Stop the cluster and delete its dir once this process has gone.
fn spawn_watchdog(bin: &Path, dir: &Path, data: &Path, as_root: bool) -> Result<(), String> {
    let pg_ctl = bin.join("pg_ctl");
    let stop = if as_root {
        format!(
            "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "'{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    };
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 0.2; done; if [ -f '{data}/postmaster.pid' ]; then {stop}; fi; rm -rf '{dir}'",
        pid = std::process::id(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("watchdog: {e}"))
}
