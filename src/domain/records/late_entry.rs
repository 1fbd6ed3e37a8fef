//! Late entries (补录): an event recorded more than a window of days after the day it happened
//! needs a reason, because the figures of that day's period may already have been filed. The
//! reason is its own event, `carelog.late_entry.noted`, written in the same batch right after
//! the late event (the app makes it from the event's `lateentryreason`, or a restore carries
//! it), so the late event's bytes are those of any other event and `explain` and the claims
//! check show the reason beside it.
//!
//! The window is the caller's setting ([`check_recorded_in_time`] takes it): the HTTP service
//! keeps one (31 days unless told otherwise); the command line, a local operator's, none unless
//! asked.

use super::corrections::{References, Shape};
use super::rules::{err, non_empty};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::{Date, DomainEvent};
use crate::time::{self, Instant};

/// The window the HTTP service keeps unless told otherwise, in days.
pub const LATE_ENTRY_WINDOW_DAYS_DEFAULT: u32 = 31;

/// The field a refusal names: the CloudEvents extension that carries the reason.
pub const LATE_ENTRY_REASON_FIELD: &str = "lateentryreason";

pub(super) fn references(event: &DomainEvent) -> References {
    if !matches!(event, DomainEvent::LateEntryNoted(_)) {
        not_routed_here(Aggregate::LateEntry, event);
    }
    // Said about another event, like a void: never voided or corrected itself.
    References::new(Shape::Correction, Vec::new())
}

/// Whether an event recorded at `recorded_at` for `occurred_at` is within `window_days` (Asia/
/// Shanghai days) or carries a reason; a note itself is never late.
pub fn check_recorded_in_time(
    event: &DomainEvent,
    occurred_at: &Instant,
    recorded_at: &Instant,
    window_days: u32,
    has_reason: bool,
) -> Result<(), DomainError> {
    if has_reason || matches!(event, DomainEvent::LateEntryNoted(_)) {
        return Ok(());
    }
    let happened = Date(time::shanghai_date(occurred_at));
    let recorded = Date(time::shanghai_date(recorded_at));
    let days_late = (recorded.0 - happened.0).num_days();
    if days_late > i64::from(window_days) {
        return err(
            LATE_ENTRY_REASON_FIELD,
            Rule::LateEntry,
            format!(
                "the event happened on {happened} and is recorded on {recorded}, {days_late} days later; past {window_days} days a late entry needs a reason: give \"{LATE_ENTRY_REASON_FIELD}\": \"why it is recorded only now\""
            ),
        );
    }
    Ok(())
}

impl Records {
    pub(super) fn check_late_entry(&self, event: &DomainEvent) -> Result<(), DomainError> {
        let DomainEvent::LateEntryNoted(e) = event else {
            not_routed_here(Aggregate::LateEntry, event);
            return Ok(());
        };
        non_empty("data.reason", &e.reason)?;
        if !self.events.contains_key(&e.target_event_id) {
            return err(
                "data.target_event_id",
                Rule::UnknownId,
                format!(
                    "no event {} in the log: a note goes right after the late event, in its batch",
                    e.target_event_id
                ),
            );
        }
        Ok(())
    }
}
