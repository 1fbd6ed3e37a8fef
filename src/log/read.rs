//! Reading: every event from a position, one stream from a version, and subscriptions that
//! catch up and then follow live appends.
//!
//! Readers see only up to the durable head that the writer publishes after each flush, so no
//! reader ever sees an event that a crash could still take away. sled's `watch_prefix` fires
//! before a write is durable, so it is not used at all: subscribers wait on the published head.

use std::sync::{Condvar, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use super::index::Indexes;
use super::segments::{decode_segment, decode_segment_refs, stored_event_at};
use super::storage::{RawSegment, Storage, StorageError};
use super::types::{LogError, RecordedEvent};
use crate::codec::{StoredEventRefV1, StoredEventV1, StoredHeadV1};

/// The most events one read call returns.
pub const MAX_READ_LIMIT: usize = 100_000;

/// State shared by the writer and the readers.
pub struct Shared {
    pub(super) storage: std::sync::Arc<dyn Storage>,
    head: Mutex<(u64, [u8; 32])>,
    head_changed: Condvar,
    /// Loaded on first use; see [`super::index`].
    indexes: RwLock<Option<Indexes>>,
}

impl Shared {
    pub(super) fn new(storage: std::sync::Arc<dyn Storage>, head: Option<StoredHeadV1>) -> Self {
        let head = head
            .map(|h| (h.position, h.chain_hash))
            .unwrap_or((0, [0; 32]));
        Self {
            storage,
            head: Mutex::new(head),
            head_changed: Condvar::new(),
            indexes: RwLock::new(None),
        }
    }

    /// The indexes, loaded from storage the first time (up to the durable head).
    pub(super) fn indexes(&self) -> Result<RwLockReadGuard<'_, Option<Indexes>>, LogError> {
        {
            let guard = self.indexes.read().unwrap_or_else(|p| p.into_inner());
            if guard.is_some() {
                return Ok(guard);
            }
        }
        {
            let mut guard = self.indexes.write().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                // The writer publishes under this lock, so no commit slips between the head read
                // here and the load.
                let head = self.durable_head().0;
                *guard = Some(Indexes::load(self.storage.as_ref(), head)?);
            }
        }
        Ok(self.indexes.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Called by the writer after a flush: folds the commit into the indexes (when loaded) and
    /// publishes the new durable head, both under the index lock.
    pub(super) fn publish_commit(&self, events: &[StoredEventV1], head: StoredHeadV1) {
        assert!(
            events
                .last()
                .is_some_and(|e| e.position == head.position && e.chain_hash == head.chain_hash),
            "a published commit ends at its head"
        );
        let mut guard = self.indexes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(indexes) = guard.as_mut() {
            indexes.add_events(events);
        }
        self.publish(head);
    }

    /// (position, chain hash) of the durable head.
    pub(super) fn durable_head(&self) -> (u64, [u8; 32]) {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes a new durable head (see [`Shared::publish_commit`]).
    fn publish(&self, head: StoredHeadV1) {
        let mut guard = self.head.lock().unwrap_or_else(|p| p.into_inner());
        assert!(guard.0 <= head.position, "the durable head never goes back");
        *guard = (head.position, head.chain_hash);
        self.head_changed.notify_all();
    }

    /// Waits until the durable head passes `position`, or the timeout ends. Returns the head.
    fn wait_past(&self, position: u64, timeout: Duration) -> u64 {
        let guard = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .head_changed
            .wait_timeout_while(guard, timeout, |h| h.0 <= position)
            .unwrap_or_else(|p| p.into_inner());
        guard.0
    }
}

fn missing_position(expected: u64, found: u64) -> LogError {
    LogError::Storage(StorageError::Corrupt {
        path: std::path::PathBuf::new(),
        detail: format!("position {expected} is missing (found {found}): run `carelog verify`"),
    })
}

/// Events in position order from a position up to a bound, decoded one segment at a time so
/// memory stays flat however long the log is.
pub struct EventIter<'a> {
    segments: Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + 'a>,
    buffered: std::vec::IntoIter<StoredEventV1>,
    next_position: u64,
    until_position: u64,
    done: bool,
}

impl Iterator for EventIter<'_> {
    type Item = Result<StoredEventV1, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.next_position > self.until_position {
                return None;
            }
            if let Some(e) = self.buffered.next() {
                if e.position < self.next_position {
                    continue;
                }
                if e.position != self.next_position {
                    self.done = true;
                    return Some(Err(missing_position(self.next_position, e.position)));
                }
                self.next_position += 1;
                return Some(Ok(e));
            }
            match self.segments.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
                Some(Ok(raw)) => match decode_segment(&raw) {
                    Ok(events) => self.buffered = events.into_iter(),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}

impl Shared {
    /// Stored events from `from_position` up to `until_position` (inclusive, capped at the
    /// durable head), lazily. The projection engine reads through this.
    pub(super) fn stored_events(&self, from_position: u64, until_position: u64) -> EventIter<'_> {
        let until = until_position.min(self.durable_head().0);
        EventIter {
            segments: self.storage.segments_from(from_position.max(1)),
            buffered: Vec::new().into_iter(),
            next_position: from_position.max(1),
            until_position: until,
            done: false,
        }
    }

    /// Calls `f` with every stored event from `from_position` up to `until_position` (inclusive,
    /// capped at the durable head) in position order, borrowed from its segment: one segment is
    /// decoded at a time and nothing is copied per event. The same checks as
    /// [`Shared::stored_events`]; stops at the first error, `f`'s or the log's.
    pub(super) fn for_each_stored_event<E: From<LogError>>(
        &self,
        from_position: u64,
        until_position: u64,
        mut f: impl FnMut(&StoredEventRefV1<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let until = until_position.min(self.durable_head().0);
        let mut next_position = from_position.max(1);
        for raw in self.storage.segments_from(next_position) {
            if next_position > until {
                break;
            }
            let raw = raw.map_err(LogError::from)?;
            // One allocation per segment (up to 1,024 events), none per event.
            let mut refs = Vec::new();
            decode_segment_refs(&raw, &mut refs)?;
            for e in &refs {
                if next_position > until {
                    break;
                }
                if e.position < next_position {
                    continue;
                }
                if e.position != next_position {
                    return Err(E::from(missing_position(next_position, e.position)));
                }
                f(e)?;
                next_position += 1;
            }
        }
        Ok(())
    }

    /// Up to `limit` events (at most [`MAX_READ_LIMIT`]) from `from_position`.
    pub(super) fn read_from(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let limit = limit.min(MAX_READ_LIMIT);
        let mut out = Vec::with_capacity(limit.min(1024));
        for e in self.stored_events(from_position, u64::MAX).take(limit) {
            out.push(RecordedEvent::try_from(e?)?);
        }
        Ok(out)
    }

    /// Up to `limit` events (at most [`MAX_READ_LIMIT`]) of one stream from `from_version`.
    pub(super) fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let limit = limit.min(MAX_READ_LIMIT);
        let head = self.durable_head().0;
        let entries = match self.indexes()?.as_ref() {
            Some(ix) => ix.stream_entries(stream, from_version, limit),
            None => Vec::new(),
        };
        let mut out = Vec::with_capacity(entries.len());
        for (version, position) in entries {
            if position > head {
                break;
            }
            let stored = stored_event_at(self.storage.as_ref(), position)?.ok_or_else(|| {
                StorageError::Corrupt {
                    path: self.storage.path().to_path_buf(),
                    detail: format!(
                        "stream {stream:?} version {version} points at missing position {position}: run `carelog verify`"
                    ),
                }
            })?;
            out.push(RecordedEvent::try_from(stored)?);
        }
        Ok(out)
    }

    /// The event at a position, if it is durable.
    pub(super) fn event_at(&self, position: u64) -> Result<Option<RecordedEvent>, LogError> {
        if position == 0 || position > self.durable_head().0 {
            return Ok(None);
        }
        match stored_event_at(self.storage.as_ref(), position)? {
            Some(e) => Ok(Some(RecordedEvent::try_from(e)?)),
            None => Ok(None),
        }
    }

    /// A subscription that yields every event after `after_position`: first what is stored,
    /// then live appends, each only once durable.
    pub(super) fn subscribe(self: &std::sync::Arc<Self>, after_position: u64) -> Subscription {
        Subscription {
            shared: self.clone(),
            last_position: after_position,
        }
    }
}

/// Follows the log. Each call to [`Subscription::next_batch`] returns the next durable events.
pub struct Subscription {
    shared: std::sync::Arc<Shared>,
    last_position: u64,
}

impl Subscription {
    /// The position of the last event handed out.
    pub fn last_position(&self) -> u64 {
        self.last_position
    }

    /// The next events after the last one handed out, at most `limit`; waits up to `timeout` for
    /// new durable events when caught up (an empty vector means none came in time).
    pub fn next_batch(
        &mut self,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        if self.shared.durable_head().0 <= self.last_position {
            self.shared.wait_past(self.last_position, timeout);
        }
        let Some(next) = self.last_position.checked_add(1) else {
            return Ok(Vec::new());
        };
        let events = self.shared.read_from(next, limit.max(1))?;
        if let Some(last) = events.last() {
            assert_eq!(
                last.position,
                self.last_position + events.len() as u64,
                "a subscription hands out dense positions"
            );
            self.last_position = last.position;
        }
        Ok(events)
    }
}
