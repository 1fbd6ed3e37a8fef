//! The records after the log refuses batches it was handed: taken back out in place (the undo
//! journal, epoch by epoch), never rebuilt from the whole log, and never left holding an event
//! the log does not have. A real sled store behind a storage wrapper whose flush can be held
//! and made to fail (what a failing disk does), so several batches are folded and in flight
//! when the store fails. Also optimistic concurrency (`expectedversion`) through the library.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use carelog::app::{App, AppError, Keep, RecordsStats};
use carelog::codec::{StoreHeaderV1, StoredHeadV1};
use carelog::domain::cloudevent::{IncomingEvent, parse_value};
use carelog::log::sled::SledOptions;
use carelog::log::storage::{Commit, RawSegment};
use carelog::log::{DiscardedTail, Log, LogError, SledStorage, Storage, StorageError, WriteHealth};
use carelog::time::SystemClock;
use serde_json::{Value, json};
use uuid::Uuid;

/// What the next flush does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlushMode {
    Pass,
    /// Wait until released, then do what the release says.
    Hold,
    Fail,
    /// Fail as a full disk does (the writer may recover from it).
    DiskFull,
}

/// A sled store whose flush can be held and failed.
struct Faulty {
    inner: SledStorage,
    mode: Mutex<FlushMode>,
    changed: Condvar,
}

impl Faulty {
    fn set(&self, mode: FlushMode) {
        *self.mode.lock().unwrap() = mode;
        self.changed.notify_all();
    }
}

impl Storage for Faulty {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn header(&self) -> Result<StoreHeaderV1, StorageError> {
        self.inner.header()
    }
    fn head(&self) -> Result<Option<StoredHeadV1>, StorageError> {
        self.inner.head()
    }
    fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        self.inner.commit(commit)
    }
    fn set_aside_after(
        &self,
        head: Option<&StoredHeadV1>,
    ) -> Result<Option<DiscardedTail>, StorageError> {
        self.inner.set_aside_after(head)
    }
    fn flush(&self) -> Result<(), StorageError> {
        let mut mode = self.mode.lock().unwrap();
        while *mode == FlushMode::Hold {
            mode = self.changed.wait(mode).unwrap();
        }
        match *mode {
            FlushMode::Fail => Err(StorageError::Io {
                path: self.inner.path().to_path_buf(),
                detail: "injected: the disk failed the flush".into(),
            }),
            FlushMode::DiskFull => Err(StorageError::DiskFull {
                path: self.inner.path().to_path_buf(),
                detail: "injected: no space left on device".into(),
            }),
            _ => self.inner.flush(),
        }
    }
    fn segments_from(
        &self,
        from_position: u64,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        self.inner.segments_from(from_position)
    }
    fn index_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        self.inner.index_chunks()
    }
    fn tree_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StorageError> {
        self.inner.tree_hashes(indexes)
    }
    fn tree_stored_count(&self) -> Result<u64, StorageError> {
        self.inner.tree_stored_count()
    }
    fn tree_chunks(
        &self,
    ) -> Box<dyn Iterator<Item = Result<RawSegment, StorageError>> + Send + '_> {
        self.inner.tree_chunks()
    }
    fn write_tree_chunks(&self, chunks: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError> {
        self.inner.write_tree_chunks(chunks)
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.inner.size_on_disk()
    }
    fn recover(&self) -> Result<(), StorageError> {
        self.inner.recover()
    }
}

fn ev(event_type: &str, date: &str, data: Value) -> IncomingEvent {
    ev_expecting(event_type, date, data, None)
}

fn ev_expecting(
    event_type: &str,
    date: &str,
    data: Value,
    expected: Option<Value>,
) -> IncomingEvent {
    let mut v = json!({
        "specversion": "1.0",
        "id": Uuid::now_v7().to_string(),
        "source": "/tests/app_undo",
        "type": format!("carelog.{event_type}"),
        "time": format!("{date}T10:00:00+08:00"),
        "data": data,
    });
    if let Some(expected) = expected {
        v["expectedversion"] = expected;
    }
    parse_value(v).unwrap()
}

struct Store {
    _dir: tempfile::TempDir,
    storage: Arc<Faulty>,
    app: App,
    cadre: Uuid,
    person: Uuid,
    other: Uuid,
}

fn append(app: &App, events: Vec<IncomingEvent>) -> Result<Vec<carelog::log::Ack>, AppError> {
    app.append(events, "tester", Keep::default(), &|_, _| Ok(()))
}

/// A store holding a city, a cadre and two certified people, through the faulty wrapper.
fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let (inner, report) = SledStorage::open(
        dir.path(),
        SledOptions {
            create: true,
            cache_capacity_bytes: 16 << 20,
            journal_max_bytes: 64 << 20,
            sled_flush_every_ms: None,
        },
    )
    .unwrap();
    let storage = Arc::new(Faulty {
        inner,
        mode: Mutex::new(FlushMode::Pass),
        changed: Condvar::new(),
    });
    let clock = Arc::new(SystemClock);
    let log = Log::with_storage(storage.clone(), report, clock.clone()).unwrap();
    let app = App::with_log(log, clock).unwrap();
    let [city, cadre, person, other] = std::array::from_fn(|_| Uuid::now_v7());
    let mut events = vec![
        ev(
            "unit.registered",
            "2023-01-01",
            json!({"unit_id": city, "name": "庆阳市教育局", "kind": "city_bureau", "parent_id": null, "official_code": null}),
        ),
        ev(
            "staff.registered",
            "2023-01-01",
            json!({"person_id": cadre, "name": "张明", "role": "cadre", "unit_id": city, "since": "2023-01-01"}),
        ),
    ];
    for p in [person, other] {
        events.push(ev(
            "recipient.registered",
            "2023-01-02",
            json!({"recipient_id": p, "kind": "person", "name": "某某", "unit_id": city, "birth_date": "1950-05-05"}),
        ));
        events.push(ev(
            "category.certified",
            "2023-01-02",
            json!({"recipient_id": p, "category": "severely_disabled", "certified_by": "县民政局", "from": "2022-01-01", "to": null}),
        ));
    }
    append(&app, events).unwrap();
    Store {
        _dir: dir,
        storage,
        app,
        cadre,
        person,
        other,
    }
}

fn pairing(cadre: Uuid, recipient: Uuid, pairing: Uuid) -> IncomingEvent {
    ev(
        "pairing.established",
        "2023-02-01",
        json!({"pairing_id": pairing, "cadre_id": cadre, "recipient_id": recipient, "on": "2023-02-01"}),
    )
}

fn contact(pairing: Uuid) -> IncomingEvent {
    ev(
        "contact.recorded",
        "2023-03-01",
        json!({"pairing_id": pairing, "channel": "phone", "summary": "asked how things are", "duration_minutes": 10}),
    )
}

fn known(app: &App, id: Uuid) -> bool {
    app.with_records(|r| r.knows_event(id)).unwrap()
}

/// Three batches folded and in flight (the second names what the first created) when the flush
/// under the first fails: the log refuses all three, and the records lose exactly them, by the
/// undo journal: no rebuild, the stream versions back where they were.
#[test]
fn batches_the_log_refuses_after_folding_are_rolled_back_in_place() {
    let s = store();
    let before = s.app.records_stats();
    assert_eq!(before.rebuilds, 1, "built once, at the first append");
    let (p1, p2) = (Uuid::now_v7(), Uuid::now_v7());
    let stream = format!("pairing-{p1}");
    let version_before = s.app.with_records(|r| r.stream_version(&stream)).unwrap();
    assert_eq!(version_before, 0);

    s.storage.set(FlushMode::Hold);
    let a = pairing(s.cadre, s.person, p1);
    let b = contact(p1);
    let c = pairing(s.cadre, s.other, p2);
    let ids: Vec<Uuid> = [&a, &b, &c].iter().map(|e| e.id.unwrap()).collect();
    let keep = Keep::default();
    let first = s
        .app
        .submit(vec![a], "tester", keep, &|_, _| Ok(()))
        .unwrap();
    // The contact is checked against records that hold the pairing still in flight.
    let second = s
        .app
        .submit(vec![b], "tester", keep, &|_, _| Ok(()))
        .unwrap();
    let third = s
        .app
        .submit(vec![c], "tester", keep, &|_, _| Ok(()))
        .unwrap();
    assert!(
        ids.iter().all(|id| known(&s.app, *id)),
        "folded while in flight"
    );
    assert_eq!(
        s.app.with_records(|r| r.stream_version(&stream)).unwrap(),
        2,
        "the pairing's stream counts the events in flight"
    );

    s.storage.set(FlushMode::Fail);
    for pending in [first, second, third] {
        match pending.wait() {
            Err(AppError::Log(LogError::Poisoned(_))) => {}
            other => panic!("expected the failed store to refuse the batch, got {other:?}"),
        }
    }
    for id in &ids {
        assert!(
            !known(&s.app, *id),
            "refused event {id} is still in the records"
        );
    }
    assert_eq!(
        s.app.with_records(|r| r.stream_version(&stream)).unwrap(),
        0
    );
    let stats = s.app.records_stats();
    assert_eq!(
        stats,
        RecordsStats {
            rebuilds: 1,
            batches_rolled_back: 3
        },
        "rolled back in place, never rebuilt"
    );
    // The records still hold every durable event: the registry's people are there.
    assert!(
        s.app
            .with_records(|r| r.stream_version(&format!("recipient-{}", s.person)))
            .unwrap()
            > 0
    );
}

/// A copy of an event still in flight whose envelope differs (another correlation id) is
/// refused by the log once the original is durable; nothing of it was folded, so the records
/// stay as they are: no rebuild, the original known, the next append checked as usual.
#[test]
fn a_refused_copy_of_an_event_in_flight_leaves_the_records_alone() {
    let s = store();
    let p1 = Uuid::now_v7();
    let original = pairing(s.cadre, s.person, p1);
    let mut copy = original.clone();
    copy.correlation_id = Some(Uuid::now_v7());
    s.storage.set(FlushMode::Hold);
    let keep = Keep::default();
    let first = s
        .app
        .submit(vec![original], "tester", keep, &|_, _| Ok(()))
        .unwrap();
    let second = s
        .app
        .submit(vec![copy], "tester", keep, &|_, _| Ok(()))
        .unwrap();
    s.storage.set(FlushMode::Pass);
    first.wait().unwrap();
    match second.wait() {
        Err(AppError::Log(LogError::IdConflict { .. })) => {}
        other => panic!("expected the differing copy to be refused, got {other:?}"),
    }
    assert_eq!(s.app.records_stats().rebuilds, 1, "no rebuild for a copy");
    append(&s.app, vec![contact(p1)]).unwrap();
    assert_eq!(s.app.records_stats().rebuilds, 1);
}

/// `expectedversion`: checked against every event folded in, durable or still in flight, and
/// within a batch against the events before it; a conflict names the stream and both versions
/// and writes nothing.
#[test]
fn expected_versions_are_checked_against_what_is_folded_and_in_flight() {
    let s = store();
    let p1 = Uuid::now_v7();
    let stream = format!("pairing-{p1}");
    let head = s.app.log().head_position();
    // "none" on a stream that exists is refused, and nothing is written.
    let e = ev_expecting(
        "recipient.registered",
        "2023-01-03",
        json!({"recipient_id": s.person, "kind": "person", "name": "x", "unit_id": s.person, "birth_date": null}),
        Some(json!("none")),
    );
    match append(&s.app, vec![e]) {
        Err(AppError::VersionConflict {
            index: 0,
            stream: st,
            actual,
            ..
        }) => {
            assert_eq!(st, format!("recipient-{}", s.person));
            assert_eq!(actual, 2, "registered and certified");
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(s.app.log().head_position(), head, "nothing written");

    // A batch: the pairing expects no stream, the contact after it expects version 1.
    let mut open = pairing(s.cadre, s.person, p1);
    open.expected_version = Some(carelog::log::ExpectedVersion::NoStream);
    let mut c1 = contact(p1);
    c1.expected_version = Some(carelog::log::ExpectedVersion::Exact(1));
    append(&s.app, vec![open, c1]).unwrap();

    // In flight: a contact expecting 2 is folded; the next, expecting 2 again, conflicts with
    // the one in flight even before it is durable.
    s.storage.set(FlushMode::Hold);
    let mut c2 = contact(p1);
    c2.expected_version = Some(carelog::log::ExpectedVersion::Exact(2));
    let pending = s
        .app
        .submit(vec![c2], "tester", Keep::default(), &|_, _| Ok(()))
        .unwrap();
    let mut late = contact(p1);
    late.expected_version = Some(carelog::log::ExpectedVersion::Exact(2));
    let late_id = late.id.unwrap();
    let refused = s
        .app
        .submit(vec![late], "tester", Keep::default(), &|_, _| Ok(()));
    match refused {
        Err(e @ AppError::VersionConflict { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&stream), "{message}");
            assert!(message.contains("version 3"), "{message}");
            assert!(message.contains("expects version 2"), "{message}");
        }
        Err(other) => panic!("expected a version conflict, got {other:?}"),
        Ok(_) => panic!("expected a version conflict, got a queued append"),
    }
    s.storage.set(FlushMode::Pass);
    let acks = pending.wait().unwrap();
    assert_eq!(acks[0].stream_version, 3);
    assert!(!known(&s.app, late_id));
    assert_eq!(
        s.app.with_records(|r| r.stream_version(&stream)).unwrap(),
        3
    );
    assert_eq!(s.app.log().stream_version(&stream).unwrap(), 3);
}

/// A full disk under a batch in flight: the log refuses it; a batch checked while the refused
/// one is still unsettled in the app (so against records that hold it) is refused too, never
/// the one the writer recovers with; once every batch is settled and space is back, the next
/// append recovers the writer without a restart, against records that hold neither.
#[test]
fn after_a_full_disk_nothing_checked_against_a_refused_batch_is_written() {
    let s = store();
    let (p1, p2) = (Uuid::now_v7(), Uuid::now_v7());
    let head = s.app.log().head_position();
    s.storage.set(FlushMode::Hold);
    let keep = Keep::default();
    let a = pairing(s.cadre, s.person, p1);
    let a_id = a.id.unwrap();
    let first = s
        .app
        .submit(vec![a.clone()], "tester", keep, &|_, _| Ok(()))
        .unwrap();
    s.storage.set(FlushMode::DiskFull);
    // The log answers the refusal; the app has not settled it yet.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.app.log().write_health() == WriteHealth::Ok {
        assert!(
            std::time::Instant::now() < deadline,
            "the flush never failed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    s.storage.set(FlushMode::Pass);
    // Checked against records still holding the pairing in flight: a contact on it.
    let b = contact(p1);
    let b_id = b.id.unwrap();
    let second = s
        .app
        .submit(vec![b], "tester", keep, &|_, _| Ok(()))
        .unwrap();
    for pending in [first, second] {
        match pending.wait() {
            Err(AppError::Log(e)) if e.is_disk_full() => {}
            other => panic!("expected a full disk's refusal, got {other:?}"),
        }
    }
    assert_eq!(
        s.app.log().head_position(),
        head,
        "nothing of either written"
    );
    assert!(!known(&s.app, a_id) && !known(&s.app, b_id));
    // Space is back: the next append recovers the writer; the records know no pairing p1.
    match append(&s.app, vec![contact(p1)]) {
        Err(AppError::Rejected { error, .. }) => assert_eq!(error.field, "data.pairing_id"),
        other => panic!("expected the contact on an unwritten pairing refused, got {other:?}"),
    }
    append(&s.app, vec![pairing(s.cadre, s.other, p2)]).unwrap();
    append(&s.app, vec![a]).unwrap();
    append(&s.app, vec![contact(p1)]).unwrap();
    assert_eq!(s.app.log().head_position(), head + 3);
    assert_eq!(s.app.log().write_health(), WriteHealth::Ok);
    assert_eq!(
        s.app.records_stats().rebuilds,
        1,
        "rolled back, never rebuilt"
    );
    let report = s.app.log().verify(true, None, &mut |_| {}).unwrap();
    assert!(report.intact, "{:?}", report.problem);
    assert_eq!(report.events_checked, head + 3);
}
