//! The shared test kit every registered projection gets for free.
//!
//! One realistic mid-size store is generated (units, cadres, recipients with categories,
//! pairings with a transfer, a suspension and an ending, a few hundred activities, aid in cash
//! and goods, difficulties, escalations, pupils with categories, moves, leavings and dropouts,
//! student aid, placements with a change, care plans, claims, voids and corrections), written
//! through [`App::append`] exactly as `carelog append` writes it. Then, for EVERY projection in
//! [`registry`], the properties the engine relies on are checked:
//!
//! - (a) incremental application in random chunk sizes, with a checkpoint round trip (encode,
//!   decode) between chunks, gives the bytes of a full rebuild;
//! - (b) checkpoint + tail gives the bytes and answers of a full rebuild, as of the head and as
//!   of a middle position;
//! - (c) two rebuilds give byte-identical states (whatever the company of other projections);
//! - (d) deleting all checkpoints changes no answer (query JSON and figures);
//! - (e) as of a position equals a rebuild over only the events up to that position (in memory,
//!   and in a second store holding only that prefix);
//! - (f) a checkpoint from another log is ignored; one from a log sharing the prefix is used;
//! - (g) a held timeline (snapshots that share with each other and with the head) gives, as of
//!   any position, the bytes and answers of a replay, and so do the app's report, explain and
//!   claims check with the timeline on and off.
//!
//! A new projection needs nothing here: once it is in `projections::registry()`, it is covered.

use std::any::Any;

use carelog::app::export::to_cloudevent;
use carelog::app::scenario::{self, Scenario};
use carelog::app::{App, Keep, LoggedEvent};
use carelog::domain::Date;
use carelog::domain::cloudevent::{IncomingEvent, parse_value};
use carelog::log::{AppendBatch, NewEvent};
use carelog::projection::append_map::copied_bytes;
use carelog::projection::checkpoint::Checkpoints;
use carelog::projection::timeline::SNAPSHOTS_MAX;
use carelog::projection::{
    AnyProjection, AsOf, EventView, Figure, PairingBook, Period, Query, Rebuilt, Source, Timeline,
    replay,
};
use carelog::projections::registry;
use carelog::rng::SplitMix64;
use carelog::time::Instant;
use chrono::{Datelike, Duration, NaiveDate, SecondsFormat, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use uuid::Uuid;

// ---- a seeded generator of a valid, realistic event sequence ------------------------------

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

/// A time on a Shanghai day, written either at +08:00 or in UTC (same instant, same day): the
/// instant keeps the offset, and the line's `time` is written with it.
fn at(d: NaiveDate, hour: u32, minute: u32, as_utc: bool) -> Instant {
    let t = scenario::shanghai_at(d, i64::from(hour) * 60 + i64::from(minute) - 8 * 60);
    if as_utc {
        t.with_timezone(&Utc).fixed_offset()
    } else {
        t
    }
}

/// How an instant is written in a line: `Z` when it is in UTC, else with its offset.
fn written(t: Instant) -> String {
    if t.offset().local_minus_utc() == 0 {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        t.to_rfc3339()
    }
}

/// What the generator knows of a pairing, to record activities only on active days.
#[derive(Clone)]
struct PairingPlan {
    id: Uuid,
    established: NaiveDate,
    suspended: Option<(NaiveDate, NaiveDate)>,
    ended: Option<NaiveDate>,
    /// (cadre, from): the holder changes with a transfer.
    holders: Vec<(Uuid, NaiveDate)>,
}

impl PairingPlan {
    fn active(&self, d: NaiveDate) -> bool {
        self.established <= d
            && self.ended.is_none_or(|e| d <= e)
            && !self.suspended.is_some_and(|(f, t)| f <= d && d < t)
    }

    fn holder(&self, d: NaiveDate) -> Uuid {
        self.holders
            .iter()
            .rev()
            .find(|(_, f)| *f <= d)
            .map(|(c, _)| *c)
            .expect("a holder from the start")
    }
}

/// An event's type and data, planned on the library's [`Scenario`] (which draws the ids and
/// keeps the order), written as a CloudEvents line at the end.
struct Line {
    ty: String,
    data: Value,
}

struct Gen {
    rng_and_plan: Scenario<Line>,
}

const SETUP_DAY: (i32, u32, u32) = (2022, 1, 1);

impl Gen {
    fn new(seed: u64) -> Self {
        let (y, m, d) = SETUP_DAY;
        Self {
            rng_and_plan: Scenario::new(seed, at(ymd(y, m, d), 9, 0, false)),
        }
    }

    fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng_and_plan.rng
    }

    fn entity(&mut self) -> Uuid {
        self.rng_and_plan.entity()
    }

    /// Adds an event recorded on `record_on`, having happened at `time`. Events recorded on
    /// the same day are appended in the order they were generated.
    fn push(&mut self, record_on: NaiveDate, time: Instant, ty: &str, data: Value) -> Uuid {
        let recorded = at(record_on, 12, 0, false);
        let line = Line {
            ty: ty.to_string(),
            data,
        };
        self.rng_and_plan.record(time, recorded, line)
    }

    /// A setup event: recorded before everything else, in generation order.
    fn setup(&mut self, d: NaiveDate, ty: &str, data: Value) -> Uuid {
        let (y, m, dd) = SETUP_DAY;
        self.push(ymd(y, m, dd), at(d, 9, 0, false), ty, data)
    }

    /// An event recorded on the day it happened, at a random hour, sometimes written in UTC.
    fn on(&mut self, d: NaiveDate, ty: &str, data: Value) -> Uuid {
        let hour = 8 + self.rng().below(11) as u32;
        let minute = self.rng().below(60) as u32;
        let utc = self.rng().chance(30);
        self.push(d, at(d, hour, minute, utc), ty, data)
    }

    /// An activity, sometimes recorded a few days after it happened (backdated entry).
    fn activity(&mut self, d: NaiveDate, ty: &str, data: Value) -> Uuid {
        let delay = if self.rng().chance(15) {
            self.rng().below(10) as i64
        } else {
            0
        };
        let hour = 8 + self.rng().below(11) as u32;
        let minute = self.rng().below(60) as u32;
        let utc = self.rng().chance(30);
        // Never recorded after the year-end voids and corrections that may target it.
        let record_on = (d + Duration::days(delay)).min(ymd(2023, 12, 27).max(d));
        self.push(record_on, at(d, hour, minute, utc), ty, data)
    }

    fn day_in(&mut self, from: NaiveDate, to: NaiveDate) -> NaiveDate {
        let span = (to - from).num_days().max(0) as u64;
        from + Duration::days(self.rng().below(span + 1) as i64)
    }

    fn active_day(&mut self, p: &PairingPlan, last: NaiveDate) -> Option<NaiveDate> {
        for _ in 0..20 {
            let d = self.day_in(p.established, last);
            if p.active(d) {
                return Some(d);
            }
        }
        None
    }

    /// The events in the order they are appended.
    fn finish(self) -> Vec<Value> {
        self.rng_and_plan
            .into_planned()
            .into_iter()
            .map(|p| {
                json!({
                    "specversion": "1.0", "id": p.id, "source": "/kit", "type": p.event.ty,
                    "time": written(p.occurred_at), "data": p.event.data,
                })
            })
            .collect()
    }
}

/// A valid event sequence of about a thousand events, in append order.
fn generate(seed: u64) -> Vec<Value> {
    let mut g = Gen::new(seed);
    let setup_on = ymd(2022, 8, 1);

    // Org units.
    let bureau = g.entity();
    g.setup(setup_on, "carelog.unit.registered", json!({"unit_id": bureau, "name": "city education bureau", "kind": "city_bureau", "parent_id": null, "official_code": "621000"}));
    let county = g.entity();
    g.setup(setup_on, "carelog.unit.registered", json!({"unit_id": county, "name": "Huan county", "kind": "county", "parent_id": bureau, "official_code": null}));
    let mut townships = Vec::new();
    for name in ["Maojing", "Hongde"] {
        let t = g.entity();
        g.setup(setup_on, "carelog.unit.registered", json!({"unit_id": t, "name": name, "kind": "township", "parent_id": county, "official_code": null}));
        townships.push(t);
    }
    let mut schools = Vec::new();
    for (i, name) in ["Maojing primary", "Hongde middle"].iter().enumerate() {
        let s = g.entity();
        g.setup(setup_on, "carelog.unit.registered", json!({"unit_id": s, "name": name, "kind": "school", "parent_id": townships[i], "official_code": null}));
        schools.push(s);
    }
    let home = g.entity();
    g.setup(setup_on, "carelog.unit.registered", json!({"unit_id": home, "name": "county welfare home", "kind": "welfare_home", "parent_id": county, "official_code": null}));

    // Staff: five cadres who hold pairings, one who only goes along, three teachers.
    let mut cadres = Vec::new();
    for i in 0..6 {
        let c = g.entity();
        let unit = if i == 5 { townships[0] } else { bureau };
        g.setup(setup_on, "carelog.staff.registered", json!({"person_id": c, "name": format!("cadre {i}"), "role": "cadre", "unit_id": unit, "since": "2022-08-01"}));
        cadres.push(c);
    }
    let companion = cadres[5];
    let mut teachers = Vec::new();
    for i in 0..3 {
        let t = g.entity();
        g.setup(setup_on, "carelog.staff.registered", json!({"person_id": t, "name": format!("teacher {i}"), "role": "teacher", "unit_id": schools[i % 2], "since": "2022-08-01"}));
        teachers.push(t);
    }

    // Recipients with categories, each paired with a cadre in early January.
    let mut recipients = Vec::new();
    for i in 0..24u32 {
        let r = g.entity();
        let (kind, category) = match i {
            0..=7 => ("person", "orphan"),
            8..=13 => ("person", "severely_disabled"),
            _ => ("household", "extremely_poor"),
        };
        g.setup(setup_on, "carelog.recipient.registered", json!({"recipient_id": r, "kind": kind, "name": format!("recipient {i}"), "unit_id": townships[(i % 2) as usize], "birth_date": if kind == "person" { json!("2010-05-01") } else { Value::Null }}));
        let from = ymd(2022, 10, 1 + (i % 20));
        g.setup(from, "carelog.category.certified", json!({"recipient_id": r, "category": category, "certified_by": "county civil affairs bureau", "from": from.to_string(), "to": null}));
        recipients.push(r);
    }
    let mut plans = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        let p = g.entity();
        let established = ymd(2023, 1, 2 + (i as u32 % 9));
        let cadre = cadres[i % 5];
        g.setup(established, "carelog.pairing.established", json!({"pairing_id": p, "cadre_id": cadre, "recipient_id": r, "on": established.to_string()}));
        plans.push(PairingPlan {
            id: p,
            established,
            suspended: None,
            ended: None,
            holders: vec![(cadre, established)],
        });
    }

    // Pupils with special categories, enrolled in September 2022.
    let mut pupils = Vec::new();
    for i in 0..20u32 {
        let k = g.entity();
        let school = schools[(i % 2) as usize];
        g.setup(setup_on, "carelog.recipient.registered", json!({"recipient_id": k, "kind": "person", "name": format!("pupil {i}"), "unit_id": school, "birth_date": "2012-03-01"}));
        let categories: &[&str] = match i {
            0..=4 => &["orphan"],
            5..=9 => &["left_behind"],
            10..=12 => &["single_parent"],
            13 => &["single_parent", "disabled_child"],
            _ => &["disabled_child"],
        };
        for c in categories {
            let from = if i == 19 {
                ymd(2023, 1, 15)
            } else {
                ymd(2022, 6, 1)
            };
            g.setup(from, "carelog.category.certified", json!({"recipient_id": k, "category": c, "certified_by": "county education bureau", "from": from.to_string(), "to": null}));
        }
        g.setup(
            ymd(2022, 9, 1),
            "carelog.pupil.enrolled",
            json!({"pupil_id": k, "school_id": school, "on": "2022-09-01"}),
        );
        pupils.push((k, school));
    }
    // Placements of the disabled children (pupils 13..=18 now, pupil 19 in February).
    let modes = ["regular_class", "special_school", "home_teaching"];
    let mut placements = Vec::new();
    for (i, (k, school)) in pupils.iter().enumerate().take(19).skip(13) {
        let pl = g.entity();
        g.setup(ymd(2022, 9, 5), "carelog.placement.decided", json!({"placement_id": pl, "pupil_id": k, "mode": modes[i % 3], "school_id": school, "on": "2022-09-05"}));
        placements.push(pl);
    }

    // ---- 2023, in the order things happen ----
    let last_day = ymd(2023, 12, 20);

    // A transfer, a suspension, an ending, a category ended, a cadre moved.
    let transfer_on = ymd(2023, 6, 15);
    g.on(transfer_on, "carelog.pairing.transferred", json!({"pairing_id": plans[0].id, "to_cadre_id": cadres[1], "on": transfer_on.to_string(), "reason": "cadre reassigned"}));
    plans[0].holders.push((cadres[1], transfer_on));
    let (s_from, s_to) = (ymd(2023, 4, 1), ymd(2023, 5, 1));
    g.on(s_from, "carelog.pairing.suspended", json!({"pairing_id": plans[1].id, "on": s_from.to_string(), "reason": "recipient in hospital"}));
    g.on(
        s_to,
        "carelog.pairing.resumed",
        json!({"pairing_id": plans[1].id, "on": s_to.to_string()}),
    );
    plans[1].suspended = Some((s_from, s_to));
    let end_on = ymd(2023, 10, 1);
    g.on(end_on, "carelog.pairing.ended", json!({"pairing_id": plans[2].id, "on": end_on.to_string(), "reason": "moved to another city"}));
    plans[2].ended = Some(end_on);
    g.on(ymd(2023, 8, 1), "carelog.category.ended", json!({"recipient_id": recipients[3], "category": "orphan", "on": "2023-08-01", "reason": "came of age"}));
    g.on(
        ymd(2023, 7, 1),
        "carelog.staff.moved",
        json!({"person_id": cadres[4], "unit_id": townships[1], "on": "2023-07-01"}),
    );
    // A pairing established by mistake and voided two days later.
    let extra = g.entity();
    g.on(ymd(2023, 2, 1), "carelog.recipient.registered", json!({"recipient_id": extra, "kind": "household", "name": "entered by mistake", "unit_id": townships[0], "birth_date": null}));
    let mistaken = g.entity();
    let mistake = g.on(ymd(2023, 2, 1), "carelog.pairing.established", json!({"pairing_id": mistaken, "cadre_id": cadres[0], "recipient_id": extra, "on": "2023-02-01"}));
    g.on(
        ymd(2023, 2, 3),
        "carelog.record.voided",
        json!({"target_event_id": mistake, "reason": "wrong recipient"}),
    );

    // A few hundred activities.
    let mut contacts = Vec::new();
    let mut visits = Vec::new();
    let mut aids = Vec::new();
    let channels = ["phone", "video", "message"];
    for n in 0..620 {
        let p = g.rng().pick(&plans).clone();
        let Some(d) = g.active_day(&p, last_day) else {
            continue;
        };
        let roll = g.rng().below(100);
        if roll < 40 {
            let ch = *g.rng().pick(&channels);
            let id = g.activity(d, "carelog.contact.recorded", json!({"pairing_id": p.id, "channel": ch, "summary": format!("contact {n}"), "duration_minutes": if n % 3 == 0 { Value::Null } else { json!(5 + n % 40) }}));
            contacts.push((id, p.id, d));
        } else if roll < 62 {
            let group = g.rng().chance(30);
            let holder = p.holder(d);
            let companions = if group && holder != companion {
                vec![companion]
            } else {
                vec![]
            };
            let trip_id = if group {
                json!(Uuid::from_u128(0x7000 + u128::from(d.ordinal())))
            } else {
                Value::Null
            };
            let id = g.activity(d, "carelog.visit.recorded", json!({"pairing_id": p.id, "trip": if group { "group" } else { "own" }, "group_trip_id": trip_id, "companions": companions, "observations": format!("visit {n}")}));
            visits.push(id);
        } else if roll < 74 {
            g.activity(d, "carelog.policy_followup.recorded", json!({"pairing_id": p.id, "policy": "minimum living allowance", "agency": "county civil affairs bureau", "outcome": "approved"}));
        } else if roll < 84 {
            g.activity(
                d,
                "carelog.errand.done",
                json!({"pairing_id": p.id, "description": "renewed a card", "result": "done"}),
            );
        } else {
            let fund = *g.rng().pick(&["cadre's own", "bureau union", "charity"]);
            let data = if g.rng().chance(60) {
                let fen = 100 * (100 + g.rng().below(1900) as i64);
                json!({"pairing_id": p.id, "form": "cash", "value_fen": fen, "fund_source": fund, "item": null, "quantity": null, "unit_value_fen": null, "receipt_ref": format!("R-{n}")})
            } else {
                let q = 1 + g.rng().below(5) as i64;
                let unit = 100 * (20 + g.rng().below(200) as i64);
                json!({"pairing_id": p.id, "form": "goods", "value_fen": q * unit, "fund_source": fund, "item": "rice, 10 kg bag", "quantity": q, "unit_value_fen": unit, "receipt_ref": format!("R-{n}")})
            };
            let id = g.activity(d, "carelog.aid.given", data.clone());
            aids.push((id, data));
        }
    }

    // Difficulties: resolved, dropped, or still open.
    for n in 0..14 {
        let p = g.rng().pick(&plans).clone();
        let Some(d) = g.active_day(&p, ymd(2023, 11, 1)) else {
            continue;
        };
        let id = g.entity();
        g.on(d, "carelog.difficulty.raised", json!({"difficulty_id": id, "pairing_id": p.id, "description": format!("difficulty {n}")}));
        let later = d + Duration::days(1 + g.rng().below(40) as i64);
        match n % 3 {
            0 | 1 => {
                g.on(
                    later,
                    "carelog.difficulty.resolved",
                    json!({"difficulty_id": id, "how": "fixed"}),
                );
            }
            _ if n % 2 == 0 => {
                g.on(
                    later,
                    "carelog.difficulty.dropped",
                    json!({"difficulty_id": id, "reason": "family moved"}),
                );
            }
            _ => {}
        }
    }

    // Escalations at every stage; one raised by mistake and voided.
    for n in 0..10 {
        let p = g.rng().pick(&plans).clone();
        let Some(d) = g.active_day(&p, ymd(2023, 11, 1)) else {
            continue;
        };
        let id = g.entity();
        let raised = g.on(d, "carelog.escalation.raised", json!({"escalation_id": id, "pairing_id": p.id, "to_level": "county civil affairs bureau", "issue": format!("issue {n}")}));
        if n == 9 {
            g.on(
                d + Duration::days(1),
                "carelog.record.voided",
                json!({"target_event_id": raised, "reason": "raised twice"}),
            );
            continue;
        }
        let stages = n % 4;
        if stages >= 1 {
            g.on(
                d + Duration::days(3),
                "carelog.escalation.acknowledged",
                json!({"escalation_id": id, "by": "county civil affairs bureau"}),
            );
        }
        if stages >= 2 {
            g.on(
                d + Duration::days(10),
                "carelog.escalation.answered",
                json!({"escalation_id": id, "answer": "funded"}),
            );
        }
        if stages >= 3 {
            g.on(
                d + Duration::days(20),
                "carelog.escalation.closed",
                json!({"escalation_id": id, "outcome": "repaired"}),
            );
        }
    }

    // Pupils: a move, two dropouts, a graduation.
    g.on(
        ymd(2023, 3, 1),
        "carelog.pupil.moved",
        json!({"pupil_id": pupils[1].0, "school_id": schools[1], "on": "2023-03-01"}),
    );
    g.on(ymd(2023, 5, 10), "carelog.pupil.left", json!({"pupil_id": pupils[6].0, "on": "2023-05-10", "reason": "dropped_out", "dropout_cause": "poverty", "note": "family could not pay"}));
    g.on(ymd(2023, 6, 10), "carelog.pupil.left", json!({"pupil_id": pupils[7].0, "on": "2023-06-10", "reason": "dropped_out", "dropout_cause": "illness", "note": "long illness"}));
    g.on(ymd(2023, 7, 1), "carelog.pupil.left", json!({"pupil_id": pupils[8].0, "on": "2023-07-01", "reason": "graduated", "dropout_cause": null, "note": "finished primary school"}));

    // Student aid: spring and autumn; one payment corrected, one voided.
    let mut payments = Vec::new();
    for (i, (k, _)) in pupils.iter().enumerate() {
        let (programme, terms): (&str, &[&str]) = match i {
            0..=4 => ("for_orphans", &["2023-spring", "2023-autumn"]),
            5 => ("other", &["2023-spring"]),
            13..=18 => ("for_disabled", &["2023-spring", "2023-autumn"]),
            _ => continue,
        };
        for term in terms {
            let d = if term.ends_with("spring") {
                ymd(2023, 3, 15)
            } else {
                ymd(2023, 9, 20)
            };
            let data = json!({"pupil_id": k, "programme": programme, "term": term, "amount_fen": 50_000 + 1_000 * i as i64});
            let id = g.on(d, "carelog.student_aid.paid", data.clone());
            payments.push((id, data));
        }
    }
    let (fixed, mut data) = payments[0].clone();
    data["amount_fen"] = json!(62_500);
    g.on(ymd(2023, 4, 1), "carelog.record.corrected", json!({"target_event_id": fixed, "reason": "wrong amount", "corrected_type": "carelog.student_aid.paid", "corrected": data}));
    let autumn = payments
        .iter()
        .find(|(_, d)| d["term"] == "2023-autumn")
        .expect("an autumn payment")
        .0;
    g.on(
        ymd(2023, 10, 1),
        "carelog.record.voided",
        json!({"target_event_id": autumn, "reason": "paid twice"}),
    );

    // Placements: a change, an ending, a new one.
    g.on(ymd(2023, 3, 1), "carelog.placement.changed", json!({"placement_id": placements[1], "mode": "home_teaching", "school_id": pupils[14].1, "on": "2023-03-01"}));
    g.on(ymd(2023, 7, 1), "carelog.placement.ended", json!({"placement_id": placements[2], "on": "2023-07-01", "reason": "finished compulsory schooling"}));
    let late = g.entity();
    g.on(ymd(2023, 2, 10), "carelog.placement.decided", json!({"placement_id": late, "pupil_id": pupils[19].0, "mode": "special_school", "school_id": pupils[19].1, "on": "2023-02-10"}));

    // Care plans: one pupil one plan for the orphans, one-to-one for three disabled children.
    let mut care = Vec::new();
    for (i, (k, _)) in pupils.iter().enumerate().take(5) {
        let id = g.entity();
        g.on(ymd(2023, 2, 1), "carelog.care_plan.opened", json!({"plan_id": id, "pupil_id": k, "teacher_id": teachers[0], "scheme": "one_pupil_one_plan", "goals": format!("goals {i}"), "measures": "weekly talk", "next_review": "2023-05-01"}));
        care.push(id);
    }
    for (i, (k, _)) in pupils.iter().enumerate().skip(14).take(3) {
        let id = g.entity();
        g.on(ymd(2023, 2, 15), "carelog.care_plan.opened", json!({"plan_id": id, "pupil_id": k, "teacher_id": teachers[1], "scheme": "one_to_one", "goals": format!("goals {i}"), "measures": "tutoring", "next_review": "2023-06-15"}));
    }
    for id in care.iter().take(3) {
        g.on(
            ymd(2023, 5, 3),
            "carelog.care_plan.reviewed",
            json!({"plan_id": id, "progress": "better", "next_review": "2023-08-01"}),
        );
    }
    g.on(
        ymd(2023, 6, 1),
        "carelog.care_plan.teacher_changed",
        json!({"plan_id": care[3], "teacher_id": teachers[2]}),
    );
    g.on(
        ymd(2023, 9, 1),
        "carelog.care_plan.closed",
        json!({"plan_id": care[4], "reason": "moved to a relative"}),
    );

    // Claims: one corrected, one voided.
    let claim = g.entity();
    let filed = g.on(ymd(2023, 12, 20), "carelog.claim.filed", json!({"claim_id": claim, "metric": "home_visits", "scope_unit_id": null, "period_from": "2023-01-01", "period_to": "2023-12-31", "value": 100, "comparison": "exactly", "source_document": "annual report", "reported_on": "2023-12-20"}));
    g.on(ymd(2023, 12, 22), "carelog.record.corrected", json!({"target_event_id": filed, "reason": "typo", "corrected_type": "carelog.claim.filed", "corrected": {"claim_id": claim, "metric": "home_visits", "scope_unit_id": null, "period_from": "2023-01-01", "period_to": "2023-12-31", "value": 120, "comparison": "at_least", "source_document": "annual report", "reported_on": "2023-12-20"}}));
    let other = g.entity();
    let filed = g.on(ymd(2023, 12, 20), "carelog.claim.filed", json!({"claim_id": other, "metric": "contacts", "scope_unit_id": county, "period_from": null, "period_to": null, "value": 300, "comparison": "more_than", "source_document": "county report", "reported_on": "2023-12-19"}));
    g.on(
        ymd(2023, 12, 23),
        "carelog.record.voided",
        json!({"target_event_id": filed, "reason": "filed for the wrong county"}),
    );

    // Voids and corrections of activities, recorded at the year's end.
    let fix_day = ymd(2023, 12, 28);
    for (i, (id, pairing, _)) in contacts.iter().enumerate().filter(|(i, _)| i % 23 == 0) {
        if i % 2 == 0 {
            g.on(
                fix_day,
                "carelog.record.voided",
                json!({"target_event_id": id, "reason": "entered twice"}),
            );
        } else {
            g.on(fix_day, "carelog.record.corrected", json!({"target_event_id": id, "reason": "wrong channel", "corrected_type": "carelog.contact.recorded", "corrected": {"pairing_id": pairing, "channel": "video", "summary": "corrected", "duration_minutes": 12}}));
        }
    }
    for id in visits.iter().step_by(31) {
        g.on(
            fix_day,
            "carelog.record.voided",
            json!({"target_event_id": id, "reason": "not a visit"}),
        );
    }
    for (i, (id, data)) in aids.iter().enumerate().filter(|(i, _)| i % 9 == 0) {
        let mut corrected = data.clone();
        if data["form"] == "cash" {
            corrected["value_fen"] = json!(data["value_fen"].as_i64().unwrap_or(0) + 550);
        } else {
            let q = data["quantity"].as_i64().unwrap_or(1) + 1;
            corrected["quantity"] = json!(q);
            corrected["value_fen"] = json!(q * data["unit_value_fen"].as_i64().unwrap_or(1));
        }
        corrected["fund_source"] = json!("bureau union");
        g.on(fix_day, "carelog.record.corrected", json!({"target_event_id": id, "reason": "receipt re-read", "corrected_type": "carelog.aid.given", "corrected": corrected.clone()}));
        if i % 2 == 0 {
            // Corrected twice: the latest wins.
            corrected["receipt_ref"] = json!(format!("R-fixed-{i}"));
            g.on(fix_day, "carelog.record.corrected", json!({"target_event_id": id, "reason": "receipt number", "corrected_type": "carelog.aid.given", "corrected": corrected}));
        } else {
            // Corrected, then voided.
            g.on(
                fix_day,
                "carelog.record.voided",
                json!({"target_event_id": id, "reason": "given back"}),
            );
        }
    }
    g.finish()
}

// ---- the store --------------------------------------------------------------------------

const SEED: u64 = 0x5eed_2023;

fn allow(
    _: &carelog::domain::Records,
    _: &IncomingEvent,
) -> Result<(), carelog::app::access::Refusal> {
    Ok(())
}

/// A store built from the generator, with its events read back for in-memory folds.
struct Fixture {
    dir: tempfile::TempDir,
    app: App,
    events: Vec<LoggedEvent>,
}

impl Fixture {
    fn build(seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let app = App::open(&dir.path().join("store"), true).expect("a new store");
        let events = generate(seed);
        for (n, batch) in events.chunks(64).enumerate() {
            let incoming: Vec<IncomingEvent> = batch
                .iter()
                .map(|v| parse_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}")))
                .collect();
            if let Err(e) = app.append(incoming, "kit", Keep::default(), &allow) {
                let index = e.event_index().map(|i| n * 64 + i);
                let shown = index.map(|i| events[i].to_string()).unwrap_or_default();
                panic!("the generated store is invalid: {e}\n{shown}");
            }
        }
        let mut events = Vec::new();
        app.for_each_event(1, |e| {
            events.push(e);
            Ok(())
        })
        .expect("events read back");
        assert_eq!(events.len() as u64, app.log().head_position());
        Self { dir, app, events }
    }

    fn head(&self) -> u64 {
        self.app.log().head_position()
    }

    fn scratch(&self, name: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).expect("a scratch dir");
        p
    }
}

/// Folds a logged event into a book, as the engine does before the projections see it.
fn fold_book(book: &mut PairingBook, e: &LoggedEvent) {
    let source = Source {
        id: e.recorded.event_id,
        position: e.recorded.position,
    };
    book.apply(source, &e.event);
}

/// The view the engine gives a projection of a logged event (`book`: with the event folded in).
fn view<'a>(e: &'a LoggedEvent, book: &'a PairingBook) -> EventView<'a> {
    EventView {
        position: e.recorded.position,
        event_id: e.recorded.event_id,
        occurred_at: &e.recorded.occurred_at,
        occurred_on: Date(carelog::time::shanghai_date(&e.recorded.occurred_at)),
        recorded_at: &e.recorded.recorded_at,
        recorded_by: &e.recorded.recorded_by,
        event: &e.event,
        book,
    }
}

/// A projection's state and the engine's book as of the same position: what answers are read
/// from.
type At<'a> = (&'a (dyn Any + Send), &'a PairingBook);

/// A state with its book, owned.
struct Folded {
    state: Box<dyn Any + Send>,
    book: PairingBook,
}

impl Folded {
    fn at(&self) -> At<'_> {
        (self.state.as_ref(), &self.book)
    }
}

/// The `i`th state of a rebuild, with its book.
fn nth(r: &Rebuilt, i: usize) -> At<'_> {
    (r.states[i].as_ref(), &r.book)
}

fn rebuild(
    app: &App,
    projections: &[&dyn AnyProjection],
    as_of: AsOf,
    checkpoints: Option<&Checkpoints>,
) -> Rebuilt {
    replay(app.log(), projections, as_of, checkpoints, &mut |_, _| {}).expect("a replay")
}

/// A fold of the first `n` events in memory, through the erased API, the book folded first.
fn fold(p: &dyn AnyProjection, events: &[LoggedEvent]) -> Folded {
    let mut state = p.new_state();
    let mut book = PairingBook::default();
    for e in events {
        fold_book(&mut book, e);
        p.apply(state.as_mut(), &view(e, &book));
    }
    Folded { state, book }
}

fn bytes(p: &dyn AnyProjection, state: &(dyn Any + Send)) -> Vec<u8> {
    p.encode_state(state)
        .unwrap_or_else(|e| panic!("{}: the state does not encode: {e}", p.name()))
}

fn date(s: &str) -> Date {
    Date::parse(s).expect("a date")
}

/// The questions every projection is asked: no restriction, two half-years, a day with params.
fn queries() -> Vec<Query> {
    let period = |a: &str, b: &str| Query {
        period: Some(Period {
            from: date(a),
            to: date(b),
        }),
        on: Some(date(b)),
        ..Query::default()
    };
    let mut on_a_day = Query {
        on: Some(date("2023-04-15")),
        ..Query::default()
    };
    on_a_day.params.insert("days".into(), "14".into());
    on_a_day.params.insert("deadline_days".into(), "20".into());
    vec![
        Query::default(),
        period("2023-01-01", "2023-06-30"),
        period("2023-07-01", "2023-12-31"),
        on_a_day,
    ]
}

/// Every answer a projection gives from a state: query JSON and figures, for each question.
fn answers(p: &dyn AnyProjection, (state, book): At<'_>) -> Vec<(Value, Vec<Figure>)> {
    queries()
        .iter()
        .map(|q| (p.query(state, book, q), p.figures(state, book, q)))
        .collect()
}

fn assert_same_answers(p: &dyn AnyProjection, got: At<'_>, want: At<'_>, what: &str) {
    let (g, w) = (answers(p, got), answers(p, want));
    for (i, (g, w)) in g.iter().zip(&w).enumerate() {
        assert_eq!(g.0, w.0, "{}: query {i} differs ({what})", p.name());
        assert_eq!(
            g.1,
            w.1,
            "{}: figures of query {i} differ ({what})",
            p.name()
        );
    }
}

fn assert_same_state(p: &dyn AnyProjection, got: At<'_>, want: At<'_>, what: &str) {
    assert!(got.1 == want.1, "{}: the book differs ({what})", p.name());
    assert!(
        bytes(p, got.0) == bytes(p, want.0),
        "{}: encoded state differs ({what})",
        p.name()
    );
    assert_same_answers(p, got, want, what);
}

/// Each projection's state replayed alone, without checkpoints: the reference.
fn alone(app: &App, p: &dyn AnyProjection, as_of: AsOf) -> Folded {
    let mut r = rebuild(app, &[p], as_of, None);
    let state = r.states.pop().expect("one state");
    Folded {
        state,
        book: r.book,
    }
}

// ---- the kit ----------------------------------------------------------------------------

#[test]
fn the_generated_store_is_realistic_and_every_projection_sees_something() {
    let fx = Fixture::build(SEED);
    let head = fx.head();
    assert!(
        (600..3000).contains(&head),
        "a mid-size store, not {head} events"
    );
    let count = |ty: &str| {
        fx.events
            .iter()
            .filter(|e| e.event.event_type() == ty)
            .count()
    };
    for (ty, at_least) in [
        ("carelog.pairing.established", 25),
        ("carelog.pairing.transferred", 1),
        ("carelog.pairing.suspended", 1),
        ("carelog.contact.recorded", 150),
        ("carelog.visit.recorded", 80),
        ("carelog.aid.given", 50),
        ("carelog.difficulty.raised", 8),
        ("carelog.escalation.raised", 6),
        ("carelog.pupil.enrolled", 20),
        ("carelog.student_aid.paid", 20),
        ("carelog.placement.changed", 1),
        ("carelog.care_plan.opened", 8),
        ("carelog.claim.filed", 2),
        ("carelog.record.voided", 10),
        ("carelog.record.corrected", 10),
    ] {
        assert!(count(ty) >= at_least, "{ty}: {} < {at_least}", count(ty));
    }
    // Every projection's state on the whole store differs from its empty state: the store
    // exercises it (a new projection that sees nothing here needs the generator extended).
    for p in registry() {
        let p = p.as_ref();
        let full = alone(&fx.app, p, AsOf::Now);
        let empty = p.new_state();
        assert!(
            bytes(p, full.state.as_ref()) != bytes(p, empty.as_ref()),
            "{}: the kit's store does not exercise it: extend `generate`",
            p.name()
        );
    }
}

/// (a) Incremental application in random chunk sizes, with a checkpoint round trip between
/// chunks, gives the state a full rebuild gives.
#[test]
fn incremental_application_in_random_chunks_equals_a_full_rebuild() {
    let fx = Fixture::build(SEED);
    let registry = registry();
    let full: Vec<Vec<u8>> = registry
        .iter()
        .map(|p| {
            bytes(
                p.as_ref(),
                alone(&fx.app, p.as_ref(), AsOf::Now).state.as_ref(),
            )
        })
        .collect();
    let config = Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    };
    let chunks = proptest::collection::vec(1usize..=250, 1..8);
    TestRunner::new(config)
        .run(&chunks, |sizes| {
            for (p, want) in registry.iter().zip(&full) {
                let p = p.as_ref();
                let mut straight = p.new_state();
                let mut chunked = p.new_state();
                let mut book = PairingBook::default();
                let (mut at, mut k) = (0usize, 0usize);
                while at < fx.events.len() {
                    let end = (at + sizes[k % sizes.len()]).min(fx.events.len());
                    k += 1;
                    for e in &fx.events[at..end] {
                        fold_book(&mut book, e);
                        p.apply(straight.as_mut(), &view(e, &book));
                        p.apply(chunked.as_mut(), &view(e, &book));
                    }
                    at = end;
                    let saved = bytes(p, chunked.as_ref());
                    prop_assert!(
                        saved == bytes(p, straight.as_ref()),
                        "{}: a checkpoint round trip changed the state before position {}",
                        p.name(),
                        at
                    );
                    chunked = p.decode_state(&saved).map_err(|e| {
                        TestCaseError::fail(format!("{}: state does not decode: {e}", p.name()))
                    })?;
                    prop_assert!(
                        bytes(p, chunked.as_ref()) == saved,
                        "{}: decode then encode is not the identity at position {}",
                        p.name(),
                        at
                    );
                }
                prop_assert!(
                    bytes(p, chunked.as_ref()) == *want,
                    "{}: chunks {:?} give another state than a full rebuild",
                    p.name(),
                    sizes
                );
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// (b) Checkpoints written during a replay, then a replay from them plus the tail, give the
/// bytes and answers of a checkpoint-free rebuild: as of the head and as of middle positions.
#[test]
fn checkpoint_plus_tail_equals_a_full_rebuild() {
    let fx = Fixture::build(SEED);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let head = fx.head();
    let interval = 97;
    let checkpoints = Checkpoints::for_store(&fx.scratch("b"))
        .with_interval(interval)
        .with_bytes_per_event_max(None);
    let floor = |p: u64| p - p % interval;

    // A first replay as of a middle position writes checkpoints up to it.
    let mid = head / 2 + 13;
    let first = rebuild(&fx.app, &all, AsOf::Position(mid), Some(&checkpoints));
    assert_eq!(first.events_read, mid, "no checkpoint existed yet");
    for p in &all {
        let saved = checkpoints.positions(p.name(), p.version());
        let want: Vec<u64> = (1..=mid / interval).map(|k| k * interval).collect();
        assert_eq!(saved, want, "{}: checkpoints written", p.name());
    }

    // As of the head: the best checkpoint plus the tail.
    let now = rebuild(&fx.app, &all, AsOf::Now, Some(&checkpoints));
    assert_eq!(now.position, head);
    assert_eq!(
        now.events_read,
        head - floor(mid),
        "the replay starts from the checkpoint"
    );
    for (i, p) in all.iter().enumerate() {
        let want = alone(&fx.app, *p, AsOf::Now);
        assert_same_state(*p, nth(&now, i), want.at(), "checkpoint + tail, head");
    }

    // As of positions between checkpoints, on and just after one, and the first events.
    for pos in [floor(mid) + 1, 3 * interval, head - 5, head / 3 + 1, 5] {
        let got = rebuild(&fx.app, &all, AsOf::Position(pos), Some(&checkpoints));
        assert_eq!(got.position, pos);
        assert_eq!(got.events_read, pos - floor(pos), "as of {pos}");
        for (i, p) in all.iter().enumerate() {
            let want = alone(&fx.app, *p, AsOf::Position(pos));
            let what = format!("checkpoint + tail as of {pos}");
            assert_same_state(*p, nth(&got, i), want.at(), &what);
        }
    }
}

/// (b2) With a write budget, a replay spaces its checkpoints by the bytes of the last ones: each
/// gap is the multiple of the interval that covers the last checkpoint's bytes at the budget's
/// bytes per event, so all but the last checkpoint's bytes stay within the budget. As-of answers
/// from these sparser checkpoints are still a rebuild's.
#[test]
fn checkpoints_are_spaced_by_the_write_budget() {
    use carelog::projection::book::BOOK_VERSION;
    use carelog::projection::checkpoint::BOOK_NAME;
    let fx = Fixture::build(SEED);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let head = fx.head();
    let interval = 7;
    // Small enough that the gaps grow within the fixture's log.
    let budget = 48;
    let store = fx.scratch("budget");
    let checkpoints = Checkpoints::for_store(&store)
        .with_interval(interval)
        .with_bytes_per_event_max(Some(budget));
    rebuild(&fx.app, &all, AsOf::Now, Some(&checkpoints));
    let at = checkpoints.positions(BOOK_NAME, BOOK_VERSION);
    for p in &all {
        assert_eq!(
            checkpoints.positions(p.name(), p.version()),
            at,
            "{}",
            p.name()
        );
    }
    assert_eq!(
        at.first(),
        Some(&interval),
        "a replay from scratch saves at the first multiple"
    );
    // The bytes of every state and the book as of a position, as a rebuild encodes them.
    // The bytes of every checkpoint file (the states and the book) at a position.
    let suffix = |pos: u64| format!("-{pos:020}.ckpt");
    let bytes_at = |pos: u64| -> u64 {
        std::fs::read_dir(store.join("checkpoints"))
            .expect("the checkpoints")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix(pos)))
            .map(|e| e.metadata().expect("a file").len())
            .sum()
    };
    let mut within_budget = 0u64;
    for pair in at.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let bytes = bytes_at(from);
        let want = bytes.div_ceil(budget).div_ceil(interval).max(1) * interval;
        assert_eq!(to - from, want, "the gap after {from} ({bytes} bytes)");
        within_budget += bytes;
    }
    let (first, last) = (at[0], at[at.len() - 1]);
    assert!(
        at.len() >= 4 && at[at.len() - 1] - at[at.len() - 2] > 2 * interval,
        "the gaps grew with the states: {at:?}"
    );
    assert!(within_budget <= budget * (last - first));
    let gap_after_last = bytes_at(last).div_ceil(budget).div_ceil(interval).max(1) * interval;
    assert!(
        head < last + gap_after_last,
        "no checkpoint was due after {last}"
    );
    // Each position's files hold whole states and the book.
    for pos in [first, last] {
        let r = rebuild(&fx.app, &all, AsOf::Position(pos), None);
        let states: u64 = all
            .iter()
            .zip(&r.states)
            .map(|(p, s)| bytes(*p, s.as_ref()).len() as u64)
            .sum();
        let book = carelog::codec::encode_state("the pairing book", &r.book).expect("encodes");
        assert!(
            bytes_at(pos) > states + book.len() as u64,
            "whole states at {pos}"
        );
    }
    // As of positions after each checkpoint: the nearest checkpoint plus the tail.
    for pos in [first + 3, at[at.len() / 2] + 1, last - 1, head] {
        let got = rebuild(&fx.app, &all, AsOf::Position(pos), Some(&checkpoints));
        let floor = at.iter().copied().filter(|c| *c <= pos).max().unwrap_or(0);
        assert_eq!(got.events_read, pos - floor, "as of {pos}");
        for (i, p) in all.iter().enumerate() {
            let want = alone(&fx.app, *p, AsOf::Position(pos));
            let what = format!("budgeted checkpoint + tail as of {pos}");
            assert_same_state(*p, nth(&got, i), want.at(), &what);
        }
    }
    assert_eq!(
        checkpoints.positions(BOOK_NAME, BOOK_VERSION),
        at,
        "as-of replays from the checkpoints wrote none of their own"
    );
    // Replays that resume from a checkpoint space the next ones as one pass does: first as of
    // a middle position, then to the head, in another store.
    let resumed = Checkpoints::for_store(&fx.scratch("budget-resumed"))
        .with_interval(interval)
        .with_bytes_per_event_max(Some(budget));
    let middle = at[at.len() / 2] + interval + 1;
    rebuild(&fx.app, &all, AsOf::Position(middle), Some(&resumed));
    let now = rebuild(&fx.app, &all, AsOf::Now, Some(&resumed));
    assert!(now.events_read < head, "the second replay resumed");
    assert_eq!(resumed.positions(BOOK_NAME, BOOK_VERSION), at);
}

/// (b3) A checkpoint file that is damaged (a flipped bit in its state, cut short, emptied, not
/// of the layout) is not used: the replay starts from the one before, removes the damaged one,
/// and answers as a rebuild does; passing its position, it writes it again.
#[test]
fn a_damaged_checkpoint_is_removed_not_used() {
    use carelog::projection::book::BOOK_VERSION;
    use carelog::projection::checkpoint::BOOK_NAME;
    let fx = Fixture::build(SEED);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let interval = 97;
    let store = fx.scratch("damaged");
    let checkpoints = Checkpoints::for_store(&store)
        .with_interval(interval)
        .with_bytes_per_event_max(None);
    rebuild(&fx.app, &all, AsOf::Now, Some(&checkpoints));
    let at = checkpoints.positions(BOOK_NAME, BOOK_VERSION);
    let (before, newest) = (at[at.len() - 2], at[at.len() - 1]);
    let mut names: Vec<(&str, u32)> = all.iter().map(|p| (p.name(), p.version())).collect();
    names.push((BOOK_NAME, BOOK_VERSION));
    let file = |name: &str, version: u32| {
        store
            .join("checkpoints")
            .join(format!("{name}-v{version}-{newest:020}.ckpt"))
    };
    for (i, (name, version)) in names.iter().enumerate() {
        let path = file(name, *version);
        let mut bytes = std::fs::read(&path).expect("a checkpoint");
        match i % 4 {
            0 => {
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
            }
            1 => bytes.truncate(bytes.len() - 1),
            2 => bytes.clear(),
            _ => bytes[0] ^= 0xFF,
        }
        std::fs::write(&path, bytes).expect("written");
    }
    let pos = newest + 3;
    let got = rebuild(&fx.app, &all, AsOf::Position(pos), Some(&checkpoints));
    assert_eq!(
        got.events_read,
        pos - before,
        "started from the checkpoint before"
    );
    for (i, p) in all.iter().enumerate() {
        let want = alone(&fx.app, *p, AsOf::Position(pos));
        assert_same_state(*p, nth(&got, i), want.at(), "beside damaged checkpoints");
    }
    let again = rebuild(&fx.app, &all, AsOf::Position(pos), Some(&checkpoints));
    assert_eq!(again.events_read, 3, "written again, whole, at {newest}");
    for (i, p) in all.iter().enumerate() {
        let want = alone(&fx.app, *p, AsOf::Position(pos));
        assert_same_state(
            *p,
            nth(&again, i),
            want.at(),
            "from the rewritten checkpoints",
        );
    }
}

/// A save writes under a temporary name of its own and renames it into place. What a killed
/// process left half written is removed by the next process that saves; a temporary file of a
/// save still going on in this process is not.
#[test]
fn temporary_files_of_dead_processes_are_removed_and_saves_leave_none() {
    let fx = Fixture::build(SEED);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let store = fx.scratch("temporaries");
    let dir = store.join("checkpoints");
    std::fs::create_dir_all(&dir).expect("the checkpoints dir");
    // No process has this id (Linux ids stay below 2^22).
    let dead = |name: &str, version: u32| {
        dir.join(format!("{name}-v{version}-{:020}.ckpt.999999999.0.tmp", 97))
    };
    let ours = dir.join(format!(
        "{}-v{}-{:020}.ckpt.{}.999999.tmp",
        all[0].name(),
        all[0].version(),
        97,
        std::process::id()
    ));
    for p in &all {
        std::fs::write(dead(p.name(), p.version()), b"half a checkpoint").expect("written");
    }
    std::fs::write(&ours, b"being written").expect("written");
    let checkpoints = Checkpoints::for_store(&store)
        .with_interval(97)
        .with_bytes_per_event_max(None);
    rebuild(&fx.app, &all, AsOf::Now, Some(&checkpoints));
    let left: Vec<String> = std::fs::read_dir(&dir)
        .expect("the checkpoints")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|f| f.ends_with(".tmp"))
        .collect();
    let ours_name = ours
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(
        left,
        vec![ours_name],
        "only this process's own save in progress is left"
    );
    assert!(
        checkpoints.positions(all[0].name(), all[0].version()).len() >= 2,
        "the replay saved checkpoints"
    );
}

/// (c) Two rebuilds give byte-identical states, alone or in company, in any order.
#[test]
fn two_rebuilds_are_byte_identical() {
    let fx = Fixture::build(SEED);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let reversed: Vec<&dyn AnyProjection> = all.iter().rev().copied().collect();
    let once = rebuild(&fx.app, &all, AsOf::Now, None);
    let twice = rebuild(&fx.app, &reversed, AsOf::Now, None);
    for (i, p) in all.iter().enumerate() {
        let a = bytes(*p, once.states[i].as_ref());
        let b = bytes(*p, twice.states[all.len() - 1 - i].as_ref());
        let c = bytes(*p, alone(&fx.app, *p, AsOf::Now).state.as_ref());
        let folded = fold(*p, &fx.events);
        let d = bytes(*p, folded.state.as_ref());
        assert!(
            once.book == twice.book && once.book == folded.book,
            "the book differs between rebuilds"
        );
        assert!(a == b, "{}: two rebuilds differ", p.name());
        assert!(a == c, "{}: differs alone and in company", p.name());
        assert!(
            a == d,
            "{}: the engine and an in-memory fold differ",
            p.name()
        );
        // The answers are deterministic too (no hash-map order leaks into the JSON).
        let (x, y) = (
            answers(*p, nth(&once, i)),
            answers(*p, nth(&twice, all.len() - 1 - i)),
        );
        assert_eq!(
            serde_json::to_string(&x.iter().map(|a| &a.0).collect::<Vec<_>>()).ok(),
            serde_json::to_string(&y.iter().map(|a| &a.0).collect::<Vec<_>>()).ok(),
            "{}: the query JSON text differs between rebuilds",
            p.name()
        );
    }
}

/// (d) Deleting all checkpoints changes no answer.
#[test]
fn deleting_all_checkpoints_changes_no_answer() {
    let fx = Fixture::build(SEED);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let store = fx.scratch("d");
    let checkpoints = Checkpoints::for_store(&store)
        .with_interval(61)
        .with_bytes_per_event_max(None);
    let head = fx.head();
    rebuild(&fx.app, &all, AsOf::Now, Some(&checkpoints));
    for at in [AsOf::Now, AsOf::Position(head * 2 / 3)] {
        let with = rebuild(&fx.app, &all, at, Some(&checkpoints));
        assert!(with.events_read < 61, "checkpoints were used");
        std::fs::remove_dir_all(store.join("checkpoints")).expect("checkpoints deleted");
        assert!(
            checkpoints
                .positions(all[0].name(), all[0].version())
                .is_empty()
        );
        let without = rebuild(&fx.app, &all, at, Some(&checkpoints));
        let none = rebuild(&fx.app, &all, at, None);
        assert_eq!(without.events_read, with.position);
        for (i, p) in all.iter().enumerate() {
            let what = format!("{at:?}, checkpoints deleted");
            assert_same_answers(*p, nth(&with, i), nth(&without, i), &what);
            assert_same_state(*p, nth(&with, i), nth(&none, i), &what);
        }
        // The replay without checkpoints wrote them again.
        assert!(
            !checkpoints
                .positions(all[0].name(), all[0].version())
                .is_empty()
        );
    }
}

/// (e) As of a position equals a rebuild over only the events up to that position: in memory,
/// and in a second store that holds only that prefix (copied with ids and recorded times kept).
#[test]
fn as_of_a_position_equals_a_rebuild_of_the_prefix() {
    let fx = Fixture::build(SEED);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let head = fx.head();
    let mut rng = SplitMix64(SEED ^ 0xe);
    let mut positions = vec![0, 1, 2, head - 1, head, head + 10];
    positions.extend((0..6).map(|_| 1 + rng.below(head)));
    for pos in positions {
        let got = rebuild(&fx.app, &all, AsOf::Position(pos), None);
        let n = pos.min(head);
        assert_eq!(got.position, n);
        for (i, p) in all.iter().enumerate() {
            let want = fold(*p, &fx.events[..n as usize]);
            let what = format!("as of position {pos}");
            assert_same_state(*p, nth(&got, i), want.at(), &what);
        }
    }

    // A store holding only the first m events (as `export | import` would copy them).
    let m = head * 3 / 5;
    let copy = App::open(&fx.scratch("prefix").join("store"), true).expect("a store");
    copy_events(&copy, &fx.events[..m as usize]);
    assert_eq!(copy.log().head_position(), m);
    let chain = |app: &App| app.log().event_at(m).ok().flatten().map(|e| e.chain_hash);
    assert_eq!(
        chain(&copy),
        chain(&fx.app),
        "the copy is the same log prefix"
    );
    let prefix = rebuild(&copy, &all, AsOf::Now, None);
    let as_of = rebuild(&fx.app, &all, AsOf::Position(m), None);
    assert_eq!(prefix.last_day, as_of.last_day);
    for (i, p) in all.iter().enumerate() {
        let what = format!("a store of the first {m} events");
        assert_same_state(*p, nth(&prefix, i), nth(&as_of, i), &what);
    }
}

/// Appends logged events to another store, keeping ids, recorders and recorded times.
fn copy_events(to: &App, events: &[LoggedEvent]) {
    for batch in events.chunks(100) {
        let incoming: Vec<IncomingEvent> = batch
            .iter()
            .map(|e| parse_value(to_cloudevent(&e.recorded, &e.event)).expect("an export parses"))
            .collect();
        let keep = Keep {
            recorded_by: true,
            recorded_at: true,
        };
        to.append(incoming, "copier", keep, &allow)
            .expect("the copy is accepted");
    }
}

/// (f) A checkpoint taken on another log (another chain hash at its position) is ignored; one
/// from a log that shares the prefix up to its position is used, and is right.
#[test]
fn a_checkpoint_from_another_log_is_ignored() {
    let fx = Fixture::build(SEED);
    let other = Fixture::build(SEED + 1);
    let registry = registry();
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let head = fx.head();
    let interval = 50;
    let shared = fx.scratch("f");
    let checkpoints = Checkpoints::for_store(&shared)
        .with_interval(interval)
        .with_bytes_per_event_max(None);

    // Checkpoints of the other log, in the directory this log's replays read.
    rebuild(&other.app, &all, AsOf::Now, Some(&checkpoints));
    let written = checkpoints.positions(all[0].name(), all[0].version());
    assert!(written.len() >= 10, "the other log left checkpoints");
    assert_ne!(
        other
            .app
            .log()
            .event_at(interval)
            .ok()
            .flatten()
            .map(|e| e.chain_hash),
        fx.app
            .log()
            .event_at(interval)
            .ok()
            .flatten()
            .map(|e| e.chain_hash),
    );
    // The first replay finds only foreign checkpoints: it replays from scratch, removes them,
    // and writes its own in their place, which the second one then uses.
    for (when, from) in [
        (AsOf::Now, 0),
        (AsOf::Position(head / 2), head / 2 - head / 2 % interval),
    ] {
        let got = rebuild(&fx.app, &all, when, Some(&checkpoints));
        assert_eq!(
            got.events_read,
            got.position - from,
            "{when:?}: no foreign checkpoint used"
        );
        for (i, p) in all.iter().enumerate() {
            let state = got.states[i].as_ref();
            let want = alone(&fx.app, *p, when);
            let what = format!("{when:?} beside another log's checkpoints");
            assert_same_state(*p, nth(&got, i), want.at(), &what);
            // And the foreign state (with its book) really was different (where there is
            // one): using it would have been wrong.
            let foreign = alone(&other.app, *p, when);
            let empty = p.new_state();
            assert!(
                bytes(*p, state) == bytes(*p, empty.as_ref())
                    || bytes(*p, foreign.state.as_ref()) != bytes(*p, state)
                    || foreign.book != got.book,
                "{}: the two logs give the same state, the test proves nothing",
                p.name()
            );
        }
    }

    // A log sharing this log's first m events: its checkpoints up to m are valid here.
    let m = head / 2 + 7;
    let prefix_store = fx.scratch("prefix-sharing");
    let copy = App::open(&prefix_store.join("store"), true).expect("a store");
    copy_events(&copy, &fx.events[..m as usize]);
    let theirs = Checkpoints::for_store(&prefix_store)
        .with_interval(interval)
        .with_bytes_per_event_max(None);
    rebuild(&copy, &all, AsOf::Now, Some(&theirs));
    let got = rebuild(&fx.app, &all, AsOf::Now, Some(&theirs));
    assert_eq!(
        got.events_read,
        head - (m - m % interval),
        "the shared-prefix checkpoint is used"
    );
    for (i, p) in all.iter().enumerate() {
        let want = alone(&fx.app, *p, AsOf::Now);
        assert_same_state(*p, nth(&got, i), want.at(), "shared-prefix checkpoint");
    }
}

/// When one projection starts from a checkpoint and another from further back, the engine saves
/// checkpoints at the positions it passes for EVERY projection, including the one whose state is
/// already ahead of that position. Where that projection has no checkpoint file at the position
/// (pruning leaves such gaps: past 64 checkpoints it drops every other old one), its later state
/// is written under the earlier position, and a later as-of replay starts from it.
///
/// In production: `carelog report` on a store of more than 64 × 50,000 events (so pruning has
/// left gaps), then a projection is added to the registry (or one's VERSION is bumped), then
/// `carelog report` again (the new projection replays from 0 and every other projection's latest
/// state is saved under each pruned position), then `carelog report --at-position P` for a P just
/// after a pruned position: the figures count events recorded after P.
#[test]
fn a_projection_ahead_of_the_replay_is_not_checkpointed_under_an_earlier_position() {
    let fx = Fixture::build(SEED);
    let registry = registry();
    // `a` has checkpoints; `b` stands for a projection just added (or with a new VERSION).
    let (a, b) = (registry[1].as_ref(), registry[2].as_ref());
    let interval = 7;
    let checkpoints = Checkpoints::for_store(&fx.scratch("gap"))
        .with_interval(interval)
        .with_bytes_per_event_max(None);
    rebuild(&fx.app, &[a], AsOf::Now, Some(&checkpoints));
    let before = checkpoints.positions(a.name(), a.version());
    assert!(before.len() <= 64, "pruned to at most 64");
    // `a` and `b` together: the replay starts at 0 for `b`, with `a` already at its latest
    // checkpoint, and passes every pruned position.
    rebuild(&fx.app, &[a, b], AsOf::Now, Some(&checkpoints));
    let after = checkpoints.positions(a.name(), a.version());
    let refilled: Vec<u64> = after
        .iter()
        .copied()
        .filter(|p| !before.contains(p))
        .collect();
    // As of just after each refilled gap, `a` starts from the checkpoint written there.
    for gap in refilled.iter().take(3) {
        let pos = gap + 3;
        let got = rebuild(&fx.app, &[a], AsOf::Position(pos), Some(&checkpoints));
        assert_eq!(got.events_read, 3, "the checkpoint at {gap} is used");
        let want = alone(&fx.app, a, AsOf::Position(pos));
        let what =
            format!("as of {pos}, from the checkpoint written at {gap} during another replay");
        assert_same_state(a, nth(&got, 0), want.at(), &what);
    }
}

/// The engine's shared book is checkpointed beside the states. A replay that finds a book
/// checkpoint older than a projection's (or none) starts the book there (or from 0), lets each
/// projection skip what its own checkpoint holds, and gives the states, book and answers of a
/// rebuild from scratch.
#[test]
fn a_book_checkpoint_older_than_the_projections_gives_a_from_scratch_rebuild() {
    use carelog::projection::book::BOOK_VERSION;
    use carelog::projection::checkpoint::BOOK_NAME;
    let fx = Fixture::build(SEED);
    let registry = registry();
    assert!(
        registry.iter().all(|p| p.name() != BOOK_NAME),
        "no projection may be checkpointed under the book's name"
    );
    let all: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let head = fx.head();
    let interval = 89;
    let store = fx.scratch("book");
    let checkpoints = Checkpoints::for_store(&store)
        .with_interval(interval)
        .with_bytes_per_event_max(None);
    rebuild(&fx.app, &all, AsOf::Now, Some(&checkpoints));
    let written: Vec<u64> = (1..=head / interval).map(|k| k * interval).collect();
    assert_eq!(checkpoints.positions(BOOK_NAME, BOOK_VERSION), written);
    for p in &all {
        assert_eq!(checkpoints.positions(p.name(), p.version()), written);
    }
    let book_file = |at: u64| {
        store
            .join("checkpoints")
            .join(format!("{BOOK_NAME}-v{BOOK_VERSION}-{at:020}.ckpt"))
    };
    let scratch = |as_of: AsOf| rebuild(&fx.app, &all, as_of, None);
    let same = |got: &Rebuilt, want: &Rebuilt, what: &str| {
        assert!(got.book == want.book, "the book differs ({what})");
        for (i, p) in all.iter().enumerate() {
            assert_same_state(*p, nth(got, i), nth(want, i), what);
        }
    };

    // Every book checkpoint but the second one removed (before each replay: a replay writes
    // the book's checkpoints again as it passes): the projections start from their latest
    // checkpoint, the book from the second one.
    let kept = written[1];
    let keep_only = |kept: Option<u64>| {
        for at in checkpoints.positions(BOOK_NAME, BOOK_VERSION) {
            if Some(at) != kept {
                std::fs::remove_file(book_file(at)).expect("a book checkpoint removed");
            }
        }
    };
    for pos in [head, head - 3, written[written.len() / 2] + 1] {
        keep_only(Some(kept));
        let got = rebuild(&fx.app, &all, AsOf::Position(pos), Some(&checkpoints));
        assert_eq!(
            got.events_read,
            pos - kept,
            "as of {pos}: the book starts from its checkpoint at {kept}"
        );
        same(
            &got,
            &scratch(AsOf::Position(pos)),
            &format!("book from {kept}, as of {pos}"),
        );
    }
    // Earlier than the only book checkpoint: everything from 0.
    keep_only(Some(kept));
    let early = kept - 1;
    let got = rebuild(&fx.app, &all, AsOf::Position(early), Some(&checkpoints));
    assert_eq!(got.events_read, early);
    same(
        &got,
        &scratch(AsOf::Position(early)),
        "before the book's checkpoint",
    );

    // No book checkpoint at all (a store checkpointed by an older build): from 0, right, and
    // the book's checkpoints are written again.
    keep_only(None);
    let got = rebuild(&fx.app, &all, AsOf::Now, Some(&checkpoints));
    assert_eq!(got.events_read, head, "no book checkpoint: from the start");
    same(&got, &scratch(AsOf::Now), "no book checkpoint");
    assert_eq!(checkpoints.positions(BOOK_NAME, BOOK_VERSION), written);

    // One projection's checkpoints gone, another's kept: the book replays from 0 beside the
    // first, the second skips what its checkpoint holds.
    let (a, b) = (all[0], all[1]);
    for at in checkpoints.positions(b.name(), b.version()) {
        std::fs::remove_file(store.join("checkpoints").join(format!(
            "{}-v{}-{at:020}.ckpt",
            b.name(),
            b.version()
        )))
        .expect("a checkpoint removed");
    }
    let got = rebuild(&fx.app, &[a, b], AsOf::Now, Some(&checkpoints));
    assert_eq!(got.events_read, head);
    let want = rebuild(&fx.app, &[a, b], AsOf::Now, None);
    assert!(got.book == want.book);
    assert_same_state(
        a,
        nth(&got, 0),
        nth(&want, 0),
        "a from its checkpoint, b from 0",
    );
    assert_same_state(
        b,
        nth(&got, 1),
        nth(&want, 1),
        "a from its checkpoint, b from 0",
    );
}

/// (g) A timeline answers as of any position what a replay from the events answers: every
/// snapshot was shared with the head while the head went on being written (so a write that
/// reached a shared page, leaf or list would show here), and the tail after a snapshot is short.
#[test]
fn a_timeline_as_of_any_position_equals_a_replay() {
    let fx = Fixture::build(SEED);
    let projections = registry();
    let all: Vec<&dyn AnyProjection> = projections.iter().map(|p| p.as_ref()).collect();
    let head = fx.head();
    let spacing = 7;
    let mut timeline = Timeline::with_spacing(registry(), spacing);
    assert_eq!(timeline.position(), 0);
    // Caught up in two steps: as of a middle position first (the head goes no further than
    // the question), then the rest.
    let mid = head / 2 + 3;
    let early = timeline
        .as_of(fx.app.log(), AsOf::Position(mid), &mut |_, _| {})
        .expect("as of the middle");
    assert_eq!(
        timeline.position(),
        mid,
        "a question past the head catches up to it"
    );
    let rest = timeline.catch_up(fx.app.log(), &mut |_, _| {});
    assert_eq!(rest.expect("the rest"), head - mid);
    let none = timeline.catch_up(fx.app.log(), &mut |_, _| {});
    assert_eq!(none.expect("no-op"), 0);
    let (snapshots, every) = timeline.snapshots();
    assert_eq!(every, spacing);
    assert_eq!(
        snapshots as u64,
        head / spacing + 1,
        "one at 0, one per spacing"
    );

    let mut rng = SplitMix64(SEED ^ 0x7157);
    let mut positions = vec![0, 1, spacing - 1, spacing, spacing + 1, mid, head - 1, head];
    positions.extend((0..24).map(|_| rng.below(head + 1)));
    for pos in positions {
        let got = timeline
            .as_of(fx.app.log(), AsOf::Position(pos), &mut |_, _| {})
            .expect("as of");
        let want = rebuild(&fx.app, &all, AsOf::Position(pos), None);
        assert_eq!(got.position, pos);
        assert_eq!(got.last_day, want.last_day, "the last day as of {pos}");
        assert!(
            got.events_read < spacing,
            "as of {pos}: {} events replayed after the snapshot",
            got.events_read
        );
        for (i, p) in all.iter().enumerate() {
            let what = format!("timeline as of {pos}");
            assert_same_state(*p, nth(&got, i), nth(&want, i), &what);
        }
    }
    // The state asked for first is still what it was (it shares with the timeline too).
    let want = rebuild(&fx.app, &all, AsOf::Position(mid), None);
    for (i, p) in all.iter().enumerate() {
        assert_same_state(*p, nth(&early, i), nth(&want, i), "the first answer, kept");
    }

    // With a snapshot per event, the timeline thins itself out to at most SNAPSHOTS_MAX.
    let mut dense = Timeline::with_spacing(registry(), 1);
    dense.catch_up(fx.app.log(), &mut |_, _| {}).expect("built");
    let (snapshots, every) = dense.snapshots();
    assert!(snapshots <= SNAPSHOTS_MAX, "{snapshots} snapshots held");
    if head as usize > SNAPSHOTS_MAX {
        assert!(every > 1, "the spacing doubled");
    }
    let pos = head - head / 5;
    let got = dense
        .as_of(fx.app.log(), AsOf::Position(pos), &mut |_, _| {})
        .expect("as of");
    assert!(got.events_read < every);
    let want = rebuild(&fx.app, &all, AsOf::Position(pos), None);
    for (i, p) in all.iter().enumerate() {
        assert_same_state(*p, nth(&got, i), nth(&want, i), "a thinned timeline");
    }

    // With a small budget for what the snapshots hold, the timeline thins itself out to stay
    // within it, and still answers as a replay does.
    let budget = 256 << 10;
    let mut lean = Timeline::with_spacing(registry(), 1).with_snapshot_bytes_max(budget);
    lean.catch_up(fx.app.log(), &mut |_, _| {}).expect("built");
    let (lean_snapshots, lean_every) = lean.snapshots();
    assert!(
        lean.snapshot_bytes() <= budget,
        "{} bytes held by {lean_snapshots} snapshots",
        lean.snapshot_bytes()
    );
    assert!(
        lean_snapshots < snapshots && lean_every > every,
        "the budget thinned it: {lean_snapshots} snapshots {lean_every} apart"
    );
    assert!(dense.snapshot_bytes() > budget, "the budget was binding");

    // The estimate counts what folds copy whichever way the timeline was caught up: one event
    // per question (as a server asked often catches up) or all at once.
    let mut whole = Timeline::with_spacing(registry(), 7);
    let copied_before = copied_bytes();
    whole.catch_up(fx.app.log(), &mut |_, _| {}).expect("built");
    let copied = copied_bytes() - copied_before;
    let mut stepwise = Timeline::with_spacing(registry(), 7);
    for pos in 1..=head {
        stepwise
            .as_of(fx.app.log(), AsOf::Position(pos), &mut |_, _| {})
            .expect("as of");
    }
    let (a, b) = (whole.snapshot_bytes(), stepwise.snapshot_bytes());
    // All that the catch-up copied, but for the stretch after the last snapshot.
    assert!(
        a <= copied && a >= copied * 8 / 10,
        "estimated {a} bytes of the {copied} the catch-up copied"
    );
    assert!(
        b >= a * 9 / 10 && b <= a * 11 / 10,
        "estimated {b} bytes caught up event by event, {a} all at once"
    );
    for pos in [head / 4, head / 2 + 1, head - 3] {
        let got = lean
            .as_of(fx.app.log(), AsOf::Position(pos), &mut |_, _| {})
            .expect("as of");
        let want = rebuild(&fx.app, &all, AsOf::Position(pos), None);
        for (i, p) in all.iter().enumerate() {
            assert_same_state(*p, nth(&got, i), nth(&want, i), "a timeline on a budget");
        }
    }
}

/// (g) The app gives the same report, explanation and claims check with a held timeline as
/// without one, now and as of past positions.
#[test]
fn the_app_answers_the_same_with_a_timeline() {
    let fx = Fixture::build(SEED);
    let head = fx.head();
    let answers = |app: &App| {
        let mut out = Vec::new();
        for at in [
            AsOf::Now,
            AsOf::Position(head / 3),
            AsOf::Position(head - 11),
        ] {
            let report = app.report(at, None, false, &mut |_, _| {}).expect("report");
            out.push(serde_json::to_value(&report).expect("json"));
            let explained = app
                .explain("home_visits", at, None, &mut |_, _| {})
                .expect("explain");
            out.push(serde_json::to_value(&explained).expect("json"));
            let view = app
                .project("census", at, Query::default(), &mut |_, _| {})
                .expect("project");
            out.push(view);
        }
        let claims = app.claims_check(&mut |_, _| {}).expect("claims");
        out.push(serde_json::to_value(&claims).expect("json"));
        out
    };
    fx.app.set_use_checkpoints(false);
    let without = answers(&fx.app);
    fx.app.set_hold_timeline(true);
    let with = answers(&fx.app);
    assert_eq!(with.len(), without.len());
    for (i, (w, wo)) in with.iter().zip(&without).enumerate() {
        assert_eq!(w, wo, "answer {i} differs with the timeline");
    }
    // The claims check needs claims, and the figures something to count.
    assert!(
        with.last()
            .is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    );
}

/// (g) A timeline that meets an event this build cannot read goes back to its last snapshot:
/// what it had folded of the failed stretch is not kept (it would be folded twice, or answered
/// as of a position it is not at), and positions before the event are answered as a replay.
#[test]
fn a_timeline_that_meets_an_unreadable_event_keeps_answering_before_it() {
    let fx = Fixture::build(SEED);
    let projections = registry();
    let all: Vec<&dyn AnyProjection> = projections.iter().map(|p| p.as_ref()).collect();
    let log = fx.app.log();
    let head = fx.head();
    let mut timeline = Timeline::with_spacing(registry(), 7);
    timeline.catch_up(log, &mut |_, _| {}).expect("built");
    // Ten events this build reads (copies, under new ids), then one it cannot.
    let copy = |e: &LoggedEvent, event_type: &str| NewEvent {
        event_id: Uuid::now_v7(),
        stream: e.recorded.stream.clone(),
        event_type: event_type.to_string(),
        schema_version: e.recorded.schema_version,
        occurred_at: e.recorded.occurred_at,
        recorded_by: "kit".into(),
        correlation_id: None,
        causation_id: None,
        payload: e.recorded.payload.clone(),
        recorded_at: None,
    };
    // Contacts: each a new fact in activity_totals and coverage, so a state that holds one is
    // told apart.
    let contacts: Vec<&LoggedEvent> = fx
        .events
        .iter()
        .filter(|e| e.recorded.event_type == "carelog.contact.recorded")
        .collect();
    assert!(contacts.len() >= 11, "the store has contacts to copy");
    // As many as leave at least one readable event in the stretch that fails (it starts at a
    // multiple of 7): a head kept after the failure then holds something it should not.
    let readable = if (head + 10).is_multiple_of(7) {
        11
    } else {
        10
    };
    let mut batch: Vec<NewEvent> = contacts[contacts.len() - readable..]
        .iter()
        .map(|e| copy(e, &e.recorded.event_type))
        .collect();
    let last = fx.events.last().expect("events");
    batch.push(copy(last, "carelog.not.known.to.this.build"));
    log.append(AppendBatch::new(batch)).expect("appended");
    let unreadable = head + readable as u64 + 1;
    assert!(!(unreadable - 1).is_multiple_of(7));
    assert!(
        timeline.catch_up(log, &mut |_, _| {}).is_err(),
        "the unreadable event stops the catch-up"
    );
    assert!(
        timeline.position() < unreadable && timeline.position().is_multiple_of(7),
        "the head went back to a snapshot, not {}",
        timeline.position()
    );
    // From the head's own position first: a head that kept part of the failed stretch would
    // answer it with those events in.
    let positions = std::iter::once(timeline.position()).chain(head - 2..unreadable);
    for pos in positions {
        let got = timeline
            .as_of(log, AsOf::Position(pos), &mut |_, _| {})
            .expect("as of a position before the unreadable event");
        let want = rebuild(&fx.app, &all, AsOf::Position(pos), None);
        for (i, p) in all.iter().enumerate() {
            let what = format!("as of {pos}, after a failed catch-up");
            assert_same_state(*p, nth(&got, i), nth(&want, i), &what);
        }
    }
    assert!(
        timeline
            .as_of(log, AsOf::Position(unreadable), &mut |_, _| {})
            .is_err()
    );
}
