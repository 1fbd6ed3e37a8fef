//! The claims check: every claim filed (`carelog.claim.filed`) against the records, with a
//! difference whose arithmetic closes.
//!
//! For each claim, in its period and scope (a unit and the units under it: each event is
//! attributed by [`stream_within`], as a scoped token's reads are): `recorded_then` is the figure
//! as of the end (Asia/Shanghai) of the claim's `reported_on` day, `recorded_now` as of now. The
//! verdict compares `recorded_now` with the claim by its comparison (do the records as they stand
//! support it); `difference` = claimed − `recorded_then` (did the unit report what was on record).
//!
//! Reasons come by kind, and only for events that could move the figure toward the claim. Each
//! says what it explains: `difference` (claimed against then) or `since_report` (now against then).
//!
//! | kind | events | explains |
//! |---|---|---|
//! | `voided` | the figure's events in the period taken out by a void: a unit may have counted them | voided by the report: a claim above then; after: `since_report` |
//! | `corrected` | corrections of the figure's events | by the report: a claim either side of then (a correction can move a figure either way); after: `since_report` |
//! | `recorded_after_report` | events in the figure now, recorded after the reported-on day | `since_report` only |
//! | `near_period` | the metric's events within 31 days outside the period, recorded by the report | a claim above then (a unit may have counted them in) |
//! | `out_of_scope` | the figure's events in the period outside the claim's unit | a claim above then |
//!
//! `explained` counts the `difference` reasons' events, one unit each, capped at |difference|: more
//! events than the gap may each be one the unit counted, but together they explain no more than
//! it. A money figure's events are not weighed by amount here, so they explain nothing of a
//! money difference (`explained` 0). `unexplained` = |difference| − `explained`, stated in words
//! (`unexplained_text`: "52 of the 150 claimed home visits are in no record"). A claim that holds
//! has no reasons and explains nothing (an `at_least` claim's surplus is all `unexplained`).
//! Claims come in the report's section order.
//!
//! A scoped figure counts the events within the scope; only figures that are a count of their
//! events can be cut so (a money or state figure of a scoped claim is answered as
//! `not_countable_by_unit`).

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use uuid::Uuid;

use super::access::stream_within;
use super::late_entries::{LateEntry, LateEntryNotes, late_entries_among};
use super::report::{Basis, METRICS, Replayed, metric_def};
use super::{App, AppError};
use crate::domain::events::Comparison;
use crate::domain::{Date, DomainEvent, Money};
use crate::projection::engine;
use crate::projection::{Adjustment, AdjustmentKind, AsOf, Figure, Period, Source};
use crate::projections::claims::ClaimRecord;

/// The most events listed under one reason (`count` is always the whole number).
pub const MAX_REASON_EVENTS: usize = 20;
/// How far outside the period an event counts as `near_period`, in days.
pub const NEAR_PERIOD_DAYS: u64 = 31;
/// The most events of one scoped figure attributed to a unit (each is read from the log).
const MAX_SCOPED_EVENTS: usize = 1_000_000;

/// The claims check as both shells give it: every claim (a scoped supervisor's: those of its
/// unit) and whether all hold.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimsReport {
    pub all_hold: bool,
    /// The unit the checks were limited to (a scoped supervisor's), if any.
    pub scope_unit_id: Option<Uuid>,
    pub claims: Vec<ClaimCheck>,
}

impl ClaimsReport {
    pub fn new(scope_unit_id: Option<Uuid>, claims: Vec<ClaimCheck>) -> Self {
        Self {
            all_hold: claims.iter().all(|c| c.verdict == "holds"),
            scope_unit_id,
            claims,
        }
    }
}

/// One claim checked against the records.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimCheck {
    pub claim_id: Uuid,
    pub metric: String,
    /// The report section the metric is in ('A'…), empty for an unknown metric.
    pub section: String,
    pub claimed: i64,
    pub comparison: Comparison,
    pub period: String,
    /// The unit the claim is for (and its sub-units); None: the whole programme.
    pub scope_unit_id: Option<Uuid>,
    pub reported_on: Date,
    pub source_document: String,
    pub recorded_at: String,
    /// The value the records give now.
    pub recorded_now: Option<i64>,
    /// The value the records gave at the end of the reported-on day.
    pub recorded_then: Option<i64>,
    /// claimed − recorded_then.
    pub difference: Option<i64>,
    pub verdict: &'static str,
    /// How much of |difference| the reasons account for.
    pub explained: i64,
    /// |difference| − explained: what no event accounts for.
    pub unexplained: i64,
    /// The unexplained remainder in words, when there is one and the claim differs.
    pub unexplained_text: Option<String>,
    pub reasons: Vec<ClaimReason>,
    /// The events behind the figure now that were recorded late, with the reason given.
    pub late_entries: Vec<LateEntry>,
}

/// Events of one kind that could move the figure toward the claim.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimReason {
    pub kind: &'static str,
    /// `difference` (claimed against then) or `since_report` (now against then).
    pub explains: &'static str,
    /// All such events, even where `events` is capped.
    pub count: usize,
    /// The first [`MAX_REASON_EVENTS`] of them.
    pub events: Vec<ReasonEvent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasonEvent {
    pub position: u64,
    pub id: Uuid,
    /// When it happened (RFC 3339).
    pub time: Option<String>,
    pub recorded_at: Option<String>,
    pub detail: String,
}

/// A figure cut to a scope: the events within it, and those left out.
struct Scoped {
    value: i64,
    events: Vec<Source>,
    adjustments: Vec<Adjustment>,
    left_out: Vec<Source>,
}

impl Scoped {
    fn whole(f: Option<Figure>) -> Self {
        let f = f.unwrap_or(Figure {
            metric: String::new(),
            overflowed: false,
            value: 0,
            events: Vec::new(),
            adjustments: Vec::new(),
        });
        Scoped {
            value: f.value,
            events: f.events,
            adjustments: f.adjustments,
            left_out: Vec::new(),
        }
    }
}

/// Which events (by position) are within a claim's scope, filled as they are looked up.
type Attribution = HashMap<u64, bool>;

impl App {
    /// Every claim compared with the records, now and at the end of its reported-on day.
    pub fn claims_check(
        &self,
        progress: super::report::ProgressFn<'_>,
    ) -> Result<Vec<ClaimCheck>, AppError> {
        let now = self.replay(&[], AsOf::Now, progress)?;
        let Some(ci) = now.names.iter().position(|n| *n == "claims") else {
            return Ok(Vec::new());
        };
        let state = now
            .states
            .get(ci)
            .and_then(|s| s.downcast_ref::<crate::projections::claims::State>())
            .ok_or_else(|| {
                AppError::Usage("the claims projection has another state type".into())
            })?;
        let mut claims: Vec<(Source, ClaimRecord)> = state
            .claims
            .live
            .values()
            .map(|f| (f.source, f.value.clone()))
            .collect();
        // The report's section order, then as filed; unknown metrics last.
        claims.sort_by_key(|(s, r)| {
            let i = METRICS
                .iter()
                .position(|m| m.metric == r.claim.metric)
                .unwrap_or(METRICS.len());
            (i, s.position)
        });
        let notes = self.late_entry_notes(now.info.position)?;
        // One replay per distinct reported-on day.
        let mut then_by_position: std::collections::BTreeMap<u64, Replayed> = Default::default();
        let mut out = Vec::new();
        for (source, record) in claims {
            let c = &record.claim;
            let Some(def) = metric_def(&c.metric) else {
                out.push(not_checked(
                    &record,
                    "",
                    String::new(),
                    "unknown_metric",
                    format!("no report metric is named {:?}", c.metric),
                    source,
                ));
                continue;
            };
            let period = match (c.period_from, c.period_to) {
                (Some(from), Some(to)) => Period { from, to },
                _ => def.period(None),
            };
            let end_of_report_day = crate::time::end_of_day_shanghai(c.reported_on.0);
            let then_position = engine::position_as_of(self.log(), &end_of_report_day)?;
            let then: &Replayed = match then_by_position.entry(then_position) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(self.replay(&[], AsOf::Position(then_position), &mut |_, _| {})?)
                }
            };
            let mut attribution = Attribution::new();
            let fig_now =
                self.scoped(now.figure(def, period)?, c.scope_unit_id, &mut attribution)?;
            let fig_then =
                self.scoped(then.figure(def, period)?, c.scope_unit_id, &mut attribution)?;
            let (Some(fig_now), Some(fig_then)) = (fig_now, fig_then) else {
                out.push(not_checked(
                    &record,
                    &def.section.to_string(),
                    def.period_text(period, None),
                    "not_countable_by_unit",
                    format!(
                        "{} is not a count of events, so it cannot be cut to unit {}: file the claim for the whole programme",
                        def.metric,
                        c.scope_unit_id.unwrap_or_default()
                    ),
                    source,
                ));
                continue;
            };
            let recorded_now = fig_now.value;
            let holds = match c.comparison {
                Comparison::Exactly => recorded_now == c.value,
                Comparison::AtLeast => recorded_now >= c.value,
                Comparison::MoreThan => recorded_now > c.value,
                Comparison::AtMost => recorded_now <= c.value,
            };
            let difference = c.value.saturating_sub(fig_then.value);
            let mut reasons = Vec::new();
            if !holds {
                let near = if difference > 0 && def.basis == Basis::Period {
                    let wide = self.scoped(
                        then.figure(def, widened(period))?,
                        c.scope_unit_id,
                        &mut attribution,
                    )?;
                    let inside: BTreeSet<Source> = fig_then
                        .events
                        .iter()
                        .chain(&fig_then.left_out)
                        .copied()
                        .collect();
                    wide.map(|w| {
                        w.events
                            .into_iter()
                            .filter(|e| !inside.contains(e))
                            .collect()
                    })
                    .unwrap_or_default()
                } else {
                    Vec::new()
                };
                reasons = self.reasons(
                    &fig_now,
                    &fig_then,
                    &near,
                    difference,
                    then_position,
                    period,
                    &notes,
                )?;
            }
            let explained = if holds || def.money {
                0
            } else {
                let events: usize = reasons
                    .iter()
                    .filter(|r| r.explains == "difference")
                    .map(|r| r.count)
                    .sum();
                i64::try_from(events)
                    .unwrap_or(i64::MAX)
                    .min(difference.saturating_abs())
            };
            let unexplained = difference.saturating_abs() - explained;
            let unexplained_text = (!holds && unexplained > 0).then(|| {
                let show = |v: i64| {
                    if def.money {
                        Money(v).yuan_text()
                    } else {
                        v.to_string()
                    }
                };
                if difference > 0 {
                    format!(
                        "{} of the {} claimed {} are in no record",
                        show(unexplained),
                        show(c.value),
                        def.label_en
                    )
                } else {
                    format!(
                        "{} of the {} recorded {} are not in the claim",
                        show(unexplained),
                        show(fig_then.value),
                        def.label_en
                    )
                }
            });
            out.push(ClaimCheck {
                claim_id: c.claim_id,
                metric: c.metric.clone(),
                section: def.section.to_string(),
                claimed: c.value,
                comparison: c.comparison,
                period: def.period_text(period, None),
                scope_unit_id: c.scope_unit_id,
                reported_on: c.reported_on,
                source_document: c.source_document.clone(),
                recorded_at: record.recorded_at.clone(),
                recorded_now: Some(recorded_now),
                recorded_then: Some(fig_then.value),
                difference: Some(difference),
                verdict: if holds { "holds" } else { "differs" },
                explained,
                unexplained,
                unexplained_text,
                reasons,
                late_entries: late_entries_among(&fig_now.events, &notes),
            });
        }
        Ok(out)
    }

    /// A figure cut to a scope (None: the whole figure); None when it cannot be cut, not being
    /// a count of its events.
    fn scoped(
        &self,
        figure: Option<Figure>,
        scope: Option<Uuid>,
        attribution: &mut Attribution,
    ) -> Result<Option<Scoped>, AppError> {
        let Some(scope) = scope else {
            return Ok(Some(Scoped::whole(figure)));
        };
        let whole = Scoped::whole(figure);
        let counted = i64::try_from(whole.events.len()).ok() == Some(whole.value);
        if !counted || whole.events.len() > MAX_SCOPED_EVENTS {
            return Ok(None);
        }
        let targets: Vec<Source> = whole.adjustments.iter().map(|a| a.target).collect();
        self.attribute(whole.events.iter().chain(&targets), scope, attribution)?;
        let within = |s: &Source| attribution.get(&s.position).copied().unwrap_or(false);
        let (events, left_out): (Vec<Source>, Vec<Source>) =
            whole.events.iter().copied().partition(within);
        let adjustments = whole
            .adjustments
            .into_iter()
            .filter(|a| within(&a.target))
            .collect();
        Ok(Some(Scoped {
            value: i64::try_from(events.len()).unwrap_or(i64::MAX),
            events,
            adjustments,
            left_out,
        }))
    }

    /// Looks up which of these events are within `scope`, by their stream (and its first
    /// event, which names what a case or plan belongs to), as a scoped token's reads are.
    fn attribute<'a>(
        &self,
        events: impl Iterator<Item = &'a Source>,
        scope: Uuid,
        attribution: &mut Attribution,
    ) -> Result<(), AppError> {
        let mut firsts: HashMap<String, Option<DomainEvent>> = HashMap::new();
        let mut streams: Vec<(u64, String)> = Vec::new();
        for s in events {
            if attribution.contains_key(&s.position) {
                continue;
            }
            let Some(e) = self.read_event(s.position)? else {
                attribution.insert(s.position, false);
                continue;
            };
            let stream = e.recorded.stream.clone();
            if !firsts.contains_key(&stream) {
                let first = if e.recorded.stream_version == 1 {
                    Some(e.event)
                } else {
                    self.read_stream(&stream, 1, 1)?
                        .into_iter()
                        .next()
                        .map(|f| f.event)
                };
                firsts.insert(stream.clone(), first);
            }
            streams.push((s.position, stream));
        }
        let found = self.with_records(|r| {
            streams
                .iter()
                .map(|(p, stream)| {
                    let first = firsts.get(stream).and_then(Option::as_ref);
                    (*p, stream_within(r, stream, first, scope))
                })
                .collect::<Vec<_>>()
        })?;
        attribution.extend(found);
        Ok(())
    }

    /// The reasons for a claim that does not hold, each kind only where it moves the figure
    /// toward the claim (see the module's table).
    #[allow(clippy::too_many_arguments)]
    fn reasons(
        &self,
        now: &Scoped,
        then: &Scoped,
        near: &[Source],
        difference: i64,
        then_position: u64,
        period: Period,
        notes: &LateEntryNotes,
    ) -> Result<Vec<ClaimReason>, AppError> {
        let mut out = Vec::new();
        let by_report = |a: &&Adjustment| a.by.position <= then_position;
        let of_kind = |kind: AdjustmentKind| move |a: &&Adjustment| a.kind == kind;
        let adjustment_events = |list: Vec<&Adjustment>| -> Vec<(Source, String)> {
            list.into_iter()
                .map(|a| {
                    (
                        a.by,
                        format!(
                            "{} event {} (position {}): {}",
                            match a.kind {
                                AdjustmentKind::Voided => "voided",
                                AdjustmentKind::Corrected => "corrected",
                            },
                            a.target.id,
                            a.target.position,
                            a.reason
                        ),
                    )
                })
                .collect()
        };
        let voided = || {
            now.adjustments
                .iter()
                .filter(of_kind(AdjustmentKind::Voided))
        };
        let corrected = || {
            now.adjustments
                .iter()
                .filter(of_kind(AdjustmentKind::Corrected))
        };
        if difference > 0 {
            let list = voided().filter(by_report).collect();
            out.push(("voided", "difference", adjustment_events(list)));
        }
        if difference != 0 {
            let list = corrected().filter(by_report).collect();
            out.push(("corrected", "difference", adjustment_events(list)));
        }
        if difference > 0 {
            let detail = format!("happened within {NEAR_PERIOD_DAYS} days outside {period}");
            out.push((
                "near_period",
                "difference",
                near.iter().map(|s| (*s, detail.clone())).collect(),
            ));
            out.push((
                "out_of_scope",
                "difference",
                then.left_out
                    .iter()
                    .map(|s| (*s, "in the period, outside the claim's unit".to_string()))
                    .collect(),
            ));
        }
        if now.value != then.value || now.events.len() != then.events.len() {
            let then_events: BTreeSet<&Source> = then.events.iter().collect();
            let after: Vec<(Source, String)> = now
                .events
                .iter()
                .filter(|e| e.position > then_position && !then_events.contains(e))
                .map(|e| {
                    let detail = match notes.get(&e.id) {
                        Some((reason, _)) => {
                            format!("recorded after the report, as a late entry: {reason}")
                        }
                        None => "recorded after the report".into(),
                    };
                    (*e, detail)
                })
                .collect();
            out.push(("recorded_after_report", "since_report", after));
            let late = |a: &&Adjustment| a.by.position > then_position;
            out.push((
                "voided",
                "since_report",
                adjustment_events(voided().filter(late).collect()),
            ));
            out.push((
                "corrected",
                "since_report",
                adjustment_events(corrected().filter(late).collect()),
            ));
        }
        let mut reasons = Vec::new();
        for (kind, explains, events) in out {
            if events.is_empty() {
                continue;
            }
            let mut listed = Vec::new();
            for (s, detail) in events.iter().take(MAX_REASON_EVENTS) {
                let e = self.read_event(s.position)?;
                listed.push(ReasonEvent {
                    position: s.position,
                    id: s.id,
                    time: e.as_ref().map(|e| e.recorded.occurred_at.to_rfc3339()),
                    recorded_at: e.as_ref().map(|e| e.recorded.recorded_at.to_rfc3339()),
                    detail: detail.clone(),
                });
            }
            reasons.push(ClaimReason {
                kind,
                explains,
                count: events.len(),
                events: listed,
            });
        }
        Ok(reasons)
    }
}

/// The period with [`NEAR_PERIOD_DAYS`] either side.
fn widened(period: Period) -> Period {
    let days = chrono::Days::new(NEAR_PERIOD_DAYS);
    Period {
        from: Date(
            period
                .from
                .0
                .checked_sub_days(days)
                .unwrap_or(period.from.0),
        ),
        to: Date(period.to.0.checked_add_days(days).unwrap_or(period.to.0)),
    }
}

/// A claim the records cannot be compared with, and why.
fn not_checked(
    record: &ClaimRecord,
    section: &str,
    period: String,
    kind: &'static str,
    detail: String,
    source: Source,
) -> ClaimCheck {
    let c = &record.claim;
    ClaimCheck {
        claim_id: c.claim_id,
        metric: c.metric.clone(),
        section: section.to_string(),
        claimed: c.value,
        comparison: c.comparison,
        period,
        scope_unit_id: c.scope_unit_id,
        reported_on: c.reported_on,
        source_document: c.source_document.clone(),
        recorded_at: record.recorded_at.clone(),
        recorded_now: None,
        recorded_then: None,
        difference: None,
        verdict: "differs",
        explained: 0,
        unexplained: 0,
        unexplained_text: None,
        late_entries: Vec::new(),
        reasons: vec![ClaimReason {
            kind,
            explains: "difference",
            count: 1,
            events: vec![ReasonEvent {
                position: source.position,
                id: source.id,
                time: None,
                recorded_at: Some(record.recorded_at.clone()),
                detail,
            }],
        }],
    }
}
