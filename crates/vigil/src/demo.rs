//! `vigil demo`: a whole virtual ward on one laptop, no setup.
//!
//! It starts the real daemon (embedded broker, SQLite under `--data-dir`,
//! web), creates a demo ward and login, admits the patients and gives each a
//! home hub (and every third patient an ECG patch) with fresh credentials,
//! then runs the ward simulation of `vigil-devsim` in-process: simulated
//! patients with physiology and scenarios, whose kits publish over real MQTT
//! exactly as real kits do (sequence numbers, the `vigil-kit` outbox,
//! resend until the end-to-end `ack`).
//!
//! The scenario clock runs [`SPEED`] times faster than real time so that
//! deteriorations play out within minutes, while every reading is stamped
//! with the real wall-clock time at which it is sent (never in the future).
//! See docs/devsim.md.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use vigil_devsim::ecg::{Recording, default_mitdb_dir};
use vigil_devsim::http::DeviceCreds;
use vigil_devsim::scenario::demo_spec;
use vigil_devsim::ward::{self, Clock, SimPatient, Stamp, WardConfig};
use vigil_store::Store;
use vigil_store::secrets::random_secret;
use vigil_web::admin::{self, AdmitRequest};

use crate::app::App;
use crate::cli::DemoArgs;
use crate::config::Config;

const WARD: &str = "Demo ward";
/// Simulated seconds per real second: a 10-hour sepsis course takes under
/// 7 minutes, an asthma attack 4.
pub const SPEED: f64 = 90.0;
/// Spot checks per simulated day in the demo: hourly (6.7 real minutes
/// would be too slow a ward to watch with the 2–4 of a real ward).
const DEMO_SPOT_PER_DAY: u32 = 24;
/// Every third patient has an ECG patch.
const PATCH_EVERY: usize = 3;

#[derive(Serialize, Deserialize)]
struct DemoLogin {
    username: String,
    password: String,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut config = Config::default();
    config.http.addr = args.http;
    config.mqtt.listen = args.mqtt;
    config.database.url = format!("sqlite://{}", args.data_dir.join("vigil.db").display());
    // Single sign-on from `VIGIL_SSO_*`, to try the demo against a trust's
    // provider (docs/security.md); the demo's other settings are its own.
    config.sso = Config::load(None, None)
        .map_err(|e| anyhow::anyhow!(e.0))?
        .sso;
    let app = App::build(config).await?;
    let login = ensure_login(app.store.as_ref(), &args.data_dir).await?;
    let patients = setup_ward(app.store.as_ref(), args.patients).await?;
    let (host, port) = split_addr(&app.mqtt_addr)?;
    let mitdb = default_mitdb_dir();
    let recordings = tokio::task::spawn_blocking(move || Recording::load_dir(&mitdb, 6))
        .await
        .unwrap_or_default();
    let ecg_note = if recordings.is_empty() {
        "synthetic".to_string()
    } else {
        format!(
            "MIT-BIH records {}",
            recordings
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let ward_cfg = WardConfig {
        host,
        port,
        patients,
        clock: Clock {
            start_ms: Utc::now().timestamp_millis(),
            speed: SPEED,
            stamp: Stamp::WallClock,
        },
        ecg: true,
        recordings,
        tick: Duration::from_millis(250),
        outbox: vigil_devsim::vigil_kit::outbox::Config::default(),
        tls: None,
    };
    let _ward = ward::start(ward_cfg, app.cancel.clone());
    println!("Vigil demo is running.");
    println!("  Dashboard: http://{}/", app.http_addr);
    println!(
        "  Sign in:   username {}  password {}",
        login.username, login.password
    );
    println!("  MQTT:      {}", app.mqtt_addr);
    println!("  Data:      {}", args.data_dir.display());
    println!("  Simulation: scenarios at {SPEED}x (ECG: {ecg_note}); readings carry real time");
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
    let host = if sa.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        sa.ip().to_string()
    };
    Ok((host, sa.port()))
}

/// The demo login, created on first run and kept in the data folder.
async fn ensure_login(store: &dyn Store, dir: &Path) -> anyhow::Result<DemoLogin> {
    let file = dir.join("demo-login.json");
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(login) = serde_json::from_str::<DemoLogin>(&text)
        && store.user_by_username(&login.username).await?.is_some()
    {
        return Ok(login);
    }
    let ward = match store.ward_find(WARD).await? {
        Some(w) => w,
        None => store.ward_add(WARD).await?,
    };
    let mut username = "demo".to_string();
    if store.user_by_username(&username).await?.is_some() {
        username = format!("demo-{}", &random_secret()[..6]);
    }
    let login = DemoLogin {
        username,
        password: random_secret()[..16].to_string(),
    };
    admin::add_user(
        store,
        &login.username,
        "admin",
        &[ward.id.to_string()],
        &login.password,
    )
    .await?;
    std::fs::write(&file, serde_json::to_string_pretty(&login)?)?;
    Ok(login)
}

/// Admit patients up to `n` and give each a freshly provisioned hub (and
/// every third an ECG patch), with its scenario.
async fn setup_ward(store: &dyn Store, n: u32) -> anyhow::Result<Vec<SimPatient>> {
    let ward = store
        .ward_find(WARD)
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo ward missing"))?;
    let mut existing = store.patients_list(&[ward.id]).await?;
    let now = Utc::now();
    // A number is taken while its patient is admitted (hazard TS-22): after
    // a discharge on a kept data folder, the next number may be a listed
    // patient's, so a taken one moves on to the next.
    let mut number = existing.len() as u32 + 1;
    while existing.len() < n as usize {
        let i = existing.len();
        let req = AdmitRequest {
            ward: ward.id.to_string(),
            name: format!("Demo patient {:02}", i + 1),
            nhs_number: demo_nhs_number(number),
            pathway: demo_spec(i, DEMO_SPOT_PER_DAY, 0).pathway,
            spo2_scale: None,
        };
        number += 1;
        let admitted = match admin::admit(store, req, "vigil-demo", now).await {
            Err(admin::AdminError::Conflict(_)) => continue,
            done => done?,
        };
        if let Some((plan, note)) = demo_plan(i) {
            let plan = vigil_store::EpisodeUpdate {
                escalation_plan: Some(plan.into()),
                escalation_note: Some(note.into()),
                ..Default::default()
            };
            store
                .episode_update(admitted.id, plan, "vigil-demo", now)
                .await?;
        }
        existing = store.patients_list(&[ward.id]).await?;
    }
    let mut patients = Vec::new();
    for (i, p) in existing.iter().take(n as usize).enumerate() {
        // Old demo devices' secrets are not kept (only hashes are), so each
        // run revokes them and provisions new ones.
        if let Some(detail) = store.patient_get(p.id).await? {
            for d in detail.devices.iter().filter(|d| d.revoked_at.is_none()) {
                store.device_revoke(&d.id, now).await?;
            }
        }
        let creds = |d: admin::ProvisionedDevice| DeviceCreds {
            device_id: d.device_id,
            username: d.mqtt_username,
            password: d.mqtt_password,
        };
        let hub = creds(admin::provision(store, "hub", Some(p.id), now).await?);
        let patch = if i % PATCH_EVERY == 0 {
            Some(creds(
                admin::provision(store, "ecg-patch", Some(p.id), now).await?,
            ))
        } else {
            None
        };
        let spec = demo_spec(i, DEMO_SPOT_PER_DAY, p.id as u64);
        patients.push(SimPatient { spec, hub, patch });
    }
    Ok(patients)
}

/// The escalation plan the demo records at admission for its patient `i`:
/// most for hospital, some for treatment at home, and every fourth none,
/// as on a real ward where one is still to be agreed (the dashboard says
/// so).
fn demo_plan(i: usize) -> Option<(&'static str, &'static str)> {
    match i % 4 {
        0 | 2 => Some(("hospital", "Agreed at admission (demo)")),
        1 => Some((
            "home",
            "ReSPECT form in the patient's home (demo): oral antibiotics and fluids at home",
        )),
        _ => None,
    }
}

/// A valid NHS number in the 999 range, which is never issued to real
/// people (NHS England reserves it for testing).
pub fn demo_nhs_number(i: u32) -> String {
    vigil_store::nhs::test_range(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a folder of its own (kept while the folder is), with the
    /// demo's ward.
    async fn demo_store() -> (tempfile::TempDir, std::sync::Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = vigil_store::connect(&format!(
            "sqlite://{}",
            dir.path().join("demo.db").display()
        ))
        .await
        .expect("store");
        store.ward_add(WARD).await.expect("ward");
        (dir, store)
    }

    /// A kept data folder whose demo ward had a patient discharged: the
    /// next start admits a new patient up to the count, under a number no
    /// listed patient holds (hazard TS-22 refuses a number in use).
    #[tokio::test]
    async fn a_restart_after_a_discharge_fills_the_ward_under_free_numbers() {
        let (_dir, store) = demo_store().await;
        let first = setup_ward(store.as_ref(), 3).await.expect("first start");
        assert_eq!(first.len(), 3);
        let ward = store.ward_find(WARD).await.expect("ward").expect("ward");
        let listed = store.patients_list(&[ward.id]).await.expect("list");
        store
            .patient_discharge(listed[0].id, "admin", Utc::now())
            .await
            .expect("discharge");
        let again = setup_ward(store.as_ref(), 3).await.expect("second start");
        assert_eq!(again.len(), 3);
        let mut numbers = std::collections::BTreeSet::new();
        for p in store.patients_list(&[ward.id]).await.expect("list") {
            let d = store
                .patient_get(p.id)
                .await
                .expect("get")
                .expect("patient");
            numbers.insert(d.nhs_number);
        }
        assert_eq!(numbers.len(), 3, "{numbers:?}");
    }

    /// The demo's ward shows plans agreed (for hospital, for treatment at
    /// home) and, every fourth patient, none yet.
    #[tokio::test]
    async fn the_demo_ward_has_escalation_plans_and_one_still_to_agree() {
        let (_dir, store) = demo_store().await;
        setup_ward(store.as_ref(), 4).await.expect("start");
        let ward = store.ward_find(WARD).await.expect("ward").expect("ward");
        let mut plans = Vec::new();
        for p in store.patients_list(&[ward.id]).await.expect("list") {
            let s = store
                .episode_settings(p.id)
                .await
                .expect("settings")
                .expect("open episode");
            assert_eq!(
                s.escalation_set_by.as_deref(),
                s.escalation_plan.as_ref().map(|_| "vigil-demo"),
                "{s:?}"
            );
            plans.push(s.escalation_plan);
        }
        assert_eq!(
            plans,
            [Some("hospital"), Some("home"), Some("hospital"), None].map(|p| p.map(String::from))
        );
    }

    #[test]
    fn demo_nhs_numbers_are_valid_and_in_the_test_range() {
        for i in 1..200 {
            let n = demo_nhs_number(i);
            assert!(n.starts_with("999"), "{n}");
            assert!(vigil_web::admin::nhs_number_valid(&n), "{n}");
        }
    }
}
