//! The log's vocabulary: the events a caller appends and reads back, the batch and its
//! expectations, the acknowledgement, the bounds, and [`LogError`]. At the bottom of the log's
//! modules (beside the storage trait): every other module uses it, it uses none of them.

use uuid::Uuid;

use super::storage::StorageError;
use crate::codec::{CodecError, StoredEventV1};
use crate::time::{self, Instant, TimeError};

/// At most this many events in one append batch (one caller's all-or-nothing unit: an `import`
/// is one batch).
pub const MAX_BATCH_EVENTS: usize = 500_000;
/// At most this many events in one commit (many callers' batches sharing one flush).
pub const MAX_COMMIT_EVENTS: usize = 16_384;
/// A segment (one stored value) holds at most this many events ...
pub const SEGMENT_MAX_EVENTS: usize = 1_024;
/// ... and at most this many bytes (one event alone always fits: see [`MAX_PAYLOAD_BYTES`]).
/// The storage engine needs small values: see `SLED_SEGMENT_BYTES` in `sled/open.rs` (values of
/// at most 28 KiB keep every tree node inline in the file a flush syncs). An index chunk holds a
/// subset of its segment's bytes, so it is smaller still.
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
    #[error("the Merkle tree: {0}")]
    Tree(String),
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
    /// The disk holding the store was full when this batch, or one written before it, was
    /// committed: the batch was refused whole and nothing of it is in the log. The writer
    /// recovers by itself at the first batch submitted once there is space again.
    #[error(
        "the disk holding {path} is full ({detail}): nothing of this batch was written. Free space on that disk, then retry (no restart is needed)"
    )]
    DiskFull {
        path: std::path::PathBuf,
        detail: String,
    },
}

impl LogError {
    /// The same refusal, for another caller refused by the same failure.
    pub(crate) fn clone_refusal(&self) -> LogError {
        match self {
            LogError::DiskFull { path, detail }
            | LogError::Storage(StorageError::DiskFull { path, detail }) => LogError::DiskFull {
                path: path.clone(),
                detail: detail.clone(),
            },
            LogError::Poisoned(reason) => LogError::Poisoned(reason.clone()),
            LogError::WriterGone => LogError::WriterGone,
            other => LogError::Poisoned(other.to_string()),
        }
    }

    /// Whether the disk holding the store is full (the batch was refused, nothing written).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            LogError::DiskFull { .. } | LogError::Storage(StorageError::DiskFull { .. })
        )
    }
}

pub use crate::expected::ExpectedVersion;

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
    /// Whether this batch may make the writer recover from a full disk (true unless told).
    /// A caller that checked it against batches of its own still unanswered says no: those
    /// may be refused, and this one must not be written without them.
    pub may_recover: bool,
}

impl AppendBatch {
    pub fn new(events: Vec<NewEvent>) -> Self {
        Self {
            events,
            expectations: Vec::new(),
            may_recover: true,
        }
    }

    /// Refused, not recovered from, while the writer is failed (see [`AppendBatch::may_recover`]).
    pub fn without_recovery(mut self) -> Self {
        self.may_recover = false;
        self
    }

    /// Adds an expectation for a stream (checked before anything of the batch is written).
    pub fn expecting(mut self, stream: impl Into<String>, expected: ExpectedVersion) -> Self {
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

impl RecordedEvent {
    /// The canonical bytes the event's leaf hash covers (`codec::StoredEventV1::canonical_bytes`).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CodecError> {
        StoredEventV1 {
            position: self.position,
            event_id: *self.event_id.as_bytes(),
            stream: self.stream.clone(),
            stream_version: self.stream_version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            occurred_at: time::to_stored(&self.occurred_at),
            recorded_at: time::to_stored(&self.recorded_at),
            recorded_by: self.recorded_by.clone(),
            correlation_id: self.correlation_id.map(|u| *u.as_bytes()),
            causation_id: self.causation_id.map(|u| *u.as_bytes()),
            payload: self.payload.clone(),
            leaf_hash: self.leaf_hash,
            chain_hash: self.chain_hash,
        }
        .canonical_bytes()
    }
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
