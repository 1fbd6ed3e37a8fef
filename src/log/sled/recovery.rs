//! The commit journal's replay as a pure planner: [`plan`] reads the journal's records and what
//! sled holds (through a [`View`], read only) and decides what to write back, what to apply and
//! what is damage; it writes nothing and touches no file. The open (`open.rs`) executes the
//! plan: it writes the plan's keys, flushes sled, then resets the journal or sets it aside.
//!
//! The rules (see `mod.rs` for why the journal exists):
//! - The records must chain one onto the next (positions and chain hashes), and each must be a
//!   commit whose events hash to their leaf hashes and run, chained, up to its own head.
//! - Those sled's head covers must be this log's: the last of them ends at a position whose
//!   chain hash sled holds too (its head, the event stored there, or the segment after it).
//!   Their keys sled lost are written back; a key sled holds with other bytes is damage, and
//!   then nothing at all is written.
//! - The rest must continue sled's head; they are applied in order.
//!
//! Only the records before the first problem are written. Any problem, or a damaged record
//! with valid ones after it, sets the journal aside (kept): it may hold acknowledged commits.

use super::journal::{self, JournalEntry};
use super::keys;
use crate::codec::{self, StoredHeadV1};
use crate::log::hash;
use crate::log::storage::{JournalReplay, StorageError};

/// The journal's records as its scan found them.
pub(super) struct JournalRecords<'a> {
    /// The payloads of the current generation's records, in the order written.
    pub payloads: &'a [Vec<u8>],
    /// Where the scan stopped at a damaged record that has valid records after it (see
    /// [`journal::OpenedJournal::damaged_record_at`]).
    pub damaged_record_at: Option<u64>,
}

/// What the planner may look at of sled: read only.
pub(super) trait View {
    /// sled's head, None for an empty log.
    fn head(&self) -> Option<&StoredHeadV1>;
    /// The bytes sled holds under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// The chain hash of the event sled stores at `position` (None: it holds none there), or
    /// why that event cannot be read.
    fn chain_hash_at(&self, position: u64) -> Result<Option<[u8; 32]>, String>;
}

/// A key of a commit sled's head covers that sled lost, to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Restore {
    /// The last position of the record it comes from (at most sled's head).
    pub record_last: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A commit past sled's head, to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Apply {
    pub first: u64,
    pub head: StoredHeadV1,
    /// Its writes in the order the commit wrote them (its head last).
    pub writes: Vec<JournalEntry>,
}

/// What a replay writes, and the damage it found, if any.
#[derive(Debug, Default)]
pub(super) struct ReplayPlan {
    /// Keys of commits sled's head covers that sled lost.
    pub restores: Vec<Restore>,
    /// The commits past sled's head, in order: their positions are dense from the head's next.
    pub applies: Vec<Apply>,
    /// What the writes amount to (None when there are none).
    pub replay: Option<JournalReplay>,
    /// The first problem (worded for the user): the journal is then set aside, not reset.
    pub problem: Option<String>,
}

impl ReplayPlan {
    /// Whether the plan writes anything to sled.
    pub fn writes(&self) -> bool {
        !self.restores.is_empty() || !self.applies.is_empty()
    }

    /// The planner's promises, checked on every plan (they are cheap): applies continue the
    /// head at dense positions, restores and applies never cross it, the summary counts what
    /// is written.
    fn assert_invariants(&self, head_position: u64) {
        let mut next = head_position.saturating_add(1);
        for apply in &self.applies {
            assert_eq!(
                apply.first, next,
                "an applied commit continues the one before"
            );
            assert!(
                apply.head.position >= apply.first,
                "a commit holds an event"
            );
            assert_eq!(
                apply.writes.last().map(|(k, _)| k.as_slice()),
                Some(keys::HEAD),
                "a commit's head is written last"
            );
            next = apply.head.position + 1;
        }
        for restore in &self.restores {
            assert!(
                restore.record_last <= head_position,
                "only keys of commits the head covers are written back"
            );
            assert_ne!(
                restore.key.as_slice(),
                keys::HEAD,
                "the head is never restored"
            );
        }
        match &self.replay {
            None => assert!(!self.writes(), "every write is reported"),
            Some(r) => {
                assert_eq!(r.commits, self.applies.len() as u64);
                assert_eq!(r.keys_restored, self.restores.len() as u64);
                assert!(r.from_position <= r.to_position);
                if let Some(last) = self.applies.last() {
                    assert_eq!(
                        r.to_position, last.head.position,
                        "a replay ends at its head"
                    );
                }
            }
        }
    }
}

/// The replay so far (started if need be), its positions widened to `first..=last`.
fn widen(replay: &mut Option<JournalReplay>, first: u64, last: u64) -> &mut JournalReplay {
    let r = replay.get_or_insert(JournalReplay {
        commits: 0,
        from_position: first,
        to_position: last,
        keys_restored: 0,
    });
    r.from_position = r.from_position.min(first);
    r.to_position = r.to_position.max(last);
    r
}

/// Plans the replay of `records` onto what `view` shows of sled (see the module overview).
/// Errors only when sled cannot be read.
pub(super) fn plan(
    records: &JournalRecords<'_>,
    view: &dyn View,
) -> Result<ReplayPlan, StorageError> {
    let sled_head = view.head().copied();
    let head_position = sled_head.map_or(0, |h| h.position);
    let mut plan = plan_records(records.payloads, sled_head.as_ref(), view)?;
    if plan.problem.is_none()
        && let Some(offset) = records.damaged_record_at
    {
        plan.problem = Some(format!(
            "a damaged record at byte {offset} followed by valid records (damage to \
             acknowledged commits, or a power loss that kept a later page of the last group \
             commit and lost an earlier one)"
        ));
    }
    plan.assert_invariants(head_position);
    Ok(plan)
}

fn plan_records(
    payloads: &[Vec<u8>],
    sled_head: Option<&StoredHeadV1>,
    view: &dyn View,
) -> Result<ReplayPlan, StorageError> {
    let mut plan = ReplayPlan::default();
    let head_position = sled_head.map_or(0, |h| h.position);
    // The records as commits, chained one onto the next.
    let mut commits: Vec<(u64, StoredHeadV1, Vec<JournalEntry>)> = Vec::new();
    for payload in payloads {
        let (first, record_head, entries) = match journal_commit(payload) {
            Ok(commit) => commit,
            Err(what) => {
                plan.problem = Some(what.into());
                break;
            }
        };
        if let Some((_, previous, _)) = commits.last() {
            let chained = previous.position.checked_add(1) == Some(first)
                && first_segment_continues(&entries, first, Some(previous));
            if !chained {
                plan.problem = Some(format!(
                    "a record of positions {first}..={} that does not follow the record \
                     before it",
                    record_head.position
                ));
                break;
            }
        }
        commits.push((first, record_head, entries));
    }
    // Those sled's head covers: this log's, and whole in sled once their lost keys are back.
    let covered = commits
        .iter()
        .take_while(|(_, h, _)| h.position <= head_position)
        .count();
    if let (Some((first, _, _)), Some((_, last_head, _))) = (
        commits.first(),
        commits.get(..covered).and_then(|c| c.last()),
    ) && covered > 0
    {
        // Where the log's chain hash at the last covered position is to be found: sled's
        // head, the event stored there, or (when sled lost that event) the event after it,
        // which chains from it.
        let q = last_head.position;
        let ours: Result<bool, String> = match sled_head {
            Some(h) if h.position == q => Ok(h.chain_hash == last_head.chain_hash),
            _ => match view.chain_hash_at(q) {
                Ok(Some(chain)) => Ok(chain == last_head.chain_hash),
                Ok(None) => match view.get(&keys::segment(q.saturating_add(1)))? {
                    Some(next) => Ok(segment_continues(&next, Some(last_head))),
                    None => Err(format!(
                        "sled holds neither the event at {q} nor the segment after it"
                    )),
                },
                Err(e) => Err(format!("the event at {q} cannot be read ({e})")),
            },
        };
        let not_ours = match ours {
            Ok(true) => None,
            Ok(false) => Some(format!("the chain hash at {q} differs from the log's")),
            Err(why) => Some(why),
        };
        if let Some(why) = not_ours {
            plan.problem.get_or_insert(format!(
                "records of positions {first}..={q} that cannot be shown to be this log's \
                 ({why})"
            ));
            return Ok(plan);
        }
        for (first, record_head, entries) in &commits[..covered] {
            for (key, value) in entries.iter().filter(|(k, _)| k.as_slice() != keys::HEAD) {
                match view.get(key)? {
                    Some(held) if held == *value => {}
                    Some(_) => {
                        // Nothing of a journal that differs from the log goes into it.
                        plan.restores.clear();
                        plan.replay = None;
                        plan.problem.get_or_insert(format!(
                            "a record of positions {first}..={} that differs from the log \
                             (sled holds other bytes under key {})",
                            record_head.position,
                            hex::encode(key)
                        ));
                        return Ok(plan);
                    }
                    None => {
                        plan.restores.push(Restore {
                            record_last: record_head.position,
                            key: key.clone(),
                            value: value.clone(),
                        });
                        widen(&mut plan.replay, *first, record_head.position).keys_restored += 1;
                    }
                }
            }
        }
    }
    // The rest: they must continue sled's head.
    let mut head = sled_head.copied();
    for (first, record_head, entries) in commits.into_iter().skip(covered) {
        let position = head.as_ref().map_or(0, |h| h.position);
        if position.checked_add(1) != Some(first)
            || !first_segment_continues(&entries, first, head.as_ref())
        {
            plan.problem.get_or_insert(format!(
                "a record of positions {first}..={} that does not continue the head at \
                 {position}",
                record_head.position
            ));
            break;
        }
        widen(&mut plan.replay, first, record_head.position).commits += 1;
        plan.applies.push(Apply {
            first,
            head: record_head,
            writes: entries,
        });
        head = Some(record_head);
    }
    Ok(plan)
}

/// Whether the segment of a commit's writes that starts at `first` continues `head`.
fn first_segment_continues(
    entries: &[JournalEntry],
    first: u64,
    head: Option<&StoredHeadV1>,
) -> bool {
    entries
        .iter()
        .any(|(k, v)| keys::segment_position(k) == Some(first) && segment_continues(v, head))
}

/// Whether a segment's first event follows `head`'s position and chain hash (the genesis chain
/// for an empty log).
pub(super) fn segment_continues(segment_bytes: &[u8], head: Option<&StoredHeadV1>) -> bool {
    let Ok(segment) = codec::decode::<codec::SegmentV1>("segment", segment_bytes) else {
        return false;
    };
    let (position, chain) = head.map_or((0, hash::GENESIS_CHAIN), |h| (h.position, h.chain_hash));
    segment.events.first().is_some_and(|e| {
        e.position == position + 1 && hash::chain(&chain, &e.leaf_hash) == e.chain_hash
    })
}

/// A journal record read as a commit: its first segment's position, its head and its writes.
/// An error names what it is instead: not a commit (no head, or no segment), or one whose
/// events do not hash to their leaf hashes and run, each chained onto the one before, up to
/// its head (the writer never makes such a record: its bytes were forged or damaged under a
/// valid checksum).
fn journal_commit(payload: &[u8]) -> Result<(u64, StoredHeadV1, Vec<JournalEntry>), &'static str> {
    const NOT_A_COMMIT: &str = "a record that is not a commit";
    let entries = journal::decode_payload(payload).ok_or(NOT_A_COMMIT)?;
    let (last_key, head_bytes) = entries.last().ok_or(NOT_A_COMMIT)?;
    if last_key.as_slice() != keys::HEAD {
        return Err(NOT_A_COMMIT);
    }
    let head: StoredHeadV1 = codec::decode("durable head", head_bytes).map_err(|_| NOT_A_COMMIT)?;
    let first = entries
        .iter()
        .filter_map(|(k, _)| keys::segment_position(k))
        .min()
        .ok_or(NOT_A_COMMIT)?;
    if !events_run_up_to_head(&entries, &head) {
        return Err("a record whose events do not run, chained, up to its own head");
    }
    Ok((first, head, entries))
}

/// Whether a record's segments, in position order, hold events at dense positions, each one's
/// bytes hashing to its leaf hash and each chained onto the one before (the first segment's
/// first event is chained to the log by the replay), the last one's position and chain hash
/// being the record's head. With the chain back from a head the log holds, this pins every
/// event's content, the first one's too.
fn events_run_up_to_head(entries: &[JournalEntry], head: &StoredHeadV1) -> bool {
    let mut segments: Vec<(u64, &[u8])> = entries
        .iter()
        .filter_map(|(k, v)| keys::segment_position(k).map(|at| (at, v.as_slice())))
        .collect();
    segments.sort_unstable_by_key(|(at, _)| *at);
    let mut last: Option<(u64, [u8; 32])> = None;
    let mut events = Vec::new();
    for (at, bytes) in segments {
        if codec::decode_segment_refs(bytes, &mut events).is_err()
            || events.first().map(|e| e.position) != Some(at)
        {
            return false;
        }
        for e in &events {
            if hash::computed_leaf(e).ok() != Some(e.leaf_hash) {
                return false;
            }
            if let Some((position, chain)) = last
                && (position.checked_add(1) != Some(e.position)
                    || hash::chain(&chain, &e.leaf_hash) != e.chain_hash)
            {
                return false;
            }
            last = Some((e.position, e.chain_hash));
        }
    }
    last == Some((head.position, head.chain_hash))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::codec::{SegmentV1, StoredEventV1, StoredTime};

    /// Events 1..=n of a log chained from genesis; another `salt` makes another log's.
    fn events(n: u64, salt: u8) -> Vec<StoredEventV1> {
        let time = StoredTime {
            unix_seconds: 1_700_000_000,
            nanos: 0,
            offset_seconds: 0,
        };
        let mut chain = hash::GENESIS_CHAIN;
        (1..=n)
            .map(|position| {
                let mut e = StoredEventV1 {
                    position,
                    event_id: [salt.wrapping_add(position as u8); 16],
                    stream: "s".into(),
                    stream_version: position,
                    event_type: "t".into(),
                    schema_version: 1,
                    occurred_at: time,
                    recorded_at: time,
                    recorded_by: "r".into(),
                    correlation_id: None,
                    causation_id: None,
                    payload: vec![salt; 3],
                    leaf_hash: [0; 32],
                    chain_hash: [0; 32],
                };
                e.leaf_hash = hash::leaf(&e.canonical_bytes().unwrap());
                e.chain_hash = hash::chain(&chain, &e.leaf_hash);
                chain = e.chain_hash;
                e
            })
            .collect()
    }

    fn head_at(e: &StoredEventV1) -> StoredHeadV1 {
        StoredHeadV1 {
            position: e.position,
            chain_hash: e.chain_hash,
            recorded_at: e.recorded_at,
        }
    }

    /// The writes of a commit of `first..=last` as the writer journals them: its index chunk,
    /// its segment, its head.
    fn commit(log: &[StoredEventV1], first: u64, last: u64) -> Vec<JournalEntry> {
        let part = log[first as usize - 1..last as usize].to_vec();
        let head = head_at(&part[part.len() - 1]);
        vec![
            (keys::index_chunk(first).to_vec(), vec![first as u8; 4]),
            (
                keys::segment(first).to_vec(),
                codec::encode("segment", &SegmentV1 { events: part }).unwrap(),
            ),
            (
                keys::HEAD.to_vec(),
                codec::encode("durable head", &head).unwrap(),
            ),
        ]
    }

    fn record(writes: &[JournalEntry]) -> Vec<u8> {
        let borrowed: Vec<(&[u8], &[u8])> = writes
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        journal::encode_payload(&borrowed)
    }

    /// What sled holds, in memory.
    #[derive(Default)]
    struct Sled {
        head: Option<StoredHeadV1>,
        keys: BTreeMap<Vec<u8>, Vec<u8>>,
    }

    impl Sled {
        /// sled holding these commits whole, its head the last one's.
        fn holding(commits: &[Vec<JournalEntry>]) -> Self {
            let mut sled = Sled::default();
            for (key, value) in commits.iter().flatten() {
                if key.as_slice() == keys::HEAD {
                    sled.head = Some(codec::decode("durable head", value).unwrap());
                } else {
                    sled.keys.insert(key.clone(), value.clone());
                }
            }
            sled
        }

        fn without(mut self, key: [u8; 9]) -> Self {
            assert!(self.keys.remove(key.as_slice()).is_some());
            self
        }

        fn with(mut self, key: [u8; 9], value: Vec<u8>) -> Self {
            self.keys.insert(key.to_vec(), value);
            self
        }
    }

    impl View for Sled {
        fn head(&self) -> Option<&StoredHeadV1> {
            self.head.as_ref()
        }

        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(self.keys.get(key).cloned())
        }

        fn chain_hash_at(&self, position: u64) -> Result<Option<[u8; 32]>, String> {
            // As the store reads it: the segment holding `position` starts at or before it.
            let from = keys::segment(1).to_vec()..=keys::segment(position.max(1)).to_vec();
            let Some((_, bytes)) = self.keys.range(from).next_back() else {
                return Ok(None);
            };
            let segment: SegmentV1 = codec::decode("segment", bytes).map_err(|e| e.to_string())?;
            Ok(segment
                .events
                .iter()
                .find(|e| e.position == position)
                .map(|e| e.chain_hash))
        }
    }

    struct Case {
        name: &'static str,
        sled: Sled,
        records: Vec<Vec<u8>>,
        damaged_record_at: Option<u64>,
        /// The keys written back, in order.
        restores: Vec<[u8; 9]>,
        /// (first, last) of each commit applied, in order.
        applies: Vec<(u64, u64)>,
        /// (commits, from, to, keys restored).
        replay: Option<(u64, u64, u64, u64)>,
        /// What the problem says (a part of it), when there is one.
        problem: Option<&'static str>,
    }

    fn cases() -> Vec<Case> {
        let a = events(6, 0);
        let b = events(6, 100);
        let (a1, a2, a3) = (commit(&a, 1, 2), commit(&a, 3, 4), commit(&a, 5, 6));
        let (b1, b2) = (commit(&b, 1, 2), commit(&b, 3, 4));
        let mut forged = a1.clone();
        let mut forged_head = head_at(&a[1]);
        forged_head.chain_hash[0] ^= 1;
        forged[2].1 = codec::encode("durable head", &forged_head).unwrap();
        let mut other_bytes = a1[1].1.clone();
        let last = other_bytes.len() - 1;
        other_bytes[last] ^= 1;
        vec![
            Case {
                name: "an empty journal",
                sled: Sled::holding(std::slice::from_ref(&a1)),
                records: vec![],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: None,
            },
            Case {
                name: "records of an empty log",
                sled: Sled::default(),
                records: vec![record(&a1)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![(1, 2)],
                replay: Some((1, 1, 2, 0)),
                problem: None,
            },
            Case {
                name: "records that continue the head",
                sled: Sled::holding(std::slice::from_ref(&a1)),
                records: vec![record(&a2), record(&a3)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![(3, 4), (5, 6)],
                replay: Some((2, 3, 6, 0)),
                problem: None,
            },
            Case {
                name: "records sled holds whole, behind its head",
                sled: Sled::holding(&[a1.clone(), a2.clone()]),
                records: vec![record(&a1)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: None,
            },
            Case {
                name: "a record behind the head whose keys sled lost, then one past it",
                sled: Sled::holding(&[a1.clone(), a2.clone()])
                    .without(keys::index_chunk(1))
                    .without(keys::segment(1)),
                records: vec![record(&a1), record(&a2), record(&a3)],
                damaged_record_at: None,
                restores: vec![keys::index_chunk(1), keys::segment(1)],
                applies: vec![(5, 6)],
                replay: Some((1, 1, 6, 2)),
                problem: None,
            },
            Case {
                name: "lost keys shown to be this log's by the segment after them",
                sled: Sled::holding(&[a1.clone(), a2.clone()]).without(keys::segment(1)),
                records: vec![record(&a1)],
                damaged_record_at: None,
                restores: vec![keys::segment(1)],
                applies: vec![],
                replay: Some((0, 1, 2, 1)),
                problem: None,
            },
            Case {
                name: "lost keys sled holds nothing to check against",
                sled: Sled::holding(&[a1.clone(), a2.clone()])
                    .without(keys::segment(1))
                    .without(keys::segment(3)),
                records: vec![record(&a1)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: Some(
                    "records of positions 1..=2 that cannot be shown to be this log's (sled \
                     holds neither the event at 2 nor the segment after it)",
                ),
            },
            Case {
                name: "a record that does not chain onto the one before",
                sled: Sled::default(),
                records: vec![record(&a1), record(&a3)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![(1, 2)],
                replay: Some((1, 1, 2, 0)),
                problem: Some(
                    "a record of positions 5..=6 that does not follow the record before it",
                ),
            },
            Case {
                name: "a record that does not continue the head",
                sled: Sled::holding(std::slice::from_ref(&a1)),
                records: vec![record(&a3)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: Some("a record of positions 5..=6 that does not continue the head at 2"),
            },
            Case {
                name: "damage before valid records",
                sled: Sled::holding(std::slice::from_ref(&a1)),
                records: vec![record(&a2)],
                damaged_record_at: Some(4_200),
                restores: vec![],
                applies: vec![(3, 4)],
                replay: Some((1, 3, 4, 0)),
                problem: Some("a damaged record at byte 4200 followed by valid records"),
            },
            Case {
                // The scan leaves a torn last record out (its checksum fails, nothing valid
                // follows): the records before it replay, and the journal is reset.
                name: "a torn last record",
                sled: Sled::holding(std::slice::from_ref(&a1)),
                records: vec![record(&a2)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![(3, 4)],
                replay: Some((1, 3, 4, 0)),
                problem: None,
            },
            Case {
                name: "another log's journal over the head",
                sled: Sled::holding(std::slice::from_ref(&a1)),
                records: vec![record(&b1), record(&b2)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: Some(
                    "records of positions 1..=2 that cannot be shown to be this log's (the \
                     chain hash at 2 differs from the log's)",
                ),
            },
            Case {
                name: "another log's journal past the head",
                sled: Sled::holding(std::slice::from_ref(&a1)),
                records: vec![record(&b2)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: Some("a record of positions 3..=4 that does not continue the head at 2"),
            },
            Case {
                name: "sled holds other bytes under a key of a covered record",
                sled: Sled::holding(std::slice::from_ref(&a1))
                    .without(keys::index_chunk(1))
                    .with(keys::segment(1), other_bytes),
                records: vec![record(&a1), record(&a2)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: Some("a record of positions 1..=2 that differs from the log"),
            },
            Case {
                name: "a record that is not a commit",
                sled: Sled::default(),
                records: vec![b"not a commit".to_vec(), record(&a1)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: Some("a record that is not a commit"),
            },
            Case {
                name: "a record whose head its events do not reach",
                sled: Sled::default(),
                records: vec![record(&forged)],
                damaged_record_at: None,
                restores: vec![],
                applies: vec![],
                replay: None,
                problem: Some("a record whose events do not run, chained, up to its own head"),
            },
        ]
    }

    #[test]
    fn each_case_plans_what_its_table_row_says() {
        for case in cases() {
            let records = JournalRecords {
                payloads: &case.records,
                damaged_record_at: case.damaged_record_at,
            };
            let plan = plan(&records, &case.sled).unwrap();
            let name = case.name;
            let restored: Vec<Vec<u8>> = plan.restores.iter().map(|r| r.key.clone()).collect();
            let expected: Vec<Vec<u8>> = case.restores.iter().map(|k| k.to_vec()).collect();
            assert_eq!(restored, expected, "{name}: restores");
            let applied: Vec<(u64, u64)> = plan
                .applies
                .iter()
                .map(|a| (a.first, a.head.position))
                .collect();
            assert_eq!(applied, case.applies, "{name}: applies");
            let replay = plan
                .replay
                .map(|r| (r.commits, r.from_position, r.to_position, r.keys_restored));
            assert_eq!(replay, case.replay, "{name}: replay");
            match (&plan.problem, case.problem) {
                (None, None) => {}
                (Some(found), Some(part)) => {
                    assert!(found.contains(part), "{name}: the problem {found:?}")
                }
                (found, expected) => panic!("{name}: problem {found:?}, expected {expected:?}"),
            }
            // Only keys sled lacks are written back.
            for restore in &plan.restores {
                assert_ne!(
                    case.sled.get(&restore.key).unwrap(),
                    Some(restore.value.clone())
                );
            }
        }
    }
}
