//! The event log: append-only, hash-chained, durable before acknowledged. The only code that
//! knows sled is the engine in [`sled`]; the rest sees the [`Storage`] trait.
//!
//! - [`Log::open`] opens or creates a store and says what the open did ([`OpenReport`]);
//!   [`Log::append`] hands an [`AppendBatch`] to the one writer thread ([`writer`]), which
//!   gathers concurrent batches into one commit and one flush (group commit) through a bounded
//!   queue, and answers each only after that flush. A flush is one `fdatasync` of the commit
//!   journal ([`journal`]); the engine's own store is flushed now and then.
//! - Positions are dense from 1 in commit order; stream versions are dense from 1 per stream.
//!   The writer asserts both.
//! - Readers ([`read`]) see only the durable head: nothing is read before it is flushed.
//! - [`verify`] recomputes every hash and checks every position, version and index entry.
//!
//! The modules form a DAG, from the bottom: [`hash`], [`storage`] (the trait), [`types`] (the
//! vocabulary and [`LogError`]), [`segments`] (decoding what is stored), [`sled`] (the engine),
//! [`index`], [`read`], [`verify`], [`writer`], and this file, which ties them together.

pub mod hash;
pub mod index;
pub mod read;
pub mod segments;
pub mod sled;
pub mod storage;
pub mod tree;
pub mod types;
pub mod verify;
pub mod writer;

use crate::merkle;
use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use crate::codec::StoredEventRefV1;
use crate::time::{Clock, SystemClock};

pub use self::sled::{SledStorage, journal, keys, panic_message};
pub use read::{EventIter, Subscription};
pub use storage::{DiscardedTail, JournalReplay, OpenReport, Storage, StorageError};
pub use types::*;
pub use verify::{Digest, VerifyProblem, VerifyProblemKind, VerifyReport};
pub use writer::{Pending, WriteHealth, WriterStats};

/// How to open a store.
pub struct OpenOptions {
    /// Create the store when the directory holds none.
    pub create: bool,
    /// The writer's clock for `recorded_at`.
    pub clock: Arc<dyn Clock>,
    /// sled's page cache; bounded so that a full replay does not grow memory with the log.
    pub cache_capacity_bytes: u64,
    /// The commit journal's size: when full, sled is flushed and the journal starts over
    /// (see `journal.rs`). Smaller means more sled flushes; tests use small ones to exercise it.
    pub journal_max_bytes: u64,
    /// sled's background flush and segment cleaning period (None: off; tests that need sled
    /// to lag the journal turn it off).
    pub sled_flush_every_ms: Option<u64>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create: true,
            clock: Arc::new(SystemClock),
            cache_capacity_bytes: 64 * 1024 * 1024,
            journal_max_bytes: journal::JOURNAL_MAX_BYTES,
            sled_flush_every_ms: Some(500),
        }
    }
}

impl OpenOptions {
    /// Open an existing store only (for reading commands).
    pub fn existing() -> Self {
        Self {
            create: false,
            ..Self::default()
        }
    }
}

/// The log: one writer thread, any number of readers. Cheap to clone.
#[derive(Clone)]
pub struct Log {
    shared: Arc<read::Shared>,
    writer: Arc<writer::WriterHandle>,
    /// What the open did to the store (see [`Log::open_report`]).
    report: Arc<OpenReport>,
    /// Why the stored head does not name a stored event, if it does not.
    head_without_events: Option<String>,
    /// Commit journals an open set aside ([`OpenReport::journals_set_aside`]) that were still
    /// in the store when last looked: looked for again before each append while there are any
    /// (a person moving them out of the store lets appends go on without a restart).
    journals_set_aside: Arc<std::sync::Mutex<Vec<std::path::PathBuf>>>,
}

impl Log {
    /// Opens (or, with `options.create`, creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self, LogError> {
        let (storage, report) = SledStorage::open(
            path.as_ref(),
            self::sled::SledOptions {
                create: options.create,
                cache_capacity_bytes: options.cache_capacity_bytes,
                journal_max_bytes: options.journal_max_bytes,
                sled_flush_every_ms: options.sled_flush_every_ms,
            },
        )?;
        Self::with_storage(Arc::new(storage), report, options.clock)
    }

    /// Starts a log over an already opened storage, given what its open did (`report`, which
    /// this completes with what it sets aside past the stored head).
    pub fn with_storage(
        storage: Arc<dyn Storage>,
        mut report: OpenReport,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let head = storage.head()?;
        report.tail_set_aside = storage.set_aside_after(head.as_ref())?;
        let head_without_events = match &head {
            None => None,
            Some(h) => match segments::stored_event_at(storage.as_ref(), h.position) {
                Ok(Some(e)) if e.chain_hash == h.chain_hash => None,
                Ok(Some(_)) => Some("the event stored there has another chain hash".to_string()),
                Ok(None) => Some("no event is stored there".to_string()),
                Err(e) => Some(format!("the event there cannot be read ({e})")),
            },
        };
        let journals_set_aside = Arc::new(std::sync::Mutex::new(report.journals_set_aside.clone()));
        let shared = Arc::new(read::Shared::new(storage.clone(), head));
        if head_without_events.is_none() {
            let built = tree::build_missing(&shared, storage.as_ref())?;
            if built > 0 {
                report.tree_built = Some(built);
            }
        }
        let writer = Arc::new(writer::WriterHandle::start(
            storage,
            shared.clone(),
            clock,
            head,
        )?);
        Ok(Self {
            shared,
            writer,
            report: Arc::new(report),
            head_without_events,
            journals_set_aside,
        })
    }

    /// The size a proof is asked at: the durable head when not given, never past it.
    fn proof_size(&self, size: Option<u64>) -> Result<u64, LogError> {
        let head = self.shared.durable_head().0;
        match size {
            None => Ok(head),
            Some(n) if n <= head => Ok(n),
            Some(n) => Err(LogError::Tree(format!(
                "the log holds {head} events, not {n}: ask for a size at most {head}"
            ))),
        }
    }

    /// The Merkle tree's size (the durable head, or `size`) and root: what a checkpoint signs.
    pub fn tree_head(&self, size: Option<u64>) -> Result<(u64, merkle::Hash), LogError> {
        let n = self.proof_size(size)?;
        Ok((n, tree::root(self.shared.storage.as_ref(), n)?))
    }

    /// The RFC 9162 inclusion proof of the event at `position` in the tree of `size` events
    /// (the durable head when None): (tree size, hashes).
    pub fn inclusion_proof(
        &self,
        position: u64,
        size: Option<u64>,
    ) -> Result<(u64, Vec<merkle::Hash>), LogError> {
        let n = self.proof_size(size)?;
        if position == 0 || position > n {
            return Err(LogError::Tree(format!(
                "position {position} is not in a tree of {n} events: positions run 1..={n}"
            )));
        }
        Ok((
            n,
            tree::inclusion_proof(self.shared.storage.as_ref(), position, n)?,
        ))
    }

    /// The RFC 9162 consistency proof from the tree of `old_size` events to that of `size`
    /// (the durable head when None): (tree size, hashes).
    pub fn consistency_proof(
        &self,
        old_size: u64,
        size: Option<u64>,
    ) -> Result<(u64, Vec<merkle::Hash>), LogError> {
        let n = self.proof_size(size)?;
        if old_size > n {
            return Err(LogError::Tree(format!(
                "an older size of {old_size} is past the tree's {n}"
            )));
        }
        Ok((
            n,
            tree::consistency_proof(self.shared.storage.as_ref(), old_size, n)?,
        ))
    }

    /// Refuses appends to a store whose head names no event (damage, or sled losing the tail of
    /// an unacknowledged commit on power loss): a commit after it would leave a gap.
    fn check_appendable(&self) -> Result<(), LogError> {
        {
            let mut set_aside = self
                .journals_set_aside
                .lock()
                .map_err(|_| LogError::WriterGone)?;
            if !set_aside.is_empty() {
                set_aside.retain(|p| p.exists());
            }
            if !set_aside.is_empty() {
                let files: Vec<String> =
                    set_aside.iter().map(|p| p.display().to_string()).collect();
                return Err(LogError::JournalSetAside {
                    files: files.join(", "),
                });
            }
        }
        match &self.head_without_events {
            None => Ok(()),
            Some(detail) => Err(LogError::HeadWithoutEvents {
                head: self.head_position(),
                detail: detail.clone(),
            }),
        }
    }

    /// What this open did to the store: commits replayed from the commit journal, journals and
    /// snapshot files set aside, keys set aside past the stored head, warnings. Empty almost
    /// always.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The commit journals of [`OpenReport::journals_set_aside`] still in the store, looked
    /// for now. Appends are refused while there are any.
    pub fn journals_set_aside(&self) -> Vec<std::path::PathBuf> {
        let mut still = self.report.journals_set_aside.clone();
        still.retain(|p| p.exists());
        still
    }

    /// Appends a batch: all its events or none, acknowledged after the flush that made them
    /// durable. Blocks while the writer's queue is full.
    pub fn append(&self, batch: AppendBatch) -> Result<Vec<Ack>, LogError> {
        self.check_appendable()?;
        self.writer.append(batch)
    }

    /// Queues a batch without waiting; batches commit in submission order. The caller learns
    /// the outcome from [`Pending::wait`] (after the flush).
    pub fn submit(&self, batch: AppendBatch) -> Result<Pending, LogError> {
        self.check_appendable()?;
        self.writer.submit(batch)
    }

    /// Whether appends are taken now: after a failed commit they are refused (a full disk:
    /// until a batch finds space again; anything else: until a restart). For `/healthz`.
    pub fn write_health(&self) -> WriteHealth {
        self.writer.write_health()
    }

    /// The durable head: the last position a reader may see (0 for an empty log).
    pub fn head_position(&self) -> u64 {
        self.shared.durable_head().0
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        self.shared.storage.path()
    }

    /// Counters of the writer (commits, events, flushes), for metrics and benches.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Where an event id is in the log, if it is.
    pub fn position_of(&self, event_id: Uuid) -> Result<Option<u64>, LogError> {
        let head = self.head_position();
        let pos = self
            .shared
            .indexes()?
            .as_ref()
            .and_then(|ix| ix.position_of(event_id.as_bytes()));
        Ok(pos.filter(|p| *p <= head))
    }

    /// The store's header (format version, hash algorithm).
    pub fn header(&self) -> Result<crate::codec::StoreHeaderV1, LogError> {
        Ok(self.shared.storage.header()?)
    }

    /// The current version of a stream (0 when it has no events).
    pub fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        Ok(self
            .shared
            .indexes()?
            .as_ref()
            .map_or(0, |ix| ix.stream_version(stream)))
    }

    /// Stored events from `from_position` up to `until_position` (inclusive, capped at the
    /// durable head), lazily. The projection engine reads through this.
    pub fn stored_events(&self, from_position: u64, until_position: u64) -> EventIter<'_> {
        self.shared.stored_events(from_position, until_position)
    }

    /// Calls `f` with every stored event from `from_position` up to `until_position` (inclusive,
    /// capped at the durable head) in position order, borrowed from its segment: one segment is
    /// decoded at a time and nothing is copied per event. The same checks as
    /// [`Log::stored_events`]; stops at the first error, `f`'s or the log's.
    pub fn for_each_stored_event<E: From<LogError>>(
        &self,
        from_position: u64,
        until_position: u64,
        f: impl FnMut(&StoredEventRefV1<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.shared
            .for_each_stored_event(from_position, until_position, f)
    }

    /// Up to `limit` events (at most [`read::MAX_READ_LIMIT`]) from `from_position`.
    pub fn read_from(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.shared.read_from(from_position, limit)
    }

    /// Up to `limit` events (at most [`read::MAX_READ_LIMIT`]) of one stream from
    /// `from_version`.
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.shared.read_stream(stream, from_version, limit)
    }

    /// The event at a position, if it is durable.
    pub fn event_at(&self, position: u64) -> Result<Option<RecordedEvent>, LogError> {
        self.shared.event_at(position)
    }

    /// A subscription that yields every event after `after_position`: first what is stored,
    /// then live appends, each only once durable.
    pub fn subscribe(&self, after_position: u64) -> Subscription {
        self.shared.subscribe(after_position)
    }

    /// The head as a digest.
    pub fn digest(&self) -> Digest {
        let (position, chain) = self.shared.durable_head();
        verify::digest(position, &chain)
    }

    /// Verifies the whole log; `check_indexes` also checks every id and stream index entry.
    /// `progress` is called now and then with the number of events checked. A verify may run
    /// while appends go on (the HTTP service): what is checked is the log up to the durable
    /// head at the start; commits after it are not a problem.
    pub fn verify(
        &self,
        check_indexes: bool,
        against: Option<&Digest>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<VerifyReport, LogError> {
        let limit = self.shared.durable_head().0;
        verify::verify(
            self.shared.storage.as_ref(),
            limit,
            check_indexes,
            against,
            progress,
        )
    }
}
