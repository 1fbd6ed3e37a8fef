//! The index check of verify, walked beside the segment walk (see [`IndexWalk`]).

use super::report::{VerifyProblem, VerifyProblemKind, problem};
use crate::codec::{self, IndexChunkV1, StoredEventRefV1};
use crate::log::segments;
use crate::log::storage::{RawSegment, Storage, StorageError};

/// The index check: the index chunks cover every position once, in order, and each entry names
/// the event at its position (id, stream, version).
///
/// The chunks are walked beside the segment walk, each entry compared with the event the walk
/// has just checked, so the segments are read and decoded once for both checks. What it finds
/// is reported only after the walk and the head check, as when it ran after them: the first
/// problem of the chunks, against the events up to the walked head. Whether a misplaced chunk
/// lies past the walked head (a commit made while verifying) is only known at the end, so
/// that chunk waits for [`IndexWalk::finish`].
pub(super) struct IndexWalk<'s> {
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
    pub(super) fn new(storage: &'s dyn Storage) -> Self {
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
    pub(super) fn feed(&mut self, e: &StoredEventRefV1<'_>) {
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
    pub(super) fn finish(
        mut self,
        storage: &dyn Storage,
        last_position: u64,
    ) -> Option<VerifyProblem> {
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
