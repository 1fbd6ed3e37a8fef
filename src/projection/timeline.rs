//! [`Timeline`]: every projection's state held in memory as of many positions at once, so
//! that "as of" any position is a clone and a short replay, not a load of whole states.
//!
//! A replay from checkpoints must decode whole states (hundreds of MiB on a long log) before
//! it can replay the tail, so a one-off "as of" costs about a second per GiB of state. A
//! process that answers many (`carelog serve`, the claims check) keeps a timeline instead: one
//! pass over the log that takes a snapshot of the book and every state each
//! [`SNAPSHOT_EVERY_EVENTS`] events. A snapshot is a clone, and clones share
//! ([`super::append_map`]: the maps and lists that states are made of copy only what is
//! written after the clone), so each snapshot holds little beyond what changed since the last.
//! "As of p" then clones the last snapshot at or before p and replays at most
//! `SNAPSHOT_EVERY_EVENTS` events onto it.
//!
//! What the snapshots hold apart from the head is estimated as they are taken: the bytes the
//! fold copied out of parts it shared with them ([`super::append_map::copied_bytes`]). Past
//! [`SNAPSHOTS_MAX`] snapshots, or past [`SNAPSHOT_BYTES_MAX`] of that estimate, every other
//! snapshot is dropped and the spacing doubles, so what the timeline holds stays bounded as the
//! log grows (the tail of a query grows instead). With carelog's own ids a snapshot holds a few
//! MiB (on the bench's 10 M-event log: 611 snapshots, ~2.5 GiB in all, the estimate ~1.8); keys
//! that do not ascend at all (a client's random ids) make nearly every write copy a shard of a
//! map's others, and that is what the byte bound is for.

use std::any::Any;

use super::AnyProjection;
use super::append_map::copied_bytes;
use super::book::PairingBook;
use super::engine::{self, AsOf, EngineError, Folding, Progress, Rebuilt};
use crate::domain::Date;
use crate::log::Log;

/// A snapshot every this many events: an "as of" replays at most this many (~25 ms here). On
/// the bench's 10 M-event log, 16,384 rather than 32,768 took the p99 from 44–66 to 22–24 ms
/// for 0.5 GiB more held (4.1 GiB in all, 1.6 of it the states).
pub const SNAPSHOT_EVERY_EVENTS: u64 = 16_384;

/// At most this many snapshots are held; past it, the spacing doubles.
pub const SNAPSHOTS_MAX: usize = 1_024;

/// At most this many bytes (estimated) held by the snapshots apart from the head; past it, the
/// spacing doubles.
pub const SNAPSHOT_BYTES_MAX: u64 = 4 << 30;

/// The book and every state as of one position.
struct Snapshot {
    position: u64,
    states: Vec<Box<dyn Any + Send>>,
    book: PairingBook,
    last_day: Option<Date>,
}

/// A projection state and the book as of one position, cloned from the timeline: the start of
/// an "as of" (see [`Timeline::start_at`], then [`Start::replay_to`]).
pub struct Start {
    snapshot: Snapshot,
    /// The projections' names, in the order of the states.
    names: Vec<&'static str>,
}

/// The projections' states as of many positions; see the module documentation.
pub struct Timeline {
    projections: Vec<Box<dyn AnyProjection>>,
    every_events: u64,
    /// Ascending positions; the first at 0 (the empty states).
    snapshots: Vec<Snapshot>,
    /// The states as of the last position folded (written in place; cloned into snapshots).
    head: Snapshot,
    /// The estimate of what the snapshots hold apart from the head (see the module doc).
    snapshot_bytes: u64,
    /// Bytes copied by folds since the last snapshot: added to `snapshot_bytes` when the next
    /// one is taken (a catch-up may stop short of it).
    copied_since_snapshot: u64,
    snapshot_bytes_max: u64,
}

impl Timeline {
    /// An empty timeline (position 0) for these projections; [`Timeline::catch_up`] folds the
    /// log in.
    pub fn new(projections: Vec<Box<dyn AnyProjection>>) -> Self {
        Self::with_spacing(projections, SNAPSHOT_EVERY_EVENTS)
    }

    /// As [`Timeline::new`], with a snapshot every `every_events` events (at least 1).
    pub fn with_spacing(projections: Vec<Box<dyn AnyProjection>>, every_events: u64) -> Self {
        let head = empty_snapshot(&projections);
        let mut timeline = Self {
            projections,
            every_events: every_events.max(1),
            snapshots: Vec::new(),
            head,
            snapshot_bytes: 0,
            copied_since_snapshot: 0,
            snapshot_bytes_max: SNAPSHOT_BYTES_MAX,
        };
        let first = timeline.clone_head();
        timeline.snapshots.push(first);
        timeline
    }

    /// With at most `bytes` (estimated) held by the snapshots apart from the head.
    pub fn with_snapshot_bytes_max(mut self, bytes: u64) -> Self {
        self.snapshot_bytes_max = bytes;
        self
    }

    /// The estimate of the bytes the snapshots hold apart from the head.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes
    }

    /// The most that estimate may reach before the snapshots thin out.
    pub fn snapshot_bytes_max(&self) -> u64 {
        self.snapshot_bytes_max
    }

    /// The projections, in the order of the states.
    pub fn projections(&self) -> &[Box<dyn AnyProjection>] {
        &self.projections
    }

    /// The last position folded in.
    pub fn position(&self) -> u64 {
        self.head.position
    }

    /// Snapshots held, and the events between them.
    pub fn snapshots(&self) -> (usize, u64) {
        (self.snapshots.len(), self.every_events)
    }

    fn clone_head(&self) -> Snapshot {
        clone_snapshot(&self.projections, &self.head)
    }

    /// Folds in the log's events after the last one folded, up to its durable head, taking a
    /// snapshot at each multiple of the spacing. Returns the events folded.
    pub fn catch_up(&mut self, log: &Log, progress: Progress<'_>) -> Result<u64, EngineError> {
        self.catch_up_to(log, log.head_position(), progress)
    }

    /// [`Timeline::catch_up`], up to `target` at most (an event this build cannot read then
    /// stops only the questions past it). On an error the head goes back to the last snapshot.
    pub fn catch_up_to(
        &mut self,
        log: &Log,
        target: u64,
        progress: Progress<'_>,
    ) -> Result<u64, EngineError> {
        let target = target.min(log.head_position());
        if target <= self.head.position {
            return Ok(0);
        }
        let projections: Vec<&dyn AnyProjection> =
            self.projections.iter().map(|p| p.as_ref()).collect();
        let starts = vec![self.head.position; projections.len()];
        // The fold stops at each position a snapshot is due at, and the snapshot is taken
        // there (the fold holds the states while it runs).
        let mut folded = 0u64;
        // The count is this thread's: only the folds' copies fall between two readings.
        let mut copied_before = copied_bytes();
        while self.head.position < target {
            let next_snapshot = (self.head.position / self.every_events + 1) * self.every_events;
            let until = next_snapshot.min(target);
            let from = self.head.position;
            let folded_segment = engine::fold(
                log,
                Folding {
                    projections: &projections,
                    states: &mut self.head.states,
                    starts: &starts,
                    book: &mut self.head.book,
                },
                from,
                until,
                progress,
                &mut |_, _, _| {},
            );
            let (read, last_day) = match folded_segment {
                Ok(done) => done,
                Err(e) => {
                    // Part of the segment may have been folded in: the head goes back to the
                    // last snapshot (at or before `from`), so no event is ever folded twice.
                    if let Some(last) = self.snapshots.last() {
                        self.head = clone_snapshot(&self.projections, last);
                    }
                    self.copied_since_snapshot = 0;
                    return Err(e);
                }
            };
            let copied = copied_bytes();
            self.copied_since_snapshot = self
                .copied_since_snapshot
                .saturating_add(copied.saturating_sub(copied_before));
            copied_before = copied;
            if read != until - from {
                // The log ended before its head said it would: stop where it did.
                self.head.position = from + read;
                self.head.last_day = last_day.or(self.head.last_day);
                return Err(EngineError::Log(crate::log::LogError::Storage(
                    crate::log::StorageError::Corrupt {
                        path: log.path().to_path_buf(),
                        detail: format!(
                            "positions {}..={until} could not be read: run `carelog verify`",
                            from + read + 1
                        ),
                    },
                )));
            }
            folded += read;
            self.head.position = until;
            self.head.last_day = last_day.or(self.head.last_day);
            if until == next_snapshot {
                let snapshot = clone_snapshot(&self.projections, &self.head);
                self.snapshots.push(snapshot);
                // What this interval's writes copied out of the snapshots' parts, and the clone.
                let copied = copied_bytes();
                self.snapshot_bytes = self
                    .snapshot_bytes
                    .saturating_add(self.copied_since_snapshot)
                    .saturating_add(copied.saturating_sub(copied_before));
                self.copied_since_snapshot = 0;
                copied_before = copied;
                while (self.snapshots.len() > SNAPSHOTS_MAX
                    || self.snapshot_bytes > self.snapshot_bytes_max)
                    && self.snapshots.len() > 2
                {
                    thin(&mut self.snapshots, &mut self.every_events);
                    // Each snapshot dropped frees what only it held: about half, taken as half.
                    self.snapshot_bytes /= 2;
                }
            }
        }
        Ok(folded)
    }

    /// A clone of the last snapshot at or before `position` (the head itself when `position`
    /// is at or past it): cheap, as clones share. The caller replays the rest (outside any
    /// lock the timeline is behind).
    pub fn start_at(&self, position: u64) -> Start {
        let snapshot = if position >= self.head.position {
            self.clone_head()
        } else {
            let after = self.snapshots.partition_point(|s| s.position <= position);
            match after.checked_sub(1).and_then(|i| self.snapshots.get(i)) {
                Some(s) => clone_snapshot(&self.projections, s),
                // Unreachable: the first snapshot is at 0.
                None => empty_snapshot(&self.projections),
            }
        };
        Start {
            snapshot,
            names: self.projections.iter().map(|p| p.name()).collect(),
        }
    }

    /// [`Timeline::start_at`] `target`, after catching up with the log when it asks for more
    /// than is folded.
    pub fn start_for(
        &mut self,
        log: &Log,
        target: u64,
        progress: Progress<'_>,
    ) -> Result<Start, EngineError> {
        if target > self.head.position {
            self.catch_up_to(log, target, progress)?;
        }
        Ok(self.start_at(target))
    }

    /// The states as of `as_of`: [`Timeline::start_for`], then the rest replayed. For a
    /// timeline shared between threads, call `start_for` under the lock and
    /// [`Start::replay_to`] outside it.
    pub fn as_of(
        &mut self,
        log: &Log,
        as_of: AsOf,
        progress: Progress<'_>,
    ) -> Result<Rebuilt, EngineError> {
        let target = engine::resolve(log, as_of)?;
        let start = self.start_for(log, target, progress)?;
        let projections: Vec<&dyn AnyProjection> =
            self.projections.iter().map(|p| p.as_ref()).collect();
        start.replay_to(log, &projections, target, progress)
    }
}

impl Start {
    /// Its position.
    pub fn position(&self) -> u64 {
        self.snapshot.position
    }

    /// Replays the log from here up to `target` (the timeline's projections, in its order)
    /// and returns the states there. A target before the start is an error of the caller's:
    /// the start is returned as it is.
    pub fn replay_to(
        self,
        log: &Log,
        projections: &[&dyn AnyProjection],
        target: u64,
        progress: Progress<'_>,
    ) -> Result<Rebuilt, EngineError> {
        assert!(
            projections.len() == self.names.len()
                && projections
                    .iter()
                    .zip(&self.names)
                    .all(|(p, n)| p.name() == *n),
            "Start::replay_to: the timeline's projections, in its order"
        );
        let Snapshot {
            position,
            mut states,
            mut book,
            last_day,
        } = self.snapshot;
        let starts = vec![position; projections.len()];
        let (events_read, tail_day) = if target > position {
            engine::fold(
                log,
                Folding {
                    projections,
                    states: &mut states,
                    starts: &starts,
                    book: &mut book,
                },
                position,
                target,
                progress,
                &mut |_, _, _| {},
            )?
        } else {
            (0, None)
        };
        Ok(Rebuilt {
            states,
            book,
            position: position.max(target),
            last_day: tail_day.or(last_day),
            events_read,
        })
    }
}

/// Drops every other snapshot (the first, at 0, stays) and doubles the spacing.
fn thin(snapshots: &mut Vec<Snapshot>, every_events: &mut u64) {
    *every_events = every_events.saturating_mul(2);
    let every = *every_events;
    snapshots.retain(|s| s.position.is_multiple_of(every));
}

/// Every state new, the book empty: position 0.
fn empty_snapshot(projections: &[Box<dyn AnyProjection>]) -> Snapshot {
    Snapshot {
        position: 0,
        states: projections.iter().map(|p| p.new_state()).collect(),
        book: PairingBook::default(),
        last_day: None,
    }
}

fn clone_snapshot(projections: &[Box<dyn AnyProjection>], s: &Snapshot) -> Snapshot {
    Snapshot {
        position: s.position,
        states: projections
            .iter()
            .zip(&s.states)
            .map(|(p, state)| p.clone_state(state.as_ref()))
            .collect(),
        book: s.book.clone(),
        last_day: s.last_day,
    }
}
