//! Claims: a figure someone reported (a metric, a scope, a period, a value), filed once per
//! claim id so the report can set it beside what the log says.

use super::corrections::References;
use super::rules::{MAX_CLAIM_VALUE, at_most, err, non_empty, not_before, not_future};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::{Date, DomainEvent};

pub(super) fn references(event: &DomainEvent) -> References {
    match event {
        DomainEvent::ClaimFiled(e) => References::countable(vec![e.claim_id]),
        other => {
            not_routed_here(Aggregate::Claim, other);
            References::countable(Vec::new())
        }
    }
}

impl Records {
    pub(super) fn check_claim(
        &self,
        event: &DomainEvent,
        today: Date,
        correcting: bool,
    ) -> Result<(), DomainError> {
        let DomainEvent::ClaimFiled(e) = event else {
            not_routed_here(Aggregate::Claim, event);
            return Ok(());
        };
        if !correcting && self.claims.contains(&e.claim_id) {
            return err(
                "data.claim_id",
                Rule::AlreadyExists,
                format!("claim {} is already filed", e.claim_id),
            );
        }
        if e.metric.is_empty()
            || !e
                .metric
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return err(
                "data.metric",
                Rule::Invalid,
                "a metric name is lower-case snake_case (see `carelog report --json`)",
            );
        }
        if let Some(u) = e.scope_unit_id {
            self.unit("data.scope_unit_id", u)?;
        }
        if let (Some(from), Some(to)) = (e.period_from, e.period_to) {
            not_before("data.period_to", to, from, "period_from")?;
        }
        if e.value < 0 {
            return err(
                "data.value",
                Rule::NotPositive,
                "a reported figure is not negative",
            );
        }
        at_most(
            "data.value",
            e.value,
            MAX_CLAIM_VALUE,
            "(a reported figure)",
        )?;
        non_empty("data.source_document", &e.source_document)?;
        not_future("data.reported_on", e.reported_on, today)?;
        Ok(())
    }

    pub(super) fn apply_claim(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::ClaimFiled(e) => {
                self.claims.insert(e.claim_id);
            }
            other => not_routed_here(Aggregate::Claim, other),
        }
    }
}
