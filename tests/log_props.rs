//! A model-based property test of the log: random sequences of appends (with expectations and
//! resent or reused event ids) and restarts, each checked against an in-memory model of what the
//! log must hold and answer.

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
    },
    /// Reuses the id of an event generated earlier (appended or rejected): with the very same
    /// content (a resend), or with one field changed (`change` picks which).
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
    )
        .prop_map(|(stream, payload, offset_hours)| EvSpec::New {
            stream,
            payload,
            offset_hours,
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

/// One event the model holds, in position order.
#[derive(Debug, Clone)]
struct ModelEvent {
    event: NewEvent,
    stream_version: u64,
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
}

impl Model {
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
                    let original =
                        self.generated[usize::from(*pick) % self.generated.len()].clone();
                    if *same {
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
                    )
                }
                EvSpec::New {
                    stream,
                    payload,
                    offset_hours,
                } => {
                    *serial += 1;
                    new_event(*stream, payload.clone(), i32::from(*offset_hours), *serial)
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
            batch = batch.expect(name, expected);
        }
        batch
    }

    /// What the log must answer for `batch`; applies it to the model when it is written.
    fn apply(&mut self, batch: &AppendBatch) -> Expected {
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
        let mut acks = Vec::new();
        for e in &batch.events {
            let version = self.version(&e.stream) + 1;
            self.versions.insert(e.stream.clone(), version);
            self.events.push(ModelEvent {
                event: e.clone(),
                stream_version: version,
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

fn new_event(stream: usize, payload: Vec<u8>, offset_hours: i32, serial: u32) -> NewEvent {
    let at = with_offset(base_time(), offset_hours) + chrono::Duration::seconds(i64::from(serial));
    let mut e = NewEvent::new(STREAMS[stream], "test.noted", 1, at, "tester", payload);
    if serial % 3 == 0 {
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

fn check_recorded(got: &RecordedEvent, want: &ModelEvent, position: u64) {
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
                log = Some(Log::open(dir.path(), OpenOptions::existing()).unwrap());
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
                let expected = model.apply(&batch);
                let got = log.append(batch.clone());
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
        check_recorded(got, want, i as u64 + 1);
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
            check_recorded(g, w, *position);
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
    ];
    let tally = run(&ops);
    for answer in [
        "written",
        "resend",
        "duplicate_in_batch",
        "id_conflict",
        "partial_duplicate",
        "version_conflict",
        "restart",
    ] {
        assert!(
            tally.get(answer).copied().unwrap_or(0) > 0,
            "{answer} never happened: {tally:?}"
        );
    }
    assert_eq!(tally["written"], 3, "{tally:?}");
    assert_eq!(tally["resend"], 4, "{tally:?}");
    assert_eq!(tally["id_conflict"], 2, "{tally:?}");
    assert_eq!(tally["version_conflict"], 2, "{tally:?}");
}
