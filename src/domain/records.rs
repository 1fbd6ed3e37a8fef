//! [`Records`]: what the registry, pairings and open cases are now, folded from events, and the
//! rules a new event must pass against them ([`Records::check`]).
//!
//! `check` is pure: the caller passes the event, when it happened and the clock's now. `apply`
//! folds an accepted event in. The application layer checks then applies each event of a batch in
//! order, under one lock, so a batch is checked against the records as they will be.
//!
//! Voids and corrections have defined behaviour:
//! - an activity, payment or claim can be voided (it leaves every total) or corrected (its data
//!   replaced in every total; the latest correction wins; a correction keeps the event's subject);
//! - a record that creates something (a pairing, a pupil's placement, …) can be voided only while
//!   nothing else refers to it: void the things that refer to it first;
//! - a state change (a transfer, an ending, a resolution, …) cannot be voided or corrected: record
//!   the change that undoes it;
//! - a void or a correction cannot itself be voided or corrected, and a voided event cannot be
//!   corrected or voided again.

use std::collections::HashMap;

use uuid::Uuid;

use super::events::*;
use super::undo::{UndoMap, UndoSet};
use super::{Date, DomainEvent};
use crate::time::{self, Instant};

/// How far in the future an event's time may be (clock skew between a phone and the server).
pub const CLOCK_SKEW_MINUTES: i64 = 5;

/// Which rule an event broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    UnknownId,
    AlreadyExists,
    NotActiveOnDate,
    InFuture,
    BeforeStart,
    NotPositive,
    GoodsValueMismatch,
    SecondActivePairing,
    AlreadyClosed,
    NotEnrolled,
    MissingCategory,
    WrongKind,
    Invalid,
    NotAllowed,
}

/// A rejected event: the field and the rule, worded for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {detail}")]
pub struct DomainError {
    pub field: &'static str,
    pub rule: Rule,
    pub detail: String,
}

fn err<T>(field: &'static str, rule: Rule, detail: impl Into<String>) -> Result<T, DomainError> {
    Err(DomainError {
        field,
        rule,
        detail: detail.into(),
    })
}

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
pub struct CategorySpan {
    pub category: Category,
    pub from: Date,
    pub to: Option<Date>,
}

impl CategorySpan {
    fn covers(&self, d: Date) -> bool {
        self.from <= d && self.to.is_none_or(|to| d <= to)
    }
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
        self.categories
            .iter()
            .any(|c| c.category == category && c.covers(d))
    }

    fn has_category_during(&self, category: Category, from: Date, to: Date) -> bool {
        self.categories
            .iter()
            .any(|c| c.category == category && c.from <= to && c.to.is_none_or(|t| from <= t))
    }

    pub fn current_enrollment(&self) -> Option<&Enrollment> {
        self.enrollments.last().filter(|e| e.to.is_none())
    }

    fn enrolled_during(&self, from: Date, to: Date) -> bool {
        self.enrollments
            .iter()
            .any(|e| e.from <= to && e.to.is_none_or(|t| from <= t))
    }
}

#[derive(Debug, Clone)]
pub struct Pairing {
    pub recipient: Uuid,
    /// (cadre, from date): the holder changes with each transfer.
    pub holders: Vec<(Uuid, Date)>,
    pub established: Date,
    pub ended: Option<Date>,
    /// (from, to) of each suspension; `to` None while suspended.
    pub suspensions: Vec<(Date, Option<Date>)>,
    pub last_change: Date,
    /// The day of the latest activity recorded on the pairing: an ending or suspension may not
    /// be back-dated before it (that would leave recorded activities on an inactive pairing).
    pub last_activity: Option<Date>,
}

impl Pairing {
    /// Active on a day: established by then, not ended before it, not suspended on it.
    pub fn active_on(&self, d: Date) -> bool {
        self.established <= d
            && self.ended.is_none_or(|e| d <= e)
            && !self
                .suspensions
                .iter()
                .any(|(from, to)| *from <= d && to.is_none_or(|t| d < t))
    }

    /// The cadre holding the pairing on a day.
    pub fn holder_on(&self, d: Date) -> Option<Uuid> {
        self.holders
            .iter()
            .rev()
            .find(|(_, from)| *from <= d)
            .map(|(c, _)| *c)
    }

    pub fn current_holder(&self) -> Uuid {
        self.holders.last().map(|(c, _)| *c).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseState {
    Open,
    Acknowledged,
    Answered,
    Closed,
}

#[derive(Debug, Clone)]
struct Case {
    pairing: Uuid,
    raised: Date,
    state: CaseState,
}

#[derive(Debug, Clone)]
struct Placement {
    pupil: Uuid,
    last_change: Date,
    ended: bool,
}

#[derive(Debug, Clone)]
struct Plan {
    pupil: Uuid,
    scheme: PlanScheme,
    teacher: Uuid,
    opened: Date,
    closed: bool,
}

/// What kind of record an event is, for voids and corrections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Counted in totals, changes no state: may be voided and corrected.
    Countable,
    /// Creates an entity: may be voided while nothing refers to it.
    Creates(Uuid),
    /// A state change: neither voided nor corrected.
    StateChange,
    /// A void or a correction.
    Correction,
}

#[derive(Debug, Clone)]
struct EventMeta {
    event_type: &'static str,
    occurred: Date,
    shape: Shape,
    /// The entities this event refers to (not the one it creates).
    refers_to: Vec<Uuid>,
    voided: bool,
}

/// The records as they are now.
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub units: UndoMap<Uuid, Unit>,
    pub staff: UndoMap<Uuid, Staff>,
    pub recipients: UndoMap<Uuid, Recipient>,
    pub pairings: UndoMap<Uuid, Pairing>,
    active_pairing_of: UndoMap<Uuid, Uuid>,
    difficulties: UndoMap<Uuid, Case>,
    escalations: UndoMap<Uuid, Case>,
    placements: UndoMap<Uuid, Placement>,
    open_placement_of: UndoMap<Uuid, Uuid>,
    plans: UndoMap<Uuid, Plan>,
    claims: UndoSet<Uuid>,
    /// token id → (role, person, revoked)
    pub tokens: UndoMap<Uuid, TokenGrantedV1>,
    pub revoked_tokens: UndoSet<Uuid>,
    events: UndoMap<Uuid, EventMeta>,
    /// entity → how many live events refer to it.
    dependents: UndoMap<Uuid, u32>,
}

/// Calls `$method` on every collection of the records. The pattern names every field (no `..`),
/// so a collection added to [`Records`] does not compile until it is added here too.
macro_rules! on_every_collection {
    ($records:expr, $method:ident) => {{
        let Records {
            units,
            staff,
            recipients,
            pairings,
            active_pairing_of,
            difficulties,
            escalations,
            placements,
            open_placement_of,
            plans,
            claims,
            tokens,
            revoked_tokens,
            events,
            dependents,
        } = $records;
        units.$method();
        staff.$method();
        recipients.$method();
        pairings.$method();
        active_pairing_of.$method();
        difficulties.$method();
        escalations.$method();
        placements.$method();
        open_placement_of.$method();
        plans.$method();
        claims.$method();
        tokens.$method();
        revoked_tokens.$method();
        events.$method();
        dependents.$method();
    }};
}

/// An entity the event names, or an `UnknownId` refusal naming the field.
fn known<'a, T>(
    map: &'a HashMap<Uuid, T>,
    field: &'static str,
    id: Uuid,
    kind: &str,
    hint: &str,
) -> Result<&'a T, DomainError> {
    map.get(&id).map_or_else(
        || err(field, Rule::UnknownId, format!("unknown {kind} {id}{hint}")),
        Ok,
    )
}

fn not_future(field: &'static str, d: Date, today: Date) -> Result<(), DomainError> {
    if d > today {
        return err(
            field,
            Rule::InFuture,
            format!("{d} is in the future (today is {today})"),
        );
    }
    Ok(())
}

fn not_before(field: &'static str, d: Date, start: Date, what: &str) -> Result<(), DomainError> {
    if d < start {
        return err(
            field,
            Rule::BeforeStart,
            format!("{d} is before {what} ({start})"),
        );
    }
    Ok(())
}

fn non_empty(field: &'static str, text: &str) -> Result<(), DomainError> {
    if text.trim().is_empty() {
        return err(field, Rule::Invalid, "must not be empty");
    }
    if text.len() > 4096 {
        return err(field, Rule::Invalid, "must be at most 4096 bytes");
    }
    Ok(())
}

/// The span of a school term `YYYY-spring` (Feb–Jul) or `YYYY-autumn` (Sep–Jan).
pub fn term_span(term: &str) -> Option<(Date, Date)> {
    let (year, season) = term.split_once('-')?;
    let year: i32 = year.parse().ok().filter(|y| (1900..=2200).contains(y))?;
    match season {
        "spring" => Some((Date::ymd(year, 2, 1)?, Date::ymd(year, 7, 31)?)),
        "autumn" => Some((Date::ymd(year, 9, 1)?, Date::ymd(year + 1, 1, 31)?)),
        _ => None,
    }
}

impl Records {
    /// Starts remembering changes, so that the events folded in from now on can be taken back
    /// out with [`Records::roll_back`] (a batch refused half way).
    pub fn begin(&mut self) {
        on_every_collection!(self, begin);
    }

    /// Keeps the changes since [`Records::begin`] and stops remembering.
    pub fn commit(&mut self) {
        on_every_collection!(self, commit);
    }

    /// Undoes every change since [`Records::begin`] and stops remembering.
    pub fn roll_back(&mut self) {
        on_every_collection!(self, roll_back);
    }

    pub fn new() -> Self {
        Self::default()
    }

    fn unit(&self, field: &'static str, id: Uuid) -> Result<&Unit, DomainError> {
        known(&self.units, field, id, "unit", ": register it first")
    }

    fn school(&self, field: &'static str, id: Uuid) -> Result<&Unit, DomainError> {
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

    fn staff_member(
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

    fn recipient(&self, field: &'static str, id: Uuid) -> Result<&Recipient, DomainError> {
        known(
            &self.recipients,
            field,
            id,
            "recipient",
            ": register them first",
        )
    }

    fn pupil(&self, field: &'static str, id: Uuid) -> Result<&Recipient, DomainError> {
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

    fn pairing(&self, field: &'static str, id: Uuid) -> Result<&Pairing, DomainError> {
        known(&self.pairings, field, id, "pairing", "")
    }

    fn active_pairing(
        &self,
        field: &'static str,
        id: Uuid,
        d: Date,
    ) -> Result<&Pairing, DomainError> {
        let p = self.pairing(field, id)?;
        if !p.active_on(d) {
            return err(
                field,
                Rule::NotActiveOnDate,
                format!(
                    "pairing {id} was not active on {d} (established {}, ended {:?}, suspensions {:?})",
                    p.established,
                    p.ended.map(|d| d.to_string()),
                    p.suspensions.len()
                ),
            );
        }
        Ok(p)
    }

    fn new_id<T>(
        &self,
        map: &HashMap<Uuid, T>,
        field: &'static str,
        id: Uuid,
        kind: &str,
    ) -> Result<(), DomainError> {
        if id.is_nil() {
            return err(field, Rule::Invalid, "the nil UUID is not an id");
        }
        if map.contains_key(&id) {
            return err(
                field,
                Rule::AlreadyExists,
                format!("{kind} {id} is already registered"),
            );
        }
        Ok(())
    }

    fn case(
        &self,
        cases: &HashMap<Uuid, Case>,
        field: &'static str,
        id: Uuid,
        kind: &str,
    ) -> Result<Case, DomainError> {
        cases.get(&id).cloned().map_or_else(
            || err(field, Rule::UnknownId, format!("unknown {kind} {id}")),
            Ok,
        )
    }

    /// Whether an event id is in the records (and not voided).
    pub fn knows_event(&self, id: Uuid) -> bool {
        self.events.get(&id).is_some_and(|m| !m.voided)
    }

    /// The holder of a pairing on a day, if the pairing exists.
    pub fn pairing_holder(&self, pairing: Uuid, d: Date) -> Option<Uuid> {
        self.pairings.get(&pairing).and_then(|p| p.holder_on(d))
    }

    /// The cadre or teacher an event is recorded for, for access checks: the pairing's holder
    /// on the day, or a care plan's teacher. None when the event is not tied to one person.
    pub fn responsible_person(&self, event: &DomainEvent, occurred: Date) -> Option<Uuid> {
        use DomainEvent as E;
        let pairing = match event {
            E::ContactRecorded(e) => e.pairing_id,
            E::VisitRecorded(e) => e.pairing_id,
            E::PolicyFollowupRecorded(e) => e.pairing_id,
            E::ErrandDone(e) => e.pairing_id,
            E::AidGiven(e) => e.pairing_id,
            E::DifficultyRaised(e) => e.pairing_id,
            E::EscalationRaised(e) => e.pairing_id,
            E::DifficultyResolved(e) => self.difficulties.get(&e.difficulty_id)?.pairing,
            E::DifficultyDropped(e) => self.difficulties.get(&e.difficulty_id)?.pairing,
            E::EscalationAcknowledged(e) => self.escalations.get(&e.escalation_id)?.pairing,
            E::EscalationAnswered(e) => self.escalations.get(&e.escalation_id)?.pairing,
            E::EscalationClosed(e) => self.escalations.get(&e.escalation_id)?.pairing,
            E::CarePlanReviewed(e) => return self.plans.get(&e.plan_id).map(|p| p.teacher),
            E::CarePlanOpened(e) => return Some(e.teacher_id),
            _ => return None,
        };
        self.pairing_holder(pairing, occurred)
    }

    /// Checks a new event against the records. `occurred_at` is the event's time; `now` the
    /// clock's. Nothing is changed.
    pub fn check(
        &self,
        event: &DomainEvent,
        occurred_at: &Instant,
        now: &Instant,
    ) -> Result<(), DomainError> {
        let latest = *now + chrono::Duration::minutes(CLOCK_SKEW_MINUTES);
        if *occurred_at > latest {
            return err(
                "time",
                Rule::InFuture,
                format!("{occurred_at} is in the future (now {now})"),
            );
        }
        let today = Date(time::shanghai_date(&latest));
        let d = Date(time::shanghai_date(occurred_at));
        self.check_data(event, d, today, false)
    }

    /// The checks of an event's data. `correcting`: the data replaces an existing event's, so
    /// ids it would create already exist.
    fn check_data(
        &self,
        event: &DomainEvent,
        d: Date,
        today: Date,
        correcting: bool,
    ) -> Result<(), DomainError> {
        use DomainEvent as E;
        match event {
            E::UnitRegistered(e) => {
                self.new_id(&self.units, "data.unit_id", e.unit_id, "unit")?;
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
                self.new_id(&self.staff, "data.person_id", e.person_id, "person")?;
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
                self.new_id(
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
                if r.categories
                    .iter()
                    .any(|c| c.category == e.category && c.to.is_none())
                {
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
                let Some(open) = r
                    .categories
                    .iter()
                    .find(|c| c.category == e.category && c.to.is_none())
                else {
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
            E::PairingEstablished(e) => {
                self.new_id(&self.pairings, "data.pairing_id", e.pairing_id, "pairing")?;
                self.staff_member("data.cadre_id", e.cadre_id, StaffRole::Cadre, e.on)?;
                self.recipient("data.recipient_id", e.recipient_id)?;
                not_future("data.on", e.on, today)?;
                // Also a pairing that ended on or after this one's start: back-dating a new
                // pairing must not make two pairings active on the same days.
                let overlapping = self
                    .pairings
                    .iter()
                    .find(|(_, p)| {
                        p.recipient == e.recipient_id && p.ended.is_some_and(|end| end >= e.on)
                    })
                    .map(|(id, _)| id);
                if let Some(existing) = self.active_pairing_of.get(&e.recipient_id).or(overlapping)
                {
                    return err(
                        "data.recipient_id",
                        Rule::SecondActivePairing,
                        format!(
                            "the recipient already has active pairing {existing}: end or transfer it instead"
                        ),
                    );
                }
            }
            E::PairingTransferred(e) => {
                let p = self.open_pairing("data.pairing_id", e.pairing_id, e.on)?;
                self.staff_member("data.to_cadre_id", e.to_cadre_id, StaffRole::Cadre, e.on)?;
                if p.current_holder() == e.to_cadre_id {
                    return err(
                        "data.to_cadre_id",
                        Rule::Invalid,
                        "the pairing is already held by that cadre",
                    );
                }
                not_future("data.on", e.on, today)?;
                non_empty("data.reason", &e.reason)?;
            }
            E::PairingSuspended(e) => {
                let p = self.open_pairing("data.pairing_id", e.pairing_id, e.on)?;
                if let Some(last) = p.last_activity
                    && e.on <= last
                {
                    return err(
                        "data.on",
                        Rule::BeforeStart,
                        format!(
                            "an activity is recorded on this pairing on {last}: a suspension starts after it"
                        ),
                    );
                }
                if p.suspensions.last().is_some_and(|(_, to)| to.is_none()) {
                    return err(
                        "data.pairing_id",
                        Rule::AlreadyClosed,
                        "the pairing is already suspended",
                    );
                }
                not_future("data.on", e.on, today)?;
                non_empty("data.reason", &e.reason)?;
            }
            E::PairingResumed(e) => {
                let p = self.open_pairing("data.pairing_id", e.pairing_id, e.on)?;
                if !p.suspensions.last().is_some_and(|(_, to)| to.is_none()) {
                    return err(
                        "data.pairing_id",
                        Rule::Invalid,
                        "the pairing is not suspended",
                    );
                }
                not_future("data.on", e.on, today)?;
            }
            E::PairingEnded(e) => {
                let p = self.open_pairing("data.pairing_id", e.pairing_id, e.on)?;
                if let Some(last) = p.last_activity
                    && e.on < last
                {
                    return err(
                        "data.on",
                        Rule::BeforeStart,
                        format!(
                            "an activity is recorded on this pairing on {last}: it cannot end before that"
                        ),
                    );
                }
                not_future("data.on", e.on, today)?;
                non_empty("data.reason", &e.reason)?;
            }
            E::ContactRecorded(e) => {
                self.active_pairing("data.pairing_id", e.pairing_id, d)?;
                non_empty("data.summary", &e.summary)?;
            }
            E::VisitRecorded(e) => {
                let p = self.active_pairing("data.pairing_id", e.pairing_id, d)?;
                non_empty("data.observations", &e.observations)?;
                match (e.trip, e.group_trip_id) {
                    (TripKind::Group, None) => {
                        return err(
                            "data.group_trip_id",
                            Rule::Invalid,
                            "a group trip needs its group_trip_id",
                        );
                    }
                    (TripKind::Own, Some(_)) => {
                        return err(
                            "data.group_trip_id",
                            Rule::Invalid,
                            "an own trip has no group_trip_id",
                        );
                    }
                    _ => {}
                }
                if e.companions.len() > 64 {
                    return err("data.companions", Rule::Invalid, "at most 64 companions");
                }
                let holder = p.holder_on(d);
                for c in &e.companions {
                    if Some(*c) == holder {
                        return err(
                            "data.companions",
                            Rule::Invalid,
                            "the pairing's own cadre is not a companion",
                        );
                    }
                    if !self.staff.contains_key(c) {
                        return err(
                            "data.companions",
                            Rule::UnknownId,
                            format!("unknown cadre {c}"),
                        );
                    }
                }
            }
            E::PolicyFollowupRecorded(e) => {
                self.active_pairing("data.pairing_id", e.pairing_id, d)?;
                non_empty("data.policy", &e.policy)?;
                non_empty("data.agency", &e.agency)?;
                non_empty("data.outcome", &e.outcome)?;
            }
            E::ErrandDone(e) => {
                self.active_pairing("data.pairing_id", e.pairing_id, d)?;
                non_empty("data.description", &e.description)?;
                non_empty("data.result", &e.result)?;
            }
            E::AidGiven(e) => {
                self.active_pairing("data.pairing_id", e.pairing_id, d)?;
                check_aid(e)?;
            }
            E::DifficultyRaised(e) => {
                if !correcting {
                    self.new_id(
                        &self.difficulties,
                        "data.difficulty_id",
                        e.difficulty_id,
                        "difficulty",
                    )?;
                }
                self.active_pairing("data.pairing_id", e.pairing_id, d)?;
                non_empty("data.description", &e.description)?;
            }
            E::DifficultyResolved(e) => {
                let c = self.open_case(
                    &self.difficulties,
                    "data.difficulty_id",
                    e.difficulty_id,
                    "difficulty",
                    d,
                )?;
                let _ = c;
                non_empty("data.how", &e.how)?;
            }
            E::DifficultyDropped(e) => {
                self.open_case(
                    &self.difficulties,
                    "data.difficulty_id",
                    e.difficulty_id,
                    "difficulty",
                    d,
                )?;
                non_empty("data.reason", &e.reason)?;
            }
            E::EscalationRaised(e) => {
                if !correcting {
                    self.new_id(
                        &self.escalations,
                        "data.escalation_id",
                        e.escalation_id,
                        "escalation",
                    )?;
                }
                self.active_pairing("data.pairing_id", e.pairing_id, d)?;
                non_empty("data.to_level", &e.to_level)?;
                non_empty("data.issue", &e.issue)?;
            }
            E::EscalationAcknowledged(e) => {
                let c = self.open_case(
                    &self.escalations,
                    "data.escalation_id",
                    e.escalation_id,
                    "escalation",
                    d,
                )?;
                if c.state != CaseState::Open {
                    return err(
                        "data.escalation_id",
                        Rule::AlreadyClosed,
                        "the escalation was already acknowledged",
                    );
                }
                non_empty("data.by", &e.by)?;
            }
            E::EscalationAnswered(e) => {
                let c = self.open_case(
                    &self.escalations,
                    "data.escalation_id",
                    e.escalation_id,
                    "escalation",
                    d,
                )?;
                if c.state == CaseState::Answered {
                    return err(
                        "data.escalation_id",
                        Rule::AlreadyClosed,
                        "the escalation was already answered",
                    );
                }
                non_empty("data.answer", &e.answer)?;
            }
            E::EscalationClosed(e) => {
                self.open_case(
                    &self.escalations,
                    "data.escalation_id",
                    e.escalation_id,
                    "escalation",
                    d,
                )?;
                non_empty("data.outcome", &e.outcome)?;
            }
            E::StudentAidPaid(e) => {
                let r = self.pupil("data.pupil_id", e.pupil_id)?;
                let Some((from, to)) = term_span(&e.term) else {
                    return err(
                        "data.term",
                        Rule::Invalid,
                        format!("{:?} is not a term: use YYYY-spring or YYYY-autumn", e.term),
                    );
                };
                not_future("data.term", from, today)?;
                if e.amount_fen.fen() <= 0 {
                    return err(
                        "data.amount_fen",
                        Rule::NotPositive,
                        "an aid payment is more than zero fen",
                    );
                }
                at_most_max_money("data.amount_fen", e.amount_fen)?;
                if !r.enrolled_during(from, to) {
                    return err(
                        "data.pupil_id",
                        Rule::NotEnrolled,
                        format!("the pupil was not enrolled during {}", e.term),
                    );
                }
                let needed = match e.programme {
                    AidProgramme::ForOrphans => Some(Category::Orphan),
                    AidProgramme::ForUnsupported => Some(Category::Unsupported),
                    AidProgramme::ForDisabled => Some(Category::DisabledChild),
                    AidProgramme::Other => None,
                };
                if let Some(c) = needed
                    && !r.has_category_during(c, from, to)
                {
                    return err(
                        "data.programme",
                        Rule::MissingCategory,
                        format!(
                            "the pupil was not certified {} during {}",
                            c.as_str(),
                            e.term
                        ),
                    );
                }
            }
            E::PlacementDecided(e) => {
                if !correcting {
                    self.new_id(
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
            E::CarePlanOpened(e) => {
                if !correcting {
                    self.new_id(&self.plans, "data.plan_id", e.plan_id, "care plan")?;
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
            E::ClaimFiled(e) => {
                if !correcting && self.claims.contains(&e.claim_id) {
                    return err(
                        "data.claim_id",
                        Rule::AlreadyExists,
                        format!("claim {} is already filed", e.claim_id),
                    );
                }
                if e.metric.is_empty()
                    || !e
                        .metric
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return err(
                        "data.metric",
                        Rule::Invalid,
                        "a metric name is lower-case snake_case (see `carelog report --json`)",
                    );
                }
                if let Some(u) = e.scope_unit_id {
                    self.unit("data.scope_unit_id", u)?;
                }
                if let (Some(from), Some(to)) = (e.period_from, e.period_to) {
                    not_before("data.period_to", to, from, "period_from")?;
                }
                if e.value < 0 {
                    return err(
                        "data.value",
                        Rule::NotPositive,
                        "a reported figure is not negative",
                    );
                }
                if e.value > MAX_MONEY_FEN {
                    return err(
                        "data.value",
                        Rule::Invalid,
                        format!("a reported figure is at most {MAX_MONEY_FEN}"),
                    );
                }
                non_empty("data.source_document", &e.source_document)?;
                not_future("data.reported_on", e.reported_on, today)?;
            }
            E::RecordVoided(e) => self.check_void(e)?,
            E::RecordCorrected(e) => self.check_correction(e, today)?,
            E::TokenGranted(e) => {
                self.new_id(&self.tokens, "data.token_id", e.token_id, "token")?;
                if e.secret_sha256.len() != 64
                    || !e.secret_sha256.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return err("data.secret_sha256", Rule::Invalid, "64 hex digits");
                }
                if e.role == Role::Recorder {
                    let Some(p) = e.person_id else {
                        return err(
                            "data.person_id",
                            Rule::Invalid,
                            "a recorder's token belongs to a cadre or teacher",
                        );
                    };
                    if !self.staff.contains_key(&p) {
                        return err(
                            "data.person_id",
                            Rule::UnknownId,
                            format!("unknown cadre or teacher {p}"),
                        );
                    }
                }
                if let Some(u) = e.unit_id {
                    self.unit("data.unit_id", u)?;
                }
            }
            E::TokenRevoked(e) => {
                if !self.tokens.contains_key(&e.token_id) {
                    return err(
                        "data.token_id",
                        Rule::UnknownId,
                        format!("unknown token {}", e.token_id),
                    );
                }
                if self.revoked_tokens.contains(&e.token_id) {
                    return err(
                        "data.token_id",
                        Rule::AlreadyClosed,
                        "the token is already revoked",
                    );
                }
            }
        }
        Ok(())
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

    fn open_pairing(
        &self,
        field: &'static str,
        id: Uuid,
        on: Date,
    ) -> Result<&Pairing, DomainError> {
        let p = self.pairing(field, id)?;
        if let Some(ended) = p.ended {
            return err(
                field,
                Rule::AlreadyClosed,
                format!("pairing {id} ended on {ended}"),
            );
        }
        not_before("data.on", on, p.last_change, "the pairing's last change")?;
        Ok(p)
    }

    fn open_case(
        &self,
        cases: &HashMap<Uuid, Case>,
        field: &'static str,
        id: Uuid,
        kind: &str,
        d: Date,
    ) -> Result<Case, DomainError> {
        let c = self.case(cases, field, id, kind)?;
        if c.state == CaseState::Closed {
            return err(
                field,
                Rule::AlreadyClosed,
                format!("{kind} {id} is already closed"),
            );
        }
        not_before(
            "time",
            d,
            c.raised,
            &format!("the day the {kind} was raised"),
        )?;
        Ok(c)
    }

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
        if refers_to(&corrected) != m.refers_to {
            return err(
                "data.corrected",
                Rule::NotAllowed,
                "a correction keeps the event's subject (pairing, pupil or claim): void it and record a new event instead",
            );
        }
        self.check_data(&corrected, m.occurred, today, true)
    }

    /// Folds an accepted event in. `event_id` and the occurred time identify it for later voids.
    pub fn apply(&mut self, event_id: Uuid, event: &DomainEvent, occurred_at: &Instant) {
        use DomainEvent as E;
        let d = Date(time::shanghai_date(occurred_at));
        let shape = shape_of(event);
        let refers = refers_to(event);
        for r in &refers {
            *self.dependents.get_or_default(*r) += 1;
        }
        self.events.insert(
            event_id,
            EventMeta {
                event_type: event.event_type(),
                occurred: d,
                shape,
                refers_to: refers,
                voided: false,
            },
        );
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
                    });
                }
            }
            E::CategoryEnded(e) => {
                if let Some(r) = self.recipients.get_mut(&e.recipient_id)
                    && let Some(c) = r
                        .categories
                        .iter_mut()
                        .rev()
                        .find(|c| c.category == e.category && c.to.is_none())
                {
                    c.to = Some(e.on);
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
            E::PairingEstablished(e) => {
                self.pairings.insert(
                    e.pairing_id,
                    Pairing {
                        recipient: e.recipient_id,
                        holders: vec![(e.cadre_id, e.on)],
                        established: e.on,
                        ended: None,
                        suspensions: Vec::new(),
                        last_change: e.on,
                        last_activity: None,
                    },
                );
                self.active_pairing_of.insert(e.recipient_id, e.pairing_id);
            }
            E::PairingTransferred(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.holders.push((e.to_cadre_id, e.on));
                    p.last_change = e.on;
                }
            }
            E::PairingSuspended(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.suspensions.push((e.on, None));
                    p.last_change = e.on;
                }
            }
            E::PairingResumed(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    if let Some(last) = p.suspensions.last_mut() {
                        last.1 = Some(e.on);
                    }
                    p.last_change = e.on;
                }
            }
            E::PairingEnded(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.ended = Some(e.on);
                    p.last_change = e.on;
                    if self.active_pairing_of.get(&p.recipient) == Some(&e.pairing_id) {
                        self.active_pairing_of.remove(&p.recipient);
                    }
                }
            }
            E::DifficultyRaised(e) => {
                self.difficulties.insert(
                    e.difficulty_id,
                    Case {
                        pairing: e.pairing_id,
                        raised: d,
                        state: CaseState::Open,
                    },
                );
            }
            E::DifficultyResolved(e) => self.set_case(true, e.difficulty_id, CaseState::Closed),
            E::DifficultyDropped(e) => self.set_case(true, e.difficulty_id, CaseState::Closed),
            E::EscalationRaised(e) => {
                self.escalations.insert(
                    e.escalation_id,
                    Case {
                        pairing: e.pairing_id,
                        raised: d,
                        state: CaseState::Open,
                    },
                );
            }
            E::EscalationAcknowledged(e) => {
                self.set_case(false, e.escalation_id, CaseState::Acknowledged)
            }
            E::EscalationAnswered(e) => self.set_case(false, e.escalation_id, CaseState::Answered),
            E::EscalationClosed(e) => self.set_case(false, e.escalation_id, CaseState::Closed),
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
            E::ClaimFiled(e) => {
                self.claims.insert(e.claim_id);
            }
            E::RecordVoided(e) => self.apply_void(e.target_event_id),
            E::RecordCorrected(_) => {}
            E::TokenGranted(e) => {
                self.tokens.insert(e.token_id, e.clone());
            }
            E::TokenRevoked(e) => {
                self.revoked_tokens.insert(e.token_id);
            }
            E::ContactRecorded(_)
            | E::VisitRecorded(_)
            | E::PolicyFollowupRecorded(_)
            | E::ErrandDone(_)
            | E::AidGiven(_)
            | E::StudentAidPaid(_) => {}
        }
        if let Some(pairing) = activity_pairing(event)
            && let Some(p) = self.pairings.get_mut(&pairing)
        {
            p.last_activity = Some(p.last_activity.map_or(d, |last| last.max(d)));
        }
    }

    fn set_case(&mut self, difficulty: bool, id: Uuid, state: CaseState) {
        let cases = if difficulty {
            &mut self.difficulties
        } else {
            &mut self.escalations
        };
        if let Some(c) = cases.get_mut(&id) {
            c.state = state;
        }
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
            self.units.remove(&entity);
            self.staff.remove(&entity);
            self.recipients.remove(&entity);
            if let Some(p) = self.pairings.remove(&entity)
                && self.active_pairing_of.get(&p.recipient) == Some(&entity)
            {
                self.active_pairing_of.remove(&p.recipient);
            }
            self.difficulties.remove(&entity);
            self.escalations.remove(&entity);
            if let Some(p) = self.placements.remove(&entity)
                && self.open_placement_of.get(&p.pupil) == Some(&entity)
            {
                self.open_placement_of.remove(&p.pupil);
            }
            self.plans.remove(&entity);
            self.tokens.remove(&entity);
        }
    }
}

/// The pairing an activity is recorded on.
fn activity_pairing(event: &DomainEvent) -> Option<Uuid> {
    use DomainEvent as E;
    match event {
        E::ContactRecorded(e) => Some(e.pairing_id),
        E::VisitRecorded(e) => Some(e.pairing_id),
        E::PolicyFollowupRecorded(e) => Some(e.pairing_id),
        E::ErrandDone(e) => Some(e.pairing_id),
        E::AidGiven(e) => Some(e.pairing_id),
        E::DifficultyRaised(e) => Some(e.pairing_id),
        E::EscalationRaised(e) => Some(e.pairing_id),
        _ => None,
    }
}

/// The most one event may carry in money (10 billion 元), so that no total of a realistic log can
/// overflow an i64 of fen.
pub const MAX_MONEY_FEN: i64 = 1_000_000_000_000;

fn at_most_max_money(field: &'static str, amount: super::Money) -> Result<(), DomainError> {
    if amount.fen() > MAX_MONEY_FEN {
        return err(
            field,
            Rule::Invalid,
            format!("one event carries at most {MAX_MONEY_FEN} fen"),
        );
    }
    Ok(())
}

fn check_aid(e: &AidGivenV1) -> Result<(), DomainError> {
    if e.value_fen.fen() <= 0 {
        return err(
            "data.value_fen",
            Rule::NotPositive,
            "aid given is more than zero fen",
        );
    }
    at_most_max_money("data.value_fen", e.value_fen)?;
    non_empty("data.fund_source", &e.fund_source)?;
    non_empty("data.receipt_ref", &e.receipt_ref)?;
    match e.form {
        AidForm::Cash => {
            if e.quantity.is_some() || e.unit_value_fen.is_some() {
                return err(
                    "data.quantity",
                    Rule::Invalid,
                    "cash has no quantity or unit value: give value_fen only",
                );
            }
        }
        AidForm::Goods => {
            let Some(item) = &e.item else {
                return err("data.item", Rule::Invalid, "goods need their item");
            };
            non_empty("data.item", item)?;
            let (Some(q), Some(u)) = (e.quantity, e.unit_value_fen) else {
                return err(
                    "data.quantity",
                    Rule::Invalid,
                    "goods need quantity and unit_value_fen",
                );
            };
            if q == 0 {
                return err(
                    "data.quantity",
                    Rule::NotPositive,
                    "a quantity is at least 1",
                );
            }
            if u.fen() <= 0 {
                return err(
                    "data.unit_value_fen",
                    Rule::NotPositive,
                    "a unit value is more than zero fen",
                );
            }
            if u.checked_times(q) != Some(e.value_fen) {
                return err(
                    "data.value_fen",
                    Rule::GoodsValueMismatch,
                    format!(
                        "goods are worth quantity × unit value = {q} × {} fen, not {} fen",
                        u.fen(),
                        e.value_fen.fen()
                    ),
                );
            }
        }
    }
    Ok(())
}

fn shape_of(event: &DomainEvent) -> Shape {
    use DomainEvent as E;
    match event {
        E::UnitRegistered(e) => Shape::Creates(e.unit_id),
        E::StaffRegistered(e) => Shape::Creates(e.person_id),
        E::RecipientRegistered(e) => Shape::Creates(e.recipient_id),
        E::PairingEstablished(e) => Shape::Creates(e.pairing_id),
        E::DifficultyRaised(e) => Shape::Creates(e.difficulty_id),
        E::EscalationRaised(e) => Shape::Creates(e.escalation_id),
        E::PlacementDecided(e) => Shape::Creates(e.placement_id),
        E::CarePlanOpened(e) => Shape::Creates(e.plan_id),
        E::TokenGranted(e) => Shape::Creates(e.token_id),
        E::ContactRecorded(_)
        | E::VisitRecorded(_)
        | E::PolicyFollowupRecorded(_)
        | E::ErrandDone(_)
        | E::AidGiven(_)
        | E::StudentAidPaid(_)
        | E::ClaimFiled(_) => Shape::Countable,
        E::RecordVoided(_) | E::RecordCorrected(_) => Shape::Correction,
        _ => Shape::StateChange,
    }
}

/// The entities an event refers to, other than one it creates.
fn refers_to(event: &DomainEvent) -> Vec<Uuid> {
    use DomainEvent as E;
    match event {
        E::UnitRegistered(e) => e.parent_id.into_iter().collect(),
        E::StaffRegistered(e) => vec![e.unit_id],
        E::StaffMoved(e) => vec![e.person_id, e.unit_id],
        E::StaffLeft(e) => vec![e.person_id],
        E::RecipientRegistered(e) => vec![e.unit_id],
        E::CategoryCertified(e) => vec![e.recipient_id],
        E::CategoryEnded(e) => vec![e.recipient_id],
        E::HouseholdMemberAdded(e) => vec![e.household_id],
        E::HouseholdMemberRemoved(e) => vec![e.household_id],
        E::PupilEnrolled(e) => vec![e.pupil_id, e.school_id],
        E::PupilMoved(e) => vec![e.pupil_id, e.school_id],
        E::PupilLeft(e) => vec![e.pupil_id],
        E::PairingEstablished(e) => vec![e.cadre_id, e.recipient_id],
        E::PairingTransferred(e) => vec![e.pairing_id, e.to_cadre_id],
        E::PairingSuspended(e) => vec![e.pairing_id],
        E::PairingResumed(e) => vec![e.pairing_id],
        E::PairingEnded(e) => vec![e.pairing_id],
        E::ContactRecorded(e) => vec![e.pairing_id],
        E::VisitRecorded(e) => vec![e.pairing_id],
        E::PolicyFollowupRecorded(e) => vec![e.pairing_id],
        E::ErrandDone(e) => vec![e.pairing_id],
        E::AidGiven(e) => vec![e.pairing_id],
        E::DifficultyRaised(e) => vec![e.pairing_id],
        E::DifficultyResolved(e) => vec![e.difficulty_id],
        E::DifficultyDropped(e) => vec![e.difficulty_id],
        E::EscalationRaised(e) => vec![e.pairing_id],
        E::EscalationAcknowledged(e) => vec![e.escalation_id],
        E::EscalationAnswered(e) => vec![e.escalation_id],
        E::EscalationClosed(e) => vec![e.escalation_id],
        E::StudentAidPaid(e) => vec![e.pupil_id],
        E::PlacementDecided(e) => vec![e.pupil_id, e.school_id],
        E::PlacementChanged(e) => vec![e.placement_id, e.school_id],
        E::PlacementEnded(e) => vec![e.placement_id],
        E::CarePlanOpened(e) => vec![e.pupil_id, e.teacher_id],
        E::CarePlanReviewed(e) => vec![e.plan_id],
        E::CarePlanTeacherChanged(e) => vec![e.plan_id, e.teacher_id],
        E::CarePlanClosed(e) => vec![e.plan_id],
        E::ClaimFiled(e) => vec![e.claim_id],
        E::RecordVoided(_) | E::RecordCorrected(_) => Vec::new(),
        E::TokenGranted(e) => e.person_id.into_iter().collect(),
        E::TokenRevoked(e) => vec![e.token_id],
    }
}
