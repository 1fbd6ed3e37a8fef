//! The storage trait and its one implementation on sled `=0.34.7`. Nothing outside this file
//! names sled, so swapping the engine touches one file.
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
//! A commit is made durable by the commit journal ([`super::journal`]), not by flushing sled:
//! [`Storage::commit`] writes to sled (in memory) and queues the same writes as a journal
//! record; [`Storage::flush`] appends the queued records to the journal with one `fdatasync`.
//! sled itself is flushed when the journal is full (which starts a new journal generation), at
//! a clean close, and by the open paths that change the store; its own 500 ms background flush
//! stays on (it is also what runs sled's segment cleaning), and a flush also `fdatasync`s
//! sled's file whenever sled grew it since the last sync, so that what sled wrote is never left
//! without its size for longer than one group commit. An open replays the records that continue
//! sled's head (what a crash kept in the journal but not in sled) before anything reads the
//! store, restores keys of older records that sled lost, and reports it
//! ([`Storage::replayed_at_open`]). A journal is only ever reset after sled holds all it says,
//! durably: at every open (after the replay), when full, and at a clean close, never after a
//! failed open or a failed flush.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::codec::{self, StoreHeaderV1, StoredHeadV1};
use crate::log::journal::{self, Appended, Journal};
use crate::log::keys;

/// Errors of the storage engine, already worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "no carelog store at {path}: create one with `carelog demo` or `carelog append`, or pass --data DIR"
    )]
    Missing { path: PathBuf },
    #[error(
        "the store at {path} is in use by another process (locked): stop that process, or use another --data DIR"
    )]
    Locked { path: PathBuf },
    #[error("the store at {path} is corrupt or unreadable ({detail}): restore it from a backup")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} is not a carelog store ({detail}): pass --data with an empty or carelog directory"
    )]
    NotAStore { path: PathBuf, detail: String },
    #[error(
        "{path} is not a carelog commit journal ({detail}): give the path of a store's `journal` file, or of a `journal.*` file an open set aside"
    )]
    NotAJournal { path: PathBuf, detail: String },
    #[error("store I/O failed at {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

/// One commit: written atomically (all keys or none).
#[derive(Debug, Default)]
pub struct Commit {
    /// (first position, encoded segment).
    pub segments: Vec<(u64, Vec<u8>)>,
    /// (first position, encoded index chunk), one per segment.
    pub index_chunks: Vec<(u64, Vec<u8>)>,
    pub head: Option<StoredHeadV1>,
}

/// What an open set aside: segments and index chunks past the stored head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscardedTail {
    /// The first position past the head that a set-aside key started at.
    pub from_position: u64,
    pub segments: u64,
    pub index_chunks: u64,
    /// True when they continue the head (the first segment starts right after it and its first
    /// event's chain hash follows the head's): what a crash during a commit leaves, never
    /// acknowledged. False: something else put them there (damage or tampering).
    pub continues_head: bool,
}

/// What an open replayed from the commit journal: commits a crash kept in the journal but not
/// in sled (acknowledged, or written and about to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalReplay {
    /// Commits applied past sled's head.
    pub commits: u64,
    pub from_position: u64,
    pub to_position: u64,
    /// Keys of commits sled's head already covered but that sled did not hold (sled keeping a
    /// head without its segments, which a power loss can do), written back from the journal.
    pub keys_restored: u64,
}

impl JournalReplay {
    /// The replay so far (started if need be), its positions widened to `first..=last`.
    fn widen(replay: &mut Option<JournalReplay>, first: u64, last: u64) -> &mut JournalReplay {
        let r = replay.get_or_insert(JournalReplay {
            commits: 0,
            from_position: first,
            to_position: last,
            keys_restored: 0,
        });
        r.from_position = r.from_position.min(first);
        r.to_position = r.to_position.max(last);
        r
    }
}

/// A raw segment as stored: its key's first position and its bytes (not yet decoded, so that
/// `verify` can report undecodable bytes at their position).
pub type RawSegment = (u64, Vec<u8>);

/// What the log needs of a storage engine.
pub trait Storage: Send + Sync {
    fn path(&self) -> &Path;
    fn header(&self) -> Result<StoreHeaderV1, StorageError>;
    /// The durable head as last committed, None for an empty store.
    fn head(&self) -> Result<Option<StoredHeadV1>, StorageError>;
    /// Writes a commit: its segments and index chunks, then the head, which makes it part of
    /// the log. Not durable until [`Storage::flush`].
    fn commit(&self, commit: Commit) -> Result<(), StorageError>;
    /// Sets aside the segments and index chunks past the stored head (a commit interrupted
    /// before its head was written: never acknowledged), so that the next commit does not land
    /// among them: each moves under [`keys::set_aside`], kept as evidence. Durable on return.
    fn set_aside_after(
        &self,
        head: Option<&StoredHeadV1>,
    ) -> Result<Option<DiscardedTail>, StorageError>;
    /// Makes every commit so far durable (fsync).
    fn flush(&self) -> Result<(), StorageError>;
    /// What the open replayed from the commit journal, if anything.
    fn replayed_at_open(&self) -> Option<JournalReplay> {
        None
    }
    /// Commit journals an open moved aside (damaged, or holding records it could not apply),
    /// still in the store directory: evidence a person must look at.
    fn journals_set_aside(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Raw segments in position order, from the one holding `from_position`.
    fn segments_from(
        &self,
        from_position: u64,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_>;
    /// Raw index chunks in position order.
    fn index_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_>;
    /// Approximate bytes on disk.
    fn size_on_disk(&self) -> Result<u64, StorageError>;
    /// What the user should know about this store's layout (e.g. a weaker durability of an
    /// older layout), worded for them; empty almost always.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The sled implementation.
pub struct SledStorage {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    /// sled's log file, synced with `fdatasync` after each flush: sled 0.34 only calls
    /// `sync_file_range`, which neither flushes the disk's cache nor the file's size.
    log_file: std::fs::File,
    /// sled's segment size for this store, as it was opened with.
    segment_bytes: usize,
    /// Held for a whole append to the journal (and a sled flush when it is full), so that
    /// records reach it in commit order.
    journal: Mutex<Journal>,
    /// Journal payloads of the commits written to sled and not yet to the journal, oldest
    /// first. The writer keeps at most a few commits in flight, which bounds it.
    unjournaled: Mutex<Vec<Vec<u8>>>,
    replayed: Option<JournalReplay>,
    /// What the open found wrong with the journal (worded for the user), e.g. records that do
    /// not continue the head, moved aside.
    journal_warnings: Vec<String>,
    /// Set once the open (and its replay) succeeded; cleared by any failed flush. A clean close
    /// resets the journal only when set: after a failed open or flush, the journal may hold
    /// what sled does not.
    healthy: AtomicBool,
    /// Why a flush failed, once one did: every later flush fails too (the writer poisons itself
    /// on the first; this keeps a second caller from being told its commits are durable).
    failure: OnceLock<String>,
    /// The length of sled's file when it was last synced (see the module overview).
    synced_db_bytes: AtomicU64,
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

/// The store format this build writes: 2 has the commit journal. A format-1 store is moved to
/// 2 at its first open, so that an older build, which would ignore the journal after a crash,
/// refuses it instead of losing what only the journal holds.
pub const STORE_FORMAT_VERSION: u32 = 2;

/// See [`SledStorage::let_sled_evict`].
const SCAN_EXTRA_READS_PER_VALUE: usize = 8;

/// The name of the one tree the log lives in.
const LOG_TREE: &str = "carelog-log-v1";

impl SledStorage {
    /// Opens the store at `path`; with `options.create`, creates it (and its header) when
    /// absent. Replays the commit journal before it returns.
    pub fn open(path: &Path, options: SledOptions) -> Result<Self, StorageError> {
        let create = options.create;
        let path = path.to_path_buf();
        let has_db = path.join("db").exists() || path.join("conf").exists();
        if !has_db {
            if !create {
                return Err(StorageError::Missing { path });
            }
            if path.exists() {
                let non_empty = std::fs::read_dir(&path)
                    .map_err(|e| StorageError::Io {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?
                    .next()
                    .is_some();
                if non_empty {
                    return Err(StorageError::NotAStore {
                        path,
                        detail: "the directory holds other files and no sled database".into(),
                    });
                }
            }
        }
        let segment_bytes = sled_segment_bytes(&path);
        let (db, snapshots_moved_to) = open_with_retry(&path, &options, segment_bytes)?;
        let tree = db.open_tree(LOG_TREE).map_err(|e| open_error(&path, e))?;
        let log_file = std::fs::File::open(path.join("db")).map_err(|e| StorageError::Io {
            path: path.clone(),
            detail: format!("cannot open sled's log file to sync it: {e}"),
        })?;
        // Before the journal is touched: a store this build refuses keeps its journal as is.
        ensure_header(&path, &db, &tree, &log_file, create)?;
        let opened_journal = Journal::open(&path, options.journal_max_bytes)?;
        let mut journal_warnings = Vec::new();
        if let Some(moved_to) = &snapshots_moved_to {
            journal_warnings.push(format!(
                "sled could not read its snapshot after an unclean stop (a known failure of sled \
                 0.34: its snapshot, derived from its log, was ahead of or cut from the log); \
                 the snapshot files were moved to {} (kept) and sled rebuilt its state from its \
                 log. Run `carelog verify` before relying on the store",
                moved_to.display()
            ));
        }
        if let Some(moved_to) = &opened_journal.damaged_moved_to {
            journal_warnings.push(format!(
                "the commit journal's header was damaged; the file was moved to {} (kept) and a \
                 new journal started. Events acknowledged since the last clean close may be \
                 missing: run `carelog verify` and compare with a digest you kept",
                moved_to.display()
            ));
        }
        let synced_db_bytes = file_bytes(&path, &log_file)?;
        let mut storage = Self {
            path,
            db,
            tree,
            log_file,
            segment_bytes,
            journal: Mutex::new(opened_journal.journal),
            unjournaled: Mutex::new(Vec::new()),
            replayed: None,
            journal_warnings,
            healthy: AtomicBool::new(false),
            failure: OnceLock::new(),
            synced_db_bytes: AtomicU64::new(synced_db_bytes),
        };
        storage.replay_journal(opened_journal.payloads, opened_journal.damaged_record_at)?;
        storage.healthy.store(true, Ordering::Release);
        Ok(storage)
    }

    /// Replays the journal (see the module overview): validates first, writes second.
    ///
    /// - The records must chain one onto the next (positions and chain hashes).
    /// - Those sled's head covers must be this log's: the last of them ends at a position
    ///   whose chain hash sled holds too (its head, or the event stored there). Their keys that
    ///   sled lost are written back; a key sled holds with other bytes is a problem.
    /// - The rest must continue sled's head; they are applied in order.
    ///
    /// Only the records before the first problem are written. On any problem (or a damaged
    /// record with valid ones after it, `damaged_record_at`), the journal is moved aside, kept,
    /// with a warning, and appends are refused while it is there; otherwise a new generation
    /// starts. Either way sled is made durable first: what it recovered from its file may be
    /// all that holds an acknowledged commit once the journal is reset.
    fn replay_journal(
        &mut self,
        payloads: Vec<Vec<u8>>,
        damaged_record_at: Option<u64>,
    ) -> Result<(), StorageError> {
        self.flush_sled()?;
        let sled_head = self.head()?;
        let plan = self.plan_replay(&payloads, sled_head.as_ref())?;
        let mut problem = plan.problem;
        if problem.is_none()
            && let Some(offset) = damaged_record_at
        {
            problem = Some(format!(
                "a damaged record at byte {offset} followed by valid records (damage to \
                 acknowledged commits, or a power loss that kept a later page of the last group \
                 commit and lost an earlier one)"
            ));
        }
        let written = !plan.restores.is_empty() || !plan.applies.is_empty();
        for (key, value) in &plan.restores {
            self.tree
                .insert(key.as_slice(), value.as_slice())
                .map_err(|e| self.io(e))?;
        }
        // In the order the commits wrote them: each one's head last.
        for (key, value) in plan.applies.iter().flatten() {
            self.tree
                .insert(key.as_slice(), value.as_slice())
                .map_err(|e| self.io(e))?;
        }
        if written {
            self.flush_sled()?;
        }
        let set_aside = {
            let mut journal = self.lock_journal()?;
            match &problem {
                None => {
                    journal.reset()?;
                    None
                }
                Some(_) => Some(journal.set_aside()?),
            }
        };
        if let (Some(what), Some(moved_to)) = (problem, set_aside) {
            self.journal_warnings.push(format!(
                "the commit journal held {what}: damage, or a store changed by hand. The \
                 journal was moved to {} (kept); events acknowledged after the head may be \
                 missing, and appends are refused while the file is in the store. Run \
                 `carelog verify` and compare with a digest you kept",
                moved_to.display()
            ));
        }
        self.replayed = plan.replay;
        Ok(())
    }

    /// What a replay would write (see [`Self::replay_journal`]), and the first problem.
    fn plan_replay(
        &self,
        payloads: &[Vec<u8>],
        sled_head: Option<&StoredHeadV1>,
    ) -> Result<ReplayPlan, StorageError> {
        let mut plan = ReplayPlan::default();
        let head_position = sled_head.map_or(0, |h| h.position);
        // The records as commits, chained one onto the next.
        let mut commits: Vec<(u64, StoredHeadV1, Vec<journal::JournalEntry>)> = Vec::new();
        for payload in payloads {
            let (first, record_head, entries) = match journal_commit(payload) {
                Ok(commit) => commit,
                Err(what) => {
                    plan.problem = Some(what.into());
                    break;
                }
            };
            if let Some((_, previous, _)) = commits.last() {
                let chained = previous.position.checked_add(1) == Some(first)
                    && first_segment_continues(&entries, first, Some(previous));
                if !chained {
                    plan.problem = Some(format!(
                        "a record of positions {first}..={} that does not follow the record \
                         before it",
                        record_head.position
                    ));
                    break;
                }
            }
            commits.push((first, record_head, entries));
        }
        // Those sled's head covers: this log's, and whole in sled once their lost keys are back.
        let covered = commits
            .iter()
            .take_while(|(_, h, _)| h.position <= head_position)
            .count();
        if let (Some((first, _, _)), Some((_, last_head, _))) = (
            commits.first(),
            commits.get(..covered).and_then(|c| c.last()),
        ) && covered > 0
        {
            // Where the log's chain hash at the last covered position is to be found: sled's
            // head, the event stored there, or (when sled lost that event) the event after it,
            // which chains from it.
            let q = last_head.position;
            let ours: Result<bool, String> = match sled_head {
                Some(h) if h.position == q => Ok(h.chain_hash == last_head.chain_hash),
                _ => match super::read::stored_event_at(self, q) {
                    Ok(Some(e)) => Ok(e.chain_hash == last_head.chain_hash),
                    Ok(None) => match self
                        .tree
                        .get(keys::segment(q.saturating_add(1)))
                        .map_err(|e| self.io(e))?
                    {
                        Some(next) => Ok(segment_continues(&next, Some(last_head))),
                        None => Err(format!(
                            "sled holds neither the event at {q} nor the segment after it"
                        )),
                    },
                    Err(e) => Err(format!("the event at {q} cannot be read ({e})")),
                },
            };
            let not_ours = match ours {
                Ok(true) => None,
                Ok(false) => Some(format!("the chain hash at {q} differs from the log's")),
                Err(why) => Some(why),
            };
            if let Some(why) = not_ours {
                plan.problem.get_or_insert(format!(
                    "records of positions {first}..={q} that cannot be shown to be this log's \
                     ({why})"
                ));
                return Ok(plan);
            }
            for (first, record_head, entries) in &commits[..covered] {
                for (key, value) in entries.iter().filter(|(k, _)| k.as_slice() != keys::HEAD) {
                    match self.tree.get(key).map_err(|e| self.io(e))? {
                        Some(held) if held.as_ref() == value.as_slice() => {}
                        Some(_) => {
                            plan.restores.clear();
                            plan.replay = None;
                            plan.problem.get_or_insert(format!(
                                "a record of positions {first}..={} that differs from the log \
                                 (sled holds other bytes under key {})",
                                record_head.position,
                                hex::encode(key)
                            ));
                            return Ok(plan);
                        }
                        None => {
                            plan.restores.push((key.clone(), value.clone()));
                            JournalReplay::widen(&mut plan.replay, *first, record_head.position)
                                .keys_restored += 1;
                        }
                    }
                }
            }
        }
        // The rest: they must continue sled's head.
        let mut head = sled_head.copied();
        for (first, record_head, entries) in commits.into_iter().skip(covered) {
            let position = head.as_ref().map_or(0, |h| h.position);
            if position.checked_add(1) != Some(first)
                || !first_segment_continues(&entries, first, head.as_ref())
            {
                plan.problem.get_or_insert(format!(
                    "a record of positions {first}..={} that does not continue the head at \
                     {position}",
                    record_head.position
                ));
                break;
            }
            JournalReplay::widen(&mut plan.replay, first, record_head.position).commits += 1;
            plan.applies.push(entries);
            head = Some(record_head);
        }
        Ok(plan)
    }

    /// Flushes sled itself and syncs its log file: after this, the journal's records are
    /// redundant.
    fn flush_sled(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(|e| self.io(e))?;
        sync_blob_files(&self.path)?;
        let bytes = file_bytes(&self.path, &self.log_file)?;
        sync_sled_file(&self.path, &self.log_file)?;
        self.synced_db_bytes.store(bytes, Ordering::Release);
        Ok(())
    }

    /// Syncs sled's file when sled grew it since the last sync: what sled writes past the old
    /// end needs the file's new size synced too, and only a sync of that file does it.
    fn sync_sled_file_if_grown(&self) -> Result<(), StorageError> {
        let bytes = file_bytes(&self.path, &self.log_file)?;
        if bytes != self.synced_db_bytes.load(Ordering::Acquire) {
            sync_sled_file(&self.path, &self.log_file)?;
            self.synced_db_bytes.store(bytes, Ordering::Release);
        }
        Ok(())
    }

    /// Records the first failed flush (see `failure`) and returns its error.
    fn failed(&self, e: StorageError) -> StorageError {
        self.healthy.store(false, Ordering::Release);
        let _ = self.failure.set(e.to_string());
        e
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

/// Checks the store header (creating it in a new store, moving a format-1 store to
/// [`STORE_FORMAT_VERSION`]).
fn ensure_header(
    path: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    log_file: &std::fs::File,
    create: bool,
) -> Result<(), StorageError> {
    match tree.get(keys::HEADER).map_err(|e| sled_error(path, e))? {
        Some(bytes) => {
            let header: StoreHeaderV1 =
                codec::decode("store header", &bytes).map_err(|e| StorageError::Corrupt {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
            if !(1..=STORE_FORMAT_VERSION).contains(&header.format_version)
                || header.hash_algorithm != crate::log::hash::ALGORITHM
            {
                return Err(StorageError::NotAStore {
                    path: path.to_path_buf(),
                    detail: format!(
                        "store format {} with hash {:?}; this build reads formats 1 to {STORE_FORMAT_VERSION} with sha256",
                        header.format_version, header.hash_algorithm
                    ),
                });
            }
            if header.format_version < STORE_FORMAT_VERSION {
                let upgraded = StoreHeaderV1 {
                    format_version: STORE_FORMAT_VERSION,
                    ..header
                };
                tree.insert(keys::HEADER, codec::encode("store header", &upgraded)?)
                    .map_err(|e| sled_error(path, e))?;
                flush_and_sync(path, db, log_file)?;
            }
            Ok(())
        }
        None => {
            let non_empty = tree.iter().next().is_some();
            if non_empty {
                return Err(StorageError::Corrupt {
                    path: path.to_path_buf(),
                    detail: "the store header is missing but events are present".into(),
                });
            }
            if !create {
                return Err(StorageError::Missing {
                    path: path.to_path_buf(),
                });
            }
            let header = StoreHeaderV1 {
                format_version: STORE_FORMAT_VERSION,
                hash_algorithm: crate::log::hash::ALGORITHM.to_string(),
                created_at: crate::time::to_stored(&chrono::Utc::now().fixed_offset()),
            };
            let bytes = codec::encode("store header", &header)?;
            tree.insert(keys::HEADER, bytes)
                .map_err(|e| sled_error(path, e))?;
            flush_and_sync(path, db, log_file)
        }
    }
}

fn sled_error(path: &Path, e: sled::Error) -> StorageError {
    match e {
        sled::Error::Corruption { .. } => StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
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
    let io = |doing: &str, e: std::io::Error| StorageError::Io {
        path: dir.clone(),
        detail: format!("{doing} sled's blob files: {e}"),
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
    log_file.sync_data().map_err(|e| StorageError::Io {
        path: path.to_path_buf(),
        detail: format!("fdatasync of sled's file: {e}"),
    })
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

/// How long an open waits for a lock that a process which just closed the store may still
/// hold: sled's background threads release the file lock a few milliseconds after the last
/// handle is dropped.
const LOCK_RETRY_MILLIS_TOTAL: u64 = 2_000;

/// sled's log segment size for new stores: 2 MiB, so that values and tree nodes up to 512 KiB
/// stay inline in the log file (see [`crate::log::SEGMENT_MAX_BYTES`]). sled's default, 512 KiB,
/// put leaf nodes of our 64 KiB segments over its 128 KiB threshold into blob files, which sled
/// 0.34 never fsyncs. Stores created with another size keep theirs (sled refuses a change).
const SLED_SEGMENT_BYTES: usize = 2 << 20;

/// The segment size a store was created with (sled refuses to open it with another): read from
/// sled's `conf` file, or [`SLED_SEGMENT_BYTES`] for a new store.
fn sled_segment_bytes(path: &Path) -> usize {
    let Ok(conf) = std::fs::read(path.join("conf")) else {
        return SLED_SEGMENT_BYTES;
    };
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: ")?.trim().parse().ok())
        .unwrap_or(SLED_SEGMENT_BYTES)
}

impl SledStorage {
    /// The keys in `from..=to`, collected first: removing while iterating a sled range is not
    /// defined to be stable.
    fn keys_in(&self, from: [u8; 9], to: [u8; 9]) -> Result<Vec<sled::IVec>, StorageError> {
        self.tree
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
        let Some(bytes) = self.tree.get(key).map_err(|e| self.io(e))? else {
            return Ok(false);
        };
        Ok(segment_continues(&bytes, head))
    }

    /// Lets sled's cache evict during a long scan: reads `key` (just read by the scan) again a
    /// few times. sled 0.34's LRU queues accesses per shard (256 shards, 64 accesses each) and
    /// evicts nothing until a shard's queue is full; a scan makes about one access per value,
    /// so on a log of a million events no queue ever filled, and every tree node the scan read
    /// stayed in memory whatever the cache capacity (spacejam/sled#1036). Measured on a
    /// 1 M-event log: rebuild peak RSS 479 → 293 MiB, no slower (4 reads: 304 MiB; 16: 292).
    fn let_sled_evict(&self, key: &[u8]) {
        for _ in 0..SCAN_EXTRA_READS_PER_VALUE {
            // Only the access matters; an error here would show on the scan's own next read.
            let _ = self.tree.get(key);
        }
    }

    /// The sled configuration this store opens with (its segment size): for tests and tools
    /// that must open the sled database underneath directly, e.g. to tamper with it. Open and
    /// close the store through [`crate::log::Log`] first: after an unclean close, sled alone
    /// lacks what the commit journal holds.
    pub fn sled_config(path: &Path) -> sled::Config {
        sled::Config::new()
            .path(path)
            .segment_size(sled_segment_bytes(path))
    }
}

/// What a journal replay writes, and why it stopped short, if it did.
#[derive(Default)]
struct ReplayPlan {
    /// Keys of commits sled's head covers that sled lost.
    restores: Vec<journal::JournalEntry>,
    /// The writes of the commits past sled's head, in order.
    applies: Vec<Vec<journal::JournalEntry>>,
    replay: Option<JournalReplay>,
    problem: Option<String>,
}

/// Whether the segment of a commit's writes that starts at `first` continues `head`.
fn first_segment_continues(
    entries: &[journal::JournalEntry],
    first: u64,
    head: Option<&StoredHeadV1>,
) -> bool {
    entries
        .iter()
        .any(|(k, v)| keys::segment_position(k) == Some(first) && segment_continues(v, head))
}

/// Whether a segment's first event follows `head`'s position and chain hash (the genesis chain
/// for an empty log).
fn segment_continues(segment_bytes: &[u8], head: Option<&StoredHeadV1>) -> bool {
    let Ok(segment) = codec::decode::<codec::SegmentV1>("segment", segment_bytes) else {
        return false;
    };
    let (position, chain) = head.map_or((0, crate::log::hash::GENESIS_CHAIN), |h| {
        (h.position, h.chain_hash)
    });
    segment.events.first().is_some_and(|e| {
        e.position == position + 1 && crate::log::hash::chain(&chain, &e.leaf_hash) == e.chain_hash
    })
}

/// A journal record read as a commit: its first segment's position, its head and its writes.
/// An error names what it is instead: not a commit (no head, or no segment), or one whose
/// events do not hash to their leaf hashes and run, each chained onto the one before, up to
/// its head (the writer never makes such a record: its bytes were forged or damaged under a
/// valid checksum).
fn journal_commit(
    payload: &[u8],
) -> Result<(u64, StoredHeadV1, Vec<journal::JournalEntry>), &'static str> {
    const NOT_A_COMMIT: &str = "a record that is not a commit";
    let entries = journal::decode_payload(payload).ok_or(NOT_A_COMMIT)?;
    let (last_key, head_bytes) = entries.last().ok_or(NOT_A_COMMIT)?;
    if last_key.as_slice() != keys::HEAD {
        return Err(NOT_A_COMMIT);
    }
    let head: StoredHeadV1 = codec::decode("durable head", head_bytes).map_err(|_| NOT_A_COMMIT)?;
    let first = entries
        .iter()
        .filter_map(|(k, _)| keys::segment_position(k))
        .min()
        .ok_or(NOT_A_COMMIT)?;
    if !events_run_up_to_head(&entries, &head) {
        return Err("a record whose events do not run, chained, up to its own head");
    }
    Ok((first, head, entries))
}

/// Whether a record's segments, in position order, hold events at dense positions, each one's
/// bytes hashing to its leaf hash and each chained onto the one before (the first segment's
/// first event is chained to the log by the replay), the last one's position and chain hash
/// being the record's head. With the chain back from a head the log holds, this pins every
/// event's content, the first one's too.
fn events_run_up_to_head(entries: &[journal::JournalEntry], head: &StoredHeadV1) -> bool {
    let mut segments: Vec<(u64, &[u8])> = entries
        .iter()
        .filter_map(|(k, v)| keys::segment_position(k).map(|at| (at, v.as_slice())))
        .collect();
    segments.sort_unstable_by_key(|(at, _)| *at);
    let mut last: Option<(u64, [u8; 32])> = None;
    let mut events = Vec::new();
    for (at, bytes) in segments {
        if codec::decode_segment_refs(bytes, &mut events).is_err()
            || events.first().map(|e| e.position) != Some(at)
        {
            return false;
        }
        for e in &events {
            if super::verify::computed_leaf(e).ok() != Some(e.leaf_hash) {
                return false;
            }
            if let Some((position, chain)) = last
                && (position.checked_add(1) != Some(e.position)
                    || crate::log::hash::chain(&chain, &e.leaf_hash) != e.chain_hash)
            {
                return false;
            }
            last = Some((e.position, e.chain_hash));
        }
    }
    last == Some((head.position, head.chain_hash))
}

/// Opens sled, retrying while another process still holds the store's lock. When sled finds
/// a store carelog made (one with a commit journal) corrupt and it has snapshot files, they are
/// moved aside (kept) and the open is tried once more: sled 0.34 can refuse a store after a kill because its snapshot (the page table
/// up to a log position, rebuilt from the log when missing) is ahead of the log or cut short
/// (sled issues #1527 and #1533; seen here once in some 300 kill -9 rounds). Returns where they
/// went, if they were moved.
fn open_with_retry(
    path: &Path,
    options: &SledOptions,
    segment_bytes: usize,
) -> Result<(sled::Db, Option<PathBuf>), StorageError> {
    let started = std::time::Instant::now();
    let mut snapshots_moved_to = None;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .segment_size(segment_bytes)
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(options.sled_flush_every_ms)
            .open();
        match opened.map_err(|e| open_error(path, e)) {
            Err(StorageError::Locked { .. })
                if started.elapsed().as_millis() < u128::from(LOCK_RETRY_MILLIS_TOTAL) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(StorageError::Corrupt { path, detail }) => {
                // Only in a store carelog made (it has a commit journal): a directory of other
                // files is refused as it is, never changed.
                if snapshots_moved_to.is_none()
                    && path.join(journal::JOURNAL_FILE).exists()
                    && let Some(moved_to) = set_aside_sled_snapshots(&path)?
                {
                    snapshots_moved_to = Some(moved_to);
                    continue;
                }
                let moved = snapshots_moved_to
                    .as_ref()
                    .map(|m| format!(" (its snapshot files were moved to {}, kept)", m.display()))
                    .unwrap_or_default();
                return Err(StorageError::Corrupt {
                    path,
                    detail: format!("{detail}{moved}"),
                });
            }
            other => return other.map(|db| (db, snapshots_moved_to)),
        }
    }
}

/// Moves sled's snapshot files (`snap.*`) into a new directory of the store,
/// `sled-snapshots.set-aside-<unix nanos>`, and syncs the store's directory. None when there
/// were none.
fn set_aside_sled_snapshots(path: &Path) -> Result<Option<PathBuf>, StorageError> {
    let io = |what: &str, e: std::io::Error| StorageError::Io {
        path: path.to_path_buf(),
        detail: format!("{what}: {e}"),
    };
    let mut snapshots = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| io("list the store", e))? {
        let entry = entry.map_err(|e| io("list the store", e))?;
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            snapshots.push(entry.path());
        }
    }
    if snapshots.is_empty() {
        return Ok(None);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let aside = path.join(format!("sled-snapshots.set-aside-{nanos}"));
    std::fs::create_dir(&aside).map_err(|e| io("make a directory for sled's snapshots", e))?;
    for snapshot in &snapshots {
        if let Some(name) = snapshot.file_name() {
            std::fs::rename(snapshot, aside.join(name))
                .map_err(|e| io("move sled's snapshot aside", e))?;
        }
    }
    std::fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync the store's directory", e))?;
    Ok(Some(aside))
}

fn open_error(path: &Path, e: sled::Error) -> StorageError {
    let text = e.to_string();
    match e {
        sled::Error::Io(ref io)
            if io.kind() == std::io::ErrorKind::WouldBlock
                || text.contains("could not acquire lock") =>
        {
            StorageError::Locked {
                path: path.to_path_buf(),
            }
        }
        sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            StorageError::Io {
                path: path.to_path_buf(),
                detail: format!("{text}: check the directory's permissions"),
            }
        }
        _ => StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: text,
        },
    }
}

impl Storage for SledStorage {
    fn path(&self) -> &Path {
        &self.path
    }

    fn header(&self) -> Result<StoreHeaderV1, StorageError> {
        let bytes = self
            .tree
            .get(keys::HEADER)
            .map_err(|e| self.io(e))?
            .ok_or_else(|| StorageError::Corrupt {
                path: self.path.clone(),
                detail: "the store header is missing".into(),
            })?;
        Ok(codec::decode("store header", &bytes)?)
    }

    fn head(&self) -> Result<Option<StoredHeadV1>, StorageError> {
        match self.tree.get(keys::HEAD).map_err(|e| self.io(e))? {
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
        // The commit point (see the module overview): written after everything it covers.
        let writes: Vec<(&[u8], &[u8])> = chunk_keys
            .iter()
            .zip(&commit.index_chunks)
            .chain(segment_keys.iter().zip(&commit.segments))
            .map(|(key, (_, bytes))| (key.as_slice(), bytes.as_slice()))
            .chain(head.as_deref().map(|bytes| (keys::HEAD, bytes)))
            .collect();
        let record = journal::encode_payload(&writes);
        for (key, value) in writes {
            self.tree.insert(key, value).map_err(|e| self.io(e))?;
        }
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
        if segments.is_empty() && chunks.is_empty() {
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
            if let Some(value) = self.tree.get(key).map_err(|e| self.io(e))? {
                self.tree
                    .insert(keys::set_aside(key), value)
                    .map_err(|e| self.io(e))?;
            }
            self.tree.remove(key).map_err(|e| self.io(e))?;
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
        if let Some(reason) = self.failure.get() {
            return Err(StorageError::Io {
                path: self.path.clone(),
                detail: format!(
                    "an earlier flush failed ({reason}); restart the process (the next open replays the journal)"
                ),
            });
        }
        let records = std::mem::take(&mut *self.unjournaled.lock().map_err(|_| self.poisoned())?);
        if records.is_empty() {
            // Whatever was queued before this call went with a flush that held the journal.
            return Ok(());
        }
        // sled's file first: the journal's sync flushes the disk's cache, and what sled moved
        // must not become durable after the copy it overwrote.
        let flushed = self
            .sync_sled_file_if_grown()
            .and_then(|()| journal.append(&records))
            .and_then(|appended| match appended {
                Appended::Written => Ok(()),
                // Every queued record's writes are in sled already: flushing it covers them.
                Appended::Full => self.flush_sled().and_then(|()| journal.reset()),
            });
        flushed.map_err(|e| self.failed(e))
    }

    fn replayed_at_open(&self) -> Option<JournalReplay> {
        self.replayed
    }

    fn journals_set_aside(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(journal::is_set_aside_name)
            })
            .collect();
        found.sort();
        found
    }

    fn segments_from(
        &self,
        from_position: u64,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        // The segment holding `from_position` starts at or before it.
        let start = match self
            .tree
            .range(keys::segment(0)..=keys::segment(from_position.max(1)))
            .next_back()
        {
            Some(Ok((k, _))) => k.to_vec(),
            _ => keys::segment(from_position.max(1)).to_vec(),
        };
        let end = keys::segment(u64::MAX);
        Box::new(self.tree.range(start..=end.to_vec()).map(move |entry| {
            let (k, v) = entry.map_err(|e| self.io(e))?;
            self.let_sled_evict(&k);
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
        Box::new(
            self.tree
                .scan_prefix([keys::INDEX_PREFIX])
                .map(move |entry| {
                    let (k, v) = entry.map_err(|e| self.io(e))?;
                    self.let_sled_evict(&k);
                    let first =
                        keys::index_chunk_position(&k).ok_or_else(|| StorageError::Corrupt {
                            path: self.path.clone(),
                            detail: "an index chunk key is damaged".into(),
                        })?;
                    Ok((first, v.to_vec()))
                }),
        )
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        let journal_bytes = self.lock_journal()?.bytes_on_disk();
        Ok(self.db.size_on_disk().map_err(|e| self.io(e))? + journal_bytes)
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.journal_warnings.clone();
        let segment_bytes = self.segment_bytes;
        if segment_bytes >= SLED_SEGMENT_BYTES {
            return warnings;
        }
        warnings.push(format!(
            "this store was created with sled segments of {} KiB, so sled keeps tree nodes \
             over {} KiB in blob files, which it never syncs itself. carelog syncs them at each \
             of its sled flushes, but sled's own background flush may make its log point at a \
             blob before that: a power loss could leave the store unreadable. Move it to the \
             current layout: `carelog export > all.jsonl`, then `carelog --data NEW import \
             all.jsonl --keep-recorded-at`",
            segment_bytes / 1024,
            segment_bytes / 4 / 1024
        ));
        warnings
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
        if holds_records
            && self.flush_sled().is_ok()
            && let Ok(journal) = self.journal.get_mut()
        {
            let _ = journal.reset();
        }
    }
}
