//! The checks of `carelog-audit`: an export, a signed checkpoint and the store's verifier key
//! in; "verified", or the first position that is not, out. No store, no sled, no trust in any
//! hash the export states.
//!
//! For every line, in order:
//! 1. the `leaf` attribute (base64) is the event's canonical bytes; its leaf hash is computed
//!    here, `H(0x00 ‖ leaf)`, and its chain hash from the previous one;
//! 2. the bytes decode to an envelope and a payload, and the CloudEvents line those make (the
//!    same function `carelog export` prints with) must equal the line as given, attribute for
//!    attribute, stated hashes included: so the line shows exactly what the leaf says;
//! 3. positions run 1, 2, 3, … with no gap;
//! 4. the leaf hash goes into a Merkle tree (RFC 9162, [`crate::merkle`]).
//!
//! Then the checkpoint's signature is checked with the verifier key, its root against the
//! tree's root at its size, and, given an older checkpoint, that one's signature, origin and
//! root at its own size: the log only grew between them.

use std::io::BufRead;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::Value;

use crate::domain::DomainEvent;
use crate::domain::cloudevent::MAX_LINE_BYTES;
use crate::merkle::note::{Checkpoint, NoteVerifier};
use crate::merkle::{self, GENESIS_CHAIN, Hash, HashAlgorithm};

/// The most events one audit reads: its tree holds two hashes an event in memory.
pub const AUDIT_EVENTS_MAX: u64 = 1 << 32;

/// Why an audit did not verify, or could not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("line {line}: {detail}")]
    Line { line: u64, detail: String },
    #[error("position {position}: {detail}")]
    Event { position: u64, detail: String },
    #[error("the checkpoint: {0}")]
    Checkpoint(String),
    #[error("the previous checkpoint: {0}")]
    Previous(String),
    #[error("reading the export failed: {0}")]
    Io(#[from] std::io::Error),
}

impl AuditError {
    /// True when the input could not be read at all (exit 2), not found to be wrong (exit 1).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, AuditError::Io(_))
    }
}

/// What a successful audit checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub verified: bool,
    pub origin: String,
    pub hash_algorithm: &'static str,
    /// The checkpoint's size: every event up to it is covered by its signature.
    pub tree_size: u64,
    /// The root, base64 as in the checkpoint.
    pub root: String,
    /// Lines in the export (may be more than `tree_size`).
    pub events_read: u64,
    /// Events past the checkpoint: checked against their hashes, not covered by the signature.
    pub events_past_checkpoint: u64,
    /// The older checkpoint's size, when one was given: the log only grew since.
    pub previous_size: Option<u64>,
}

/// The hash a checkpoint's origin names: its last `/` segment (`carelog/…/sha256`).
pub fn origin_hash(origin: &str) -> Option<HashAlgorithm> {
    origin.rsplit('/').next().and_then(HashAlgorithm::from_name)
}

fn signed_checkpoint(
    note: &str,
    key: &NoteVerifier,
    fail: fn(String) -> AuditError,
) -> Result<Checkpoint, AuditError> {
    let text = key.open(note).map_err(|e| fail(e.to_string()))?;
    Checkpoint::parse(text).map_err(|e| fail(e.to_string()))
}

/// Reads one line of at most [`MAX_LINE_BYTES`] bytes (without its newline); None at the end.
fn next_line(input: &mut dyn BufRead, line: u64) -> Result<Option<String>, AuditError> {
    let mut buf = Vec::new();
    let n =
        std::io::Read::take(&mut *input, MAX_LINE_BYTES as u64 + 2).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.len() > MAX_LINE_BYTES {
        return Err(AuditError::Line {
            line,
            detail: format!("longer than {MAX_LINE_BYTES} bytes"),
        });
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| AuditError::Line {
            line,
            detail: "not UTF-8".into(),
        })
}

/// The first attribute in which two CloudEvents objects differ, for a message.
fn first_difference(given: &Value, expected: &Value) -> String {
    let (Some(g), Some(e)) = (given.as_object(), expected.as_object()) else {
        return "the line is not a JSON object".into();
    };
    for (k, v) in e {
        match g.get(k) {
            None => return format!("attribute `{k}` is missing (the leaf says {v})"),
            Some(gv) if gv != v => {
                return format!("attribute `{k}` is {gv}, but the leaf says {v}");
            }
            Some(_) => {}
        }
    }
    for k in g.keys() {
        if !e.contains_key(k) {
            return format!("attribute `{k}` is not in the leaf");
        }
    }
    "no difference".into()
}

/// Checks one line against its leaf; returns the leaf hash and the chain hash after it.
fn check_line(
    algorithm: HashAlgorithm,
    text: &str,
    position: u64,
    previous_chain: &Hash,
) -> Result<(Hash, Hash), AuditError> {
    let at = |detail: String| AuditError::Event { position, detail };
    let given: Value = serde_json::from_str(text).map_err(|e| at(format!("not JSON: {e}")))?;
    let leaf_text = given.get("leaf").and_then(Value::as_str).ok_or_else(|| {
        at("no `leaf` attribute: export with `carelog export --format jsonl`".into())
    })?;
    let leaf = BASE64
        .decode(leaf_text)
        .map_err(|e| at(format!("`leaf` is not base64: {e}")))?;
    let leaf_hash = algorithm.leaf_hash(&leaf);
    let chain_hash = algorithm.chain_hash(previous_chain, &leaf_hash);
    let stored = crate::codec::decode_canonical(&leaf, leaf_hash, chain_hash)
        .map_err(|e| at(format!("`leaf` does not decode: {e}")))?;
    if stored.position != position {
        return Err(at(format!(
            "the leaf is of position {}: the export skips or reorders events",
            stored.position
        )));
    }
    let recorded = crate::log::RecordedEvent::try_from(stored)
        .map_err(|e| at(format!("the leaf's times do not decode: {e}")))?;
    let event = DomainEvent::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    )
    .map_err(|e| at(format!("the leaf's payload does not decode: {e}")))?;
    let expected = crate::app::export::export_line(&recorded, &event)
        .map_err(|e| at(format!("the leaf's event cannot be printed: {e}")))?;
    if given != expected {
        return Err(at(format!(
            "the line does not show what its leaf says: {}",
            first_difference(&given, &expected)
        )));
    }
    Ok((leaf_hash, chain_hash))
}

/// Audits an export against a signed checkpoint (and an older one, if given).
pub fn audit(
    export: &mut dyn BufRead,
    checkpoint_note: &str,
    key: &NoteVerifier,
    previous_note: Option<&str>,
) -> Result<AuditReport, AuditError> {
    let checkpoint = signed_checkpoint(checkpoint_note, key, AuditError::Checkpoint)?;
    let algorithm = origin_hash(&checkpoint.origin).ok_or_else(|| {
        AuditError::Checkpoint(format!(
            "origin {:?} does not end in a hash name (sha256 or sm3)",
            checkpoint.origin
        ))
    })?;
    let previous = previous_note
        .map(|note| signed_checkpoint(note, key, AuditError::Previous))
        .transpose()?;
    if let Some(p) = &previous {
        if p.origin != checkpoint.origin {
            return Err(AuditError::Previous(format!(
                "origin {:?} is not the checkpoint's {:?}: another log",
                p.origin, checkpoint.origin
            )));
        }
        if p.tree_size > checkpoint.tree_size {
            return Err(AuditError::Previous(format!(
                "it signs {} events, more than the checkpoint's {}: the log shrank",
                p.tree_size, checkpoint.tree_size
            )));
        }
    }

    let mut stored: Vec<Hash> = Vec::new();
    let mut edge = merkle::CompactRange::default();
    let mut chain = GENESIS_CHAIN;
    let mut position = 0u64;
    while let Some(text) = next_line(export, position + 1)? {
        if text.trim().is_empty() {
            continue;
        }
        position += 1;
        if position > AUDIT_EVENTS_MAX {
            return Err(AuditError::Line {
                line: position,
                detail: format!("an audit reads at most {AUDIT_EVENTS_MAX} events"),
            });
        }
        let (leaf_hash, next_chain) = check_line(algorithm, &text, position, &chain)?;
        chain = next_chain;
        edge.append(algorithm, leaf_hash, &mut stored);
    }
    if position < checkpoint.tree_size {
        return Err(AuditError::Checkpoint(format!(
            "it signs {} events, the export holds {position}: export again, or check against an \
             older checkpoint",
            checkpoint.tree_size
        )));
    }
    let root = merkle::root(algorithm, checkpoint.tree_size, &stored)
        .map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    if root != checkpoint.root {
        return Err(AuditError::Checkpoint(format!(
            "the export's first {} leaves make root {}, the checkpoint signs {}: the export \
             is not the log that was signed",
            checkpoint.tree_size,
            BASE64.encode(root),
            BASE64.encode(checkpoint.root)
        )));
    }
    if let Some(p) = &previous {
        let old_root = merkle::root(algorithm, p.tree_size, &stored)
            .map_err(|e| AuditError::Previous(e.to_string()))?;
        if old_root != p.root {
            return Err(AuditError::Previous(format!(
                "the first {} leaves make root {}, the older checkpoint signs {}: the log was \
                 changed, not only appended to, since it",
                p.tree_size,
                BASE64.encode(old_root),
                BASE64.encode(p.root)
            )));
        }
        // The same fact as a proof an outsider could check with the two roots alone.
        let proof =
            merkle::consistency_proof(algorithm, p.tree_size, checkpoint.tree_size, &stored)
                .map_err(|e| AuditError::Previous(e.to_string()))?;
        merkle::verify_consistency(
            algorithm,
            p.tree_size,
            checkpoint.tree_size,
            &p.root,
            &checkpoint.root,
            &proof,
        )
        .map_err(|e| AuditError::Previous(e.to_string()))?;
    }
    Ok(AuditReport {
        verified: true,
        origin: checkpoint.origin.clone(),
        hash_algorithm: algorithm.name(),
        tree_size: checkpoint.tree_size,
        root: BASE64.encode(checkpoint.root),
        events_read: position,
        events_past_checkpoint: position - checkpoint.tree_size,
        previous_size: previous.map(|p| p.tree_size),
    })
}
