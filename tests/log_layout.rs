//! How the log sits in sled: every value stays inline in the log file that a flush syncs (no
//! blob files, which sled 0.34 never fsyncs), and a commit interrupted before its head (the
//! commit point) leaves nothing a reader or the next commit sees.

mod common;

use std::path::Path;

use carelog::codec::{self, SegmentV1};
use carelog::log::{
    AppendBatch, DiscardedTail, Log, MAX_PAYLOAD_BYTES, NewEvent, OpenOptions, keys,
};
use carelog::time::parse_instant;
use common::{open_sled, retrying_while_locked, set_format_version};

fn event(n: u64, payload_bytes: usize) -> NewEvent {
    let mut payload = n.to_le_bytes().to_vec();
    payload.resize(payload_bytes.max(8), (n % 251) as u8);
    NewEvent::new(
        format!("stream-{}", n % 97),
        "test.noted",
        1,
        parse_instant("2023-05-01T09:30:00+08:00").unwrap(),
        "tester",
        payload,
    )
}

fn blob_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("blobs")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Large payloads, small ones, lone appends and big batches: enough writes for sled to split
/// and consolidate many tree nodes, none of which may go to a blob file.
#[test]
fn no_value_or_tree_node_is_written_to_a_blob_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
        let mut n = 0u64;
        for round in 0..6u64 {
            let batch: Vec<NewEvent> = (0..200)
                .map(|i| {
                    n += 1;
                    let size = if i % 7 == 0 { MAX_PAYLOAD_BYTES } else { 64 };
                    event(n, size)
                })
                .collect();
            log.append(AppendBatch::new(batch)).unwrap();
            for _ in 0..(50 + round * 10) {
                n += 1;
                log.append(AppendBatch::new(vec![event(n, 300)])).unwrap();
            }
            let big: Vec<NewEvent> = (0..40)
                .map(|_| {
                    n += 1;
                    event(n, MAX_PAYLOAD_BYTES)
                })
                .collect();
            log.append(AppendBatch::new(big)).unwrap();
        }
        assert!(log.verify(true, None, &mut |_| {}).unwrap().intact);
    }
    assert_eq!(blob_files(dir.path()), Vec::<String>::new());
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    assert!(log.verify(true, None, &mut |_| {}).unwrap().intact);
}

/// A payload one byte over the limit is refused before anything is written.
#[test]
fn a_payload_over_the_limit_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    let err = log
        .append(AppendBatch::new(vec![event(1, MAX_PAYLOAD_BYTES + 1)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("data") && err.contains("at most"), "{err}");
    assert_eq!(log.head_position(), 0);
}

/// A store of one commit of events 1..=30, closed; returns its anchor's bytes then.
fn anchor_after_first_commit(dir: &Path) -> Vec<u8> {
    let log = Log::open(dir, OpenOptions::default()).unwrap();
    log.append(AppendBatch::new((1..=30).map(|n| event(n, 100)).collect()))
        .unwrap();
    drop(log);
    std::fs::read(dir.join("anchor")).unwrap()
}

/// Two commits of 30 events, then the head rolled back to 30, as if the second commit's head had
/// never reached the disk: what a crash between a commit's segments and its head leaves.
/// The store's anchor is put back as it was after the first commit's clean close: a crash
/// leaves the anchor's floor at or below what sled holds (never the floor of a later close).
/// Returns the second commit's events.
fn store_with_an_interrupted_commit(dir: &Path) -> Vec<NewEvent> {
    let second: Vec<NewEvent> = (31..=60).map(|n| event(n, 100)).collect();
    let anchor = anchor_after_first_commit(dir);
    {
        let log = Log::open(dir, OpenOptions::default()).unwrap();
        log.append(AppendBatch::new(second.clone())).unwrap();
    }
    std::fs::write(dir.join("anchor"), anchor).unwrap();
    let db = open_sled(dir);
    let tree = db.open_tree(common::LOG_TREE).unwrap();
    let segment: SegmentV1 =
        codec::decode("segment", &tree.get(keys::segment(1)).unwrap().unwrap()).unwrap();
    let last = segment.events.last().unwrap();
    assert_eq!(last.position, 30);
    let head = codec::StoredHeadV1 {
        position: last.position,
        chain_hash: last.chain_hash,
        recorded_at: last.recorded_at,
    };
    tree.insert(keys::HEAD, codec::encode("durable head", &head).unwrap())
        .unwrap();
    assert!(tree.get(keys::segment(31)).unwrap().is_some());
    db.flush().unwrap();
    second
}

/// The keys past the stored head were never acknowledged: the next open sets them aside (kept
/// under `Q`, and says so), readers never see them, and the next commit takes their positions.
#[test]
fn keys_past_the_stored_head_are_discarded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let second = store_with_an_interrupted_commit(dir.path());
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(
        log.open_report().tail_set_aside,
        Some(DiscardedTail {
            from_position: 31,
            segments: 1,
            index_chunks: 1,
            continues_head: true,
        })
    );
    assert_eq!(log.head_position(), 30);
    assert!(log.event_at(31).unwrap().is_none());
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
    // The same events (same ids) again are new, not resends: their first write never counted.
    let acks = log.append(AppendBatch::new(second)).unwrap();
    assert_eq!(acks[0].position, 31);
    assert!(acks.iter().all(|a| !a.duplicate));
    drop(log);
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(log.open_report().tail_set_aside, None);
    assert_eq!(log.head_position(), 60);
    assert!(log.verify(true, None, &mut |_| {}).unwrap().intact);
    drop(log);
    // The set-aside keys are kept, byte for byte, as evidence.
    let db = open_sled(dir.path());
    let tree = db.open_tree(common::LOG_TREE).unwrap();
    let kept = tree
        .get(keys::set_aside(&keys::segment(31)))
        .unwrap()
        .unwrap();
    let segment: SegmentV1 = codec::decode("segment", &kept).unwrap();
    assert_eq!(segment.events.len(), 30);
    assert!(
        tree.get(keys::set_aside(&keys::index_chunk(31)))
            .unwrap()
            .is_some()
    );
}

fn open_retrying(dir: &Path) -> Log {
    retrying_while_locked(|| Log::open(dir, OpenOptions::default()), "locked")
}

/// A segment past the head that does not continue it (here: a copy of the first segment under a
/// later key) is not a crash's doing: it is set aside with a warning, and `verify` fails.
#[test]
fn keys_past_the_head_that_do_not_continue_it_are_set_aside_and_fail_verify() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
        log.append(AppendBatch::new((1..=30).map(|n| event(n, 100)).collect()))
            .unwrap();
    }
    {
        let db = open_sled(dir.path());
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        let first = tree.get(keys::segment(1)).unwrap().unwrap();
        tree.insert(keys::segment(31), first).unwrap();
        db.flush().unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carelog"))
        .args(["--data", dir.path().to_str().unwrap(), "verify"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("WARNING") && stderr.contains("do not continue it"),
        "{stderr}"
    );
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(log.head_position(), 30);
    assert!(log.verify(true, None, &mut |_| {}).unwrap().intact);
}

/// A head naming a position no stored event holds (its segment lost): reads and verify go on,
/// appends are refused rather than written after a gap.
#[test]
fn a_head_without_its_events_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_after_first_commit(dir.path());
    {
        let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
        log.append(AppendBatch::new((31..=60).map(|n| event(n, 100)).collect()))
            .unwrap();
    }
    // As a power loss after the first close can leave it (the journal lost with the anchor's
    // later floor); a later floor makes the open refuse (tests/store_damage.rs).
    std::fs::write(dir.path().join("anchor"), anchor).unwrap();
    {
        let db = open_sled(dir.path());
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        tree.remove(keys::segment(31)).unwrap().unwrap();
        tree.remove(keys::index_chunk(31)).unwrap().unwrap();
        db.flush().unwrap();
    }
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(log.head_position(), 60);
    let err = log
        .append(AppendBatch::new(vec![event(61, 100)]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            carelog::log::LogError::HeadWithoutEvents { head: 60, .. }
        ),
        "{err}"
    );
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(!report.intact);
    assert_eq!(report.problem.unwrap().position, 31);
    assert_eq!(log.head_position(), 60, "nothing was written");
}

/// The command line says what an open removed: nothing is dropped silently.
#[test]
fn the_command_line_notes_a_discarded_tail() {
    let dir = tempfile::tempdir().unwrap();
    store_with_an_interrupted_commit(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carelog"))
        .args(["--data", dir.path().to_str().unwrap(), "verify"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("set aside") && stderr.contains("from position 31"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 30 events"));
}

/// A store made with sled's old 512 KiB segments (before blob files were ruled out) opens and
/// works, with a warning that says how to move it to the current layout.
#[test]
fn a_store_with_the_old_sled_segment_size_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    drop(
        sled::Config::new()
            .path(dir.path())
            .segment_size(512 * 1024)
            .open()
            .unwrap(),
    );
    let log = open_retrying(dir.path());
    log.append(AppendBatch::new(vec![event(1, 100)])).unwrap();
    let warnings = log.open_report().warnings.clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("512 KiB") && warnings[0].contains("carelog export"),
        "{warnings:?}"
    );
    drop(log);
    let fresh = tempfile::tempdir().unwrap();
    let log = open_retrying(fresh.path());
    assert_eq!(log.open_report().warnings.clone(), Vec::<String>::new());
}

/// A store of format 1 (before the commit journal) is moved to format 2 at its first open, so
/// that an older build, which would not replay the journal after a crash, refuses it.
#[test]
fn a_format_1_store_is_moved_to_format_2_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
        assert_eq!(
            log.header().unwrap().format_version,
            carelog::log::storage::STORE_FORMAT_VERSION
        );
        log.append(AppendBatch::new((1..=5).map(|n| event(n, 100)).collect()))
            .unwrap();
    }
    set_format_version(dir.path(), 1);
    let log = open_retrying(dir.path());
    assert_eq!(
        log.header().unwrap().format_version,
        carelog::log::storage::STORE_FORMAT_VERSION
    );
    assert_eq!(log.head_position(), 5);
    drop(log);
    // A format this build does not know is refused, naming it.
    set_format_version(dir.path(), 4);
    // (Log::open itself waits out the lock the closed sled handle may still hold.)
    let err = Log::open(dir.path(), OpenOptions::default()).err().unwrap();
    assert!(err.to_string().contains("store format 4"), "{err}");
}
