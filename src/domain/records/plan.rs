//! Care plans: a teacher's plan for an enrolled pupil under a scheme (opened, reviewed, its
//! teacher changed, closed), at most one open per pupil and scheme.

use uuid::Uuid;

use super::corrections::References;
use super::rules::{err, new_id, non_empty, not_before};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::events::{PlanScheme, StaffRole};
use crate::domain::{Date, DomainEvent};

#[derive(Debug, Clone)]
pub(super) struct Plan {
    pupil: Uuid,
    scheme: PlanScheme,
    teacher: Uuid,
    opened: Date,
    closed: bool,
}

pub(super) fn references(event: &DomainEvent) -> References {
    use DomainEvent as E;
    match event {
        E::CarePlanOpened(e) => References::creates(e.plan_id, vec![e.pupil_id, e.teacher_id]),
        E::CarePlanReviewed(e) => References::change(vec![e.plan_id]),
        E::CarePlanTeacherChanged(e) => References::change(vec![e.plan_id, e.teacher_id]),
        E::CarePlanClosed(e) => References::change(vec![e.plan_id]),
        other => {
            not_routed_here(Aggregate::Plan, other);
            References::change(Vec::new())
        }
    }
}

impl Records {
    fn open_plan(&self, field: &'static str, id: Uuid) -> Result<&Plan, DomainError> {
        let Some(p) = self.plans.get(&id) else {
            return err(field, Rule::UnknownId, format!("unknown care plan {id}"));
        };
        if p.closed {
            return err(
                field,
                Rule::AlreadyClosed,
                format!("care plan {id} is closed"),
            );
        }
        Ok(p)
    }

    /// The pupil a care plan event is about: the one it opens a plan for, or the plan's.
    pub(super) fn plan_pupil(&self, event: &DomainEvent) -> Option<Uuid> {
        use DomainEvent as E;
        let plan = match event {
            E::CarePlanOpened(e) => return Some(e.pupil_id),
            E::CarePlanReviewed(e) => e.plan_id,
            E::CarePlanTeacherChanged(e) => e.plan_id,
            E::CarePlanClosed(e) => e.plan_id,
            _ => return None,
        };
        self.plans.get(&plan).map(|p| p.pupil)
    }

    /// The teacher a plan is opened for, or the plan's teacher for a review.
    pub(super) fn plan_responsible(&self, event: &DomainEvent) -> Option<Uuid> {
        use DomainEvent as E;
        match event {
            E::CarePlanReviewed(e) => self.plans.get(&e.plan_id).map(|p| p.teacher),
            E::CarePlanOpened(e) => Some(e.teacher_id),
            _ => None,
        }
    }

    pub(super) fn check_plan(
        &self,
        event: &DomainEvent,
        d: Date,
        correcting: bool,
    ) -> Result<(), DomainError> {
        use DomainEvent as E;
        match event {
            E::CarePlanOpened(e) => {
                if !correcting {
                    new_id(&self.plans, "data.plan_id", e.plan_id, "care plan")?;
                }
                let r = self.pupil("data.pupil_id", e.pupil_id)?;
                if r.current_enrollment().is_none() {
                    return err(
                        "data.pupil_id",
                        Rule::NotEnrolled,
                        "a care plan is for an enrolled pupil",
                    );
                }
                self.staff_member("data.teacher_id", e.teacher_id, StaffRole::Teacher, d)?;
                non_empty("data.goals", &e.goals)?;
                non_empty("data.measures", &e.measures)?;
                not_before(
                    "data.next_review",
                    e.next_review,
                    d,
                    "the day the plan opens",
                )?;
                if !correcting
                    && self
                        .plans
                        .values()
                        .any(|p| p.pupil == e.pupil_id && p.scheme == e.scheme && !p.closed)
                {
                    return err(
                        "data.pupil_id",
                        Rule::AlreadyExists,
                        "the pupil already has an open plan of this scheme",
                    );
                }
            }
            E::CarePlanReviewed(e) => {
                let p = self.open_plan("data.plan_id", e.plan_id)?;
                not_before("time", d, p.opened, "the plan's opening")?;
                not_before("data.next_review", e.next_review, d, "the review")?;
                non_empty("data.progress", &e.progress)?;
            }
            E::CarePlanTeacherChanged(e) => {
                let p = self.open_plan("data.plan_id", e.plan_id)?;
                self.staff_member("data.teacher_id", e.teacher_id, StaffRole::Teacher, d)?;
                if p.teacher == e.teacher_id {
                    return err(
                        "data.teacher_id",
                        Rule::Invalid,
                        "the plan already has that teacher",
                    );
                }
            }
            E::CarePlanClosed(e) => {
                self.open_plan("data.plan_id", e.plan_id)?;
                non_empty("data.reason", &e.reason)?;
            }
            other => not_routed_here(Aggregate::Plan, other),
        }
        Ok(())
    }

    /// `d`: the day the plan opens.
    pub(super) fn apply_plan(&mut self, event: &DomainEvent, d: Date) {
        use DomainEvent as E;
        match event {
            E::CarePlanOpened(e) => {
                self.plans.insert(
                    e.plan_id,
                    Plan {
                        pupil: e.pupil_id,
                        scheme: e.scheme,
                        teacher: e.teacher_id,
                        opened: d,
                        closed: false,
                    },
                );
            }
            E::CarePlanTeacherChanged(e) => {
                if let Some(p) = self.plans.get_mut(&e.plan_id) {
                    p.teacher = e.teacher_id;
                }
            }
            E::CarePlanClosed(e) => {
                if let Some(p) = self.plans.get_mut(&e.plan_id) {
                    p.closed = true;
                }
            }
            E::CarePlanReviewed(_) => {}
            other => not_routed_here(Aggregate::Plan, other),
        }
    }

    /// A voided opening takes the plan out.
    pub(super) fn forget_plan(&mut self, entity: Uuid) {
        self.plans.remove(&entity);
    }
}
