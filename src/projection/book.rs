//! [`PairingBook`]: who was paired with whom, when, and what each recipient was certified as.
//!
//! The engine keeps one book beside the projection states: it folds each event into the book
//! before any projection sees the event, hands it to `apply` (`EventView::book`) and to
//! `query`/`figures`, and checkpoints it like a projection (`book-vBOOK_VERSION-POSITION.ckpt`).
//! So the projections that need "the cadre holding this pairing on that day" (activity totals,
//! coverage, funds, pairings) share one copy of it, and the rule is written once.
//!
//! The dated rules (active on a day, the holder on a day, a category covering a day) are the
//! domain's own ([`Lifecycle`], [`lifecycle::CategorySpan`]), the ones the records check new
//! events with; the book adds where each fact came from ([`Source`]).

use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::projection::append_map::AppendMap;
use uuid::Uuid;

use crate::domain::events::{Category, RecipientKind};
use crate::domain::lifecycle::{self, CategorySpans, Lifecycle, Tenure};
use crate::domain::{Date, DomainEvent};
use crate::projection::Source;

/// Bumped whenever [`PairingBook::apply`] or the book's layout changes: old book checkpoints
/// are then never used.
pub const BOOK_VERSION: u32 = 1;

/// A certified category and the event that certified it.
pub type CategorySpan = lifecycle::CategorySpan<Source>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientEntry {
    pub kind: RecipientKind,
    pub unit: Uuid,
    pub categories: Vec<CategorySpan>,
}

impl RecipientEntry {
    pub fn category_on(&self, category: Category, d: Date) -> Option<&CategorySpan> {
        self.categories.on(category, d)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub cadre: Uuid,
    pub from: Date,
    pub source: Source,
}

impl Tenure for Holder {
    fn holder(&self) -> Uuid {
        self.cadre
    }

    fn from(&self) -> Date {
        self.from
    }
}

/// A pairing: its recipient, its lifecycle (holders with their sources) and the event that
/// established it. Stored in checkpoints: `life`'s fields sit between `recipient` and `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingEntry {
    pub recipient: Uuid,
    pub life: Lifecycle<Holder>,
    pub source: Source,
}

/// A pairing reads as its lifecycle (`p.active_on(d)`, `p.holder_on(d)`, `p.holders`, …).
impl Deref for PairingEntry {
    type Target = Lifecycle<Holder>;

    fn deref(&self) -> &Self::Target {
        &self.life
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
                if let Some(r) = self.recipients.get_mut(&e.recipient_id) {
                    r.categories.end(e.category, e.on);
                }
            }
            E::PairingEstablished(e) => {
                self.pairings.insert(
                    e.pairing_id,
                    PairingEntry {
                        recipient: e.recipient_id,
                        life: Lifecycle::established(
                            e.on,
                            Holder {
                                cadre: e.cadre_id,
                                from: e.on,
                                source,
                            },
                        ),
                        source,
                    },
                );
                self.created_by.insert(source.id, e.pairing_id);
            }
            E::PairingTransferred(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.transfer(Holder {
                        cadre: e.to_cadre_id,
                        from: e.on,
                        source,
                    });
                }
            }
            E::PairingSuspended(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.suspend(e.on);
                }
            }
            E::PairingResumed(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.resume(e.on);
                }
            }
            E::PairingEnded(e) => {
                if let Some(p) = self.pairings.get_mut(&e.pairing_id) {
                    p.life.end(e.on);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_state;

    /// The entries as they were stored before they held the domain's [`Lifecycle`] and
    /// [`lifecycle::CategorySpan`]: the layout of `BOOK_VERSION` 1.
    #[derive(Serialize)]
    struct StoredHolder(Uuid, Date, Source);
    #[derive(Serialize)]
    struct StoredPairing {
        recipient: Uuid,
        established: Date,
        holders: Vec<StoredHolder>,
        ended: Option<Date>,
        suspensions: Vec<(Date, Option<Date>)>,
        source: Source,
    }
    #[derive(Serialize)]
    struct StoredSpan(Category, Date, Option<Date>, Source);

    #[test]
    fn the_entries_keep_the_stored_layout_of_book_version_1() {
        let d = |m, x| Date::ymd(2023, m, x).unwrap_or(Date(chrono::NaiveDate::MIN));
        let s = |n: u64| Source {
            id: Uuid::from_u128(u128::from(n) + 99),
            position: n,
        };
        let (r, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let holder = |cadre, from, source| Holder {
            cadre,
            from,
            source,
        };
        let mut life = Lifecycle::established(d(1, 2), holder(a, d(1, 2), s(1)));
        life.transfer(holder(b, d(2, 2), s(2)));
        life.suspend(d(3, 1));
        life.resume(d(3, 5));
        life.suspend(d(4, 1));
        life.end(d(5, 1));
        let entry = PairingEntry {
            recipient: r,
            life,
            source: s(1),
        };
        let stored = StoredPairing {
            recipient: r,
            established: d(1, 2),
            holders: vec![
                StoredHolder(a, d(1, 2), s(1)),
                StoredHolder(b, d(2, 2), s(2)),
            ],
            ended: Some(d(5, 1)),
            suspensions: vec![(d(3, 1), Some(d(3, 5))), (d(4, 1), None)],
            source: s(1),
        };
        assert!(encode_state("pairing", &entry).is_ok());
        assert_eq!(
            encode_state("pairing", &entry).ok(),
            encode_state("pairing", &stored).ok()
        );
        let span = CategorySpan {
            category: Category::Orphan,
            from: d(1, 1),
            to: Some(d(2, 2)),
            source: s(7),
        };
        let stored = StoredSpan(Category::Orphan, d(1, 1), Some(d(2, 2)), s(7));
        assert_eq!(
            encode_state("span", &span).ok(),
            encode_state("span", &stored).ok()
        );
    }
}
