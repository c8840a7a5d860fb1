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
    if max_points == 0 || rows.len() <= max_points {
        return rows;
    }
    let buckets = (max_points / 2).max(1);
    let per = rows.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(buckets * 2);
    for chunk in rows.chunks(per) {
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
        out.push(chunk[a].clone());
        if b != a && out.len() < max_points {
            out.push(chunk[b].clone());
        }
    }
    out.truncate(max_points);
    out
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
