//! `coverage`: pairings with no contact, or no home visit, within N days (`days`, default 30) of
//! a day: the duty overdue, charged to whoever held the pairing on that day. A pairing owes
//! nothing until it has been active N days (since it was established, or resumed after a
//! suspension).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::facts::{Fact, Facts};
use crate::domain::{Date, DomainEvent};
use crate::projection::{EventView, PairingBook, Projection, Query};

pub struct Coverage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    pub pairing: Uuid,
    pub visit: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub touches: Facts<Touch>,
    pub last_day: Option<Date>,
}

fn touch(event: &DomainEvent) -> Option<Touch> {
    match event {
        DomainEvent::ContactRecorded(e) => Some(Touch {
            pairing: e.pairing_id,
            visit: false,
        }),
        DomainEvent::VisitRecorded(e) => Some(Touch {
            pairing: e.pairing_id,
            visit: true,
        }),
        _ => None,
    }
}

impl Projection for Coverage {
    const NAME: &'static str = "coverage";
    const VERSION: u32 = 3;
    const ABOUT: &'static str = "pairings with no contact or no visit within N days (days, default 30) of a day, charged to the holder";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        super::facts::note_day(&mut state.last_day, ev.occurred_on);
        if state
            .touches
            .adjust(ev, |corrected, _f: &Fact<Touch>| touch(corrected))
        {
            return;
        }
        if let Some(t) = touch(ev.event) {
            state.touches.insert(ev, t);
        }
    }

    fn query(state: &State, book: &PairingBook, query: &Query) -> serde_json::Value {
        let Some(d) = query.on.or(state.last_day) else {
            return json!({"overdue": []});
        };
        let days = i64::from(query.param_u32("days", 30));
        let since = Date(d.0 - chrono::Duration::days(days));
        // Last contact and last visit on or before the day, per pairing.
        let mut last: BTreeMap<Uuid, (Option<Date>, Option<Date>)> = BTreeMap::new();
        for f in state.touches.matching(|f| f.on <= d) {
            let entry = last.entry(f.value.pairing).or_default();
            let slot = if f.value.visit {
                &mut entry.1
            } else {
                &mut entry.0
            };
            if slot.is_none_or(|x| x < f.on) {
                *slot = Some(f.on);
            }
        }
        let mut overdue = Vec::new();
        let mut by_cadre: BTreeMap<String, u32> = BTreeMap::new();
        // A pairing active for fewer than N days (new, or resumed after a suspension) owes
        // nothing yet: its N days have not run.
        let owing = book
            .pairings
            .iter()
            .filter(|(_, p)| p.active_on(d) && p.active_since(d) <= since);
        for (id, p) in owing {
            let (contact, visit) = last.get(id).copied().unwrap_or_default();
            let no_contact = contact.is_none_or(|c| c < since);
            let no_visit = visit.is_none_or(|v| v < since);
            if no_contact || no_visit {
                let holder = p.holder_on(d).map(|h| h.cadre);
                *by_cadre
                    .entry(holder.map(|h| h.to_string()).unwrap_or_default())
                    .or_default() += 1;
                overdue.push(json!({"pairing_id": id, "cadre_id": holder, "last_contact": contact, "last_visit": visit, "no_contact": no_contact, "no_visit": no_visit}));
            }
        }
        json!({"on": d, "days": days, "overdue_count": overdue.len(), "overdue_by_cadre": by_cadre, "overdue": overdue})
    }
}
