//! The dated histories both the records ([`super::records`]) and the projections' pairing book
//! (`projection::book`) fold from the same events, written once so the two can never disagree:
//!
//! - [`Lifecycle`]: a pairing's established day, its holders (a transfer adds one), its
//!   suspensions and its end; whether it was active on a day and who held it.
//! - [`CategorySpan`]: a certified category from a day to an optional day (inclusive), with the
//!   [`CategorySpans`] queries over a recipient's list of them.
//!
//! The book keeps where each fact came from (`projection::Source`) and the records do not, so
//! the holder type and the span's `source` are generic. Both derive serde because the book is
//! checkpointed: the field order is the book's stored layout (bincode writes a nested struct as
//! its fields in order), so never reorder a field here without bumping `BOOK_VERSION`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Date;
use super::events::Category;

/// One holder of a pairing and the day they took it over.
pub trait Tenure {
    /// The cadre holding it.
    fn holder(&self) -> Uuid;
    /// The first day they hold it.
    fn from(&self) -> Date;
}

/// The records' holder: (cadre, from).
impl Tenure for (Uuid, Date) {
    fn holder(&self) -> Uuid {
        self.0
    }

    fn from(&self) -> Date {
        self.1
    }
}

/// A pairing's dated history. `H` is one holder ([`Tenure`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle<H> {
    pub established: Date,
    /// In the order they took over; the first is the one it was established with.
    pub holders: Vec<H>,
    pub ended: Option<Date>,
    /// (from, to) of each suspension, in order; `to` None while suspended.
    pub suspensions: Vec<(Date, Option<Date>)>,
}

impl<H: Tenure> Lifecycle<H> {
    /// A pairing established on `on` with its first holder.
    pub fn established(on: Date, first: H) -> Self {
        debug_assert!(first.from() == on, "the first holder holds from the start");
        Self {
            established: on,
            holders: vec![first],
            ended: None,
            suspensions: Vec::new(),
        }
    }

    pub fn transfer(&mut self, to: H) {
        self.holders.push(to);
    }

    pub fn suspend(&mut self, on: Date) {
        self.suspensions.push((on, None));
    }

    /// Ends the latest suspension.
    pub fn resume(&mut self, on: Date) {
        if let Some(last) = self.suspensions.last_mut() {
            last.1 = Some(on);
        }
    }

    pub fn end(&mut self, on: Date) {
        self.ended = Some(on);
    }

    /// Active on a day: established by then, not ended before it (the last day counts), not
    /// suspended on it (a suspension covers `from <= d < to`: the day it resumes is active).
    pub fn active_on(&self, d: Date) -> bool {
        self.established <= d
            && self.ended.is_none_or(|e| d <= e)
            && !self
                .suspensions
                .iter()
                .any(|(from, to)| *from <= d && to.is_none_or(|t| d < t))
    }

    /// Whether a suspension is running (not yet resumed).
    pub fn is_suspended(&self) -> bool {
        self.suspensions.last().is_some_and(|(_, to)| to.is_none())
    }

    /// The holder on a day: the latest to take over on or before it.
    pub fn holder_on(&self, d: Date) -> Option<&H> {
        self.holders.iter().rev().find(|h| h.from() <= d)
    }

    /// The holder now (the latest).
    pub fn current_holder(&self) -> Option<&H> {
        self.holders.last()
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

/// A category certified from `from` to `to` (both days included; `to` None while open). `S` is
/// where it came from (the book's `Source`; nothing, `()`, in the records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategorySpan<S = ()> {
    pub category: Category,
    pub from: Date,
    pub to: Option<Date>,
    pub source: S,
}

impl<S> CategorySpan<S> {
    /// Whether the span covers a day (`from <= d <= to`).
    pub fn covers(&self, d: Date) -> bool {
        self.from <= d && self.to.is_none_or(|to| d <= to)
    }

    /// Whether the span shares a day with `from..=to`.
    pub fn overlaps(&self, from: Date, to: Date) -> bool {
        self.from <= to && self.to.is_none_or(|t| from <= t)
    }
}

/// The queries over a recipient's certifications, in the order they were certified.
pub trait CategorySpans<S> {
    /// The first span of `category` covering `d`.
    fn on(&self, category: Category, d: Date) -> Option<&CategorySpan<S>>;
    /// Whether a span of `category` shares a day with `from..=to`.
    fn during(&self, category: Category, from: Date, to: Date) -> bool;
    /// The first span of `category` not yet ended.
    fn open(&self, category: Category) -> Option<&CategorySpan<S>>;
    /// Ends the latest open span of `category` on `on`; nothing when none is open.
    fn end(&mut self, category: Category, on: Date);
}

impl<S> CategorySpans<S> for [CategorySpan<S>] {
    fn on(&self, category: Category, d: Date) -> Option<&CategorySpan<S>> {
        self.iter().find(|c| c.category == category && c.covers(d))
    }

    fn during(&self, category: Category, from: Date, to: Date) -> bool {
        self.iter()
            .any(|c| c.category == category && c.overlaps(from, to))
    }

    fn open(&self, category: Category) -> Option<&CategorySpan<S>> {
        self.iter()
            .find(|c| c.category == category && c.to.is_none())
    }

    fn end(&mut self, category: Category, on: Date) {
        if let Some(c) = self
            .iter_mut()
            .rev()
            .find(|c| c.category == category && c.to.is_none())
        {
            c.to = Some(on);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(m: u32, d: u32) -> Date {
        Date::ymd(2023, m, d).unwrap_or(Date(chrono::NaiveDate::MIN))
    }

    #[test]
    fn a_pairing_is_active_on_its_last_day_and_on_the_day_it_resumes() {
        let cadre = Uuid::from_u128(1);
        let mut life = Lifecycle::established(day(1, 10), (cadre, day(1, 10)));
        life.suspend(day(2, 1));
        life.resume(day(3, 1));
        life.end(day(4, 1));
        assert!(!life.active_on(day(1, 9)));
        assert!(life.active_on(day(1, 10)));
        assert!(!life.active_on(day(2, 1)));
        assert!(!life.active_on(day(2, 28)));
        assert!(life.active_on(day(3, 1)));
        assert!(life.active_on(day(4, 1)));
        assert!(!life.active_on(day(4, 2)));
        assert_eq!(life.active_since(day(2, 28)), day(1, 10));
        assert_eq!(life.active_since(day(3, 1)), day(3, 1));
    }

    #[test]
    fn the_holder_on_a_day_is_the_latest_to_take_over_by_then() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut life = Lifecycle::established(day(1, 10), (a, day(1, 10)));
        life.transfer((b, day(2, 1)));
        assert_eq!(life.holder_on(day(1, 9)), None);
        assert_eq!(life.holder_on(day(1, 31)).map(Tenure::holder), Some(a));
        assert_eq!(life.holder_on(day(2, 1)).map(Tenure::holder), Some(b));
        assert_eq!(life.current_holder().map(Tenure::holder), Some(b));
    }

    #[test]
    fn a_category_span_includes_both_its_days() {
        let mut spans = [CategorySpan {
            category: Category::Orphan,
            from: day(1, 10),
            to: None,
            source: (),
        }];
        assert!(spans.open(Category::Orphan).is_some());
        spans.end(Category::Orphan, day(2, 1));
        assert!(spans.open(Category::Orphan).is_none());
        assert!(spans.on(Category::Orphan, day(1, 10)).is_some());
        assert!(spans.on(Category::Orphan, day(2, 1)).is_some());
        assert!(spans.on(Category::Orphan, day(2, 2)).is_none());
        assert!(spans.during(Category::Orphan, day(2, 1), day(3, 1)));
        assert!(!spans.during(Category::Orphan, day(2, 2), day(3, 1)));
    }
}
