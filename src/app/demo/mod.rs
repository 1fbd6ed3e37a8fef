//! `carelog demo`: the Qingyang programme's records, built event by event from a seed, through
//! the same validated append path as any other input.
//!
//! The scenario reproduces every figure of `shared/seed/FIGURES.md` from individual events with a
//! believable spread: 8 counties, 24 townships, 120 schools; 40 cadres (three hand their pairing
//! over mid-year, so 37 hold one at the year's end); 53 pairings; a year of contacts, visits
//! (group trips to Maojing township among them), follow-ups, difficulties, errands, aid in cash
//! and goods, escalations at every stage; a few entries voided or corrected; ~70,000 pupils with
//! dated categories, 7,714 aid payments, 484 placements, care plans; and the report's figures
//! recorded as claims. Historical facts (enrollments, earlier placements) are entered in early
//! 2023, as a bureau adopting the system would; 2023's events are recorded as they happen.

//!
//! The events are planned on a [`Scenario`] (ids and times from the seed) by the builders of
//! [`org`], [`pairings`] and [`pupils`], then appended in recorded order.

mod org;
mod pairings;
mod pupils;

use std::time::Instant as WallClock;

use chrono::{Duration, NaiveDate};

use super::scenario::{Scenario, day, shanghai_at as at};
use super::{App, AppError, Keep};
use crate::domain::cloudevent::IncomingEvent;
use crate::domain::events::*;
use crate::domain::{Date, DomainEvent};
use crate::rng::SplitMix64;

/// The default seed.
pub const DEFAULT_SEED: u64 = 20231229;
/// Events per append batch (each batch is all-or-nothing and shares one flush).
const DEMO_BATCH_EVENTS: usize = 4_000;

/// What the demo built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub events: u64,
    pub head_position: u64,
    pub seconds: f64,
    pub pupils: u32,
    pub pairings: u32,
    pub claims: u32,
}

pub const CLAIMED: &[(&str, i64, Comparison)] = &[
    ("cadres_paired", 37, Comparison::Exactly),
    ("paired_orphans", 9, Comparison::Exactly),
    ("paired_severely_disabled", 24, Comparison::Exactly),
    ("paired_poor_households", 20, Comparison::Exactly),
    ("contacts", 374, Comparison::Exactly),
    ("home_visits", 212, Comparison::Exactly),
    ("policy_followups", 172, Comparison::Exactly),
    ("difficulties_resolved", 42, Comparison::Exactly),
    ("errands_done", 31, Comparison::Exactly),
    ("aid_given_fen", 7_040_400, Comparison::Exactly),
    ("escalations", 29, Comparison::Exactly),
    ("placements_regular_class", 326, Comparison::Exactly),
    ("placements_special_school", 33, Comparison::Exactly),
    ("placements_home_teaching", 125, Comparison::Exactly),
    ("placements_total", 484, Comparison::Exactly),
    ("poverty_dropouts", 0, Comparison::Exactly),
    ("student_aid_orphans_person_times", 532, Comparison::Exactly),
    (
        "student_aid_unsupported_person_times",
        1864,
        Comparison::Exactly,
    ),
    (
        "student_aid_disabled_person_times",
        5318,
        Comparison::Exactly,
    ),
    ("student_aid_paid_fen", 411_820_000, Comparison::Exactly),
    ("pupils_orphans", 808, Comparison::Exactly),
    ("pupils_single_parent", 19_523, Comparison::Exactly),
    ("pupils_left_behind", 45_132, Comparison::Exactly),
    ("pupils_disabled", 2_478, Comparison::Exactly),
    ("welfare_home_orphans_with_plan", 18, Comparison::Exactly),
    ("welfare_home_plan_schools", 6, Comparison::Exactly),
    ("one_to_one_plans", 2_000, Comparison::MoreThan),
];

/// The number of one-to-one plans the demo opens ("more than 2,000").
pub const ONE_TO_ONE_PLANS: usize = 2_046;

/// The programme planned from `seed`: its events in the order they are appended.
#[derive(Debug, Clone)]
pub struct DemoPlan {
    pub events: Vec<IncomingEvent>,
    pub pupils: u32,
    pub pairings: u32,
}

/// Plans the whole programme from `seed` (no store needed: the kit and the benches take the
/// events from here).
pub fn plan(seed: u64) -> DemoPlan {
    let mut b = Scenario::new(seed, at(day(2023, 1, 3), 60));
    let org = org::build_org(&mut b);
    let pairings = pairings::build_pairings(&mut b, &org);
    let pupils = pupils::build_pupils(&mut b, &org);
    build_claims(&mut b);
    DemoPlan {
        events: b.into_events(recorder_of),
        pupils,
        pairings,
    }
}

/// Builds the whole programme into an empty store.
pub fn run(
    app: &App,
    seed: u64,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<DemoSummary, AppError> {
    if app.log().head_position() > 0 {
        return Err(AppError::Usage(format!(
            "the store at {} already holds {} events: the demo builds into an empty store only (pass --data with a new directory)",
            app.log().path().display(),
            app.log().head_position()
        )));
    }
    let started = WallClock::now();
    let DemoPlan {
        events,
        pupils,
        pairings,
    } = plan(seed);
    let total = events.len() as u64;
    progress("planned", total, total);

    // Append in recorded order (the plan's): the log's recorded times never go back.
    let mut done = 0u64;
    let keep = Keep {
        recorded_by: true,
        recorded_at: true,
    };
    let mut iter = events.into_iter().peekable();
    while iter.peek().is_some() {
        let batch: Vec<IncomingEvent> = iter.by_ref().take(DEMO_BATCH_EVENTS).collect();
        let n = batch.len() as u64;
        app.append(batch, "demo", keep, &|_, _| Ok(()))?;
        done += n;
        progress("appended", done, total);
    }
    Ok(DemoSummary {
        events: done,
        head_position: app.log().head_position(),
        seconds: started.elapsed().as_secs_f64(),
        pupils,
        pairings,
        claims: CLAIMED.len() as u32,
    })
}

/// Who records each kind of event in the scenario.
pub fn recorder_of(event: &DomainEvent) -> String {
    use DomainEvent as E;
    match event {
        E::StudentAidPaid(_) => "county-aid-office".into(),
        E::ClaimFiled(_) => "city-bureau-office".into(),
        E::ContactRecorded(_)
        | E::VisitRecorded(_)
        | E::PolicyFollowupRecorded(_)
        | E::ErrandDone(_)
        | E::AidGiven(_)
        | E::DifficultyRaised(_)
        | E::DifficultyResolved(_)
        | E::DifficultyDropped(_)
        | E::EscalationRaised(_) => "cadre-app".into(),
        E::CarePlanOpened(_) | E::CarePlanReviewed(_) => "school-office".into(),
        _ => "bureau-registry".into(),
    }
}

/// A random day strictly between two days (inclusive of `from`), avoiding none.
pub(super) fn day_between(rng: &mut SplitMix64, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0);
    from + Duration::days(rng.in_range(0, span))
}

/// The source report's figures, recorded as claims on the day the report was filed.
fn build_claims(b: &mut Scenario) {
    let filed = at(day(2023, 12, 29), 540);
    for (metric, value, comparison) in CLAIMED {
        let def = super::report::metric_def(metric);
        let (from, to) = def.map_or((Date(day(2023, 1, 1)), Date(day(2023, 12, 31))), |d| {
            let p = d.period(None);
            (p.from, p.to)
        });
        let claim = b.id_at(filed.timestamp_millis());
        b.record(
            filed,
            filed + Duration::minutes(10),
            DomainEvent::ClaimFiled(ClaimFiledV1 {
                claim_id: claim,
                metric: (*metric).into(),
                scope_unit_id: None,
                period_from: Some(from),
                period_to: Some(to),
                value: *value,
                comparison: *comparison,
                source_document:
                    "庆阳市教育局《精心谋划 精准施策 奋力推动结对关爱行动走深走实》(2023)".into(),
                reported_on: Date(day(2023, 12, 29)),
            }),
        );
    }
}
