//! Export and re-import is lossless: a random valid history (a registry, a pairing, activities
//! at random times and offsets in 2023, cash and goods aid, voids and corrections) appended into
//! store A, exported as JSON lines, appended into an empty store B keeping the recorded times,
//! gives the same events (ids, order, streams, types, payloads, times with their offsets,
//! recorded times and actors, hashes) and byte-identical exports.

use carelog::app::export::to_cloudevent;
use carelog::app::{App, Keep, LoggedEvent};
use carelog::domain::cloudevent::{parse_line, parse_value};
use chrono::{DateTime, Duration, FixedOffset};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Act {
    Contact { channel: u8 },
    Visit,
    Policy,
    Errand,
    Cash { fen: i64 },
    Goods { quantity: u32, unit_fen: i64 },
    Void { pick: usize },
    Correct { pick: usize },
}

#[derive(Debug, Clone)]
struct Step {
    act: Act,
    /// Seconds after 2023-01-01T00:00:00+08:00 (within 2023 in Shanghai).
    secs: i64,
    nanos: u32,
    /// The recorder's UTC offset, in minutes.
    offset_minutes: i32,
    /// Send no id (the log generates one).
    no_id: bool,
    /// Send a recordedby (kept) and a correlation id.
    recorded_by: bool,
    correlated: bool,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (0u8..3).prop_map(|channel| Act::Contact { channel }),
        3 => Just(Act::Visit),
        1 => Just(Act::Policy),
        1 => Just(Act::Errand),
        2 => (1i64..1_000_000).prop_map(|fen| Act::Cash { fen }),
        2 => (1u32..20, 1i64..50_000).prop_map(|(quantity, unit_fen)| Act::Goods { quantity, unit_fen }),
        1 => any::<usize>().prop_map(|pick| Act::Void { pick }),
        1 => any::<usize>().prop_map(|pick| Act::Correct { pick }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        act(),
        0i64..(364 * 86_400),
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
        prop::sample::select(vec![480, 0, -300, 345, 330, -570, 840, -720]),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(act, secs, nanos, offset_minutes, no_id, recorded_by, correlated)| Step {
                act,
                secs,
                nanos,
                offset_minutes,
                no_id,
                recorded_by,
                correlated,
            },
        )
}

fn time_of(s: &Step) -> String {
    let start = DateTime::parse_from_rfc3339("2023-01-01T00:00:00+08:00").unwrap();
    let offset = FixedOffset::east_opt(s.offset_minutes * 60).unwrap();
    (start + Duration::seconds(s.secs) + Duration::nanoseconds(i64::from(s.nanos)))
        .with_timezone(&offset)
        .to_rfc3339()
}

/// A line (JSON value) for an event.
fn line(id: Option<Uuid>, event_type: &str, time: &str, data: Value) -> Value {
    let mut v = json!({"specversion": "1.0", "source": "/tests/roundtrip",
                       "type": format!("carelog.{event_type}"), "time": time, "data": data});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

fn registry(pairing: Uuid) -> Vec<Value> {
    let [city, county, township, cadre, person] = std::array::from_fn(|_| Uuid::now_v7());
    let t = "2023-01-01T08:00:00+08:00";
    vec![
        line(
            Some(Uuid::now_v7()),
            "unit.registered",
            t,
            json!({"unit_id": city, "name": "庆阳市教育局", "kind": "city_bureau", "parent_id": null, "official_code": "6210"}),
        ),
        line(
            Some(Uuid::now_v7()),
            "unit.registered",
            t,
            json!({"unit_id": county, "name": "环县", "kind": "county", "parent_id": city, "official_code": null}),
        ),
        line(
            None,
            "unit.registered",
            t,
            json!({"unit_id": township, "name": "毛井乡", "kind": "township", "parent_id": county, "official_code": null}),
        ),
        line(
            Some(Uuid::now_v7()),
            "staff.registered",
            t,
            json!({"person_id": cadre, "name": "张明", "role": "cadre", "unit_id": city, "since": "2023-01-01"}),
        ),
        line(
            Some(Uuid::now_v7()),
            "recipient.registered",
            t,
            json!({"recipient_id": person, "kind": "person", "name": "李华", "unit_id": township, "birth_date": "1940-02-29"}),
        ),
        line(
            Some(Uuid::now_v7()),
            "category.certified",
            t,
            json!({"recipient_id": person, "category": "severely_disabled", "certified_by": "县残联", "from": "2020-01-01", "to": null}),
        ),
        line(
            Some(Uuid::now_v7()),
            "pairing.established",
            t,
            json!({"pairing_id": pairing, "cadre_id": cadre, "recipient_id": person, "on": "2023-01-01"}),
        ),
    ]
}

/// An activity's type and data.
fn activity(act: &Act, pairing: Uuid, n: usize) -> Option<(&'static str, Value)> {
    let channels = ["phone", "video", "message"];
    Some(match act {
        Act::Contact { channel } => (
            "contact.recorded",
            json!({"pairing_id": pairing, "channel": channels[usize::from(*channel)], "summary": format!("contact {n}, \"ok\""), "duration_minutes": if n.is_multiple_of(2) { json!(n) } else { Value::Null }}),
        ),
        Act::Visit => (
            "visit.recorded",
            json!({"pairing_id": pairing, "trip": "own", "group_trip_id": null, "companions": [], "observations": format!("visit {n}\nroof ok")}),
        ),
        Act::Policy => (
            "policy_followup.recorded",
            json!({"pairing_id": pairing, "policy": "最低生活保障", "agency": "县民政局", "outcome": format!("approved {n}")}),
        ),
        Act::Errand => (
            "errand.done",
            json!({"pairing_id": pairing, "description": "renewed card", "result": format!("issued {n}")}),
        ),
        Act::Cash { fen } => (
            "aid.given",
            json!({"pairing_id": pairing, "form": "cash", "value_fen": fen, "fund_source": "own", "item": null, "quantity": null, "unit_value_fen": null, "receipt_ref": format!("R-{n}")}),
        ),
        Act::Goods { quantity, unit_fen } => (
            "aid.given",
            json!({"pairing_id": pairing, "form": "goods", "value_fen": i64::from(*quantity) * unit_fen, "fund_source": "bureau", "item": "rice", "quantity": quantity, "unit_value_fen": unit_fen, "receipt_ref": format!("G-{n}")}),
        ),
        Act::Void { .. } | Act::Correct { .. } => return None,
    })
}

/// The same activity with a text changed (a valid correction keeping its subject).
fn varied(event_type: &str, data: &Value, n: usize) -> Value {
    let mut d = data.clone();
    let field = match event_type {
        "contact.recorded" => "summary",
        "visit.recorded" => "observations",
        "policy_followup.recorded" => "outcome",
        "errand.done" => "result",
        _ => "fund_source",
    };
    d[field] = json!(format!("corrected at step {n}"));
    d
}

/// Every event of a store, in order.
fn all_events(app: &App) -> Vec<LoggedEvent> {
    let mut out = Vec::new();
    app.for_each_event(1, |e| {
        out.push(e);
        Ok(())
    })
    .unwrap();
    out
}

/// What `carelog export --format jsonl` prints.
fn export(app: &App) -> String {
    all_events(app)
        .iter()
        .map(|e| format!("{}\n", to_cloudevent(&e.recorded, &e.event)))
        .collect()
}

fn check_round_trip(steps: Vec<Step>) {
    let dir_a = tempfile::tempdir().unwrap();
    let a = App::open(dir_a.path(), true).unwrap();
    let pairing = Uuid::now_v7();
    let keep_by = Keep {
        recorded_by: true,
        recorded_at: false,
    };
    let registry_events: Vec<_> = registry(pairing)
        .into_iter()
        .map(|v| parse_value(v).unwrap())
        .collect();
    a.append(registry_events, "writer-a", keep_by, &|_, _| Ok(()))
        .unwrap();

    // (event id, type, data) of activities still live (not voided).
    let mut live: Vec<(Uuid, &'static str, Value)> = Vec::new();
    for (n, s) in steps.iter().enumerate() {
        let time = time_of(s);
        let id = (!s.no_id).then(Uuid::now_v7);
        let mut v = match &s.act {
            Act::Void { pick } => {
                if live.is_empty() {
                    continue;
                }
                let (target, _, _) = live.remove(pick % live.len());
                line(
                    id,
                    "record.voided",
                    &time,
                    json!({"target_event_id": target, "reason": format!("void {n}")}),
                )
            }
            Act::Correct { pick } => {
                if live.is_empty() {
                    continue;
                }
                let (target, t, data) = live[pick % live.len()].clone();
                line(
                    id,
                    "record.corrected",
                    &time,
                    json!({"target_event_id": target, "reason": "typo", "corrected_type": format!("carelog.{t}"), "corrected": varied(t, &data, n)}),
                )
            }
            other => {
                let (t, data) = activity(other, pairing, n).unwrap();
                line(id, t, &time, data)
            }
        };
        if s.recorded_by {
            v["recordedby"] = json!(format!("phone:{n}"));
        }
        if s.correlated {
            v["correlationid"] = json!(Uuid::now_v7());
            v["causationid"] = json!(Uuid::now_v7());
        }
        let incoming = parse_value(v).unwrap();
        let acks = a
            .append(vec![incoming], "writer-a", keep_by, &|_, _| Ok(()))
            .unwrap_or_else(|e| panic!("step {n} {:?} refused: {e}", s.act));
        if let Some((t, data)) = activity(&s.act, pairing, n) {
            live.push((acks[0].event_id, t, data));
        }
    }

    let text_a = export(&a);
    let dir_b = tempfile::tempdir().unwrap();
    let b = App::open(dir_b.path(), true).unwrap();
    let incoming: Vec<_> = text_a
        .lines()
        .map(|l| parse_line(l).unwrap_or_else(|e| panic!("export line does not parse: {e}\n{l}")))
        .collect();
    let keep_all = Keep {
        recorded_by: true,
        recorded_at: true,
    };
    let acks = b
        .append(incoming, "writer-b", keep_all, &|_, _| Ok(()))
        .unwrap();
    assert!(acks.iter().all(|a| !a.duplicate));

    let events_a = all_events(&a);
    let events_b = all_events(&b);
    assert_eq!(events_a.len(), events_b.len());
    for (x, y) in events_a.iter().zip(&events_b) {
        let (rx, ry) = (&x.recorded, &y.recorded);
        // The whole envelope: position, id, stream and version, type and version, payload,
        // times, actor, correlation, hashes.
        assert_eq!(rx, ry, "position {}", rx.position);
        assert_eq!(x.event, y.event);
        // Instants compare equal across offsets: the offsets and text must match too.
        assert_eq!(rx.occurred_at.offset(), ry.occurred_at.offset());
        assert_eq!(rx.occurred_at.to_rfc3339(), ry.occurred_at.to_rfc3339());
        assert_eq!(rx.recorded_at.offset(), ry.recorded_at.offset());
        assert_eq!(rx.recorded_at.to_rfc3339(), ry.recorded_at.to_rfc3339());
    }
    assert_eq!(a.log().digest(), b.log().digest());
    let text_b = export(&b);
    assert_eq!(text_a, text_b, "byte-identical exports");
    // The figures agree.
    let report = |app: &App| {
        serde_json::to_value(
            app.report(carelog::projection::AsOf::Now, None, false, &mut |_, _| {})
                .unwrap()
                .figures,
        )
        .unwrap()
    };
    assert_eq!(report(&a), report(&b));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn export_then_append_with_kept_times_is_lossless(steps in prop::collection::vec(step(), 1..40)) {
        check_round_trip(steps);
    }
}

#[test]
fn a_fixed_history_with_every_kind_round_trips() {
    let step = |act: Act, secs: i64, offset_minutes: i32| Step {
        act,
        secs,
        nanos: 123_456_789,
        offset_minutes,
        no_id: false,
        recorded_by: true,
        correlated: true,
    };
    check_round_trip(vec![
        step(Act::Contact { channel: 0 }, 86_400, 480),
        step(Act::Visit, 2 * 86_400, -300),
        step(Act::Policy, 3 * 86_400, 345),
        step(Act::Errand, 4 * 86_400, 0),
        step(Act::Cash { fen: 12_345 }, 5 * 86_400, -570),
        step(
            Act::Goods {
                quantity: 3,
                unit_fen: 10_000,
            },
            6 * 86_400,
            840,
        ),
        step(Act::Correct { pick: 4 }, 7 * 86_400, 480),
        step(Act::Void { pick: 0 }, 8 * 86_400, 480),
        step(Act::Correct { pick: 0 }, 9 * 86_400, 480),
    ]);
}
