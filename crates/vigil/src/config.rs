//! Layered configuration: embedded defaults → TOML file → `VIGIL_*`
//! environment → command-line flags. Unknown keys are an error naming the
//! key (exit code 2), never silently ignored: a typo in `mqtt.embeded` must
//! not start a daemon with the wrong broker.
//!
//! Every key is documented in docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub database: DatabaseConfig,
    pub pathways: PathwaysConfig,
    pub log: LogConfig,
    pub ecg: EcgConfig,
    pub retention: RetentionConfig,
    pub notify: NotifyConfig,
    pub sso: SsoConfig,
}

/// Single sign-on through the trust's OpenID Connect provider
/// (docs/configuration.md, "Single sign-on"). Off unless `issuer` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's issuer identifier (`https://login.microsoftonline.com/<tenant>/v2.0`).
    pub issuer: Option<String>,
    /// Vigil's client id and secret, registered with the provider.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `https://<vigil>/api/v1/auth/sso/callback` as browsers reach it (the
    /// redirect URI registered with the provider).
    pub redirect_url: Option<String>,
    /// The ID-token claim that holds the Vigil username.
    pub username_claim: String,
    /// Scopes asked for; must include `openid`.
    pub scopes: String,
    /// The provider's name on the sign-in button.
    pub label: String,
    /// OpenID Connect's `prompt`, sent with each sign-in: `login` makes
    /// the provider ask for the password (or card) every time, for shared
    /// ward computers; `select_account` lets the person choose.
    pub prompt: Option<String>,
    /// `false`: only single sign-on signs people in to the dashboard and
    /// API (`vigil admin` on the server still works).
    pub password_login: bool,
    /// `true`: signing out of Vigil after a single sign-on goes on to the
    /// provider's sign-out (OpenID Connect RP-Initiated Logout), so the
    /// next person at a shared computer is not signed in as the last.
    pub sign_out_provider: bool,
    /// PEM CA certificate(s) trusted for the provider; without it, the
    /// system's trust store.
    pub ca_file: Option<PathBuf>,
}

/// Alerts posted to a webhook (docs/configuration.md, "Alert webhook"):
/// the hospital's integration engine or paging service, for when no
/// dashboard is watching. Off unless `webhook_url` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `https://…` (or `http://` on a trusted network) to POST each event to.
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key the receiver checks each post's signature with.
    pub secret: Option<String>,
    /// Which alert transitions are posted.
    pub actions: Vec<String>,
    /// The least severe alert posted.
    pub min_severity: String,
    /// An event older than this when its turn comes is not posted (counted
    /// `expired`): a page about a long-past alert is noise.
    pub max_age: String,
    /// PEM CA certificate(s) trusted for an `https://` webhook; without
    /// it, the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// With several instances on one database, how long the one posting
    /// may go unheard from before another takes over (its lease's lapse).
    pub takeover_after: String,
    /// The dashboard's address as clinicians reach it, for a link to the
    /// patient's page in each post.
    pub dashboard_url: Option<String>,
}

/// How long history is kept: a human duration (`"400d"`) or `"off"` (keep).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub observations: String,
    pub scores: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcgConfig {
    /// How long raw ECG chunks and beats are kept, e.g. "30d".
    pub retention: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the web server binds.
    pub addr: SocketAddr,
    /// PEM certificate chain: with `tls_key`, serve HTTPS (rustls) instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Run the embedded broker.
    pub embedded: bool,
    /// Where the embedded broker listens.
    pub listen: SocketAddr,
    /// An external broker, `mqtt://host:port`, used when `embedded = false`.
    pub url: Option<String>,
    /// The ingest's credentials on the external broker.
    pub username: Option<String>,
    pub password: Option<String>,
    /// A second embedded-broker listener speaking MQTT over TLS (e.g.
    /// `0.0.0.0:8883`); needs `tls_cert` and `tls_key`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain and key of the embedded broker's TLS listener.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) that sign devices' client certificates. Set,
    /// the TLS listener takes only clients presenting a certificate from
    /// one of them whose Common Name is their MQTT username; the password
    /// is still checked (mutual TLS: docs/configuration.md).
    pub tls_client_ca: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for an external `mqtts://` broker
    /// (default: the system's trust store).
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/vigil.db`
    pub url: String,
    /// At most this many connections to a PostgreSQL server per process
    /// (default 10; PostgreSQL only).
    pub max_connections: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathwaysConfig {
    /// Folder of pathway TOML files.
    pub dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: HttpConfig {
                addr: ([127, 0, 0, 1], 8080).into(),
                tls_cert: None,
                tls_key: None,
            },
            mqtt: MqttConfig {
                embedded: true,
                listen: ([127, 0, 0, 1], 1883).into(),
                url: None,
                username: None,
                password: None,
                tls_listen: None,
                tls_cert: None,
                tls_key: None,
                tls_client_ca: None,
                ca_file: None,
            },
            database: DatabaseConfig {
                url: "sqlite://vigil-data/vigil.db".into(),
                max_connections: None,
            },
            pathways: PathwaysConfig {
                dir: "pathways".into(),
            },
            log: LogConfig {
                format: LogFormat::Text,
            },
            ecg: EcgConfig {
                retention: "30d".into(),
            },
            // Clinical records: kept unless the operator sets a period.
            retention: RetentionConfig {
                observations: "off".into(),
                scores: "off".into(),
            },
            notify: NotifyConfig {
                webhook_url: None,
                secret: None,
                actions: vec!["raised".into(), "updated".into(), "escalated".into()],
                min_severity: "medium".into(),
                max_age: "1h".into(),
                ca_file: None,
                takeover_after: "30s".into(),
                dashboard_url: None,
            },
            sso: SsoConfig {
                issuer: None,
                client_id: None,
                client_secret: None,
                redirect_url: None,
                username_claim: "preferred_username".into(),
                scopes: "openid profile".into(),
                label: "single sign-on".into(),
                prompt: None,
                password_login: true,
                sign_out_provider: false,
                ca_file: None,
            },
        }
    }
}

/// The configuration sections; `VIGIL_<SECTION>_<KEY>` variables set them.
pub const SECTIONS: [&str; 9] = [
    "http",
    "mqtt",
    "database",
    "pathways",
    "log",
    "ecg",
    "retention",
    "notify",
    "sso",
];

/// The alert transitions `notify.actions` may name (`alert_events.action`).
pub const NOTIFY_ACTIONS: [&str; 5] =
    ["raised", "updated", "acknowledged", "escalated", "resolved"];

/// The `notify` section, checked ([`Config::notify_settings`]).
#[derive(Clone, Debug)]
pub struct NotifySettings {
    pub webhook_url: String,
    pub secret: String,
    pub actions: Vec<String>,
    pub min_severity: vigil_store::Severity,
    pub max_age: std::time::Duration,
    pub ca_file: Option<PathBuf>,
    pub takeover_after: std::time::Duration,
    pub dashboard_url: Option<String>,
}

/// A configuration problem, already phrased as the one line the user sees.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Load defaults, then `file` (if given), then `VIGIL_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: Option<&[(String, String)]>,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.is_file() {
                return Err(ConfigError(format!(
                    "--config: no such file: {}",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        // VIGIL_SECTION_KEY → section.key (only the first `_` splits, so
        // keys may contain underscores). Only variables naming one of our
        // sections are configuration (VIGIL_HTTP_ADRR is refused as a typo);
        // others, like the test tools' VIGIL_SKIP_POSTGRES, are not ours.
        let ours = |k: &str| {
            SECTIONS
                .iter()
                .any(|s| k.to_ascii_lowercase().starts_with(&format!("{s}_")))
        };
        let env_provider = Env::prefixed("VIGIL_")
            .filter(move |k| ours(k.as_str()))
            .map(|k| k.as_str().replacen('_', ".", 1).into());
        fig = match env {
            None => fig.merge(env_provider),
            Some(vars) => {
                // The same mapping over an explicit list (tests run in
                // parallel and must not share the process environment).
                let mut fig = fig;
                for (k, v) in vars {
                    if let Some(rest) = k.strip_prefix("VIGIL_").filter(|r| ours(r)) {
                        let key = rest.to_ascii_lowercase().replacen('_', ".", 1);
                        let value: figment::value::Value = v
                            .parse()
                            .unwrap_or_else(|_| figment::value::Value::from(v.clone()));
                        fig = fig.merge(Serialized::default(&key, value));
                    }
                }
                fig
            }
        };
        fig.extract::<Config>()
            .map_err(|e| ConfigError(describe(e)))
    }

    /// The `notify` section checked and parsed; `None` when no webhook is
    /// set (then any other `notify` key is refused, as a half-done set-up).
    pub fn notify_settings(&self) -> Result<Option<NotifySettings>, ConfigError> {
        let n = &self.notify;
        let Some(url) = &n.webhook_url else {
            if n.secret.is_some() || n.ca_file.is_some() || n.dashboard_url.is_some() {
                return Err(ConfigError(
                    "notify.webhook_url: required when other notify keys are set".into(),
                ));
            }
            return Ok(None);
        };
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().any(char::is_whitespace)
        {
            return Err(ConfigError(format!(
                "notify.webhook_url: not an http:// or https:// address: {url:?}"
            )));
        }
        let secret = match &n.secret {
            Some(s) if s.len() >= 16 => s.clone(),
            Some(_) => {
                return Err(ConfigError("notify.secret: at least 16 characters".into()));
            }
            None => {
                return Err(ConfigError(
                    "notify.secret: required with notify.webhook_url (the receiver checks each post's signature with it)".into(),
                ));
            }
        };
        let mut actions = Vec::new();
        for a in &n.actions {
            if !NOTIFY_ACTIONS.contains(&a.as_str()) {
                return Err(ConfigError(format!(
                    "notify.actions: unknown action {a:?} (one of {})",
                    NOTIFY_ACTIONS.join(", ")
                )));
            }
            actions.push(a.clone());
        }
        if actions.is_empty() {
            return Err(ConfigError("notify.actions: at least one".into()));
        }
        let min_severity = vigil_store::Severity::parse(&n.min_severity).ok_or_else(|| {
            ConfigError(format!(
                "notify.min_severity: unknown severity {:?} (low, low-medium, medium or high)",
                n.min_severity
            ))
        })?;
        let max_age = humantime::parse_duration(&n.max_age)
            .map_err(|e| ConfigError(format!("notify.max_age: {e} (e.g. \"1h\")")))?;
        let takeover_after = humantime::parse_duration(&n.takeover_after)
            .ok()
            .filter(|d| (3..=600).contains(&d.as_secs()))
            .ok_or_else(|| {
                ConfigError(format!(
                    "notify.takeover_after: {:?} is not a duration from 3s to 10m (e.g. \"30s\")",
                    n.takeover_after
                ))
            })?;
        if let Some(d) = &n.dashboard_url
            && !(d.starts_with("https://") || d.starts_with("http://"))
        {
            return Err(ConfigError(format!(
                "notify.dashboard_url: not an http:// or https:// address: {d:?}"
            )));
        }
        Ok(Some(NotifySettings {
            webhook_url: url.clone(),
            secret,
            actions,
            min_severity,
            max_age,
            ca_file: n.ca_file.clone(),
            takeover_after,
            dashboard_url: n
                .dashboard_url
                .as_ref()
                .map(|d| d.trim_end_matches('/').to_string()),
        }))
    }

    /// The `sso` section checked; `None` when no provider is set (then only
    /// `password_login = true` and the defaults may be there).
    pub fn sso_settings(&self) -> Result<Option<vigil_web::sso::SsoSettings>, ConfigError> {
        let c = &self.sso;
        let Some(issuer) = &c.issuer else {
            if c.client_id.is_some()
                || c.client_secret.is_some()
                || c.redirect_url.is_some()
                || c.ca_file.is_some()
                || c.sign_out_provider
            {
                return Err(ConfigError(
                    "sso.issuer: required when other sso keys are set".into(),
                ));
            }
            if !c.password_login {
                return Err(ConfigError(
                    "sso.password_login: false needs sso.issuer (else nobody could sign in)".into(),
                ));
            }
            return Ok(None);
        };
        // Plain http only to this machine (a provider run for development or
        // a test): a token fetched over the network in the clear could be
        // read or replaced on the way.
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| {
                issuer
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        if !(issuer.starts_with("https://") || loopback) || issuer.chars().any(char::is_whitespace)
        {
            return Err(ConfigError(format!(
                "sso.issuer: not an https:// address: {issuer:?}"
            )));
        }
        let required = |key: &str, v: &Option<String>| {
            v.clone()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| ConfigError(format!("sso.{key}: required with sso.issuer")))
        };
        let client_id = required("client_id", &c.client_id)?;
        let client_secret = required("client_secret", &c.client_secret)?;
        let redirect_url = required("redirect_url", &c.redirect_url)?;
        if !(redirect_url.starts_with("https://") || redirect_url.starts_with("http://"))
            || !redirect_url.ends_with(vigil_web::sso::CALLBACK_PATH)
        {
            return Err(ConfigError(format!(
                "sso.redirect_url: must be this Vigil's http(s)://…{} as browsers reach it",
                vigil_web::sso::CALLBACK_PATH
            )));
        }
        if !c.scopes.split_whitespace().any(|s| s == "openid") {
            return Err(ConfigError("sso.scopes: must include openid".into()));
        }
        if c.username_claim.trim().is_empty() {
            return Err(ConfigError("sso.username_claim: empty".into()));
        }
        // `none` asks the provider to show nothing, which a person signing
        // in cannot use.
        if let Some(p) = &c.prompt
            && (p.split_whitespace().next().is_none()
                || p.split_whitespace()
                    .any(|v| !["login", "consent", "select_account"].contains(&v)))
        {
            return Err(ConfigError(format!(
                "sso.prompt: {p:?} is not login, consent or select_account"
            )));
        }
        Ok(Some(vigil_web::sso::SsoSettings {
            issuer: issuer.clone(),
            client_id,
            client_secret,
            redirect_url,
            username_claim: c.username_claim.clone(),
            scopes: c.scopes.clone(),
            label: c.label.clone(),
            prompt: c.prompt.clone(),
            sign_out_provider: c.sign_out_provider,
        }))
    }

    /// `ecg.retention` as a duration.
    pub fn ecg_retention(&self) -> Result<std::time::Duration, ConfigError> {
        humantime::parse_duration(&self.ecg.retention).map_err(|e| {
            ConfigError(format!(
                "configuration key \"ecg.retention\": {e} (e.g. \"30d\")"
            ))
        })
    }

    /// Load the pathway files of `pathways.dir`. When it is left at its
    /// default and there is no such folder (the binary runs outside a
    /// checkout), the pathways shipped inside the binary are used.
    pub fn load_pathways(&self) -> Result<vigil_rules::Pathways, ConfigError> {
        let default = PathwaysConfig {
            dir: "pathways".into(),
        };
        let dir = if self.pathways == default && !self.pathways.dir.is_dir() {
            None
        } else {
            Some(self.pathways.dir.as_path())
        };
        vigil_ingest::rules::load_pathways(dir).map_err(ConfigError)
    }

    /// `retention.observations` and `retention.scores`; `None` = keep.
    pub fn history_retention(
        &self,
    ) -> Result<(Option<std::time::Duration>, Option<std::time::Duration>), ConfigError> {
        let parse = |key: &str, v: &str| -> Result<Option<std::time::Duration>, ConfigError> {
            if v == "off" {
                return Ok(None);
            }
            humantime::parse_duration(v).map(Some).map_err(|e| {
                ConfigError(format!(
                    "configuration key \"{key}\": {e} (e.g. \"400d\", or \"off\")"
                ))
            })
        };
        Ok((
            parse("retention.observations", &self.retention.observations)?,
            parse("retention.scores", &self.retention.scores)?,
        ))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.ecg_retention()?;
        self.history_retention()?;
        self.notify_settings()?;
        self.sso_settings()?;
        if !self.mqtt.embedded && self.mqtt.url.is_none() {
            return Err(ConfigError(
                "mqtt.url: required when mqtt.embedded = false".into(),
            ));
        }
        if let Some(url) = &self.mqtt.url {
            parse_mqtt_url(url)?;
        }
        pair(
            "http.tls_cert",
            &self.http.tls_cert,
            "http.tls_key",
            &self.http.tls_key,
        )?;
        pair(
            "mqtt.tls_cert",
            &self.mqtt.tls_cert,
            "mqtt.tls_key",
            &self.mqtt.tls_key,
        )?;
        match (&self.mqtt.tls_listen, &self.mqtt.tls_cert) {
            (Some(_), None) => {
                return Err(ConfigError(
                    "mqtt.tls_cert: required when mqtt.tls_listen is set".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "mqtt.tls_listen: required when mqtt.tls_cert is set".into(),
                ));
            }
            _ => {}
        }
        if self.mqtt.tls_client_ca.is_some() && self.mqtt.tls_listen.is_none() {
            return Err(ConfigError(
                "mqtt.tls_client_ca: needs mqtt.tls_listen (only the TLS listener can ask for certificates)".into(),
            ));
        }
        if self.mqtt.tls_listen.is_some() && !self.mqtt.embedded {
            return Err(ConfigError(
                "mqtt.tls_listen: only the embedded broker listens (mqtt.embedded = false)".into(),
            ));
        }
        for (key, path) in [
            ("http.tls_cert", &self.http.tls_cert),
            ("http.tls_key", &self.http.tls_key),
            ("mqtt.tls_cert", &self.mqtt.tls_cert),
            ("mqtt.tls_key", &self.mqtt.tls_key),
            ("mqtt.tls_client_ca", &self.mqtt.tls_client_ca),
            ("mqtt.ca_file", &self.mqtt.ca_file),
            ("notify.ca_file", &self.notify.ca_file),
            ("sso.ca_file", &self.sso.ca_file),
        ] {
            if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
                return Err(ConfigError(format!("{key}: no such file: {}", p.display())));
            }
        }
        let url = &self.database.url;
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(ConfigError(format!(
                "database.url: unsupported scheme {:?} (use sqlite:// or postgres://)",
                url.split(':').next().unwrap_or_default()
            )));
        }
        if !url.starts_with("sqlite:") {
            vigil_store::pg_url::check(url).map_err(ConfigError)?;
        }
        match self.database.max_connections {
            None => {}
            Some(_) if url.starts_with("sqlite:") => {
                return Err(ConfigError(vigil_store::SQLITE_POOL.into()));
            }
            Some(n) if !(MIN_CONNECTIONS..=MAX_CONNECTIONS).contains(&n) => {
                return Err(ConfigError(format!(
                    "database.max_connections: {n} is out of range ({MIN_CONNECTIONS} to {MAX_CONNECTIONS})"
                )));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// `database.max_connections`'s range. Two: the intake's batch and the
/// worker's pass each hold one for a transaction, and with one they would
/// take turns with every read besides.
const MIN_CONNECTIONS: u32 = 2;
const MAX_CONNECTIONS: u32 = 1000;

/// Both keys of a certificate/key pair, or neither.
fn pair(a: &str, va: &Option<PathBuf>, b: &str, vb: &Option<PathBuf>) -> Result<(), ConfigError> {
    match (va, vb) {
        (Some(_), None) => Err(ConfigError(format!("{b}: required when {a} is set"))),
        (None, Some(_)) => Err(ConfigError(format!("{a}: required when {b} is set"))),
        _ => Ok(()),
    }
}

/// An external broker's address from `mqtt.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttUrl {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: MQTT over TLS.
    pub tls: bool,
}

/// `mqtt://host:port` or `mqtts://host:port`.
pub fn parse_mqtt_url(url: &str) -> Result<MqttUrl, ConfigError> {
    let bad = |why: &str| ConfigError(format!("mqtt.url: {why}: {url}"));
    let (tls, rest) = match (url.strip_prefix("mqtt://"), url.strip_prefix("mqtts://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(bad("expected mqtt://host:port or mqtts://host:port")),
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
    let port = port
        .trim_end_matches('/')
        .parse::<u16>()
        .map_err(|_| bad("bad port"))?;
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    Ok(MqttUrl {
        host: host.to_string(),
        port,
        tls,
    })
}

/// Turn figment's error into one line naming the key.
fn describe(e: figment::Error) -> String {
    use figment::error::Kind;
    let source = e
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(figment::Source::File(f)) => f.display().to_string(),
            _ => m.name.to_string(),
        })
        .unwrap_or_default();
    // figment's path already ends with the offending key.
    let path = e.path.join(".");
    let line = match &e.kind {
        Kind::UnknownField(..) => format!("unknown configuration key {path:?}"),
        Kind::MissingField(..) => format!("missing configuration key {path:?}"),
        Kind::InvalidType(actual, expected) => {
            format!("configuration key {path:?}: found {actual}, expected {expected}")
        }
        Kind::InvalidValue(actual, expected) => {
            format!("configuration key {path:?}: found {actual}, expected {expected}")
        }
        Kind::Message(m) => {
            if path.is_empty() {
                m.clone()
            } else {
                format!("configuration key {path:?}: {m}")
            }
        }
        other => format!("configuration key {path:?}: {other}"),
    };
    if source.is_empty() {
        line
    } else {
        format!("{line} (from {source})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("vigil.toml");
        std::fs::write(&p, text).expect("write config");
        p
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::load(None, Some(&[])).expect("defaults");
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mqtt.listen.to_string(), "127.0.0.1:1883");
        assert!(c.mqtt.embedded);
        assert_eq!(c.database.url, "sqlite://vigil-data/vigil.db");
        assert_eq!(c.pathways.dir, PathBuf::from("pathways"));
    }

    #[test]
    fn the_webhook_is_off_by_default_and_each_bad_key_is_named() {
        let c = Config::load(None, Some(&[])).expect("defaults");
        assert!(c.notify_settings().expect("valid").is_none());
        let dir = tempfile::tempdir().expect("tempdir");
        let good = "webhook_url = \"https://hooks.example/vigil\"\nsecret = \"0123456789abcdef\"\n";
        let f = write(&dir, &format!("[notify]\n{good}"));
        let c = Config::load(Some(&f), Some(&[])).expect("load");
        let n = c.notify_settings().expect("valid").expect("on");
        assert_eq!(n.actions, ["raised", "updated", "escalated"]);
        assert_eq!(n.min_severity, vigil_store::Severity::Medium);
        assert_eq!(n.max_age, std::time::Duration::from_secs(3600));
        assert_eq!(n.takeover_after, std::time::Duration::from_secs(30));
        for (extra, key) in [
            ("takeover_after = \"1s\"\n", "notify.takeover_after"),
            ("takeover_after = \"a while\"\n", "notify.takeover_after"),
            (
                "actions = [\"paged\"]\n",
                "notify.actions: unknown action \"paged\"",
            ),
            ("actions = []\n", "notify.actions: at least one"),
            ("min_severity = \"urgent\"\n", "notify.min_severity"),
            ("max_age = \"soon\"\n", "notify.max_age"),
            ("dashboard_url = \"vigil.local\"\n", "notify.dashboard_url"),
            (
                "ca_file = \"/no/such/ca.pem\"\n",
                "notify.ca_file: no such file",
            ),
        ] {
            let f = write(&dir, &format!("[notify]\n{good}{extra}"));
            let c = Config::load(Some(&f), Some(&[])).expect("load");
            let e = c.validate().expect_err(extra);
            assert!(e.0.starts_with(key), "{extra}: {e}");
            assert_eq!(e.0.lines().count(), 1);
        }
        for (text, key) in [
            (
                "webhook_url = \"ftp://x\"\nsecret = \"0123456789abcdef\"\n",
                "notify.webhook_url",
            ),
            ("webhook_url = \"https://x\"\n", "notify.secret: required"),
            (
                "webhook_url = \"https://x\"\nsecret = \"short\"\n",
                "notify.secret: at least 16",
            ),
            (
                "secret = \"0123456789abcdef\"\n",
                "notify.webhook_url: required",
            ),
        ] {
            let f = write(&dir, &format!("[notify]\n{text}"));
            let c = Config::load(Some(&f), Some(&[])).expect("load");
            let e = c.validate().expect_err(text);
            assert!(e.0.starts_with(key), "{text}: {e}");
        }
    }

    #[test]
    fn single_sign_on_is_off_by_default_and_each_bad_key_is_named() {
        let c = Config::load(None, Some(&[])).expect("defaults");
        assert!(c.sso_settings().expect("valid").is_none());
        assert!(c.sso.password_login);
        let dir = tempfile::tempdir().expect("tempdir");
        let good = "issuer = \"https://login.example.nhs.uk/tenant/v2.0\"\nclient_id = \"vigil\"\n\
                    client_secret = \"s3cret\"\n\
                    redirect_url = \"https://vigil.example.nhs.uk/api/v1/auth/sso/callback\"\n";
        let f = write(&dir, &format!("[sso]\n{good}"));
        let c = Config::load(Some(&f), Some(&[])).expect("load");
        let s = c.sso_settings().expect("valid").expect("on");
        assert_eq!(s.username_claim, "preferred_username");
        assert_eq!(s.scopes, "openid profile");
        // The secret from the environment, as a deployment keeps it.
        let env = [(
            "VIGIL_SSO_CLIENT_SECRET".to_string(),
            "from-env".to_string(),
        )];
        let c = Config::load(Some(&f), Some(&env)).expect("load");
        assert_eq!(
            c.sso_settings().expect("valid").expect("on").client_secret,
            "from-env"
        );
        for (extra, key) in [
            (
                "scopes = \"profile email\"\n",
                "sso.scopes: must include openid",
            ),
            ("username_claim = \" \"\n", "sso.username_claim"),
            (
                "ca_file = \"/no/such/ca.pem\"\n",
                "sso.ca_file: no such file",
            ),
            (
                "tenant = \"x\"\n",
                "unknown configuration key \"sso.tenant\"",
            ),
            ("prompt = \"none\"\n", "sso.prompt: \"none\" is not"),
            ("prompt = \"\"\n", "sso.prompt"),
        ] {
            let f = write(&dir, &format!("[sso]\n{good}{extra}"));
            let e = Config::load(Some(&f), Some(&[]))
                .and_then(|c| c.validate())
                .expect_err(extra);
            assert!(e.0.contains(key), "{extra}: {e}");
            assert_eq!(e.0.lines().count(), 1);
        }
        for (text, key) in [
            (
                "issuer = \"http://idp.example\"\n",
                "sso.issuer: not an https://",
            ),
            (
                "issuer = \"http://127.0.0.1.evil.example\"\n",
                "sso.issuer: not an https://",
            ),
            (
                "issuer = \"https://idp.example\"\n",
                "sso.client_id: required",
            ),
            ("client_id = \"vigil\"\n", "sso.issuer: required"),
            ("sign_out_provider = true\n", "sso.issuer: required"),
            (
                "password_login = false\n",
                "sso.password_login: false needs sso.issuer",
            ),
            (
                "issuer = \"http://127.0.0.1:9000\"\nclient_id = \"v\"\nclient_secret = \"s\"\nredirect_url = \"https://vigil.example/callback\"\n",
                "sso.redirect_url: must be",
            ),
        ] {
            let f = write(&dir, &format!("[sso]\n{text}"));
            let c = Config::load(Some(&f), Some(&[])).expect("load");
            let e = c.validate().expect_err(text);
            assert!(e.0.starts_with(key), "{text}: {e}");
        }
    }

    #[test]
    fn layers_apply_in_order_file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = write(
            &dir,
            "[http]\naddr = \"127.0.0.1:9000\"\n[database]\nurl = \"sqlite://x.db\"\n",
        );
        let env = vec![("VIGIL_HTTP_ADDR".to_string(), "127.0.0.1:9100".to_string())];
        let c = Config::load(Some(&f), Some(&env)).expect("load");
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:9100");
        assert_eq!(c.database.url, "sqlite://x.db");
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = write(&dir, "[mqtt]\nembeded = false\n");
        let e = Config::load(Some(&f), Some(&[])).expect_err("unknown key");
        assert!(e.0.contains("\"mqtt.embeded\""), "{e}");
        assert!(!e.0.contains('\n'));
    }

    #[test]
    fn unknown_key_in_env_is_named() {
        let env = vec![("VIGIL_HTTP_PORT".to_string(), "1".to_string())];
        let e = Config::load(None, Some(&env)).expect_err("unknown key");
        assert!(e.0.contains("\"http.port\""), "{e}");
    }

    #[test]
    fn variables_outside_our_sections_are_not_configuration() {
        let env = vec![
            ("VIGIL_SKIP_POSTGRES".to_string(), "1".to_string()),
            ("VIGIL_BIN".to_string(), "/x".to_string()),
        ];
        Config::load(None, Some(&env)).expect("ignored");
    }

    #[test]
    fn bad_value_is_named() {
        let env = vec![("VIGIL_HTTP_ADDR".to_string(), "not-an-address".to_string())];
        let e = Config::load(None, Some(&env)).expect_err("bad addr");
        assert!(e.0.contains("http.addr"), "{e}");
    }

    #[test]
    fn retention_is_off_by_default_and_a_bad_period_is_named() {
        let c = Config::load(None, Some(&[])).expect("defaults");
        assert_eq!(c.history_retention().expect("valid"), (None, None));
        let env = vec![("VIGIL_RETENTION_SCORES".to_string(), "400d".to_string())];
        let c = Config::load(None, Some(&env)).expect("load");
        assert_eq!(
            c.history_retention().expect("valid").1,
            Some(std::time::Duration::from_secs(400 * 86400))
        );
        let env = vec![(
            "VIGIL_RETENTION_OBSERVATIONS".to_string(),
            "forever".to_string(),
        )];
        let e = Config::load(None, Some(&env))
            .expect("load")
            .validate()
            .expect_err("bad period");
        assert!(e.0.contains("retention.observations"), "{e}");
    }

    #[test]
    fn external_broker_needs_a_url() {
        let mut c = Config::default();
        c.mqtt.embedded = false;
        assert!(c.validate().expect_err("no url").0.contains("mqtt.url"));
        c.mqtt.url = Some("mqtt://broker:1883".into());
        c.validate().expect("valid");
        assert_eq!(
            parse_mqtt_url("mqtt://b:1884").expect("ok"),
            MqttUrl {
                host: "b".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(
            parse_mqtt_url("mqtts://b:8883").expect("ok"),
            MqttUrl {
                host: "b".into(),
                port: 8883,
                tls: true
            }
        );
        assert!(
            parse_mqtt_url("tcp://b:1")
                .expect_err("scheme")
                .0
                .contains("mqtts://")
        );
    }

    #[test]
    fn the_connection_cap_is_for_postgresql_and_within_its_range() {
        let mut c = Config::default();
        c.database.max_connections = Some(4);
        assert_eq!(
            c.validate().expect_err("sqlite").0,
            "database.max_connections: PostgreSQL only (SQLite's pool is fixed: it has one writer)"
        );
        c.database.url = "postgres://vigil@localhost/vigil".into();
        c.validate().expect("valid");
        for n in [0, 1, 1001] {
            c.database.max_connections = Some(n);
            assert_eq!(
                c.validate().expect_err("out of range").0,
                format!("database.max_connections: {n} is out of range (2 to 1000)")
            );
        }
        let env = vec![
            (
                "VIGIL_DATABASE_URL".to_string(),
                "postgres://vigil@localhost/vigil".to_string(),
            ),
            (
                "VIGIL_DATABASE_MAX_CONNECTIONS".to_string(),
                "25".to_string(),
            ),
        ];
        let c = Config::load(None, Some(&env)).expect("load");
        assert_eq!(c.database.max_connections, Some(25));
    }

    #[test]
    fn tls_keys_come_in_pairs_and_name_the_missing_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let pem = dir.path().join("x.pem");
        std::fs::write(&pem, "").expect("write");
        let mut c = Config::default();
        c.http.tls_cert = Some(pem.clone());
        assert_eq!(
            c.validate().expect_err("no key").0,
            "http.tls_key: required when http.tls_cert is set"
        );
        c.http.tls_key = Some(dir.path().join("missing.pem"));
        assert!(
            c.validate()
                .expect_err("missing")
                .0
                .starts_with("http.tls_key: no such file")
        );
        c.http.tls_key = Some(pem.clone());
        c.validate().expect("valid");
        c.mqtt.tls_listen = Some(([127, 0, 0, 1], 0).into());
        assert_eq!(
            c.validate().expect_err("no cert").0,
            "mqtt.tls_cert: required when mqtt.tls_listen is set"
        );
        c.mqtt.tls_cert = Some(pem.clone());
        c.mqtt.tls_key = Some(pem.clone());
        c.validate().expect("valid");
        // Devices' certificates are asked for by the TLS listener only.
        c.mqtt.tls_client_ca = Some(dir.path().join("missing-ca.pem"));
        assert!(
            c.validate()
                .expect_err("missing")
                .0
                .starts_with("mqtt.tls_client_ca: no such file")
        );
        c.mqtt.tls_client_ca = Some(pem);
        c.validate().expect("valid");
        c.mqtt.tls_listen = None;
        c.mqtt.tls_cert = None;
        c.mqtt.tls_key = None;
        assert_eq!(
            c.validate().expect_err("no listener").0,
            "mqtt.tls_client_ca: needs mqtt.tls_listen (only the TLS listener can ask for certificates)"
        );
    }

    #[test]
    fn tls_keys_load_from_toml_and_environment() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = write(&dir, "[http]\ntls_cert = \"/etc/vigil/cert.pem\"\n");
        let env = [(
            "VIGIL_HTTP_TLS_KEY".to_string(),
            "/etc/vigil/key.pem".to_string(),
        )];
        let c = Config::load(Some(&file), Some(&env)).expect("load");
        assert_eq!(
            c.http.tls_cert.as_deref(),
            Some(Path::new("/etc/vigil/cert.pem"))
        );
        assert_eq!(
            c.http.tls_key.as_deref(),
            Some(Path::new("/etc/vigil/key.pem"))
        );
        let bad = write(&dir, "[http]\ntls_crt = \"x\"\n");
        assert!(
            Config::load(Some(&bad), Some(&[]))
                .expect_err("typo")
                .0
                .contains("tls_crt")
        );
    }
}
