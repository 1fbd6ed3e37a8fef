//! The registry: org units, staff (cadres and teachers), recipients (persons and households),
//! their certified categories, household members and pupils' enrolments. Its state, checks,
//! fold, void and references; the lookups other aggregates check their ids with ([`Records::unit`],
//! [`Records::staff_member`], [`Records::pupil`], …).

use std::collections::HashMap;

use uuid::Uuid;

use super::corrections::References;
use super::rules::{err, known, new_id, non_empty, not_before, not_future};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::events::{Category, LeavingReason, RecipientKind, StaffRole, UnitKind};
use crate::domain::lifecycle::{CategorySpan, CategorySpans};
use crate::domain::{Date, DomainEvent};

#[derive(Debug, Clone)]
pub struct Unit {
    pub kind: UnitKind,
    pub parent: Option<Uuid>,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Staff {
    pub role: StaffRole,
    pub unit: Uuid,
    pub since: Date,
    pub left: Option<Date>,
}

#[derive(Debug, Clone)]
pub struct Enrollment {
    pub school: Uuid,
    pub from: Date,
    pub to: Option<Date>,
}

#[derive(Debug, Clone)]
pub struct Recipient {
    pub kind: RecipientKind,
    pub unit: Uuid,
    pub birth_date: Option<Date>,
    pub categories: Vec<CategorySpan>,
    pub enrollments: Vec<Enrollment>,
    pub members: HashMap<Uuid, Date>,
}

impl Recipient {
    pub fn has_category_on(&self, category: Category, d: Date) -> bool {
        self.categories.on(category, d).is_some()
    }

    pub(super) fn has_category_during(&self, category: Category, from: Date, to: Date) -> bool {
        self.categories.during(category, from, to)
    }

    pub fn current_enrollment(&self) -> Option<&Enrollment> {
        self.enrollments.last().filter(|e| e.to.is_none())
    }

    pub(super) fn enrolled_during(&self, from: Date, to: Date) -> bool {
        self.enrollments
            .iter()
            .any(|e| e.from <= to && e.to.is_none_or(|t| from <= t))
    }
}

pub(super) fn references(event: &DomainEvent) -> References {
    use DomainEvent as E;
    match event {
        E::UnitRegistered(e) => References::creates(e.unit_id, e.parent_id.into_iter().collect()),
        E::StaffRegistered(e) => References::creates(e.person_id, vec![e.unit_id]),
        E::StaffMoved(e) => References::change(vec![e.person_id, e.unit_id]),
        E::StaffLeft(e) => References::change(vec![e.person_id]),
        E::RecipientRegistered(e) => References::creates(e.recipient_id, vec![e.unit_id]),
        E::CategoryCertified(e) => References::change(vec![e.recipient_id]),
        E::CategoryEnded(e) => References::change(vec![e.recipient_id]),
        E::HouseholdMemberAdded(e) => References::change(vec![e.household_id]),
        E::HouseholdMemberRemoved(e) => References::change(vec![e.household_id]),
        E::PupilEnrolled(e) => References::change(vec![e.pupil_id, e.school_id]),
        E::PupilMoved(e) => References::change(vec![e.pupil_id, e.school_id]),
        E::PupilLeft(e) => References::change(vec![e.pupil_id]),
        other => {
            not_routed_here(Aggregate::Registry, other);
            References::change(Vec::new())
        }
    }
}

impl Records {
    pub(super) fn unit(&self, field: &'static str, id: Uuid) -> Result<&Unit, DomainError> {
        known(&self.units, field, id, "unit", ": register it first")
    }

    pub(super) fn school(&self, field: &'static str, id: Uuid) -> Result<&Unit, DomainError> {
        let unit = self.unit(field, id)?;
        if unit.kind != UnitKind::School {
            return err(
                field,
                Rule::WrongKind,
                format!("unit {id} ({}) is not a school", unit.name),
            );
        }
        Ok(unit)
    }

    /// A member of staff of `role` who has joined by `on` and not left.
    pub(super) fn staff_member(
        &self,
        field: &'static str,
        id: Uuid,
        role: StaffRole,
        on: Date,
    ) -> Result<&Staff, DomainError> {
        let Some(s) = self.staff.get(&id) else {
            return err(
                field,
                Rule::UnknownId,
                format!("unknown {role:?} {id}: register them first").to_lowercase(),
            );
        };
        if s.role != role {
            return err(
                field,
                Rule::WrongKind,
                format!("{id} is a {:?}, not a {role:?}", s.role).to_lowercase(),
            );
        }
        if let Some(left) = s.left
            && left <= on
        {
            return err(
                field,
                Rule::AlreadyClosed,
                format!("{id} left the programme on {left}"),
            );
        }
        not_before(field, on, s.since, "the day they joined")?;
        Ok(s)
    }

    fn known_staff(&self, field: &'static str, id: Uuid, on: Date) -> Result<&Staff, DomainError> {
        let Some(s) = self.staff.get(&id) else {
            return err(
                field,
                Rule::UnknownId,
                format!("unknown cadre or teacher {id}"),
            );
        };
        if s.left.is_some() {
            return err(
                field,
                Rule::AlreadyClosed,
                "the person has left the programme",
            );
        }
        not_before("data.on", on, s.since, "the day they joined")?;
        Ok(s)
    }

    pub(super) fn recipient(
        &self,
        field: &'static str,
        id: Uuid,
    ) -> Result<&Recipient, DomainError> {
        known(
            &self.recipients,
            field,
            id,
            "recipient",
            ": register them first",
        )
    }

    pub(super) fn pupil(&self, field: &'static str, id: Uuid) -> Result<&Recipient, DomainError> {
        let r = self.recipient(field, id)?;
        if r.kind != RecipientKind::Person {
            return err(
                field,
                Rule::WrongKind,
                format!("{id} is a household, not a pupil"),
            );
        }
        Ok(r)
    }

    pub(super) fn check_registry(
        &self,
        event: &DomainEvent,
        today: Date,
    ) -> Result<(), DomainError> {
        use DomainEvent as E;
        match event {
            E::UnitRegistered(e) => {
                new_id(&self.units, "data.unit_id", e.unit_id, "unit")?;
                non_empty("data.name", &e.name)?;
                if let Some(p) = e.parent_id {
                    self.unit("data.parent_id", p)?;
                } else if e.kind != UnitKind::CityBureau {
                    return err(
                        "data.parent_id",
                        Rule::Invalid,
                        "only a city bureau has no parent unit",
                    );
                }
            }
            E::StaffRegistered(e) => {
                new_id(&self.staff, "data.person_id", e.person_id, "person")?;
                non_empty("data.name", &e.name)?;
                self.unit("data.unit_id", e.unit_id)?;
                not_future("data.since", e.since, today)?;
            }
            E::StaffMoved(e) => {
                let s = self.known_staff("data.person_id", e.person_id, e.on)?;
                self.unit("data.unit_id", e.unit_id)?;
                not_future("data.on", e.on, today)?;
                if s.unit == e.unit_id {
                    return err(
                        "data.unit_id",
                        Rule::Invalid,
                        "the person is already in that unit",
                    );
                }
            }
            E::StaffLeft(e) => {
                self.known_staff("data.person_id", e.person_id, e.on)?;
                not_future("data.on", e.on, today)?;
                non_empty("data.reason", &e.reason)?;
            }
            E::RecipientRegistered(e) => {
                new_id(
                    &self.recipients,
                    "data.recipient_id",
                    e.recipient_id,
                    "recipient",
                )?;
                non_empty("data.name", &e.name)?;
                self.unit("data.unit_id", e.unit_id)?;
                if let Some(b) = e.birth_date {
                    not_future("data.birth_date", b, today)?;
                }
            }
            E::CategoryCertified(e) => {
                let r = self.recipient("data.recipient_id", e.recipient_id)?;
                let for_household = r.kind == RecipientKind::Household;
                if e.category.is_for_household() != for_household {
                    return err(
                        "data.category",
                        Rule::WrongKind,
                        format!(
                            "{} is certified for a {}",
                            e.category.as_str(),
                            if e.category.is_for_household() {
                                "household"
                            } else {
                                "person"
                            }
                        ),
                    );
                }
                non_empty("data.certified_by", &e.certified_by)?;
                not_future("data.from", e.from, today)?;
                if let Some(to) = e.to {
                    not_before("data.to", to, e.from, "`from`")?;
                }
                if r.categories.open(e.category).is_some() {
                    return err(
                        "data.category",
                        Rule::AlreadyExists,
                        format!(
                            "{} is already certified and not ended: end it first",
                            e.category.as_str()
                        ),
                    );
                }
            }
            E::CategoryEnded(e) => {
                let r = self.recipient("data.recipient_id", e.recipient_id)?;
                let Some(open) = r.categories.open(e.category) else {
                    return err(
                        "data.category",
                        Rule::AlreadyClosed,
                        format!("{} is not open for this recipient", e.category.as_str()),
                    );
                };
                not_before("data.on", e.on, open.from, "the certification")?;
                not_future("data.on", e.on, today)?;
                non_empty("data.reason", &e.reason)?;
            }
            E::HouseholdMemberAdded(e) => {
                let r = self.recipient("data.household_id", e.household_id)?;
                if r.kind != RecipientKind::Household {
                    return err(
                        "data.household_id",
                        Rule::WrongKind,
                        "members belong to a household",
                    );
                }
                if r.members.contains_key(&e.member_id) {
                    return err("data.member_id", Rule::AlreadyExists, "already a member");
                }
                non_empty("data.name", &e.name)?;
                not_future("data.from", e.from, today)?;
            }
            E::HouseholdMemberRemoved(e) => {
                let r = self.recipient("data.household_id", e.household_id)?;
                let Some(from) = r.members.get(&e.member_id) else {
                    return err(
                        "data.member_id",
                        Rule::UnknownId,
                        "not a current member of the household",
                    );
                };
                not_before("data.on", e.on, *from, "the day they joined")?;
                not_future("data.on", e.on, today)?;
            }
            E::PupilEnrolled(e) => {
                let r = self.pupil("data.pupil_id", e.pupil_id)?;
                self.school("data.school_id", e.school_id)?;
                not_future("data.on", e.on, today)?;
                if let Some(b) = r.birth_date {
                    not_before("data.on", e.on, b, "the pupil's birth")?;
                }
                if r.current_enrollment().is_some() {
                    return err(
                        "data.pupil_id",
                        Rule::AlreadyExists,
                        "the pupil is already enrolled: record a move instead",
                    );
                }
            }
            E::PupilMoved(e) => {
                let r = self.pupil("data.pupil_id", e.pupil_id)?;
                self.school("data.school_id", e.school_id)?;
                let Some(en) = r.current_enrollment() else {
                    return err(
                        "data.pupil_id",
                        Rule::NotEnrolled,
                        "the pupil is not enrolled anywhere",
                    );
                };
                not_before("data.on", e.on, en.from, "the current enrollment")?;
                not_future("data.on", e.on, today)?;
            }
            E::PupilLeft(e) => {
                let r = self.pupil("data.pupil_id", e.pupil_id)?;
                let Some(en) = r.current_enrollment() else {
                    return err(
                        "data.pupil_id",
                        Rule::NotEnrolled,
                        "the pupil is not enrolled anywhere",
                    );
                };
                not_before("data.on", e.on, en.from, "the current enrollment")?;
                not_future("data.on", e.on, today)?;
                match (e.reason, e.dropout_cause) {
                    (LeavingReason::DroppedOut, None) => {
                        return err(
                            "data.dropout_cause",
                            Rule::Invalid,
                            "a dropout needs its cause",
                        );
                    }
                    (LeavingReason::DroppedOut, Some(_)) | (_, None) => {}
                    (_, Some(_)) => {
                        return err(
                            "data.dropout_cause",
                            Rule::Invalid,
                            "only a dropout has a dropout cause",
                        );
                    }
                }
            }
            other => not_routed_here(Aggregate::Registry, other),
        }
        Ok(())
    }

    pub(super) fn apply_registry(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::UnitRegistered(e) => {
                self.units.insert(
                    e.unit_id,
                    Unit {
                        kind: e.kind,
                        parent: e.parent_id,
                        name: e.name.clone(),
                    },
                );
            }
            E::StaffRegistered(e) => {
                self.staff.insert(
                    e.person_id,
                    Staff {
                        role: e.role,
                        unit: e.unit_id,
                        since: e.since,
                        left: None,
                    },
                );
            }
            E::StaffMoved(e) => {
                if let Some(s) = self.staff.get_mut(&e.person_id) {
                    s.unit = e.unit_id;
                }
            }
            E::StaffLeft(e) => {
                if let Some(s) = self.staff.get_mut(&e.person_id) {
                    s.left = Some(e.on);
                }
            }
            E::RecipientRegistered(e) => {
                self.recipients.insert(
                    e.recipient_id,
                    Recipient {
                        kind: e.kind,
                        unit: e.unit_id,
                        birth_date: e.birth_date,
                        categories: Vec::new(),
                        enrollments: Vec::new(),
                        members: HashMap::new(),
                    },
                );
            }
            E::CategoryCertified(e) => {
                if let Some(r) = self.recipients.get_mut(&e.recipient_id) {
                    r.categories.push(CategorySpan {
                        category: e.category,
                        from: e.from,
                        to: e.to,
                        source: (),
                    });
                }
            }
            E::CategoryEnded(e) => {
                if let Some(r) = self.recipients.get_mut(&e.recipient_id) {
                    r.categories.end(e.category, e.on);
                }
            }
            E::HouseholdMemberAdded(e) => {
                if let Some(r) = self.recipients.get_mut(&e.household_id) {
                    r.members.insert(e.member_id, e.from);
                }
            }
            E::HouseholdMemberRemoved(e) => {
                if let Some(r) = self.recipients.get_mut(&e.household_id) {
                    r.members.remove(&e.member_id);
                }
            }
            E::PupilEnrolled(e) => {
                if let Some(r) = self.recipients.get_mut(&e.pupil_id) {
                    r.enrollments.push(Enrollment {
                        school: e.school_id,
                        from: e.on,
                        to: None,
                    });
                }
            }
            E::PupilMoved(e) => {
                if let Some(r) = self.recipients.get_mut(&e.pupil_id) {
                    if let Some(last) = r.enrollments.last_mut() {
                        last.to = Some(e.on);
                    }
                    r.enrollments.push(Enrollment {
                        school: e.school_id,
                        from: e.on,
                        to: None,
                    });
                }
            }
            E::PupilLeft(e) => {
                if let Some(r) = self.recipients.get_mut(&e.pupil_id)
                    && let Some(last) = r.enrollments.last_mut()
                {
                    last.to = Some(e.on);
                }
            }
            other => not_routed_here(Aggregate::Registry, other),
        }
    }

    /// A voided registration takes its unit, person or recipient out.
    pub(super) fn forget_registered(&mut self, entity: Uuid) {
        self.units.remove(&entity);
        self.staff.remove(&entity);
        self.recipients.remove(&entity);
    }
}
