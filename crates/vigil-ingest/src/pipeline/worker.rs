//! The scoring stage of the ingest: ECG analysis, NEWS2, the pathway
//! rules engine and alerts, on work the intake has committed and acked
//! (decision 0006). One task; when it falls behind, everything queued for
//! it is merged into one pass.

use super::*;

/// The scoring stage: ECG analysis, NEWS2, the rules engine and alerts.
pub(super) struct Worker {
    ecg: ecg::EcgAnalysis,
    /// The pathway rules engine and, per patient it knows, their ward.
    engine: vigil_rules::Engine,
    /// The patients the rules engine knows, with the episode they were
    /// admitted to it with.
    in_engine: HashMap<i64, vigil_store::EpisodeSettings>,
    /// Stored observations waiting for the rules engine (after scoring).
    feed: Vec<(i64, vigil_clinical::Reading)>,
    /// When the earliest message of the pass being processed arrived.
    batch_received: chrono::DateTime<Utc>,
    /// Per patient, the score history the built-in alerts compare with
    /// (this worker is the only writer of scores).
    history: HashMap<i64, ScoreHistory>,
    /// Per patient scored since the start, the stored readings NEWS2 reads
    /// (this worker is told of every one stored since).
    readings: super::readings::Readings,
    /// Per patient whose live alerts were read, the rules with a live
    /// alert: lets `auto_resolve` skip the store when nothing could
    /// resolve. Only this worker raises alerts, so the set may hold rules
    /// a person has resolved since (costing one read), never miss one.
    open_rules: Mutex<HashMap<i64, BTreeSet<String>>>,
    /// When the engine's patients are next compared with the active
    /// episodes (`sync_patients`).
    next_sync: tokio::time::Instant,
    /// (patient, device) the engine stopped watching because the device
    /// is no longer the patient's: their live device alerts are resolved
    /// at the next sync.
    moved_devices: Vec<(i64, String)>,
    /// The episodes open at the first patient sync and not yet taken into
    /// the engine: taking them in announces no admission.
    active_at_start: Option<BTreeSet<i64>>,
    /// The patients (with their ward) whose admission open dashboards have
    /// been told of since the daemon started, or taken in from
    /// `active_at_start`: each is told of their discharge once. Apart from
    /// the engine's own bookkeeping, which a pass may change first (a
    /// reading taking a new patient in, or finding one discharged).
    told: BTreeMap<i64, i64>,
    /// The worker's progress as last known stored (read at each catch-up,
    /// moved by each pass that stored): tells whether a pass whose commit
    /// reported an error happened all the same.
    stored_progress: i64,
    /// Per ECG patch, the highest chunk seq this worker has analysed: a
    /// catch-up after a failed commit takes up only what it has not.
    ecg_analysed: HashMap<String, u32>,
    /// Per device, the patient and the `config` (measurement schedule) it
    /// was last sent for them since the daemon started
    /// ([`Worker::tell_kit`]).
    kit_told: HashMap<String, (i64, serde_json::Value)>,
    client: AsyncClient,
    store: Arc<dyn Store>,
    events: vigil_store::LiveHub,
    metrics: IngestMetrics,
}

/// How often the rules engine's patients are brought into line with the
/// active episodes: how long an admission (through the API or from another
/// process) can go before its missed-reading clock runs.
/// Reads of the worker's progress after a failed commit before the pass
/// is taken as not stored ([`Worker::pass_was_stored`]).
const PROGRESS_READS: u32 = 5;

const PATIENT_SYNC: Duration = Duration::from_secs(5);

/// At most this many patients taken into the engine by one sync, so that a
/// start with thousands of episodes does not hold up the passes.
const SYNC_BATCH: usize = 200;

/// The newest row of each code measured at or before a time (ties: the
/// later insert), as `Store::latest_per_code` answers, for times asked in
/// ascending order, from rows read once.
struct AsOf {
    latest: BTreeMap<String, ObservationRow>,
    /// Rows measured after the base, oldest first, not yet applied.
    later: std::collections::VecDeque<ObservationRow>,
}

impl AsOf {
    fn new(base: Vec<ObservationRow>, mut later: Vec<ObservationRow>) -> AsOf {
        later.sort_by_key(|r| (r.measured_at, r.id));
        let mut a = AsOf {
            latest: BTreeMap::new(),
            later: later.into(),
        };
        for r in base {
            a.apply(r);
        }
        a
    }

    fn apply(&mut self, r: ObservationRow) {
        let newer = self
            .latest
            .get(&r.code)
            .is_none_or(|l| (r.measured_at, r.id) > (l.measured_at, l.id));
        if newer {
            self.latest.insert(r.code.clone(), r);
        }
    }

    /// The latest of each code as of `at` (not before the previous `at`).
    fn at(&mut self, at: chrono::DateTime<Utc>) -> Vec<ObservationRow> {
        while self.later.front().is_some_and(|r| r.measured_at <= at) {
            if let Some(r) = self.later.pop_front() {
                self.apply(r);
            }
        }
        self.latest.values().cloned().collect()
    }
}

/// A patient's stored scores from `from` on, in time order, and the time
/// of their newest score of all.
struct ScoreHistory {
    from: chrono::DateTime<Utc>,
    latest: Option<chrono::DateTime<Utc>>,
    rows: Vec<(chrono::DateTime<Utc>, Option<i64>, Option<String>)>,
}

/// The newest score of the day before (total, risk), and the day's lowest total.
type DayBefore = (Option<(Option<i64>, Option<String>)>, Option<i64>);

impl ScoreHistory {
    /// The previous day's scores up to and including `at`, none measured
    /// before `since` (the end of the patient's earlier stay: a patient
    /// admitted again has its scores, and a score in the band that stay
    /// ended in must raise its alert anew, hazard AL-29): the newest of
    /// them (total, risk) and their lowest total.
    fn day_before(
        &self,
        at: chrono::DateTime<Utc>,
        since: Option<chrono::DateTime<Utc>>,
    ) -> DayBefore {
        let end = self.rows.partition_point(|r| r.0 <= at);
        let day = at - chrono::Duration::hours(24);
        let from = since.map_or(day, |s| s.max(day));
        let start = self.rows.partition_point(|r| r.0 < from);
        let day = &self.rows[start..end.max(start)];
        (
            day.last().map(|r| (r.1, r.2.clone())),
            day.iter().filter_map(|r| r.1).min(),
        )
    }

    /// The time of the newest score measured at or before `by`, if any
    /// since `from` (none means every time from `from` on is after it).
    fn newest_by(&self, by: chrono::DateTime<Utc>) -> Option<chrono::DateTime<Utc>> {
        if self.latest.is_some_and(|l| l <= by) {
            return self.latest;
        }
        let end = self.rows.partition_point(|r| r.0 <= by);
        end.checked_sub(1).map(|i| self.rows[i].0)
    }

    /// Record a score just computed (after equal times, as the store orders them).
    fn add(&mut self, at: chrono::DateTime<Utc>, total: Option<i64>, risk: Option<String>) {
        let i = self.rows.partition_point(|r| r.0 <= at);
        self.rows.insert(i, (at, total, risk));
        self.latest = self.latest.max(Some(at));
        // Keep a day and a bit behind the newest: older rows only matter
        // to a reading more than a day late, which reloads.
        if let Some(newest) = self.latest {
            let keep_from = newest - chrono::Duration::hours(25);
            if self.from < keep_from {
                let old = self.rows.partition_point(|r| r.0 < keep_from);
                self.rows.drain(..old);
                self.from = keep_from;
            }
        }
    }
}

impl Worker {
    pub(super) fn new(
        pathways: vigil_rules::Pathways,
        client: AsyncClient,
        store: Arc<dyn Store>,
        events: vigil_store::LiveHub,
        metrics: IngestMetrics,
    ) -> Worker {
        Worker {
            ecg: ecg::EcgAnalysis::default(),
            // The daemon raises NEWS2 alerts from its stored scores
            // (crate::alerts): the engine's own would be dropped, and
            // keeping their history costs memory at every reading.
            engine: vigil_rules::Engine::new(pathways).without_news2_rules(),
            in_engine: HashMap::new(),
            feed: Vec::new(),
            batch_received: Utc::now(),
            history: HashMap::new(),
            readings: super::readings::Readings::default(),
            open_rules: Mutex::new(HashMap::new()),
            next_sync: tokio::time::Instant::now(),
            moved_devices: Vec::new(),
            active_at_start: None,
            told: BTreeMap::new(),
            stored_progress: 0,
            ecg_analysed: HashMap::new(),
            kit_told: HashMap::new(),
            client,
            store,
            events,
            metrics,
        }
    }

    pub(super) async fn run(
        mut self,
        mut stored: mpsc::Receiver<Stored>,
        mut rescore: mpsc::Receiver<i64>,
        mut rule_actions: mpsc::Receiver<RuleAction>,
        mut readings_deleted: mpsc::Receiver<()>,
        caught_up: oneshot::Sender<()>,
        cancel: CancellationToken,
    ) {
        tokio::select! {
            taken = self.catch_up() => match taken {
                Ok((0, 0)) => {}
                Ok((n, chunks)) => tracing::warn!(
                    observations = n,
                    ecg_chunks = chunks,
                    "scored the readings and analysed the ECG the last run stored and did not"
                ),
                Err(e) => tracing::error!(error = %e, "cannot read the readings the last run stored and did not score; they stay unscored"),
            },
            _ = cancel.cancelled() => return,
        }
        let _ = caught_up.send(());
        loop {
            if tokio::time::Instant::now() >= self.next_sync {
                // More to take in: again after one turn of the loop, so that
                // a large ward's start interleaves with passes.
                let more = self.sync_patients().await;
                self.next_sync =
                    tokio::time::Instant::now() + if more { Duration::ZERO } else { PATIENT_SYNC };
            }
            // Sleep until the engine's next timer (missed readings, device
            // offline) or the next patient sync.
            let now = Utc::now();
            let wake = self
                .engine
                .next_deadline()
                .map(|d| d.min(now + chrono::Duration::seconds(30)))
                .unwrap_or(now + chrono::Duration::seconds(30));
            let sleep = (wake - now).to_std().unwrap_or(Duration::ZERO).min(
                self.next_sync
                    .saturating_duration_since(tokio::time::Instant::now()),
            );
            tokio::select! {
                w = stored.recv() => {
                    let Some(mut w) = w else { break };
                    // Behind? Take everything committed since, as one pass.
                    let mut batches = 1;
                    while let Ok(more) = stored.try_recv() {
                        w.merge(more);
                        batches += 1;
                    }
                    self.metrics.pass_batches.observe(f64::from(batches));
                    if let Some(at) = w.received_at {
                        self.metrics.worker_lag.observe((Utc::now() - at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
                    }
                    let check = w.check.take();
                    {
                        let _timer = self.metrics.pass_seconds.start_timer();
                        self.pass(w).await;
                    }
                    if let Some(done) = check {
                        let _ = done.send(self.check_unsure_commit().await);
                    }
                }
                Some(patient) = rescore.recv() => {
                    let now = Utc::now();
                    self.batch_received = now;
                    self.in_engine.remove(&patient);
                    self.ensure_in_engine(patient).await;
                    let scored = self.score_new(BTreeMap::from([(patient, BTreeSet::from([now]))]), None).await;
                    self.store_pass(scored.rows, scored.pushes, scored.firings, PassProgress::default()).await;
                    // The observations asked for may have changed: the kit is told.
                    for device in self.engine.devices(patient) {
                        self.tell_kit(&device, patient, false).await;
                    }
                }
                Some(action) = rule_actions.recv() => self.forward_action(action),
                Some(()) = readings_deleted.recv() => self.readings.clear(),
                _ = tokio::time::sleep(sleep) => {
                    let now = Utc::now();
                    self.batch_received = now;
                    let outputs = self.engine.tick(now);
                    self.apply_outputs(outputs, now).await;
                }
                _ = cancel.cancelled() => break,
            }
        }
    }

    /// Take up what the intake stored that no pass finished: readings
    /// stored and acked by a daemon that stopped or crashed before its
    /// worker scored them (up to a few batches: the queue to the worker
    /// holds two). Without this they would raise no alert, NEWS2 or
    /// pathway rule, until the patient's next reading, which on spot
    /// checks may be hours away (hazard AL-19). Then the ECG chunks no
    /// pass analysed, each patch's in order (a fresh analysis per patch,
    /// as at any start): without it their heart rates would never be
    /// derived nor scored, nor their beats found (hazard TS-24).
    ///
    /// The same takes up a batch whose commit reported an error but may
    /// have happened ([`Worker::check_unsure_commit`]). Returns how many
    /// observations it scored and how many chunks it analysed.
    async fn catch_up(&mut self) -> Result<(usize, usize), vigil_store::StoreError> {
        let taken = self.catch_up_observations().await?;
        self.metrics
            .caught_up
            .with_label_values(&["observations"])
            .inc_by(taken as u64);
        let chunks = self.catch_up_ecg().await?;
        self.metrics
            .caught_up
            .with_label_values(&["ecg_chunks"])
            .inc_by(chunks as u64);
        Ok((taken, chunks))
    }

    async fn catch_up_observations(&mut self) -> Result<usize, vigil_store::StoreError> {
        const CHUNK: i64 = 10_000;
        let mut after = self.store.worker_progress().await?;
        self.stored_progress = self.stored_progress.max(after);
        let mut taken = 0;
        loop {
            let rows = self.store.observations_after(after, CHUNK).await?;
            let Some(last) = rows.last().map(|(_, r)| r.id) else {
                break;
            };
            let full = rows.len() as i64 == CHUNK;
            taken += rows.len();
            let mut w = Stored {
                // As when they were stored: the engine's rebuild replays
                // what was stored before them, and they come live.
                received_at: rows.iter().map(|(_, r)| r.received_at).min(),
                last_observation_id: Some(last),
                ..Stored::default()
            };
            for (patient, r) in rows {
                w.to_score.entry(patient).or_default().insert(r.measured_at);
                if let Some(reading) = crate::rules::stored_reading(&r) {
                    w.feed.push((patient, reading));
                }
            }
            self.pass(w).await;
            after = last;
            if !full {
                break;
            }
        }
        Ok(taken)
    }

    async fn catch_up_ecg(&mut self) -> Result<usize, vigil_store::StoreError> {
        const CHUNK: i64 = 2_000;
        let mut after: Option<(String, u32)> = None;
        let mut taken = 0;
        loop {
            let rows = self
                .store
                .ecg_unanalysed(after.as_ref().map(|(d, s)| (d.as_str(), *s)), CHUNK)
                .await?;
            let Some(last) = rows
                .last()
                .map(|r| (r.chunk.device_id.clone(), r.chunk.seq))
            else {
                break;
            };
            let full = rows.len() as i64 == CHUNK;
            let mut w = Stored {
                received_at: rows.iter().map(|r| r.received_at).min(),
                ..Stored::default()
            };
            let mut unreadable = PassProgress::default();
            for r in rows {
                if self
                    .ecg_analysed
                    .get(&r.chunk.device_id)
                    .is_some_and(|done| *done >= r.chunk.seq)
                {
                    continue;
                }
                match ecg::stored_chunk(&r.chunk) {
                    Ok(chunk) => w.ecg.push(PendingEcg {
                        at: w.ecg.len(),
                        device_id: r.chunk.device_id,
                        patient_id: r.patient_id,
                        ward_id: r.ward_id,
                        received_at: r.received_at,
                        chunk,
                    }),
                    Err(e) => {
                        // Stored valid at ingest: corrupt since. Passed
                        // over, not taken up again at every start.
                        tracing::error!(device = %r.chunk.device_id, seq = r.chunk.seq, error = %e, "a stored ECG chunk cannot be read; not analysed");
                        unreadable.ecg.push((r.chunk.device_id, r.chunk.seq));
                    }
                }
            }
            taken += w.ecg.len();
            if !w.ecg.is_empty() {
                self.pass(w).await;
            }
            if !unreadable.is_empty() {
                self.store.set_worker_progress(&unreadable).await?;
            }
            after = Some(last);
            if !full {
                break;
            }
        }
        Ok(taken)
    }

    /// After a batch whose commit reported an error: it may have been
    /// stored all the same (PostgreSQL losing the connection while it
    /// commits). Its messages were not acked, so the devices resend them,
    /// and the resends are duplicates, which feed nothing to scoring or
    /// the rules: without this, a deterioration in such a batch would
    /// raise no alert (hazard AL-25). The intake commits nothing until this
    /// answers, and every pass before it has moved the worker's progress,
    /// so what is stored above that progress is exactly that batch. `true`
    /// once checked (and scored, if it was stored); `false` if the store
    /// could not be read (the intake asks again).
    async fn check_unsure_commit(&mut self) -> bool {
        // A connection lost during COMMIT can fail before the server has
        // finished the commit: what finds nothing at once is read again,
        // further apart each time (1.5 s in all, as for a pass).
        let mut found = self.catch_up().await;
        for attempt in 1..PROGRESS_READS {
            if !matches!(found, Ok((0, 0))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            found = self.catch_up().await;
        }
        match found {
            Ok((0, 0)) => true,
            Ok((n, chunks)) => {
                tracing::warn!(
                    observations = n,
                    ecg_chunks = chunks,
                    "a batch whose commit reported an error was stored; its readings are scored and its ECG analysed"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether a batch whose commit reported an error was stored; the intake waits and asks again");
                false
            }
        }
    }

    /// Tell open dashboards a patient joined or left the ward (the API
    /// tells them at once for its own admissions and discharges; this
    /// covers `vigil admin` in another process, within a sync).
    fn announce_patient(&self, ward_id: i64, patient_id: i64, change: &str) {
        let _ = self.events.send(LiveEvent::Patient {
            ward_id,
            patient_id,
            change: change.into(),
        });
    }

    /// Push to open dashboards the alerts a discharge resolved (outcome
    /// `discharged`, in the discharge's own transaction), each as the
    /// `alert_update` the API sends for its own discharges: a discharge by
    /// `vigil admin` in another process would otherwise leave them in the
    /// dashboards' queues, where acting on one answers 409, until the next
    /// full load. A client may hear an API discharge's twice (docs/http.md).
    async fn announce_discharge_resolutions(&self, ward_id: i64, patient_id: i64) {
        // This discharge's, not an earlier stay's (a patient admitted again).
        let discharged_at = match self.store.patient_get(patient_id).await {
            Ok(p) => p.and_then(|p| p.episode).and_then(|e| e.discharged_at),
            Err(e) => {
                tracing::error!(error = %e, patient = patient_id, "cannot read a discharge; open dashboards drop its alerts at their next load");
                return;
            }
        };
        let Some(discharged_at) = discharged_at else {
            return;
        };
        let alerts = match self
            .store
            .alerts_list(&[ward_id], Some(AlertStatus::Resolved), Some(patient_id))
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, patient = patient_id, "cannot read the alerts a discharge resolved; open dashboards drop them at their next load");
                return;
            }
        };
        for alert in alerts.into_iter().filter(|a| {
            a.outcome.as_deref() == Some(vigil_store::DISCHARGED)
                && a.resolved_at.is_some_and(|t| t >= discharged_at)
        }) {
            // Who discharged: the resolution's own event names them.
            let actor = match self.store.alert_events(alert.id).await {
                Ok(ev) => ev
                    .into_iter()
                    .rev()
                    .find(|e| e.action == "resolved")
                    .map(|e| e.actor),
                Err(e) => {
                    tracing::warn!(error = %e, alert_id = alert.id, "cannot read who resolved an alert");
                    None
                }
            };
            let _ = self.events.send(LiveEvent::AlertUpdate {
                ward_id,
                alert,
                action: "resolved".into(),
                actor: actor.unwrap_or_else(|| "system".into()),
            });
        }
    }

    /// Stop watching, for each patient the engine holds, the devices no
    /// longer assigned to them (moved to another patient by `vigil admin
    /// device assign`, or unassigned): the engine would otherwise raise
    /// `device-offline` for a device that now reports for someone else
    /// (hazard AL-26). Part of every patient sync, which then resolves
    /// their device alerts; a device that has sent since the assignments
    /// were read is kept.
    async fn sync_devices(&mut self) {
        let read_at = Utc::now();
        let rows = match self.store.assigned_devices().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the devices' patients; the rules engine's devices are left as they are");
                return;
            }
        };
        let mut assigned: HashMap<i64, BTreeSet<String>> = HashMap::new();
        for (patient, device) in rows {
            assigned.entry(patient).or_default().insert(device);
        }
        let none = BTreeSet::new();
        let patients: Vec<i64> = self.in_engine.keys().copied().collect();
        for p in patients {
            let gone =
                self.engine
                    .forget_devices_except(p, assigned.get(&p).unwrap_or(&none), read_at);
            if !gone.is_empty() {
                tracing::debug!(
                    patient = p,
                    devices = gone.len(),
                    "devices no longer the patient's: not watched for them"
                );
            }
            self.moved_devices.extend(gone.into_iter().map(|d| (p, d)));
        }
        // The kits' schedules follow the devices: one given to a patient
        // (or moved to another, or connected since before a restart) is
        // told theirs; one taken back from its patient is told that nothing
        // is asked of it.
        let owner: HashMap<&str, i64> = assigned
            .iter()
            .flat_map(|(p, ds)| ds.iter().map(move |d| (d.as_str(), *p)))
            .collect();
        let stale: Vec<String> = self
            .kit_told
            .iter()
            .filter(|(d, (p, _))| owner.get(d.as_str()) != Some(p))
            .map(|(d, _)| d.clone())
            .collect();
        for device in stale {
            self.kit_told.remove(&device);
            if !owner.contains_key(device.as_str()) {
                send_cmd(&self.client, &device, no_schedule()).await;
            }
        }
        for (device, patient) in owner {
            if self.in_engine.contains_key(&patient) && !self.kit_told.contains_key(device) {
                self.tell_kit(device, patient, false).await;
            }
        }
    }

    /// Resolve, as the system, the live device alerts (`device-offline`,
    /// `device-battery-low`, `device-lead-off`) of each device the engine
    /// stopped watching for a patient: the device is someone else's now,
    /// or no one's, so the alert is not about this patient (left open, it
    /// would sit in the queue and escalate). Clinical alerts, such as the
    /// patch's possible-AF prompt, are the patient's and stay.
    async fn resolve_moved_devices(&mut self) {
        let mut by_patient: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (patient, device) in std::mem::take(&mut self.moved_devices) {
            by_patient.entry(patient).or_default().extend(
                ["device-offline", "device-battery-low", "device-lead-off"]
                    .map(|kind| format!("{kind}:{device}")),
            );
        }
        for (patient, rules) in by_patient {
            self.auto_resolve_as(
                patient,
                &rules,
                vigil_store::DEVICE_UNASSIGNED,
                "the device is no longer this patient's (moved, unassigned or revoked)",
            )
            .await;
        }
    }

    /// Keep every active episode in the rules engine, not only the patients
    /// who have sent something since the daemon started: a patient who
    /// stops measuring, or never starts, is the one whose missed-reading
    /// and device-offline timers must run, and the engine runs timers only
    /// for the patients it holds (hazard AL-20). At start (after the
    /// catch-up) and every [`PATIENT_SYNC`]: admissions through the API or
    /// from another process are taken up, discharges leave the engine.
    /// Takes in at most [`SYNC_BATCH`] patients a call (each is a few
    /// reads); `true` if more are waiting.
    async fn sync_patients(&mut self) -> bool {
        self.sync_devices().await;
        let active = match self.store.active_patients().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the active episodes; the rules engine's patients are left as they are");
                return false;
            }
        };
        let keep: BTreeSet<i64> = active.iter().copied().collect();
        // The episodes open when the daemon started are not admissions to
        // announce (taken in over the first syncs, SYNC_BATCH at a time).
        let at_start = self.active_at_start.get_or_insert_with(|| keep.clone());
        let gone_since_start: Vec<i64> = at_start
            .iter()
            .filter(|p| !keep.contains(p))
            .copied()
            .collect();
        at_start.retain(|p| keep.contains(p));
        // Dashboards drop the patient and the alerts the discharge
        // resolved: a discharge from another process (`vigil admin`) sends
        // no events of its own. Whom to tell, with their ward where known:
        // those this worker told of (a pass may have found the discharge
        // before the engine's bookkeeping here), those the engine holds but
        // no sync told of yet (admitted and discharged between two syncs,
        // taken in by a pass), and those open at start.
        let mut discharged: BTreeMap<i64, Option<i64>> =
            gone_since_start.into_iter().map(|p| (p, None)).collect();
        for (p, s) in &self.in_engine {
            if !keep.contains(p) {
                discharged.insert(*p, Some(s.ward_id));
            }
        }
        for (p, w) in &self.told {
            if !keep.contains(p) {
                discharged.insert(*p, Some(*w));
            }
        }
        for (p, ward) in discharged {
            self.told.remove(&p);
            let ward = match ward {
                Some(w) => Some(w),
                None => self
                    .store
                    .patient_get(p)
                    .await
                    .ok()
                    .flatten()
                    .map(|d| d.ward_id),
            };
            if let Some(ward) = ward {
                self.announce_discharge_resolutions(ward, p).await;
                self.announce_patient(ward, p, "discharged");
            }
        }
        let gone: Vec<i64> = self
            .in_engine
            .keys()
            .filter(|p| !keep.contains(p))
            .copied()
            .collect();
        for p in &gone {
            self.discharge_from_engine(*p).await;
            self.in_engine.remove(p);
            // And what the worker held for scoring them: a day of scores
            // and the readings scoring reads, which a discharged patient
            // would otherwise keep in memory for the daemon's lifetime.
            self.history.remove(p);
            self.readings.forget(*p);
            // Their live alerts were resolved by the discharge.
            if let Ok(mut open) = self.open_rules.lock() {
                open.remove(p);
            }
        }
        // What is stored now is history to the engine: its readings are
        // replayed, outputs dropped (their alerts are stored already).
        self.batch_received = Utc::now();
        let new: Vec<i64> = active
            .iter()
            .copied()
            .filter(|p| !self.in_engine.contains_key(p))
            .collect();
        let more = new.len() > SYNC_BATCH;
        let mut added = 0;
        for p in new.into_iter().take(SYNC_BATCH) {
            if self.ensure_in_engine(p).await.is_some() {
                added += 1;
            }
        }
        // Admissions: every patient in the engine now and not yet told of,
        // however they came in (this sync, or a pass whose reading came
        // first), except those open when the daemon started.
        for p in active {
            if self.told.contains_key(&p) {
                continue;
            }
            let Some(ward) = self.in_engine.get(&p).map(|s| s.ward_id) else {
                continue;
            };
            let known = self.active_at_start.as_mut().is_some_and(|s| s.remove(&p));
            if !known {
                self.announce_patient(ward, p, "admitted");
            }
            self.told.insert(p, ward);
        }
        if added > 0 {
            tracing::debug!(
                patients = added,
                more,
                "episodes taken into the rules engine"
            );
        }
        self.resolve_moved_devices().await;
        // None taken in (the store failing): wait for the next sync.
        more && added > 0
    }

    /// Everything after the commit, for one pass of stored work.
    async fn pass(&mut self, w: Stored) {
        let stages = self.metrics.pass_stage.clone();
        let mut clock = StageClock::new(&stages);
        let now = Utc::now();
        self.batch_received = w.received_at.unwrap_or(now);
        let mut to_score = w.to_score;
        self.feed.extend(w.feed);
        let mut progress = PassProgress {
            observation_id: w.last_observation_id,
            ecg: Vec::new(),
        };
        for c in &w.ecg {
            let done = self
                .ecg_analysed
                .entry(c.device_id.clone())
                .or_insert(c.chunk.seq);
            *done = (*done).max(c.chunk.seq);
            progress.ecg.push((c.device_id.clone(), c.chunk.seq));
        }
        let beats = self.analyse_ecg(w.ecg, now, &mut to_score).await;
        // The readings held for scoring learn of every one just stored, and
        // forget patients who may have readings stored that they were not
        // told of.
        for patient in &w.unsure {
            self.readings.forget(*patient);
        }
        for (patient, r) in &self.feed {
            if let Some(row) = super::readings::scored_row(r, now) {
                self.readings.stored(*patient, row);
            }
        }
        clock.lap("ecg");
        // Scoring happens after the acks: a reading is safe once stored,
        // and a scoring failure must never make a device resend.
        let scored = self.score_new(to_score, Some(&mut clock)).await;
        let mut settings = scored.settings;
        // Then the pathway rules see every new observation, and
        // missed-reading and device-offline alerts resolve themselves now
        // that data has resumed.
        let feed = std::mem::take(&mut self.feed);
        let mut resumed: BTreeMap<i64, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        let mut outputs = Vec::new();
        for (patient, reading) in feed {
            let entry = resumed.entry(patient).or_default();
            entry
                .0
                .insert(reading.observation.code.as_str().to_string());
            if let Some(d) = reading
                .source
                .as_ref()
                .filter(|d| vigil_clinical::entered_by(d).is_none())
            {
                entry.1.insert(d.clone());
            }
            outputs.extend(self.observe(patient, reading, now).await);
        }
        // All the pass's rule outputs together, in order, with the episodes
        // scoring has just read: no read per output.
        let mut firings = scored.firings;
        firings.extend(self.rule_effects(outputs, now, &settings).await);
        clock.lap("rules");
        // The pass's scores, NEWS2 alerts and rule alerts in one
        // transaction (one turn of SQLite's write lock, not three).
        self.store_pass(scored.rows, scored.pushes, firings, progress)
            .await;
        clock.lap("store");
        // Beats nothing in this pass waited for: stored once its alerts
        // are out, so that their turn of the write lock is not on an
        // alert's way to the dashboard.
        if !beats.is_empty()
            && let Err(e) = self.store.store_beats(&beats).await
        {
            tracing::error!(error = %e, patches = beats.len(), "storing beats failed");
        }
        clock.lap("beats");
        for (patient, (codes, devices)) in resumed {
            let mut rules: Vec<String> = devices
                .iter()
                .map(|d| format!("device-offline:{d}"))
                .collect();
            let s = match settings.remove(&patient) {
                Some(s) => Some(s),
                None => self.store.episode_settings(patient).await.ok().flatten(),
            };
            if let Some(p) = s.and_then(|s| self.engine.pathways().get(&s.pathway)) {
                for e in &p.expects {
                    if e.codes.iter().any(|c| codes.contains(c.as_str())) {
                        rules.push(e.id.clone());
                    }
                }
            }
            self.auto_resolve(patient, &rules, "readings resumed").await;
        }
        clock.lap("resolve");
        self.statuses(w.statuses).await;
        clock.lap("status");
    }

    /// Resolve the live alerts of `rules` for `patient` as the system: a
    /// missed-reading or device alert whose cause has gone. Clinical alerts
    /// are never passed here: they need a person.
    async fn auto_resolve(&mut self, patient: i64, rules: &[String], why: &str) {
        self.auto_resolve_as(patient, rules, vigil_store::DATA_RESUMED, why)
            .await;
    }

    /// [`Worker::auto_resolve`] with the system's `outcome`.
    async fn auto_resolve_as(&mut self, patient: i64, rules: &[String], outcome: &str, why: &str) {
        if rules.is_empty() {
            return;
        }
        let known_clear = self
            .open_rules
            .lock()
            .map(|o| {
                o.get(&patient)
                    .is_some_and(|live| !rules.iter().any(|r| live.contains(r)))
            })
            .unwrap_or(false);
        if known_clear {
            return;
        }
        let Some(ward) = self.ensure_in_engine(patient).await else {
            return;
        };
        let live = match self.store.alerts_list(&[ward], None, Some(patient)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read alerts to resolve");
                return;
            }
        };
        let live: Vec<_> = live
            .into_iter()
            .filter(|a| a.status != AlertStatus::Resolved)
            .collect();
        let mut open: BTreeSet<String> = live.iter().map(|a| a.rule_id.clone()).collect();
        let now = Utc::now();
        for a in live.into_iter().filter(|a| rules.contains(&a.rule_id)) {
            let action = vigil_store::AlertAction::Resolve {
                outcome: outcome.into(),
                note: why.into(),
            };
            match self
                .store
                .alert_act(a.id, action.clone(), "system", now)
                .await
            {
                Ok(alert) => {
                    open.remove(&alert.rule_id);
                    tracing::info!(alert_id = alert.id, rule = %alert.rule_id, "alert resolved: {why}");
                    self.forward_action(RuleAction {
                        patient_id: patient,
                        rule_id: alert.rule_id.clone(),
                        action,
                        actor: "system".into(),
                        at: now,
                    });
                    let _ = self.events.send(LiveEvent::AlertUpdate {
                        ward_id: alert.ward_id,
                        alert,
                        action: "resolved".into(),
                        actor: "system".into(),
                    });
                }
                Err(e) => tracing::debug!(error = %e, "alert already resolved"),
            }
        }
        if let Ok(mut o) = self.open_rules.lock() {
            o.insert(patient, open);
        }
    }

    /// Make sure the engine knows `patient` with their current episode;
    /// returns their ward, or `None` (and forgets them) once discharged.
    async fn ensure_in_engine(&mut self, patient: i64) -> Option<i64> {
        if let Some(s) = self.in_engine.get(&patient) {
            return Some(s.ward_id);
        }
        let settings = match self.store.episode_settings(patient).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.discharge_from_engine(patient).await;
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, patient, "cannot load the episode for the rules engine");
                return None;
            }
        };
        // `devices`: those assigned to the patient now, if known.
        let (admitted_at, devices) = match self.store.patient_get(patient).await {
            Ok(Some(p)) => (
                p.episode.map(|e| e.admitted_at).unwrap_or_else(Utc::now),
                Some(p.devices),
            ),
            _ => (Utc::now(), None),
        };
        let fresh = !self.engine.holds_readings(patient);
        if let Err(e) = self
            .engine
            .admit(patient, crate::rules::setup(&settings, admitted_at))
        {
            tracing::error!(error = %e, patient, "rules engine refused the episode");
            return None;
        }
        let ward = settings.ward_id;
        let history = self
            .engine
            .pathways()
            .get(&settings.pathway)
            .map(vigil_rules::Pathway::trend_history)
            .unwrap_or_default();
        self.in_engine.insert(patient, settings);
        if fresh {
            // After a restart the engine knows nothing: give it what is
            // stored, so that missed-reading clocks and trends start from
            // the stored readings rather than from admission: the history
            // each trend call reads (`change("weight", "3d")` must compare
            // with the weight of three days ago, not with the newest one
            // before the restart; hazard AL-18), then the latest reading of
            // each code, and each device's last status report. Each is
            // replayed as of when it was received, so that a device's
            // offline clock runs from when it was last heard of, not from
            // the restart (hazard AL-21). Outputs of this replay are
            // dropped: whatever they would raise is already stored (alerts
            // merge per patient and rule).
            let now = Utc::now();
            let mut rows = Vec::new();
            for (code, back) in history {
                let q = vigil_store::ObservationQuery {
                    patient_id: patient,
                    code: Some(code.as_str().to_string()),
                    from: Some(now - back),
                    to: Some(now),
                    max_points: None,
                };
                match self.store.observations(q).await {
                    Ok(r) => rows.extend(r),
                    Err(e) => {
                        tracing::error!(error = %e, patient, code = code.as_str(), "cannot read the history a trend rule reads; its trends start from the newest reading")
                    }
                }
            }
            match self.store.latest_per_code(patient, now).await {
                Ok(r) => rows.extend(r),
                Err(e) => {
                    tracing::error!(error = %e, patient, "cannot read the latest readings for the rules engine")
                }
            }
            {
                // Only what was stored before the batch in hand: its own
                // readings reach the engine live, with their outputs.
                // (Stored times have millisecond precision.)
                let cutoff =
                    chrono::DateTime::from_timestamp_millis(self.batch_received.timestamp_millis())
                        .unwrap_or(self.batch_received);
                for r in rows.into_iter().filter(|r| r.received_at < cutoff) {
                    if let Some(reading) = crate::rules::stored_reading(&r) {
                        let _ = self.engine.observe(patient, reading, r.received_at);
                    }
                }
                let Some(devices) = devices else {
                    return Some(ward);
                };
                let assigned: BTreeSet<String> = devices.iter().map(|d| d.id.clone()).collect();
                for d in devices.into_iter().filter(|d| d.revoked_at.is_none()) {
                    if let Some(st) = d.status.filter(|st| st.reported_at < cutoff) {
                        let status = vigil_rules::DeviceStatus {
                            online: st.online,
                            battery_pct: st.battery_pct,
                            signal: st.signal,
                        };
                        let _ = self
                            .engine
                            .device_status(patient, &d.id, status, st.reported_at);
                    }
                }
                // Readings replayed from a device since moved to another
                // patient would start its offline clock here: it is not
                // this patient's to miss (hazard AL-26).
                let gone = self
                    .engine
                    .forget_devices_except(patient, &assigned, cutoff);
                // Their live device alerts are resolved at the next sync.
                self.moved_devices
                    .extend(gone.into_iter().map(|d| (patient, d)));
            }
        }
        Some(ward)
    }

    /// What the rules engine makes of a reading (outputs to apply).
    async fn observe(
        &mut self,
        patient: i64,
        reading: vigil_clinical::Reading,
        now: chrono::DateTime<Utc>,
    ) -> Vec<vigil_rules::Output> {
        if self.ensure_in_engine(patient).await.is_none() {
            return Vec::new();
        }
        match self.engine.observe(patient, reading, now) {
            Ok(outputs) => outputs,
            Err(e) => {
                tracing::error!(error = %e, patient, "rules engine refused an observation");
                Vec::new()
            }
        }
    }

    fn forward_action(&mut self, a: RuleAction) {
        let Some(id) = self
            .engine
            .open_alert(a.patient_id, &a.rule_id)
            .map(|al| al.id)
        else {
            return;
        };
        let r = match &a.action {
            vigil_store::AlertAction::Acknowledge => {
                self.engine.acknowledge(id, &a.actor, a.at, "").map(|_| ())
            }
            vigil_store::AlertAction::Resolve { outcome, note } => self
                .engine
                .resolve(id, &a.actor, a.at, outcome, note)
                .map(|_| ()),
            vigil_store::AlertAction::Escalate => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "engine alert already in that state");
        }
    }

    /// Persist and push what the engine decided.
    async fn apply_outputs(
        &mut self,
        outputs: Vec<vigil_rules::Output>,
        now: chrono::DateTime<Utc>,
    ) {
        let firings = self.rule_effects(outputs, now, &HashMap::new()).await;
        self.fire(firings).await;
    }

    /// The effects of the engine's outputs: commands sent to devices here,
    /// alert firings returned (in order) for the caller to store, all
    /// together. `known` holds the episodes of some patients as read in
    /// this pass (the others are read here).
    async fn rule_effects(
        &mut self,
        outputs: Vec<vigil_rules::Output>,
        now: chrono::DateTime<Utc>,
        known: &HashMap<i64, vigil_store::EpisodeSettings>,
    ) -> Vec<vigil_store::BatchFiring> {
        let mut firings = Vec::new();
        // Each patient's episode read once per call, however many outputs.
        let mut episodes: HashMap<i64, Option<(i64, Option<vigil_rules::Pathway>)>> =
            HashMap::new();
        for out in outputs {
            let patient = match &out {
                vigil_rules::Output::AlertRaised(a)
                | vigil_rules::Output::AlertUpdated { alert: a, .. }
                | vigil_rules::Output::AlertEscalated { alert: a, .. } => a.patient,
                vigil_rules::Output::Advice { patient, .. }
                | vigil_rules::Output::Repeat { patient, .. } => *patient,
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = episodes.entry(patient) {
                slot.insert(
                    self.current_episode(patient, known.get(&patient).cloned())
                        .await,
                );
            }
            let Some(Some((ward, pathway))) = episodes.get(&patient) else {
                continue;
            };
            match crate::rules::effect(pathway.as_ref(), *ward, out, now) {
                Some(crate::rules::Effect::Fire {
                    firing,
                    update_only,
                }) => firings.push(vigil_store::BatchFiring {
                    firing,
                    update_only,
                }),
                Some(crate::rules::Effect::Cmd { device, body }) => {
                    send_cmd(&self.client, &device, body).await
                }
                None => {}
            }
        }
        firings
    }

    /// The patient's ward and pathway as stored now (`read`, when this pass
    /// has just read it), before an output of the engine becomes an alert or
    /// a command: `None` once discharged (a timer may fire for a patient
    /// discharged by another process, e.g. `vigil admin`), and the engine
    /// re-admits the patient when their episode changed underneath it. One
    /// read at most when nothing changed.
    async fn current_episode(
        &mut self,
        patient: i64,
        read: Option<vigil_store::EpisodeSettings>,
    ) -> Option<(i64, Option<vigil_rules::Pathway>)> {
        let stored = match read {
            Some(s) => Ok(Some(s)),
            None => self.store.episode_settings(patient).await,
        };
        let settings = match stored {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.discharge_from_engine(patient).await;
                self.in_engine.remove(&patient);
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, patient, "cannot read the episode; rule output dropped");
                return None;
            }
        };
        if self.in_engine.get(&patient) != Some(&settings) {
            self.in_engine.remove(&patient);
            self.ensure_in_engine(patient).await?;
        }
        Some((
            settings.ward_id,
            self.engine.pathways().get(&settings.pathway).cloned(),
        ))
    }

    /// Store firings in one transaction and announce what they did. Should
    /// the batch fail (a PostgreSQL deadlock with another instance, say),
    /// each firing is tried on its own, so one bad firing loses no other.
    async fn fire(&self, firings: Vec<vigil_store::BatchFiring>) {
        if firings.is_empty() {
            return;
        }
        let received = self.batch_received;
        let fired = match self.store.alert_fire_many(&firings, Utc::now()).await {
            Ok(fired) => fired,
            Err(e) => {
                tracing::warn!(error = %e, firings = firings.len(), "storing a pass's alerts together failed; storing them one by one");
                let mut fired = Vec::new();
                for f in &firings {
                    match self
                        .store
                        .alert_fire_many(std::slice::from_ref(f), Utc::now())
                        .await
                    {
                        Ok(one) => fired.extend(one),
                        Err(e) => tracing::error!(error = %e, "storing an alert failed"),
                    }
                }
                fired
            }
        };
        for (alert, outcome) in fired.into_iter().flatten() {
            self.announce(alert, outcome, received);
        }
    }

    /// Remember that `alert`'s rule is live for its patient (if their
    /// live alerts are known at all).
    fn note_live(&self, alert: &vigil_store::AlertRow) {
        if let Ok(mut o) = self.open_rules.lock()
            && let Some(live) = o.get_mut(&alert.patient_id)
        {
            live.insert(alert.rule_id.clone());
        }
    }

    async fn persist_firing(&self, firing: AlertFiring, received: chrono::DateTime<Utc>) {
        match self.store.alert_fire(firing, Utc::now()).await {
            Ok((alert, outcome)) => self.announce(alert, outcome, received),
            // Discharged since: nothing new is raised for them.
            Err(vigil_store::StoreError::NotFound(_)) => {}
            Err(e) => tracing::error!(error = %e, "storing an alert failed"),
        }
    }

    /// Count and push a stored firing (`received`: when the worker had it).
    fn announce(
        &self,
        alert: vigil_store::AlertRow,
        outcome: FiringOutcome,
        received: chrono::DateTime<Utc>,
    ) {
        match outcome {
            FiringOutcome::Raised => {
                self.note_live(&alert);
                tracing::info!(alert_id = alert.id, patient = alert.patient_id, rule = %alert.rule_id, severity = alert.severity.as_str(), "alert raised");
                self.metrics
                    .alerts_raised
                    .with_label_values(&[alert.severity.as_str()])
                    .inc();
                let latency = (Utc::now() - received)
                    .num_microseconds()
                    .unwrap_or(0)
                    .max(0) as f64
                    / 1e6;
                self.metrics.alert_latency.observe(latency);
                let _ = self.events.send(LiveEvent::Alert {
                    ward_id: alert.ward_id,
                    alert,
                });
            }
            FiringOutcome::Updated => {
                self.note_live(&alert);
                let _ = self.events.send(LiveEvent::AlertUpdate {
                    ward_id: alert.ward_id,
                    alert,
                    action: "updated".into(),
                    actor: "system".into(),
                });
            }
            FiringOutcome::Superseded => {}
        }
    }

    /// Run each patch's analysis over its newly stored chunks, in time order;
    /// store the derived heart rates (with the beats), push quality and AF
    /// changes. Returns the beats left to store when there was no heart rate
    /// to store: the pass scores and fires first, then stores them.
    async fn analyse_ecg(
        &mut self,
        mut fresh: Vec<PendingEcg>,
        stored_at: chrono::DateTime<Utc>,
        to_score: &mut BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>>,
    ) -> Vec<vigil_store::PatchBeats> {
        fresh.sort_by(|a, b| {
            (a.device_id.as_str(), a.chunk.t0_ms).cmp(&(b.device_id.as_str(), b.chunk.t0_ms))
        });
        // Every chunk's beats and every heart rate in one transaction,
        // after the loop (a write per heart rate waited its turn for
        // SQLite's write lock each time, and so did the beats').
        let mut beats = Vec::new();
        let mut rates: Vec<(NewDerivedObservation, i64)> = Vec::new();
        let mut heard: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for c in fresh {
            heard
                .entry(c.patient_id)
                .or_default()
                .insert(c.device_id.clone());
            let d = self.ecg.feed(&c.device_id, c.patient_id, &c.chunk);
            if !d.beats.is_empty() {
                beats.push(vigil_store::PatchBeats {
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    beats: d.beats.clone(),
                });
            }
            if let Some((at, bpm)) = d.heart_rate {
                let o = NewDerivedObservation {
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    seq: c.chunk.seq,
                    observation: NewObservation {
                        code: "pulse".into(),
                        value: ObsValue::Number(bpm),
                        unit: Some("/min".into()),
                    },
                    measured_at: at,
                    received_at: stored_at,
                };
                rates.push((o, c.ward_id));
            }
            // The patch's signal quality is a device fact for the rules
            // (lead off → the pathway's device alert).
            if let Some((_, q)) = d.quality.last().copied() {
                let ds = vigil_rules::DeviceStatus {
                    online: true,
                    battery_pct: None,
                    signal: Some(q.to_string()),
                };
                let now = Utc::now();
                if self.ensure_in_engine(c.patient_id).await.is_some()
                    && let Ok(outputs) =
                        self.engine
                            .device_status(c.patient_id, &c.device_id, ds, now)
                {
                    self.apply_outputs(outputs, now).await;
                }
                if q != "lead_off" {
                    self.auto_resolve(
                        c.patient_id,
                        &[format!("device-lead-off:{}", c.device_id)],
                        "ECG signal back",
                    )
                    .await;
                }
            }
            if d.possible_af.iter().any(|(_, active)| *active) {
                let at = d
                    .possible_af
                    .iter()
                    .rev()
                    .find(|(_, a)| *a)
                    .map(|(t, _)| *t)
                    .unwrap_or(c.chunk.t0_ms);
                let pathway = self
                    .store
                    .episode_settings(c.patient_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|s| s.pathway)
                    .unwrap_or_default();
                let firing = AlertFiring {
                    patient_id: c.patient_id,
                    ward_id: c.ward_id,
                    rule_id: format!("ecg-possible-af:{}", c.device_id),
                    severity: Severity::Low,
                    message: "Possible AF — review the ECG strip (a prompt, not a diagnosis)"
                        .into(),
                    value: serde_json::json!({"t_ms": at}),
                    evidence: vec![],
                    at: chrono::DateTime::from_timestamp_millis(at).unwrap_or(stored_at),
                    escalate_at: self
                        .escalation_for(&pathway, Severity::Low)
                        .map(|d| Utc::now() + d),
                };
                self.persist_firing(firing, stored_at).await;
            }
            for (t_ms, q) in d.quality {
                let _ = self.events.send(LiveEvent::EcgStatus {
                    ward_id: c.ward_id,
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    t_ms,
                    quality: Some(q.to_string()),
                    possible_af: None,
                });
            }
            for (t_ms, active) in d.possible_af {
                tracing::info!(device = %c.device_id, active, "possible-AF prompt changed");
                let _ = self.events.send(LiveEvent::EcgStatus {
                    ward_id: c.ward_id,
                    patient_id: c.patient_id,
                    device_id: c.device_id.clone(),
                    t_ms,
                    quality: None,
                    possible_af: Some(active),
                });
            }
        }
        // A chunk is word from its patch, whatever its signal: its offline
        // clock starts over, and a device-offline alert resolves itself
        // (the patch sends a status only when its signal changes, and no
        // heart rate from a poor or lead-off signal; hazard AL-22).
        for (patient, devices) in heard {
            if self.ensure_in_engine(patient).await.is_none() {
                continue;
            }
            for d in &devices {
                let _ = self.engine.heard_from(patient, d, stored_at);
            }
            let rules: Vec<String> = devices
                .iter()
                .map(|d| format!("device-offline:{d}"))
                .collect();
            self.auto_resolve(patient, &rules, "ECG chunks arriving")
                .await;
        }
        // No heart rate: nothing this pass scores waits for the beats.
        if rates.is_empty() {
            return beats;
        }
        // The beats and the heart rates in one transaction; if it fails,
        // each on its own, so that a refused write of one loses nothing of
        // the other.
        let (derived, wards): (Vec<NewDerivedObservation>, Vec<i64>) = rates.into_iter().unzip();
        let ids = match self.store.store_ecg_results(&beats, &derived).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, patches = beats.len(), rates = derived.len(), "storing the ECG analysis failed; storing beats and heart rates apart");
                if let Err(e) = self.store.store_beats(&beats).await {
                    tracing::error!(error = %e, patches = beats.len(), "storing beats failed");
                }
                match self.store.store_derived(&derived).await {
                    Ok(ids) => ids,
                    Err(e) => {
                        tracing::error!(error = %e, rates = derived.len(), "storing ECG heart rates failed");
                        // Stored or not, the readings held may miss them.
                        for o in &derived {
                            self.readings.forget(o.patient_id);
                        }
                        return Vec::new();
                    }
                }
            }
        };
        for ((o, ward_id), id) in derived.into_iter().zip(wards).zip(ids) {
            let ObsValue::Number(bpm) = o.observation.value else {
                continue;
            };
            to_score
                .entry(o.patient_id)
                .or_default()
                .insert(o.measured_at);
            match crate::rules::reading(
                "pulse",
                &o.observation.value,
                Some("/min"),
                o.measured_at,
                &o.device_id,
                id,
            ) {
                Some(r) => self.feed.push((o.patient_id, r)),
                // Stored, but not a reading the rules or the readings held
                // for scoring can take: read them again next time.
                None => self.readings.forget(o.patient_id),
            }
            let _ = self.events.send(LiveEvent::Observation {
                ward_id,
                patient_id: o.patient_id,
                device_id: o.device_id,
                seq: o.seq,
                measured_at: o.measured_at,
                obs: vec![LiveObservation {
                    id,
                    code: "pulse".into(),
                    value: ObsValue::Number(bpm),
                    unit: Some("/min".into()),
                }],
            });
        }
        Vec::new()
    }

    /// Score each patient at the measurement time of each new reading. A
    /// late reading (older than the newest score) adds history at its own
    /// time, and the newest score is recomputed with it, keeping its own
    /// time: the current score never claims a fresher state than its
    /// readings have. The pass's scores are stored in one transaction. Then
    /// every score that was the patient's newest state at its time drives
    /// the built-in NEWS2 alerts, in time order (several readings of one
    /// patient in one pass each count, as if they had come one by one), and
    /// the newest is pushed once stored. Stores nothing itself: it returns
    /// the scores, their pushes and alerts for [`Worker::store_pass`] (a
    /// pass stores them with the pathway rules' alerts, in one
    /// transaction), and the episode settings it read, by patient.
    async fn score_new(
        &mut self,
        to_score: BTreeMap<i64, BTreeSet<chrono::DateTime<Utc>>>,
        mut clock: Option<&mut StageClock<'_>>,
    ) -> Scored {
        let mut lap = |stage: &str| {
            if let Some(c) = clock.as_mut() {
                c.lap(stage);
            }
        };
        struct Current {
            push: bool,
            settings: vigil_store::EpisodeSettings,
            score: vigil_clinical::News2Score,
            risk: Option<String>,
            /// Index of its row in `rows` (whose detail the push moves out).
            row: usize,
            prev: Option<(Option<i64>, Option<String>)>,
            min_24h: Option<i64>,
            at: chrono::DateTime<Utc>,
        }
        let now = Utc::now();
        let mut settings_of = HashMap::new();
        let mut rows = Vec::new();
        let mut current = Vec::new();
        // Every patient's episode in one read, and (below) every patient's
        // readings in one more: per-patient round trips were most of a pass.
        let patients: Vec<i64> = to_score.keys().copied().collect();
        let mut episodes = match self.store.episode_settings_many(&patients).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, patients = patients.len(), "cannot read the episodes; scoring skipped");
                return Scored {
                    settings: settings_of,
                    ..Scored::default()
                };
            }
        };
        // (patient, settings, the times to score at: (time, the newest state
        // at that time, the newest of the pass))
        let mut plans = Vec::new();
        let mut to_hold = Vec::new();
        let mut reads = HashMap::new();
        for (patient, times) in to_score {
            let (Some(first), Some(newest)) = (times.first().copied(), times.last().copied())
            else {
                continue;
            };
            let Some(settings) = episodes.remove(&patient) else {
                // Discharged: nothing more to score.
                self.history.remove(&patient);
                self.readings.forget(patient);
                continue;
            };
            if !self
                .load_history(patient, first - chrono::Duration::hours(24))
                .await
            {
                continue;
            }
            let history = self.history.get(&patient);
            let latest = history.and_then(|h| h.latest);
            // A reading is late, its state superseded, only behind a score
            // measured by the time its batch arrived: a score measured
            // later than that (a device whose clock runs ahead, up to the
            // five minutes the intake accepts) describes a moment that had
            // not come, and must not hide a deterioration measured before
            // it (hazard TS-19).
            let settled = history.and_then(|h| h.newest_by(self.batch_received));
            let rescore_latest = latest.filter(|l| newest < *l);
            // (time, the newest state at that time, the newest of the pass)
            let mut at_times: Vec<(chrono::DateTime<Utc>, bool, bool)> = times
                .iter()
                .map(|t| {
                    let current = settled.is_none_or(|l| *t >= l);
                    (
                        *t,
                        current,
                        current && *t == newest && rescore_latest.is_none(),
                    )
                })
                .collect();
            if let Some(l) = rescore_latest {
                at_times.push((l, true, true));
            }
            let last = at_times.last().map(|a| a.0).unwrap_or(newest);
            // From the readings held, or else (below) from the store:
            // everything from `first` on, which the worker then holds.
            match self.readings.read(patient, first, last) {
                Some(r) => {
                    reads.insert(patient, r);
                }
                None => to_hold.push((patient, first, last)),
            }
            plans.push((patient, settings, at_times));
        }
        // Only the codes NEWS2 reads.
        if !to_hold.is_empty() {
            let codes = vigil_clinical::SCORED_CODES.map(vigil_clinical::Code::as_str);
            let spans: Vec<_> = to_hold
                .iter()
                .map(|(p, first, _)| (*p, *first, super::readings::hold_until()))
                .collect();
            match self.store.readings_for_scoring(&spans, &codes).await {
                Ok(mut r) => {
                    // Held, then answered from what is held, as next time.
                    for (patient, first, last) in to_hold {
                        let read = r.remove(&patient).unwrap_or_default();
                        self.readings.hold(patient, first, read);
                        if let Some(read) = self.readings.read(patient, first, last) {
                            reads.insert(patient, read);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, patients = to_hold.len(), "cannot read the readings; scoring skipped");
                    return Scored {
                        settings: settings_of,
                        ..Scored::default()
                    };
                }
            }
        }
        lap("score_read");
        for (patient, settings, at_times) in plans {
            let r = reads.remove(&patient).unwrap_or_default();
            let mut readings = AsOf::new(r.base, r.later);
            for (at, current_then, push) in at_times {
                let score = self.score_of(&settings, readings.at(at), at);
                let row = vigil_store::scoring::to_new_score(patient, &score, at, now);
                let Some(h) = self.history.get_mut(&patient) else {
                    continue;
                };
                // The previous day as it was before this score.
                let (prev, min_24h) = if current_then {
                    h.day_before(at, settings.earlier_stay_ended)
                } else {
                    (None, None)
                };
                h.add(at, row.total, row.risk.clone());
                if !current_then
                    && let Some(risk) = row
                        .risk
                        .as_deref()
                        .filter(|r| alerts::severity_of_risk(r).is_some())
                {
                    // Would have alerted had it come in time (AL-04).
                    self.metrics
                        .news2_superseded
                        .with_label_values(&[risk])
                        .inc();
                }
                if current_then {
                    current.push(Current {
                        push,
                        settings: settings.clone(),
                        score,
                        risk: row.risk.clone(),
                        row: rows.len(),
                        prev,
                        min_24h,
                        at,
                    });
                }
                rows.push(row);
            }
            settings_of.insert(patient, settings);
        }
        lap("score");
        // The built-in alerts of every score. Only the scores that may fire
        // need the live alerts: those of all their patients are read at
        // once (a read per score was a round trip each; nothing is written
        // before the pass stores its alerts).
        let facts = |total: Option<i64>, risk: Option<&str>| alerts::ScoreFacts {
            total: total.and_then(|t| u8::try_from(t).ok()),
            severity: risk.and_then(alerts::severity_of_risk),
        };
        // (the decision, whether it may fire)
        let decisions: Vec<(Decision, bool)> = current
            .iter()
            .map(|c| {
                let d = Decision {
                    prev: c
                        .prev
                        .as_ref()
                        .map(|(total, risk)| facts(*total, risk.as_deref())),
                    now: facts(c.score.total.map(i64::from), c.risk.as_deref()),
                    partial: c.score.partial,
                    min_total_24h: c.min_24h.and_then(|t| u8::try_from(t).ok()),
                };
                (d, d.may_fire())
            })
            .collect();
        let may_fire: Vec<i64> = current
            .iter()
            .zip(&decisions)
            .filter(|(_, (_, may))| *may)
            .map(|(c, _)| c.settings.patient_id)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        let live = match self.store.live_alert_rules(&may_fire).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, patients = may_fire.len(), "cannot read live alerts; built-in alerts skipped");
                None
            }
        };
        let mut firings = Vec::new();
        let mut pushes = Vec::new();
        for (c, (decide, may)) in current.into_iter().zip(&decisions) {
            if let Some(live) = live.as_ref().filter(|_| *may) {
                let live = live
                    .get(&c.settings.patient_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let fired = self.builtin_alerts(
                    &c.settings,
                    &c.score,
                    c.risk.as_deref(),
                    c.at,
                    decide,
                    live,
                    &firings,
                );
                firings.extend(fired.into_iter().map(|firing| vigil_store::BatchFiring {
                    firing,
                    update_only: false,
                }));
            }
            if c.push {
                pushes.push((c.settings.ward_id, c.settings.patient_id, c.row));
            }
        }
        lap("alerts");
        Scored {
            settings: settings_of,
            rows,
            pushes,
            firings,
        }
    }

    /// Store a pass's scores and alerts in one transaction, then push the
    /// scores to the live page and announce the alerts. If that fails the
    /// two are tried apart, so that an alert is not lost to a score that
    /// cannot be stored (nor a score to an alert).
    /// Store a pass's scores and alerts and push them; with `progress`, the
    /// highest observation id the pass took from the intake, the worker's
    /// progress moves up to it in the same transaction (or after the
    /// apart writes when that fails: the pass is over either way).
    async fn store_pass(
        &mut self,
        rows: Vec<vigil_store::NewScore>,
        pushes: Vec<(i64, i64, usize)>,
        firings: Vec<vigil_store::BatchFiring>,
        progress: PassProgress,
    ) {
        if rows.is_empty() && firings.is_empty() && progress.is_empty() {
            return;
        }
        let received = self.batch_received;
        match self
            .store
            .score_and_fire(&rows, &firings, Utc::now(), &progress)
            .await
        {
            Ok(fired) => {
                if let Some(id) = progress.observation_id {
                    self.stored_progress = self.stored_progress.max(id);
                }
                // Alerts first: a dashboard reads its events in order, and
                // a pass's scores are one event per patient scored, a ward's
                // worth that an alert would otherwise wait behind.
                for (alert, outcome) in fired.into_iter().flatten() {
                    self.announce(alert, outcome, received);
                }
                self.push_scores(rows, pushes);
            }
            Err(e) if self.pass_was_stored(progress.observation_id).await => {
                // The commit happened (PostgreSQL losing the connection
                // while it commits): storing the pass again would write
                // every score twice and count every firing again.
                tracing::warn!(error = %e, scores = rows.len(), firings = firings.len(), "a pass's commit reported an error but happened; its scores and alerts are stored");
                self.announce_stored_firings(&firings, received).await;
                self.push_scores(rows, pushes);
            }
            Err(e) => {
                tracing::warn!(error = %e, scores = rows.len(), firings = firings.len(), "storing a pass's scores and alerts together failed; storing them apart");
                match self.store.score_insert_many(&rows).await {
                    Ok(()) => self.push_scores(rows, pushes),
                    Err(e) => {
                        tracing::error!(error = %e, scores = rows.len(), "storing scores failed");
                        // The remembered history now holds scores that are not stored.
                        for r in &rows {
                            self.history.remove(&r.patient_id);
                        }
                    }
                }
                self.fire(firings).await;
                if let Err(e) = self.store.set_worker_progress(&progress).await {
                    tracing::error!(error = %e, "storing the worker's progress failed; a restart scores this pass's readings and analyses its ECG again");
                }
            }
        }
    }

    /// After a pass's commit reported an error: `true` if it happened all
    /// the same, read from the worker's progress, which the pass's own
    /// transaction moved past where it stood. A pass without progress (the
    /// engine's timers), or whose progress the store already held, cannot
    /// tell, and is taken as not stored (its scores may then be written
    /// twice, never lost).
    async fn pass_was_stored(&mut self, progress: Option<i64>) -> bool {
        let Some(id) = progress.filter(|id| *id > self.stored_progress) else {
            tracing::warn!(
                "a pass without progress of its own cannot tell whether its commit happened; storing it apart"
            );
            return false;
        };
        // A connection lost during COMMIT can fail before the server has
        // finished the commit: read at once, another connection may not
        // see it yet (that was a pass stored twice, alerts counted twice,
        // under load in CI). And the fault that cut the answer may fail the
        // next read too. So a few reads, further apart each time (1.5 s in
        // all), before the pass is taken as not stored.
        for attempt in 1..=PROGRESS_READS {
            match self.store.worker_progress().await {
                Ok(at) if at >= id => {
                    self.stored_progress = at;
                    return true;
                }
                Ok(_) if attempt == PROGRESS_READS => {}
                Err(e) if attempt == PROGRESS_READS => {
                    tracing::warn!(error = %e, "cannot read the worker's progress after a failed commit; storing the pass apart");
                }
                Ok(_) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
            }
        }
        false
    }

    /// Push the live alerts a stored pass's firings raised or updated, as
    /// its commit's answer would have: raised if the worker did not know
    /// the rule live for the patient before, updated if it did (by the
    /// alert's count when the worker holds no list of the patient's).
    async fn announce_stored_firings(
        &self,
        firings: &[vigil_store::BatchFiring],
        received: chrono::DateTime<Utc>,
    ) {
        let mut by_patient: BTreeMap<(i64, i64), BTreeSet<&str>> = BTreeMap::new();
        for f in firings {
            by_patient
                .entry((f.firing.ward_id, f.firing.patient_id))
                .or_default()
                .insert(f.firing.rule_id.as_str());
        }
        for ((ward, patient), rules) in by_patient {
            let live = match self.store.alerts_list(&[ward], None, Some(patient)).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, patient, "cannot read a stored pass's alerts; open dashboards show them at their next load");
                    continue;
                }
            };
            let known: Option<BTreeSet<String>> = self
                .open_rules
                .lock()
                .ok()
                .and_then(|o| o.get(&patient).cloned());
            for alert in live
                .into_iter()
                .filter(|a| a.status != AlertStatus::Resolved && rules.contains(a.rule_id.as_str()))
            {
                // Not known either way: an alert fired once was raised now.
                let updated = known
                    .as_ref()
                    .map_or(alert.count > 1, |k| k.contains(&alert.rule_id));
                let outcome = if updated {
                    FiringOutcome::Updated
                } else {
                    FiringOutcome::Raised
                };
                self.announce(alert, outcome, received);
            }
        }
    }

    /// Push stored scores to the live page: `pushes` are (ward, patient,
    /// index in `rows`). The details go as they are (a score's detail is a
    /// large map: copying it was a tenth of a pass).
    fn push_scores(&self, rows: Vec<vigil_store::NewScore>, pushes: Vec<(i64, i64, usize)>) {
        let mut details: Vec<serde_json::Value> = rows.into_iter().map(|r| r.detail).collect();
        for (ward_id, patient_id, row) in pushes {
            let score = std::mem::take(&mut details[row]);
            let _ = self.events.send(LiveEvent::Score {
                ward_id,
                patient_id,
                score,
            });
        }
    }

    /// Make sure the remembered score history of `patient` covers `from`
    /// onwards, reading it from the store if not; `false` if it cannot.
    async fn load_history(&mut self, patient: i64, from: chrono::DateTime<Utc>) -> bool {
        if self.history.get(&patient).is_some_and(|h| h.from <= from) {
            return true;
        }
        let loaded = async {
            let latest = self.store.latest_score_time(patient).await?;
            let rows = self.store.scores(patient, Some(from), None).await?;
            Ok::<_, vigil_store::StoreError>(ScoreHistory {
                from,
                latest,
                rows: rows
                    .into_iter()
                    .map(|r| (r.scored_at, r.total, r.risk))
                    .collect(),
            })
        };
        match loaded.await {
            Ok(h) => {
                self.history.insert(patient, h);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, patient, "cannot read score history; scoring skipped");
                false
            }
        }
    }

    /// The patient's NEWS2 as of `at` from the latest stored row of each code.
    fn score_of(
        &self,
        settings: &vigil_store::EpisodeSettings,
        rows: Vec<ObservationRow>,
        at: chrono::DateTime<Utc>,
    ) -> vigil_clinical::News2Score {
        let window = self
            .engine
            .pathways()
            .get(&settings.pathway)
            .map(|p| p.freshness)
            .unwrap_or_else(vigil_clinical::default_freshness);
        let episode = vigil_store::scoring::clinical_episode(settings);
        vigil_clinical::score_home(&vigil_store::scoring::readings(&rows), &episode, window, at)
    }

    /// The pathway's escalation delay for a severity (CONTRACTS.md §5
    /// defaults if the pathway is unknown).
    fn escalation_for(&self, pathway: &str, sev: Severity) -> Option<chrono::Duration> {
        match self.engine.pathways().get(pathway) {
            Some(p) => crate::rules::escalation(p, sev),
            None => escalation_delay(sev),
        }
    }

    /// The built-in NEWS2 alerts of one score (docs/alerts.md): `decide`
    /// says what fires given which of its two rules are live, `live` is the
    /// patient's live alert rules as stored, and `pending` the firings of
    /// earlier scores of this pass, yet to be stored.
    #[expect(
        clippy::too_many_arguments,
        reason = "one score's inputs, each from a different stage of the pass"
    )]
    fn builtin_alerts(
        &self,
        settings: &vigil_store::EpisodeSettings,
        score: &vigil_clinical::News2Score,
        risk: Option<&str>,
        at: chrono::DateTime<Utc>,
        decide: &Decision,
        live: &[String],
        pending: &[vigil_store::BatchFiring],
    ) -> Vec<AlertFiring> {
        let is_live = |rule: &str| {
            live.iter().any(|r| r == rule)
                || pending
                    .iter()
                    .any(|b| b.firing.patient_id == settings.patient_id && b.firing.rule_id == rule)
        };
        let firings = decide.firings(is_live(alerts::NEWS2), is_live(alerts::NEWS2_RISING));
        let evidence: Vec<i64> = score.subscores.iter().filter_map(|s| s.obs_id).collect();
        firings
            .into_iter()
            .map(|f| AlertFiring {
                patient_id: settings.patient_id,
                ward_id: settings.ward_id,
                rule_id: f.rule_id.to_string(),
                severity: f.severity,
                message: f.message,
                value: serde_json::json!({"total": score.total, "risk": risk, "partial": score.partial}),
                evidence: evidence.clone(),
                at,
                escalate_at: self.escalation_for(&settings.pathway, f.severity).map(|d| Utc::now() + d),
            })
            .collect()
    }

    /// The pass's device status messages: all kept as their devices' last
    /// status in one transaction and routed in one query (one write per
    /// message was most of a pass when thousands of devices connected at
    /// once, docs/benchmarks.md), then each, in arrival order, to the rules
    /// engine, the auto-resolution of device alerts and the live page.
    async fn statuses(&mut self, items: Vec<(String, bytes::Bytes)>) {
        if items.is_empty() {
            return;
        }
        let now = Utc::now();
        // Each in its stored form (`status::report`), kept as the device's
        // last status (shown on the patient page).
        let reports: Vec<(String, vigil_store::DeviceStatusReport)> = items
            .into_iter()
            .filter_map(|(device, payload)| {
                match serde_json::from_slice::<serde_json::Value>(&payload) {
                    Ok(status) => {
                        let report = crate::status::report(&status, now);
                        Some((device, report))
                    }
                    Err(_) => {
                        tracing::info!(device, "unreadable status ignored");
                        None
                    }
                }
            })
            .collect();
        if let Err(e) = self.store.device_status_record_many(&reports).await {
            tracing::warn!(statuses = reports.len(), error = %e, "device statuses not stored");
        }
        let devices: BTreeSet<&str> = reports.iter().map(|(d, _)| d.as_str()).collect();
        let routes = match self
            .store
            .device_routes(&devices.into_iter().collect::<Vec<_>>())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot route device statuses");
                return;
            }
        };
        // The rules see what was stored: a field out of range or not in the
        // contract is unknown, never a value (a battery of 250 % must not
        // resolve a battery-low alert).
        // The dashboard is pushed the same form (never the device's own
        // JSON), so what a nurse sees live is what a reload shows.
        for (device, report) in reports {
            let Some(route) = routes.get(&device) else {
                continue;
            };
            let ds = vigil_rules::DeviceStatus {
                online: report.online,
                battery_pct: report.battery_pct,
                signal: report.signal.clone(),
            };
            let now = Utc::now();
            let mut cleared = vec![format!("device-offline:{device}")];
            if ds.signal.as_deref() != Some("lead_off") {
                cleared.push(format!("device-lead-off:{device}"));
            }
            if ds.battery_pct.is_some_and(|b| b >= 30) {
                cleared.push(format!("device-battery-low:{device}"));
            }
            if self.ensure_in_engine(route.patient_id).await.is_some() {
                match self
                    .engine
                    .device_status(route.patient_id, &device, ds, now)
                {
                    Ok(outputs) => self.apply_outputs(outputs, now).await,
                    Err(e) => tracing::error!(error = %e, "rules engine refused a device status"),
                }
            }
            // Connected (again): its measurement schedule, which a kit that
            // restarted may have lost.
            if report.online {
                self.tell_kit(&device, route.patient_id, true).await;
            }
            self.auto_resolve(route.patient_id, &cleared, "device reports normally again")
                .await;
            let _ = self.events.send(LiveEvent::DeviceStatus {
                ward_id: route.ward_id,
                patient_id: route.patient_id,
                device_id: device,
                status: serde_json::to_value(&report).unwrap_or_default(),
            });
        }
    }
}

impl Worker {
    /// Drop a discharged patient from the engine, and tell the kits that
    /// were sent their schedule that nothing is asked of them now, so a
    /// patient who has gone home for good is not reminded to measure.
    async fn discharge_from_engine(&mut self, patient: i64) {
        // By what they were told: the engine may have stopped watching a
        // device already (unassigned at the discharge).
        let told: Vec<String> = self
            .kit_told
            .iter()
            .filter(|(_, (p, _))| *p == patient)
            .map(|(d, _)| d.clone())
            .collect();
        for device in told {
            self.kit_told.remove(&device);
            send_cmd(&self.client, &device, no_schedule()).await;
        }
        self.engine.discharge(patient);
    }

    /// Send `device` its patient's measurement schedule (`config`,
    /// CONTRACTS.md §2; docs/mqtt.md): each code the pathway's `[[expect]]`
    /// rules ask for and how often, the clinician's interval in place of
    /// the pathway's, so the kit can remind the patient before a reading
    /// is missed rather than the ward chasing it after. Sent when the
    /// device reports itself online (`always`), and when the schedule
    /// changes from what it was last told.
    async fn tell_kit(&mut self, device: &str, patient: i64, always: bool) {
        let Some(schedule) = self.engine.schedule(patient) else {
            return;
        };
        let schedule: serde_json::Map<String, serde_json::Value> = schedule
            .into_iter()
            .map(|(code, every)| (code.to_string(), every_text(every).into()))
            .collect();
        let config = serde_json::json!({"type": "config", "schedule": schedule});
        if !always && self.kit_told.get(device) == Some(&(patient, config.clone())) {
            return;
        }
        send_cmd(&self.client, device, config.clone()).await;
        self.kit_told.insert(device.to_string(), (patient, config));
    }
}

/// The kit's schedule when nothing is asked of it (taken back, or its
/// patient discharged).
fn no_schedule() -> serde_json::Value {
    serde_json::json!({"type": "config", "schedule": {}})
}

/// An interval as the pathway files write it: `"8h"`, `"90m"`, `"45s"`,
/// in the largest unit that is whole.
fn every_text(every: chrono::Duration) -> String {
    let secs = every.num_seconds();
    if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A pass's scoring, computed and not yet stored.
#[derive(Default)]
struct Scored {
    /// The episode settings read, by patient.
    settings: HashMap<i64, vigil_store::EpisodeSettings>,
    rows: Vec<vigil_store::NewScore>,
    /// (ward, patient, index in `rows`) of each score to push once stored.
    pushes: Vec<(i64, i64, usize)>,
    /// The built-in NEWS2 alerts the scores raise, in order.
    firings: Vec<vigil_store::BatchFiring>,
}

/// Adds the time since the last lap to a stage's counter.
struct StageClock<'a> {
    counter: &'a prometheus::CounterVec,
    last: std::time::Instant,
}

impl<'a> StageClock<'a> {
    fn new(counter: &'a prometheus::CounterVec) -> Self {
        StageClock {
            counter,
            last: std::time::Instant::now(),
        }
    }

    fn lap(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        self.counter
            .with_label_values(&[stage])
            .inc_by((now - self.last).as_secs_f64());
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_kits_intervals_are_written_as_the_pathway_files_write_them() {
        let text = |s: i64| every_text(chrono::Duration::seconds(s));
        assert_eq!(text(8 * 3600), "8h");
        assert_eq!(text(7 * 24 * 3600), "168h");
        assert_eq!(text(90 * 60), "90m");
        assert_eq!(text(15 * 60), "15m");
        assert_eq!(text(3), "3s");
        assert_eq!(text(3601), "3601s");
    }

    /// A discharged patient leaves everything the worker held for them at
    /// its next patient sync: the engine, the score history and the
    /// readings held for scoring.
    #[tokio::test]
    async fn a_discharged_patient_leaves_the_workers_memory_at_the_next_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            vigil_store::connect(&format!("sqlite://{}", dir.path().join("w.db").display()))
                .await
                .expect("store");
        let ward = store.ward_add("Ward").await.expect("ward");
        let admit = |name: &str| vigil_store::NewPatient {
            ward_id: ward.id,
            name: name.into(),
            nhs_number: vigil_store::nhs::test_range_for(name),
            pathway: "t".into(),
            spo2_scale: 1,
            spo2_scale_set_by: None,
            admitted_at: Utc::now() - chrono::Duration::hours(1),
        };
        let ann = store.patient_admit(admit("Ann")).await.expect("admit").id;
        let bob = store.patient_admit(admit("Bob")).await.expect("admit").id;
        let pathways = vigil_rules::Pathways::load([(
            "t.toml",
            "name = \"t\"\ntitle = \"T\"\nspo2_scale = 1\nfreshness = \"6h\"\n[escalation]\nhigh = \"5m\"\nmedium = \"15m\"\nlow-medium = \"30m\"\n",
        )])
        .expect("pathway");
        let (client, _eventloop) =
            AsyncClient::new(rumqttc::MqttOptions::new("t", "127.0.0.1", 1), 8);
        let metrics = IngestMetrics::new(&prometheus::Registry::new()).expect("metrics");
        let mut w = Worker::new(
            pathways,
            client,
            store.clone(),
            vigil_store::LiveHub::new(8),
            metrics,
        );
        w.sync_patients().await;
        let now = Utc::now();
        w.pass(Stored {
            to_score: BTreeMap::from([(ann, BTreeSet::from([now])), (bob, BTreeSet::from([now]))]),
            ..Stored::default()
        })
        .await;
        for p in [ann, bob] {
            assert!(
                w.in_engine.contains_key(&p) && w.history.contains_key(&p) && w.readings.holds(p),
                "patient {p} held after a pass"
            );
        }

        store
            .patient_discharge(ann, "admin", Utc::now())
            .await
            .expect("discharge");
        w.sync_patients().await;
        assert!(!w.in_engine.contains_key(&ann));
        assert!(!w.history.contains_key(&ann), "score history kept");
        assert!(!w.readings.holds(ann), "readings kept");
        assert!(
            w.in_engine.contains_key(&bob) && w.history.contains_key(&bob) && w.readings.holds(bob),
            "the other patient is kept"
        );
    }

    fn t(h: i64) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    #[test]
    fn the_previous_day_starts_no_earlier_than_the_stay() {
        let mut h = ScoreHistory {
            from: t(-48),
            latest: None,
            rows: Vec::new(),
        };
        h.add(t(-20), Some(5), Some("medium".into()));
        h.add(t(-2), Some(3), Some("low".into()));
        // An earlier stay ended 10 h ago: its medium is not the previous
        // score, nor its total the day's lowest.
        assert_eq!(
            h.day_before(t(0), Some(t(-10))),
            (Some((Some(3), Some("low".into()))), Some(3))
        );
        assert_eq!(h.day_before(t(0), Some(t(-1))), (None, None));
        assert_eq!(
            h.day_before(t(0), None),
            (Some((Some(3), Some("low".into()))), Some(3))
        );
        assert_eq!(h.day_before(t(-3), Some(t(-30))).1, Some(5));
    }

    #[test]
    fn score_history_gives_the_previous_day_and_forgets_older_rows() {
        let mut h = ScoreHistory {
            from: t(-48),
            latest: None,
            rows: Vec::new(),
        };
        assert_eq!(h.day_before(t(0), None), (None, None));
        h.add(t(-20), Some(1), Some("low".into()));
        h.add(t(-2), Some(5), Some("medium".into()));
        h.add(t(-10), Some(3), Some("low".into()));
        assert_eq!(h.latest, Some(t(-2)));
        assert_eq!(
            h.from,
            t(-27),
            "rows more than 25 h behind the newest are forgotten"
        );
        // Out of order adds are kept in time order; the day ends at `at`, inclusive.
        assert_eq!(
            h.day_before(t(0), None),
            (Some((Some(5), Some("medium".into()))), Some(1))
        );
        assert_eq!(
            h.day_before(t(5), None),
            (Some((Some(5), Some("medium".into()))), Some(3)),
            "t(-20) is more than a day before t(5)"
        );
        assert_eq!(
            h.day_before(t(-10), None),
            (Some((Some(3), Some("low".into()))), Some(1))
        );
        assert_eq!(h.day_before(t(-21), None), (None, None));
        assert_eq!(h.newest_by(t(0)), Some(t(-2)));
        assert_eq!(h.newest_by(t(-3)), Some(t(-10)));
        assert_eq!(h.newest_by(t(-21)), None);
        // The newest score moves on: t(-20) falls out, and `from` says so.
        h.add(t(10), None, None);
        assert_eq!(h.from, t(-15));
        assert_eq!(
            h.rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [t(-10), t(-2), t(10)]
        );
        assert_eq!(
            h.day_before(t(10), None),
            (Some((None, None)), Some(3)),
            "a partial score has no total, and is the newest"
        );
        assert_eq!(
            (h.newest_by(t(9)), h.newest_by(t(10))),
            (Some(t(-2)), Some(t(10))),
            "a score measured later than `by` is not the newest by then"
        );
    }

    fn row(id: i64, code: &str, value: f64, at: chrono::DateTime<Utc>) -> ObservationRow {
        ObservationRow {
            id,
            code: code.into(),
            value: ObsValue::Number(value),
            unit: None,
            measured_at: at,
            received_at: at,
            device_id: "d".into(),
            seq: id as u32,
        }
    }

    #[test]
    fn as_of_answers_like_latest_per_code_for_ascending_times() {
        let values = |rows: Vec<ObservationRow>| {
            rows.iter()
                .map(|r| (r.code.clone(), r.id))
                .collect::<Vec<_>>()
        };
        // Base: the latest at t(0). Later rows arrive unsorted, one of them
        // at t(0) again (the range read includes its lower edge).
        let mut a = AsOf::new(
            vec![row(1, "pulse", 70.0, t(-1)), row(2, "spo2", 97.0, t(0))],
            vec![
                row(6, "spo2", 90.0, t(2)),
                row(2, "spo2", 97.0, t(0)),
                row(4, "pulse", 80.0, t(1)),
                row(5, "pulse", 81.0, t(1)),
            ],
        );
        assert_eq!(
            values(a.at(t(0))),
            [("pulse".into(), 1), ("spo2".into(), 2)]
        );
        // Two rows at the same time: the later insert wins.
        assert_eq!(
            values(a.at(t(1))),
            [("pulse".into(), 5), ("spo2".into(), 2)]
        );
        assert_eq!(
            values(a.at(t(3))),
            [("pulse".into(), 5), ("spo2".into(), 6)]
        );
    }
}
