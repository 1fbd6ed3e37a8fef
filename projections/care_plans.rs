//! `care_plans`: open care plans (一生一案 and 1对1), their teacher, last and next review, and
//! the overdue reviews; the report's section E figures.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use serde_json::json;
use uuid::Uuid;

use super::facts::sorted_sources;
use crate::domain::events::PlanScheme;
use crate::domain::{Date, DomainEvent};
use crate::projection::{EventView, Figure, PairingBook, Projection, Query, Source};

pub struct CarePlans;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub pupil: Uuid,
    pub scheme: PlanScheme,
    /// (from, teacher) in order: the plan's teacher on any day.
    pub teachers: Vec<(Date, Uuid)>,
    pub opened_on: Date,
    /// (day, next review set that day) in order, the opening first: reviews as of any day.
    pub reviews: Vec<(Date, Date)>,
    pub closed_on: Option<Date>,
    pub source: Source,
}

impl Plan {
    fn teacher_on(&self, d: Date) -> Option<Uuid> {
        self.teachers
            .iter()
            .rev()
            .find(|(from, _)| *from <= d)
            .map(|(_, t)| *t)
    }

    /// (last review by the day, next review due as set by then).
    fn reviews_on(&self, d: Date) -> (Option<Date>, Option<Date>) {
        let mut by_then = self.reviews.iter().filter(|(on, _)| *on <= d);
        let opening = by_then.next();
        let last = by_then.next_back();
        (
            last.map(|(on, _)| *on),
            last.or(opening).map(|(_, next)| *next),
        )
    }

    fn open_on(&self, d: Date) -> bool {
        self.opened_on <= d && self.closed_on.is_none_or(|c| d < c)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub plans: AppendMap<Uuid, Plan>,
    pub opened_by: AppendMap<Uuid, Uuid>,
    /// pupil → (from, school) enrollments, in order.
    pub schools: AppendMap<Uuid, Vec<(Date, Option<Uuid>)>>,
    pub last_day: Option<Date>,
}

impl State {
    fn school_on(&self, pupil: Uuid, d: Date) -> Option<Uuid> {
        self.schools
            .get(&pupil)?
            .iter()
            .rev()
            .find(|(from, _)| *from <= d)?
            .1
    }
}

impl Projection for CarePlans {
    const NAME: &'static str = "care_plans";
    const VERSION: u32 = 2;
    const ABOUT: &'static str =
        "open care plans, their teacher, last and next review, overdue reviews";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        use DomainEvent as E;
        super::facts::note_day(&mut state.last_day, ev.occurred_on);
        let d = ev.occurred_on;
        match ev.event {
            E::PupilEnrolled(e) => state
                .schools
                .get_or_default(e.pupil_id)
                .push((e.on, Some(e.school_id))),
            E::PupilMoved(e) => state
                .schools
                .get_or_default(e.pupil_id)
                .push((e.on, Some(e.school_id))),
            E::PupilLeft(e) => state.schools.get_or_default(e.pupil_id).push((e.on, None)),
            E::CarePlanOpened(e) => {
                state.plans.insert(
                    e.plan_id,
                    Plan {
                        pupil: e.pupil_id,
                        scheme: e.scheme,
                        teachers: vec![(d, e.teacher_id)],
                        opened_on: d,
                        reviews: vec![(d, e.next_review)],
                        closed_on: None,
                        source: ev.source(),
                    },
                );
                state.opened_by.insert(ev.event_id, e.plan_id);
            }
            E::CarePlanReviewed(e) => {
                if let Some(p) = state.plans.get_mut(&e.plan_id) {
                    p.reviews.push((d, e.next_review));
                }
            }
            E::CarePlanTeacherChanged(e) => {
                if let Some(p) = state.plans.get_mut(&e.plan_id) {
                    p.teachers.push((d, e.teacher_id));
                }
            }
            E::CarePlanClosed(e) => {
                if let Some(p) = state.plans.get_mut(&e.plan_id) {
                    p.closed_on = Some(d);
                }
            }
            E::RecordVoided(v) => {
                if let Some(id) = state.opened_by.remove(&v.target_event_id) {
                    state.plans.remove(&id);
                }
            }
            _ => {}
        }
    }

    fn query(state: &State, _book: &PairingBook, query: &Query) -> serde_json::Value {
        let Some(d) = query.on.or(state.last_day) else {
            return json!({"open": []});
        };
        let open: Vec<_> = state
            .plans
            .iter()
            .filter(|(_, p)| p.open_on(d))
            .map(|(id, p)| {
                let (last_review, next_review) = p.reviews_on(d);
                json!({"plan_id": id, "pupil_id": p.pupil, "scheme": p.scheme, "teacher_id": p.teacher_on(d), "last_review": last_review, "next_review": next_review, "review_overdue": next_review.is_some_and(|n| n < d)})
            })
            .collect();
        let overdue = open
            .iter()
            .filter(|p| p["review_overdue"] == json!(true))
            .count();
        json!({"on": d, "open_count": open.len(), "overdue_reviews": overdue, "open": open})
    }

    fn figures(state: &State, _book: &PairingBook, query: &Query) -> Vec<Figure> {
        let Some(d) = query.on.or(state.last_day) else {
            return Vec::new();
        };
        let mut welfare_pupils: BTreeMap<Uuid, Source> = BTreeMap::new();
        let mut schools: BTreeMap<Uuid, Source> = BTreeMap::new();
        let mut one_to_one: BTreeSet<Source> = BTreeSet::new();
        for p in state.plans.values().filter(|p| p.open_on(d)) {
            match p.scheme {
                PlanScheme::OnePupilOnePlan => {
                    welfare_pupils.entry(p.pupil).or_insert(p.source);
                    if let Some(s) = state.school_on(p.pupil, d) {
                        schools.entry(s).or_insert(p.source);
                    }
                }
                PlanScheme::OneToOne => {
                    one_to_one.insert(p.source);
                }
            }
        }
        let fig = |metric: &str, events: Vec<Source>| Figure {
            metric: metric.into(),
            overflowed: false,
            value: events.len() as i64,
            events: sorted_sources(events),
            adjustments: Vec::new(),
        };
        vec![
            fig(
                "welfare_home_orphans_with_plan",
                welfare_pupils.into_values().collect(),
            ),
            fig("welfare_home_plan_schools", schools.into_values().collect()),
            fig("one_to_one_plans", one_to_one.into_iter().collect()),
        ]
    }
}
