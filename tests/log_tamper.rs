//! Tampering with a store behind the log's back (through sled directly, with the key layout of
//! `carelog::log::keys`) must be caught by `verify`, at the right position and with the right
//! kind; opening a store that is locked, missing or not a store must be a clear error.
//!
//! Each case builds a fresh store of 3000 events in six commits (so six segments, each with the
//! commit's index chunk) and damages one thing.

use std::path::Path;
use std::process::Command;

use carelog::codec::{self, IndexChunkV1, SegmentV1, StoredHeadV1};
use carelog::log::{
    AppendBatch, Digest, Log, LogError, NewEvent, OpenOptions, SledStorage, StorageError,
    VerifyProblemKind, VerifyReport, hash, keys,
};
use carelog::rng::SplitMix64;
use carelog::time::parse_instant;

const TREE: &str = "carelog-log-v1";
const EVENTS: u64 = 3000;
const STREAMS: [&str; 5] = ["pair-a", "pair-b", "pair-c", "pair-d", "pair-e"];

/// The payload of the event at `position`: a marker findable in the segment's bytes.
fn marker(position: u64) -> Vec<u8> {
    format!("<<payload of event {position:06}>>").into_bytes()
}

fn event(position: u64) -> NewEvent {
    NewEvent::new(
        STREAMS[(position % STREAMS.len() as u64) as usize],
        "test.noted",
        1,
        parse_instant("2023-05-01T09:30:00+08:00").unwrap(),
        "tester",
        marker(position),
    )
}

/// A fresh store of [`EVENTS`] events appended in batches of uneven sizes. Returns the log's
/// final digest.
fn build_store(dir: &Path) -> Digest {
    let log = Log::open(dir, OpenOptions::default()).unwrap();
    let mut position = 0;
    for size in [400u64, 700, 300, 600, 500, 500] {
        let batch: Vec<NewEvent> = (position + 1..=position + size).map(event).collect();
        let acks = log.append(AppendBatch::new(batch)).unwrap();
        assert_eq!(acks.last().unwrap().position, position + size);
        position += size;
    }
    assert_eq!(position, EVENTS);
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "the fresh store must verify: {report:?}");
    log.digest()
}

/// Opens the store with sled directly, hands the log's tree to `f`, flushes and closes it.
fn tamper<R>(dir: &Path, f: impl FnOnce(&sled::Tree) -> R) -> R {
    // The lock may linger for some milliseconds after the log closed (see `open_existing`).
    let start = std::time::Instant::now();
    let db = loop {
        match SledStorage::sled_config(dir).open() {
            Ok(db) => break db,
            Err(e) if start.elapsed() < std::time::Duration::from_secs(10) => {
                assert!(e.to_string().contains("could not acquire lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let tree = db.open_tree(TREE).unwrap();
    let out = f(&tree);
    tree.flush().unwrap();
    db.flush().unwrap();
    // A careful tamperer also lowers the anchor's floor (tests/store_damage.rs shows that a
    // floor left as it was makes the open refuse): these cases test what the hashes and a kept
    // digest catch on their own.
    use sha2::Digest as _;
    let header: [u8; 32] = sha2::Sha256::digest(tree.get(keys::HEADER).unwrap().unwrap()).into();
    carelog::log::sled::anchor::write(
        dir,
        &carelog::log::sled::anchor::Anchor {
            header_sha256: header,
            floor_position: 0,
            floor_chain_hash: hash::GENESIS_CHAIN,
        },
    )
    .unwrap();
    out
}

/// The first positions of the store's segments, in order.
fn segment_starts(tree: &sled::Tree) -> Vec<u64> {
    tree.scan_prefix([keys::SEGMENT_PREFIX])
        .map(|kv| keys::segment_position(&kv.unwrap().0).unwrap())
        .collect()
}

fn verify_store(dir: &Path, against: Option<&Digest>) -> VerifyReport {
    let log = open_existing(dir);
    let with_indexes = log.verify(true, against, &mut |_| {}).unwrap();
    // Without the index checks, the events' own problems must be found just the same.
    let without = log.verify(false, against, &mut |_| {}).unwrap();
    assert_eq!(
        with_indexes.problem, without.problem,
        "with and without index checks"
    );
    with_indexes
}

fn expect_problem(report: &VerifyReport, position: u64, kinds: &[VerifyProblemKind]) {
    assert!(!report.intact, "tampering went unnoticed: {report:?}");
    let problem = report.problem.as_ref().expect("a problem");
    assert!(
        kinds.contains(&problem.kind),
        "expected one of {kinds:?} at {position}, got {problem:?}"
    );
    assert_eq!(problem.position, position, "position of {problem:?}");
    assert!(!problem.detail.is_empty());
}

/// Reading a damaged store answers (Ok or Err) and never panics.
fn read_everything(dir: &Path) {
    let log = open_existing(dir);
    let _ = log.read_from(1, usize::MAX);
    let _ = log.read_from(1500, 10);
    for p in [1, 400, 401, 1100, 1101, 1300, 1500, 2000, 2500, 3000] {
        let _ = log.event_at(p);
    }
    // `read_stream` decodes a whole segment per event: read small windows, around positions
    // 1, 1100 and 1400 (the edges of the segment the garbage test damages).
    for s in STREAMS {
        for v in [1, 219, 279] {
            let _ = log.read_stream(s, v, 3);
        }
        let _ = log.stream_version(s);
    }
}

/// Opens an existing store. sled 0.34.7 may hold its lock for some milliseconds after the
/// last handle of a store in this process is dropped (its background writes finish on their
/// own threads), so a `Locked` error is retried for a while; any other error fails the test.
fn open_existing(dir: &Path) -> Log {
    let start = std::time::Instant::now();
    loop {
        match Log::open(dir, OpenOptions::existing()) {
            Ok(log) => return log,
            Err(LogError::Storage(StorageError::Locked { .. }))
                if start.elapsed() < std::time::Duration::from_secs(10) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("could not open {}: {e:?}", dir.display()),
        }
    }
}

#[test]
fn a_store_has_several_segments() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let starts = tamper(dir.path(), segment_starts);
    assert!(starts.len() >= 5, "{starts:?}");
    assert_eq!(starts[0], 1);
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_byte_edited_in_a_payload_is_modified_at_that_event() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let target = 1234;
    let (first, next) = tamper(dir.path(), |tree| {
        let starts = segment_starts(tree);
        let i = starts.iter().rposition(|s| *s <= target).unwrap();
        let key = keys::segment(starts[i]);
        let mut value = tree.get(key).unwrap().unwrap().to_vec();
        let m = marker(target);
        let at = value
            .windows(m.len())
            .position(|w| w == m.as_slice())
            .unwrap();
        value[at + 5] ^= 0x01;
        tree.insert(key, value).unwrap();
        (starts[i], starts.get(i + 1).copied().unwrap_or(EVENTS + 1))
    });
    assert!(first <= target && target < next);
    let report = verify_store(dir.path(), None);
    expect_problem(&report, target, &[VerifyProblemKind::Modified]);
    // Every event before the edited one was checked.
    assert_eq!(report.events_checked, target - 1);
    read_everything(dir.path());
}

#[test]
fn a_deleted_middle_segment_is_missing_at_its_first_position() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let deleted = tamper(dir.path(), |tree| {
        let starts = segment_starts(tree);
        let middle = starts[starts.len() / 2];
        assert!(middle > 1);
        tree.remove(keys::segment(middle)).unwrap().unwrap();
        middle
    });
    let report = verify_store(dir.path(), None);
    expect_problem(&report, deleted, &[VerifyProblemKind::Missing]);
    read_everything(dir.path());
}

#[test]
fn swapped_segments_are_out_of_order_or_modified_at_the_first_swapped_position() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let first_swapped = tamper(dir.path(), |tree| {
        let starts = segment_starts(tree);
        let (a, b) = (keys::segment(starts[1]), keys::segment(starts[3]));
        let va = tree.get(a).unwrap().unwrap();
        let vb = tree.get(b).unwrap().unwrap();
        tree.insert(a, vb).unwrap();
        tree.insert(b, va).unwrap();
        starts[1]
    });
    let report = verify_store(dir.path(), None);
    // Nothing is missing: every event is still stored, in the wrong place.
    expect_problem(
        &report,
        first_swapped,
        &[VerifyProblemKind::OutOfOrder, VerifyProblemKind::Modified],
    );
    read_everything(dir.path());
}

#[test]
fn a_deleted_last_segment_is_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let last = tamper(dir.path(), |tree| {
        let last = *segment_starts(tree).last().unwrap();
        tree.remove(keys::segment(last)).unwrap().unwrap();
        last
    });
    let report = verify_store(dir.path(), None);
    expect_problem(&report, last, &[VerifyProblemKind::Missing]);
    assert_eq!(report.events_checked, last - 1);
    read_everything(dir.path());
}

/// A careful attacker cuts the tail (its segment and its commit's index chunk) and rewrites the
/// head to match: only a digest taken before can tell.
#[test]
fn a_careful_truncation_is_caught_by_an_earlier_digest() {
    let dir = tempfile::tempdir().unwrap();
    let digest = build_store(dir.path());
    assert_eq!(digest.position, EVENTS);
    let new_last = tamper(dir.path(), |tree| {
        let last = *segment_starts(tree).last().unwrap();
        tree.remove(keys::segment(last)).unwrap().unwrap();
        // The last commit's index chunk starts where its (only) segment did.
        assert_eq!(*chunk_starts(tree).last().unwrap(), last);
        tree.remove(keys::index_chunk(last)).unwrap().unwrap();
        let previous = *segment_starts(tree).last().unwrap();
        let segment: SegmentV1 = codec::decode(
            "segment",
            &tree.get(keys::segment(previous)).unwrap().unwrap(),
        )
        .unwrap();
        let new_last = segment.events.last().unwrap();
        assert_eq!(new_last.position, last - 1);
        let head = StoredHeadV1 {
            position: new_last.position,
            chain_hash: new_last.chain_hash,
            recorded_at: new_last.recorded_at,
        };
        tree.insert(keys::HEAD, codec::encode("durable head", &head).unwrap())
            .unwrap();
        new_last.position
    });
    let log = open_existing(dir.path());
    assert_eq!(log.head_position(), new_last);
    for check_indexes in [true, false] {
        let report = log
            .verify(check_indexes, Some(&digest), &mut |_| {})
            .unwrap();
        assert!(!report.intact, "truncation went unnoticed: {report:?}");
        let problem = report.problem.unwrap();
        assert_eq!(
            problem.kind,
            VerifyProblemKind::DigestMismatch,
            "{problem:?}"
        );
        assert!(
            problem.position > new_last && problem.position <= digest.position,
            "{problem:?}"
        );
    }
}

/// An attacker who edits an event and recomputes every hash after it (and the head) leaves a
/// self-consistent log: a digest taken after the edited position catches it, one taken before
/// it does not (the log up to there is unchanged).
#[test]
fn a_rehashed_rewrite_is_caught_by_a_digest_past_it_only() {
    let dir = tempfile::tempdir().unwrap();
    let early = {
        let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
        let batch: Vec<NewEvent> = (1..=1000).map(event).collect();
        log.append(AppendBatch::new(batch)).unwrap();
        log.digest()
    };
    assert_eq!(early.position, 1000);
    let late = {
        let log = open_existing(dir.path());
        for start in [1001u64, 1501, 2001, 2501] {
            let batch: Vec<NewEvent> = (start..start + 500).map(event).collect();
            log.append(AppendBatch::new(batch)).unwrap();
        }
        log.digest()
    };
    assert_eq!(late.position, EVENTS);
    let edited = 1700;
    tamper(dir.path(), |tree| {
        let starts = segment_starts(tree);
        let mut chain = [0u8; 32];
        let mut head = None;
        for first in starts {
            let key = keys::segment(first);
            let mut segment: SegmentV1 =
                codec::decode("segment", &tree.get(key).unwrap().unwrap()).unwrap();
            for e in &mut segment.events {
                if e.position == edited {
                    e.payload = b"<<a different story>>".to_vec();
                }
                e.leaf_hash = hash::leaf(&e.canonical_bytes().unwrap());
                e.chain_hash = hash::chain(&chain, &e.leaf_hash);
                chain = e.chain_hash;
                head = Some(StoredHeadV1 {
                    position: e.position,
                    chain_hash: e.chain_hash,
                    recorded_at: e.recorded_at,
                });
            }
            tree.insert(key, codec::encode("segment", &segment).unwrap())
                .unwrap();
        }
        tree.insert(
            keys::HEAD,
            codec::encode("durable head", &head.unwrap()).unwrap(),
        )
        .unwrap();
    });
    let log = open_existing(dir.path());
    assert_eq!(
        log.event_at(edited).unwrap().unwrap().payload,
        b"<<a different story>>"
    );
    assert_ne!(log.digest(), late, "the rewrite changed the head");
    let report = log.verify(true, Some(&early), &mut |_| {}).unwrap();
    assert!(
        report.intact,
        "the log up to the early digest is unchanged: {report:?}"
    );
    let report = log.verify(true, Some(&late), &mut |_| {}).unwrap();
    assert!(!report.intact, "the rewrite went unnoticed: {report:?}");
    let problem = report.problem.unwrap();
    assert_eq!(
        problem.kind,
        VerifyProblemKind::DigestMismatch,
        "{problem:?}"
    );
    assert_eq!(problem.position, late.position);
}

/// A digest is a claim about a prefix: appends after it keep it valid.
#[test]
fn appends_after_a_digest_keep_it_valid() {
    let dir = tempfile::tempdir().unwrap();
    let digest = build_store(dir.path());
    let log = open_existing(dir.path());
    log.append(AppendBatch::new(vec![event(EVENTS + 1), event(EVENTS + 2)]))
        .unwrap();
    let report = log.verify(true, Some(&digest), &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.head.position, EVENTS + 2);
    // A digest with another chain hash at the same position is a mismatch.
    let mut forged = digest.clone();
    let mut bytes = hex::decode(&forged.chain_hash).unwrap();
    bytes[0] ^= 0xFF;
    forged.chain_hash = hex::encode(bytes);
    let report = log.verify(true, Some(&forged), &mut |_| {}).unwrap();
    let problem = report.problem.unwrap();
    assert_eq!(problem.kind, VerifyProblemKind::DigestMismatch);
    assert_eq!(problem.position, EVENTS);
}

/// The first positions of the store's index chunks (one per commit), in order.
fn chunk_starts(tree: &sled::Tree) -> Vec<u64> {
    tree.scan_prefix([keys::INDEX_PREFIX])
        .map(|kv| keys::index_chunk_position(&kv.unwrap().0).unwrap())
        .collect()
}

/// Decodes the index chunk starting at `first`, lets `f` edit it, and stores it back.
fn edit_chunk(tree: &sled::Tree, first: u64, f: impl FnOnce(&mut IndexChunkV1)) {
    let key = keys::index_chunk(first);
    let mut chunk: IndexChunkV1 =
        codec::decode("index chunk", &tree.get(key).unwrap().unwrap()).unwrap();
    f(&mut chunk);
    tree.insert(key, codec::encode("index chunk", &chunk).unwrap())
        .unwrap();
}

#[test]
fn every_segment_has_one_index_chunk_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let (chunks, segments) = tamper(dir.path(), |tree| {
        (chunk_starts(tree), segment_starts(tree))
    });
    assert_eq!(chunks, segments);
    // Each batch of `build_store` is a commit, so its first position starts a segment.
    for first in [1, 401, 1101, 1401, 2001, 2501] {
        assert!(chunks.contains(&first), "no chunk at {first}: {chunks:?}");
    }
}

#[test]
fn an_index_entry_naming_another_event_is_modified_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let log = open_existing(dir.path());
    let victim = log.event_at(1234).unwrap().unwrap().event_id;
    let other = log.event_at(2345).unwrap().unwrap().event_id;
    drop(log);
    tamper(dir.path(), |tree| {
        let chunk_start = *chunk_starts(tree).iter().rfind(|p| **p <= 1234).unwrap();
        edit_chunk(tree, chunk_start, |chunk| {
            let entry = &mut chunk.entries[(1234 - chunk_start) as usize];
            assert_eq!(entry.event_id, *victim.as_bytes());
            entry.event_id = *other.as_bytes();
        });
    });
    let log = open_existing(dir.path());
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    expect_problem(&report, 1234, &[VerifyProblemKind::Modified]);
    // The events themselves are intact: only the index is damaged.
    assert!(log.verify(false, None, &mut |_| {}).unwrap().intact);
}

#[test]
fn an_index_entry_with_another_stream_version_is_modified_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    tamper(dir.path(), |tree| {
        edit_chunk(tree, 1, |chunk| {
            // Position 46 is version 10 of stream "pair-b" (positions 1, 6, 11, ...).
            let entry = &mut chunk.entries[45];
            assert_eq!(
                (entry.stream.as_str(), entry.stream_version),
                ("pair-b", 10)
            );
            entry.stream_version = 11;
        });
    });
    let log = open_existing(dir.path());
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    expect_problem(&report, 46, &[VerifyProblemKind::Modified]);
    assert!(log.verify(false, None, &mut |_| {}).unwrap().intact);
}

#[test]
fn an_index_chunk_with_an_entry_too_few_or_too_many_is_caught() {
    for extra in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        build_store(dir.path());
        let mut position = 2002;
        tamper(dir.path(), |tree| {
            edit_chunk(tree, 2001, |chunk| {
                assert!(chunk.entries.len() > 1);
                if !extra {
                    // The last entry of this chunk goes: the next chunk starts past its end.
                    position = 2001 + chunk.entries.len() as u64 - 1;
                }
                if extra {
                    let copy = chunk.entries[0].clone();
                    chunk.entries.insert(0, copy);
                } else {
                    chunk.entries.pop();
                }
            });
        });
        let log = open_existing(dir.path());
        let report = log.verify(true, None, &mut |_| {}).unwrap();
        assert!(!report.intact, "extra: {extra}: {report:?}");
        let problem = report.problem.unwrap();
        // One entry too many (the first, twice) shifts every entry after it: the first
        // mismatch is the second position. One too few leaves the next chunk starting past
        // where this one now ends.
        assert_eq!(problem.position, position, "extra: {extra}: {problem:?}");
        assert!(
            matches!(
                problem.kind,
                VerifyProblemKind::Modified
                    | VerifyProblemKind::Missing
                    | VerifyProblemKind::OutOfOrder
            ),
            "{problem:?}"
        );
        assert!(log.verify(false, None, &mut |_| {}).unwrap().intact);
    }
}

#[test]
fn a_deleted_index_chunk_is_missing_at_its_first_position() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    tamper(dir.path(), |tree| {
        tree.remove(keys::index_chunk(1401)).unwrap().unwrap();
    });
    let log = open_existing(dir.path());
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    expect_problem(&report, 1401, &[VerifyProblemKind::Missing]);
    assert!(log.verify(false, None, &mut |_| {}).unwrap().intact);
}

#[test]
fn a_deleted_last_index_chunk_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    tamper(dir.path(), |tree| {
        tree.remove(keys::index_chunk(2501)).unwrap().unwrap();
    });
    let log = open_existing(dir.path());
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    expect_problem(&report, 2501, &[VerifyProblemKind::Missing]);
}

/// Garbage as an index chunk: verify names it, and whoever needs the index (an id lookup, a
/// stream read, an append) gets an error, not a panic and not a wrong answer.
#[test]
fn garbage_as_an_index_chunk_is_modified_and_an_error_for_index_users() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let log = open_existing(dir.path());
    let known = log.event_at(1500).unwrap().unwrap();
    drop(log);
    tamper(dir.path(), |tree| {
        tree.insert(keys::index_chunk(1401), &b"\xFF\xFF not an index chunk"[..])
            .unwrap();
    });
    let log = open_existing(dir.path());
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    expect_problem(&report, 1401, &[VerifyProblemKind::Modified]);
    assert!(log.verify(false, None, &mut |_| {}).unwrap().intact);
    assert!(
        log.position_of(known.event_id).is_err(),
        "a lookup through a damaged index"
    );
    assert!(log.stream_version(&known.stream).is_err());
    assert!(log.read_stream(&known.stream, 1, 10).is_err());
    assert!(
        log.append(AppendBatch::new(vec![event(EVENTS + 1)]))
            .is_err()
    );
    assert_eq!(log.head_position(), EVENTS, "nothing was appended");
}

fn seed() -> u64 {
    let seed = std::env::var("CARELOG_TAMPER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed {seed} (rerun with CARELOG_TAMPER_SEED={seed})");
    seed
}

#[test]
fn garbage_as_a_segment_value_is_modified_and_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let mut rng = SplitMix64(seed());
    let (target, next, original) = tamper(dir.path(), |tree| {
        let starts = segment_starts(tree);
        let target = starts[2];
        (
            target,
            starts[3],
            tree.get(keys::segment(target)).unwrap().unwrap(),
        )
    });
    let mut values: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        // A huge length prefix for the events vector.
        vec![0xFF; 9],
        vec![0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        // The original, cut short.
        original[..original.len() / 2].to_vec(),
        // The original with trailing bytes.
        [&original[..], b"junk"].concat(),
    ];
    for _ in 0..12 {
        let n = (rng.next_u64() % 4096) as usize;
        values.push(rng.bytes(n));
    }
    // The original with a few random bytes overwritten anywhere (headers and lengths too).
    for _ in 0..12 {
        let mut v = original.to_vec();
        for _ in 0..=(rng.next_u64() % 4) {
            let i = (rng.next_u64() % v.len() as u64) as usize;
            v[i] ^= (rng.next_u64() % 255 + 1) as u8;
        }
        values.push(v);
    }
    for value in values {
        tamper(dir.path(), |tree| {
            tree.insert(keys::segment(target), value.clone()).unwrap();
        });
        let log = open_existing(dir.path());
        let report = log.verify(false, None, &mut |_| {}).unwrap();
        assert!(
            !report.intact,
            "garbage went unnoticed ({} bytes)",
            value.len()
        );
        let problem = report.problem.clone().unwrap();
        // The problem lies inside the damaged segment (at its start when it does not decode).
        assert!(
            problem.position >= target && problem.position < next,
            "{problem:?}"
        );
        assert!(
            matches!(
                problem.kind,
                VerifyProblemKind::Modified
                    | VerifyProblemKind::OutOfOrder
                    | VerifyProblemKind::Missing
            ),
            "{problem:?}"
        );
        if codec::decode::<SegmentV1>("segment", &value).is_err() {
            assert_eq!(problem.kind, VerifyProblemKind::Modified, "{problem:?}");
            assert_eq!(problem.position, target, "{problem:?}");
        }
        drop(log);
        read_everything(dir.path());
    }
    // Put back, the original verifies again: the damage was all there was.
    tamper(dir.path(), |tree| {
        tree.insert(keys::segment(target), original).unwrap();
    });
    assert!(verify_store(dir.path(), None).intact);
}

#[test]
fn a_store_held_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    log.append(AppendBatch::new(vec![event(1)])).unwrap();
    // In this process.
    match Log::open(dir.path(), OpenOptions::default()) {
        Err(e @ LogError::Storage(StorageError::Locked { .. })) => {
            assert!(e.to_string().contains("locked"), "{e}");
        }
        Err(e) => panic!("expected a locked error, got {e:?}"),
        Ok(_) => panic!("a store held open was opened a second time"),
    }
    // And from another process.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("LOCKED-OK"), "{stdout}");
    // Once closed, the store opens again.
    drop(log);
    let log = open_existing(dir.path());
    assert_eq!(log.head_position(), 1);
}

const LOCK_CHILD_ENV: &str = "CARELOG_LOCK_CHILD";

/// Run by `a_store_held_open_is_locked` in a child process; does nothing otherwise.
#[test]
fn lock_child_entry() {
    let Some(dir) = std::env::var_os(LOCK_CHILD_ENV) else {
        return;
    };
    for options in [OpenOptions::default(), OpenOptions::existing()] {
        match Log::open(&dir, options) {
            Err(e @ LogError::Storage(StorageError::Locked { .. })) => {
                assert!(e.to_string().contains("locked"), "{e}");
            }
            Err(e) => panic!("expected a locked error, got {e:?}"),
            Ok(_) => panic!("a store held open by another process was opened"),
        }
    }
    println!("LOCKED-OK");
}

#[test]
fn opening_a_missing_store_for_reading_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("no-such-store");
    match Log::open(&absent, OpenOptions::existing()) {
        Err(LogError::Storage(StorageError::Missing { path })) => assert_eq!(path, absent),
        Err(e) => panic!("expected a missing store, got {e:?}"),
        Ok(_) => panic!("a missing store was opened"),
    }
    assert!(
        !absent.exists(),
        "opening for reading created the directory"
    );
    // An empty directory holds no store either.
    match Log::open(dir.path(), OpenOptions::existing()) {
        Err(LogError::Storage(StorageError::Missing { .. })) => {}
        Err(e) => panic!("expected a missing store, got {e:?}"),
        Ok(_) => panic!("an empty directory was opened as a store"),
    }
}

#[test]
fn a_directory_of_garbage_is_an_error_not_a_panic() {
    let mut rng = SplitMix64(seed());
    // Files that are not sled's.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), rng.bytes(1000)).unwrap();
    for options in [OpenOptions::default(), OpenOptions::existing()] {
        assert!(Log::open(dir.path(), options).is_err());
    }
    match Log::open(dir.path(), OpenOptions::default()) {
        Err(LogError::Storage(StorageError::NotAStore { .. })) => {}
        other => panic!("expected not-a-store, got {:?}", other.err()),
    }
    // Garbage under sled's own file names.
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let size = [0usize, 7, 600, 70_000][round];
        std::fs::write(dir.path().join("conf"), rng.bytes(size.min(300))).unwrap();
        std::fs::write(dir.path().join("db"), rng.bytes(size)).unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("snap.0000000000000000"), rng.bytes(size)).unwrap();
        for options in [OpenOptions::existing(), OpenOptions::default()] {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Log::open(dir.path(), options).map(|_| ())
            }));
            match result {
                Ok(Err(_)) => {}
                Ok(Ok(())) => panic!("a directory of garbage ({size} bytes) opened as a store"),
                Err(_) => panic!("opening a directory of garbage ({size} bytes) panicked"),
            }
        }
    }
}
