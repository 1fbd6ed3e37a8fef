//! The storage trait and its one implementation on sled `=0.34.7`. Nothing outside this file
//! names sled, so swapping the engine touches one file.
//!
//! sled caveats this file works around: a write is durable only after `flush` (the background
//! flush is no guarantee), so the writer flushes before it acknowledges; `apply_batch` on one tree
//! is atomic, so everything a commit writes goes into one tree in one batch; opening a locked
//! store is an `Io` error, told apart here so the user gets "locked", not "corrupt".

use std::path::{Path, PathBuf};

use crate::codec::{self, StoreHeaderV1, StoredHeadV1};
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
    /// (event id, position).
    pub ids: Vec<([u8; 16], u64)>,
    /// (stream, stream version, position).
    pub stream_entries: Vec<(String, u64, u64)>,
    pub head: Option<StoredHeadV1>,
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
    /// Writes a commit atomically. Not durable until [`Storage::flush`].
    fn commit(&self, commit: Commit) -> Result<(), StorageError>;
    /// Makes every commit so far durable (fsync).
    fn flush(&self) -> Result<(), StorageError>;
    fn position_of(&self, event_id: &[u8; 16]) -> Result<Option<u64>, StorageError>;
    /// The last version of a stream whose position is at most `max_position` (0 when none).
    fn stream_head(&self, stream: &str) -> Result<u64, StorageError>;
    /// (version, position) of a stream's events from `from_version`, at most `limit` of them.
    fn stream_entries(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StorageError>;
    /// Raw segments in position order, from the one holding `from_position`.
    fn segments_from(
        &self,
        from_position: u64,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_>;
    /// Every key of the store with its value, for checks of the indexes. Bounded by the caller.
    fn index_entries(
        &self,
        prefix: u8,
    ) -> Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + Send + '_>;
    /// Approximate bytes on disk.
    fn size_on_disk(&self) -> Result<u64, StorageError>;
}

/// The sled implementation.
pub struct SledStorage {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
}

/// The name of the one tree the log lives in.
const LOG_TREE: &str = "carelog-log-v1";

impl SledStorage {
    /// Opens the store at `path`; with `create`, creates it (and its header) when absent.
    pub fn open(
        path: &Path,
        create: bool,
        cache_capacity_bytes: u64,
    ) -> Result<Self, StorageError> {
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
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_capacity_bytes)
            .open()
            .map_err(|e| open_error(&path, e))?;
        let tree = db.open_tree(LOG_TREE).map_err(|e| open_error(&path, e))?;
        let storage = Self { path, db, tree };
        storage.ensure_header(create)?;
        Ok(storage)
    }

    fn ensure_header(&self, create: bool) -> Result<(), StorageError> {
        match self.tree.get(keys::HEADER).map_err(|e| self.io(e))? {
            Some(bytes) => {
                let header: StoreHeaderV1 =
                    codec::decode("store header", &bytes).map_err(|e| StorageError::Corrupt {
                        path: self.path.clone(),
                        detail: e.to_string(),
                    })?;
                if header.format_version != 1
                    || header.hash_algorithm != crate::log::hash::ALGORITHM
                {
                    return Err(StorageError::NotAStore {
                        path: self.path.clone(),
                        detail: format!(
                            "store format {} with hash {:?}; this build reads format 1 with sha256",
                            header.format_version, header.hash_algorithm
                        ),
                    });
                }
                Ok(())
            }
            None => {
                let non_empty = self.tree.iter().next().is_some();
                if non_empty {
                    return Err(StorageError::Corrupt {
                        path: self.path.clone(),
                        detail: "the store header is missing but events are present".into(),
                    });
                }
                if !create {
                    return Err(StorageError::Missing {
                        path: self.path.clone(),
                    });
                }
                let header = StoreHeaderV1 {
                    format_version: 1,
                    hash_algorithm: crate::log::hash::ALGORITHM.to_string(),
                    created_at: crate::time::to_stored(&chrono::Utc::now().fixed_offset()),
                };
                let bytes = codec::encode("store header", &header)?;
                self.tree
                    .insert(keys::HEADER, bytes)
                    .map_err(|e| self.io(e))?;
                self.flush()
            }
        }
    }

    fn io(&self, e: sled::Error) -> StorageError {
        match e {
            sled::Error::Corruption { .. } => StorageError::Corrupt {
                path: self.path.clone(),
                detail: e.to_string(),
            },
            other => StorageError::Io {
                path: self.path.clone(),
                detail: other.to_string(),
            },
        }
    }
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
        let mut batch = sled::Batch::default();
        for (first, bytes) in commit.segments {
            batch.insert(&keys::segment(first)[..], bytes);
        }
        for (id, pos) in commit.ids {
            batch.insert(&keys::id(&id)[..], &keys::position_value(pos)[..]);
        }
        for (stream, version, pos) in commit.stream_entries {
            batch.insert(
                keys::stream_version(&stream, version),
                &keys::position_value(pos)[..],
            );
        }
        if let Some(head) = commit.head {
            batch.insert(keys::HEAD, codec::encode("durable head", &head)?);
        }
        self.tree.apply_batch(batch).map_err(|e| self.io(e))
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(|e| self.io(e))
    }

    fn position_of(&self, event_id: &[u8; 16]) -> Result<Option<u64>, StorageError> {
        match self.tree.get(keys::id(event_id)).map_err(|e| self.io(e))? {
            None => Ok(None),
            Some(v) => keys::position_of_value(&v)
                .map(Some)
                .ok_or_else(|| StorageError::Corrupt {
                    path: self.path.clone(),
                    detail: format!(
                        "id index entry of {} is damaged",
                        uuid::Uuid::from_bytes(*event_id)
                    ),
                }),
        }
    }

    fn stream_head(&self, stream: &str) -> Result<u64, StorageError> {
        match self
            .tree
            .scan_prefix(keys::stream_prefix(stream))
            .next_back()
        {
            None => Ok(0),
            Some(entry) => {
                let (k, _) = entry.map_err(|e| self.io(e))?;
                keys::stream_version_of(&k).ok_or_else(|| StorageError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("stream index key of {stream:?} is damaged"),
                })
            }
        }
    }

    fn stream_entries(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        let start = keys::stream_version(stream, from_version.max(1));
        let end = keys::stream_version(stream, u64::MAX);
        let mut out = Vec::new();
        for entry in self.tree.range(start..=end).take(limit) {
            let (k, v) = entry.map_err(|e| self.io(e))?;
            let damaged = || StorageError::Corrupt {
                path: self.path.clone(),
                detail: format!("stream index entry of {stream:?} is damaged"),
            };
            let version = keys::stream_version_of(&k).ok_or_else(damaged)?;
            let pos = keys::position_of_value(&v).ok_or_else(damaged)?;
            out.push((version, pos));
        }
        Ok(out)
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
            let first = keys::segment_position(&k).ok_or_else(|| StorageError::Corrupt {
                path: self.path.clone(),
                detail: "a segment key is damaged".into(),
            })?;
            Ok((first, v.to_vec()))
        }))
    }

    fn index_entries(
        &self,
        prefix: u8,
    ) -> Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + Send + '_> {
        Box::new(self.tree.scan_prefix([prefix]).map(move |entry| {
            let (k, v) = entry.map_err(|e| self.io(e))?;
            Ok((k.to_vec(), v.to_vec()))
        }))
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db.size_on_disk().map_err(|e| self.io(e))
    }
}
