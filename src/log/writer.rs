//! The one writer: owns the write path, gathers concurrent append batches into one commit and
//! one flush (group commit), and answers each batch only after that flush.
//!
//! Callers hand batches over a bounded queue ([`super::QUEUE_CAPACITY`]): a flood blocks its
//! senders (backpressure) instead of growing memory. The writer takes what is queued, up to
//! [`super::MAX_COMMIT_EVENTS`] events, checks each batch on its own (a batch that fails is
//! answered with its error and leaves no trace), writes the rest as one atomic storage commit,
//! flushes once, publishes the new durable head to readers, then answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use uuid::Uuid;

use super::read::Shared;
use super::storage::{Commit, Storage};
use super::{
    Ack, AppendBatch, ExpectedVersion, LogError, MAX_BATCH_EVENTS, MAX_COMMIT_EVENTS,
    MAX_NAME_BYTES, MAX_PAYLOAD_BYTES, QUEUE_CAPACITY, SEGMENT_MAX_BYTES, SEGMENT_MAX_EVENTS, hash,
};
use crate::codec::{self, SegmentV1, StoredEventV1, StoredHeadV1, StoredTime};
use crate::time::{self, Clock};

/// Counters of the writer, read by metrics and benches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub commits: u64,
    pub events_written: u64,
    pub batches: u64,
    pub flush_nanos_total: u64,
    pub last_commit_batches: u64,
    pub queue_depth: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    events_written: AtomicU64,
    batches: AtomicU64,
    flush_nanos_total: AtomicU64,
    last_commit_batches: AtomicU64,
    queued: AtomicU64,
}

type Reply = SyncSender<Result<Vec<Ack>, LogError>>;

struct Request {
    batch: AppendBatch,
    reply: Reply,
}

/// A submitted batch; [`Pending::wait`] returns its acks once they are durable.
pub struct Pending {
    answer: Receiver<Result<Vec<Ack>, LogError>>,
}

impl Pending {
    pub fn wait(self) -> Result<Vec<Ack>, LogError> {
        self.answer.recv().map_err(|_| LogError::WriterGone)?
    }
}

/// The handle callers use; dropping the last one stops the writer thread after it drains.
pub struct WriterHandle {
    sender: Mutex<Option<SyncSender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl WriterHandle {
    pub(super) fn start(
        storage: Arc<dyn Storage>,
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
        head: Option<StoredHeadV1>,
    ) -> Result<Self, LogError> {
        let (sender, receiver) = sync_channel::<Request>(QUEUE_CAPACITY);
        let counters = Arc::new(Counters::default());
        let head = head.unwrap_or(StoredHeadV1 {
            position: 0,
            chain_hash: hash::GENESIS_CHAIN,
            recorded_at: StoredTime {
                unix_seconds: i64::MIN / 2,
                nanos: 0,
                offset_seconds: 0,
            },
        });
        let last_recorded = if head.position == 0 {
            None
        } else {
            Some(time::from_stored(&head.recorded_at)?)
        };
        let mut writer = Writer {
            storage,
            shared,
            clock,
            head,
            last_recorded,
            stream_heads: HashMap::new(),
            counters: counters.clone(),
            poisoned: None,
        };
        let thread = std::thread::Builder::new()
            .name("carelog-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| LogError::Poisoned(format!("could not start the writer thread: {e}")))?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            counters,
        })
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
        let sent = sender.send(Request { batch, reply });
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
            events_written: c.events_written.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            flush_nanos_total: c.flush_nanos_total.load(Ordering::Relaxed),
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

/// A stream head cache bound: beyond it the cache is cleared and refilled from storage.
const STREAM_CACHE_MAX: usize = 1_000_000;

struct Writer {
    storage: Arc<dyn Storage>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    head: StoredHeadV1,
    last_recorded: Option<time::Instant>,
    stream_heads: HashMap<String, u64>,
    counters: Arc<Counters>,
    poisoned: Option<String>,
}

/// A batch that passed its checks, with its events laid out.
struct Accepted {
    reply: Reply,
    acks: Vec<Ack>,
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

    fn commit_group(&mut self, group: Vec<Request>) {
        if let Some(reason) = &self.poisoned {
            for r in group {
                let _ = r.reply.send(Err(LogError::Poisoned(reason.clone())));
            }
            return;
        }
        let now = self.clock.now();
        let last_recorded_before = self.last_recorded;

        let start_head = self.head;
        let mut pending_events: Vec<StoredEventV1> = Vec::new();
        let mut pending_ids: HashMap<[u8; 16], usize> = HashMap::new();
        let mut pending_streams: HashMap<String, u64> = HashMap::new();
        let mut accepted: Vec<Accepted> = Vec::new();

        for request in group {
            let head_before = self.head;
            let events_before = pending_events.len();
            let last_recorded = self.last_recorded;
            match self.lay_out(
                &request.batch,
                now,
                &mut pending_events,
                &pending_ids,
                &mut pending_streams,
            ) {
                Ok(acks) => {
                    for (i, e) in pending_events.iter().enumerate().skip(events_before) {
                        pending_ids.insert(e.event_id, i);
                    }
                    accepted.push(Accepted {
                        reply: request.reply,
                        acks,
                    });
                }
                Err((e, streams_before)) => {
                    self.head = head_before;
                    self.last_recorded = last_recorded;
                    pending_events.truncate(events_before);
                    pending_streams = streams_before;
                    let _ = request.reply.send(Err(e));
                }
            }
        }

        if pending_events.is_empty() {
            // Only duplicates or failures: nothing to write, but duplicates are acked only for
            // durable events, which they are (they were read from storage or are in this group).
            for a in accepted {
                let _ = a.reply.send(Ok(a.acks));
            }
            return;
        }

        let written = pending_events.len() as u64;
        let result = self.write(&pending_events);
        match result {
            Ok(flush_nanos) => {
                for (stream, v) in pending_streams {
                    self.remember_stream(stream, v);
                }
                self.shared.publish(self.head);
                let c = &self.counters;
                c.commits.fetch_add(1, Ordering::Relaxed);
                c.events_written.fetch_add(written, Ordering::Relaxed);
                c.batches
                    .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                c.flush_nanos_total
                    .fetch_add(flush_nanos, Ordering::Relaxed);
                c.last_commit_batches
                    .store(accepted.len() as u64, Ordering::Relaxed);
                for a in accepted {
                    let _ = a.reply.send(Ok(a.acks));
                }
            }
            Err(e) => {
                // The commit may be partly on disk but was never made durable: take no further
                // appends rather than guess (a restart re-reads the true head from storage).
                self.head = start_head;
                self.last_recorded = last_recorded_before;
                let reason = e.to_string();
                self.poisoned = Some(reason.clone());
                for a in accepted {
                    let _ = a.reply.send(Err(LogError::Poisoned(reason.clone())));
                }
            }
        }
    }

    /// Checks one batch and lays its events out after the pending ones. On error, returns the
    /// error and the stream overlay as it was before the batch.
    #[allow(clippy::type_complexity)]
    fn lay_out(
        &mut self,
        batch: &AppendBatch,
        now: time::Instant,
        pending: &mut Vec<StoredEventV1>,
        pending_ids: &HashMap<[u8; 16], usize>,
        pending_streams: &mut HashMap<String, u64>,
    ) -> Result<Vec<Ack>, (LogError, HashMap<String, u64>)> {
        let streams_before = pending_streams.clone();
        let fail = |e: LogError, before: HashMap<String, u64>| Err((e, before));
        if let Err(e) = check_shape(batch) {
            return fail(e, streams_before);
        }

        // Idempotency first: a resend of a batch already written is answered with the original
        // positions whatever the expectations say (they held when it was first written).
        let mut duplicates: Vec<Ack> = Vec::new();
        for e in &batch.events {
            let id = *e.event_id.as_bytes();
            let found = if let Some(&index) = pending_ids.get(&id) {
                pending.get(index).cloned()
            } else {
                match self.stored_event_by_id(&id) {
                    Ok(found) => found,
                    Err(err) => return fail(err, streams_before),
                }
            };
            if let Some(stored) = found {
                if !e.same_content(&stored) {
                    return fail(
                        LogError::IdConflict {
                            event_id: e.event_id,
                            position: stored.position,
                        },
                        streams_before,
                    );
                }
                duplicates.push(Ack {
                    event_id: e.event_id,
                    position: stored.position,
                    stream_version: stored.stream_version,
                    duplicate: true,
                });
            }
        }
        if !duplicates.is_empty() {
            if duplicates.len() == batch.events.len() {
                return Ok(duplicates);
            }
            return fail(
                LogError::PartialDuplicate {
                    already: duplicates.len(),
                    total: batch.events.len(),
                    event_id: duplicates[0].event_id,
                    position: duplicates[0].position,
                },
                streams_before,
            );
        }

        for (stream, expected) in &batch.expectations {
            let actual = match self.current_version(stream, pending_streams) {
                Ok(v) => v,
                Err(e) => return fail(e, streams_before),
            };
            let holds = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => actual == 0,
                ExpectedVersion::Exact(v) => actual == *v,
            };
            if !holds {
                return fail(
                    LogError::VersionConflict {
                        stream: stream.clone(),
                        expected: *expected,
                        actual,
                    },
                    streams_before,
                );
            }
        }

        let mut acks = Vec::with_capacity(batch.events.len());
        for (index, e) in batch.events.iter().enumerate() {
            // recorded_at never goes back and is never in the future, whatever the clock does.
            let recorded_at = match e.recorded_at {
                None => self.last_recorded.map_or(now, |last| last.max(now)),
                Some(asked) if asked > now => {
                    return fail(
                        LogError::InvalidEvent {
                            index,
                            field: "recordedat",
                            rule: format!(
                                "a kept recording time may not be in the future (now {now})"
                            ),
                        },
                        streams_before,
                    );
                }
                Some(asked) if self.last_recorded.is_some_and(|last| asked < last) => {
                    return fail(
                        LogError::InvalidEvent {
                            index,
                            field: "recordedat",
                            rule:
                                "a kept recording time may not be earlier than the previous event's"
                                    .into(),
                        },
                        streams_before,
                    );
                }
                Some(asked) => asked,
            };
            self.last_recorded = Some(recorded_at);
            let recorded_at = &time::to_stored(&recorded_at);
            let version = match self.current_version(&e.stream, pending_streams) {
                Ok(v) => v + 1,
                Err(err) => return fail(err, streams_before),
            };
            let position = self.head.position + 1;
            let mut stored = StoredEventV1 {
                position,
                event_id: *e.event_id.as_bytes(),
                stream: e.stream.clone(),
                stream_version: version,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                occurred_at: time::to_stored(&e.occurred_at),
                recorded_at: *recorded_at,
                recorded_by: e.recorded_by.clone(),
                correlation_id: e.correlation_id.map(|u| *u.as_bytes()),
                causation_id: e.causation_id.map(|u| *u.as_bytes()),
                payload: e.payload.clone(),
                leaf_hash: [0; 32],
                chain_hash: [0; 32],
            };
            let canonical = match stored.canonical_bytes() {
                Ok(c) => c,
                Err(err) => return fail(err.into(), streams_before),
            };
            stored.leaf_hash = hash::leaf(&canonical);
            stored.chain_hash = hash::chain(&self.head.chain_hash, &stored.leaf_hash);
            // Invariants: positions dense in commit order, stream versions dense per stream.
            assert_eq!(
                stored.position,
                self.head.position + 1,
                "position must be dense"
            );
            assert!(
                pending
                    .last()
                    .is_none_or(|p| p.position + 1 == stored.position),
                "pending positions must be dense"
            );
            pending_streams.insert(e.stream.clone(), version);
            self.head = StoredHeadV1 {
                position,
                chain_hash: stored.chain_hash,
                recorded_at: *recorded_at,
            };
            acks.push(Ack {
                event_id: e.event_id,
                position,
                stream_version: version,
                duplicate: false,
            });
            pending.push(stored);
        }
        Ok(acks)
    }

    fn current_version(
        &mut self,
        stream: &str,
        pending_streams: &HashMap<String, u64>,
    ) -> Result<u64, LogError> {
        if let Some(v) = pending_streams.get(stream) {
            return Ok(*v);
        }
        if let Some(v) = self.stream_heads.get(stream) {
            return Ok(*v);
        }
        let v = self.storage.stream_head(stream)?;
        self.remember_stream(stream.to_string(), v);
        Ok(v)
    }

    fn remember_stream(&mut self, stream: String, version: u64) {
        if self.stream_heads.len() >= STREAM_CACHE_MAX && !self.stream_heads.contains_key(&stream) {
            self.stream_heads.clear();
        }
        if let Some(previous) = self.stream_heads.insert(stream, version) {
            assert!(previous <= version, "stream versions never go back");
        }
    }

    fn stored_event_by_id(&self, id: &[u8; 16]) -> Result<Option<StoredEventV1>, LogError> {
        let Some(pos) = self.storage.position_of(id)? else {
            return Ok(None);
        };
        super::read::stored_event_at(self.storage.as_ref(), pos)
    }

    /// Writes the pending events as one atomic commit, then flushes. Returns the flush time.
    fn write(&self, events: &[StoredEventV1]) -> Result<u64, LogError> {
        let mut commit = Commit::default();
        let mut start = 0;
        while start < events.len() {
            // A segment: up to SEGMENT_MAX_EVENTS events and about SEGMENT_MAX_BYTES bytes.
            let mut end = start;
            let mut bytes = 0usize;
            while end < events.len()
                && end - start < SEGMENT_MAX_EVENTS
                && (end == start || bytes < SEGMENT_MAX_BYTES)
            {
                bytes += events[end].payload.len() + 200;
                end += 1;
            }
            let segment = SegmentV1 {
                events: events[start..end].to_vec(),
            };
            commit
                .segments
                .push((events[start].position, codec::encode("segment", &segment)?));
            start = end;
        }
        for e in events {
            commit.ids.push((e.event_id, e.position));
            commit
                .stream_entries
                .push((e.stream.clone(), e.stream_version, e.position));
        }
        commit.head = Some(self.head);
        self.storage.commit(commit)?;
        let flush_start = std::time::Instant::now();
        self.storage.flush()?;
        Ok(flush_start.elapsed().as_nanos() as u64)
    }
}

/// The checks of a batch that need no state: sizes, names, non-empty.
fn check_shape(batch: &AppendBatch) -> Result<(), LogError> {
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
    let mut seen: HashMap<Uuid, usize> = HashMap::with_capacity(batch.events.len());
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
        if seen.insert(e.event_id, i).is_some() {
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
