//! The HTTP service's access tokens: granted (a hashed secret, a role, for a person or a unit)
//! and revoked. `app::access` reads [`Records::tokens`] and [`Records::revoked_tokens`].

use uuid::Uuid;

use super::corrections::References;
use super::rules::{err, new_id};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::DomainEvent;
use crate::domain::events::Role;

pub(super) fn references(event: &DomainEvent) -> References {
    use DomainEvent as E;
    match event {
        E::TokenGranted(e) => References::creates(e.token_id, e.person_id.into_iter().collect()),
        E::TokenRevoked(e) => References::change(vec![e.token_id]),
        other => {
            not_routed_here(Aggregate::Token, other);
            References::change(Vec::new())
        }
    }
}

impl Records {
    pub(super) fn check_token(&self, event: &DomainEvent) -> Result<(), DomainError> {
        use DomainEvent as E;
        match event {
            E::TokenGranted(e) => {
                new_id(&self.tokens, "data.token_id", e.token_id, "token")?;
                if e.secret_sha256.len() != 64
                    || !e.secret_sha256.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return err("data.secret_sha256", Rule::Invalid, "64 hex digits");
                }
                if e.role == Role::Recorder {
                    let Some(p) = e.person_id else {
                        return err(
                            "data.person_id",
                            Rule::Invalid,
                            "a recorder's token belongs to a cadre or teacher",
                        );
                    };
                    if !self.staff.contains_key(&p) {
                        return err(
                            "data.person_id",
                            Rule::UnknownId,
                            format!("unknown cadre or teacher {p}"),
                        );
                    }
                }
                if let Some(u) = e.unit_id {
                    self.unit("data.unit_id", u)?;
                }
            }
            E::TokenRevoked(e) => {
                if !self.tokens.contains_key(&e.token_id) {
                    return err(
                        "data.token_id",
                        Rule::UnknownId,
                        format!("unknown token {}", e.token_id),
                    );
                }
                if self.revoked_tokens.contains(&e.token_id) {
                    return err(
                        "data.token_id",
                        Rule::AlreadyClosed,
                        "the token is already revoked",
                    );
                }
            }
            other => not_routed_here(Aggregate::Token, other),
        }
        Ok(())
    }

    pub(super) fn apply_token(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::TokenGranted(e) => {
                self.tokens.insert(e.token_id, e.clone());
            }
            E::TokenRevoked(e) => {
                self.revoked_tokens.insert(e.token_id);
            }
            other => not_routed_here(Aggregate::Token, other),
        }
    }

    /// A voided grant takes the token out.
    pub(super) fn forget_token(&mut self, entity: Uuid) {
        self.tokens.remove(&entity);
    }
}
