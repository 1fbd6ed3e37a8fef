//! Concurrent appenders: optimistic concurrency on one stream (read the version, append with
//! `Exact`, retry on conflict) must give every version to exactly one event; many appenders on
//! their own streams must get distinct dense positions and share commits (group commit).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Barrier};

use carelog::log::{AppendBatch, ExpectedVersion, Log, LogError, NewEvent, OpenOptions};
use carelog::time::parse_instant;
use uuid::Uuid;

fn event(stream: &str, payload: Vec<u8>) -> NewEvent {
    NewEvent::new(
        stream,
        "test.concurrent",
        1,
        parse_instant("2023-05-01T09:30:00+08:00").unwrap(),
        "tester",
        payload,
    )
}

fn payload(thread: u32, seq: u32) -> Vec<u8> {
    [thread.to_be_bytes(), seq.to_be_bytes()].concat()
}

fn parse_payload(p: &[u8]) -> (u32, u32) {
    assert_eq!(p.len(), 8, "payload {p:?}");
    (
        u32::from_be_bytes(p[..4].try_into().unwrap()),
        u32::from_be_bytes(p[4..].try_into().unwrap()),
    )
}

/// Every event of the log, checking that positions are dense from 1.
fn read_all(log: &Log) -> Vec<carelog::log::RecordedEvent> {
    let all = log.read_from(1, usize::MAX).unwrap();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "positions are dense");
    }
    assert_eq!(all.len() as u64, log.head_position());
    all
}

#[test]
fn exact_version_appends_to_one_stream_give_each_version_to_one_event() {
    const THREADS: u32 = 16;
    const PER_THREAD: u32 = 40;
    const STREAM: &str = "contended";
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut conflicts = 0u64;
                // (version, position, event id) of each event this thread wrote.
                let mut written = Vec::new();
                let mut version = log.stream_version(STREAM).unwrap();
                for seq in 0..PER_THREAD {
                    let e = event(STREAM, payload(t, seq));
                    loop {
                        let batch = AppendBatch::new(vec![e.clone()])
                            .expecting(STREAM, ExpectedVersion::Exact(version));
                        match log.append(batch) {
                            Ok(acks) => {
                                assert_eq!(acks.len(), 1);
                                let a = acks[0];
                                assert!(!a.duplicate);
                                assert_eq!(a.event_id, e.event_id);
                                assert_eq!(
                                    a.stream_version,
                                    version + 1,
                                    "the expected version held"
                                );
                                written.push((a.stream_version, a.position, a.event_id));
                                version = a.stream_version;
                                break;
                            }
                            Err(LogError::VersionConflict {
                                stream,
                                expected,
                                actual,
                            }) => {
                                assert_eq!(stream, STREAM);
                                assert_eq!(expected, ExpectedVersion::Exact(version));
                                assert!(actual > version, "a stream's version only grows");
                                conflicts += 1;
                                // Re-read, as a client would. (`actual` may count a batch of
                                // the same commit that is not durable yet, so the version read
                                // may still be below it: the next try then conflicts again.)
                                version = log.stream_version(STREAM).unwrap();
                            }
                            Err(e) => panic!("thread {t}: {e:?}"),
                        }
                    }
                }
                (conflicts, written)
            })
        })
        .collect();

    let mut conflicts = 0;
    let mut by_version: HashMap<u64, (u32, u64, Uuid)> = HashMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        let (c, written) = h.join().unwrap();
        conflicts += c;
        assert_eq!(written.len(), PER_THREAD as usize);
        for (version, position, id) in written {
            let previous = by_version.insert(version, (t as u32, position, id));
            assert!(previous.is_none(), "version {version} acknowledged twice");
        }
    }
    let total = u64::from(THREADS * PER_THREAD);
    assert_eq!(
        by_version.keys().copied().collect::<BTreeSet<_>>(),
        (1..=total).collect::<BTreeSet<_>>(),
        "acknowledged versions are exactly 1..={total}"
    );
    assert!(
        conflicts > 0,
        "no version conflict happened: the test did not contend"
    );

    // What the log holds agrees with every acknowledgement.
    assert_eq!(log.head_position(), total);
    assert_eq!(log.stream_version(STREAM).unwrap(), total);
    let all = read_all(&log);
    let stream = log.read_stream(STREAM, 1, usize::MAX).unwrap();
    assert_eq!(stream.len() as u64, total);
    let mut seen = BTreeSet::new();
    for (i, e) in stream.iter().enumerate() {
        let version = i as u64 + 1;
        assert_eq!(e.stream_version, version, "stream versions are dense");
        let (t, position, id) = by_version[&version];
        assert_eq!(
            (e.position, e.event_id),
            (position, id),
            "version {version}"
        );
        let (pt, seq) = parse_payload(&e.payload);
        assert_eq!(pt, t, "version {version} holds another thread's event");
        assert!(seen.insert((pt, seq)), "event {pt}/{seq} stored twice");
        assert_eq!(all[(e.position - 1) as usize].event_id, e.event_id);
    }
    let expected: BTreeSet<(u32, u32)> = (0..THREADS)
        .flat_map(|t| (0..PER_THREAD).map(move |s| (t, s)))
        .collect();
    assert_eq!(seen, expected, "every event written once, none lost");
    // Each thread's events are in its own order.
    for t in 0..THREADS {
        let seqs: Vec<u32> = stream
            .iter()
            .map(|e| parse_payload(&e.payload))
            .filter(|(pt, _)| *pt == t)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(seqs, (0..PER_THREAD).collect::<Vec<_>>());
    }
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
}

#[test]
fn many_appenders_get_dense_distinct_positions_in_shared_commits() {
    const THREADS: u32 = 64;
    const PER_THREAD: u32 = 20;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let stream = format!("own-{t}");
                barrier.wait();
                let mut acks = Vec::new();
                for seq in 0..PER_THREAD {
                    let e = event(&stream, payload(t, seq));
                    let expected = if seq == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(u64::from(seq))
                    };
                    let a = log
                        .append(AppendBatch::new(vec![e.clone()]).expecting(&stream, expected))
                        .unwrap_or_else(|err| panic!("thread {t}: {err:?}"))[0];
                    assert_eq!(a.event_id, e.event_id);
                    assert_eq!(a.stream_version, u64::from(seq) + 1);
                    assert!(!a.duplicate);
                    acks.push(a);
                }
                acks
            })
        })
        .collect();
    let mut positions: HashMap<u64, Uuid> = HashMap::new();
    for h in handles {
        let acks = h.join().unwrap();
        // One thread's appends are acknowledged in order, so their positions grow.
        assert!(acks.windows(2).all(|w| w[0].position < w[1].position));
        for a in acks {
            assert!(
                positions.insert(a.position, a.event_id).is_none(),
                "position {} given twice",
                a.position
            );
        }
    }
    let total = u64::from(THREADS * PER_THREAD);
    assert_eq!(positions.len() as u64, total);
    assert_eq!(
        positions.keys().copied().collect::<BTreeSet<_>>(),
        (1..=total).collect::<BTreeSet<_>>()
    );
    let all = read_all(&log);
    for e in &all {
        assert_eq!(positions[&e.position], e.event_id);
        let (t, seq) = parse_payload(&e.payload);
        assert_eq!(e.stream, format!("own-{t}"));
        assert_eq!(e.stream_version, u64::from(seq) + 1);
    }
    let stats = log.writer_stats();
    assert_eq!(stats.events_written, total);
    assert_eq!(stats.batches, total);
    assert!(
        stats.commits < stats.events_written,
        "the writer did not group concurrent appends: {stats:?}"
    );
    assert!(stats.commits > 0);
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
}

/// Readers see only durable events (the log's contract): a stream version that
/// `stream_version` reports must be readable right after through `read_stream`, which serves only
/// events up to the durable head. Readers race appenders here, so any window in which
/// `stream_version` counts an event that is not durable yet shows up.
#[test]
fn stream_version_never_runs_ahead_of_the_durable_head() {
    const APPENDERS: u32 = 4;
    const PER_THREAD: u32 = 150;
    const STREAM: &str = "watched";
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for seq in 0..PER_THREAD {
                    log.append(AppendBatch::new(vec![event(STREAM, payload(t, seq))]))
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut reads, mut ahead) = (0u64, Vec::new());
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let version = log.stream_version(STREAM).unwrap();
                    if version == 0 {
                        continue;
                    }
                    reads += 1;
                    // Everything durable stays readable, so an event missing here was not
                    // durable when its version was reported.
                    let read = log.read_stream(STREAM, version, 1).unwrap();
                    if read.is_empty() {
                        ahead.push((version, log.head_position()));
                    } else {
                        assert_eq!(read[0].stream_version, version);
                    }
                }
                (reads, ahead)
            })
        })
        .collect();
    for a in appenders {
        a.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    let mut ahead = Vec::new();
    for r in readers {
        let (n, a) = r.join().unwrap();
        reads += n;
        ahead.extend(a);
    }
    assert!(reads > 0);
    assert_eq!(
        log.stream_version(STREAM).unwrap(),
        u64::from(APPENDERS * PER_THREAD)
    );
    assert!(
        ahead.is_empty(),
        "{} of {reads} reads of stream_version reported a version not yet durable \
         (not readable through read_stream right after); first (version, head): {:?}",
        ahead.len(),
        &ahead[..ahead.len().min(5)]
    );
}

/// The same batch sent by many threads at once (a client retrying on several connections) is
/// written once: one sender gets fresh acks, every other one the same positions as duplicates,
/// whether its copy met the first in the same commit or came after it.
#[test]
fn concurrent_resends_of_one_batch_are_written_once() {
    const SENDERS: usize = 16;
    const ROUNDS: u64 = 20;
    const EVENTS: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    for round in 0..ROUNDS {
        let batch = AppendBatch::new(
            (0..EVENTS)
                .map(|i| {
                    event(
                        &format!("resent-{}", i % 2),
                        payload(round as u32, i as u32),
                    )
                })
                .collect(),
        );
        let barrier = Arc::new(Barrier::new(SENDERS));
        let handles: Vec<_> = (0..SENDERS)
            .map(|_| {
                let log = log.clone();
                let batch = batch.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    log.append(batch).unwrap()
                })
            })
            .collect();
        let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let fresh: Vec<_> = answers
            .iter()
            .filter(|a| a.iter().all(|x| !x.duplicate))
            .collect();
        assert_eq!(fresh.len(), 1, "round {round}: {answers:?}");
        let first = fresh[0];
        let positions: Vec<u64> = (round * EVENTS + 1..=(round + 1) * EVENTS).collect();
        assert_eq!(
            first.iter().map(|a| a.position).collect::<Vec<_>>(),
            positions
        );
        for answer in &answers {
            assert_eq!(answer.len(), EVENTS as usize);
            for (a, f) in answer.iter().zip(first.iter()) {
                assert_eq!(
                    (a.event_id, a.position, a.stream_version),
                    (f.event_id, f.position, f.stream_version),
                    "round {round}"
                );
            }
            assert!(answer.iter().all(|a| a.duplicate) || std::ptr::eq(answer, first));
        }
        assert_eq!(log.head_position(), (round + 1) * EVENTS);
    }
    let all = read_all(&log);
    assert_eq!(all.len() as u64, ROUNDS * EVENTS);
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
}

/// Readers see only durable events: whatever `position_of`, `read_stream`, `read_from` and
/// `event_at` return while appenders run lies at or below the durable head read right after
/// (the head never goes back, so anything above it was not durable when it was returned).
#[test]
fn readers_never_see_past_the_durable_head() {
    const APPENDERS: u32 = 4;
    const PER_THREAD: u32 = 150;
    const STREAM: &str = "read-while-written";
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Ids about to be appended, so readers can look up events that may be in flight.
    let sent: Arc<std::sync::Mutex<Vec<Uuid>>> = Arc::default();
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|t| {
            let log = log.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                for seq in 0..PER_THREAD {
                    let e = event(STREAM, payload(t, seq));
                    sent.lock().unwrap().push(e.event_id);
                    log.append(AppendBatch::new(vec![e])).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            let done = done.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut found = 0u64;
                let mut version = 1;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let recent: Vec<Uuid> = {
                        let sent = sent.lock().unwrap();
                        sent[sent.len().saturating_sub(8)..].to_vec()
                    };
                    for id in recent {
                        let position = log.position_of(id).unwrap();
                        let head = log.head_position();
                        if let Some(p) = position {
                            found += 1;
                            assert!(
                                p <= head,
                                "position_of gave {p} above the durable head {head}"
                            );
                            assert_eq!(log.event_at(p).unwrap().unwrap().event_id, id);
                        }
                    }
                    let events = log.read_stream(STREAM, version, 50).unwrap();
                    let head = log.head_position();
                    for e in &events {
                        assert!(
                            e.position <= head,
                            "read_stream gave {} above {head}",
                            e.position
                        );
                    }
                    version = events.last().map_or(version, |e| e.stream_version);
                    let from = head.saturating_sub(3).max(1);
                    let events = log.read_from(from, 50).unwrap();
                    let head = log.head_position();
                    for e in &events {
                        assert!(
                            e.position <= head,
                            "read_from gave {} above {head}",
                            e.position
                        );
                    }
                    let beyond = log.event_at(head + 1).unwrap();
                    if let Some(e) = beyond {
                        assert!(
                            e.position <= log.head_position(),
                            "event_at beyond the head"
                        );
                    }
                }
                found
            })
        })
        .collect();
    for a in appenders {
        a.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let found: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(found > 0, "the readers never found an appended event");
    assert_eq!(log.head_position(), u64::from(APPENDERS * PER_THREAD));
}

/// Batches submitted back to back share commits. One refused half way (its third event keeps a
/// recording time before the log's last) must leave no trace in its commit: the batches around
/// it get dense positions and stream versions as if it had never been sent.
#[test]
fn a_batch_refused_half_way_leaves_no_trace_in_its_commit() {
    const ROUNDS: u64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), OpenOptions::default()).unwrap();
    log.append(AppendBatch::new(vec![event("start", Vec::new())]))
        .unwrap();
    let past = parse_instant("2020-01-01T00:00:00+08:00").unwrap();
    let mut refused_ids = Vec::new();
    for round in 0..ROUNDS {
        let r = round as u32;
        let a = AppendBatch::new(vec![event("s", payload(r, 0)), event("t", payload(r, 1))]);
        let mut late = event("s", payload(r, 4));
        late.recorded_at = Some(past);
        let b = AppendBatch::new(vec![
            event("s", payload(r, 2)),
            event("u", payload(r, 3)),
            late,
        ]);
        refused_ids.extend(b.events.iter().map(|e| e.event_id));
        let expected_u = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round)
        };
        let c = AppendBatch::new(vec![event("s", payload(r, 5)), event("u", payload(r, 6))])
            .expecting("s", ExpectedVersion::Exact(2 * round + 1))
            .expecting("u", expected_u);
        let (pa, pb, pc) = (
            log.submit(a).unwrap(),
            log.submit(b).unwrap(),
            log.submit(c).unwrap(),
        );
        let ra = pa.wait().unwrap();
        match pb.wait() {
            Err(LogError::InvalidEvent {
                index: 2,
                field: "recordedat",
                ..
            }) => {}
            other => panic!("round {round}: expected the refusal of b, got {other:?}"),
        }
        let rc = pc
            .wait()
            .unwrap_or_else(|e| panic!("round {round}: c after the refused b: {e:?}"));
        let first = 2 + round * 4;
        assert_eq!(
            ra.iter().chain(&rc).map(|a| a.position).collect::<Vec<_>>(),
            (first..first + 4).collect::<Vec<_>>(),
            "round {round}"
        );
        assert_eq!(
            (
                ra[0].stream_version,
                rc[0].stream_version,
                rc[1].stream_version
            ),
            (2 * round + 1, 2 * round + 2, round + 1),
            "round {round}"
        );
    }
    let stats = log.writer_stats();
    assert!(
        stats.commits < stats.batches,
        "no two batches ever shared a commit, so nothing was tested: {stats:?}"
    );
    assert_eq!(log.head_position(), 1 + ROUNDS * 4);
    for id in refused_ids {
        assert_eq!(log.position_of(id).unwrap(), None);
    }
    let all = read_all(&log);
    assert!(all.iter().all(|e| e.recorded_at > past));
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
}
