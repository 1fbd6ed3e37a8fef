//! The id and stream indexes, in memory, folded from the index chunks that every commit writes
//! atomically with its events.
//!
//! Persisting an index as one chunk per commit (not a sled key per event) keeps a commit at a
//! few sled operations; the price is this in-memory form, about 40 bytes per event, loaded on
//! first use (the first append, id lookup or stream read) and never by commands that only
//! replay (report, verify, export).

use std::collections::HashMap;

use super::storage::Storage;
use super::types::LogError;
use crate::codec::{self, IndexChunkV1, StoredEventV1};

/// Where each event id is, and each stream's positions by version.
#[derive(Debug, Default)]
pub struct Indexes {
    ids: HashMap<[u8; 16], u64>,
    /// stream → positions; version v is at index v - 1.
    streams: HashMap<String, Vec<u64>>,
    /// The last position indexed.
    position: u64,
}

impl Indexes {
    /// Loads every index chunk up to `head` (inclusive).
    pub fn load(storage: &dyn Storage, head: u64) -> Result<Self, LogError> {
        let mut indexes = Indexes::default();
        for raw in storage.index_chunks() {
            let (first, bytes) = raw?;
            if first > head {
                break;
            }
            let chunk: IndexChunkV1 = codec::decode("index chunk", &bytes)?;
            for (i, e) in chunk.entries.into_iter().enumerate() {
                let position = first + i as u64;
                if position > head {
                    break;
                }
                indexes.add(e.event_id, e.stream, e.stream_version, position);
            }
        }
        Ok(indexes)
    }

    fn add(&mut self, event_id: [u8; 16], stream: String, stream_version: u64, position: u64) {
        self.ids.insert(event_id, position);
        let positions = self.streams.entry(stream).or_default();
        // A damaged chunk must not make versions disagree silently: verify names it.
        if positions.len() as u64 + 1 == stream_version {
            positions.push(position);
        }
        self.position = self.position.max(position);
    }

    /// Folds in a commit's events, just made durable.
    pub fn add_events(&mut self, events: &[StoredEventV1]) {
        for e in events {
            assert!(e.position > self.position, "the index only grows");
            self.add(e.event_id, e.stream.clone(), e.stream_version, e.position);
        }
    }

    pub fn position_of(&self, event_id: &[u8; 16]) -> Option<u64> {
        self.ids.get(event_id).copied()
    }

    /// The stream's last version (0 when it has no events).
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |p| p.len() as u64)
    }

    /// (version, position) of a stream's events from `from_version`, at most `limit`.
    pub fn stream_entries(&self, stream: &str, from_version: u64, limit: usize) -> Vec<(u64, u64)> {
        let Some(positions) = self.streams.get(stream) else {
            return Vec::new();
        };
        let start = from_version.max(1) - 1;
        positions
            .iter()
            .enumerate()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(limit)
            .map(|(i, p)| (i as u64 + 1, *p))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The index chunk of a commit's events.
pub fn chunk_of(events: &[StoredEventV1]) -> IndexChunkV1 {
    IndexChunkV1 {
        entries: events
            .iter()
            .map(|e| codec::IndexEntryV1 {
                event_id: e.event_id,
                stream: e.stream.clone(),
                stream_version: e.stream_version,
            })
            .collect(),
    }
}
