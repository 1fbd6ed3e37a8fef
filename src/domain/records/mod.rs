//! [`Records`]: what the registry, pairings and open cases are now, folded from events, and the
//! rules a new event must pass against them ([`Records::check`]).
//!
//! `check` is pure: the caller passes the event, when it happened and the clock's now. `apply`
//! folds an accepted event in. The application layer checks then applies each event of a batch in
//! order, under one lock, so a batch is checked against the records as they will be.
//!
//! Each aggregate has one file holding its state, its checks, how its events fold in, what a
//! void of its creation removes and what its events refer to, side by side:
//! - [`registry`]: units, staff, recipients, categories, household members, enrolments;
//! - [`student_aid`]: a school's aid payments to a pupil for a term;
//! - [`pairing`]: pairings and the activities recorded on them;
//! - [`cases`]: difficulties and escalations, one case lifecycle;
//! - [`placement`]: disabled children's school placements;
//! - [`plan`]: care plans;
//! - [`claims`] and [`tokens`];
//! - [`corrections`]: voids and corrections of any of the above;
//! - [`late_entry`]: the reason an event was recorded late, and the window past which one is
//!   needed.
//!
//! This file routes each event to its aggregate ([`aggregate_of`], the one table) for each
//! concern; [`rules`] holds the checks every aggregate shares.
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

mod cases;
mod claims;
mod corrections;
pub mod late_entry;
mod pairing;
mod placement;
mod plan;
mod registry;
mod rules;
mod student_aid;
mod tokens;

use uuid::Uuid;

use super::undo::{UndoMap, UndoSet};
use super::{Date, DomainEvent, stream_of};
use crate::time::{self, Instant};
use cases::Case;
use corrections::{EventMeta, References};
use placement::Placement;
use plan::Plan;
use rules::err;

pub use super::lifecycle::CategorySpan;
pub use cases::CaseState;
pub use pairing::Pairing;
pub use registry::{Enrollment, Recipient, Staff, Unit};
pub use rules::{
    MAX_CLAIM_VALUE, MAX_CONTACT_MINUTES, MAX_GOODS_QUANTITY, MAX_MONEY_FEN, MAX_TOKEN_DAYS,
};
pub use student_aid::term_span;
pub use tokens::Grant;

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
    /// Recorded past the late-entry window without a reason.
    LateEntry,
    /// A number above its bound (`rules::MAX_*`).
    TooLarge,
    /// A cadre or teacher who has left the programme.
    StaffLeft,
}

/// A rejected event: the field and the rule, worded for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {detail}")]
pub struct DomainError {
    pub field: &'static str,
    pub rule: Rule,
    pub detail: String,
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
    /// token id → the grant, its expiry settled
    pub tokens: UndoMap<Uuid, Grant>,
    pub revoked_tokens: UndoSet<Uuid>,
    events: UndoMap<Uuid, EventMeta>,
    /// entity → how many live events refer to it.
    dependents: UndoMap<Uuid, u32>,
    /// stream → how many events it holds: the version the log gives the stream's next event
    /// once every event folded in is written (optimistic concurrency is checked against it).
    stream_versions: UndoMap<String, u64>,
}

/// Calls `$method` on every collection of the records. The pattern names every field (no `..`),
/// so a collection added to [`Records`] does not compile until it is added here too.
macro_rules! on_every_collection {
    ($records:expr, $method:ident $(, $arg:expr)*) => {{
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
            stream_versions,
        } = $records;
        units.$method($($arg),*);
        staff.$method($($arg),*);
        recipients.$method($($arg),*);
        pairings.$method($($arg),*);
        active_pairing_of.$method($($arg),*);
        difficulties.$method($($arg),*);
        escalations.$method($($arg),*);
        placements.$method($($arg),*);
        open_placement_of.$method($($arg),*);
        plans.$method($($arg),*);
        claims.$method($($arg),*);
        tokens.$method($($arg),*);
        revoked_tokens.$method($($arg),*);
        events.$method($($arg),*);
        dependents.$method($($arg),*);
        stream_versions.$method($($arg),*);
    }};
}

/// The aggregate an event belongs to: the file whose rules it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Registry,
    StudentAid,
    Pairing,
    Case,
    Placement,
    Plan,
    Claim,
    Token,
    Correction,
    LateEntry,
}

/// The one table routing events to aggregates. Each aggregate's functions match only the events
/// routed here; [`not_routed_here`] marks the arm no event reaches.
fn aggregate_of(event: &DomainEvent) -> Aggregate {
    use Aggregate as A;
    use DomainEvent as E;
    match event {
        E::UnitRegistered(_)
        | E::StaffRegistered(_)
        | E::StaffMoved(_)
        | E::StaffLeft(_)
        | E::RecipientRegistered(_)
        | E::CategoryCertified(_)
        | E::CategoryEnded(_)
        | E::HouseholdMemberAdded(_)
        | E::HouseholdMemberRemoved(_)
        | E::PupilEnrolled(_)
        | E::PupilMoved(_)
        | E::PupilLeft(_) => A::Registry,
        E::StudentAidPaid(_) => A::StudentAid,
        E::PairingEstablished(_)
        | E::PairingTransferred(_)
        | E::PairingSuspended(_)
        | E::PairingResumed(_)
        | E::PairingEnded(_)
        | E::ContactRecorded(_)
        | E::VisitRecorded(_)
        | E::PolicyFollowupRecorded(_)
        | E::ErrandDone(_)
        | E::AidGiven(_) => A::Pairing,
        E::DifficultyRaised(_)
        | E::DifficultyResolved(_)
        | E::DifficultyDropped(_)
        | E::EscalationRaised(_)
        | E::EscalationAcknowledged(_)
        | E::EscalationAnswered(_)
        | E::EscalationClosed(_) => A::Case,
        E::PlacementDecided(_) | E::PlacementChanged(_) | E::PlacementEnded(_) => A::Placement,
        E::CarePlanOpened(_)
        | E::CarePlanReviewed(_)
        | E::CarePlanTeacherChanged(_)
        | E::CarePlanClosed(_) => A::Plan,
        E::ClaimFiled(_) => A::Claim,
        E::TokenGranted(_) | E::TokenRevoked(_) => A::Token,
        E::RecordVoided(_) | E::RecordCorrected(_) => A::Correction,
        E::LateEntryNoted(_) => A::LateEntry,
    }
}

/// The fallback arm of an aggregate's match, which no event reaches: [`aggregate_of`] routes
/// only the aggregate's own events there, and it handles each of them.
fn not_routed_here(aggregate: Aggregate, event: &DomainEvent) {
    debug_assert!(
        false,
        "{} reached the {aggregate:?} rules; aggregate_of routes it to {:?}",
        event.event_type(),
        aggregate_of(event)
    );
}

/// What an event refers to, by its aggregate (see [`References`]).
fn references(event: &DomainEvent) -> References {
    match aggregate_of(event) {
        Aggregate::Registry => registry::references(event),
        Aggregate::StudentAid => student_aid::references(event),
        Aggregate::Pairing => pairing::references(event),
        Aggregate::Case => cases::references(event),
        Aggregate::Placement => placement::references(event),
        Aggregate::Plan => plan::references(event),
        Aggregate::Claim => claims::references(event),
        Aggregate::Token => tokens::references(event),
        Aggregate::Correction => corrections::references(event),
        Aggregate::LateEntry => late_entry::references(event),
    }
}

impl Records {
    /// Starts remembering changes under `epoch` (the app's submission number, increasing), so
    /// that the events folded in from now on can be taken back out with
    /// [`Records::roll_back_from`]: a batch refused half way, or refused by the log.
    pub fn begin(&mut self, epoch: u64) {
        on_every_collection!(self, begin, epoch);
    }

    /// Stops remembering; the changes stay undoable until [`Records::forget_before`].
    pub fn end(&mut self) {
        on_every_collection!(self, end);
    }

    /// Undoes every change remembered under `epoch` and every later epoch, newest first, and
    /// stops remembering.
    pub fn roll_back_from(&mut self, epoch: u64) {
        on_every_collection!(self, roll_back_from, epoch);
    }

    /// Forgets the changes of epochs before `epoch`: they are durable, never to be undone.
    pub fn forget_before(&mut self, epoch: u64) {
        on_every_collection!(self, forget_before, epoch);
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// The version of a stream once every event folded in is written: the count of its events
    /// (0: no such stream yet).
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.stream_versions.get(stream).copied().unwrap_or(0)
    }

    /// Whether an event id is in the records (and not voided).
    pub fn knows_event(&self, id: Uuid) -> bool {
        self.events.get(&id).is_some_and(|m| !m.voided)
    }

    /// The holder of a pairing on a day, if the pairing exists.
    pub fn pairing_holder(&self, pairing: Uuid, d: Date) -> Option<Uuid> {
        self.pairings
            .get(&pairing)
            .and_then(|p| p.holder_on(d))
            .map(|(cadre, _)| *cadre)
    }

    /// The cadre or teacher an event is recorded for, for access checks: the pairing's holder
    /// on the day, or a care plan's teacher. None when the event is not tied to one person.
    pub fn responsible_person(&self, event: &DomainEvent, occurred: Date) -> Option<Uuid> {
        match aggregate_of(event) {
            Aggregate::Pairing => self.pairing_responsible(event, occurred),
            Aggregate::Case => self.case_responsible(event, occurred),
            Aggregate::Plan => self.plan_responsible(event),
            Aggregate::Registry
            | Aggregate::StudentAid
            | Aggregate::Placement
            | Aggregate::Claim
            | Aggregate::Token
            | Aggregate::Correction
            | Aggregate::LateEntry => None,
        }
    }

    /// Whether a school-side event (a care plan's, a pupil's aid payment or placement) is for
    /// `school` on day `d`: its pupil is enrolled there that day, and a placement's school (if
    /// it names one) is that school. None when the event is not a school's or names no pupil the
    /// records know (the checks refuse it then). What a teacher's token may record is cut by it.
    pub fn is_for_school(&self, event: &DomainEvent, school: Uuid, d: Date) -> Option<bool> {
        let pupil = match aggregate_of(event) {
            Aggregate::Plan => self.plan_pupil(event)?,
            Aggregate::Placement => self.placement_pupil(event)?,
            Aggregate::StudentAid => match event {
                DomainEvent::StudentAidPaid(e) => e.pupil_id,
                _ => return None,
            },
            Aggregate::Registry
            | Aggregate::Pairing
            | Aggregate::Case
            | Aggregate::Claim
            | Aggregate::Token
            | Aggregate::Correction
            | Aggregate::LateEntry => return None,
        };
        let named_school = match event {
            DomainEvent::PlacementDecided(e) => Some(e.school_id),
            DomainEvent::PlacementChanged(e) => Some(e.school_id),
            _ => None,
        };
        let enrolled = self
            .recipients
            .get(&pupil)?
            .enrollments
            .iter()
            .any(|e| e.school == school && e.from <= d && e.to.is_none_or(|to| d <= to));
        Some(enrolled && named_school.is_none_or(|s| s == school))
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
        if let DomainEvent::TokenGranted(grant) = event {
            tokens::check_expiry(grant, occurred_at)?;
        }
        self.check_data(event, d, today, false)
    }

    /// The checks of an event's data, by its aggregate. `d` is the day it happened. `correcting`:
    /// the data replaces an existing event's, so ids it would create already exist.
    fn check_data(
        &self,
        event: &DomainEvent,
        d: Date,
        today: Date,
        correcting: bool,
    ) -> Result<(), DomainError> {
        match aggregate_of(event) {
            Aggregate::Registry => self.check_registry(event, today),
            Aggregate::StudentAid => self.check_student_aid(event, today),
            Aggregate::Pairing => self.check_pairing(event, d, today),
            Aggregate::Case => self.check_case(event, d, correcting),
            Aggregate::Placement => self.check_placement(event, today, correcting),
            Aggregate::Plan => self.check_plan(event, d, correcting),
            Aggregate::Claim => self.check_claim(event, today, correcting),
            Aggregate::Token => self.check_token(event),
            Aggregate::Correction => self.check_correction_event(event, today),
            Aggregate::LateEntry => self.check_late_entry(event),
        }
    }

    /// Folds an accepted event in. `event_id` and the occurred time identify it for later voids.
    pub fn apply(&mut self, event_id: Uuid, event: &DomainEvent, occurred_at: &Instant) {
        let d = Date(time::shanghai_date(occurred_at));
        let References {
            shape,
            refers_to,
            activity_on,
        } = references(event);
        for r in &refers_to {
            *self.dependents.get_or_default(*r) += 1;
        }
        *self.stream_versions.get_or_default(stream_of(event)) += 1;
        self.events.insert(
            event_id,
            EventMeta {
                event_type: event.event_type(),
                occurred: d,
                shape,
                refers_to,
                voided: false,
            },
        );
        match aggregate_of(event) {
            Aggregate::Registry => self.apply_registry(event),
            Aggregate::StudentAid => {}
            Aggregate::Pairing => self.apply_pairing(event),
            Aggregate::Case => self.apply_case(event, d),
            Aggregate::Placement => self.apply_placement(event),
            Aggregate::Plan => self.apply_plan(event, d),
            Aggregate::Claim => self.apply_claim(event),
            Aggregate::Token => self.apply_token(event, occurred_at),
            Aggregate::Correction => self.apply_correction(event),
            Aggregate::LateEntry => {}
        }
        if let Some(pairing) = activity_on {
            self.note_activity(pairing, d);
        }
    }

    /// Takes an entity a voided event created out of the records, whichever aggregate it is.
    fn forget_created(&mut self, entity: Uuid) {
        self.forget_registered(entity);
        self.forget_pairing(entity);
        self.forget_case(entity);
        self.forget_placement(entity);
        self.forget_plan(entity);
        self.forget_token(entity);
    }
}
