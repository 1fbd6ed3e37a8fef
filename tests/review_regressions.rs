//! Regression tests for what a review of the core layers found, one test per finding.

use std::time::Duration;

use carelog::app::{App, AppError, Keep};
use carelog::domain::cloudevent::{IncomingEvent, parse_value};
use carelog::domain::records::Rule;
use carelog::log::{AppendBatch, LogError, NewEvent, OpenOptions};
use serde_json::{Value, json};
use uuid::Uuid;

fn ev(event_type: &str, date: &str, data: Value) -> IncomingEvent {
    parse_value(json!({
        "specversion": "1.0", "id": Uuid::now_v7(), "type": format!("carelog.{event_type}"),
        "time": format!("{date}T10:00:00+08:00"), "data": data,
    }))
    .unwrap()
}

fn append(app: &App, events: Vec<IncomingEvent>) -> Result<Vec<carelog::log::Ack>, AppError> {
    app.append(
        events,
        "tester",
        Keep {
            recorded_by: true,
            recorded_at: false,
        },
        &|_, _| Ok(()),
    )
}

/// A bureau, a cadre, a person: enough for pairings.
fn registry(app: &App) -> (Uuid, Uuid) {
    let (unit, cadre, person) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    append(app, vec![
        ev("unit.registered", "2023-01-02", json!({"unit_id": unit, "name": "市教育局", "kind": "city_bureau", "parent_id": null, "official_code": null})),
        ev("staff.registered", "2023-01-02", json!({"person_id": cadre, "name": "张明", "role": "cadre", "unit_id": unit, "since": "2022-01-01"})),
        ev("recipient.registered", "2023-01-02", json!({"recipient_id": person, "kind": "person", "name": "李华", "unit_id": unit, "birth_date": null})),
    ])
    .unwrap();
    (cadre, person)
}

#[test]
fn a_batch_the_writer_would_refuse_is_refused_before_anything_depends_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(dir.path(), true).unwrap();
    let (cadre, _) = registry(&app);
    // An empty `recordedby` is refused by the log's shape check: the app must refuse it before
    // folding the event in, or a later batch could be checked against a recipient never written.
    let recipient = Uuid::now_v7();
    let unit_first = registry_unit(&app);
    let mut bad = ev(
        "recipient.registered",
        "2023-02-01",
        json!({"recipient_id": recipient, "kind": "person", "name": "王芳", "unit_id": unit_first, "birth_date": null}),
    );
    bad.recorded_by = Some(String::new());
    let head = app.log().head_position();
    match app.submit(
        vec![bad],
        "tester",
        Keep {
            recorded_by: true,
            recorded_at: false,
        },
        &|_, _| Ok(()),
    ) {
        Err(AppError::Log(LogError::InvalidEvent {
            field: "recordedby",
            ..
        })) => {}
        Err(other) => panic!("expected the shape refusal, got {other}"),
        Ok(_) => panic!("an empty recordedby was queued"),
    }
    // The recipient is not in the records: a pairing for it is an unknown id.
    let pairing = ev(
        "pairing.established",
        "2023-02-02",
        json!({"pairing_id": Uuid::now_v7(), "cadre_id": cadre, "recipient_id": recipient, "on": "2023-02-02"}),
    );
    match append(&app, vec![pairing]) {
        Err(AppError::Rejected { error, .. }) => assert_eq!(
            (error.rule, error.field),
            (Rule::UnknownId, "data.recipient_id")
        ),
        other => panic!("expected unknown recipient, got {other:?}"),
    }
    assert_eq!(app.log().head_position(), head);
}

fn registry_unit(app: &App) -> Uuid {
    let unit = Uuid::now_v7();
    append(app, vec![ev("unit.registered", "2023-01-03", json!({"unit_id": unit, "name": "县教育局", "kind": "city_bureau", "parent_id": null, "official_code": null}))]).unwrap();
    unit
}

#[test]
fn a_back_dated_second_pairing_overlapping_an_ended_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(dir.path(), true).unwrap();
    let (cadre, person) = registry(&app);
    let p1 = Uuid::now_v7();
    append(&app, vec![ev("pairing.established", "2023-01-05", json!({"pairing_id": p1, "cadre_id": cadre, "recipient_id": person, "on": "2023-01-05"}))]).unwrap();
    append(
        &app,
        vec![ev(
            "pairing.ended",
            "2023-12-01",
            json!({"pairing_id": p1, "on": "2023-12-01", "reason": "moved"}),
        )],
    )
    .unwrap();
    let back_dated = ev(
        "pairing.established",
        "2023-12-02",
        json!({"pairing_id": Uuid::now_v7(), "cadre_id": cadre, "recipient_id": person, "on": "2023-06-01"}),
    );
    match append(&app, vec![back_dated]) {
        Err(AppError::Rejected { error, .. }) => assert_eq!(error.rule, Rule::SecondActivePairing),
        other => panic!("expected a second active pairing, got {other:?}"),
    }
    // After the first one ended, a new pairing is fine.
    let later = ev(
        "pairing.established",
        "2023-12-02",
        json!({"pairing_id": Uuid::now_v7(), "cadre_id": cadre, "recipient_id": person, "on": "2023-12-02"}),
    );
    append(&app, vec![later]).unwrap();
}

#[test]
fn a_resend_with_another_correlation_id_is_an_id_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(dir.path(), true).unwrap();
    registry(&app);
    let mut e = ev(
        "unit.registered",
        "2023-01-03",
        json!({"unit_id": Uuid::now_v7(), "name": "县", "kind": "city_bureau", "parent_id": null, "official_code": null}),
    );
    e.correlation_id = Some(Uuid::now_v7());
    append(&app, vec![e.clone()]).unwrap();
    let same = append(&app, vec![e.clone()]).unwrap();
    assert!(same[0].duplicate);
    e.correlation_id = Some(Uuid::now_v7());
    assert!(matches!(
        append(&app, vec![e]),
        Err(AppError::IdConflict { .. })
    ));
}

#[test]
fn verify_while_appends_go_on_reports_the_log_intact() {
    let dir = tempfile::tempdir().unwrap();
    let log = carelog::log::Log::open(dir.path(), OpenOptions::default()).unwrap();
    let at = carelog::time::parse_instant("2023-05-01T09:30:00+08:00").unwrap();
    for i in 0..20 {
        log.append(AppendBatch::new(
            (0..500)
                .map(|k| {
                    NewEvent::new(
                        format!("s{}", (i * 500 + k) % 37),
                        "test.noted",
                        1,
                        at,
                        "t",
                        vec![1; 64],
                    )
                })
                .collect(),
        ))
        .unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = log.clone();
        let stop = &stop;
        s.spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 20_000 {
                writer
                    .append(AppendBatch::new(vec![NewEvent::new(
                        format!("live{}", n % 5),
                        "test.noted",
                        1,
                        at,
                        "t",
                        vec![2; 64],
                    )]))
                    .unwrap();
                n += 1;
            }
        });
        for _ in 0..5 {
            let report = log.verify(true, None, &mut |_| {}).unwrap();
            assert!(
                report.intact,
                "a live log was reported broken: {:?}",
                report.problem
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(log.verify(true, None, &mut |_| {}).unwrap().intact);
}

#[test]
fn a_subscription_from_the_last_possible_position_is_empty_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let log = carelog::log::Log::open(dir.path(), OpenOptions::default()).unwrap();
    let mut sub = log.subscribe(u64::MAX);
    assert!(
        sub.next_batch(10, Duration::from_millis(10))
            .unwrap()
            .is_empty()
    );
}
