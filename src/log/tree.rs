//! The log's Merkle tree (RFC 9162, the rules in [`crate::merkle`]) kept in its storage: each
//! commit stores the hashes it adds (never one that changes later), so a root at any size and
//! any proof read O(log n) stored hashes.
//!
//! - The writer keeps the tree's right edge ([`CompactRange`]) beside its head and puts the new
//!   hashes in the same commit as the events ([`tree_chunks_of`]), before the head: the tree is
//!   never ahead of or behind the log past one interrupted commit, which is set aside with it.
//! - A store made before the tree existed gets it at its first open ([`build_missing`]), from the
//!   leaf hashes it stores. `verify` does not yet recheck the stored tree hashes against the
//!   leaves (it rechecks every leaf and chain hash); `carelog-audit` rebuilds the root from the
//!   leaves' bytes, trusting no stored hash.
//! - The tree's leaf index is the position − 1; its size is a head position.

use crate::codec::StoredHeadV1;
use crate::merkle::{self, CompactRange, Hash, HashAlgorithm, HashReader, MerkleError};

use super::read::Shared;
use super::storage::{Storage, TREE_CHUNK_HASHES};
use super::{LogError, hash};

/// The hash of the log's tree (the store's header names it; only SHA-256 is written today).
pub(crate) const TREE_HASH: HashAlgorithm = HashAlgorithm::Sha256;

/// Reads stored tree hashes from a storage engine.
pub(crate) struct StoredHashes<'s>(pub &'s dyn Storage);

impl HashReader for StoredHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        self.0
            .tree_hashes(indexes)
            .map_err(|e| MerkleError::Unreadable {
                index: indexes.first().copied().unwrap_or(0),
                detail: e.to_string(),
            })
    }
}

/// `hashes`, the stored sequence from index `first` on, as values of at most
/// [`TREE_CHUNK_HASHES`] hashes.
pub(crate) fn tree_chunks_of(first: u64, hashes: &[Hash]) -> Vec<(u64, Vec<u8>)> {
    hashes
        .chunks(TREE_CHUNK_HASHES)
        .enumerate()
        .map(|(i, part)| {
            (
                first + (i * TREE_CHUNK_HASHES) as u64,
                part.iter().flatten().copied().collect(),
            )
        })
        .collect()
}

/// The right edge of the stored tree at `head`.
pub(crate) fn right_edge(
    storage: &dyn Storage,
    head: Option<&StoredHeadV1>,
) -> Result<CompactRange, LogError> {
    let size = head.map_or(0, |h| h.position);
    CompactRange::load(size, &StoredHashes(storage)).map_err(tree_error)
}

fn tree_error(e: MerkleError) -> LogError {
    LogError::Tree(e.to_string())
}

/// How many events a backfill folds before it writes what it built.
const BUILD_EVENTS_PER_WRITE: u64 = 1 << 16;

/// Builds the tree hashes the store lacks up to its head (a store made before the tree, or one
/// whose tree a crash left short); returns how many events it covered, 0 when none lacked.
pub(crate) fn build_missing(shared: &Shared, storage: &dyn Storage) -> Result<u64, LogError> {
    let head = shared.durable_head().0;
    let stored = storage.tree_stored_count()?;
    let wanted = merkle::stored_count(head);
    if stored >= wanted {
        return Ok(0);
    }
    // The largest tree size whose stored sequence is all there.
    let (mut lo, mut hi) = (0u64, head);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if merkle::stored_count(mid) <= stored {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut edge = CompactRange::load(lo, &StoredHashes(storage)).map_err(tree_error)?;
    let mut pending: Vec<Hash> = Vec::new();
    let mut pending_first = merkle::stored_count(lo);
    shared.for_each_stored_event(lo + 1, head, |e| -> Result<(), LogError> {
        let leaf = hash::computed_leaf(e).map_err(LogError::Tree)?;
        edge.append(TREE_HASH, leaf, &mut pending);
        if edge.size() % BUILD_EVENTS_PER_WRITE == 0 {
            storage.write_tree_chunks(tree_chunks_of(pending_first, &pending))?;
            pending_first += pending.len() as u64;
            pending.clear();
        }
        Ok(())
    })?;
    if edge.size() != head {
        return Err(LogError::Tree(format!(
            "the tree could be built to position {} only, not the head {head}",
            edge.size()
        )));
    }
    storage.write_tree_chunks(tree_chunks_of(pending_first, &pending))?;
    Ok(head - lo)
}

/// The root of the tree of the first `size` events.
pub(crate) fn root(storage: &dyn Storage, size: u64) -> Result<Hash, LogError> {
    merkle::root(TREE_HASH, size, &StoredHashes(storage)).map_err(tree_error)
}

/// The inclusion proof of the event at `position` in the tree of `size` events.
pub(crate) fn inclusion_proof(
    storage: &dyn Storage,
    position: u64,
    size: u64,
) -> Result<Vec<Hash>, LogError> {
    if position == 0 {
        return Err(LogError::Tree("positions start at 1".into()));
    }
    merkle::inclusion_proof(TREE_HASH, position - 1, size, &StoredHashes(storage))
        .map_err(tree_error)
}

/// The consistency proof between the trees of `old_size` and `size` events.
pub(crate) fn consistency_proof(
    storage: &dyn Storage,
    old_size: u64,
    size: u64,
) -> Result<Vec<Hash>, LogError> {
    merkle::consistency_proof(TREE_HASH, old_size, size, &StoredHashes(storage)).map_err(tree_error)
}
