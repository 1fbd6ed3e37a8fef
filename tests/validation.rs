//! The rules a new event must pass, through the library: each rejected with its rule and field,
//! and the log unchanged afterwards (head and digest as before, the rejected id nowhere).
//! Then the format errors of the CloudEvents parser, and the rules for voids and corrections.

use carelog::app::{App, AppError, Keep};
use carelog::domain::cloudevent::{FormatError, IncomingEvent, parse_line, parse_value};
use carelog::domain::records::Rule;
use carelog::log::Ack;
use carelog::projection::{AdjustmentKind, AsOf, Source};
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

// ---- helpers --------------------------------------------------------------------------------

/// A 2023 time on a day, Asia/Shanghai.
fn at(date: &str) -> String {
    format!("{date}T10:00:00+08:00")
}

/// One CloudEvents line as a JSON value, with a fresh id.
fn line(event_type: &str, time: &str, data: Value) -> (Uuid, Value) {
    let id = Uuid::now_v7();
    let v = json!({
        "specversion": "1.0",
        "id": id.to_string(),
        "source": "/tests/validation",
        "type": format!("carelog.{event_type}"),
        "time": time,
        "data": data,
    });
    (id, v)
}

/// One event, parsed (it must be well-formed).
fn ev(event_type: &str, time: &str, data: Value) -> IncomingEvent {
    let (_, v) = line(event_type, time, data);
    parse_value(v.clone()).unwrap_or_else(|e| panic!("test event does not parse: {e}\n{v}"))
}

fn append(app: &App, events: Vec<IncomingEvent>) -> Result<Vec<Ack>, AppError> {
    app.append(events, "tester", Keep::default(), &|_, _| Ok(()))
}

fn ok(app: &App, e: IncomingEvent) -> Ack {
    let t = e.event.event_type();
    match append(app, vec![e]) {
        Ok(acks) => acks[0],
        Err(err) => panic!("{t} should be accepted: {err}"),
    }
}

fn state(app: &App) -> (u64, carelog::log::Digest) {
    (app.log().head_position(), app.log().digest())
}

/// Appends `e` expecting a rejection with `rule` on `field`; checks nothing was written.
fn rejected(app: &App, e: IncomingEvent, rule: Rule, field: &str) -> String {
    rejected_as("", app, e, rule, field)
}

/// [`rejected`], every failure prefixed by `what` (the case of a table).
fn rejected_as(what: &str, app: &App, e: IncomingEvent, rule: Rule, field: &str) -> String {
    let before = state(app);
    let id = e.id.expect("test events carry ids");
    let t = e.event.event_type();
    let t = format!("{what}{}{t}", if what.is_empty() { "" } else { ": " });
    let err = match append(app, vec![e]) {
        Ok(acks) => panic!("{t} should be rejected ({rule:?} on {field}) but was acked {acks:?}"),
        Err(err) => err,
    };
    let message = err.to_string();
    match err {
        AppError::Rejected { index, error, .. } => {
            assert_eq!(index, 0, "{t}");
            assert_eq!(
                (error.rule, error.field),
                (rule, field),
                "{t}: wrong rule or field: {}",
                error.detail
            );
        }
        other => panic!("{t}: expected a rejection ({rule:?} on {field}), got {other:?}"),
    }
    assert_eq!(state(app), before, "{t}: the log changed after a rejection");
    assert_eq!(
        app.log().position_of(id).unwrap(),
        None,
        "{t}: the rejected id is in the log"
    );
    assert!(
        message.contains(field),
        "{t}: the message names the field: {message}"
    );
    message
}

/// A registry: city bureau → county → township → school; two cadres and a teacher; a person
/// (severely disabled), a household (extremely poor), a pupil (orphan) enrolled at the school;
/// the person paired with the first cadre from 2023-02-01.
struct Reg {
    _dir: TempDir,
    app: App,
    township: Uuid,
    school: Uuid,
    cadre: Uuid,
    cadre2: Uuid,
    teacher: Uuid,
    person: Uuid,
    household: Uuid,
    pupil: Uuid,
    pairing: Uuid,
    /// The event id of the pairing's establishment.
    pairing_event: Uuid,
}

impl Reg {
    fn new() -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path(), true).unwrap();
        let [
            city,
            county,
            township,
            school,
            cadre,
            cadre2,
            teacher,
            person,
            household,
            pupil,
            pairing,
        ] = std::array::from_fn(|_| Uuid::now_v7());
        let unit = |id: Uuid, name: &str, kind: &str, parent: Option<Uuid>| {
            ev(
                "unit.registered",
                &at("2023-01-01"),
                json!({"unit_id": id, "name": name, "kind": kind, "parent_id": parent, "official_code": null}),
            )
        };
        let staff = |id: Uuid, name: &str, role: &str, unit: Uuid| {
            ev(
                "staff.registered",
                &at("2023-01-01"),
                json!({"person_id": id, "name": name, "role": role, "unit_id": unit, "since": "2023-01-01"}),
            )
        };
        let recipient = |id: Uuid, kind: &str, unit: Uuid, birth: Option<&str>| {
            ev(
                "recipient.registered",
                &at("2023-01-02"),
                json!({"recipient_id": id, "kind": kind, "name": "某某", "unit_id": unit, "birth_date": birth}),
            )
        };
        let certify = |id: Uuid, category: &str| {
            ev(
                "category.certified",
                &at("2023-01-02"),
                json!({"recipient_id": id, "category": category, "certified_by": "县民政局", "from": "2022-01-01", "to": null}),
            )
        };
        let pairing_established = ev(
            "pairing.established",
            &at("2023-02-01"),
            json!({"pairing_id": pairing, "cadre_id": cadre, "recipient_id": person, "on": "2023-02-01"}),
        );
        let pairing_event = pairing_established.id.unwrap();
        let events = vec![
            unit(city, "庆阳市教育局", "city_bureau", None),
            unit(county, "环县", "county", Some(city)),
            unit(township, "毛井乡", "township", Some(county)),
            unit(school, "毛井小学", "school", Some(township)),
            staff(cadre, "张明", "cadre", city),
            staff(cadre2, "李强", "cadre", city),
            staff(teacher, "王老师", "teacher", school),
            recipient(person, "person", township, Some("1950-05-05")),
            certify(person, "severely_disabled"),
            recipient(household, "household", township, None),
            certify(household, "extremely_poor"),
            recipient(pupil, "person", school, Some("2012-03-01")),
            certify(pupil, "orphan"),
            ev(
                "pupil.enrolled",
                &at("2023-01-03"),
                json!({"pupil_id": pupil, "school_id": school, "on": "2022-09-01"}),
            ),
            pairing_established,
        ];
        let n = events.len() as u64;
        let acks = append(&app, events).expect("the registry is valid");
        assert_eq!(acks.last().unwrap().position, n);
        Reg {
            _dir: dir,
            app,
            township,
            school,
            cadre,
            cadre2,
            teacher,
            person,
            household,
            pupil,
            pairing,
            pairing_event,
        }
    }

    fn contact(&self, time: &str) -> IncomingEvent {
        self.contact_on(self.pairing, time)
    }

    fn contact_on(&self, pairing: Uuid, time: &str) -> IncomingEvent {
        ev(
            "contact.recorded",
            time,
            json!({"pairing_id": pairing, "channel": "phone", "summary": "asked how things are", "duration_minutes": 10}),
        )
    }

    fn visit(&self, time: &str) -> IncomingEvent {
        ev(
            "visit.recorded",
            time,
            json!({"pairing_id": self.pairing, "trip": "own", "group_trip_id": null, "companions": [], "observations": "roof leaks"}),
        )
    }

    fn cash(&self, time: &str, value_fen: i64) -> IncomingEvent {
        ev("aid.given", time, cash_data(self.pairing, value_fen))
    }

    fn student_aid(&self, pupil: Uuid, programme: &str, term: &str, amount: i64) -> IncomingEvent {
        ev(
            "student_aid.paid",
            &at("2023-10-10"),
            json!({"pupil_id": pupil, "programme": programme, "term": term, "amount_fen": amount}),
        )
    }

    fn void(&self, target: Uuid, time: &str) -> IncomingEvent {
        ev(
            "record.voided",
            time,
            json!({"target_event_id": target, "reason": "entered by mistake"}),
        )
    }

    fn correction(&self, target: Uuid, corrected_type: &str, corrected: Value) -> IncomingEvent {
        ev(
            "record.corrected",
            &at("2023-11-01"),
            json!({"target_event_id": target, "reason": "typo", "corrected_type": format!("carelog.{corrected_type}"), "corrected": corrected}),
        )
    }

    fn explain(&self, metric: &str) -> carelog::app::report::Explanation {
        self.app
            .explain(metric, AsOf::Now, None, &mut |_, _| {})
            .unwrap()
    }
}

fn cash_data(pairing: Uuid, value_fen: i64) -> Value {
    json!({"pairing_id": pairing, "form": "cash", "value_fen": value_fen, "fund_source": "cadre's own",
           "item": null, "quantity": null, "unit_value_fen": null, "receipt_ref": "R-1"})
}

// ---- the refusals, as a table -----------------------------------------------------------------
//
// Each case runs on a fresh registry: its steps in order, every refusal checked for its rule,
// its field, a fragment of its message, and the log unchanged after it (head, digest, the
// refused id nowhere); every acceptance checked to be acked; every figure checked. A failure
// names the case and the step.

/// One step of a case.
enum Step {
    /// The event is accepted.
    Ok(IncomingEvent),
    /// The event is refused with this rule on this field, the message holding the fragment.
    Refused {
        event: IncomingEvent,
        rule: Rule,
        field: &'static str,
        message: &'static str,
    },
    /// A figure of the report has this value.
    Figure(&'static str, i64),
}

fn refused(event: IncomingEvent, rule: Rule, field: &'static str) -> Step {
    // The message names the field (as every refusal's does).
    Step::Refused {
        event,
        rule,
        field,
        message: field,
    }
}

/// A case: its name, and its steps built from the registry.
struct Case {
    name: &'static str,
    steps: fn(&Reg) -> Vec<Step>,
}

fn pairing_established(on: &str, pairing: Uuid, cadre: Uuid, recipient: Uuid) -> IncomingEvent {
    ev(
        "pairing.established",
        &at(on),
        json!({"pairing_id": pairing, "cadre_id": cadre, "recipient_id": recipient, "on": on}),
    )
}

fn difficulty_raised(r: &Reg, difficulty: Uuid) -> IncomingEvent {
    ev(
        "difficulty.raised",
        &at("2023-05-10"),
        json!({"difficulty_id": difficulty, "pairing_id": r.pairing, "description": "no winter coal"}),
    )
}

fn difficulty_resolved(difficulty: Uuid, time: &str) -> IncomingEvent {
    ev(
        "difficulty.resolved",
        time,
        json!({"difficulty_id": difficulty, "how": "coal delivered"}),
    )
}

const REFUSALS: &[Case] = &[
    // ---- unknown ids
    Case {
        name: "unknown pairing",
        steps: |r| {
            let e = r.contact_on(Uuid::now_v7(), &at("2023-03-01"));
            vec![refused(e, Rule::UnknownId, "data.pairing_id")]
        },
    },
    Case {
        name: "unknown recipient",
        steps: |r| {
            let e = pairing_established("2023-03-01", Uuid::now_v7(), r.cadre2, Uuid::now_v7());
            vec![refused(e, Rule::UnknownId, "data.recipient_id")]
        },
    },
    Case {
        name: "unknown cadre, and a teacher as the cadre",
        steps: |r| {
            let e = pairing_established("2023-03-01", Uuid::now_v7(), Uuid::now_v7(), r.household);
            // A teacher is known, but not a cadre.
            let teacher = pairing_established("2023-03-01", Uuid::now_v7(), r.teacher, r.household);
            vec![
                refused(e, Rule::UnknownId, "data.cadre_id"),
                refused(teacher, Rule::WrongKind, "data.cadre_id"),
            ]
        },
    },
    Case {
        name: "unknown pupil",
        steps: |r| {
            let e = r.student_aid(Uuid::now_v7(), "for_orphans", "2023-autumn", 50_000);
            vec![
                refused(e, Rule::UnknownId, "data.pupil_id"),
                // The same payment to the registered pupil is accepted.
                Step::Ok(r.student_aid(r.pupil, "for_orphans", "2023-autumn", 50_000)),
            ]
        },
    },
    Case {
        name: "unknown school, and a township as the school",
        steps: |r| {
            let new_pupil = Uuid::now_v7();
            let enrol = |school: Uuid| {
                ev(
                    "pupil.enrolled",
                    &at("2023-03-02"),
                    json!({"pupil_id": new_pupil, "school_id": school, "on": "2023-03-01"}),
                )
            };
            vec![
                Step::Ok(ev(
                    "recipient.registered",
                    &at("2023-03-01"),
                    json!({"recipient_id": new_pupil, "kind": "person", "name": "小明", "unit_id": r.township, "birth_date": "2015-01-01"}),
                )),
                refused(enrol(Uuid::now_v7()), Rule::UnknownId, "data.school_id"),
                // A known unit that is not a school.
                refused(enrol(r.township), Rule::WrongKind, "data.school_id"),
                Step::Ok(enrol(r.school)),
            ]
        },
    },
    Case {
        name: "unknown escalation",
        steps: |_| {
            let e = ev(
                "escalation.acknowledged",
                &at("2023-03-01"),
                json!({"escalation_id": Uuid::now_v7(), "by": "县民政局"}),
            );
            vec![refused(e, Rule::UnknownId, "data.escalation_id")]
        },
    },
    Case {
        name: "unknown difficulty",
        steps: |_| {
            let e = difficulty_resolved(Uuid::now_v7(), &at("2023-03-01"));
            vec![refused(e, Rule::UnknownId, "data.difficulty_id")]
        },
    },
    Case {
        name: "unknown void target",
        steps: |r| {
            let e = r.void(Uuid::now_v7(), &at("2023-03-01"));
            vec![refused(e, Rule::UnknownId, "data.target_event_id")]
        },
    },
    // ---- pairing not active on the day
    Case {
        name: "activity before the pairing was established",
        steps: |r| {
            vec![
                refused(
                    r.contact(&at("2023-01-31")),
                    Rule::NotActiveOnDate,
                    "data.pairing_id",
                ),
                // 2023-02-01 00:30 in Shanghai is the day of establishment, although it is
                // still 2023-01-31 in UTC: the day is Shanghai's.
                Step::Ok(r.contact("2023-01-31T16:30:00Z")),
                // 2023-02-01 07:00 in UTC is on the 1st in Shanghai too; 2023-01-31T15:59Z is not.
                refused(
                    r.contact("2023-01-31T15:59:00Z"),
                    Rule::NotActiveOnDate,
                    "data.pairing_id",
                ),
            ]
        },
    },
    Case {
        name: "activity after the pairing ended",
        steps: |r| {
            vec![
                Step::Ok(ev(
                    "pairing.ended",
                    &at("2023-06-30"),
                    json!({"pairing_id": r.pairing, "on": "2023-06-30", "reason": "moved away"}),
                )),
                refused(
                    r.cash(&at("2023-07-01"), 10_000),
                    Rule::NotActiveOnDate,
                    "data.pairing_id",
                ),
                refused(
                    r.visit(&at("2023-08-15")),
                    Rule::NotActiveOnDate,
                    "data.pairing_id",
                ),
                // The day it ended still counts; the day before too.
                Step::Ok(r.contact(&at("2023-06-30"))),
                Step::Ok(r.visit(&at("2023-06-29"))),
            ]
        },
    },
    Case {
        name: "activity during a suspension",
        steps: |r| {
            vec![
                Step::Ok(ev(
                    "pairing.suspended",
                    &at("2023-04-01"),
                    json!({"pairing_id": r.pairing, "on": "2023-04-01", "reason": "in hospital"}),
                )),
                refused(
                    r.contact(&at("2023-04-15")),
                    Rule::NotActiveOnDate,
                    "data.pairing_id",
                ),
                Step::Ok(ev(
                    "pairing.resumed",
                    &at("2023-05-01"),
                    json!({"pairing_id": r.pairing, "on": "2023-05-01"}),
                )),
                // Still refused inside the (now closed) suspension, accepted either side of it.
                refused(
                    r.contact(&at("2023-04-01")),
                    Rule::NotActiveOnDate,
                    "data.pairing_id",
                ),
                refused(
                    r.visit(&at("2023-04-30")),
                    Rule::NotActiveOnDate,
                    "data.pairing_id",
                ),
                Step::Ok(r.contact(&at("2023-03-31"))),
                Step::Ok(r.contact(&at("2023-05-01"))),
            ]
        },
    },
    // ---- the future
    Case {
        name: "a time beyond the clock skew (two minutes ahead is accepted)",
        steps: |r| {
            let in_10_min = (Utc::now() + Duration::minutes(10)).to_rfc3339();
            let in_6_min = (Utc::now() + Duration::minutes(6)).to_rfc3339();
            // The same instant with another offset is just as far ahead.
            let far = (Utc::now() + Duration::hours(3))
                .with_timezone(&chrono::FixedOffset::east_opt(-5 * 3600).unwrap())
                .to_rfc3339();
            let in_2_min = (Utc::now() + Duration::minutes(2)).to_rfc3339();
            vec![
                refused(r.contact(&in_10_min), Rule::InFuture, "time"),
                refused(r.contact(&in_6_min), Rule::InFuture, "time"),
                refused(r.contact(&far), Rule::InFuture, "time"),
                Step::Ok(r.contact(&in_2_min)),
            ]
        },
    },
    Case {
        name: "a date field in the future",
        steps: |r| {
            let later = (Utc::now() + Duration::days(3)).date_naive().to_string();
            let e = ev(
                "pairing.established",
                &Utc::now().to_rfc3339(),
                json!({"pairing_id": Uuid::now_v7(), "cadre_id": r.cadre2, "recipient_id": r.household, "on": later}),
            );
            vec![refused(e, Rule::InFuture, "data.on")]
        },
    },
    // ---- before the thing it belongs to
    Case {
        name: "resolving a difficulty before it was raised",
        steps: |r| {
            let difficulty = Uuid::now_v7();
            vec![
                Step::Ok(difficulty_raised(r, difficulty)),
                refused(
                    difficulty_resolved(difficulty, &at("2023-05-09")),
                    Rule::BeforeStart,
                    "time",
                ),
                Step::Ok(difficulty_resolved(difficulty, &at("2023-05-10"))),
            ]
        },
    },
    Case {
        name: "enrolling a pupil before birth",
        steps: |r| {
            let child = Uuid::now_v7();
            vec![
                Step::Ok(ev(
                    "recipient.registered",
                    &at("2023-03-01"),
                    json!({"recipient_id": child, "kind": "person", "name": "小红", "unit_id": r.school, "birth_date": "2016-06-01"}),
                )),
                refused(
                    ev(
                        "pupil.enrolled",
                        &at("2023-03-01"),
                        json!({"pupil_id": child, "school_id": r.school, "on": "2016-05-31"}),
                    ),
                    Rule::BeforeStart,
                    "data.on",
                ),
            ]
        },
    },
    Case {
        name: "a transfer dated before the pairing",
        steps: |r| {
            let e = ev(
                "pairing.transferred",
                &at("2023-03-01"),
                json!({"pairing_id": r.pairing, "to_cadre_id": r.cadre2, "on": "2023-01-15", "reason": "cadre moved"}),
            );
            vec![refused(e, Rule::BeforeStart, "data.on")]
        },
    },
    Case {
        name: "ending a category before it was certified",
        steps: |r| {
            let e = ev(
                "category.ended",
                &at("2023-03-01"),
                json!({"recipient_id": r.pupil, "category": "orphan", "on": "2021-12-31", "reason": "adopted"}),
            );
            vec![refused(e, Rule::BeforeStart, "data.on")]
        },
    },
    Case {
        name: "reviewing a care plan before it opened",
        steps: |r| {
            let plan = Uuid::now_v7();
            vec![
                Step::Ok(ev(
                    "care_plan.opened",
                    &at("2023-09-05"),
                    json!({"plan_id": plan, "pupil_id": r.pupil, "teacher_id": r.teacher, "scheme": "one_to_one",
                           "goals": "reading", "measures": "tutoring", "next_review": "2023-10-05"}),
                )),
                refused(
                    ev(
                        "care_plan.reviewed",
                        &at("2023-09-01"),
                        json!({"plan_id": plan, "progress": "fine", "next_review": "2023-10-05"}),
                    ),
                    Rule::BeforeStart,
                    "time",
                ),
            ]
        },
    },
    // ---- money
    Case {
        name: "zero and negative aid",
        steps: |r| {
            let mut steps: Vec<Step> = [0, -1, -10_000]
                .into_iter()
                .map(|value| {
                    refused(
                        r.cash(&at("2023-03-01"), value),
                        Rule::NotPositive,
                        "data.value_fen",
                    )
                })
                .collect();
            steps.push(Step::Ok(r.cash(&at("2023-03-01"), 1)));
            steps
        },
    },
    Case {
        name: "zero and negative student aid",
        steps: |r| {
            [0, -50_000]
                .into_iter()
                .map(|amount| {
                    refused(
                        r.student_aid(r.pupil, "for_orphans", "2023-autumn", amount),
                        Rule::NotPositive,
                        "data.amount_fen",
                    )
                })
                .collect()
        },
    },
    Case {
        name: "goods worth other than quantity times unit value",
        steps: |r| {
            let goods = |value: i64| {
                ev(
                    "aid.given",
                    &at("2023-03-01"),
                    json!({"pairing_id": r.pairing, "form": "goods", "value_fen": value, "fund_source": "bureau",
                           "item": "rice, 10 kg bag", "quantity": 3, "unit_value_fen": 10_000, "receipt_ref": "R-2"}),
                )
            };
            vec![
                refused(goods(29_999), Rule::GoodsValueMismatch, "data.value_fen"),
                refused(goods(10_000), Rule::GoodsValueMismatch, "data.value_fen"),
                Step::Ok(goods(30_000)),
                Step::Figure("aid_given_fen", 30_000),
            ]
        },
    },
    // ---- pairings and cases
    Case {
        name: "a second active pairing for a recipient",
        steps: |r| {
            vec![
                refused(
                    pairing_established("2023-03-01", Uuid::now_v7(), r.cadre2, r.person),
                    Rule::SecondActivePairing,
                    "data.recipient_id",
                ),
                // Once the first ends, a new pairing may begin.
                Step::Ok(ev(
                    "pairing.ended",
                    &at("2023-04-01"),
                    json!({"pairing_id": r.pairing, "on": "2023-04-01", "reason": "cadre retired"}),
                )),
                Step::Ok(pairing_established(
                    "2023-04-02",
                    Uuid::now_v7(),
                    r.cadre2,
                    r.person,
                )),
            ]
        },
    },
    Case {
        name: "resolving a resolved difficulty",
        steps: |r| {
            let difficulty = Uuid::now_v7();
            vec![
                Step::Ok(difficulty_raised(r, difficulty)),
                Step::Ok(difficulty_resolved(difficulty, &at("2023-05-20"))),
                refused(
                    difficulty_resolved(difficulty, &at("2023-05-20")),
                    Rule::AlreadyClosed,
                    "data.difficulty_id",
                ),
                // It counts once.
                Step::Figure("difficulties_resolved", 1),
            ]
        },
    },
    Case {
        name: "acknowledging a closed escalation",
        steps: |r| {
            let escalation = Uuid::now_v7();
            vec![
                Step::Ok(ev(
                    "escalation.raised",
                    &at("2023-05-10"),
                    json!({"escalation_id": escalation, "pairing_id": r.pairing, "to_level": "县民政局", "issue": "housing"}),
                )),
                Step::Ok(ev(
                    "escalation.closed",
                    &at("2023-06-10"),
                    json!({"escalation_id": escalation, "outcome": "repaired"}),
                )),
                refused(
                    ev(
                        "escalation.acknowledged",
                        &at("2023-06-11"),
                        json!({"escalation_id": escalation, "by": "县民政局"}),
                    ),
                    Rule::AlreadyClosed,
                    "data.escalation_id",
                ),
            ]
        },
    },
    // ---- student aid and placements
    Case {
        name: "student aid to a pupil not enrolled that term",
        steps: |r| {
            vec![
                // Enrolled from 2022-09-01: the 2021 autumn term is before.
                refused(
                    r.student_aid(r.pupil, "for_orphans", "2021-autumn", 50_000),
                    Rule::NotEnrolled,
                    "data.pupil_id",
                ),
                // Leaves in July 2023: the 2023 autumn term is after.
                Step::Ok(ev(
                    "pupil.left",
                    &at("2023-07-15"),
                    json!({"pupil_id": r.pupil, "on": "2023-07-15", "reason": "moved_away", "dropout_cause": null, "note": ""}),
                )),
                refused(
                    r.student_aid(r.pupil, "for_orphans", "2023-autumn", 50_000),
                    Rule::NotEnrolled,
                    "data.pupil_id",
                ),
                Step::Ok(r.student_aid(r.pupil, "for_orphans", "2023-spring", 50_000)),
            ]
        },
    },
    Case {
        name: "student aid without the programme's category",
        steps: |r| {
            let mut steps: Vec<Step> = ["for_disabled", "for_unsupported"]
                .into_iter()
                .map(|programme| {
                    refused(
                        r.student_aid(r.pupil, programme, "2023-autumn", 50_000),
                        Rule::MissingCategory,
                        "data.programme",
                    )
                })
                .collect();
            steps.push(Step::Ok(r.student_aid(
                r.pupil,
                "other",
                "2023-autumn",
                50_000,
            )));
            steps
        },
    },
    Case {
        name: "a placement of a child not certified disabled",
        steps: |r| {
            let place = || {
                ev(
                    "placement.decided",
                    &at("2023-09-01"),
                    json!({"placement_id": Uuid::now_v7(), "pupil_id": r.pupil, "mode": "regular_class", "school_id": r.school, "on": "2023-09-01"}),
                )
            };
            vec![
                refused(place(), Rule::MissingCategory, "data.pupil_id"),
                Step::Ok(ev(
                    "category.certified",
                    &at("2023-08-01"),
                    json!({"recipient_id": r.pupil, "category": "disabled_child", "certified_by": "残联", "from": "2023-08-01", "to": null}),
                )),
                Step::Ok(place()),
                Step::Figure("placements_total", 1),
            ]
        },
    },
];

#[test]
fn every_refusal_of_the_table_names_its_rule_field_and_message_and_leaves_the_log_unchanged() {
    let mut refusals = 0;
    for case in REFUSALS {
        let r = Reg::new();
        for (n, step) in (case.steps)(&r).into_iter().enumerate() {
            let what = format!("case {:?}, step {n}", case.name);
            match step {
                Step::Ok(e) => {
                    let t = e.event.event_type();
                    if let Err(err) = append(&r.app, vec![e]) {
                        panic!("{what}: {t} should be accepted: {err}");
                    }
                }
                Step::Refused {
                    event,
                    rule,
                    field,
                    message,
                } => {
                    let got = rejected_as(&what, &r.app, event, rule, field);
                    assert!(
                        got.contains(message),
                        "{what}: the message has {message:?}: {got}"
                    );
                    refusals += 1;
                }
                Step::Figure(metric, value) => {
                    assert_eq!(r.explain(metric).value, value, "{what}: {metric}");
                }
            }
        }
    }
    // The cases' count is kept: a case dropped from the table shows here.
    assert_eq!((REFUSALS.len(), refusals), (27, 41));
}

// ---- batches --------------------------------------------------------------------------------

#[test]
fn a_batch_with_one_bad_event_writes_nothing_and_leaves_no_trace_in_the_records() {
    let r = Reg::new();
    let before = state(&r.app);
    let new_pairing = Uuid::now_v7();
    let establish = ev(
        "pairing.established",
        &at("2023-03-01"),
        json!({"pairing_id": new_pairing, "cadre_id": r.cadre2, "recipient_id": r.household, "on": "2023-03-01"}),
    );
    let good_contact = r.contact_on(new_pairing, &at("2023-03-02"));
    let bad_aid = ev("aid.given", &at("2023-03-03"), cash_data(new_pairing, 0));
    let err = append(&r.app, vec![establish, good_contact, bad_aid]).unwrap_err();
    match err {
        AppError::Rejected { index, error, .. } => {
            assert_eq!(index, 2);
            assert_eq!(
                (error.rule, error.field),
                (Rule::NotPositive, "data.value_fen")
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(state(&r.app), before);
    // The pairing of the refused batch is not in the records.
    rejected(
        &r.app,
        r.contact_on(new_pairing, &at("2023-03-04")),
        Rule::UnknownId,
        "data.pairing_id",
    );
    // And the household is still free to be paired.
    ok(
        &r.app,
        ev(
            "pairing.established",
            &at("2023-03-01"),
            json!({"pairing_id": new_pairing, "cadre_id": r.cadre2, "recipient_id": r.household, "on": "2023-03-01"}),
        ),
    );
}

/// A void folded in and then taken back out with its batch: the voided pairing is live again,
/// and the records agree with ones rebuilt from the log (a reopen).
#[test]
fn a_void_in_a_refused_batch_is_rolled_back_out_of_the_records() {
    let r = Reg::new();
    let before = state(&r.app);
    let void = r.void(r.pairing_event, &at("2023-03-01"));
    let bad_aid = ev("aid.given", &at("2023-03-03"), cash_data(r.pairing, 0));
    let err = append(&r.app, vec![void, bad_aid]).unwrap_err();
    assert!(
        matches!(err, AppError::Rejected { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(state(&r.app), before);
    // The pairing is still established: activity on it is accepted, a second pairing of the
    // same person is not.
    ok(&r.app, r.contact_on(r.pairing, &at("2023-03-02")));
    let second = ev(
        "pairing.established",
        &at("2023-03-05"),
        json!({"pairing_id": Uuid::now_v7(), "cadre_id": r.cadre2, "recipient_id": r.person, "on": "2023-03-05"}),
    );
    let in_place = append(&r.app, vec![second.clone()])
        .unwrap_err()
        .to_string();
    let path = r._dir.path().to_path_buf();
    let Reg { _dir, app, .. } = r;
    drop(app);
    let reopened = App::open(&path, false).unwrap();
    let rebuilt = append(&reopened, vec![second]).unwrap_err().to_string();
    assert_eq!(
        in_place, rebuilt,
        "rolled back records differ from rebuilt ones"
    );
}

#[test]
fn records_survive_a_reopen() {
    let r = Reg::new();
    let path = r._dir.path().to_path_buf();
    let Reg {
        _dir, app, pairing, ..
    } = r;
    drop(app);
    let app = App::open(&path, false).unwrap();
    // The pairing and its dates are known after a reopen.
    ok(
        &app,
        ev(
            "contact.recorded",
            &at("2023-03-01"),
            json!({"pairing_id": pairing, "channel": "video", "summary": "ok", "duration_minutes": null}),
        ),
    );
    rejected(
        &app,
        ev(
            "contact.recorded",
            &at("2023-01-01"),
            json!({"pairing_id": pairing, "channel": "video", "summary": "ok", "duration_minutes": null}),
        ),
        Rule::NotActiveOnDate,
        "data.pairing_id",
    );
}

#[test]
fn a_resend_is_acked_with_its_position_and_a_changed_resend_is_refused() {
    let r = Reg::new();
    let (id, v) = line(
        "contact.recorded",
        &at("2023-03-01"),
        json!({"pairing_id": r.pairing, "channel": "phone", "summary": "hello", "duration_minutes": 5}),
    );
    let first = ok(&r.app, parse_value(v.clone()).unwrap());
    assert!(!first.duplicate);
    let before = state(&r.app);
    let again = ok(&r.app, parse_value(v.clone()).unwrap());
    assert_eq!((again.event_id, again.position), (id, first.position));
    assert!(again.duplicate);
    assert_eq!(state(&r.app), before);
    // The same id with other content.
    let mut changed = v.clone();
    changed["data"]["summary"] = json!("goodbye");
    match append(&r.app, vec![parse_value(changed).unwrap()]) {
        Err(AppError::IdConflict {
            event_id, position, ..
        }) => assert_eq!((event_id, position), (id, first.position)),
        other => panic!("expected an id conflict, got {other:?}"),
    }
    let mut moved = v.clone();
    moved["time"] = json!("2023-03-01T02:00:00Z");
    assert!(
        matches!(
            append(&r.app, vec![parse_value(moved).unwrap()]),
            Err(AppError::IdConflict { .. })
        ),
        "the same instant with another offset is other content"
    );
    // A batch holding the resend and a new event: nothing is written.
    let err = append(
        &r.app,
        vec![parse_value(v).unwrap(), r.contact(&at("2023-03-02"))],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            AppError::PartialDuplicate {
                already: 1,
                total: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(state(&r.app), before);
    assert_eq!(r.explain("contacts").value, 1);
}

#[test]
fn a_refused_batch_while_another_is_in_flight_leaves_the_records_intact() {
    let r = Reg::new();
    let in_flight = r
        .app
        .submit(
            vec![r.contact(&at("2023-03-01"))],
            "tester",
            Keep::default(),
            &|_, _| Ok(()),
        )
        .unwrap();
    let err = append(
        &r.app,
        vec![r.contact(&at("2023-03-02")), r.cash(&at("2023-03-02"), 0)],
    )
    .unwrap_err();
    assert!(
        matches!(err, AppError::Rejected { index: 1, .. }),
        "{err:?}"
    );
    // While the first batch is still in flight, and after it settles, the records still know
    // the registry.
    ok(&r.app, r.contact(&at("2023-03-03")));
    in_flight.wait().unwrap();
    ok(&r.app, r.contact(&at("2023-03-04")));
    rejected(
        &r.app,
        ev(
            "pairing.established",
            &at("2023-03-05"),
            json!({"pairing_id": Uuid::now_v7(), "cadre_id": r.cadre2, "recipient_id": r.person, "on": "2023-03-05"}),
        ),
        Rule::SecondActivePairing,
        "data.recipient_id",
    );
    assert_eq!(r.explain("contacts").value, 3);
}

// ---- format errors --------------------------------------------------------------------------

fn format_error(v: Value) -> FormatError {
    match parse_value(v.clone()) {
        Ok(e) => panic!("should not parse: {v}\n{e:?}"),
        Err(e) => e,
    }
}

fn contact_line() -> Value {
    line(
        "contact.recorded",
        &at("2023-03-01"),
        json!({"pairing_id": Uuid::now_v7(), "channel": "phone", "summary": "hello", "duration_minutes": 5}),
    )
    .1
}

#[test]
fn the_contact_line_used_below_parses() {
    parse_value(contact_line()).unwrap();
    parse_line(&contact_line().to_string()).unwrap();
}

/// What a format error must name.
enum Names {
    /// Exactly this field.
    Field(&'static str),
    /// A field under this one (what holds today, whatever the field named).
    Under(&'static str),
}

/// A format error of the table: the contact line, edited, does not parse; the error names
/// the field, and its rule holds the fragment.
struct FormatCase {
    name: &'static str,
    edit: fn(&mut Value),
    names: Names,
    rule_holds: &'static str,
}

const FORMAT_ERRORS: &[FormatCase] = &[
    FormatCase {
        name: "unknown event type",
        edit: |v| v["type"] = json!("carelog.contact.made"),
        names: Names::Field("type"),
        rule_holds: "carelog.contact.made",
    },
    FormatCase {
        name: "missing data field",
        edit: |v| {
            v["data"].as_object_mut().unwrap().remove("summary");
        },
        names: Names::Field("data.summary"),
        rule_holds: "",
    },
    FormatCase {
        name: "missing data",
        edit: |v| {
            v.as_object_mut().unwrap().remove("data");
        },
        names: Names::Field("data"),
        rule_holds: "",
    },
    FormatCase {
        name: "missing time",
        edit: |v| {
            v.as_object_mut().unwrap().remove("time");
        },
        names: Names::Field("time"),
        rule_holds: "",
    },
    FormatCase {
        name: "unknown data field",
        edit: |v| v["data"]["mood"] = json!("good"),
        names: Names::Field("data.mood"),
        rule_holds: "",
    },
    FormatCase {
        name: "a number for a text in data",
        edit: |v| v["data"]["summary"] = json!(5),
        names: Names::Field("data.summary"),
        rule_holds: "",
    },
    FormatCase {
        name: "a text for a number in data",
        edit: |v| v["data"]["duration_minutes"] = json!("ten"),
        names: Names::Field("data.duration_minutes"),
        rule_holds: "",
    },
    FormatCase {
        name: "a number for a text in data (under data)",
        edit: |v| v["data"]["summary"] = json!(5),
        names: Names::Under("data"),
        rule_holds: "",
    },
    FormatCase {
        name: "a text for a number in data (under data)",
        edit: |v| v["data"]["duration_minutes"] = json!("ten"),
        names: Names::Under("data"),
        rule_holds: "",
    },
    FormatCase {
        name: "an unknown channel",
        edit: |v| v["data"]["channel"] = json!("pigeon"),
        names: Names::Under("data"),
        rule_holds: "",
    },
    FormatCase {
        name: "a pairing id that is not a UUID",
        edit: |v| v["data"]["pairing_id"] = json!("not-a-uuid"),
        names: Names::Under("data"),
        rule_holds: "",
    },
    FormatCase {
        name: "a number for the time",
        edit: |v| v["time"] = json!(20230301),
        names: Names::Field("time"),
        rule_holds: "",
    },
    FormatCase {
        name: "a number for the id",
        edit: |v| v["id"] = json!(17),
        names: Names::Field("id"),
        rule_holds: "",
    },
    FormatCase {
        name: "a time without its offset",
        edit: |v| v["time"] = json!("2023-03-01T10:00:00"),
        names: Names::Field("time"),
        rule_holds: "",
    },
    FormatCase {
        name: "the nil UUID as the id",
        edit: |v| v["id"] = json!(Uuid::nil()),
        names: Names::Field("id"),
        rule_holds: "",
    },
    FormatCase {
        name: "unknown top-level attribute",
        edit: |v| v["pairing"] = json!("x"),
        names: Names::Field("pairing"),
        rule_holds: "",
    },
    FormatCase {
        name: "missing specversion",
        edit: |v| {
            v.as_object_mut().unwrap().remove("specversion");
        },
        names: Names::Field("specversion"),
        rule_holds: "",
    },
    FormatCase {
        name: "another specversion",
        edit: |v| v["specversion"] = json!("0.3"),
        names: Names::Field("specversion"),
        rule_holds: "",
    },
    FormatCase {
        name: "a schemaversion other than the current",
        edit: |v| v["schemaversion"] = json!(1),
        names: Names::Field("schemaversion"),
        rule_holds: "",
    },
];

#[test]
fn every_format_error_of_the_table_names_its_field() {
    for case in FORMAT_ERRORS {
        let mut v = contact_line();
        (case.edit)(&mut v);
        let e = match parse_value(v.clone()) {
            Ok(e) => panic!("{}: should not parse: {v}\n{e:?}", case.name),
            Err(e) => e,
        };
        match case.names {
            Names::Field(field) => assert_eq!(e.field, field, "{}: {e}", case.name),
            Names::Under(prefix) => {
                assert!(e.field.starts_with(prefix), "{}: {e}", case.name)
            }
        }
        assert!(
            e.rule.contains(case.rule_holds),
            "{}: the rule holds {:?}: {e}",
            case.name,
            case.rule_holds
        );
    }
    // The cases' count is kept: a case dropped from the table shows here.
    assert_eq!(FORMAT_ERRORS.len(), 19);
}

#[test]
fn the_current_schemaversion_parses() {
    let mut v = contact_line();
    v["schemaversion"] = json!(2);
    parse_value(v).unwrap();
}

#[test]
fn malformed_json_line_is_a_format_error_on_line() {
    for text in [
        "{\"specversion\": \"1.0\", ",
        "not json",
        "[1, 2, 3]",
        "\"a string\"",
    ] {
        let e = parse_line(text).expect_err(text);
        assert_eq!(e.field, "line", "{text}: {e}");
    }
    let e = parse_line(&contact_line().to_string()[1..]).unwrap_err();
    assert_eq!(e.field, "line");
}

#[test]
fn a_correction_of_a_correction_is_a_format_error() {
    let (_, v) = line(
        "record.corrected",
        &at("2023-03-01"),
        json!({"target_event_id": Uuid::now_v7(), "reason": "x", "corrected_type": "carelog.record.voided",
               "corrected": {"target_event_id": Uuid::now_v7(), "reason": "y"}}),
    );
    assert_eq!(format_error(v).field, "data.corrected_type");
    // A correction whose corrected data is missing a field names it under data.corrected.
    let (_, v) = line(
        "record.corrected",
        &at("2023-03-01"),
        json!({"target_event_id": Uuid::now_v7(), "reason": "x", "corrected_type": "carelog.contact.recorded",
               "corrected": {"pairing_id": Uuid::now_v7(), "channel": "phone", "duration_minutes": null}}),
    );
    assert_eq!(format_error(v).field, "data.corrected.summary");
}

// ---- voids and corrections ------------------------------------------------------------------

#[test]
fn voiding_a_void_is_rejected() {
    let r = Reg::new();
    let contact = ok(&r.app, r.contact(&at("2023-03-01")));
    let void = ok(&r.app, r.void(contact.event_id, &at("2023-03-02")));
    rejected(
        &r.app,
        r.void(void.event_id, &at("2023-03-03")),
        Rule::NotAllowed,
        "data.target_event_id",
    );
    // Voiding the voided event again, or correcting it, is refused too.
    rejected(
        &r.app,
        r.void(contact.event_id, &at("2023-03-03")),
        Rule::AlreadyClosed,
        "data.target_event_id",
    );
    let corrected = json!({"pairing_id": r.pairing, "channel": "video", "summary": "x", "duration_minutes": null});
    rejected(
        &r.app,
        r.correction(contact.event_id, "contact.recorded", corrected),
        Rule::AlreadyClosed,
        "data.target_event_id",
    );
}

#[test]
fn correcting_a_correction_is_rejected() {
    let r = Reg::new();
    let contact = ok(&r.app, r.contact(&at("2023-03-01")));
    let corrected = json!({"pairing_id": r.pairing, "channel": "video", "summary": "x", "duration_minutes": null});
    let c1 = ok(
        &r.app,
        r.correction(contact.event_id, "contact.recorded", corrected.clone()),
    );
    rejected(
        &r.app,
        r.correction(c1.event_id, "contact.recorded", corrected),
        Rule::NotAllowed,
        "data.target_event_id",
    );
    rejected(
        &r.app,
        r.void(c1.event_id, &at("2023-11-02")),
        Rule::NotAllowed,
        "data.target_event_id",
    );
}

#[test]
fn correcting_twice_is_accepted_and_the_latest_correction_wins() {
    let r = Reg::new();
    let aid = ok(&r.app, r.cash(&at("2023-03-01"), 10_000));
    ok(&r.app, r.cash(&at("2023-03-05"), 500));
    assert_eq!(r.explain("aid_given_fen").value, 10_500);
    let c1 = ok(
        &r.app,
        r.correction(aid.event_id, "aid.given", cash_data(r.pairing, 20_000)),
    );
    assert_eq!(r.explain("aid_given_fen").value, 20_500);
    let c2 = ok(
        &r.app,
        r.correction(aid.event_id, "aid.given", cash_data(r.pairing, 15_000)),
    );
    let e = r.explain("aid_given_fen");
    assert_eq!(e.value, 15_500, "the latest correction wins");
    // The corrected event still stands behind the figure, under its own id and position.
    assert!(e.events.contains(&Source {
        id: aid.event_id,
        position: aid.position
    }));
    assert_eq!(e.events.len(), 2);
    let by: Vec<Uuid> = e
        .adjustments
        .iter()
        .filter(|a| a.kind == AdjustmentKind::Corrected && a.target.id == aid.event_id)
        .map(|a| a.by.id)
        .collect();
    assert_eq!(by, [c1.event_id, c2.event_id]);
    // A correction is itself checked: zero is still refused.
    rejected(
        &r.app,
        r.correction(aid.event_id, "aid.given", cash_data(r.pairing, 0)),
        Rule::NotPositive,
        "data.value_fen",
    );
    // And a correction to another type is refused.
    rejected(
        &r.app,
        r.correction(
            aid.event_id,
            "contact.recorded",
            json!({"pairing_id": r.pairing, "channel": "video", "summary": "x", "duration_minutes": null}),
        ),
        Rule::WrongKind,
        "data.corrected_type",
    );
    assert_eq!(r.explain("aid_given_fen").value, 15_500);
}

#[test]
fn voiding_a_pairing_with_activities_is_rejected_until_they_are_voided() {
    let r = Reg::new();
    let c = ok(&r.app, r.contact(&at("2023-03-01")));
    let v = ok(&r.app, r.visit(&at("2023-03-02")));
    rejected(
        &r.app,
        r.void(r.pairing_event, &at("2023-03-10")),
        Rule::NotAllowed,
        "data.target_event_id",
    );
    ok(&r.app, r.void(c.event_id, &at("2023-03-10")));
    rejected(
        &r.app,
        r.void(r.pairing_event, &at("2023-03-10")),
        Rule::NotAllowed,
        "data.target_event_id",
    );
    ok(&r.app, r.void(v.event_id, &at("2023-03-10")));
    ok(&r.app, r.void(r.pairing_event, &at("2023-03-10")));
    // The pairing is gone from the records: activities on it are refused, and the person is
    // free to be paired again.
    rejected(
        &r.app,
        r.contact(&at("2023-03-11")),
        Rule::UnknownId,
        "data.pairing_id",
    );
    ok(
        &r.app,
        ev(
            "pairing.established",
            &at("2023-03-12"),
            json!({"pairing_id": Uuid::now_v7(), "cadre_id": r.cadre2, "recipient_id": r.person, "on": "2023-03-12"}),
        ),
    );
    assert_eq!(r.explain("contacts").value, 0);
    assert_eq!(r.explain("home_visits").value, 0);
    // Only the new pairing's cadre is paired now; the person counts once.
    let e = r.explain("cadres_paired");
    assert_eq!(e.value, 1, "{:?}", e.events);
    assert_eq!(r.explain("paired_severely_disabled").value, 1);
}

#[test]
fn correcting_or_voiding_a_state_change_is_rejected() {
    let r = Reg::new();
    let transfer = ok(
        &r.app,
        ev(
            "pairing.transferred",
            &at("2023-03-01"),
            json!({"pairing_id": r.pairing, "to_cadre_id": r.cadre2, "on": "2023-03-01", "reason": "cadre moved"}),
        ),
    );
    rejected(
        &r.app,
        r.correction(
            transfer.event_id,
            "pairing.transferred",
            json!({"pairing_id": r.pairing, "to_cadre_id": r.cadre2, "on": "2023-03-02", "reason": "cadre moved"}),
        ),
        Rule::NotAllowed,
        "data.target_event_id",
    );
    rejected(
        &r.app,
        r.void(transfer.event_id, &at("2023-03-03")),
        Rule::NotAllowed,
        "data.target_event_id",
    );
    // A creation cannot be corrected either.
    rejected(
        &r.app,
        r.correction(
            r.pairing_event,
            "pairing.established",
            json!({"pairing_id": r.pairing, "cadre_id": r.cadre, "recipient_id": r.person, "on": "2023-02-02"}),
        ),
        Rule::NotAllowed,
        "data.target_event_id",
    );
}

#[test]
fn a_correction_that_changes_the_pairing_is_rejected() {
    let r = Reg::new();
    let other_pairing = Uuid::now_v7();
    ok(
        &r.app,
        ev(
            "pairing.established",
            &at("2023-02-01"),
            json!({"pairing_id": other_pairing, "cadre_id": r.cadre2, "recipient_id": r.household, "on": "2023-02-01"}),
        ),
    );
    let contact = ok(&r.app, r.contact(&at("2023-03-01")));
    rejected(
        &r.app,
        r.correction(
            contact.event_id,
            "contact.recorded",
            json!({"pairing_id": other_pairing, "channel": "phone", "summary": "x", "duration_minutes": null}),
        ),
        Rule::NotAllowed,
        "data.corrected",
    );
    // The same correction keeping the pairing is accepted.
    ok(
        &r.app,
        r.correction(
            contact.event_id,
            "contact.recorded",
            json!({"pairing_id": r.pairing, "channel": "message", "summary": "x", "duration_minutes": null}),
        ),
    );
    assert_eq!(r.explain("contacts").value, 1);
}

#[test]
fn a_voided_contact_drops_out_of_contacts_and_shows_as_an_adjustment() {
    let r = Reg::new();
    let acks: Vec<Ack> = ["2023-03-01", "2023-04-01", "2023-05-01"]
        .iter()
        .map(|d| ok(&r.app, r.contact(&at(d))))
        .collect();
    // A contact outside 2023 is not in the figure.
    ok(&r.app, r.contact(&at("2024-01-05")));
    let e = r.explain("contacts");
    assert_eq!(e.value, 3);
    let sources = |acks: &[Ack]| -> Vec<Source> {
        acks.iter()
            .map(|a| Source {
                id: a.event_id,
                position: a.position,
            })
            .collect()
    };
    assert_eq!(e.events, sources(&acks));
    assert!(e.adjustments.is_empty());

    let void = ok(&r.app, r.void(acks[1].event_id, &Utc::now().to_rfc3339()));
    let e = r.explain("contacts");
    assert_eq!(e.value, 2);
    assert_eq!(e.events, sources(&[acks[0], acks[2]]));
    assert_eq!(e.adjustments.len(), 1, "{:?}", e.adjustments);
    let a = &e.adjustments[0];
    assert_eq!(a.kind, AdjustmentKind::Voided);
    assert_eq!(
        a.target,
        Source {
            id: acks[1].event_id,
            position: acks[1].position
        }
    );
    assert_eq!(
        a.by,
        Source {
            id: void.event_id,
            position: void.position
        }
    );
    assert_eq!(a.reason, "entered by mistake");
    // As of the position before the void, the contact was still counted.
    let then = r
        .app
        .explain(
            "contacts",
            AsOf::Position(void.position - 1),
            None,
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!(then.value, 3);
    assert!(then.adjustments.is_empty());
    // The report agrees.
    let report = r
        .app
        .report(AsOf::Now, None, false, &mut |_, _| {})
        .unwrap();
    let contacts = report
        .figures
        .iter()
        .find(|f| f.metric == "contacts")
        .unwrap();
    assert_eq!(contacts.value, 2);
}

// ---- bounds on every number a person types ---------------------------------------------------

/// One bounded field: its name, its bound, and an event carrying a value there.
struct Bound {
    field: &'static str,
    max: i64,
    event: fn(&Reg, i64) -> IncomingEvent,
}

const BOUNDS: &[Bound] = &[
    Bound {
        field: "data.duration_minutes",
        max: 1_440,
        event: |r, n| {
            ev(
                "contact.recorded",
                &at("2023-03-01"),
                json!({"pairing_id": r.pairing, "channel": "phone", "summary": "a long call", "duration_minutes": n}),
            )
        },
    },
    Bound {
        field: "data.quantity",
        max: 1_000_000,
        event: |r, n| {
            ev(
                "aid.given",
                &at("2023-03-01"),
                json!({"pairing_id": r.pairing, "form": "goods", "value_fen": n, "fund_source": "bureau",
                       "item": "exercise book", "quantity": n, "unit_value_fen": 1, "receipt_ref": "R-3"}),
            )
        },
    },
    Bound {
        field: "data.unit_value_fen",
        max: 100_000_000,
        event: |r, n| {
            ev(
                "aid.given",
                &at("2023-03-01"),
                json!({"pairing_id": r.pairing, "form": "goods", "value_fen": n, "fund_source": "bureau",
                       "item": "a wheelchair", "quantity": 1, "unit_value_fen": n, "receipt_ref": "R-4"}),
            )
        },
    },
    Bound {
        field: "data.value_fen",
        max: 100_000_000,
        event: |r, n| r.cash(&at("2023-03-01"), n),
    },
    Bound {
        field: "data.amount_fen",
        max: 100_000_000,
        event: |r, n| r.student_aid(r.pupil, "for_orphans", "2023-autumn", n),
    },
    Bound {
        field: "data.value",
        max: 1_000_000_000_000,
        event: |_, n| {
            ev(
                "claim.filed",
                &at("2023-12-01"),
                json!({"claim_id": Uuid::now_v7(), "metric": "aid_given_fen", "scope_unit_id": null,
                       "period_from": "2023-01-01", "period_to": "2023-12-31", "value": n,
                       "comparison": "exactly", "source_document": "annual report", "reported_on": "2023-12-01"}),
            )
        },
    },
    Bound {
        // In days after the grant (the field holds an instant).
        field: "data.expires_at",
        max: 3_650,
        event: |_, days| {
            let granted = chrono::DateTime::parse_from_rfc3339(&at("2023-03-01")).unwrap();
            let expires = granted + Duration::days(days);
            ev(
                "token.granted",
                &at("2023-03-01"),
                json!({"token_id": Uuid::now_v7(), "secret_sha256": "ab".repeat(32), "role": "auditor",
                       "person_id": null, "unit_id": null, "expires_at": expires.to_rfc3339()}),
            )
        },
    },
];

#[test]
fn every_typed_number_has_a_bound_that_passes_and_one_more_is_refused_naming_the_field() {
    for b in BOUNDS {
        let r = Reg::new();
        let message = rejected_as(
            &format!("{} at {}", b.field, b.max + 1),
            &r.app,
            (b.event)(&r, b.max + 1),
            Rule::TooLarge,
            b.field,
        );
        assert!(
            message.contains(&b.max.to_string()) || b.field == "data.expires_at",
            "{}: the message names the bound: {message}",
            b.field
        );
        let e = (b.event)(&r, b.max);
        if let Err(err) = append(&r.app, vec![e]) {
            panic!(
                "{} at its bound {} should be accepted: {err}",
                b.field, b.max
            );
        }
    }
    // The duration the issue found accepted: u32::MAX minutes.
    let r = Reg::new();
    rejected(
        &r.app,
        (BOUNDS[0].event)(&r, i64::from(u32::MAX)),
        Rule::TooLarge,
        "data.duration_minutes",
    );
}

#[test]
fn a_token_expires_after_its_grant_and_is_not_granted_to_staff_who_left() {
    let r = Reg::new();
    let grant = |person: Option<Uuid>, role: &str, expires: Option<&str>| {
        ev(
            "token.granted",
            &at("2023-03-01"),
            json!({"token_id": Uuid::now_v7(), "secret_sha256": "cd".repeat(32), "role": role,
                   "person_id": person, "unit_id": null, "expires_at": expires}),
        )
    };
    rejected(
        &r.app,
        grant(None, "auditor", Some("2023-03-01T09:00:00+08:00")),
        Rule::BeforeStart,
        "data.expires_at",
    );
    // No expiry given: accepted (it expires 90 days after the grant).
    ok(&r.app, grant(None, "auditor", None));
    ok(
        &r.app,
        grant(
            Some(r.cadre2),
            "recorder",
            Some("2023-03-02T10:00:00+08:00"),
        ),
    );
    ok(
        &r.app,
        ev(
            "staff.left",
            &at("2023-03-05"),
            json!({"person_id": r.cadre2, "on": "2023-03-05", "reason": "retired"}),
        ),
    );
    let message = rejected(
        &r.app,
        grant(
            Some(r.cadre2),
            "recorder",
            Some("2023-03-02T10:00:00+08:00"),
        ),
        Rule::StaffLeft,
        "data.person_id",
    );
    assert!(message.contains("left the programme"), "{message}");
}
