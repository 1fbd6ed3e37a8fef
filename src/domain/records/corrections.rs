//! Voids and corrections: what the records remember of every event so a later void or
//! correction can be checked ([`EventMeta`]: its [`Shape`] and what it refers to), the checks of
//! a void and of a correction, and the fold of a void (its creation taken out, via
//! `Records::forget_created`, which asks every aggregate).
//!
//! Every aggregate says what each of its events is ([`References`]); the rules of the module
//! overview of `records` follow from the shape alone.

use uuid::Uuid;

use super::rules::{err, non_empty};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::events::{RecordCorrectedV1, RecordVoidedV1};
use crate::domain::{Date, DomainEvent};

/// What kind of record an event is, for voids and corrections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// Counted in totals, changes no state: may be voided and corrected.
    Countable,
    /// Creates an entity: may be voided while nothing refers to it.
    Creates(Uuid),
    /// A state change: neither voided nor corrected.
    StateChange,
    /// A void or a correction.
    Correction,
}

/// What an event is and names, as its aggregate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct References {
    pub shape: Shape,
    /// The entities this event refers to (not the one it creates).
    pub refers_to: Vec<Uuid>,
    /// The pairing it is an activity on: an ending or suspension may not be back-dated before
    /// the latest activity.
    pub activity_on: Option<Uuid>,
}

impl References {
    pub fn new(shape: Shape, refers_to: Vec<Uuid>) -> Self {
        Self {
            shape,
            refers_to,
            activity_on: None,
        }
    }

    pub fn creates(entity: Uuid, refers_to: Vec<Uuid>) -> Self {
        Self::new(Shape::Creates(entity), refers_to)
    }

    pub fn change(refers_to: Vec<Uuid>) -> Self {
        Self::new(Shape::StateChange, refers_to)
    }

    pub fn countable(refers_to: Vec<Uuid>) -> Self {
        Self::new(Shape::Countable, refers_to)
    }

    /// The event is also an activity on `pairing`.
    pub fn activity_on(self, pairing: Uuid) -> Self {
        Self {
            activity_on: Some(pairing),
            ..self
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct EventMeta {
    pub event_type: &'static str,
    pub occurred: Date,
    pub shape: Shape,
    /// The entities this event refers to (not the one it creates).
    pub refers_to: Vec<Uuid>,
    pub voided: bool,
}

pub(super) fn references(event: &DomainEvent) -> References {
    use DomainEvent as E;
    match event {
        E::RecordVoided(_) | E::RecordCorrected(_) => {
            References::new(Shape::Correction, Vec::new())
        }
        other => {
            not_routed_here(Aggregate::Correction, other);
            References::new(Shape::Correction, Vec::new())
        }
    }
}

impl Records {
    pub(super) fn check_correction_event(
        &self,
        event: &DomainEvent,
        today: Date,
    ) -> Result<(), DomainError> {
        use DomainEvent as E;
        match event {
            E::RecordVoided(e) => self.check_void(e),
            E::RecordCorrected(e) => self.check_correction(e, today),
            other => {
                not_routed_here(Aggregate::Correction, other);
                Ok(())
            }
        }
    }

    pub(super) fn apply_correction(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::RecordVoided(e) => self.apply_void(e.target_event_id),
            E::RecordCorrected(_) => {}
            other => not_routed_here(Aggregate::Correction, other),
        }
    }

    fn target(&self, id: Uuid) -> Result<&EventMeta, DomainError> {
        let Some(m) = self.events.get(&id) else {
            return err(
                "data.target_event_id",
                Rule::UnknownId,
                format!("no event {id} in the log"),
            );
        };
        if m.voided {
            return err(
                "data.target_event_id",
                Rule::AlreadyClosed,
                format!("event {id} is already voided"),
            );
        }
        if m.shape == Shape::Correction {
            return err(
                "data.target_event_id",
                Rule::NotAllowed,
                "a void or correction cannot be voided or corrected: correct the original event instead",
            );
        }
        Ok(m)
    }

    fn check_void(&self, e: &RecordVoidedV1) -> Result<(), DomainError> {
        non_empty("data.reason", &e.reason)?;
        let m = self.target(e.target_event_id)?;
        match m.shape {
            Shape::Countable => Ok(()),
            Shape::Creates(entity) => match self.dependents.get(&entity).copied().unwrap_or(0) {
                0 => Ok(()),
                n => err(
                    "data.target_event_id",
                    Rule::NotAllowed,
                    format!(
                        "{} created {entity}, which {n} live records refer to: void those first",
                        m.event_type
                    ),
                ),
            },
            Shape::StateChange => err(
                "data.target_event_id",
                Rule::NotAllowed,
                format!(
                    "a {} is a state change: record the change that undoes it instead of voiding",
                    m.event_type
                ),
            ),
            Shape::Correction => err(
                "data.target_event_id",
                Rule::NotAllowed,
                "a void or correction cannot be voided",
            ),
        }
    }

    fn check_correction(&self, e: &RecordCorrectedV1, today: Date) -> Result<(), DomainError> {
        non_empty("data.reason", &e.reason)?;
        let m = self.target(e.target_event_id)?;
        if m.shape != Shape::Countable {
            return err(
                "data.target_event_id",
                Rule::NotAllowed,
                format!(
                    "a {} cannot be corrected: only activities, payments and claims can",
                    m.event_type
                ),
            );
        }
        if e.event_type != m.event_type {
            return err(
                "data.corrected_type",
                Rule::WrongKind,
                format!(
                    "the target is a {}, the correction a {}",
                    m.event_type, e.event_type
                ),
            );
        }
        let corrected =
            DomainEvent::decode(&e.event_type, e.schema_version, &e.payload).map_err(|x| {
                DomainError {
                    field: "data.corrected",
                    rule: Rule::Invalid,
                    detail: x.to_string(),
                }
            })?;
        if super::references(&corrected).refers_to != m.refers_to {
            return err(
                "data.corrected",
                Rule::NotAllowed,
                "a correction keeps the event's subject (pairing, pupil or claim): void it and record a new event instead",
            );
        }
        self.check_data(&corrected, m.occurred, today, true)
    }

    fn apply_void(&mut self, target: Uuid) {
        let Some(meta) = self.events.get_mut(&target) else {
            return;
        };
        meta.voided = true;
        let refers = meta.refers_to.clone();
        let shape = meta.shape;
        for r in refers {
            if let Some(n) = self.dependents.get_mut(&r) {
                *n = n.saturating_sub(1);
            }
        }
        // A voided creation takes its entity out of the records.
        if let Shape::Creates(entity) = shape {
            self.forget_created(entity);
        }
    }
}
