//! The one writer: owns the write path, gathers concurrent append batches into one commit and
//! one flush (group commit), and answers each batch only after that flush.
//!
//! Two threads form a pipeline. The writer thread takes what is queued (up to
//! [`super::MAX_COMMIT_EVENTS`] events), checks each batch on its own (a batch that fails is
//! answered with its error and leaves no trace), lays the rest out (positions, versions, recorded
//! times, hashes) and writes them as one atomic storage commit. It hands the commit to the flusher
//! thread and goes on with the next group while the flusher makes the previous one durable
//! (fsync), publishes the new durable head to readers, and answers the callers, in commit order.
//! At most [`COMMITS_IN_FLIGHT`] commits wait for their flush. When the flusher is idle and no
//! batch is queued (a lone writer), the writer finishes the commit itself: fewer thread
//! wake-ups per append.
//!
//! Callers hand batches over a bounded queue ([`super::QUEUE_CAPACITY`]): a flood blocks its
//! senders (backpressure) instead of growing memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use uuid::Uuid;

mod failure;

pub use failure::WriteHealth;
use failure::{Failure, Poison};

use super::hash;
use super::read::Shared;
use super::storage::{Commit, Storage};
use super::types::{
    Ack, AppendBatch, LogError, MAX_BATCH_EVENTS, MAX_COMMIT_EVENTS, MAX_NAME_BYTES,
    MAX_PAYLOAD_BYTES, QUEUE_CAPACITY, SEGMENT_MAX_BYTES, SEGMENT_MAX_EVENTS,
};
use crate::codec::{self, SegmentRefV1, StoredEventV1, StoredHeadV1, StoredTime};
use crate::merkle;
use crate::time::{self, Clock};

/// Commits written but not yet flushed, at most: the writer lays out the next group while the
/// flusher makes the previous one durable.
pub const COMMITS_IN_FLIGHT: usize = 2;

/// Counters of the writer, read by metrics and benches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub commits: u64,
    /// Flushes made: one covers every commit written before it started, so there are at most
    /// as many as commits.
    pub flushes: u64,
    pub events_written: u64,
    pub batches: u64,
    pub flush_nanos_total: u64,
    /// Time spent checking, laying out and writing commits (before their flush).
    pub commit_nanos_total: u64,
    pub last_commit_batches: u64,
    pub queue_depth: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
    events_written: AtomicU64,
    batches: AtomicU64,
    flush_nanos_total: AtomicU64,
    commit_nanos_total: AtomicU64,
    last_commit_batches: AtomicU64,
    queued: AtomicU64,
    /// Commits written to storage so far (not all durable): a flush started after the n-th was
    /// written makes the first n durable.
    written_commits: AtomicU64,
    /// Commits known durable: a ticket at or below it needs no flush of its own.
    durable_commits: AtomicU64,
    /// Batches handed to the queue so far: each request's number (see `Poison`).
    submitted: AtomicU64,
}

type Answer = Result<Vec<Ack>, LogError>;
type Reply = SyncSender<Answer>;

struct Request {
    batch: AppendBatch,
    reply: Reply,
    /// Its number in submission order, from 1.
    number: u64,
}

/// A submitted batch; [`Pending::wait`] returns its acks once they are durable.
pub struct Pending {
    answer: Receiver<Answer>,
}

impl Pending {
    pub fn wait(self) -> Result<Vec<Ack>, LogError> {
        self.answer.recv().map_err(|_| LogError::WriterGone)?
    }
}

/// The handle callers use; dropping the last one stops the threads after they drain.
pub struct WriterHandle {
    sender: Mutex<Option<SyncSender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    poison: Arc<Poison>,
}

impl WriterHandle {
    pub(super) fn start(
        storage: Arc<dyn Storage>,
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
        head: Option<StoredHeadV1>,
    ) -> Result<Self, LogError> {
        let tree_edge = super::tree::right_edge(storage.as_ref(), head.as_ref())?;
        let (sender, receiver) = sync_channel::<Request>(QUEUE_CAPACITY);
        let counters = Arc::new(Counters::default());
        let poison = Arc::new(Poison::default());
        let last_recorded = match &head {
            Some(h) => Some(time::from_stored(&h.recorded_at)?),
            None => None,
        };
        let head = head.unwrap_or(StoredHeadV1 {
            position: 0,
            chain_hash: hash::GENESIS_CHAIN,
            recorded_at: StoredTime {
                unix_seconds: 0,
                nanos: 0,
                offset_seconds: 0,
            },
        });
        let (tickets, ticket_receiver) =
            sync_channel::<Ticket>(COMMITS_IN_FLIGHT.saturating_sub(1).max(1));
        let flusher = Flusher {
            storage: storage.clone(),
            shared: shared.clone(),
            counters: counters.clone(),
            poison: poison.clone(),
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        let inline = flusher.clone();
        let flusher_thread = std::thread::Builder::new()
            .name("carelog-flusher".into())
            .spawn(move || flusher.run(ticket_receiver))
            .map_err(|e| LogError::Poisoned(format!("could not start the flusher thread: {e}")))?;
        let mut writer = Writer {
            storage,
            shared,
            clock,
            head,
            tree_edge,
            last_recorded,
            counters: counters.clone(),
            poison: poison.clone(),
            unflushed: Unflushed::default(),
            tickets: Some(tickets),
            inline,
        };
        let thread = std::thread::Builder::new()
            .name("carelog-writer".into())
            .spawn(move || {
                writer.run(receiver);
                // Closing the tickets lets the flusher drain what is left, then stop.
                drop(writer);
                let _ = flusher_thread.join();
            })
            .map_err(|e| LogError::Poisoned(format!("could not start the writer thread: {e}")))?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            counters,
            poison,
        })
    }

    /// Whether appends are taken now (see [`WriteHealth`]).
    pub(super) fn write_health(&self) -> WriteHealth {
        match self.poison.get() {
            None => WriteHealth::Ok,
            Some(Failure {
                disk_full: Some((path, detail)),
                ..
            }) => WriteHealth::DiskFull { path, detail },
            Some(f) => WriteHealth::Poisoned(f.reason),
        }
    }

    pub(super) fn append(&self, batch: AppendBatch) -> Result<Vec<Ack>, LogError> {
        self.submit(batch)?.wait()
    }

    /// Queues a batch (blocking while the queue is full) and returns without waiting for it.
    /// Batches are committed in the order they were submitted.
    pub(super) fn submit(&self, batch: AppendBatch) -> Result<Pending, LogError> {
        let sender = {
            let guard = self.sender.lock().map_err(|_| LogError::WriterGone)?;
            guard.clone().ok_or(LogError::WriterGone)?
        };
        let (reply, answer) = sync_channel(1);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        // Numbered and sent under one lock, so numbers grow along the queue.
        let sent = {
            let _order = self.sender.lock().map_err(|_| LogError::WriterGone)?;
            let number = self.counters.submitted.fetch_add(1, Ordering::AcqRel) + 1;
            sender.send(Request {
                batch,
                reply,
                number,
            })
        };
        if sent.is_err() {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(LogError::WriterGone);
        }
        Ok(Pending { answer })
    }

    pub(super) fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            commits: c.commits.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            events_written: c.events_written.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            flush_nanos_total: c.flush_nanos_total.load(Ordering::Relaxed),
            commit_nanos_total: c.commit_nanos_total.load(Ordering::Relaxed),
            last_commit_batches: c.last_commit_batches.load(Ordering::Relaxed),
            queue_depth: c.queued.load(Ordering::Relaxed),
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(handle) = t.take()
        {
            let _ = handle.join();
        }
    }
}

/// A written commit on its way to durability, with the answers to send once it is.
struct Ticket {
    /// Empty when the group only held resends (answered after the commits before them).
    events: Vec<StoredEventV1>,
    /// The commit's number in write order (see `Counters::written_commits`); 0 with no events.
    commit: u64,
    head: StoredHeadV1,
    answers: Vec<(Reply, Answer)>,
}

/// Makes written commits durable, publishes them and answers their callers, in commit order.
/// Runs on the flusher thread; the writer uses its own copy to finish a commit inline when
/// nothing else is in flight.
#[derive(Clone)]
struct Flusher {
    storage: Arc<dyn Storage>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    poison: Arc<Poison>,
    /// Tickets handed to the flusher thread and not yet finished.
    in_flight: Arc<AtomicUsize>,
}

impl Flusher {
    fn run(&self, tickets: Receiver<Ticket>) {
        while let Ok(ticket) = tickets.recv() {
            self.finish(ticket);
            self.in_flight.fetch_sub(1, Ordering::Release);
        }
    }

    fn finish(&self, ticket: Ticket) {
        let c = &self.counters;
        // A commit a successful flush already covered is durable: answer it even if a later
        // write has poisoned the writer since.
        let covered =
            ticket.commit > 0 && ticket.commit <= c.durable_commits.load(Ordering::Acquire);
        if !covered && let Some(failure) = self.poison.get() {
            for (reply, _) in ticket.answers {
                let _ = reply.send(Err(failure.error()));
            }
            return;
        }
        if !ticket.events.is_empty() && !covered {
            // One flush covers every commit written before it starts: those queued behind this
            // ticket are then answered without a flush of their own.
            let covered = c.written_commits.load(Ordering::Acquire);
            assert!(
                covered >= ticket.commit,
                "a ticket is sent after its commit is written"
            );
            let started = std::time::Instant::now();
            if let Err(e) = self.storage.flush() {
                // The commit may be partly on disk but was never made durable: take no
                // further appends rather than guess (a restart, or after a full disk the
                // writer's recovery, re-reads the true head).
                self.poison.set(&LogError::Storage(e));
                let error = self
                    .poison
                    .get()
                    .map_or(LogError::WriterGone, |f| f.error());
                for (reply, _) in ticket.answers {
                    let _ = reply.send(Err(error.clone_refusal()));
                }
                self.poison
                    .answered(self.counters.submitted.load(Ordering::Acquire));
                return;
            }
            c.flush_nanos_total
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            c.flushes.fetch_add(1, Ordering::Relaxed);
            c.durable_commits.fetch_max(covered, Ordering::Release);
        }
        if !ticket.events.is_empty() {
            self.shared.publish_commit(&ticket.events, ticket.head);
            c.commits.fetch_add(1, Ordering::Relaxed);
            c.events_written
                .fetch_add(ticket.events.len() as u64, Ordering::Relaxed);
            c.batches
                .fetch_add(ticket.answers.len() as u64, Ordering::Relaxed);
            c.last_commit_batches
                .store(ticket.answers.len() as u64, Ordering::Relaxed);
        }
        for (reply, answer) in ticket.answers {
            let _ = reply.send(answer);
        }
    }
}

/// Events written but not yet durable (so not yet in the indexes): what the writer must still
/// see when it checks the next groups for resends and stream versions.
#[derive(Default)]
struct Unflushed {
    ids: HashMap<[u8; 16], StoredEventV1>,
    streams: HashMap<String, u64>,
    /// Per commit in flight, oldest first.
    commits: VecDeque<UnflushedCommit>,
}

/// A commit in flight: its last position, its ids, its streams with their last version.
type UnflushedCommit = (u64, Vec<[u8; 16]>, Vec<(String, u64)>);

impl Unflushed {
    /// Forgets the commits that are durable now (they are in the indexes).
    fn prune(&mut self, durable: u64) {
        while self
            .commits
            .front()
            .is_some_and(|(last, _, _)| *last <= durable)
        {
            let Some((_, ids, streams)) = self.commits.pop_front() else {
                break;
            };
            for id in ids {
                self.ids.remove(&id);
            }
            for (stream, version) in streams {
                if self.streams.get(&stream) == Some(&version) {
                    self.streams.remove(&stream);
                }
            }
        }
    }

    fn add(&mut self, events: &[StoredEventV1], streams: &HashMap<String, u64>) {
        let last = events.last().map_or(0, |e| e.position);
        for e in events {
            self.ids.insert(e.event_id, e.clone());
        }
        for (s, v) in streams {
            self.streams.insert(s.clone(), *v);
        }
        self.commits.push_back((
            last,
            events.iter().map(|e| e.event_id).collect(),
            streams.iter().map(|(s, v)| (s.clone(), *v)).collect(),
        ));
    }
}

/// The events of the group being laid out, and how to undo a batch that fails half way.
#[derive(Default)]
struct Group {
    events: Vec<StoredEventV1>,
    ids: HashMap<[u8; 16], usize>,
    streams: HashMap<String, u64>,
}

struct Writer {
    storage: Arc<dyn Storage>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    /// The head including commits not yet durable.
    head: StoredHeadV1,
    /// The Merkle tree's right edge at `head` (see `tree.rs`).
    tree_edge: merkle::CompactRange,
    last_recorded: Option<time::Instant>,
    counters: Arc<Counters>,
    poison: Arc<Poison>,
    unflushed: Unflushed,
    tickets: Option<SyncSender<Ticket>>,
    /// Finishes a commit on this thread when the flusher is idle and nobody waits.
    inline: Flusher,
}

impl Writer {
    fn run(&mut self, receiver: Receiver<Request>) {
        while let Ok(first) = receiver.recv() {
            let mut group = vec![first];
            let mut events = group[0].batch.events.len();
            while events < MAX_COMMIT_EVENTS {
                match receiver.try_recv() {
                    Ok(next) => {
                        events += next.batch.events.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.counters
                .queued
                .fetch_sub(group.len() as u64, Ordering::Relaxed);
            self.commit_group(group);
        }
    }

    fn commit_group(&mut self, mut requests: Vec<Request>) {
        let started = std::time::Instant::now();
        if let Some(failure) = self.poison.get() {
            // Those queued before the failure was answered are refused, and those whose caller
            // will not have them written without batches it has in flight; a later one may
            // find the disk has space again.
            let (refused, later): (Vec<Request>, Vec<Request>) = requests
                .into_iter()
                .partition(|r| r.number <= failure.refused_through || !r.batch.may_recover);
            for r in refused {
                let _ = r.reply.send(Err(failure.error()));
            }
            if later.is_empty() {
                return;
            }
            if let Err(e) = self.recover(&failure) {
                for r in later {
                    let _ = r.reply.send(Err(e.clone_refusal()));
                }
                return;
            }
            requests = later;
        }
        self.unflushed.prune(self.shared.durable_head().0);
        let now = self.clock.now();
        let (head_before_group, recorded_before_group) = (self.head, self.last_recorded);
        let mut group = Group::default();
        let mut answers: Vec<(Reply, Answer)> = Vec::with_capacity(requests.len());

        for request in requests {
            let (head_before, recorded_before, events_before) =
                (self.head, self.last_recorded, group.events.len());
            let mut undo: Vec<(String, Option<u64>)> = Vec::new();
            match self.lay_out(&request.batch, now, &mut group, &mut undo) {
                Ok(acks) => {
                    for (i, e) in group.events.iter().enumerate().skip(events_before) {
                        group.ids.insert(e.event_id, i);
                    }
                    answers.push((request.reply, Ok(acks)));
                }
                Err(e) => {
                    self.head = head_before;
                    self.last_recorded = recorded_before;
                    group.events.truncate(events_before);
                    for (stream, previous) in undo.into_iter().rev() {
                        match previous {
                            Some(v) => group.streams.insert(stream, v),
                            None => group.streams.remove(&stream),
                        };
                    }
                    // A refusal needs no flush: answer now.
                    let _ = request.reply.send(Err(e));
                }
            }
        }
        if answers.is_empty() {
            return;
        }
        // The commit's number in write order; 0 when the group only held resends.
        let mut commit = 0;
        if !group.events.is_empty() {
            // Invariants of the commit: it continues the head before it, at dense positions,
            // and ends at the new head (each event chained onto the one before: `lay_out`).
            assert_eq!(
                group.events.first().map(|e| e.position),
                Some(head_before_group.position + 1),
                "a commit continues the head"
            );
            assert_eq!(
                group.events.last().map(|e| (e.position, e.chain_hash)),
                Some((self.head.position, self.head.chain_hash)),
                "a commit ends at the new head"
            );
            debug_assert!(
                chains_from(&head_before_group, &group.events),
                "a commit's events chain from the head before it"
            );
            if let Err(e) = self.write(&group.events, head_before_group.position) {
                self.poison.set(&e);
                self.head = head_before_group;
                self.last_recorded = recorded_before_group;
                let error = self
                    .poison
                    .get()
                    .map_or(LogError::WriterGone, |f| f.error());
                for (reply, _) in answers {
                    let _ = reply.send(Err(error.clone_refusal()));
                }
                self.poison
                    .answered(self.counters.submitted.load(Ordering::Acquire));
                return;
            }
            self.unflushed.add(&group.events, &group.streams);
            commit = self.counters.written_commits.fetch_add(1, Ordering::AcqRel) + 1;
        }
        self.counters
            .commit_nanos_total
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let ticket = Ticket {
            events: group.events,
            commit,
            head: self.head,
            answers,
        };
        // A lone writer waits for every flush anyway: handing it to the flusher thread would only
        // add two thread wake-ups to each append. With the flusher idle, every commit before
        // this one is published, so finishing it here keeps commit order.
        let flusher_idle = self.inline.in_flight.load(Ordering::Acquire) == 0;
        let nobody_waiting = self.counters.queued.load(Ordering::Relaxed) == 0;
        if flusher_idle && nobody_waiting {
            self.inline.finish(ticket);
            return;
        }
        if let Some(tickets) = &self.tickets {
            self.inline.in_flight.fetch_add(1, Ordering::Release);
            if let Err(unsent) = tickets.send(ticket) {
                self.inline.in_flight.fetch_sub(1, Ordering::Release);
                for (reply, _) in unsent.0.answers {
                    let _ = reply.send(Err(LogError::WriterGone));
                }
            }
        }
    }

    /// Checks one batch and lays its events out after the group's. Records in `undo` every
    /// stream version it changes, so the caller can take a failed batch back out.
    ///
    /// Idempotency is decided here at commit time: the writer alone sees every commit in order,
    /// durable or still in flight (`Unflushed`), so a resend that races its original (queued
    /// before the original is indexed, such as the in-flight copies `App::submit` hands over)
    /// gets the original's position and never a second one, whoever calls the log. `App::submit`
    /// keeps a check of its own for another job (resends must skip the domain's checks and
    /// fold, which happen before the log is asked): neither can do the other's.
    fn lay_out(
        &mut self,
        batch: &AppendBatch,
        now: time::Instant,
        group: &mut Group,
        undo: &mut Vec<(String, Option<u64>)>,
    ) -> Result<Vec<Ack>, LogError> {
        check_shape(batch)?;

        // Idempotency first: a resend of a batch already written is answered with the original
        // positions whatever the expectations say (they held when it was first written).
        let mut duplicates: Vec<Ack> = Vec::new();
        for e in &batch.events {
            let id = *e.event_id.as_bytes();
            let found = match group.ids.get(&id) {
                Some(&index) => group.events.get(index).cloned(),
                None => self.stored_event_by_id(&id)?,
            };
            if let Some(stored) = found {
                if !e.same_content(&stored) {
                    return Err(LogError::IdConflict {
                        event_id: e.event_id,
                        position: stored.position,
                    });
                }
                duplicates.push(Ack {
                    event_id: e.event_id,
                    position: stored.position,
                    stream_version: stored.stream_version,
                    duplicate: true,
                });
            }
        }
        if let Some(first) = duplicates.first() {
            if duplicates.len() == batch.events.len() {
                return Ok(duplicates);
            }
            return Err(LogError::PartialDuplicate {
                already: duplicates.len(),
                total: batch.events.len(),
                event_id: first.event_id,
                position: first.position,
            });
        }

        for (stream, expected) in &batch.expectations {
            let actual = self.current_version(stream, group)?;
            if !expected.holds(actual) {
                return Err(LogError::VersionConflict {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }

        let mut acks = Vec::with_capacity(batch.events.len());
        for (index, e) in batch.events.iter().enumerate() {
            // recorded_at never goes back and is never in the future, whatever the clock does.
            let recorded_at = match e.recorded_at {
                None => self.last_recorded.map_or(now, |last| last.max(now)),
                Some(asked) if asked > now => {
                    return Err(LogError::InvalidEvent {
                        index,
                        field: "recordedat",
                        rule: format!("a kept recording time may not be in the future (now {now})"),
                    });
                }
                Some(asked) if self.last_recorded.is_some_and(|last| asked < last) => {
                    return Err(LogError::InvalidEvent {
                        index,
                        field: "recordedat",
                        rule: "a kept recording time may not be earlier than the previous event's"
                            .into(),
                    });
                }
                Some(asked) => asked,
            };
            let recorded_stored = time::to_stored(&recorded_at);
            let version = self.current_version(&e.stream, group)? + 1;
            let position = self.head.position + 1;
            let mut stored = StoredEventV1 {
                position,
                event_id: *e.event_id.as_bytes(),
                stream: e.stream.clone(),
                stream_version: version,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                occurred_at: time::to_stored(&e.occurred_at),
                recorded_at: recorded_stored,
                recorded_by: e.recorded_by.clone(),
                correlation_id: e.correlation_id.map(|u| *u.as_bytes()),
                causation_id: e.causation_id.map(|u| *u.as_bytes()),
                payload: e.payload.clone(),
                leaf_hash: [0; 32],
                chain_hash: [0; 32],
            };
            // Invariant: the head is the group's last event (or, first in the group, the head
            // before it), so the event chains onto the one before it.
            assert!(
                group
                    .events
                    .last()
                    .is_none_or(|p| p.position == self.head.position
                        && p.chain_hash == self.head.chain_hash),
                "the writer's head is its last event"
            );
            stored.leaf_hash = hash::leaf(&stored.canonical_bytes()?);
            stored.chain_hash = hash::chain(&self.head.chain_hash, &stored.leaf_hash);
            // Invariants: positions dense in commit order, stream versions dense per stream.
            assert!(
                group
                    .events
                    .last()
                    .is_none_or(|p| p.position + 1 == position),
                "positions must be dense"
            );
            let previous = group.streams.insert(e.stream.clone(), version);
            assert!(
                previous.is_none_or(|p| p + 1 == version),
                "stream versions must be dense"
            );
            undo.push((e.stream.clone(), previous));
            self.last_recorded = Some(recorded_at);
            self.head = StoredHeadV1 {
                position,
                chain_hash: stored.chain_hash,
                recorded_at: recorded_stored,
            };
            acks.push(Ack {
                event_id: e.event_id,
                position,
                stream_version: version,
                duplicate: false,
            });
            group.events.push(stored);
        }
        Ok(acks)
    }

    /// A stream's version: this group, then commits not yet durable, then the index.
    fn current_version(&self, stream: &str, group: &Group) -> Result<u64, LogError> {
        if let Some(v) = group
            .streams
            .get(stream)
            .or_else(|| self.unflushed.streams.get(stream))
        {
            return Ok(*v);
        }
        Ok(self
            .shared
            .indexes()?
            .as_ref()
            .map_or(0, |ix| ix.stream_version(stream)))
    }

    /// An event by id: commits not yet durable, then the index and the store.
    fn stored_event_by_id(&self, id: &[u8; 16]) -> Result<Option<StoredEventV1>, LogError> {
        if let Some(e) = self.unflushed.ids.get(id) {
            return Ok(Some(e.clone()));
        }
        let found = self
            .shared
            .indexes()?
            .as_ref()
            .and_then(|ix| ix.position_of(id));
        let Some(pos) = found else {
            return Ok(None);
        };
        super::segments::stored_event_at(self.storage.as_ref(), pos)
    }

    /// Writes the group's events as one atomic commit: its segments, each with its index chunk,
    /// and the head. Segments stay small (see [`SEGMENT_MAX_BYTES`]) so sled keeps them inline.
    fn write(&mut self, events: &[StoredEventV1], head_before: u64) -> Result<(), LogError> {
        let mut commit = Commit::default();
        // The tree grows with the events, in the same commit; the edge moves on only once the
        // commit was written.
        assert_eq!(
            self.tree_edge.size(),
            head_before,
            "the tree's edge is at the head"
        );
        let mut edge = self.tree_edge.clone();
        let mut tree_hashes = Vec::with_capacity(events.len() * 2);
        for e in events {
            edge.append(super::tree::TREE_HASH, e.leaf_hash, &mut tree_hashes);
        }
        commit.tree_chunks =
            super::tree::tree_chunks_of(merkle::stored_count(head_before), &tree_hashes);
        let mut start = 0;
        while start < events.len() {
            // A segment: up to SEGMENT_MAX_EVENTS events and SEGMENT_MAX_BYTES bytes.
            let mut end = start;
            let mut bytes = 0usize;
            while end < events.len() && end - start < SEGMENT_MAX_EVENTS {
                let next = encoded_bytes_at_most(&events[end]);
                if end > start && bytes + next > SEGMENT_MAX_BYTES {
                    break;
                }
                bytes += next;
                end += 1;
            }
            let part = &events[start..end];
            let segment = codec::encode("segment", &SegmentRefV1 { events: part })?;
            // Over this, sled would keep the value (or its node) in a blob file it never syncs.
            assert!(
                segment.len() <= SEGMENT_MAX_BYTES + SEGMENT_LENGTH_PREFIX_BYTES,
                "a segment of {} bytes is over the inline limit",
                segment.len()
            );
            commit.segments.push((part[0].position, segment));
            commit.index_chunks.push((
                part[0].position,
                codec::encode("index chunk", &super::index::chunk_of(part))?,
            ));
            start = end;
        }
        commit.head = Some(self.head);
        self.storage.commit(commit)?;
        self.tree_edge = edge;
        Ok(())
    }
}

/// Whether `events` sit at dense positions after `head`, each one's chain hash its leaf hash
/// chained onto the one before (the head's for the first).
fn chains_from(head: &StoredHeadV1, events: &[StoredEventV1]) -> bool {
    let mut previous = (head.position, head.chain_hash);
    events.iter().all(|e| {
        let chained = previous.0.checked_add(1) == Some(e.position)
            && hash::chain(&previous.1, &e.leaf_hash) == e.chain_hash;
        previous = (e.position, e.chain_hash);
        chained
    })
}

/// The most bytes bincode's varint length prefix of a segment's event list takes.
const SEGMENT_LENGTH_PREFIX_BYTES: usize = 9;

/// An upper bound of an event's encoded size: its variable parts plus the most its fixed fields
/// take (numbers as varints, ids, optional ids, times, hashes, length prefixes).
fn encoded_bytes_at_most(e: &StoredEventV1) -> usize {
    e.payload.len()
        + e.stream.len()
        + e.event_type.len()
        + e.recorded_by.len()
        + FIXED_FIELDS_BYTES_AT_MOST
}

const FIXED_FIELDS_BYTES_AT_MOST: usize = 256;

// The largest event the shape check lets through makes a segment on its own.
const _: () = assert!(
    MAX_PAYLOAD_BYTES + 3 * MAX_NAME_BYTES + FIXED_FIELDS_BYTES_AT_MOST <= SEGMENT_MAX_BYTES
);

/// The checks of a batch that need no state: sizes, names, non-empty, ids unique.
pub fn check_shape(batch: &AppendBatch) -> Result<(), LogError> {
    let invalid = |index: usize, field: &'static str, rule: String| LogError::InvalidEvent {
        index,
        field,
        rule,
    };
    if batch.events.is_empty() {
        return Err(invalid(
            0,
            "events",
            "a batch holds at least one event".into(),
        ));
    }
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(invalid(
            MAX_BATCH_EVENTS,
            "events",
            format!("a batch holds at most {MAX_BATCH_EVENTS} events; split it"),
        ));
    }
    let mut seen: std::collections::HashSet<Uuid> =
        std::collections::HashSet::with_capacity(batch.events.len());
    for (i, e) in batch.events.iter().enumerate() {
        check_name(i, "stream", &e.stream)?;
        check_name(i, "type", &e.event_type)?;
        check_name(i, "recordedby", &e.recorded_by)?;
        if e.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(invalid(
                i,
                "data",
                format!("a payload is at most {MAX_PAYLOAD_BYTES} bytes"),
            ));
        }
        if e.event_id.is_nil() {
            return Err(invalid(i, "id", "the nil UUID is not an event id".into()));
        }
        if !seen.insert(e.event_id) {
            return Err(LogError::DuplicateInBatch {
                event_id: e.event_id,
            });
        }
    }
    Ok(())
}

fn check_name(index: usize, field: &'static str, value: &str) -> Result<(), LogError> {
    let rule = if value.is_empty() {
        "must not be empty"
    } else if value.len() > MAX_NAME_BYTES {
        "must be at most 256 bytes"
    } else if value.chars().any(char::is_control) {
        "must not hold control characters"
    } else {
        return Ok(());
    };
    Err(LogError::InvalidEvent {
        index,
        field,
        rule: rule.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn largest(position: u64, seconds: i64) -> StoredEventV1 {
        let name = "名".repeat(MAX_NAME_BYTES / 3);
        let time = StoredTime {
            unix_seconds: seconds,
            nanos: u32::MAX,
            offset_seconds: i32::MIN,
        };
        StoredEventV1 {
            position,
            event_id: [0xff; 16],
            stream: name.clone(),
            stream_version: u64::MAX,
            event_type: name.clone(),
            schema_version: u16::MAX,
            occurred_at: time,
            recorded_at: time,
            recorded_by: name,
            correlation_id: Some([0xff; 16]),
            causation_id: Some([0xff; 16]),
            payload: vec![0xff; MAX_PAYLOAD_BYTES],
            leaf_hash: [0xff; 32],
            chain_hash: [0xff; 32],
        }
    }

    #[test]
    fn the_size_bound_holds_for_the_largest_events() {
        for (position, seconds) in [(u64::MAX, i64::MIN), (u64::MAX, i64::MAX), (1, 0)] {
            let e = largest(position, seconds);
            let encoded = codec::encode("event", &e).unwrap().len();
            assert!(
                encoded <= encoded_bytes_at_most(&e),
                "{encoded} > {}",
                encoded_bytes_at_most(&e)
            );
            let alone = codec::encode("segment", &SegmentRefV1 { events: &[e] })
                .unwrap()
                .len();
            assert!(alone <= SEGMENT_MAX_BYTES + SEGMENT_LENGTH_PREFIX_BYTES);
        }
    }
}
