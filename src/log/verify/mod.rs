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

mod index_walk;
mod report;
#[cfg(test)]
mod tests;

use super::storage::{RawSegment, Storage, StorageError};
use super::types::LogError;
use super::{hash, segments};
use crate::codec::StoredEventRefV1;
use index_walk::IndexWalk;
use report::problem;
pub use report::{Digest, VerifyProblem, VerifyProblemKind, VerifyReport};

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

/// The digest of a head (position, chain hash).
pub(super) fn digest(position: u64, chain: &[u8; 32]) -> Digest {
    Digest {
        position,
        chain_hash: hex::encode(chain),
        algorithm: hash::ALGORITHM.to_string(),
    }
}

/// Verifies the log in `storage` up to `limit` (the durable head when the run starts: a
/// verify may run while appends go on, and commits after it are not a problem); see
/// [`crate::log::Log::verify`].
pub(super) fn verify(
    storage: &dyn Storage,
    limit: u64,
    check_indexes: bool,
    against: Option<&Digest>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, LogError> {
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

/// The reading thread hands segments over this many at a time (a hand-over costs two thread
/// wake-ups), and is at most a few such batches ahead of the checks.
const SEGMENTS_PER_HANDOVER: usize = 16;
const HANDOVERS_AHEAD: usize = 4;

/// A segment as the reading thread hands it over: its raw bytes, and the leaf hash computed
/// from each of its events' bytes (None when it does not decode: the checks report that).
type ReadSegment = (
    Result<RawSegment, StorageError>,
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
