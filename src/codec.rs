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
    #[error("{what} is not canonical: {detail}")]
    NotCanonical {
        what: &'static str,
        detail: &'static str,
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

/// Decodes derived state (it may borrow from `bytes`); never panics on bad bytes.
pub fn decode_state<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
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

/// [`CanonicalEventV1`] owned, for decoding a leaf's bytes: the same fields in the same order.
#[derive(Deserialize)]
struct CanonicalEventOwnedV1 {
    position: u64,
    event_id: [u8; 16],
    stream: String,
    stream_version: u64,
    event_type: String,
    schema_version: u16,
    occurred_at: StoredTime,
    recorded_at: StoredTime,
    recorded_by: String,
    correlation_id: Option<[u8; 16]>,
    causation_id: Option<[u8; 16]>,
    payload: Vec<u8>,
}

/// The event a leaf's canonical bytes describe (an export line's `leaf`), with the hashes the
/// caller computed for it. Refuses bytes that are not exactly the canonical encoding of what
/// they decode to (trailing bytes, a non-minimal integer): a leaf is written one way only.
pub fn decode_canonical(
    bytes: &[u8],
    leaf_hash: [u8; 32],
    chain_hash: [u8; 32],
) -> Result<StoredEventV1, CodecError> {
    let c: CanonicalEventOwnedV1 = decode("leaf", bytes)?;
    let event = StoredEventV1 {
        position: c.position,
        event_id: c.event_id,
        stream: c.stream,
        stream_version: c.stream_version,
        event_type: c.event_type,
        schema_version: c.schema_version,
        occurred_at: c.occurred_at,
        recorded_at: c.recorded_at,
        recorded_by: c.recorded_by,
        correlation_id: c.correlation_id,
        causation_id: c.causation_id,
        payload: c.payload,
        leaf_hash,
        chain_hash,
    };
    if event.canonical_bytes()? != bytes {
        return Err(CodecError::NotCanonical {
            what: "leaf",
            detail: "its bytes are not the canonical encoding of the event they decode to",
        });
    }
    Ok(event)
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

/// One stored event borrowed from the bytes of its segment: the same fields as
/// [`StoredEventV1`], decoded by the same options from the same bytes, with strings and the
/// payload pointing into the segment instead of copied. `canonical` is the event's own bytes up
/// to its two hashes: bincode writes a struct as its fields one after the other, a `String` or a
/// `Vec<u8>` as a varint length and the raw bytes, and an array as its bytes, so these are the
/// bytes [`StoredEventV1::canonical_bytes`] encodes whenever the writer wrote them (the writer
/// always does; `tests/codec_views.rs` checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEventRefV1<'a> {
    pub position: u64,
    pub event_id: [u8; 16],
    pub stream: &'a str,
    pub stream_version: u64,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub occurred_at: StoredTime,
    pub recorded_at: StoredTime,
    pub recorded_by: &'a str,
    pub correlation_id: Option<[u8; 16]>,
    pub causation_id: Option<[u8; 16]>,
    pub payload: &'a [u8],
    pub leaf_hash: [u8; 32],
    pub chain_hash: [u8; 32],
    /// The stored bytes of every field but the hashes (what the leaf hash covers).
    pub canonical: &'a [u8],
}

/// A byte string written with `serialize_bytes`: for bincode the same bytes as a `Vec<u8>` or a
/// `[u8]` (varint length, then the bytes), but sized in one step instead of a byte at a time.
struct AsBytes<'a>(&'a [u8]);

impl Serialize for AsBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// [`CanonicalEventV1`] for sizing only (see [`StoredEventRefV1::canonical_is_exact`]): the
/// fields whose length depends on their value. The others are written one way only, and
/// [`decode_segment_refs`] reads them so: an id as its 16 bytes, an optional id as a tag byte
/// and, when present, its 16 bytes.
#[derive(Serialize)]
struct CanonicalSizeV1<'a> {
    position: u64,
    stream: &'a str,
    stream_version: u64,
    event_type: &'a str,
    schema_version: u16,
    occurred_at: &'a StoredTime,
    recorded_at: &'a StoredTime,
    recorded_by: &'a str,
    payload: AsBytes<'a>,
}

impl StoredEventRefV1<'_> {
    /// True when `canonical` is exactly [`StoredEventV1::canonical_bytes`] of these fields, so it
    /// can be hashed where it lies. The decoder also accepts integers written longer than the
    /// encoder writes them (a varint's wide form for a small value); everything else it accepts
    /// is written one way only. So the stored bytes are the canonical ones exactly when they are
    /// as long as the canonical encoding.
    pub fn canonical_is_exact(&self) -> bool {
        let sized = CanonicalSizeV1 {
            position: self.position,
            stream: self.stream,
            stream_version: self.stream_version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            occurred_at: &self.occurred_at,
            recorded_at: &self.recorded_at,
            recorded_by: self.recorded_by,
            payload: AsBytes(self.payload),
        };
        let optional_id = |id: &Option<[u8; 16]>| if id.is_some() { 17 } else { 1 };
        let fixed = 16 + optional_id(&self.correlation_id) + optional_id(&self.causation_id);
        options()
            .serialized_size(&sized)
            .is_ok_and(|n| n + fixed == self.canonical.len() as u64)
    }

    /// The owned event (what [`decode`] of the same bytes gives).
    pub fn to_owned_event(&self) -> StoredEventV1 {
        StoredEventV1 {
            position: self.position,
            event_id: self.event_id,
            stream: self.stream.to_owned(),
            stream_version: self.stream_version,
            event_type: self.event_type.to_owned(),
            schema_version: self.schema_version,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            recorded_by: self.recorded_by.to_owned(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            payload: self.payload.to_vec(),
            leaf_hash: self.leaf_hash,
            chain_hash: self.chain_hash,
        }
    }
}

/// A bincode reader over a slice whose unread rest the caller can see between fields (bincode's
/// own slice reader hides it). Reads exactly what bincode asks for, never ahead.
struct SharedSliceReader<'a, 'c> {
    rest: &'c std::cell::Cell<&'a [u8]>,
}

impl SharedSliceReader<'_, '_> {
    fn eof() -> bincode::Error {
        // The error bincode's own slice reader gives at the end of the bytes.
        Box::new(bincode::ErrorKind::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "",
        )))
    }
}

impl<'a> SharedSliceReader<'a, '_> {
    #[inline(always)]
    fn take(&mut self, length: usize) -> Result<&'a [u8], bincode::Error> {
        let rest = self.rest.get();
        if length > rest.len() {
            return Err(Self::eof());
        }
        let (taken, rest) = rest.split_at(length);
        self.rest.set(rest);
        Ok(taken)
    }
}

impl std::io::Read for SharedSliceReader<'_, '_> {
    #[inline(always)]
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.rest.get();
        let n = out.len().min(rest.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.rest.set(&rest[n..]);
        Ok(n)
    }

    #[inline(always)]
    fn read_exact(&mut self, out: &mut [u8]) -> std::io::Result<()> {
        let rest = self.rest.get();
        if out.len() > rest.len() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, ""));
        }
        let (taken, rest) = rest.split_at(out.len());
        out.copy_from_slice(taken);
        self.rest.set(rest);
        Ok(())
    }
}

impl<'a> bincode::BincodeRead<'a> for SharedSliceReader<'a, '_> {
    #[inline(always)]
    fn forward_read_str<V>(&mut self, length: usize, visitor: V) -> bincode::Result<V::Value>
    where
        V: serde::de::Visitor<'a>,
    {
        let bytes = self.take(length)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(e) => Err(Box::new(bincode::ErrorKind::InvalidUtf8Encoding(e))),
        }
    }

    #[inline(always)]
    fn get_byte_buffer(&mut self, length: usize) -> bincode::Result<Vec<u8>> {
        self.take(length).map(|b| b.to_vec())
    }

    #[inline(always)]
    fn forward_read_bytes<V>(&mut self, length: usize, visitor: V) -> bincode::Result<V::Value>
    where
        V: serde::de::Visitor<'a>,
    {
        visitor.visit_borrowed_bytes(self.take(length)?)
    }
}

/// Takes `N` raw bytes: how bincode stores a `[u8; N]` (each byte as itself, no length), without
/// going through serde a byte at a time.
#[inline(always)]
fn take_array<const N: usize>(rest: &std::cell::Cell<&[u8]>) -> Result<[u8; N], bincode::Error> {
    let bytes = rest.get();
    match bytes.split_first_chunk::<N>() {
        Some((array, after)) => {
            rest.set(after);
            Ok(*array)
        }
        None => Err(SharedSliceReader::eof()),
    }
}

/// Decodes the bytes of a [`SegmentV1`] into borrowed events, appended to `out` (cleared
/// first). Accepts exactly the bytes [`decode`] accepts as a `SegmentV1` and gives the same
/// fields; an error says only that the bytes do not decode (decode them owned for bincode's own
/// message).
pub fn decode_segment_refs<'a>(
    bytes: &'a [u8],
    out: &mut Vec<StoredEventRefV1<'a>>,
) -> Result<(), CodecError> {
    use serde::de::Deserialize as _;
    out.clear();
    decode_list_refs("segment", bytes, options(), |de, rest| {
        let start = rest.get();
        let position = u64::deserialize(&mut *de)?;
        let event_id = take_array::<16>(rest)?;
        let stream = <&str>::deserialize(&mut *de)?;
        let stream_version = u64::deserialize(&mut *de)?;
        let event_type = <&str>::deserialize(&mut *de)?;
        let schema_version = u16::deserialize(&mut *de)?;
        let occurred_at = StoredTime::deserialize(&mut *de)?;
        let recorded_at = StoredTime::deserialize(&mut *de)?;
        let recorded_by = <&str>::deserialize(&mut *de)?;
        let correlation_id = Option::<[u8; 16]>::deserialize(&mut *de)?;
        let causation_id = Option::<[u8; 16]>::deserialize(&mut *de)?;
        let payload = <&[u8]>::deserialize(&mut *de)?;
        let canonical_len = start.len() - rest.get().len();
        let leaf_hash = take_array::<32>(rest)?;
        let chain_hash = take_array::<32>(rest)?;
        out.push(StoredEventRefV1 {
            position,
            event_id,
            stream,
            stream_version,
            event_type,
            schema_version,
            occurred_at,
            recorded_at,
            recorded_by,
            correlation_id,
            causation_id,
            payload,
            leaf_hash,
            chain_hash,
            canonical: &start[..canonical_len],
        });
        Ok(())
    })
}

/// Decodes a `Vec` borrowed from `bytes`: its length (a varint, as a u64 is), then each element
/// by `element` (given the deserializer and the bytes left), then no bytes left over. `options`
/// is [`options`], passed in so that its type (opaque) is named by inference; `what` names the
/// value in the error.
fn decode_list_refs<'a, O: bincode::Options>(
    what: &'static str,
    bytes: &'a [u8],
    options: O,
    mut element: impl FnMut(
        &mut bincode::Deserializer<SharedSliceReader<'a, '_>, O>,
        &std::cell::Cell<&'a [u8]>,
    ) -> Result<(), bincode::Error>,
) -> Result<(), CodecError> {
    use serde::de::Deserialize as _;
    let decoded = (|| {
        if bytes.len() as u64 > DECODE_LIMIT_BYTES {
            return Err(Box::new(bincode::ErrorKind::SizeLimit));
        }
        let rest = std::cell::Cell::new(bytes);
        let mut de =
            bincode::Deserializer::with_bincode_read(SharedSliceReader { rest: &rest }, options);
        let count = u64::deserialize(&mut de)?;
        for _ in 0..count {
            element(&mut de, &rest)?;
        }
        if !rest.get().is_empty() {
            return Err(trailing_bytes());
        }
        Ok(())
    })();
    decoded.map_err(|source| CodecError::Decode { what, source })
}

fn trailing_bytes() -> bincode::Error {
    Box::new(bincode::ErrorKind::Custom(
        "Slice had bytes remaining after deserialization".to_string(),
    ))
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

/// One entry of an index chunk borrowed from the chunk's bytes: the fields of
/// [`IndexEntryV1`], decoded by the same options from the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntryRefV1<'a> {
    pub event_id: [u8; 16],
    pub stream: &'a str,
    pub stream_version: u64,
}

/// Decodes the bytes of an [`IndexChunkV1`] into borrowed entries, appended to `out` (cleared
/// first). Accepts exactly the bytes [`decode`] accepts as an `IndexChunkV1`.
pub fn decode_index_chunk_refs<'a>(
    bytes: &'a [u8],
    out: &mut Vec<IndexEntryRefV1<'a>>,
) -> Result<(), CodecError> {
    use serde::de::Deserialize as _;
    out.clear();
    decode_list_refs("index chunk", bytes, options(), |de, rest| {
        let event_id = take_array::<16>(rest)?;
        let stream = <&str>::deserialize(&mut *de)?;
        let stream_version = u64::deserialize(&mut *de)?;
        out.push(IndexEntryRefV1 {
            event_id,
            stream,
            stream_version,
        });
        Ok(())
    })
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
