//! `escalations`: problems raised to higher levels — open, acknowledged, answered, closed — with
//! their age and whether they are overdue against a deadline (`deadline_days`, default 30).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{Date, DomainEvent};
use crate::projection::{EventView, PairingBook, Projection, Query, Source};

pub struct Escalations;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub pairing: Uuid,
    pub to_level: String,
    pub raised_on: Date,
    pub acknowledged_on: Option<Date>,
    pub answered_on: Option<Date>,
    pub closed_on: Option<Date>,
    pub source: Source,
}

impl Escalation {
    fn stage_on(&self, d: Date) -> &'static str {
        let by = |x: Option<Date>| x.is_some_and(|x| x <= d);
        if by(self.closed_on) {
            "closed"
        } else if by(self.answered_on) {
            "answered"
        } else if by(self.acknowledged_on) {
            "acknowledged"
        } else {
            "open"
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub escalations: AppendMap<Uuid, Escalation>,
    /// raising event → escalation, for voids
    pub raised_by: AppendMap<Uuid, Uuid>,
    pub last_day: Option<Date>,
}

impl Projection for Escalations {
    const NAME: &'static str = "escalations";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "escalations by stage, their age, and which are overdue (deadline_days, default 30)";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        use DomainEvent as E;
        super::facts::note_day(&mut state.last_day, ev.occurred_on);
        let d = ev.occurred_on;
        match ev.event {
            E::EscalationRaised(e) => {
                state.escalations.insert(
                    e.escalation_id,
                    Escalation {
                        pairing: e.pairing_id,
                        to_level: e.to_level.clone(),
                        raised_on: d,
                        acknowledged_on: None,
                        answered_on: None,
                        closed_on: None,
                        source: ev.source(),
                    },
                );
                state.raised_by.insert(ev.event_id, e.escalation_id);
            }
            E::EscalationAcknowledged(e) => {
                if let Some(x) = state.escalations.get_mut(&e.escalation_id) {
                    x.acknowledged_on = Some(d);
                }
            }
            E::EscalationAnswered(e) => {
                if let Some(x) = state.escalations.get_mut(&e.escalation_id) {
                    x.answered_on = Some(d);
                }
            }
            E::EscalationClosed(e) => {
                if let Some(x) = state.escalations.get_mut(&e.escalation_id) {
                    x.closed_on = Some(d);
                }
            }
            E::RecordVoided(v) => {
                if let Some(id) = state.raised_by.remove(&v.target_event_id) {
                    state.escalations.remove(&id);
                }
            }
            _ => {}
        }
    }

    fn query(state: &State, _book: &PairingBook, query: &Query) -> serde_json::Value {
        let Some(d) = query.on.or(state.last_day) else {
            return json!({"escalations": []});
        };
        let deadline = i64::from(query.param_u32("deadline_days", 30));
        let mut by_stage: BTreeMap<&str, u32> = BTreeMap::new();
        let mut list = Vec::new();
        let mut overdue = 0u32;
        for (id, x) in state
            .escalations
            .iter()
            .filter(|(_, x)| x.raised_on <= d && query.counts(x.raised_on))
        {
            let stage = x.stage_on(d);
            *by_stage.entry(stage).or_default() += 1;
            let age_days = (d.0 - x.raised_on.0).num_days();
            let is_overdue = stage != "closed" && age_days > deadline;
            overdue += u32::from(is_overdue);
            list.push(json!({"escalation_id": id, "pairing_id": x.pairing, "to_level": x.to_level, "raised_on": x.raised_on, "stage": stage, "age_days": age_days, "overdue": is_overdue}));
        }
        json!({"on": d, "deadline_days": deadline, "by_stage": by_stage, "overdue": overdue, "escalations": list})
    }
}
