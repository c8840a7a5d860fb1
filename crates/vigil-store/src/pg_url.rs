//! What a `postgres://` URL asks of the connection, checked before Vigil
//! connects: the TLS files it names exist, and whether the connection will
//! be encrypted and its server verified (docs/configuration.md, "TLS to
//! PostgreSQL").
//!
//! sqlx reads the same keys libpq does (`sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`, and the `PGSSL*` environment variables), with one difference
//! an administrator must know: `sslmode=require` never verifies the server,
//! even with `sslrootcert` given (libpq then verifies the chain). Only
//! `verify-full` checks both the chain and the host name.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The URL's query keys that name a file, with the name a message uses.
const FILE_KEYS: [(&[&str], &str); 3] = [
    (&["sslrootcert", "ssl-root-cert", "ssl-ca"], "sslrootcert"),
    (&["sslcert", "ssl-cert"], "sslcert"),
    (&["sslkey", "ssl-key"], "sslkey"),
];

/// Check a PostgreSQL URL: it parses, and each TLS file it names exists.
/// `Ok(Some(warning))` when the connection to a server that is not on this
/// machine would not be both encrypted and verified, so the start-up log
/// can say so; the error is one line naming `database.url` and the key.
pub fn check(url: &str) -> Result<Option<String>, String> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| format!("database.url: {e}"))?;
    let parsed = url::Url::parse(url).map_err(|e| format!("database.url: {e}"))?;
    for (key, value) in parsed.query_pairs() {
        if let Some((_, name)) = FILE_KEYS.iter().find(|(keys, _)| keys.contains(&&*key)) {
            // sqlx also takes inline PEM (`-----BEGIN`) for these keys.
            if !value.starts_with("-----BEGIN") && !Path::new(&*value).is_file() {
                return Err(format!("database.url: {name}: no such file: {value}"));
            }
        }
    }
    Ok(warning(&opts))
}

/// Why a connection to `opts` would not be trusted, if it would not be.
fn warning(opts: &PgConnectOptions) -> Option<String> {
    let host = opts.get_host();
    let local = opts.get_socket().is_some()
        || host.starts_with('/')
        || host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let what = match opts.get_ssl_mode() {
        _ if local => return None,
        PgSslMode::VerifyFull => return None,
        PgSslMode::Disable => "is not encrypted",
        PgSslMode::Allow | PgSslMode::Prefer => {
            "is encrypted only if the server offers it, and the server is not verified"
        }
        PgSslMode::Require => "is encrypted but the server is not verified",
        PgSslMode::VerifyCa => "is encrypted but the server's host name is not verified",
    };
    Some(format!(
        "the connection to PostgreSQL at {host} {what}; set sslmode=verify-full and sslrootcert in database.url (docs/configuration.md)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_on_another_machine_is_trusted_only_over_verify_full() {
        let ca = tempfile::NamedTempFile::new().expect("temp file");
        let ca = ca.path().display();
        for (url, says) in [
            (
                "postgres://v@db.internal/vigil",
                Some("only if the server offers it"),
            ),
            (
                "postgres://v@db.internal/vigil?sslmode=disable",
                Some("is not encrypted"),
            ),
            (
                "postgres://v@10.0.0.5/vigil?sslmode=require",
                Some("server is not verified"),
            ),
            (
                &format!("postgres://v@db.internal/vigil?sslmode=verify-ca&sslrootcert={ca}"),
                Some("host name is not verified"),
            ),
            (
                &format!("postgres://v@db.internal/vigil?sslmode=verify-full&sslrootcert={ca}"),
                None,
            ),
            ("postgres://v@127.0.0.1:5432/vigil", None),
            ("postgres://v@localhost/vigil?sslmode=disable", None),
            ("postgres://v@[::1]/vigil", None),
            ("postgres:///vigil?host=/var/run/postgresql", None),
        ] {
            let got = check(url).expect(url);
            match says {
                Some(s) => assert!(
                    got.as_deref()
                        .is_some_and(|w| w.contains(s) && w.contains("verify-full")),
                    "{url}: {got:?}"
                ),
                None => assert_eq!(got, None, "{url}"),
            }
        }
    }

    #[test]
    fn a_tls_file_that_does_not_exist_is_named() {
        for (url, key) in [
            (
                "postgres://v@db/vigil?sslmode=verify-full&sslrootcert=/nope/ca.pem",
                "sslrootcert",
            ),
            ("postgres://v@db/vigil?ssl-ca=/nope/ca.pem", "sslrootcert"),
            (
                "postgres://v@db/vigil?sslcert=/nope/c.pem&sslkey=/nope/k.pem",
                "sslcert",
            ),
        ] {
            let e = check(url).expect_err(url);
            assert!(
                e.starts_with(&format!("database.url: {key}: no such file: /nope/")),
                "{e}"
            );
        }
        let e = check("postgres://v@db/vigil?sslmode=sometimes").expect_err("bad mode");
        assert!(
            e.starts_with("database.url: ") && e.contains("sometimes"),
            "{e}"
        );
    }
}
