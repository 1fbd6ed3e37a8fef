//! The projection engine: pure folds over the log, replayed in one pass, as of any position or
//! recorded time, with checkpoints and provenance.
//!
//! A projection ([`Projection`]) is a name, a version, a serde state and a pure
//! `apply(state, event)`: no IO, no clock, no randomness. Everything else is the engine's:
//! reading the log ([`replay`]), decoding each event once and feeding every projection, finding
//! the position for an "as of" time ([`position_as_of`]), loading and saving checkpoints
//! ([`checkpoint`]). Questions about a state ("totals for 2023", "who is overdue on a date") are
//! answered by the projection's `query`, from the state alone, with a [`Query`].
//!
//! Beside the states the engine keeps one [`PairingBook`] (`book.rs`: every pairing, recipient
//! and staff member with their lifecycles), folded before the projections see each event and
//! checkpointed like them. Projections read it (`EventView::book` in `apply`, the `book`
//! argument of `query` and `figures`) instead of each keeping a copy in its state.
//!
//! The projections themselves live in `projections/` at the top of the repository, one file each,
//! listed in `projections/mod.rs`'s registry.

pub mod append_map;
pub mod book;
pub mod checkpoint;
pub mod engine;
pub mod timeline;

use std::any::Any;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::domain::{Date, DomainEvent, Money};
use crate::time::Instant;

pub use book::PairingBook;
pub use engine::{AsOf, Progress, Rebuilt, position_as_of, replay};
pub use timeline::Timeline;

/// One event as a projection sees it: decoded once by the engine, shared by all projections.
#[derive(Clone, Copy)]
pub struct EventView<'a> {
    pub position: u64,
    pub event_id: Uuid,
    pub occurred_at: &'a Instant,
    /// The day it happened, in Asia/Shanghai: what periods are counted in.
    pub occurred_on: Date,
    pub recorded_at: &'a Instant,
    pub recorded_by: &'a str,
    pub event: &'a DomainEvent,
    /// The shared book with this event already folded in (the engine folds the book first).
    pub book: &'a PairingBook,
}

impl std::fmt::Debug for EventView<'_> {
    /// Everything but the book's content (the whole programme's registry): its size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventView")
            .field("position", &self.position)
            .field("event_id", &self.event_id)
            .field("occurred_at", &self.occurred_at)
            .field("occurred_on", &self.occurred_on)
            .field("recorded_at", &self.recorded_at)
            .field("recorded_by", &self.recorded_by)
            .field("event", &self.event)
            .field("book_pairings", &self.book.pairings.len())
            .finish()
    }
}

impl EventView<'_> {
    /// The event's id and position, for provenance.
    pub fn source(&self) -> Source {
        Source {
            id: self.event_id,
            position: self.position,
        }
    }
}

/// An event behind a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Source {
    pub id: Uuid,
    pub position: u64,
}

/// A period of occurred days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from: Date,
    pub to: Date,
}

impl Period {
    pub fn contains(&self, d: Date) -> bool {
        self.from <= d && d <= self.to
    }

    /// Parses `2023-01-01..2023-12-31` (either end may be empty: open).
    pub fn parse(text: &str) -> Option<Period> {
        let (a, b) = text.split_once("..")?;
        let from = if a.is_empty() {
            Date::ymd(1900, 1, 1)?
        } else {
            Date::parse(a)?
        };
        let to = if b.is_empty() {
            Date::ymd(2200, 12, 31)?
        } else {
            Date::parse(b)?
        };
        (from <= to).then_some(Period { from, to })
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.from, self.to)
    }
}

/// What a question about a projection's state is restricted to.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Count only what happened in this period (occurred days).
    pub period: Option<Period>,
    /// The day "now" means for states on a date (active pairings, census, overdue): the end of
    /// the period, or the as-of day, or the last event's day.
    pub on: Option<Date>,
    /// Extra parameters by name (e.g. `days` for coverage, `deadline_days` for escalations).
    pub params: std::collections::BTreeMap<String, String>,
}

impl Query {
    pub fn counts(&self, d: Date) -> bool {
        self.period.is_none_or(|p| p.contains(d))
    }

    pub fn param_u32(&self, name: &str, default: u32) -> u32 {
        self.params
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// A figure with the events behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure {
    pub metric: String,
    /// The sum did not fit an i64: `value` means nothing, and the app answers an error naming
    /// the figure instead of a number ([`FenSum`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflowed: bool,
    pub value: i64,
    /// The events that make up the value.
    pub events: Vec<Source>,
    /// Events that were voided or corrected and so changed the value, with the void/correction.
    pub adjustments: Vec<Adjustment>,
}

/// A sum of fen (or of counts) that never wraps: once an addition overflows it stays
/// overflowed, and shows as `null` in a projection's view ([`Money::checked_add`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenSum(Option<Money>);

impl Default for FenSum {
    fn default() -> Self {
        FenSum(Some(Money::ZERO))
    }
}

impl FenSum {
    pub fn add(&mut self, fen: i64) {
        self.0 = self.0.and_then(|sum| sum.checked_add(Money(fen)));
    }

    /// The sum, or None when it overflowed.
    pub fn value(self) -> Option<i64> {
        self.0.map(Money::fen)
    }

    /// The sum as JSON: a number, or `null` when it overflowed.
    pub fn to_json(self) -> serde_json::Value {
        self.value()
            .map_or(serde_json::Value::Null, serde_json::Value::from)
    }

    /// The sum of some amounts.
    pub fn of(amounts: impl IntoIterator<Item = i64>) -> Self {
        let mut sum = FenSum::default();
        for a in amounts {
            sum.add(a);
        }
        sum
    }

    /// A figure of this sum: `overflowed` set, and 0 for a value, when it did not fit.
    pub fn figure(self, metric: &str, events: Vec<Source>, adjustments: Vec<Adjustment>) -> Figure {
        Figure {
            metric: metric.to_string(),
            overflowed: self.0.is_none(),
            value: self.value().unwrap_or(0),
            events,
            adjustments,
        }
    }
}

impl Serialize for FenSum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

/// The key of a projection's view listing the sums that overflowed, present only when one did
/// (the app refuses such a view, naming them).
pub const OVERFLOWED_KEY: &str = "overflowed";

/// A void or correction that took an event out of a figure or changed its contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    pub target: Source,
    pub by: Source,
    pub kind: AdjustmentKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    Voided,
    Corrected,
}

/// A projection: a pure fold. See `projections/README.md` for a worked example.
pub trait Projection: Send + Sync + 'static {
    /// The name on the command line (`carelog project NAME`).
    const NAME: &'static str;
    /// Bumped whenever `apply` or `State` changes: old checkpoints are then never used.
    const VERSION: u32;
    /// One line on what it answers.
    const ABOUT: &'static str;
    type State: Default + Clone + Serialize + DeserializeOwned + Send + 'static;

    /// Folds one event in. Pure: no IO, no clock, no randomness.
    fn apply(state: &mut Self::State, event: &EventView<'_>);

    /// Answers from the state and the shared book as of the same position: a JSON view for
    /// `carelog project NAME --json`.
    fn query(state: &Self::State, book: &PairingBook, query: &Query) -> serde_json::Value;

    /// The figures this projection computes (for the report and `explain`), with provenance.
    fn figures(_state: &Self::State, _book: &PairingBook, _query: &Query) -> Vec<Figure> {
        Vec::new()
    }
}

/// A projection with its types erased, so the engine can hold a list of them.
pub trait AnyProjection: Send + Sync {
    fn name(&self) -> &'static str;
    fn version(&self) -> u32;
    fn about(&self) -> &'static str;
    fn new_state(&self) -> Box<dyn Any + Send>;
    /// A copy of a state (cheap: the maps states are made of share with their clones).
    fn clone_state(&self, state: &(dyn Any + Send)) -> Box<dyn Any + Send>;
    fn apply(&self, state: &mut (dyn Any + Send), event: &EventView<'_>);
    fn encode_state(&self, state: &(dyn Any + Send)) -> Result<Vec<u8>, crate::codec::CodecError>;
    fn decode_state(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, crate::codec::CodecError>;
    fn query(
        &self,
        state: &(dyn Any + Send),
        book: &PairingBook,
        query: &Query,
    ) -> serde_json::Value;
    fn figures(&self, state: &(dyn Any + Send), book: &PairingBook, query: &Query) -> Vec<Figure>;
}

/// The adapter from a [`Projection`] to [`AnyProjection`].
pub struct Registered<P: Projection>(std::marker::PhantomData<P>);

impl<P: Projection> Registered<P> {
    pub fn boxed() -> Box<dyn AnyProjection> {
        Box::new(Registered::<P>(std::marker::PhantomData))
    }
}

fn state_of<P: Projection>(state: &(dyn Any + Send)) -> &P::State {
    // The engine only ever pairs a projection with a state it made: a mismatch is a bug.
    match state.downcast_ref::<P::State>() {
        Some(s) => s,
        None => panic!(
            "projection {} was handed another projection's state",
            P::NAME
        ),
    }
}

impl<P: Projection> AnyProjection for Registered<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn version(&self) -> u32 {
        P::VERSION
    }
    fn about(&self) -> &'static str {
        P::ABOUT
    }
    fn new_state(&self) -> Box<dyn Any + Send> {
        Box::new(P::State::default())
    }
    fn clone_state(&self, state: &(dyn Any + Send)) -> Box<dyn Any + Send> {
        Box::new(state_of::<P>(state).clone())
    }
    fn apply(&self, state: &mut (dyn Any + Send), event: &EventView<'_>) {
        match state.downcast_mut::<P::State>() {
            Some(s) => P::apply(s, event),
            None => panic!(
                "projection {} was handed another projection's state",
                P::NAME
            ),
        }
    }
    fn encode_state(&self, state: &(dyn Any + Send)) -> Result<Vec<u8>, crate::codec::CodecError> {
        crate::codec::encode_state("projection state", state_of::<P>(state))
    }
    fn decode_state(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, crate::codec::CodecError> {
        let s: P::State = crate::codec::decode_state("projection state", bytes)?;
        Ok(Box::new(s))
    }
    fn query(
        &self,
        state: &(dyn Any + Send),
        book: &PairingBook,
        query: &Query,
    ) -> serde_json::Value {
        P::query(state_of::<P>(state), book, query)
    }
    fn figures(&self, state: &(dyn Any + Send), book: &PairingBook, query: &Query) -> Vec<Figure> {
        P::figures(state_of::<P>(state), book, query)
    }
}
