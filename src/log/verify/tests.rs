//! The index check beside the walk against the check it replaced (kept here verbatim as the
//! reference): the same verdict, position, kind and detail on randomly damaged index chunks,
//! with and without commits past the walked head.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::codec::{
    self, IndexChunkV1, SegmentV1, StoreHeaderV1, StoredEventV1, StoredHeadV1, StoredTime,
};
use crate::log::storage::Commit;
use crate::rng::SplitMix64;

struct MemStorage {
    segments: BTreeMap<u64, Vec<u8>>,
    /// None: a chunk that cannot be read.
    chunks: BTreeMap<u64, Option<Vec<u8>>>,
    head: Option<StoredHeadV1>,
}

fn corrupt() -> StorageError {
    StorageError::Corrupt {
        path: PathBuf::new(),
        detail: "unreadable".into(),
    }
}

impl Storage for MemStorage {
    fn tree_hashes(&self, _indexes: &[u64]) -> Result<Vec<[u8; 32]>, StorageError> {
        Err(corrupt())
    }
    fn tree_stored_count(&self) -> Result<u64, StorageError> {
        Ok(0)
    }
    fn tree_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        Box::new(std::iter::empty())
    }
    fn write_tree_chunks(&self, _chunks: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError> {
        Err(corrupt())
    }
    fn path(&self) -> &Path {
        Path::new("mem")
    }
    fn header(&self) -> Result<StoreHeaderV1, StorageError> {
        Err(corrupt())
    }
    fn head(&self) -> Result<Option<StoredHeadV1>, StorageError> {
        Ok(self.head)
    }
    fn commit(&self, _commit: Commit) -> Result<(), StorageError> {
        Err(corrupt())
    }
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
    fn set_aside_after(
        &self,
        _head: Option<&StoredHeadV1>,
    ) -> Result<Option<crate::log::DiscardedTail>, StorageError> {
        Ok(None)
    }
    fn segments_from(
        &self,
        from_position: u64,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        let from = from_position.max(1);
        let start = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(from, |(k, _)| *k);
        Box::new(
            self.segments
                .range(start..)
                .map(|(k, v)| Ok((*k, v.clone()))),
        )
    }
    fn index_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        Box::new(self.chunks.iter().map(|(k, v)| match v {
            Some(v) => Ok((*k, v.clone())),
            None => Err(corrupt()),
        }))
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(0)
    }
}

/// A valid store of `n` events in segments of 1 to 4 events, one chunk each.
fn store(rng: &mut SplitMix64, n: u64) -> MemStorage {
    let time = StoredTime {
        unix_seconds: 1_700_000_000,
        nanos: 0,
        offset_seconds: 28_800,
    };
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut chain = hash::GENESIS_CHAIN;
    let mut events = Vec::new();
    for position in 1..=n {
        let stream = format!("s-{}", rng.below(4));
        let version = versions.entry(stream.clone()).or_insert(0);
        *version += 1;
        let mut e = StoredEventV1 {
            position,
            event_id: (rng.next_u64() as u128).to_le_bytes(),
            stream,
            stream_version: *version,
            event_type: "t".into(),
            schema_version: 1,
            occurred_at: time,
            recorded_at: time,
            recorded_by: "r".into(),
            correlation_id: None,
            causation_id: None,
            payload: vec![position as u8; rng.below(5) as usize],
            leaf_hash: [0; 32],
            chain_hash: [0; 32],
        };
        e.leaf_hash = hash::leaf(&e.canonical_bytes().unwrap());
        chain = hash::chain(&chain, &e.leaf_hash);
        e.chain_hash = chain;
        events.push(e);
    }
    let mut storage = MemStorage {
        segments: BTreeMap::new(),
        chunks: BTreeMap::new(),
        head: (n > 0).then_some(StoredHeadV1 {
            position: n,
            chain_hash: chain,
            recorded_at: time,
        }),
    };
    let mut rest = &events[..];
    while !rest.is_empty() {
        let take = (1 + rng.below(4) as usize).min(rest.len());
        let (segment, after) = rest.split_at(take);
        let first = segment[0].position;
        let bytes = codec::encode(
            "segment",
            &SegmentV1 {
                events: segment.to_vec(),
            },
        )
        .unwrap();
        storage.segments.insert(first, bytes);
        let chunk = super::super::index::chunk_of(segment);
        storage
            .chunks
            .insert(first, Some(codec::encode("index chunk", &chunk).unwrap()));
        rest = after;
    }
    storage
}

fn damage(rng: &mut SplitMix64, storage: &mut MemStorage) {
    let keys: Vec<u64> = storage.chunks.keys().copied().collect();
    if keys.is_empty() {
        return;
    }
    let key = keys[rng.below(keys.len() as u64) as usize];
    let decoded = |s: &MemStorage| -> IndexChunkV1 {
        s.chunks[&key]
            .as_ref()
            .and_then(|b| codec::decode("index chunk", b).ok())
            .filter(|c: &IndexChunkV1| !c.entries.is_empty())
            .unwrap_or_else(|| IndexChunkV1 {
                entries: vec![crate::codec::IndexEntryV1 {
                    event_id: [9; 16],
                    stream: "s-9".into(),
                    stream_version: 1,
                }],
            })
    };
    let put = |s: &mut MemStorage, c: &IndexChunkV1| {
        s.chunks
            .insert(key, Some(codec::encode("index chunk", c).unwrap()));
    };
    match rng.below(10) {
        0 => {
            storage.chunks.remove(&key);
        }
        1 => {
            let chunk = storage.chunks.remove(&key).unwrap();
            let to = (key as i64 + rng.below(5) as i64 - 2).max(1) as u64;
            storage.chunks.insert(to, chunk);
        }
        2 => {
            storage.chunks.insert(key, None);
        }
        3 => {
            storage
                .chunks
                .insert(key, Some(vec![rng.next_u64() as u8; 3]));
        }
        4 => {
            let mut c = decoded(storage);
            c.entries.clear();
            put(storage, &c);
        }
        5 => {
            let mut c = decoded(storage);
            let e = c.entries[0].clone();
            c.entries.push(e);
            put(storage, &c);
        }
        6 => {
            let mut c = decoded(storage);
            c.entries.pop();
            put(storage, &c);
        }
        7 => {
            let mut c = decoded(storage);
            let i = rng.below(c.entries.len() as u64) as usize;
            c.entries[i].stream_version += 1;
            put(storage, &c);
        }
        8 => {
            let mut c = decoded(storage);
            let i = rng.below(c.entries.len() as u64) as usize;
            c.entries[i].stream.push('x');
            put(storage, &c);
        }
        _ => {
            let mut c = decoded(storage);
            let i = rng.below(c.entries.len() as u64) as usize;
            c.entries[i].event_id[0] ^= 1;
            put(storage, &c);
        }
    }
}

/// Verify's verdict with the index check beside the walk, and with the reference after it.
fn both(storage: &MemStorage, limit: u64) -> (Option<VerifyProblem>, Option<VerifyProblem>) {
    let run = |inline: bool| {
        let mut walk = Walk {
            expected_position: 1,
            chain: hash::GENESIS_CHAIN,
            stream_versions: StreamVersions::default(),
            checked: 0,
            index: inline.then(|| IndexWalk::new(storage)),
        };
        let mut problem = walk_segments(storage, &mut walk, limit, &mut |_| {});
        let last_position = walk.expected_position - 1;
        if problem.is_none() {
            problem = check_head(storage, last_position, limit, &walk.chain);
        }
        if problem.is_none() {
            problem = match walk.index.take() {
                Some(index) => index.finish(storage, last_position),
                None => reference_check_indexes_of(storage, last_position),
            };
        }
        problem
    };
    (run(true), run(false))
}

#[test]
fn the_index_check_beside_the_walk_finds_what_the_check_after_it_found() {
    let mut rng = SplitMix64(7);
    let mut found = 0;
    for case in 0..3_000 {
        let n = rng.below(12);
        let mut storage = store(&mut rng, n);
        // Some cases: the last commits were made while verifying (past the limit).
        let limit = if rng.below(3) == 0 {
            n.saturating_sub(rng.below(4))
        } else {
            n
        };
        for _ in 0..=rng.below(2) {
            damage(&mut rng, &mut storage);
        }
        let (inline, reference) = both(&storage, limit);
        assert_eq!(inline, reference, "case {case}: n {n}, limit {limit}");
        found += usize::from(reference.is_some());
    }
    assert!(found > 1_000, "the damage is found often: {found}");
}

/// The index chunks cover every position once, in order, and each entry names the event at its
/// position (id, stream, version): the chunks and the segments are walked side by side.
fn reference_check_indexes_of(storage: &dyn Storage, last_position: u64) -> Option<VerifyProblem> {
    let mut events = ReferenceEventWalk {
        segments: storage.segments_from(1),
        buffered: Vec::new().into_iter(),
    };
    let mut expected = 1u64;
    for raw in storage.index_chunks() {
        if matches!(&raw, Ok((first, _)) if *first > last_position) {
            // Chunks past the walked head belong to commits made while verifying (a stray one
            // is reported by the segment walk and the head check).
            break;
        }
        let Ok((first, bytes)) = raw else {
            return problem(
                expected,
                VerifyProblemKind::Modified,
                "the index cannot be read",
            );
        };
        if first != expected {
            let kind = if first > expected {
                VerifyProblemKind::Missing
            } else {
                VerifyProblemKind::OutOfOrder
            };
            return problem(
                expected.min(first),
                kind,
                format!(
                    "the index chunk for position {expected} is missing or misplaced (found one at {first})"
                ),
            );
        }
        let chunk: IndexChunkV1 = match codec::decode("index chunk", &bytes) {
            Ok(c) => c,
            Err(e) => {
                return problem(
                    first,
                    VerifyProblemKind::Modified,
                    format!("the index chunk at position {first} does not decode: {e}"),
                );
            }
        };
        if chunk.entries.is_empty() {
            return problem(first, VerifyProblemKind::Modified, "an empty index chunk");
        }
        for entry in chunk.entries {
            let Some(event) = events.next() else {
                return problem(
                    expected,
                    VerifyProblemKind::Modified,
                    format!(
                        "the index names position {expected}, past the last event {last_position}"
                    ),
                );
            };
            let same = event.position == expected
                && event.event_id == entry.event_id
                && event.stream == entry.stream
                && event.stream_version == entry.stream_version;
            if !same {
                return problem(
                    expected,
                    VerifyProblemKind::Modified,
                    format!(
                        "the index entry at position {expected} does not match the event there (id, stream or version)"
                    ),
                );
            }
            expected += 1;
        }
    }
    if expected != last_position + 1 {
        return problem(
            expected,
            VerifyProblemKind::Missing,
            format!(
                "the index covers positions up to {} but the log ends at {last_position}",
                expected - 1
            ),
        );
    }
    None
}

/// The stored events in position order, for the index walk (already verified by the first walk).
struct ReferenceEventWalk<'a> {
    segments: Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + 'a>,
    buffered: std::vec::IntoIter<StoredEventV1>,
}

impl Iterator for ReferenceEventWalk<'_> {
    type Item = StoredEventV1;

    fn next(&mut self) -> Option<StoredEventV1> {
        loop {
            if let Some(e) = self.buffered.next() {
                return Some(e);
            }
            let raw = self.segments.next()?.ok()?;
            self.buffered = segments::decode_segment(&raw).ok()?.into_iter();
        }
    }
}
