//! `census`: pupils in school by special category on a day (a pupil counts once per category),
//! and dropouts by cause (so "no dropout for poverty" is a figure the records show).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use serde_json::json;
use uuid::Uuid;

use super::facts::{Fact, Facts, sorted_sources};
use crate::domain::events::{Category, DropoutCause, LeavingReason};
use crate::domain::lifecycle::{CategorySpan, CategorySpans};
use crate::domain::{Date, DomainEvent};
use crate::projection::{EventView, Figure, PairingBook, Projection, Query, Source};

pub struct Census;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pupil {
    /// (from, to) school spans.
    pub enrolled: Vec<(Date, Option<Date>)>,
    /// Each certification and its certifying event (stored like the tuple
    /// `(category, from, to, source)` it was before: same bincode layout).
    pub categories: Vec<CategorySpan<Source>>,
}

impl Pupil {
    fn in_school_on(&self, d: Date) -> bool {
        self.enrolled
            .iter()
            .any(|(from, to)| *from <= d && to.is_none_or(|t| d < t))
    }

    fn category_on(&self, c: Category, d: Date) -> Option<Source> {
        self.categories.on(c, d).map(|span| span.source)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Every registered person (pupils once enrolled).
    pub pupils: AppendMap<Uuid, Pupil>,
    pub dropouts: Facts<DropoutCause>,
    pub last_day: Option<Date>,
}

const CENSUS: [(Category, &str); 4] = [
    (Category::Orphan, "pupils_orphans"),
    (Category::SingleParent, "pupils_single_parent"),
    (Category::LeftBehind, "pupils_left_behind"),
    (Category::DisabledChild, "pupils_disabled"),
];

fn dropout(event: &DomainEvent) -> Option<DropoutCause> {
    match event {
        DomainEvent::PupilLeft(e) if e.reason == LeavingReason::DroppedOut => e.dropout_cause,
        _ => None,
    }
}

impl Projection for Census {
    const NAME: &'static str = "census";
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "pupils in school by special category on a day; dropouts by cause";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        use DomainEvent as E;
        super::facts::note_day(&mut state.last_day, ev.occurred_on);
        match ev.event {
            E::PupilEnrolled(e) => state
                .pupils
                .get_or_default(e.pupil_id)
                .enrolled
                .push((e.on, None)),
            E::PupilLeft(e) => {
                if let Some(p) = state.pupils.get_mut(&e.pupil_id)
                    && let Some(last) = p.enrolled.last_mut()
                {
                    last.1 = Some(e.on);
                }
            }
            E::CategoryCertified(e) => {
                // Only persons who are or become pupils are counted, but categories come first.
                state
                    .pupils
                    .get_or_default(e.recipient_id)
                    .categories
                    .push(CategorySpan {
                        category: e.category,
                        from: e.from,
                        to: e.to,
                        source: ev.source(),
                    });
            }
            E::CategoryEnded(e) => {
                if let Some(p) = state.pupils.get_mut(&e.recipient_id) {
                    p.categories.end(e.category, e.on);
                }
            }
            _ => {}
        }
        if state
            .dropouts
            .adjust(ev, |corrected, _f: &Fact<DropoutCause>| dropout(corrected))
        {
            return;
        }
        if let (Some(cause), DomainEvent::PupilLeft(e)) = (dropout(ev.event), ev.event) {
            // Counted on the day the pupil left, as the census counts them out of school.
            state.dropouts.insert_on(ev, e.on, cause);
        }
    }

    fn query(state: &State, book: &PairingBook, query: &Query) -> serde_json::Value {
        let figures = Self::figures(state, book, query);
        let counts: BTreeMap<String, i64> = figures
            .iter()
            .map(|f| (f.metric.clone(), f.value))
            .collect();
        let mut by_cause: BTreeMap<String, u32> = BTreeMap::new();
        for f in state.dropouts.matching(|f| query.counts(f.on)) {
            // Named as in the events (`family_migration`).
            let name = serde_json::to_value(f.value)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *by_cause.entry(name).or_default() += 1;
        }
        let on = query.on.or(state.last_day);
        let in_school = on.map_or(0, |d| {
            state.pupils.values().filter(|p| p.in_school_on(d)).count()
        });
        json!({"on": on, "pupils_in_school": in_school, "counts": counts, "dropouts_by_cause": by_cause})
    }

    fn figures(state: &State, _book: &PairingBook, query: &Query) -> Vec<Figure> {
        let mut out = Vec::new();
        if let Some(d) = query.on.or(state.last_day) {
            for (category, metric) in CENSUS {
                let events: Vec<Source> = state
                    .pupils
                    .values()
                    .filter(|p| p.in_school_on(d))
                    .filter_map(|p| p.category_on(category, d))
                    .collect();
                out.push(Figure {
                    metric: metric.into(),
                    overflowed: false,
                    value: events.len() as i64,
                    events: sorted_sources(events),
                    adjustments: Vec::new(),
                });
            }
        }
        let poverty: Vec<_> = state
            .dropouts
            .matching(|f| f.value == DropoutCause::Poverty && query.counts(f.on))
            .collect();
        out.push(Figure {
            metric: "poverty_dropouts".into(),
            overflowed: false,
            value: poverty.len() as i64,
            events: sorted_sources(poverty.iter().map(|f| f.source).collect()),
            adjustments: state.dropouts.adjustments_where(|on, before| {
                *before == DropoutCause::Poverty && query.counts(on)
            }),
        });
        out
    }
}
