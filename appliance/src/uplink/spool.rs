//! The spool: every event is written here first and leaves only when the cloud acknowledges
//! it (SPEC §3.4), so nothing is lost across cloud outages or appliance restarts.
//!
//! Each event gets the device's next sequence number. The counter is stored with the events in
//! the same transaction and is never reused, even after everything was acknowledged or the
//! process was killed: the cloud stores idempotently by (device, seq), so a reused number
//! would be taken for a duplicate and the new event lost. A new spool starts from the clock
//! ([`initial_seq`]) for the same reason.
//!
//! Near its bound the spool keeps what matters (see [`important`]): ordinary alerts may fill
//! it only up to nine tenths ([`ordinary_room`]); important events (file verdicts, the most
//! severe alerts, category blocks, traffic records) take the rest and, when the spool is
//! full, the place of the oldest ordinary alerts, which are removed and counted
//! ([`Spool::evicted`]). An alert flood therefore never makes the spool refuse a file
//! verdict; only a spool full of important events refuses one (counted in
//! [`Spool::refused`]).
//!
//! [`RedbSpool`] is the durable spool (`<state-dir>/spool.redb`); [`MemorySpool`] has the same
//! behaviour without durability, for load tests of the cloud (`simulate --memory-spool`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::Validate;
use protocol::messages::{Event, SeqEvent};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

/// Default bound of a spool, in events.
pub const DEFAULT_MAX_EVENTS: u64 = 1_000_000;

/// File name of the durable spool inside the state folder.
pub const SPOOL_FILE: &str = "spool.redb";

/// seq → postcard(Event).
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Named counters; only [`NEXT_SEQ`] so far.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The sequence number the next appended event gets.
const NEXT_SEQ: &str = "next_seq";
/// seq of every spooled ordinary event (see [`important`]): the ones that may be evicted,
/// oldest first.
const ORDINARY: TableDefinition<u64, ()> = TableDefinition::new("ordinary");

/// Whether an event is kept at the expense of ordinary alerts when the spool is full: file
/// verdicts, traffic records, category blocks and alerts of the highest severity (Suricata
/// priority 1, or `signature_severity` Critical/Major — the ★★★ of the default scoring).
pub fn important(event: &Event) -> bool {
    use protocol::messages::Detection;
    match event {
        Event::FileVerdict(_) | Event::TrafficSummary(_) => true,
        Event::Alert(a) => match &a.detection {
            Detection::Category { .. } => true,
            Detection::Signature(sig) => {
                sig.severity <= 1
                    || matches!(sig.meta("signature_severity"), Some("Critical" | "Major"))
            }
        },
    }
}

/// Events of the spool's bound that ordinary events may take: nine tenths (all of a spool
/// of fewer than ten); the rest is kept for important events.
pub fn ordinary_room(max_events: u64) -> u64 {
    max_events - max_events / 10
}

/// What to do with each event of a batch, given the spool's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Store,
    /// Store after evicting the oldest ordinary event.
    Evict,
    Refuse,
}

/// Decides where each event of a batch goes (`len`: stored now, `ordinary`: of which
/// ordinary).
fn plan(events: &[Event], mut len: u64, mut ordinary: u64, max_events: u64) -> Vec<(Place, bool)> {
    let limit = ordinary_room(max_events);
    events
        .iter()
        .map(|e| {
            let imp = important(e);
            let place = if imp {
                if len < max_events {
                    Place::Store
                } else if ordinary > 0 {
                    ordinary -= 1;
                    len -= 1;
                    Place::Evict
                } else {
                    Place::Refuse
                }
            } else if len < limit {
                Place::Store
            } else {
                Place::Refuse
            };
            if place != Place::Refuse {
                len += 1;
                ordinary += u64::from(!imp);
            }
            (place, imp)
        })
        .collect()
}

/// The first sequence number of a new spool: the current time in microseconds since the
/// Unix epoch (at least 1, so `Ack { upto_seq: 0 }` acknowledges nothing).
///
/// A spool is new after a reset, a replaced disk or a re-activation of the same device; the
/// cloud still holds that device's earlier (device, seq) pairs and would take reused numbers
/// for duplicates. Starting from the clock keeps the numbers increasing across such restarts
/// as long as a device averages less than one event per microsecond.
pub fn initial_seq() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_micros())
        .unwrap_or(u64::MAX / 2)
        .max(1)
}

/// A spool operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool holds `max_events`; `refused` events of the batch were not stored (the first
    /// `stored` were). The refusal is counted in [`Spool::refused`].
    #[error("spool full ({max_events} events): {refused} new events refused, {stored} stored")]
    Full {
        /// Events of the batch that were stored.
        stored: usize,
        /// Events of the batch that were refused.
        refused: usize,
        /// The bound.
        max_events: u64,
    },
    /// An event breaks a protocol limit; the cloud would refuse it, so it is not spooled.
    #[error("event {index} of the batch is not sendable: {cause}")]
    Invalid {
        /// Position in the batch.
        index: usize,
        /// The broken limit.
        cause: protocol::FrameError,
    },
    /// A stored event cannot be decoded (written by an incompatible build, or damaged).
    #[error("spooled event {seq} cannot be decoded: {reason}")]
    Corrupt {
        /// Its sequence number; [`Spool::discard`] removes it.
        seq: u64,
        /// The decoder's message.
        reason: String,
    },
    /// The spool file is held by another process.
    #[error("spool {path} is in use by another process")]
    InUse {
        /// The spool file.
        path: PathBuf,
    },
    /// The task running a spool call was cancelled (the runtime is shutting down).
    #[error("spool call interrupted: {0}")]
    Task(String),
    /// The database failed (I/O, full disk, damaged file).
    #[error("spool {path}: {cause}")]
    Db {
        /// The spool file.
        path: PathBuf,
        /// The database error.
        cause: redb::Error,
    },
}

/// What the uplink needs from a spool. Methods take `&self`; implementations synchronise.
pub trait Spool: Send + Sync + 'static {
    /// Stores `events` in one transaction, assigning consecutive sequence numbers, and returns
    /// `(first_seq, last_seq)` (`first > last` for an empty batch). When the bound is reached,
    /// the events that fit are stored and [`SpoolError::Full`] names how many were refused.
    fn append_batch(&self, events: &[Event]) -> Result<(u64, u64), SpoolError>;

    /// Up to `max` spooled events with `seq > after_seq`, in increasing `seq` order.
    fn pending(&self, after_seq: u64, max: usize) -> Result<Vec<SeqEvent>, SpoolError>;

    /// Removes every event with `seq <= upto`; returns how many were removed.
    fn ack(&self, upto: u64) -> Result<u64, SpoolError>;

    /// Removes single events that can never be sent (see [`SpoolError::Corrupt`]).
    fn discard(&self, seqs: &[u64]) -> Result<u64, SpoolError>;

    /// Number of spooled events.
    fn len(&self) -> Result<u64, SpoolError>;

    /// Whether the spool is empty.
    fn is_empty(&self) -> Result<bool, SpoolError> {
        Ok(self.len()? == 0)
    }

    /// Events refused because the spool was full, since it was opened.
    fn refused(&self) -> u64;

    /// Ordinary events removed to make room for important ones, since it was opened.
    fn evicted(&self) -> u64 {
        0
    }

    /// Whether calls block on disk I/O (async callers then move them off the runtime).
    fn is_blocking(&self) -> bool;
}

/// Checks every event against the protocol limits before it is stored.
fn validate_all(events: &[Event]) -> Result<(), SpoolError> {
    for (index, event) in events.iter().enumerate() {
        event
            .validate()
            .map_err(|cause| SpoolError::Invalid { index, cause })?;
    }
    Ok(())
}

/// The durable spool in a redb file.
pub struct RedbSpool {
    db: Database,
    path: PathBuf,
    max_events: u64,
    refused: AtomicU64,
    evicted: AtomicU64,
}

impl RedbSpool {
    /// Opens (or creates) `<state_dir>/spool.redb`.
    pub fn open(state_dir: &Path, max_events: u64) -> Result<RedbSpool, SpoolError> {
        let path = state_dir.join(SPOOL_FILE);
        // created 0600 (and an existing one made 0600) before redb opens it: it holds the
        // office's alerts; an empty file is initialised by redb
        {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| SpoolError::Db {
                    path: path.clone(),
                    cause: redb::Error::Io(e),
                })?;
            use std::os::unix::fs::PermissionsExt;
            if f.metadata().is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
            }
        }
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => SpoolError::InUse { path: path.clone() },
            e => SpoolError::Db {
                path: path.clone(),
                cause: e.into(),
            },
        })?;
        let spool = RedbSpool {
            db,
            path,
            max_events: max_events.max(1),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        };
        // create the tables so that readers never see them missing
        spool.write(|txn| {
            txn.open_table(EVENTS)?;
            txn.open_table(ORDINARY)?;
            let mut meta = txn.open_table(META)?;
            if meta.get(NEXT_SEQ)?.is_none() {
                meta.insert(NEXT_SEQ, initial_seq())?;
            }
            Ok(())
        })?;
        Ok(spool)
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> SpoolError {
        SpoolError::Db {
            path: self.path.clone(),
            cause: e.into(),
        }
    }

    /// Runs `f` in a durable write transaction and commits it.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, SpoolError> {
        self.write_with(Durability::Immediate, f)
    }

    fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, SpoolError> {
        let mut txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        txn.set_durability(durability).map_err(|e| self.db_err(e))?;
        let out = f(&txn).map_err(|e| self.db_err(e))?;
        txn.commit().map_err(|e| self.db_err(e))?;
        Ok(out)
    }
}

impl Spool for RedbSpool {
    fn append_batch(&self, events: &[Event]) -> Result<(u64, u64), SpoolError> {
        validate_all(events)?;
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            // encoding an in-memory event into a Vec only fails on a serializer bug
            let bytes = postcard::to_stdvec(event).map_err(|e| SpoolError::Invalid {
                index: encoded.len(),
                cause: protocol::FrameError::Encode(e.to_string()),
            })?;
            encoded.push(bytes);
        }
        let max_events = self.max_events;
        let (first, last, stored, evicted) = self.write(|txn| {
            let mut table = txn.open_table(EVENTS)?;
            let mut ordinary = txn.open_table(ORDINARY)?;
            let mut meta = txn.open_table(META)?;
            let first = meta.get(NEXT_SEQ)?.map_or(1, |v| v.value());
            let places = plan(events, table.len()?, ordinary.len()?, max_events);
            let mut next = first;
            let mut evicted = 0u64;
            for ((place, imp), bytes) in places.into_iter().zip(&encoded) {
                if place == Place::Refuse {
                    continue;
                }
                if place == Place::Evict {
                    let old = ordinary.pop_first()?.map(|(k, _)| k.value());
                    if let Some(old) = old {
                        table.remove(old)?;
                        evicted += 1;
                    }
                }
                table.insert(next, bytes.as_slice())?;
                if !imp {
                    ordinary.insert(next, ())?;
                }
                next += 1;
            }
            meta.insert(NEXT_SEQ, next)?;
            Ok((first, next - 1, (next - first) as usize, evicted))
        })?;
        self.evicted.fetch_add(evicted, Ordering::Relaxed);
        finish_append(events.len(), stored, max_events, &self.refused)?;
        Ok((first, last))
    }

    fn pending(&self, after_seq: u64, max: usize) -> Result<Vec<SeqEvent>, SpoolError> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = txn.open_table(EVENTS).map_err(|e| self.db_err(e))?;
        let Some(from) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(max.min(1024));
        for entry in table.range(from..).map_err(|e| self.db_err(e))?.take(max) {
            let (seq, bytes) = entry.map_err(|e| self.db_err(e))?;
            let seq = seq.value();
            let event =
                postcard::from_bytes::<Event>(bytes.value()).map_err(|e| SpoolError::Corrupt {
                    seq,
                    reason: e.to_string(),
                })?;
            out.push(SeqEvent { seq, event });
        }
        Ok(out)
    }

    fn ack(&self, upto: u64) -> Result<u64, SpoolError> {
        // Not fsynced on its own: after a crash the event is sent again, which the cloud
        // stores once. The next append makes it durable.
        self.write_with(Durability::None, |txn| {
            let mut table = txn.open_table(EVENTS)?;
            let before = table.len()?;
            table.retain_in(..=upto, |_, _| false)?;
            txn.open_table(ORDINARY)?.retain_in(..=upto, |_, _| false)?;
            Ok(before - table.len()?)
        })
    }

    fn discard(&self, seqs: &[u64]) -> Result<u64, SpoolError> {
        self.write(|txn| {
            let mut table = txn.open_table(EVENTS)?;
            let mut ordinary = txn.open_table(ORDINARY)?;
            let mut removed = 0;
            for seq in seqs {
                removed += u64::from(table.remove(seq)?.is_some());
                ordinary.remove(seq)?;
            }
            Ok(removed)
        })
    }

    fn len(&self) -> Result<u64, SpoolError> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = txn.open_table(EVENTS).map_err(|e| self.db_err(e))?;
        table.len().map_err(|e| self.db_err(e))
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn is_blocking(&self) -> bool {
        true
    }
}

/// Counts and reports the events that did not fit.
fn finish_append(
    wanted: usize,
    stored: usize,
    max_events: u64,
    refused: &AtomicU64,
) -> Result<(), SpoolError> {
    if stored == wanted {
        return Ok(());
    }
    let n = wanted - stored;
    refused.fetch_add(n as u64, Ordering::Relaxed);
    Err(SpoolError::Full {
        stored,
        refused: n,
        max_events,
    })
}

/// A spool in memory: same semantics, no durability. For load tests.
pub struct MemorySpool {
    inner: Mutex<MemoryInner>,
    max_events: u64,
    refused: AtomicU64,
    evicted: AtomicU64,
}

struct MemoryInner {
    events: BTreeMap<u64, Event>,
    /// seq of the ordinary events, oldest first.
    ordinary: std::collections::BTreeSet<u64>,
    next_seq: u64,
}

impl MemorySpool {
    /// An empty spool holding at most `max_events`.
    pub fn new(max_events: u64) -> MemorySpool {
        MemorySpool {
            inner: Mutex::new(MemoryInner {
                events: BTreeMap::new(),
                ordinary: std::collections::BTreeSet::new(),
                next_seq: initial_seq(),
            }),
            max_events: max_events.max(1),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // a panic while holding the lock leaves the map consistent (no multi-step updates)
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Spool for MemorySpool {
    fn append_batch(&self, events: &[Event]) -> Result<(u64, u64), SpoolError> {
        validate_all(events)?;
        let (first, stored) = {
            let mut inner = self.lock();
            let first = inner.next_seq;
            let places = plan(
                events,
                inner.events.len() as u64,
                inner.ordinary.len() as u64,
                self.max_events,
            );
            let mut next = first;
            for ((place, imp), event) in places.into_iter().zip(events) {
                if place == Place::Refuse {
                    continue;
                }
                if place == Place::Evict {
                    if let Some(old) = inner.ordinary.pop_first() {
                        inner.events.remove(&old);
                        self.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                inner.events.insert(next, event.clone());
                if !imp {
                    inner.ordinary.insert(next);
                }
                next += 1;
            }
            inner.next_seq = next;
            (first, (next - first) as usize)
        };
        finish_append(events.len(), stored, self.max_events, &self.refused)?;
        Ok((first, first + stored as u64 - 1))
    }

    fn pending(&self, after_seq: u64, max: usize) -> Result<Vec<SeqEvent>, SpoolError> {
        let Some(from) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let inner = self.lock();
        Ok(inner
            .events
            .range(from..)
            .take(max)
            .map(|(seq, event)| SeqEvent {
                seq: *seq,
                event: event.clone(),
            })
            .collect())
    }

    fn ack(&self, upto: u64) -> Result<u64, SpoolError> {
        let mut inner = self.lock();
        let kept = match upto.checked_add(1) {
            Some(from) => inner.events.split_off(&from),
            None => BTreeMap::new(),
        };
        let removed = inner.events.len() as u64;
        inner.events = kept;
        let kept_ordinary = match upto.checked_add(1) {
            Some(from) => inner.ordinary.split_off(&from),
            None => Default::default(),
        };
        inner.ordinary = kept_ordinary;
        Ok(removed)
    }

    fn discard(&self, seqs: &[u64]) -> Result<u64, SpoolError> {
        let mut inner = self.lock();
        for s in seqs {
            inner.ordinary.remove(s);
        }
        Ok(seqs
            .iter()
            .filter(|s| inner.events.remove(s).is_some())
            .count() as u64)
    }

    fn len(&self) -> Result<u64, SpoolError> {
        Ok(self.lock().events.len() as u64)
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn is_blocking(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::uplink::testutil::{TempDir, sample_alert};

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::Alert(sample_alert(i as u32)))
            .collect()
    }

    fn seqs(v: &[SeqEvent]) -> Vec<u64> {
        v.iter().map(|e| e.seq).collect()
    }

    /// The behaviour both spools share.
    fn check_semantics(spool: &dyn Spool) {
        let (s, last) = spool.append_batch(&events(3)).unwrap();
        assert!(s >= 1 && last == s + 2);
        assert_eq!(spool.append_batch(&events(2)).unwrap(), (s + 3, s + 4));
        let (first, last) = spool.append_batch(&[]).unwrap();
        assert!(first > last, "empty batch: {first} > {last}");
        let all: Vec<u64> = (s..s + 5).collect();
        assert_eq!(seqs(&spool.pending(0, 10).unwrap()), all);
        assert_eq!(seqs(&spool.pending(s + 1, 2).unwrap()), [s + 2, s + 3]);
        assert_eq!(spool.pending(s, 1).unwrap()[0].event, events(2)[1]);
        assert_eq!(spool.ack(s + 2).unwrap(), 3);
        assert_eq!(
            spool.ack(s + 2).unwrap(),
            0,
            "a repeated ack removes nothing"
        );
        assert_eq!(spool.ack(s - 1).unwrap(), 0, "an older ack removes nothing");
        assert_eq!(seqs(&spool.pending(0, 10).unwrap()), [s + 3, s + 4]);
        assert_eq!(spool.len().unwrap(), 2);
        assert_eq!(spool.discard(&[s + 4, s + 99]).unwrap(), 1);
        assert_eq!(spool.ack(u64::MAX).unwrap(), 1);
        assert!(spool.is_empty().unwrap());
        assert_eq!(
            spool.append_batch(&events(1)).unwrap(),
            (s + 5, s + 5),
            "numbers are never reused"
        );
    }

    #[test]
    fn redb_spool_semantics() {
        let dir = TempDir::new("spool-sem");
        check_semantics(&RedbSpool::open(dir.path(), 100).unwrap());
    }

    #[test]
    fn memory_spool_semantics() {
        check_semantics(&MemorySpool::new(100));
    }

    #[test]
    fn seq_survives_reopen_after_everything_was_acked() {
        let dir = TempDir::new("spool-reopen");
        let s = {
            let spool = RedbSpool::open(dir.path(), 100).unwrap();
            let (s, _) = spool.append_batch(&events(4)).unwrap();
            spool.ack(s + 1).unwrap();
            s
        };
        {
            let spool = RedbSpool::open(dir.path(), 100).unwrap();
            assert_eq!(
                seqs(&spool.pending(0, 10).unwrap()),
                [s + 2, s + 3],
                "unacked events survive"
            );
            spool.ack(s + 3).unwrap();
        }
        let spool = RedbSpool::open(dir.path(), 100).unwrap();
        assert!(spool.is_empty().unwrap());
        assert_eq!(spool.append_batch(&events(1)).unwrap(), (s + 4, s + 4));
    }

    #[test]
    fn a_new_spool_starts_above_every_earlier_one() {
        let a = MemorySpool::new(10).append_batch(&events(3)).unwrap().1;
        std::thread::sleep(std::time::Duration::from_millis(2));
        let dir = TempDir::new("spool-new");
        let b = RedbSpool::open(dir.path(), 10)
            .unwrap()
            .append_batch(&events(1))
            .unwrap()
            .0;
        assert!(b > a, "{b} > {a}");
        assert!(
            initial_seq() > 1_600_000_000_000_000,
            "microseconds since the epoch"
        );
    }

    #[test]
    fn full_spool_refuses_and_counts() {
        let dir = TempDir::new("spool-full");
        let redb = RedbSpool::open(dir.path(), 3).unwrap();
        let mem = MemorySpool::new(3);
        for spool in [&redb as &dyn Spool, &mem] {
            let (s, _) = spool.append_batch(&events(2)).unwrap();
            match spool.append_batch(&events(3)) {
                Err(SpoolError::Full {
                    stored: 1,
                    refused: 2,
                    max_events: 3,
                }) => {}
                other => panic!("expected Full, got {other:?}"),
            }
            assert!(matches!(
                spool.append_batch(&events(1)),
                Err(SpoolError::Full { refused: 1, .. })
            ));
            assert_eq!(spool.refused(), 3);
            assert_eq!(spool.len().unwrap(), 3);
            spool.ack(s).unwrap();
            assert_eq!(
                spool.append_batch(&events(1)).unwrap(),
                (s + 3, s + 3),
                "room again after an ack"
            );
        }
    }

    /// An ordinary alert (severity 3, no Major/Critical) of number `i`.
    fn ordinary(i: u32) -> Event {
        let mut a = sample_alert(i);
        if let protocol::messages::Detection::Signature(sig) = &mut a.detection {
            sig.severity = 3;
            sig.metadata.retain(|m| m.key != "signature_severity");
        }
        Event::Alert(a)
    }

    #[test]
    fn a_flood_of_ordinary_alerts_never_costs_an_important_event() {
        let dir = TempDir::new("spool-prio");
        let redb = RedbSpool::open(dir.path(), 20).unwrap();
        let mem = MemorySpool::new(20);
        for spool in [&redb as &dyn Spool, &mem] {
            assert!(!important(&ordinary(0)) && important(&events(1)[0]));
            // the flood fills the ordinary part (18 of 20) and is refused beyond it
            let flood: Vec<Event> = (0..50).map(ordinary).collect();
            match spool.append_batch(&flood) {
                Err(SpoolError::Full {
                    stored: 18,
                    refused: 32,
                    ..
                }) => {}
                other => panic!("expected Full, got {other:?}"),
            }
            // important events take the reserve, then the place of the oldest ordinary ones
            let s = spool.pending(0, 1).unwrap()[0].seq;
            let (a, b) = spool.append_batch(&events(5)).unwrap();
            assert_eq!(b - a, 4, "all five important events stored");
            assert_eq!(spool.len().unwrap(), 20);
            assert_eq!(spool.evicted(), 3);
            let left = seqs(&spool.pending(0, 100).unwrap());
            assert_eq!(
                left[0],
                s + 3,
                "the three oldest ordinary alerts went first"
            );
            assert!(left.ends_with(&(a..=b).collect::<Vec<_>>()));
            // more ordinary alerts are refused, not evicting anything
            assert!(spool.append_batch(&[ordinary(99)]).is_err());
            assert_eq!(spool.refused(), 33);
            // acked ordinary events are no longer candidates for eviction
            spool.ack(s + 16).unwrap();
            assert_eq!(spool.len().unwrap(), 6);
            spool.append_batch(&events(14)).unwrap();
            assert_eq!(spool.len().unwrap(), 20);
            spool.append_batch(&events(1)).unwrap();
            assert_eq!(spool.evicted(), 4, "the last ordinary one made room");
            // a spool full of important events refuses (counted) rather than grow
            assert!(matches!(
                spool.append_batch(&events(1)),
                Err(SpoolError::Full { refused: 1, .. })
            ));
            assert_eq!(spool.len().unwrap(), 20);
        }
    }

    #[test]
    fn eviction_index_survives_reopen() {
        let dir = TempDir::new("spool-prio-reopen");
        {
            let spool = RedbSpool::open(dir.path(), 10).unwrap();
            let _ = spool.append_batch(&(0..9).map(ordinary).collect::<Vec<_>>());
        }
        let spool = RedbSpool::open(dir.path(), 10).unwrap();
        spool.append_batch(&events(4)).unwrap();
        assert_eq!(spool.len().unwrap(), 10);
        assert_eq!(spool.evicted(), 3);
    }

    #[test]
    fn invalid_events_are_not_spooled() {
        let spool = MemorySpool::new(10);
        let mut alert = sample_alert(1);
        if let protocol::messages::Detection::Signature(sig) = &mut alert.detection {
            sig.metadata = vec![sig.metadata[0].clone(); protocol::limits::MAX_METADATA + 1];
        }
        let batch = [Event::Alert(sample_alert(0)), Event::Alert(alert)];
        assert!(matches!(
            spool.append_batch(&batch),
            Err(SpoolError::Invalid { index: 1, .. })
        ));
        assert!(spool.is_empty().unwrap());
    }

    #[test]
    fn second_open_of_the_same_spool_is_refused() {
        let dir = TempDir::new("spool-lock");
        let _first = RedbSpool::open(dir.path(), 10).unwrap();
        assert!(matches!(
            RedbSpool::open(dir.path(), 10),
            Err(SpoolError::InUse { .. })
        ));
    }
}
