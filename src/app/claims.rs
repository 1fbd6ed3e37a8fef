//! Filing claims: a figure a unit reported, turned into `carelog.claim.filed` events, many at
//! once and all or none. The one way in for `claims file`, `claims import` and `POST /v1/claims`.
//!
//! A [`ClaimInput`] comes typed (the HTTP body) or as text fields ([`ClaimInput::from_text`],
//! the command line and a CSV row): both shells name the fields alike (`metric`, `period_from`,
//! `period_to`, `value`, `comparison`, `scope`, `reported_on`, `source`), and every refusal names
//! one of them, with the claim's index in the batch. The domain (`records/claims.rs`) holds the
//! rules of the event; this module adds the rules of filing: the metric is one of the report's
//! ([`METRICS`]), a period is given, and a scoped supervisor files only within its unit.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::{self, Principal, Refusal, UNIT_SCOPE};
use super::report::{METRICS, metric_def};
use super::{App, AppError, Keep, UNDO_BATCH_EVENTS_MAX};
use crate::domain::cloudevent::IncomingEvent;
use crate::domain::events::{ClaimFiledV1, Comparison};
use crate::domain::records::{DomainError, Rule};
use crate::domain::{Date, DomainEvent, Records};

/// The largest value a claim may report (the domain's bound).
pub use crate::domain::records::MAX_CLAIM_VALUE;

/// The most claims one batch files (one CSV file, one request).
pub const MAX_CLAIMS_PER_BATCH: usize = UNDO_BATCH_EVENTS_MAX;

/// The event type every claim is filed as.
const CLAIM_EVENT: &str = "carelog.claim.filed";

/// The columns of a claims CSV, in the order `claims import` documents them.
pub const CLAIM_FIELDS: &[&str] = &[
    "metric",
    "period_from",
    "period_to",
    "value",
    "comparison",
    "scope",
    "reported_on",
    "source",
];

/// One claim to file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimInput {
    /// A report metric (`carelog report --json` lists them).
    pub metric: String,
    pub period_from: Date,
    pub period_to: Date,
    pub value: i64,
    /// `exactly` unless given.
    #[serde(default = "exactly")]
    pub comparison: Comparison,
    /// The unit the figure is for (its sub-units included); none for the whole programme.
    #[serde(default)]
    pub scope: Option<Uuid>,
    /// The day the figure was reported.
    pub reported_on: Date,
    /// The document the figure comes from.
    pub source: String,
}

fn exactly() -> Comparison {
    Comparison::Exactly
}

/// A claim filed: its id, its log position and what was filed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiledClaim {
    /// Its place in the batch (0 first).
    pub index: usize,
    pub claim_id: Uuid,
    pub position: u64,
    #[serde(flatten)]
    pub claim: ClaimInput,
}

fn refused(field: &'static str, rule: Rule, detail: impl Into<String>) -> DomainError {
    DomainError {
        field,
        rule,
        detail: detail.into(),
    }
}

fn date_field(field: &'static str, text: &str) -> Result<Date, DomainError> {
    Date::parse(text.trim()).ok_or_else(|| {
        refused(
            field,
            Rule::Invalid,
            format!("{text:?} is not a date: write YYYY-MM-DD"),
        )
    })
}

/// Parses a comparison's name (`exactly`, `at_least`, `more_than`, `at_most`).
pub fn parse_comparison(text: &str) -> Result<Comparison, DomainError> {
    match text.trim() {
        "" | "exactly" => Ok(Comparison::Exactly),
        "at_least" => Ok(Comparison::AtLeast),
        "more_than" => Ok(Comparison::MoreThan),
        "at_most" => Ok(Comparison::AtMost),
        other => Err(refused(
            "comparison",
            Rule::Invalid,
            format!("{other:?} is not a comparison: use exactly, at_least, more_than or at_most"),
        )),
    }
}

/// Splits `FROM..TO` into its two dates' text.
fn split_period(text: &str) -> Result<(&str, &str), DomainError> {
    text.split_once("..").ok_or_else(|| {
        refused(
            "period",
            Rule::Invalid,
            format!("{text:?} is not a period: write FROM..TO, e.g. 2023-01-01..2023-06-30"),
        )
    })
}

impl ClaimInput {
    /// A claim from text fields (a CSV row, command-line options): `field(name)` gives the text
    /// of a field, None when it is absent. Empty optional fields are absent. A `period` field
    /// (`FROM..TO`) stands for `period_from` and `period_to`.
    pub fn from_text<'a>(
        field: impl Fn(&'static str) -> Option<&'a str>,
    ) -> Result<ClaimInput, DomainError> {
        let required = |name: &'static str| {
            field(name)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| refused(name, Rule::Invalid, "is required"))
        };
        let optional = |name: &'static str| field(name).map(str::trim).filter(|t| !t.is_empty());
        let metric = required("metric")?.to_string();
        let (from_text, to_text) = match optional("period") {
            Some(period) => split_period(period)?,
            None => (required("period_from")?, required("period_to")?),
        };
        let period_from = date_field("period_from", from_text)?;
        let period_to = date_field("period_to", to_text)?;
        let value_text = required("value")?;
        let value: i64 = value_text.parse().map_err(|_| {
            refused(
                "value",
                Rule::Invalid,
                format!("{value_text:?} is not a whole number"),
            )
        })?;
        let comparison = parse_comparison(optional("comparison").unwrap_or(""))?;
        let scope = optional("scope")
            .map(|s| {
                Uuid::try_parse(s).map_err(|_| {
                    refused(
                        "scope",
                        Rule::Invalid,
                        format!("{s:?} is not a unit id (a UUID)"),
                    )
                })
            })
            .transpose()?;
        let reported_on = date_field("reported_on", required("reported_on")?)?;
        let source = required("source")?.to_string();
        Ok(ClaimInput {
            metric,
            period_from,
            period_to,
            value,
            comparison,
            scope,
            reported_on,
            source,
        })
    }

    /// The rule of filing the domain does not know: the metric is one the report computes.
    fn check_metric(&self) -> Result<(), DomainError> {
        if metric_def(&self.metric).is_some() {
            return Ok(());
        }
        let known: Vec<&str> = METRICS.iter().map(|m| m.metric).collect();
        Err(refused(
            "metric",
            Rule::UnknownId,
            format!(
                "{:?} is not a metric of the report; known: {}",
                self.metric,
                known.join(", ")
            ),
        ))
    }

    fn event(&self, claim_id: Uuid) -> DomainEvent {
        DomainEvent::ClaimFiled(ClaimFiledV1 {
            claim_id,
            metric: self.metric.clone(),
            scope_unit_id: self.scope,
            period_from: Some(self.period_from),
            period_to: Some(self.period_to),
            value: self.value,
            comparison: self.comparison,
            source_document: self.source.clone(),
            reported_on: self.reported_on,
        })
    }
}

/// The input's name for a field of the event the domain refused.
fn input_field(event_field: &'static str) -> &'static str {
    match event_field {
        "data.metric" => "metric",
        "data.scope_unit_id" => "scope",
        "data.period_from" => "period_from",
        "data.period_to" => "period_to",
        "data.value" => "value",
        "data.comparison" => "comparison",
        "data.source_document" => "source",
        "data.reported_on" => "reported_on",
        other => other,
    }
}

/// A refusal of claim `index`, in the input's field names.
pub fn rejected(index: usize, mut error: DomainError) -> AppError {
    error.field = input_field(error.field);
    AppError::Rejected {
        index,
        event_type: CLAIM_EVENT,
        error,
    }
}

/// Whether a principal may file a claim: an admin any; a supervisor scoped to a unit only claims
/// for that unit or one under it (the role itself is checked by [`access::permit`]).
fn may_file(who: &Principal, records: &Records, incoming: &IncomingEvent) -> Result<(), Refusal> {
    let (Some(scope), DomainEvent::ClaimFiled(e)) = (who.unit_id, &incoming.event) else {
        return Ok(());
    };
    match e.scope_unit_id {
        Some(unit) if access::unit_within(records, unit, scope) => Ok(()),
        Some(unit) => Err(Refusal::new(
            UNIT_SCOPE,
            format!("unit {unit} is not {scope} or under it, the scope of this token"),
        )),
        None => Err(Refusal::new(
            UNIT_SCOPE,
            format!(
                "a programme-wide claim is not within unit {scope}, the scope of this token: give a scope"
            ),
        )),
    }
}

impl App {
    /// Files claims as a local operator (the command line): all or none.
    pub fn file_claims(
        &self,
        claims: Vec<ClaimInput>,
        actor: &str,
    ) -> Result<Vec<FiledClaim>, AppError> {
        self.file_claims_with(claims, actor, &|_, _| Ok(()))
    }

    /// Files claims for a principal (`POST /v1/claims`): all or none, a scoped supervisor's
    /// only within its unit.
    pub fn file_claims_as(
        &self,
        who: &Principal,
        claims: Vec<ClaimInput>,
    ) -> Result<Vec<FiledClaim>, AppError> {
        access::permit(who, access::Action::FileClaims).map_err(|e| AppError::Forbidden {
            index: None,
            refusal: Refusal::new(access::ROLE, e.to_string()),
        })?;
        self.file_claims_with(claims, &who.actor(), &|records, e| {
            may_file(who, records, e)
        })
    }

    fn file_claims_with(
        &self,
        claims: Vec<ClaimInput>,
        actor: &str,
        authorize: &dyn Fn(&Records, &IncomingEvent) -> Result<(), Refusal>,
    ) -> Result<Vec<FiledClaim>, AppError> {
        if claims.is_empty() {
            return Err(AppError::Usage("no claims to file".into()));
        }
        if claims.len() > MAX_CLAIMS_PER_BATCH {
            return Err(AppError::Usage(format!(
                "{} claims in one batch; at most {MAX_CLAIMS_PER_BATCH}: split them",
                claims.len()
            )));
        }
        let now = self.clock.now();
        let mut incoming = Vec::with_capacity(claims.len());
        let mut ids = Vec::with_capacity(claims.len());
        for (index, claim) in claims.iter().enumerate() {
            claim.check_metric().map_err(|e| rejected(index, e))?;
            let claim_id = Uuid::now_v7();
            ids.push(claim_id);
            incoming.push(IncomingEvent::new(claim.event(claim_id), now));
        }
        let acks = self
            .append(incoming, actor, Keep::default(), authorize)
            .map_err(|e| match e {
                AppError::Rejected { index, error, .. } => rejected(index, error),
                other => other,
            })?;
        if acks.len() != claims.len() {
            return Err(AppError::Usage(format!(
                "the log answered {} acks for {} claims",
                acks.len(),
                claims.len()
            )));
        }
        Ok(claims
            .into_iter()
            .zip(ids)
            .zip(acks)
            .enumerate()
            .map(|(index, ((claim, claim_id), ack))| FiledClaim {
                index,
                claim_id,
                position: ack.position,
                claim,
            })
            .collect())
    }
}
