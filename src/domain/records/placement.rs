//! Placements: where a disabled child is schooled (decided, changed, ended), at most one open
//! per child.

use uuid::Uuid;

use super::corrections::References;
use super::rules::{err, new_id, non_empty, not_before, not_future};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::events::Category;
use crate::domain::{Date, DomainEvent};

#[derive(Debug, Clone)]
pub(super) struct Placement {
    pupil: Uuid,
    last_change: Date,
    ended: bool,
}

impl Records {
    /// The pupil a placement event is about: the one it decides for, or the placement's.
    pub(super) fn placement_pupil(&self, event: &DomainEvent) -> Option<Uuid> {
        use DomainEvent as E;
        let placement = match event {
            E::PlacementDecided(e) => return Some(e.pupil_id),
            E::PlacementChanged(e) => e.placement_id,
            E::PlacementEnded(e) => e.placement_id,
            _ => return None,
        };
        self.placements.get(&placement).map(|p| p.pupil)
    }
}

pub(super) fn references(event: &DomainEvent) -> References {
    use DomainEvent as E;
    match event {
        E::PlacementDecided(e) => {
            References::creates(e.placement_id, vec![e.pupil_id, e.school_id])
        }
        E::PlacementChanged(e) => References::change(vec![e.placement_id, e.school_id]),
        E::PlacementEnded(e) => References::change(vec![e.placement_id]),
        other => {
            not_routed_here(Aggregate::Placement, other);
            References::change(Vec::new())
        }
    }
}

impl Records {
    fn open_placement(&self, field: &'static str, id: Uuid) -> Result<&Placement, DomainError> {
        let Some(p) = self.placements.get(&id) else {
            return err(field, Rule::UnknownId, format!("unknown placement {id}"));
        };
        if p.ended {
            return err(
                field,
                Rule::AlreadyClosed,
                format!("placement {id} has ended"),
            );
        }
        Ok(p)
    }

    pub(super) fn check_placement(
        &self,
        event: &DomainEvent,
        today: Date,
        correcting: bool,
    ) -> Result<(), DomainError> {
        use DomainEvent as E;
        match event {
            E::PlacementDecided(e) => {
                if !correcting {
                    new_id(
                        &self.placements,
                        "data.placement_id",
                        e.placement_id,
                        "placement",
                    )?;
                }
                let r = self.pupil("data.pupil_id", e.pupil_id)?;
                self.school("data.school_id", e.school_id)?;
                not_future("data.on", e.on, today)?;
                if !r.has_category_on(Category::DisabledChild, e.on) {
                    return err(
                        "data.pupil_id",
                        Rule::MissingCategory,
                        format!("the child is not certified disabled_child on {}", e.on),
                    );
                }
                if !correcting && let Some(open) = self.open_placement_of.get(&e.pupil_id) {
                    return err(
                        "data.pupil_id",
                        Rule::AlreadyExists,
                        format!("the child already has open placement {open}: change it instead"),
                    );
                }
            }
            E::PlacementChanged(e) => {
                let p = self.open_placement("data.placement_id", e.placement_id)?;
                self.school("data.school_id", e.school_id)?;
                not_before(
                    "data.on",
                    e.on,
                    p.last_change,
                    "the placement's last change",
                )?;
                not_future("data.on", e.on, today)?;
            }
            E::PlacementEnded(e) => {
                let p = self.open_placement("data.placement_id", e.placement_id)?;
                not_before(
                    "data.on",
                    e.on,
                    p.last_change,
                    "the placement's last change",
                )?;
                not_future("data.on", e.on, today)?;
                non_empty("data.reason", &e.reason)?;
            }
            other => not_routed_here(Aggregate::Placement, other),
        }
        Ok(())
    }

    pub(super) fn apply_placement(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::PlacementDecided(e) => {
                self.placements.insert(
                    e.placement_id,
                    Placement {
                        pupil: e.pupil_id,
                        last_change: e.on,
                        ended: false,
                    },
                );
                self.open_placement_of.insert(e.pupil_id, e.placement_id);
            }
            E::PlacementChanged(e) => {
                if let Some(p) = self.placements.get_mut(&e.placement_id) {
                    p.last_change = e.on;
                }
            }
            E::PlacementEnded(e) => {
                if let Some(p) = self.placements.get_mut(&e.placement_id) {
                    p.last_change = e.on;
                    p.ended = true;
                    let pupil = p.pupil;
                    self.open_placement_of.remove(&pupil);
                }
            }
            other => not_routed_here(Aggregate::Placement, other),
        }
    }

    /// A voided decision takes the placement out, and with it the child's open placement.
    pub(super) fn forget_placement(&mut self, entity: Uuid) {
        if let Some(p) = self.placements.remove(&entity)
            && self.open_placement_of.get(&p.pupil) == Some(&entity)
        {
            self.open_placement_of.remove(&p.pupil);
        }
    }
}
