//! `vigil demo`: a whole virtual ward on one laptop, no setup.
//!
//! It starts the real daemon (embedded broker, SQLite under `--data-dir`,
//! web), creates a demo ward and login, admits the patients and gives each a
//! home hub with fresh credentials, then runs a small simulation that
//! publishes readings over real MQTT exactly as a kit would: sequence
//! numbers, resend until the end-to-end `ack` arrives. Some patients
//! deteriorate over the first minutes so the ward is worth watching.
//!
//! The full simulator with physiology and scenarios (firmware/devsim)
//! replaces [`sim`] when it lands.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_store::secrets::random_secret;
use vigil_store::Store;
use vigil_web::admin::{self, AdmitRequest};

use crate::app::App;
use crate::cli::DemoArgs;
use crate::config::Config;

const WARD: &str = "Demo ward";
const PATHWAYS: [&str; 4] = ["general", "copd", "heart-failure", "asthma"];

#[derive(Serialize, Deserialize)]
struct DemoLogin {
    username: String,
    password: String,
}

/// One simulated home hub.
#[derive(Clone, Debug)]
pub struct SimDevice {
    pub device_id: String,
    pub password: String,
    /// Whether this patient deteriorates during the demo.
    pub deteriorating: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut config = Config::default();
    config.http.addr = args.http;
    config.mqtt.listen = args.mqtt;
    config.database.url = format!("sqlite://{}", args.data_dir.join("vigil.db").display());
    let app = App::build(config).await?;
    let login = ensure_login(app.store.as_ref(), &args.data_dir).await?;
    let devices = setup_ward(app.store.as_ref(), args.patients).await?;
    let (host, port) = split_addr(&app.mqtt_addr)?;
    let cancel = app.cancel.clone();
    for d in devices {
        tokio::spawn(sim::device(host.clone(), port, d, cancel.clone()));
    }
    println!("Vigil demo is running.");
    println!("  Dashboard: http://{}/", app.http_addr);
    println!("  Sign in:   username {}  password {}", login.username, login.password);
    println!("  MQTT:      {}", app.mqtt_addr);
    println!("  Data:      {}", args.data_dir.display());
    println!("Press Ctrl-C to stop.");
    let stop = app.cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    app.run_until_stopped().await
}

fn split_addr(addr: &str) -> anyhow::Result<(String, u16)> {
    let sa: std::net::SocketAddr = addr.parse()?;
    let host = if sa.ip().is_unspecified() { "127.0.0.1".to_string() } else { sa.ip().to_string() };
    Ok((host, sa.port()))
}

/// The demo login, created on first run and kept in the data folder.
async fn ensure_login(store: &dyn Store, dir: &Path) -> anyhow::Result<DemoLogin> {
    let file = dir.join("demo-login.json");
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(login) = serde_json::from_str::<DemoLogin>(&text) {
            if store.user_by_username(&login.username).await?.is_some() {
                return Ok(login);
            }
        }
    }
    let ward = match store.ward_find(WARD).await? {
        Some(w) => w,
        None => store.ward_add(WARD).await?,
    };
    let mut username = "demo".to_string();
    if store.user_by_username(&username).await?.is_some() {
        username = format!("demo-{}", &random_secret()[..6]);
    }
    let login = DemoLogin { username, password: random_secret()[..16].to_string() };
    admin::add_user(store, &login.username, "admin", &[ward.id.to_string()], &login.password).await?;
    std::fs::write(&file, serde_json::to_string_pretty(&login)?)?;
    Ok(login)
}

/// Admit patients up to `n` and give each a freshly provisioned hub.
async fn setup_ward(store: &dyn Store, n: u32) -> anyhow::Result<Vec<SimDevice>> {
    let ward = store.ward_find(WARD).await?.ok_or_else(|| anyhow::anyhow!("demo ward missing"))?;
    let mut existing = store.patients_list(&[ward.id]).await?;
    let now = Utc::now();
    while existing.len() < n as usize {
        let i = existing.len() + 1;
        let req = AdmitRequest {
            ward: ward.id.to_string(),
            name: format!("Demo patient {i:02}"),
            nhs_number: demo_nhs_number(i as u32),
            pathway: PATHWAYS[i % PATHWAYS.len()].to_string(),
            spo2_scale: None,
        };
        admin::admit(store, req, "vigil-demo", now).await?;
        existing = store.patients_list(&[ward.id]).await?;
    }
    let mut devices = Vec::new();
    for (i, p) in existing.iter().take(n as usize).enumerate() {
        // Old demo hubs' secrets are not kept (only hashes are), so each run
        // revokes them and provisions new ones.
        if let Some(detail) = store.patient_get(p.id).await? {
            for d in detail.devices.iter().filter(|d| d.revoked_at.is_none()) {
                store.device_revoke(&d.id, now).await?;
            }
        }
        let d = admin::provision(store, "hub", Some(p.id), now).await?;
        devices.push(SimDevice { device_id: d.device_id, password: d.mqtt_password, deteriorating: i % 4 == 1 });
    }
    Ok(devices)
}

/// A valid NHS number in the 999 range, which is never issued to real
/// people (NHS Digital reserves it for testing).
pub fn demo_nhs_number(i: u32) -> String {
    (0..10)
        .map(|k| format!("999{:06}", i * 10 + k))
        .find_map(|nine| {
            let sum: u32 = nine.chars().zip((2..=10).rev()).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
            match 11 - sum % 11 {
                10 => None,
                11 => Some(format!("{nine}0")),
                c => Some(format!("{nine}{c}")),
            }
        })
        .unwrap_or_else(|| "9990000018".into())
}

pub mod sim {
    //! The demo's minimal kit: publish readings, keep each until acked,
    //! resend on reconnect and after a timeout.

    use super::*;

    /// Resend a message not acked within this long.
    const RESEND_AFTER: Duration = Duration::from_secs(10);

    struct Vitals {
        spo2: f64,
        pulse: f64,
        resp: f64,
        sys: f64,
        dia: f64,
        temp: f64,
    }

    pub async fn device(host: String, port: u16, dev: SimDevice, cancel: CancellationToken) {
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut opts = MqttOptions::new(dev.device_id.clone(), host, port);
        opts.set_credentials(dev.device_id.clone(), dev.password.clone());
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let cmd = vigil_ingest::acl::cmd_topic(&dev.device_id);
        let obs_topic = format!("{}{}/obs", vigil_ingest::acl::PREFIX, dev.device_id);
        let mut v = Vitals {
            spo2: rng.gen_range(95.0..99.0),
            pulse: rng.gen_range(62.0..85.0),
            resp: rng.gen_range(13.0..18.0),
            sys: rng.gen_range(115.0..140.0),
            dia: rng.gen_range(70.0..88.0),
            temp: rng.gen_range(36.4..37.2),
        };
        let mut seq: u32 = 0;
        let mut unacked: BTreeMap<u32, (String, tokio::time::Instant)> = BTreeMap::new();
        let start = tokio::time::Instant::now();
        let mut next = tokio::time::Instant::now() + Duration::from_millis(rng.gen_range(200..3000));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {
                    seq += 1;
                    let minutes = start.elapsed().as_secs_f64() / 60.0;
                    step(&mut v, &mut rng, dev.deteriorating, minutes);
                    let payload = reading(seq, &v);
                    let _ = client.publish(&obs_topic, QoS::AtLeastOnce, false, payload.clone()).await;
                    unacked.insert(seq, (payload, tokio::time::Instant::now()));
                    for (s, (p, at)) in unacked.iter_mut() {
                        if at.elapsed() > RESEND_AFTER && *s != seq {
                            let _ = client.publish(&obs_topic, QoS::AtLeastOnce, false, p.clone()).await;
                            *at = tokio::time::Instant::now();
                        }
                    }
                    next = tokio::time::Instant::now() + Duration::from_millis(rng.gen_range(3000..8000));
                }
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(&cmd, QoS::AtLeastOnce).await;
                        for (p, _) in unacked.values() {
                            let _ = client.publish(&obs_topic, QoS::AtLeastOnce, false, p.clone()).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&p.payload) {
                            if let Some(seqs) = msg.get("seqs").and_then(|s| s.as_array()) {
                                for s in seqs.iter().filter_map(|s| s.as_u64()) {
                                    unacked.remove(&(s as u32));
                                }
                            }
                            if let Some(s) = msg.get("seq").and_then(|s| s.as_u64()) {
                                unacked.remove(&(s as u32));
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = cancel.cancelled() => break,
                    },
                },
            }
        }
    }

    fn step(v: &mut Vitals, rng: &mut rand::rngs::StdRng, deteriorating: bool, minutes: f64) {
        let n = |rng: &mut rand::rngs::StdRng, s: f64| rng.gen_range(-s..s);
        // Mean-reverting noise around the baseline; deteriorating patients'
        // baselines drift over the first ten minutes.
        let d = if deteriorating { (minutes / 10.0).min(1.0) } else { 0.0 };
        v.spo2 = (v.spo2 + n(rng, 0.6) + ((97.0 - 8.0 * d) - v.spo2) * 0.2).clamp(70.0, 100.0);
        v.pulse = (v.pulse + n(rng, 2.0) + ((75.0 + 40.0 * d) - v.pulse) * 0.2).clamp(35.0, 180.0);
        v.resp = (v.resp + n(rng, 0.6) + ((15.0 + 10.0 * d) - v.resp) * 0.2).clamp(6.0, 45.0);
        v.sys = (v.sys + n(rng, 3.0) + ((128.0 - 30.0 * d) - v.sys) * 0.2).clamp(60.0, 220.0);
        v.dia = (v.dia + n(rng, 2.0) + ((80.0 - 15.0 * d) - v.dia) * 0.2).clamp(35.0, 130.0);
        v.temp = (v.temp + n(rng, 0.05) + ((36.8 + 1.8 * d) - v.temp) * 0.2).clamp(34.0, 42.0);
    }

    fn reading(seq: u32, v: &Vitals) -> String {
        let mut obs = vec![
            serde_json::json!({"code": "spo2", "value": v.spo2.round(), "unit": "%"}),
            serde_json::json!({"code": "pulse", "value": v.pulse.round(), "unit": "/min"}),
        ];
        if seq % 2 == 0 {
            obs.push(serde_json::json!({"code": "resp_rate", "value": v.resp.round(), "unit": "/min"}));
            obs.push(serde_json::json!({"code": "temp", "value": (v.temp * 10.0).round() / 10.0, "unit": "Cel"}));
        }
        if seq % 3 == 1 {
            obs.push(serde_json::json!({"code": "systolic", "value": v.sys.round(), "unit": "mm[Hg]"}));
            obs.push(serde_json::json!({"code": "diastolic", "value": v.dia.round(), "unit": "mm[Hg]"}));
        }
        serde_json::json!({"seq": seq, "ts": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "obs": obs})
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_nhs_numbers_are_valid_and_in_the_test_range() {
        for i in 1..200 {
            let n = demo_nhs_number(i);
            assert!(n.starts_with("999"), "{n}");
            assert!(vigil_web::admin::nhs_number_valid(&n), "{n}");
        }
    }
}
