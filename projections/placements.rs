//! `placements`: disabled children's schooling placements — ordinary class, special school,
//! taught at home — decided in a period, by their mode at the period's end; and the changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use serde_json::json;
use uuid::Uuid;

use super::facts::sorted_sources;
use crate::domain::events::PlacementMode;
use crate::domain::{Date, DomainEvent};
use crate::projection::{EventView, Figure, PairingBook, Projection, Query, Source};

pub struct Placements;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub pupil: Uuid,
    pub decided_on: Date,
    /// (from, mode, school), in order.
    pub modes: Vec<(Date, PlacementMode, Uuid)>,
    pub ended_on: Option<Date>,
    pub source: Source,
}

impl Placement {
    fn mode_on(&self, d: Date) -> Option<PlacementMode> {
        self.modes
            .iter()
            .rev()
            .find(|(from, _, _)| *from <= d)
            .map(|(_, m, _)| *m)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub placements: AppendMap<Uuid, Placement>,
    pub decided_by: AppendMap<Uuid, Uuid>,
    pub last_day: Option<Date>,
}

const MODES: [(PlacementMode, &str); 3] = [
    (PlacementMode::RegularClass, "placements_regular_class"),
    (PlacementMode::SpecialSchool, "placements_special_school"),
    (PlacementMode::HomeTeaching, "placements_home_teaching"),
];

impl Projection for Placements {
    const NAME: &'static str = "placements";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "disabled children placed in a period, by placement mode, and the changes";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        use DomainEvent as E;
        super::facts::note_day(&mut state.last_day, ev.occurred_on);
        match ev.event {
            E::PlacementDecided(e) => {
                state.placements.insert(
                    e.placement_id,
                    Placement {
                        pupil: e.pupil_id,
                        decided_on: e.on,
                        modes: vec![(e.on, e.mode, e.school_id)],
                        ended_on: None,
                        source: ev.source(),
                    },
                );
                state.decided_by.insert(ev.event_id, e.placement_id);
            }
            E::PlacementChanged(e) => {
                if let Some(p) = state.placements.get_mut(&e.placement_id) {
                    p.modes.push((e.on, e.mode, e.school_id));
                }
            }
            E::PlacementEnded(e) => {
                if let Some(p) = state.placements.get_mut(&e.placement_id) {
                    p.ended_on = Some(e.on);
                }
            }
            E::RecordVoided(v) => {
                if let Some(id) = state.decided_by.remove(&v.target_event_id) {
                    state.placements.remove(&id);
                }
            }
            _ => {}
        }
    }

    fn query(state: &State, book: &PairingBook, query: &Query) -> serde_json::Value {
        let figures = Self::figures(state, book, query);
        let totals: BTreeMap<String, i64> = figures
            .iter()
            .map(|f| (f.metric.clone(), f.value))
            .collect();
        let changes: Vec<_> = state
            .placements
            .iter()
            .flat_map(|(id, p)| p.modes.windows(2).map(move |w| json!({"placement_id": id, "pupil_id": p.pupil, "on": w[1].0, "from_mode": w[0].1, "to_mode": w[1].1})))
            .collect();
        json!({"period": query.period.map(|p| p.to_string()), "totals": totals, "changes": changes})
    }

    fn figures(state: &State, _book: &PairingBook, query: &Query) -> Vec<Figure> {
        let end = query.period.map(|p| p.to).or(query.on).or(state.last_day);
        let placed: Vec<&Placement> = state
            .placements
            .values()
            .filter(|p| query.counts(p.decided_on))
            .collect();
        let mut out = Vec::new();
        for (mode, metric) in MODES {
            let events: Vec<Source> = placed
                .iter()
                .filter(|p| end.and_then(|d| p.mode_on(d)) == Some(mode))
                .map(|p| p.source)
                .collect();
            out.push(Figure {
                metric: metric.into(),
                overflowed: false,
                value: events.len() as i64,
                events: sorted_sources(events),
                adjustments: Vec::new(),
            });
        }
        let all: Vec<Source> = placed.iter().map(|p| p.source).collect();
        out.push(Figure {
            metric: "placements_total".into(),
            overflowed: false,
            value: all.len() as i64,
            events: sorted_sources(all),
            adjustments: Vec::new(),
        });
        out
    }
}
