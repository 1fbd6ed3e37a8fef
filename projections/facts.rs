//! [`Facts`]: the events a projection counts, keyed by event id, with voids and corrections
//! applied. Totals are computed from the live facts at query time, so a void arriving long after
//! its target takes the target out of every total, and every total can list its events.

use serde::{Deserialize, Serialize};

use crate::projection::append_map::{AppendMap, AppendVec};
use uuid::Uuid;

use crate::domain::{Date, DomainEvent};
use crate::projection::{Adjustment, AdjustmentKind, EventView, Source};

/// One counted event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact<V> {
    pub source: Source,
    pub on: Date,
    pub value: V,
}

/// A void or correction with the fact as it was before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatedAdjustment<V> {
    pub on: Date,
    pub before: V,
    pub adjustment: Adjustment,
}

/// The counted events of a projection. Both lists share with clones (snapshots of the state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Clone + Deserialize<'de>"))]
pub struct Facts<V> {
    pub live: AppendMap<Uuid, Fact<V>>,
    pub adjustments: AppendVec<DatedAdjustment<V>>,
}

impl<V> Default for Facts<V> {
    fn default() -> Self {
        Self {
            live: AppendMap::new(),
            adjustments: AppendVec::new(),
        }
    }
}

impl<V: Clone> Facts<V> {
    pub fn insert(&mut self, ev: &EventView<'_>, value: V) {
        self.insert_on(ev, ev.occurred_on, value);
    }

    /// Inserts a fact counted on another day than the event's own (a dropout on the day the
    /// pupil left, whenever it was entered).
    pub fn insert_on(&mut self, ev: &EventView<'_>, on: Date, value: V) {
        self.live.insert(
            ev.event_id,
            Fact {
                source: ev.source(),
                on,
                value,
            },
        );
    }

    /// Applies a void or correction if `ev` is one and its target is a fact here. `rederive`
    /// turns the corrected event into the fact's new value (None: the correction no longer
    /// counts here, e.g. it changed the kind). Returns true when `ev` was a void or correction.
    pub fn adjust(
        &mut self,
        ev: &EventView<'_>,
        rederive: impl Fn(&DomainEvent, &Fact<V>) -> Option<V>,
    ) -> bool {
        match ev.event {
            DomainEvent::RecordVoided(v) => {
                if let Some(fact) = self.live.remove(&v.target_event_id) {
                    self.adjustments.push(DatedAdjustment {
                        on: fact.on,
                        adjustment: Adjustment {
                            target: fact.source,
                            by: ev.source(),
                            kind: AdjustmentKind::Voided,
                            reason: v.reason.clone(),
                        },
                        before: fact.value,
                    });
                }
                true
            }
            DomainEvent::RecordCorrected(c) => {
                let Some(fact) = self.live.get(&c.target_event_id).cloned() else {
                    return true;
                };
                let Ok(corrected) =
                    DomainEvent::decode(&c.event_type, c.schema_version, &c.payload)
                else {
                    return true;
                };
                match rederive(&corrected, &fact) {
                    Some(value) => {
                        self.live.insert(
                            c.target_event_id,
                            Fact {
                                value,
                                ..fact.clone()
                            },
                        );
                    }
                    None => {
                        self.live.remove(&c.target_event_id);
                    }
                }
                self.adjustments.push(DatedAdjustment {
                    on: fact.on,
                    adjustment: Adjustment {
                        target: fact.source,
                        by: ev.source(),
                        kind: AdjustmentKind::Corrected,
                        reason: c.reason.clone(),
                    },
                    before: fact.value.clone(),
                });
                true
            }
            _ => false,
        }
    }

    /// Live facts counted by a query filter.
    pub fn matching<'a>(
        &'a self,
        keep: impl Fn(&Fact<V>) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Fact<V>> + 'a {
        self.live.values().filter(move |f| keep(f))
    }

    /// The adjustments on the days a filter keeps, each with the fact's value before it, in
    /// the order they were made.
    pub fn adjustments_with_values<'a>(
        &'a self,
        keep_day: impl Fn(Date) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a V, Adjustment)> + 'a {
        self.adjustments
            .iter()
            .filter(move |a| keep_day(a.on))
            .map(|a| (&a.before, a.adjustment.clone()))
    }

    /// The adjustments of facts a filter keeps (on their day and value before the adjustment).
    pub fn adjustments_where(&self, keep: impl Fn(Date, &V) -> bool) -> Vec<Adjustment> {
        self.adjustments
            .iter()
            .filter(|a| keep(a.on, &a.before))
            .map(|a| a.adjustment.clone())
            .collect()
    }
}

/// Keeps the latest day seen: what "now" means for a state asked about without a day.
pub fn note_day(last_day: &mut Option<Date>, day: Date) {
    *last_day = Some(last_day.map_or(day, |d| d.max(day)));
}

/// Sorted sources, for provenance.
pub fn sorted_sources(mut sources: Vec<Source>) -> Vec<Source> {
    sources.sort_by_key(|s| s.position);
    sources
}
