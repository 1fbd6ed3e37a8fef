//! Each standard projection on hand-made event sequences, with exact values; the engine's
//! as-of by recorded time; and the worked example of `projections/README.md`, compiled and run.
//!
//! Every event goes through `App::append` (so the records' rules hold) and every answer comes
//! from `engine::replay` (as `carelog project` computes it).

use std::any::Any;

use carelog::app::{App, Keep};
use carelog::domain::cloudevent::{IncomingEvent, parse_value};
use carelog::projection::engine::position_as_of;
use carelog::projection::{
    Adjustment, AdjustmentKind, AnyProjection, AsOf, Figure, PairingBook, Period, Query,
    Registered, Source, replay,
};
use carelog::projections::registry;
use carelog::time::parse_instant;
use serde_json::{Value, json};
use uuid::Uuid;

// ---- a store written event by event -------------------------------------------------------

struct Store {
    dir: tempfile::TempDir,
    app: App,
}

fn allow(
    _: &carelog::domain::Records,
    _: &IncomingEvent,
) -> Result<(), carelog::app::access::Refusal> {
    Ok(())
}

/// `2023-03-01` → that day at 10:00 in Shanghai.
fn t(day: &str) -> String {
    format!("{day}T10:00:00+08:00")
}

impl Store {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let app = App::open(&dir.path().join("store"), true).expect("a new store");
        Self { dir, app }
    }

    fn append(&self, event: Value, keep: Keep) -> Source {
        let incoming = parse_value(event.clone()).unwrap_or_else(|e| panic!("{e}: {event}"));
        let acks = self
            .app
            .append(vec![incoming], "tester", keep, &allow)
            .unwrap_or_else(|e| panic!("rejected: {e}\n{event}"));
        Source {
            id: acks[0].event_id,
            position: acks[0].position,
        }
    }

    /// An event that happened on `day` (at 10:00 Shanghai).
    fn add(&self, ty: &str, day: &str, data: Value) -> Source {
        self.add_at(ty, &t(day), data)
    }

    /// An event that happened at `time` (RFC 3339).
    fn add_at(&self, ty: &str, time: &str, data: Value) -> Source {
        self.append(
            json!({"specversion": "1.0", "id": Uuid::now_v7(), "source": "/test", "type": ty, "time": time, "data": data}),
            Keep::default(),
        )
    }

    fn void(&self, target: Source, day: &str, reason: &str) -> Source {
        self.add(
            "carelog.record.voided",
            day,
            json!({"target_event_id": target.id, "reason": reason}),
        )
    }

    fn correct(&self, target: Source, day: &str, ty: &str, corrected: Value) -> Source {
        self.add(
            "carelog.record.corrected",
            day,
            json!({"target_event_id": target.id, "reason": "corrected", "corrected_type": ty, "corrected": corrected}),
        )
    }

    /// A projection's state now, replayed from the log as `carelog project` does, with the
    /// engine's book.
    fn state_of(&self, p: &dyn AnyProjection) -> (Box<dyn Any + Send>, PairingBook) {
        let rebuilt =
            replay(self.app.log(), &[p], AsOf::Now, None, &mut |_, _| {}).expect("a replay");
        let book = rebuilt.book;
        let state = rebuilt.states.into_iter().next().expect("one state");
        (state, book)
    }

    fn query(&self, name: &str, q: &Query) -> Value {
        let p = projection(name);
        let (state, book) = self.state_of(p.as_ref());
        p.query(state.as_ref(), &book, q)
    }

    fn figures(&self, name: &str, q: &Query) -> Vec<Figure> {
        let p = projection(name);
        let (state, book) = self.state_of(p.as_ref());
        p.figures(state.as_ref(), &book, q)
    }

    fn figure(&self, name: &str, metric: &str, q: &Query) -> Figure {
        self.figures(name, q)
            .into_iter()
            .find(|f| f.metric == metric)
            .unwrap_or_else(|| panic!("{name} has no figure {metric}"))
    }

    /// The values of a projection's figures, by metric.
    fn values(&self, name: &str, q: &Query) -> Vec<(String, i64)> {
        self.figures(name, q)
            .into_iter()
            .map(|f| (f.metric, f.value))
            .collect()
    }
}

fn projection(name: &str) -> Box<dyn AnyProjection> {
    registry()
        .into_iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no projection {name}"))
}

fn date(s: &str) -> carelog::domain::Date {
    carelog::domain::Date::parse(s).expect("a date")
}

/// The state on a day.
fn on(day: &str) -> Query {
    Query {
        on: Some(date(day)),
        ..Query::default()
    }
}

/// What happened in a period, as the report asks it (the day is the period's end).
fn period(from: &str, to: &str) -> Query {
    Query {
        period: Some(Period {
            from: date(from),
            to: date(to),
        }),
        on: Some(date(to)),
        ..Query::default()
    }
}

fn with(mut q: Query, name: &str, value: &str) -> Query {
    q.params.insert(name.into(), value.into());
    q
}

fn uid(n: u128) -> Uuid {
    Uuid::from_u128((0x018b_d200_0000_7000_8000u128 << 48) | n)
}

fn s(id: Uuid) -> String {
    id.to_string()
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(m, n)| ((*m).to_string(), *n)).collect()
}

// ---- a small programme ----------------------------------------------------------------------

struct World {
    bureau: Uuid,
    township: Uuid,
    school: Uuid,
    school2: Uuid,
    /// Cadres.
    a: Uuid,
    b: Uuid,
    c: Uuid,
    /// Teachers.
    t1: Uuid,
    t2: Uuid,
}

fn world(st: &Store) -> World {
    let w = World {
        bureau: uid(1),
        township: uid(2),
        school: uid(3),
        school2: uid(4),
        a: uid(11),
        b: uid(12),
        c: uid(13),
        t1: uid(21),
        t2: uid(22),
    };
    let unit = |id: Uuid, kind: &str, parent: Option<Uuid>, name: &str| {
        st.add(
            "carelog.unit.registered",
            "2022-08-01",
            json!({"unit_id": id, "name": name, "kind": kind, "parent_id": parent, "official_code": null}),
        );
    };
    unit(w.bureau, "city_bureau", None, "city education bureau");
    unit(w.township, "township", Some(w.bureau), "Maojing");
    unit(w.school, "school", Some(w.township), "Maojing primary");
    unit(w.school2, "school", Some(w.township), "Maojing middle");
    let staff = |id: Uuid, role: &str, unit: Uuid, name: &str| {
        st.add(
            "carelog.staff.registered",
            "2022-08-01",
            json!({"person_id": id, "name": name, "role": role, "unit_id": unit, "since": "2022-08-01"}),
        );
    };
    staff(w.a, "cadre", w.bureau, "Zhang");
    staff(w.b, "cadre", w.bureau, "Li");
    staff(w.c, "cadre", w.township, "Wang");
    staff(w.t1, "teacher", w.school, "Zhao");
    staff(w.t2, "teacher", w.school2, "Sun");
    w
}

/// A person registered in `unit`, certified in each category from its day.
fn person(st: &Store, id: u128, unit: Uuid, categories: &[(&str, &str)]) -> Uuid {
    let r = uid(id);
    st.add(
        "carelog.recipient.registered",
        "2022-08-01",
        json!({"recipient_id": r, "kind": "person", "name": format!("person {id}"), "unit_id": unit, "birth_date": "2011-04-01"}),
    );
    for (category, from) in categories {
        certify(st, r, category, from);
    }
    r
}

fn household(st: &Store, id: u128, unit: Uuid) -> Uuid {
    let r = uid(id);
    st.add(
        "carelog.recipient.registered",
        "2022-08-01",
        json!({"recipient_id": r, "kind": "household", "name": format!("household {id}"), "unit_id": unit, "birth_date": null}),
    );
    certify(st, r, "extremely_poor", "2022-09-01");
    r
}

fn certify(st: &Store, r: Uuid, category: &str, from: &str) -> Source {
    st.add(
        "carelog.category.certified",
        from,
        json!({"recipient_id": r, "category": category, "certified_by": "county bureau", "from": from, "to": null}),
    )
}

fn end_category(st: &Store, r: Uuid, category: &str, day: &str) {
    st.add(
        "carelog.category.ended",
        day,
        json!({"recipient_id": r, "category": category, "on": day, "reason": "re-assessed"}),
    );
}

fn pair(st: &Store, id: u128, cadre: Uuid, recipient: Uuid, day: &str) -> (Uuid, Source) {
    let p = uid(id);
    let src = st.add(
        "carelog.pairing.established",
        day,
        json!({"pairing_id": p, "cadre_id": cadre, "recipient_id": recipient, "on": day}),
    );
    (p, src)
}

fn transfer(st: &Store, pairing: Uuid, to: Uuid, day: &str) -> Source {
    st.add(
        "carelog.pairing.transferred",
        day,
        json!({"pairing_id": pairing, "to_cadre_id": to, "on": day, "reason": "reassigned"}),
    )
}

fn contact(st: &Store, pairing: Uuid, day: &str, channel: &str) -> Source {
    st.add(
        "carelog.contact.recorded",
        day,
        json!({"pairing_id": pairing, "channel": channel, "summary": "talked", "duration_minutes": 10}),
    )
}

fn visit(st: &Store, pairing: Uuid, day: &str) -> Source {
    st.add(
        "carelog.visit.recorded",
        day,
        json!({"pairing_id": pairing, "trip": "own", "group_trip_id": null, "companions": [], "observations": "roof ok"}),
    )
}

fn cash(pairing: Uuid, fen: i64, source: &str) -> Value {
    json!({"pairing_id": pairing, "form": "cash", "value_fen": fen, "fund_source": source, "item": null, "quantity": null, "unit_value_fen": null, "receipt_ref": "R-1"})
}

fn goods(pairing: Uuid, quantity: i64, unit_fen: i64, source: &str) -> Value {
    json!({"pairing_id": pairing, "form": "goods", "value_fen": quantity * unit_fen, "fund_source": source, "item": "rice", "quantity": quantity, "unit_value_fen": unit_fen, "receipt_ref": "R-2"})
}

fn aid(st: &Store, day: &str, data: Value) -> Source {
    st.add("carelog.aid.given", day, data)
}

fn enrol(st: &Store, pupil: Uuid, school: Uuid, day: &str) {
    st.add(
        "carelog.pupil.enrolled",
        day,
        json!({"pupil_id": pupil, "school_id": school, "on": day}),
    );
}

fn left(st: &Store, pupil: Uuid, day: &str, reason: &str, cause: Option<&str>) -> Source {
    st.add(
        "carelog.pupil.left",
        day,
        json!({"pupil_id": pupil, "on": day, "reason": reason, "dropout_cause": cause, "note": "left"}),
    )
}

fn adjustment(target: Source, by: Source, kind: AdjustmentKind, reason: &str) -> Adjustment {
    Adjustment {
        target,
        by,
        kind,
        reason: reason.into(),
    }
}

// ---- pairings -------------------------------------------------------------------------------

#[test]
fn pairings_active_on_a_date_and_each_cadres_load() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let disabled = person(&st, 102, w.township, &[("severely_disabled", "2022-09-01")]);
    let poor = household(&st, 103, w.township);
    let (_, e1) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let (_, e2) = pair(&st, 202, w.a, disabled, "2023-01-10");
    let (p3, e3) = pair(&st, 203, w.b, poor, "2023-02-01");

    assert_eq!(st.query("pairings", &on("2023-01-09"))["active_count"], 0);
    let jan = st.query("pairings", &on("2023-01-20"));
    assert_eq!(jan["on"], "2023-01-20");
    assert_eq!(jan["active_count"], 2);
    assert_eq!(
        jan["load"],
        json!({s(w.a): {"name": "Zhang", "active_pairings": 2}})
    );
    let feb = st.query("pairings", &on("2023-02-01"));
    assert_eq!(feb["active_count"], 3);
    assert_eq!(
        feb["load"],
        json!({s(w.a): {"name": "Zhang", "active_pairings": 2}, s(w.b): {"name": "Li", "active_pairings": 1}})
    );
    let active: Vec<&Value> = feb["active"].as_array().expect("a list").iter().collect();
    assert!(active.contains(
        &&json!({"pairing_id": p3, "recipient_id": poor, "cadre_id": w.b, "since": "2023-02-01"})
    ));
    // Without a day, the last event's day.
    assert_eq!(st.query("pairings", &Query::default())["on"], "2023-02-01");

    let figures = st.figures("pairings", &on("2023-03-01"));
    let get = |m: &str| figures.iter().find(|f| f.metric == m).expect("a figure");
    assert_eq!(get("cadres_paired").value, 2);
    assert_eq!(get("cadres_paired").events, vec![e1, e3]);
    assert_eq!(get("paired_orphans").events, vec![e1]);
    assert_eq!(get("paired_severely_disabled").events, vec![e2]);
    assert_eq!(get("paired_poor_households").events, vec![e3]);
    assert_eq!(
        st.values("pairings", &on("2023-01-15")),
        pairs(&[
            ("cadres_paired", 1),
            ("paired_orphans", 1),
            ("paired_severely_disabled", 1),
            ("paired_poor_households", 0),
        ])
    );
}

#[test]
fn a_transferred_pairings_history_keeps_the_old_cadre() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, established) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let moved = transfer(&st, p, w.b, "2023-06-15");

    let before = st.query("pairings", &on("2023-06-14"));
    assert_eq!(before["active"][0]["cadre_id"], json!(w.a));
    assert_eq!(before["load"][s(w.a)]["active_pairings"], 1);
    let after = st.query("pairings", &on("2023-06-15"));
    assert_eq!(after["active"][0]["cadre_id"], json!(w.b));
    assert_eq!(after["active"][0]["since"], "2023-01-10");
    assert_eq!(
        after["load"],
        json!({s(w.b): {"name": "Li", "active_pairings": 1}})
    );
    assert_eq!(
        after["recipient_history"][s(orphan)],
        json!([
            {"pairing_id": p, "cadre_id": w.a, "from": "2023-01-10", "pairing_ended": null},
            {"pairing_id": p, "cadre_id": w.b, "from": "2023-06-15", "pairing_ended": null},
        ])
    );
    // The cadre paired on a day is the holder that day, with the event that made them so.
    let a = st.figure("pairings", "cadres_paired", &on("2023-06-01"));
    assert_eq!((a.value, a.events), (1, vec![established]));
    let b = st.figure("pairings", "cadres_paired", &on("2023-07-01"));
    assert_eq!((b.value, b.events), (1, vec![moved]));
    // The recipient is counted once, by the pairing's establishment.
    let o = st.figure("pairings", "paired_orphans", &on("2023-07-01"));
    assert_eq!((o.value, o.events), (1, vec![established]));
}

#[test]
fn a_suspended_or_ended_pairing_is_not_active() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let poor = household(&st, 102, w.township);
    let (p, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let (q, _) = pair(&st, 202, w.b, poor, "2023-01-10");
    st.add(
        "carelog.pairing.suspended",
        "2023-04-01",
        json!({"pairing_id": p, "on": "2023-04-01", "reason": "in hospital"}),
    );
    st.add(
        "carelog.pairing.resumed",
        "2023-05-01",
        json!({"pairing_id": p, "on": "2023-05-01"}),
    );
    st.add(
        "carelog.pairing.ended",
        "2023-09-30",
        json!({"pairing_id": q, "on": "2023-09-30", "reason": "moved away"}),
    );
    let active = |day: &str| -> Vec<Value> {
        st.query("pairings", &on(day))["active"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|a| a["pairing_id"].clone())
            .collect()
    };
    assert_eq!(active("2023-03-31"), vec![json!(p), json!(q)]);
    assert_eq!(active("2023-04-01"), vec![json!(q)]);
    assert_eq!(active("2023-04-30"), vec![json!(q)]);
    assert_eq!(active("2023-05-01"), vec![json!(p), json!(q)]);
    assert_eq!(active("2023-09-30"), vec![json!(p), json!(q)]);
    assert_eq!(active("2023-10-01"), vec![json!(p)]);
    assert_eq!(
        st.values("pairings", &on("2023-04-15")),
        pairs(&[
            ("cadres_paired", 1),
            ("paired_orphans", 0),
            ("paired_severely_disabled", 0),
            ("paired_poor_households", 1),
        ])
    );
    assert_eq!(
        st.values("pairings", &on("2023-10-01")),
        pairs(&[
            ("cadres_paired", 1),
            ("paired_orphans", 1),
            ("paired_severely_disabled", 0),
            ("paired_poor_households", 0),
        ])
    );
    // The ended pairing's history says when it ended.
    assert_eq!(
        st.query("pairings", &on("2023-10-01"))["recipient_history"][s(poor)][0]["pairing_ended"],
        "2023-09-30"
    );
}

#[test]
fn paired_figures_follow_the_category_on_the_day_and_a_voided_pairing_is_gone() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let mistaken = person(&st, 102, w.township, &[("orphan", "2022-09-01")]);
    pair(&st, 201, w.a, orphan, "2023-01-10");
    let (_, wrong) = pair(&st, 202, w.b, mistaken, "2023-01-10");
    assert_eq!(
        st.figure("pairings", "paired_orphans", &on("2023-02-01"))
            .value,
        2
    );
    st.void(wrong, "2023-01-11", "wrong cadre");
    end_category(&st, orphan, "orphan", "2023-08-01");
    assert_eq!(
        st.values("pairings", &on("2023-08-01")),
        pairs(&[
            ("cadres_paired", 1),
            ("paired_orphans", 1),
            ("paired_severely_disabled", 0),
            ("paired_poor_households", 0),
        ])
    );
    // The day after the category ended the pairing goes on, but is no longer an orphan's.
    assert_eq!(
        st.values("pairings", &on("2023-08-02")),
        pairs(&[
            ("cadres_paired", 1),
            ("paired_orphans", 0),
            ("paired_severely_disabled", 0),
            ("paired_poor_households", 0),
        ])
    );
    assert_eq!(st.query("pairings", &on("2023-08-02"))["active_count"], 1);
}

// ---- activity_totals -----------------------------------------------------------------------

const ALL_ZERO: [(&str, i64); 7] = [
    ("aid_given_fen", 0),
    ("contacts", 0),
    ("difficulties_resolved", 0),
    ("errands_done", 0),
    ("escalations", 0),
    ("home_visits", 0),
    ("policy_followups", 0),
];

fn totals(v: &[(&str, i64)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, n) in ALL_ZERO {
        m.insert(k.into(), json!(n));
    }
    for (k, n) in v {
        m.insert((*k).into(), json!(n));
    }
    Value::Object(m)
}

#[test]
fn activity_totals_by_metric_cadre_unit_and_category_within_a_period() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let poor = household(&st, 102, w.township);
    let (p1, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let (p2, _) = pair(&st, 202, w.c, poor, "2023-01-10");
    contact(&st, p1, "2023-01-15", "phone");
    let c2 = contact(&st, p1, "2023-02-05", "video");
    let c3 = contact(&st, p2, "2023-02-10", "message");
    contact(&st, p2, "2023-03-01", "phone");
    visit(&st, p1, "2023-02-07");
    visit(&st, p2, "2023-01-20");
    st.add(
        "carelog.policy_followup.recorded",
        "2023-02-12",
        json!({"pairing_id": p1, "policy": "allowance", "agency": "civil affairs", "outcome": "approved"}),
    );
    st.add(
        "carelog.errand.done",
        "2023-02-20",
        json!({"pairing_id": p2, "description": "card", "result": "done"}),
    );
    aid(&st, "2023-02-14", cash(p1, 20_000, "bureau union"));
    aid(&st, "2023-03-05", goods(p2, 2, 3_000, "charity"));
    aid(&st, "2023-01-25", cash(p2, 5_000, "cadre's own"));
    let (d1, d2) = (uid(301), uid(302));
    st.add(
        "carelog.difficulty.raised",
        "2023-01-20",
        json!({"difficulty_id": d1, "pairing_id": p1, "description": "no coal"}),
    );
    st.add(
        "carelog.difficulty.resolved",
        "2023-02-15",
        json!({"difficulty_id": d1, "how": "coal delivered"}),
    );
    st.add(
        "carelog.difficulty.raised",
        "2023-02-01",
        json!({"difficulty_id": d2, "pairing_id": p2, "description": "roof"}),
    );
    st.add(
        "carelog.difficulty.resolved",
        "2023-03-10",
        json!({"difficulty_id": d2, "how": "repaired"}),
    );
    st.add(
        "carelog.escalation.raised",
        "2023-02-25",
        json!({"escalation_id": uid(401), "pairing_id": p2, "to_level": "county", "issue": "housing"}),
    );

    let feb = st.query("activity_totals", &period("2023-02-01", "2023-02-28"));
    assert_eq!(feb["period"], "2023-02-01..2023-02-28");
    assert_eq!(
        feb["totals"],
        totals(&[
            ("contacts", 2),
            ("home_visits", 1),
            ("policy_followups", 1),
            ("difficulties_resolved", 1),
            ("errands_done", 1),
            ("aid_given_fen", 20_000),
            ("escalations", 1),
        ])
    );
    assert_eq!(
        feb["by_cadre"],
        json!({
            s(w.a): {"contacts": 1, "home_visits": 1, "policy_followups": 1, "difficulties_resolved": 1, "aid_given_fen": 20_000},
            s(w.c): {"contacts": 1, "errands_done": 1, "escalations": 1},
        })
    );
    assert_eq!(
        feb["by_unit"],
        json!({
            s(w.bureau): {"contacts": 1, "home_visits": 1, "policy_followups": 1, "difficulties_resolved": 1, "aid_given_fen": 20_000},
            s(w.township): {"contacts": 1, "errands_done": 1, "escalations": 1},
        })
    );
    assert_eq!(
        feb["by_category"],
        json!({
            "orphan": {"contacts": 1, "home_visits": 1, "policy_followups": 1, "difficulties_resolved": 1, "aid_given_fen": 20_000},
            "extremely_poor": {"contacts": 1, "errands_done": 1, "escalations": 1},
        })
    );
    let year = st.query("activity_totals", &period("2023-01-01", "2023-12-31"));
    assert_eq!(
        year["totals"],
        totals(&[
            ("contacts", 4),
            ("home_visits", 2),
            ("policy_followups", 1),
            ("difficulties_resolved", 2),
            ("errands_done", 1),
            ("aid_given_fen", 31_000),
            ("escalations", 1),
        ])
    );
    // Figures carry the events behind them.
    let contacts = st.figure(
        "activity_totals",
        "contacts",
        &period("2023-02-01", "2023-02-28"),
    );
    assert_eq!((contacts.value, contacts.events), (2, vec![c2, c3]));
    assert!(contacts.adjustments.is_empty());
    assert_eq!(
        st.values("activity_totals", &period("2023-03-01", "2023-03-31")),
        pairs(&[
            ("contacts", 1),
            ("home_visits", 0),
            ("policy_followups", 0),
            ("difficulties_resolved", 1),
            ("errands_done", 0),
            ("aid_given_fen", 6_000),
            ("escalations", 0),
        ])
    );
}

#[test]
fn the_credited_cadre_is_the_holder_on_the_activitys_day() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    contact(&st, p, "2023-06-10", "phone");
    aid(&st, "2023-06-11", cash(p, 1_000, "bureau union"));
    transfer(&st, p, w.c, "2023-06-15");
    contact(&st, p, "2023-06-20", "phone");
    // Recorded after the transfer, but it happened before: still the old holder's.
    contact(&st, p, "2023-06-12", "video");
    aid(&st, "2023-06-21", cash(p, 2_000, "bureau union"));

    let june = st.query("activity_totals", &period("2023-06-01", "2023-06-30"));
    assert_eq!(
        june["by_cadre"],
        json!({
            s(w.a): {"contacts": 2, "aid_given_fen": 1_000},
            s(w.c): {"contacts": 1, "aid_given_fen": 2_000},
        })
    );
    // Units follow the credited cadre.
    assert_eq!(
        june["by_unit"],
        json!({
            s(w.bureau): {"contacts": 2, "aid_given_fen": 1_000},
            s(w.township): {"contacts": 1, "aid_given_fen": 2_000},
        })
    );
    // Only the part of the period before the transfer: the old holder alone.
    let early = st.query("activity_totals", &period("2023-06-01", "2023-06-14"));
    assert_eq!(
        early["by_cadre"],
        json!({s(w.a): {"contacts": 2, "aid_given_fen": 1_000}})
    );
}

#[test]
fn a_voided_activity_drops_out_and_appears_in_adjustments() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let kept = contact(&st, p, "2023-03-01", "phone");
    let twice = contact(&st, p, "2023-03-02", "phone");
    let v = visit(&st, p, "2023-03-03");
    let void = st.void(twice, "2023-03-05", "entered twice");
    let void_visit = st.void(v, "2023-04-01", "was a phone call");

    let q = period("2023-03-01", "2023-03-31");
    let contacts = st.figure("activity_totals", "contacts", &q);
    assert_eq!(contacts.value, 1);
    assert_eq!(contacts.events, vec![kept]);
    assert_eq!(
        contacts.adjustments,
        vec![adjustment(
            twice,
            void,
            AdjustmentKind::Voided,
            "entered twice"
        )]
    );
    let visits = st.figure("activity_totals", "home_visits", &q);
    assert_eq!(visits.value, 0);
    assert!(visits.events.is_empty());
    // The adjustment is counted on the voided event's day, not the void's.
    assert_eq!(
        visits.adjustments,
        vec![adjustment(
            v,
            void_visit,
            AdjustmentKind::Voided,
            "was a phone call"
        )]
    );
    let april = st.figure(
        "activity_totals",
        "home_visits",
        &period("2023-04-01", "2023-04-30"),
    );
    assert!(april.adjustments.is_empty());
    assert_eq!(
        st.query("activity_totals", &q)["totals"],
        totals(&[("contacts", 1)])
    );
}

#[test]
fn a_corrected_aid_amount_replaces_the_old_one() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let other = aid(&st, "2023-04-02", goods(p, 3, 2_500, "charity"));
    let given = aid(&st, "2023-04-01", cash(p, 10_000, "bureau union"));
    let first = st.correct(
        given,
        "2023-04-10",
        "carelog.aid.given",
        cash(p, 12_000, "bureau union"),
    );
    let q = period("2023-04-01", "2023-04-30");
    let fig = st.figure("activity_totals", "aid_given_fen", &q);
    assert_eq!(fig.value, 12_000 + 7_500);
    assert_eq!(fig.events, vec![other, given]);
    assert_eq!(
        fig.adjustments,
        vec![adjustment(
            given,
            first,
            AdjustmentKind::Corrected,
            "corrected"
        )]
    );
    // Corrected again: the latest correction wins.
    let second = st.correct(
        given,
        "2023-04-11",
        "carelog.aid.given",
        cash(p, 9_000, "cadre's own"),
    );
    let fig = st.figure("activity_totals", "aid_given_fen", &q);
    assert_eq!(fig.value, 9_000 + 7_500);
    assert_eq!(fig.adjustments.len(), 2);
    assert_eq!(fig.adjustments[1].by, second);
    let funds = st.query("funds", &q);
    assert_eq!(funds["cash_fen"], 9_000);
    assert_eq!(
        funds["by_fund_source_fen"],
        json!({"cadre's own": 9_000, "charity": 7_500})
    );
}

/// A transfer is recorded with the day it took effect, which can be before activities already
/// recorded (the paperwork came late). The records then say the new cadre held the pairing on
/// those activities' days, and `pairings`/`coverage` say so; `activity_totals` (and `funds`)
/// keep crediting the cadre who held it when the activity was *recorded*. A later correction of
/// the same activity (say, its summary) silently moves the credit to the new holder.
#[test]
fn a_transfer_recorded_after_activities_it_covers_credits_the_new_holder() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    contact(&st, p, "2023-06-20", "phone");
    aid(&st, "2023-06-21", cash(p, 2_000, "bureau union"));
    transfer(&st, p, w.c, "2023-06-15");
    let on_day = st.query("pairings", &on("2023-06-20"));
    assert_eq!(on_day["active"][0]["cadre_id"], json!(w.c));
    let june = st.query("activity_totals", &period("2023-06-01", "2023-06-30"));
    assert_eq!(
        june["by_cadre"],
        json!({s(w.c): {"contacts": 1, "aid_given_fen": 2_000}})
    );
    let funds = st.query("funds", &period("2023-06-01", "2023-06-30"));
    assert_eq!(funds["by_cadre_fen"], json!({s(w.c): 2_000}));
}

/// A category is certified `from` a day that may be before the certification is recorded.
/// `pairings` evaluates categories on the day asked (so its paired_orphans counts the recipient
/// from `from`), but `activity_totals` fixes an activity's categories when it is applied, so
/// activities recorded before the certificate never count under the category.
#[test]
fn a_category_certified_from_an_earlier_day_counts_earlier_activities() {
    let st = Store::new();
    let w = world(&st);
    let child = person(&st, 101, w.township, &[]);
    let (p, _) = pair(&st, 201, w.a, child, "2023-01-10");
    contact(&st, p, "2023-01-20", "phone");
    certify(&st, child, "orphan", "2023-01-01");
    assert_eq!(
        st.figure("pairings", "paired_orphans", &on("2023-01-20"))
            .value,
        1
    );
    let jan = st.query("activity_totals", &period("2023-01-01", "2023-01-31"));
    assert_eq!(jan["by_category"], json!({"orphan": {"contacts": 1}}));
}

// ---- funds ----------------------------------------------------------------------------------

#[test]
fn funds_cash_and_goods_by_source_recipient_and_cadre_are_conserved() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let poor = household(&st, 102, w.township);
    let (p1, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let (p2, _) = pair(&st, 202, w.b, poor, "2023-01-10");
    aid(&st, "2023-02-01", cash(p1, 10_000, "bureau union"));
    aid(&st, "2023-02-10", goods(p1, 3, 2_500, "cadre's own"));
    aid(&st, "2023-03-01", cash(p2, 5_000, "cadre's own"));
    let voided = aid(&st, "2023-03-15", goods(p2, 2, 1_000, "charity"));
    let fixed = aid(&st, "2023-04-01", cash(p2, 3_000, "bureau union"));
    st.void(voided, "2023-03-16", "returned");
    st.correct(
        fixed,
        "2023-04-02",
        "carelog.aid.given",
        cash(p2, 4_000, "bureau union"),
    );

    let all = st.query("funds", &Query::default());
    assert_eq!(
        all,
        json!({
            "period": null,
            "gifts": 4,
            "total_fen": 26_500, "cash_fen": 19_000, "goods_fen": 7_500,
            "by_fund_source_fen": {"bureau union": 14_000, "cadre's own": 12_500},
            "by_recipient_fen": {s(orphan): 17_500, s(poor): 9_000},
            "by_cadre_fen": {s(w.a): 17_500, s(w.b): 9_000},
            "conservation_holds": true,
        })
    );
    let feb = st.query("funds", &period("2023-02-01", "2023-02-28"));
    assert_eq!(
        (
            &feb["gifts"],
            &feb["total_fen"],
            &feb["cash_fen"],
            &feb["goods_fen"]
        ),
        (&json!(2), &json!(17_500), &json!(10_000), &json!(7_500))
    );
    assert_eq!(feb["conservation_holds"], true);
    // A period with nothing in it still adds up.
    let empty = st.query("funds", &period("2023-08-01", "2023-08-31"));
    assert_eq!(
        (&empty["total_fen"], &empty["conservation_holds"]),
        (&json!(0), &json!(true))
    );
}

// ---- escalations ----------------------------------------------------------------------------

#[test]
fn escalation_stage_on_a_date_and_overdue_by_deadline() {
    let st = Store::new();
    let w = world(&st);
    let poor = household(&st, 101, w.township);
    let (p, _) = pair(&st, 201, w.a, poor, "2023-01-10");
    let (e1, e2, e3) = (uid(401), uid(402), uid(403));
    let raise = |id: Uuid, day: &str| {
        st.add(
            "carelog.escalation.raised",
            day,
            json!({"escalation_id": id, "pairing_id": p, "to_level": "county", "issue": "housing"}),
        )
    };
    raise(e1, "2023-03-01");
    st.add(
        "carelog.escalation.acknowledged",
        "2023-03-05",
        json!({"escalation_id": e1, "by": "county"}),
    );
    st.add(
        "carelog.escalation.answered",
        "2023-03-20",
        json!({"escalation_id": e1, "answer": "funded"}),
    );
    raise(e2, "2023-03-10");
    let wrong = raise(e3, "2023-03-12");
    st.void(wrong, "2023-03-13", "raised twice");
    st.add(
        "carelog.escalation.closed",
        "2023-04-10",
        json!({"escalation_id": e1, "outcome": "repaired"}),
    );

    let stage = |day: &str, id: Uuid| -> Value {
        st.query("escalations", &on(day))["escalations"]
            .as_array()
            .expect("a list")
            .iter()
            .find(|x| x["escalation_id"] == json!(id))
            .map_or(Value::Null, |x| x["stage"].clone())
    };
    assert_eq!(stage("2023-02-28", e1), Value::Null);
    assert_eq!(stage("2023-03-03", e1), "open");
    assert_eq!(stage("2023-03-05", e1), "acknowledged");
    assert_eq!(stage("2023-03-25", e1), "answered");
    assert_eq!(stage("2023-04-10", e1), "closed");
    assert_eq!(stage("2023-03-25", e2), "open");
    assert_eq!(stage("2023-03-25", e3), Value::Null, "voided");

    let q = st.query("escalations", &on("2023-04-05"));
    assert_eq!(q["deadline_days"], 30);
    assert_eq!(q["by_stage"], json!({"answered": 1, "open": 1}));
    assert_eq!(q["overdue"], 1, "35 days old and not closed");
    let list = q["escalations"].as_array().expect("a list");
    assert_eq!(
        list[0],
        json!({"escalation_id": e1, "pairing_id": p, "to_level": "county", "raised_on": "2023-03-01", "stage": "answered", "age_days": 35, "overdue": true})
    );
    assert_eq!(list[1]["age_days"], 26);
    assert_eq!(list[1]["overdue"], false);
    let strict = st.query(
        "escalations",
        &with(on("2023-04-05"), "deadline_days", "20"),
    );
    assert_eq!(
        (&strict["deadline_days"], &strict["overdue"]),
        (&json!(20), &json!(2))
    );
    // Closed: no longer overdue, however old.
    let later = st.query("escalations", &on("2023-06-01"));
    assert_eq!(later["by_stage"], json!({"closed": 1, "open": 1}));
    assert_eq!(later["overdue"], 1);
    // A period counts the escalations raised in it.
    let early = st.query("escalations", &period("2023-03-01", "2023-03-05"));
    assert_eq!(early["by_stage"], json!({"acknowledged": 1}));
}

// ---- difficulties ---------------------------------------------------------------------------

fn difficulty_world(st: &Store) {
    let w = world(st);
    let orphan = person(st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, _) = pair(st, 201, w.a, orphan, "2023-01-10");
    for (id, day) in [
        (301, "2023-03-01"),
        (302, "2023-03-05"),
        (303, "2023-03-10"),
    ] {
        st.add(
            "carelog.difficulty.raised",
            day,
            json!({"difficulty_id": uid(id), "pairing_id": p, "description": format!("difficulty {id}")}),
        );
    }
    st.add(
        "carelog.difficulty.resolved",
        "2023-03-20",
        json!({"difficulty_id": uid(301), "how": "fixed"}),
    );
    st.add(
        "carelog.difficulty.dropped",
        "2023-04-01",
        json!({"difficulty_id": uid(302), "reason": "moved away"}),
    );
}

#[test]
fn difficulties_raised_resolved_dropped_and_open() {
    let st = Store::new();
    difficulty_world(&st);
    let all = st.query("difficulties", &Query::default());
    assert_eq!(
        (
            &all["raised"],
            &all["resolved"],
            &all["dropped"],
            &all["open_count"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(all["open"][0]["difficulty_id"], json!(uid(303)));
    assert_eq!(all["open"][0]["raised_on"], "2023-03-10");
    let march = st.query("difficulties", &period("2023-03-01", "2023-03-31"));
    assert_eq!(
        (&march["raised"], &march["resolved"], &march["dropped"]),
        (&json!(3), &json!(1), &json!(0))
    );
    let april = st.query("difficulties", &period("2023-04-01", "2023-04-30"));
    assert_eq!(
        (&april["raised"], &april["resolved"], &april["dropped"]),
        (&json!(0), &json!(0), &json!(1))
    );
    // Resolutions are what activity_totals counts as difficulties resolved.
    assert_eq!(
        st.figure(
            "activity_totals",
            "difficulties_resolved",
            &period("2023-01-01", "2023-12-31")
        )
        .value,
        1
    );
}

/// `open` ignores the day asked about for resolutions and drops: a difficulty resolved after
/// the day is not counted as open on it, although `raised`/`resolved` respect the day.
#[test]
fn a_difficulty_resolved_later_was_open_on_an_earlier_day() {
    let st = Store::new();
    difficulty_world(&st);
    let mid = st.query("difficulties", &on("2023-03-15"));
    assert_eq!((&mid["raised"], &mid["resolved"]), (&json!(3), &json!(0)));
    assert_eq!(mid["open_count"], 3, "none was resolved or dropped by then");
}

// ---- student_aid ----------------------------------------------------------------------------

#[test]
fn student_aid_person_times_and_money_by_programme_and_term() {
    let st = Store::new();
    let w = world(&st);
    let k1 = person(&st, 101, w.school, &[("orphan", "2022-06-01")]);
    let k2 = person(&st, 102, w.school, &[("disabled_child", "2022-06-01")]);
    let k3 = person(&st, 103, w.school, &[("unsupported", "2022-06-01")]);
    for k in [k1, k2, k3] {
        enrol(&st, k, w.school, "2022-09-01");
    }
    let pay = |day: &str, pupil: Uuid, programme: &str, term: &str, fen: i64| {
        st.add(
            "carelog.student_aid.paid",
            day,
            json!({"pupil_id": pupil, "programme": programme, "term": term, "amount_fen": fen}),
        )
    };
    let o1 = pay("2023-03-15", k1, "for_orphans", "2023-spring", 50_000);
    let o2 = pay("2023-09-15", k1, "for_orphans", "2023-autumn", 50_000);
    let d = pay("2023-03-16", k2, "for_disabled", "2023-spring", 30_000);
    let u = pay("2023-03-17", k3, "for_unsupported", "2023-spring", 40_000);
    pay("2023-03-18", k1, "other", "2023-spring", 1_000);
    let fix = st.correct(
        d,
        "2023-04-01",
        "carelog.student_aid.paid",
        json!({"pupil_id": k2, "programme": "for_disabled", "term": "2023-spring", "amount_fen": 35_000}),
    );
    let void = st.void(u, "2023-04-02", "paid by another county");

    let all = st.query("student_aid", &Query::default());
    assert_eq!(
        all,
        json!({
            "period": null,
            "person_times": 4,
            "paid_fen": 136_000,
            "by_programme_and_term": {
                "for_orphans": {
                    "2023-spring": {"person_times": 1, "paid_fen": 50_000},
                    "2023-autumn": {"person_times": 1, "paid_fen": 50_000},
                },
                "for_disabled": {"2023-spring": {"person_times": 1, "paid_fen": 35_000}},
                "other": {"2023-spring": {"person_times": 1, "paid_fen": 1_000}},
            },
        })
    );
    let year = period("2023-01-01", "2023-12-31");
    assert_eq!(
        st.values("student_aid", &year),
        pairs(&[
            ("student_aid_orphans_person_times", 2),
            ("student_aid_unsupported_person_times", 0),
            ("student_aid_disabled_person_times", 1),
            ("student_aid_paid_fen", 136_000),
        ])
    );
    let orphans = st.figure("student_aid", "student_aid_orphans_person_times", &year);
    assert_eq!(orphans.events, vec![o1, o2]);
    let unsupported = st.figure("student_aid", "student_aid_unsupported_person_times", &year);
    assert_eq!(
        unsupported.adjustments,
        vec![adjustment(
            u,
            void,
            AdjustmentKind::Voided,
            "paid by another county"
        )]
    );
    let disabled = st.figure("student_aid", "student_aid_disabled_person_times", &year);
    assert_eq!(
        disabled.adjustments,
        vec![adjustment(d, fix, AdjustmentKind::Corrected, "corrected")]
    );
    // Counted by the day paid.
    let spring = st.query("student_aid", &period("2023-01-01", "2023-06-30"));
    assert_eq!(
        (&spring["person_times"], &spring["paid_fen"]),
        (&json!(3), &json!(86_000))
    );
}

// ---- placements -----------------------------------------------------------------------------

#[test]
fn placements_by_mode_at_the_period_end_after_a_change() {
    let st = Store::new();
    let w = world(&st);
    let k4 = person(&st, 104, w.school, &[("disabled_child", "2022-06-01")]);
    let k5 = person(&st, 105, w.school, &[("disabled_child", "2022-06-01")]);
    let k6 = person(&st, 106, w.school, &[("disabled_child", "2022-06-01")]);
    let decide = |id: u128, pupil: Uuid, mode: &str, day: &str| {
        st.add(
            "carelog.placement.decided",
            day,
            json!({"placement_id": uid(id), "pupil_id": pupil, "mode": mode, "school_id": w.school, "on": day}),
        )
    };
    let pd1 = decide(501, k4, "regular_class", "2023-03-01");
    let pd2 = decide(502, k5, "home_teaching", "2023-04-01");
    let pd3 = decide(503, k6, "special_school", "2022-10-01");
    st.add(
        "carelog.placement.changed",
        "2023-09-01",
        json!({"placement_id": uid(501), "mode": "special_school", "school_id": w.school2, "on": "2023-09-01"}),
    );

    let year = period("2023-01-01", "2023-12-31");
    assert_eq!(
        st.values("placements", &year),
        pairs(&[
            ("placements_regular_class", 0),
            ("placements_special_school", 1),
            ("placements_home_teaching", 1),
            ("placements_total", 2),
        ])
    );
    assert_eq!(
        st.figure("placements", "placements_special_school", &year)
            .events,
        vec![pd1]
    );
    assert_eq!(
        st.figure("placements", "placements_total", &year).events,
        vec![pd1, pd2]
    );
    // At the end of June the change had not happened yet.
    assert_eq!(
        st.values("placements", &period("2023-01-01", "2023-06-30")),
        pairs(&[
            ("placements_regular_class", 1),
            ("placements_special_school", 0),
            ("placements_home_teaching", 1),
            ("placements_total", 2),
        ])
    );
    let since_2020 = period("2020-01-01", "2023-12-31");
    assert_eq!(
        st.values("placements", &since_2020),
        pairs(&[
            ("placements_regular_class", 0),
            ("placements_special_school", 2),
            ("placements_home_teaching", 1),
            ("placements_total", 3),
        ])
    );
    assert_eq!(
        st.figure("placements", "placements_special_school", &since_2020)
            .events,
        vec![pd1, pd3]
    );
    let view = st.query("placements", &year);
    assert_eq!(
        view["changes"],
        json!([{"placement_id": uid(501), "pupil_id": k4, "on": "2023-09-01", "from_mode": "regular_class", "to_mode": "special_school"}])
    );
    assert_eq!(view["totals"]["placements_total"], 2);
}

// ---- care_plans -----------------------------------------------------------------------------

#[test]
fn care_plans_open_overdue_reviews_and_welfare_home_figures() {
    let st = Store::new();
    let w = world(&st);
    let k1 = person(&st, 101, w.school, &[("orphan", "2022-06-01")]);
    let k2 = person(&st, 102, w.school2, &[("orphan", "2022-06-01")]);
    let k3 = person(&st, 103, w.school, &[("unsupported", "2022-06-01")]);
    enrol(&st, k1, w.school, "2022-09-01");
    enrol(&st, k2, w.school2, "2022-09-01");
    enrol(&st, k3, w.school, "2022-09-01");
    let open = |id: u128, pupil: Uuid, teacher: Uuid, scheme: &str, day: &str, review: &str| {
        st.add(
            "carelog.care_plan.opened",
            day,
            json!({"plan_id": uid(id), "pupil_id": pupil, "teacher_id": teacher, "scheme": scheme, "goals": "reading", "measures": "tutoring", "next_review": review}),
        )
    };
    let cp1 = open(
        601,
        k1,
        w.t1,
        "one_pupil_one_plan",
        "2023-02-01",
        "2023-05-01",
    );
    let cp2 = open(
        602,
        k2,
        w.t2,
        "one_pupil_one_plan",
        "2023-02-01",
        "2023-05-01",
    );
    let cp3 = open(603, k3, w.t1, "one_to_one", "2023-02-10", "2023-05-15");
    let cp4 = open(
        604,
        k3,
        w.t1,
        "one_pupil_one_plan",
        "2023-02-15",
        "2023-09-01",
    );
    st.add(
        "carelog.care_plan.reviewed",
        "2023-04-20",
        json!({"plan_id": uid(601), "progress": "better", "next_review": "2023-08-01"}),
    );
    st.add(
        "carelog.care_plan.teacher_changed",
        "2023-03-01",
        json!({"plan_id": uid(603), "teacher_id": w.t2}),
    );
    st.add(
        "carelog.care_plan.closed",
        "2023-07-01",
        json!({"plan_id": uid(604), "reason": "moved to a relative"}),
    );
    st.add(
        "carelog.pupil.moved",
        "2023-06-15",
        json!({"pupil_id": k1, "school_id": w.school2, "on": "2023-06-15"}),
    );

    let june = st.query("care_plans", &on("2023-06-01"));
    assert_eq!(
        (&june["open_count"], &june["overdue_reviews"]),
        (&json!(4), &json!(2))
    );
    let plan = |v: &Value, id: u128| -> Value {
        v["open"]
            .as_array()
            .expect("a list")
            .iter()
            .find(|p| p["plan_id"] == json!(uid(id)))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        plan(&june, 601),
        json!({"plan_id": uid(601), "pupil_id": k1, "scheme": "one_pupil_one_plan", "teacher_id": w.t1, "last_review": "2023-04-20", "next_review": "2023-08-01", "review_overdue": false})
    );
    assert_eq!(plan(&june, 602)["review_overdue"], true);
    assert_eq!(plan(&june, 603)["teacher_id"], json!(w.t2));
    assert_eq!(plan(&june, 603)["review_overdue"], true);
    let figures = st.figures("care_plans", &on("2023-06-01"));
    let get = |m: &str| {
        figures
            .iter()
            .find(|f| f.metric == m)
            .map(|f| (f.value, f.events.clone()))
    };
    assert_eq!(
        get("welfare_home_orphans_with_plan"),
        Some((3, vec![cp1, cp2, cp4]))
    );
    assert_eq!(get("welfare_home_plan_schools"), Some((2, vec![cp1, cp2])));
    assert_eq!(get("one_to_one_plans"), Some((1, vec![cp3])));
    // Closed on 1 July: not open that day. k1 moved to school2 in June: one school left.
    assert_eq!(st.query("care_plans", &on("2023-07-01"))["open_count"], 3);
    assert_eq!(
        st.values("care_plans", &on("2023-07-01")),
        pairs(&[
            ("welfare_home_orphans_with_plan", 2),
            ("welfare_home_plan_schools", 1),
            ("one_to_one_plans", 1),
        ])
    );
    assert_eq!(
        st.values("care_plans", &on("2023-01-31")),
        pairs(&[
            ("welfare_home_orphans_with_plan", 0),
            ("welfare_home_plan_schools", 0),
            ("one_to_one_plans", 0),
        ])
    );
}

/// The plan view on a past day shows the latest review and teacher, not those of that day: a
/// review overdue on a day stops being overdue on that day once a later review is recorded.
#[test]
fn a_review_overdue_on_a_past_day_stays_overdue_on_that_day() {
    let st = Store::new();
    let w = world(&st);
    let k1 = person(&st, 101, w.school, &[("orphan", "2022-06-01")]);
    enrol(&st, k1, w.school, "2022-09-01");
    st.add(
        "carelog.care_plan.opened",
        "2023-02-01",
        json!({"plan_id": uid(601), "pupil_id": k1, "teacher_id": w.t1, "scheme": "one_pupil_one_plan", "goals": "g", "measures": "m", "next_review": "2023-03-01"}),
    );
    let march = |st: &Store| st.query("care_plans", &on("2023-03-10"));
    assert_eq!(march(&st)["overdue_reviews"], 1);
    st.add(
        "carelog.care_plan.reviewed",
        "2023-03-20",
        json!({"plan_id": uid(601), "progress": "late review", "next_review": "2023-09-01"}),
    );
    st.add(
        "carelog.care_plan.teacher_changed",
        "2023-04-01",
        json!({"plan_id": uid(601), "teacher_id": w.t2}),
    );
    let view = march(&st);
    assert_eq!(view["open"][0]["teacher_id"], json!(w.t1));
    assert_eq!(view["open"][0]["last_review"], Value::Null);
    assert_eq!(
        view["overdue_reviews"], 1,
        "on 10 March the review was overdue"
    );
}

// ---- census ---------------------------------------------------------------------------------

#[test]
fn census_counts_pupils_in_school_once_per_category_on_a_day() {
    let st = Store::new();
    let w = world(&st);
    let k1 = person(&st, 101, w.school, &[("orphan", "2022-06-01")]);
    let k2 = person(
        &st,
        102,
        w.school,
        &[("orphan", "2022-06-01"), ("left_behind", "2022-06-01")],
    );
    let k3 = person(&st, 103, w.school, &[("single_parent", "2022-06-01")]);
    let k4 = person(&st, 104, w.school, &[("disabled_child", "2022-06-01")]);
    let k5 = person(&st, 105, w.school, &[("left_behind", "2022-06-01")]);
    let k6 = person(&st, 106, w.school, &[("orphan", "2022-06-01")]);
    let _k7 = person(&st, 107, w.school, &[("orphan", "2022-06-01")]);
    let k8 = person(&st, 108, w.school, &[("left_behind", "2022-06-01")]);
    let k9 = person(&st, 109, w.school, &[("orphan", "2022-06-01")]);
    let k10 = person(&st, 110, w.school, &[("single_parent", "2022-06-01")]);
    for k in [k1, k2, k3, k4, k5, k6, k8, k9, k10] {
        enrol(&st, k, w.school, "2022-09-01");
    }
    st.add(
        "carelog.pupil.moved",
        "2023-03-01",
        json!({"pupil_id": k2, "school_id": w.school2, "on": "2023-03-01"}),
    );
    end_category(&st, k6, "orphan", "2023-04-01");
    // Ended and certified again: still one orphan.
    end_category(&st, k9, "orphan", "2023-02-01");
    certify(&st, k9, "orphan", "2023-02-02");
    let poverty = left(&st, k5, "2023-05-10", "dropped_out", Some("poverty"));
    left(&st, k8, "2023-06-10", "dropped_out", Some("illness"));
    left(&st, k10, "2023-07-01", "graduated", None);

    // The four counts on a day (poverty_dropouts is a period figure, asked below).
    let counts = |day: &str| {
        let mut v = st.values("census", &on(day));
        v.truncate(4);
        v
    };
    let census = |o: i64, s: i64, l: i64, d: i64| {
        pairs(&[
            ("pupils_orphans", o),
            ("pupils_single_parent", s),
            ("pupils_left_behind", l),
            ("pupils_disabled", d),
        ])
    };
    // k6's category ended, k7 was never enrolled, k5 dropped out, k8 not yet; k9 once.
    assert_eq!(counts("2023-06-01"), census(3, 2, 2, 1));
    // The day a category ends it still holds.
    assert_eq!(counts("2023-04-01"), census(4, 2, 3, 1));
    // k9's first certificate ends the day it is counted on, the second starts the next day.
    assert_eq!(counts("2023-02-01"), census(4, 2, 3, 1));
    assert_eq!(counts("2023-02-02"), census(4, 2, 3, 1));
    // k8 dropped out, k10 graduated.
    assert_eq!(counts("2023-12-01"), census(3, 1, 1, 1));
    assert_eq!(
        st.figure("census", "pupils_orphans", &on("2023-12-01"))
            .events
            .len(),
        3
    );
    let view = st.query("census", &on("2023-06-01"));
    assert_eq!(view["pupils_in_school"], 8);
    assert_eq!(
        view["dropouts_by_cause"],
        json!({"illness": 1, "poverty": 1})
    );
    let dropouts = st.figure(
        "census",
        "poverty_dropouts",
        &period("2023-01-01", "2023-12-31"),
    );
    assert_eq!((dropouts.value, dropouts.events), (1, vec![poverty]));
    let late = period("2023-06-01", "2023-12-31");
    assert_eq!(st.figure("census", "poverty_dropouts", &late).value, 0);
    assert_eq!(
        st.query("census", &late)["dropouts_by_cause"],
        json!({"illness": 1})
    );
}

/// `dropouts_by_cause` keys are `format!("{:?}")` lowercased: `familymigration`, where the
/// event's JSON (and every other key) says `family_migration`.
#[test]
fn dropout_causes_are_named_as_in_the_events() {
    let st = Store::new();
    let w = world(&st);
    let k = person(&st, 101, w.school, &[("left_behind", "2022-06-01")]);
    enrol(&st, k, w.school, "2022-09-01");
    left(
        &st,
        k,
        "2023-05-10",
        "dropped_out",
        Some("family_migration"),
    );
    assert_eq!(
        st.query("census", &Query::default())["dropouts_by_cause"],
        json!({"family_migration": 1})
    );
}

/// A dropout is counted by the day its event was recorded as happening (`time`), while the
/// pupil leaves the census on its `on` day: a dropout on 30 December entered on 3 January is
/// out of school in 2023 but not among 2023's dropouts.
#[test]
fn a_dropout_is_counted_on_the_day_the_pupil_left() {
    let st = Store::new();
    let w = world(&st);
    let k = person(&st, 101, w.school, &[("left_behind", "2022-06-01")]);
    enrol(&st, k, w.school, "2022-09-01");
    st.add(
        "carelog.pupil.left",
        "2024-01-03",
        json!({"pupil_id": k, "on": "2023-12-30", "reason": "dropped_out", "dropout_cause": "poverty", "note": "entered after the holiday"}),
    );
    let year = period("2023-01-01", "2023-12-31");
    assert_eq!(st.query("census", &on("2023-12-31"))["pupils_in_school"], 0);
    assert_eq!(st.figure("census", "poverty_dropouts", &year).value, 1);
}

// ---- coverage -------------------------------------------------------------------------------

#[test]
fn a_pairing_without_contact_within_n_days_is_overdue_and_charged_to_the_holder() {
    let st = Store::new();
    let w = world(&st);
    let r1 = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let r2 = household(&st, 102, w.township);
    let r3 = person(&st, 103, w.township, &[("severely_disabled", "2022-09-01")]);
    let (p1, _) = pair(&st, 201, w.a, r1, "2023-01-10");
    let (p2, _) = pair(&st, 202, w.b, r2, "2023-01-10");
    let (p3, _) = pair(&st, 203, w.a, r3, "2023-01-10");
    visit(&st, p1, "2023-02-01");
    contact(&st, p1, "2023-03-01", "phone");
    visit(&st, p2, "2023-03-20");
    let last = contact(&st, p2, "2023-03-25", "video");
    transfer(&st, p1, w.c, "2023-03-15");
    st.add(
        "carelog.pairing.suspended",
        "2023-03-01",
        json!({"pairing_id": p3, "on": "2023-03-01", "reason": "in hospital"}),
    );

    let april = st.query("coverage", &with(on("2023-04-01"), "days", "30"));
    assert_eq!(
        april,
        json!({
            "on": "2023-04-01", "days": 30, "overdue_count": 1,
            "overdue_by_cadre": {s(w.c): 1},
            "overdue": [{"pairing_id": p1, "cadre_id": w.c, "last_contact": "2023-03-01", "last_visit": "2023-02-01", "no_contact": true, "no_visit": true}],
        })
    );
    // A contact exactly N days before the day is within N days.
    let v = st.query("coverage", &with(on("2023-04-01"), "days", "31"));
    assert_eq!(v["overdue"][0]["no_contact"], false);
    assert_eq!(v["overdue"][0]["no_visit"], true);
    // Before the transfer the same pairing is charged to the cadre who held it then; p2 had no
    // contact yet; p3 is suspended and owes nothing.
    let march = st.query("coverage", &with(on("2023-03-10"), "days", "30"));
    assert_eq!(march["overdue_count"], 2);
    assert_eq!(march["overdue_by_cadre"], json!({s(w.a): 1, s(w.b): 1}));
    assert_eq!(march["overdue"][0]["no_contact"], false);
    assert_eq!(march["overdue"][0]["no_visit"], true);
    // The default is 30 days; a voided contact is no contact.
    assert_eq!(st.query("coverage", &on("2023-04-01"))["overdue_count"], 1);
    st.void(last, "2023-04-02", "wrong pairing");
    let after = st.query("coverage", &on("2023-04-01"));
    assert_eq!(after["overdue_count"], 2);
    assert_eq!(after["overdue"][1]["pairing_id"], json!(p2));
    assert_eq!(after["overdue"][1]["last_contact"], Value::Null);
}

/// The N days run from the day a pairing became active: a new pairing, or one resumed after a
/// suspension, owes nothing until then; after that it is overdue like any other.
#[test]
fn a_pairing_active_for_fewer_than_n_days_is_not_yet_overdue() {
    let st = Store::new();
    let w = world(&st);
    let r1 = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let r2 = person(&st, 102, w.township, &[("severely_disabled", "2022-09-01")]);
    let (new_pairing, _) = pair(&st, 201, w.a, r1, "2023-03-20");
    let (resumed, _) = pair(&st, 202, w.b, r2, "2022-12-01");
    st.add(
        "carelog.pairing.suspended",
        "2023-02-01",
        json!({"pairing_id": resumed, "on": "2023-02-01", "reason": "in hospital"}),
    );
    st.add(
        "carelog.pairing.resumed",
        "2023-03-25",
        json!({"pairing_id": resumed, "on": "2023-03-25"}),
    );
    let overdue = |day: &str| -> Vec<Value> {
        let v = st.query("coverage", &with(on(day), "days", "30"));
        let mut ids: Vec<Value> = v["overdue"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["pairing_id"].clone())
            .collect();
        ids.sort_by_key(|id| id.to_string());
        ids
    };
    // Established 12 days before, resumed 7 days before: neither owes anything yet.
    assert_eq!(overdue("2023-04-01"), Vec::<Value>::new());
    // Exactly 30 days after each began, with no contact: both are overdue.
    assert_eq!(overdue("2023-04-19"), vec![json!(new_pairing)]);
    let mut both = vec![json!(new_pairing), json!(resumed)];
    both.sort_by_key(|id| id.to_string());
    assert_eq!(overdue("2023-04-24"), both);
    // Before its suspension the second pairing had been active since December: overdue then
    // (the later resumption does not reach back), not yet 30 days in; suspended, it owes nothing.
    assert_eq!(overdue("2022-12-30"), Vec::<Value>::new());
    assert_eq!(overdue("2023-01-15"), vec![json!(resumed)]);
    assert_eq!(overdue("2023-03-01"), Vec::<Value>::new());
}

// ---- claims ---------------------------------------------------------------------------------

#[test]
fn a_corrected_claim_shows_the_corrected_value_and_a_voided_claim_disappears() {
    let st = Store::new();
    let w = world(&st);
    let claim = |id: u128, metric: &str, value: i64| json!({"claim_id": uid(id), "metric": metric, "scope_unit_id": w.bureau, "period_from": "2023-01-01", "period_to": "2023-12-31", "value": value, "comparison": "exactly", "source_document": "annual report", "reported_on": "2023-12-20"});
    let c1 = st.add(
        "carelog.claim.filed",
        "2023-12-20",
        claim(701, "home_visits", 100),
    );
    let c2 = st.add(
        "carelog.claim.filed",
        "2023-12-20",
        claim(702, "contacts", 374),
    );
    let c3 = st.add(
        "carelog.claim.filed",
        "2023-12-20",
        claim(703, "contacts", 50),
    );
    let mut fixed = claim(701, "home_visits", 212);
    fixed["comparison"] = json!("at_least");
    st.correct(c1, "2023-12-21", "carelog.claim.filed", fixed);
    st.void(c2, "2023-12-22", "filed twice");

    let recorded_at = |src: Source| {
        st.app
            .log()
            .event_at(src.position)
            .expect("readable")
            .expect("present")
            .recorded_at
            .to_rfc3339()
    };
    let view = st.query("claims", &Query::default());
    assert_eq!(view["by_metric"], json!({"contacts": 1, "home_visits": 1}));
    let claims = view["claims"].as_array().expect("a list");
    assert_eq!(claims.len(), 2);
    let first = claims
        .iter()
        .find(|c| c["claim_id"] == json!(uid(701)))
        .expect("the corrected claim");
    assert_eq!(
        *first,
        json!({
            "claim_id": uid(701), "metric": "home_visits", "value": 212, "comparison": "at_least",
            "scope_unit_id": w.bureau, "period_from": "2023-01-01", "period_to": "2023-12-31",
            "source_document": "annual report", "reported_on": "2023-12-20",
            "recorded_at": recorded_at(c1), "event": {"id": c1.id, "position": c1.position},
        })
    );
    assert!(claims.iter().all(|c| c["claim_id"] != json!(uid(702))));
    let third = claims
        .iter()
        .find(|c| c["claim_id"] == json!(uid(703)))
        .expect("the untouched claim");
    assert_eq!(third["value"], 50);
    assert_eq!(third["recorded_at"], json!(recorded_at(c3)));
}

// ---- the engine: as of a recorded time ------------------------------------------------------

#[test]
fn position_as_of_is_the_last_position_recorded_at_or_before_a_time() {
    let st = Store::new();
    let keep = Keep {
        recorded_by: true,
        recorded_at: true,
    };
    let unit = |n: u128, parent: Option<Uuid>, recorded: &str| {
        let kind = if parent.is_none() {
            "city_bureau"
        } else {
            "county"
        };
        st.append(
            json!({"specversion": "1.0", "id": Uuid::now_v7(), "source": "/test", "type": "carelog.unit.registered",
                   "time": "2023-05-30T09:00:00+08:00", "recordedat": recorded, "recordedby": "clerk",
                   "data": {"unit_id": uid(n), "name": format!("unit {n}"), "kind": kind, "parent_id": parent, "official_code": null}}),
            keep,
        )
    };
    unit(1, None, "2023-06-01T10:00:00+08:00");
    unit(2, Some(uid(1)), "2023-06-02T10:00:00+08:00");
    unit(3, Some(uid(1)), "2023-06-02T02:00:00Z"); // the same instant, written in UTC
    unit(4, Some(uid(1)), "2023-06-05T10:00:00+08:00");
    let log = st.app.log();
    assert_eq!(
        log.event_at(3).ok().flatten().map(|e| e.recorded_by),
        Some("clerk".to_string())
    );
    let at = |text: &str| {
        position_as_of(log, &parse_instant(text).expect("a time")).expect("a position")
    };
    assert_eq!(at("2023-05-31T23:59:59+08:00"), 0);
    assert_eq!(at("2023-06-01T09:59:59+08:00"), 0);
    assert_eq!(at("2023-06-01T10:00:00+08:00"), 1);
    assert_eq!(at("2023-06-01T23:00:00+08:00"), 1);
    assert_eq!(at("2023-06-02T09:59:59.999+08:00"), 1);
    assert_eq!(
        at("2023-06-02T10:00:00+08:00"),
        3,
        "both events at that instant"
    );
    assert_eq!(at("2023-06-04T00:00:00+08:00"), 3);
    assert_eq!(at("2023-06-05T02:00:00Z"), 4);
    assert_eq!(at("2030-01-01T00:00:00Z"), 4);

    // A replay as of a time equals a replay as of the position it resolves to.
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let t = parse_instant("2023-06-03T00:00:00+08:00").expect("a time");
    let by_time = replay(log, &all, AsOf::Time(t), None, &mut |_, _| {}).expect("a replay");
    let by_position = replay(log, &all, AsOf::Position(3), None, &mut |_, _| {}).expect("a replay");
    assert_eq!(by_time.position, 3);
    for (i, p) in all.iter().enumerate() {
        assert_eq!(
            p.encode_state(by_time.states[i].as_ref()).ok(),
            p.encode_state(by_position.states[i].as_ref()).ok(),
            "{}",
            p.name()
        );
    }
}

#[test]
fn as_of_a_time_before_any_event_gives_empty_states() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    contact(&st, p, "2023-01-15", "phone");
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let before = parse_instant("2000-01-01T00:00:00Z").expect("a time");
    let rebuilt =
        replay(st.app.log(), &all, AsOf::Time(before), None, &mut |_, _| {}).expect("a replay");
    assert_eq!(
        (rebuilt.position, rebuilt.events_read, rebuilt.last_day),
        (0, 0, None)
    );
    for (p, state) in all.iter().zip(&rebuilt.states) {
        let empty = p.new_state();
        assert_eq!(
            p.encode_state(state.as_ref()).ok(),
            p.encode_state(empty.as_ref()).ok(),
            "{}",
            p.name()
        );
        // Every figure of an empty state is zero, with no events behind it.
        for f in p.figures(
            state.as_ref(),
            &rebuilt.book,
            &period("2023-01-01", "2023-12-31"),
        ) {
            assert_eq!(
                (f.value, f.events.len()),
                (0, 0),
                "{} {}",
                p.name(),
                f.metric
            );
        }
    }
    assert_eq!(
        st.query("pairings", &Query::default())["active_count"],
        1,
        "and now the store is not empty"
    );
    let empty = projection("pairings");
    assert_eq!(
        empty.query(
            empty.new_state().as_ref(),
            &PairingBook::default(),
            &Query::default()
        ),
        json!({"on": null, "active": [], "load": {}})
    );
}

// ---- the worked example of projections/README.md -------------------------------------------

// The `channels` projection of `projections/README.md`, compiled here against the real API.
// The text between the markers is the README's example with `crate::` written `carelog::`;
// `the_readme_example_is_this_code` keeps the two the same.
mod channels {
    // README-EXAMPLE-BEGIN
    //! `channels`: contacts by channel (phone, video, message) in a period, each count with the
    //! events behind it. A voided contact drops out; a corrected one counts under its corrected
    //! channel.

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use carelog::domain::DomainEvent;
    use carelog::domain::events::Channel;
    use carelog::projection::{EventView, Figure, PairingBook, Projection, Query};
    use carelog::projections::facts::{Fact, Facts, sorted_sources};

    pub struct Channels;

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct State {
        /// Every contact, keyed by event id, with its channel: voids and corrections applied.
        pub contacts: Facts<Channel>,
    }

    const CHANNELS: [(Channel, &str); 3] = [
        (Channel::Phone, "contacts_by_phone"),
        (Channel::Video, "contacts_by_video"),
        (Channel::Message, "contacts_by_message"),
    ];

    /// What this projection counts of an event: a contact's channel.
    fn channel(event: &DomainEvent) -> Option<Channel> {
        match event {
            DomainEvent::ContactRecorded(e) => Some(e.channel),
            _ => None,
        }
    }

    impl Projection for Channels {
        const NAME: &'static str = "channels";
        const VERSION: u32 = 1;
        const ABOUT: &'static str = "contacts by channel (phone, video, message) in a period";
        type State = State;

        fn apply(state: &mut State, ev: &EventView<'_>) {
            // A void or correction of a contact counted here: applied, and nothing else to do.
            if state
                .contacts
                .adjust(ev, |corrected, _before: &Fact<Channel>| channel(corrected))
            {
                return;
            }
            if let Some(c) = channel(ev.event) {
                state.contacts.insert(ev, c);
            }
        }

        fn query(state: &State, book: &PairingBook, query: &Query) -> serde_json::Value {
            let counts: BTreeMap<String, i64> = Self::figures(state, book, query)
                .into_iter()
                .map(|f| (f.metric, f.value))
                .collect();
            json!({"period": query.period.map(|p| p.to_string()), "counts": counts})
        }

        fn figures(state: &State, _book: &PairingBook, query: &Query) -> Vec<Figure> {
            CHANNELS
                .iter()
                .map(|(c, metric)| {
                    let facts: Vec<&Fact<Channel>> = state
                        .contacts
                        .matching(|f| f.value == *c && query.counts(f.on))
                        .collect();
                    Figure {
                        metric: metric.to_string(),
                        overflowed: false,
                        value: facts.len() as i64,
                        events: sorted_sources(facts.iter().map(|f| f.source).collect()),
                        adjustments: state
                            .contacts
                            .adjustments_where(|on, before| before == c && query.counts(on)),
                    }
                })
                .collect()
        }
    }
    // README-EXAMPLE-END
}

#[test]
fn the_readme_example_projection_counts_contacts_by_channel() {
    let st = Store::new();
    let w = world(&st);
    let orphan = person(&st, 101, w.township, &[("orphan", "2022-09-01")]);
    let (p, _) = pair(&st, 201, w.a, orphan, "2023-01-10");
    let phone1 = contact(&st, p, "2023-02-01", "phone");
    let phone2 = contact(&st, p, "2023-02-02", "phone");
    let phone3 = contact(&st, p, "2023-02-03", "phone");
    let video = contact(&st, p, "2023-02-04", "video");
    let message = contact(&st, p, "2023-03-01", "message");
    let void = st.void(phone2, "2023-03-02", "entered twice");
    let fix = st.correct(
        phone3,
        "2023-03-03",
        "carelog.contact.recorded",
        json!({"pairing_id": p, "channel": "video", "summary": "it was a video call", "duration_minutes": 20}),
    );

    let channels = Registered::<channels::Channels>::boxed();
    assert_eq!(channels.name(), "channels");
    let (state, book) = st.state_of(channels.as_ref());
    let year = period("2023-01-01", "2023-12-31");
    assert_eq!(
        channels.query(state.as_ref(), &book, &year),
        json!({"period": "2023-01-01..2023-12-31", "counts": {"contacts_by_phone": 1, "contacts_by_video": 2, "contacts_by_message": 1}})
    );
    let figures = channels.figures(state.as_ref(), &book, &year);
    assert_eq!(figures[0].events, vec![phone1]);
    assert_eq!(
        figures[0].adjustments,
        vec![
            adjustment(phone2, void, AdjustmentKind::Voided, "entered twice"),
            adjustment(phone3, fix, AdjustmentKind::Corrected, "corrected"),
        ]
    );
    assert_eq!(figures[1].events, vec![phone3, video]);
    assert!(figures[1].adjustments.is_empty());
    assert_eq!(figures[2].events, vec![message]);
    let feb = channels.query(state.as_ref(), &book, &period("2023-02-01", "2023-02-28"));
    assert_eq!(
        feb["counts"],
        json!({"contacts_by_phone": 1, "contacts_by_video": 2, "contacts_by_message": 0})
    );

    // In company of the standard projections, from a checkpoint, it answers the same.
    let registry = registry();
    let mut all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    all.push(channels.as_ref());
    let checkpoints = carelog::projection::checkpoint::Checkpoints::for_store(st.dir.path())
        .with_interval(5)
        .with_bytes_per_event_max(None);
    let log = st.app.log();
    replay(log, &all, AsOf::Now, Some(&checkpoints), &mut |_, _| {}).expect("a replay");
    let again = replay(log, &all, AsOf::Now, Some(&checkpoints), &mut |_, _| {}).expect("a replay");
    assert!(again.events_read < 5, "from a checkpoint");
    let last = again.states.last().expect("the channels state");
    assert_eq!(
        channels.encode_state(last.as_ref()).ok(),
        channels.encode_state(state.as_ref()).ok()
    );
}

#[test]
fn the_readme_example_is_this_code() {
    let readme = include_str!("../projections/README.md");
    let this = include_str!("projections.rs");
    let block = readme
        .split("```rust\n")
        .skip(1)
        .find(|b| b.contains("impl Projection for Channels"))
        .and_then(|b| b.split("```").next())
        .expect("the README has the channels example in a ```rust block");
    let start = this
        .find("// README-EXAMPLE-BEGIN\n")
        .expect("begin marker")
        + 24;
    let end = this.find("    // README-EXAMPLE-END").expect("end marker");
    let here: String = this[start..end]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let readme_code = block.replace("crate::", "carelog::");
    assert!(
        here == readme_code,
        "projections/README.md's example and tests/projections.rs's `mod channels` differ: \
         update one from the other\n--- README ---\n{readme_code}\n--- test ---\n{here}"
    );
}
