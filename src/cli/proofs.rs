//! `carelog prove` and `carelog checkpoint`: the Merkle tree's proofs and signed checkpoints
//! (made by `app::checkpoint`), printed for people or as JSON for tools.

use std::path::Path;

use super::{Failure, note_open, output};
use crate::app::checkpoint;
use crate::log::{Log, OpenOptions};

fn open(dir: &Path) -> Result<Log, Failure> {
    let log = Log::open(dir, OpenOptions::existing())?;
    note_open(&log);
    Ok(log)
}

/// `prove inclusion POSITION [--size N] [--json]`.
pub fn inclusion(dir: &Path, position: u64, size: Option<u64>, json: bool) -> Result<u8, Failure> {
    let proof = checkpoint::inclusion(&open(dir)?, position, size)?;
    if json {
        output::print_json(&proof)?;
    } else {
        println!(
            "inclusion of position {} (leaf index {}) in the tree of {} events:",
            position, proof.leaf_index, proof.tree_size
        );
        for h in &proof.hashes {
            println!("  {h}");
        }
    }
    Ok(0)
}

/// `prove consistency OLD_SIZE [--size N] [--json]`.
pub fn consistency(
    dir: &Path,
    old_size: u64,
    size: Option<u64>,
    json: bool,
) -> Result<u8, Failure> {
    let proof = checkpoint::consistency(&open(dir)?, old_size, size)?;
    if json {
        output::print_json(&proof)?;
    } else {
        println!(
            "consistency of the tree of {} events with the tree of {}:",
            proof.old_size, proof.tree_size
        );
        for h in &proof.hashes {
            println!("  {h}");
        }
    }
    Ok(0)
}

/// `checkpoint [--key FILE] [--size N] [--verifier-key]`.
pub fn checkpoint(
    dir: &Path,
    key: Option<&Path>,
    size: Option<u64>,
    verifier_key: bool,
) -> Result<u8, Failure> {
    let log = open(dir)?;
    let signer = checkpoint::signer(&log, key)?;
    if verifier_key {
        println!("{}", signer.verifier().to_text());
    } else {
        print!("{}", checkpoint::signed_checkpoint(&log, &signer, size)?);
    }
    Ok(0)
}
