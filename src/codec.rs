//! The codec: the only code that knows bincode.
//!
//! Everything the log stores goes through here: the store header, the event envelope, the
//! segments of envelopes a commit writes, and the domain payloads inside the envelopes.
//!
//! bincode is not self-describing, so stored shapes are frozen:
//! - one options value, [`options`], used for every stored byte (varint integers, little endian,
//!   trailing bytes rejected, a size limit so that a corrupt length prefix cannot ask for
//!   gigabytes). Changing it breaks every store: never do.
//! - a stored type + version is never edited. A new version is a new struct with `From<Old>`,
//!   enum variants and fields are only ever appended, no `usize`, no serde attributes that make
//!   the layout depend on values (`tag`, `untagged`, `flatten`, `skip_serializing_if`).
//! - every stored type + version has a golden byte fixture in `tests/fixtures/` decoded by
//!   `tests/golden.rs`.

use bincode::Options;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The largest single value the codec will decode. Segments are bounded well below this
/// (see `log::SEGMENT_MAX_BYTES`); the limit exists so corrupt bytes give an error, not an abort.
pub const DECODE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Errors of the codec layer.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("could not encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: bincode::Error,
    },
    #[error(
        "stored bytes of {what} do not decode ({source}); the store may be corrupt: run `carelog verify`"
    )]
    Decode {
        what: &'static str,
        source: bincode::Error,
    },
    #[error(
        "unknown event type {event_type:?} version {schema_version}: this build cannot read it; upgrade carelog"
    )]
    UnknownType {
        event_type: String,
        schema_version: u16,
    },
}

/// The largest derived state (a projection checkpoint) the codec encodes or decodes.
pub const STATE_LIMIT_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The one bincode configuration for every stored byte. Frozen: see the module docs. The limit
/// only bounds what one call may read or write; it is not part of the bytes.
fn options_with_limit(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(limit)
}

fn options() -> impl Options {
    options_with_limit(DECODE_LIMIT_BYTES)
}

/// Encodes derived state (projection checkpoints), which may be larger than one stored value.
pub fn encode_state<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    options_with_limit(STATE_LIMIT_BYTES)
        .serialize(value)
        .map_err(|source| CodecError::Encode { what, source })
}

/// Decodes derived state; never panics on bad bytes.
pub fn decode_state<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    options_with_limit(STATE_LIMIT_BYTES)
        .deserialize(bytes)
        .map_err(|source| CodecError::Decode { what, source })
}

/// Encodes a stored value.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    options()
        .serialize(value)
        .map_err(|source| CodecError::Encode { what, source })
}

/// Decodes a stored value; never panics on bad bytes.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    options()
        .deserialize(bytes)
        .map_err(|source| CodecError::Decode { what, source })
}

/// A point in time with the UTC offset it was given, as stored.
/// Frozen layout (part of the envelope v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoredTime {
    pub unix_seconds: i64,
    pub nanos: u32,
    pub offset_seconds: i32,
}

/// The store's header, written once when the store is created. Frozen layout, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHeaderV1 {
    /// The layout version of the store (keys, segments, envelope). 1 for now.
    pub format_version: u32,
    /// The hash algorithm of leaf and chain hashes: "sha256" (SM3 may follow).
    pub hash_algorithm: String,
    /// When the store was created.
    pub created_at: StoredTime,
}

/// The envelope of one event as stored. Frozen layout, version 1.
///
/// The canonical bytes that the leaf hash covers are the encoding of [`CanonicalEventV1`]:
/// this struct without its two hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEventV1 {
    pub position: u64,
    pub event_id: [u8; 16],
    pub stream: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u16,
    pub occurred_at: StoredTime,
    pub recorded_at: StoredTime,
    pub recorded_by: String,
    pub correlation_id: Option<[u8; 16]>,
    pub causation_id: Option<[u8; 16]>,
    pub payload: Vec<u8>,
    pub leaf_hash: [u8; 32],
    pub chain_hash: [u8; 32],
}

/// What the leaf hash covers: every field of the envelope but the hashes, borrowed.
#[derive(Serialize)]
struct CanonicalEventV1<'a> {
    position: u64,
    event_id: &'a [u8; 16],
    stream: &'a str,
    stream_version: u64,
    event_type: &'a str,
    schema_version: u16,
    occurred_at: &'a StoredTime,
    recorded_at: &'a StoredTime,
    recorded_by: &'a str,
    correlation_id: &'a Option<[u8; 16]>,
    causation_id: &'a Option<[u8; 16]>,
    payload: &'a [u8],
}

impl StoredEventV1 {
    /// The canonical bytes of this event: what the leaf hash covers.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CodecError> {
        encode(
            "canonical event",
            &CanonicalEventV1 {
                position: self.position,
                event_id: &self.event_id,
                stream: &self.stream,
                stream_version: self.stream_version,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                occurred_at: &self.occurred_at,
                recorded_at: &self.recorded_at,
                recorded_by: &self.recorded_by,
                correlation_id: &self.correlation_id,
                causation_id: &self.causation_id,
                payload: &self.payload,
            },
        )
    }
}

/// One commit's events, stored as one value (a segment). Frozen layout, version 1.
/// Storing a commit as one value, not one value per event, is what makes a commit cost
/// a few sled operations instead of one per event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentV1 {
    pub events: Vec<StoredEventV1>,
}

/// One event's entry in the index chunk of its commit. Frozen layout, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntryV1 {
    pub event_id: [u8; 16],
    pub stream: String,
    pub stream_version: u64,
}

/// The index of one segment: its events' ids, streams and versions in position order (the first
/// entry is at the position in the chunk's key). Written in the same commit as the segment
/// (before the head that makes both part of the log), so the persistent id and stream indexes cost one value per segment, not a key per
/// event. Frozen layout, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexChunkV1 {
    pub entries: Vec<IndexEntryV1>,
}

/// [`SegmentV1`] borrowed, for writing without copying the events: the same bytes (a slice and
/// a `Vec` encode alike; `tests/golden.rs` checks it).
#[derive(Debug, Serialize)]
pub struct SegmentRefV1<'a> {
    pub events: &'a [StoredEventV1],
}

/// The durable head written with every commit. Frozen layout, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHeadV1 {
    pub position: u64,
    pub chain_hash: [u8; 32],
    pub recorded_at: StoredTime,
}

/// A payload type stored in events: its name and schema version are frozen together with its
/// layout. Implemented by every domain event struct.
pub trait PayloadType: Serialize + DeserializeOwned {
    /// The event type name, e.g. `carelog.contact.recorded`.
    const EVENT_TYPE: &'static str;
    /// The schema version of this struct's layout.
    const SCHEMA_VERSION: u16;
}

/// Encodes a payload.
pub fn encode_payload<T: PayloadType>(payload: &T) -> Result<Vec<u8>, CodecError> {
    encode(T::EVENT_TYPE, payload)
}

/// Decodes a payload stored as exactly `T`'s type and version.
pub fn decode_payload<T: PayloadType>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(T::EVENT_TYPE, bytes)
}

/// Decodes a payload stored as an older version `Old` and upcasts it to `New`.
pub fn decode_upcast<Old: PayloadType, New: PayloadType + From<Old>>(
    bytes: &[u8],
) -> Result<New, CodecError> {
    decode_payload::<Old>(bytes).map(New::from)
}
