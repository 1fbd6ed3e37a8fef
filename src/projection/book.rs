//! [`PairingBook`]: who was paired with whom, when, and what each recipient was certified as.
//!
//! The engine keeps one book beside the projection states: it folds each event into the book
//! before any projection sees the event, hands it to `apply` (`EventView::book`) and to
//! `query`/`figures`, and checkpoints it like a projection (`book-vBOOK_VERSION-POSITION.ckpt`).
//! So the projections that need "the cadre holding this pairing on that day" (activity totals,
//! coverage, funds, pairings) share one copy of it, and the rule is written once.

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use uuid::Uuid;

use crate::domain::events::{Category, RecipientKind};
use crate::domain::{Date, DomainEvent};
use crate::projection::Source;

/// Bumped whenever [`PairingBook::apply`] or the book's layout changes: old book checkpoints
/// are then never used.
pub const BOOK_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategorySpan {
    pub category: Category,
    pub from: Date,
    pub to: Option<Date>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientEntry {
    pub kind: RecipientKind,
    pub unit: Uuid,
    pub categories: Vec<CategorySpan>,
}

impl RecipientEntry {
    pub fn category_on(&self, category: Category, d: Date) -> Option<&CategorySpan> {
        self.categories
            .iter()
            .find(|c| c.category == category && c.from <= d && c.to.is_none_or(|t| d <= t))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub cadre: Uuid,
    pub from: Date,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingEntry {
    pub recipient: Uuid,
    pub established: Date,
    pub holders: Vec<Holder>,
    pub ended: Option<Date>,
    pub suspensions: Vec<(Date, Option<Date>)>,
    pub source: Source,
}

impl PairingEntry {
    pub fn active_on(&self, d: Date) -> bool {
        self.established <= d
            && self.ended.is_none_or(|e| d <= e)
            && !self
                .suspensions
                .iter()
                .any(|(from, to)| *from <= d && to.is_none_or(|t| d < t))
    }

    pub fn holder_on(&self, d: Date) -> Option<&Holder> {
        self.holders.iter().rev().find(|h| h.from <= d)
    }

    /// The first day of the stretch of activity that `d` falls in: the day it was established,
    /// or the day it resumed after the last suspension that ended on or before `d`. A duty to
    /// keep in touch runs from there.
    pub fn active_since(&self, d: Date) -> Date {
        self.suspensions
            .iter()
            .filter_map(|(_, to)| *to)
            .filter(|to| *to <= d)
            .fold(self.established, Date::max)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingBook {
    pub pairings: AppendMap<Uuid, PairingEntry>,
    pub recipients: AppendMap<Uuid, RecipientEntry>,
    /// cadre or teacher → (name, (from, unit) in order)
    pub staff: AppendMap<Uuid, (String, Vec<(Date, Uuid)>)>,
    /// creating event → the entity it created, so a void of the creation removes it
    created_by: AppendMap<Uuid, Uuid>,
}

impl PairingBook {
    /// Folds the registry and pairing events in; other events are ignored. `source` is the
    /// event's id and position.
    pub fn apply(&mut self, source: Source, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::StaffRegistered(e) => {
                self.staff
                    .insert(e.person_id, (e.name.clone(), vec![(e.since, e.unit_id)]));
                self.created_by.insert(source.id, e.person_id);
            }
            E::StaffMoved(e) => {
                if let Some(s) = self.staff.get_mut(&e.person_id) {
                    s.1.push((e.on, e.unit_id));
                }
            }
            E::RecipientRegistered(e) => {
                self.recipients.insert(
                    e.recipient_id,
                    RecipientEntry {
                        kind: e.kind,
                        unit: e.unit_id,
                        categories: Vec::new(),
                    },
                );
                self.created_by.insert(source.id, e.recipient_id);
            }
            E::CategoryCertified(e) => {
                if let Some(r) = self.recipients.get_mut(&e.recipient_id) {
                    r.categories.push(CategorySpan {
                        category: e.category,
                        from: e.from,
                        to: e.to,
                        source,
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
            E::PairingEstablished(e) => {
                self.pairings.insert(
                    e.pairing_id,
                    PairingEntry {
                        recipient: e.recipient_id,
                        established: e.on,
                        holders: vec![Holder {
                            cadre: e.cadre_id,
                            from: e.on,
                            source,
                        }],
                        ended: None,
                        suspensions: Vec::new(),
                        source,
                    },
                );
                self.created_by.insert(source.id, e.pairing_id);
            }
            E::PairingTransferred(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.holders.push(Holder {
                        cadre: e.to_cadre_id,
                        from: e.on,
                        source,
                    });
                }
            }
            E::PairingSuspended(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.suspensions.push((e.on, None));
                }
            }
            E::PairingResumed(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id)
                    && let Some(last) = p.suspensions.last_mut()
                {
                    last.1 = Some(e.on);
                }
            }
            E::PairingEnded(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.ended = Some(e.on);
                }
            }
            E::RecordVoided(v) => {
                if let Some(entity) = self.created_by.remove(&v.target_event_id) {
                    self.pairings.remove(&entity);
                    self.recipients.remove(&entity);
                    self.staff.remove(&entity);
                }
            }
            _ => {}
        }
    }

    /// The cadre holding a pairing on a day.
    pub fn holder_on(&self, pairing: Uuid, d: Date) -> Option<Uuid> {
        self.pairings
            .get(&pairing)
            .and_then(|p| p.holder_on(d))
            .map(|h| h.cadre)
    }

    /// The unit a cadre belonged to on a day (their first unit before they joined).
    pub fn unit_on(&self, person: Uuid, d: Date) -> Option<Uuid> {
        let units = &self.staff.get(&person)?.1;
        units
            .iter()
            .rev()
            .find(|(from, _)| *from <= d)
            .or(units.first())
            .map(|(_, u)| *u)
    }

    /// The categories a pairing's recipient holds on a day.
    pub fn categories_on(&self, pairing: Uuid, d: Date) -> Vec<Category> {
        let Some(p) = self.pairings.get(&pairing) else {
            return Vec::new();
        };
        let Some(r) = self.recipients.get(&p.recipient) else {
            return Vec::new();
        };
        Category::ALL
            .into_iter()
            .filter(|c| r.category_on(*c, d).is_some())
            .collect()
    }
}
