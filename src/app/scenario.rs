//! [`Scenario`]: the one seeded builder of believable event sequences. The demo builds the
//! Qingyang programme with it; the projection kit and the benches make their logs with it.
//!
//! A scenario draws everything from one [`SplitMix64`]: entity ids, event ids (UUIDv7 whose
//! timestamp is the recording time and whose random bits come from the seed) and whatever the
//! caller draws from [`Scenario::rng`]. Events are planned with the time they happened and the
//! time they are recorded, in any order; [`Scenario::into_events`] hands them back in recorded
//! order (ties in planning order), ready for [`super::App::append`], so the log's recorded
//! times never go back. The same seed gives the same events, ids and times on every machine:
//! the demo's figures depend on it, so the order in which ids and times are drawn is frozen.

use chrono::{Duration, NaiveDate, NaiveTime, Offset, TimeZone};
use uuid::Uuid;

use crate::domain::DomainEvent;
use crate::domain::cloudevent::IncomingEvent;
use crate::rng::SplitMix64;
use crate::time::Instant;

/// A calendar day (`NaiveDate::MIN` for an impossible one: scenarios only name real days).
pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// A time of day in Asia/Shanghai (+08:00), as minutes after 8 a.m. (negative for earlier).
pub fn shanghai_at(date: NaiveDate, minutes_after_8am: i64) -> Instant {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap_or(chrono::Utc.fix());
    let base = date.and_time(NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default());
    let local = offset
        .from_local_datetime(&base)
        .single()
        .unwrap_or_else(|| offset.from_utc_datetime(&base));
    local + Duration::minutes(minutes_after_8am)
}

/// A UUIDv7 stamped with `unix_millis` (clamped at 0), its random bits drawn from `rng`
/// (two draws).
pub fn seeded_uuid(rng: &mut SplitMix64, unix_millis: i64) -> Uuid {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(unix_millis.max(0) as u64, &bytes).into_uuid()
}

/// One event in the making: when it happened, when it is recorded, what it is (a
/// [`DomainEvent`], or whatever a caller plans: the projection kit plans CloudEvents data as
/// JSON, to go through the parser as `carelog append` does).
#[derive(Debug, Clone)]
pub struct PlannedEvent<E = DomainEvent> {
    pub id: Uuid,
    pub occurred_at: Instant,
    pub recorded_at: Instant,
    pub event: E,
    /// Planning order, to break ties between equal recording times.
    seq: u64,
}

/// A seeded scenario under construction (see the module's overview).
#[derive(Debug)]
pub struct Scenario<E = DomainEvent> {
    /// The scenario's only source of chance: draw from it for every choice.
    pub rng: SplitMix64,
    planned: Vec<PlannedEvent<E>>,
    /// The backfill clock: historical facts are entered one after another from it.
    backfill_at: Instant,
}

impl<E> Scenario<E> {
    /// An empty scenario; historical facts are entered from `backfill_from` on.
    pub fn new(seed: u64, backfill_from: Instant) -> Self {
        Self {
            rng: SplitMix64(seed),
            planned: Vec::new(),
            backfill_at: backfill_from,
        }
    }

    /// A fresh id stamped with `unix_millis` (for a trip, a difficulty, a claim: anything
    /// that exists from a known moment).
    pub fn id_at(&mut self, unix_millis: i64) -> Uuid {
        seeded_uuid(&mut self.rng, unix_millis)
    }

    /// A fresh id for an entity registered during the backfill.
    pub fn entity(&mut self) -> Uuid {
        let ms = self.backfill_at.timestamp_millis();
        self.id_at(ms)
    }

    /// A live event: recorded 30 minutes to 10.5 hours after it happened.
    pub fn live(&mut self, occurred_at: Instant, event: E) -> Uuid {
        let delay = Duration::minutes(30 + self.rng.in_range(0, 600));
        let recorded_at = occurred_at + delay;
        self.record(occurred_at, recorded_at, event)
    }

    /// A historical fact entered during the backfill: 15 seconds after the previous one, and
    /// never less than 30 minutes after it happened.
    pub fn backfill(&mut self, occurred_at: Instant, event: E) -> Uuid {
        self.backfill_at += Duration::seconds(15);
        let recorded_at = self.backfill_at.max(occurred_at + Duration::minutes(30));
        self.record(occurred_at, recorded_at, event)
    }

    /// An event that happened at `occurred_at` and is recorded at `recorded_at`; its id.
    pub fn record(&mut self, occurred_at: Instant, recorded_at: Instant, event: E) -> Uuid {
        let id = self.id_at(recorded_at.timestamp_millis());
        let seq = self.planned.len() as u64;
        self.planned.push(PlannedEvent {
            id,
            occurred_at,
            recorded_at,
            event,
            seq,
        });
        id
    }

    /// How many events are planned so far.
    pub fn len(&self) -> usize {
        self.planned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }

    /// The planned events in recorded order (ties in planning order).
    pub fn into_planned(self) -> Vec<PlannedEvent<E>> {
        let mut planned = self.planned;
        planned.sort_by(|x, y| x.recorded_at.cmp(&y.recorded_at).then(x.seq.cmp(&y.seq)));
        debug_assert!(
            planned
                .windows(2)
                .all(|w| w[0].recorded_at <= w[1].recorded_at)
        );
        planned
    }
}

impl Scenario<DomainEvent> {
    /// The events in recorded order, ready to append, each with its id, both times and the
    /// recorder `recorded_by` names for it.
    pub fn into_events(self, recorded_by: impl Fn(&DomainEvent) -> String) -> Vec<IncomingEvent> {
        self.into_planned()
            .into_iter()
            .map(|p| IncomingEvent {
                id: Some(p.id),
                recorded_by: Some(recorded_by(&p.event)),
                event: p.event,
                occurred_at: p.occurred_at,
                recorded_at: Some(p.recorded_at),
                correlation_id: None,
                causation_id: None,
                expected_version: None,
                late_entry_reason: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{UnitKind, UnitRegisteredV1};

    fn unit(id: Uuid) -> DomainEvent {
        DomainEvent::UnitRegistered(UnitRegisteredV1 {
            unit_id: id,
            name: "bureau".into(),
            kind: UnitKind::CityBureau,
            parent_id: None,
            official_code: None,
        })
    }

    #[test]
    fn the_same_seed_gives_the_same_events_in_recorded_order() {
        let build = |seed| {
            let start = shanghai_at(day(2023, 1, 3), 60);
            let mut s = Scenario::new(seed, start);
            let a = s.entity();
            s.live(shanghai_at(day(2023, 5, 1), 0), unit(a));
            let b = s.entity();
            s.backfill(shanghai_at(day(2020, 1, 1), 0), unit(b));
            s.into_events(|_| "tester".into())
        };
        let (one, two) = (build(7), build(7));
        assert_eq!(one.len(), 2);
        assert_eq!(
            one.iter()
                .map(|e| (e.id, e.recorded_at))
                .collect::<Vec<_>>(),
            two.iter()
                .map(|e| (e.id, e.recorded_at))
                .collect::<Vec<_>>()
        );
        // The backfilled fact is recorded first although it was planned second.
        assert!(one[0].recorded_at < one[1].recorded_at);
        assert_eq!(one[0].occurred_at, shanghai_at(day(2020, 1, 1), 0));
        assert_ne!(build(8)[0].id, one[0].id);
    }
}
