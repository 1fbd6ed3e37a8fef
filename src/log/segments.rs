//! Segments as stored, decoded: the one place that turns a raw segment into events and checks
//! that its key names its first event. Below the readers, the verifier, the writer and the
//! storage engine's recovery, which all read segments; it uses only the storage trait.

use super::storage::{RawSegment, Storage, StorageError};
use super::types::LogError;
use crate::codec::{self, SegmentV1, StoredEventRefV1, StoredEventV1};

/// Decodes a raw segment, checking that its key matches its first event.
pub(crate) fn decode_segment(raw: &RawSegment) -> Result<Vec<StoredEventV1>, LogError> {
    let mut refs = Vec::new();
    decode_segment_refs(raw, &mut refs)?;
    Ok(refs.iter().map(StoredEventRefV1::to_owned_event).collect())
}

/// Decodes a raw segment into events borrowed from its bytes (`out` is cleared first), checking
/// that its key matches its first event. The same checks and errors as [`decode_segment`].
pub(crate) fn decode_segment_refs<'a>(
    raw: &'a RawSegment,
    out: &mut Vec<StoredEventRefV1<'a>>,
) -> Result<(), LogError> {
    if codec::decode_segment_refs(&raw.1, out).is_err() {
        out.clear();
        // The owned decode gives bincode's own message for the report.
        let segment: SegmentV1 = codec::decode("segment", &raw.1)?;
        // Unreachable: both decoders accept the same bytes (`tests/codec_views.rs`).
        return Err(LogError::Storage(StorageError::Corrupt {
            path: std::path::PathBuf::new(),
            detail: format!(
                "the segment stored under position {} ({} events) decodes owned but not borrowed: run `carelog verify`",
                raw.0,
                segment.events.len()
            ),
        }));
    }
    check_segment_key(raw.0, out.first().map(|e| e.position))
}

fn check_segment_key(key: u64, first: Option<u64>) -> Result<(), LogError> {
    match first {
        Some(first) if first == key => Ok(()),
        Some(first) => Err(LogError::Storage(StorageError::Corrupt {
            path: std::path::PathBuf::new(),
            detail: format!(
                "the segment stored under position {key} holds events from position {first} (moved or swapped): run `carelog verify`"
            ),
        })),
        None => Err(LogError::Storage(StorageError::Corrupt {
            path: std::path::PathBuf::new(),
            detail: format!(
                "the segment stored under position {key} is empty: run `carelog verify`"
            ),
        })),
    }
}

/// The stored event at a position, read from its segment.
pub(crate) fn stored_event_at(
    storage: &dyn Storage,
    position: u64,
) -> Result<Option<StoredEventV1>, LogError> {
    if let Some(raw) = storage.segments_from(position).next() {
        let raw = raw?;
        let events = decode_segment(&raw)?;
        return Ok(events.into_iter().find(|e| e.position == position));
    }
    Ok(None)
}
