//! Hashes in the shape of RFC 6962/9162, so a Merkle tree and proofs can be derived later without
//! changing what is stored: leaf = SHA-256(0x00 ‖ canonical event bytes),
//! chain = SHA-256(previous chain ‖ leaf), with 32 zero bytes before position 1.

use sha2::{Digest, Sha256};

use crate::codec::StoredEventRefV1;

/// The algorithm named in the store's header.
pub const ALGORITHM: &str = "sha256";

/// The chain hash before the first event.
pub const GENESIS_CHAIN: [u8; 32] = [0u8; 32];

/// The leaf hash of an event's canonical bytes.
pub fn leaf(canonical_event: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(canonical_event);
    h.finalize().into()
}

/// The chain hash after an event with this leaf.
pub fn chain(previous_chain: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(previous_chain);
    h.update(leaf);
    h.finalize().into()
}

/// The leaf hash of an event's content. The stored bytes of the event are its canonical bytes
/// whenever the encoder wrote them (it always does): then they are hashed where they lie. Bytes
/// that decode to the same fields but are not what the encoder writes (a varint in a wider
/// form) are encoded again, so the leaf is always the hash of the canonical encoding, as it
/// always was.
pub(crate) fn computed_leaf(e: &StoredEventRefV1<'_>) -> Result<[u8; 32], String> {
    if e.canonical_is_exact() {
        Ok(leaf(e.canonical))
    } else {
        e.to_owned_event()
            .canonical_bytes()
            .map(|c| leaf(&c))
            .map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_is_domain_separated_from_a_plain_hash() {
        let plain: [u8; 32] = Sha256::digest(b"event").into();
        assert_ne!(leaf(b"event"), plain);
        // SHA-256(0x00 || "") is a known constant (RFC 6962's empty-leaf hash input form).
        assert_eq!(
            hex::encode(leaf(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn chain_depends_on_order() {
        let a = leaf(b"a");
        let b = leaf(b"b");
        let ab = chain(&chain(&GENESIS_CHAIN, &a), &b);
        let ba = chain(&chain(&GENESIS_CHAIN, &b), &a);
        assert_ne!(ab, ba);
    }
}
