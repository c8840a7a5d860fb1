//! Keep a long series within `max_points` without hiding its extremes.
//!
//! A chart of a week of minute readings cannot draw 10,080 points per line,
//! but averaging would hide the one desaturation a nurse must see. Each
//! bucket keeps its minimum and its maximum (in time order), so every dip and
//! peak survives. Text values (ACVPU, posture) are never dropped by this
//! function's callers' intent: they are kept where they fall as bucket edges.

use chrono::{DateTime, Utc};

use crate::model::{ObsValue, ObservationRow, ScoreLevel, ScoreRow};

/// A row of a charted series.
pub trait Sample {
    /// What the chart draws: its number, or NaN for none (a text value, a
    /// NEWS2 that does not apply and so has no total).
    fn level(&self) -> f64;
    /// Its place in the series: the time it describes, then its id.
    fn key(&self) -> (DateTime<Utc>, i64);
}

impl Sample for ObservationRow {
    fn level(&self) -> f64 {
        match self.value {
            ObsValue::Number(v) => v,
            ObsValue::Text(_) => f64::NAN,
        }
    }
    fn key(&self) -> (DateTime<Utc>, i64) {
        (self.measured_at, self.id)
    }
}

impl Sample for ScoreRow {
    fn level(&self) -> f64 {
        // NEWS2 totals are 0..=20: exact in an f64.
        self.total.map_or(f64::NAN, |t| t as f64)
    }
    fn key(&self) -> (DateTime<Utc>, i64) {
        (self.scored_at, self.id)
    }
}

impl Sample for ScoreLevel {
    fn level(&self) -> f64 {
        self.total.map_or(f64::NAN, |t| t as f64)
    }
    fn key(&self) -> (DateTime<Utc>, i64) {
        (self.scored_at, self.id)
    }
}

/// Reduce `rows` (time-ordered, one series) to at most `max_points`.
pub fn min_max<T: Sample>(rows: Vec<T>, max_points: usize) -> Vec<T> {
    let mut m = MinMax::new(rows.len(), max_points);
    for r in rows {
        m.push(r);
    }
    m.finish()
}

/// [`min_max`] a row at a time, for a series too long to hold whole: told
/// how many rows will come, it keeps only each bucket's extremes.
pub struct MinMax<T> {
    max_points: usize,
    /// Rows a bucket (0: keep every row).
    per: usize,
    chunk: Vec<T>,
    out: Vec<T>,
}

impl<T: Sample> MinMax<T> {
    pub fn new(total: usize, max_points: usize) -> MinMax<T> {
        let per = if max_points == 0 || total <= max_points {
            0
        } else {
            total.div_ceil((max_points / 2).max(1))
        };
        MinMax {
            max_points,
            per,
            chunk: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn push(&mut self, row: T) {
        if self.per == 0 {
            self.out.push(row);
            return;
        }
        self.chunk.push(row);
        if self.chunk.len() == self.per {
            self.close();
        }
    }

    /// Keep the bucket's minimum and maximum, in time order. Rows with no
    /// number are passed over; a bucket of them only keeps its first.
    fn close(&mut self) {
        let mut chunk = std::mem::take(&mut self.chunk);
        if chunk.is_empty() {
            return;
        }
        // (index, level) of the lowest and the highest so far.
        let mut lo: Option<(usize, f64)> = None;
        let mut hi: Option<(usize, f64)> = None;
        for (i, r) in chunk.iter().enumerate() {
            let v = r.level();
            if v.is_nan() {
                continue;
            }
            if lo.is_none_or(|(_, l)| v < l) {
                lo = Some((i, v));
            }
            if hi.is_none_or(|(_, h)| v > h) {
                hi = Some((i, v));
            }
        }
        let (lo, hi) = (lo.map_or(0, |x| x.0), hi.map_or(0, |x| x.0));
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        // Taken from the back first, so that `a` still names its row.
        let second = (b != a && self.out.len() + 1 < self.max_points).then(|| chunk.swap_remove(b));
        self.out.push(chunk.swap_remove(a));
        self.out.extend(second);
    }

    pub fn finish(mut self) -> Vec<T> {
        self.close();
        if self.per > 0 {
            self.out.truncate(self.max_points);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(i: i64, v: f64) -> ObservationRow {
        ObservationRow {
            id: i,
            code: "spo2".into(),
            value: ObsValue::Number(v),
            unit: Some("%".into()),
            measured_at: Utc.timestamp_opt(i * 60, 0).single().expect("valid time"),
            received_at: Utc.timestamp_opt(i * 60, 0).single().expect("valid time"),
            device_id: "d".into(),
            seq: i as u32,
        }
    }

    #[test]
    fn a_single_dip_survives_downsampling() {
        let rows: Vec<_> = (0..10_000)
            .map(|i| row(i, if i == 4321 { 81.0 } else { 96.0 }))
            .collect();
        let out = min_max(rows, 100);
        assert!(out.len() <= 100);
        assert!(out.iter().any(|r| r.value == ObsValue::Number(81.0)));
        assert!(out.windows(2).all(|w| w[0].measured_at <= w[1].measured_at));
    }

    #[test]
    fn a_bucket_keeps_its_extremes_in_time_order_and_passes_over_rows_without_a_number() {
        let score = |i: i64, total: Option<i64>| ScoreRow {
            id: i,
            scored_at: Utc.timestamp_opt(i * 60, 0).single().expect("valid time"),
            computed_at: Utc.timestamp_opt(i * 60, 0).single().expect("valid time"),
            total,
            risk: None,
            partial: false,
            detail: serde_json::Value::Null,
            obs_ids: Vec::new(),
        };
        // Two buckets of four: the first opens with a NEWS2 that does not
        // apply (no total), its highest before its lowest; the second has
        // no total at all.
        let rows = vec![
            score(0, None),
            score(1, Some(7)),
            score(2, Some(1)),
            score(3, Some(3)),
            score(4, None),
            score(5, None),
            score(6, None),
            score(7, None),
        ];
        let ids: Vec<i64> = min_max(rows, 4).iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 2, 4]);
    }

    #[test]
    fn short_series_is_untouched() {
        let rows: Vec<_> = (0..10).map(|i| row(i, 90.0 + i as f64)).collect();
        assert_eq!(min_max(rows.clone(), 100), rows);
    }
}
