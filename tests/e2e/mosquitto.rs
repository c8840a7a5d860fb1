//! An external Mosquitto enforcing device identity with the files that
//! `vigil admin mqtt export` writes (docs/security.md, "An external broker").
//!
//! The test starts a real Mosquitto with the exported password and ACL
//! files and a real `vigil serve` against it (the [`Daemon`] of
//! reliability.rs), and provisions, revokes and re-exports with the real
//! `vigil admin` commands. It needs the `mosquitto` binary (Debian package
//! `mosquitto`) and fails without it, unless `VIGIL_SKIP_MOSQUITTO=1`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{
    DeviceCreds, WAIT, assert_ack, connect_device, wait_for_connack, wait_for_suback,
};
use crate::reliability::{Child, Daemon, free_port, mosquitto_or_skip, start_mosquitto_with};

const INGEST_USER: &str = "vigil-ingest";
const INGEST_PASSWORD: &str = "a-long-ingest-password";

/// Provision a hub for `patient` with `vigil admin`.
fn provision(d: &Daemon, patient: &str) -> DeviceCreds {
    let v = d.admin(
        &["device", "provision", "--kind", "hub", "--patient", patient],
        None,
    );
    DeviceCreds {
        device_id: v["device_id"].as_str().expect("id").into(),
        username: v["mqtt_username"].as_str().expect("user").into(),
        password: v["mqtt_password"].as_str().expect("password").into(),
    }
}

fn export(d: &Daemon, dir: &Path) -> Value {
    d.admin(
        &["mqtt", "export", "--dir", &dir.display().to_string()],
        None,
    )
}

/// Connect with `credentials` (none: an anonymous CONNECT) and say how the
/// broker answered: `Ok` with the connection's event loop, or its refusal.
async fn connect_as(
    port: u16,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> Result<(AsyncClient, rumqttc::EventLoop), ConnectReturnCode> {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    if let Some((user, password)) = credentials {
        opts.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    wait_for_connack(&mut eventloop).await?;
    Ok((client, eventloop))
}

/// A client with the ingest's credentials subscribed to every device's
/// `obs`; yields the topic of each message it receives.
async fn ingest_listener(port: u16) -> mpsc::UnboundedReceiver<String> {
    let (client, mut eventloop) = connect_as(
        port,
        "ingest-listener",
        Some((INGEST_USER, INGEST_PASSWORD)),
    )
    .await
    .expect("ingest account connects");
    client
        .subscribe("vigil/v1/dev/+/obs", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    wait_for_suback(&mut eventloop).await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client; // dropping the client would end the connection
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = tx.send(p.topic);
            }
        }
    });
    rx
}

fn obs(seq: u32) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"seq": seq, "ts": ts, "obs": [{"code": "spo2", "value": 96, "unit": "%"}]}).to_string()
}

/// `vigil admin mqtt export` whatever its outcome.
fn run_export(d: &Daemon, dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("admin")
        .arg("--config")
        .arg(d.config())
        .args(["mqtt", "export", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("vigil runs")
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path)
        .expect("exported file")
        .permissions()
        .mode()
        & 0o777
}

/// SIGHUP: Mosquitto reloads its configuration, password and ACL files.
fn reload(broker: &Child) {
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(broker.0.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "SIGHUP to mosquitto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mosquitto_with_exported_files_enforces_device_identity_and_revocation() {
    let Some(bin) = mosquitto_or_skip() else {
        return;
    };
    let port = free_port();
    let mut d = Daemon::with_account(Some(port), Some((INGEST_USER, INGEST_PASSWORD)));
    d.admin(&["ward", "add", "--name", "Ward M"], None);
    let patient = d.admin(
        &[
            "patient",
            "admit",
            "--ward",
            "Ward M",
            "--name",
            "P",
            "--nhs-number",
            "9434765919",
            "--pathway",
            "general",
        ],
        None,
    )["id"]
        .to_string();
    let a = provision(&d, &patient);
    let b = provision(&d, &patient);

    let files = tempfile::tempdir().expect("tempdir");
    let out = export(&d, files.path());
    assert_eq!(out["devices"], 2, "{out}");
    assert_eq!(out["skipped"], json!([]), "{out}");
    let (pw, acl) = (
        out["password_file"].as_str().expect("path"),
        out["acl_file"].as_str().expect("path"),
    );
    assert_eq!(
        (mode(pw), mode(acl)),
        (0o600, 0o600),
        "credentials are private"
    );

    // As root Mosquitto would drop to the `mosquitto` user before reading
    // the files, which are private to us; `user root` keeps it as we are
    // (and is ignored when the test does not run as root).
    let conf = format!("allow_anonymous false\npassword_file {pw}\nacl_file {acl}\nuser root\n");
    let broker = start_mosquitto_with(&bin, files.path(), port, &conf);
    // Ready only once the ingest has connected with its exported account and
    // its subscriptions were granted by the ACL.
    d.start().await;

    assert_eq!(
        connect_as(port, "anon", None).await.err(),
        Some(ConnectReturnCode::NotAuthorized),
        "no credentials"
    );
    let wrong = connect_as(port, "wrong", Some((&a.username, "not-the-password")))
        .await
        .err();
    assert_eq!(
        wrong,
        Some(ConnectReturnCode::NotAuthorized),
        "wrong password"
    );

    // A device's own reading is stored and acked end to end.
    let mut dev_a = connect_device("127.0.0.1", port, &a)
        .await
        .expect("device a connects");
    dev_a.publish_raw("obs", obs(1)).await;
    assert_ack(&dev_a.next_cmd().await, &[1]);

    // Under another device's topic it is dropped by the broker: the ingest's
    // account never sees it. Mosquitto keeps one client's messages in order,
    // so once the marker after it has arrived, it is not coming.
    let mut seen = ingest_listener(port).await;
    dev_a
        .publish_to(&format!("vigil/v1/dev/{}/obs", b.device_id), obs(2))
        .await;
    dev_a.publish_raw("obs", obs(3)).await;
    assert_ack(&dev_a.next_cmd().await, &[3]);
    let own = format!("vigil/v1/dev/{}/obs", a.device_id);
    let first = tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("the marker arrives")
        .expect("listener runs");
    assert_eq!(
        first, own,
        "the publish under device b's topic must not be delivered"
    );
    let stats = d.stats();
    assert_eq!(
        (stats["obs_messages"].as_u64(), stats["rejected"].as_u64()),
        (Some(2), Some(0)),
        "{stats}"
    );

    // Revoke a, re-export, reload: Mosquitto drops a's live session and
    // refuses its next CONNECT; b, the ingest and its listener carry on.
    d.admin(&["device", "revoke", "--device", &a.device_id], None);
    let out = export(&d, files.path());
    assert_eq!(out["devices"], 1, "{out}");
    reload(&broker);
    assert!(
        dev_a.disconnected().await.is_some(),
        "the revoked device's live session is dropped at the reload"
    );
    let refused = connect_as(port, "revoked", Some((&a.username, &a.password)))
        .await
        .err();
    assert_eq!(
        refused,
        Some(ConnectReturnCode::NotAuthorized),
        "the revoked device's next CONNECT"
    );
    let mut dev_b = connect_device("127.0.0.1", port, &b)
        .await
        .expect("device b still connects");
    dev_b.publish_raw("obs", obs(1)).await;
    assert_ack(&dev_b.next_cmd().await, &[1]);
    let next = tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("b's reading arrives")
        .expect("listener runs");
    assert_eq!(next, format!("vigil/v1/dev/{}/obs", b.device_id));
    drop(broker);
}

#[tokio::test]
async fn mqtt_export_needs_the_ingest_account_and_skips_devices_without_a_mosquitto_hash() {
    // No mqtt.username in the configuration: a one-line usage error naming it.
    let d = Daemon::new(None);
    let files = tempfile::tempdir().expect("tempdir");
    let out = run_export(&d, files.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("mqtt.username"), "{stderr}");

    // A device provisioned before migration 0006 has no Mosquitto hash.
    let d = Daemon::with_account(Some(free_port()), Some((INGEST_USER, INGEST_PASSWORD)));
    d.admin(&["ward", "add", "--name", "Ward M"], None);
    let old = d.admin(&["device", "provision", "--kind", "oximeter"], None)["device_id"]
        .as_str()
        .expect("id")
        .to_string();
    let new = d.admin(&["device", "provision", "--kind", "hub"], None)["device_id"]
        .as_str()
        .expect("id")
        .to_string();
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", d.dir().join("vigil.db").display()))
        .await
        .expect("db");
    sqlx::query("UPDATE devices SET mosquitto_hash = NULL WHERE id = ?")
        .bind(&old)
        .execute(&db)
        .await
        .expect("update");
    db.close().await;

    let out = run_export(&d, files.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (v["devices"].clone(), v["skipped"].clone()),
        (json!(1), json!([old])),
        "{v}"
    );
    assert!(
        stderr.contains(&old) && stderr.contains("re-provision"),
        "the warning names the device: {stderr}"
    );
    let pw =
        std::fs::read_to_string(v["password_file"].as_str().expect("path")).expect("password file");
    let users: Vec<&str> = pw.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(users, [INGEST_USER, new.as_str()]);
    assert!(
        pw.lines()
            .all(|l| l.split(':').nth(1).is_some_and(|h| h.starts_with("$7$"))),
        "{pw}"
    );
    assert!(
        !pw.contains(INGEST_PASSWORD),
        "the ingest password is stored hashed"
    );
}
