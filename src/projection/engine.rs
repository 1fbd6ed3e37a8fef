//! The engine: one pass over the log feeding every projection, as of a position or a recorded
//! time, starting from the best checkpoints.
//!
//! The engine also keeps the one shared [`PairingBook`]: each event is folded into the book
//! first, then handed (with the book) to every projection. The book is checkpointed beside the
//! states; a replay starts it from a book checkpoint at or before every projection's own start
//! (or from position 0), so every projection sees the book exactly as of the event it applies.

use std::any::Any;

use uuid::Uuid;

use super::book::{BOOK_VERSION, PairingBook};
use super::checkpoint::{BOOK_NAME, Checkpoints, Loaded};
use super::{AnyProjection, EventView, Source};
use crate::codec::StoredEventRefV1;
use crate::domain::{Date, DomainEvent};
use crate::log::{Log, LogError};
use crate::time::{self, Instant};

/// Where a replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Everything durable now.
    Now,
    /// The records as they were at this position.
    Position(u64),
    /// The records as they were at this recorded time.
    Time(Instant),
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(
        "the event at position {position} cannot be read by this build ({detail}): upgrade carelog"
    )]
    Undecodable { position: u64, detail: String },
}

/// Called now and then with (events done, events to do).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Projection states after a replay, in the order of the projections given, and the shared book
/// as of the same position (what their `query` and `figures` read beside their states).
pub struct Rebuilt {
    pub states: Vec<Box<dyn Any + Send>>,
    pub book: PairingBook,
    /// The last position applied.
    pub position: u64,
    /// The day of the last event applied, or None for an empty log.
    pub last_day: Option<Date>,
    /// How many events were read from the log (the tail after the checkpoints).
    pub events_read: u64,
}

/// The last position recorded at or before `at` (0 when none). Recorded times never go back
/// along the log, so this is a binary search.
pub fn position_as_of(log: &Log, at: &Instant) -> Result<u64, EngineError> {
    let (mut lo, mut hi) = (0u64, log.head_position());
    // Invariant: recorded_at(lo) <= at (or lo = 0), recorded_at(hi + 1) > at.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let Some(e) = log.event_at(mid)? else {
            return Err(EngineError::Log(LogError::Storage(
                crate::log::StorageError::Corrupt {
                    path: log.path().to_path_buf(),
                    detail: format!("position {mid} is missing: run `carelog verify`"),
                },
            )));
        };
        if e.recorded_at <= *at {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// The position an [`AsOf`] means.
pub fn resolve(log: &Log, as_of: AsOf) -> Result<u64, EngineError> {
    let head = log.head_position();
    Ok(match as_of {
        AsOf::Now => head,
        AsOf::Position(p) => p.min(head),
        AsOf::Time(t) => position_as_of(log, &t)?,
    })
}

/// Each projection's best checkpoint at or before `target` (None: none usable), and the book's,
/// decoded on a few threads at once: loading the states is most of an as-of query's time, and
/// they are independent. The largest go first, so that no thread is left with one big state
/// after the others are done.
fn load_checkpoints(
    log: &Log,
    projections: &[&dyn AnyProjection],
    checkpoints: Option<&Checkpoints>,
    target: u64,
) -> (Vec<Option<LoadedState>>, Option<Loaded<PairingBook>>) {
    let Some(c) = checkpoints else {
        return (projections.iter().map(|_| None).collect(), None);
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, CHECKPOINT_LOAD_THREADS_MAX);
    // Jobs 0..n are the projections, job n is the book.
    let book_job = projections.len();
    let mut jobs: Vec<(u64, usize)> = projections
        .iter()
        .map(|p| c.best_size(p.name(), p.version(), target))
        .chain(std::iter::once(c.best_size(
            BOOK_NAME,
            BOOK_VERSION,
            target,
        )))
        .enumerate()
        .map(|(job, size)| (size, job))
        .collect();
    jobs.sort_unstable_by(|a, b| b.cmp(a));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let loaded: Vec<std::sync::Mutex<Option<LoadedState>>> = projections
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let book = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                // Each thread takes the next job not yet taken.
                while let Some(&(_, job)) =
                    jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    if job == book_job {
                        let state = c.load_best_book(log, target);
                        if let Ok(mut slot) = book.lock() {
                            *slot = state;
                        }
                    } else if let (Some(p), Some(slot)) = (projections.get(job), loaded.get(job)) {
                        let state = c.load_best(log, *p, target);
                        if let Ok(mut slot) = slot.lock() {
                            *slot = state;
                        }
                    }
                }
            });
        }
    });
    // (A panic in a thread would have ended the scope with it: no lock is poisoned here.)
    let states = loaded
        .into_iter()
        .map(|slot| slot.into_inner().ok().flatten())
        .collect();
    (states, book.into_inner().ok().flatten())
}

/// A projection's state loaded from its checkpoint.
type LoadedState = Loaded<Box<dyn Any + Send>>;

/// At most this many threads decode checkpoints at once.
const CHECKPOINT_LOAD_THREADS_MAX: usize = 4;

/// Replays the log into every projection given, as of `as_of`, in one pass: each event is read
/// and decoded once. Starts each projection from its best checkpoint when `checkpoints` is given,
/// and saves new ones along the way.
pub fn replay(
    log: &Log,
    projections: &[&dyn AnyProjection],
    as_of: AsOf,
    checkpoints: Option<&Checkpoints>,
    progress: Progress<'_>,
) -> Result<Rebuilt, EngineError> {
    let target = resolve(log, as_of)?;
    let mut states: Vec<Box<dyn Any + Send>> = Vec::with_capacity(projections.len());
    let mut starts: Vec<u64> = Vec::with_capacity(projections.len());
    let mut loaded_bytes = 0u64;
    let (loaded_states, loaded_book) = load_checkpoints(log, projections, checkpoints, target);
    for (p, loaded) in projections.iter().zip(loaded_states) {
        match loaded {
            Some(loaded) => {
                states.push(loaded.state);
                starts.push(loaded.position);
                loaded_bytes = loaded_bytes.saturating_add(loaded.bytes);
            }
            None => {
                states.push(p.new_state());
                starts.push(0);
            }
        }
    }
    // The book must have applied every event before any projection sees the next one: it starts
    // at or before the earliest projection start.
    let earliest = starts.iter().copied().min().unwrap_or(target);
    // The book loaded beside the states is at the target's best checkpoint: when a projection
    // starts further back (one without a checkpoint, say), the book is loaded again from there.
    // (A book loaded past that start is dropped here, not held through the replay.)
    let book_at_earliest = loaded_book
        .filter(|loaded| loaded.position <= earliest)
        .or_else(|| checkpoints.and_then(|c| c.load_best_book(log, earliest)));
    let (from, mut book) = match book_at_earliest {
        Some(loaded) => {
            loaded_bytes = loaded_bytes.saturating_add(loaded.bytes);
            (loaded.position, loaded.state)
        }
        None => (0, PairingBook::default()),
    };
    // The next checkpoints are spaced from the replay's start by what was loaded there: a
    // replay from scratch saves at the first multiple of the interval, then by the bytes it
    // wrote.
    let mut plan = checkpoints.map(|c| c.plan(from, if from == 0 { 0 } else { loaded_bytes }));
    let mut after =
        |stored: &StoredEventRefV1<'_>, book: &PairingBook, states: &[Box<dyn Any + Send>]| {
            if let (Some(c), Some(plan)) = (checkpoints, plan.as_mut())
                && plan.is_due(stored.position)
            {
                // Only a state that is exactly at this position may be saved under it: one that
                // started from a later checkpoint is already past it. The book always is.
                let mut bytes = c.save_book(stored.position, &stored.chain_hash, book);
                for ((p, state), start) in projections.iter().zip(states).zip(&starts) {
                    if stored.position > *start {
                        bytes = bytes.saturating_add(c.save(
                            *p,
                            stored.position,
                            &stored.chain_hash,
                            state.as_ref(),
                        ));
                    }
                }
                plan.saved(stored.position, bytes);
            }
        };
    let (events_read, mut last_day) = fold(
        log,
        Folding {
            projections,
            states: &mut states,
            starts: &starts,
            book: &mut book,
        },
        from,
        target,
        progress,
        &mut after,
    )?;
    if last_day.is_none() && target > 0 {
        last_day = log
            .event_at(target)?
            .map(|e| Date(time::shanghai_date(&e.occurred_at)));
    }
    Ok(Rebuilt {
        states,
        book,
        position: target,
        last_day,
        events_read,
    })
}

/// What a fold writes into: the book and the states (each with the position it has applied
/// every event up to), for the projections in the same order.
pub(crate) struct Folding<'a> {
    pub projections: &'a [&'a dyn AnyProjection],
    pub states: &'a mut [Box<dyn Any + Send>],
    pub starts: &'a [u64],
    pub book: &'a mut PairingBook,
}

/// Called after each event is folded in, with the event, the book and the states.
pub(crate) type AfterEach<'a> =
    &'a mut dyn FnMut(&StoredEventRefV1<'_>, &PairingBook, &[Box<dyn Any + Send>]);

/// Folds the events after `from` up to `target` into the book, then into each state past its
/// start, in one pass: each event is read and decoded once. Returns how many were read and the
/// last one's day.
pub(crate) fn fold(
    log: &Log,
    into: Folding<'_>,
    from: u64,
    target: u64,
    progress: Progress<'_>,
    after: AfterEach<'_>,
) -> Result<(u64, Option<Date>), EngineError> {
    let Folding {
        projections,
        states,
        starts,
        book,
    } = into;
    let mut last_day = None;
    let mut events_read = 0u64;
    let total = target.saturating_sub(from);
    // Each event is borrowed from its segment's bytes (no copy of its strings or payload); only
    // the payload is decoded, once, for every projection.
    log.for_each_stored_event(from + 1, target, |stored| -> Result<(), EngineError> {
        let event = DomainEvent::decode(stored.event_type, stored.schema_version, stored.payload)
            .map_err(|e| EngineError::Undecodable {
            position: stored.position,
            detail: e.to_string(),
        })?;
        let occurred_at = time::from_stored(&stored.occurred_at).map_err(LogError::from)?;
        let recorded_at = time::from_stored(&stored.recorded_at).map_err(LogError::from)?;
        let occurred_on = Date(time::shanghai_date(&occurred_at));
        book.apply(
            Source {
                id: Uuid::from_bytes(stored.event_id),
                position: stored.position,
            },
            &event,
        );
        let view = EventView {
            position: stored.position,
            event_id: Uuid::from_bytes(stored.event_id),
            occurred_at: &occurred_at,
            occurred_on,
            recorded_at: &recorded_at,
            recorded_by: stored.recorded_by,
            event: &event,
            book,
        };
        for ((p, state), start) in projections.iter().zip(states.iter_mut()).zip(starts) {
            if stored.position > *start {
                p.apply(state.as_mut(), &view);
            }
        }
        last_day = Some(occurred_on);
        events_read += 1;
        if events_read.is_multiple_of(65_536) {
            progress(events_read, total);
        }
        after(stored, book, states);
        Ok(())
    })?;
    progress(events_read, total);
    Ok((events_read, last_day))
}
