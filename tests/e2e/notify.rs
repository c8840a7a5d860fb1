//! The alert webhook (`[notify]`) against a real HTTP receiver started by
//! the test: what is posted, signed how, retried when refused, and where a
//! restarted daemon takes up the trail.

use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{TestApp, WAIT, assert_ack, vitals};

pub(crate) const SECRET: &str = "a-webhook-secret-for-tests";

/// One post as the receiver got it.
#[derive(Clone, Debug)]
pub(crate) struct Post {
    event: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// An HTTP receiver on a free port: it keeps every post and answers each
/// with the next status of `answers` (then 200).
pub(crate) struct Receiver {
    pub(crate) url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Receiver {
    pub(crate) async fn start(answers: Vec<u16>) -> Receiver {
        use axum::http::{HeaderMap, StatusCode};
        let posts = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let kept = posts.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let kept = kept.clone();
                let answers = answers.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    kept.lock().expect("posts").push(Post {
                        event: h("x-vigil-event"),
                        timestamp: h("x-vigil-timestamp"),
                        signature: h("x-vigil-signature"),
                        body,
                    });
                    let code = answers.lock().expect("answers").next().unwrap_or(200);
                    StatusCode::from_u16(code).expect("status")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, posts }
    }

    pub(crate) fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }

    /// The posts once at least `n` have come; fails after [`WAIT`].
    async fn wait_for(&self, n: usize) -> Vec<Post> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "want {n} posts, have {posts:#?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The configuration's `[notify]` for `receiver`.
pub(crate) fn webhook(receiver: &Receiver) -> impl FnOnce(&mut vigil::config::Config) + use<> {
    let url = receiver.url.clone();
    move |c| {
        c.notify.webhook_url = Some(url);
        c.notify.secret = Some(SECRET.into());
        c.notify.dashboard_url = Some("https://vigil.example.nhs.uk/".into());
    }
}

/// The post's body, after checking its signature as a receiver would:
/// HMAC-SHA256 under the shared secret of `{timestamp}.{body}`.
pub(crate) fn verified(p: &Post) -> Value {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{}.{}", p.timestamp, p.body).as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(p.signature, want, "signature of {p:?}");
    let age = chrono::Utc::now().timestamp() - p.timestamp.parse::<i64>().expect("timestamp");
    assert!((0..120).contains(&age), "a fresh timestamp: {p:?}");
    let body: Value = serde_json::from_str(&p.body).expect("JSON body");
    assert_eq!(body["event_id"].to_string(), p.event, "X-Vigil-Event");
    body
}

/// A NEWS2 alert raised, its severity raised, and its escalation by a nurse
/// are posted, in that order, signed, naming the patient only by id; the
/// first post, refused with a 503, is tried again; the acknowledgement and
/// the low alerts are not what `[notify]` asks for by default.
#[tokio::test]
async fn alerts_are_posted_to_the_webhook_signed_pseudonymous_and_retried() {
    let receiver = Receiver::start(vec![503]).await;
    // A pathway of NEWS2 and device alerts only: no pathway rule of its own
    // fires on these vitals.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plain.toml"),
        crate::helpers::offline_after_pathway("plain", "1h"),
    )
    .expect("write");
    let app = TestApp::spawn_configured(
        None,
        Some(dir.path().to_path_buf()),
        None,
        webhook(&receiver),
    )
    .await;
    let patient = app.admit("plain").await;
    // The plan agreed with the patient goes with the post, by its category:
    // its details are free text, which may name people.
    let details = "ReSPECT form with her daughter Ann";
    let r = app
        .patch_episode(
            patient,
            json!({"escalation_plan": "home", "escalation_note": details}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let creds = app.provision("hub", Some(patient)).await;
    let dev = app.connect(&creds).await.expect("connects");
    let mut dev = dev;
    // NEWS2 5 (medium), then 9 (high): the same alert, its severity raised.
    dev.publish_obs(1, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
    let first = receiver.wait_for(2).await;
    assert_eq!(
        first[0].event, first[1].event,
        "the refused post is tried again"
    );
    let raised = verified(&first[1]);
    assert_eq!(raised["action"], "raised", "{raised:#}");
    assert_eq!(raised["alert"]["rule_id"], "news2", "{raised:#}");
    assert_eq!(raised["alert"]["severity"], "medium", "{raised:#}");
    assert_eq!(raised["alert"]["patient_id"], patient, "{raised:#}");
    assert_eq!(
        raised["ward"],
        app.ward.as_str(),
        "the ward's name, for routing"
    );
    assert_eq!(
        raised["link"],
        format!("https://vigil.example.nhs.uk/#/patients/{patient}")
    );
    assert_eq!(raised["escalation_plan"], "home", "{raised:#}");
    // Nothing that names the patient, nor the plan's details.
    let who = app.get_json(&format!("/api/v1/patients/{patient}")).await;
    for p in &first {
        for s in [&who["name"], &who["nhs_number"], &json!(details)] {
            let s = s.as_str().expect("a string");
            assert!(!p.body.contains(s), "{s} in {}", p.body);
        }
    }

    dev.publish_raw(
        "status",
        json!({"online": true, "battery_pct": 5}).to_string(),
    )
    .await;
    dev.publish_obs(2, vitals(25, 91, 131)).await;
    assert_ack(&dev.next_cmd().await, &[2]);
    let posts = receiver.wait_for(3).await;
    let updated = verified(&posts[2]);
    assert_eq!(
        (&updated["action"], &updated["alert"]["severity"]),
        (&json!("updated"), &json!("high")),
        "{updated:#}"
    );
    let id = updated["alert"]["id"].as_i64().expect("alert id");
    for action in ["acknowledge", "escalate"] {
        let r = app
            .post(&format!("/api/v1/alerts/{id}/{action}"), json!({}))
            .send()
            .await
            .expect(action);
        assert_eq!(r.status(), 200, "{action}");
    }
    let posts = receiver.wait_for(4).await;
    let escalated = verified(&posts[3]);
    assert_eq!(escalated["action"], "escalated", "{escalated:#}");
    assert_eq!(escalated["actor"], "admin", "{escalated:#}");
    let ids: Vec<i64> = posts[1..]
        .iter()
        .map(|p| p.event.parse().expect("event id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in the trail's order: {ids:?}"
    );

    // Passed over: the battery alert and the NEWS2 trend prompt (both
    // low), and the acknowledgement.
    let low = format!("device-battery-low:{}", creds.device_id);
    crate::helpers::wait_for_alerts(&app, patient, &[low, "news2-rising".into()]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let m = loop {
        let m = app.metrics().await;
        if m.contains("vigil_notify_total{outcome=\"skipped\"} 3")
            || tokio::time::Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for line in [
        "vigil_notify_total{outcome=\"sent\"} 3",
        "vigil_notify_total{outcome=\"failed\"} 1",
        "vigil_notify_total{outcome=\"skipped\"} 3",
        "vigil_notify_total{outcome=\"expired\"} 0",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
    assert_eq!(receiver.posts().len(), 4, "nothing else posted");
}

/// A hub for `patient` that sends vitals scoring NEWS2 5 (a medium alert).
async fn news2(app: &TestApp, patient: i64) {
    let creds = app.provision("hub", Some(patient)).await;
    let mut dev = app.connect(&creds).await.expect("connects");
    dev.publish_obs(1, vitals(22, 94, 112)).await;
    assert_ack(&dev.next_cmd().await, &[1]);
}

/// Turned on, the webhook starts from the newest event, not the history;
/// restarted, it takes up the trail where it stopped: what happened while
/// the daemon was down is posted once, what it had posted is not posted
/// again.
#[tokio::test]
async fn the_webhook_starts_at_the_newest_event_and_takes_up_the_trail_after_a_restart() {
    let (_keep, url) = crate::restart::durable_database().await;
    let pathways = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways");
    let receiver = Receiver::start(vec![]).await;
    // Before the webhook: an alert it must never post.
    let before =
        TestApp::spawn_configured(Some(url.clone()), Some(pathways.clone()), None, |_| {}).await;
    let ann = before.admit("general").await;
    news2(&before, ann).await;
    crate::helpers::wait_for_alerts(&before, ann, &["news2".to_string()]).await;
    drop(before);

    let first = TestApp::spawn_configured(
        Some(url.clone()),
        Some(pathways.clone()),
        None,
        webhook(&receiver),
    )
    .await;
    let bob = first.admit("general").await;
    news2(&first, bob).await;
    let posts = receiver.wait_for(1).await;
    assert_eq!(
        verified(&posts[0])["alert"]["patient_id"],
        bob,
        "not Ann's, from before"
    );
    // Stopped once its progress is recorded past Bob's alert.
    let posted: i64 = posts[0].event.parse().expect("event id");
    let deadline = tokio::time::Instant::now() + WAIT;
    while first.store.notify_progress().await.expect("progress") < posted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "progress not recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // While it is down, a clinician escalates Bob's alert (from another
    // process, as the store is shared).
    let bobs = first
        .get_json(&format!("/api/v1/alerts?patient={bob}"))
        .await;
    let id = bobs[0]["id"].as_i64().expect("Bob's alert");
    drop(first);
    vigil_store::connect(&url)
        .await
        .expect("store")
        .alert_act(
            id,
            vigil_store::AlertAction::Escalate,
            "nurse-b",
            chrono::Utc::now(),
        )
        .await
        .expect("escalate");
    let _second =
        TestApp::spawn_configured(Some(url), Some(pathways), None, webhook(&receiver)).await;
    let posts = receiver.wait_for(2).await;
    let escalated = verified(&posts[1]);
    assert_eq!(
        (
            &escalated["action"],
            &escalated["alert"]["id"],
            &escalated["actor"]
        ),
        (&json!("escalated"), &json!(id), &json!("nurse-b"))
    );
    // A second's polls more: nothing else (Bob's raise not posted again).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(receiver.posts().len(), 2, "{:#?}", receiver.posts());
}

/// The value of `vigil_notify_leading` on `app`'s /metrics.
async fn leading(app: &TestApp) -> Option<String> {
    app.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("vigil_notify_leading ").map(str::to_string))
}

/// Wait until `app` says it posts (`"1"`) or stands by (`"0"`).
async fn wait_leading(app: &TestApp, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while leading(app).await.as_deref() != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "vigil_notify_leading never {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Two instances on one database: each alert event is posted once, by the
/// instance holding the webhook's lease, whichever instance raised it; when
/// that instance stops, the other takes over at once and posts what
/// follows, still once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_post_each_event_once() {
    let (_keep, url) = crate::restart::durable_database().await;
    let pathways = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pathways");
    let receiver = Receiver::start(vec![]).await;
    let spawn = || {
        TestApp::spawn_configured(
            Some(url.clone()),
            Some(pathways.clone()),
            None,
            webhook(&receiver),
        )
    };
    let first = spawn().await;
    wait_leading(&first, "1").await;
    let second = spawn().await;
    // The second stands by: a few of its tries for the lease go by.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(leading(&second).await.as_deref(), Some("0"));
    assert_eq!(leading(&first).await.as_deref(), Some("1"));

    // Raised on the second instance, posted once (by the first).
    let bob = second.admit("general").await;
    news2(&second, bob).await;
    let posts = receiver.wait_for(1).await;
    assert_eq!(verified(&posts[0])["alert"]["patient_id"], bob);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(receiver.posts().len(), 1, "{:#?}", receiver.posts());

    // The first stops: the second takes over and posts the escalation.
    drop(first);
    wait_leading(&second, "1").await;
    let alerts = second
        .get_json(&format!("/api/v1/alerts?patient={bob}"))
        .await;
    let id = alerts[0]["id"].as_i64().expect("Bob's alert");
    let r = second
        .post(&format!("/api/v1/alerts/{id}/escalate"), json!({}))
        .send()
        .await
        .expect("escalate");
    assert_eq!(r.status(), 200);
    let posts = receiver.wait_for(2).await;
    assert_eq!(verified(&posts[1])["action"], "escalated");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let events: std::collections::BTreeSet<String> =
        receiver.posts().into_iter().map(|p| p.event).collect();
    assert_eq!(
        (receiver.posts().len(), events.len()),
        (2, 2),
        "each event once: {:#?}",
        receiver.posts()
    );
}
