//! Signed checkpoints and proofs: what lets someone who trusts neither this machine nor carelog
//! check the log (with `carelog-audit`, or any RFC 9162 and C2SP verifier).
//!
//! - The **origin** names the store and its hash: `carelog/<store id>/<hash>`, where the store
//!   id is the first 16 hex digits of SHA-256 of the store header's bytes. Two stores, or two
//!   hashes, never share an origin; a changed header changes it.
//! - The store's **signing key** is an Ed25519 key in `<store>/signing-key` (the form Go's
//!   `sumdb/note` writes, mode 0600), made on first use; `--key FILE` signs with another.
//!   Its name is `carelog-<store id>`.
//! - A **checkpoint** is the C2SP `tlog-checkpoint` text (origin, tree size, base64 root)
//!   signed as a C2SP `signed-note`; further signatures (a supervisor's cosignature) may be
//!   added to it and are ignored by verifiers that do not know them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::AppError;
use crate::log::Log;
use crate::merkle::note::{Checkpoint, NoteSigner};

/// The file of a store's signing key.
pub const SIGNING_KEY_FILE: &str = "signing-key";

/// The store's id: 16 hex digits of SHA-256 of its header's bytes.
pub fn store_id(log: &Log) -> Result<String, AppError> {
    let header = log.header()?;
    let bytes =
        crate::codec::encode("store header", &header).map_err(crate::log::LogError::from)?;
    let h = crate::merkle::HashAlgorithm::Sha256.digest(&[&bytes]);
    Ok(hex::encode(&h[..8]))
}

/// The origin line of the store's checkpoints.
pub fn origin(log: &Log) -> Result<String, AppError> {
    Ok(format!(
        "carelog/{}/{}",
        store_id(log)?,
        crate::log::tree::TREE_HASH.name()
    ))
}

fn key_error(path: &Path, detail: impl std::fmt::Display) -> AppError {
    AppError::Usage(format!("signing key {}: {detail}", path.display()))
}

/// The signer: the key in `key_file`, or the store's own key (made on first use).
pub fn signer(log: &Log, key_file: Option<&Path>) -> Result<NoteSigner, AppError> {
    let path: PathBuf = match key_file {
        Some(p) => p.to_path_buf(),
        None => log.path().join(SIGNING_KEY_FILE),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => NoteSigner::parse(&text).map_err(|e| key_error(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && key_file.is_none() => {
            make_key(log, &path)
        }
        Err(e) => Err(key_error(&path, e)),
    }
}

/// Makes the store's signing key: 32 bytes from the operating system, written once (never
/// over an existing file), readable by its owner only.
fn make_key(log: &Log, path: &Path) -> Result<NoteSigner, AppError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| key_error(path, format!("no random bytes: {e}")))?;
    let signer = NoteSigner::from_seed(&format!("carelog-{}", store_id(log)?), seed)
        .map_err(|e| key_error(path, e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| key_error(path, e))?;
    file.write_all(format!("{}\n", signer.to_text()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(path, e))?;
    Ok(signer)
}

/// A signed checkpoint of the tree at `size` (the durable head when None).
pub fn signed_checkpoint(
    log: &Log,
    signer: &NoteSigner,
    size: Option<u64>,
) -> Result<String, AppError> {
    let (tree_size, root) = log.tree_head(size)?;
    let text = Checkpoint {
        origin: origin(log)?,
        tree_size,
        root,
        extensions: Vec::new(),
    }
    .to_text();
    signer
        .sign(&text)
        .map_err(|e| AppError::Usage(format!("could not sign the checkpoint: {e}")))
}

/// An inclusion proof as `carelog prove inclusion --json` and the API give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub hashes: Vec<String>,
}

/// A consistency proof as `carelog prove consistency --json` and the API give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub tree_size: u64,
    pub hashes: Vec<String>,
}

pub fn inclusion(log: &Log, position: u64, size: Option<u64>) -> Result<InclusionProof, AppError> {
    let (tree_size, hashes) = log.inclusion_proof(position, size)?;
    Ok(InclusionProof {
        leaf_index: position - 1,
        tree_size,
        hashes: hashes.iter().map(hex::encode).collect(),
    })
}

pub fn consistency(
    log: &Log,
    old_size: u64,
    size: Option<u64>,
) -> Result<ConsistencyProof, AppError> {
    let (tree_size, hashes) = log.consistency_proof(old_size, size)?;
    Ok(ConsistencyProof {
        old_size,
        tree_size,
        hashes: hashes.iter().map(hex::encode).collect(),
    })
}
