//! [`AppendMap`]: the ordered map of projection states, for keys that mostly arrive in
//! ascending order.
//!
//! States are keyed by ids: event ids (facts), entity ids (plans, escalations, pupils). Ids
//! made by carelog are UUID v7 (time first), so along the log new keys are nearly always the
//! largest yet. A `BTreeMap` pays for that at its worst: each insert scans the full right edge
//! of every node from the root down (~60 id comparisons on 10 M events), each leaf it fills
//! stays ~55% full, and every node is an allocation. On a 10 M-event rebuild those inserts
//! were ~15% of the time and the half-empty nodes much of the 2.4 GiB held.
//!
//! Here a key above every key so far is pushed onto sorted vectors (the *run*: keys apart from
//! values): no node, no slack beyond the vectors' own. Other keys go into a `BTreeMap` beside
//! it (the *others*), except that a key with at most [`MOVE_TO_OTHERS_MAX`] run keys above it
//! (or an eighth of the run) takes their place: they move to the others and it is pushed. So the run heals: a client's
//! id far above the rest (a random v4 id among v7 ids, say) leaves the run at the next ordinary
//! id, instead of sending every later id to the others. Ids that are all random cost about what
//! they cost in a `BTreeMap` (each key moves at most once). A removed run entry stays as a
//! tombstone (`None`): removing from the middle of a vector of millions would move them all, and
//! voids and corrections remove far fewer than are added (a map whose entries are mostly
//! removed would keep its tombstones: no state here is such a map). A lookup finds its block of
//! 256 run keys from a fence of every 256th key, then guesses within the block from the key's
//! rank (for ids, their time).
//!
//! It behaves as the `BTreeMap` it replaces: iteration in key order (the run and the others
//! merged), and the same serialized bytes (a map, in key order), so checkpoints written by
//! either decode into either. A decode inserts the entries as they come: sorted (as saves write
//! them), each is pushed onto the run, with no tree to build. Invariants: the run's keys are
//! strictly ascending; a key is in the run or in the others, never both.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::iter::{FilterMap, Peekable};
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// At most this many keys at the end of the run move to the others to let a key below them
/// be pushed: enough for a burst of out-of-order ids, few enough that a key far below the end
/// (an old id) goes to the others rather than emptying the run.
pub const MOVE_TO_OTHERS_MAX: usize = 64;

/// ... or this share of the run (one in 8), when that is more: a map decoded from a checkpoint
/// has every key in its run, a client's random ids included, and most of those sort above
/// carelog's own (v7); the first new id after the load moves them out, once. Each key moves
/// at most once, so a move of many keys is paid for by the pushes that put them there.
const MOVE_TO_OTHERS_SHARE: usize = 8;

/// One run key in this many is kept in the fence (see [`AppendMap`]'s `fence`): a block of
/// 256 ids is 4 KiB of keys.
const FENCE_EVERY: usize = 256;

/// An ordered map optimised for ascending keys; see the module documentation.
#[derive(Clone)]
pub struct AppendMap<K, V> {
    /// The run's keys, strictly ascending: apart from the values, so that a search reads only
    /// keys (16 bytes each for ids) and not a value per probe.
    run_keys: Vec<K>,
    /// The run's values, at their keys' indexes, or `None` once removed.
    run_values: Vec<Option<V>>,
    /// Every [`FENCE_EVERY`]th run key (`run_keys[j * FENCE_EVERY]`): a search first finds its
    /// block among these few (cached) keys, so that keys far from the rest (a client's random
    /// ids, say) slow down only the lookups in their own block.
    fence: Vec<K>,
    /// Every other key.
    others: BTreeMap<K, V>,
    /// Live entries in both.
    len: usize,
}

/// Where a key is in the run.
enum Place {
    /// At this index (live or a tombstone).
    Run(usize),
    /// Not in the run: it would go at this index (the run's length: after its last key).
    NotInRun(usize),
}

impl<K, V> Default for AppendMap<K, V> {
    fn default() -> Self {
        Self {
            run_keys: Vec::new(),
            run_values: Vec::new(),
            fence: Vec::new(),
            others: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Ranked, V> AppendMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live entries kept in the run (the rest are in the others): how well the keys ascend.
    pub fn len_in_run(&self) -> usize {
        self.len - self.others.len()
    }

    fn place(&self, key: &K) -> Place {
        match self.run_keys.last() {
            Some(last) if key <= last => {
                // The block whose first key is the last at or below `key` (none: below the run).
                let blocks_at_or_below = self.fence.partition_point(|f| f <= key);
                let Some(block) = blocks_at_or_below.checked_sub(1) else {
                    return Place::NotInRun(0);
                };
                let start = block * FENCE_EVERY;
                let end = (start + FENCE_EVERY).min(self.run_keys.len());
                match search(self.run_keys.get(start..end).unwrap_or_default(), key) {
                    Ok(i) => Place::Run(start + i),
                    Err(i) => Place::NotInRun(start + i),
                }
            }
            _ => Place::NotInRun(self.run_keys.len()),
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        match self.place(key) {
            Place::Run(i) => self.run_values.get(i).and_then(Option::as_ref),
            Place::NotInRun(_) if self.others.is_empty() => None,
            Place::NotInRun(_) => self.others.get(key),
        }
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.place(key) {
            Place::Run(i) => self.run_values.get_mut(i).and_then(Option::as_mut),
            Place::NotInRun(_) if self.others.is_empty() => None,
            Place::NotInRun(_) => self.others.get_mut(key),
        }
    }

    /// For a key in neither the run nor the others, that would go at `index` of the run: moves
    /// the run's keys from `index` on to the others when there are at most
    /// [`MOVE_TO_OTHERS_MAX`] of them (or an eighth of the run, when that is more), and says
    /// whether the key can now be pushed.
    fn make_room_in_run(&mut self, index: usize) -> bool {
        let limit = MOVE_TO_OTHERS_MAX.max(self.run_keys.len() / MOVE_TO_OTHERS_SHARE);
        if self.run_keys.len().saturating_sub(index) > limit {
            return false;
        }
        let moved = self
            .run_keys
            .drain(index..)
            .zip(self.run_values.drain(index..));
        for (key, value) in moved {
            if let Some(value) = value {
                self.others.insert(key, value);
            }
        }
        self.fence
            .truncate(self.run_keys.len().div_ceil(FENCE_EVERY));
        true
    }

    fn push_run(&mut self, key: K, value: Option<V>) {
        // Every caller found the key's place above every key left in the run.
        assert!(
            self.run_keys.last().is_none_or(|last| *last < key),
            "AppendMap: a key pushed onto the run must be above its last"
        );
        grow_for_one_more(&mut self.run_keys);
        grow_for_one_more(&mut self.run_values);
        if self.run_keys.len().is_multiple_of(FENCE_EVERY) {
            self.fence.push(key.clone());
        }
        self.run_keys.push(key);
        self.run_values.push(value);
    }

    /// Inserts, returning the value the key had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = match self.place(&key) {
            Place::Run(i) => self.run_values.get_mut(i).and_then(|v| v.replace(value)),
            Place::NotInRun(i) => {
                if let Some(slot) = self.others.get_mut(&key) {
                    Some(std::mem::replace(slot, value))
                } else if self.make_room_in_run(i) {
                    self.push_run(key, Some(value));
                    None
                } else {
                    self.others.insert(key, value)
                }
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes, returning the value the key had.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let old = match self.place(key) {
            Place::Run(i) => self.run_values.get_mut(i).and_then(Option::take),
            Place::NotInRun(_) if self.others.is_empty() => None,
            Place::NotInRun(_) => self.others.remove(key),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value under `key`, inserted from `make` first when there is none (`BTreeMap`'s
    /// `entry(key).or_insert_with(make)`).
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.place(&key) {
            Place::Run(i) => i,
            Place::NotInRun(i) => {
                if self.others.contains_key(&key) || !self.make_room_in_run(i) {
                    let mut made = false;
                    let value = self.others.entry(key).or_insert_with(|| {
                        made = true;
                        make()
                    });
                    self.len += usize::from(made);
                    return value;
                }
                self.push_run(key, None);
                self.run_values.len() - 1
            }
        };
        let slot = &mut self.run_values[i];
        let made = slot.is_none();
        let value = slot.get_or_insert_with(make);
        // Counted once the value exists (a panicking `make` leaves a tombstone, not a count).
        self.len += usize::from(made);
        value
    }

    /// The value under `key`, the default inserted first when there is none.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.get_or_insert_with(key, V::default)
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            run: self
                .run_keys
                .iter()
                .zip(&self.run_values)
                .filter_map(live_entry as LiveEntry<K, V>)
                .peekable(),
            others: self.others.iter().peekable(),
            remaining: self.len,
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Makes room for one more entry in a run vector. A full vector of at least
/// [`GROW_STRAIGHT_FROM_BYTES`] grows straight to [`GROW_STRAIGHT_TO_BYTES`], then doubles as
/// usual. Why: glibc places an allocation under its mmap threshold (which rises to 32 MiB as
/// mapped blocks are freed) in the heap, and a heap block that grows is copied to a new one,
/// leaving the old as a hole only later allocations fill; a block over it is mapped, and grows
/// by remapping its pages (no copy, no hole). Doubling every run vector through the heap left
/// holes of ~100 MiB at the peak of a 10 M-event rebuild. The capacity above the length is
/// address space, not memory, until written.
fn grow_for_one_more<T>(v: &mut Vec<T>) {
    if v.len() < v.capacity() {
        return;
    }
    let size = std::mem::size_of::<T>().max(1);
    let bytes = v.capacity().saturating_mul(size);
    if (GROW_STRAIGHT_FROM_BYTES..GROW_STRAIGHT_TO_BYTES).contains(&bytes) {
        v.reserve_exact((GROW_STRAIGHT_TO_BYTES / size).saturating_sub(v.len()));
    }
}

/// See [`grow_for_one_more`]: small maps (most of the registry's) never reach it.
const GROW_STRAIGHT_FROM_BYTES: usize = 1 << 20;
/// Over glibc's largest mmap threshold (32 MiB on 64-bit), with room for its header.
const GROW_STRAIGHT_TO_BYTES: usize = 33 << 20;

/// A key with a rank: a number that never decreases as keys ascend, and spreads them about
/// evenly for the keys actually met, so that a search of the run can guess where a key lies.
pub trait Ranked: Ord + Clone {
    fn rank(&self) -> u64;
}

/// A UUID's first 8 bytes: a v7 id's millisecond time (48 bits), its version and 12 bits more.
impl Ranked for uuid::Uuid {
    fn rank(&self) -> u64 {
        let b = self.as_bytes();
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl Ranked for u64 {
    fn rank(&self) -> u64 {
        *self
    }
}

/// `keys.binary_search(key)` within one block of the run (found from the fence), for strictly
/// ascending keys, starting where the key's rank says it lies between the block's first and
/// last keys, then widening from there by doubling steps until the key is bracketed. Keys
/// spread as ids are (by time) are found within a few neighbouring probes; keys spread
/// otherwise cost at most about twice a binary search of the block. (A binary search of the
/// whole run touched ~20 cache lines far apart per lookup: with it, the lookups of entities
/// were the largest cost of a 10 M-event rebuild.)
fn search<K: Ranked>(keys: &[K], key: &K) -> Result<usize, usize> {
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return Err(0);
    };
    let (lo_rank, hi_rank, rank) = (first.rank(), last.rank(), key.rank());
    let span = hi_rank.saturating_sub(lo_rank);
    let guess = if span == 0 || rank <= lo_rank {
        0
    } else {
        let offset =
            u128::from(rank.min(hi_rank) - lo_rank) * (keys.len() as u128 - 1) / u128::from(span);
        usize::try_from(offset).unwrap_or(keys.len() - 1)
    }
    .min(keys.len() - 1);
    // Bracket [lo, hi) holding the key's place, by doubling steps from the guess.
    let (lo, hi) = match keys[guess].cmp(key) {
        std::cmp::Ordering::Equal => return Ok(guess),
        std::cmp::Ordering::Less => {
            let mut step = 1usize;
            let mut lo = guess + 1;
            loop {
                let probe = guess.saturating_add(step);
                if probe >= keys.len() {
                    break (lo, keys.len());
                }
                match keys[probe].cmp(key) {
                    std::cmp::Ordering::Equal => return Ok(probe),
                    std::cmp::Ordering::Less => lo = probe + 1,
                    std::cmp::Ordering::Greater => break (lo, probe),
                }
                step = step.saturating_mul(2);
            }
        }
        std::cmp::Ordering::Greater => {
            let mut step = 1usize;
            let mut hi = guess;
            loop {
                let Some(probe) = guess.checked_sub(step) else {
                    break (0, hi);
                };
                match keys[probe].cmp(key) {
                    std::cmp::Ordering::Equal => return Ok(probe),
                    std::cmp::Ordering::Greater => hi = probe,
                    std::cmp::Ordering::Less => break (probe + 1, hi),
                }
                step = step.saturating_mul(2);
            }
        }
    };
    match keys[lo..hi].binary_search(key) {
        Ok(i) => Ok(lo + i),
        Err(i) => Err(lo + i),
    }
}

fn live_entry<'a, K, V>((k, v): (&'a K, &'a Option<V>)) -> Option<(&'a K, &'a V)> {
    v.as_ref().map(|v| (k, v))
}

type LiveEntry<K, V> = for<'b> fn((&'b K, &'b Option<V>)) -> Option<(&'b K, &'b V)>;

type RunIter<'a, K, V> = Peekable<
    FilterMap<
        std::iter::Zip<std::slice::Iter<'a, K>, std::slice::Iter<'a, Option<V>>>,
        LiveEntry<K, V>,
    >,
>;

/// The entries of an [`AppendMap`] in key order: the run and the others merged.
pub struct Iter<'a, K, V> {
    run: RunIter<'a, K, V>,
    others: Peekable<btree_map::Iter<'a, K, V>>,
    remaining: usize,
}

impl<'a, K: Ord, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let from_run = match (self.run.peek(), self.others.peek()) {
            (Some((a, _)), Some((b, _))) => a < b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let next = if from_run {
            self.run.next()
        } else {
            self.others.next()
        };
        if next.is_some() {
            self.remaining = self.remaining.saturating_sub(1);
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K: Ord, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<'a, K: Ranked, V> IntoIterator for &'a AppendMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: Ranked, V> FromIterator<(K, V)> for AppendMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Self::new();
        for (k, v) in entries {
            map.insert(k, v);
        }
        map
    }
}

/// Equal when the entries are: how they are split between the run and the others is not part
/// of the value.
impl<K: Ranked, V: PartialEq> PartialEq for AppendMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: Ranked, V: Eq> Eq for AppendMap<K, V> {}

impl<K: Ranked + fmt::Debug, V: fmt::Debug> fmt::Debug for AppendMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A map in key order: the bytes a `BTreeMap` of the same entries serializes to.
impl<K: Ranked + Serialize, V: Serialize> Serialize for AppendMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Entries are inserted as they come: sorted ones (all that a save writes) are pushed onto the
/// run. A later equal key replaces the earlier value, as in serde's `BTreeMap`.
impl<'de, K: Ranked + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for AppendMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Ranked + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = AppendMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = AppendMap::new();
                let reserve = access.size_hint().unwrap_or(0).min(RESERVE_ENTRIES_MAX);
                map.run_keys.reserve(reserve);
                map.run_values.reserve(reserve);
                while let Some((k, v)) = access.next_entry()? {
                    map.insert(k, v);
                }
                Ok(map)
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// At most this many entries are reserved up front, whatever a (possibly corrupt) length
/// prefix says: the run grows past it as entries actually arrive.
const RESERVE_ENTRIES_MAX: usize = 1 << 16;
