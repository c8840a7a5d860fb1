//! [`TestApp`]: a whole Vigil on free ports, with typed helpers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vigil::app::App;
use vigil::config::Config;
use vigil_store::Store;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub http: String,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// The embedded broker's MQTT-over-TLS port, when it has one.
    pub mqtt_tls_port: Option<u16>,
    pub store: Arc<dyn Store>,
    /// The database the daemon uses (SQLite file, or PostgreSQL).
    pub database_url: String,
    /// Bearer token of an admin of ward [`TestApp::ward`].
    pub token: String,
    pub ward: String,
    pub http_client: reqwest::Client,
    app_cancel: tokio_util::sync::CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.app_cancel.cancel();
    }
}

#[derive(Clone, Debug)]
pub struct DeviceCreds {
    pub device_id: String,
    pub username: String,
    pub password: String,
}

impl TestApp {
    /// Start the whole system (fresh SQLite) and wait until it is ready.
    pub async fn spawn() -> TestApp {
        Self::spawn_on(None).await
    }

    /// Start the whole system on `database_url` (a fresh SQLite file when
    /// `None`) and wait until it is ready.
    pub async fn spawn_on(database_url: Option<String>) -> TestApp {
        Self::spawn_with(database_url, None).await
    }

    /// A new daemon on an existing database (as after a restart).
    pub async fn attach(database_url: String, pathways: PathBuf) -> TestApp {
        Self::spawn_with(Some(database_url), Some(pathways)).await
    }

    /// Start on `database_url` with the pathway files of `pathways`
    /// (default: the repository's `pathways/`).
    pub async fn spawn_with(database_url: Option<String>, pathways: Option<PathBuf>) -> TestApp {
        Self::spawn_configured(database_url, pathways, None, |_| {}).await
    }

    /// Start over HTTPS and with the embedded broker's MQTT-over-TLS
    /// listener, both with `certs`; [`TestApp::http`] is then `https://localhost:PORT`
    /// and [`TestApp::mqtt_tls_port`] is set.
    pub async fn spawn_tls(certs: &TestCerts, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_configured(None, None, Some(certs), |c| {
            c.http.tls_cert = Some(certs.cert.clone());
            c.http.tls_key = Some(certs.key.clone());
            c.mqtt.tls_listen = Some("127.0.0.1:0".parse().expect("addr"));
            c.mqtt.tls_cert = Some(certs.cert.clone());
            c.mqtt.tls_key = Some(certs.key.clone());
            tweak(c)
        })
        .await
    }

    /// The general form: `tweak` edits the configuration last; with
    /// `certs`, the HTTP client trusts their CA.
    pub async fn spawn_configured(
        database_url: Option<String>,
        pathways: Option<PathBuf>,
        certs: Option<&TestCerts>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp {
        // VIGIL_TEST_LOG=1 shows the daemon's logs (with RUST_LOG) when debugging a test.
        if std::env::var_os("VIGIL_TEST_LOG").is_some() {
            vigil::init_logging(vigil::config::LogFormat::Text);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let db_path = dir.path().join("vigil.db");
        let mut config = Config::default();
        config.http.addr = "127.0.0.1:0".parse().expect("addr");
        config.mqtt.listen = "127.0.0.1:0".parse().expect("addr");
        // VIGIL_TEST_BACKEND=postgres runs the suite on a fresh PostgreSQL
        // database per test (scripts/test runs it both ways).
        let database_url = match database_url {
            Some(u) => Some(u),
            None if std::env::var("VIGIL_TEST_BACKEND").is_ok_and(|b| b == "postgres") => {
                crate::pg::fresh_database().await
            }
            None => None,
        };
        config.database.url =
            database_url.unwrap_or_else(|| format!("sqlite://{}", db_path.display()));
        let database_url = config.database.url.clone();
        config.pathways.dir = pathways.unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways")
        });
        tweak(&mut config);
        let app = App::build(config).await.expect("app builds");
        // Over TLS by name: the test certificate is for localhost.
        let http = match app.https {
            true => format!("https://localhost:{}", app.http_addr.port()),
            false => format!("http://{}", app.http_addr),
        };
        let mqtt_tls_port = app.mqtt_tls_addr.map(|a| a.port());
        let (mqtt_host, mqtt_port) = {
            let (host, port) = app.mqtt_addr.rsplit_once(':').expect("mqtt host:port");
            (host.to_string(), port.parse::<u16>().expect("mqtt port"))
        };
        let store = app.store.clone();
        let app_cancel = app.cancel.clone();
        tokio::spawn(app.run_until_stopped());

        // Ward and admin user through the same functions `vigil admin` uses.
        let ward = "Ward A".to_string();
        // Reuse them when attaching to an existing database (a restart).
        let w = match store.ward_find(&ward).await.expect("ward lookup") {
            Some(w) => w,
            None => store.ward_add(&ward).await.expect("ward"),
        };
        let uid = match store.user_by_username("admin").await.expect("user lookup") {
            Some(u) => u.id,
            None => vigil_web::admin::add_user(
                store.as_ref(),
                "admin",
                "admin",
                &[w.id.to_string()],
                "admin-password",
            )
            .await
            .expect("user"),
        };
        let token = vigil_web::admin::issue_token(
            store.as_ref(),
            uid,
            vigil_store::TokenKind::Api,
            chrono::Utc::now(),
            None,
        )
        .await
        .expect("token");
        let t = TestApp {
            http,
            mqtt_host,
            mqtt_port,
            store,
            database_url,
            token,
            ward,
            http_client: match certs {
                Some(c) => reqwest::Client::builder()
                    .cookie_store(true)
                    .use_preconfigured_tls(c.client_config()),
                None => reqwest::Client::builder().cookie_store(true),
            }
            // The server closes a connection idle for its header-read
            // timeout (10 s); a pooled one reused just then fails its
            // request (`IncompleteMessage`). docs/http.md, "Connections".
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
            mqtt_tls_port,
            app_cancel,
            _dir: dir,
        };
        t.wait_ready().await;
        t
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = self
                .http_client
                .get(format!("{}/readyz", self.http))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "vigil did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The id of [`TestApp::ward`].
    pub async fn ward_id(&self) -> i64 {
        self.store
            .ward_find(&self.ward)
            .await
            .expect("ward lookup")
            .expect("the test's ward")
            .id
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http_client
            .get(format!("{}{path}", self.http))
            .bearer_auth(&self.token)
    }

    /// `GET path` as the admin, answered with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get_json_as(path, &self.token).await
    }

    /// `GET path` with bearer `token`, answered with JSON.
    pub async fn get_json_as(&self, path: &str, token: &str) -> Value {
        self.get_as(path, token)
            .await
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// `GET path` with bearer `token`, the answer whatever its status.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http_client
            .get(format!("{}{path}", self.http))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Discharge `patient` as the admin: the answer's JSON, after checking
    /// it is a 200.
    pub async fn discharge(&self, patient: i64) -> Value {
        let r = self
            .post(&format!("/api/v1/patients/{patient}/discharge"), json!({}))
            .send()
            .await
            .expect("discharge");
        assert_eq!(r.status(), 200, "discharge of patient {patient}");
        r.json().await.expect("discharge answers JSON")
    }

    /// `PATCH /api/v1/patients/{patient}/episode` with `body`, as the admin.
    pub async fn patch_episode(&self, patient: i64, body: Value) -> reqwest::Response {
        self.http_client
            .patch(format!("{}/api/v1/patients/{patient}/episode", self.http))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("PATCH …/episode")
    }

    pub fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http_client
            .post(format!("{}{path}", self.http))
            .bearer_auth(&self.token)
            .json(&body)
    }

    /// Admit a patient through the API; returns its id.
    pub async fn admit(&self, pathway: &str) -> i64 {
        let r = self
            .post("/api/v1/patients", json!({"ward": self.ward, "name": "Test Patient", "nhs_number": nhs_number(), "pathway": pathway}))
            .send()
            .await
            .expect("admit");
        assert_eq!(
            r.status(),
            201,
            "admit: {}",
            r.text().await.unwrap_or_default()
        );
        r.json::<Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id")
    }

    /// Provision a device through the API, assigned to `patient`.
    pub async fn provision(&self, kind: &str, patient: Option<i64>) -> DeviceCreds {
        let r = self
            .post(
                "/api/v1/devices",
                json!({"kind": kind, "patient_id": patient}),
            )
            .send()
            .await
            .expect("provision");
        assert_eq!(
            r.status(),
            201,
            "provision: {}",
            r.text().await.unwrap_or_default()
        );
        let v: Value = r.json().await.expect("json");
        DeviceCreds {
            device_id: v["device_id"].as_str().expect("id").into(),
            username: v["mqtt_username"].as_str().expect("user").into(),
            password: v["mqtt_password"].as_str().expect("pass").into(),
        }
    }

    /// A patient with one hub, connected and subscribed to its `cmd`.
    pub async fn patient_with_device(&self) -> (i64, TestDevice) {
        let p = self.admit("general").await;
        let creds = self.provision("hub", Some(p)).await;
        (p, self.connect(&creds).await.expect("device connects"))
    }

    /// Connect as a device; `Err` carries the broker's refusal.
    pub async fn connect(&self, creds: &DeviceCreds) -> Result<TestDevice, ConnectReturnCode> {
        connect_device(&self.mqtt_host, self.mqtt_port, creds).await
    }

    /// Sign in as a browser does, on `client` (keep its cookie store).
    pub async fn login_with(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        client
            .post(format!("{}/api/v1/login", self.http))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login")
    }

    /// A websocket client authenticated with `token`.
    pub async fn ws(&self, token: &str) -> WsClient {
        let url = format!("{}/api/v1/stream", self.http.replacen("http", "ws", 1));
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connects");
        // The server greets first; after that the subscription is live.
        let hello = next_text(&mut ws).await.expect("hello");
        assert_eq!(hello["type"], "hello");
        WsClient { ws }
    }

    /// The first audit entry of `action` about `patient` as the trail lists
    /// them; panics if none.
    pub async fn audit_entry(&self, patient: i64, action: &str) -> Value {
        let audit = self
            .get_json(&format!("/api/v1/audit?patient={patient}"))
            .await;
        audit
            .as_array()
            .and_then(|a| a.iter().find(|e| e["action"] == action))
            .cloned()
            .unwrap_or_else(|| panic!("no {action} entry: {audit}"))
    }

    pub async fn stats(&self) -> vigil_store::Stats {
        self.store.stats().await.expect("stats")
    }

    pub async fn metrics(&self) -> String {
        self.http_client
            .get(format!("{}/metrics", self.http))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// A second user, a nurse on another ward, with an API token.
    pub async fn outsider_token(&self) -> String {
        self.token_on_another_ward("outsider", "nurse").await
    }

    /// An API token of a new user `username` with `role`, on a new ward
    /// ("Ward B"; once per test).
    pub async fn token_on_another_ward(&self, username: &str, role: &str) -> String {
        let w = self.store.ward_add("Ward B").await.expect("ward");
        let uid = vigil_web::admin::add_user(
            self.store.as_ref(),
            username,
            role,
            &[w.id.to_string()],
            &format!("{username}-pw"),
        )
        .await
        .expect("user");
        vigil_web::admin::issue_token(
            self.store.as_ref(),
            uid,
            vigil_store::TokenKind::Api,
            chrono::Utc::now(),
            None,
        )
        .await
        .expect("token")
    }

    /// A raw connection to the same database file, to break things on purpose.
    pub async fn raw_db(&self) -> RawDb {
        RawDb::connect(&self.database_url).await
    }
}

/// Connect as a device to the broker at `host:port` and subscribe to the
/// device's `cmd`; `Err` carries the broker's refusal.
pub async fn connect_device(
    host: &str,
    port: u16,
    creds: &DeviceCreds,
) -> Result<TestDevice, ConnectReturnCode> {
    connect_device_with(
        MqttOptions::new(creds.device_id.clone(), host.to_string(), port),
        creds,
    )
    .await
}

/// Connect as a device with `opts` (host, port, transport such as TLS);
/// `Err` carries the broker's refusal.
pub async fn connect_device_with(
    mut opts: MqttOptions,
    creds: &DeviceCreds,
) -> Result<TestDevice, ConnectReturnCode> {
    opts.set_credentials(creds.username.clone(), creds.password.clone());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    wait_for_connack(&mut eventloop).await?;
    let cmd = format!("vigil/v1/dev/{}/cmd", creds.device_id);
    client
        .subscribe(&cmd, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    wait_for_suback(&mut eventloop).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let (dtx, drx) = mpsc::unbounded_channel();
    let qos = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let qos_seen = qos.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice::<Value>(&p.payload) {
                        if let Ok(mut q) = qos_seen.lock() {
                            q.push((v["type"].as_str().unwrap_or_default().to_string(), p.qos));
                        }
                        let _ = tx.send(v);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = dtx.send(format!("{e:?}"));
                    break;
                }
            }
        }
    });
    Ok(TestDevice {
        id: creds.device_id.clone(),
        client,
        cmds: rx,
        feedback: Default::default(),
        configs: Default::default(),
        disconnects: drx,
        qos,
    })
}

/// Poll until the broker's CONNACK; `Err` carries its refusal.
pub async fn wait_for_connack(eventloop: &mut EventLoop) -> Result<(), ConnectReturnCode> {
    loop {
        match tokio::time::timeout(WAIT, eventloop.poll())
            .await
            .expect("broker answers")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => return Err(code),
            Err(e) => panic!("unexpected connection error: {e:?}"),
        }
    }
}

/// Poll until the broker's SUBACK.
pub async fn wait_for_suback(eventloop: &mut EventLoop) {
    loop {
        match tokio::time::timeout(WAIT, eventloop.poll())
            .await
            .expect("broker answers")
        {
            Ok(Event::Incoming(Packet::SubAck(_))) => return,
            Ok(_) => {}
            Err(e) => panic!("connection failed while subscribing: {e:?}"),
        }
    }
}

/// A second connection to the daemon's database, to break things on purpose.
pub enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawDb {
    /// A raw connection to the database at `url` (SQLite or PostgreSQL),
    /// with or without a daemon on it.
    pub async fn connect(url: &str) -> RawDb {
        if url.starts_with("sqlite:") {
            RawDb::Sqlite(sqlx::SqlitePool::connect(url).await.expect("raw db"))
        } else {
            RawDb::Postgres(sqlx::PgPool::connect(url).await.expect("raw db"))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, RawDb::Postgres(_))
    }

    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            RawDb::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            RawDb::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        }
    }
    /// From now on every insert into `table` fails (only the rows for which
    /// `when` holds, if given: an SQL condition on `NEW` that both backends
    /// read alike), under the running daemon.
    pub async fn refuse_inserts(&self, table: &str, when: Option<&str>) {
        let sql = if self.is_postgres() {
            let cond = when.unwrap_or("true");
            format!(
                "CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN IF {cond} THEN RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}();"
            )
        } else {
            let when = when.map(|c| format!("WHEN {c} ")).unwrap_or_default();
            format!(
                "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} {when}BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )
        };
        self.execute(&sql).await.expect("trigger");
    }
}

pub struct TestDevice {
    pub id: String,
    client: AsyncClient,
    cmds: mpsc::UnboundedReceiver<Value>,
    feedback: std::collections::VecDeque<Value>,
    /// `config` messages set aside for [`TestDevice::next_config`].
    configs: std::collections::VecDeque<Value>,
    disconnects: mpsc::UnboundedReceiver<String>,
    /// The type and QoS of every `cmd` message received, in order.
    qos: std::sync::Arc<std::sync::Mutex<Vec<(String, QoS)>>>,
}

impl TestDevice {
    pub async fn publish_raw(&self, kind: &str, payload: impl Into<Vec<u8>>) {
        self.publish_to(&format!("vigil/v1/dev/{}/{kind}", self.id), payload)
            .await;
    }

    pub async fn publish_to(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish queued");
    }

    /// The QoS of every `cmd` message of `kind` received so far.
    pub fn qos_of(&self, kind: &str) -> Vec<QoS> {
        self.qos
            .lock()
            .map(|q| {
                q.iter()
                    .filter(|(k, _)| k == kind)
                    .map(|(_, q)| *q)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Publish an observation message measured now.
    pub async fn publish_obs(&self, seq: u32, obs: Value) {
        self.publish_obs_at(seq, chrono::Utc::now(), obs).await;
    }

    /// Publish an observation message measured at `at`.
    pub async fn publish_obs_at(&self, seq: u32, at: chrono::DateTime<chrono::Utc>, obs: Value) {
        let ts = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.publish_raw("obs", json!({"seq": seq, "ts": ts, "obs": obs}).to_string())
            .await;
    }

    /// The next `ack` or `reject` on `cmd`, or `None` if none arrives within
    /// `within`. Patient feedback (`advice`, `repeat`) is set aside for
    /// [`TestDevice::next_feedback`], the kit's schedule for
    /// [`TestDevice::next_config`].
    pub async fn next_cmd_within(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = tokio::time::timeout_at(deadline, self.cmds.recv())
                .await
                .ok()
                .flatten()?;
            match v["type"].as_str() {
                Some("advice" | "repeat") => self.feedback.push_back(v),
                Some("config") => self.configs.push_back(v),
                _ => return Some(v),
            }
        }
    }

    /// The next patient-feedback message (`advice`, `repeat`) on `cmd`.
    pub async fn next_feedback(&mut self) -> Value {
        self.next_set_aside(false, WAIT)
            .await
            .expect("a feedback message arrives")
    }

    /// The next `config` (the kit's measurement schedule) on `cmd`.
    pub async fn next_config(&mut self) -> Value {
        self.next_config_within(WAIT)
            .await
            .expect("a config message arrives")
    }

    /// The next `config` on `cmd`, or `None` if none comes within `within`.
    pub async fn next_config_within(&mut self, within: Duration) -> Option<Value> {
        self.next_set_aside(true, within).await
    }

    /// The next `config` (`schedule`) or patient feedback, whichever is
    /// asked for, within `within`; the other is set aside for its own call,
    /// and acks and rejects are passed over.
    async fn next_set_aside(&mut self, schedule: bool, within: Duration) -> Option<Value> {
        let held = match schedule {
            true => self.configs.pop_front(),
            false => self.feedback.pop_front(),
        };
        if held.is_some() {
            return held;
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = tokio::time::timeout_at(deadline, self.cmds.recv())
                .await
                .ok()
                .flatten()?;
            match (v["type"].as_str(), schedule) {
                (Some("config"), true) | (Some("advice" | "repeat"), false) => return Some(v),
                (Some("config"), false) => self.configs.push_back(v),
                (Some("advice" | "repeat"), true) => self.feedback.push_back(v),
                _ => {}
            }
        }
    }

    pub async fn next_cmd(&mut self) -> Value {
        self.next_cmd_within(WAIT)
            .await
            .expect("a cmd message arrives")
    }

    /// Wait until the broker drops this connection.
    pub async fn disconnected(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, self.disconnects.recv())
            .await
            .ok()
            .flatten()
    }
}

pub struct WsClient {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Ping(p)) => {
                let _ = ws.send(Message::Pong(p)).await;
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

impl WsClient {
    /// The next event of `kind`, or `None` within `within`.
    pub async fn next_event_within(&mut self, kind: &str, within: Duration) -> Option<Value> {
        self.next_where(within, |v| v["type"] == kind).await
    }

    /// The next event of any kind, or `None` if none arrives within `within`.
    pub async fn next_event_within_any(&mut self, within: Duration) -> Option<Value> {
        self.next_where(within, |_| true).await
    }

    /// The next event `wanted` says yes to within `within`, skipping others.
    async fn next_where(
        &mut self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        tokio::time::timeout(within, async {
            loop {
                let v = next_text(&mut self.ws).await?;
                if wanted(&v) {
                    return Some(v);
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// The next event of any of `kinds`, skipping others.
    pub async fn next_event_of(&mut self, kinds: &[&str]) -> Value {
        self.next_where(WAIT, |v| kinds.iter().any(|k| v["type"] == *k))
            .await
            .unwrap_or_else(|| panic!("a websocket event of {kinds:?} arrives"))
    }

    /// The next `alert`/`alert_update` event for `rule`, skipping other rules'.
    pub async fn next_alert_event(&mut self, kind: &str, rule: &str) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let v = self.next_event(kind).await;
                if v["alert"]["rule_id"] == rule {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("a websocket {kind} event for rule {rule} arrives"))
    }

    pub async fn next_event(&mut self, kind: &str) -> Value {
        self.next_event_within(kind, WAIT)
            .await
            .unwrap_or_else(|| panic!("a websocket {kind} event arrives"))
    }
}

/// A valid NHS number in the test range, new at each call: one person is
/// admitted once at a time (hazard TS-22), so each admission of a test is
/// someone else. Above the demo's numbers.
pub fn nhs_number() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(50_000);
    vigil_store::nhs::test_range(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Assert `cmd` is an ack naming exactly `seqs`.
pub fn assert_ack(cmd: &Value, seqs: &[u32]) {
    assert_eq!(cmd["type"], "ack", "{cmd}");
    let got: Vec<u64> = cmd["seqs"]
        .as_array()
        .expect("seqs")
        .iter()
        .filter_map(|s| s.as_u64())
        .collect();
    assert_eq!(
        got,
        seqs.iter().map(|&s| s as u64).collect::<Vec<_>>(),
        "{cmd}"
    );
}

/// A throwaway CA and a server certificate it signed for `localhost` and
/// 127.0.0.1, as PEM files in a temp dir (rcgen; nothing is checked in).
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn generate() -> TestCerts {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Vigil test CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).expect("write pem");
            p
        };
        TestCerts {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            ca_der: ca.der().clone(),
            _dir: dir,
        }
    }

    /// A TLS client configuration trusting only the test CA.
    pub fn client_config(&self) -> rustls::ClientConfig {
        self.client_builder().with_no_client_auth()
    }

    fn client_builder(
        &self,
    ) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("ca root");
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
    }

    /// MQTT options for a device connecting over TLS to `localhost:port`.
    pub fn mqtt_options(&self, client_id: &str, port: u16) -> MqttOptions {
        self.mqtt_options_as(client_id, port, None)
    }

    /// As `mqtt_options`, presenting `identity` (a client certificate and
    /// its key) when given.
    pub fn mqtt_options_as(
        &self,
        client_id: &str,
        port: u16,
        identity: Option<ClientIdentity>,
    ) -> MqttOptions {
        let config = match identity {
            None => self.client_config(),
            Some((cert, key)) => self
                .client_builder()
                .with_client_auth_cert(vec![cert], key)
                .expect("client certificate"),
        };
        let mut opts = MqttOptions::new(client_id, "localhost", port);
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
        ));
        opts
    }
}

/// A client certificate and its private key.
pub type ClientIdentity = (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// A CA that signs devices' client certificates, as a trust's device PKI
/// would (mutual TLS): `ca` is its PEM certificate.
pub struct DeviceCa {
    pub ca: PathBuf,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    _dir: tempfile::TempDir,
}

impl DeviceCa {
    pub fn generate(name: &str) -> DeviceCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca");
        let ca = dir.path().join("device-ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write pem");
        DeviceCa {
            ca,
            cert,
            key,
            _dir: dir,
        }
    }

    /// A client certificate whose Common Name is `cn`, for TLS client auth.
    pub fn issue(&self, cn: &str) -> ClientIdentity {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("client cert");
        (
            cert.der().clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }
}

/// Every vital sign but the respiratory rate, all scoring 0: what a home
/// kit sends (no home device counts breaths).
pub fn kit_set() -> Value {
    let mut set = vitals(18, 96, 72);
    if let Some(all) = set.as_array_mut() {
        all.retain(|o| o["code"] != "resp_rate");
    }
    set
}

/// The points NEWS2 `score` gave `parameter` (e.g. `"spo2"`), if scored.
pub fn subscore(score: &Value, parameter: &str) -> Option<i64> {
    score["subscores"]
        .as_array()?
        .iter()
        .find(|s| s["parameter"] == parameter)?["score"]
        .as_i64()
}

/// A complete NEWS2 set scoring `rr`, `spo2`, `pulse` with everything else
/// normal (on air, systolic 125, alert, 36.9 °C).
pub fn vitals(rr: i64, spo2: i64, pulse: i64) -> Value {
    json!([
        {"code": "resp_rate", "value": rr, "unit": "/min"},
        {"code": "spo2", "value": spo2, "unit": "%"},
        {"code": "o2_flow", "value": 0, "unit": "L/min"},
        {"code": "systolic", "value": 125, "unit": "mm[Hg]"},
        {"code": "pulse", "value": pulse, "unit": "/min"},
        {"code": "acvpu", "value": "A"},
        {"code": "temp", "value": 36.9, "unit": "Cel"}
    ])
}

/// A test pathway named `name` whose devices count as offline after
/// `offline_after` without a word (and the shipped escalation times).
pub fn offline_after_pathway(name: &str, offline_after: &str) -> String {
    format!(
        r#"
name = "{name}"
title = "Test pathway: devices offline after {offline_after}"
freshness = "6h"

[escalation]
high = "5m"
medium = "15m"
low-medium = "30m"
low = "4h"

[device]
battery_low_pct = 15
offline_after = "{offline_after}"
severity = "low"
"#
    )
}

/// The patient's alerts, whatever their status (`GET /api/v1/alerts?patient=`).
pub async fn open_alerts(app: &TestApp, patient: i64) -> Vec<Value> {
    let v = app
        .get_json(&format!("/api/v1/alerts?patient={patient}"))
        .await;
    v.as_array().expect("alerts").clone()
}

/// The rule ids of the patient's unresolved alerts once every one of
/// `want` is among them; fails after [`WAIT`].
pub async fn wait_for_alerts(app: &TestApp, patient: i64, want: &[String]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rules: Vec<String> = open_alerts(app, patient)
            .await
            .iter()
            .filter_map(|a| a["rule_id"].as_str().map(String::from))
            .collect();
        if want.iter().all(|w| rules.contains(w)) {
            return rules;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "want alerts {want:?}, have {rules:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the worker has taken up every reading of `patient` stored
/// so far (scored it), so that no score arrives while a test reads.
pub async fn through_the_worker(app: &TestApp, patient: i64) {
    let newest = app
        .store
        .observations(vigil_store::ObservationQuery {
            patient_id: patient,
            ..Default::default()
        })
        .await
        .expect("rows")
        .iter()
        .map(|r| r.id)
        .max()
        .expect("stored");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.store.worker_progress().await.expect("progress") < newest {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker takes up every reading"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Publish `n` messages, the `i`th measured at `at(i)` with readings
/// `obs(i)`, and wait for every one to be acked.
pub async fn publish_many(
    dev: &mut TestDevice,
    n: u32,
    at: impl Fn(i64) -> chrono::DateTime<chrono::Utc>,
    obs: impl Fn(i64) -> Value,
) {
    for seq in 1..=n {
        let i = i64::from(seq) - 1;
        dev.publish_obs_at(seq, at(i), obs(i)).await;
    }
    acked(dev, n).await;
}

/// Publish `seq` messages and wait for every one to be acked.
pub async fn acked(dev: &mut TestDevice, seq: u32) {
    let mut acked = 0;
    while acked < seq as usize {
        let cmd = dev.next_cmd().await;
        assert_eq!(cmd["type"], "ack", "{cmd}");
        acked += cmd["seqs"].as_array().map_or(0, Vec::len);
    }
}
