//! Per-patient state: the reading history by code, each in measurement-time
//! order, the devices, the missed-reading clocks, the NEWS2 history used by the rising
//! alert, and the facts a rule expression reads.
//!
//! Everything here is a function of the readings and the setup, not of the
//! order they arrived in: readings are kept sorted by (measured time, obs
//! id), the NEWS2 history is recomputed from a late reading's place onwards,
//! and history older than the pathway needs (relative to the newest reading)
//! is dropped whichever order it came in.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use cel::Value;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use vigil_clinical::news2::Spo2ScaleSetting;
use vigil_clinical::thresholds::spo2::Spo2Target;
use vigil_clinical::{
    Code, Episode, News2Score, Observation, Reading, Reasons, Spo2Scale, score_home_with,
};

use crate::expr::{Compiled, Facts, TrendCall, TrendFn};
use crate::pathway::Pathway;

/// What the daemon knows about a patient's episode when it admits them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatientSetup {
    /// Pathway name (a loaded [`Pathway`]).
    pub pathway: String,
    /// Episode settings for NEWS2 (oxygen, consciousness, under 16, pregnant).
    /// Its `spo2_scale` is replaced by [`PatientSetup::spo2_scale`] or the
    /// pathway's default.
    pub episode: Episode,
    /// The episode's SpO2 scale as set by a clinician; `None` = pathway default.
    pub spo2_scale: Option<Spo2ScaleSetting>,
    /// Individual SpO2 target; `None` = pathway's, else by scale (88–92 / 94–98).
    pub spo2_target: Option<Spo2Target>,
    /// Peak-flow personal best, L/min.
    pub pef_best: Option<f64>,
    /// Start of the episode: missed-reading clocks start here.
    pub admitted_at: DateTime<Utc>,
    /// How often, in minutes, a clinician wants this patient's
    /// observations, in place of each `[[expect]]` rule's `every` (its
    /// grace kept): "4-hourly obs" for a patient who is worse. `None`: the
    /// pathway's.
    #[serde(default)]
    pub obs_every_minutes: Option<u32>,
}

impl PatientSetup {
    /// A setup with the pathway's defaults.
    pub fn new(pathway: &str, admitted_at: DateTime<Utc>) -> PatientSetup {
        PatientSetup {
            pathway: pathway.to_string(),
            episode: Episode::default(),
            spo2_scale: None,
            spo2_target: None,
            pef_best: None,
            admitted_at,
            obs_every_minutes: None,
        }
    }
}

impl PatientSetup {
    /// The interval `expect` asks of this patient, and whether it is the
    /// clinician's ([`PatientSetup::obs_every_minutes`]) rather than the
    /// pathway's.
    pub fn expect_every(&self, expect: &crate::pathway::Expect) -> (chrono::Duration, bool) {
        match self.obs_every_minutes {
            Some(m) => (chrono::Duration::minutes(i64::from(m)), true),
            None => (expect.every, false),
        }
    }
}

/// A device's `status` message (CONTRACTS.md §2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Connected.
    pub online: bool,
    /// Battery, percent.
    pub battery_pct: Option<u8>,
    /// `ok`, `poor` or `lead_off`.
    pub signal: Option<String>,
}

/// What the engine knows about one device of a patient.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Last status message.
    pub status: DeviceStatus,
    /// Last message of any kind (processing time).
    pub last_seen: Option<DateTime<Utc>>,
    /// An offline alert has been raised since `last_seen`.
    pub(crate) offline_alerted: bool,
}

/// What the engine remembers of a rule's resolved alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// When the clinician resolved it.
    pub(crate) at: DateTime<Utc>,
    /// Its severity then.
    pub(crate) severity: crate::Severity,
    /// The rule has since been evaluated false on a current reading.
    pub(crate) cleared: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExpectClock {
    /// Latest measurement time of any of the expect's codes.
    pub(crate) last: Option<DateTime<Utc>>,
    /// The deadline an alert has been raised for.
    pub(crate) alerted_for: Option<DateTime<Utc>>,
}

type Key = (DateTime<Utc>, Option<i64>);

/// The codes that feed a NEWS2 row.
pub(crate) const NEWS2_CODES: [Code; 7] = [
    Code::RespRate,
    Code::Spo2,
    Code::O2Flow,
    Code::Systolic,
    Code::Pulse,
    Code::Acvpu,
    Code::Temp,
];

/// A NEWS2 result kept for the rising rule: the total and each row's score
/// (`None` where the row was missing or stale), in chart order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scored {
    pub(crate) total: Option<u8>,
    pub(crate) rows: [Option<u8>; 7],
}

impl Scored {
    pub(crate) fn of(s: &News2Score) -> Scored {
        let mut rows = [None; 7];
        for (i, p) in vigil_clinical::Parameter::ALL.iter().enumerate() {
            rows[i] = s.subscore(*p).map(|x| x.score);
        }
        Scored {
            total: s.total,
            rows,
        }
    }

    /// How much more the rows scored in both `self` and `earlier` add up to now.
    pub(crate) fn rise_since(&self, earlier: &Scored) -> i32 {
        self.rows
            .iter()
            .zip(earlier.rows.iter())
            .filter_map(|(now, then)| Some(i32::from((*now)?) - i32::from((*then)?)))
            .sum()
    }
}

/// A reading as the engine holds it, in 64 bytes: a [`Reading`] is 88, and
/// its device id a heap block of its own; a patient on a 1 Hz oximeter keeps
/// 216,000 of them on the general pathway. The device is an index into the
/// patient's few.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Held {
    pub(crate) observation: Observation,
    pub(crate) measured_at: DateTime<Utc>,
    /// The device: one more than its index in [`Patient::sources`]; 0 for
    /// none.
    source: u32,
    pub(crate) obs_id: Option<i64>,
}

// The size the docs (rules.md "Memory") and the comment above state.
const _: () = assert!(std::mem::size_of::<Held>() == 64);
const _: () = assert!(std::mem::size_of::<(Key, Scored)>() == 48);

fn key(r: &Held) -> Key {
    (r.measured_at, r.obs_id)
}

impl Held {
    fn reading(&self, source: Option<String>) -> Reading {
        Reading {
            observation: self.observation.clone(),
            measured_at: self.measured_at,
            source,
            obs_id: self.obs_id,
        }
    }
}

/// NEWS2 as of each reading, in key order: a ring, for the same reason as
/// the readings (the oldest dropped as each new one comes), 48 bytes a
/// score where a B-tree took about twice that.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scores(VecDeque<(Key, Scored)>);

impl Scores {
    /// Sets the score at `k`, replacing one there.
    pub(crate) fn insert(&mut self, k: Key, s: Scored) {
        // Almost always the newest: a push at the back.
        if self.0.back().is_none_or(|(last, _)| *last < k) {
            self.0.push_back((k, s));
            return;
        }
        match self.0.binary_search_by(|(x, _)| x.cmp(&k)) {
            Ok(i) => self.0[i].1 = s,
            Err(i) => self.0.insert(i, (k, s)),
        }
    }

    /// The scores with keys in `[lo, hi)`, in key order.
    pub(crate) fn range(&self, lo: Key, hi: Key) -> impl Iterator<Item = &(Key, Scored)> {
        let a = self.0.partition_point(|(k, _)| *k < lo);
        let b = self.0.partition_point(|(k, _)| *k < hi).max(a);
        self.0.range(a..b)
    }

    /// Drops the scores measured before `cut`.
    pub(crate) fn drop_before(&mut self, cut: DateTime<Utc>) {
        let n = self.0.partition_point(|(k, _)| k.0 < cut);
        self.0.drain(..n);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Key, Scored)> {
        self.0.iter()
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Patient {
    pub(crate) setup: PatientSetup,
    pub(crate) episode: Episode,
    pub(crate) target: Spo2Target,
    /// The readings of each code, in (measured time, obs id) order; a code
    /// with none has no entry. By code, so that a rule's window over one
    /// code and the latest reading of each are a binary search, not a walk
    /// of every reading held: a continuous oximeter keeps a day of them.
    /// A ring, not a vector: once a patient has been monitored for as long
    /// as the pathway keeps, every new reading drops the oldest of its
    /// code, and from a vector that would move every reading held.
    pub(crate) history: BTreeMap<Code, VecDeque<Held>>,
    /// The device ids the held readings came from (a patient has a few).
    sources: Vec<String>,
    /// Stored ids of the readings in `history` (duplicates are ignored).
    pub(crate) obs_ids: HashSet<i64>,
    pub(crate) as_of: Option<DateTime<Utc>>,
    pub(crate) devices: BTreeMap<String, DeviceState>,
    pub(crate) expects: Vec<ExpectClock>,
    /// NEWS2 as of each reading (readings up to and including it).
    pub(crate) scores: Scores,
    /// Unresolved alert per rule.
    pub(crate) open: BTreeMap<String, u64>,
    /// Each rule's last resolved alert, until the rule raises again.
    pub(crate) resolved: BTreeMap<String, Resolved>,
    pub(crate) retention: Duration,
    pub(crate) freshness: Duration,
}

impl Patient {
    pub(crate) fn new(setup: PatientSetup, pathway: &Pathway) -> Patient {
        let mut p = Patient {
            episode: Episode::default(),
            target: Spo2Target::STANDARD,
            history: BTreeMap::new(),
            sources: Vec::new(),
            obs_ids: HashSet::new(),
            as_of: None,
            devices: BTreeMap::new(),
            expects: pathway
                .expects
                .iter()
                .map(|_| ExpectClock {
                    last: None,
                    alerted_for: None,
                })
                .collect(),
            scores: Scores::default(),
            open: BTreeMap::new(),
            resolved: BTreeMap::new(),
            retention: pathway.history_needed(),
            freshness: pathway.freshness,
            setup,
        };
        p.apply_setup(pathway);
        p
    }

    pub(crate) fn apply_setup(&mut self, pathway: &Pathway) {
        let mut episode = self.setup.episode.clone();
        episode.spo2_scale = self
            .setup
            .spo2_scale
            .clone()
            .unwrap_or_else(|| Spo2ScaleSetting {
                set_by: Some(format!("pathway:{}", pathway.name)),
                ..Spo2ScaleSetting::scale(pathway.spo2_scale)
            });
        self.target = self.setup.spo2_target.or(pathway.spo2_target).unwrap_or(
            match episode.spo2_scale.scale {
                Spo2Scale::Two => Spo2Target::HYPERCAPNIC,
                Spo2Scale::One => Spo2Target::STANDARD,
            },
        );
        self.episode = episode;
        self.retention = pathway.history_needed();
        self.freshness = pathway.freshness;
        if self.expects.len() != pathway.expects.len() {
            self.expects = pathway
                .expects
                .iter()
                .map(|e| ExpectClock {
                    last: self.latest_of(&e.codes),
                    alerted_for: None,
                })
                .collect();
        }
    }

    /// Inserts a reading in its place, and with `scores` recomputes NEWS2
    /// as of it and every later reading (for the built-in `news2-rising`).
    /// Returns `None` for a duplicate obs id or a reading too old to
    /// matter, else whether a later reading of the same code already exists
    /// (the reading is superseded).
    pub(crate) fn insert(&mut self, r: Reading, pathway: &Pathway, scores: bool) -> Option<bool> {
        if let Some(as_of) = self.as_of
            && r.measured_at < as_of - self.retention
        {
            return None;
        }
        if let Some(id) = r.obs_id
            && !self.obs_ids.insert(id)
        {
            return None;
        }
        let k = (r.measured_at, r.obs_id);
        let code = r.observation.code;
        let source = match r.source {
            None => 0,
            Some(d) => match self.sources.iter().position(|s| *s == d) {
                Some(i) => i + 1,
                None => {
                    self.sources.push(d);
                    self.sources.len()
                }
            },
        };
        let held = Held {
            measured_at: r.measured_at,
            source: u32::try_from(source).unwrap_or(0),
            obs_id: r.obs_id,
            observation: r.observation,
        };
        let list = self.history.entry(code).or_default();
        let pos = list.partition_point(|h| key(h) <= k);
        let superseded = pos < list.len();
        for (e, clock) in pathway.expects.iter().zip(self.expects.iter_mut()) {
            if e.codes.contains(&code) && clock.last.is_none_or(|l| r.measured_at > l) {
                clock.last = Some(r.measured_at);
            }
        }
        self.as_of = Some(self.as_of.map_or(r.measured_at, |a| a.max(r.measured_at)));
        list.insert(pos, held);
        if scores {
            self.rescore_from(k, pathway);
        }
        self.prune();
        Some(superseded)
    }

    fn prune(&mut self) {
        let Some(as_of) = self.as_of else { return };
        let cut = as_of - self.retention;
        for list in self.history.values_mut() {
            let n = list.partition_point(|h| h.measured_at < cut);
            for r in list.drain(..n) {
                if let Some(id) = r.obs_id {
                    self.obs_ids.remove(&id);
                }
            }
        }
        self.history.retain(|_, list| !list.is_empty());
        // A score within `freshness` of the cut may have used a reading that
        // another arrival order never kept; only later ones are comparable.
        let score_cut = cut + self.freshness;
        self.scores.drop_before(score_cut);
    }

    /// Recomputes the whole NEWS2 history (the episode settings changed).
    pub(crate) fn rescore_all(&mut self, pathway: &Pathway) {
        self.scores.clear();
        if let Some(first) = self
            .history
            .values()
            .filter_map(|l| l.front().map(key))
            .min()
        {
            self.rescore_from(first, pathway);
        }
    }

    /// Recomputes the NEWS2 history at and after `from`.
    fn rescore_from(&mut self, from: Key, pathway: &Pathway) {
        // The latest reading of each NEWS2 code before `from`; readings
        // older than the freshness window are stale for every result from
        // `from` on.
        let horizon = from.0 - pathway.freshness;
        let mut latest: HashMap<Code, &Held> = HashMap::new();
        // Then every NEWS2 reading at or after `from`, in time order (a
        // stable sort: equal keys of one code stay in arrival order).
        let mut later: Vec<&Held> = Vec::new();
        for code in NEWS2_CODES {
            let Some(list) = self.history.get(&code) else {
                continue;
            };
            let start = list.partition_point(|h| key(h) < from);
            if let Some(r) = start.checked_sub(1).map(|i| &list[i])
                && r.measured_at >= horizon
            {
                latest.insert(code, r);
            }
            later.extend(list.range(start..));
        }
        later.sort_by_key(|r| key(r));
        for r in later {
            latest.insert(r.observation.code, r);
            // Without their devices: only the numbers are kept.
            let set: Vec<Reading> = latest.values().map(|h| h.reading(None)).collect();
            // Only the numbers are kept: no reasons (most of a score's cost).
            let s = score_home_with(
                &set,
                &self.episode,
                pathway.freshness,
                r.measured_at,
                Reasons::Skipped,
            );
            self.scores.insert(key(r), Scored::of(&s));
        }
    }

    /// When the latest reading of any of `codes` was measured.
    pub(crate) fn latest_of(&self, codes: &[Code]) -> Option<DateTime<Utc>> {
        codes
            .iter()
            .filter_map(|c| self.history.get(c)?.back())
            .map(|r| r.measured_at)
            .max()
    }

    /// The latest reading of each code, in code order.
    pub(crate) fn latest_per_code(&self) -> impl Iterator<Item = &Held> {
        self.history.values().filter_map(|l| l.back())
    }

    /// `h` as a [`Reading`] again, with its device.
    fn reading(&self, h: &Held) -> Reading {
        let source = (h.source as usize)
            .checked_sub(1)
            .and_then(|i| self.sources.get(i));
        h.reading(source.cloned())
    }

    /// Every reading held, in (measured time, obs id) order.
    pub(crate) fn readings(&self) -> Vec<Reading> {
        let mut all: Vec<&Held> = self.history.values().flatten().collect();
        all.sort_by_key(|r| key(r));
        all.into_iter().map(|h| self.reading(h)).collect()
    }

    /// NEWS2 as of the newest reading (`None` before any reading), with or
    /// without the rows' reasons.
    pub(crate) fn news2(&self, pathway: &Pathway, reasons: Reasons) -> Option<News2Score> {
        let as_of = self.as_of?;
        // Without reasons, the numbers only: no devices either.
        let latest: Vec<Reading> = self
            .latest_per_code()
            .map(|h| match reasons {
                Reasons::Written => self.reading(h),
                Reasons::Skipped => h.reading(None),
            })
            .collect();
        Some(score_home_with(
            &latest,
            &self.episode,
            pathway.freshness,
            as_of,
            reasons,
        ))
    }

    /// The largest rise of `now` over any NEWS2 result in
    /// `[as_of - window, as_of)`, counting only the rows scored in both (so
    /// a row measured for the first time is not a "rise"), with that
    /// earlier result's time and total.
    pub(crate) fn largest_rise(
        &self,
        now: &Scored,
        as_of: DateTime<Utc>,
        window: Duration,
    ) -> Option<(i32, DateTime<Utc>, Option<u8>)> {
        // As `max_by_key(|(rise, t, _)| (rise, Reverse(t)))` over the window
        // (the largest rise, the earliest time, the last of equal keys), but
        // stopping at the first score `now` cannot rise above: no row falls
        // below 0, so no rise exceeds the sum of `now`'s rows. A stable
        // patient (every row 0) stops at the first score instead of walking
        // a day of them, which ECG-derived pulse every few seconds makes
        // long.
        let bound: i32 = now.rows.iter().flatten().map(|&r| i32::from(r)).sum();
        let mut best: Option<(i32, DateTime<Utc>, Option<u8>)> = None;
        let mut scores = self
            .scores
            .range((as_of - window, None), (as_of, None))
            .peekable();
        while let Some((k, then)) = scores.next() {
            let rise = now.rise_since(then);
            if best
                .is_none_or(|(r, t, _)| (rise, std::cmp::Reverse(k.0)) >= (r, std::cmp::Reverse(t)))
            {
                best = Some((rise, k.0, then.total));
            }
            if rise == bound {
                // Later times lose the tie; the same time's later scores
                // still win it.
                while let Some((k2, then2)) = scores.next_if(|(k2, _)| k2.0 == k.0) {
                    if now.rise_since(then2) == bound {
                        best = Some((bound, k2.0, then2.total));
                    }
                }
                break;
            }
        }
        best
    }

    /// The readings of `code` measured in `[as_of - window, as_of]`, oldest
    /// first: two binary searches in that code's readings.
    pub(crate) fn in_window(
        &self,
        code: Code,
        as_of: DateTime<Utc>,
        window: Duration,
    ) -> impl DoubleEndedIterator<Item = &Held> {
        let list = self.history.get(&code);
        let range = list.map_or(0..0, |list| {
            let lo = list.partition_point(|r| r.measured_at < as_of - window);
            let hi = list.partition_point(|r| r.measured_at <= as_of);
            lo..hi.max(lo)
        });
        list.into_iter().flat_map(move |l| l.range(range.clone()))
    }

    /// A trend call's value as of `as_of`. `change` and `count` read the
    /// window in place; the others take its values (the same answer as
    /// [`TrendFn::apply`] over them, which the tests hold it to).
    pub(crate) fn trend(&self, t: &TrendCall, as_of: DateTime<Utc>) -> Option<f64> {
        let mut values = self
            .in_window(t.code, as_of, t.window)
            .filter_map(|r| r.observation.value.as_number());
        match t.func {
            TrendFn::Change => {
                let first = values.next()?;
                Some(values.next_back()? - first)
            }
            TrendFn::Count => Some(values.count() as f64),
            f => f.apply(&values.collect::<Vec<f64>>()),
        }
    }

    /// The facts a rule reads, as of the newest reading.
    pub(crate) fn facts(
        &self,
        pathway: &Pathway,
        news2: Option<&News2Score>,
        device: Option<&str>,
        now: DateTime<Utc>,
        rules: &[&Compiled],
    ) -> Facts {
        let reads = |v: &str| rules.iter().any(|c| c.vars.contains(v));
        let mut f = Facts {
            dur: rules.iter().any(|c| c.dur),
            ..Facts::default()
        };
        let Some(as_of) = self.as_of else { return f };
        let mut ages = reads("age").then(HashMap::new);
        let mut pef = None;
        for r in self.latest_per_code() {
            let code = r.observation.code;
            let age = as_of - r.measured_at;
            if let Some(ages) = ages.as_mut() {
                ages.insert(code.as_str().to_string(), Value::Float(secs(age)));
            }
            if age <= pathway.freshness {
                let v = match &r.observation.value {
                    vigil_clinical::Value::Number(n) => Value::Float(*n),
                    vigil_clinical::Value::Text(t) => Value::from(t.as_str()),
                };
                if code == Code::Pef {
                    pef = r.observation.value.as_number();
                }
                f.variables.push((code.as_str().to_string(), v));
            }
        }
        if let Some(ages) = ages {
            f.variables.push(("age".into(), Value::from(ages)));
        }
        if let (Some(p), Some(best)) = (pef, self.setup.pef_best)
            && best > 0.0
        {
            f.variables
                .push(("pef_pct".into(), Value::Float(p / best * 100.0)));
        }
        if let Some(s) = news2.filter(|_| reads("news2")) {
            f.variables.push(("news2".into(), news2_value(s)));
        }
        if reads("patient") {
            f.variables.push(("patient".into(), self.patient_value()));
        }
        if let Some(d) = device
            .and_then(|d| self.devices.get(d))
            .filter(|_| reads("device"))
        {
            f.variables.push(("device".into(), device_value(d, now)));
        }
        for c in rules {
            for t in &c.trends {
                f.set_trend(t, self.trend(t, as_of));
            }
        }
        f
    }

    fn patient_value(&self) -> Value {
        let mut m: HashMap<String, Value> = HashMap::new();
        let scale = match self.episode.spo2_scale.scale {
            Spo2Scale::One => 1,
            Spo2Scale::Two => 2,
        };
        m.insert("spo2_scale".into(), Value::Int(scale));
        m.insert("spo2_lo".into(), Value::Int(i64::from(self.target.lo())));
        m.insert("spo2_hi".into(), Value::Int(i64::from(self.target.hi())));
        if let Some(b) = self.setup.pef_best {
            m.insert("pef_best".into(), Value::Float(b));
        }
        if let Some(o) = &self.episode.oxygen {
            m.insert("on_oxygen".into(), Value::Bool(o.value));
        }
        Value::from(m)
    }
}

fn secs(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// `news2` as rules see it.
pub(crate) fn news2_value(s: &News2Score) -> Value {
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert("applicable".into(), Value::Bool(s.not_applicable.is_none()));
    if let Some(t) = s.total {
        m.insert("total".into(), Value::Int(i64::from(t)));
    }
    if let Some(r) = s.risk {
        m.insert("risk".into(), Value::from(r.as_str()));
    }
    m.insert("partial".into(), Value::Bool(s.partial));
    m.insert("red".into(), Value::Bool(s.red_score));
    let sub: HashMap<String, Value> = s
        .subscores
        .iter()
        .map(|x| {
            (
                x.parameter.as_str().to_string(),
                Value::Int(i64::from(x.score)),
            )
        })
        .collect();
    m.insert("sub".into(), Value::from(sub));
    let names = |v: &[vigil_clinical::Parameter]| {
        Value::from(v.iter().map(|p| p.as_str()).collect::<Vec<_>>())
    };
    m.insert("missing".into(), names(&s.missing));
    m.insert("stale".into(), names(&s.stale));
    Value::from(m)
}

fn device_value(d: &DeviceState, now: DateTime<Utc>) -> Value {
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert("online".into(), Value::Bool(d.status.online));
    if let Some(b) = d.status.battery_pct {
        m.insert("battery_pct".into(), Value::Int(i64::from(b)));
    }
    m.insert(
        "lead_off".into(),
        Value::Bool(d.status.signal.as_deref() == Some("lead_off")),
    );
    if let Some(s) = &d.status.signal {
        m.insert("signal".into(), Value::from(s.as_str()));
    }
    if let Some(t) = d.last_seen {
        m.insert("last_seen_age".into(), Value::Float(secs(now - t)));
    }
    Value::from(m)
}

pub(crate) fn news2_value_sample() -> Value {
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert("applicable".into(), Value::Bool(true));
    m.insert("total".into(), Value::Int(3));
    m.insert("risk".into(), Value::from("low"));
    m.insert("partial".into(), Value::Bool(false));
    m.insert("red".into(), Value::Bool(false));
    let sub: HashMap<String, Value> = vigil_clinical::Parameter::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), Value::Int(0)))
        .collect();
    m.insert("sub".into(), Value::from(sub));
    m.insert("missing".into(), Value::from(Vec::<Value>::new()));
    m.insert("stale".into(), Value::from(Vec::<Value>::new()));
    Value::from(m)
}

pub(crate) fn patient_value_sample() -> Value {
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert("spo2_scale".into(), Value::Int(1));
    m.insert("spo2_lo".into(), Value::Int(94));
    m.insert("spo2_hi".into(), Value::Int(98));
    m.insert("pef_best".into(), Value::Float(400.0));
    m.insert("on_oxygen".into(), Value::Bool(false));
    Value::from(m)
}

pub(crate) fn device_value_sample() -> Value {
    device_value(
        &DeviceState {
            status: DeviceStatus {
                online: true,
                battery_pct: Some(80),
                signal: Some("ok".into()),
            },
            last_seen: Some(DateTime::<Utc>::UNIX_EPOCH),
            offline_alerted: false,
        },
        DateTime::<Utc>::UNIX_EPOCH,
    )
}
