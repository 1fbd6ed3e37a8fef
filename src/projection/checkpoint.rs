//! Checkpoints: projection states, and the engine's shared pairing book, saved as the log grows,
//! keyed by name, version and position, in files under `<store>/checkpoints/` (the book as
//! `book-vN-POSITION.ckpt`). Derived data: deleting them changes no answer, only
//! its speed. A checkpoint is used only if its projection version matches the code's and the
//! log still holds the chain hash it was taken at (so a checkpoint never outlives its log).

use std::any::Any;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AnyProjection;
use super::book::{BOOK_VERSION, PairingBook};
use crate::codec;
use crate::log::Log;

/// The name the engine's shared [`PairingBook`] is checkpointed under (no projection may take
/// it: the registry test checks).
pub const BOOK_NAME: &str = "book";

/// A checkpoint is saved every this many events.
pub const CHECKPOINT_INTERVAL_EVENTS: u64 = 50_000;
/// At most this many checkpoints are kept per projection version; older ones are pruned.
pub const MAX_CHECKPOINTS_PER_PROJECTION: usize = 64;

/// A checkpoint file's content. Frozen layout, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFileV1 {
    name: String,
    version: u32,
    position: u64,
    chain_hash: [u8; 32],
    state: Vec<u8>,
}

/// The checkpoints of one store.
pub struct Checkpoints {
    dir: PathBuf,
    interval_events: u64,
}

impl Checkpoints {
    /// The checkpoints beside the store in `store_dir`.
    pub fn for_store(store_dir: &Path) -> Self {
        Self {
            dir: store_dir.join("checkpoints"),
            interval_events: CHECKPOINT_INTERVAL_EVENTS,
        }
    }

    /// With another interval (tests use small ones).
    pub fn with_interval(mut self, interval_events: u64) -> Self {
        self.interval_events = interval_events.max(1);
        self
    }

    pub fn is_due(&self, position: u64) -> bool {
        position.is_multiple_of(self.interval_events)
    }

    fn file_name(name: &str, version: u32, position: u64) -> String {
        format!("{name}-v{version}-{position:020}.ckpt")
    }

    /// Positions of the saved checkpoints of a projection version, ascending.
    pub fn positions(&self, name: &str, version: u32) -> Vec<u64> {
        let prefix = format!("{name}-v{version}-");
        let mut out: Vec<u64> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().into_string().ok()?;
                let rest = file.strip_prefix(&prefix)?.strip_suffix(".ckpt")?;
                rest.parse().ok()
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The state at the latest usable checkpoint at or before `position`.
    pub fn load_best(
        &self,
        log: &Log,
        p: &dyn AnyProjection,
        position: u64,
    ) -> Option<(u64, Box<dyn Any + Send>)> {
        self.load_best_with(log, p.name(), p.version(), position, |bytes| {
            p.decode_state(bytes).ok()
        })
    }

    /// The engine's shared book at the latest usable checkpoint at or before `position`.
    pub fn load_best_book(&self, log: &Log, position: u64) -> Option<(u64, PairingBook)> {
        self.load_best_with(log, BOOK_NAME, BOOK_VERSION, position, |bytes| {
            codec::decode_state("the pairing book", bytes).ok()
        })
    }

    fn load_best_with<T>(
        &self,
        log: &Log,
        name: &str,
        version: u32,
        position: u64,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> Option<(u64, T)> {
        let candidates = self.positions(name, version);
        for at in candidates.into_iter().rev().filter(|at| *at <= position) {
            if let Some(state) = self.load(log, name, version, at).and_then(|b| decode(&b)) {
                return Some((at, state));
            }
        }
        None
    }

    /// The state bytes of a checkpoint, if its file is whole and its log still holds its
    /// chain hash.
    fn load(&self, log: &Log, name: &str, version: u32, at: u64) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.dir.join(Self::file_name(name, version, at))).ok()?;
        let file: CheckpointFileV1 = codec::decode_state("checkpoint", &bytes).ok()?;
        if file.name != name || file.version != version || file.position != at {
            return None;
        }
        let event = log.event_at(at).ok()??;
        if event.chain_hash != file.chain_hash {
            return None;
        }
        Some(file.state)
    }

    /// Saves a state; failures are ignored (a checkpoint only saves time).
    pub fn save(
        &self,
        p: &dyn AnyProjection,
        position: u64,
        chain_hash: &[u8; 32],
        state: &(dyn Any + Send),
    ) {
        self.save_with(p.name(), p.version(), position, chain_hash, || {
            p.encode_state(state).ok()
        });
    }

    /// Saves the engine's shared book; failures are ignored.
    pub fn save_book(&self, position: u64, chain_hash: &[u8; 32], book: &PairingBook) {
        self.save_with(BOOK_NAME, BOOK_VERSION, position, chain_hash, || {
            codec::encode_state("the pairing book", book).ok()
        });
    }

    fn save_with(
        &self,
        name: &str,
        version: u32,
        position: u64,
        chain_hash: &[u8; 32],
        encode: impl FnOnce() -> Option<Vec<u8>>,
    ) {
        let file_name = Self::file_name(name, version, position);
        if self.dir.join(&file_name).exists() {
            return;
        }
        let Some(bytes) = encode() else {
            return;
        };
        let file = CheckpointFileV1 {
            name: name.to_string(),
            version,
            position,
            chain_hash: *chain_hash,
            state: bytes,
        };
        let Ok(encoded) = codec::encode_state("checkpoint", &file) else {
            return;
        };
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let tmp = self.dir.join(format!("{file_name}.tmp"));
        // Write then rename, so a reader never sees half a checkpoint.
        if std::fs::write(&tmp, encoded).is_ok()
            && std::fs::rename(&tmp, self.dir.join(&file_name)).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
        self.prune(name, version);
    }

    fn prune(&self, name: &str, version: u32) {
        let positions = self.positions(name, version);
        if positions.len() <= MAX_CHECKPOINTS_PER_PROJECTION {
            return;
        }
        // Drop every other old one: spacing doubles, the newest stay.
        for at in positions
            .iter()
            .take(positions.len() - MAX_CHECKPOINTS_PER_PROJECTION / 2)
            .step_by(2)
        {
            let _ = std::fs::remove_file(self.dir.join(Self::file_name(name, version, *at)));
        }
    }
}
