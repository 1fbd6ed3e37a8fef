//! [`Verdict`]: the one answer to "is this store intact?", given alike by `carelog verify` and
//! `GET /v1/verify`.
//!
//! The log's own check ([`Log::verify`]: hashes, positions, versions, indexes, a digest) is one
//! part. The other is what the store holds beside the log that a person must settle before the
//! records can be trusted whole: a commit journal an open could not apply (it may hold
//! acknowledged events the log lacks) and keys past the head that did not continue it (damage
//! or tampering, not a crash). Either makes the verdict fail although every hash checks out,
//! so the two shells can never disagree about it again.

use serde::Serialize;

use crate::log::{Digest, Log, VerifyProblem};

use super::AppError;

/// The verdict on a store.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The log checked out and the store holds nothing a person must settle.
    pub intact: bool,
    /// The log's own checks (hashes, positions, versions, indexes, the digest) passed.
    pub log_intact: bool,
    pub events_checked: u64,
    pub head: Digest,
    /// The first problem the log's own checks found.
    pub problem: Option<VerifyProblem>,
    /// What the store holds beside the log that a person must settle.
    pub store_problems: Vec<StoreProblem>,
}

/// Something beside the log that makes a verdict fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreProblem {
    pub kind: StoreProblemKind,
    /// What it is and what to do, for a person.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreProblemKind {
    /// A commit journal an open could not apply is in the store.
    JournalSetAside,
    /// Keys past the head that did not continue it were set aside at open.
    TailNotContinuingHead,
}

/// Checks the log and what the store holds beside it. `progress` gets the events checked so far.
pub fn verify_store(
    log: &Log,
    check_indexes: bool,
    against: Option<&Digest>,
    progress: &mut dyn FnMut(u64),
) -> Result<Verdict, AppError> {
    let report = log.verify(check_indexes, against, progress)?;
    let mut store_problems = Vec::new();
    if let Some(tail) = log.open_report().tail_set_aside
        && !tail.continues_head
    {
        store_problems.push(StoreProblem {
            kind: StoreProblemKind::TailNotContinuingHead,
            detail: format!(
                "events past the head (from position {}) did not continue the log and were set aside",
                tail.from_position
            ),
        });
    }
    let journals = log.journals_set_aside();
    if !journals.is_empty() {
        let names: Vec<String> = journals.iter().map(|p| p.display().to_string()).collect();
        store_problems.push(StoreProblem {
            kind: StoreProblemKind::JournalSetAside,
            detail: format!(
                "the store holds commit journal(s) an open could not apply: {}. Events \
                 acknowledged before a crash may be missing from the log; compare it with a \
                 digest you kept, then move the file(s) out of the store directory",
                names.join(", ")
            ),
        });
    }
    Ok(Verdict {
        intact: report.intact && store_problems.is_empty(),
        log_intact: report.intact,
        events_checked: report.events_checked,
        head: report.head,
        problem: report.problem,
        store_problems,
    })
}
