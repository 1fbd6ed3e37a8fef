//! Who may do what: API tokens, roles, and the rules of access that the HTTP service enforces.
//!
//! A token is a bearer string `clg1_<token id, 32 hex>_<secret, 64 hex>`; only the SHA-256 (hex)
//! of the whole string is kept, in the `carelog.token.granted` event ([`App::create_token`]). A
//! revocation is a `carelog.token.revoked` event ([`App::revoke_token`]). Both are events like any
//! other, so an auditor can replay who could do what on any date. [`App::authenticate`] finds a
//! token in the current [`Records`]: granted, not revoked, not voided, and the hash matches.
//!
//! The roles ([`Role`]) and what they may do ([`permit`]):
//!
//! | action | recorder | supervisor | auditor | admin |
//! |---|---|---|---|---|
//! | record events | own pairings / care plans only | – | – | any |
//! | read one stream | – | yes (scoped) | yes | yes |
//! | report, projections, explain | – | yes (unscoped only) | yes | yes |
//! | claims check | – | yes (scoped) | yes | yes |
//! | file claims | – | yes (scoped) | – | yes |
//! | read the log, subscribe, export, verify, digest | – | – | yes | yes |
//! | metrics, manage tokens | – | – | – | yes |
//!
//! A recorder records only what [`Records::responsible_person`] ties to its own person on the
//! event's day: a pairing it holds then, or a care plan it is the teacher of
//! ([`authorize_record`]); a teacher, moreover, only for pupils enrolled that day at the school
//! the teacher is at ([`Records::is_for_school`], refused under [`OWN_SCHOOL_ONLY`]).
//!
//! A token is valid ([`lookup`], asked by every request and by open streams before each item)
//! while it is granted, not revoked, not expired (every grant has an expiry: `--expires-in`,
//! default 90 days; a grant without one expires 90 days after it), and its person, if any, has
//! not left the programme. Everything else (the registry, pairings themselves, claims, voids and
//! corrections, tokens) is for an admin.
//!
//! A supervisor token may carry a unit scope (`--unit`): it then reads only streams attributable
//! to that unit or a unit under it ([`App::read_stream_for`]) and only claims filed for such a
//! unit ([`App::claims_check_for`]); programme-wide figures are refused to it, since they cannot be
//! cut by unit.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::report::{ClaimsReport, ProgressFn};
use super::{App, AppError, Keep, LoggedEvent};
use crate::domain::cloudevent::IncomingEvent;
pub use crate::domain::events::DEFAULT_TOKEN_DAYS;
use crate::domain::events::{StaffRole, TokenGrantedV2, TokenRevokedV1};
use crate::domain::records::Grant;
pub use crate::domain::records::MAX_TOKEN_DAYS;
use crate::domain::{Date, DomainEvent, Records};
use crate::log::Ack;
use crate::time::{self, Instant};

pub use crate::domain::events::Role;

/// The prefix of every bearer token this build issues (the `1` is the format's version).
pub const TOKEN_PREFIX: &str = "clg1_";
/// The longest bearer string looked at; anything longer is not a token.
pub const MAX_TOKEN_BYTES: usize = 256;
/// How deep a unit tree may be walked when checking a scope (guards against a cycle).
const MAX_UNIT_DEPTH: usize = 64;
/// The most claims one scoped claims check looks up the unit of.
const MAX_SCOPED_CLAIMS: usize = 100_000;

/// Why a request may not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "no bearer token: send `Authorization: Bearer <token>` (an admin creates one with `carelog token create`)"
    )]
    Missing,
    #[error(
        "the bearer token is not one this service issued: check it was copied whole, or ask an admin for a new one"
    )]
    Unknown,
    #[error("token {0} was revoked: ask an admin for a new one")]
    Revoked(Uuid),
    #[error(
        "token {token_id} expired at {expires_at}: ask an admin for a new one (`carelog token create --expires-in DAYS`)"
    )]
    Expired { token_id: Uuid, expires_at: Instant },
    #[error(
        "token {token_id} belongs to a cadre or teacher who left the programme on {on}: it is no longer accepted"
    )]
    StaffLeft { token_id: Uuid, on: Date },
    #[error("{0}")]
    Forbidden(String),
}

impl AccessError {
    /// A short machine-readable name of the rule broken.
    pub fn rule(&self) -> &'static str {
        match self {
            AccessError::Missing => "missing_token",
            AccessError::Unknown => "unknown_token",
            AccessError::Revoked(_) => "revoked_token",
            AccessError::Expired { .. } => "expired_token",
            AccessError::StaffLeft { .. } => "staff_left",
            AccessError::Forbidden(_) => "forbidden",
        }
    }
}

/// Who is calling: a token's grant, found and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: Uuid,
    pub role: Role,
    /// The cadre or teacher a recorder's token belongs to.
    pub person_id: Option<Uuid>,
    /// A supervisor's unit scope (that unit and every unit under it).
    pub unit_id: Option<Uuid>,
}

impl Principal {
    /// The recording actor of what this principal appends (the event's `recordedby`): the person
    /// when the token has one (so a resend after the token is replaced is still a resend), else
    /// the token.
    pub fn actor(&self) -> String {
        match self.person_id {
            Some(p) => format!("{}/person/{p}", role_name(self.role)),
            None => format!("{}/token/{}", role_name(self.role), self.token_id),
        }
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Append events.
    Record,
    /// Read the whole log in order (`GET /v1/events`).
    ReadLog,
    /// Read one stream.
    ReadStream,
    /// Follow the log live.
    Subscribe,
    /// The report, projections and explain: programme-wide figures.
    ReadFigures,
    /// The claims check.
    ReadClaims,
    /// File claims (`POST /v1/claims`); a scoped supervisor only within its unit.
    FileClaims,
    /// Verify and digest.
    Verify,
    /// Export every event.
    Export,
    /// The service's metrics.
    Metrics,
    /// Create and revoke tokens.
    ManageTokens,
}

/// The name of a role, as on the command line and in the events.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Recorder => "recorder",
        Role::Supervisor => "supervisor",
        Role::Auditor => "auditor",
        Role::Admin => "admin",
    }
}

/// Parses a role name (`recorder`, `supervisor`, `auditor`, `admin`).
pub fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "recorder" => Ok(Role::Recorder),
        "supervisor" => Ok(Role::Supervisor),
        "auditor" => Ok(Role::Auditor),
        "admin" => Ok(Role::Admin),
        other => Err(format!(
            "{other:?} is not a role: use recorder, supervisor, auditor or admin"
        )),
    }
}

/// Whether a principal's role may do an action at all (scopes are checked where the data is).
pub fn permit(who: &Principal, action: Action) -> Result<(), AccessError> {
    use Action as A;
    use Role as R;
    let allowed: &[Role] = match action {
        A::Record => &[R::Recorder, R::Admin],
        A::ReadStream | A::ReadFigures | A::ReadClaims => &[R::Supervisor, R::Auditor, R::Admin],
        A::FileClaims => &[R::Supervisor, R::Admin],
        A::ReadLog | A::Subscribe | A::Export | A::Verify => &[R::Auditor, R::Admin],
        A::Metrics | A::ManageTokens => &[R::Admin],
    };
    if !allowed.contains(&who.role) {
        let names: Vec<&str> = allowed.iter().map(|r| role_name(*r)).collect();
        return Err(AccessError::Forbidden(format!(
            "a {} token may not do this (it needs one of: {})",
            role_name(who.role),
            names.join(", ")
        )));
    }
    if action == A::ReadFigures
        && let Some(unit) = who.unit_id
    {
        return Err(AccessError::Forbidden(format!(
            "the figures are programme-wide and this token is scoped to unit {unit}: read that unit's streams and claims, or ask for an unscoped token"
        )));
    }
    Ok(())
}

/// The hex SHA-256 of a bearer string: what a grant keeps.
pub fn token_hash(bearer: &str) -> String {
    hex::encode(Sha256::digest(bearer.as_bytes()))
}

/// The token id a bearer string names, if it has this build's shape.
fn token_id_of(bearer: &str) -> Option<Uuid> {
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// Compares two strings in time that does not depend on where they first differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a bearer string is a valid token at `now`, and whose: the one answer to "is this
/// token valid now", asked by every request and before each item an open stream sends. Valid:
/// granted, the secret's hash matches, not revoked, not expired, and its person (if any) has not
/// left the programme.
pub fn lookup(
    records: &Records,
    bearer: Option<&str>,
    now: &Instant,
) -> Result<Principal, AccessError> {
    let bearer = bearer.map(str::trim).filter(|b| !b.is_empty());
    let Some(bearer) = bearer else {
        return Err(AccessError::Missing);
    };
    if bearer.len() > MAX_TOKEN_BYTES {
        return Err(AccessError::Unknown);
    }
    let id = token_id_of(bearer).ok_or(AccessError::Unknown)?;
    let grant = records.tokens.get(&id).ok_or(AccessError::Unknown)?;
    if !same_secret(&grant.secret_sha256, &token_hash(bearer)) {
        return Err(AccessError::Unknown);
    }
    if let Some(refused) = no_longer_valid(records, id, grant, now) {
        return Err(refused);
    }
    Ok(Principal {
        token_id: id,
        role: grant.role,
        person_id: grant.person_id,
        unit_id: grant.unit_id,
    })
}

/// Why a granted token is no longer valid at `now`, if it is not: revoked, expired, or its
/// person has left the programme.
fn no_longer_valid(
    records: &Records,
    id: Uuid,
    grant: &Grant,
    now: &Instant,
) -> Option<AccessError> {
    if records.revoked_tokens.contains(&id) {
        return Some(AccessError::Revoked(id));
    }
    if *now >= grant.expires_at {
        return Some(AccessError::Expired {
            token_id: id,
            expires_at: grant.expires_at,
        });
    }
    let today = Date(time::shanghai_date(now));
    grant
        .person_id
        .and_then(|p| records.staff.get(&p))
        .and_then(|s| s.left)
        .filter(|on| *on <= today)
        .map(|on| AccessError::StaffLeft { token_id: id, on })
}

/// Why an access was refused: the rule, and the reason for the operator's log and the local
/// command line (it may name people and ids, which the HTTP shell never passes on: a 403 there
/// says only the rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub reason: String,
}

impl Refusal {
    pub fn new(rule: &'static str, reason: impl Into<String>) -> Self {
        Self {
            rule,
            reason: reason.into(),
        }
    }
}

/// The rule a recorder's token breaks recording what is not its own.
pub const OWN_RECORDS_ONLY: &str = "own_records_only";
/// The rule a teacher's token breaks recording for another school's pupil.
pub const OWN_SCHOOL_ONLY: &str = "own_school_only";
/// The rule a role that records nothing breaks recording.
pub const ROLE: &str = "role";
/// The rule a unit-scoped token breaks reading outside its unit.
pub const UNIT_SCOPE: &str = "unit_scope";

/// Whether one principal may record one event, given the records before it.
pub fn authorize_record(
    who: &Principal,
    records: &Records,
    incoming: &IncomingEvent,
) -> Result<(), Refusal> {
    match who.role {
        Role::Admin => Ok(()),
        Role::Recorder => {
            let Some(me) = who.person_id else {
                return Err(Refusal::new(
                    OWN_RECORDS_ONLY,
                    "this recorder token belongs to no cadre or teacher",
                ));
            };
            let day = Date(time::shanghai_date(&incoming.occurred_at));
            match records.responsible_person(&incoming.event, day) {
                Some(person) if person == me => within_own_school(records, me, incoming, day),
                Some(person) => Err(Refusal::new(
                    OWN_RECORDS_ONLY,
                    format!(
                        "{} is recorded for {person} on {day}, not for this token's {me}: a recorder records only for its own pairings and care plans",
                        incoming.event.event_type()
                    ),
                )),
                None => Err(Refusal::new(
                    OWN_RECORDS_ONLY,
                    format!(
                        "{} is not tied to one of this token's pairings or care plans on {day}: ask an admin to record it",
                        incoming.event.event_type()
                    ),
                )),
            }
        }
        other => Err(Refusal::new(
            ROLE,
            format!("a {} token may not record", role_name(other)),
        )),
    }
}

/// A teacher acts only within their own school: a school-side event recorded with a teacher's
/// token must be for a pupil enrolled, on the event's day, at the school the teacher is at.
fn within_own_school(
    records: &Records,
    me: Uuid,
    incoming: &IncomingEvent,
    day: Date,
) -> Result<(), Refusal> {
    let Some(staff) = records.staff.get(&me) else {
        return Ok(());
    };
    if staff.role != StaffRole::Teacher {
        return Ok(());
    }
    match records.is_for_school(&incoming.event, staff.unit, day) {
        Some(false) => Err(Refusal::new(
            OWN_SCHOOL_ONLY,
            format!(
                "{} is for a pupil not enrolled on {day} at the school of this token's teacher: a teacher records only for their own school's pupils",
                incoming.event.event_type()
            ),
        )),
        Some(true) | None => Ok(()),
    }
}

/// Whether `unit` is `scope` or lies under it.
pub fn unit_within(records: &Records, unit: Uuid, scope: Uuid) -> bool {
    let mut current = Some(unit);
    for _ in 0..MAX_UNIT_DEPTH {
        match current {
            None => return false,
            Some(u) if u == scope => return true,
            Some(u) => current = records.units.get(&u).and_then(|x| x.parent),
        }
    }
    false
}

fn recipient_within(records: &Records, recipient: Uuid, scope: Uuid) -> bool {
    records.recipients.get(&recipient).is_some_and(|r| {
        unit_within(records, r.unit, scope)
            || r.enrollments
                .iter()
                .any(|e| unit_within(records, e.school, scope))
    })
}

fn staff_within(records: &Records, person: Uuid, scope: Uuid) -> bool {
    records
        .staff
        .get(&person)
        .is_some_and(|s| unit_within(records, s.unit, scope))
}

/// A pairing is within a scope when its recipient is, or any cadre who has held it is.
fn pairing_within(records: &Records, pairing: Uuid, scope: Uuid) -> bool {
    records.pairings.get(&pairing).is_some_and(|p| {
        recipient_within(records, p.recipient, scope)
            || p.holders
                .iter()
                .any(|(cadre, _)| staff_within(records, *cadre, scope))
    })
}

/// Whether a stream is attributable to a unit within `scope`. `first` is the stream's first
/// event, which names what a case, plan, placement or claim belongs to.
pub fn stream_within(
    records: &Records,
    stream: &str,
    first: Option<&DomainEvent>,
    scope: Uuid,
) -> bool {
    let Some((kind, id)) = stream.split_once('-') else {
        return false;
    };
    let Ok(id) = Uuid::try_parse(id) else {
        return false;
    };
    use DomainEvent as E;
    match (kind, first) {
        ("unit", _) => unit_within(records, id, scope),
        ("staff", _) => staff_within(records, id, scope),
        ("recipient", _) => recipient_within(records, id, scope),
        ("pairing", _) => pairing_within(records, id, scope),
        ("difficulty", Some(E::DifficultyRaised(e))) => {
            pairing_within(records, e.pairing_id, scope)
        }
        ("escalation", Some(E::EscalationRaised(e))) => {
            pairing_within(records, e.pairing_id, scope)
        }
        ("care_plan", Some(E::CarePlanOpened(e))) => {
            recipient_within(records, e.pupil_id, scope)
                || staff_within(records, e.teacher_id, scope)
        }
        ("placement", Some(E::PlacementDecided(e))) => {
            recipient_within(records, e.pupil_id, scope) || unit_within(records, e.school_id, scope)
        }
        ("claim", Some(E::ClaimFiled(e))) => e
            .scope_unit_id
            .is_some_and(|u| unit_within(records, u, scope)),
        // Tokens, corrections and anything unknown are not attributable to a unit.
        _ => false,
    }
}

/// A token just created: the bearer string is shown once and kept nowhere.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewToken {
    pub token_id: Uuid,
    pub secret: String,
    pub role: Role,
    pub person_id: Option<Uuid>,
    pub unit_id: Option<Uuid>,
    /// From when the token is refused.
    pub expires_at: Instant,
    /// The log position of the grant.
    pub position: u64,
}

/// A fresh bearer string for a token id: 32 bytes from the operating system.
fn new_bearer(token_id: Uuid) -> Result<String, AppError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        AppError::Usage(format!(
            "the operating system gave no random bytes for the token's secret ({e}): retry"
        ))
    })?;
    Ok(format!(
        "{TOKEN_PREFIX}{}_{}",
        token_id.simple(),
        hex::encode(secret)
    ))
}

impl App {
    /// Finds and checks the principal of a bearer string. The outer error is the store's; the
    /// inner one says why the token is refused.
    pub fn authenticate(
        &self,
        bearer: Option<&str>,
    ) -> Result<Result<Principal, AccessError>, AppError> {
        let now = self.clock.now();
        self.with_records(|r| lookup(r, bearer, &now))
    }

    /// How many tokens are valid now (granted, not revoked, not expired, their person still in
    /// the programme).
    pub fn live_tokens(&self) -> Result<usize, AppError> {
        let now = self.clock.now();
        self.with_records(|r| {
            r.tokens
                .iter()
                .filter(|(id, grant)| no_longer_valid(r, **id, grant, &now).is_none())
                .count()
        })
    }

    /// Grants a new token (an event) and returns its bearer string, shown once. A recorder's
    /// token needs the cadre or teacher it belongs to; a unit scope is for supervisors. The token
    /// expires `expires_in_days` (1 to [`MAX_TOKEN_DAYS`]) from now.
    pub fn create_token(
        &self,
        role: Role,
        person_id: Option<Uuid>,
        unit_id: Option<Uuid>,
        expires_in_days: i64,
        actor: &str,
    ) -> Result<NewToken, AppError> {
        if !(1..=MAX_TOKEN_DAYS).contains(&expires_in_days) {
            return Err(AppError::Usage(format!(
                "a token expires in 1 to {MAX_TOKEN_DAYS} days, not {expires_in_days}: give --expires-in DAYS within that"
            )));
        }
        match (role, person_id) {
            (Role::Recorder, None) => {
                return Err(AppError::Usage(
                    "a recorder's token belongs to a cadre or teacher: give --cadre ID".into(),
                ));
            }
            (Role::Recorder, Some(_)) | (_, None) => {}
            (other, Some(_)) => {
                return Err(AppError::Usage(format!(
                    "--cadre is for recorder tokens, not {}",
                    role_name(other)
                )));
            }
        }
        if unit_id.is_some() && role != Role::Supervisor {
            return Err(AppError::Usage(format!(
                "--unit scopes supervisor tokens, not {}",
                role_name(role)
            )));
        }
        let token_id = Uuid::now_v7();
        let secret = new_bearer(token_id)?;
        let granted_at = self.clock.now();
        let expires_at = granted_at + chrono::Duration::days(expires_in_days);
        let event = DomainEvent::TokenGranted(TokenGrantedV2 {
            token_id,
            secret_sha256: token_hash(&secret),
            role,
            person_id,
            unit_id,
            expires_at: Some(expires_at),
        });
        let acks = self.append_own_at(event, granted_at, actor)?;
        Ok(NewToken {
            token_id,
            secret,
            role,
            person_id,
            unit_id,
            expires_at,
            position: acks.position,
        })
    }

    /// Revokes a token (an event); from then on it is refused.
    pub fn revoke_token(&self, token_id: Uuid, reason: &str, actor: &str) -> Result<Ack, AppError> {
        let event = DomainEvent::TokenRevoked(TokenRevokedV1 {
            token_id,
            reason: reason.to_string(),
        });
        self.append_own(event, actor)
    }

    /// Appends one event the application makes itself, happening now.
    fn append_own(&self, event: DomainEvent, actor: &str) -> Result<Ack, AppError> {
        self.append_own_at(event, self.clock.now(), actor)
    }

    /// Appends one event the application makes itself, happening at `occurred_at`.
    fn append_own_at(
        &self,
        event: DomainEvent,
        occurred_at: Instant,
        actor: &str,
    ) -> Result<Ack, AppError> {
        let incoming = IncomingEvent::new(event, occurred_at);
        let acks = self.append(vec![incoming], actor, Keep::default(), &|_, _| Ok(()))?;
        acks.into_iter()
            .next()
            .ok_or_else(|| AppError::Usage("the log answered no ack for the event".into()))
    }

    /// Appends events on behalf of a principal: the actor is the principal, never a field the
    /// caller sends, and each event must pass [`authorize_record`].
    pub fn append_as(
        &self,
        who: &Principal,
        incoming: Vec<IncomingEvent>,
    ) -> Result<Vec<Ack>, AppError> {
        self.append(
            incoming,
            &who.actor(),
            Keep {
                recorded_by: false,
                recorded_at: false,
            },
            &|records, e| authorize_record(who, records, e),
        )
    }

    /// One stream for a principal: a scoped supervisor reads only streams of its unit.
    pub fn read_stream_for(
        &self,
        who: &Principal,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, AppError> {
        if let Some(scope) = who.unit_id {
            let first = self.read_stream(stream, 1, 1)?.into_iter().next();
            let within = self.with_records(|r| {
                stream_within(r, stream, first.as_ref().map(|f| &f.event), scope)
            })?;
            if !within {
                return Err(AppError::Forbidden {
                    index: None,
                    refusal: Refusal::new(
                        UNIT_SCOPE,
                        format!(
                            "stream {stream:?} is not attributable to unit {scope} or a unit under it, the scope of this token"
                        ),
                    ),
                });
            }
        }
        self.read_stream(stream, from_version, limit)
    }

    /// The claims check for a principal: a scoped supervisor sees only claims filed for its unit
    /// or a unit under it.
    pub fn claims_check_for(
        &self,
        who: &Principal,
        progress: ProgressFn<'_>,
    ) -> Result<ClaimsReport, AppError> {
        let checks = self.claims_check(progress)?;
        let Some(scope) = who.unit_id else {
            return Ok(ClaimsReport::new(None, checks));
        };
        let mut kept = Vec::new();
        for c in checks.into_iter().take(MAX_SCOPED_CLAIMS) {
            let stream = format!("claim-{}", c.claim_id);
            let first = self.read_stream(&stream, 1, 1)?.into_iter().next();
            let within = self.with_records(|r| {
                stream_within(r, &stream, first.as_ref().map(|f| &f.event), scope)
            })?;
            if within {
                kept.push(c);
            }
        }
        Ok(ClaimsReport::new(Some(scope), kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_string_names_its_token_and_only_its_hash_matches() {
        let id = Uuid::now_v7();
        let bearer = new_bearer(id).unwrap();
        assert_eq!(token_id_of(&bearer), Some(id));
        assert_eq!(token_hash(&bearer).len(), 64);
        assert!(token_id_of("clg1_nothex_00").is_none());
        assert!(token_id_of(&bearer.replace("clg1_", "clg2_")).is_none());
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }

    #[test]
    fn roles_may_do_what_the_table_says() {
        let who = |role, unit_id| Principal {
            token_id: Uuid::nil(),
            role,
            person_id: None,
            unit_id,
        };
        assert!(permit(&who(Role::Recorder, None), Action::Record).is_ok());
        assert!(permit(&who(Role::Auditor, None), Action::Record).is_err());
        assert!(permit(&who(Role::Supervisor, None), Action::ReadLog).is_err());
        assert!(permit(&who(Role::Supervisor, None), Action::ReadFigures).is_ok());
        assert!(
            permit(
                &who(Role::Supervisor, Some(Uuid::nil())),
                Action::ReadFigures
            )
            .is_err()
        );
        assert!(permit(&who(Role::Auditor, None), Action::Metrics).is_err());
        assert!(permit(&who(Role::Admin, None), Action::Metrics).is_ok());
    }
}
