//! The alert webhook (`[notify]`, docs/configuration.md "Alert webhook"):
//! each alert event the configuration asks for, posted to the hospital's
//! integration engine or paging service, for when no dashboard is watching.
//!
//! It follows the alert trail (`alert_events`, append-only) rather than the
//! live event hub: the trail holds every transition whoever made it (the
//! worker, a clinician, `vigil admin` in another process), and how far the
//! notifier has got is kept in the database (`notify_progress`), so a
//! restart or a receiver that is down for a while loses nothing and posts
//! nothing twice beyond the one post in flight. Posts go one at a time, in
//! the trail's order; a failed post is tried again, further apart each
//! time, until it is sent or older than `notify.max_age` (then counted
//! `expired` and passed over: a page about a long-past alert is noise, and
//! the alert is on the dashboard all the same).
//!
//! What is posted is pseudonymous: the patient's id, never their name or
//! NHS number; the receiver links back to the dashboard for who it is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde_json::json;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use vigil_store::{AlertEventRef, AlertRow, Store};

use crate::config::NotifySettings;

/// How often the trail is read when the last read found it caught up.
const POLL: Duration = Duration::from_secs(1);
/// Events read at once.
const BATCH: i64 = 200;
/// How long a hole in the trail's ids is waited for before it is taken
/// as a rolled-back insert (see [`Trail`]).
pub const GAP_WAIT: Duration = Duration::from_secs(30);
/// The longest wait between tries of one post.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which events of the trail are done with (posted, or passed over).
///
/// PostgreSQL hands out ids when rows are inserted, not when they commit,
/// so an event can become visible after one with a higher id: following
/// the trail by "the highest id seen" would skip it. `Trail` keeps a
/// `floor` (every id at or below it is done with) and the ids above it
/// already done; a hole between them is waited for, for [`GAP_WAIT`], and
/// then taken as an insert that rolled back (ids are not reused). SQLite
/// commits one writer at a time, in id order, so there it has no holes to
/// wait for.
#[derive(Debug)]
pub struct Trail {
    floor: i64,
    done: BTreeSet<i64>,
    holes: BTreeMap<i64, Instant>,
}

impl Trail {
    pub fn new(floor: i64) -> Trail {
        Trail {
            floor,
            done: BTreeSet::new(),
            holes: BTreeMap::new(),
        }
    }

    /// Every id at or below this is done with.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    pub fn is_done(&self, id: i64) -> bool {
        id <= self.floor || self.done.contains(&id)
    }

    pub fn mark_done(&mut self, id: i64) {
        if id > self.floor {
            self.done.insert(id);
        }
    }

    /// After a read above the floor that found `read` (ascending): note the
    /// holes below its highest id, then move the floor over what is done
    /// and over holes older than `wait`. Returns the floor.
    pub fn settle(&mut self, read: &[i64], now: Instant, wait: Duration) -> i64 {
        if let Some(&top) = read.last() {
            let found: BTreeSet<i64> = read.iter().copied().collect();
            for id in self.floor + 1..top {
                if !found.contains(&id) && !self.done.contains(&id) {
                    self.holes.entry(id).or_insert(now);
                }
            }
        }
        loop {
            let next = self.floor + 1;
            // Done, or a hole waited for long enough: either way passed.
            let passed = self.done.remove(&next)
                || self
                    .holes
                    .get(&next)
                    .is_some_and(|seen| now.duration_since(*seen) >= wait);
            if !passed {
                break;
            }
            self.holes.remove(&next);
            self.floor = next;
        }
        self.floor
    }
}

/// `vigil_notify_total{outcome}` and `vigil_notify_leading`.
#[derive(Clone)]
pub struct NotifyMetrics {
    pub outcomes: IntCounterVec,
    pub leading: IntGauge,
}

impl NotifyMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<NotifyMetrics> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "vigil_notify_total",
                "Alert events and the webhook: sent, failed (a try that got no 2xx), expired (older than notify.max_age before it could be sent), skipped (not an action or severity asked for)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        for o in ["sent", "failed", "expired", "skipped"] {
            outcomes.with_label_values(&[o]);
        }
        let leading = IntGauge::new(
            "vigil_notify_leading",
            "1 while this instance holds the alert webhook's lease and posts; 0 while another does (or none can)",
        )?;
        registry.register(Box::new(leading.clone()))?;
        Ok(NotifyMetrics { outcomes, leading })
    }
}

/// The body posted for one event: pseudonymous (ids, never a name or an
/// NHS number), with a link to the patient's page when the dashboard's
/// address is configured, and the patient's escalation plan (`hospital`,
/// `home`, `comfort`; null if none is recorded): its category only, never
/// its details, which are free text.
pub fn payload(
    ev: &AlertEventRef,
    alert: &AlertRow,
    ward: Option<&str>,
    escalation_plan: Option<&str>,
    dashboard_url: Option<&str>,
) -> serde_json::Value {
    json!({
        "event_id": ev.id,
        "ward": ward,
        "escalation_plan": escalation_plan,
        "action": ev.action,
        "at": ev.at,
        "actor": ev.actor,
        "alert": {
            "id": alert.id,
            "patient_id": alert.patient_id,
            "ward_id": alert.ward_id,
            "rule_id": alert.rule_id,
            "severity": alert.severity,
            "status": alert.status,
            "message": alert.message,
            "count": alert.count,
            "raised_at": alert.raised_at,
            "escalate_at": alert.escalate_at,
        },
        "link": dashboard_url.map(|d| format!("{d}/#/patients/{}", alert.patient_id)),
    })
}

/// `sha256=` and the hex HMAC-SHA256, under `secret`, of `{timestamp}.{body}`:
/// what `X-Vigil-Signature` carries (the timestamp is `X-Vigil-Timestamp`,
/// so a receiver can refuse an old post replayed).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The HTTP client for `settings`: TLS through Vigil's own rustls set-up,
/// trusting `notify.ca_file` or the system's store.
pub fn client(settings: &NotifySettings) -> anyhow::Result<reqwest::Client> {
    crate::outbound::client(
        settings.webhook_url.starts_with("https://"),
        "notify.ca_file",
        settings.ca_file.as_deref(),
        POST_TIMEOUT,
    )
}

/// POST `body` (event `event_id`) to the webhook, signed now.
async fn post(
    client: &reqwest::Client,
    settings: &NotifySettings,
    event_id: i64,
    body: &str,
) -> reqwest::Result<reqwest::Response> {
    let ts = chrono::Utc::now().timestamp();
    client
        .post(&settings.webhook_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Vigil-Event", event_id.to_string())
        .header("X-Vigil-Timestamp", ts.to_string())
        .header(
            "X-Vigil-Signature",
            signature(&settings.secret, ts, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
}

/// `vigil admin notify test`: one post of a test event (`event_id` 0,
/// `action` `test`, no alert), signed as every post is, so the trust can
/// check its receiver end to end before go-live. The receiver's status
/// when it is a 2xx; otherwise the one-line reason.
pub async fn post_test(
    settings: &NotifySettings,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<u16, String> {
    let client = client(settings).map_err(|e| format!("notify: {e:#}"))?;
    let body = json!({
        "event_id": 0,
        "action": "test",
        "at": at,
        "actor": "vigil-admin",
        "alert": null,
        "link": settings.dashboard_url,
    })
    .to_string();
    match post(&client, settings, 0, &body).await {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => Err(format!(
            "notify.webhook_url: the receiver answered {}",
            r.status()
        )),
        Err(e) => Err(format!("notify.webhook_url: {e}")),
    }
}

/// Follow the alert trail and post what `settings` asks for, until `cancel`.
///
/// Several instances may share one database; only the one holding the
/// webhook's lease posts (see [`lead`]), so a page is sent once, not once
/// per instance. The others stand by and take over when its lease lapses.
pub async fn run(
    store: Arc<dyn Store>,
    settings: NotifySettings,
    client: reqwest::Client,
    metrics: NotifyMetrics,
    cancel: CancellationToken,
) {
    // The progress row first: the lease is held on it.
    let Some(ready) = progress(store.as_ref(), &cancel).await else {
        return;
    };
    tracing::info!(from_event = ready, "alert webhook started");
    let (tx, mut terms) = tokio::sync::watch::channel(None);
    let leading = tokio::spawn(lead(
        store.clone(),
        settings.takeover_after,
        metrics.clone(),
        tx,
        cancel.clone(),
    ));
    'run: loop {
        // Stand by until this instance holds the lease.
        let term = loop {
            if let Some(t) = terms.borrow_and_update().clone() {
                break t;
            }
            tokio::select! {
                changed = terms.changed() => if changed.is_err() { break 'run },
                () = cancel.cancelled() => break 'run,
            }
        };
        let notifier = Notifier {
            store: store.clone(),
            settings: settings.clone(),
            client: client.clone(),
            metrics: metrics.clone(),
            cancel: term,
        };
        notifier.follow().await;
        if cancel.is_cancelled() {
            break;
        }
        tracing::info!("alert webhook: another instance posts now; standing by");
    }
    // Stopping: wait for the lease to be given up, so that a restart, or
    // another instance, takes over at once rather than after its lapse.
    let _ = leading.await;
}

/// The recorded progress, read until it can be; `None` if cancelled first.
async fn progress(store: &dyn Store, cancel: &CancellationToken) -> Option<i64> {
    loop {
        match store.notify_progress().await {
            Ok(f) => return Some(f),
            Err(e) => {
                tracing::error!(error = %e, "alert webhook: cannot read its progress; trying again");
                if sleep_or_cancel(Duration::from_secs(5), cancel).await {
                    return None;
                }
            }
        }
    }
}

/// How often an instance that does not hold the lease tries for it.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// Hold the webhook's lease for as long as this instance can, renewing it
/// three times a lapse. Each term this instance holds it is sent on `terms`
/// as a token that is cancelled when the term ends (the lease lost to
/// another instance, or the database unreachable to renew it), so a post
/// is not tried again once another instance may be posting. Cancelled, it
/// gives the lease up, so a standby takes over at once rather than after
/// the lapse.
async fn lead(
    store: Arc<dyn Store>,
    lapse: Duration,
    metrics: NotifyMetrics,
    terms: tokio::sync::watch::Sender<Option<CancellationToken>>,
    cancel: CancellationToken,
) {
    let holder = vigil_store::secrets::random_id(16);
    let mut term: Option<CancellationToken> = None;
    loop {
        let held = match store.notify_lease(&holder, lapse).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "alert webhook: cannot renew its lease");
                false
            }
        };
        match (held, &term) {
            (true, None) => {
                let t = cancel.child_token();
                tracing::info!("alert webhook: this instance posts");
                term = Some(t.clone());
                terms.send_replace(Some(t));
            }
            (false, Some(t)) => {
                t.cancel();
                term = None;
                terms.send_replace(None);
            }
            _ => {}
        }
        metrics.leading.set(i64::from(held));
        let wait = if held { lapse / 3 } else { STANDBY_POLL };
        if sleep_or_cancel(wait, &cancel).await {
            break;
        }
    }
    metrics.leading.set(0);
    if term.is_some()
        && let Err(e) = store.notify_release(&holder).await
    {
        tracing::warn!(error = %e, "alert webhook: cannot give up its lease (another instance takes over when it lapses)");
    }
}

impl Notifier {
    /// Post from the trail where the recorded progress says, until the
    /// term ends.
    async fn follow(&self) {
        let store = &self.store;
        let cancel = &self.cancel;
        // Read again now: another instance may have posted since.
        let Some(floor) = progress(store.as_ref(), cancel).await else {
            return;
        };
        let mut trail = Trail::new(floor);
        loop {
            let read = match store.alert_events_after(trail.floor(), BATCH).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "alert webhook: cannot read the alert trail");
                    if sleep_or_cancel(Duration::from_secs(5), cancel).await {
                        return;
                    }
                    continue;
                }
            };
            for ev in &read {
                if trail.is_done(ev.id) {
                    continue;
                }
                if !self.deliver(ev).await {
                    return; // the term ended
                }
                trail.mark_done(ev.id);
            }
            let ids: Vec<i64> = read.iter().map(|e| e.id).collect();
            let before = trail.floor();
            let floor = trail.settle(&ids, Instant::now(), GAP_WAIT);
            if floor != before
                && let Err(e) = store.set_notify_progress(floor).await
            {
                // Kept in memory; at worst a restart posts these again.
                tracing::warn!(error = %e, "alert webhook: cannot record its progress");
            }
            let full = read.len() as i64 >= BATCH;
            if !full && sleep_or_cancel(POLL, cancel).await {
                return;
            }
        }
    }
}

/// Sleep `d`; `true` if cancelled meanwhile.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

struct Notifier {
    store: Arc<dyn Store>,
    settings: NotifySettings,
    client: reqwest::Client,
    metrics: NotifyMetrics,
    cancel: CancellationToken,
}

impl Notifier {
    fn count(&self, outcome: &str) {
        self.metrics.outcomes.with_label_values(&[outcome]).inc();
    }

    /// Post `ev` if it is wanted, trying until it is sent or too old;
    /// `false` if cancelled (or the term ended) first.
    async fn deliver(&self, ev: &AlertEventRef) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        if !self.settings.actions.contains(&ev.action) {
            self.count("skipped");
            return true;
        }
        let mut backoff = Duration::from_secs(1);
        let alert = loop {
            match self.store.alert_get(ev.alert_id).await {
                Ok(a) => break a,
                Err(e) => {
                    tracing::warn!(error = %e, event = ev.id, "alert webhook: cannot read the alert");
                    if sleep_or_cancel(backoff, &self.cancel).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        let Some(alert) = alert.filter(|a| a.severity >= self.settings.min_severity) else {
            self.count("skipped");
            return true;
        };
        // The ward's name, for the receiver to route the page to its team.
        let ward = match self.store.ward_find(&alert.ward_id.to_string()).await {
            Ok(w) => w.map(|w| w.name),
            Err(e) => {
                tracing::warn!(error = %e, "alert webhook: cannot read the ward's name");
                None
            }
        };
        // What was agreed about a deterioration, for whoever is paged with
        // no dashboard open (hazard DB-24).
        let plan = match self.store.episode_settings(alert.patient_id).await {
            Ok(s) => s.and_then(|s| s.escalation_plan),
            Err(e) => {
                tracing::warn!(error = %e, "alert webhook: cannot read the patient's escalation plan");
                None
            }
        };
        let body = payload(
            ev,
            &alert,
            ward.as_deref(),
            plan.as_deref(),
            self.settings.dashboard_url.as_deref(),
        )
        .to_string();
        let max_age =
            chrono::Duration::from_std(self.settings.max_age).unwrap_or(chrono::Duration::MAX);
        loop {
            if chrono::Utc::now() - ev.at > max_age {
                tracing::warn!(event = ev.id, alert_id = alert.id, action = %ev.action, "alert webhook: event older than notify.max_age, not posted");
                self.count("expired");
                return true;
            }
            let sent = post(&self.client, &self.settings, ev.id, &body).await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    self.count("sent");
                    tracing::debug!(event = ev.id, alert_id = alert.id, "alert webhook: posted");
                    return true;
                }
                Ok(r) => {
                    self.count("failed");
                    tracing::warn!(event = ev.id, status = r.status().as_u16(), retry_in = ?backoff, "alert webhook: the receiver refused a post");
                }
                Err(e) => {
                    self.count("failed");
                    tracing::warn!(event = ev.id, error = %e, retry_in = ?backoff, "alert webhook: a post failed");
                }
            }
            if sleep_or_cancel(backoff, &self.cancel).await {
                return false;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    #[test]
    fn the_floor_moves_over_what_is_done_and_waits_for_a_hole() {
        let t0 = Instant::now();
        let mut t = Trail::new(10);
        assert!(t.is_done(10) && !t.is_done(11));
        // 11, 12 and 14 read and done; 13 not yet visible (committing late).
        for id in [11, 12, 14] {
            t.mark_done(id);
        }
        assert_eq!(t.settle(&[11, 12, 14], t0, WAIT), 12);
        assert!(t.is_done(14), "done above the floor is remembered");
        assert!(!t.is_done(13));
        // 13 appears within the wait: done, and the floor moves past 14.
        t.mark_done(13);
        assert_eq!(t.settle(&[13, 14], t0 + Duration::from_secs(5), WAIT), 14);
    }

    #[test]
    fn a_hole_that_never_fills_is_passed_after_the_wait() {
        let t0 = Instant::now();
        let mut t = Trail::new(0);
        for id in [1, 3] {
            t.mark_done(id);
        }
        assert_eq!(t.settle(&[1, 3], t0, WAIT), 1);
        // The hole's age counts from when it was first seen.
        assert_eq!(t.settle(&[3], t0 + Duration::from_secs(29), WAIT), 1);
        assert_eq!(t.settle(&[3], t0 + WAIT, WAIT), 3);
    }

    #[test]
    fn an_empty_read_changes_nothing() {
        let mut t = Trail::new(7);
        assert_eq!(t.settle(&[], Instant::now(), WAIT), 7);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_and_body() {
        // The expected value from Python's hmac module, independently:
        // hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        let s = signature("Jefe", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(
            s,
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }
}
