//! HTTPS and MQTT over TLS, end to end, with a CA and certificate the test
//! generates (rcgen): the dashboard API over HTTPS, a device over MQTTS to
//! the embedded broker, and the ingest over `mqtts://` to a real Mosquitto.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{DeviceCa, DeviceCreds, TestApp, TestCerts, assert_ack, connect_device_with};

#[tokio::test]
async fn https_and_mqtts_carry_a_reading_from_device_to_api() {
    let certs = TestCerts::generate();
    let app = TestApp::spawn_tls(&certs, |_| {}).await;
    assert!(app.http.starts_with("https://localhost:"), "{}", app.http);

    // HTTPS: readiness, security headers with HSTS, a Secure session cookie.
    let r = app.get("/readyz").send().await.expect("https readyz");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let r = app
        .login_with(&app.http_client, "admin", "admin-password")
        .await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // A device over MQTT/TLS: stored, acked, readable over HTTPS.
    let patient = app.admit("general").await;
    let creds = app.provision("hub", Some(patient)).await;
    let port = app.mqtt_tls_port.expect("mqtts listener");
    let mut dev = connect_device_with(certs.mqtt_options(&creds.device_id, port), &creds)
        .await
        .expect("device connects over TLS");
    dev.publish_obs(1, json!([{"code": "spo2", "value": 95, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let rows: Value = app
        .get(&format!("/api/v1/patients/{patient}/observations"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(rows[0]["value"], 95.0, "{rows}");

    // The TLS listener applies the same authentication as the plain one.
    let wrong = DeviceCreds {
        password: "x".repeat(64),
        ..creds.clone()
    };
    assert!(
        connect_device_with(certs.mqtt_options("intruder", port), &wrong)
            .await
            .is_err(),
        "a wrong password is refused over TLS too"
    );
}

/// The simulator drives a deployment that listens on TLS only: patients
/// admitted and kit provisioned over HTTPS, readings sent over MQTT over
/// TLS, every one stored and acked, trusting the CA given (`--ca-file`);
/// without it, the deployment's certificate is refused.
#[tokio::test]
async fn the_simulator_drives_a_deployment_over_https_and_mqtts() {
    use vigil_devsim::load::{self, LoadConfig};
    let certs = TestCerts::generate();
    let app = TestApp::spawn_tls(&certs, |_| {}).await;
    let mqtts = format!("mqtts://localhost:{}", app.mqtt_tls_port.expect("mqtts"));
    let config = |tls| {
        let (mqtt_host, mqtt_port, tls) = tls;
        LoadConfig {
            http: app.http.clone(),
            token: app.token.clone(),
            mqtt_host,
            mqtt_port,
            ward: app.ward.clone(),
            patients: 2,
            messages: 5,
            rate: 20.0,
            timeout: Duration::from_secs(30),
            resend_after: Duration::from_secs(5),
            seed: 5,
            tls,
        }
    };
    let trusted = vigil_devsim::tls::target(&app.http, &mqtts, Some(&certs.ca)).expect("target");
    assert!(trusted.2.as_ref().is_some_and(|t| t.mqtt));
    let r = load::run(config(trusted), None).await.expect("the run");
    assert_eq!(
        (r.sent, r.acked, r.unacked, r.rejected),
        (10, 10, 0, 0),
        "{r:?}"
    );
    let stats = app.stats().await;
    assert_eq!(stats.obs_messages, 10, "{stats:?}");

    // Another CA's certificate: the run stops at its first request.
    let other = TestCerts::generate();
    let untrusted = vigil_devsim::tls::target(&app.http, &mqtts, Some(&other.ca)).expect("target");
    let e = load::run(config(untrusted), None)
        .await
        .expect_err("an untrusted certificate");
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");
}

#[tokio::test]
async fn plain_text_and_untrusted_clients_get_nothing_from_the_tls_listeners() {
    let certs = TestCerts::generate();
    let app = TestApp::spawn_tls(&certs, |_| {}).await;
    let port = app.http.rsplit(':').next().expect("port").to_string();

    // Plain HTTP on the HTTPS port: no HTTP answer, and the server carries on.
    let plain = reqwest::Client::new();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_err()
    );
    // A client that does not trust the certificate refuses the connection.
    let other = TestCerts::generate();
    let untrusting = reqwest::Client::builder()
        .use_preconfigured_tls(other.client_config())
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{}/readyz", app.http))
            .send()
            .await
            .is_err()
    );
    // A client that opens a socket and never speaks does not block others.
    let _idle = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("tcp");
    assert_eq!(
        app.get("/readyz")
            .send()
            .await
            .expect("still serving")
            .status(),
        200
    );

    // Plain MQTT on the MQTTS port: no CONNACK.
    let patient = app.admit("general").await;
    let creds = app.provision("hub", Some(patient)).await;
    let mqtts = app.mqtt_tls_port.expect("mqtts listener");
    let mut opts = rumqttc::MqttOptions::new("plain", "127.0.0.1", mqtts);
    opts.set_credentials(creds.username.clone(), creds.password.clone());
    let (_c, mut ev) = rumqttc::AsyncClient::new(opts, 8);
    let first = tokio::time::timeout(Duration::from_secs(5), ev.poll()).await;
    assert!(
        !matches!(
            first,
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))))
        ),
        "plain MQTT must not be answered on the TLS port: {first:?}"
    );
}

/// Whether the broker answers `opts` with `creds` by a CONNACK: `Err` says
/// how it refused (in the TLS handshake, or by the CONNACK's code).
async fn connack(mut opts: rumqttc::MqttOptions, creds: &DeviceCreds) -> Result<(), String> {
    opts.set_credentials(creds.username.clone(), creds.password.clone());
    let (_client, mut ev) = rumqttc::AsyncClient::new(opts, 8);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Err(_) => return Err("no answer in 10 s".into()),
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("{e:?}")),
        }
    }
}

/// Mutual TLS (`mqtt.tls_client_ca`): a device needs a certificate from the
/// trust's device CA naming it, as well as its own secret; either alone,
/// or one device's certificate with another's secret, is refused.
#[tokio::test]
async fn with_a_device_ca_a_device_needs_its_own_certificate_and_its_secret() {
    let certs = TestCerts::generate();
    let devices = DeviceCa::generate("Trust device CA");
    let app = TestApp::spawn_tls(&certs, |c| {
        c.mqtt.tls_client_ca = Some(devices.ca.clone());
    })
    .await;
    let patient = app.admit("general").await;
    let a = app.provision("hub", Some(patient)).await;
    let b = app.provision("oximeter", Some(patient)).await;
    let port = app.mqtt_tls_port.expect("mqtts listener");

    // Its own certificate and secret: connected, and its reading stored and acked.
    let mut dev = connect_device_with(
        certs.mqtt_options_as(&a.device_id, port, Some(devices.issue(&a.username))),
        &a,
    )
    .await
    .expect("a device with its certificate and secret connects");
    dev.publish_obs(1, json!([{"code": "spo2", "value": 96, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);

    let rogue = DeviceCa::generate("Not the trust's CA");
    let wrong_secret = DeviceCreds {
        password: "x".repeat(64),
        ..a.clone()
    };
    let refused = [
        (
            "no certificate",
            "CertificateRequired",
            certs.mqtt_options_as(&a.device_id, port, None),
            &a,
        ),
        (
            "a certificate from another CA naming the device",
            "UnknownCA",
            certs.mqtt_options_as(&a.device_id, port, Some(rogue.issue(&a.username))),
            &a,
        ),
        (
            "one device's certificate with another's secret",
            "ConnectionRefused(NotAuthorized)",
            certs.mqtt_options_as(&b.device_id, port, Some(devices.issue(&a.username))),
            &b,
        ),
        (
            "its certificate with a wrong secret",
            "ConnectionRefused(BadUserNamePassword)",
            certs.mqtt_options_as(&a.device_id, port, Some(devices.issue(&a.username))),
            &wrong_secret,
        ),
    ];
    // Each refused where it should be: the handshake for a certificate
    // missing or from elsewhere, the CONNACK for the names or the secret.
    for (what, how, opts, creds) in refused {
        match connack(opts, creds).await {
            Ok(()) => panic!("{what}: must be refused, got a CONNACK"),
            Err(e) => assert!(e.contains(how), "{what}: refused by {how}, got {e}"),
        }
    }

    // The device connected first was never disturbed, and B with its own
    // certificate connects.
    dev.publish_obs(2, json!([{"code": "spo2", "value": 95, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    assert!(
        connack(
            certs.mqtt_options_as(&b.device_id, port, Some(devices.issue(&b.username))),
            &b
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn a_device_ca_file_without_a_certificate_stops_the_start_naming_its_key() {
    let certs = TestCerts::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let mut config = vigil::config::Config::default();
    config.http.addr = "127.0.0.1:0".parse().expect("addr");
    config.mqtt.listen = "127.0.0.1:0".parse().expect("addr");
    config.mqtt.tls_listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.mqtt.tls_cert = Some(certs.cert.clone());
    config.mqtt.tls_key = Some(certs.key.clone());
    config.mqtt.tls_client_ca = Some(empty.clone());
    config.database.url = format!("sqlite://{}", dir.path().join("v.db").display());
    let e = match vigil::app::App::build(config).await {
        Ok(_) => panic!("a CA file without a certificate must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert_eq!(
        e,
        format!(
            "starting the embedded MQTT broker: mqtt.tls_client_ca: {}: no PEM certificate in it",
            empty.display()
        )
    );
}

#[tokio::test]
async fn a_certificate_that_cannot_be_read_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let mut config = vigil::config::Config::default();
    config.http.addr = "127.0.0.1:0".parse().expect("addr");
    config.mqtt.listen = "127.0.0.1:0".parse().expect("addr");
    config.database.url = format!("sqlite://{}", dir.path().join("v.db").display());
    config.http.tls_cert = Some(junk.clone());
    config.http.tls_key = Some(junk.clone());
    let e = format!(
        "{:#}",
        vigil::app::App::build(config)
            .await
            .err()
            .expect("refuses to start")
    );
    assert!(e.contains("http.tls_cert") && e.contains("junk.pem"), "{e}");
}

/// The ingest reaches an external broker over `mqtts://`, trusting the CA
/// in `mqtt.ca_file`: a real Mosquitto with a TLS listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_uses_an_external_broker_over_mqtts() {
    let Some(bin) = crate::reliability::mosquitto_or_skip() else {
        return;
    };
    let certs = TestCerts::generate();
    let dir = tempfile::tempdir().expect("tmp");
    let port = crate::reliability::free_port();
    let conf = format!(
        "certfile {}\nkeyfile {}\nallow_anonymous true\n",
        certs.cert.display(),
        certs.key.display()
    );
    let _mosquitto = crate::reliability::start_mosquitto_with(&bin, dir.path(), port, &conf);

    let app = TestApp::spawn_configured(None, None, None, |c| {
        c.mqtt.embedded = false;
        c.mqtt.url = Some(format!("mqtts://localhost:{port}"));
        c.mqtt.ca_file = Some(certs.ca.clone());
    })
    .await;
    let patient = app.admit("general").await;
    let creds = app.provision("hub", Some(patient)).await;
    let mut dev = connect_device_with(certs.mqtt_options(&creds.device_id, port), &creds)
        .await
        .expect("device connects to mosquitto");
    // The ingest subscribes once it is connected; resend until acked, as a
    // real kit's outbox does.
    let mut acked = None;
    for _ in 0..20 {
        dev.publish_obs(1, json!([{"code": "pulse", "value": 71, "unit": "/min"}]))
            .await;
        if let Some(cmd) = dev.next_cmd_within(Duration::from_millis(500)).await {
            acked = Some(cmd);
            break;
        }
    }
    assert_ack(&acked.expect("acked through mosquitto over TLS"), &[1]);
    assert_eq!(app.stats().await.obs_messages, 1);
}
