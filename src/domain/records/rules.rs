//! The checks every aggregate shares: the refusal constructor [`err`], a known or a new id, a
//! day not in the future or not before another, a non-empty text, the money bound.

use std::collections::HashMap;

use uuid::Uuid;

use super::{DomainError, Rule};
use crate::domain::{Date, Money};

/// The most one event may carry in money (10 billion 元), so that no total of a realistic log can
/// overflow an i64 of fen.
pub const MAX_MONEY_FEN: i64 = 1_000_000_000_000;

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

pub(super) fn at_most_max_money(field: &'static str, amount: Money) -> Result<(), DomainError> {
    if amount.fen() > MAX_MONEY_FEN {
        return err(
            field,
            Rule::Invalid,
            format!("one event carries at most {MAX_MONEY_FEN} fen"),
        );
    }
    Ok(())
}
