//! The bounded store-and-forward queue: every uplink message stays until
//! Vigil acknowledges (or rejects) its seq on `cmd`.
//!
//! Delivery in Vigil is end to end (ARCHITECTURE.md): an MQTT PUBACK only
//! says a broker had the message in memory. So the kit keeps the encoded
//! bytes of every message and resends them, unchanged and with the same seq,
//! until the application-level `ack` arrives:
//!
//! - [`Outbox::poll`] hands out the oldest message that is due (never sent,
//!   or sent and unacknowledged for longer than the resend timeout, which
//!   doubles per attempt up to a cap), observations before ECG chunks. At
//!   most `max_in_flight` messages of each kind are outstanding at once, so
//!   a backlog after an outage drains at a pace the client's own queue can
//!   take, and an ECG backlog never holds back a reading.
//! - [`Outbox::on_reconnect`] makes every unacknowledged message due again.
//! - [`Outbox::on_ack`] / [`Outbox::on_reject`] remove messages.
//! - Time is an input (`now_ms`, any monotonic millisecond clock).
//!
//! # When it is full
//!
//! Two bounds: `SLOTS` messages and `BYTES` bytes of payload. When a new
//! message does not fit, [`OverflowPolicy`] decides, and every outcome is
//! counted in [`Stats`], never silent:
//!
//! - [`OverflowPolicy::DropOldestEcgElseRefuse`] (default): evict the oldest
//!   ECG chunks to make room; if there are none left to evict, refuse the new
//!   message with [`EnqueueError::Full`]. Spot observations (SpO2, BP ...) are
//!   small, rare and drive NEWS2: they are never dropped, and a refusal is
//!   reported at the moment of measurement, where the kit can tell the
//!   patient. ECG is bulk and continuous; after a long outage the newest
//!   strip is worth more than the oldest, and one lost chunk does not hide
//!   the others.
//! - [`OverflowPolicy::RefuseNew`]: keep everything queued, refuse new.
//! - [`OverflowPolicy::DropOldest`]: evict the oldest message of any kind.
//!
//! # Memory
//!
//! Payloads live back to back in one `[u8; BYTES]` arena, metadata in a
//! `heapless::Vec` of `SLOTS`. Removing messages compacts the arena (one
//! `copy_within` pass per ack batch), so there is no fragmentation and every
//! payload is a contiguous slice ready to publish.
//!
//! # Surviving a restart
//!
//! [`Outbox::snapshot_len`] / [`Outbox::write_snapshot`] /
//! [`Outbox::restore`] serialise the queue (with a CRC-32), and under `std`
//! [`Outbox::save_to_file`] / [`Outbox::load_from_file`] write it atomically.
//! Each save rewrites the whole queue: simple and crash-safe, at the cost of
//! writing up to `BYTES` per save. Save after each enqueue and after each ack
//! batch; a message enqueued but not yet saved is lost if power fails in
//! between, so tell the patient "saved" only after the save.

use core::borrow::Borrow;

use crate::cmd::Command;
use crate::ecg_chunk::EcgChunk;
use crate::error::EncodeError;
use crate::obs_message::ObsMessage;

/// Which uplink topic a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `vigil/v1/dev/{device}/obs`, JSON.
    Obs,
    /// `vigil/v1/dev/{device}/ecg`, binary.
    Ecg,
}

impl Kind {
    /// The last topic level: `"obs"` or `"ecg"`.
    pub const fn topic_suffix(self) -> &'static str {
        match self {
            Kind::Obs => "obs",
            Kind::Ecg => "ecg",
        }
    }

    const fn to_byte(self) -> u8 {
        match self {
            Kind::Obs => 1,
            Kind::Ecg => 2,
        }
    }

    const fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Obs),
            2 => Some(Kind::Ecg),
            _ => None,
        }
    }
}

/// What to do when a new message does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Refuse the new message ([`EnqueueError::Full`], counted as `refused`).
    RefuseNew,
    /// Evict the oldest messages of any kind (counted as `dropped`).
    DropOldest,
    /// Evict the oldest ECG chunks; refuse if only observations remain.
    DropOldestEcgElseRefuse,
}

/// Queue behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// First resend after this long without an ack.
    pub resend_after_ms: u64,
    /// The resend timeout doubles per attempt up to this.
    pub max_resend_after_ms: u64,
    /// At most this many sent-and-unacked messages not yet timed out.
    pub max_in_flight: usize,
    /// What to do when full.
    pub overflow: OverflowPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            resend_after_ms: 30_000,
            max_resend_after_ms: 300_000,
            max_in_flight: 32,
            overflow: OverflowPolicy::DropOldestEcgElseRefuse,
        }
    }
}

/// Counters since boot (not persisted), plus the current queue size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// First transmissions handed out by [`Outbox::poll`].
    pub sent: u64,
    /// Retransmissions handed out by [`Outbox::poll`].
    pub resent: u64,
    /// Messages removed by an ack.
    pub acked: u64,
    /// Messages removed by a reject.
    pub rejected: u64,
    /// Messages evicted by the overflow policy: lost.
    pub dropped: u64,
    /// New messages refused because the queue was full: not queued.
    pub refused: u64,
    /// Acked seqs that were not queued (already acked: normal after a resend).
    pub unknown_acks: u64,
    /// Messages queued now.
    pub queued: usize,
    /// Payload bytes queued now.
    pub queued_bytes: usize,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// Full, and the policy does not allow evicting to make room.
    #[error("store-and-forward queue full")]
    Full,
    /// Larger than the whole queue.
    #[error("message of {len} bytes larger than the queue ({capacity} bytes)")]
    TooLarge {
        /// Message size.
        len: usize,
        /// Queue capacity in bytes.
        capacity: usize,
    },
    /// Seqs must increase: a seq at or below the newest queued one is a
    /// counter fault (and would break oldest-first ordering).
    #[error("seq {seq} not above the last queued seq {last}")]
    SeqNotIncreasing {
        /// The refused seq.
        seq: u32,
        /// The newest seq queued so far.
        last: u32,
    },
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A message to publish now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// Its seq.
    pub seq: u32,
    /// Its topic.
    pub kind: Kind,
    /// 1 for the first transmission, 2 for the first resend, ...
    pub attempt: u32,
    /// The bytes to publish, identical on every attempt.
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u32,
    kind: Kind,
    off: usize,
    len: usize,
    attempts: u32,
    /// `None`: due now. `Some(t)`: last sent at `t`.
    sent_at: Option<u64>,
    remove: bool,
}

/// The store-and-forward queue: up to `SLOTS` messages, `BYTES` bytes.
pub struct Outbox<const SLOTS: usize, const BYTES: usize> {
    arena: [u8; BYTES],
    used: usize,
    entries: heapless::Vec<Entry, SLOTS>,
    last_seq: Option<u32>,
    config: Config,
    stats: Stats,
}

impl<const SLOTS: usize, const BYTES: usize> core::fmt::Debug for Outbox<SLOTS, BYTES> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Outbox")
            .field("stats", &self.stats())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<const SLOTS: usize, const BYTES: usize> Outbox<SLOTS, BYTES> {
    /// An empty queue.
    pub const fn new(config: Config) -> Self {
        Outbox {
            arena: [0; BYTES],
            used: 0,
            entries: heapless::Vec::new(),
            last_seq: None,
            config,
            stats: Stats {
                sent: 0,
                resent: 0,
                acked: 0,
                rejected: 0,
                dropped: 0,
                refused: 0,
                unknown_acks: 0,
                queued: 0,
                queued_bytes: 0,
            },
        }
    }

    /// Counters and current size.
    pub fn stats(&self) -> Stats {
        Stats {
            queued: self.entries.len(),
            queued_bytes: self.used,
            ..self.stats
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued (everything sent has been acknowledged).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The queued seqs, oldest first.
    pub fn seqs(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.seq)
    }

    /// The newest seq ever queued (survives acks and snapshots).
    pub fn last_seq(&self) -> Option<u32> {
        self.last_seq
    }

    /// Queues already-encoded bytes.
    pub fn enqueue(&mut self, seq: u32, kind: Kind, payload: &[u8]) -> Result<(), EnqueueError> {
        self.push_with(seq, kind, payload.len(), |buf| {
            let dst = buf
                .get_mut(..payload.len())
                .ok_or(EncodeError::BufferTooSmall {
                    needed: payload.len(),
                })?;
            dst.copy_from_slice(payload);
            Ok(payload.len())
        })
    }

    /// Encodes an observation message straight into the queue.
    pub fn push_obs(&mut self, msg: &ObsMessage<'_>) -> Result<(), EnqueueError> {
        let len = msg.encoded_len()?;
        self.push_with(msg.seq, Kind::Obs, len, |buf| msg.encode(buf))
    }

    /// Encodes an ECG chunk straight into the queue.
    pub fn push_ecg(&mut self, chunk: &EcgChunk<'_>) -> Result<(), EnqueueError> {
        // Validate before making room, so a bad chunk evicts nothing.
        chunk.encode(&mut []).map(|_| ()).or_else(|e| match e {
            EncodeError::BufferTooSmall { .. } => Ok(()),
            e => Err(e),
        })?;
        let len = EcgChunk::encoded_len(chunk.samples.len());
        self.push_with(chunk.seq, Kind::Ecg, len, |buf| chunk.encode(buf))
    }

    fn push_with(
        &mut self,
        seq: u32,
        kind: Kind,
        len: usize,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<(), EnqueueError> {
        if let Some(last) = self.last_seq
            && seq <= last
        {
            return Err(EnqueueError::SeqNotIncreasing { seq, last });
        }
        if len > BYTES || SLOTS == 0 {
            return Err(EnqueueError::TooLarge {
                len,
                capacity: BYTES,
            });
        }
        self.make_room(len)?;
        let off = self.used;
        let free = self.arena.get_mut(off..).unwrap_or(&mut []);
        let written = encode(free)?;
        if written != len {
            // The encoder disagreed with its own length: keep nothing.
            return Err(EncodeError::BufferTooSmall { needed: written }.into());
        }
        let entry = Entry {
            seq,
            kind,
            off,
            len,
            attempts: 0,
            sent_at: None,
            remove: false,
        };
        if self.entries.push(entry).is_err() {
            return Err(EnqueueError::Full); // make_room guarantees a slot
        }
        self.used += len;
        self.last_seq = Some(seq);
        Ok(())
    }

    fn make_room(&mut self, len: usize) -> Result<(), EnqueueError> {
        while self.entries.is_full() || BYTES - self.used < len {
            let victim = match self.config.overflow {
                OverflowPolicy::RefuseNew => None,
                OverflowPolicy::DropOldest => (!self.entries.is_empty()).then_some(0),
                OverflowPolicy::DropOldestEcgElseRefuse => {
                    self.entries.iter().position(|e| e.kind == Kind::Ecg)
                }
            };
            let Some(i) = victim else {
                self.stats.refused += 1;
                return Err(EnqueueError::Full);
            };
            if let Some(e) = self.entries.get_mut(i) {
                e.remove = true;
            }
            self.compact();
            self.stats.dropped += 1;
        }
        Ok(())
    }

    /// Removes entries marked `remove` and closes the gaps in the arena.
    fn compact(&mut self) {
        let arena = &mut self.arena;
        let mut write = 0usize;
        self.entries.retain_mut(|e| {
            if e.remove {
                return false;
            }
            if e.off != write {
                // Entries are in arena order and write ≤ e.off, so the
                // ranges are in bounds by construction.
                arena.copy_within(e.off..e.off + e.len, write);
                e.off = write;
            }
            write += e.len;
            true
        });
        self.used = write;
    }

    fn timeout(&self, attempts: u32) -> u64 {
        let shift = attempts.saturating_sub(1).min(20);
        self.config
            .resend_after_ms
            .saturating_mul(1u64 << shift)
            .min(
                self.config
                    .max_resend_after_ms
                    .max(self.config.resend_after_ms),
            )
    }

    fn due_in(&self, e: &Entry, now_ms: u64) -> u64 {
        match e.sent_at {
            None => 0,
            // A clock that went backwards makes the message due at once
            // rather than stalling it until the clock catches up.
            Some(t) => match now_ms.checked_sub(t) {
                None => 0,
                Some(elapsed) => self.timeout(e.attempts).saturating_sub(elapsed),
            },
        }
    }

    /// The next message to (re)send at `now_ms`; marks it sent. Call
    /// repeatedly until `None`, publishing each.
    ///
    /// Observations go before ECG chunks, and within each kind the oldest
    /// goes first. Each kind has its own `max_in_flight` window, so a
    /// backlog of ECG chunks (bulky, continuous, possibly never acked by a
    /// server that does not ingest ECG yet) can never hold back a SpO2 or
    /// blood pressure reading. Vigil scores by measurement time, so the
    /// order of arrival across kinds does not matter to it.
    pub fn poll(&mut self, now_ms: u64) -> Option<Outgoing<'_>> {
        // A window of 0 would never send anything: treat it as 1.
        let window = self.config.max_in_flight.max(1);
        let pick = |kind: Kind| -> Option<usize> {
            let in_flight = self
                .entries
                .iter()
                .filter(|e| e.kind == kind && e.sent_at.is_some() && self.due_in(e, now_ms) > 0)
                .count();
            if in_flight >= window {
                return None;
            }
            self.entries
                .iter()
                .position(|e| e.kind == kind && self.due_in(e, now_ms) == 0)
        };
        let i = pick(Kind::Obs).or_else(|| pick(Kind::Ecg))?;
        let e = self.entries.get_mut(i)?;
        if e.attempts == 0 {
            self.stats.sent += 1;
        } else {
            self.stats.resent += 1;
        }
        e.attempts = e.attempts.saturating_add(1);
        e.sent_at = Some(now_ms);
        let e = *e;
        Some(Outgoing {
            seq: e.seq,
            kind: e.kind,
            attempt: e.attempts,
            payload: self.arena.get(e.off..e.off + e.len).unwrap_or(&[]),
        })
    }

    /// Milliseconds from `now_ms` until [`Outbox::poll`] would return
    /// something (0: now), `None` when nothing is queued. For the caller's
    /// timer. Ignores the in-flight limit, which only an ack can lift.
    pub fn next_due_in(&self, now_ms: u64) -> Option<u64> {
        self.entries.iter().map(|e| self.due_in(e, now_ms)).min()
    }

    /// The connection came back: every unacknowledged message is due now.
    pub fn on_reconnect(&mut self) {
        for e in self.entries.iter_mut() {
            e.sent_at = None;
        }
    }

    /// Vigil stored these seqs: remove them. Returns how many were queued.
    pub fn on_ack<I>(&mut self, seqs: I) -> usize
    where
        I: IntoIterator,
        I::Item: Borrow<u32>,
    {
        let mut removed = 0;
        for seq in seqs {
            let seq = *seq.borrow();
            match self.entries.binary_search_by_key(&seq, |e| e.seq) {
                Ok(i) => {
                    if let Some(e) = self.entries.get_mut(i)
                        && !e.remove
                    {
                        e.remove = true;
                        removed += 1;
                    }
                }
                Err(_) => self.stats.unknown_acks += 1,
            }
        }
        if removed > 0 {
            self.compact();
            self.stats.acked += removed as u64;
        }
        removed
    }

    /// Vigil stored this seq as rejected: remove it, never resend. Returns
    /// whether it was queued.
    pub fn on_reject(&mut self, seq: u32) -> bool {
        let Ok(i) = self.entries.binary_search_by_key(&seq, |e| e.seq) else {
            return false;
        };
        if let Some(e) = self.entries.get_mut(i) {
            e.remove = true;
        }
        self.compact();
        self.stats.rejected += 1;
        true
    }

    /// Applies an `ack` or `reject` command; other commands are not the
    /// queue's business. Returns whether the command was an ack or reject.
    pub fn apply(&mut self, cmd: &Command<'_>) -> bool {
        match cmd {
            Command::Ack(seqs) => {
                self.on_ack(seqs.iter());
                true
            }
            Command::Reject { seq, .. } => {
                self.on_reject(*seq);
                true
            }
            _ => false,
        }
    }
}

// ---- snapshots ------------------------------------------------------------

const SNAP_MAGIC: [u8; 4] = *b"VQUE";
const SNAP_VERSION: u8 = 1;
const SNAP_HEADER: usize = 4 + 1 + 1 + 4 + 4;
const SNAP_ENTRY: usize = 4 + 1 + 4 + 4;

/// Why a snapshot could not be restored. The queue is left empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Wrong magic, version, CRC or structure.
    #[error("queue snapshot corrupt")]
    Corrupt,
    /// Valid, but holds more than this queue's `SLOTS` or `BYTES`.
    #[error("queue snapshot larger than this queue")]
    TooLarge,
    /// Restore needs an empty queue.
    #[error("restore into a non-empty queue")]
    NotEmpty,
}

/// CRC-32 (IEEE 802.3, reflected, as zlib).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.pos.checked_add(n).ok_or(SnapshotError::Corrupt)?;
        let s = self.b.get(self.pos..end).ok_or(SnapshotError::Corrupt)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        self.take(1)?.first().copied().ok_or(SnapshotError::Corrupt)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let s = self.take(4)?;
        let a: [u8; 4] = s.try_into().map_err(|_| SnapshotError::Corrupt)?;
        Ok(u32::from_le_bytes(a))
    }
}

impl<const SLOTS: usize, const BYTES: usize> Outbox<SLOTS, BYTES> {
    /// Size of [`Outbox::write_snapshot`]'s output.
    pub fn snapshot_len(&self) -> usize {
        SNAP_HEADER + self.entries.len() * SNAP_ENTRY + self.used + 4
    }

    /// Serialises the queue: header, entries (seq, kind, attempts, len,
    /// payload), CRC-32. Stats are not included.
    pub fn write_snapshot(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let needed = self.snapshot_len();
        let Some(out) = out.get_mut(..needed) else {
            return Err(EncodeError::BufferTooSmall { needed });
        };
        let mut w = crate::json::BufWriter::new(out);
        w.bytes(&SNAP_MAGIC);
        w.bytes(&[SNAP_VERSION, u8::from(self.last_seq.is_some())]);
        w.bytes(&self.last_seq.unwrap_or(0).to_le_bytes());
        w.bytes(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            w.bytes(&e.seq.to_le_bytes());
            w.bytes(&[e.kind.to_byte()]);
            w.bytes(&e.attempts.to_le_bytes());
            w.bytes(&(e.len as u32).to_le_bytes());
            w.bytes(self.arena.get(e.off..e.off + e.len).unwrap_or(&[]));
        }
        let body = needed - 4;
        let crc = crc32(out.get(..body).unwrap_or(&[]));
        if let Some(tail) = out.get_mut(body..) {
            tail.copy_from_slice(&crc.to_le_bytes());
        }
        Ok(needed)
    }

    /// Loads a snapshot into this (empty) queue. Restored messages are due
    /// at once: a restart is a reconnect. On error the queue stays empty.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        if !self.entries.is_empty() {
            return Err(SnapshotError::NotEmpty);
        }
        let result = self.restore_inner(snapshot);
        if result.is_err() {
            self.entries.clear();
            self.used = 0;
            self.last_seq = None;
        }
        result
    }

    fn restore_inner(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        let body_len = snapshot
            .len()
            .checked_sub(4)
            .ok_or(SnapshotError::Corrupt)?;
        let (body, crc) = snapshot.split_at(body_len);
        let crc: [u8; 4] = crc.try_into().map_err(|_| SnapshotError::Corrupt)?;
        if crc32(body) != u32::from_le_bytes(crc) {
            return Err(SnapshotError::Corrupt);
        }
        let mut c = Cursor { b: body, pos: 0 };
        if c.take(4)? != SNAP_MAGIC || c.u8()? != SNAP_VERSION {
            return Err(SnapshotError::Corrupt);
        }
        let has_last = c.u8()?;
        let last = c.u32()?;
        let count = c.u32()? as usize;
        if count > SLOTS {
            return Err(SnapshotError::TooLarge);
        }
        let mut prev: Option<u32> = None;
        for _ in 0..count {
            let seq = c.u32()?;
            let kind = Kind::from_byte(c.u8()?).ok_or(SnapshotError::Corrupt)?;
            let attempts = c.u32()?;
            let len = c.u32()? as usize;
            let payload = c.take(len)?;
            if prev.is_some_and(|p| seq <= p) {
                return Err(SnapshotError::Corrupt);
            }
            prev = Some(seq);
            let off = self.used;
            let dst = off
                .checked_add(len)
                .and_then(|end| self.arena.get_mut(off..end))
                .ok_or(SnapshotError::TooLarge)?;
            dst.copy_from_slice(payload);
            self.entries
                .push(Entry {
                    seq,
                    kind,
                    off,
                    len,
                    attempts,
                    sent_at: None,
                    remove: false,
                })
                .map_err(|_| SnapshotError::TooLarge)?;
            self.used += len;
        }
        if c.pos != body.len() {
            return Err(SnapshotError::Corrupt);
        }
        let last = (has_last == 1).then_some(last);
        if has_last > 1 || (prev.is_some() && last < prev) {
            return Err(SnapshotError::Corrupt);
        }
        self.last_seq = last;
        Ok(())
    }
}

#[cfg(feature = "std")]
impl<const SLOTS: usize, const BYTES: usize> Outbox<SLOTS, BYTES> {
    /// Writes a snapshot to `path` atomically ([`crate::persist::write_atomic`]).
    pub fn save_to_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut buf = std::vec![0u8; self.snapshot_len()];
        let n = self
            .write_snapshot(&mut buf)
            .map_err(|e| std::io::Error::other(std::format!("{e}")))?;
        buf.truncate(n);
        crate::persist::write_atomic(path, &buf)
    }

    /// Restores from `path` into this empty queue; `Ok(false)` when there is
    /// no file (first boot). A corrupt file is an `InvalidData` error: the
    /// caller decides whether to move it aside and start empty.
    pub fn load_from_file(&mut self, path: &std::path::Path) -> std::io::Result<bool> {
        let Some(bytes) = crate::persist::read_optional(path)? else {
            return Ok(false);
        };
        self.restore(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::{Code, Observation};
    use proptest::prelude::*;

    const TS: i64 = 1_795_335_303_000;

    type Small = Outbox<8, 1024>;

    fn cfg(overflow: OverflowPolicy) -> Config {
        Config {
            resend_after_ms: 1_000,
            max_resend_after_ms: 4_000,
            max_in_flight: 100,
            overflow,
        }
    }

    fn push_obs<const S: usize, const B: usize>(
        q: &mut Outbox<S, B>,
        seq: u32,
    ) -> Result<(), EnqueueError> {
        let obs = [Observation::number(Code::Spo2, 94.0).unwrap()];
        q.push_obs(&ObsMessage {
            seq,
            ts_ms: TS,
            obs: &obs,
        })
    }

    fn drain(q: &mut Small, now: u64) -> heapless::Vec<(u32, u32), 16> {
        let mut out = heapless::Vec::new();
        while let Some(m) = q.poll(now) {
            out.push((m.seq, m.attempt)).unwrap();
        }
        out
    }

    #[test]
    fn unacked_message_is_resent_unchanged_after_timeout() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 1).unwrap();
        let first = {
            let m = q.poll(0).unwrap();
            assert_eq!((m.seq, m.attempt, m.kind), (1, 1, Kind::Obs));
            let mut v = heapless::Vec::<u8, 256>::new();
            v.extend_from_slice(m.payload).unwrap();
            v
        };
        assert!(q.poll(999).is_none());
        let m = q.poll(1_000).unwrap();
        assert_eq!((m.seq, m.attempt), (1, 2));
        assert_eq!(m.payload, first.as_slice());
        let s = q.stats();
        assert_eq!((s.sent, s.resent, s.queued), (1, 1, 1));
    }

    #[test]
    fn resend_keeps_the_original_measurement_time_after_an_outage() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 1).unwrap();
        let _ = q.poll(0);
        // Hours offline, then back.
        q.on_reconnect();
        let m = q.poll(6 * 3_600_000).unwrap();
        let text = core::str::from_utf8(m.payload).unwrap();
        assert!(text.contains("\"ts\":\"2026-11-22T08:15:03Z\""), "{text}");
        assert_eq!(m.attempt, 2);
    }

    #[test]
    fn every_unacked_message_is_resent_on_reconnect_oldest_first() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        for s in 1..=3 {
            push_obs(&mut q, s).unwrap();
        }
        assert_eq!(drain(&mut q, 0).as_slice(), &[(1, 1), (2, 1), (3, 1)]);
        q.on_ack([2u32]);
        q.on_reconnect();
        assert_eq!(drain(&mut q, 10).as_slice(), &[(1, 2), (3, 2)]);
    }

    #[test]
    fn acked_message_is_never_sent_again() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 1).unwrap();
        push_obs(&mut q, 2).unwrap();
        let _ = drain(&mut q, 0);
        let cmd = crate::cmd::parse(br#"{"type":"ack","seqs":[1,2]}"#).unwrap();
        assert!(q.apply(&cmd));
        assert!(q.is_empty());
        q.on_reconnect();
        assert!(q.poll(1_000_000).is_none());
        assert_eq!(q.stats().acked, 2);
        assert_eq!(q.stats().queued_bytes, 0);
    }

    #[test]
    fn duplicate_and_unknown_acks_are_counted_not_fatal() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 5).unwrap();
        assert_eq!(q.on_ack([5, 5, 6]), 1);
        assert_eq!(q.on_ack([5]), 0);
        let s = q.stats();
        assert_eq!((s.acked, s.unknown_acks), (1, 2));
    }

    #[test]
    fn rejected_message_is_removed_and_never_resent() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 1).unwrap();
        push_obs(&mut q, 2).unwrap();
        let _ = drain(&mut q, 0);
        let cmd = crate::cmd::parse(br#"{"type":"reject","seq":1,"reason":"unit"}"#).unwrap();
        assert!(q.apply(&cmd));
        q.on_reconnect();
        assert_eq!(drain(&mut q, 1).as_slice(), &[(2, 2)]);
        assert_eq!(q.stats().rejected, 1);
        assert!(!q.on_reject(99));
    }

    #[test]
    fn full_queue_refuses_new_observation_and_counts_it() {
        let mut q = Outbox::<2, 1024>::new(cfg(OverflowPolicy::DropOldestEcgElseRefuse));
        push_obs(&mut q, 1).unwrap();
        push_obs(&mut q, 2).unwrap();
        assert_eq!(push_obs(&mut q, 3), Err(EnqueueError::Full));
        let s = q.stats();
        assert_eq!((s.refused, s.dropped, s.queued), (1, 0, 2));
        assert!(q.seqs().eq([1, 2]));
    }

    #[test]
    fn full_queue_evicts_oldest_ecg_first_and_counts_it() {
        // Chunks of 100 samples are 225 bytes, an observation message 82.
        let mut q = Outbox::<16, 600>::new(cfg(OverflowPolicy::DropOldestEcgElseRefuse));
        let samples = [0i16; 100];
        let chunk = |seq| EcgChunk {
            seq,
            t0_ms: TS,
            sample_rate_hz: 250,
            uv_per_count: 1.0,
            samples: &samples,
        };
        q.push_ecg(&chunk(1)).unwrap();
        push_obs(&mut q, 2).unwrap();
        q.push_ecg(&chunk(3)).unwrap();
        q.push_ecg(&chunk(4)).unwrap(); // evicts ECG 1, keeps obs 2
        assert!(q.seqs().eq([2, 3, 4]));
        push_obs(&mut q, 5).unwrap(); // evicts ECG 3
        assert!(q.seqs().eq([2, 4, 5]));
        assert_eq!(q.stats().dropped, 2);
        // The surviving payloads are intact after compaction.
        assert_eq!(q.poll(0).map(|m| m.seq), Some(2));
        assert_eq!(q.poll(0).map(|m| m.seq), Some(5));
        let m = q.poll(0).unwrap();
        assert_eq!(crate::EcgChunk::decode(m.payload).unwrap().seq, 4);
    }

    #[test]
    fn drop_oldest_policy_counts_every_drop() {
        let mut q = Outbox::<2, 1024>::new(cfg(OverflowPolicy::DropOldest));
        for s in 1..=5 {
            push_obs(&mut q, s).unwrap();
        }
        assert!(q.seqs().eq([4, 5]));
        assert_eq!(q.stats().dropped, 3);
    }

    #[test]
    fn oversized_or_invalid_messages_evict_nothing() {
        let mut q = Outbox::<4, 64>::new(cfg(OverflowPolicy::DropOldest));
        q.enqueue(1, Kind::Obs, &[1; 40]).unwrap();
        assert_eq!(
            q.enqueue(2, Kind::Obs, &[0; 65]),
            Err(EnqueueError::TooLarge {
                len: 65,
                capacity: 64
            })
        );
        let bad = EcgChunk {
            seq: 3,
            t0_ms: TS,
            sample_rate_hz: 0,
            uv_per_count: 1.0,
            samples: &[1],
        };
        assert_eq!(
            q.push_ecg(&bad),
            Err(EnqueueError::Encode(EncodeError::InvalidSampleRate))
        );
        assert!(q.seqs().eq([1]));
        assert_eq!(q.stats().dropped, 0);
    }

    #[test]
    fn seq_not_increasing_is_refused() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 10).unwrap();
        q.on_ack([10u32]);
        assert_eq!(
            push_obs(&mut q, 10),
            Err(EnqueueError::SeqNotIncreasing { seq: 10, last: 10 })
        );
        assert!(push_obs(&mut q, 11).is_ok());
    }

    #[test]
    fn in_flight_window_limits_backlog_burst() {
        let mut q = Small::new(Config {
            max_in_flight: 2,
            ..cfg(OverflowPolicy::RefuseNew)
        });
        for s in 1..=5 {
            push_obs(&mut q, s).unwrap();
        }
        assert_eq!(drain(&mut q, 0).as_slice(), &[(1, 1), (2, 1)]);
        q.on_ack([1u32]);
        assert_eq!(drain(&mut q, 0).as_slice(), &[(3, 1)]);
        // After the timeout 2 and 3 no longer count as in flight.
        assert_eq!(drain(&mut q, 1_000).as_slice(), &[(2, 2), (3, 2)]);
    }

    #[test]
    fn observation_is_not_held_behind_an_ecg_backlog() {
        let mut q = Outbox::<16, 4096>::new(Config {
            max_in_flight: 2,
            ..cfg(OverflowPolicy::RefuseNew)
        });
        for s in 1..=4 {
            q.enqueue(s, Kind::Ecg, &[0; 10]).unwrap();
        }
        push_obs(&mut q, 5).unwrap();
        let mut order = heapless::Vec::<(u32, Kind), 8>::new();
        while let Some(m) = q.poll(0) {
            order.push((m.seq, m.kind)).unwrap();
        }
        // The reading first, then ECG oldest first up to the window.
        assert_eq!(
            order.as_slice(),
            &[(5, Kind::Obs), (1, Kind::Ecg), (2, Kind::Ecg)]
        );
        // A new reading still goes out while the ECG window is full.
        push_obs(&mut q, 6).unwrap();
        assert_eq!(q.poll(1).map(|m| m.seq), Some(6));
    }

    #[test]
    fn resend_timeout_backs_off_up_to_cap() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 1).unwrap();
        let mut t = 0;
        let mut gaps = heapless::Vec::<u64, 8>::new();
        let _ = q.poll(t);
        for _ in 0..4 {
            let wait = q.next_due_in(t).unwrap();
            gaps.push(wait).unwrap();
            t += wait;
            assert!(q.poll(t - 1).is_none() || wait == 0);
            assert!(q.poll(t).is_some());
        }
        assert_eq!(gaps.as_slice(), &[1_000, 2_000, 4_000, 4_000]);
    }

    #[test]
    fn clock_going_backwards_does_not_stall_resend() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 1).unwrap();
        let _ = q.poll(50_000);
        assert!(q.poll(10).is_some());
    }

    #[test]
    fn snapshot_round_trip_restores_every_unacked_message() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        for s in 1..=4 {
            push_obs(&mut q, s).unwrap();
        }
        q.enqueue(9, Kind::Ecg, &[1, 2, 3]).unwrap();
        let _ = drain(&mut q, 0);
        q.on_ack([2u32]);
        let mut buf = [0u8; 2048];
        let n = q.write_snapshot(&mut buf).unwrap();
        assert_eq!(n, q.snapshot_len());

        let mut r = Small::new(cfg(OverflowPolicy::RefuseNew));
        r.restore(&buf[..n]).unwrap();
        assert!(r.seqs().eq([1, 3, 4, 9]));
        assert_eq!(r.last_seq(), Some(9));
        // All due at once, as resends, with the same bytes.
        let mut seen = 0;
        while let Some(m) = r.poll(0) {
            assert_eq!(m.attempt, 2);
            seen += 1;
            if m.seq == 9 {
                assert_eq!(m.payload, &[1, 2, 3]);
                assert_eq!(m.kind, Kind::Ecg);
            }
        }
        assert_eq!(seen, 4);
        assert_eq!(
            push_obs(&mut r, 9),
            Err(EnqueueError::SeqNotIncreasing { seq: 9, last: 9 })
        );
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn corrupt_snapshot_is_refused_and_leaves_queue_empty() {
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        push_obs(&mut q, 1).unwrap();
        let mut buf = [0u8; 512];
        let n = q.write_snapshot(&mut buf).unwrap();
        for i in 0..n {
            let mut bad = buf;
            bad[i] ^= 0x40;
            let mut r = Small::new(cfg(OverflowPolicy::RefuseNew));
            assert_eq!(
                r.restore(&bad[..n]),
                Err(SnapshotError::Corrupt),
                "byte {i}"
            );
            assert!(r.is_empty());
        }
        let mut r = Small::new(cfg(OverflowPolicy::RefuseNew));
        assert_eq!(r.restore(&buf[..n - 1]), Err(SnapshotError::Corrupt));
        let mut tiny = Outbox::<1, 8>::new(cfg(OverflowPolicy::RefuseNew));
        assert_eq!(tiny.restore(&buf[..n]), Err(SnapshotError::TooLarge));
        assert!(tiny.is_empty());
    }

    #[cfg(feature = "std")]
    #[test]
    fn queue_survives_a_kit_restart_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox");
        let mut q = Small::new(cfg(OverflowPolicy::RefuseNew));
        let mut r = Small::new(cfg(OverflowPolicy::RefuseNew));
        assert!(!r.load_from_file(&path).unwrap());
        push_obs(&mut q, 1).unwrap();
        push_obs(&mut q, 2).unwrap();
        q.save_to_file(&path).unwrap();
        assert!(r.load_from_file(&path).unwrap());
        assert!(r.seqs().eq([1, 2]));
        std::fs::write(&path, b"garbage").unwrap();
        let mut r = Small::new(cfg(OverflowPolicy::RefuseNew));
        assert_eq!(
            r.load_from_file(&path).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u16),
        Poll(u16),
        Ack(heapless::Vec<u8, 4>),
        Reject(u8),
        Reconnect,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u16..300).prop_map(Op::Push),
            3 => (0u16..3000).prop_map(Op::Poll),
            2 => proptest::collection::vec(any::<u8>(), 0..4)
                .prop_map(|v| Op::Ack(v.into_iter().collect())),
            1 => any::<u8>().prop_map(Op::Reject),
            1 => Just(Op::Reconnect),
        ]
    }

    fn policy() -> impl Strategy<Value = OverflowPolicy> {
        prop_oneof![
            Just(OverflowPolicy::RefuseNew),
            Just(OverflowPolicy::DropOldest),
            Just(OverflowPolicy::DropOldestEcgElseRefuse),
        ]
    }

    proptest! {
        /// A snapshot whose CRC is right but whose structure is arbitrary
        /// (a bug, not bit rot) is refused without panicking.
        #[test]
        fn restore_of_any_body_with_a_valid_crc_never_panics(
            mut body in proptest::collection::vec(any::<u8>(), 0..120),
            count in 0u32..10,
        ) {
            let mut b = SNAP_MAGIC.to_vec();
            b.extend_from_slice(&[SNAP_VERSION, 1, 5, 0, 0, 0]);
            b.extend_from_slice(&count.to_le_bytes());
            b.append(&mut body);
            let crc = crc32(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            let mut q = Outbox::<4, 64>::new(Config::default());
            if q.restore(&b).is_err() {
                prop_assert!(q.is_empty());
            } else {
                prop_assert!(q.len() <= 4);
            }
        }

        /// Conservation: every message accepted is, at every moment, either
        /// queued, acked, rejected or counted as dropped; nothing vanishes.
        /// Payloads come back byte-identical, oldest first.
        #[test]
        fn no_message_is_ever_lost_uncounted(policy in policy(), ops in proptest::collection::vec(op(), 0..200)) {
            let mut q = Outbox::<6, 600>::new(Config { max_in_flight: 3, ..cfg(policy) });
            let mut now = 0u64;
            let mut seq = 0u32;
            let mut accepted = 0u64;
            for op in ops {
                match op {
                    Op::Push(len) => {
                        seq += 1;
                        let fill = (seq % 251) as u8;
                        let payload = [fill; 300];
                        let kind = if len % 2 == 0 { Kind::Ecg } else { Kind::Obs };
                        if q.enqueue(seq, kind, &payload[..usize::from(len)]).is_ok() {
                            accepted += 1;
                        }
                    }
                    Op::Poll(dt) => {
                        now += u64::from(dt);
                        let (mut last_obs, mut last_ecg) = (0, 0);
                        let mut seen_ecg = false;
                        while let Some(m) = q.poll(now) {
                            prop_assert!(m.payload.iter().all(|&b| b == (m.seq % 251) as u8));
                            let last = if m.kind == Kind::Obs { &mut last_obs } else { &mut last_ecg };
                            prop_assert!(m.seq > *last, "oldest first within a kind");
                            *last = m.seq;
                            if m.kind == Kind::Ecg {
                                seen_ecg = true;
                            } else {
                                prop_assert!(!seen_ecg, "observations before ECG");
                            }
                        }
                    }
                    Op::Ack(v) => {
                        let base = seq.saturating_sub(8);
                        q.on_ack(v.iter().map(|d| base + u32::from(d % 10)));
                    }
                    Op::Reject(d) => {
                        q.on_reject(seq.saturating_sub(u32::from(d % 10)));
                    }
                    Op::Reconnect => q.on_reconnect(),
                }
                let s = q.stats();
                prop_assert_eq!(accepted, s.queued as u64 + s.acked + s.rejected + s.dropped);
                prop_assert!(s.queued <= 6 && s.queued_bytes <= 600);
                let seqs: heapless::Vec<u32, 6> = q.seqs().collect();
                prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]));
                if policy == OverflowPolicy::RefuseNew {
                    prop_assert_eq!(s.dropped, 0);
                }
            }
        }
    }
}
