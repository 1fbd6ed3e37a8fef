//! The RFC 9162 Merkle tree over the log's leaves: hashing, the stored layout of complete
//! subtrees, roots, inclusion and consistency proofs, and their verification.
//!
//! Pure code (no IO, no storage): the log keeps the hashes, an auditor's tool checks proofs, and
//! both use this one implementation of the rules.
//!
//! - Leaf hash `H(0x00 ‖ leaf)`, node hash `H(0x01 ‖ left ‖ right)`, the empty tree's root
//!   `H("")`; a tree of n > 1 leaves splits at the largest power of two below n (RFC 9162
//!   §2.1.1). H is SHA-256 or SM3 (GB/T 32905), chosen once per store ([`HashAlgorithm`]).
//! - **Stored layout** (the idea of Go's `sumdb/tlog`): the hash of every complete subtree is kept
//!   once, when it completes, in one sequence numbered from 0. Appending leaf i writes its leaf
//!   hash, then the hash of every subtree that leaf completes (one per trailing 1-bit of i), and
//!   nothing else: every stored hash is final. [`stored_index`] says where the subtree
//!   (level, n) lies; [`stored_count`] how many hashes a tree of n leaves has stored
//!   (2n − popcount(n)).
//! - A root at any size, and any proof, is read from O(log n) stored hashes ([`HashReader`]).
//! - Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), with the
//!   edge cases of transparency-dev's verifier (size 0, equal sizes).

pub mod note;

use sha2::Digest as _;

/// A hash of the tree: every algorithm offered is 32 bytes.
pub type Hash = [u8; 32];

/// The chain hash before the first event.
pub const GENESIS_CHAIN: Hash = [0u8; 32];

/// The hash function of a store: chosen when the store is made, never changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    Sha256,
    Sm3,
}

impl HashAlgorithm {
    /// The name in a store's header, an origin line and the command line.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sm3 => "sm3",
        }
    }

    /// The algorithm a name stands for (`sha256`, `sm3`; `SHA-256` as older stores wrote it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Some(HashAlgorithm::Sha256),
            "sm3" => Some(HashAlgorithm::Sm3),
            _ => None,
        }
    }

    /// H(part ‖ part ‖ …).
    pub fn digest(self, parts: &[&[u8]]) -> Hash {
        match self {
            HashAlgorithm::Sha256 => {
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
            HashAlgorithm::Sm3 => {
                let mut h = sm3::Sm3::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
        }
    }

    /// A leaf's hash: H(0x00 ‖ leaf bytes).
    pub fn leaf_hash(self, leaf: &[u8]) -> Hash {
        self.digest(&[&[0x00], leaf])
    }

    /// An inner node's hash: H(0x01 ‖ left ‖ right).
    pub fn node_hash(self, left: &Hash, right: &Hash) -> Hash {
        self.digest(&[&[0x01], left, right])
    }

    /// The chain hash after an event with leaf hash `leaf`: H(previous chain ‖ leaf), with
    /// [`GENESIS_CHAIN`] before position 1.
    pub fn chain_hash(self, previous: &Hash, leaf: &Hash) -> Hash {
        self.digest(&[previous, leaf])
    }

    /// The root of the empty tree: H of no bytes.
    pub fn empty_root(self) -> Hash {
        self.digest(&[])
    }
}

/// Why a proof or a read of the tree failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {leaf_index} is not in a tree of {tree_size} leaves")]
    LeafOutOfRange { leaf_index: u64, tree_size: u64 },
    #[error("a tree of {old_size} leaves is not a prefix of one of {tree_size}")]
    SizesOutOfOrder { old_size: u64, tree_size: u64 },
    #[error("the proof has {got} hashes; a proof for these sizes has {expected}")]
    WrongProofLength { got: usize, expected: usize },
    #[error("the proof does not lead to the root it was checked against")]
    RootMismatch,
    #[error("the stored tree lacks hash {index}: {detail}")]
    Unreadable { index: u64, detail: String },
}

/// Reads stored hashes by their index in the stored sequence.
pub trait HashReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError>;
}

impl HashReader for Vec<Hash> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.get(i))
                    .copied()
                    .ok_or_else(|| MerkleError::Unreadable {
                        index: i,
                        detail: format!("only {} hashes are stored", self.len()),
                    })
            })
            .collect()
    }
}

/// How many hashes a tree of `leaves` leaves has stored: 2n − popcount(n).
pub fn stored_count(leaves: u64) -> u64 {
    2 * leaves - u64::from(leaves.count_ones())
}

/// Where the hash of the complete subtree `(level, n)` (leaves `n·2^level ..
/// (n+1)·2^level`) lies in the stored sequence. It is stored right after the leaf that
/// completes it, at `level` places past that leaf's own hash.
pub fn stored_index(level: u32, n: u64) -> u64 {
    let last_leaf = ((n + 1) << level) - 1;
    stored_count(last_leaf) + u64::from(level)
}

/// The right edge of a tree: the hashes of the complete subtrees its size decomposes into
/// (largest first, one per 1-bit of the size). Enough to append the next leaf, and to give the
/// root, without reading anything: the writer keeps one, and so does an auditor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The right edge of the stored tree of `size` leaves: popcount(size) reads.
    pub fn load(size: u64, read: &dyn HashReader) -> Result<Self, MerkleError> {
        let mut indexes = Vec::new();
        let mut lo = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                indexes.push(stored_index(level, lo >> level));
                lo += 1 << level;
            }
        }
        let hashes = read.read_hashes(&indexes)?;
        Ok(Self { size, hashes })
    }

    /// How many leaves the range covers.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; pushes onto `stored` the hashes the stored sequence gains, in order:
    /// the leaf hash, then each subtree it completes (see [`stored_index`]).
    pub fn append(&mut self, algorithm: HashAlgorithm, leaf_hash: Hash, stored: &mut Vec<Hash>) {
        let completed = self.size.trailing_ones();
        debug_assert!(self.hashes.len() >= completed as usize);
        let mut h = leaf_hash;
        stored.push(h);
        for _ in 0..completed {
            let Some(left) = self.hashes.pop() else {
                break;
            };
            h = algorithm.node_hash(&left, &h);
            stored.push(h);
        }
        self.hashes.push(h);
        self.size += 1;
        debug_assert_eq!(self.hashes.len() as u32, self.size.count_ones());
    }

    /// The root of the tree of `size()` leaves.
    pub fn root(&self, algorithm: HashAlgorithm) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return algorithm.empty_root();
        };
        let mut h = *last;
        for left in iter {
            h = algorithm.node_hash(left, &h);
        }
        h
    }
}

/// The largest power of two strictly below `n` (n ≥ 2): where RFC 9162 splits a tree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The stored hashes whose combination is MTH(D[lo..hi]), in the order `combine` takes them.
/// `lo` is always a multiple of the largest power of two ≤ hi − lo here (the ranges a root or a
/// proof asks for), so every part is a complete subtree.
fn range_parts(lo: u64, hi: u64, out: &mut Vec<(u32, u64)>) {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros();
        out.push((level, lo >> level));
        return;
    }
    let k = split(n);
    range_parts(lo, lo + k, out);
    range_parts(lo + k, hi, out);
}

/// MTH(D[lo..hi]) from stored hashes.
fn range_hash(
    algorithm: HashAlgorithm,
    lo: u64,
    hi: u64,
    read: &dyn HashReader,
) -> Result<Hash, MerkleError> {
    debug_assert!(lo < hi);
    let mut parts = Vec::new();
    range_parts(lo, hi, &mut parts);
    let indexes: Vec<u64> = parts.iter().map(|&(l, n)| stored_index(l, n)).collect();
    let hashes = read.read_hashes(&indexes)?;
    // The parts are complete subtrees of decreasing size, left to right: fold from the right.
    let mut iter = hashes.iter().rev();
    let mut h = *iter.next().ok_or(MerkleError::RootMismatch)?;
    for left in iter {
        h = algorithm.node_hash(left, &h);
    }
    Ok(h)
}

/// The root of the tree of the first `tree_size` leaves.
pub fn root(
    algorithm: HashAlgorithm,
    tree_size: u64,
    read: &dyn HashReader,
) -> Result<Hash, MerkleError> {
    if tree_size == 0 {
        return Ok(algorithm.empty_root());
    }
    range_hash(algorithm, 0, tree_size, read)
}

/// The inclusion proof of leaf `leaf_index` in the tree of `tree_size` leaves (RFC 9162
/// §2.1.3.1: PATH), nearest sibling first.
pub fn inclusion_proof(
    algorithm: HashAlgorithm,
    leaf_index: u64,
    tree_size: u64,
    read: &dyn HashReader,
) -> Result<Vec<Hash>, MerkleError> {
    if leaf_index >= tree_size {
        return Err(MerkleError::LeafOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    let mut proof = Vec::new();
    let (mut lo, mut hi) = (0, tree_size);
    // Walk down from the root, keeping each sibling; the proof lists them bottom up.
    while hi - lo > 1 {
        let k = split(hi - lo);
        if leaf_index - lo < k {
            proof.push(range_hash(algorithm, lo + k, hi, read)?);
            hi = lo + k;
        } else {
            proof.push(range_hash(algorithm, lo, lo + k, read)?);
            lo += k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof between the trees of `old_size` and `tree_size` leaves (RFC 9162
/// §2.1.4.1: PROOF), in the RFC's order. Empty when the sizes are equal or `old_size` is 0.
pub fn consistency_proof(
    algorithm: HashAlgorithm,
    old_size: u64,
    tree_size: u64,
    read: &dyn HashReader,
) -> Result<Vec<Hash>, MerkleError> {
    if old_size > tree_size {
        return Err(MerkleError::SizesOutOfOrder {
            old_size,
            tree_size,
        });
    }
    if old_size == 0 || old_size == tree_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo..hi], whole): walk down; `whole` stays true while the old tree is the
    // left edge of the current range.
    let mut proof = Vec::new();
    let (mut lo, mut hi, mut whole) = (0u64, tree_size, true);
    let m = old_size;
    loop {
        let n = hi - lo;
        if m - lo == n {
            if !whole {
                proof.push(range_hash(algorithm, lo, hi, read)?);
            }
            break;
        }
        let k = split(n);
        if m - lo <= k {
            proof.push(range_hash(algorithm, lo + k, hi, read)?);
            hi = lo + k;
        } else {
            proof.push(range_hash(algorithm, lo, lo + k, read)?);
            lo += k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.3.2: does `proof` show the leaf with hash `leaf_hash` at `leaf_index` in the
/// tree of `tree_size` leaves with root `root`?
pub fn verify_inclusion(
    algorithm: HashAlgorithm,
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if leaf_index >= tree_size {
        return Err(MerkleError::LeafOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    let mut fn_ = leaf_index;
    let mut sn = tree_size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::WrongProofLength {
                got: proof.len(),
                expected: inclusion_proof_length(leaf_index, tree_size),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = algorithm.node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = algorithm.node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::WrongProofLength {
            got: proof.len(),
            expected: inclusion_proof_length(leaf_index, tree_size),
        });
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// How many hashes the inclusion proof of `leaf_index` in a tree of `tree_size` has.
fn inclusion_proof_length(leaf_index: u64, tree_size: u64) -> usize {
    let (mut lo, mut hi, mut n) = (0u64, tree_size, 0usize);
    while hi > lo + 1 {
        let k = split(hi - lo);
        if leaf_index.saturating_sub(lo) < k {
            hi = lo + k;
        } else {
            lo += k;
        }
        n += 1;
    }
    n
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `tree_size` leaves with root `root`?
pub fn verify_consistency(
    algorithm: HashAlgorithm,
    old_size: u64,
    tree_size: u64,
    old_root: &Hash,
    root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > tree_size {
        return Err(MerkleError::SizesOutOfOrder {
            old_size,
            tree_size,
        });
    }
    if old_size == tree_size {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength {
                got: proof.len(),
                expected: 0,
            });
        }
        return if old_root == root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(MerkleError::WrongProofLength {
                got: proof.len(),
                expected: 0,
            })
        };
    }
    if proof.is_empty() {
        return Err(MerkleError::WrongProofLength {
            got: 0,
            expected: 1,
        });
    }
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof.iter());
    let mut fn_ = old_size - 1;
    let mut sn = tree_size - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = *path[0];
    let mut sr = *path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(MerkleError::RootMismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = algorithm.node_hash(c, &fr);
            sr = algorithm.node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = algorithm.node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 || fr != *old_root || sr != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
