//! What verify reports: the first problem, the digest an auditor keeps, the outcome.

use serde::{Deserialize, Serialize};

/// What is wrong at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyProblemKind {
    /// The stored bytes differ from what was written (hash mismatch, undecodable, bad index).
    Modified,
    /// A position that should be there is not.
    Missing,
    /// A position or stream version out of order (swapped, duplicated).
    OutOfOrder,
    /// The log no longer holds the head of a digest taken earlier.
    DigestMismatch,
}

/// The first problem verify found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProblem {
    pub position: u64,
    pub kind: VerifyProblemKind,
    pub detail: String,
}

/// A head an auditor can keep and check later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub position: u64,
    /// Hex of the chain hash at `position`.
    pub chain_hash: String,
    pub algorithm: String,
}

/// The outcome of a verify run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub intact: bool,
    pub events_checked: u64,
    pub head: Digest,
    pub problem: Option<VerifyProblem>,
}

/// A problem at `position`, as the checks return it.
pub(super) fn problem(
    position: u64,
    kind: VerifyProblemKind,
    detail: impl Into<String>,
) -> Option<VerifyProblem> {
    Some(VerifyProblem {
        position,
        kind,
        detail: detail.into(),
    })
}
