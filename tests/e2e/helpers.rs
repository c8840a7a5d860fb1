//! [`TestApp`]: a whole Vigil on free ports, with typed helpers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};
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
            None if std::env::var("VIGIL_TEST_BACKEND").is_ok_and(|b| b == "postgres") => crate::pg::fresh_database().await,
            None => None,
        };
        config.database.url = database_url.unwrap_or_else(|| format!("sqlite://{}", db_path.display()));
        let database_url = config.database.url.clone();
        config.pathways.dir = pathways.unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways"));
        let app = App::build(config).await.expect("app builds");
        let http = format!("http://{}", app.http_addr);
        let (mqtt_host, mqtt_port) = {
            let a: std::net::SocketAddr = app.mqtt_addr.parse().expect("mqtt addr");
            (a.ip().to_string(), a.port())
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
            None => vigil_web::admin::add_user(store.as_ref(), "admin", "admin", &[w.id.to_string()], "admin-password")
                .await
                .expect("user"),
        };
        let token = vigil_web::admin::issue_token(store.as_ref(), uid, vigil_store::TokenKind::Api, chrono::Utc::now(), None)
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
            http_client: reqwest::Client::builder().cookie_store(true).build().expect("client"),
            app_cancel,
            _dir: dir,
        };
        t.wait_ready().await;
        t
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = self.http_client.get(format!("{}/readyz", self.http)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "vigil did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http_client.get(format!("{}{path}", self.http)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http_client.post(format!("{}{path}", self.http)).bearer_auth(&self.token).json(&body)
    }

    /// Admit a patient through the API; returns its id.
    pub async fn admit(&self, pathway: &str) -> i64 {
        let r = self
            .post("/api/v1/patients", json!({"ward": self.ward, "name": "Test Patient", "nhs_number": "9434765919", "pathway": pathway}))
            .send()
            .await
            .expect("admit");
        assert_eq!(r.status(), 201, "admit: {}", r.text().await.unwrap_or_default());
        r.json::<Value>().await.expect("json")["id"].as_i64().expect("id")
    }

    /// Provision a device through the API, assigned to `patient`.
    pub async fn provision(&self, kind: &str, patient: Option<i64>) -> DeviceCreds {
        let r = self.post("/api/v1/devices", json!({"kind": kind, "patient_id": patient})).send().await.expect("provision");
        assert_eq!(r.status(), 201, "provision: {}", r.text().await.unwrap_or_default());
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

    /// A websocket client authenticated with `token`.
    pub async fn ws(&self, token: &str) -> WsClient {
        let url = format!("{}/api/v1/stream", self.http.replacen("http", "ws", 1));
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws connects");
        // The server greets first; after that the subscription is live.
        let hello = next_text(&mut ws).await.expect("hello");
        assert_eq!(hello["type"], "hello");
        WsClient { ws }
    }

    pub async fn stats(&self) -> vigil_store::Stats {
        self.store.stats().await.expect("stats")
    }

    pub async fn metrics(&self) -> String {
        self.http_client.get(format!("{}/metrics", self.http)).send().await.expect("metrics").text().await.expect("text")
    }

    /// A second user, on another ward, with an API token.
    pub async fn outsider_token(&self) -> String {
        let w = self.store.ward_add("Ward B").await.expect("ward");
        let uid = vigil_web::admin::add_user(self.store.as_ref(), "outsider", "nurse", &[w.id.to_string()], "outsider-pw")
            .await
            .expect("user");
        vigil_web::admin::issue_token(self.store.as_ref(), uid, vigil_store::TokenKind::Api, chrono::Utc::now(), None)
            .await
            .expect("token")
    }

    /// A raw connection to the same database file, to break things on purpose.
    pub async fn raw_db(&self) -> RawDb {
        if self.database_url.starts_with("sqlite:") {
            RawDb::Sqlite(sqlx::SqlitePool::connect(&self.database_url).await.expect("raw db"))
        } else {
            RawDb::Postgres(sqlx::PgPool::connect(&self.database_url).await.expect("raw db"))
        }
    }
}


/// Connect as a device to the broker at `host:port` and subscribe to the
/// device's `cmd`; `Err` carries the broker's refusal.
pub async fn connect_device(host: &str, port: u16, creds: &DeviceCreds) -> Result<TestDevice, ConnectReturnCode> {
    let mut opts = MqttOptions::new(creds.device_id.clone(), host.to_string(), port);
    opts.set_credentials(creds.username.clone(), creds.password.clone());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    wait_for_connack(&mut eventloop).await?;
    let cmd = format!("vigil/v1/dev/{}/cmd", creds.device_id);
    client.subscribe(&cmd, QoS::AtLeastOnce).await.expect("subscribe");
    wait_for_suback(&mut eventloop).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let (dtx, drx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice::<Value>(&p.payload) {
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
    Ok(TestDevice { id: creds.device_id.clone(), client, cmds: rx, feedback: Default::default(), disconnects: drx })
}

/// Poll until the broker's CONNACK; `Err` carries its refusal.
pub async fn wait_for_connack(eventloop: &mut EventLoop) -> Result<(), ConnectReturnCode> {
    loop {
        match tokio::time::timeout(WAIT, eventloop.poll()).await.expect("broker answers") {
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
        match tokio::time::timeout(WAIT, eventloop.poll()).await.expect("broker answers") {
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
    pub fn is_postgres(&self) -> bool {
        matches!(self, RawDb::Postgres(_))
    }

    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            RawDb::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            RawDb::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        }
    }
}

pub struct TestDevice {
    pub id: String,
    client: AsyncClient,
    cmds: mpsc::UnboundedReceiver<Value>,
    feedback: std::collections::VecDeque<Value>,
    disconnects: mpsc::UnboundedReceiver<String>,
}

impl TestDevice {
    pub async fn publish_raw(&self, kind: &str, payload: impl Into<Vec<u8>>) {
        self.publish_to(&format!("vigil/v1/dev/{}/{kind}", self.id), payload).await;
    }

    pub async fn publish_to(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.into()).await.expect("publish queued");
    }

    /// Publish an observation message measured now.
    pub async fn publish_obs(&self, seq: u32, obs: Value) {
        self.publish_obs_at(seq, chrono::Utc::now(), obs).await;
    }

    /// Publish an observation message measured at `at`.
    pub async fn publish_obs_at(&self, seq: u32, at: chrono::DateTime<chrono::Utc>, obs: Value) {
        let ts = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.publish_raw("obs", json!({"seq": seq, "ts": ts, "obs": obs}).to_string()).await;
    }

    /// The next `ack` or `reject` on `cmd`, or `None` if none arrives within
    /// `within`. Patient feedback (`advice`, `repeat`) is set aside for
    /// [`TestDevice::next_feedback`].
    pub async fn next_cmd_within(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = tokio::time::timeout_at(deadline, self.cmds.recv()).await.ok().flatten()?;
            if matches!(v["type"].as_str(), Some("advice" | "repeat" | "config")) {
                self.feedback.push_back(v);
            } else {
                return Some(v);
            }
        }
    }

    /// The next patient-feedback message (`advice`, `repeat`) on `cmd`.
    pub async fn next_feedback(&mut self) -> Value {
        if let Some(v) = self.feedback.pop_front() {
            return v;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = tokio::time::timeout_at(deadline, self.cmds.recv())
                .await
                .ok()
                .flatten()
                .expect("a feedback message arrives");
            if matches!(v["type"].as_str(), Some("advice" | "repeat" | "config")) {
                return v;
            }
        }
    }

    pub async fn next_cmd(&mut self) -> Value {
        self.next_cmd_within(WAIT).await.expect("a cmd message arrives")
    }

    /// Wait until the broker drops this connection.
    pub async fn disconnected(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, self.disconnects.recv()).await.ok().flatten()
    }
}

pub struct WsClient {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
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
        tokio::time::timeout(within, async {
            loop {
                let v = next_text(&mut self.ws).await?;
                if v["type"] == kind {
                    return Some(v);
                }
            }
        })
        .await
        .ok()
        .flatten()
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
        self.next_event_within(kind, WAIT).await.unwrap_or_else(|| panic!("a websocket {kind} event arrives"))
    }
}

/// Assert `cmd` is an ack naming exactly `seqs`.
pub fn assert_ack(cmd: &Value, seqs: &[u32]) {
    assert_eq!(cmd["type"], "ack", "{cmd}");
    let got: Vec<u64> = cmd["seqs"].as_array().expect("seqs").iter().filter_map(|s| s.as_u64()).collect();
    assert_eq!(got, seqs.iter().map(|&s| s as u64).collect::<Vec<_>>(), "{cmd}");
}
