//! Pairings (a cadre paired with a recipient: established, transferred, suspended, resumed,
//! ended) and the activities recorded on them (contacts, visits, policy follow-ups, errands,
//! aid). The dated history is the domain's one [`Lifecycle`], shared with the projections'
//! book; the records add what the checks need: the last change and the latest activity.

use std::ops::Deref;

use uuid::Uuid;

use super::corrections::References;
use super::rules::{
    MAX_CONTACT_MINUTES, MAX_GOODS_QUANTITY, at_most, at_most_max_money, err, known, new_id,
    non_empty, not_before, not_future,
};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::events::{AidForm, AidGivenV1, StaffRole, TripKind};
use crate::domain::lifecycle::{Lifecycle, Tenure};
use crate::domain::{Date, DomainEvent};

#[derive(Debug, Clone)]
pub struct Pairing {
    pub recipient: Uuid,
    /// Established, holders as (cadre, from date), suspensions, ended.
    pub life: Lifecycle<(Uuid, Date)>,
    pub last_change: Date,
    /// The day of the latest activity recorded on the pairing: an ending or suspension may not
    /// be back-dated before it (that would leave recorded activities on an inactive pairing).
    pub last_activity: Option<Date>,
}

/// A pairing reads as its lifecycle (`p.active_on(d)`, `p.holders`, …).
impl Deref for Pairing {
    type Target = Lifecycle<(Uuid, Date)>;

    fn deref(&self) -> &Self::Target {
        &self.life
    }
}

pub(super) fn references(event: &DomainEvent) -> References {
    use DomainEvent as E;
    match event {
        E::PairingEstablished(e) => {
            References::creates(e.pairing_id, vec![e.cadre_id, e.recipient_id])
        }
        E::PairingTransferred(e) => References::change(vec![e.pairing_id, e.to_cadre_id]),
        E::PairingSuspended(e) => References::change(vec![e.pairing_id]),
        E::PairingResumed(e) => References::change(vec![e.pairing_id]),
        E::PairingEnded(e) => References::change(vec![e.pairing_id]),
        E::ContactRecorded(e) => activity(e.pairing_id),
        E::VisitRecorded(e) => activity(e.pairing_id),
        E::PolicyFollowupRecorded(e) => activity(e.pairing_id),
        E::ErrandDone(e) => activity(e.pairing_id),
        E::AidGiven(e) => activity(e.pairing_id),
        other => {
            not_routed_here(Aggregate::Pairing, other);
            References::change(Vec::new())
        }
    }
}

/// An activity: counted, on its pairing.
fn activity(pairing: Uuid) -> References {
    References::countable(vec![pairing]).activity_on(pairing)
}

impl Records {
    fn pairing(&self, field: &'static str, id: Uuid) -> Result<&Pairing, DomainError> {
        known(&self.pairings, field, id, "pairing", "")
    }

    /// A pairing active on the day `d` (what an activity or a new case is recorded on).
    pub(super) fn active_pairing(
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

    /// An activity's cadre: the pairing's holder on the day.
    pub(super) fn pairing_responsible(&self, event: &DomainEvent, occurred: Date) -> Option<Uuid> {
        match references(event).activity_on {
            Some(pairing) => self.pairing_holder(pairing, occurred),
            None => None,
        }
    }

    pub(super) fn check_pairing(
        &self,
        event: &DomainEvent,
        d: Date,
        today: Date,
    ) -> Result<(), DomainError> {
        use DomainEvent as E;
        match event {
            E::PairingEstablished(e) => {
                new_id(&self.pairings, "data.pairing_id", e.pairing_id, "pairing")?;
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
                if p.current_holder().map(Tenure::holder) == Some(e.to_cadre_id) {
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
                if p.is_suspended() {
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
                if !p.is_suspended() {
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
                if let Some(minutes) = e.duration_minutes {
                    at_most(
                        "data.duration_minutes",
                        minutes,
                        MAX_CONTACT_MINUTES,
                        "minutes (one contact lasts at most a day)",
                    )?;
                }
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
                let holder = p.holder_on(d).map(Tenure::holder);
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
            other => not_routed_here(Aggregate::Pairing, other),
        }
        Ok(())
    }

    pub(super) fn apply_pairing(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::PairingEstablished(e) => {
                self.pairings.insert(
                    e.pairing_id,
                    Pairing {
                        recipient: e.recipient_id,
                        life: Lifecycle::established(e.on, (e.cadre_id, e.on)),
                        last_change: e.on,
                        last_activity: None,
                    },
                );
                self.active_pairing_of.insert(e.recipient_id, e.pairing_id);
            }
            E::PairingTransferred(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.transfer((e.to_cadre_id, e.on));
                    p.last_change = e.on;
                }
            }
            E::PairingSuspended(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.suspend(e.on);
                    p.last_change = e.on;
                }
            }
            E::PairingResumed(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.resume(e.on);
                    p.last_change = e.on;
                }
            }
            E::PairingEnded(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.end(e.on);
                    p.last_change = e.on;
                    if self.active_pairing_of.get(&p.recipient) == Some(&e.pairing_id) {
                        self.active_pairing_of.remove(&p.recipient);
                    }
                }
            }
            E::ContactRecorded(_)
            | E::VisitRecorded(_)
            | E::PolicyFollowupRecorded(_)
            | E::ErrandDone(_)
            | E::AidGiven(_) => {}
            other => not_routed_here(Aggregate::Pairing, other),
        }
    }

    /// An activity (or a case raised) on `pairing` on day `d`.
    pub(super) fn note_activity(&mut self, pairing: Uuid, d: Date) {
        if let Some(p) = self.pairings.get_mut(&pairing) {
            p.last_activity = Some(p.last_activity.map_or(d, |last| last.max(d)));
        }
    }

    /// A voided establishment takes the pairing out, and with it the recipient's active pairing.
    pub(super) fn forget_pairing(&mut self, entity: Uuid) {
        if let Some(p) = self.pairings.remove(&entity)
            && self.active_pairing_of.get(&p.recipient) == Some(&entity)
        {
            self.active_pairing_of.remove(&p.recipient);
        }
    }
}

fn check_aid(e: &AidGivenV1) -> Result<(), DomainError> {
    if e.value_fen.fen() <= 0 {
        return err(
            "data.value_fen",
            Rule::NotPositive,
            "aid given is more than zero fen",
        );
    }
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
            at_most("data.quantity", q, MAX_GOODS_QUANTITY, "items in one gift")?;
            at_most_max_money("data.unit_value_fen", u)?;
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
    // After the goods' own bounds, so that a too large unit value is named as such.
    at_most_max_money("data.value_fen", e.value_fen)?;
    Ok(())
}
