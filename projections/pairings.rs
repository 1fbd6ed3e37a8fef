//! `pairings`: active pairings on any day, each cadre's load, each recipient's cadre history;
//! the report's section A head figures (cadres paired, and whom they are paired with).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::domain::Date;
use crate::domain::events::{Category, RecipientKind};
use crate::projection::{EventView, Figure, PairingBook, Projection, Query, Source};

pub struct Pairings;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub last_day: Option<Date>,
}

fn day(state: &State, query: &Query) -> Option<Date> {
    query.on.or(state.last_day)
}

impl Projection for Pairings {
    const NAME: &'static str = "pairings";
    const VERSION: u32 = 3;
    const ABOUT: &'static str =
        "active pairings on a day, each cadre's load, each recipient's cadre history";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        super::facts::note_day(&mut state.last_day, ev.occurred_on);
    }

    fn query(state: &State, book: &PairingBook, query: &Query) -> serde_json::Value {
        let Some(d) = day(state, query) else {
            return json!({"on": null, "active": [], "load": {}});
        };
        let mut load: BTreeMap<Uuid, u32> = BTreeMap::new();
        let mut active = Vec::new();
        for (id, p) in &book.pairings {
            if p.active_on(d) {
                let holder = p.holder_on(d).map(|h| h.cadre);
                if let Some(c) = holder {
                    *load.entry(c).or_default() += 1;
                }
                active.push(json!({"pairing_id": id, "recipient_id": p.recipient, "cadre_id": holder, "since": p.established}));
            }
        }
        let history: BTreeMap<Uuid, Vec<serde_json::Value>> = book.pairings.iter().fold(BTreeMap::new(), |mut acc, (id, p)| {
            let entry: &mut Vec<serde_json::Value> = acc.entry(p.recipient).or_default();
            for h in &p.holders {
                entry.push(json!({"pairing_id": id, "cadre_id": h.cadre, "from": h.from, "pairing_ended": p.ended}));
            }
            acc
        });
        let load_named: BTreeMap<String, serde_json::Value> = load
            .iter()
            .map(|(c, n)| {
                (
                    c.to_string(),
                    json!({"name": book.staff.get(c).map(|s| s.0.clone()), "active_pairings": n}),
                )
            })
            .collect();
        json!({"on": d, "active_count": active.len(), "active": active, "load": load_named, "recipient_history": history})
    }

    fn figures(state: &State, book: &PairingBook, query: &Query) -> Vec<Figure> {
        let Some(d) = day(state, query) else {
            return Vec::new();
        };
        let mut cadres: BTreeMap<Uuid, Source> = BTreeMap::new();
        let mut by_category: BTreeMap<&'static str, Vec<Source>> = BTreeMap::new();
        let mut recipients_counted: BTreeSet<(Uuid, &'static str)> = BTreeSet::new();
        for p in book.pairings.values().filter(|p| p.active_on(d)) {
            if let Some(h) = p.holder_on(d) {
                let s = cadres.entry(h.cadre).or_insert(h.source);
                if h.source.position < s.position {
                    *s = h.source;
                }
            }
            let Some(r) = book.recipients.get(&p.recipient) else {
                continue;
            };
            let metric = match r.kind {
                RecipientKind::Household if r.category_on(Category::ExtremelyPoor, d).is_some() => {
                    Some("paired_poor_households")
                }
                RecipientKind::Person if r.category_on(Category::Orphan, d).is_some() => {
                    Some("paired_orphans")
                }
                RecipientKind::Person if r.category_on(Category::SeverelyDisabled, d).is_some() => {
                    Some("paired_severely_disabled")
                }
                _ => None,
            };
            if let Some(m) = metric
                && recipients_counted.insert((p.recipient, m))
            {
                by_category.entry(m).or_default().push(p.source);
            }
        }
        let mut out = vec![figure("cadres_paired", cadres.into_values().collect())];
        for m in [
            "paired_orphans",
            "paired_severely_disabled",
            "paired_poor_households",
        ] {
            out.push(figure(m, by_category.remove(m).unwrap_or_default()));
        }
        out
    }
}

fn figure(metric: &str, events: Vec<Source>) -> Figure {
    let events = super::facts::sorted_sources(events);
    Figure {
        metric: metric.to_string(),
        overflowed: false,
        value: events.len() as i64,
        events,
        adjustments: Vec::new(),
    }
}
