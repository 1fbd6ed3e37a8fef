//! What the log needs of a storage engine, and nothing of how one engine keeps its promises.
//!
//! The [`Storage`] trait is narrow on purpose: the store header, the durable head, a commit
//! (segments and index chunks, then the head, its commit point), a flush that makes every commit
//! so far durable, reads of the segments and index chunks in position order, setting aside what
//! lies past the head, the size on disk, and a recovery back to the durable head after a
//! failed commit or flush (a full disk: [`StorageError::DiskFull`]). An engine's own recovery (sled's commit journal,
//! its snapshot files; a database's own crash recovery) runs inside its open and is told to the
//! log once, as an [`OpenReport`]: a second engine implements this trait without copying the
//! first one's recovery.
//!
//! The one implementation today is [`crate::log::SledStorage`] (in `sled/`).

use std::path::{Path, PathBuf};

use crate::codec::{self, StoreHeaderV1, StoredHeadV1};

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
    /// Evidence that the store held more (or another log) than what is left: never opened as it
    /// is, so that damage can never pass for a shorter, an empty or a new log.
    #[error(
        "the store at {path} is damaged: {detail}. Nothing was changed: carelog will not go on from what is left, which would lose or rewrite acknowledged history. Restore the store from a backup (keep this directory as evidence)"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "{path} is not a carelog store ({detail}): pass --data with an empty or carelog directory"
    )]
    NotAStore { path: PathBuf, detail: String },
    #[error(
        "{path} is not a carelog commit journal ({detail}): give the path of a store's `journal` file, or of a `journal.*` file an open set aside"
    )]
    NotAJournal { path: PathBuf, detail: String },
    /// The file system holding the store is full (ENOSPC, or a quota: EDQUOT): an environment
    /// problem, never damage. The writer refuses the batch whole and recovers once space returns.
    #[error(
        "the disk holding {path} is full ({detail}): nothing of the refused batch was written. Free space on that disk, then retry"
    )]
    DiskFull { path: PathBuf, detail: String },
    #[error("store I/O failed at {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

/// Whether an I/O error says the file system is full: ENOSPC (os error 28) or EDQUOT (122).
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

/// An I/O failure at `path`: [`StorageError::DiskFull`] when the disk is full, otherwise
/// [`StorageError::Io`] with `detail`.
pub fn io_failure(path: &Path, detail: String, e: &std::io::Error) -> StorageError {
    if is_storage_full(e) {
        StorageError::DiskFull {
            path: path.to_path_buf(),
            detail,
        }
    } else {
        StorageError::Io {
            path: path.to_path_buf(),
            detail,
        }
    }
}

impl StorageError {
    /// Whether this is a full disk ([`StorageError::DiskFull`]).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::DiskFull { .. })
    }
}

/// One commit: written atomically (all keys or none).
#[derive(Debug, Default)]
pub struct Commit {
    /// (first position, encoded segment).
    pub segments: Vec<(u64, Vec<u8>)>,
    /// (first position, encoded index chunk), one per segment.
    pub index_chunks: Vec<(u64, Vec<u8>)>,
    /// (first stored index, 32-byte hashes): what the commit adds to the Merkle tree's stored
    /// sequence (`crate::merkle`), in values of at most [`TREE_CHUNK_HASHES`] hashes.
    pub tree_chunks: Vec<(u64, Vec<u8>)>,
    pub head: Option<StoredHeadV1>,
}

/// The most tree hashes one stored value holds (16 KiB: small enough to stay inline in an
/// engine's pages, like a segment).
pub const TREE_CHUNK_HASHES: usize = 512;

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

/// What an open replayed from the engine's commit journal: commits a crash kept in the journal
/// but not in the engine's store (acknowledged, or written and about to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalReplay {
    /// Commits applied past the store's head.
    pub commits: u64,
    pub from_position: u64,
    pub to_position: u64,
    /// Keys of commits the store's head already covered but that the store did not hold (a
    /// head kept without its segments, which a power loss can do), written back.
    pub keys_restored: u64,
}

/// Everything an open did to the store before the log took it, in one place: what the
/// engine's recovery replayed or set aside, what was set aside past the head, and what the
/// user should be warned of. The CLI prints it (`note_open`); tests read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Commits replayed from the commit journal, if any (None after a clean close).
    pub replayed: Option<JournalReplay>,
    /// Commit journals moved aside (by this open or an earlier one) and still in the store
    /// directory: evidence a person must look at. Appends are refused while any is there.
    pub journals_set_aside: Vec<PathBuf>,
    /// Segments and index chunks that lay past the stored head, set aside (kept).
    pub tail_set_aside: Option<DiscardedTail>,
    /// Where the engine moved snapshot files it could not read (kept), if it did.
    pub snapshots_set_aside: Option<PathBuf>,
    /// Events whose Merkle tree hashes this open built (a store made before the tree).
    pub tree_built: Option<u64>,
    /// What the user should know (worded for them), in the order found; empty almost always.
    pub warnings: Vec<String>,
}

/// The store format this build writes (in the store header): 2 has the commit journal, 3 the
/// anchor (`sled/anchor.rs`). An older store is moved to 3 at its first open, so that an older
/// build, which would ignore the journal after a crash or never check the anchor, refuses it
/// instead of losing what only they hold.
pub const STORE_FORMAT_VERSION: u32 = 3;

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
    /// among them: kept as evidence, never read again. Durable on return.
    fn set_aside_after(
        &self,
        head: Option<&StoredHeadV1>,
    ) -> Result<Option<DiscardedTail>, StorageError>;
    /// Makes every commit so far durable.
    fn flush(&self) -> Result<(), StorageError>;
    /// Raw segments in position order, from the one holding `from_position`.
    fn segments_from(
        &self,
        from_position: u64,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_>;
    /// Raw index chunks in position order.
    fn index_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_>;
    /// The tree hashes at these stored indexes (see `crate::merkle::stored_index`).
    fn tree_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StorageError>;
    /// How many tree hashes are stored (the end of the last chunk), 0 for none.
    fn tree_stored_count(&self) -> Result<u64, StorageError>;
    /// The stored tree chunks in order: (first stored index, hashes).
    fn tree_chunks(&self)
    -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_>;
    /// Writes tree chunks outside a commit (building the tree of a store made before it had
    /// one), durably on return.
    fn write_tree_chunks(&self, chunks: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError>;
    /// Approximate bytes on disk.
    fn size_on_disk(&self) -> Result<u64, StorageError>;
    /// After a failed commit or flush: brings the store back to its durable head (whatever of
    /// the commits written since the last successful flush reached the disk is taken back out,
    /// durably) so that appends can go on. Called only when nothing is being written. An error
    /// leaves the store refusing flushes, as before the call; the call may be retried.
    fn recover(&self) -> Result<(), StorageError> {
        Err(StorageError::Io {
            path: self.path().to_path_buf(),
            detail: "this storage engine cannot recover from a failed flush: restart carelog"
                .into(),
        })
    }
}
