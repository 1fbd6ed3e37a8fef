//! The commit journal (`src/log/journal.rs`) against the crashes it exists for. A *crash image*
//! is a copy of the store directory taken while the log is open: what `kill -9` would leave on
//! disk at that moment (every write the process made, synced or not, and nothing it still held
//! in memory). sled's background flush is off in these tests, so sled's file lags the journal
//! exactly as it does between two of its flushes.

mod common;

use std::path::{Path, PathBuf};

use carelog::codec;
use carelog::log::{AppendBatch, Log, LogError, NewEvent, OpenOptions, journal, keys};
use carelog::time::parse_instant;
use common::{copy_log_tree, open_sled, set_format_version};

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        format!("stream-{}", n % 3),
        "test.journal",
        1,
        parse_instant("2023-05-01T09:30:00+08:00").unwrap(),
        "journal-test",
        n.to_le_bytes().to_vec(),
    )
}

fn options() -> OpenOptions {
    OpenOptions {
        sled_flush_every_ms: None,
        ..OpenOptions::default()
    }
}

/// Appends `batches` batches of `per_batch` events, each acknowledged before the next.
fn append(log: &Log, batches: u64, per_batch: u64) {
    let start = log.head_position();
    for b in 0..batches {
        let first = start + b * per_batch + 1;
        log.append(AppendBatch::new(
            (first..first + per_batch).map(event).collect(),
        ))
        .unwrap();
    }
}

/// Copies the store directory (files only: sled keeps none in subdirectories but `blobs`,
/// which stays empty).
fn crash_image(store: &Path, image: &Path) {
    std::fs::create_dir_all(image).unwrap();
    for entry in std::fs::read_dir(store).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), image.join(entry.file_name())).unwrap();
        }
    }
}

/// A store with `acked` events acknowledged in batches of 5, and a crash image of it taken
/// while it was open; the store itself is then closed cleanly.
fn store_and_crash_image(root: &Path, acked: u64) -> (PathBuf, PathBuf, carelog::log::Digest) {
    let store = root.join("store");
    let image = root.join("image");
    let log = Log::open(&store, options()).unwrap();
    append(&log, acked / 5, 5);
    crash_image(&store, &image);
    let digest = log.digest();
    drop(log);
    (store, image, digest)
}

fn sled_head_position(dir: &Path) -> u64 {
    let db = open_sled(dir);
    let tree = db.open_tree(common::LOG_TREE).unwrap();
    tree.get(keys::HEAD).unwrap().map_or(0, |b| {
        codec::decode::<codec::StoredHeadV1>("head", &b)
            .unwrap()
            .position
    })
}

/// A crash image of a log A (five events closed cleanly, then five more only in the journal),
/// with the sled log of another log B (`b_events`, one commit, closed cleanly) in place of A's.
fn journal_of_a_over_sled_of_b(root: &Path, b_events: std::ops::RangeInclusive<u64>) -> PathBuf {
    let a = root.join("a");
    {
        let log = Log::open(&a, options()).unwrap();
        append(&log, 1, 5);
    }
    let image = root.join("image");
    {
        let log = Log::open(&a, options()).unwrap();
        append(&log, 1, 5);
        crash_image(&a, &image);
    }
    let b = root.join("b");
    {
        let log = Log::open(&b, options()).unwrap();
        log.append(AppendBatch::new(b_events.map(event).collect()))
            .unwrap();
    }
    copy_log_tree(&b, &image);
    image
}

fn journal_generation(dir: &Path) -> u64 {
    journal::parse_header(&std::fs::read(dir.join(journal::JOURNAL_FILE)).unwrap()).unwrap()
}

fn assert_intact_with(log: &Log, digest: &carelog::log::Digest) {
    assert_eq!(log.head_position(), digest.position);
    assert_eq!(&log.digest(), digest, "the same log, hash for hash");
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
}

#[test]
fn every_acknowledged_commit_of_a_crash_image_is_replayed() {
    let root = tempfile::tempdir().unwrap();
    let (_store, image, digest) = store_and_crash_image(root.path(), 100);
    assert_eq!(
        sled_head_position(&image),
        0,
        "sled had written none of it: only the journal holds the commits"
    );
    let log = Log::open(&image, options()).unwrap();
    let replay = log.open_report().replayed.expect("a replay");
    assert_eq!(
        (replay.commits, replay.from_position, replay.to_position),
        (20, 1, 100)
    );
    assert_eq!(replay.keys_restored, 0);
    assert_intact_with(&log, &digest);
    // Appends go on after the replayed head, and a clean close leaves nothing to replay.
    append(&log, 1, 5);
    drop(log);
    assert_eq!(sled_head_position(&image), 105);
    let log = Log::open(&image, options()).unwrap();
    assert_eq!(log.open_report().replayed, None);
    assert_eq!(log.head_position(), 105);
}

/// An open that refuses the store (here: a store format from a newer build) must leave the
/// journal as it found it: it may hold acknowledged commits that only it holds.
#[test]
fn a_refused_open_keeps_the_journal_for_the_next_one() {
    let root = tempfile::tempdir().unwrap();
    let (_store, image, digest) = store_and_crash_image(root.path(), 40);
    let journal_before = std::fs::read(image.join(journal::JOURNAL_FILE)).unwrap();
    set_format_version(&image, 4);
    let err = Log::open(&image, options()).err().expect("refused");
    assert!(err.to_string().contains("store format 4"), "{err}");
    assert_eq!(
        std::fs::read(image.join(journal::JOURNAL_FILE)).unwrap(),
        journal_before,
        "untouched"
    );
    set_format_version(&image, 2);
    // An open that fails half way, in the replay (here: sled's head cannot be read), too.
    {
        let db = open_sled(&image);
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        tree.insert(keys::HEAD, b"not a head".as_slice()).unwrap();
        db.flush().unwrap();
    }
    let err = Log::open(&image, options()).err().expect("refused");
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert_eq!(
        std::fs::read(image.join(journal::JOURNAL_FILE)).unwrap(),
        journal_before,
        "untouched by the failed open's close"
    );
    {
        let db = open_sled(&image);
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        tree.remove(keys::HEAD).unwrap();
        db.flush().unwrap();
    }
    let log = Log::open(&image, options()).unwrap();
    assert_eq!(log.open_report().replayed.map(|r| r.commits), Some(8));
    assert_intact_with(&log, &digest);
}

/// sled may keep a head without the segments it names (a power loss can: sled counts data as
/// stable after `sync_file_range`). The journal still holds those commits: the open writes
/// their keys back instead of dropping the journal and refusing appends.
#[test]
fn segments_sled_lost_under_its_head_are_written_back_from_the_journal() {
    let root = tempfile::tempdir().unwrap();
    let (store, image, digest) = store_and_crash_image(root.path(), 50);
    // The head as sled holds it after the clean close, put into the image's sled, which holds
    // no segment: a head past its events.
    let head_bytes = {
        let db = open_sled(&store);
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        tree.get(keys::HEAD).unwrap().unwrap()
    };
    {
        let db = open_sled(&image);
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        assert!(tree.get(keys::segment(1)).unwrap().is_none());
        tree.insert(keys::HEAD, head_bytes).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(sled_head_position(&image), 50);
    let log = Log::open(&image, options()).unwrap();
    let replay = log.open_report().replayed.expect("keys written back");
    assert_eq!(replay.commits, 0, "nothing past the head");
    assert_eq!(
        replay.keys_restored, 30,
        "ten commits, a segment, an index chunk and a tree chunk each"
    );
    assert_eq!((replay.from_position, replay.to_position), (1, 50));
    assert_intact_with(&log, &digest);
    append(&log, 1, 5);
    assert_eq!(log.head_position(), 55, "appends are taken");
}

/// A crash can cut short only the last write: a torn last record is dropped (it was never
/// acknowledged), the records before it are replayed, and the open starts a new generation, so
/// that records of the old one left in the file never come back after a new record.
#[test]
fn a_torn_last_record_is_dropped_and_the_rest_replayed() {
    let root = tempfile::tempdir().unwrap();
    let (_store, image, _digest) = store_and_crash_image(root.path(), 30);
    let path = image.join(journal::JOURNAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let generation = journal::parse_header(&bytes).unwrap();
    let (payloads, end) = journal::scan_records(&bytes, generation);
    assert_eq!(payloads.len(), 6);
    // Tear the last record: its last bytes never reached the disk.
    bytes[end as usize - 3..end as usize].fill(0);
    std::fs::write(&path, &bytes).unwrap();

    let log = Log::open(&image, options()).unwrap();
    assert_eq!(
        log.open_report()
            .replayed
            .map(|r| (r.commits, r.to_position)),
        Some((5, 25))
    );
    assert!(
        log.open_report().warnings.clone().is_empty(),
        "{:?}",
        log.open_report().warnings.clone()
    );
    assert_ne!(journal_generation(&image), generation, "a new generation");
    // A new commit lands over the old generation's first record; a crash image of that holds
    // it alone, not followed by the old generation's second record.
    append(&log, 1, 5);
    let image2 = root.path().join("image2");
    crash_image(&image, &image2);
    let digest = log.digest();
    drop(log);
    let log = Log::open(&image2, options()).unwrap();
    assert!(
        log.open_report().warnings.clone().is_empty(),
        "{:?}",
        log.open_report().warnings.clone()
    );
    assert!(log.journals_set_aside().is_empty());
    assert_intact_with(&log, &digest);
}

/// Damage to a record that valid records follow is not a torn write: those records were
/// acknowledged. The valid ones before the damage are replayed, the journal is kept aside,
/// and appends wait for a person.
#[test]
fn a_damaged_record_before_valid_ones_keeps_the_journal() {
    let root = tempfile::tempdir().unwrap();
    let (_store, image, _digest) = store_and_crash_image(root.path(), 30);
    let path = image.join(journal::JOURNAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let generation = journal::parse_header(&bytes).unwrap();
    let (payloads, _) = journal::scan_records(&bytes, generation);
    // A byte of the third record's payload.
    let third =
        journal::HEADER_BYTES as usize + payloads[..2].iter().map(|p| 20 + p.len()).sum::<usize>();
    bytes[third + 40] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let log = Log::open(&image, options()).unwrap();
    assert_eq!(log.head_position(), 10, "the two records before the damage");
    let warnings = log.open_report().warnings.clone();
    assert!(
        warnings.iter().any(|w| w.contains("a damaged record")),
        "{warnings:?}"
    );
    let kept = log.journals_set_aside();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(&kept[0]).unwrap(), bytes, "kept as found");
    assert!(matches!(
        log.append(AppendBatch::new(vec![event(11)])),
        Err(LogError::JournalSetAside { .. })
    ));
}

/// A journal whose records differ from what sled holds is moved aside (kept), and appends are
/// refused until a person has looked: a new append would take the positions its commits had.
#[test]
fn a_journal_that_differs_from_the_log_is_kept_and_appends_wait() {
    let root = tempfile::tempdir().unwrap();
    let (store, image, _digest) = store_and_crash_image(root.path(), 10);
    // The image's sled gets the clean store's log (all ten events), then one segment changes
    // under the journal's record of it.
    {
        let clean = open_sled(&store);
        let clean_tree = clean.open_tree(common::LOG_TREE).unwrap();
        let db = open_sled(&image);
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        for entry in clean_tree.iter() {
            let (k, v) = entry.unwrap();
            tree.insert(k, v).unwrap();
        }
        let mut first = tree.get(keys::segment(1)).unwrap().unwrap().to_vec();
        let last = first.len() - 1;
        first[last] ^= 1;
        tree.insert(keys::segment(1), first).unwrap();
        // And a key of the same commit missing: it must not be written back either (nothing
        // of a journal that differs from the log goes into it).
        tree.remove(keys::index_chunk(1)).unwrap().unwrap();
        db.flush().unwrap();
    }
    let log = Log::open(&image, options()).unwrap();
    let warnings = log.open_report().warnings.clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("positions 1..=5 that differs from the log")),
        "{warnings:?}"
    );
    let kept = log.journals_set_aside();
    assert_eq!(kept.len(), 1);
    let err = log.append(AppendBatch::new(vec![event(11)])).unwrap_err();
    assert!(matches!(err, LogError::JournalSetAside { .. }), "{err}");
    drop(log);
    {
        let db = open_sled(&image);
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        assert!(
            tree.get(keys::index_chunk(1)).unwrap().is_none(),
            "nothing written back"
        );
    }
    // Said again at every open, until the file is moved out.
    let log = Log::open(&image, options()).unwrap();
    assert_eq!(log.journals_set_aside(), kept);
    assert!(log.append(AppendBatch::new(vec![event(11)])).is_err());
    // Moved out of the store, and appends go on, without a restart.
    std::fs::rename(&kept[0], root.path().join("looked-at")).unwrap();
    assert!(log.journals_set_aside().is_empty());
    log.append(AppendBatch::new(vec![event(11)])).unwrap();
}

/// A journal filled again and again (a small one): sled is flushed and the journal started
/// over each time, and a crash image at any point still holds every acknowledged commit.
#[test]
fn a_small_journal_fills_over_and_over_and_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let small = || OpenOptions {
        journal_max_bytes: journal::JOURNAL_MIN_BYTES,
        ..options()
    };
    let log = Log::open(&store, small()).unwrap();
    let generation = journal_generation(&store);
    for round in 0..5u64 {
        append(&log, 40, 5);
        let image = root.path().join(format!("image-{round}"));
        crash_image(&store, &image);
        let digest = log.digest();
        let reopened = Log::open(&image, small()).unwrap();
        assert_intact_with(&reopened, &digest);
    }
    assert_ne!(
        journal_generation(&store),
        generation,
        "the journal filled and started over"
    );
    // sled's own flush is off here: only a full journal flushed it.
    for round in 0..5 {
        assert!(
            sled_head_position(&root.path().join(format!("image-{round}"))) > 0,
            "sled was flushed by round {round}"
        );
    }
}

/// A record that starts right after sled's head but does not chain onto it (another log's head
/// at the same position) is not applied: positions alone do not make it this log's next.
#[test]
fn a_record_at_the_next_position_of_another_chain_is_not_applied() {
    let root = tempfile::tempdir().unwrap();
    // Another log (B) of five events: position 6 is its next, but on another chain.
    let image = journal_of_a_over_sled_of_b(root.path(), 101..=105);
    assert_eq!(sled_head_position(&image), 5);
    let log = Log::open(&image, options()).unwrap();
    assert_eq!(log.head_position(), 5, "nothing applied");
    assert_eq!(log.open_report().replayed, None);
    let warnings = log.open_report().warnings.clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("positions 6..=10 that does not continue the head at 5")),
        "{warnings:?}"
    );
    assert_eq!(log.journals_set_aside().len(), 1);
}

/// Records that sled's head covers but that are another log's (their chain differs from the
/// log's at their last position) are not written into it, even where sled lacks their keys.
#[test]
fn covered_records_of_another_log_are_not_written_back() {
    let root = tempfile::tempdir().unwrap();
    // Another log (B) of ten events in one commit (one segment, at key 1): its head covers
    // the journal's records (6..=10).
    let image = journal_of_a_over_sled_of_b(root.path(), 101..=110);
    assert_nothing_written_back(
        &image,
        "cannot be shown to be this log's (the chain hash at 10 differs",
        6,
    );
}

/// Opens a crash image whose journal must not go into the log: nothing is replayed, the
/// open's warning says `why`, and sled still lacks the segment at `position`.
fn assert_nothing_written_back(image: &Path, why: &str, position: u64) {
    let log = Log::open(image, options()).unwrap();
    assert_eq!(log.open_report().replayed, None, "nothing written back");
    let warnings = log.open_report().warnings.clone();
    assert!(warnings.iter().any(|w| w.contains(why)), "{warnings:?}");
    assert_eq!(
        log.journals_set_aside().len(),
        1,
        "the journal is kept aside"
    );
    drop(log);
    let db = open_sled(image);
    let tree = db.open_tree(common::LOG_TREE).unwrap();
    assert!(
        tree.get(keys::segment(position)).unwrap().is_none(),
        "segment {position} kept out"
    );
}

/// A's store with ten events in two commits (closed cleanly), and a crash image taken after the
/// first commit, whose journal holds that commit (1..=5) only. The image's sled is then given
/// A's whole log without the first commit's keys: sled's head (10) covers the journal's record,
/// and the event at its last position (5) is gone with it. Also returns the journal records of
/// both of A's commits (from a crash image after the second).
fn image_missing_the_first_commit(root: &Path) -> (PathBuf, carelog::log::Digest, Vec<Vec<u8>>) {
    let a = root.join("a");
    let image = root.join("image");
    let both = root.join("image-both");
    let digest = {
        let log = Log::open(&a, options()).unwrap();
        append(&log, 1, 5);
        crash_image(&a, &image);
        append(&log, 1, 5);
        crash_image(&a, &both);
        log.digest()
    };
    copy_log_tree(&a, &image);
    {
        let db = open_sled(&image);
        let tree = db.open_tree(common::LOG_TREE).unwrap();
        tree.remove(keys::segment(1)).unwrap().unwrap();
        tree.remove(keys::index_chunk(1)).unwrap().unwrap();
        db.flush().unwrap();
    }
    (image, digest, journal_records(&both))
}

/// The payloads of a journal's records, in order.
fn journal_records(store: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(store.join(journal::JOURNAL_FILE)).unwrap();
    journal::scan_records(&bytes, journal::parse_header(&bytes).unwrap()).0
}

/// The covered records' last event lost with them: the event after it, which chains from it,
/// shows they are this log's, and their keys are written back.
#[test]
fn lost_keys_are_written_back_when_the_event_after_them_vouches_for_them() {
    let root = tempfile::tempdir().unwrap();
    let (image, digest, _) = image_missing_the_first_commit(root.path());
    let log = Log::open(&image, options()).unwrap();
    assert!(
        log.open_report().warnings.clone().is_empty(),
        "{:?}",
        log.open_report().warnings.clone()
    );
    let replay = log.open_report().replayed.expect("keys written back");
    assert_eq!((replay.commits, replay.keys_restored), (0, 2));
    assert_intact_with(&log, &digest);
}

/// Records must chain one onto the next: a journal whose first record is another log's (B) and
/// whose second is this log's second commit does not get B's keys written into the log, even
/// though the second record ends on the log's own head.
#[test]
fn a_record_that_does_not_chain_onto_the_one_before_stops_the_replay() {
    let root = tempfile::tempdir().unwrap();
    let (image, _digest, a_records) = image_missing_the_first_commit(root.path());
    assert_eq!(a_records.len(), 2);
    let b = root.path().join("b");
    let b_image = root.path().join("b-image");
    {
        let log = Log::open(&b, options()).unwrap();
        log.append(AppendBatch::new((101..=105).map(event).collect()))
            .unwrap();
        crash_image(&b, &b_image);
    }
    let b_records = journal_records(&b_image);
    // The image's journal: B's first commit, then A's second.
    let path = image.join(journal::JOURNAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let generation = journal::parse_header(&bytes).unwrap();
    let mut records = Vec::new();
    journal::encode_record(&mut records, generation, &b_records[0]);
    journal::encode_record(&mut records, generation, &a_records[1]);
    let at = journal::HEADER_BYTES as usize;
    bytes.resize(bytes.len().max(at + records.len()), 0);
    bytes[at..at + records.len()].copy_from_slice(&records);
    std::fs::write(&path, &bytes).unwrap();

    assert_nothing_written_back(&image, "does not follow the record before it", 1);
}

/// A crash image of a store whose only commit (1..=5) is in the journal, on a sled that holds no
/// event, with that record replaced by `forge(entries of the first commit, head of the second)`.
fn image_with_a_forged_first_record(
    root: &Path,
    forge: impl Fn(&mut Vec<journal::JournalEntry>, Vec<u8>),
) -> PathBuf {
    let a = root.join("a");
    let image = root.join("image");
    let both = root.join("image-both");
    {
        let log = Log::open(&a, options()).unwrap();
        append(&log, 1, 5);
        crash_image(&a, &image);
        append(&log, 1, 5);
        crash_image(&a, &both);
    }
    let empty = root.join("empty");
    drop(Log::open(&empty, options()).unwrap());
    copy_log_tree(&empty, &image);
    let records = journal_records(&both);
    assert_eq!(records.len(), 2);
    let (key, second_head) = journal::decode_payload(&records[1]).unwrap().pop().unwrap();
    assert_eq!(key.as_slice(), keys::HEAD);
    let mut entries = journal::decode_payload(&records[0]).unwrap();
    forge(&mut entries, second_head);
    let borrowed: Vec<(&[u8], &[u8])> = entries
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let forged = journal::encode_payload(&borrowed);
    let path = image.join(journal::JOURNAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let generation = journal::parse_header(&bytes).unwrap();
    let mut record = Vec::new();
    journal::encode_record(&mut record, generation, &forged);
    let at = journal::HEADER_BYTES as usize;
    bytes.resize(bytes.len().max(at + record.len()), 0);
    bytes[at..at + record.len()].copy_from_slice(&record);
    std::fs::write(&path, &bytes).unwrap();
    image
}

/// Opens an image whose first record `forge` changed (see [`image_with_a_forged_first_record`]):
/// the record is refused as not self-consistent, nothing is written back, no head is written.
fn assert_forged_first_record_refused(forge: impl Fn(&mut Vec<journal::JournalEntry>, Vec<u8>)) {
    let root = tempfile::tempdir().unwrap();
    let image = image_with_a_forged_first_record(root.path(), forge);
    assert_nothing_written_back(&image, "do not run, chained, up to its own head", 1);
    assert_eq!(sled_head_position(&image), 0, "no head was written");
}

/// Changes the third of the five events in a record's segment at position 1.
fn change_third_event(
    entries: &mut [journal::JournalEntry],
    change: impl FnOnce(&mut codec::StoredEventV1),
) {
    let segment = entries
        .iter_mut()
        .find(|(k, _)| keys::segment_position(k) == Some(1))
        .unwrap();
    let mut decoded: codec::SegmentV1 = codec::decode("segment", &segment.1).unwrap();
    assert_eq!(decoded.events.len(), 5);
    change(&mut decoded.events[2]);
    segment.1 = codec::encode("segment", &decoded).unwrap();
}

/// A record whose head claims more than its events hold (a valid checksum over bytes the writer
/// never makes: forged, or damaged before the checksum was taken) is not replayed: applying it
/// would put a head in sled with no events under it. Here: the first commit's segments (1..=5)
/// under the second commit's head (10).
#[test]
fn a_record_whose_head_is_not_its_last_event_is_not_replayed() {
    assert_forged_first_record_refused(|entries, second_head| {
        let last = entries.len() - 1;
        entries[last].1 = second_head;
    });
}

/// Nor is a record whose events do not chain inside it, even when its first event continues the
/// log, every event's bytes match its leaf hash and its last is its head: here event 3's chain
/// hash is changed (so neither it nor event 4 follows the event before).
#[test]
fn a_record_whose_events_do_not_chain_is_not_replayed() {
    assert_forged_first_record_refused(|entries, _| {
        change_third_event(entries, |e| e.chain_hash[0] ^= 1);
    });
}

/// Nor is a record with an event's content changed and its hashes left as they were: the event's
/// bytes are checked against its leaf hash (here event 3's payload gains a byte).
#[test]
fn a_record_with_an_event_changed_under_its_hashes_is_not_replayed() {
    assert_forged_first_record_refused(|entries, _| {
        change_third_event(entries, |e| e.payload.push(0));
    });
}
