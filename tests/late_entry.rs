//! The late-entry window through the library: the rule counts Asia/Shanghai days from the day
//! an event happened to the day it is recorded (the kept recording time of a restore, else
//! now); a restore carries the note as its own line after the late event; a reason too long is
//! refused naming `lateentryreason`; with no window nothing is asked.

use carelog::app::{App, AppError, Keep};
use carelog::domain::cloudevent::{IncomingEvent, parse_value};
use carelog::domain::records::Rule;
use serde_json::{Value, json};
use uuid::Uuid;

fn ev(event_type: &str, time: &str, data: Value, extra: Value) -> IncomingEvent {
    let mut v = json!({
        "specversion": "1.0",
        "id": Uuid::now_v7().to_string(),
        "source": "/tests/late_entry",
        "type": format!("carelog.{event_type}"),
        "time": time,
        "data": data,
    });
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            v.insert(k.clone(), x.clone());
        }
    }
    parse_value(v).unwrap()
}

/// A unit, a cadre, a person and their pairing, recorded on the days they happened.
fn store(window_days: u32) -> (tempfile::TempDir, App, Uuid) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(dir.path(), true).unwrap();
    app.set_late_entry_window_days(window_days);
    let [city, cadre, person, pairing] = std::array::from_fn(|_| Uuid::now_v7());
    let on = |day: &str| json!({"recordedat": format!("{day}T12:00:00+08:00")});
    let events = vec![
        ev(
            "unit.registered",
            "2023-01-01T10:00:00+08:00",
            json!({"unit_id": city, "name": "庆阳市教育局", "kind": "city_bureau", "parent_id": null, "official_code": null}),
            on("2023-01-01"),
        ),
        ev(
            "staff.registered",
            "2023-01-01T10:00:00+08:00",
            json!({"person_id": cadre, "name": "张明", "role": "cadre", "unit_id": city, "since": "2023-01-01"}),
            on("2023-01-01"),
        ),
        ev(
            "recipient.registered",
            "2023-01-02T10:00:00+08:00",
            json!({"recipient_id": person, "kind": "person", "name": "某某", "unit_id": city, "birth_date": null}),
            on("2023-01-02"),
        ),
        ev(
            "category.certified",
            "2023-01-02T10:00:00+08:00",
            json!({"recipient_id": person, "category": "severely_disabled", "certified_by": "县民政局", "from": "2022-01-01", "to": null}),
            on("2023-01-02"),
        ),
        ev(
            "pairing.established",
            "2023-02-01T10:00:00+08:00",
            json!({"pairing_id": pairing, "cadre_id": cadre, "recipient_id": person, "on": "2023-02-01"}),
            on("2023-02-01"),
        ),
    ];
    restore(&app, events).unwrap();
    (dir, app, pairing)
}

fn restore(app: &App, events: Vec<IncomingEvent>) -> Result<usize, AppError> {
    let keep = Keep {
        recorded_by: false,
        recorded_at: true,
    };
    app.append(events, "tester", keep, &|_, _| Ok(()))
        .map(|acks| acks.len())
}

fn contact(pairing: Uuid, time: &str, extra: Value) -> IncomingEvent {
    ev(
        "contact.recorded",
        time,
        json!({"pairing_id": pairing, "channel": "phone", "summary": "asked how things are", "duration_minutes": 10}),
        extra,
    )
}

fn refused_as_late(result: Result<usize, AppError>) -> String {
    match result {
        Err(e @ AppError::Rejected { .. }) => {
            let AppError::Rejected { error, .. } = &e else {
                unreachable!()
            };
            assert_eq!(error.field, "lateentryreason", "{e}");
            assert_eq!(error.rule, Rule::LateEntry, "{e}");
            e.to_string()
        }
        other => panic!("expected a late-entry refusal, got {other:?}"),
    }
}

#[test]
fn the_window_counts_shanghai_days_to_the_kept_recording_time() {
    let (_dir, app, pairing) = store(31);
    // 2023-03-01 10:00 +08:00 happened; recorded 31 Shanghai days later: within the window.
    let within = contact(
        pairing,
        "2023-03-01T10:00:00+08:00",
        json!({"recordedat": "2023-04-01T23:30:00+08:00"}),
    );
    assert_eq!(restore(&app, vec![within]).unwrap(), 1);
    // 17:30 UTC on 2023-05-01 is 01:30 on 2023-05-02 in Shanghai: 32 days after 2023-03-31
    // (31 by the UTC calendar, which would pass).
    let head = app.log().head_position();
    let past = contact(
        pairing,
        "2023-03-31T10:00:00+08:00",
        json!({"recordedat": "2023-05-01T17:30:00Z"}),
    );
    let message = refused_as_late(restore(&app, vec![past]));
    assert!(message.contains("32 days later"), "{message}");
    assert_eq!(app.log().head_position(), head, "nothing written");
}

#[test]
fn a_restore_carries_the_note_as_the_line_after_the_late_event() {
    let (_dir, app, pairing) = store(31);
    let late = contact(
        pairing,
        "2023-03-01T10:00:00+08:00",
        json!({"recordedat": "2023-06-01T10:00:00+08:00"}),
    );
    let note = ev(
        "late_entry.noted",
        "2023-06-01T10:00:00+08:00",
        json!({"target_event_id": late.id.unwrap(), "reason": "found in June"}),
        json!({"recordedat": "2023-06-01T10:00:00+08:00"}),
    );
    // Alone, the late event is refused; with its note after it in the batch, both are written.
    refused_as_late(restore(&app, vec![late.clone()]));
    assert_eq!(restore(&app, vec![late, note]).unwrap(), 2);
}

#[test]
fn a_reason_is_checked_like_any_text_and_no_window_asks_for_none() {
    let (_dir, app, pairing) = store(31);
    let head = app.log().head_position();
    // A reason is bounded at parse, like any text, and named.
    let mut long = json!({
        "specversion": "1.0", "type": "carelog.contact.recorded", "source": "/t",
        "time": "2023-03-01T10:00:00+08:00",
        "data": {"pairing_id": pairing, "channel": "phone", "summary": "s", "duration_minutes": 1},
    });
    long["lateentryreason"] = json!("x".repeat(5000));
    let error = parse_value(long.clone()).unwrap_err();
    assert_eq!(error.field, "lateentryreason", "{error}");
    long["lateentryreason"] = json!("  ");
    assert_eq!(parse_value(long).unwrap_err().field, "lateentryreason");
    assert_eq!(app.log().head_position(), head, "nothing written");

    // A refusal by the log names the caller's event, not its place among the notes made: the
    // second event sent (third written, after the first one's note) is refused as event 1.
    let late = contact(
        pairing,
        "2023-03-01T10:00:00+08:00",
        json!({"recordedat": "2023-06-01T10:00:00+08:00", "lateentryreason": "found in June"}),
    );
    // Recorded before the one ahead of it: the writer refuses a recording time going back.
    let earlier = contact(
        pairing,
        "2023-04-30T10:00:00+08:00",
        json!({"recordedat": "2023-05-01T10:00:00+08:00"}),
    );
    match restore(&app, vec![late, earlier]) {
        Err(AppError::Log(carelog::log::LogError::InvalidEvent { index, field, .. })) => {
            assert_eq!((index, field), (1, "recordedat"));
        }
        other => panic!("expected the earlier recording time refused, got {other:?}"),
    }
    assert_eq!(app.log().head_position(), head, "nothing written");

    let (_dir, app, pairing) = store(0);
    let late = contact(
        pairing,
        "2023-03-01T10:00:00+08:00",
        json!({"recordedat": "2026-01-01T10:00:00+08:00"}),
    );
    assert_eq!(restore(&app, vec![late]).unwrap(), 1);
}
