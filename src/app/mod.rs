//! The application layer: the commands and queries that the CLI and the HTTP service both call.
//! No business rule lives in either shell; they parse, call this, and format.
//!
//! [`App`] owns the [`Log`] and the current [`Records`] (folded from the log on first use). An
//! append checks each event against the records, folds it in, and hands the batch to the log's
//! writer, all under one lock, then waits for durability outside the lock, so concurrent callers
//! still share the writer's group commit. A batch refused half way is rolled back out of the
//! records, and so is a batch the log refuses after it was folded (a failed store refuses it and
//! every batch queued behind it, which are rolled back with it): each batch is folded under its
//! own epoch of an undo journal ([`crate::domain::undo`]) that is forgotten once it is durable.
//! Only a batch too large to journal (an import), a refusal the journal cannot account for, or a
//! panic mark the records stale: the next call rebuilds them from the log, which is the truth,
//! plus the batches still in flight. An in-flight copy the log refuses changes nothing: it was
//! never folded.

pub mod access;
pub mod checkpoint;
pub mod claims;
pub mod demo;
pub mod export;
pub mod figure_text;
pub mod late_entries;
pub mod reconcile;
pub mod report;
pub mod scenario;
pub mod verify;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use crate::domain::cloudevent::{FormatError, IncomingEvent};
use crate::domain::events::EventDecodeError;
use crate::domain::records::late_entry;
pub use crate::domain::records::late_entry::LATE_ENTRY_WINDOW_DAYS_DEFAULT;
use crate::domain::{DomainError, DomainEvent, Records, stream_of};
use crate::log::{
    Ack, AppendBatch, ExpectedVersion, Log, LogError, NewEvent, OpenOptions, RecordedEvent,
};
use crate::projection::Timeline;
use crate::time::{self, Clock, SystemClock};

/// Batches up to this many events are folded in with an undo journal, so a refusal half way is
/// rolled back in place; a larger one (an import) that is refused makes the records rebuild from
/// the log instead. Bounds the journal's memory.
pub const UNDO_BATCH_EVENTS_MAX: usize = 10_000;

/// Errors of the application layer: every one names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("event {index}: {error}")]
    Format { index: usize, error: FormatError },
    #[error("event {index} ({event_type}): {error}; nothing of it was written")]
    Rejected {
        index: usize,
        event_type: &'static str,
        error: DomainError,
    },
    #[error(
        "event {index}: id {event_id} is already in the log at position {position} with different content; nothing was written. Use a new id for a new event"
    )]
    IdConflict {
        index: usize,
        event_id: Uuid,
        position: u64,
    },
    #[error("event {index}: id {event_id} is being written by another request right now: retry")]
    InFlight { index: usize, event_id: Uuid },
    #[error(
        "event {index}: stream {stream:?} is at version {actual}, but the event expects {expected}; nothing was written. Read the stream again and retry"
    )]
    VersionConflict {
        index: usize,
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error(
        "{already} of the batch's {total} events are already in the log; nothing was written. Resend the batch whole, or only its new events"
    )]
    PartialDuplicate { already: usize, total: usize },
    #[error(
        "the event at position {position} cannot be read by this build ({source}): upgrade carelog"
    )]
    Undecodable {
        position: u64,
        source: EventDecodeError,
    },
    #[error("unknown metric {metric:?}: `carelog report --json` (or GET /v1/report) lists them")]
    UnknownMetric { metric: String },
    #[error("unknown projection {name:?}: one of {}", known.join(", "))]
    UnknownProjection {
        name: String,
        known: Vec<&'static str>,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{}{}", index.map_or(String::new(), |i| format!("event {i}: ")), refusal.reason)]
    Forbidden {
        index: Option<usize>,
        refusal: access::Refusal,
    },
    #[error(
        "the figure {figure} does not fit an i64 (its sum overflowed), so it has no value: `carelog explain` or the events behind it show which amounts are wrong; void or correct them"
    )]
    SumOverflow { figure: String },
}

impl AppError {
    /// The index in its batch of the event an error is about, if it is about one.
    pub fn event_index(&self) -> Option<usize> {
        match self {
            AppError::Format { index, .. }
            | AppError::Rejected { index, .. }
            | AppError::IdConflict { index, .. }
            | AppError::InFlight { index, .. }
            | AppError::VersionConflict { index, .. } => Some(*index),
            AppError::Forbidden { index, .. } => *index,
            AppError::Log(LogError::InvalidEvent { index, .. }) => Some(*index),
            _ => None,
        }
    }
}

/// What the caller lets the log keep from the incoming events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// Keep an incoming `recordedby` (a local operator restoring an export). Never over HTTP.
    pub recorded_by: bool,
    /// Keep an incoming `recordedat` (restoring an export, replaying a known history).
    pub recorded_at: bool,
}

struct RecordsState {
    /// Every durable event folded in, and every event of the batches in flight.
    records: Records,
    /// Not built yet, or holding events the log refused: rebuilt before the next use.
    stale: bool,
    /// The batches checked and queued but not yet settled, by submission number (the epoch of
    /// the records' undo journal they were folded under): a rebuild folds the log, then these
    /// (the ones not yet durable) again.
    in_flight: BTreeMap<u64, InFlight>,
    in_flight_ids: HashSet<Uuid>,
    next_submission: u64,
    /// The newest submission the log wrote and that has settled.
    newest_written: Option<u64>,
    stats: RecordsStats,
}

/// How the records were kept up since the app opened (the service's metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordsStats {
    /// Times the records were folded from the whole log (the first use, then only after a
    /// refusal the undo journal could not account for, or a panic).
    pub rebuilds: u64,
    /// Batches the log refused after they were folded, taken back out in place.
    pub batches_rolled_back: u64,
}

/// A batch folded into the records and queued, not yet settled.
struct InFlight {
    events: Vec<(Uuid, DomainEvent, crate::time::Instant)>,
    /// Whether the records' undo journal holds its changes (false: too large to journal, or
    /// folded by a rebuild), so a refusal by the log can be rolled back in place.
    journaled: bool,
}

/// The application: a log and its current records.
pub struct App {
    log: Log,
    state: Mutex<RecordsState>,
    clock: Arc<dyn Clock>,
    /// Whether replays may start from checkpoints (off: every figure from the events alone,
    /// what an auditor who trusts only the hash-chained log asks for).
    use_checkpoints: std::sync::atomic::AtomicBool,
    /// Whether figures "as of" any position come from a [`Timeline`] held by this process
    /// (`serve`, the claims check) rather than from checkpoints and a replay each time.
    hold_timeline: std::sync::atomic::AtomicBool,
    /// Built on first use when held (one pass over the log), then kept up with the log.
    timeline: Mutex<Option<Timeline>>,
    /// The most its snapshots may hold apart from the head (estimated), for a timeline made.
    timeline_snapshot_bytes_max: std::sync::atomic::AtomicU64,
    /// Days after its day an event may be recorded without a late-entry reason; 0: no window.
    late_entry_window_days: std::sync::atomic::AtomicU32,
}

/// An event read back: the envelope and the decoded domain event.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub recorded: RecordedEvent,
    pub event: DomainEvent,
}

impl App {
    /// Opens the store at `dir` (creating it when `create`) and folds the records.
    pub fn open(dir: &Path, create: bool) -> Result<Self, AppError> {
        let options = if create {
            OpenOptions::default()
        } else {
            OpenOptions::existing()
        };
        let log = Log::open(dir, options)?;
        Self::with_log(log, Arc::new(SystemClock))
    }

    /// An application over an open log, with a clock for validation's "now".
    pub fn with_log(log: Log, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        let app = Self {
            log,
            state: Mutex::new(RecordsState {
                records: Records::new(),
                stale: true,
                in_flight: BTreeMap::new(),
                in_flight_ids: HashSet::new(),
                next_submission: 0,
                newest_written: None,
                stats: RecordsStats::default(),
            }),
            clock,
            use_checkpoints: std::sync::atomic::AtomicBool::new(true),
            hold_timeline: std::sync::atomic::AtomicBool::new(false),
            timeline: Mutex::new(None),
            timeline_snapshot_bytes_max: std::sync::atomic::AtomicU64::new(
                crate::projection::timeline::SNAPSHOT_BYTES_MAX,
            ),
            late_entry_window_days: std::sync::atomic::AtomicU32::new(0),
        };
        // The records are folded on first use (an append), not here: reading commands
        // (report, verify, export) never need them.
        Ok(app)
    }

    /// Events recorded more than `days` after their day need a late-entry reason (0: any
    /// delay is taken without one). See `domain::records::late_entry`.
    pub fn set_late_entry_window_days(&self, days: u32) {
        self.late_entry_window_days
            .store(days, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn late_entry_window_days(&self) -> u32 {
        self.late_entry_window_days
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replays from the events alone (no checkpoints) when `false`.
    pub fn set_use_checkpoints(&self, on: bool) {
        self.use_checkpoints
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Holds a timeline of the projections' states for the figures "as of" a point: one pass
    /// over the log when first needed, then each question is a clone and a replay of at most
    /// `SNAPSHOT_EVERY_EVENTS` events (see `projection::timeline`; it costs memory: the states
    /// and what changed between snapshots). Off: each question loads checkpoints and replays.
    pub fn set_hold_timeline(&self, on: bool) {
        self.hold_timeline
            .store(on, std::sync::atomic::Ordering::Relaxed);
        if !on {
            *self.lock_timeline() = None;
        }
    }

    /// The most (estimated) the timeline's snapshots may hold apart from the states as of the
    /// head; past it they thin out and "as of" replays more. For a timeline made after this.
    pub fn set_timeline_snapshot_bytes_max(&self, bytes: u64) {
        self.timeline_snapshot_bytes_max
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// A new, empty timeline of every registered projection.
    pub(crate) fn new_timeline(&self) -> Timeline {
        Timeline::new(crate::projections::registry()).with_snapshot_bytes_max(
            self.timeline_snapshot_bytes_max
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The held timeline's snapshots, their spacing, its estimate of the bytes they hold apart
    /// from the head, and the most it may reach (None: no timeline built).
    pub fn timeline_snapshots(&self) -> Option<(usize, u64, u64, u64)> {
        let guard = self.lock_timeline();
        let timeline = guard.as_ref()?;
        let (count, every_events) = timeline.snapshots();
        Some((
            count,
            every_events,
            timeline.snapshot_bytes(),
            timeline.snapshot_bytes_max(),
        ))
    }

    /// Builds the timeline (or catches it up with the log) now; returns the events folded.
    pub fn warm_timeline(&self) -> Result<u64, AppError> {
        if !self.holds_timeline() {
            return Ok(0);
        }
        let mut guard = self.lock_timeline();
        let timeline = guard.get_or_insert_with(|| self.new_timeline());
        Ok(timeline.catch_up(self.log(), &mut |_, _| {})?)
    }

    pub(crate) fn holds_timeline(&self) -> bool {
        self.hold_timeline
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The timeline, whatever a panic elsewhere left in its lock: a catch-up that panicked
    /// may have folded part of an event in, so the timeline is dropped and built again.
    pub(crate) fn lock_timeline(&self) -> MutexGuard<'_, Option<Timeline>> {
        self.timeline.lock().unwrap_or_else(|poisoned| {
            self.timeline.clear_poison();
            let mut timeline = poisoned.into_inner();
            *timeline = None;
            timeline
        })
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    fn lock(&self) -> MutexGuard<'_, RecordsState> {
        self.state.lock().unwrap_or_else(|poisoned| {
            // A panic while folding a batch in may have left half of it (and an open undo
            // journal) in the records: rebuild them from the log. Once (the lock is then
            // healthy again), not at every later lock.
            self.state.clear_poison();
            let mut state = poisoned.into_inner();
            state.stale = true;
            state
        })
    }

    /// The records, rebuilt when stale: every durable event folded in, then the events of the
    /// batches still in flight that are not durable yet. This process is the store's only writer
    /// (sled locks the store), so nothing else changes the log between appends.
    fn fresh_state(&self) -> Result<MutexGuard<'_, RecordsState>, AppError> {
        let mut state = self.lock();
        if !state.stale {
            return Ok(state);
        }
        let mut records = Records::new();
        let head = self.log.head_position();
        for stored in self.log.stored_events(1, head) {
            let stored = stored?;
            let event =
                DomainEvent::decode(&stored.event_type, stored.schema_version, &stored.payload)
                    .map_err(|source| AppError::Undecodable {
                        position: stored.position,
                        source,
                    })?;
            let occurred = time::from_stored(&stored.occurred_at).map_err(LogError::from)?;
            records.apply(Uuid::from_bytes(stored.event_id), &event, &occurred);
        }
        for batch in state.in_flight.values_mut() {
            // Folded now without a journal: a refusal of it rebuilds again.
            batch.journaled = false;
            for (id, event, occurred) in &batch.events {
                let folded = self.log.position_of(*id)?.is_some_and(|p| p <= head);
                if !folded {
                    records.apply(*id, event, occurred);
                }
            }
        }
        state.records = records;
        state.stale = false;
        state.stats.rebuilds += 1;
        Ok(state)
    }

    /// How the records were kept up since the app opened.
    pub fn records_stats(&self) -> RecordsStats {
        self.lock().stats
    }

    /// A copy-free look at the current records.
    pub fn with_records<T>(&self, f: impl FnOnce(&Records) -> T) -> Result<T, AppError> {
        let state = self.fresh_state()?;
        Ok(f(&state.records))
    }

    /// Appends a batch of incoming events, all or none: checks each against the records (and the
    /// events before it in the batch), then writes them; returns once they are durable.
    /// `authorize` is called for each event with the records before it is accepted (the HTTP
    /// service checks roles there); `actor` is who records.
    pub fn append(
        &self,
        incoming: Vec<IncomingEvent>,
        actor: &str,
        keep: Keep,
        authorize: &dyn Fn(&Records, &IncomingEvent) -> Result<(), access::Refusal>,
    ) -> Result<Vec<Ack>, AppError> {
        self.submit(incoming, actor, keep, authorize)?.wait()
    }

    /// [`App::append`] without waiting for durability: the batch is checked, folded into the
    /// records and queued; [`PendingAppend::wait`] returns its acks once durable. Batches are
    /// written in the order they were submitted, so a caller may keep several in flight.
    ///
    /// Resends are answered here first, and only sorted out here: an event whose id is durable
    /// is answered with its position, one whose id is still in flight is handed to the log as a
    /// copy. This job is the app's because the records already hold the original: checked
    /// again, a resend would be refused by the domain or folded twice, and only the app knows
    /// which ids it folded that are not durable yet. The log's writer (`Writer::lay_out`) keeps
    /// its own check for the other job: the last word at commit time, in commit order, which
    /// answers the in-flight copies sent from here once their originals are written.
    pub fn submit(
        &self,
        incoming: Vec<IncomingEvent>,
        actor: &str,
        keep: Keep,
        authorize: &dyn Fn(&Records, &IncomingEvent) -> Result<(), access::Refusal>,
    ) -> Result<PendingAppend<'_>, AppError> {
        if incoming.is_empty() {
            return Err(AppError::Usage("no events to append".into()));
        }
        let mut state = self.fresh_state()?;
        let now = self.clock.now();

        // Resends: answered with their original positions, nothing checked or written again.
        let mut duplicates = Vec::new();
        let mut resent_in_flight = 0usize;
        for (index, e) in incoming.iter().enumerate() {
            let Some(id) = e.id else { continue };
            if state.in_flight_ids.contains(&id) {
                // A copy must be the same event as the original in flight (so it is never
                // written unchecked in the original's place).
                let same = state.in_flight.values().flat_map(|b| &b.events).any(
                    |(fid, event, occurred)| {
                        *fid == id
                            && *event == e.event
                            && time::to_stored(occurred) == time::to_stored(&e.occurred_at)
                    },
                );
                if !same {
                    return Err(AppError::InFlight {
                        index,
                        event_id: id,
                    });
                }
                resent_in_flight += 1;
                continue;
            }
            if let Some(position) = self.log.position_of(id)? {
                let same = self.is_same_event(position, e, actor, keep)?;
                if !same {
                    return Err(AppError::IdConflict {
                        index,
                        event_id: id,
                        position,
                    });
                }
                let stream_version = self
                    .log
                    .event_at(position)?
                    .map(|r| r.stream_version)
                    .unwrap_or(0);
                duplicates.push(Ack {
                    event_id: id,
                    position,
                    stream_version,
                    duplicate: true,
                });
            }
        }
        if resent_in_flight > 0 {
            if resent_in_flight + duplicates.len() < incoming.len() {
                return Err(AppError::PartialDuplicate {
                    already: resent_in_flight + duplicates.len(),
                    total: incoming.len(),
                });
            }
            // Copies of events still being written: the log answers them once their originals
            // are durable (or refuses a copy whose content differs).
            let events = incoming
                .iter()
                .map(|e| new_event(e, actor, keep))
                .collect::<Result<Vec<_>, _>>()?;
            // Never the batch a failed writer recovers with: its originals may be refused.
            let pending = self
                .log
                .submit(AppendBatch::new(events).without_recovery())?;
            return Ok(PendingAppend {
                app: self,
                submission: None,
                notes_at: Vec::new(),
                inner: Some(Inner::Waiting(pending)),
            });
        }
        if !duplicates.is_empty() {
            if duplicates.len() == incoming.len() {
                return Ok(PendingAppend {
                    app: self,
                    submission: None,
                    notes_at: Vec::new(),
                    inner: Some(Inner::Done(duplicates)),
                });
            }
            return Err(AppError::PartialDuplicate {
                already: duplicates.len(),
                total: incoming.len(),
            });
        }

        // What the log's writer would refuse on shape alone (names, sizes, ids twice in the
        // batch) is refused here, before anything is folded into the records: once queued, a
        // batch is refused by the writer only when the store has failed (and every later batch
        // with it), so no batch is ever checked against events that will not be written.
        let shaped = incoming
            .iter()
            .map(|e| new_event(e, actor, keep))
            .collect::<Result<Vec<_>, _>>()?;
        let shaped = AppendBatch::new(shaped);
        crate::log::writer::check_shape(&shaped)?;

        // Check and fold each event in order (a later event may name what an earlier one
        // created), under this submission's epoch of the undo journal. A refusal after the first
        // takes the events before it back out: rolled back when the batch is small enough to
        // journal, else the records are rebuilt.
        let submission = state.next_submission;
        state.next_submission += 1;
        let journaled = incoming.len() <= UNDO_BATCH_EVENTS_MAX;
        if journaled {
            state.records.begin(submission);
        }
        // `folded_any`: whether events of this batch (or a note) are already in the records.
        let refuse = |state: &mut RecordsState, folded_any: bool, error: AppError| {
            if journaled {
                state.records.roll_back_from(submission);
            } else if folded_any {
                state.stale = true;
            }
            Err(error)
        };
        let mut events = Vec::with_capacity(incoming.len());
        let mut folded: Vec<(Uuid, DomainEvent, crate::time::Instant)> =
            Vec::with_capacity(incoming.len());
        // The places in the batch of the late-entry notes made here (answered to nobody).
        let mut notes_at: Vec<usize> = Vec::new();
        let mut expectations: Vec<(String, ExpectedVersion)> = Vec::new();
        let window_days = self.late_entry_window_days();
        for ((index, e), new) in incoming.iter().enumerate().zip(shaped.events) {
            if let Err(refusal) = authorize(&state.records, e) {
                let error = AppError::Forbidden {
                    index: Some(index),
                    refusal,
                };
                return refuse(&mut state, !folded.is_empty(), error);
            }
            if let Some(expected) = e.expected_version {
                // The records count every event folded in, durable or queued ahead of this one:
                // the version the writer will find when it lays this event out.
                let actual = state.records.stream_version(&new.stream);
                if !expected.holds(actual) {
                    let error = AppError::VersionConflict {
                        index,
                        stream: new.stream.clone(),
                        expected,
                        actual,
                    };
                    return refuse(&mut state, !folded.is_empty(), error);
                }
                // The writer checks it again at commit time (its version before the batch).
                if !events.iter().any(|n: &NewEvent| n.stream == new.stream) {
                    expectations.push((new.stream.clone(), expected));
                }
            }
            if let Err(error) = state.records.check(&e.event, &e.occurred_at, &now) {
                let error = AppError::Rejected {
                    index,
                    event_type: e.event.event_type(),
                    error,
                };
                return refuse(&mut state, !folded.is_empty(), error);
            }
            let recorded_at = match (keep.recorded_at, e.recorded_at) {
                (true, Some(kept)) => kept,
                _ => now,
            };
            if window_days > 0 {
                // A restore carries the note as its own line, after the late event.
                let noted_after = incoming[index + 1..].iter().any(|n| {
                    matches!(&n.event, DomainEvent::LateEntryNoted(note)
                        if note.target_event_id == new.event_id)
                });
                let has_reason = e.late_entry_reason.is_some() || noted_after;
                if let Err(error) = late_entry::check_recorded_in_time(
                    &e.event,
                    &e.occurred_at,
                    &recorded_at,
                    window_days,
                    has_reason,
                ) {
                    let error = AppError::Rejected {
                        index,
                        event_type: e.event.event_type(),
                        error,
                    };
                    return refuse(&mut state, !folded.is_empty(), error);
                }
            }
            state.records.apply(new.event_id, &e.event, &e.occurred_at);
            folded.push((new.event_id, e.event.clone(), e.occurred_at));
            let target = new.event_id;
            events.push(new);
            if let Some(reason) = &e.late_entry_reason {
                let note = late_entry_note(e, target, reason, recorded_at);
                if let Err(mut error) = state.records.check(&note.event, &note.occurred_at, &now) {
                    if error.field == "data.reason" {
                        error.field = late_entry::LATE_ENTRY_REASON_FIELD;
                    }
                    let error = AppError::Rejected {
                        index,
                        event_type: e.event.event_type(),
                        error,
                    };
                    return refuse(&mut state, !folded.is_empty(), error);
                }
                let shaped_note = match new_event(&note, actor, keep) {
                    Ok(n) => n,
                    Err(error) => return refuse(&mut state, true, error),
                };
                state
                    .records
                    .apply(shaped_note.event_id, &note.event, &note.occurred_at);
                folded.push((shaped_note.event_id, note.event, note.occurred_at));
                notes_at.push(events.len());
                events.push(shaped_note);
            }
        }
        if journaled {
            state.records.end();
        }

        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let mut batch = expectations
            .into_iter()
            .fold(AppendBatch::new(events), |batch, (stream, expected)| {
                batch.expecting(stream, expected)
            });
        if !state.in_flight.is_empty() {
            // Checked against batches still unanswered: after a failed commit those may be
            // refused, so this one must not be the one the writer recovers with.
            batch = batch.without_recovery();
        }
        let keeps_time = keep.recorded_at && incoming.iter().any(|e| e.recorded_at.is_some());
        // The notes made here lengthen the batch: its shape is checked again.
        let checked = if notes_at.is_empty() {
            Ok(())
        } else {
            crate::log::writer::check_shape(&batch)
        };
        let pending = match checked.and_then(|()| self.log.submit(batch)) {
            Ok(p) => p,
            Err(e) => {
                if journaled {
                    state.records.roll_back_from(submission);
                } else {
                    state.stale = true;
                }
                return Err(callers_index(e, &notes_at).into());
            }
        };
        state.in_flight_ids.extend(ids.iter().copied());
        state.in_flight.insert(
            submission,
            InFlight {
                events: folded,
                journaled,
            },
        );
        if keeps_time {
            // A kept recording time can still be refused by the writer (earlier than the last);
            // wait under the lock so no other batch is checked against records that may not be.
            let result = pending.wait().map_err(|e| callers_index(e, &notes_at));
            let acks = finish(&mut state, Some(submission), result)?;
            return Ok(PendingAppend {
                app: self,
                submission: None,
                notes_at: Vec::new(),
                inner: Some(Inner::Done(without_notes(acks, &notes_at))),
            });
        }
        Ok(PendingAppend {
            app: self,
            submission: Some(submission),
            notes_at,
            inner: Some(Inner::Waiting(pending)),
        })
    }

    fn is_same_event(
        &self,
        position: u64,
        e: &IncomingEvent,
        actor: &str,
        keep: Keep,
    ) -> Result<bool, AppError> {
        let Some(stored) = self.read_event(position)? else {
            return Ok(false);
        };
        let by = match (&e.recorded_by, keep.recorded_by) {
            (Some(by), true) => by.as_str(),
            _ => actor,
        };
        Ok(stored.event == e.event
            && time::to_stored(&stored.recorded.occurred_at) == time::to_stored(&e.occurred_at)
            && stored.recorded.recorded_by == by
            && stored.recorded.correlation_id == e.correlation_id
            && stored.recorded.causation_id == e.causation_id)
    }

    /// The event at a position, decoded.
    pub fn read_event(&self, position: u64) -> Result<Option<LoggedEvent>, AppError> {
        match self.log.event_at(position)? {
            None => Ok(None),
            Some(recorded) => Ok(Some(decode_recorded(recorded)?)),
        }
    }

    /// Up to `limit` events from a position, decoded.
    pub fn read_from(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, AppError> {
        self.log
            .read_from(from_position, limit)?
            .into_iter()
            .map(decode_recorded)
            .collect()
    }

    /// Up to `limit` events of one stream from a version, decoded.
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, AppError> {
        self.log
            .read_stream(stream, from_version, limit)?
            .into_iter()
            .map(decode_recorded)
            .collect()
    }

    /// Calls `each` with every event from a position, in order, decoded; memory stays flat.
    pub fn for_each_event(
        &self,
        from_position: u64,
        mut each: impl FnMut(LoggedEvent) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        for stored in self.log.stored_events(from_position, u64::MAX) {
            let recorded = RecordedEvent::try_from(stored?).map_err(LogError::from)?;
            each(decode_recorded(recorded)?)?;
        }
        Ok(())
    }
}

enum Inner {
    Done(Vec<Ack>),
    Waiting(crate::log::Pending),
}

/// A batch checked and queued; [`PendingAppend::wait`] returns its acks once durable.
pub struct PendingAppend<'a> {
    app: &'a App,
    /// The submission number in the records' in-flight set (copies of events in flight and
    /// appends already settled have none: nothing of them was folded by this call).
    submission: Option<u64>,
    /// The places in the batch of the late-entry notes the app made: their acks are not the
    /// caller's (one ack per event it sent).
    notes_at: Vec<usize>,
    inner: Option<Inner>,
}

impl Drop for PendingAppend<'_> {
    fn drop(&mut self) {
        // Dropped unread: still settle the records' in-flight set.
        if self.inner.is_some() {
            let _ = self.settle();
        }
    }
}

impl PendingAppend<'_> {
    pub fn wait(mut self) -> Result<Vec<Ack>, AppError> {
        self.settle()
    }

    fn settle(&mut self) -> Result<Vec<Ack>, AppError> {
        match self.inner.take() {
            None => Err(AppError::Usage("the append was already settled".into())),
            Some(Inner::Done(acks)) => Ok(acks),
            Some(Inner::Waiting(pending)) => {
                let result = pending.wait().map_err(|e| callers_index(e, &self.notes_at));
                let mut state = self.app.lock();
                let acks = finish(&mut state, self.submission, result)?;
                Ok(without_notes(acks, &self.notes_at))
            }
        }
    }
}

/// Whether the log, having refused a batch with this error, refuses every batch queued behind
/// it too (a failed store takes no further appends), so those are rolled back with it.
fn refuses_later_batches(e: &LogError) -> bool {
    // A full disk too: the batches queued behind are refused, and those the app submits while
    // any of its batches is unsettled never make the writer recover (`without_recovery`).
    matches!(e, LogError::Poisoned(_) | LogError::WriterGone) || e.is_disk_full()
}

/// Settles an append: takes the batch out of the in-flight set; on a refusal by the log, takes
/// what it folded back out of the records (and what the batches behind it folded, when the log
/// refuses those too), or marks them stale when the undo journal cannot account for it.
fn finish(
    state: &mut RecordsState,
    submission: Option<u64>,
    result: Result<Vec<Ack>, LogError>,
) -> Result<Vec<Ack>, AppError> {
    let Some(submission) = submission else {
        // Copies of events in flight: nothing of them was folded. Each is answered as its
        // original's duplicate; one written as a new event (its original refused) is in the log
        // and not in the records.
        if let Ok(acks) = &result
            && acks.iter().any(|a| !a.duplicate)
        {
            state.stale = true;
        }
        return result.map_err(AppError::from);
    };
    let batch = state.in_flight.remove(&submission);
    if let Some(batch) = &batch {
        for (id, _, _) in &batch.events {
            state.in_flight_ids.remove(id);
        }
    }
    match result {
        Ok(acks) => {
            let Some(batch) = batch else {
                // Rolled back with an earlier refused batch, yet written: the records lack it.
                state.stale = true;
                return Ok(acks);
            };
            assert_eq!(acks.len(), batch.events.len(), "one ack per event");
            state.newest_written = state.newest_written.max(Some(submission));
            // Every batch before the oldest still in flight is durable: never to be undone.
            let oldest = state
                .in_flight
                .keys()
                .next()
                .copied()
                .unwrap_or(state.next_submission);
            state.records.forget_before(oldest);
            Ok(acks)
        }
        Err(e) => {
            let Some(batch) = batch else {
                // Already rolled back with an earlier batch the log refused.
                return Err(e.into());
            };
            let later: Vec<u64> = state
                .in_flight
                .range(submission..)
                .map(|(k, _)| *k)
                .collect();
            // A later batch already written has its changes on top of this one's: rolling back
            // from here would take them out too.
            let written_since = state.newest_written.is_some_and(|w| w > submission);
            let undoable = batch.journaled
                && !written_since
                && (later.is_empty()
                    || (refuses_later_batches(&e)
                        && later.iter().all(|k| state.in_flight[k].journaled)));
            if undoable {
                state.records.roll_back_from(submission);
                state.stats.batches_rolled_back += 1 + later.len() as u64;
            } else {
                state.stale = true;
            }
            if refuses_later_batches(&e) {
                for k in later {
                    if let Some(b) = state.in_flight.remove(&k) {
                        for (id, _, _) in &b.events {
                            state.in_flight_ids.remove(id);
                        }
                    }
                }
            }
            Err(e.into())
        }
    }
}

/// A refusal of the log names an event by its place in the batch written, which holds the notes
/// made here: named instead by its place in the caller's batch (a note by the event it is for,
/// under the field that gave its reason).
fn callers_index(e: LogError, notes_at: &[usize]) -> LogError {
    match e {
        LogError::InvalidEvent { index, field, rule } if !notes_at.is_empty() => {
            let notes_before = notes_at.iter().filter(|&&n| n < index).count();
            let is_note = notes_at.contains(&index);
            LogError::InvalidEvent {
                // A note follows its event: the event is one place before it.
                index: index - notes_before - usize::from(is_note),
                field: if is_note {
                    late_entry::LATE_ENTRY_REASON_FIELD
                } else {
                    field
                },
                rule,
            }
        }
        other => other,
    }
}

/// The acks of the caller's events: those of the notes made for them left out.
fn without_notes(acks: Vec<Ack>, notes_at: &[usize]) -> Vec<Ack> {
    if notes_at.is_empty() {
        return acks;
    }
    acks.into_iter()
        .enumerate()
        .filter(|(i, _)| !notes_at.contains(i))
        .map(|(_, a)| a)
        .collect()
}

/// The note of why `e` (written as `target`) is recorded late: recorded with it, by the same
/// actor, caused by it.
fn late_entry_note(
    e: &IncomingEvent,
    target: Uuid,
    reason: &str,
    recorded_at: crate::time::Instant,
) -> IncomingEvent {
    let note = DomainEvent::LateEntryNoted(crate::domain::events::LateEntryNotedV1 {
        target_event_id: target,
        reason: reason.to_string(),
    });
    IncomingEvent {
        recorded_by: e.recorded_by.clone(),
        recorded_at: e.recorded_at,
        correlation_id: e.correlation_id,
        causation_id: Some(target),
        ..IncomingEvent::new(note, recorded_at)
    }
}

/// The log's form of an incoming event: its id (a new UUIDv7 when it has none), stream, payload,
/// and the recording actor and time the caller lets it keep.
fn new_event(e: &IncomingEvent, actor: &str, keep: Keep) -> Result<NewEvent, AppError> {
    let recorded_by = match (&e.recorded_by, keep.recorded_by) {
        (Some(by), true) => by.clone(),
        _ => actor.to_string(),
    };
    Ok(NewEvent {
        event_id: e.id.unwrap_or_else(Uuid::now_v7),
        stream: stream_of(&e.event),
        event_type: e.event.event_type().to_string(),
        schema_version: e.event.schema_version(),
        occurred_at: e.occurred_at,
        recorded_by,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        payload: e.event.encode().map_err(LogError::from)?,
        recorded_at: if keep.recorded_at {
            e.recorded_at
        } else {
            None
        },
    })
}

/// Decodes a recorded event's payload.
pub fn decode_recorded(recorded: RecordedEvent) -> Result<LoggedEvent, AppError> {
    let event = DomainEvent::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    )
    .map_err(|source| AppError::Undecodable {
        position: recorded.position,
        source,
    })?;
    Ok(LoggedEvent { recorded, event })
}
