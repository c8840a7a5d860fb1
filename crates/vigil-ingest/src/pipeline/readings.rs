//! The readings NEWS2 reads, remembered per patient by the worker so that a
//! pass need not read them back from the store (decision 0006). Pure: no
//! I/O. The worker is told of every observation stored after it starts
//! holding a patient (the intake's committed batches and its own ECG heart
//! rates), so what it holds is what the store would answer.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use vigil_store::{ObservationRow, ScoringReads};

/// The end of the read that starts holding a patient: later than any time a
/// stored reading can have, so that the read takes everything stored.
pub(super) fn hold_until() -> DateTime<Utc> {
    // 9999-12-31T23:59:59.999Z: the last time both stores' formats order.
    DateTime::from_timestamp(253_402_300_799, 999_000_000).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Per held patient, their stored readings of the codes NEWS2 reads.
#[derive(Default)]
pub(super) struct Readings {
    held: HashMap<i64, Held>,
}

/// One patient's readings from `start` on.
struct Held {
    start: DateTime<Utc>,
    /// The newest row of each code measured at or before `start`, and every
    /// row measured after it, in (measured time, id) order.
    rows: Vec<ObservationRow>,
}

impl Readings {
    /// Start holding `patient` from `start`, with the store's answer to
    /// `readings_for_scoring` for `(start, hold_until())`: the newest row of
    /// each code at `start` and every row after.
    pub(super) fn hold(&mut self, patient: i64, start: DateTime<Utc>, read: ScoringReads) {
        let mut h = Held {
            start,
            rows: Vec::new(),
        };
        for r in read.base.into_iter().chain(read.later) {
            h.add(r);
        }
        self.held.insert(patient, h);
    }

    /// A row just stored (of a code NEWS2 reads): kept if `patient` is held.
    /// A row already held (read, then told of) is kept once.
    pub(super) fn stored(&mut self, patient: i64, row: ObservationRow) {
        if let Some(h) = self.held.get_mut(&patient) {
            h.add(row);
        }
    }

    /// What `readings_for_scoring` would answer for `(first, last)`, if
    /// `patient` is held from `first` or earlier. Rows at or before `first`
    /// are then forgotten but the newest of each code: a pass scores at
    /// `first` or later, and an earlier time (a late reading) reads again.
    pub(super) fn read(
        &mut self,
        patient: i64,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    ) -> Option<ScoringReads> {
        let h = self.held.get_mut(&patient).filter(|h| h.start <= first)?;
        let split = h.rows.partition_point(|r| r.measured_at <= first);
        let mut newest: BTreeMap<String, ObservationRow> = BTreeMap::new();
        for r in h.rows.drain(..split) {
            // In (time, id) order: each replaces the one before.
            newest.insert(r.code.clone(), r);
        }
        let mut base: Vec<ObservationRow> = newest.into_values().collect();
        base.sort_by_key(|r| (r.measured_at, r.id));
        let later: Vec<ObservationRow> = h
            .rows
            .iter()
            .take_while(|r| r.measured_at <= last)
            .cloned()
            .collect();
        let after = std::mem::take(&mut h.rows);
        h.rows = base.clone();
        h.rows.extend(after);
        h.start = first;
        Some(ScoringReads { base, later })
    }

    /// Stop holding `patient` (discharged, or what was stored for them is
    /// no longer known).
    pub(super) fn forget(&mut self, patient: i64) {
        self.held.remove(&patient);
    }

    /// Whether `patient`'s readings are held.
    #[cfg(test)]
    pub(super) fn holds(&self, patient: i64) -> bool {
        self.held.contains_key(&patient)
    }

    /// Stop holding anyone (stored readings were deleted).
    pub(super) fn clear(&mut self) {
        self.held.clear();
    }
}

impl Held {
    fn add(&mut self, row: ObservationRow) {
        let key = (row.measured_at, row.id);
        if row.measured_at <= self.start {
            // Only the newest of its code at or before `start` is kept
            // (those come first: at most one a code).
            let start = self.start;
            let front = self.rows.partition_point(|r| r.measured_at <= start);
            if let Some(i) = self.rows[..front].iter().position(|r| r.code == row.code) {
                if key <= (self.rows[i].measured_at, self.rows[i].id) {
                    return;
                }
                self.rows.remove(i);
            }
        }
        if let Err(i) = self
            .rows
            .binary_search_by(|r| (r.measured_at, r.id).cmp(&key))
        {
            self.rows.insert(i, row);
        }
    }
}

/// A stored reading as the store gives it back for scoring, if it is of a
/// code NEWS2 reads (the store keeps times to the millisecond).
pub(super) fn scored_row(
    r: &vigil_clinical::Reading,
    now: DateTime<Utc>,
) -> Option<ObservationRow> {
    let code = r.observation.code;
    if !vigil_clinical::SCORED_CODES.contains(&code) {
        return None;
    }
    Some(ObservationRow {
        id: r.obs_id?,
        code: code.as_str().to_string(),
        value: match &r.observation.value {
            vigil_clinical::Value::Number(n) => vigil_store::ObsValue::Number(*n),
            vigil_clinical::Value::Text(t) => vigil_store::ObsValue::Text(t.clone()),
        },
        unit: code.unit().map(str::to_string),
        measured_at: r.measured_at,
        received_at: now,
        device_id: r.source.clone().unwrap_or_default(),
        seq: 0,
    })
}

#[cfg(test)]
mod tests;
