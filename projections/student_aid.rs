//! `student_aid`: aid payments to pupils, in person-times (one payment to one pupil is one) and
//! money, by aid programme and term. Money sums are checked ([`FenSum`]): one that overflows is
//! null and named in `overflowed`, and its figure says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::facts::{Fact, Facts, sorted_sources};
use crate::domain::DomainEvent;
use crate::domain::events::AidProgramme;
use crate::projection::{
    EventView, FenSum, Figure, OVERFLOWED_KEY, PairingBook, Projection, Query,
};

pub struct StudentAid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub pupil: Uuid,
    pub programme: AidProgramme,
    pub term: String,
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub payments: Facts<Payment>,
}

fn payment(event: &DomainEvent) -> Option<Payment> {
    let DomainEvent::StudentAidPaid(e) = event else {
        return None;
    };
    Some(Payment {
        pupil: e.pupil_id,
        programme: e.programme,
        term: e.term.clone(),
        amount_fen: e.amount_fen.fen(),
    })
}

fn programme_name(p: AidProgramme) -> &'static str {
    match p {
        AidProgramme::ForOrphans => "for_orphans",
        AidProgramme::ForUnsupported => "for_unsupported",
        AidProgramme::ForDisabled => "for_disabled",
        AidProgramme::Other => "other",
    }
}

impl Projection for StudentAid {
    const NAME: &'static str = "student_aid";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "aid person-times and money by programme and term";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        if state
            .payments
            .adjust(ev, |corrected, _f: &Fact<Payment>| payment(corrected))
        {
            return;
        }
        if let Some(p) = payment(ev.event) {
            state.payments.insert(ev, p);
        }
    }

    fn query(state: &State, _book: &PairingBook, query: &Query) -> serde_json::Value {
        let mut by: BTreeMap<&str, BTreeMap<String, (u64, FenSum)>> = BTreeMap::new();
        let (mut times, mut paid) = (0u64, FenSum::default());
        for f in state.payments.matching(|f| query.counts(f.on)) {
            let e = by
                .entry(programme_name(f.value.programme))
                .or_default()
                .entry(f.value.term.clone())
                .or_default();
            e.0 += 1;
            e.1.add(f.value.amount_fen);
            times += 1;
            paid.add(f.value.amount_fen);
        }
        let mut overflowed: Vec<String> = Vec::new();
        if paid.value().is_none() {
            overflowed.push("paid_fen".into());
        }
        for (p, terms) in &by {
            for (t, (_, fen)) in terms {
                if fen.value().is_none() {
                    overflowed.push(format!("by_programme_and_term.{p}.{t}.paid_fen"));
                }
            }
        }
        let by_json: BTreeMap<&str, BTreeMap<String, serde_json::Value>> = by
            .into_iter()
            .map(|(p, terms)| {
                (
                    p,
                    terms
                        .into_iter()
                        .map(|(t, (n, fen))| (t, json!({"person_times": n, "paid_fen": fen})))
                        .collect(),
                )
            })
            .collect();
        let mut view = json!({"period": query.period.map(|p| p.to_string()), "person_times": times, "paid_fen": paid, "by_programme_and_term": by_json});
        if !overflowed.is_empty() {
            view[OVERFLOWED_KEY] = json!(overflowed);
        }
        view
    }

    fn figures(state: &State, _book: &PairingBook, query: &Query) -> Vec<Figure> {
        let count = |metric: &str, programme: Option<AidProgramme>, money: bool| {
            let keep = |p: &Payment| programme.is_none_or(|x| p.programme == x);
            let facts: Vec<_> = state
                .payments
                .matching(|f| keep(&f.value) && query.counts(f.on))
                .collect();
            let value = if money {
                FenSum::of(facts.iter().map(|f| f.value.amount_fen))
            } else {
                FenSum::of([facts.len() as i64])
            };
            value.figure(
                metric,
                sorted_sources(facts.iter().map(|f| f.source).collect()),
                state
                    .payments
                    .adjustments_where(|on, before| keep(before) && query.counts(on)),
            )
        };
        vec![
            count(
                "student_aid_orphans_person_times",
                Some(AidProgramme::ForOrphans),
                false,
            ),
            count(
                "student_aid_unsupported_person_times",
                Some(AidProgramme::ForUnsupported),
                false,
            ),
            count(
                "student_aid_disabled_person_times",
                Some(AidProgramme::ForDisabled),
                false,
            ),
            count("student_aid_paid_fen", None, true),
        ]
    }
}
