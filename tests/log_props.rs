//! A model-based property test of the log: random sequences of appends (with expectations,
//! resent or reused event ids and kept recording times) and restarts, each checked against an
//! in-memory model of what the log must hold and answer.

use std::collections::HashMap;

use carelog::codec::StoredTime;
use carelog::log::{
    Ack, AppendBatch, ExpectedVersion, Log, LogError, NewEvent, OpenOptions, RecordedEvent,
};
use carelog::time::{Instant, parse_instant, to_stored};
use proptest::prelude::*;
use uuid::Uuid;

const STREAMS: [&str; 4] = ["pair-1", "pair-2", "school/3", "家访-4"];

/// How an expectation is chosen, turned into a concrete [`ExpectedVersion`] against the model.
#[derive(Debug, Clone)]
enum ExpKind {
    Any,
    NoStream,
    ExactCorrect,
    /// A wrong exact version: the correct one shifted by 1..=3 (up or down when possible).
    ExactWrong {
        shift: u8,
        down: bool,
    },
}

/// One event of a generated batch.
#[derive(Debug, Clone)]
enum EvSpec {
    New {
        stream: usize,
        payload: Vec<u8>,
        offset_hours: i8,
        /// Which recording time to keep, if any (see [`kept_time`]).
        kept: u8,
    },
    /// Reuses the id of an event generated earlier (appended or rejected): with the very same
    /// content (a resend; now and then with another kept recording time, which is not content),
    /// or with one field of content changed (`change` picks which).
    Reuse { pick: u16, same: bool, change: u8 },
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        events: Vec<EvSpec>,
        expectations: Vec<(usize, ExpKind)>,
    },
    /// Resends a whole batch appended earlier (written or rejected), with its expectations.
    Resend {
        pick: u16,
    },
    Restart,
}

fn exp_kind() -> impl Strategy<Value = ExpKind> {
    prop_oneof![
        2 => Just(ExpKind::Any),
        2 => Just(ExpKind::NoStream),
        4 => Just(ExpKind::ExactCorrect),
        2 => (1u8..=3, any::<bool>()).prop_map(|(shift, down)| ExpKind::ExactWrong { shift, down }),
    ]
}

fn ev_spec(streams: Vec<usize>) -> impl Strategy<Value = EvSpec> {
    let new = (
        proptest::sample::select(streams),
        proptest::collection::vec(any::<u8>(), 0..12),
        -12i8..=14,
        any::<u8>(),
    )
        .prop_map(|(stream, payload, offset_hours, kept)| EvSpec::New {
            stream,
            payload,
            offset_hours,
            kept,
        });
    let reuse = (any::<u16>(), any::<bool>(), any::<u8>())
        .prop_map(|(pick, same, change)| EvSpec::Reuse { pick, same, change });
    prop_oneof![6 => new, 2 => reuse]
}

fn append_op() -> impl Strategy<Value = Op> {
    // 1 to 3 distinct streams out of the small set, then 1..=5 events over them.
    proptest::sample::subsequence((0..STREAMS.len()).collect::<Vec<_>>(), 1..=3)
        .prop_flat_map(|streams| {
            (
                proptest::collection::vec(ev_spec(streams.clone()), 1..=5),
                proptest::collection::vec((proptest::sample::select(streams), exp_kind()), 0..=3),
            )
        })
        .prop_map(|(events, expectations)| Op::Append {
            events,
            expectations,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        9 => append_op(),
        2 => any::<u16>().prop_map(|pick| Op::Resend { pick }),
        1 => Just(Op::Restart),
    ]
}

/// The content of an event as the log compares it (the offset of `occurred_at` included).
type Content = (
    String,
    String,
    u16,
    StoredTime,
    String,
    Option<Uuid>,
    Option<Uuid>,
    Vec<u8>,
);

fn content(e: &NewEvent) -> Content {
    (
        e.stream.clone(),
        e.event_type.clone(),
        e.schema_version,
        to_stored(&e.occurred_at),
        e.recorded_by.clone(),
        e.correlation_id,
        e.causation_id,
        e.payload.clone(),
    )
}

fn base_time() -> Instant {
    parse_instant("2023-05-01T09:30:00+08:00").unwrap()
}

fn with_offset(at: Instant, hours: i32) -> Instant {
    at.with_timezone(&chrono::FixedOffset::east_opt(hours * 3600).unwrap())
}

/// A recording time to keep: none (the writer's clock) for most events; else the time now
/// (valid unless an event recorded later comes first), a past time (valid only as the very first
/// or after itself), or a future time (never valid).
fn kept_time(kept: u8) -> Option<Instant> {
    match kept % KEPT_CHOICES {
        KEPT_NOW => Some(with_offset(chrono::Utc::now().fixed_offset(), 8)),
        KEPT_PAST => Some(past_time()),
        KEPT_FUTURE => Some(chrono::Utc::now().fixed_offset() + chrono::Duration::days(1)),
        _ => None,
    }
}

/// `kept % KEPT_CHOICES` picks: one of these three, or none (most events).
const KEPT_CHOICES: u8 = 24;
const KEPT_NOW: u8 = 21;
const KEPT_PAST: u8 = 22;
const KEPT_FUTURE: u8 = 23;

fn past_time() -> Instant {
    parse_instant("2020-01-01T00:00:00+08:00").unwrap()
}

/// The recording time of an event in the model.
#[derive(Debug, Clone, Copy)]
enum Recorded {
    /// Kept as given.
    Kept(Instant),
    /// The writer's clock during op number `op`: between its start and end times.
    Now { op: usize },
}

/// One event the model holds, in position order.
#[derive(Debug, Clone)]
struct ModelEvent {
    event: NewEvent,
    stream_version: u64,
    recorded: Recorded,
}

/// What the log must be.
#[derive(Default)]
struct Model {
    events: Vec<ModelEvent>,
    versions: HashMap<String, u64>,
    positions: HashMap<Uuid, u64>,
    /// Every event ever generated, written or rejected: the pool reused ids come from.
    generated: Vec<NewEvent>,
    /// Every batch ever sent: the pool resends come from.
    batches: Vec<AppendBatch>,
    /// (start, end) wall-clock times of every op: the writer's clock read during op `i` lies
    /// between them.
    op_times: Vec<(Instant, Option<Instant>)>,
}

/// The outcome the model predicts for one batch.
#[derive(Debug)]
enum Expected {
    Ok(Vec<Ack>),
    EmptyBatch,
    DuplicateInBatch(Uuid),
    IdConflict(Uuid, u64),
    PartialDuplicate {
        already: usize,
        total: usize,
        event_id: Uuid,
        position: u64,
    },
    VersionConflict {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    /// A kept recording time in the future or before the previous event's.
    BadRecordedAt {
        index: usize,
    },
}

impl Model {
    /// Whether a kept time is in the future for op `op` (the writer's clock is read after the
    /// op's start). Times are either well in the future or not after the start.
    fn in_future(&self, asked: Instant, op: usize) -> bool {
        let start = self.op_times[op].0;
        if asked <= start {
            return false;
        }
        assert!(
            asked > start + chrono::Duration::hours(1),
            "ambiguous model: {asked}"
        );
        true
    }

    /// Whether a kept time is before a previous recording time, during op `op`.
    fn before(&self, asked: Instant, previous: Recorded, op: usize) -> bool {
        match previous {
            Recorded::Kept(t) => asked < t,
            Recorded::Now { op: k } => {
                let (start, end) = self.op_times[k];
                if asked < start {
                    return true;
                }
                assert!(k != op, "ambiguous model: {asked} during its own op");
                let end = end.expect("a finished op");
                assert!(asked >= end, "ambiguous model: {asked} in op {k}");
                false
            }
        }
    }

    fn last_recorded(&self) -> Option<Recorded> {
        self.events.last().map(|e| e.recorded)
    }

    fn version(&self, stream: &str) -> u64 {
        self.versions.get(stream).copied().unwrap_or(0)
    }

    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    /// Turns a generated batch into a concrete one against the current model.
    fn concretize(
        &mut self,
        events: &[EvSpec],
        expectations: &[(usize, ExpKind)],
        serial: &mut u32,
    ) -> AppendBatch {
        let mut out = Vec::new();
        for spec in events {
            let e = match spec {
                EvSpec::Reuse { pick, same, change } if !self.generated.is_empty() => {
                    let mut original =
                        self.generated[usize::from(*pick) % self.generated.len()].clone();
                    if *same {
                        if change % 5 == 0 {
                            // Another kept recording time: not content, still the same event.
                            original.recorded_at = match original.recorded_at {
                                None => kept_time(KEPT_NOW + change % 3),
                                Some(_) => None,
                            };
                        }
                        original
                    } else {
                        changed(&original, *change)
                    }
                }
                EvSpec::Reuse { change, .. } => {
                    *serial += 1;
                    new_event(
                        usize::from(*change) % STREAMS.len(),
                        vec![*change],
                        8,
                        *serial,
                        None,
                    )
                }
                EvSpec::New {
                    stream,
                    payload,
                    offset_hours,
                    kept,
                } => {
                    *serial += 1;
                    new_event(
                        *stream,
                        payload.clone(),
                        i32::from(*offset_hours),
                        *serial,
                        kept_time(*kept),
                    )
                }
            };
            out.push(e);
        }
        for e in &out {
            if !self.generated.iter().any(|g| g.event_id == e.event_id) {
                self.generated.push(e.clone());
            }
        }
        let mut batch = AppendBatch::new(out);
        for (stream, kind) in expectations {
            let name = STREAMS[*stream];
            let current = self.version(name);
            let expected = match kind {
                ExpKind::Any => ExpectedVersion::Any,
                ExpKind::NoStream => ExpectedVersion::NoStream,
                ExpKind::ExactCorrect => ExpectedVersion::Exact(current),
                ExpKind::ExactWrong { shift, down } => {
                    let shift = u64::from(*shift);
                    if *down && current >= shift {
                        ExpectedVersion::Exact(current - shift)
                    } else {
                        ExpectedVersion::Exact(current + shift)
                    }
                }
            };
            batch = batch.expecting(name, expected);
        }
        batch
    }

    /// What the log must answer for `batch` in op `op`; applies it to the model when it is
    /// written.
    fn apply(&mut self, batch: &AppendBatch, op: usize) -> Expected {
        if batch.events.is_empty() {
            return Expected::EmptyBatch;
        }
        let mut seen = std::collections::HashSet::new();
        for e in &batch.events {
            if !seen.insert(e.event_id) {
                return Expected::DuplicateInBatch(e.event_id);
            }
        }
        let mut duplicates = Vec::new();
        for e in &batch.events {
            if let Some(&position) = self.positions.get(&e.event_id) {
                let stored = &self.events[(position - 1) as usize];
                if content(&stored.event) != content(e) {
                    return Expected::IdConflict(e.event_id, position);
                }
                duplicates.push(Ack {
                    event_id: e.event_id,
                    position,
                    stream_version: stored.stream_version,
                    duplicate: true,
                });
            }
        }
        if !duplicates.is_empty() {
            if duplicates.len() == batch.events.len() {
                return Expected::Ok(duplicates);
            }
            return Expected::PartialDuplicate {
                already: duplicates.len(),
                total: batch.events.len(),
                event_id: duplicates[0].event_id,
                position: duplicates[0].position,
            };
        }
        for (stream, expected) in &batch.expectations {
            let actual = self.version(stream);
            let holds = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => actual == 0,
                ExpectedVersion::Exact(v) => *v == actual,
            };
            if !holds {
                return Expected::VersionConflict {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                };
            }
        }
        // Kept recording times: never in the future, never before the previous event's (the
        // previous event of the log, or of this batch).
        let mut last = self.last_recorded();
        let mut recorded = Vec::new();
        for (index, e) in batch.events.iter().enumerate() {
            let r = match e.recorded_at {
                None => Recorded::Now { op },
                Some(asked) => {
                    if self.in_future(asked, op)
                        || last.is_some_and(|previous| self.before(asked, previous, op))
                    {
                        return Expected::BadRecordedAt { index };
                    }
                    Recorded::Kept(asked)
                }
            };
            last = Some(r);
            recorded.push(r);
        }
        let mut acks = Vec::new();
        for (e, recorded) in batch.events.iter().zip(recorded) {
            let version = self.version(&e.stream) + 1;
            self.versions.insert(e.stream.clone(), version);
            self.events.push(ModelEvent {
                event: e.clone(),
                stream_version: version,
                recorded,
            });
            let position = self.head();
            self.positions.insert(e.event_id, position);
            acks.push(Ack {
                event_id: e.event_id,
                position,
                stream_version: version,
                duplicate: false,
            });
        }
        Expected::Ok(acks)
    }
}

fn new_event(
    stream: usize,
    payload: Vec<u8>,
    offset_hours: i32,
    serial: u32,
    recorded_at: Option<Instant>,
) -> NewEvent {
    let at = with_offset(base_time(), offset_hours) + chrono::Duration::seconds(i64::from(serial));
    let mut e = NewEvent::new(STREAMS[stream], "test.noted", 1, at, "tester", payload);
    e.recorded_at = recorded_at;
    if serial.is_multiple_of(3) {
        e.correlation_id = Some(Uuid::now_v7());
    }
    e
}

/// The same id with one field of content changed.
fn changed(original: &NewEvent, change: u8) -> NewEvent {
    let mut e = original.clone();
    match change % 6 {
        0 => e.payload.push(0xA5),
        1 => {
            let i = STREAMS.iter().position(|s| *s == e.stream).unwrap_or(0);
            e.stream = STREAMS[(i + 1) % STREAMS.len()].to_string();
        }
        2 => e.event_type = "test.changed".into(),
        3 => {
            // The same instant at another offset: still other content (the offset is kept).
            let hours = e.occurred_at.offset().local_minus_utc() / 3600;
            e.occurred_at = with_offset(e.occurred_at, if hours == 3 { 4 } else { 3 });
        }
        4 => e.recorded_by = "someone-else".into(),
        _ => e.schema_version += 1,
    }
    assert_ne!(content(&e), content(original));
    e
}

fn check_error(expected: &Expected, got: &LogError) {
    let ok = match (expected, got) {
        (Expected::EmptyBatch, LogError::InvalidEvent { index, field, .. }) => {
            *index == 0 && *field == "events"
        }
        (Expected::BadRecordedAt { index: i }, LogError::InvalidEvent { index, field, .. }) => {
            index == i && *field == "recordedat"
        }
        (Expected::DuplicateInBatch(id), LogError::DuplicateInBatch { event_id }) => id == event_id,
        (Expected::IdConflict(id, pos), LogError::IdConflict { event_id, position }) => {
            id == event_id && pos == position
        }
        (
            Expected::PartialDuplicate {
                already,
                total,
                event_id,
                position,
            },
            LogError::PartialDuplicate {
                already: a,
                total: t,
                event_id: id,
                position: p,
            },
        ) => already == a && total == t && event_id == id && position == p,
        (
            Expected::VersionConflict {
                stream,
                expected,
                actual,
            },
            LogError::VersionConflict {
                stream: s,
                expected: e,
                actual: a,
            },
        ) => stream == s && expected == e && actual == a,
        _ => false,
    };
    assert!(
        ok,
        "the model expected {expected:?}, the log answered Err({got:?})"
    );
}

/// The log's visible state equals the model's: head, stream versions, nothing past the head.
fn check_state(log: &Log, model: &Model) {
    assert_eq!(log.head_position(), model.head(), "head position");
    assert_eq!(log.digest().position, model.head(), "digest position");
    for s in STREAMS {
        assert_eq!(
            log.stream_version(s).unwrap(),
            model.version(s),
            "version of stream {s:?}"
        );
    }
    assert!(
        log.read_from(model.head() + 1, 10).unwrap().is_empty(),
        "events past the head"
    );
    assert_eq!(log.event_at(model.head() + 1).unwrap(), None);
}

fn check_recorded(got: &RecordedEvent, want: &ModelEvent, position: u64, model: &Model) {
    match want.recorded {
        Recorded::Kept(t) => assert_eq!(
            to_stored(&got.recorded_at),
            to_stored(&t),
            "kept recording time at position {position}"
        ),
        Recorded::Now { op } => {
            let (start, end) = model.op_times[op];
            assert!(
                start <= got.recorded_at && got.recorded_at <= end.unwrap(),
                "recording time {} at position {position} outside op {op}'s {start}..{end:?}",
                got.recorded_at
            );
        }
    }
    assert_eq!(got.position, position);
    assert_eq!(
        got.event_id, want.event.event_id,
        "id at position {position}"
    );
    assert_eq!(
        got.stream, want.event.stream,
        "stream at position {position}"
    );
    assert_eq!(
        got.stream_version, want.stream_version,
        "version at position {position}"
    );
    assert_eq!(got.event_type, want.event.event_type);
    assert_eq!(got.schema_version, want.event.schema_version);
    assert_eq!(
        to_stored(&got.occurred_at),
        to_stored(&want.event.occurred_at)
    );
    assert_eq!(got.recorded_by, want.event.recorded_by);
    assert_eq!(got.correlation_id, want.event.correlation_id);
    assert_eq!(got.causation_id, want.event.causation_id);
    assert_eq!(
        got.payload, want.event.payload,
        "payload at position {position}"
    );
}

/// Reopens a store just closed. sled 0.34.7 may hold its lock for some milliseconds after the
/// last handle in this process is dropped (background writes finish on their own threads), so
/// `Locked` is retried for a while; any other error fails.
fn reopen(dir: &std::path::Path) -> Log {
    let start = std::time::Instant::now();
    loop {
        match Log::open(dir, OpenOptions::existing()) {
            Ok(log) => return log,
            Err(LogError::Storage(carelog::log::StorageError::Locked { .. }))
                if start.elapsed() < std::time::Duration::from_secs(10) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("could not reopen {}: {e:?}", dir.display()),
        }
    }
}

/// Runs the ops against a fresh store and the model; returns how often each answer came.
fn run(ops: &[Op]) -> HashMap<&'static str, usize> {
    let mut tally: HashMap<&'static str, usize> = HashMap::new();
    let dir = tempfile::tempdir().unwrap();
    let mut log = Some(Log::open(dir.path(), OpenOptions::default()).unwrap());
    let mut model = Model::default();
    let mut serial = 0u32;
    for op in ops {
        match op {
            Op::Restart => {
                *tally.entry("restart").or_default() += 1;
                drop(log.take());
                log = Some(reopen(dir.path()));
            }
            Op::Append { .. } | Op::Resend { .. } => {
                let log = log.as_ref().unwrap();
                let batch = match op {
                    Op::Append {
                        events,
                        expectations,
                    } => model.concretize(events, expectations, &mut serial),
                    Op::Resend { pick } if !model.batches.is_empty() => {
                        model.batches[usize::from(*pick) % model.batches.len()].clone()
                    }
                    // Nothing to resend yet: an empty batch, which must be refused.
                    _ => AppendBatch::new(Vec::new()),
                };
                model.batches.push(batch.clone());
                let head_before = model.head();
                let op_index = model.op_times.len();
                model
                    .op_times
                    .push((chrono::Utc::now().fixed_offset(), None));
                let expected = model.apply(&batch, op_index);
                let got = log.append(batch.clone());
                model.op_times[op_index].1 = Some(chrono::Utc::now().fixed_offset());
                *tally.entry(answer_name(&expected)).or_default() += 1;
                match (&expected, got) {
                    (Expected::Ok(want), Ok(acks)) => assert_eq!(&acks, want, "acks of {batch:?}"),
                    (Expected::Ok(want), Err(e)) => {
                        panic!("the model expected Ok({want:?}), the log answered Err({e:?})")
                    }
                    (_, Ok(acks)) => {
                        panic!("the model expected {expected:?}, the log answered Ok({acks:?})")
                    }
                    (_, Err(e)) => {
                        check_error(&expected, &e);
                        // Nothing of a rejected batch was written.
                        assert_eq!(model.head(), head_before);
                        for ev in &batch.events {
                            assert_eq!(
                                log.position_of(ev.event_id).unwrap(),
                                model.positions.get(&ev.event_id).copied(),
                                "index entry of {} after a rejected batch",
                                ev.event_id
                            );
                        }
                    }
                }
            }
        }
        check_state(log.as_ref().unwrap(), &model);
    }

    let log = log.unwrap();
    let all = log.read_from(1, usize::MAX).unwrap();
    assert_eq!(all.len(), model.events.len(), "read_from(1) length");
    for (i, (got, want)) in all.iter().zip(&model.events).enumerate() {
        check_recorded(got, want, i as u64 + 1, &model);
    }
    for pair in all.windows(2) {
        assert!(
            pair[0].recorded_at <= pair[1].recorded_at,
            "recorded_at went back"
        );
    }
    for s in STREAMS {
        let got = log.read_stream(s, 1, usize::MAX).unwrap();
        let want: Vec<(u64, &ModelEvent)> = model
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event.stream == s)
            .map(|(i, e)| (i as u64 + 1, e))
            .collect();
        assert_eq!(got.len(), want.len(), "read_stream({s:?}) length");
        for (g, (position, w)) in got.iter().zip(&want) {
            check_recorded(g, w, *position, &model);
        }
    }
    for (id, position) in &model.positions {
        assert_eq!(log.position_of(*id).unwrap(), Some(*position));
    }
    let report = log.verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.events_checked, model.head());
    assert_eq!(report.head, log.digest());
    tally
}

fn answer_name(expected: &Expected) -> &'static str {
    match expected {
        Expected::Ok(acks) if acks.iter().all(|a| a.duplicate) => "resend",
        Expected::Ok(_) => "written",
        Expected::EmptyBatch => "empty_batch",
        Expected::DuplicateInBatch(_) => "duplicate_in_batch",
        Expected::IdConflict(..) => "id_conflict",
        Expected::PartialDuplicate { .. } => "partial_duplicate",
        Expected::VersionConflict { .. } => "version_conflict",
        Expected::BadRecordedAt { .. } => "bad_recorded_at",
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_log_agrees_with_its_model(ops in proptest::collection::vec(op(), 1..=30)) {
        run(&ops);
    }
}

/// A fixed sequence through every answer of the model (and a reuse of a rejected batch's id),
/// so each kind of answer is checked even if the random cases happen to miss one.
#[test]
fn the_model_covers_every_answer() {
    // An empty store answers a resend of nothing (an empty batch) with an error.
    let tally = run(&[Op::Resend { pick: 0 }]);
    assert_eq!(tally.get("empty_batch"), Some(&1));
    let new = |stream, payload: u8| EvSpec::New {
        stream,
        payload: vec![payload],
        offset_hours: 8,
        kept: 0,
    };
    let kept = |stream, payload: u8, kept| EvSpec::New {
        stream,
        payload: vec![payload],
        offset_hours: 8,
        kept,
    };
    let reuse = |pick: u16, same, change| EvSpec::Reuse { pick, same, change };
    let append = |events, expectations| Op::Append {
        events,
        expectations,
    };
    let wrong = ExpKind::ExactWrong {
        shift: 1,
        down: false,
    };
    // The pool of generated events grows: 0 and 1 (written), 2 (rejected), 3 (rejected).
    let ops = vec![
        append(
            vec![new(0, 1), new(1, 2)],
            vec![(0, ExpKind::NoStream), (1, ExpKind::ExactCorrect)],
        ),
        append(vec![new(0, 3)], vec![(0, wrong)]),
        Op::Restart,
        // The rejected event's id is free: written now at position 3.
        append(vec![reuse(2, true, 0)], vec![(0, ExpKind::ExactCorrect)]),
        // A resend is answered with its position whatever the (now false) expectation says.
        append(vec![reuse(0, true, 0)], vec![(0, ExpKind::NoStream)]),
        append(vec![reuse(1, false, 0)], vec![]),
        append(vec![reuse(1, false, 3)], vec![]),
        append(vec![reuse(0, true, 0), new(2, 9)], vec![]),
        append(vec![reuse(3, true, 0), reuse(3, true, 0)], vec![]),
        append(vec![new(1, 11)], vec![(1, ExpKind::NoStream)]),
        Op::Restart,
        append(
            vec![reuse(0, true, 0), reuse(2, true, 0)],
            vec![(2, ExpKind::ExactCorrect)],
        ),
        append(
            vec![new(2, 12), new(0, 13), new(2, 14)],
            vec![(2, ExpKind::NoStream)],
        ),
        // Resends of whole batches: the first (written), and the second, rejected then but its
        // event written since by the fourth op: both answered as resends.
        Op::Resend { pick: 0 },
        Op::Resend { pick: 1 },
        // Kept recording times: refused half way through a batch (a past time after events
        // recorded now; a future time), so the events laid out before must leave no trace...
        append(vec![new(1, 20), kept(1, 21, KEPT_PAST)], vec![]),
        append(
            vec![new(3, 22), new(3, 23), kept(2, 24, KEPT_FUTURE)],
            vec![(3, ExpKind::NoStream)],
        ),
        // ... and a time kept from now, after the log's last event, is kept as given.
        append(
            vec![kept(3, 25, KEPT_NOW), kept(3, 26, KEPT_NOW), new(3, 27)],
            vec![(3, ExpKind::NoStream)],
        ),
        // A resend with another kept time (here in the future: 35 % 3 == 2) is still the same
        // event.
        append(vec![reuse(0, true, 35)], vec![]),
    ];
    let tally = run(&ops);
    // On an empty store a past kept time is fine (nothing was recorded before), however late a
    // refused batch laid out its events before failing; and a kept time equal to the previous
    // event's is fine too.
    let tally_empty = run(&[
        append(vec![new(0, 1), kept(0, 2, KEPT_FUTURE)], vec![]),
        append(vec![kept(0, 3, KEPT_PAST), kept(1, 4, KEPT_PAST)], vec![]),
        append(vec![kept(0, 5, KEPT_PAST), new(1, 6)], vec![]),
    ]);
    assert_eq!(
        tally_empty.get("bad_recorded_at"),
        Some(&1),
        "{tally_empty:?}"
    );
    assert_eq!(tally_empty.get("written"), Some(&2), "{tally_empty:?}");
    for answer in [
        "written",
        "resend",
        "duplicate_in_batch",
        "id_conflict",
        "partial_duplicate",
        "version_conflict",
        "bad_recorded_at",
        "restart",
    ] {
        assert!(
            tally.get(answer).copied().unwrap_or(0) > 0,
            "{answer} never happened: {tally:?}"
        );
    }
    assert_eq!(tally["written"], 4, "{tally:?}");
    assert_eq!(tally["resend"], 5, "{tally:?}");
    assert_eq!(tally["bad_recorded_at"], 2, "{tally:?}");
    assert_eq!(tally["id_conflict"], 2, "{tally:?}");
    assert_eq!(tally["version_conflict"], 2, "{tally:?}");
}
