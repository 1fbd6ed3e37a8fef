//! The event log: append-only, hash-chained, durable before acknowledged. The only code that
//! knows sled (in [`storage`]).
//!
//! - [`Log::open`] opens or creates a store; [`Log::append`] hands an [`AppendBatch`] to the one
//!   writer thread ([`writer`]), which gathers concurrent batches into one commit and one flush
//!   (group commit) through a bounded queue, and answers each only after that flush. A flush is
//!   one `fdatasync` of the commit journal ([`journal`]); sled itself is flushed now and then.
//! - Positions are dense from 1 in commit order; stream versions are dense from 1 per stream.
//!   The writer asserts both.
//! - Readers ([`read`]) see only the durable head: nothing is read before it is flushed.
//! - [`verify`] recomputes every hash and checks every position, version and index entry.

pub mod hash;
pub mod index;
pub mod journal;
pub mod keys;
pub mod read;
pub mod storage;
pub mod verify;
pub mod writer;

use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use crate::codec::{CodecError, StoredEventV1};
use crate::time::{self, Clock, Instant, SystemClock, TimeError};

pub use read::{EventIter, Subscription};
pub use storage::{DiscardedTail, JournalReplay, SledStorage, Storage, StorageError};
pub use verify::{Digest, VerifyProblem, VerifyProblemKind, VerifyReport};
pub use writer::{Pending, WriterStats};

/// At most this many events in one append batch (one caller's all-or-nothing unit: an `import`
/// is one batch).
pub const MAX_BATCH_EVENTS: usize = 500_000;
/// At most this many events in one commit (many callers' batches sharing one flush).
pub const MAX_COMMIT_EVENTS: usize = 16_384;
/// A segment (one stored value) holds at most this many events ...
pub const SEGMENT_MAX_EVENTS: usize = 1_024;
/// ... and at most this many bytes (one event alone always fits: see [`MAX_PAYLOAD_BYTES`]).
/// sled writes any value or tree node over a quarter of its log segment (512 KiB here, see
/// `storage.rs`) to a blob file that it never fsyncs. A leaf node holds at most ~17 values, so
/// values of at most 28 KiB keep every node inline in the log file that a flush syncs. An index
/// chunk holds a subset of its segment's bytes, so it is smaller still.
pub const SEGMENT_MAX_BYTES: usize = 28 * 1024;
/// The largest payload one event may carry: with its names and fixed fields it still fits in
/// one segment.
pub const MAX_PAYLOAD_BYTES: usize = 24 * 1024;
/// The longest stream name, event type or actor.
pub const MAX_NAME_BYTES: usize = 256;
/// How many append batches may wait for the writer before callers block (backpressure).
pub const QUEUE_CAPACITY: usize = 4_096;

/// Errors of the log layer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "version conflict on stream {stream:?}: expected {expected}, but the stream is at {actual}; nothing was written. Re-read the stream and retry"
    )]
    VersionConflict {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error(
        "event id {event_id} is already in the log at position {position} with different content; nothing was written. Use a new id for a new event"
    )]
    IdConflict { event_id: Uuid, position: u64 },
    #[error("event id {event_id} appears twice in one batch; nothing was written")]
    DuplicateInBatch { event_id: Uuid },
    #[error(
        "{already} of the batch's {total} events are already in the log (first: {event_id} at position {position}); nothing was written. Resend the batch whole, or only its new events"
    )]
    PartialDuplicate {
        already: usize,
        total: usize,
        event_id: Uuid,
        position: u64,
    },
    #[error("invalid event {index} of the batch: field `{field}`: {rule}; nothing was written")]
    InvalidEvent {
        index: usize,
        field: &'static str,
        rule: String,
    },
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error(
        "the store failed to make a commit durable earlier ({0}); no further appends are taken: restart carelog, then run `carelog verify`"
    )]
    Poisoned(String),
    #[error(
        "the stored head names position {head}, but {detail}: appends are refused so that no gap is written after it; run `carelog verify`, and restore the store from a backup if it fails"
    )]
    HeadWithoutEvents { head: u64, detail: String },
    #[error(
        "appends are refused while the store holds a commit journal an open could not apply ({files}): it may hold acknowledged events whose positions a new append would take. See what it holds with `carelog journal-events FILE` (lines `carelog append` takes back) and compare the log with a digest you kept (`carelog verify --digest FILE`); once that is settled, move the file(s) out of the store directory"
    )]
    JournalSetAside { files: String },
    #[error("the log's writer has stopped; restart carelog")]
    WriterGone,
}

/// What the caller expects of a stream before its batch is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    /// No expectation.
    #[default]
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (its last event's stream version).
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => write!(f, "any version"),
            ExpectedVersion::NoStream => write!(f, "no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event id (UUIDv7). Generated by [`NewEvent::new`] when the caller gives none.
    pub event_id: Uuid,
    pub stream: String,
    pub event_type: String,
    pub schema_version: u16,
    pub occurred_at: Instant,
    pub recorded_by: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub payload: Vec<u8>,
    /// A recording time to keep, when restoring an export or replaying a known history (the
    /// demo). The writer honours it only if it is not in the future and not earlier than the
    /// previous event's; otherwise the batch is refused. None: the writer's clock.
    pub recorded_at: Option<Instant>,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id.
    pub fn new(
        stream: impl Into<String>,
        event_type: impl Into<String>,
        schema_version: u16,
        occurred_at: Instant,
        recorded_by: impl Into<String>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            stream: stream.into(),
            event_type: event_type.into(),
            schema_version,
            occurred_at,
            recorded_by: recorded_by.into(),
            correlation_id: None,
            causation_id: None,
            payload,
            recorded_at: None,
        }
    }

    /// Whether a stored event carries the same content as this one (a true resend).
    /// The log's own fields (position, version, recorded time, hashes) are not content.
    pub(crate) fn same_content(&self, stored: &StoredEventV1) -> bool {
        self.stream == stored.stream
            && self.event_type == stored.event_type
            && self.schema_version == stored.schema_version
            && time::to_stored(&self.occurred_at) == stored.occurred_at
            && self.recorded_by == stored.recorded_by
            && self.correlation_id.map(|u| *u.as_bytes()) == stored.correlation_id
            && self.causation_id.map(|u| *u.as_bytes()) == stored.causation_id
            && self.payload == stored.payload
    }
}

/// One caller's all-or-nothing unit: events for one or several streams, with expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendBatch {
    pub events: Vec<NewEvent>,
    pub expectations: Vec<(String, ExpectedVersion)>,
}

impl AppendBatch {
    pub fn new(events: Vec<NewEvent>) -> Self {
        Self {
            events,
            expectations: Vec::new(),
        }
    }

    /// Adds an expectation for a stream (checked before anything of the batch is written).
    pub fn expect(mut self, stream: impl Into<String>, expected: ExpectedVersion) -> Self {
        self.expectations.push((stream.into(), expected));
        self
    }
}

/// The answer for one appended event, sent only once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub event_id: Uuid,
    pub position: u64,
    pub stream_version: u64,
    /// True when the event was already in the log and nothing was written for it.
    pub duplicate: bool,
}

/// An event as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub position: u64,
    pub event_id: Uuid,
    pub stream: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u16,
    pub occurred_at: Instant,
    pub recorded_at: Instant,
    pub recorded_by: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub payload: Vec<u8>,
    pub leaf_hash: [u8; 32],
    pub chain_hash: [u8; 32],
}

impl TryFrom<StoredEventV1> for RecordedEvent {
    type Error = TimeError;

    fn try_from(s: StoredEventV1) -> Result<Self, TimeError> {
        Ok(Self {
            position: s.position,
            event_id: Uuid::from_bytes(s.event_id),
            stream: s.stream,
            stream_version: s.stream_version,
            event_type: s.event_type,
            schema_version: s.schema_version,
            occurred_at: time::from_stored(&s.occurred_at)?,
            recorded_at: time::from_stored(&s.recorded_at)?,
            recorded_by: s.recorded_by,
            correlation_id: s.correlation_id.map(Uuid::from_bytes),
            causation_id: s.causation_id.map(Uuid::from_bytes),
            payload: s.payload,
            leaf_hash: s.leaf_hash,
            chain_hash: s.chain_hash,
        })
    }
}

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
    discarded: Option<DiscardedTail>,
    /// Why the stored head does not name a stored event, if it does not.
    head_without_events: Option<String>,
    /// Commit journals an open set aside (see [`Storage::journals_set_aside`]): found at
    /// open, looked for again before each append while there are any (a person moving them
    /// out of the store lets appends go on without a restart).
    journals_set_aside: Arc<std::sync::Mutex<Vec<std::path::PathBuf>>>,
}

impl Log {
    /// Opens (or, with `options.create`, creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self, LogError> {
        let storage: Arc<dyn Storage> = Arc::new(SledStorage::open(
            path.as_ref(),
            storage::SledOptions {
                create: options.create,
                cache_capacity_bytes: options.cache_capacity_bytes,
                journal_max_bytes: options.journal_max_bytes,
                sled_flush_every_ms: options.sled_flush_every_ms,
            },
        )?);
        Self::with_storage(storage, options.clock)
    }

    /// Starts a log over an already opened storage.
    pub fn with_storage(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let head = storage.head()?;
        let discarded = storage.set_aside_after(head.as_ref())?;
        let head_without_events = match &head {
            None => None,
            Some(h) => match read::stored_event_at(storage.as_ref(), h.position) {
                Ok(Some(e)) if e.chain_hash == h.chain_hash => None,
                Ok(Some(_)) => Some("the event stored there has another chain hash".to_string()),
                Ok(None) => Some("no event is stored there".to_string()),
                Err(e) => Some(format!("the event there cannot be read ({e})")),
            },
        };
        let journals_set_aside = Arc::new(std::sync::Mutex::new(storage.journals_set_aside()));
        let shared = Arc::new(read::Shared::new(storage.clone(), head));
        let writer = Arc::new(writer::WriterHandle::start(
            storage,
            shared.clone(),
            clock,
            head,
        )?);
        Ok(Self {
            shared,
            writer,
            discarded,
            head_without_events,
            journals_set_aside,
        })
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
                *set_aside = self.shared.storage.journals_set_aside();
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

    /// What this open set aside past the stored head: the keys of a commit that a crash
    /// interrupted before its head was written (never acknowledged), or, when they do not
    /// continue the head, something else's. None almost always.
    pub fn discarded_at_open(&self) -> Option<DiscardedTail> {
        self.discarded
    }

    /// What this open replayed from the commit journal (see [`Storage::replayed_at_open`]):
    /// commits a crash kept only there. None after a clean close.
    pub fn journal_replayed_at_open(&self) -> Option<JournalReplay> {
        self.shared.storage.replayed_at_open()
    }

    /// Commit journals moved aside by an open (see [`Storage::journals_set_aside`]) still in
    /// the store. Appends are refused while there are any.
    pub fn journals_set_aside(&self) -> Vec<std::path::PathBuf> {
        self.shared.storage.journals_set_aside()
    }

    /// What the user should know about the store's layout (see [`Storage::warnings`]).
    pub fn store_warnings(&self) -> Vec<String> {
        self.shared.storage.warnings()
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
}
