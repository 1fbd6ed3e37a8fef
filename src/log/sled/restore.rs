//! Taking the store back to its durable head after a commit or flush failed (a full disk), so
//! that appends can go on without a restart ([`Storage::recover`](crate::log::Storage)).
//!
//! What a failed commit may have left: some of its keys in sled (in memory, and maybe on disk:
//! sled's background flush writes whatever is dirty), and part or all of its journal record
//! in the file, never confirmed by a sync. sled 0.34 also refuses every write for the rest of
//! a database's life once one of its own writes failed (its "global error"). So a recovery
//! 1. zeroes the journal past its last synced record, and syncs (a refused record can never
//!    be replayed);
//! 2. closes sled and opens it again from its files (retrying while a reader still holds the
//!    old database: its lock is released when the last handle goes). First a probe file of
//!    one sled segment is written, synced and removed: while the disk is still full the old
//!    database stays open for readers and nothing else is touched;
//! 3. writes back, newest first, the value every key of the commits since the last durable
//!    flush had before them (kept by `commit`), so nothing of them stays in sled;
//! 4. replays the journal as an open does (`replay_journal`: the floor checked, the journal's
//!    commits that sled lacks applied, sled flushed, the anchor written, a new generation).
//!
//! Any step may fail again (the disk is still full): the store keeps refusing flushes and the
//! next recovery starts over; each step is idempotent.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::journal::Journal;
use super::open::{open_log_file, open_with_retry};
use super::recovery::JournalRecords;
use super::{Engine, SledStorage, anchor, file_bytes};
use std::os::unix::fs::FileExt;

use crate::log::storage::{OpenReport, StorageError, io_failure};

impl SledStorage {
    pub(super) fn recover_durable_head(&self) -> Result<(), StorageError> {
        let mut journal = self.lock_journal()?;
        let failed = self.failure.lock().map_err(|_| self.poisoned())?.is_some();
        let undone_commits = self.undo.lock().map_err(|_| self.poisoned())?.len();
        if !failed && undone_commits == 0 {
            return Ok(());
        }
        journal.discard_unsynced()?;
        self.probe_free_space()?;
        {
            let mut engine = self.engine.write().map_err(|_| self.poisoned())?;
            // Dropped first: sled locks its files, and a failed database takes no write.
            engine.take();
            let (db, _) = open_with_retry(&self.path, &self.options, self.segment_bytes)?;
            let tree = db
                .open_tree(super::open::LOG_TREE)
                .map_err(|e| self.io(e))?;
            let log_file = open_log_file(&self.path)?;
            *engine = Some(Engine {
                db,
                tree,
                log_file: Arc::new(log_file),
            });
        }
        let tree = self.tree()?;
        {
            let undo = self.undo.lock().map_err(|_| self.poisoned())?;
            for (key, replaced) in undo.iter().rev().flat_map(|commit| commit.iter().rev()) {
                match replaced {
                    Some(value) => tree.insert(key.as_slice(), value.clone()),
                    None => tree.remove(key.as_slice()),
                }
                .map_err(|e| self.io(e))?;
            }
        }
        let opened = Journal::open(&self.path, journal.max_bytes())?;
        *journal = opened.journal;
        // `replay_journal` takes the journal's lock itself; nothing else writes meanwhile (the
        // writer is the one calling).
        drop(journal);
        let records = JournalRecords {
            payloads: &opened.payloads,
            damaged_record_at: opened.damaged_record_at,
        };
        let kept_anchor = anchor::read(&self.path)?;
        let mut report = OpenReport::default();
        if let Some(moved_to) = &opened.damaged_moved_to {
            report.warnings.push(format!(
                "the commit journal's header was damaged (moved to {})",
                moved_to.display()
            ));
        }
        self.replay_journal(&records, kept_anchor.as_ref(), &mut report)?;
        if !report.warnings.is_empty() {
            return Err(StorageError::Io {
                path: self.path.clone(),
                detail: format!(
                    "recovering after a failed write found: {}; restart carelog and run `carelog verify`",
                    report.warnings.join("; ")
                ),
            });
        }
        self.undo.lock().map_err(|_| self.poisoned())?.clear();
        self.unjournaled
            .lock()
            .map_err(|_| self.poisoned())?
            .clear();
        let bytes = file_bytes(&self.path, &*self.log_file()?)?;
        self.synced_db_bytes.store(bytes, Ordering::Release);
        *self.failure.lock().map_err(|_| self.poisoned())? = None;
        self.healthy.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes, syncs and removes a file of one sled segment's bytes beside sled's: a full disk
    /// fails here, before sled is closed, rather than in sled's open.
    fn probe_free_space(&self) -> Result<(), StorageError> {
        let probe = self.path.join(PROBE_FILE);
        let written = (|| -> std::io::Result<()> {
            let file = std::fs::File::create(&probe)?;
            let zeros = vec![0u8; 64 * 1024];
            let mut left = self.segment_bytes;
            while left > 0 {
                let n = left.min(zeros.len());
                file.write_all_at(&zeros[..n], (self.segment_bytes - left) as u64)?;
                left -= n;
            }
            file.sync_data()
        })();
        let removed = std::fs::remove_file(&probe);
        written
            .and(removed)
            .map_err(|e| io_failure(&self.path, format!("checking for free space: {e}"), &e))
    }
}

/// The probe file's name in the store directory (removed at once; a crash may leave it).
const PROBE_FILE: &str = "space-probe.tmp";
