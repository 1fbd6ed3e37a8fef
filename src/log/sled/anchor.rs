//! The store's anchor: one small file beside sled's, `<store>/anchor`, that remembers what the
//! store held, so that damage to sled can never pass for a shorter, an empty or another log.
//!
//! sled alone cannot tell "a log of 6,000 events whose head key was lost" from "a log that
//! never got past its first commit", nor a database file cut short from a new one: the evidence
//! that a log existed must live outside the thing that was damaged. The anchor holds
//! - the SHA-256 of the store header's bytes: a changed or replaced header (or a whole sled
//!   database of another store) is refused at open, which authenticates the header;
//! - a floor: a position and its chain hash that sled was known to hold durably. An open
//!   refuses a sled whose head is below the floor, or whose event at the floor has another
//!   chain hash: what was acknowledged before the floor can never silently go.
//!
//! It is rewritten (a temporary file, synced, renamed over, the directory synced: never torn)
//! each time sled has just been flushed and the commit journal is about to start a new
//! generation (at every open, when the journal is full, at a clean close), so the floor is
//! sled's durable head at that moment and the journal holds every commit after it. A store of
//! format 3 or later has one; the open that moves an older store to format 3 writes its first.
//!
//! Layout (little-endian; frozen, version 1; `tests/fixtures/store/anchor.v1.bin`): `CLA1`, the
//! header's SHA-256 (32 bytes), the floor position (u64), its chain hash (32 bytes), a CRC-32 of
//! the 76 bytes before it. 80 bytes in all.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::log::storage::{StorageError, io_failure};

/// The anchor's file name inside the store directory.
pub const ANCHOR_FILE: &str = "anchor";
const MAGIC: [u8; 4] = *b"CLA1";
/// The encoded anchor's length.
pub const ANCHOR_BYTES: usize = 80;

/// What the store is known to have held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// SHA-256 of the store header's stored bytes.
    pub header_sha256: [u8; 32],
    /// A position sled held durably when the anchor was written (0: none yet).
    pub floor_position: u64,
    /// The chain hash of the event at [`Anchor::floor_position`] (the genesis hash at 0).
    pub floor_chain_hash: [u8; 32],
}

impl Anchor {
    /// The frozen encoding.
    pub fn encode(&self) -> [u8; ANCHOR_BYTES] {
        let mut out = [0u8; ANCHOR_BYTES];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..36].copy_from_slice(&self.header_sha256);
        out[36..44].copy_from_slice(&self.floor_position.to_le_bytes());
        out[44..76].copy_from_slice(&self.floor_chain_hash);
        let crc = crc32fast::hash(&out[..76]);
        out[76..80].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes an anchor, or says why the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != ANCHOR_BYTES {
            return Err(format!(
                "{} bytes where an anchor has {ANCHOR_BYTES}",
                bytes.len()
            ));
        }
        if bytes[0..4] != MAGIC {
            return Err("it does not start with CLA1".into());
        }
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[76..80]);
        if crc32fast::hash(&bytes[..76]) != u32::from_le_bytes(crc) {
            return Err("its checksum does not match its bytes".into());
        }
        let mut header_sha256 = [0u8; 32];
        header_sha256.copy_from_slice(&bytes[4..36]);
        let mut position = [0u8; 8];
        position.copy_from_slice(&bytes[36..44]);
        let mut floor_chain_hash = [0u8; 32];
        floor_chain_hash.copy_from_slice(&bytes[44..76]);
        Ok(Self {
            header_sha256,
            floor_position: u64::from_le_bytes(position),
            floor_chain_hash,
        })
    }
}

/// The anchor's path in the store at `store`.
pub fn path_in(store: &Path) -> PathBuf {
    store.join(ANCHOR_FILE)
}

/// Reads the store's anchor: None when there is no file; an error naming the file when it
/// cannot be read or is not an anchor (damage: the open refuses).
pub fn read(store: &Path) -> Result<Option<Anchor>, StorageError> {
    let path = path_in(store);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StorageError::Io {
                path,
                detail: format!("cannot read the store's anchor: {e}"),
            });
        }
    };
    Anchor::decode(&bytes)
        .map(Some)
        .map_err(|why| StorageError::Damaged {
            path: store.to_path_buf(),
            detail: format!("its anchor file {} is damaged ({why})", path.display()),
        })
}

/// Writes the anchor durably and atomically: a reader sees the old one or the new one whole.
pub fn write(store: &Path, anchor: &Anchor) -> Result<(), StorageError> {
    let io = |what: &str, e: std::io::Error| {
        io_failure(store, format!("{what} the store's anchor: {e}"), &e)
    };
    let temporary = store.join(format!("{ANCHOR_FILE}.new"));
    let mut file = std::fs::File::create(&temporary).map_err(|e| io("cannot create", e))?;
    file.write_all(&anchor.encode())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("cannot write", e))?;
    drop(file);
    std::fs::rename(&temporary, path_in(store)).map_err(|e| io("cannot rename", e))?;
    std::fs::File::open(store)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync the directory of", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Anchor {
        Anchor {
            header_sha256: [0x11; 32],
            floor_position: 6_000,
            floor_chain_hash: [0xab; 32],
        }
    }

    #[test]
    fn an_anchor_round_trips_and_any_flipped_bit_is_refused() {
        let bytes = sample().encode();
        assert_eq!(Anchor::decode(&bytes), Ok(sample()));
        for byte in 0..ANCHOR_BYTES {
            for bit in 0..8 {
                let mut damaged = bytes;
                damaged[byte] ^= 1 << bit;
                assert!(
                    Anchor::decode(&damaged).is_err(),
                    "a flip of bit {bit} of byte {byte} passed"
                );
            }
        }
        assert!(Anchor::decode(&bytes[..79]).is_err());
    }
}
