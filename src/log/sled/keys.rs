//! The key layout of the store: one sled tree, keys told apart by their first byte.
//!
//! | key | value |
//! |---|---|
//! | `H` | the store header ([`crate::codec::StoreHeaderV1`]) |
//! | `M` | the durable head ([`crate::codec::StoredHeadV1`]), rewritten by every commit |
//! | `B` ‖ first position (u64 big-endian) | a segment: the events of (part of) one commit |
//! | `X` ‖ first position (u64 big-endian) | the index chunk of the segment at that position: ids, streams, versions |
//! | `T` ‖ first stored index (u64 big-endian) | hashes of the Merkle tree (32 bytes each) from that index of the stored sequence on (`crate::merkle::stored_index`) |
//! | `Q` ‖ a `B`, `X` or `T` key | a segment or index chunk that lay past the stored head at an open, set aside (kept, never read) |
//!
//! A commit writes a few values whatever its size (its segments and their index chunks, then the
//! head, its commit point: see `storage.rs`): sled costs microseconds per key, so keys per event
//! would bound the throughput.
//! Big-endian numbers make sled's byte order the numeric order. Tests that tamper with a store
//! use these functions too.

pub const HEADER: &[u8] = b"H";
pub const HEAD: &[u8] = b"M";
pub const SEGMENT_PREFIX: u8 = b'B';
pub const INDEX_PREFIX: u8 = b'X';
pub const TREE_PREFIX: u8 = b'T';

fn positioned(prefix: u8, position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn position_in(prefix: u8, key: &[u8]) -> Option<u64> {
    if key.len() != 9 || key[0] != prefix {
        return None;
    }
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[1..]);
    Some(u64::from_be_bytes(bytes))
}

/// Where a key past the stored head is set aside at open (see `Storage::set_aside_after`): this
/// prefix, then the original key. Kept as evidence, never read by the log.
pub const SET_ASIDE_PREFIX: u8 = b'Q';

/// The key a key past the head is kept under once set aside.
pub fn set_aside(original: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(original.len() + 1);
    key.push(SET_ASIDE_PREFIX);
    key.extend_from_slice(original);
    key
}

/// The key of the segment whose first event is at `first_position`.
pub fn segment(first_position: u64) -> [u8; 9] {
    positioned(SEGMENT_PREFIX, first_position)
}

/// The first position of a segment key, or None when the key is not a segment key.
pub fn segment_position(key: &[u8]) -> Option<u64> {
    position_in(SEGMENT_PREFIX, key)
}

/// The key of the index chunk of the segment whose first event is at `first_position`.
pub fn index_chunk(first_position: u64) -> [u8; 9] {
    positioned(INDEX_PREFIX, first_position)
}

/// The first position of an index chunk key.
pub fn index_chunk_position(key: &[u8]) -> Option<u64> {
    position_in(INDEX_PREFIX, key)
}

/// The key of the tree hashes that start at stored index `first_index`.
pub fn tree_hashes(first_index: u64) -> [u8; 9] {
    positioned(TREE_PREFIX, first_index)
}

/// The first stored index of a tree-hash key.
pub fn tree_hashes_index(key: &[u8]) -> Option<u64> {
    position_in(TREE_PREFIX, key)
}
