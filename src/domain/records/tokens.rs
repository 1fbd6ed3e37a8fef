//! The HTTP service's access tokens: granted (a hashed secret, a role, for a person or a unit,
//! until an expiry) and revoked. `app::access` reads [`Records::tokens`] and
//! [`Records::revoked_tokens`].
//!
//! Every token expires: a grant's `expires_at` lies after the grant and at most
//! [`MAX_TOKEN_DAYS`] later; a grant without one (every v1 grant) expires
//! [`DEFAULT_TOKEN_DAYS`] after it occurred. No token is granted to a person who has left the
//! programme.

use uuid::Uuid;

use super::corrections::References;
use super::rules::{MAX_TOKEN_DAYS, err, new_id};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::DomainEvent;
use crate::domain::events::{DEFAULT_TOKEN_DAYS, Role, TokenGrantedV2};
use crate::time::Instant;

/// A granted token as the records keep it: the grant, with its expiry settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Hex SHA-256 of the bearer string.
    pub secret_sha256: String,
    pub role: Role,
    pub person_id: Option<Uuid>,
    pub unit_id: Option<Uuid>,
    /// From this instant on the token is refused.
    pub expires_at: Instant,
}

/// When a grant that occurred at `granted_at` expires.
pub fn expiry_of(grant: &TokenGrantedV2, granted_at: &Instant) -> Instant {
    grant
        .expires_at
        .unwrap_or(*granted_at + chrono::Duration::days(DEFAULT_TOKEN_DAYS))
}

/// A grant's expiry lies after the grant and no more than [`MAX_TOKEN_DAYS`] after it.
pub(super) fn check_expiry(
    grant: &TokenGrantedV2,
    granted_at: &Instant,
) -> Result<(), DomainError> {
    let Some(expires_at) = grant.expires_at else {
        return Ok(());
    };
    if expires_at <= *granted_at {
        return err(
            "data.expires_at",
            Rule::BeforeStart,
            format!(
                "{expires_at} is not after the grant ({granted_at}): a token expires after it is granted"
            ),
        );
    }
    if expires_at > *granted_at + chrono::Duration::days(MAX_TOKEN_DAYS) {
        return err(
            "data.expires_at",
            Rule::TooLarge,
            format!(
                "{expires_at} is more than {MAX_TOKEN_DAYS} days after the grant ({granted_at}): grant a shorter token and renew it"
            ),
        );
    }
    Ok(())
}

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
                if let Some(left) = e
                    .person_id
                    .and_then(|p| self.staff.get(&p))
                    .and_then(|s| s.left)
                {
                    return err(
                        "data.person_id",
                        Rule::StaffLeft,
                        format!(
                            "the person left the programme on {left}: no token is granted to someone who has left"
                        ),
                    );
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

    pub(super) fn apply_token(&mut self, event: &DomainEvent, occurred_at: &Instant) {
        use DomainEvent as E;
        match event {
            E::TokenGranted(e) => {
                let grant = Grant {
                    secret_sha256: e.secret_sha256.clone(),
                    role: e.role,
                    person_id: e.person_id,
                    unit_id: e.unit_id,
                    expires_at: expiry_of(e, occurred_at),
                };
                self.tokens.insert(e.token_id, grant);
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
