//! HTTPS and MQTT over TLS, end to end, with a CA and certificate the test
//! generates (rcgen): the dashboard API over HTTPS, a device over MQTTS to
//! the embedded broker, and the ingest over `mqtts://` to a real Mosquitto.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{DeviceCreds, TestApp, TestCerts, assert_ack, connect_device_with};

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
