//! The end-to-end path on PostgreSQL: publish over MQTT → stored → scored →
//! alert → API and websocket, on a fresh database in a throwaway cluster
//! (the store suite's harness; it fails loudly if PostgreSQL is missing,
//! unless VIGIL_SKIP_POSTGRES=1).

use serde_json::json;

use crate::helpers::{TestApp, assert_ack};

use crate::pg;

#[tokio::test]
async fn the_whole_path_works_on_postgresql() {
    let Some(url) = pg::fresh_database().await else {
        return;
    };
    let app = TestApp::spawn_on(Some(url)).await;
    let mut ws = app.ws(&app.token).await;
    let (patient, mut dev) = app.patient_with_device().await;
    let vitals = json!([
        {"code": "resp_rate", "value": 22, "unit": "/min"},
        {"code": "spo2", "value": 94, "unit": "%"},
        {"code": "o2_flow", "value": 0, "unit": "L/min"},
        {"code": "systolic", "value": 125, "unit": "mm[Hg]"},
        {"code": "pulse", "value": 112, "unit": "/min"},
        {"code": "acvpu", "value": "A"},
        {"code": "temp", "value": 36.9, "unit": "Cel"}
    ]);
    dev.publish_obs(1, vitals.clone()).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    assert_eq!(ws.next_event("observation").await["patient_id"], patient);
    // Alerts are pushed before the pass's scores.
    assert_eq!(
        ws.next_alert_event("alert", "news2").await["alert"]["severity"],
        "medium"
    );
    assert_eq!(ws.next_event("score").await["score"]["total"], 5);
    // A resend is stored once and acked again.
    dev.publish_obs(1, vitals).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let rows: serde_json::Value = app
        .get(&format!("/api/v1/patients/{patient}/observations"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(7));
    let s = app.stats().await;
    assert_eq!((s.obs_messages, s.observations), (1, 7));
    let list: serde_json::Value = app
        .get("/api/v1/patients")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["news2"]["total"], 5);
}

/// Stopping PostgreSQL for 30 seconds under load loses nothing: the ingest
/// stops acking, the kits keep their messages and resend them, and
/// everything is stored exactly once when PostgreSQL returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_postgresql_for_30_seconds_under_load_loses_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use vigil_devsim::load::{self, LoadConfig, Progress};

    let Some(cluster) = pg::dedicated_cluster() else {
        return;
    };
    let url = cluster.fresh().await;
    let app = TestApp::spawn_on(Some(url)).await;
    let progress = Arc::new(Progress::default());
    let (patients, messages) = (10u32, 60u32);
    let cfg = LoadConfig {
        http: app.http.clone(),
        token: app.token.clone(),
        mqtt_host: app.mqtt_host.clone(),
        mqtt_port: app.mqtt_port,
        ward: app.ward.clone(),
        patients,
        messages,
        rate: 15.0, // 600 messages over 40 s: the outage falls in the middle
        timeout: Duration::from_secs(90),
        resend_after: Duration::from_secs(2),
        seed: 11,
    };
    let run = tokio::spawn(load::run(cfg, Some(progress.clone())));

    // Let it get going, then take the database away for 30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while progress.acked.load(Ordering::Relaxed) < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no acks before the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.stop();
    let acked_at_stop = progress.acked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let acked_during = progress.acked.load(Ordering::Relaxed) - acked_at_stop;
    cluster.restart();

    let report = run.await.expect("load task").expect("load runs");
    eprintln!(
        "postgres outage: sent {} acked {} resent {} unacked {} dropped {} (acked during the outage: {acked_during})",
        report.sent, report.acked, report.resent, report.unacked, report.dropped
    );
    // A few acks may land in the instant the server shuts down; after that
    // nothing can be committed, so nothing more is acked.
    assert!(
        acked_during <= 20,
        "acks while the database was down: {acked_during}"
    );
    assert_eq!(report.sent, u64::from(patients * messages));
    assert_eq!(
        (
            report.acked,
            report.unacked,
            report.dropped,
            report.rejected
        ),
        (report.sent, 0, 0, 0)
    );
    assert!(
        report.resent > 0,
        "the kits had to resend during the outage"
    );
    assert_eq!(
        app.stats().await.obs_messages,
        report.sent as i64,
        "each message stored exactly once"
    );
}

/// A daemon that has stopped leaves no database connection open. The
/// embedded broker's hooks held the store, and rmqtt never frees them: every
/// daemon this suite started kept its pool of connections open until the
/// test process ended, and PostgreSQL (300 connections here) began refusing
/// tests part-way through the suite.
#[tokio::test]
async fn a_stopped_daemon_leaves_no_database_connection_open() {
    use sqlx::Connection;
    use std::time::Duration;

    let Some(url) = pg::fresh_database().await else {
        return;
    };
    let daemon_url = url.clone();
    // The daemon on a runtime of its own, dropped when it ends, as each
    // test's runtime is.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let app = TestApp::spawn_on(Some(daemon_url)).await;
            // A device's CONNECT goes through the broker's hooks to the store.
            let (_, mut dev) = app.patient_with_device().await;
            dev.publish_obs(1, json!([{"code": "spo2", "value": 97, "unit": "%"}]))
                .await;
            assert_ack(&dev.next_cmd().await, &[1]);
        });
    })
    .join()
    .expect("the daemon's thread");

    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (open,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .expect("count connections");
        if open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} connections of a stopped daemon still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
