//! The key layout of the store: one sled tree, keys told apart by their first byte.
//!
//! | key | value |
//! |---|---|
//! | `H` | the store header ([`crate::codec::StoreHeaderV1`]) |
//! | `M` | the durable head ([`crate::codec::StoredHeadV1`]), rewritten by every commit |
//! | `B` ‖ first position (u64 big-endian) | a segment: the events of (part of) one commit |
//! | `I` ‖ event id (16 bytes) | the event's position (u64 big-endian) |
//! | `S` ‖ stream ‖ 0x00 ‖ stream version (u64 big-endian) | the event's position |
//!
//! Big-endian numbers make sled's byte order the numeric order. Stream names may not hold 0x00,
//! so the separator is unambiguous. Tests that tamper with a store use these functions too.

pub const HEADER: &[u8] = b"H";
pub const HEAD: &[u8] = b"M";
pub const SEGMENT_PREFIX: u8 = b'B';
pub const ID_PREFIX: u8 = b'I';
pub const STREAM_PREFIX: u8 = b'S';

/// The key of the segment whose first event is at `first_position`.
pub fn segment(first_position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = SEGMENT_PREFIX;
    key[1..].copy_from_slice(&first_position.to_be_bytes());
    key
}

/// The first position of a segment key, or None when the key is not a segment key.
pub fn segment_position(key: &[u8]) -> Option<u64> {
    if key.len() != 9 || key[0] != SEGMENT_PREFIX {
        return None;
    }
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[1..]);
    Some(u64::from_be_bytes(bytes))
}

/// The key of an event id's index entry.
pub fn id(event_id: &[u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = ID_PREFIX;
    key[1..].copy_from_slice(event_id);
    key
}

/// The prefix of every index key of one stream.
pub fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 2);
    key.push(STREAM_PREFIX);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

/// The key of one stream version's index entry.
pub fn stream_version(stream: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The version at the end of a stream index key.
pub fn stream_version_of(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8)?;
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[tail..]);
    Some(u64::from_be_bytes(bytes))
}

/// A stored position (index value).
pub fn position_value(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// Reads a stored position; None when the value is not 8 bytes (a damaged index entry).
pub fn position_of_value(value: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = value.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}
