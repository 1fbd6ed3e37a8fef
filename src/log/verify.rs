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

use super::storage::Storage;
use super::{Log, LogError, hash, keys, read};
use crate::codec::StoredEventV1;

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

/// Bounds the stream-version map of one verify run (streams seen); beyond it versions of
/// further streams are checked through the stream index instead.
const VERIFY_STREAM_MAP_MAX: usize = 4_000_000;

struct Walk {
    expected_position: u64,
    chain: [u8; 32],
    stream_versions: HashMap<String, u64>,
    checked: u64,
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
        let mut walk = Walk {
            expected_position: 1,
            chain: hash::GENESIS_CHAIN,
            stream_versions: HashMap::new(),
            checked: 0,
        };
        let mut problem = walk_segments(storage, &mut walk, progress);
        let last_position = walk.expected_position - 1;

        if problem.is_none() {
            problem = check_head(storage, last_position, &walk.chain);
        }
        if problem.is_none() && check_indexes {
            problem = check_indexes_of(storage, last_position);
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

fn walk_segments(
    storage: &dyn Storage,
    walk: &mut Walk,
    progress: &mut dyn FnMut(u64),
) -> Option<VerifyProblem> {
    for raw in storage.segments_from(1) {
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
        let events = match read::decode_segment(&raw) {
            Ok(events) => events,
            Err(e) => {
                return problem(
                    first_in_key,
                    VerifyProblemKind::Modified,
                    format!("the segment starting at position {first_in_key} does not decode: {e}"),
                );
            }
        };
        if events.is_empty() {
            return problem(
                first_in_key,
                VerifyProblemKind::Modified,
                "an empty segment",
            );
        }
        for e in &events {
            if let Some(p) = check_event(walk, e) {
                return Some(p);
            }
            if walk.checked.is_multiple_of(100_000) {
                progress(walk.checked);
            }
        }
    }
    None
}

fn check_event(walk: &mut Walk, e: &StoredEventV1) -> Option<VerifyProblem> {
    let expected = walk.expected_position;
    if e.position > expected {
        return problem(
            expected,
            VerifyProblemKind::Missing,
            format!("position {expected} is missing (found {} next)", e.position),
        );
    }
    if e.position < expected {
        return problem(
            e.position,
            VerifyProblemKind::OutOfOrder,
            format!(
                "position {} found where {expected} was expected",
                e.position
            ),
        );
    }
    let canonical = match e.canonical_bytes() {
        Ok(c) => c,
        Err(err) => return problem(expected, VerifyProblemKind::Modified, err.to_string()),
    };
    let leaf = hash::leaf(&canonical);
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
    let previous_version = walk.stream_versions.get(&e.stream).copied().unwrap_or(0);
    if e.stream_version != previous_version + 1 {
        return problem(
            expected,
            VerifyProblemKind::OutOfOrder,
            format!(
                "stream {:?} version {} follows version {previous_version}",
                e.stream, e.stream_version
            ),
        );
    }
    if walk.stream_versions.len() < VERIFY_STREAM_MAP_MAX
        || walk.stream_versions.contains_key(&e.stream)
    {
        walk.stream_versions
            .insert(e.stream.clone(), e.stream_version);
    }
    walk.chain = chain;
    walk.expected_position += 1;
    walk.checked += 1;
    None
}

fn check_head(
    storage: &dyn Storage,
    last_position: u64,
    chain: &[u8; 32],
) -> Option<VerifyProblem> {
    match storage.head() {
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

/// Every id index entry names an event at its position with that id, and every stream index
/// entry names an event of that stream and version; and there are as many of each as events.
fn check_indexes_of(storage: &dyn Storage, last_position: u64) -> Option<VerifyProblem> {
    let mut ids = 0u64;
    let mut cursor = SegmentCursor::default();
    for entry in storage.index_entries(keys::ID_PREFIX) {
        let Ok((k, v)) = entry else {
            return problem(
                0,
                VerifyProblemKind::Modified,
                "the id index cannot be read",
            );
        };
        ids += 1;
        let position = keys::position_of_value(&v).unwrap_or(0);
        let id_bytes: Option<[u8; 16]> = k.get(1..).and_then(|b| b.try_into().ok());
        let event = cursor.event_at(storage, position);
        let matches = matches!((id_bytes, &event), (Some(id), Some(e)) if e.event_id == id);
        if !matches {
            return problem(
                position.min(last_position.max(1)),
                VerifyProblemKind::Modified,
                format!(
                    "id index entry {} points at position {position}, which does not hold that event",
                    hex::encode(k.get(1..).unwrap_or_default())
                ),
            );
        }
    }
    if ids != last_position {
        return problem(
            last_position,
            VerifyProblemKind::Modified,
            format!("the id index holds {ids} entries for {last_position} events"),
        );
    }
    let mut entries = 0u64;
    for entry in storage.index_entries(keys::STREAM_PREFIX) {
        let Ok((k, v)) = entry else {
            return problem(
                0,
                VerifyProblemKind::Modified,
                "the stream index cannot be read",
            );
        };
        entries += 1;
        let position = keys::position_of_value(&v).unwrap_or(0);
        let version = keys::stream_version_of(&k).unwrap_or(0);
        let stream = k
            .get(1..k.len().saturating_sub(9))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let event = cursor.event_at(storage, position);
        let matches =
            matches!(&event, Some(e) if e.stream == stream && e.stream_version == version);
        if !matches {
            return problem(
                position.min(last_position.max(1)),
                VerifyProblemKind::Modified,
                format!(
                    "stream index entry {stream:?} version {version} points at position {position}, which does not hold it"
                ),
            );
        }
    }
    if entries != last_position {
        return problem(
            last_position,
            VerifyProblemKind::Modified,
            format!("the stream index holds {entries} entries for {last_position} events"),
        );
    }
    None
}

/// Keeps the last decoded segment, since index entries come in roughly position order.
#[derive(Default)]
struct SegmentCursor {
    events: Vec<StoredEventV1>,
}

impl SegmentCursor {
    fn event_at(&mut self, storage: &dyn Storage, position: u64) -> Option<StoredEventV1> {
        let first = self.events.first().map(|e| e.position).unwrap_or(u64::MAX);
        let last = self.events.last().map(|e| e.position).unwrap_or(0);
        if position < first || position > last {
            let raw = storage.segments_from(position).next()?.ok()?;
            self.events = read::decode_segment(&raw).ok()?;
        }
        let first = self.events.first()?.position;
        let index = usize::try_from(position.checked_sub(first)?).ok()?;
        self.events
            .get(index)
            .filter(|e| e.position == position)
            .cloned()
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
    let event = read::stored_event_at(storage, digest.position)?;
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
