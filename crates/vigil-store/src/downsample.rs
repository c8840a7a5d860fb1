//! Keep a long series within `max_points` without hiding its extremes.
//!
//! A chart of a week of minute readings cannot draw 10,080 points per line,
//! but averaging would hide the one desaturation a nurse must see. Each
//! bucket keeps its minimum and its maximum (in time order), so every dip and
//! peak survives. Text values (ACVPU, posture) are never dropped by this
//! function's callers' intent: they are kept where they fall as bucket edges.

use crate::model::{ObsValue, ObservationRow};

/// Reduce `rows` (time-ordered, one code) to at most `max_points`.
pub fn min_max(rows: Vec<ObservationRow>, max_points: usize) -> Vec<ObservationRow> {
    let mut m = MinMax::new(rows.len(), max_points);
    for r in rows {
        m.push(r);
    }
    m.finish()
}

/// [`min_max`] a row at a time, for a series too long to hold whole: told
/// how many rows will come, it keeps only each bucket's extremes.
pub struct MinMax {
    max_points: usize,
    /// Rows a bucket (0: keep every row).
    per: usize,
    chunk: Vec<ObservationRow>,
    out: Vec<ObservationRow>,
}

impl MinMax {
    pub fn new(total: usize, max_points: usize) -> MinMax {
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

    pub fn push(&mut self, row: ObservationRow) {
        if self.per == 0 {
            self.out.push(row);
            return;
        }
        self.chunk.push(row);
        if self.chunk.len() == self.per {
            self.close();
        }
    }

    /// Keep the bucket's minimum and maximum, in time order.
    fn close(&mut self) {
        let chunk = std::mem::take(&mut self.chunk);
        if chunk.is_empty() {
            return;
        }
        let num = |r: &ObservationRow| match r.value {
            ObsValue::Number(v) => v,
            ObsValue::Text(_) => f64::NAN,
        };
        let (mut lo, mut hi) = (0usize, 0usize);
        for (i, r) in chunk.iter().enumerate() {
            if num(r) < num(&chunk[lo]) {
                lo = i;
            }
            if num(r) > num(&chunk[hi]) {
                hi = i;
            }
        }
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        self.out.push(chunk[a].clone());
        if b != a && self.out.len() < self.max_points {
            self.out.push(chunk[b].clone());
        }
    }

    pub fn finish(mut self) -> Vec<ObservationRow> {
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
    use chrono::{TimeZone, Utc};

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
    fn short_series_is_untouched() {
        let rows: Vec<_> = (0..10).map(|i| row(i, 90.0 + i as f64)).collect();
        assert_eq!(min_max(rows.clone(), 100), rows);
    }
}
