//! Opening a sled store: telling "missing", "locked", "corrupt" and "not a store" apart, sled's
//! open with its retry and its snapshot set-aside, the store header, and the commit journal's
//! replay, executed from the plan [`super::recovery::plan`] makes. Everything the open did is
//! told once, in the [`OpenReport`] it returns.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::anchor::{self, Anchor};
use super::journal::{self, Journal};
use super::recovery::{self, JournalRecords, View};
use super::{Engine, SledOptions, SledStorage, file_bytes, flush_and_sync, keys, sled_error};
use crate::codec::{self, StoreHeaderV1, StoredHeadV1};
use crate::log::segments;
use crate::log::storage::{
    OpenReport, STORE_FORMAT_VERSION, Storage, StorageError, io_failure, is_storage_full,
};

/// The name of the one tree the log lives in.
pub(super) const LOG_TREE: &str = "carelog-log-v1";

impl SledStorage {
    /// Opens the store at `path`; with `options.create`, creates it (and its header) when
    /// absent. Replays the commit journal before it returns, and says what it did.
    pub fn open(path: &Path, options: SledOptions) -> Result<(Self, OpenReport), StorageError> {
        let create = options.create;
        let path = path.to_path_buf();
        let files = StoreFiles::look(&path)?;
        if !files.sled {
            if let Some(evidence) = files.evidence() {
                return Err(StorageError::Damaged {
                    path,
                    detail: format!(
                        "sled's database file (db) is missing, but the store's {evidence} is there"
                    ),
                });
            }
            if !create {
                return Err(StorageError::Missing { path });
            }
            if files.others {
                return Err(StorageError::NotAStore {
                    path,
                    detail: "the directory holds other files and no sled database".into(),
                });
            }
        }
        let segment_bytes = sled_segment_bytes(&path);
        let (db, snapshots_moved_to) = open_with_retry(&path, &options, segment_bytes)?;
        let tree = db.open_tree(LOG_TREE).map_err(|e| open_error(&path, e))?;
        let log_file = open_log_file(&path)?;
        // Before the journal is touched: a store this build refuses keeps its journal as is.
        let kept_anchor = anchor::read(&path)?;
        let header_sha256 = ensure_header(
            &path,
            &db,
            &tree,
            &log_file,
            create,
            kept_anchor.as_ref(),
            &files,
        )?;
        refuse_lost_journal(&path, &tree, kept_anchor.as_ref())?;
        let opened_journal = Journal::open(&path, options.journal_max_bytes)?;
        let mut report = OpenReport::default();
        if let Some(moved_to) = &snapshots_moved_to {
            report.warnings.push(format!(
                "sled could not read its snapshot after an unclean stop (a known failure of sled \
                 0.34: its snapshot, derived from its log, was ahead of or cut from the log); \
                 the snapshot files were moved to {} (kept) and sled rebuilt its state from its \
                 log. Run `carelog verify` before relying on the store",
                moved_to.display()
            ));
        }
        if let Some(moved_to) = &opened_journal.damaged_moved_to {
            report.warnings.push(format!(
                "the commit journal's header was damaged; the file was moved to {} (kept) and a \
                 new journal started. Events acknowledged since the last clean close may be \
                 missing: run `carelog verify` and compare with a digest you kept",
                moved_to.display()
            ));
        }
        let synced_db_bytes = file_bytes(&path, &log_file)?;
        let storage = Self {
            path,
            engine: RwLock::new(Some(Engine {
                db,
                tree,
                log_file: Arc::new(log_file),
            })),
            segment_bytes,
            options,
            undo: Mutex::new(VecDeque::new()),
            journal: Mutex::new(opened_journal.journal),
            unjournaled: Mutex::new(Vec::new()),
            healthy: AtomicBool::new(false),
            failure: Mutex::new(None),
            synced_db_bytes: AtomicU64::new(synced_db_bytes),
            header_sha256,
        };
        let records = JournalRecords {
            payloads: &opened_journal.payloads,
            damaged_record_at: opened_journal.damaged_record_at,
        };
        storage.replay_journal(&records, kept_anchor.as_ref(), &mut report)?;
        report.snapshots_set_aside = snapshots_moved_to;
        report.journals_set_aside = journals_set_aside(&storage.path);
        if let Some(warning) = segment_size_warning(storage.segment_bytes) {
            report.warnings.push(warning);
        }
        storage.healthy.store(true, Ordering::Release);
        Ok((storage, report))
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

    /// Replays the journal: the plan validates first (see [`recovery`]), this writes second.
    /// On a problem the journal is moved aside, kept, with a warning, and appends are refused
    /// while it is there; otherwise a new generation starts. Either way sled is made durable
    /// first: what it recovered from its file may be all that holds an acknowledged commit once
    /// the journal is reset.
    pub(super) fn replay_journal(
        &self,
        records: &JournalRecords<'_>,
        kept_anchor: Option<&Anchor>,
        report: &mut OpenReport,
    ) -> Result<(), StorageError> {
        let view = SledView {
            storage: self,
            head: self.head()?,
        };
        // Before anything is written: a store that held more than sled does now is refused as
        // it is, its journal untouched.
        if let Some(kept) = kept_anchor {
            check_floor(&self.path, kept, &view)?;
        }
        self.flush_sled()?;
        let plan = recovery::plan(records, &view)?;
        let tree = self.tree()?;
        for restore in &plan.restores {
            tree.insert(restore.key.as_slice(), restore.value.as_slice())
                .map_err(|e| self.io(e))?;
        }
        // In the order the commits wrote them: each one's head last.
        for (key, value) in plan.applies.iter().flat_map(|a| &a.writes) {
            tree.insert(key.as_slice(), value.as_slice())
                .map_err(|e| self.io(e))?;
        }
        if plan.writes() {
            self.flush_sled()?;
        }
        let mut journal = self.lock_journal()?;
        // Nothing else writes during an open: sled's head now is what the flush above (or the
        // one after the plan's writes) made durable.
        // A head whose event sled does not hold (damage the log reports) is no floor: the
        // kept one stays.
        let head = self.head()?;
        let head_event_held = match &head {
            None => true,
            Some(h) => view.chain_hash_at(h.position).ok().flatten() == Some(h.chain_hash),
        };
        let floor = if head_event_held {
            super::floor_of(head.as_ref())
        } else {
            kept_anchor.map_or((0, crate::log::hash::GENESIS_CHAIN), |a| {
                (a.floor_position, a.floor_chain_hash)
            })
        };
        self.write_anchor(floor)?;
        match &plan.problem {
            None => journal.reset()?,
            Some(what) => {
                let moved_to = journal.set_aside()?;
                report.warnings.push(format!(
                    "the commit journal held {what}: damage, or a store changed by hand. The \
                     journal was moved to {} (kept); events acknowledged after the head may be \
                     missing, and appends are refused while the file is in the store. Run \
                     `carelog verify` and compare with a digest you kept",
                    moved_to.display()
                ));
            }
        }
        report.replayed = plan.replay;
        Ok(())
    }
}

/// What the planner sees of sled: its head and its keys, read as it asks.
struct SledView<'a> {
    storage: &'a SledStorage,
    head: Option<StoredHeadV1>,
}

impl View for SledView<'_> {
    fn head(&self) -> Option<&StoredHeadV1> {
        self.head.as_ref()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .storage
            .tree()?
            .get(key)
            .map_err(|e| self.storage.io(e))?
            .map(|v| v.to_vec()))
    }

    fn chain_hash_at(&self, position: u64) -> Result<Option<[u8; 32]>, String> {
        segments::stored_event_at(self.storage, position)
            .map(|e| e.map(|e| e.chain_hash))
            .map_err(|e| e.to_string())
    }
}

/// The commit journals moved aside (by any open) still in the store directory, sorted.
/// The journal keeps what was acknowledged since sled last flushed: a store holding events and
/// an anchor without it may have lost acknowledged events, which no other check would see
/// (sled's head is then at or past the anchor's floor). Only a crash between moving a journal
/// aside and making the next one leaves none legitimately, and that leaves the moved file.
fn refuse_lost_journal(
    path: &Path,
    tree: &sled::Tree,
    kept_anchor: Option<&Anchor>,
) -> Result<(), StorageError> {
    let holds_events = tree
        .get(keys::HEAD)
        .map_err(|e| sled_error(path, e))?
        .is_some();
    if kept_anchor.is_some()
        && holds_events
        && !path.join(journal::JOURNAL_FILE).exists()
        && journals_set_aside(path).is_empty()
    {
        return Err(StorageError::Damaged {
            path: path.to_path_buf(),
            detail: "its commit journal (file `journal`) is missing: the events acknowledged                      since sled last flushed are kept there, and without it they would be lost                      without a trace. Restore the store, journal included, from a backup"
                .into(),
        });
    }
    Ok(())
}

fn journals_set_aside(path: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
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

/// The warning for a store made with sled's old, smaller segments, if it is one.
fn segment_size_warning(segment_bytes: usize) -> Option<String> {
    (segment_bytes < SLED_SEGMENT_BYTES).then(|| {
        format!(
            "this store was created with sled segments of {} KiB, so sled keeps tree nodes \
             over {} KiB in blob files, which it never syncs itself. carelog syncs them at each \
             of its sled flushes, but sled's own background flush may make its log point at a \
             blob before that: a power loss could leave the store unreadable. Move it to the \
             current layout: `carelog export > all.jsonl`, then `carelog --data NEW import \
             all.jsonl --keep-recorded-at`",
            segment_bytes / 1024,
            segment_bytes / 4 / 1024
        )
    })
}

/// What the store directory holds, looked at before sled is opened.
struct StoreFiles {
    /// sled's own files (`db`, `conf`).
    sled: bool,
    /// The commit journal, or one an open set aside.
    journal: bool,
    /// The anchor ([`anchor`]).
    anchor: bool,
    /// Anything at all.
    others: bool,
}

impl StoreFiles {
    fn look(path: &Path) -> Result<Self, StorageError> {
        let mut files = Self {
            sled: path.join("db").exists() || path.join("conf").exists(),
            journal: false,
            anchor: anchor::path_in(path).exists(),
            others: false,
        };
        if !path.exists() {
            return Ok(files);
        }
        let entries = std::fs::read_dir(path).map_err(|e| StorageError::Io {
            path: path.to_path_buf(),
            detail: format!("cannot list the store's directory: {e}"),
        })?;
        for entry in entries.flatten() {
            files.others = true;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            files.journal |= name == journal::JOURNAL_FILE || journal::is_set_aside_name(&name);
        }
        Ok(files)
    }

    /// What of a store, beside sled's files, says one existed here.
    fn evidence(&self) -> Option<&'static str> {
        match (self.anchor, self.journal) {
            (true, true) => Some("anchor (file `anchor`) and commit journal (`journal`)"),
            (true, false) => Some("anchor (file `anchor`)"),
            (false, true) => Some("commit journal (`journal`)"),
            (false, false) => None,
        }
    }
}

/// SHA-256 of a stored header's bytes, as the anchor keeps it.
fn header_sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The first store format that keeps an anchor.
const ANCHORED_FORMAT: u32 = 3;

/// Checks the store header against the anchor kept beside sled (creating both in a new store,
/// moving an older store to [`STORE_FORMAT_VERSION`]); returns the SHA-256 of the header's
/// bytes. Refuses, changing nothing, whatever says the store held more than sled does now.
fn ensure_header(
    path: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    log_file: &std::fs::File,
    create: bool,
    kept_anchor: Option<&Anchor>,
    files: &StoreFiles,
) -> Result<[u8; 32], StorageError> {
    let damaged = |detail: String| StorageError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let Some(bytes) = tree.get(keys::HEADER).map_err(|e| sled_error(path, e))? else {
        if tree.iter().next().is_some() {
            return Err(damaged(
                "its header (sled key `H`) is missing but events are present".into(),
            ));
        }
        if let Some(kept) = kept_anchor {
            return Err(damaged(format!(
                "sled's database holds nothing, but the store's anchor (file `anchor`) records \
                 that it held {} event(s): sled's file `db` was cut short, damaged or replaced",
                kept.floor_position
            )));
        }
        if let Some(evidence) = files.evidence() {
            return Err(damaged(format!(
                "sled's database holds nothing, but the store's {evidence} is there: sled's \
                 file `db` was cut short, damaged or replaced"
            )));
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
        tree.insert(keys::HEADER, bytes.as_slice())
            .map_err(|e| sled_error(path, e))?;
        flush_and_sync(path, db, log_file)?;
        return Ok(header_sha256(&bytes));
    };
    let header: StoreHeaderV1 = codec::decode("store header", &bytes)
        .map_err(|e| damaged(format!("its header (sled key `H`) cannot be read: {e}")))?;
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
    if header.format_version >= ANCHORED_FORMAT {
        match kept_anchor {
            Some(kept) if kept.header_sha256 != header_sha256(&bytes) => {
                return Err(damaged(
                    "its header (sled key `H`) is not the one its anchor (file `anchor`) \
                     recorded: the header was changed or damaged, or sled's database is another \
                     store's"
                        .into(),
                ));
            }
            // A create that stopped before its first anchor leaves the header alone.
            None if tree.iter().nth(1).is_some() => {
                return Err(damaged(
                    "its anchor (file `anchor`), which every store of format 3 or later keeps \
                     beside sled's files, is missing"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    if header.format_version == STORE_FORMAT_VERSION {
        return Ok(header_sha256(&bytes));
    }
    let upgraded = StoreHeaderV1 {
        format_version: STORE_FORMAT_VERSION,
        ..header
    };
    let bytes = codec::encode("store header", &upgraded)?;
    tree.insert(keys::HEADER, bytes.as_slice())
        .map_err(|e| sled_error(path, e))?;
    flush_and_sync(path, db, log_file)?;
    Ok(header_sha256(&bytes))
}

/// Refuses a sled whose head is below the anchor's floor, or whose event at the floor is not
/// the one the anchor recorded: acknowledged history is missing or was changed.
fn check_floor(path: &Path, kept: &Anchor, view: &SledView<'_>) -> Result<(), StorageError> {
    let floor = kept.floor_position;
    if floor == 0 {
        return Ok(());
    }
    let damaged = |detail: String| StorageError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let head_position = view.head().map_or(0, |h| h.position);
    if head_position < floor {
        return Err(damaged(format!(
            "sled's head (key `M`) is at position {head_position}, but the store's anchor (file \
             `anchor`) records that sled held {floor} events durably: events {}..={floor} are \
             missing (the head was lost or changed, or sled's file `db` was cut short)",
            head_position + 1
        )));
    }
    match view.chain_hash_at(floor) {
        Ok(Some(hash)) if hash == kept.floor_chain_hash => Ok(()),
        Ok(Some(_)) => Err(damaged(format!(
            "the event at position {floor} is not the one the store's anchor (file `anchor`) \
             recorded (another chain hash): history up to it was changed"
        ))),
        Ok(None) => Err(damaged(format!(
            "no event is stored at position {floor}, which the store's anchor (file `anchor`) \
             records that sled held"
        ))),
        Err(e) => Err(damaged(format!(
            "the event at position {floor}, which the store's anchor (file `anchor`) records, \
             cannot be read ({e})"
        ))),
    }
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

/// Opens sled, retrying while another process still holds the store's lock. When sled finds
/// a store carelog made (one with a commit journal) corrupt and it has snapshot files, they are
/// moved aside (kept) and the open is tried once more: sled 0.34 can refuse a store after a kill because its snapshot (the page table
/// up to a log position, rebuilt from the log when missing) is ahead of the log or cut short
/// (sled issues #1527 and #1533; seen here once in some 300 kill -9 rounds). Returns where they
/// went, if they were moved.
pub(super) fn open_with_retry(
    path: &Path,
    options: &SledOptions,
    segment_bytes: usize,
) -> Result<(sled::Db, Option<PathBuf>), StorageError> {
    let started = std::time::Instant::now();
    let mut snapshots_moved_to = None;
    loop {
        let config = sled::Config::new()
            .path(path)
            .segment_size(segment_bytes)
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(options.sled_flush_every_ms);
        // sled 0.34 panics on some damaged files (a cut or flipped `db`) instead of returning
        // an error: that is damage to report, never a crash of the command.
        let opened = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
        {
            Ok(opened) => opened.map_err(|e| open_error(path, e)),
            Err(panic) => Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "sled could not read its files ({}): {}",
                    path.join("db").display(),
                    super::panic_message(panic.as_ref())
                ),
            }),
        };
        match opened {
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
    let io = |what: &str, e: std::io::Error| io_failure(path, format!("{what}: {e}"), &e);
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

/// sled's log file, opened to sync it (sled 0.34 never `fdatasync`s it).
pub(super) fn open_log_file(path: &Path) -> Result<std::fs::File, StorageError> {
    std::fs::File::open(path.join("db")).map_err(|e| {
        io_failure(
            path,
            format!("cannot open sled's log file to sync it: {e}"),
            &e,
        )
    })
}

fn open_error(path: &Path, e: sled::Error) -> StorageError {
    let text = e.to_string();
    match e {
        // sled writes at open (its snapshot): on a full disk that is no damage.
        sled::Error::Io(ref io) if is_storage_full(io) => StorageError::DiskFull {
            path: path.to_path_buf(),
            detail: format!("sled could not open the store: {text}"),
        },
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
