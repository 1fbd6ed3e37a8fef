//! The log's basic contract on a real sled store: append, read, idempotency, conflicts, verify.

use carelog::log::{AppendBatch, ExpectedVersion, Log, LogError, NewEvent, OpenOptions};
use carelog::time::parse_instant;

fn event(stream: &str, n: u32) -> NewEvent {
    NewEvent::new(
        stream,
        "test.noted",
        1,
        parse_instant("2023-05-01T09:30:00+08:00").unwrap(),
        "tester",
        n.to_le_bytes().to_vec(),
    )
}

#[test]
fn append_read_and_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    let acks = log
        .append(AppendBatch::new(vec![
            event("a", 1),
            event("b", 2),
            event("a", 3),
        ]))
        .unwrap();
    assert_eq!(
        acks.iter().map(|a| a.position).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        acks.iter().map(|a| a.stream_version).collect::<Vec<_>>(),
        [1, 1, 2]
    );
    let all = log.read_from(1, 10).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].payload, 3u32.to_le_bytes());
    assert_eq!(all[0].occurred_at.offset().local_minus_utc(), 8 * 3600);
    let a = log.read_stream("a", 1, 10).unwrap();
    assert_eq!(a.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 3]);
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.events_checked, 3);
    assert_eq!(log.digest().position, 3);
}

#[test]
fn resending_an_id_returns_the_original_position_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let e = event("a", 1);
    {
        let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
        log.append(AppendBatch::new(vec![event("z", 0)])).unwrap();
        let ack = log.append(AppendBatch::new(vec![e.clone()])).unwrap();
        assert_eq!(ack[0].position, 2);
        assert!(!ack[0].duplicate);
    }
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    let ack = log
        .append(AppendBatch::new(vec![e.clone()]).expecting("a", ExpectedVersion::NoStream))
        .unwrap();
    assert_eq!(ack[0].position, 2);
    assert!(ack[0].duplicate);
    assert_eq!(log.head_position(), 2);
    let mut changed = e.clone();
    changed.payload = vec![9];
    match log.append(AppendBatch::new(vec![changed])) {
        Err(LogError::IdConflict { position: 2, .. }) => {}
        other => panic!("expected an id conflict, got {other:?}"),
    }
    assert_eq!(log.head_position(), 2);
}

#[test]
fn a_version_conflict_names_the_stream_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    log.append(AppendBatch::new(vec![event("a", 1)])).unwrap();
    let err = log
        .append(
            AppendBatch::new(vec![event("b", 2), event("a", 3)])
                .expecting("b", ExpectedVersion::NoStream)
                .expecting("a", ExpectedVersion::Exact(5)),
        )
        .unwrap_err();
    match &err {
        LogError::VersionConflict {
            stream,
            expected: ExpectedVersion::Exact(5),
            actual: 1,
        } if stream == "a" => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("\"a\""));
    assert_eq!(log.head_position(), 1);
    assert!(log.read_stream("b", 1, 10).unwrap().is_empty());
}

/// sled 0.34 can refuse a store after a kill because of its snapshot file (seen once in the
/// kill -9 test: "Read corrupted data", sled issues #1527 and #1533). The snapshot is derived
/// from sled's log: the open moves it aside (kept), sled rebuilds it, every event is there,
/// and the open says so.
#[test]
fn a_store_whose_sled_snapshot_is_unreadable_opens_with_it_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
        let batch: Vec<NewEvent> = (0..200).map(|n| event("s", n)).collect();
        log.append(AppendBatch::new(batch)).unwrap();
    }
    // A snapshot newer than any sled wrote, that fails its checksum.
    let bogus = dir.path().join("snap.FFFFFFFFFFFFFFF0");
    std::fs::write(&bogus, vec![0xAB; 64]).unwrap();
    let log = Log::open(dir.path(), OpenOptions::existing())
        .expect("the store opens with the snapshot set aside");
    let warnings = log.open_report().warnings.clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("snapshot files were moved to") && w.contains("carelog verify")),
        "{warnings:?}"
    );
    assert!(!bogus.exists(), "the bad snapshot was moved");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("sled-snapshots.set-aside-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(
        aside[0].path().join("snap.FFFFFFFFFFFFFFF0").exists(),
        "kept"
    );
    assert_eq!(log.head_position(), 200);
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.events_checked, 200);
    // Appends go on.
    log.append(AppendBatch::new(vec![event("s", 200)])).unwrap();
    assert_eq!(log.head_position(), 201);
}
