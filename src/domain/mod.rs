//! The care programme: money, dates, the event types, the records they build and the rules a
//! new event must pass. Knows nothing of storage, HTTP or the terminal.
//!
//! - [`events`]: every event type, frozen, with examples ([`DomainEvent`]).
//! - [`records`]: [`Records`], the current registry and pairings folded from events, and
//!   [`Records::check`], the validation every new event passes before it is written; one
//!   file per aggregate under `records/`.
//! - [`lifecycle`]: a pairing's dated [`lifecycle::Lifecycle`] and the certified
//!   [`lifecycle::CategorySpan`], folded by both the records and the projections' pairing book.
//! - [`undo`]: the map and set the records keep, able to roll back a batch refused half way.
//! - [`cloudevent`]: the CloudEvents 1.0 JSON form of events (input of `append`, output of
//!   `export`, the HTTP body).

pub mod cloudevent;
pub mod date;
pub mod events;
pub mod lifecycle;
pub mod money;
pub mod records;
pub mod undo;

pub use date::Date;
pub use events::{Category, DomainEvent, EVENT_TYPES};
pub use money::Money;
pub use records::{DomainError, Records};

use uuid::Uuid;

/// The one stream of every late-entry note: read whole to show the notes beside their events.
pub const LATE_ENTRIES_STREAM: &str = "late_entries";

/// The stream an event belongs to: one per entity, so a stream's history is one thing's history.
pub fn stream_of(event: &DomainEvent) -> String {
    use DomainEvent as E;
    let (kind, id): (&str, Uuid) = match event {
        E::UnitRegistered(e) => ("unit", e.unit_id),
        E::StaffRegistered(e) => ("staff", e.person_id),
        E::StaffMoved(e) => ("staff", e.person_id),
        E::StaffLeft(e) => ("staff", e.person_id),
        E::RecipientRegistered(e) => ("recipient", e.recipient_id),
        E::CategoryCertified(e) => ("recipient", e.recipient_id),
        E::CategoryEnded(e) => ("recipient", e.recipient_id),
        E::HouseholdMemberAdded(e) => ("recipient", e.household_id),
        E::HouseholdMemberRemoved(e) => ("recipient", e.household_id),
        E::PupilEnrolled(e) => ("recipient", e.pupil_id),
        E::PupilMoved(e) => ("recipient", e.pupil_id),
        E::PupilLeft(e) => ("recipient", e.pupil_id),
        E::StudentAidPaid(e) => ("recipient", e.pupil_id),
        E::PairingEstablished(e) => ("pairing", e.pairing_id),
        E::PairingTransferred(e) => ("pairing", e.pairing_id),
        E::PairingSuspended(e) => ("pairing", e.pairing_id),
        E::PairingResumed(e) => ("pairing", e.pairing_id),
        E::PairingEnded(e) => ("pairing", e.pairing_id),
        E::ContactRecorded(e) => ("pairing", e.pairing_id),
        E::VisitRecorded(e) => ("pairing", e.pairing_id),
        E::PolicyFollowupRecorded(e) => ("pairing", e.pairing_id),
        E::ErrandDone(e) => ("pairing", e.pairing_id),
        E::AidGiven(e) => ("pairing", e.pairing_id),
        E::DifficultyRaised(e) => ("difficulty", e.difficulty_id),
        E::DifficultyResolved(e) => ("difficulty", e.difficulty_id),
        E::DifficultyDropped(e) => ("difficulty", e.difficulty_id),
        E::EscalationRaised(e) => ("escalation", e.escalation_id),
        E::EscalationAcknowledged(e) => ("escalation", e.escalation_id),
        E::EscalationAnswered(e) => ("escalation", e.escalation_id),
        E::EscalationClosed(e) => ("escalation", e.escalation_id),
        E::PlacementDecided(e) => ("placement", e.placement_id),
        E::PlacementChanged(e) => ("placement", e.placement_id),
        E::PlacementEnded(e) => ("placement", e.placement_id),
        E::CarePlanOpened(e) => ("care_plan", e.plan_id),
        E::CarePlanReviewed(e) => ("care_plan", e.plan_id),
        E::CarePlanTeacherChanged(e) => ("care_plan", e.plan_id),
        E::CarePlanClosed(e) => ("care_plan", e.plan_id),
        E::ClaimFiled(e) => ("claim", e.claim_id),
        E::RecordVoided(_) | E::RecordCorrected(_) => return "corrections".to_string(),
        E::LateEntryNoted(_) => return LATE_ENTRIES_STREAM.to_string(),
        E::TokenGranted(e) => ("token", e.token_id),
        E::TokenRevoked(e) => ("token", e.token_id),
    };
    format!("{kind}-{id}")
}
