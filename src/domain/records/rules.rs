//! The checks every aggregate shares: the refusal constructor [`err`], a known or a new id, a
//! day not in the future or not before another, a non-empty text, and the bounds on every
//! number a person types ([`at_most`] and the `MAX_*` constants, each refused as
//! [`Rule::TooLarge`] naming its field).

use std::collections::HashMap;

use uuid::Uuid;

use super::{DomainError, Rule};
use crate::domain::{Date, Money};

/// The most one event may carry in money: 100,000,000 fen (1,000,000 元), far above any one gift
/// or payment of the programme (the demo's largest is under 1,000 元), so that a mistyped amount
/// is refused and a total of the log needs about 92 billion events to overflow an i64 of fen
/// (the projections' sums are checked anyway).
pub const MAX_MONEY_FEN: i64 = 100_000_000;
/// The longest one contact may be said to have taken: a day.
pub const MAX_CONTACT_MINUTES: u32 = 1_440;
/// The most items of goods one gift may count.
pub const MAX_GOODS_QUANTITY: u32 = 1_000_000;
/// The largest figure a claim may report (a count, or a programme's total in fen: 10 billion 元).
pub const MAX_CLAIM_VALUE: i64 = 1_000_000_000_000;
/// The longest a token may be granted for, in days (ten years); the default is 90.
pub const MAX_TOKEN_DAYS: i64 = 3_650;

pub(super) fn err<T>(
    field: &'static str,
    rule: Rule,
    detail: impl Into<String>,
) -> Result<T, DomainError> {
    Err(DomainError {
        field,
        rule,
        detail: detail.into(),
    })
}

/// An entity the event names, or an `UnknownId` refusal naming the field.
pub(super) fn known<'a, T>(
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

/// An id the event creates: not nil, not taken.
pub(super) fn new_id<T>(
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

pub(super) fn not_future(field: &'static str, d: Date, today: Date) -> Result<(), DomainError> {
    if d > today {
        return err(
            field,
            Rule::InFuture,
            format!("{d} is in the future (today is {today})"),
        );
    }
    Ok(())
}

pub(super) fn not_before(
    field: &'static str,
    d: Date,
    start: Date,
    what: &str,
) -> Result<(), DomainError> {
    if d < start {
        return err(
            field,
            Rule::BeforeStart,
            format!("{d} is before {what} ({start})"),
        );
    }
    Ok(())
}

pub(super) fn non_empty(field: &'static str, text: &str) -> Result<(), DomainError> {
    if text.trim().is_empty() {
        return err(field, Rule::Invalid, "must not be empty");
    }
    if text.len() > 4096 {
        return err(field, Rule::Invalid, "must be at most 4096 bytes");
    }
    Ok(())
}

/// A typed number no larger than its bound, or a `TooLarge` refusal naming the field.
pub(super) fn at_most<N: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: N,
    max: N,
    unit: &str,
) -> Result<(), DomainError> {
    if value > max {
        return err(
            field,
            Rule::TooLarge,
            format!("{value} is more than the most allowed, {max} {unit}: check the figure"),
        );
    }
    Ok(())
}

pub(super) fn at_most_max_money(field: &'static str, amount: Money) -> Result<(), DomainError> {
    at_most(
        field,
        amount.fen(),
        MAX_MONEY_FEN,
        "fen (1,000,000 元) in one event",
    )
}
