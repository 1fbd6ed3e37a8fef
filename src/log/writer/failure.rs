//! What the writer remembers of a failed commit ([`Poison`]), what it tells `/healthz`
//! ([`WriteHealth`]), and how it recovers after a full disk ([`Writer::recover`]).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::{Unflushed, Writer};
use crate::log::storage::StorageError;
use crate::log::types::LogError;
use crate::time;

/// Set once a commit could not be written or flushed: no further appends are taken, except
/// after a full disk, where the writer recovers (see `Writer::recover`) at the first batch
/// submitted after every caller of the failed commits was answered. Those queued before were
/// checked (by their callers) against records holding the failed commits: they are refused too.
#[derive(Default)]
pub(super) struct Poison(Mutex<Option<Failure>>);

#[derive(Clone)]
pub(super) struct Failure {
    pub(super) reason: String,
    /// Set when the disk was full: the path named, and what failed.
    pub(super) disk_full: Option<(std::path::PathBuf, String)>,
    /// Batches numbered up to this are refused without a recovery; u64::MAX until the
    /// callers of the failed commits are answered.
    pub(super) refused_through: u64,
}

impl Failure {
    pub(super) fn error(&self) -> LogError {
        match &self.disk_full {
            Some((path, detail)) => LogError::DiskFull {
                path: path.clone(),
                detail: detail.clone(),
            },
            None => LogError::Poisoned(self.reason.clone()),
        }
    }
}

impl Poison {
    pub(super) fn get(&self) -> Option<Failure> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records the first failure; a later one that is not a full disk turns a full disk's into
    /// one that needs a restart.
    pub(super) fn set(&self, e: &LogError) {
        let disk_full = match e {
            LogError::DiskFull { path, detail }
            | LogError::Storage(StorageError::DiskFull { path, detail }) => {
                Some((path.clone(), detail.clone()))
            }
            _ => None,
        };
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match held.as_mut() {
            None => {
                *held = Some(Failure {
                    reason: e.to_string(),
                    disk_full,
                    refused_through: u64::MAX,
                });
            }
            // A full disk, then another failure: no longer one a recovery may undo.
            Some(first) if first.disk_full.is_some() && disk_full.is_none() => {
                first.reason = format!("{}; then: {e}", first.reason);
                first.disk_full = None;
            }
            Some(_) => {}
        }
    }

    /// The callers of the failed commits have their answers: batches submitted from now on
    /// (numbered above `submitted`) may make the writer try to recover.
    pub(super) fn answered(&self, submitted: u64) {
        if let Some(f) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
            && f.refused_through == u64::MAX
        {
            f.refused_through = submitted;
        }
    }

    pub(super) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// What [`WriterHandle::write_health`] says: whether appends are taken now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteHealth {
    Ok,
    /// The disk was full at the last commit: appends are refused until a batch submitted now
    /// finds space again (the writer recovers then, without a restart).
    DiskFull {
        path: std::path::PathBuf,
        detail: String,
    },
    /// A commit failed otherwise: appends are refused until a restart.
    Poisoned(String),
}

impl Writer {
    /// Replaces the failure with one no recovery undoes (a restart is needed); its error.
    fn poison_for_good(&self, reason: String) -> LogError {
        self.poison.clear();
        self.poison.set(&LogError::Poisoned(reason));
        self.poison.answered(0);
        self.poison
            .get()
            .map_or(LogError::WriterGone, |f| f.error())
    }

    /// After a full disk: waits for the flusher to answer what it holds, has the storage take
    /// back out whatever of the failed commits it kept, and starts again from the durable
    /// head. Any other failure, or one found while recovering, stays (a restart is needed).
    pub(super) fn recover(&mut self, failure: &Failure) -> Result<(), LogError> {
        if failure.disk_full.is_none() {
            return Err(failure.error());
        }
        // The flusher answers its tickets with the failure at once: this waits a few
        // microseconds at most, and is bounded all the same.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.inline.in_flight.load(Ordering::Acquire) > 0 {
            if std::time::Instant::now() > deadline {
                return Err(failure.error());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if let Err(e) = self.storage.recover() {
            if e.is_disk_full() {
                return Err(LogError::Storage(e));
            }
            // Not a full disk: this failure stays for the process's life.
            return Err(self.poison_for_good(format!(
                "{}; recovering from it failed: {e}",
                failure.reason
            )));
        }
        let head = self.storage.head()?;
        let durable = self.shared.durable_head();
        let found = head
            .as_ref()
            .map_or((0, crate::log::hash::GENESIS_CHAIN), |h| {
                (h.position, h.chain_hash)
            });
        if found != durable {
            return Err(self.poison_for_good(format!(
                "{}; after recovering, the store's head (position {}) is not the last one \
                 acknowledged (position {})",
                failure.reason, found.0, durable.0
            )));
        }
        self.tree_edge = crate::log::tree::right_edge(self.storage.as_ref(), head.as_ref())?;
        self.last_recorded = match &head {
            Some(h) => Some(time::from_stored(&h.recorded_at)?),
            None => None,
        };
        if let Some(h) = head {
            self.head = h;
        } else {
            self.head.position = 0;
            self.head.chain_hash = crate::log::hash::GENESIS_CHAIN;
        }
        self.unflushed = Unflushed::default();
        // The failed commits are gone: none of their numbers is waited for.
        let written = self.counters.written_commits.load(Ordering::Acquire);
        self.counters
            .durable_commits
            .fetch_max(written, Ordering::Release);
        self.poison.clear();
        Ok(())
    }
}
