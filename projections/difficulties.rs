//! `difficulties`: practical difficulties raised, resolved, dropped and still open.

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{Date, DomainEvent};
use crate::projection::{EventView, PairingBook, Projection, Query, Source};

pub struct Difficulties;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difficulty {
    pub pairing: Uuid,
    pub description: String,
    pub raised_on: Date,
    pub resolved_on: Option<Date>,
    pub dropped_on: Option<Date>,
    pub source: Source,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub difficulties: AppendMap<Uuid, Difficulty>,
    pub raised_by: AppendMap<Uuid, Uuid>,
}

impl Projection for Difficulties {
    const NAME: &'static str = "difficulties";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "difficulties raised, resolved, dropped and open";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        use DomainEvent as E;
        match ev.event {
            E::DifficultyRaised(e) => {
                state.difficulties.insert(
                    e.difficulty_id,
                    Difficulty {
                        pairing: e.pairing_id,
                        description: e.description.clone(),
                        raised_on: ev.occurred_on,
                        resolved_on: None,
                        dropped_on: None,
                        source: ev.source(),
                    },
                );
                state.raised_by.insert(ev.event_id, e.difficulty_id);
            }
            E::DifficultyResolved(e) => {
                if let Some(x) = state.difficulties.get_mut(&e.difficulty_id) {
                    x.resolved_on = Some(ev.occurred_on);
                }
            }
            E::DifficultyDropped(e) => {
                if let Some(x) = state.difficulties.get_mut(&e.difficulty_id) {
                    x.dropped_on = Some(ev.occurred_on);
                }
            }
            E::RecordVoided(v) => {
                if let Some(id) = state.raised_by.remove(&v.target_event_id) {
                    state.difficulties.remove(&id);
                }
            }
            _ => {}
        }
    }

    fn query(state: &State, _book: &PairingBook, query: &Query) -> serde_json::Value {
        let within = |d: Option<Date>| {
            d.is_some_and(|d| query.counts(d) && query.on.is_none_or(|on| d <= on))
        };
        let raised = state
            .difficulties
            .values()
            .filter(|x| within(Some(x.raised_on)))
            .count();
        let resolved = state
            .difficulties
            .values()
            .filter(|x| within(x.resolved_on))
            .count();
        let dropped = state
            .difficulties
            .values()
            .filter(|x| within(x.dropped_on))
            .count();
        let open: Vec<_> = state
            .difficulties
            .iter()
            .filter(|(_, x)| {
                // Open on the day: raised by then, and neither resolved nor dropped by then.
                let by = |d: Option<Date>| d.is_some_and(|d| query.on.is_none_or(|on| d <= on));
                query.on.is_none_or(|on| x.raised_on <= on) && !by(x.resolved_on) && !by(x.dropped_on)
            })
            .map(|(id, x)| json!({"difficulty_id": id, "pairing_id": x.pairing, "raised_on": x.raised_on, "description": x.description}))
            .collect();
        json!({"period": query.period.map(|p| p.to_string()), "raised": raised, "resolved": resolved, "dropped": dropped, "open_count": open.len(), "open": open})
    }
}
