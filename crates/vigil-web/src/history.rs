//! A patient's history asked for whole (`GET …/observations` or
//! `…/scores` with no `max_points` or `newest`), written as it is read.
//!
//! A continuous oximeter stores a reading, and a NEWS2 score, a second: a
//! fortnight's episode is over a million rows. Read whole, one such request
//! held them all in the daemon's memory at once (302,400 scores took
//! +3.6 GiB, docs/benchmarks.md), whatever else it was doing for the ward.
//! Here the rows are read a run at a time by the store's keyset pages
//! ([`HistoryPage`]) and each run is written to the client before the next
//! is read, so a slow client holds up only its own answer and the daemon
//! holds one run.
//!
//! The array is the same, in the same order, as the whole read gave. The
//! first run is read before the answer starts, so a store that cannot be
//! read gives the usual error; a store error after that ends the answer
//! without its closing bracket, so no client can take a cut array for a
//! whole one (as the FHIR discharge Bundle does).

use std::collections::VecDeque;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Serialize;
use vigil_store::downsample::Sample;
use vigil_store::{HistoryPage, StoreError};

/// Rows read, and written, at a time.
pub(crate) const RUN: i64 = 1_000;

/// Where an answer has got to: the series still to read (each of a
/// patient's codes, or the one score series) and the page of the first.
struct Runs<K, F> {
    series: VecDeque<K>,
    /// Every series starts here: the request's span, no rows read.
    start: HistoryPage,
    page: HistoryPage,
    read: F,
    opened: bool,
    /// A row is written: the next goes after a comma.
    any: bool,
    done: bool,
    what: &'static str,
}

impl<K, T, F, Fut> Runs<K, F>
where
    K: Clone,
    T: Serialize + Sample,
    F: FnMut(K, HistoryPage) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    /// The next run's text (the opening bracket before the first, the
    /// closing one after the last); `None` once the closing one is written.
    async fn step(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let mut chunk = Vec::new();
        if !self.opened {
            chunk.push(b'[');
            self.opened = true;
        }
        let Some(key) = self.series.front().cloned() else {
            self.done = true;
            chunk.push(b']');
            return Ok(Some(chunk));
        };
        let run = (self.read)(key, self.page).await?;
        match self.page.after(&run) {
            Some(next) => self.page = next,
            None => {
                self.series.pop_front();
                self.page = self.start;
            }
        }
        for row in &run {
            if self.any {
                chunk.push(b',');
            }
            self.any = true;
            serde_json::to_writer(&mut chunk, row)
                .map_err(|e| StoreError::Backend(format!("{} as JSON: {e}", self.what)))?;
        }
        Ok(Some(chunk))
    }
}

/// `series` read in turn from `start`, a run of `start.limit` at a time,
/// as one JSON array. Errors only if the first run cannot be read.
pub(crate) async fn json_array<K, T, F, Fut>(
    series: Vec<K>,
    start: HistoryPage,
    read: F,
    what: &'static str,
    patient: i64,
) -> Result<Response, StoreError>
where
    K: Clone + Send + 'static,
    T: Serialize + Sample + Send + 'static,
    F: FnMut(K, HistoryPage) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<T>, StoreError>> + Send,
{
    let mut runs = Runs {
        series: series.into(),
        start,
        page: start,
        read,
        opened: false,
        any: false,
        done: false,
        what,
    };
    let first = runs.step().await?;
    let rest = futures::stream::unfold(runs, move |mut runs| async move {
        match runs.step().await {
            Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), runs)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(patient, what, error = ?e, "history cut short: a run could not be read");
                runs.done = true;
                Some((Err(std::io::Error::other("store error")), runs))
            }
        }
    });
    let head = futures::stream::iter(first.map(|c| Ok(Bytes::from(c))));
    let mut resp = Response::new(Body::from_stream(futures::StreamExt::chain(head, rest)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
