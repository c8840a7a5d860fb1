//! The OpenAPI description (`GET /api/v1/openapi.json`) against the live
//! daemon: schemathesis fuzzes every documented route and checks each
//! response against the description; and the Grafana dashboard queries only
//! metrics that `/metrics` really exposes.
//!
//! schemathesis lives in `tools/api/.deps` (see tools/api/requirements.txt):
//!   python3 -m pip install --target tools/api/.deps -r tools/api/requirements.txt

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ack};

const INSTALL: &str =
    "python3 -m pip install --target tools/api/.deps -r tools/api/requirements.txt";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `/api/v1` route the router serves, as (method, path).
const ROUTES: [(&str, &str); 48] = [
    ("post", "/api/v1/login"),
    ("get", "/api/v1/auth/methods"),
    ("get", "/api/v1/auth/sso/login"),
    ("get", "/api/v1/auth/sso/callback"),
    ("post", "/api/v1/auth/sso/backchannel-logout"),
    ("get", "/api/v1/wards/{id}/report"),
    ("get", "/api/v1/wards/{id}/report.csv"),
    ("post", "/api/v1/logout"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/me/password"),
    ("get", "/api/v1/stream"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/patients"),
    ("post", "/api/v1/patients"),
    ("get", "/api/v1/patients/discharged"),
    ("get", "/api/v1/patients/notes"),
    ("get", "/api/v1/patients/plans"),
    ("get", "/api/v1/patients/follow-ups"),
    ("get", "/api/v1/patients/{id}"),
    ("get", "/api/v1/patients/{id}/observations"),
    ("get", "/api/v1/patients/{id}/scores"),
    ("get", "/api/v1/patients/{id}/summary"),
    ("get", "/api/v1/patients/{id}/follow-ups"),
    ("post", "/api/v1/patients/{id}/follow-ups"),
    (
        "post",
        "/api/v1/patients/{id}/follow-ups/{follow_up}/cancel",
    ),
    ("get", "/api/v1/patients/{id}/ecg"),
    ("patch", "/api/v1/patients/{id}/episode"),
    ("post", "/api/v1/patients/{id}/discharge"),
    ("get", "/api/v1/patients/{id}/notes"),
    ("post", "/api/v1/patients/{id}/notes"),
    ("post", "/api/v1/patients/{id}/observations"),
    ("get", "/api/v1/pathways"),
    ("get", "/api/v1/alerts"),
    ("get", "/api/v1/alerts/resolved"),
    ("get", "/api/v1/alerts/{id}"),
    ("post", "/api/v1/alerts/{id}/acknowledge"),
    ("post", "/api/v1/alerts/{id}/escalate"),
    ("post", "/api/v1/alerts/{id}/resolve"),
    ("post", "/api/v1/devices"),
    ("post", "/api/v1/devices/{id}/assign"),
    ("get", "/api/v1/devices"),
    ("post", "/api/v1/devices/{id}/unassign"),
    ("post", "/api/v1/devices/{id}/revoke"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("patch", "/api/v1/users/{id}"),
    ("post", "/api/v1/users/{id}/password"),
];

#[tokio::test]
async fn the_description_is_served_without_auth_and_covers_every_route() {
    let app = TestApp::spawn().await;
    let r = app
        .http_client
        .get(format!("{}/api/v1/openapi.json", app.http))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (path, item) in paths {
        documented += item
            .as_object()
            .expect("item")
            .keys()
            .filter(|k| ["get", "post", "patch", "put", "delete"].contains(&k.as_str()))
            .count();
        assert!(path.starts_with("/api/v1/"), "{path}");
    }
    for (method, path) in ROUTES {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} undocumented"))[method];
        assert!(op.is_object(), "{method} {path} undocumented");
        // The routes anyone may call: signing in, out, and how.
        let open = ["/api/v1/login", "/api/v1/openapi.json", "/api/v1/logout"];
        if !open.contains(&path) && !path.starts_with("/api/v1/auth/") {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
            assert!(
                op["security"].to_string().contains("bearer"),
                "{method} {path}: no security"
            );
        }
    }
    assert_eq!(
        documented,
        ROUTES.len(),
        "a documented route the test does not know of"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        (
            schemes["cookie"]["in"].as_str(),
            schemes["cookie"]["name"].as_str()
        ),
        (Some("cookie"), Some("vigil_session"))
    );
}

/// Readings for a patient scoring NEWS2 5 (medium): RR 22, SpO2 94, pulse 112.
fn deteriorating() -> Value {
    json!([
        {"code": "resp_rate", "value": 22, "unit": "/min"},
        {"code": "spo2", "value": 94, "unit": "%"},
        {"code": "o2_flow", "value": 0, "unit": "L/min"},
        {"code": "systolic", "value": 125, "unit": "mm[Hg]"},
        {"code": "pulse", "value": 112, "unit": "/min"},
        {"code": "acvpu", "value": "A"},
        {"code": "temp", "value": 36.9, "unit": "Cel"}
    ])
}

/// A patient with readings, a NEWS2 history, an open alert, a rejected
/// message and an ECG chunk: something for every route and metric.
async fn traffic(app: &TestApp) -> i64 {
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    dev.publish_obs(1, deteriorating()).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    ws.next_alert_event("alert", "news2").await;
    let ts = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    dev.publish_raw(
        "obs",
        json!({"seq": 2, "ts": ts, "obs": [{"code": "mood", "value": 3}]}).to_string(),
    )
    .await;
    assert_eq!(dev.next_cmd().await["reason"], "unknown_code");
    let creds = app.provision("ecg-patch", Some(patient)).await;
    let patch = app.connect(&creds).await.expect("patch connects");
    let c = vigil_kit::ecg_chunk::EcgChunk {
        seq: 1,
        t0_ms: Utc::now().timestamp_millis(),
        sample_rate_hz: 250,
        uv_per_count: 5.0,
        samples: &[0; 250],
    };
    let mut buf = vec![0u8; 25 + 2 * 250];
    let n = c.encode(&mut buf).expect("encode");
    buf.truncate(n);
    let mut patch = patch;
    patch.publish_raw("ecg", buf).await;
    assert_eq!(patch.next_cmd().await["seqs"], json!([1]));
    patient
}

fn schemathesis_available(deps: &Path) -> bool {
    Command::new("python3")
        .args(["-c", "import schemathesis.cli"])
        .env("PYTHONPATH", deps)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// schemathesis against the live daemon: every documented `/api/v1` route,
/// all checks. Excluded, each for a reason:
/// - `POST /api/v1/logout`: it revokes the presented credential, which here
///   is the run's own bearer token (everything after would be a 401);
/// - `GET /api/v1/stream`: a websocket, not a request/response route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    let deps = repo().join("tools/api/.deps");
    assert!(
        schemathesis_available(&deps),
        "schemathesis is not installed: run `{INSTALL}` in the repository root"
    );
    let app = TestApp::spawn().await;
    traffic(&app).await;
    let url = format!("{}/api/v1/openapi.json", app.http);
    let token = app.token.clone();
    let config = repo().join("tools/api/schemathesis.toml");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-m", "schemathesis.cli", "--config-file"])
            .arg(&config)
            .args([
                "run",
                &url,
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing",
            ])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--exclude-path",
                "/api/v1/logout",
                "--exclude-path",
                "/api/v1/stream",
            ])
            .args([
                "--max-examples",
                "40",
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--seed",
                "1",
            ])
            .args(["--generation-database", "none", "--no-color"])
            .env("PYTHONPATH", &deps)
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    // The summary, for the test log (`--nocapture`).
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect();
    println!("{}", summary.join("\n"));
    // The app must still be healthy after the run.
    let r = app
        .http_client
        .get(format!("{}/readyz", app.http))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
}

/// Every metric the Grafana dashboard queries is one `/metrics` exposes
/// (after some traffic, with an alert webhook configured), so the
/// dashboard cannot drift from the code.
#[tokio::test]
async fn grafana_dashboard_queries_only_exposed_metrics() {
    let receiver = crate::notify::Receiver::start(vec![]).await;
    let app = TestApp::spawn_configured(None, None, None, crate::notify::webhook(&receiver)).await;
    traffic(&app).await;
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/grafana/vigil.json")).expect("dashboard"),
    )
    .expect("json");
    assert_importable(&dashboard);
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 7, "{exprs:?}");
    let metrics = app.metrics().await;
    let exposed: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default())
        .collect();
    let mut queried = std::collections::BTreeSet::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("vigil_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            queried.insert(name);
        }
    }
    for name in [
        "vigil_obs_messages_total",
        "vigil_obs_rejected_total",
        "vigil_ecg_chunks_total",
        "vigil_alerts_raised_total",
        "vigil_ingest_lag_seconds_bucket",
        "vigil_alert_latency_seconds_bucket",
        "vigil_ws_clients",
        "vigil_mqtt_connections",
        "vigil_ingest_queue_depth",
        "vigil_store_write_seconds_bucket",
        "vigil_ingest_batch_size_sum",
        "vigil_notify_total",
        "vigil_notify_leading",
        "vigil_sso_signins_total",
        "vigil_sso_logouts_total",
        "vigil_sqlite_file_bytes",
    ] {
        assert!(
            queried.contains(name),
            "the dashboard does not chart {name}"
        );
    }
    for name in &queried {
        // The SQLite files' sizes: none on PostgreSQL (its panel is empty there).
        if name == "vigil_sqlite_file_bytes" && app.database_url.starts_with("postgres") {
            assert!(!exposed.contains(name.as_str()), "{metrics}");
            continue;
        }
        assert!(
            exposed.contains(name.as_str()),
            "the dashboard queries {name}, which /metrics does not expose:\n{metrics}"
        );
    }
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The fields Grafana's dashboard import needs (dashboard JSON model,
/// schemaVersion 39): a title and uid, a numeric schemaVersion, template
/// variables with names, and panels with unique ids, a known type, a title,
/// a grid position inside the 24-column grid, and Prometheus targets with a
/// refId and an expression.
fn assert_importable(d: &Value) {
    assert!(
        d["title"].is_string()
            && d["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty() && u.len() <= 40),
        "title/uid"
    );
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 30),
        "schemaVersion"
    );
    for v in d["templating"]["list"].as_array().expect("templating.list") {
        assert!(
            v["name"].is_string() && v["type"].is_string(),
            "variable {v}"
        );
    }
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id {}",
            p["id"]
        );
        assert!(
            ["timeseries", "stat", "gauge", "table", "bargauge"]
                .contains(&p["type"].as_str().unwrap_or_default()),
            "panel type {}",
            p["type"]
        );
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        let g = &p["gridPos"];
        let (x, w, h) = (
            g["x"].as_u64().expect("x"),
            g["w"].as_u64().expect("w"),
            g["h"].as_u64().expect("h"),
        );
        assert!(
            g["y"].is_u64() && w > 0 && h > 0 && x + w <= 24,
            "gridPos {g}"
        );
        for t in p["targets"].as_array().expect("targets") {
            assert!(
                t["refId"].is_string() && t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "target {t}"
            );
        }
    }
}

/// Whether a JSON Schema admits a string (OpenAPI 3.1 writes a nullable
/// one as `["string", "null"]`).
fn is_string(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// A plain value of a schema's type, for the fields not under test.
fn plain(schema: &Value) -> Value {
    let t = match &schema["type"] {
        Value::Array(ts) => ts
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        t => t.clone(),
    };
    match t.as_str() {
        Some("integer") => json!(1),
        Some("number") => json!(1.0),
        Some("boolean") => json!(true),
        Some("string") => schema["enum"].get(0).cloned().unwrap_or(json!("x")),
        _ => Value::Null,
    }
}

/// Every string a documented route takes (a body's field, a query
/// parameter), given a NUL in turn, answers below 500: PostgreSQL cannot
/// store a NUL in text, and schemathesis, which may generate one, seldom
/// does. Run on both backends by the suite's second pass.
#[tokio::test]
async fn a_nul_in_any_documented_string_is_never_a_server_error() {
    let app = TestApp::spawn().await;
    let patient = app.admit("copd").await;
    let doc = app.get_json("/api/v1/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    let resolve = |s: &Value| -> Value {
        match s["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
            Some(name) => schemas[name].clone(),
            None => s.clone(),
        }
    };
    let nul = "a\u{0}b";
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if path == "/api/v1/logout" || path == "/api/v1/stream" {
            continue;
        }
        let concrete = path.replace("{id}", &patient.to_string());
        for (method, op) in item.as_object().expect("operations") {
            let mut requests: Vec<(String, Option<Value>)> = Vec::new();
            // Query parameters, each in turn.
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "query" && is_string(&resolve(&p["schema"])) {
                    let name = p["name"].as_str().expect("name");
                    requests.push((format!("{concrete}?{name}=a%00b"), None));
                }
            }
            // Body fields, each in turn, the others plain.
            let body = resolve(&op["requestBody"]["content"]["application/json"]["schema"]);
            if let Some(props) = body["properties"].as_object() {
                let base: serde_json::Map<String, Value> = props
                    .iter()
                    .map(|(k, s)| (k.clone(), plain(&resolve(s))))
                    .collect();
                for (k, s) in props {
                    if is_string(&resolve(s)) {
                        let mut b = base.clone();
                        b.insert(k.clone(), json!(nul));
                        requests.push((concrete.clone(), Some(Value::Object(b))));
                    }
                }
            }
            for (url, body) in requests {
                let m =
                    reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                let mut r = app
                    .http_client
                    .request(m, format!("{}{url}", app.http))
                    .bearer_auth(&app.token);
                if let Some(b) = &body {
                    r = r.json(b);
                }
                let status = r.send().await.expect("request").status();
                tried += 1;
                assert!(
                    status.as_u16() < 500,
                    "{method} {url} {}: {status}",
                    body.map(|b| b.to_string()).unwrap_or_default()
                );
            }
        }
    }
    assert!(
        tried >= 15,
        "only {tried} strings tried: is the description read right?"
    );
}
