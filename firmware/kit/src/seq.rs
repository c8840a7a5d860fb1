//! The device's one sequence counter, shared by `obs` and `ecg` uplinks and
//! persisted so that a restart never reuses a seq.
//!
//! Vigil stores each (device, seq) once. A kit that reused a seq after a
//! restart would have its new reading silently discarded as a duplicate of
//! an old one, so reuse is the failure to design against.
//!
//! # Reserved high-water mark
//!
//! The store holds one number, `H`: every seq below `H` may already have
//! been handed out. On boot the counter continues from `H`. Before handing
//! out seq `H` it first persists `H + block`, reserving a block of seqs with
//! one write, and hands out from the block without writing until it is
//! used up.
//!
//! Trade-off: one store write per `block` messages (flash wear, latency)
//! against a gap of up to `block - 1` unused seqs after each restart. The
//! gap is harmless (seqs are a dedup key, not a count; Vigil must not read a
//! gap as loss) and cannot cause reuse. `block = 1` gives gap-free seqs at
//! one write per message.
//!
//! A store that cannot be read is an error, never "start again at 1": that
//! would be exactly the reuse this module prevents.

use core::fmt;

/// The first seq of a new device.
pub const FIRST_SEQ: u32 = 1;

/// Persistence for the reserved high-water mark.
pub trait SeqStore {
    /// The store's error.
    type Error;
    /// The persisted high-water mark; `Ok(None)` for a device that has never
    /// saved one.
    fn load(&mut self) -> Result<Option<u32>, Self::Error>;
    /// Durably records that every seq below `high_water` may be in use.
    /// Must not return `Ok` before the value would survive a power cut.
    fn save(&mut self, high_water: u32) -> Result<(), Self::Error>;
}

/// A [`SeqStore`] in RAM, for tests and for devices with their own
/// persistence (e.g. a flash key-value store wrapping this).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySeqStore {
    value: Option<u32>,
    writes: u64,
}

impl MemorySeqStore {
    /// An empty store (a new device).
    pub const fn new() -> Self {
        MemorySeqStore {
            value: None,
            writes: 0,
        }
    }

    /// How many times [`SeqStore::save`] was called.
    pub const fn writes(&self) -> u64 {
        self.writes
    }
}

impl SeqStore for MemorySeqStore {
    type Error = core::convert::Infallible;

    fn load(&mut self) -> Result<Option<u32>, Self::Error> {
        Ok(self.value)
    }

    fn save(&mut self, high_water: u32) -> Result<(), Self::Error> {
        self.value = Some(high_water);
        self.writes += 1;
        Ok(())
    }
}

/// Why no seq could be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqError<E> {
    /// The store failed; no seq was handed out, try again later.
    Store(E),
    /// All u32 seqs are used. At one message a second that takes 136 years;
    /// wrapping to 0 would reuse seqs, so the counter stops instead.
    Exhausted,
}

impl<E: fmt::Display> fmt::Display for SeqError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqError::Store(e) => write!(f, "sequence store: {e}"),
            SeqError::Exhausted => f.write_str("sequence numbers exhausted"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for SeqError<E> {}

/// The per-device sequence counter.
#[derive(Debug)]
pub struct SeqCounter<S: SeqStore> {
    store: S,
    next: u32,
    reserved_until: u32,
    block: u32,
}

impl<S: SeqStore> SeqCounter<S> {
    /// Loads the high-water mark and continues from it. `block` (at least
    /// 1) is how many seqs one store write reserves.
    pub fn boot(mut store: S, block: u32) -> Result<Self, SeqError<S::Error>> {
        let high_water = store.load().map_err(SeqError::Store)?.unwrap_or(FIRST_SEQ);
        Ok(SeqCounter {
            store,
            next: high_water,
            reserved_until: high_water,
            block: block.max(1),
        })
    }

    /// Never hand out a seq below `floor` (e.g. one past the newest seq in
    /// a restored queue snapshot): belt and braces against a store that was
    /// restored from an old backup.
    pub fn ensure_at_least(&mut self, floor: u32) {
        if floor > self.next {
            self.next = floor;
            self.reserved_until = self.reserved_until.max(floor);
        }
    }

    /// The next seq, reserving a new block first when the current one is
    /// used up. A store failure hands out nothing.
    pub fn next_seq(&mut self) -> Result<u32, SeqError<S::Error>> {
        if self.next >= self.reserved_until {
            let until = self.next.saturating_add(self.block);
            if until == self.next {
                return Err(SeqError::Exhausted);
            }
            self.store.save(until).map_err(SeqError::Store)?;
            self.reserved_until = until;
        }
        let seq = self.next;
        self.next += 1; // < reserved_until ≤ u32::MAX, cannot overflow
        Ok(seq)
    }

    /// The seq the next call would return (without reserving).
    pub fn peek(&self) -> u32 {
        self.next
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_device_starts_at_one_and_writes_once_per_block() {
        let mut c = SeqCounter::boot(MemorySeqStore::new(), 16).unwrap();
        let seqs: heapless::Vec<u32, 40> = (0..40).map(|_| c.next_seq().unwrap()).collect();
        assert!(seqs.iter().copied().eq(1..=40));
        assert_eq!(c.store().writes(), 3); // reserved 1..17, 17..33, 33..49
    }

    #[test]
    fn restart_never_reuses_a_seq_that_may_have_been_sent() {
        let mut store = MemorySeqStore::new();
        let mut highest_handed_out = 0;
        // Crash after every possible number of messages within several blocks.
        for run in 0..50u32 {
            let mut c = SeqCounter::boot(store.clone(), 8).unwrap();
            for _ in 0..(run % 11) {
                let s = c.next_seq().unwrap();
                assert!(s > highest_handed_out, "seq {s} reused");
                highest_handed_out = s;
            }
            store = c.into_store(); // crash: nothing else persisted
        }
    }

    #[test]
    fn block_of_one_gives_gap_free_seqs_across_restarts() {
        let mut store = MemorySeqStore::new();
        let mut all = heapless::Vec::<u32, 64>::new();
        for _ in 0..5 {
            let mut c = SeqCounter::boot(store, 1).unwrap();
            for _ in 0..3 {
                all.push(c.next_seq().unwrap()).unwrap();
            }
            store = c.into_store();
        }
        assert!(all.iter().copied().eq(1..=15));
    }

    struct FailingStore;
    impl SeqStore for FailingStore {
        type Error = &'static str;
        fn load(&mut self) -> Result<Option<u32>, &'static str> {
            Ok(Some(10))
        }
        fn save(&mut self, _: u32) -> Result<(), &'static str> {
            Err("disk full")
        }
    }

    #[test]
    fn store_failure_hands_out_nothing() {
        let mut c = SeqCounter::boot(FailingStore, 4).unwrap();
        assert_eq!(c.next_seq(), Err(SeqError::Store("disk full")));
        assert_eq!(c.peek(), 10);
    }

    #[test]
    fn counter_stops_instead_of_wrapping() {
        let mut store = MemorySeqStore::new();
        store.save(u32::MAX - 2).unwrap();
        let mut c = SeqCounter::boot(store, 100).unwrap();
        assert_eq!(c.next_seq(), Ok(u32::MAX - 2));
        assert_eq!(c.next_seq(), Ok(u32::MAX - 1));
        assert_eq!(c.next_seq(), Err(SeqError::Exhausted));
    }

    #[test]
    fn floor_from_a_restored_queue_wins_over_an_old_store() {
        let mut c = SeqCounter::boot(MemorySeqStore::new(), 4).unwrap();
        c.ensure_at_least(500);
        assert_eq!(c.next_seq(), Ok(500));
        assert_eq!(c.store().clone().load(), Ok(Some(504)));
    }
}
