//! The storage engine on sled `=0.34.7`: [`SledStorage`] implements [`Storage`]. Nothing
//! outside this folder names sled, so swapping the engine touches one folder: `open.rs` (sled's
//! open, its retry and snapshot set-aside, the header, the replay's execution), `recovery.rs`
//! (the replay planner, pure), `journal.rs` (the commit journal's file), `keys.rs` (the key
//! layout of the one tree).
//!
//! sled caveats this file works around: a write is durable only after `flush` (the background
//! flush is no guarantee), so the writer flushes before it acknowledges; opening a locked store is
//! an `Io` error, told apart here so the user gets "locked", not "corrupt".
//!
//! A commit is plain inserts, not an `apply_batch`: its index chunks and segments, then the head
//! last. sled recovers a prefix of what one thread wrote (its log is replayed in order up to the
//! first torn entry), so the head is the commit point: a crash before it leaves keys past the
//! stored head, never a head past its events. Those leftovers were never acknowledged; the next
//! open sets them aside under `Q` keys ([`Storage::set_aside_after`], kept as evidence, and
//! told apart from keys that do not continue the head). Measured: an atomic batch costs sled a
//! second log write and `sync_file_range` per flush (~3.7k vs ~4.7k durable commits/s here).
//!
//! A commit is made durable by the commit journal ([`journal`]), not by flushing sled:
//! [`Storage::commit`] writes to sled (in memory) and queues the same writes as a journal
//! record; [`Storage::flush`] appends the queued records to the journal with one `fdatasync`.
//! sled itself is flushed when the journal is full (which starts a new journal generation), at
//! a clean close, and by the open paths that change the store; its own 500 ms background flush
//! stays on (it is also what runs sled's segment cleaning), and a flush also `fdatasync`s
//! sled's file whenever sled grew it since the last sync, so that what sled wrote is never left
//! without its size for longer than one group commit. An open replays the records that continue
//! sled's head (what a crash kept in the journal but not in sled) before anything reads the
//! store, restores keys of older records that sled lost, and reports it
//! ([`crate::log::OpenReport::replayed`]). A journal is only ever reset after sled holds all it says,
//! durably: at every open (after the replay), when full, and at a clean close, never after a

pub mod anchor;
pub mod journal;
pub mod keys;
mod open;
mod recovery;
mod restore;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::codec::{self, StoreHeaderV1, StoredHeadV1};
use crate::log::storage::{
    Commit, DiscardedTail, RawSegment, Storage, StorageError, io_failure, is_storage_full,
};
use journal::{Appended, Journal};

/// The sled implementation.
pub struct SledStorage {
    path: PathBuf,
    /// sled itself: None only while [`Storage::recover`] reopens it (sled 0.34 refuses every
    /// write for the rest of a database's life once one of its own writes failed).
    engine: RwLock<Option<Engine>>,
    /// sled's segment size for this store, as it was opened with.
    segment_bytes: usize,
    /// How the store was opened (a recovery reopens sled the same way).
    options: SledOptions,
    /// Per commit written to sled and not yet durable in the journal, oldest first: each
    /// write's key and the value it replaced (None: the key was absent), so that a commit that
    /// failed can be taken back out of sled. Bounded like `unjournaled`.
    undo: Mutex<VecDeque<CommitUndo>>,
    /// Held for a whole append to the journal (and a sled flush when it is full), so that
    /// records reach it in commit order.
    journal: Mutex<Journal>,
    /// Journal payloads of the commits written to sled and not yet to the journal, oldest
    /// first. The writer keeps at most a few commits in flight, which bounds it.
    unjournaled: Mutex<Vec<Vec<u8>>>,
    /// Set once the open (and its replay) succeeded; cleared by any failed flush. A clean close
    /// resets the journal only when set: after a failed open or flush, the journal may hold
    /// what sled does not.
    healthy: AtomicBool,
    /// Why a commit or flush failed, once one did: every later flush fails too (the writer
    /// poisons itself on the first; this keeps a second caller from being told its commits are
    /// durable) until [`Storage::recover`] restored the durable head.
    failure: Mutex<Option<Failed>>,
    /// The length of sled's file when it was last synced (see the module overview).
    synced_db_bytes: AtomicU64,
    /// SHA-256 of the store header's bytes, as the anchor records it ([`anchor`]).
    header_sha256: [u8; 32],
}

/// The sled database and its log file, replaced whole when a recovery reopens sled.
struct Engine {
    db: sled::Db,
    tree: sled::Tree,
    /// sled's log file, synced with `fdatasync` after each flush: sled 0.34 only calls
    /// `sync_file_range`, which neither flushes the disk's cache nor the file's size.
    log_file: Arc<std::fs::File>,
}

/// Why a commit or flush failed, and whether the disk was full (then a recovery may follow).
#[derive(Clone)]
struct Failed {
    reason: String,
    disk_full: bool,
}

/// One commit's sled writes: key and the value it replaced.
type CommitUndo = Vec<(Vec<u8>, Option<sled::IVec>)>;

/// What a caught panic said.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The anchor floor a head makes: its position and chain hash (the genesis for none).
fn floor_of(head: Option<&StoredHeadV1>) -> (u64, [u8; 32]) {
    head.map_or((0, crate::log::hash::GENESIS_CHAIN), |h| {
        (h.position, h.chain_hash)
    })
}

/// How to open a sled store (see [`crate::log::OpenOptions`]).
#[derive(Debug, Clone, Copy)]
pub struct SledOptions {
    pub create: bool,
    pub cache_capacity_bytes: u64,
    pub journal_max_bytes: u64,
    /// sled's background flush (and segment cleaning) period; None turns it off.
    pub sled_flush_every_ms: Option<u64>,
}

/// The most events a crash can leave in sled past its head: the commits the writer has in
/// flight, written to sled and not yet to the journal, never acknowledged.
const UNACKNOWLEDGED_EVENTS_MAX: u64 =
    (crate::log::writer::COMMITS_IN_FLIGHT * crate::log::MAX_COMMIT_EVENTS) as u64;

/// See [`SledStorage::let_sled_evict`].
const SCAN_EXTRA_READS_PER_VALUE: usize = 8;

impl SledStorage {
    /// Flushes sled itself and syncs its log file: after this, the journal's records are
    /// redundant.
    fn flush_sled(&self) -> Result<(), StorageError> {
        self.db()?.flush().map_err(|e| self.io(e))?;
        sync_blob_files(&self.path)?;
        let log_file = self.log_file()?;
        let bytes = file_bytes(&self.path, &log_file)?;
        sync_sled_file(&self.path, &log_file)?;
        self.synced_db_bytes.store(bytes, Ordering::Release);
        Ok(())
    }

    /// Flushes sled, then starts the journal's next generation: first the anchor takes as its
    /// floor the head sled held before the flush (a commit written to sled while the flush runs
    /// may not be durable, and is not the journal's until its record is), then the journal is
    /// reset, so every commit after the floor is always in the journal.
    fn flush_and_renew_journal(&self, journal: &mut Journal) -> Result<(), StorageError> {
        let head = self.head()?;
        self.flush_sled()?;
        self.write_anchor(floor_of(head.as_ref()))?;
        journal.reset()
    }

    /// Writes the anchor with this floor (position, chain hash): sled must hold it durably.
    fn write_anchor(
        &self,
        (floor_position, floor_chain_hash): (u64, [u8; 32]),
    ) -> Result<(), StorageError> {
        anchor::write(
            &self.path,
            &anchor::Anchor {
                header_sha256: self.header_sha256,
                floor_position,
                floor_chain_hash,
            },
        )
    }

    /// Syncs sled's file when sled grew it since the last sync: what sled writes past the old
    /// end needs the file's new size synced too, and only a sync of that file does it.
    fn sync_sled_file_if_grown(&self) -> Result<(), StorageError> {
        let log_file = self.log_file()?;
        let bytes = file_bytes(&self.path, &log_file)?;
        if bytes != self.synced_db_bytes.load(Ordering::Acquire) {
            sync_sled_file(&self.path, &log_file)?;
            self.synced_db_bytes.store(bytes, Ordering::Release);
        }
        Ok(())
    }

    /// Records the first failed flush (see `failure`) and returns its error.
    fn failed(&self, e: StorageError) -> StorageError {
        self.healthy.store(false, Ordering::Release);
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| Failed {
                reason: e.to_string(),
                disk_full: e.is_disk_full(),
            });
        e
    }

    /// Forgets the undo of the oldest `commits`: they are durable, never taken back out.
    fn forget_undo(&self, commits: usize) -> Result<(), StorageError> {
        let mut undo = self.undo.lock().map_err(|_| self.poisoned())?;
        let commits = commits.min(undo.len());
        undo.drain(..commits);
        Ok(())
    }

    /// sled's tree (a handle: cheap to clone, and what an iterator keeps).
    fn tree(&self) -> Result<sled::Tree, StorageError> {
        self.with_engine(|engine| engine.tree.clone())
    }

    fn db(&self) -> Result<sled::Db, StorageError> {
        self.with_engine(|engine| engine.db.clone())
    }

    fn log_file(&self) -> Result<Arc<std::fs::File>, StorageError> {
        self.with_engine(|engine| engine.log_file.clone())
    }

    fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> Result<T, StorageError> {
        let guard = self.engine.read().map_err(|_| self.poisoned())?;
        guard.as_ref().map(f).ok_or_else(|| StorageError::Io {
            path: self.path.clone(),
            detail: "sled is being reopened after a failed write; retry".into(),
        })
    }

    fn lock_journal(&self) -> Result<MutexGuard<'_, Journal>, StorageError> {
        self.journal.lock().map_err(|_| self.poisoned())
    }

    fn poisoned(&self) -> StorageError {
        StorageError::Io {
            path: self.path.clone(),
            detail: "a thread failed while writing the commit journal; restart the process \
                     (the next open replays the journal)"
                .into(),
        }
    }

    fn io(&self, e: sled::Error) -> StorageError {
        sled_error(&self.path, e)
    }
}

fn sled_error(path: &Path, e: sled::Error) -> StorageError {
    match e {
        sled::Error::Corruption { .. } => StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        sled::Error::Io(ref io) if is_storage_full(io) => StorageError::DiskFull {
            path: path.to_path_buf(),
            detail: format!("sled: {e}"),
        },
        other => StorageError::Io {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// sled's flush, then an `fdatasync` of its file (sled only calls `sync_file_range`).
fn flush_and_sync(
    path: &Path,
    db: &sled::Db,
    log_file: &std::fs::File,
) -> Result<(), StorageError> {
    db.flush().map_err(|e| sled_error(path, e))?;
    sync_blob_files(path)?;
    sync_sled_file(path, log_file)
}

/// Syncs sled's blob files and their directory: sled 0.34 never does. New stores keep every
/// value and node inline (see [`SLED_SEGMENT_BYTES`]), so there are none, almost always; a
/// store made with sled's old segment size has some, and so may a node sled merges after a
/// large set-aside. Run before sled's own file is synced, whose entries point into them.
fn sync_blob_files(path: &Path) -> Result<(), StorageError> {
    let dir = path.join("blobs");
    let io = |doing: &str, e: std::io::Error| {
        io_failure(&dir, format!("{doing} sled's blob files: {e}"), &e)
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("list", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("list", e))?;
        match std::fs::File::open(entry.path()) {
            Ok(file) => file.sync_data().map_err(|e| io("sync", e))?,
            // sled removes blobs it no longer needs, maybe while this runs.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("open", e)),
        }
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync the directory of", e))
}

fn sync_sled_file(path: &Path, log_file: &std::fs::File) -> Result<(), StorageError> {
    log_file
        .sync_data()
        .map_err(|e| io_failure(path, format!("fdatasync of sled's file: {e}"), &e))
}

fn file_bytes(path: &Path, file: &std::fs::File) -> Result<u64, StorageError> {
    Ok(file
        .metadata()
        .map_err(|e| StorageError::Io {
            path: path.to_path_buf(),
            detail: format!("stat of sled's file: {e}"),
        })?
        .len())
}

impl SledStorage {
    /// The keys in `from..=to`, collected first: removing while iterating a sled range is not
    /// defined to be stable.
    fn keys_in(&self, from: [u8; 9], to: [u8; 9]) -> Result<Vec<sled::IVec>, StorageError> {
        self.tree()?
            .range(from..=to)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| self.io(e))
    }

    /// Whether the segment at `key` continues `head`: its first event follows the head's
    /// position and chain hash (the genesis chain for an empty log).
    fn continues(
        &self,
        key: &sled::IVec,
        head: Option<&StoredHeadV1>,
    ) -> Result<bool, StorageError> {
        let Some(bytes) = self.tree()?.get(key).map_err(|e| self.io(e))? else {
            return Ok(false);
        };
        Ok(recovery::segment_continues(&bytes, head))
    }

    /// Lets sled's cache evict during a long scan: reads `key` (just read by the scan) again a
    /// few times. sled 0.34's LRU queues accesses per shard (256 shards, 64 accesses each) and
    /// evicts nothing until a shard's queue is full; a scan makes about one access per value,
    /// so on a log of a million events no queue ever filled, and every tree node the scan read
    /// stayed in memory whatever the cache capacity (spacejam/sled#1036). Measured on a
    /// 1 M-event log: rebuild peak RSS 479 → 293 MiB, no slower (4 reads: 304 MiB; 16: 292).
    fn let_sled_evict(tree: &sled::Tree, key: &[u8]) {
        for _ in 0..SCAN_EXTRA_READS_PER_VALUE {
            // Only the access matters; an error here would show on the scan's own next read.
            let _ = tree.get(key);
        }
    }
}

impl Storage for SledStorage {
    fn path(&self) -> &Path {
        &self.path
    }

    fn header(&self) -> Result<StoreHeaderV1, StorageError> {
        let bytes = self
            .tree()?
            .get(keys::HEADER)
            .map_err(|e| self.io(e))?
            .ok_or_else(|| StorageError::Corrupt {
                path: self.path.clone(),
                detail: "the store header is missing".into(),
            })?;
        Ok(codec::decode("store header", &bytes)?)
    }

    fn head(&self) -> Result<Option<StoredHeadV1>, StorageError> {
        match self.tree()?.get(keys::HEAD).map_err(|e| self.io(e))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode("durable head", &bytes).map_err(
                |e| StorageError::Corrupt {
                    path: self.path.clone(),
                    detail: e.to_string(),
                },
            )?)),
        }
    }

    fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        // Encode first: a failure here must leave nothing written.
        let head = match &commit.head {
            Some(h) => Some(codec::encode("durable head", h)?),
            None => None,
        };
        let chunk_keys: Vec<[u8; 9]> = commit
            .index_chunks
            .iter()
            .map(|(first, _)| keys::index_chunk(*first))
            .collect();
        let segment_keys: Vec<[u8; 9]> = commit
            .segments
            .iter()
            .map(|(first, _)| keys::segment(*first))
            .collect();
        let tree_keys: Vec<[u8; 9]> = commit
            .tree_chunks
            .iter()
            .map(|(first, _)| keys::tree_hashes(*first))
            .collect();
        // The commit point (see the module overview): written after everything it covers.
        let writes: Vec<(&[u8], &[u8])> = chunk_keys
            .iter()
            .zip(&commit.index_chunks)
            .chain(segment_keys.iter().zip(&commit.segments))
            .chain(tree_keys.iter().zip(&commit.tree_chunks))
            .map(|(key, (_, bytes))| (key.as_slice(), bytes.as_slice()))
            .chain(head.as_deref().map(|bytes| (keys::HEAD, bytes)))
            .collect();
        let record = journal::encode_payload(&writes);
        let tree = self.tree()?;
        let mut undo = self.undo.lock().map_err(|_| self.poisoned())?;
        // Before the first insert: whatever of the commit sled takes must be undoable.
        undo.push_back(Vec::with_capacity(writes.len()));
        for (key, value) in writes {
            let replaced = tree
                .insert(key, value)
                .map_err(|e| self.failed(self.io(e)))?;
            if let Some(writes) = undo.back_mut() {
                writes.push((key.to_vec(), replaced));
            }
        }
        drop(undo);
        // Only a commit sled took whole is journaled: a failed one is never replayed.
        self.unjournaled
            .lock()
            .map_err(|_| self.poisoned())?
            .push(record);
        Ok(())
    }

    fn set_aside_after(
        &self,
        head: Option<&StoredHeadV1>,
    ) -> Result<Option<DiscardedTail>, StorageError> {
        let head_position = head.map_or(0, |h| h.position);
        let Some(past) = head_position.checked_add(1) else {
            return Ok(None);
        };
        let segments = self.keys_in(keys::segment(past), keys::segment(u64::MAX))?;
        let chunks = self.keys_in(keys::index_chunk(past), keys::index_chunk(u64::MAX))?;
        // The tree hashes of a commit cut before its head: those from the head's stored count on.
        let tree_past = crate::merkle::stored_count(head_position);
        let tree_keys = self.keys_in(keys::tree_hashes(tree_past), keys::tree_hashes(u64::MAX))?;
        // What a crash leaves past the head is what the writer had in flight and the journal
        // never took (never acknowledged). More than that means the head was lost or changed
        // (history sled still holds), and setting it aside would shorten the log.
        let furthest = [
            segments.last().and_then(|k| keys::segment_position(k)),
            chunks.last().and_then(|k| keys::index_chunk_position(k)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(furthest) = furthest
            && furthest - head_position > UNACKNOWLEDGED_EVENTS_MAX
        {
            return Err(StorageError::Damaged {
                path: self.path.clone(),
                detail: format!(
                    "sled holds events up to at least position {furthest} past its head \
                     (position {head_position}, key `M`): more than the \
                     {UNACKNOWLEDGED_EVENTS_MAX} a crash can leave of commits never \
                     acknowledged, so the head was lost or changed"
                ),
            });
        }
        if segments.is_empty() && chunks.is_empty() && tree_keys.is_empty() {
            return Ok(None);
        }
        let tree = self.tree()?;
        for key in &tree_keys {
            if let Some(value) = tree.get(key).map_err(|e| self.io(e))? {
                tree.insert(keys::set_aside(key), value)
                    .map_err(|e| self.io(e))?;
            }
            tree.remove(key).map_err(|e| self.io(e))?;
        }
        if segments.is_empty() && chunks.is_empty() {
            self.flush_sled()?;
            return Ok(None);
        }
        let from_position = [
            segments.first().and_then(|k| keys::segment_position(k)),
            chunks.first().and_then(|k| keys::index_chunk_position(k)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(past);
        // A commit writes its index chunks before its segments: a crash may leave chunks alone.
        let continues_head = match segments.first() {
            Some(first) => {
                keys::segment_position(first) == Some(past) && self.continues(first, head)?
            }
            None => from_position == past,
        };
        for key in segments.iter().chain(&chunks) {
            // Nothing the head covers is ever set aside.
            assert!(
                keys::segment_position(key)
                    .or_else(|| keys::index_chunk_position(key))
                    .is_some_and(|at| at > head_position),
                "only keys past the head are set aside"
            );
            if let Some(value) = tree.get(key).map_err(|e| self.io(e))? {
                tree.insert(keys::set_aside(key), value)
                    .map_err(|e| self.io(e))?;
            }
            tree.remove(key).map_err(|e| self.io(e))?;
        }
        self.flush_sled()?;
        Ok(Some(DiscardedTail {
            from_position,
            segments: segments.len() as u64,
            index_chunks: chunks.len() as u64,
            continues_head,
        }))
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut journal = self.lock_journal()?;
        if let Some(failed) = self.failure.lock().map_err(|_| self.poisoned())?.clone() {
            let path = self.path.clone();
            return Err(if failed.disk_full {
                StorageError::DiskFull {
                    path,
                    detail: format!("an earlier write failed: {}", failed.reason),
                }
            } else {
                StorageError::Io {
                    path,
                    detail: format!(
                        "an earlier commit or flush failed ({}); restart the process (the next open replays the journal)",
                        failed.reason
                    ),
                }
            });
        }
        let records = std::mem::take(&mut *self.unjournaled.lock().map_err(|_| self.poisoned())?);
        let journaled = records.len();
        if records.is_empty() {
            // Whatever was queued before this call went with a flush that held the journal.
            return Ok(());
        }
        // sled's file first: the journal's sync flushes the disk's cache, and what sled moved
        // must not become durable after the copy it overwrote.
        let appended = self
            .sync_sled_file_if_grown()
            .and_then(|()| journal.append(&records))
            .map_err(|e| self.failed(e))?;
        match appended {
            // Those commits are durable: nothing of them is ever taken back out.
            Appended::Written => self.forget_undo(journaled),
            // Every queued record's writes are in sled already: flushing it covers them.
            Appended::Full => {
                // The head (and the commits in sled under it) read together: the anchor may
                // take that head as its floor, so none of them may be taken back out after.
                let (head, in_sled) = {
                    let undo = self.undo.lock().map_err(|_| self.poisoned())?;
                    (self.head()?, undo.len())
                };
                self.flush_sled().map_err(|e| self.failed(e))?;
                self.forget_undo(in_sled)?;
                // These commits are durable in sled now. Renewing the journal failing stops
                // later flushes (until a recovery rewrites its header), not these.
                if let Err(e) = self
                    .write_anchor(floor_of(head.as_ref()))
                    .and_then(|()| journal.reset())
                {
                    self.failed(e);
                }
                Ok(())
            }
        }
    }

    fn segments_from(
        &self,
        from_position: u64,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        let tree = match self.tree() {
            Ok(tree) => tree,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        // The segment holding `from_position` starts at or before it.
        let start = match tree
            .range(keys::segment(0)..=keys::segment(from_position.max(1)))
            .next_back()
        {
            Some(Ok((k, _))) => k.to_vec(),
            _ => keys::segment(from_position.max(1)).to_vec(),
        };
        let end = keys::segment(u64::MAX);
        Box::new(tree.range(start..=end.to_vec()).map(move |entry| {
            let (k, v) = entry.map_err(|e| self.io(e))?;
            Self::let_sled_evict(&tree, &k);
            let first = keys::segment_position(&k).ok_or_else(|| StorageError::Corrupt {
                path: self.path.clone(),
                detail: "a segment key is damaged".into(),
            })?;
            Ok((first, v.to_vec()))
        }))
    }

    fn index_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        let tree = match self.tree() {
            Ok(tree) => tree,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(
            tree.clone()
                .scan_prefix([keys::INDEX_PREFIX])
                .map(move |entry| {
                    let (k, v) = entry.map_err(|e| self.io(e))?;
                    Self::let_sled_evict(&tree, &k);
                    let first =
                        keys::index_chunk_position(&k).ok_or_else(|| StorageError::Corrupt {
                            path: self.path.clone(),
                            detail: "an index chunk key is damaged".into(),
                        })?;
                    Ok((first, v.to_vec()))
                }),
        )
    }

    fn tree_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StorageError> {
        let missing = |index: u64, why: &str| StorageError::Corrupt {
            path: self.path.clone(),
            detail: format!("Merkle tree hash {index} {why}: run `carelog verify`"),
        };
        let mut out = Vec::with_capacity(indexes.len());
        let tree = self.tree()?;
        for &index in indexes {
            let found = tree
                .range(keys::tree_hashes(0)..=keys::tree_hashes(index))
                .next_back()
                .transpose()
                .map_err(|e| self.io(e))?;
            let Some((key, value)) = found else {
                return Err(missing(index, "is not stored"));
            };
            let first =
                keys::tree_hashes_index(&key).ok_or_else(|| missing(index, "has a damaged key"))?;
            let at = usize::try_from(index - first)
                .ok()
                .and_then(|i| i.checked_mul(32))
                .ok_or_else(|| missing(index, "is out of range"))?;
            let bytes = value
                .get(at..at + 32)
                .ok_or_else(|| missing(index, "is not stored"))?;
            let mut h = [0u8; 32];
            h.copy_from_slice(bytes);
            out.push(h);
        }
        Ok(out)
    }

    fn tree_stored_count(&self) -> Result<u64, StorageError> {
        let last = self
            .tree()?
            .range(keys::tree_hashes(0)..=keys::tree_hashes(u64::MAX))
            .next_back()
            .transpose()
            .map_err(|e| self.io(e))?;
        Ok(match last {
            None => 0,
            Some((key, value)) => {
                keys::tree_hashes_index(&key).unwrap_or(0) + (value.len() / 32) as u64
            }
        })
    }

    fn tree_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        let tree = match self.tree() {
            Ok(tree) => tree,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(
            tree.clone()
                .scan_prefix([keys::TREE_PREFIX])
                .map(move |entry| {
                    let (k, v) = entry.map_err(|e| self.io(e))?;
                    Self::let_sled_evict(&tree, &k);
                    let first =
                        keys::tree_hashes_index(&k).ok_or_else(|| StorageError::Corrupt {
                            path: self.path.clone(),
                            detail: "a Merkle tree key is damaged".into(),
                        })?;
                    Ok((first, v.to_vec()))
                }),
        )
    }

    fn write_tree_chunks(&self, chunks: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError> {
        let tree = self.tree()?;
        for (first, bytes) in chunks {
            tree.insert(keys::tree_hashes(first), bytes)
                .map_err(|e| self.io(e))?;
        }
        self.flush_sled()
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        let journal_bytes = self.lock_journal()?.bytes_on_disk();
        Ok(self.db()?.size_on_disk().map_err(|e| self.io(e))? + journal_bytes)
    }

    fn recover(&self) -> Result<(), StorageError> {
        self.recover_durable_head()
    }
}

impl Drop for SledStorage {
    /// A clean close: sled takes everything, and the journal starts a new generation, so that
    /// the next open has nothing to replay (and tools that open sled directly see it all).
    /// Not after a failed open or flush, and not when sled's flush fails: the journal stays as
    /// it is, and the next open replays it.
    fn drop(&mut self) {
        if !self.healthy.load(Ordering::Acquire) {
            return;
        }
        let holds_records = self.journal.get_mut().is_ok_and(|j| j.holds_records());
        if holds_records && let Ok(mut journal) = self.journal.lock() {
            let _ = self.flush_and_renew_journal(&mut journal);
        }
    }
}
