//! `funds`: money and goods given, by fund source, recipient and cadre; goods at their value
//! (quantity × unit value); and a conservation check: every breakdown adds up to the total.
//! Every sum is checked ([`FenSum`]): one that overflows an i64 is null and named in
//! `overflowed`, never a wrapped number.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::facts::{Fact, Facts};
use crate::domain::DomainEvent;
use crate::domain::events::AidForm;
use crate::projection::{EventView, FenSum, OVERFLOWED_KEY, PairingBook, Projection, Query};

pub struct Funds;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gift {
    pub goods: bool,
    pub value_fen: i64,
    pub fund_source: String,
    /// The pairing: its recipient, and the cadre holding it on the day (looked up when asked).
    pub pairing: Uuid,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub gifts: Facts<Gift>,
}

fn gift(event: &DomainEvent) -> Option<Gift> {
    let DomainEvent::AidGiven(e) = event else {
        return None;
    };
    Some(Gift {
        goods: e.form == AidForm::Goods,
        value_fen: e.value_fen.fen(),
        fund_source: e.fund_source.clone(),
        pairing: e.pairing_id,
    })
}

impl Projection for Funds {
    const NAME: &'static str = "funds";
    const VERSION: u32 = 3;
    const ABOUT: &'static str =
        "cash and goods by fund source, recipient and cadre, with a conservation check";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        if state
            .gifts
            .adjust(ev, |corrected, _fact: &Fact<Gift>| gift(corrected))
        {
            return;
        }
        if let Some(g) = gift(ev.event) {
            state.gifts.insert(ev, g);
        }
    }

    fn query(state: &State, book: &PairingBook, query: &Query) -> serde_json::Value {
        // Every sum is checked: one that overflows shows as null and is named in `overflowed`.
        let (mut total, mut cash, mut goods) =
            (FenSum::default(), FenSum::default(), FenSum::default());
        let mut by_source: BTreeMap<String, FenSum> = BTreeMap::new();
        let mut by_recipient: BTreeMap<String, FenSum> = BTreeMap::new();
        let mut by_cadre: BTreeMap<String, FenSum> = BTreeMap::new();
        let mut count = 0u64;
        for f in state.gifts.matching(|f| query.counts(f.on)) {
            let g = &f.value;
            count += 1;
            total.add(g.value_fen);
            if g.goods {
                goods.add(g.value_fen);
            } else {
                cash.add(g.value_fen);
            }
            by_source
                .entry(g.fund_source.clone())
                .or_default()
                .add(g.value_fen);
            let recipient = book.pairings.get(&g.pairing).map(|p| p.recipient);
            by_recipient
                .entry(recipient.map(|r| r.to_string()).unwrap_or_default())
                .or_default()
                .add(g.value_fen);
            let cadre = book.holder_on(g.pairing, f.on);
            by_cadre
                .entry(cadre.map(|r| r.to_string()).unwrap_or_default())
                .or_default()
                .add(g.value_fen);
        }
        let mut overflowed: Vec<String> = Vec::new();
        for (name, sum) in [
            ("total_fen", total),
            ("cash_fen", cash),
            ("goods_fen", goods),
        ] {
            if sum.value().is_none() {
                overflowed.push(name.to_string());
            }
        }
        for (name, map) in [
            ("by_fund_source_fen", &by_source),
            ("by_recipient_fen", &by_recipient),
            ("by_cadre_fen", &by_cadre),
        ] {
            for (key, sum) in map {
                if sum.value().is_none() {
                    overflowed.push(format!("{name}.{key}"));
                }
            }
        }
        let sum = |m: &BTreeMap<String, FenSum>| FenSum::of(m.values().filter_map(|s| s.value()));
        let conserved = overflowed.is_empty()
            && FenSum::of([cash.value().unwrap_or(0), goods.value().unwrap_or(0)]) == total
            && sum(&by_source) == total
            && sum(&by_recipient) == total
            && sum(&by_cadre) == total;
        let mut view = json!({
            "period": query.period.map(|p| p.to_string()),
            "gifts": count,
            "total_fen": total, "cash_fen": cash, "goods_fen": goods,
            "by_fund_source_fen": by_source, "by_recipient_fen": by_recipient, "by_cadre_fen": by_cadre,
            "conservation_holds": conserved,
        });
        if !overflowed.is_empty() {
            view[OVERFLOWED_KEY] = json!(overflowed);
        }
        view
    }
}
