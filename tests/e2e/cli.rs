//! The `vigil` binary itself: exit codes, one-line errors, admin commands
//! against a database a running daemon is using.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::helpers::{DeviceCreds, TestApp, assert_ack};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// Run the `vigil` binary and wait for it. Inside a test whose daemon runs
/// in this process (`TestApp`), the wait must not stop the daemon's tasks:
/// one stopped between `BEGIN IMMEDIATE` and `COMMIT` holds SQLite's write
/// lock, and the command then fails with "database is locked" after its
/// 10 s busy timeout. So such tests run on a multi-thread runtime and the
/// wait hands this thread's work to another (`block_in_place`).
fn vigil(args: &[&str], stdin: Option<&str>) -> Output {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| run_vigil(args, stdin))
        }
        Ok(_) => panic!("a test running `vigil` beside a daemon needs a multi_thread runtime"),
        Err(_) => run_vigil(args, stdin),
    }
}

fn run_vigil(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(VIGIL)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("vigil exits")
}

/// `vigil admin --config CFG ARGS…`, with `stdin` on its standard input.
fn admin_with(cfg: &str) -> impl Fn(&[&str], Option<&str>) -> Output + '_ {
    move |args, stdin| {
        let mut all = vec!["admin", "--config", cfg];
        all.extend_from_slice(args);
        vigil(&all, stdin)
    }
}

fn json_out(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

/// `vigil admin --config cfg ARGS…`, which must succeed: its JSON.
fn admin(cfg: &str, args: &[&str]) -> Value {
    let mut all = vec!["admin", "--config", cfg];
    all.extend_from_slice(args);
    json_out(&vigil(&all, None))
}

fn config_for(app: &TestApp, dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("vigil.toml");
    std::fs::write(
        &path,
        format!("[database]\nurl = \"{}\"\n", app.database_url),
    )
    .expect("config");
    path.display().to_string()
}

#[test]
fn unknown_config_key_exits_2_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(
        &cfg,
        "[http]\naddr = \"127.0.0.1:0\"\n[mqtt]\nembeded = false\n",
    )
    .expect("write");
    let o = vigil(&["serve", "--config", &cfg.display().to_string()], None);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("\"mqtt.embeded\""), "{err}");
}

#[test]
fn unknown_flag_exits_2_with_one_line() {
    let o = vigil(&["serve", "--confgi", "x"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--confgi"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_work_against_a_running_daemon() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let run = admin_with(&cfg);

    let ward = json_out(&run(&["ward", "add", "--name", "Ward C"], None));
    assert!(ward["id"].is_i64());
    let user = json_out(&run(
        &[
            "user",
            "add",
            "--username",
            "nurse1",
            "--role",
            "nurse",
            "--ward",
            "Ward C",
        ],
        Some("a-long-password\n"),
    ));
    assert!(user["id"].is_i64());
    // A user of single sign-on only: no password is asked for, and none
    // signs them in.
    let add_sso_only = |username: &str| {
        run(
            &[
                "user",
                "add",
                "--username",
                username,
                "--role",
                "nurse",
                "--ward",
                "Ward C",
                "--sso-only",
            ],
            None,
        )
    };
    let sso_user = json_out(&add_sso_only("nurse2@nhs.example"));
    assert!(sso_user["id"].is_i64(), "{sso_user}");
    // The same name in other letters' case: single sign-on would take
    // neither, so the second is refused, naming the first.
    let twin = add_sso_only("Nurse2@NHS.example");
    assert_eq!(twin.status.code(), Some(2));
    let err = String::from_utf8_lossy(&twin.stderr);
    assert!(err.contains("\"nurse2@nhs.example\" is taken"), "{err}");
    for guess in ["", "\n", "a-long-password"] {
        let r = app
            .login_with(&app.http_client, "nurse2@nhs.example", guess)
            .await;
        assert_eq!(r.status(), 401, "{guess:?}");
    }
    let token = json_out(&run(&["token", "create", "--username", "nurse1"], None));
    assert_eq!(token["token"].as_str().map(str::len), Some(64));
    let expires: chrono::DateTime<chrono::Utc> = token["expires_at"]
        .as_str()
        .expect("API tokens expire by default")
        .parse()
        .expect("time");
    let days = (expires - chrono::Utc::now()).num_days();
    assert!(
        (89..=90).contains(&days),
        "default lifetime 90 days: {token}"
    );
    let bad = run(
        &[
            "token",
            "create",
            "--username",
            "nurse1",
            "--expires-in",
            "soon",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--expires-in"));
    let me = |t: &str| {
        app.http_client
            .get(format!("{}/api/v1/me", app.http))
            .bearer_auth(t.to_string())
            .send()
    };
    let short = json_out(&run(
        &[
            "token",
            "create",
            "--username",
            "nurse1",
            "--expires-in",
            "1s",
        ],
        None,
    ));
    let short = short["token"].as_str().expect("token").to_string();
    assert_eq!(me(&short).await.expect("me").status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        me(&short).await.expect("me").status(),
        401,
        "an expired token is refused"
    );

    // `patient admit` on Ward C, pathway copd, with `extra` arguments.
    let admit = |nhs: &str, extra: &[&str]| {
        let mut args = vec![
            "patient",
            "admit",
            "--ward",
            "Ward C",
            "--name",
            "P",
            "--nhs-number",
            nhs,
            "--pathway",
            "copd",
        ];
        args.extend_from_slice(extra);
        run(&args, None)
    };
    let bad = admit("9434765918", &[]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an invalid NHS number is a usage error"
    );

    let p = json_out(&admit("9434765919", &["--spo2-scale", "2"]));
    let pid = p["id"].as_i64().expect("id");
    // The same person again while admitted: refused, one line naming why.
    let twice = admit("943 476 5919", &[]);
    let err = String::from_utf8_lossy(&twice.stderr);
    assert_eq!(
        (twice.status.code(), err.trim().lines().count()),
        (Some(2), 1),
        "{err}"
    );
    assert!(
        err.contains("nhs_number") && err.contains(&format!("patient {pid}")),
        "{err}"
    );
    let d = json_out(&run(
        &[
            "device",
            "provision",
            "--kind",
            "oximeter",
            "--patient",
            &pid.to_string(),
        ],
        None,
    ));
    let creds = DeviceCreds {
        device_id: d["device_id"].as_str().expect("id").into(),
        username: d["mqtt_username"].as_str().expect("user").into(),
        password: d["mqtt_password"].as_str().expect("password").into(),
    };

    // Provisioned by another process a moment ago: the daemon accepts it now.
    let mut dev = app
        .connect(&creds)
        .await
        .expect("a freshly provisioned device connects");
    for seq in 1..=3 {
        dev.publish_obs(
            seq,
            json!([{"code": "spo2", "value": 90 + seq, "unit": "%"}]),
        )
        .await;
        assert_ack(&dev.next_cmd().await, &[seq]);
    }
    dev.publish_obs(3, json!([{"code": "spo2", "value": 99, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[3]);

    let stats = json_out(&run(&["stats"], None));
    assert_eq!(
        stats["obs_messages"], 3,
        "stats counts stored messages exactly: {stats}"
    );
    assert_eq!(stats["observations"], 3);
    assert_eq!(stats["patients"], 1);

    let revoked = json_out(&run(
        &["device", "revoke", "--device", &creds.device_id],
        None,
    ));
    assert_eq!(revoked["device_id"], creds.device_id.as_str());
    assert!(
        app.connect(&creds).await.is_err(),
        "revoked by the CLI: refused at the next connect"
    );

    let out = json_out(&run(
        &["patient", "discharge", "--patient", &pid.to_string()],
        None,
    ));
    assert!(out["discharged_at"].is_string());
    assert_eq!(out["resolved_alerts"], json!([]), "no alerts to resolve");
    let t = token["token"].as_str().expect("token").to_string();
    assert_eq!(me(&t).await.expect("me").status(), 200);
    assert_eq!(
        json_out(&run(&["token", "revoke", "--token", &t], None)),
        json!({"revoked": true})
    );
    assert_eq!(
        me(&t).await.expect("me").status(),
        401,
        "a revoked token is refused"
    );
}

#[test]
fn migrate_creates_a_fresh_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vigil.toml");
    let db = dir.path().join("sub/vigil.db");
    std::fs::write(
        &cfg,
        format!("[database]\nurl = \"sqlite://{}\"\n", db.display()),
    )
    .expect("write");
    let o = vigil(&["migrate", "--config", &cfg.display().to_string()], None);
    assert_eq!(json_out(&o), json!({"migrated": true}));
    assert!(db.exists());
}

#[test]
fn score_answers_each_line_in_order() {
    let input = concat!(
        r#"{"resp_rate":18,"spo2":96,"spo2_scale":1,"o2":false,"systolic":120,"pulse":80,"acvpu":"A","temp":37.1}"#,
        "\n",
        r#"{"resp_rate":21,"spo2":91,"o2":false,"systolic":120,"pulse":80,"acvpu":"A","temp":37.1}"#,
        "\n",
        "not json\n",
        r#"{"spo2":96,"pulse":80}"#,
        "\n"
    );
    let o = vigil(&["score"], Some(input));
    assert!(o.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        (
            lines[0]["total"].as_i64(),
            lines[0]["risk"].as_str(),
            lines[0]["partial"].as_bool()
        ),
        (Some(0), Some("low"), Some(false))
    );
    // RR 21 → 2, SpO2 91 on scale 1 → 3: total 5, medium.
    assert_eq!(
        (lines[1]["total"].as_i64(), lines[1]["risk"].as_str()),
        (Some(5), Some("medium"))
    );
    assert_eq!(lines[1]["subscores"]["resp_rate"], 2);
    assert!(lines[2]["error"].is_string());
    assert_eq!(lines[3]["partial"], true);
    let missing: Vec<&str> = lines[3]["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for p in ["resp_rate", "systolic", "acvpu", "temp"] {
        assert!(missing.contains(&p), "{p} missing from {missing:?}");
    }
}

/// The shared MIT-BIH records, beside the repository (see README).
fn mitdb() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mitdb");
    dir.is_dir().then_some(dir)
}

#[test]
fn ecg_detect_prints_beats_that_match_the_cardiologists_annotations() {
    let Some(dir) = mitdb() else {
        eprintln!("SKIPPED: ../shared/data/mitdb not present");
        return;
    };
    let record = dir.join("101");
    let o = vigil(
        &["ecg", "detect", "--record", &record.display().to_string()],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let detected: Vec<u64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let sample: u64 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("sample index");
            let secs: f64 = parts.next().and_then(|s| s.parse().ok()).expect("seconds");
            assert!((secs - sample as f64 / 360.0).abs() < 0.001, "{l}");
            sample
        })
        .collect();
    let atr = std::fs::read(dir.join("101.atr")).expect("annotations");
    let reference: Vec<u64> = vigil_ecg::wfdb::parse_annotations(&atr)
        .expect("parse")
        .into_iter()
        .filter(|a| vigil_ecg::wfdb::is_beat_code(a.code))
        .map(|a| a.sample)
        .collect();
    // EC57: 150 ms match window, scoring from 5 minutes.
    let s = vigil_ecg::eval::score(&reference, &detected, 54, 5 * 60 * 360);
    assert!(
        s.sensitivity() >= 99.5 && s.positive_predictivity() >= 99.5,
        "percent: {s:?}"
    );

    let bad = vigil(&["ecg", "detect", "--record", "/no/such/record"], None);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn serve_announces_its_ports_and_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\naddr = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://{}\"\n",
            dir.path().join("v.db").display()
        ),
    )
    .expect("write");
    let mut child = Command::new(VIGIL)
        .args(["serve", "--config", &cfg.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let v: Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(v["event"], "listening");
    let http = v["http"].as_str().expect("http addr").to_string();
    assert!(
        !http.ends_with(":0") && !v["mqtt"].as_str().unwrap_or(":0").ends_with(":0"),
        "{v}"
    );
    assert!(std::net::TcpStream::connect(&http).is_ok());
    // SIGTERM: a clean stop with exit code 0.
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(0));
}

/// The ingest remembers devices' routes between batches (decision 0007):
/// a device moved to another patient, or its patient discharged, by
/// `vigil admin` in another process while the daemon runs, has its very
/// next reading filed by the new route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_changed_by_the_cli_is_used_from_the_next_reading() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let run = |args: &[&str]| admin(&cfg, args);
    let (ann, mut dev) = app.patient_with_device().await;
    let bob = app.admit("general").await;
    let stored_for = |patient: i64| {
        let store = app.store.clone();
        async move {
            store
                .observations(vigil_store::ObservationQuery {
                    patient_id: patient,
                    code: None,
                    from: None,
                    to: None,
                    max_points: None,
                })
                .await
                .expect("observations")
                .len()
        }
    };

    dev.publish_obs(1, json!([{"code": "spo2", "value": 95, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    assert_eq!((stored_for(ann).await, stored_for(bob).await), (1, 0));

    run(&[
        "device",
        "assign",
        "--device",
        &dev.id,
        "--patient",
        &bob.to_string(),
    ]);
    dev.publish_obs(2, json!([{"code": "spo2", "value": 94, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[2]);
    assert_eq!(
        (stored_for(ann).await, stored_for(bob).await),
        (1, 1),
        "the reading after the move is Bob's"
    );

    run(&["patient", "discharge", "--patient", &bob.to_string()]);
    dev.publish_obs(3, json!([{"code": "spo2", "value": 93, "unit": "%"}]))
        .await;
    let cmd = dev.next_cmd().await;
    assert_eq!(
        (cmd["type"].as_str(), cmd["reason"].as_str()),
        (Some("reject"), Some("no_patient")),
        "after the discharge the device has no patient: {cmd}"
    );
    assert_eq!((stored_for(ann).await, stored_for(bob).await), (1, 1));
}

/// An admission or a discharge by `vigil admin`, in another process,
/// reaches the dashboards open on the running daemon within its patient
/// sync (5 s): the `patient` event, as the API sends at once for its own,
/// and the alerts the discharge resolved, before it. Twice: the second
/// stay (the person admitted again, on their record) pushes its own
/// discharge's alerts, not the first stay's again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_admitted_or_discharged_by_the_cli_reaches_open_dashboards() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let run = |args: &[&str]| admin(&cfg, args);
    let mut ws = app.ws(&app.token).await;
    // The third stay's first reading is stored before the daemon's patient
    // sync runs (every 5 s): the reading takes the patient into the rules
    // engine first, and the admission must still be told.
    for stay in 0..3 {
        let admitted = run(&[
            "patient",
            "admit",
            "--ward",
            &app.ward,
            "--name",
            "From The CLI",
            "--nhs-number",
            "9434765919",
            "--pathway",
            "copd",
        ]);
        assert_eq!(admitted["readmitted"], stay >= 1, "{admitted}");
        let id = admitted["id"].as_i64().expect("id");
        let reading_first = stay == 2;
        let told = |ev: Value| {
            assert_eq!(
                (ev["patient_id"].as_i64(), ev["change"].as_str()),
                (Some(id), Some("admitted")),
                "stay {stay}"
            );
        };
        if !reading_first {
            told(ws.next_event("patient").await);
        }
        // A live alert, which the discharge resolves: open dashboards hear
        // it leave, before the patient does (hazard AL-24, DB-07).
        let creds = app.provision("hub", Some(id)).await;
        let mut dev = app.connect(&creds).await.expect("device connects");
        dev.publish_obs(1, crate::helpers::vitals(22, 94, 112))
            .await;
        assert_ack(&dev.next_cmd().await, &[1]);
        // The alert, and for the third stay the admission, in either order.
        let mut alert = None;
        let mut admission = !reading_first;
        while alert.is_none() || !admission {
            let ev = ws.next_event_of(&["alert", "patient"]).await;
            if ev["type"] == "patient" {
                told(ev);
                admission = true;
            } else if ev["alert"]["rule_id"] == "news2" {
                alert = ev["alert"]["id"].as_i64();
            }
        }
        let alert = alert.expect("alert id");
        let out = run(&["patient", "discharge", "--patient", &id.to_string()]);
        assert_eq!(out["resolved_alerts"], json!([alert]), "{out}");
        let ev = ws.next_event_of(&["alert_update", "patient"]).await;
        assert_eq!(
            (
                ev["type"].as_str(),
                ev["alert"]["id"].as_i64(),
                ev["action"].as_str(),
                ev["actor"].as_str(),
                ev["alert"]["outcome"].as_str()
            ),
            (
                Some("alert_update"),
                Some(alert),
                Some("resolved"),
                Some("vigil-admin"),
                Some("discharged")
            ),
            "stay {stay}: {ev}"
        );
        let ev = ws.next_event("patient").await;
        assert_eq!(
            (ev["patient_id"].as_i64(), ev["change"].as_str()),
            (Some(id), Some("discharged"))
        );
    }
}

/// A device revoked by `vigil admin device revoke` (lost, say) while still
/// assigned is no longer watched for its patient: its live device alerts
/// are resolved as the system's, and it raises no `device-offline` for a
/// silence that is the revocation's (hazard AL-26). Its patient's missed
/// readings are still the pathway's to catch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_no_longer_watched_for_its_patient() {
    let pathways = tempfile::tempdir().expect("tempdir");
    // Offline after 8 s: longer than the patient sync (5 s).
    std::fs::write(
        pathways.path().join("revoked.toml"),
        crate::helpers::offline_after_pathway("revoked", "8s"),
    )
    .expect("write");
    let app = TestApp::spawn_with(None, Some(pathways.path().to_path_buf())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let mut ws = app.ws(&app.token).await;
    let patient = app.admit("revoked").await;
    let ox = app.provision("oximeter", Some(patient)).await;
    let mut dev = app.connect(&ox).await.expect("connects");
    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 10}).to_string(),
    )
    .await;
    dev.publish_obs(1, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
        .await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let battery = format!("device-battery-low:{}", ox.device_id);
    let raised = ws.next_alert_event("alert", &battery).await;
    let id = raised["alert"]["id"].as_i64().expect("id");

    admin(&cfg, &["device", "revoke", "--device", &ox.device_id]);
    // Within the patient sync: the battery alert resolved; then nothing
    // of this device, well past the 8 s its silence would have taken.
    let mut heard = Vec::new();
    while let Some(ev) = ws
        .next_event_within_any(std::time::Duration::from_secs(14))
        .await
    {
        if ev["alert"]["rule_id"]
            .as_str()
            .is_some_and(|r| r.ends_with(&ox.device_id))
        {
            heard.push((
                ev["type"].as_str().map(String::from),
                ev["alert"]["id"].as_i64(),
                ev["alert"]["status"].as_str().map(String::from),
                ev["alert"]["outcome"].as_str().map(String::from),
            ));
        }
    }
    assert_eq!(
        heard,
        [(
            Some("alert_update".to_string()),
            Some(id),
            Some("resolved".to_string()),
            Some("device-unassigned".to_string())
        )]
    );
}

/// `vigil admin device list` shows the kit with each device's patient and
/// ward (`--unassigned`: the shelf), and `device unassign` takes a device
/// back from its patient, audited under them; a device that is no one's,
/// or does not exist, is exit 2 with one line naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_the_kit_and_takes_a_device_back() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let ann = app.admit("general").await;
    let ox = app.provision("oximeter", Some(ann)).await;
    let hub = app.provision("hub", None).await;
    let listed = |out: &Value| -> Vec<(String, Value)> {
        out["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().expect("id").to_string(),
                    d["patient_id"].clone(),
                )
            })
            .collect()
    };
    let mut all = vec![
        (ox.device_id.clone(), json!(ann)),
        (hub.device_id.clone(), Value::Null),
    ];
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed(&admin(&cfg, &["device", "list"])), all);
    assert_eq!(
        listed(&admin(&cfg, &["device", "list", "--unassigned"])),
        [(hub.device_id.clone(), Value::Null)]
    );

    let out = admin(&cfg, &["device", "unassign", "--device", &ox.device_id]);
    assert_eq!(
        (&out["device_id"], &out["patient_id"]),
        (&json!(ox.device_id), &json!(ann)),
        "{out}"
    );
    let entry = app.audit_entry(ann, "device.unassign").await;
    assert_eq!(entry["username"], "vigil-admin", "{entry}");
    assert_eq!(entry["detail"]["device"], ox.device_id, "{entry}");
    assert_eq!(
        listed(&admin(&cfg, &["device", "list", "--unassigned"])).len(),
        2
    );

    let run = admin_with(&cfg);
    for (device, says) in [
        (
            ox.device_id.as_str(),
            format!("device: {} is no one's now", ox.device_id),
        ),
        (
            "no-such-device",
            "device no-such-device not found".to_string(),
        ),
    ] {
        let o = run(&["device", "unassign", "--device", device], None);
        assert_eq!(o.status.code(), Some(2), "{device}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&says), "{err}");
    }
}

/// `vigil admin notify test` posts one signed test event to the webhook
/// and reports the receiver's answer: a refusal is exit 1 naming the
/// status, no webhook configured is exit 2 naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_a_signed_test_post_to_the_webhook() {
    use crate::notify::{Receiver, SECRET, verified};
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = config_for(&app, &dir);
    let receiver = Receiver::start(vec![200, 503]).await;
    let cfg = dir.path().join("notify.toml");
    std::fs::write(
        &cfg,
        format!(
            "[database]\nurl = \"{}\"\n[notify]\nwebhook_url = \"{}\"\nsecret = \"{SECRET}\"\n",
            app.database_url, receiver.url
        ),
    )
    .expect("config");
    let cfg = cfg.display().to_string();
    let out = admin(&cfg, &["notify", "test"]);
    assert_eq!(out, json!({"webhook_url": receiver.url, "status": 200}));
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1);
    let body = verified(&posts[0]);
    assert_eq!(
        (&body["action"], &body["event_id"], &body["alert"]),
        (&json!("test"), &json!(0), &Value::Null)
    );
    let run = admin_with(&cfg);
    let refused = run(&["notify", "test"], None);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the receiver answered 503"), "{err}");
    let unset = admin_with(&plain)(&["notify", "test"], None);
    assert_eq!(unset.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unset.stderr).contains("notify.webhook_url: not set"),
        "{}",
        String::from_utf8_lossy(&unset.stderr)
    );
    let entry = app
        .get_json("/api/v1/audit?limit=50")
        .await
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "notify.test")
        .cloned();
    assert!(entry.is_some(), "the test posts are audited");
}

/// A leaver's account: `vigil admin user disable` ends every session and
/// API token of it at once (an open dashboard is told within the stream's
/// re-check) and it signs in to nothing, with the same answer as a wrong
/// password; `user enable` lets it sign in again, without the old
/// credentials; `user password` sets a new password and ends its sessions;
/// `user list` shows who is disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_account_is_disabled_at_once_and_a_password_reset_ends_its_sessions() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let run = admin_with(&cfg);
    json_out(&run(
        &[
            "user",
            "add",
            "--username",
            "leaver",
            "--role",
            "nurse",
            "--ward",
            &app.ward,
        ],
        Some("first-password\n"),
    ));
    let token = json_out(&run(&["token", "create", "--username", "leaver"], None))["token"]
        .as_str()
        .expect("token")
        .to_string();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let login = |password: &'static str| {
        let browser = browser.clone();
        let app = &app;
        async move { app.login_with(&browser, "leaver", password).await.status() }
    };
    assert_eq!(login("first-password").await, 200);
    let mut dashboard = app.ws(&token).await;
    let me = |t: String| {
        let app = &app;
        async move {
            app.http_client
                .get(format!("{}/api/v1/me", app.http))
                .bearer_auth(t)
                .send()
                .await
                .expect("me")
                .status()
        }
    };
    assert_eq!(me(token.clone()).await, 200);

    let disabled = json_out(&run(&["user", "disable", "--username", "leaver"], None));
    assert_eq!(disabled["username"], "leaver", "{disabled}");
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    assert_eq!(
        disabled["revoked"], 2,
        "the session and the token: {disabled}"
    );
    assert_eq!(me(token.clone()).await, 401, "the token is dead");
    let cookie_me = browser
        .get(format!("{}/api/v1/me", app.http))
        .send()
        .await
        .expect("me")
        .status();
    assert_eq!(cookie_me, 401, "the session is dead");
    assert_eq!(
        login("first-password").await,
        401,
        "the right password signs in to nothing"
    );
    assert_eq!(
        login("wrong-password").await,
        401,
        "the same answer as a wrong one"
    );
    let within = vigil_web::stream::RECHECK + std::time::Duration::from_secs(5);
    assert!(
        dashboard
            .next_event_within("session_ended", within)
            .await
            .is_some(),
        "an open dashboard is told and closed"
    );
    let refused = run(&["token", "create", "--username", "leaver"], None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--username: \"leaver\" is disabled")
    );

    let list = json_out(&run(&["user", "list"], None));
    let leaver = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "leaver")
        .expect("listed")
        .clone();
    assert_eq!(leaver["role"], "nurse", "{leaver}");
    assert_eq!(leaver["wards"], json!([app.ward]), "{leaver}");
    assert_eq!(leaver["disabled_at"], disabled["disabled_at"], "{leaver}");

    json_out(&run(&["user", "enable", "--username", "leaver"], None));
    assert_eq!(me(token.clone()).await, 401, "old credentials stay revoked");
    assert_eq!(login("first-password").await, 200, "enabled again");

    // A password reset: the old password stops, the session it opened ends.
    let reset = json_out(&run(
        &["user", "password", "--username", "leaver"],
        Some("second-password\n"),
    ));
    assert_eq!(reset["sessions_revoked"], 1, "{reset}");
    assert_eq!(login("first-password").await, 401);
    assert_eq!(login("second-password").await, 200);
    let short = run(
        &["user", "password", "--username", "leaver"],
        Some("short\n"),
    );
    assert_eq!(short.status.code(), Some(2));
    let nobody = run(&["user", "disable", "--username", "nobody"], None);
    assert_eq!(nobody.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("--username: no user \"nobody\""));

    // Each change is on the audit trail as `vigil-admin`'s, with the
    // operating-system account that ran it; no password or token is.
    let trail = app.get_json("/api/v1/audit?limit=100").await;
    let by_cli: Vec<&serde_json::Value> = trail
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["username"] == "vigil-admin")
        .collect();
    let actions: Vec<&str> = by_cli
        .iter()
        .rev()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "user.add",
            "token.create",
            "user.disable",
            "user.enable",
            "user.password"
        ],
        "the refused commands wrote nothing: {trail}"
    );
    let disable = by_cli
        .iter()
        .find(|e| e["action"] == "user.disable")
        .expect("disable");
    assert_eq!(disable["detail"]["username"], "leaver", "{disable}");
    assert_eq!(disable["detail"]["revoked"], 2, "{disable}");
    assert!(disable["detail"]["os_user"].is_string() || disable["detail"]["os_user"].is_null());
    let written = serde_json::to_string(&by_cli).expect("json");
    for secret in ["first-password", "second-password", token.as_str()] {
        assert!(!written.contains(secret), "no secret on the trail");
    }
}

/// `vigil admin backup` while the daemon runs and a hub sends: a consistent
/// copy of the SQLite database, in a new file only its owner can read (it
/// holds every patient's data), that opens as a Vigil database holding
/// everything stored before it; never written over an existing file; on
/// the audit trail, with where it went. On PostgreSQL: exit 2 naming its
/// own tools, and no file left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_backup_copies_the_database_while_the_daemon_runs() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let run = admin_with(&cfg);
    let patient = app.admit("general").await;
    let creds = app.provision("hub", Some(patient)).await;
    let mut dev = app.connect(&creds).await.expect("hub connects");
    for seq in 1..=5 {
        dev.publish_obs(seq, crate::helpers::vitals(16, 97, 70))
            .await;
        assert_ack(&dev.next_cmd().await, &[seq]);
    }
    let to = dir.path().join("backup.db");
    let to_s = to.display().to_string();
    let out = run(&["backup", "--to", &to_s], None);
    if app.database_url.starts_with("postgres") {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("pg_basebackup"), "{err}");
        assert!(!to.exists(), "no file left behind");
        return;
    }
    let answer = json_out(&out);
    let meta = std::fs::metadata(&to).expect("the backup");
    assert_eq!(answer, json!({"backup": to_s, "bytes": meta.len()}));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner only");
    // The daemon stores on meanwhile.
    dev.publish_obs(6, crate::helpers::vitals(16, 97, 70)).await;
    assert_ack(&dev.next_cmd().await, &[6]);
    assert_eq!(app.stats().await.obs_messages, 6);

    // Never over an existing file, not even its own.
    let again = run(&["backup", "--to", &to_s], None);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("--to") && err.contains("exists"), "{err}");
    assert_eq!(std::fs::metadata(&to).expect("kept").len(), meta.len());

    // The copy opens as a Vigil database with what was stored before it.
    let copy = vigil_store::connect(&format!("sqlite://{to_s}"))
        .await
        .expect("the copy opens");
    let st = copy.stats().await.expect("stats");
    assert_eq!(
        (st.obs_messages, st.patients, st.devices),
        (5, 1, 1),
        "{st:?}"
    );
    assert_eq!(
        copy.patient_get(patient).await.expect("read").map(|p| p.id),
        Some(patient)
    );

    // Who took every patient's data, and where to.
    let trail = app.get_json("/api/v1/audit?limit=100").await;
    let entry = trail
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "backup")
        .cloned()
        .expect("the backup on the audit trail");
    assert_eq!(entry["username"], "vigil-admin", "{entry}");
    assert_eq!(entry["detail"]["to"], to_s.as_str(), "{entry}");
}

/// `/metrics` gives the SQLite database's files as they are on disk
/// (`vigil_sqlite_file_bytes{file="db"|"wal"}`): what an admin watches for
/// the disk, and the WAL that grows while a backup lasts (hazard TS-27).
/// None on PostgreSQL.
#[tokio::test]
async fn metrics_give_the_sqlite_files_sizes_as_on_disk() {
    let app = TestApp::spawn().await;
    let gauge = |metrics: &str, file: &str| {
        let prefix = format!("vigil_sqlite_file_bytes{{file=\"{file}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.parse::<u64>().expect("a whole number of bytes"))
    };
    if app.database_url.starts_with("postgres") {
        let metrics = app.metrics().await;
        assert_eq!(gauge(&metrics, "db"), None, "{metrics}");
        assert_eq!(gauge(&metrics, "wal"), None, "{metrics}");
        return;
    }
    let db = std::path::PathBuf::from(app.database_url.trim_start_matches("sqlite://"));
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    let size = |f: &std::path::Path| std::fs::metadata(f).expect("the file").len();
    // Compared where the files held still across the scrape (a checkpoint
    // may move them at any moment).
    for _ in 0..50 {
        let before = (size(&db), size(&wal));
        let metrics = app.metrics().await;
        if (size(&db), size(&wal)) == before {
            assert!(before.0 > 0, "a database file has a size");
            assert_eq!(gauge(&metrics, "db"), Some(before.0), "{metrics}");
            assert_eq!(gauge(&metrics, "wal"), Some(before.1), "{metrics}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the files never held still across a scrape");
}

/// A nurse who moves ward: `vigil admin user wards` gives the account
/// exactly the wards named. Its requests see the new set at once; an open
/// dashboard is told (`wards_changed`, naming the new set) and closed
/// within the stream's re-check, so a ward taken away sends it nothing
/// more; its next stream hears the new ward's events and not the old's.
/// `vigil admin user role` promotes it: its sessions end (a dashboard signs
/// in again as what it now is) and its API token acts with the new role at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_moved_ward_or_promoted_holds_only_what_they_now_have() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_for(&app, &dir);
    let run = admin_with(&cfg);
    let ward_b = json_out(&run(&["ward", "add", "--name", "Ward B"], None))["id"].clone();
    json_out(&run(
        &[
            "user",
            "add",
            "--username",
            "mover",
            "--role",
            "nurse",
            "--ward",
            &app.ward,
        ],
        Some("mover-password\n"),
    ));
    let token = json_out(&run(&["token", "create", "--username", "mover"], None))["token"]
        .as_str()
        .expect("token")
        .to_string();
    let (old_patient, mut dev) = app.patient_with_device().await;
    let read = |path: String| {
        let (app, token) = (&app, token.clone());
        async move {
            app.http_client
                .get(format!("{}{path}", app.http))
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .status()
        }
    };
    let old_page = format!("/api/v1/patients/{old_patient}");
    assert_eq!(read(old_page.clone()).await, 200);
    let mut dashboard = app.ws(&token).await;

    let moved = json_out(&run(
        &["user", "wards", "--username", "mover", "--ward", "Ward B"],
        None,
    ));
    assert_eq!(moved, json!({"username": "mover", "wards": ["Ward B"]}));
    assert_eq!(read(old_page).await, 404, "the old ward's patient, at once");
    let within = vigil_web::stream::RECHECK + std::time::Duration::from_secs(5);
    let told = dashboard
        .next_event_within("wards_changed", within)
        .await
        .expect("an open dashboard is told");
    assert_eq!(told["ward_ids"], json!([ward_b]));

    let mut again = app.ws(&token).await;
    dev.publish_obs(1, crate::helpers::vitals(16, 97, 70)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    assert!(
        again
            .next_event_within("observation", std::time::Duration::from_secs(2))
            .await
            .is_none(),
        "nothing from the old ward"
    );
    let admitted = json_out(&run(
        &[
            "patient",
            "admit",
            "--ward",
            "Ward B",
            "--name",
            "New Ward Patient",
            "--nhs-number",
            "9434765919",
            "--pathway",
            "general",
        ],
        None,
    ));
    let joined = again
        .next_event_within("patient", std::time::Duration::from_secs(15))
        .await
        .expect("the new ward's admission is heard");
    assert_eq!(joined["patient_id"], admitted["id"]);

    let unknown = run(
        &["user", "wards", "--username", "nobody", "--ward", "Ward B"],
        None,
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--username: no user \"nobody\""));
    let no_ward = run(
        &["user", "wards", "--username", "mover", "--ward", "Ward Z"],
        None,
    );
    assert_eq!(no_ward.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_ward.stderr).contains("ward: no ward \"Ward Z\""));
    let list = json_out(&run(&["user", "list"], None));
    let mover = list["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == "mover"))
        .expect("listed")
        .clone();
    assert_eq!(
        mover["wards"],
        json!(["Ward B"]),
        "a refused change changed nothing"
    );

    // Promoted: the dashboard's session ends (it signs in again as an
    // admin); the API token acts as an admin from its next request.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let signed_in = app.login_with(&browser, "mover", "mover-password").await;
    assert_eq!(signed_in.status(), 200);
    let role_of = |t: String| {
        let app = &app;
        async move {
            let me: Value = app
                .http_client
                .get(format!("{}/api/v1/me", app.http))
                .bearer_auth(t)
                .send()
                .await
                .expect("me")
                .json()
                .await
                .expect("json");
            me["role"].clone()
        }
    };
    assert_eq!(role_of(token.clone()).await, "nurse");
    let promoted = json_out(&run(
        &["user", "role", "--username", "mover", "--role", "admin"],
        None,
    ));
    assert_eq!(
        promoted,
        json!({"username": "mover", "role": "admin", "sessions_revoked": 1})
    );
    assert_eq!(role_of(token.clone()).await, "admin");
    let cookie_me = browser
        .get(format!("{}/api/v1/me", app.http))
        .send()
        .await
        .expect("me")
        .status();
    assert_eq!(cookie_me, 401, "the session is ended");
    let again = json_out(&run(
        &["user", "role", "--username", "mover", "--role", "admin"],
        None,
    ));
    assert_eq!(again["sessions_revoked"], 0, "the same role ends nothing");
    let bad = run(
        &["user", "role", "--username", "mover", "--role", "matron"],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
}
