//! `student_aid`: aid payments to pupils, in person-times (one payment to one pupil is one) and
//! money, by aid programme and term.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::facts::{Fact, Facts, sorted_sources};
use crate::domain::DomainEvent;
use crate::domain::events::AidProgramme;
use crate::projection::{EventView, Figure, PairingBook, Projection, Query};

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
        let mut by: BTreeMap<&str, BTreeMap<String, (u64, i64)>> = BTreeMap::new();
        let (mut times, mut paid) = (0u64, 0i64);
        for f in state.payments.matching(|f| query.counts(f.on)) {
            let e = by
                .entry(programme_name(f.value.programme))
                .or_default()
                .entry(f.value.term.clone())
                .or_default();
            e.0 += 1;
            e.1 += f.value.amount_fen;
            times += 1;
            paid += f.value.amount_fen;
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
        json!({"period": query.period.map(|p| p.to_string()), "person_times": times, "paid_fen": paid, "by_programme_and_term": by_json})
    }

    fn figures(state: &State, _book: &PairingBook, query: &Query) -> Vec<Figure> {
        let count = |metric: &str, programme: Option<AidProgramme>, money: bool| {
            let keep = |p: &Payment| programme.is_none_or(|x| p.programme == x);
            let facts: Vec<_> = state
                .payments
                .matching(|f| keep(&f.value) && query.counts(f.on))
                .collect();
            let value = if money {
                facts.iter().map(|f| f.value.amount_fen).sum()
            } else {
                facts.len() as i64
            };
            Figure {
                metric: metric.to_string(),
                value,
                events: sorted_sources(facts.iter().map(|f| f.source).collect()),
                adjustments: state
                    .payments
                    .adjustments_where(|on, before| keep(before) && query.counts(on)),
            }
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
