//! Cases: difficulties and escalations, both raised on an active pairing and then moved along
//! one lifecycle ([`Case`], [`CaseState`]) until closed. A difficulty is resolved or dropped (it
//! closes); an escalation is acknowledged, answered and closed. Each case event is read once
//! ([`CaseEvent::of`]) and every concern (check, fold, references, responsible person, void)
//! works on that reading, so both kinds share one set of rules.

use uuid::Uuid;

use super::corrections::References;
use super::rules::{err, new_id, non_empty, not_before};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::undo::UndoMap;
use crate::domain::{Date, DomainEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseState {
    Open,
    Acknowledged,
    Answered,
    Closed,
}

/// Which kind of case: the two are kept apart (their ids, fields and words differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CaseKind {
    Difficulty,
    Escalation,
}

impl CaseKind {
    fn noun(self) -> &'static str {
        match self {
            CaseKind::Difficulty => "difficulty",
            CaseKind::Escalation => "escalation",
        }
    }

    fn id_field(self) -> &'static str {
        match self {
            CaseKind::Difficulty => "data.difficulty_id",
            CaseKind::Escalation => "data.escalation_id",
        }
    }
}

/// A move along a case's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Acknowledge,
    Answer,
    Close,
}

impl Step {
    fn to(self) -> CaseState {
        match self {
            Step::Acknowledge => CaseState::Acknowledged,
            Step::Answer => CaseState::Answered,
            Step::Close => CaseState::Closed,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    pairing: Uuid,
    raised: Date,
    state: CaseState,
}

impl Case {
    fn raised(pairing: Uuid, on: Date) -> Self {
        Self {
            pairing,
            raised: on,
            state: CaseState::Open,
        }
    }

    /// Whether `step` may follow the state of an open case; the refusal says what happened
    /// already. A case is acknowledged only while just raised, answered once; closing an open
    /// case is always allowed.
    fn allows(&self, step: Step) -> Result<(), &'static str> {
        debug_assert!(self.state != CaseState::Closed, "checked open first");
        match step {
            Step::Acknowledge if self.state != CaseState::Open => Err("acknowledged"),
            Step::Answer if self.state == CaseState::Answered => Err("answered"),
            _ => Ok(()),
        }
    }

    fn take(&mut self, step: Step) {
        self.state = step.to();
    }
}

/// One case event, read once: a case raised, or a step on one.
enum CaseEvent<'a> {
    Raised {
        kind: CaseKind,
        id: Uuid,
        pairing: Uuid,
        /// The texts that must not be empty, (field, text), in the order checked.
        texts: Vec<(&'static str, &'a str)>,
    },
    Step {
        kind: CaseKind,
        id: Uuid,
        step: Step,
        text: (&'static str, &'a str),
    },
}

impl<'a> CaseEvent<'a> {
    fn of(event: &'a DomainEvent) -> Option<Self> {
        use CaseKind::{Difficulty, Escalation};
        use DomainEvent as E;
        let step = |kind, id, step, text| CaseEvent::Step {
            kind,
            id,
            step,
            text,
        };
        Some(match event {
            E::DifficultyRaised(e) => CaseEvent::Raised {
                kind: Difficulty,
                id: e.difficulty_id,
                pairing: e.pairing_id,
                texts: vec![("data.description", &e.description)],
            },
            E::DifficultyResolved(e) => step(
                Difficulty,
                e.difficulty_id,
                Step::Close,
                ("data.how", &e.how),
            ),
            E::DifficultyDropped(e) => step(
                Difficulty,
                e.difficulty_id,
                Step::Close,
                ("data.reason", &e.reason),
            ),
            E::EscalationRaised(e) => CaseEvent::Raised {
                kind: Escalation,
                id: e.escalation_id,
                pairing: e.pairing_id,
                texts: vec![("data.to_level", &e.to_level), ("data.issue", &e.issue)],
            },
            E::EscalationAcknowledged(e) => step(
                Escalation,
                e.escalation_id,
                Step::Acknowledge,
                ("data.by", &e.by),
            ),
            E::EscalationAnswered(e) => step(
                Escalation,
                e.escalation_id,
                Step::Answer,
                ("data.answer", &e.answer),
            ),
            E::EscalationClosed(e) => step(
                Escalation,
                e.escalation_id,
                Step::Close,
                ("data.outcome", &e.outcome),
            ),
            other => {
                not_routed_here(Aggregate::Case, other);
                return None;
            }
        })
    }
}

pub(super) fn references(event: &DomainEvent) -> References {
    match CaseEvent::of(event) {
        Some(CaseEvent::Raised { id, pairing, .. }) => {
            References::creates(id, vec![pairing]).activity_on(pairing)
        }
        Some(CaseEvent::Step { id, .. }) => References::change(vec![id]),
        None => References::change(Vec::new()),
    }
}

impl Records {
    fn cases(&self, kind: CaseKind) -> &UndoMap<Uuid, Case> {
        match kind {
            CaseKind::Difficulty => &self.difficulties,
            CaseKind::Escalation => &self.escalations,
        }
    }

    fn cases_mut(&mut self, kind: CaseKind) -> &mut UndoMap<Uuid, Case> {
        match kind {
            CaseKind::Difficulty => &mut self.difficulties,
            CaseKind::Escalation => &mut self.escalations,
        }
    }

    /// The one check of a case an event moves on: known, not closed, not moved before the day
    /// it was raised (`d` is the event's day).
    fn open_case(&self, kind: CaseKind, id: Uuid, d: Date) -> Result<&Case, DomainError> {
        let (field, noun) = (kind.id_field(), kind.noun());
        let Some(c) = self.cases(kind).get(&id) else {
            return err(field, Rule::UnknownId, format!("unknown {noun} {id}"));
        };
        if c.state == CaseState::Closed {
            return err(
                field,
                Rule::AlreadyClosed,
                format!("{noun} {id} is already closed"),
            );
        }
        not_before(
            "time",
            d,
            c.raised,
            &format!("the day the {noun} was raised"),
        )?;
        Ok(c)
    }

    /// The pairing's holder on the day: of the pairing raised on, or of the case's pairing.
    pub(super) fn case_responsible(&self, event: &DomainEvent, occurred: Date) -> Option<Uuid> {
        let pairing = match CaseEvent::of(event)? {
            CaseEvent::Raised { pairing, .. } => pairing,
            CaseEvent::Step { kind, id, .. } => self.cases(kind).get(&id)?.pairing,
        };
        self.pairing_holder(pairing, occurred)
    }

    pub(super) fn check_case(
        &self,
        event: &DomainEvent,
        d: Date,
        correcting: bool,
    ) -> Result<(), DomainError> {
        match CaseEvent::of(event) {
            Some(CaseEvent::Raised {
                kind,
                id,
                pairing,
                texts,
            }) => {
                if !correcting {
                    new_id(self.cases(kind), kind.id_field(), id, kind.noun())?;
                }
                self.active_pairing("data.pairing_id", pairing, d)?;
                for (field, text) in texts {
                    non_empty(field, text)?;
                }
            }
            Some(CaseEvent::Step {
                kind,
                id,
                step,
                text: (field, text),
            }) => {
                let c = self.open_case(kind, id, d)?;
                if let Err(already) = c.allows(step) {
                    return err(
                        kind.id_field(),
                        Rule::AlreadyClosed,
                        format!("the {} was already {already}", kind.noun()),
                    );
                }
                non_empty(field, text)?;
            }
            None => {}
        }
        Ok(())
    }

    pub(super) fn apply_case(&mut self, event: &DomainEvent, d: Date) {
        match CaseEvent::of(event) {
            Some(CaseEvent::Raised {
                kind, id, pairing, ..
            }) => {
                self.cases_mut(kind).insert(id, Case::raised(pairing, d));
            }
            Some(CaseEvent::Step { kind, id, step, .. }) => {
                if let Some(c) = self.cases_mut(kind).get_mut(&id) {
                    c.take(step);
                }
            }
            None => {}
        }
    }

    /// A voided raise takes the case out.
    pub(super) fn forget_case(&mut self, entity: Uuid) {
        self.difficulties.remove(&entity);
        self.escalations.remove(&entity);
    }
}
