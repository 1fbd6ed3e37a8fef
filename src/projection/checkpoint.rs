//! Checkpoints: projection states, and the engine's shared pairing book, saved as the log grows,
//! keyed by name, version and position, in files under `<store>/checkpoints/` (the book as
//! `book-vN-POSITION.ckpt`). Derived data: deleting them changes no answer, only
//! its speed. A checkpoint is used only if its projection version matches the code's, its state
//! has the checksum it was written with, and the log still holds the chain hash it was taken at
//! (so a checkpoint never outlives its log). A file that fails any of these is removed, so that
//! the next replay past its position writes it again.
//!
//! How often: at multiples of the interval (50,000 events), but no closer together than the
//! write budget allows ([`CHECKPOINT_BYTES_PER_EVENT_MAX`]): every checkpoint holds whole states,
//! and states grow with the log, so checkpoints at a fixed interval would write O(n²) bytes (a
//! first `report` on a 10 M-event log: ~95 GB). With the budget, a replay writes at most about
//! that many checkpoint bytes per event it replays, and the spacing grows with the states.

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

/// Checkpoints are saved at multiples of this many events (how far apart: [`SavePlan`]).
pub const CHECKPOINT_INTERVAL_EVENTS: u64 = 50_000;
/// At most this many checkpoints are kept per projection version; older ones are pruned.
pub const MAX_CHECKPOINTS_PER_PROJECTION: usize = 64;
/// Checkpoint bytes (all projections and the book together) a replay may write per event it
/// replays. Why this much: loading a checkpoint decodes its bytes at ~0.6 GB/s on two threads
/// here, and a replay folds ~1 M events/s, so at this spacing the events replayed after the
/// checkpoint (at most one spacing) take less time than the load itself. Closer checkpoints
/// would make an as-of query little faster and cost disk in proportion.
pub const CHECKPOINT_BYTES_PER_EVENT_MAX: u64 = 1024;

/// A state loaded from a checkpoint.
pub struct Loaded<T> {
    /// The checkpoint's position: the state has applied every event up to it.
    pub position: u64,
    pub state: T,
    /// The checkpoint file's size (what the write budget counts).
    pub bytes: u64,
}

/// The first bytes of a checkpoint file of layout 2.
const FILE_MAGIC: [u8; 4] = *b"CLC2";

/// A checkpoint file's content. Frozen layout, version 2 (version 1 had neither the magic nor
/// the checksum: one flipped bit gave a wrong state and no error; its files fail the magic and
/// are removed). The state is borrowed from the file's bytes when read (serde's `Vec<u8>`
/// would go a byte at a time; the bytes are the same: a length, then the bytes).
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFileV2<'a> {
    magic: [u8; 4],
    name: &'a str,
    version: u32,
    position: u64,
    chain_hash: [u8; 32],
    /// CRC-32 of `state`.
    state_crc32: u32,
    state: &'a [u8],
}

/// Whether a checkpoint file can be used.
enum Usable<'a> {
    /// Its state's bytes, within the file's.
    Yes(&'a [u8]),
    /// Never: damaged, of another layout, projection, version or log.
    No,
    /// Not known now (the log could not be read).
    Unknown,
}

/// The checkpoints of one store.
pub struct Checkpoints {
    dir: PathBuf,
    interval_events: u64,
    /// None: a checkpoint at every multiple of the interval, whatever its size (tests).
    bytes_per_event_max: Option<u64>,
}

/// When a replay saves checkpoints: at multiples of the interval, spaced so that the bytes
/// written stay within the budget (see [`CHECKPOINT_BYTES_PER_EVENT_MAX`]). One per replay.
#[derive(Debug, Clone, Copy)]
pub struct SavePlan {
    interval_events: u64,
    bytes_per_event_max: Option<u64>,
    /// The position of the last checkpoint saved (or the replay's start).
    last_at: u64,
    /// The bytes of the checkpoint files (states and book) saved there, or loaded there: the
    /// next checkpoint is spaced by them, since states only grow a little from one checkpoint
    /// to the next.
    last_bytes: u64,
}

impl SavePlan {
    /// Events from the last checkpoint to the next: the interval, or more when the last
    /// checkpoint's bytes spread over the interval would exceed the budget; always a multiple
    /// of the interval.
    pub fn spacing_events(&self) -> u64 {
        let interval = self.interval_events.max(1);
        let Some(budget) = self.bytes_per_event_max else {
            return interval;
        };
        let events = self.last_bytes.div_ceil(budget.max(1));
        events.div_ceil(interval).max(1).saturating_mul(interval)
    }

    /// Whether the replay saves checkpoints at `position`.
    pub fn is_due(&self, position: u64) -> bool {
        position.is_multiple_of(self.interval_events.max(1))
            && position >= self.last_at.saturating_add(self.spacing_events())
    }

    /// Notes that checkpoints of `bytes` in all were saved (or found, or encoded but not
    /// written) at `position`.
    pub fn saved(&mut self, position: u64, bytes: u64) {
        self.last_at = position;
        self.last_bytes = bytes;
    }
}

impl Checkpoints {
    /// The checkpoints beside the store in `store_dir`.
    pub fn for_store(store_dir: &Path) -> Self {
        Self {
            dir: store_dir.join("checkpoints"),
            interval_events: CHECKPOINT_INTERVAL_EVENTS,
            bytes_per_event_max: Some(CHECKPOINT_BYTES_PER_EVENT_MAX),
        }
    }

    /// With another interval (tests use small ones).
    pub fn with_interval(mut self, interval_events: u64) -> Self {
        self.interval_events = interval_events.max(1);
        self
    }

    /// With another write budget; None saves at every multiple of the interval, whatever the
    /// states' size (tests that check where checkpoints are).
    pub fn with_bytes_per_event_max(mut self, bytes_per_event_max: Option<u64>) -> Self {
        self.bytes_per_event_max = bytes_per_event_max;
        self
    }

    /// The plan of a replay that starts at `start` from states of `start_bytes` in all.
    pub fn plan(&self, start: u64, start_bytes: u64) -> SavePlan {
        SavePlan {
            interval_events: self.interval_events,
            bytes_per_event_max: self.bytes_per_event_max,
            last_at: start,
            last_bytes: start_bytes,
        }
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

    /// The size of the file of the latest checkpoint at or before `position` (0 when none): how
    /// long loading it will take, roughly.
    pub fn best_size(&self, name: &str, version: u32, position: u64) -> u64 {
        self.positions(name, version)
            .into_iter()
            .rev()
            .find(|at| *at <= position)
            .and_then(|at| {
                std::fs::metadata(self.dir.join(Self::file_name(name, version, at))).ok()
            })
            .map_or(0, |m| m.len())
    }

    /// The state at the latest usable checkpoint at or before `position`, with the position and
    /// the file's size. Unusable files met on the way are removed.
    pub fn load_best(
        &self,
        log: &Log,
        p: &dyn AnyProjection,
        position: u64,
    ) -> Option<Loaded<Box<dyn Any + Send>>> {
        self.load_best_with(log, p.name(), p.version(), position, |bytes| {
            p.decode_state(bytes).ok()
        })
    }

    /// The engine's shared book at the latest usable checkpoint at or before `position`.
    pub fn load_best_book(&self, log: &Log, position: u64) -> Option<Loaded<PairingBook>> {
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
    ) -> Option<Loaded<T>> {
        let candidates = self.positions(name, version);
        for at in candidates.into_iter().rev().filter(|at| *at <= position) {
            let path = self.dir.join(Self::file_name(name, version, at));
            let Ok(file) = std::fs::read(&path) else {
                continue;
            };
            match Self::usable_state(log, &file, name, version, at) {
                Usable::Yes(bytes) => {
                    if let Some(state) = decode(bytes) {
                        return Some(Loaded {
                            position: at,
                            state,
                            bytes: file.len() as u64,
                        });
                    }
                    // Whole and checked, yet not a state of this version: remove it too.
                    let _ = std::fs::remove_file(&path);
                }
                Usable::No => {
                    let _ = std::fs::remove_file(&path);
                }
                Usable::Unknown => {}
            }
        }
        None
    }

    /// A checkpoint file's state, if the file is whole (layout, checksum), is the one asked
    /// for, and its log still holds its chain hash.
    fn usable_state<'a>(
        log: &Log,
        file_bytes: &'a [u8],
        name: &str,
        version: u32,
        at: u64,
    ) -> Usable<'a> {
        let Ok(file) = codec::decode_state::<CheckpointFileV2<'_>>("checkpoint", file_bytes) else {
            return Usable::No;
        };
        if file.magic != FILE_MAGIC
            || file.name != name
            || file.version != version
            || file.position != at
            || crc32fast::hash(file.state) != file.state_crc32
        {
            return Usable::No;
        }
        match log.event_at(at) {
            Ok(Some(event)) if event.chain_hash == file.chain_hash => Usable::Yes(file.state),
            // Another log's, or one past this log's head.
            Ok(_) => Usable::No,
            // The log could not be read: say nothing of the file.
            Err(_) => Usable::Unknown,
        }
    }

    /// Saves a state; failures are ignored (a checkpoint only saves time). Returns the bytes
    /// of the checkpoint file: written, found already there, or encoded but not written (what
    /// the write budget counts either way; 0 when the state could not be encoded).
    pub fn save(
        &self,
        p: &dyn AnyProjection,
        position: u64,
        chain_hash: &[u8; 32],
        state: &(dyn Any + Send),
    ) -> u64 {
        self.save_with(p.name(), p.version(), position, chain_hash, || {
            p.encode_state(state).ok()
        })
    }

    /// Saves the engine's shared book; failures are ignored. Returns the bytes as [`Self::save`].
    pub fn save_book(&self, position: u64, chain_hash: &[u8; 32], book: &PairingBook) -> u64 {
        self.save_with(BOOK_NAME, BOOK_VERSION, position, chain_hash, || {
            codec::encode_state("the pairing book", book).ok()
        })
    }

    fn save_with(
        &self,
        name: &str,
        version: u32,
        position: u64,
        chain_hash: &[u8; 32],
        encode: impl FnOnce() -> Option<Vec<u8>>,
    ) -> u64 {
        let file_name = Self::file_name(name, version, position);
        if let Ok(existing) = std::fs::metadata(self.dir.join(&file_name)) {
            return existing.len();
        }
        let Some(bytes) = encode() else {
            return 0;
        };
        let file = CheckpointFileV2 {
            magic: FILE_MAGIC,
            name,
            version,
            position,
            chain_hash: *chain_hash,
            state_crc32: crc32fast::hash(&bytes),
            state: &bytes,
        };
        let Ok(encoded) = codec::encode_state("checkpoint", &file) else {
            return 0;
        };
        let file_bytes = encoded.len() as u64;
        if std::fs::create_dir_all(&self.dir).is_err() {
            return file_bytes;
        }
        // A name of its own (process, save): two replays of one process (HTTP) saving the same
        // position would otherwise write one file at once and rename a mix of both.
        let save_number = SAVE_NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            "{file_name}.{}.{save_number}{TMP_SUFFIX}",
            std::process::id()
        ));
        // Write then rename, so a reader never sees half a checkpoint.
        let written = std::fs::write(&tmp, encoded).is_ok()
            && std::fs::rename(&tmp, self.dir.join(&file_name)).is_ok();
        if !written {
            let _ = std::fs::remove_file(&tmp);
        }
        self.prune(name, version);
        file_bytes
    }

    fn prune(&self, name: &str, version: u32) {
        self.remove_stale_temporaries(name, version);
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

    /// Removes the temporary files of saves by other processes: a process killed between the
    /// write and the rename leaves one behind, and no other process can still be writing it
    /// (one process at a time opens a store).
    fn remove_stale_temporaries(&self, name: &str, version: u32) {
        let prefix = format!("{name}-v{version}-");
        let own = format!(".{}.", std::process::id());
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let Ok(file) = entry.file_name().into_string() else {
                continue;
            };
            if file.starts_with(&prefix) && file.ends_with(TMP_SUFFIX) && !file.contains(&own) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Numbers the saves of this process, for their temporary files' names.
static SAVE_NUMBER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How a checkpoint file being written ends, before it is renamed into place.
const TMP_SUFFIX: &str = ".tmp";

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout with the state as serde's `Vec<u8>`: the same bytes as the borrowed one.
    #[derive(Serialize)]
    struct OwnedV2 {
        magic: [u8; 4],
        name: String,
        version: u32,
        position: u64,
        chain_hash: [u8; 32],
        state_crc32: u32,
        state: Vec<u8>,
    }

    #[test]
    fn the_file_layout_is_frozen() {
        let state: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
        let crc = crc32fast::hash(&state);
        let file = CheckpointFileV2 {
            magic: FILE_MAGIC,
            name: "funds",
            version: 7,
            position: 50_000,
            chain_hash: [0xAB; 32],
            state_crc32: crc,
            state: &state,
        };
        let bytes = codec::encode_state("checkpoint", &file).unwrap();
        let owned = OwnedV2 {
            magic: FILE_MAGIC,
            name: "funds".into(),
            version: 7,
            position: 50_000,
            chain_hash: [0xAB; 32],
            state_crc32: crc,
            state: state.clone(),
        };
        assert_eq!(bytes, codec::encode_state("checkpoint", &owned).unwrap());
        // The magic, name (length 5, bytes), version 7, position 50,000 (0xFB + u16 LE), the
        // hash, the CRC (a varint: 0xFC + u32 LE), then the state's length (0xFB + 300 as
        // u16 LE) and its bytes: the state ends the file.
        let mut want = b"CLC2".to_vec();
        want.extend_from_slice(&[5, b'f', b'u', b'n', b'd', b's', 7, 0xFB, 0x50, 0xC3]);
        want.extend_from_slice(&[0xAB; 32]);
        want.push(0xFC);
        want.extend_from_slice(&crc.to_le_bytes());
        want.extend_from_slice(&[0xFB, 0x2C, 0x01]);
        want.extend_from_slice(&state);
        assert_eq!(bytes, want);
        let back: CheckpointFileV2<'_> = codec::decode_state("checkpoint", &bytes).unwrap();
        assert_eq!(
            (back.name, back.version, back.position),
            ("funds", 7, 50_000)
        );
        assert_eq!(back.state, &state[..]);
        assert!(std::ptr::eq(
            back.state.as_ptr(),
            bytes[bytes.len() - 300..].as_ptr()
        ));
    }

    #[test]
    fn the_spacing_covers_the_last_bytes_at_the_budget() {
        let checkpoints = Checkpoints::for_store(Path::new("/nonexistent")).with_interval(10);
        let mut plan = checkpoints.plan(0, 0);
        assert_eq!(plan.spacing_events(), 10, "nothing saved yet: the interval");
        assert!(!plan.is_due(5) && plan.is_due(10));
        plan.saved(10, 10 * CHECKPOINT_BYTES_PER_EVENT_MAX + 1);
        assert_eq!(
            plan.spacing_events(),
            20,
            "rounded up to a multiple of the interval"
        );
        assert!(!plan.is_due(20) && plan.is_due(30) && !plan.is_due(35) && plan.is_due(40));
        plan.saved(u64::MAX - 15, u64::MAX);
        assert!(
            !plan.is_due(u64::MAX - 5),
            "no overflow past the last position"
        );
        let every = checkpoints
            .with_bytes_per_event_max(None)
            .plan(30, u64::MAX);
        assert!(every.is_due(40), "without a budget: every multiple");
        let zero = Checkpoints::for_store(Path::new("/nonexistent"))
            .with_interval(10)
            .with_bytes_per_event_max(Some(0))
            .plan(0, 100);
        assert_eq!(
            zero.spacing_events(),
            100,
            "a budget of 0 counts as 1 byte per event"
        );
    }
}
