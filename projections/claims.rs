//! `claims`: every figure a unit reported, as recorded (with corrections and voids applied), ready
//! to be compared with the records (`carelog claims check`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::facts::{Fact, Facts};
use crate::domain::DomainEvent;
use crate::domain::events::ClaimFiledV1;
use crate::projection::{EventView, PairingBook, Projection, Query};

pub struct Claims;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub claim: ClaimFiledV1,
    /// When the claim was recorded (RFC 3339): "as of the claim's own date" uses this.
    pub recorded_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub claims: Facts<ClaimRecord>,
}

impl Projection for Claims {
    const NAME: &'static str = "claims";
    const VERSION: u32 = 1;
    const ABOUT: &'static str =
        "every recorded claim (a reported figure) with its scope, period and source";
    type State = State;

    fn apply(state: &mut State, ev: &EventView<'_>) {
        let adjusted =
            state
                .claims
                .adjust(ev, |corrected, f: &Fact<ClaimRecord>| match corrected {
                    DomainEvent::ClaimFiled(c) => Some(ClaimRecord {
                        claim: c.clone(),
                        recorded_at: f.value.recorded_at.clone(),
                    }),
                    _ => None,
                });
        if adjusted {
            return;
        }
        if let DomainEvent::ClaimFiled(c) = ev.event {
            state.claims.insert(
                ev,
                ClaimRecord {
                    claim: c.clone(),
                    recorded_at: ev.recorded_at.to_rfc3339(),
                },
            );
        }
    }

    fn query(state: &State, _book: &PairingBook, _query: &Query) -> serde_json::Value {
        let claims: Vec<_> = state
            .claims
            .live
            .values()
            .map(|f| {
                let c = &f.value.claim;
                json!({
                    "claim_id": c.claim_id, "metric": c.metric, "value": c.value, "comparison": c.comparison,
                    "scope_unit_id": c.scope_unit_id, "period_from": c.period_from, "period_to": c.period_to,
                    "source_document": c.source_document, "reported_on": c.reported_on,
                    "recorded_at": f.value.recorded_at, "event": f.source,
                })
            })
            .collect();
        let by_metric: BTreeMap<&str, usize> =
            state
                .claims
                .live
                .values()
                .fold(BTreeMap::new(), |mut m, f| {
                    *m.entry(f.value.claim.metric.as_str()).or_default() += 1;
                    m
                });
        json!({"claims": claims, "by_metric": by_metric})
    }
}
