//! `verify` and `digest`: prove the log is what was written.
//!
//! Verify walks every segment in key order and checks, for each event: it decodes; its position
//! follows the previous one (else: missing or out of order); its leaf hash is the hash of its
//! canonical bytes and its chain hash follows the previous chain (else: modified); its stream
//! version follows the stream's previous one. Then it checks the stored head against the last
//! event (a truncated tail shows here) and, unless told not to, that every index entry points at
//! the event it names. It reports the first problem and never panics on a corrupt store.
//!
//! A digest is the head (position, chain hash). `verify` against a digest an auditor kept proves
//! the log still holds that head unchanged: the log was only appended to since.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::storage::{RawSegment, Storage, StorageError};
use super::{Log, LogError, hash, segments};
use crate::codec::{self, IndexChunkV1, StoredEventRefV1};

/// What is wrong at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyProblemKind {
    /// The stored bytes differ from what was written (hash mismatch, undecodable, bad index).
    Modified,
    /// A position that should be there is not.
    Missing,
    /// A position or stream version out of order (swapped, duplicated).
    OutOfOrder,
    /// The log no longer holds the head of a digest taken earlier.
    DigestMismatch,
}

/// The first problem verify found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProblem {
    pub position: u64,
    pub kind: VerifyProblemKind,
    pub detail: String,
}

/// A head an auditor can keep and check later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub position: u64,
    /// Hex of the chain hash at `position`.
    pub chain_hash: String,
    pub algorithm: String,
}

/// The outcome of a verify run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub intact: bool,
    pub events_checked: u64,
    pub head: Digest,
    pub problem: Option<VerifyProblem>,
}

/// Bounds the stream-version map of one verify run (streams seen); beyond it the versions of
/// further streams are not checked (the hashes still are).
const VERIFY_STREAM_MAP_MAX: usize = 4_000_000;

struct Walk<'s> {
    expected_position: u64,
    chain: [u8; 32],
    stream_versions: StreamVersions,
    checked: u64,
    /// The index chunks, checked against each event as the walk passes it (None: not checked).
    index: Option<IndexWalk<'s>>,
}

/// The longest stream name kept inline in [`StreamVersions`]; every name the log writes
/// (`kind-uuid`) is shorter.
const INLINE_NAME_BYTES: usize = 55;

/// A stream name stored in the map's own slot: comparing it reads no other memory, where a
/// `String` key sends every lookup to a heap allocation of its own (a cache miss per event on a
/// long log).
#[derive(PartialEq, Eq)]
struct InlineName {
    len: u8,
    bytes: [u8; INLINE_NAME_BYTES],
}

impl std::hash::Hash for InlineName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The name's bytes only (the rest are zeros): equal names hash alike.
        state.write(
            self.bytes
                .get(..usize::from(self.len))
                .unwrap_or(&self.bytes),
        );
    }
}

impl InlineName {
    fn new(name: &str) -> Option<Self> {
        let mut bytes = [0u8; INLINE_NAME_BYTES];
        bytes
            .get_mut(..name.len())?
            .copy_from_slice(name.as_bytes());
        Some(Self {
            len: name.len() as u8,
            bytes,
        })
    }
}

/// The last version seen of each stream: short names inline, longer ones as strings.
#[derive(Default)]
struct StreamVersions {
    inline: HashMap<InlineName, u64>,
    long: HashMap<String, u64>,
}

impl StreamVersions {
    fn len(&self) -> usize {
        self.inline.len() + self.long.len()
    }

    fn get_mut(&mut self, stream: &str) -> Option<&mut u64> {
        match InlineName::new(stream) {
            Some(name) => self.inline.get_mut(&name),
            None => self.long.get_mut(stream),
        }
    }

    fn insert(&mut self, stream: &str, version: u64) {
        match InlineName::new(stream) {
            Some(name) => self.inline.insert(name, version),
            None => self.long.insert(stream.to_owned(), version),
        };
    }
}

impl Log {
    /// The head as a digest.
    pub fn digest(&self) -> Digest {
        let (position, chain) = self.shared.durable_head();
        Digest {
            position,
            chain_hash: hex::encode(chain),
            algorithm: hash::ALGORITHM.to_string(),
        }
    }

    /// Verifies the whole log; `check_indexes` also checks every id and stream index entry.
    /// `progress` is called now and then with the number of events checked.
    pub fn verify(
        &self,
        check_indexes: bool,
        against: Option<&Digest>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<VerifyReport, LogError> {
        let storage = self.shared.storage.as_ref();
        // A verify may run while appends go on (the HTTP service): what is checked is the log up
        // to the durable head at the start; commits after it are not a problem.
        let limit = self.shared.durable_head().0;
        let mut walk = Walk {
            expected_position: 1,
            chain: hash::GENESIS_CHAIN,
            stream_versions: StreamVersions::default(),
            checked: 0,
            index: check_indexes.then(|| IndexWalk::new(storage)),
        };
        let mut problem = walk_segments(storage, &mut walk, limit, progress);
        let last_position = walk.expected_position - 1;

        if problem.is_none() {
            problem = check_head(storage, last_position, limit, &walk.chain);
        }
        if problem.is_none()
            && let Some(index) = walk.index.take()
        {
            problem = index.finish(storage, last_position);
        }
        if problem.is_none()
            && let Some(d) = against
        {
            problem = check_digest(storage, d, last_position)?;
        }
        Ok(VerifyReport {
            intact: problem.is_none(),
            events_checked: walk.checked,
            head: Digest {
                position: last_position,
                chain_hash: hex::encode(walk.chain),
                algorithm: hash::ALGORITHM.to_string(),
            },
            problem,
        })
    }
}

fn problem(
    position: u64,
    kind: VerifyProblemKind,
    detail: impl Into<String>,
) -> Option<VerifyProblem> {
    Some(VerifyProblem {
        position,
        kind,
        detail: detail.into(),
    })
}

/// The reading thread hands segments over this many at a time (a hand-over costs two thread
/// wake-ups), and is at most a few such batches ahead of the checks.
const SEGMENTS_PER_HANDOVER: usize = 16;
const HANDOVERS_AHEAD: usize = 4;

/// A segment as the reading thread hands it over: its raw bytes, and the leaf hash computed
/// from each of its events' bytes (None when it does not decode: the checks report that).
type ReadSegment = (
    Result<super::storage::RawSegment, super::StorageError>,
    Option<Vec<Result<[u8; 32], String>>>,
);

/// Walks the stored segments in order: one thread reads them from the storage and hashes each
/// event's bytes (the leaf hashes, most of the hashing), while this one checks them in order
/// (positions, chain, versions, indexes), which only one thread can do.
fn walk_segments(
    storage: &dyn Storage,
    walk: &mut Walk,
    limit: u64,
    progress: &mut dyn FnMut(u64),
) -> Option<VerifyProblem> {
    std::thread::scope(|scope| {
        let (segments_tx, segments_rx) = std::sync::mpsc::sync_channel(HANDOVERS_AHEAD);
        scope.spawn(move || {
            let mut segments = storage.segments_from(1);
            loop {
                let mut batch: Vec<ReadSegment> = Vec::with_capacity(SEGMENTS_PER_HANDOVER);
                let mut ended = false;
                while batch.len() < SEGMENTS_PER_HANDOVER {
                    match segments.next() {
                        Some(raw) => {
                            let failed = raw.is_err();
                            let leaves = raw.as_ref().ok().and_then(|segment| {
                                let mut events = Vec::new();
                                segments::decode_segment_refs(segment, &mut events).ok()?;
                                Some(events.iter().map(hash::computed_leaf).collect())
                            });
                            batch.push((raw, leaves));
                            if failed {
                                ended = true;
                                break;
                            }
                        }
                        None => {
                            ended = true;
                            break;
                        }
                    }
                }
                // Stops when the checks stop (they drop the receiver), at the end, or after an
                // error.
                if (!batch.is_empty() && segments_tx.send(batch).is_err()) || ended {
                    break;
                }
            }
        });
        let found = check_segments(segments_rx.iter().flatten(), walk, limit, progress);
        drop(segments_rx);
        found
    })
}

fn check_segments(
    segments: impl Iterator<Item = ReadSegment>,
    walk: &mut Walk,
    limit: u64,
    progress: &mut dyn FnMut(u64),
) -> Option<VerifyProblem> {
    for (raw, leaves) in segments {
        // Segments past the durable head at the start belong to commits made while verifying
        // (written before their head, see storage.rs): not part of what this run checks.
        if let Ok((first, _)) = &raw
            && *first > limit
            && *first == walk.expected_position
        {
            break;
        }
        let raw = match raw {
            Ok(r) => r,
            Err(e) => {
                return problem(
                    walk.expected_position,
                    VerifyProblemKind::Modified,
                    e.to_string(),
                );
            }
        };
        let first_in_key = raw.0;
        if first_in_key > walk.expected_position {
            return problem(
                walk.expected_position,
                VerifyProblemKind::Missing,
                format!(
                    "positions {}..{} are missing (the next stored segment starts at {first_in_key})",
                    walk.expected_position,
                    first_in_key - 1
                ),
            );
        }
        if first_in_key < walk.expected_position {
            return problem(
                first_in_key,
                VerifyProblemKind::OutOfOrder,
                format!(
                    "a segment starts at position {first_in_key}, but position {} was expected next",
                    walk.expected_position
                ),
            );
        }
        let mut events = Vec::new();
        match segments::decode_segment_refs(&raw, &mut events) {
            Ok(()) => {}
            Err(LogError::Storage(e)) => {
                return problem(first_in_key, VerifyProblemKind::OutOfOrder, e.to_string());
            }
            Err(e) => {
                return problem(
                    first_in_key,
                    VerifyProblemKind::Modified,
                    format!("the segment starting at position {first_in_key} does not decode: {e}"),
                );
            }
        }
        if events.is_empty() {
            return problem(
                first_in_key,
                VerifyProblemKind::Modified,
                "an empty segment",
            );
        }
        for (i, e) in events.iter().enumerate() {
            let leaf = match leaves.as_ref().and_then(|l| l.get(i)) {
                Some(leaf) => leaf.clone(),
                None => hash::computed_leaf(e),
            };
            if let Some(p) = check_event(walk, e, leaf) {
                return Some(p);
            }
            if walk.checked.is_multiple_of(100_000) {
                progress(walk.checked);
            }
        }
    }
    None
}

/// Checks one event, given the leaf hash computed from its bytes ([`hash::computed_leaf`]).
fn check_event(
    walk: &mut Walk,
    e: &StoredEventRefV1<'_>,
    leaf: Result<[u8; 32], String>,
) -> Option<VerifyProblem> {
    let expected = walk.expected_position;
    if e.position > expected {
        return problem(
            expected,
            VerifyProblemKind::Missing,
            format!("position {expected} is missing (found {} next)", e.position),
        );
    }
    if e.position < expected {
        // Reported where the wrong event sits: the position it claims may be anywhere.
        return problem(
            expected,
            VerifyProblemKind::OutOfOrder,
            format!(
                "position {} found where {expected} was expected",
                e.position
            ),
        );
    }
    let leaf = match leaf {
        Ok(leaf) => leaf,
        Err(err) => return problem(expected, VerifyProblemKind::Modified, err),
    };
    if leaf != e.leaf_hash {
        return problem(
            expected,
            VerifyProblemKind::Modified,
            "the event's content does not match its leaf hash (modified)",
        );
    }
    let chain = hash::chain(&walk.chain, &leaf);
    if chain != e.chain_hash {
        return problem(
            expected,
            VerifyProblemKind::Modified,
            "the chain hash does not follow the previous event's (modified or reordered)",
        );
    }
    if let Err(err) =
        crate::time::from_stored(&e.occurred_at).and(crate::time::from_stored(&e.recorded_at))
    {
        return problem(expected, VerifyProblemKind::Modified, err.to_string());
    }
    // One lookup per event; a stream's name is copied only the first time it is seen.
    let room = walk.stream_versions.len() < VERIFY_STREAM_MAP_MAX;
    match walk.stream_versions.get_mut(e.stream) {
        Some(previous_version) => {
            if e.stream_version != *previous_version + 1 {
                return problem(
                    expected,
                    VerifyProblemKind::OutOfOrder,
                    format!(
                        "stream {:?} version {} follows version {previous_version}",
                        e.stream, e.stream_version
                    ),
                );
            }
            *previous_version = e.stream_version;
        }
        // Beyond the map's bound a new stream's versions go unchecked (memory stays bounded).
        None if room => {
            if e.stream_version != 1 {
                return problem(
                    expected,
                    VerifyProblemKind::OutOfOrder,
                    format!(
                        "stream {:?} version {} follows version 0",
                        e.stream, e.stream_version
                    ),
                );
            }
            walk.stream_versions.insert(e.stream, e.stream_version);
        }
        None => {}
    }
    if let Some(index) = walk.index.as_mut() {
        index.feed(e);
    }
    walk.chain = chain;
    walk.expected_position += 1;
    walk.checked += 1;
    None
}

fn check_head(
    storage: &dyn Storage,
    last_position: u64,
    limit: u64,
    chain: &[u8; 32],
) -> Option<VerifyProblem> {
    match storage.head() {
        // Appends made while verifying: the walk stopped at the head it started from.
        Ok(Some(head)) if last_position == limit && head.position > limit => None,
        Err(e) => problem(
            last_position + 1,
            VerifyProblemKind::Modified,
            format!("the stored head: {e}"),
        ),
        Ok(None) if last_position == 0 => None,
        Ok(None) => problem(
            last_position,
            VerifyProblemKind::Modified,
            "events are stored but the stored head is missing",
        ),
        Ok(Some(head)) if head.position > last_position => problem(
            last_position + 1,
            VerifyProblemKind::Missing,
            format!(
                "the log was committed up to position {} but ends at {last_position} (truncated)",
                head.position
            ),
        ),
        Ok(Some(head)) if head.position < last_position => problem(
            head.position + 1,
            VerifyProblemKind::Modified,
            format!(
                "events after the committed head {} are stored (up to {last_position}): not written by the log",
                head.position
            ),
        ),
        Ok(Some(head)) if head.chain_hash != *chain => problem(
            last_position,
            VerifyProblemKind::Modified,
            "the stored head's chain hash differs from the recomputed chain",
        ),
        Ok(Some(_)) => None,
    }
}

/// The index check: the index chunks cover every position once, in order, and each entry names
/// the event at its position (id, stream, version).
///
/// The chunks are walked beside the segment walk, each entry compared with the event the walk
/// has just checked, so the segments are read and decoded once for both checks. What it finds
/// is reported only after the walk and the head check, as when it ran after them: the first
/// problem of the chunks, against the events up to the walked head. Whether a misplaced chunk
/// lies past the walked head (a commit made while verifying) is only known at the end, so
/// that chunk waits for [`IndexWalk::finish`].
struct IndexWalk<'s> {
    chunks: Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + 's>,
    /// The current chunk's entries: (id, stream version, end of the stream's name in `streams`).
    entries: Vec<([u8; 16], u64, usize)>,
    /// The streams of the current chunk's entries, one after the other.
    streams: String,
    next_entry: usize,
    /// The position the next entry must name.
    expected: u64,
    state: IndexState,
}

enum IndexState {
    /// Every entry so far names its event.
    Walking,
    /// No chunk after the last one walked.
    Exhausted,
    /// A chunk was found at `first` where one at `expected` was due: a problem unless it lies
    /// past the walked head.
    Misplaced { first: u64 },
    /// The first problem of the chunks.
    Problem(VerifyProblem),
}

impl<'s> IndexWalk<'s> {
    fn new(storage: &'s dyn Storage) -> Self {
        Self {
            chunks: storage.index_chunks(),
            entries: Vec::new(),
            streams: String::new(),
            next_entry: 0,
            expected: 1,
            state: IndexState::Walking,
        }
    }

    /// Checks the next entry against `e`, the event the walk has just checked (at position
    /// `self.expected`: the walk checks positions in order from 1).
    fn feed(&mut self, e: &StoredEventRefV1<'_>) {
        if !matches!(self.state, IndexState::Walking) {
            return;
        }
        if self.next_entry >= self.entries.len() {
            match self.chunks.next() {
                None => {
                    self.state = IndexState::Exhausted;
                    return;
                }
                Some(Err(_)) => {
                    self.state = IndexState::Problem(self.unreadable());
                    return;
                }
                Some(Ok((first, bytes))) => {
                    if first != self.expected {
                        self.state = IndexState::Misplaced { first };
                        return;
                    }
                    if let Some(p) = self.load(first, &bytes) {
                        self.state = IndexState::Problem(p);
                        return;
                    }
                }
            }
        }
        if let Some(p) = self.compare(Some(EventKey {
            position: e.position,
            event_id: e.event_id,
            stream: e.stream,
            stream_version: e.stream_version,
        })) {
            self.state = IndexState::Problem(p);
        }
    }

    /// The index check's verdict once the walk and the head check found nothing: what a walk of
    /// the chunks beside the events up to `last_position` finds.
    fn finish(mut self, storage: &dyn Storage, last_position: u64) -> Option<VerifyProblem> {
        match std::mem::replace(&mut self.state, IndexState::Exhausted) {
            IndexState::Problem(p) => return Some(p),
            IndexState::Misplaced { first } => {
                // Chunks past the walked head belong to commits made while verifying (a stray
                // one is reported by the segment walk and the head check).
                if first <= last_position {
                    return Some(self.misplaced(first));
                }
            }
            IndexState::Exhausted => {}
            IndexState::Walking => {
                // Entries left past the walked head are compared with the events after it (there
                // are some only when commits were made while verifying).
                let mut events = EventWalk {
                    segments: storage.segments_from(last_position.saturating_add(1)),
                    after: last_position,
                    keys: Vec::new(),
                    streams: String::new(),
                    next: 0,
                };
                loop {
                    while self.next_entry < self.entries.len() {
                        let event = events.next();
                        if event.is_none() {
                            return problem(
                                self.expected,
                                VerifyProblemKind::Modified,
                                format!(
                                    "the index names position {}, past the last event {last_position}",
                                    self.expected
                                ),
                            );
                        }
                        if let Some(p) = self.compare(event) {
                            return Some(p);
                        }
                    }
                    match self.chunks.next() {
                        None => break,
                        Some(Ok((first, _))) if first > last_position => break,
                        Some(Err(_)) => return Some(self.unreadable()),
                        Some(Ok((first, bytes))) => {
                            if first != self.expected {
                                return Some(self.misplaced(first));
                            }
                            if let Some(p) = self.load(first, &bytes) {
                                return Some(p);
                            }
                        }
                    }
                }
            }
        }
        if self.expected != last_position + 1 {
            return problem(
                self.expected,
                VerifyProblemKind::Missing,
                format!(
                    "the index covers positions up to {} but the log ends at {last_position}",
                    self.expected - 1
                ),
            );
        }
        None
    }

    /// Makes the chunk at `first` the current one. Entries are borrowed from the chunk's bytes
    /// and only their streams copied, into a buffer reused from chunk to chunk.
    fn load(&mut self, first: u64, bytes: &[u8]) -> Option<VerifyProblem> {
        let mut entries = Vec::new();
        if codec::decode_index_chunk_refs(bytes, &mut entries).is_err() {
            // The owned decode gives bincode's own message for the report.
            let detail = match codec::decode::<IndexChunkV1>("index chunk", bytes) {
                Err(e) => format!("the index chunk at position {first} does not decode: {e}"),
                // Unreachable: both decoders accept the same bytes (`tests/codec_views.rs`).
                Ok(_) => format!("the index chunk at position {first} does not decode"),
            };
            return problem(first, VerifyProblemKind::Modified, detail);
        }
        if entries.is_empty() {
            return problem(first, VerifyProblemKind::Modified, "an empty index chunk");
        }
        self.entries.clear();
        self.streams.clear();
        self.next_entry = 0;
        for entry in &entries {
            self.streams.push_str(entry.stream);
            self.entries
                .push((entry.event_id, entry.stream_version, self.streams.len()));
        }
        None
    }

    /// Compares the current entry with the event at its position and moves on to the next.
    fn compare(&mut self, event: Option<EventKey<'_>>) -> Option<VerifyProblem> {
        let i = self.next_entry;
        let start = match i.checked_sub(1) {
            Some(previous) => self.entries.get(previous).map_or(0, |e| e.2),
            None => 0,
        };
        let same = match (event, self.entries.get(i)) {
            (Some(event), Some(&(event_id, stream_version, end))) => {
                event.position == self.expected
                    && event.event_id == event_id
                    && self.streams.get(start..end) == Some(event.stream)
                    && event.stream_version == stream_version
            }
            _ => false,
        };
        if !same {
            return problem(
                self.expected,
                VerifyProblemKind::Modified,
                format!(
                    "the index entry at position {} does not match the event there (id, stream or version)",
                    self.expected
                ),
            );
        }
        self.next_entry += 1;
        self.expected += 1;
        None
    }

    fn unreadable(&self) -> VerifyProblem {
        VerifyProblem {
            position: self.expected,
            kind: VerifyProblemKind::Modified,
            detail: "the index cannot be read".into(),
        }
    }

    fn misplaced(&self, first: u64) -> VerifyProblem {
        let expected = self.expected;
        VerifyProblem {
            position: expected.min(first),
            kind: if first > expected {
                VerifyProblemKind::Missing
            } else {
                VerifyProblemKind::OutOfOrder
            },
            detail: format!(
                "the index chunk for position {expected} is missing or misplaced (found one at {first})"
            ),
        }
    }
}

/// What the index walk compares of an event.
struct EventKey<'a> {
    position: u64,
    event_id: [u8; 16],
    stream: &'a str,
    stream_version: u64,
}

/// The stored events after a position, in position order, for the index entries past the
/// walked head. Keeps only what the index names of the current segment's events, in buffers
/// reused from one segment to the next.
struct EventWalk<'a> {
    segments: Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + 'a>,
    /// Events at or before this position are skipped.
    after: u64,
    /// (position, id, stream version, end of the stream's name in `streams`).
    keys: Vec<(u64, [u8; 16], u64, usize)>,
    /// The streams of the current segment's events, one after the other.
    streams: String,
    next: usize,
}

impl EventWalk<'_> {
    fn next(&mut self) -> Option<EventKey<'_>> {
        while self.next >= self.keys.len() {
            let raw = self.segments.next()?.ok()?;
            let mut refs = Vec::new();
            segments::decode_segment_refs(&raw, &mut refs).ok()?;
            self.keys.clear();
            self.streams.clear();
            self.next = 0;
            for e in refs.iter().filter(|e| e.position > self.after) {
                self.streams.push_str(e.stream);
                self.keys
                    .push((e.position, e.event_id, e.stream_version, self.streams.len()));
            }
        }
        let (position, event_id, stream_version, end) = *self.keys.get(self.next)?;
        let start = match self.next.checked_sub(1) {
            Some(previous) => self.keys.get(previous)?.3,
            None => 0,
        };
        self.next += 1;
        Some(EventKey {
            position,
            event_id,
            stream: self.streams.get(start..end)?,
            stream_version,
        })
    }
}

fn check_digest(
    storage: &dyn Storage,
    digest: &Digest,
    last_position: u64,
) -> Result<Option<VerifyProblem>, LogError> {
    if digest.algorithm != hash::ALGORITHM {
        return Ok(problem(
            digest.position,
            VerifyProblemKind::DigestMismatch,
            format!(
                "the digest uses {:?}; this store uses {}",
                digest.algorithm,
                hash::ALGORITHM
            ),
        ));
    }
    if digest.position > last_position {
        return Ok(problem(
            last_position + 1,
            VerifyProblemKind::DigestMismatch,
            format!(
                "the digest's head is position {} but the log ends at {last_position}: truncated since the digest",
                digest.position
            ),
        ));
    }
    if digest.position == 0 {
        return Ok(None);
    }
    let event = segments::stored_event_at(storage, digest.position)?;
    match event {
        Some(e) if hex::encode(e.chain_hash) == digest.chain_hash.to_ascii_lowercase() => Ok(None),
        _ => Ok(problem(
            digest.position,
            VerifyProblemKind::DigestMismatch,
            format!(
                "the chain hash at position {} differs from the digest's: the log was rewritten since the digest",
                digest.position
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    //! The index check beside the walk against the check it replaced (kept here verbatim as the
    //! reference): the same verdict, position, kind and detail on randomly damaged index chunks,
    //! with and without commits past the walked head.

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::codec::{SegmentV1, StoreHeaderV1, StoredEventV1, StoredHeadV1, StoredTime};
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
    fn reference_check_indexes_of(
        storage: &dyn Storage,
        last_position: u64,
    ) -> Option<VerifyProblem> {
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
}
