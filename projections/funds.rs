//! `funds`: money and goods given, by fund source, recipient and cadre; goods at their value
//! (quantity × unit value); and a conservation check: every breakdown adds up to the total.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::facts::{Fact, Facts};
use crate::domain::DomainEvent;
use crate::domain::events::AidForm;
use crate::projection::{EventView, PairingBook, Projection, Query};

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
        let (mut total, mut cash, mut goods) = (0i64, 0i64, 0i64);
        let mut by_source: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_recipient: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_cadre: BTreeMap<String, i64> = BTreeMap::new();
        let mut count = 0u64;
        for f in state.gifts.matching(|f| query.counts(f.on)) {
            let g = &f.value;
            count += 1;
            total += g.value_fen;
            if g.goods {
                goods += g.value_fen;
            } else {
                cash += g.value_fen;
            }
            *by_source.entry(g.fund_source.clone()).or_default() += g.value_fen;
            let recipient = book.pairings.get(&g.pairing).map(|p| p.recipient);
            *by_recipient
                .entry(recipient.map(|r| r.to_string()).unwrap_or_default())
                .or_default() += g.value_fen;
            let cadre = book.holder_on(g.pairing, f.on);
            *by_cadre
                .entry(cadre.map(|r| r.to_string()).unwrap_or_default())
                .or_default() += g.value_fen;
        }
        let sum = |m: &BTreeMap<String, i64>| m.values().sum::<i64>();
        let conserved = cash + goods == total
            && sum(&by_source) == total
            && sum(&by_recipient) == total
            && sum(&by_cadre) == total;
        json!({
            "period": query.period.map(|p| p.to_string()),
            "gifts": count,
            "total_fen": total, "cash_fen": cash, "goods_fen": goods,
            "by_fund_source_fen": by_source, "by_recipient_fen": by_recipient, "by_cadre_fen": by_cadre,
            "conservation_holds": conserved,
        })
    }
}
