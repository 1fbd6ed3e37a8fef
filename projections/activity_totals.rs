//! `activity_totals`: what the cadres did — contacts, home visits, policy follow-ups, difficulties
//! resolved, errands, aid given (fen), escalations — by period, cadre, unit and recipient
//! category; each with the events behind it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use serde_json::json;
use uuid::Uuid;

use super::facts::{Fact, Facts, sorted_sources};
use crate::domain::DomainEvent;
use crate::projection::{
    EventView, FenSum, Figure, OVERFLOWED_KEY, PairingBook, Projection, Query,
};

pub struct ActivityTotals;

/// The report metric each kind of activity counts toward.
pub const METRICS: [&str; 7] = [
    "contacts",
    "home_visits",
    "policy_followups",
    "difficulties_resolved",
    "errands_done",
    "aid_given_fen",
    "escalations",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Index into [`METRICS`].
    pub metric: u8,
    /// The pairing it was recorded on. The cadre credited is the one holding the pairing on the
    /// activity's day, looked up when asked (a transfer recorded later may move it).
    pub pairing: Uuid,
    /// Fen for aid given, 1 for everything else.
    pub amount: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// difficulty → pairing
    pub difficulties: AppendMap<Uuid, Uuid>,
    pub facts: Facts<Activity>,
}

fn classify(difficulties: &AppendMap<Uuid, Uuid>, event: &DomainEvent) -> Option<(u8, Uuid, i64)> {
    use DomainEvent as E;
    Some(match event {
        E::ContactRecorded(e) => (0, e.pairing_id, 1),
        E::VisitRecorded(e) => (1, e.pairing_id, 1),
        E::PolicyFollowupRecorded(e) => (2, e.pairing_id, 1),
        E::DifficultyResolved(e) => (3, *difficulties.get(&e.difficulty_id)?, 1),
        E::ErrandDone(e) => (4, e.pairing_id, 1),
        E::AidGiven(e) => (5, e.pairing_id, e.value_fen.fen()),
        E::EscalationRaised(e) => (6, e.pairing_id, 1),
        _ => return None,
    })
}

fn activity(difficulties: &AppendMap<Uuid, Uuid>, event: &DomainEvent) -> Option<Activity> {
    let (metric, pairing, amount) = classify(difficulties, event)?;
    Some(Activity {
        metric,
        pairing,
        amount,
    })
}

impl Projection for ActivityTotals {
    const NAME: &'static str = "activity_totals";
    const VERSION: u32 = 3;
    const ABOUT: &'static str = "contacts, visits, follow-ups, difficulties resolved, errands, aid (fen), escalations by period, cadre, unit, category";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        if let DomainEvent::DifficultyRaised(e) = ev.event {
            state.difficulties.insert(e.difficulty_id, e.pairing_id);
        }
        let difficulties = &state.difficulties;
        if state.facts.adjust(ev, |corrected, _fact: &Fact<Activity>| {
            activity(difficulties, corrected)
        }) {
            return;
        }
        if let Some(a) = activity(&state.difficulties, ev.event) {
            state.facts.insert(ev, a);
        }
    }

    fn query(state: &State, book: &PairingBook, query: &Query) -> serde_json::Value {
        // Aid given is summed in fen: every sum is checked, and one that overflows is null and
        // named in `overflowed`.
        let mut totals: BTreeMap<&str, FenSum> =
            METRICS.iter().map(|m| (*m, FenSum::default())).collect();
        let mut by_cadre: BTreeMap<String, BTreeMap<&str, FenSum>> = BTreeMap::new();
        let mut by_unit: BTreeMap<String, BTreeMap<&str, FenSum>> = BTreeMap::new();
        let mut by_category: BTreeMap<&str, BTreeMap<&str, FenSum>> = BTreeMap::new();
        for f in state.facts.matching(|f| query.counts(f.on)) {
            let m = METRICS[usize::from(f.value.metric)];
            totals.entry(m).or_default().add(f.value.amount);
            let holder = book.holder_on(f.value.pairing, f.on);
            let cadre = holder
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unknown".into());
            by_cadre
                .entry(cadre)
                .or_default()
                .entry(m)
                .or_default()
                .add(f.value.amount);
            let unit = holder
                .and_then(|c| book.unit_on(c, f.on))
                .map(|u| u.to_string())
                .unwrap_or_else(|| "unknown".into());
            by_unit
                .entry(unit)
                .or_default()
                .entry(m)
                .or_default()
                .add(f.value.amount);
            for c in book.categories_on(f.value.pairing, f.on) {
                by_category
                    .entry(c.as_str())
                    .or_default()
                    .entry(m)
                    .or_default()
                    .add(f.value.amount);
            }
        }
        let mut overflowed: Vec<String> = totals
            .iter()
            .filter(|(_, sum)| sum.value().is_none())
            .map(|(m, _)| format!("totals.{m}"))
            .collect();
        for (name, map) in [("by_cadre", &by_cadre), ("by_unit", &by_unit)] {
            for (key, sums) in map {
                for (m, sum) in sums {
                    if sum.value().is_none() {
                        overflowed.push(format!("{name}.{key}.{m}"));
                    }
                }
            }
        }
        for (key, sums) in &by_category {
            for (m, sum) in sums {
                if sum.value().is_none() {
                    overflowed.push(format!("by_category.{key}.{m}"));
                }
            }
        }
        let mut view = json!({"period": query.period.map(|p| p.to_string()), "totals": totals, "by_cadre": by_cadre, "by_unit": by_unit, "by_category": by_category});
        if !overflowed.is_empty() {
            view[OVERFLOWED_KEY] = json!(overflowed);
        }
        view
    }

    fn figures(state: &State, _book: &PairingBook, query: &Query) -> Vec<Figure> {
        // One pass over the facts for all the metrics (a log holds millions of them).
        let mut values = [FenSum::default(); METRICS.len()];
        let mut events: [Vec<_>; METRICS.len()] = Default::default();
        for f in state.facts.matching(|f| query.counts(f.on)) {
            let i = usize::from(f.value.metric);
            if let (Some(value), Some(sources)) = (values.get_mut(i), events.get_mut(i)) {
                value.add(f.value.amount);
                sources.push(f.source);
            }
        }
        let mut adjustments: [Vec<_>; METRICS.len()] = Default::default();
        for (before, adjustment) in state.facts.adjustments_with_values(|on| query.counts(on)) {
            if let Some(list) = adjustments.get_mut(usize::from(before.metric)) {
                list.push(adjustment);
            }
        }
        METRICS
            .iter()
            .zip(values)
            .zip(events)
            .zip(adjustments)
            .map(|(((m, value), events), adjustments)| {
                value.figure(m, sorted_sources(events), adjustments)
            })
            .collect()
    }
}
