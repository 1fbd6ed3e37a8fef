//! Helpers for the tests that open the sled database under a store directly: to damage it, or
//! to build what a crash or a hand edit leaves. Each test file uses some of them.
#![allow(dead_code)]

use std::path::Path;

use carelog::codec;
use carelog::log::{SledStorage, keys};

/// The sled tree the log lives in.
pub const LOG_TREE: &str = "carelog-log-v1";

/// Retries while the error says the store is locked: the lock lingers for some milliseconds
/// after the last handle closed.
pub fn retrying_while_locked<T, E: std::fmt::Display>(
    open: impl Fn() -> Result<T, E>,
    locked: &str,
) -> T {
    let started = std::time::Instant::now();
    loop {
        match open() {
            Ok(opened) => return opened,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(10) => {
                assert!(e.to_string().contains(locked), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// The sled database under the store at `dir` (closed by its owner first).
pub fn open_sled(dir: &Path) -> sled::Db {
    retrying_while_locked(
        || SledStorage::sled_config(dir).open(),
        "could not acquire lock",
    )
}

/// Rewrites the store header's format version by hand.
pub fn set_format_version(dir: &Path, format_version: u32) {
    let db = open_sled(dir);
    let tree = db.open_tree(LOG_TREE).unwrap();
    let mut header: codec::StoreHeaderV1 =
        codec::decode("header", &tree.get(keys::HEADER).unwrap().unwrap()).unwrap();
    header.format_version = format_version;
    tree.insert(keys::HEADER, codec::encode("header", &header).unwrap())
        .unwrap();
    db.flush().unwrap();
}

/// Replaces the log tree of the store at `to` with a copy of the one at `from`, and its anchor
/// with `from`'s (the anchor witnesses sled's tree: the two go together).
pub fn copy_log_tree(from: &Path, to: &Path) {
    std::fs::copy(from.join("anchor"), to.join("anchor")).unwrap();
    let source = open_sled(from);
    let source_tree = source.open_tree(LOG_TREE).unwrap();
    let db = open_sled(to);
    let tree = db.open_tree(LOG_TREE).unwrap();
    tree.clear().unwrap();
    for entry in source_tree.iter() {
        let (k, v) = entry.unwrap();
        tree.insert(k, v).unwrap();
    }
    db.flush().unwrap();
}
