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
//! Here a key above every key so far is pushed onto sorted vectors (the *run*: keys, values): no search, no
//! node, no slack beyond the vector's own. A key below the run's last goes into a `BTreeMap`
//! beside it (the *others*): ids a client chose freely (v4, random) cost what they cost before.
//! A removed run entry stays as a tombstone (`None`): removing from the middle of a vector of
//! millions would move them all, and a void or a correction removes far fewer than are added.
//!
//! It behaves as the `BTreeMap` it replaces: iteration in key order (the run and the others
//! merged), and the same serialized bytes (a map, in key order), so checkpoints written by
//! either decode into either. A decode pushes each entry onto the run as it comes (they are
//! sorted), with no tree to build. Invariants: a key is in the run or in the others, never both;
//! every key in the others is below the run's last key; the run's keys are strictly ascending.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::iter::{FilterMap, Peekable};
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// An ordered map optimised for ascending keys; see the module documentation.
#[derive(Clone)]
pub struct AppendMap<K, V> {
    /// The run's keys, strictly ascending: apart from the values, so that a search reads only
    /// keys (16 bytes each for ids) and not a value per probe.
    run_keys: Vec<K>,
    /// The run's values, at their keys' indexes, or `None` once removed.
    run_values: Vec<Option<V>>,
    /// Keys that arrived below the run's last key and were not in the run.
    others: BTreeMap<K, V>,
    /// Live entries in both.
    len: usize,
}

/// Where a key is, or would go.
enum Place {
    /// At this index of the run (live or a tombstone).
    Run(usize),
    /// Above every key of the run: it would be pushed.
    After,
    /// Below the run's last key and not in the run: in the others, if anywhere.
    Others,
}

impl<K, V> Default for AppendMap<K, V> {
    fn default() -> Self {
        Self {
            run_keys: Vec::new(),
            run_values: Vec::new(),
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

    fn place(&self, key: &K) -> Place {
        match self.run_keys.last() {
            Some(last) if key <= last => match search(&self.run_keys, key) {
                Ok(i) => Place::Run(i),
                Err(_) => Place::Others,
            },
            _ => Place::After,
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        match self.place(key) {
            Place::Run(i) => self.run_values.get(i).and_then(Option::as_ref),
            Place::Others => self.others.get(key),
            Place::After => None,
        }
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.place(key) {
            Place::Run(i) => self.run_values.get_mut(i).and_then(Option::as_mut),
            Place::Others => self.others.get_mut(key),
            Place::After => None,
        }
    }

    /// Inserts, returning the value the key had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = match self.place(&key) {
            Place::After => {
                self.run_keys.push(key);
                self.run_values.push(Some(value));
                None
            }
            Place::Run(i) => self.run_values.get_mut(i).and_then(|v| v.replace(value)),
            Place::Others => self.others.insert(key, value),
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
            Place::Others => self.others.remove(key),
            Place::After => None,
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
            Place::After => {
                self.run_keys.push(key);
                self.run_values.push(None);
                self.run_values.len() - 1
            }
            Place::Others => {
                let mut made = false;
                let value = self.others.entry(key).or_insert_with(|| {
                    made = true;
                    make()
                });
                self.len += usize::from(made);
                return value;
            }
        };
        let slot = &mut self.run_values[i];
        self.len += usize::from(slot.is_none());
        slot.get_or_insert_with(make)
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

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// A key with a rank: a number that never decreases as keys ascend, and spreads them about
/// evenly for the keys actually met, so that a search of the run can guess where a key lies.
pub trait Ranked: Ord {
    fn rank(&self) -> u64;
}

/// A UUID's first 8 bytes: a v7 id's millisecond time and 16 random bits.
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

/// `keys.binary_search(key)`, for strictly ascending keys, starting where the key's rank says
/// it lies between the first and last keys, then widening from there by doubling steps until
/// the key is bracketed. Keys spread as ids are (by time) are found within a few neighbouring
/// probes; keys spread otherwise cost at most about twice a binary search. (A binary search of
/// millions of ids touched ~20 cache lines far apart per lookup: the lookups of entities were
/// the largest cost of a 10 M-event rebuild.)
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
