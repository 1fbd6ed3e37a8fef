//! [`AppendMap`]: the ordered map of projection states, for keys that mostly arrive in
//! ascending order, with clones that share what they have in common.
//!
//! States are keyed by ids: event ids (facts), entity ids (plans, escalations, pupils). Ids
//! made by carelog are UUID v7 (time first), so along the log new keys are nearly always the
//! largest yet. A `BTreeMap` pays for that at its worst: each insert scans the full right edge
//! of every node from the root down (~60 id comparisons on 10 M events), each leaf it fills
//! stays ~55% full, and every node is an allocation. On a 10 M-event rebuild those inserts
//! were ~15% of the time and the half-empty nodes much of the 2.4 GiB held.
//!
//! Here a key above every key so far is pushed onto the *run*: full leaves of
//! [`LEAF_ENTRIES`] keys (apart from their values), [`PAGE_LEAVES`] leaves to a page, and a
//! list of pages, each with the first key of what it holds (8, 64: 512 entries a page). No
//! slack but the last leaf's and page's, and a key's place in the run follows from its index.
//! Other keys go beside it into the *others* (`BTreeMap` shards of [`OTHERS_SHARD_ENTRIES`]),
//! except that a key with at most [`MOVE_TO_OTHERS_MAX`] run keys
//! above it (or an eighth of the run) takes their place: they move to the others and it is
//! pushed. So the run heals: a client's id far above the rest (a random v4 id among v7 ids, say)
//! leaves the run at the next ordinary id, instead of sending every later id to the others. Ids
//! that are all random cost about what they cost in a `BTreeMap` (each key moves at most once).
//! A removed run entry stays as a tombstone (`None`): voids and corrections remove far fewer
//! than are added (a map whose entries are mostly removed would keep its tombstones: no state
//! here is such a map). A lookup finds its page from the pages' first keys (guessing from the
//! key's rank: for ids, their time), its leaf from the page's, then the key in the leaf.
//!
//! **Clones share.** Pages, leaves and the others' shards are reference-counted and copied only
//! when written while shared (`Arc::make_mut`). A clone costs a pointer and a key per page
//! (~0.05 bytes an entry) and per shard of the others, and a write after it copies one page's
//! pointers and one leaf (the last ones, for a push), or one shard of the others. That is what
//! lets the engine hold the states as of many positions at once (`Timeline`): snapshots a few
//! tens of thousands of events apart share all but what changed between them. Each copy is
//! counted ([`copied_bytes`]), so that the timeline can bound what its snapshots hold: keys that
//! do not ascend at all (a client's random ids) make every write land in another shard.
//!
//! It behaves as the `BTreeMap` it replaces: iteration in key order (the run and the others
//! merged), and the same serialized bytes (a map, in key order), so checkpoints written by
//! either decode into either. A decode inserts the entries as they come: sorted (as saves write
//! them), each is pushed onto the run, with no tree to build. Invariants: the run's keys are
//! strictly ascending; every leaf but the last is full, and every page but the last; a key is in
//! the run or in the others, never both.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::iter::Peekable;
use std::marker::PhantomData;
use std::sync::Arc;

use arrayvec::ArrayVec;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// At most this many keys at the end of the run move to the others to let a key below them
/// be pushed: enough for a burst of out-of-order ids, few enough that a key far below the end
/// (an old id) goes to the others rather than emptying the run.
pub const MOVE_TO_OTHERS_MAX: usize = 64;

/// ... or this share of the run (one in 8), when that is more: a map decoded from a checkpoint
/// has every key in its run, a client's random ids included, and most of those sort above
/// carelog's own (v7); the first new id after the load moves them out, once. Each key moves
/// at most once, so a move of many keys is paid for by the pushes that put them there.
const MOVE_TO_OTHERS_SHARE: usize = 8;

/// Entries in a leaf: what a write to a shared leaf copies (for an entity, 8 values). On a 10 M
/// event log, 8 rather than 16 took a timeline of snapshots from 4.1 to 3.6 GiB, and rebuilt as
/// fast or faster; 4 made the states larger and the rebuild slower.
pub const LEAF_ENTRIES: usize = 8;

/// Leaves in a page: what a write to a shared page copies (64 pointers and keys), and what a
/// clone of the map costs per entry (a pointer and a key per 512).
pub const PAGE_LEAVES: usize = 64;

const PAGE_ENTRIES: usize = LEAF_ENTRIES * PAGE_LEAVES;

thread_local! {
    /// Bytes this thread copied out of parts shared with a clone (see [`copied_bytes`]).
    static COPIED_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// The bytes this thread has copied so far because what it wrote to was shared with a clone
/// (pages, leaves, the others, and a clone's own lists), in shallow sizes (a value's own heap
/// parts are not counted): an estimate of what the clones (a timeline's snapshots) come to
/// hold apart from the maps they were taken from, as those go on being written.
pub fn copied_bytes() -> u64 {
    COPIED_BYTES.with(Cell::get)
}

fn note_copied(bytes: usize) {
    COPIED_BYTES.with(|c| c.set(c.get().saturating_add(bytes as u64)));
}

/// `Arc::make_mut`, noting what it copies when the part is shared.
fn make_mut_noted<T: Clone>(part: &mut Arc<T>, bytes: impl FnOnce(&T) -> usize) -> &mut T {
    if Arc::strong_count(part) > 1 {
        note_copied(bytes(part));
    }
    Arc::make_mut(part)
}

fn page_bytes<K, V>(page: &Page<K, V>) -> usize {
    page.leaves.len() * (std::mem::size_of::<K>() + std::mem::size_of::<usize>())
}

fn leaf_bytes<K, V>(leaf: &Leaf<K, V>) -> usize {
    leaf.keys.len() * (std::mem::size_of::<K>() + std::mem::size_of::<Option<V>>())
}

/// A `BTreeMap`'s entries, with about a word of node per entry.
fn shard_bytes<K, V>(shard: &BTreeMap<K, V>) -> usize {
    shard.len() * (std::mem::size_of::<K>() + std::mem::size_of::<V>() + 8)
}

/// Up to [`LEAF_ENTRIES`] run entries: keys apart from values, so that a search reads only keys.
#[derive(Clone)]
struct Leaf<K, V> {
    keys: ArrayVec<K, LEAF_ENTRIES>,
    /// At their keys' indexes, or `None` once removed.
    values: ArrayVec<Option<V>, LEAF_ENTRIES>,
}

/// Up to [`PAGE_LEAVES`] leaves, with each one's first key.
#[derive(Clone)]
struct Page<K, V> {
    firsts: ArrayVec<K, PAGE_LEAVES>,
    leaves: ArrayVec<Arc<Leaf<K, V>>, PAGE_LEAVES>,
}

/// An ordered map optimised for ascending keys, with clones that share; see the module
/// documentation.
pub struct AppendMap<K, V> {
    /// Each page's first key: a search finds its page among these first.
    firsts: Vec<K>,
    /// The run, in order: every page but the last full, every leaf but the last.
    pages: Vec<Arc<Page<K, V>>>,
    /// Entries in the run, tombstones included.
    run_len: usize,
    /// Every other key.
    others: Others<K, V>,
    /// Live entries in both.
    len: usize,
}

/// Copies the list of pages (a pointer and a key each) and shares the pages.
impl<K: Clone, V> Clone for AppendMap<K, V> {
    fn clone(&self) -> Self {
        note_copied(self.pages.len() * (std::mem::size_of::<K>() + std::mem::size_of::<usize>()));
        Self {
            firsts: self.firsts.clone(),
            pages: self.pages.clone(),
            run_len: self.run_len,
            others: self.others.clone(),
            len: self.len,
        }
    }
}

/// Where a key is in the run.
enum Place {
    /// At this page, leaf and slot (live or a tombstone).
    Run(usize, usize, usize),
    /// Not in the run: it would go at this index of the run (its length: after its last key).
    NotInRun(usize),
}

impl<K, V> Default for AppendMap<K, V> {
    fn default() -> Self {
        Self {
            firsts: Vec::new(),
            pages: Vec::new(),
            run_len: 0,
            others: Others::default(),
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

    fn last_key(&self) -> Option<&K> {
        self.pages.last()?.leaves.last()?.keys.last()
    }

    fn place(&self, key: &K) -> Place {
        match self.last_key() {
            Some(last) if key <= last => {
                // The page whose first key is the last at or below `key` (none: below the run).
                let page_index = match search(&self.firsts, key) {
                    Ok(i) => i,
                    Err(0) => return Place::NotInRun(0),
                    Err(i) => i - 1,
                };
                let Some(page) = self.pages.get(page_index) else {
                    return Place::NotInRun(self.run_len);
                };
                // Its first leaf starts at the page's first key, which is at or below `key`.
                let leaf_index = page.firsts.partition_point(|f| f <= key).saturating_sub(1);
                let Some(leaf) = page.leaves.get(leaf_index) else {
                    return Place::NotInRun(self.run_len);
                };
                match leaf.keys.binary_search(key) {
                    Ok(slot) => Place::Run(page_index, leaf_index, slot),
                    Err(slot) => Place::NotInRun(
                        page_index * PAGE_ENTRIES + leaf_index * LEAF_ENTRIES + slot,
                    ),
                }
            }
            _ => Place::NotInRun(self.run_len),
        }
    }

    fn run_slot(&self, page: usize, leaf: usize, slot: usize) -> Option<&V> {
        self.pages
            .get(page)?
            .leaves
            .get(leaf)?
            .values
            .get(slot)?
            .as_ref()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        match self.place(key) {
            Place::Run(page, leaf, slot) => self.run_slot(page, leaf, slot),
            Place::NotInRun(_) if self.others.is_empty() => None,
            Place::NotInRun(_) => self.others.get(key),
        }
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            run: RunIter {
                pages: self.pages.iter(),
                leaves: [].iter(),
                keys: [].iter(),
                values: [].iter(),
            }
            .peekable(),
            others: self.others.iter().peekable(),
            remaining: self.len,
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Writes: a page or leaf shared with a clone is copied first (`Arc::make_mut`), hence `Clone`.
impl<K: Ranked, V: Clone> AppendMap<K, V> {
    /// The slot at a run place, its page and leaf copied first if shared.
    fn run_slot_mut(&mut self, page: usize, leaf: usize, slot: usize) -> Option<&mut Option<V>> {
        slot_mut(&mut self.pages, page, leaf, slot)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.place(key) {
            // A tombstone needs no copy of a shared leaf.
            Place::Run(page, leaf, slot) if self.run_slot(page, leaf, slot).is_none() => None,
            Place::Run(page, leaf, slot) => self.run_slot_mut(page, leaf, slot)?.as_mut(),
            Place::NotInRun(_) => self.others.get_mut(key),
        }
    }

    /// For a key in neither the run nor the others, that would go at `index` of the run: moves
    /// the run's keys from `index` on to the others when there are at most
    /// [`MOVE_TO_OTHERS_MAX`] of them (or an eighth of the run, when that is more), and says
    /// whether the key can now be pushed.
    fn make_room_in_run(&mut self, index: usize) -> bool {
        let limit = MOVE_TO_OTHERS_MAX.max(self.run_len / MOVE_TO_OTHERS_SHARE);
        if self.run_len.saturating_sub(index) > limit {
            return false;
        }
        while self.run_len > index {
            let Some((key, value)) = self.pop_run() else {
                break;
            };
            if let Some(value) = value {
                self.others.insert(key, value);
            }
        }
        true
    }

    /// Takes the run's last entry off.
    fn pop_run(&mut self) -> Option<(K, Option<V>)> {
        let page = make_mut_noted(self.pages.last_mut()?, page_bytes);
        let leaf = make_mut_noted(page.leaves.last_mut()?, leaf_bytes);
        let entry = leaf.keys.pop().zip(leaf.values.pop())?;
        if leaf.keys.is_empty() {
            page.leaves.pop();
            page.firsts.pop();
            if page.leaves.is_empty() {
                self.pages.pop();
                self.firsts.pop();
            }
        }
        self.run_len -= 1;
        Some(entry)
    }

    fn push_run(&mut self, key: K, value: Option<V>) {
        // Every caller found the key's place above every key left in the run.
        assert!(
            self.last_key().is_none_or(|last| *last < key),
            "AppendMap: a key pushed onto the run must be above its last"
        );
        if self.run_len.is_multiple_of(PAGE_ENTRIES) {
            self.firsts.push(key.clone());
            self.pages.push(Arc::new(Page {
                firsts: ArrayVec::new(),
                leaves: ArrayVec::new(),
            }));
        }
        let starts_leaf = self.run_len.is_multiple_of(LEAF_ENTRIES);
        let Some(page) = self.pages.last_mut() else {
            unreachable!("a page was just pushed if there was none")
        };
        let page = make_mut_noted(page, page_bytes);
        // Every leaf but the last is full, and every page: a key's place follows from its index.
        assert!(
            !starts_leaf || !page.leaves.is_full(),
            "AppendMap: the run's last page has room for a leaf"
        );
        if starts_leaf {
            page.firsts.push(key.clone());
            page.leaves.push(Arc::new(Leaf {
                keys: ArrayVec::new(),
                values: ArrayVec::new(),
            }));
        }
        let Some(leaf) = page.leaves.last_mut() else {
            unreachable!("a leaf was just pushed if there was none")
        };
        let leaf = make_mut_noted(leaf, leaf_bytes);
        assert!(
            leaf.keys.len() < LEAF_ENTRIES,
            "AppendMap: the run's last leaf has room"
        );
        leaf.keys.push(key);
        leaf.values.push(value);
        self.run_len += 1;
    }

    /// Inserts, returning the value the key had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = match self.place(&key) {
            Place::Run(page, leaf, slot) => self
                .run_slot_mut(page, leaf, slot)
                .and_then(|v| v.replace(value)),
            Place::NotInRun(i) => {
                if self.others.contains_key(&key) {
                    self.others.insert(key, value)
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
            Place::Run(page, leaf, slot) => {
                // A tombstone needs no copy of a shared leaf.
                if self.run_slot(page, leaf, slot).is_none() {
                    None
                } else {
                    self.run_slot_mut(page, leaf, slot).and_then(Option::take)
                }
            }
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
        let (page, leaf, slot) = match self.place(&key) {
            Place::Run(page, leaf, slot) => (page, leaf, slot),
            Place::NotInRun(i) => {
                if self.others.contains_key(&key) || !self.make_room_in_run(i) {
                    let (value, made) = self.others.get_or_insert_with(key, make);
                    self.len += usize::from(made);
                    return value;
                }
                self.push_run(key, None);
                let last = self.run_len - 1;
                (
                    last / PAGE_ENTRIES,
                    last % PAGE_ENTRIES / LEAF_ENTRIES,
                    last % LEAF_ENTRIES,
                )
            }
        };
        let Some(slot) = slot_mut(&mut self.pages, page, leaf, slot) else {
            unreachable!("the place was just found or pushed")
        };
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
}

/// The slot at a run place, its page and leaf copied first if shared (a function of the pages
/// alone, so that the map's counts can change while the slot is borrowed).
fn slot_mut<K: Clone, V: Clone>(
    pages: &mut [Arc<Page<K, V>>],
    page: usize,
    leaf: usize,
    slot: usize,
) -> Option<&mut Option<V>> {
    let page = make_mut_noted(pages.get_mut(page)?, page_bytes);
    let leaf = make_mut_noted(page.leaves.get_mut(leaf)?, leaf_bytes);
    leaf.values.get_mut(slot)
}

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

/// `keys.binary_search(key)` over the pages' first keys, for strictly ascending keys, starting
/// where the key's rank says it lies between the first and last keys, then widening from there
/// by doubling steps until the key is bracketed. Keys spread as ids are (by time) are found
/// within a few neighbouring probes; keys spread otherwise cost at most about twice a binary
/// search. (A binary search of the whole run touched ~20 cache lines far apart per lookup:
/// with it, the lookups of entities were the largest cost of a 10 M-event rebuild.)
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

/// At most this many entries in a shard of the others: what a write to a shared shard copies.
pub const OTHERS_SHARD_ENTRIES: usize = 32;

/// The keys not in the run, in shards of at most [`OTHERS_SHARD_ENTRIES`] behind `Arc`s, under
/// a bound at or below each shard's keys (and above the shard before's). A clone copies the
/// tree of shards (a key and a pointer each); a write copies one shard when shared. (One
/// shared `BTreeMap` was copied whole by the first write after each clone: tens of MiB per
/// snapshot of a long log when a bulk registration left ~40,000 ids out of order.)
struct Others<K, V> {
    shards: BTreeMap<K, Arc<BTreeMap<K, V>>>,
    len: usize,
}

impl<K, V> Default for Others<K, V> {
    fn default() -> Self {
        Self {
            shards: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Clone, V> Clone for Others<K, V> {
    fn clone(&self) -> Self {
        note_copied(
            self.shards.len() * (std::mem::size_of::<K>() + 2 * std::mem::size_of::<usize>()),
        );
        Self {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

impl<K: Ord + Clone, V> Others<K, V> {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shard that holds `key` if any does: the last whose bound is at or below it.
    fn shard(&self, key: &K) -> Option<&BTreeMap<K, V>> {
        self.shards
            .range(..=key)
            .next_back()
            .map(|(_, s)| s.as_ref())
    }

    fn get(&self, key: &K) -> Option<&V> {
        if self.is_empty() {
            return None;
        }
        self.shard(key)?.get(key)
    }

    fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    fn iter(&self) -> OthersIter<'_, K, V> {
        OthersIter {
            shards: self.shards.values(),
            entries: None,
        }
    }
}

impl<K: Ord + Clone, V: Clone> Others<K, V> {
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if !self.contains_key(key) {
            return None;
        }
        let (_, shard) = self.shards.range_mut(..=key).next_back()?;
        make_mut_noted(shard, shard_bytes).get_mut(key)
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        // A key below every bound lowers the first shard's (or starts the first shard).
        let lowest = self.shards.first_key_value().map(|(k, _)| k.clone());
        match lowest {
            None => {
                self.shards
                    .insert(key.clone(), Arc::new(BTreeMap::from([(key, value)])));
                self.len += 1;
                return None;
            }
            Some(lowest) if key < lowest => {
                if let Some(shard) = self.shards.remove(&lowest) {
                    self.shards.insert(key.clone(), shard);
                }
            }
            Some(_) => {}
        }
        let (old, split) = {
            let Some((_, shard)) = self.shards.range_mut(..=&key).next_back() else {
                unreachable!("a shard's bound is at or below every key now")
            };
            let shard = make_mut_noted(shard, shard_bytes);
            let old = shard.insert(key, value);
            // A full shard splits in two halves: the upper one under its first key.
            let split = if shard.len() > OTHERS_SHARD_ENTRIES {
                let middle = shard.keys().nth(shard.len() / 2).cloned();
                middle.map(|m| {
                    let upper = shard.split_off(&m);
                    (m, upper)
                })
            } else {
                None
            };
            (old, split)
        };
        if let Some((bound, upper)) = split {
            self.shards.insert(bound, Arc::new(upper));
        }
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        if !self.contains_key(key) {
            return None;
        }
        let (bound, shard) = self.shards.range_mut(..=key).next_back()?;
        let shard = make_mut_noted(shard, shard_bytes);
        let old = shard.remove(key);
        if shard.is_empty() {
            let bound = bound.clone();
            self.shards.remove(&bound);
        }
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value under `key`, made first when there is none; and whether it was made.
    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> (&mut V, bool) {
        let made = !self.contains_key(&key);
        if made {
            self.insert(key.clone(), make());
        }
        let Some(value) = self.get_mut(&key) else {
            unreachable!("the key was just found or inserted")
        };
        (value, made)
    }
}

/// The others' entries in key order: shard by shard.
struct OthersIter<'a, K, V> {
    shards: btree_map::Values<'a, K, Arc<BTreeMap<K, V>>>,
    entries: Option<btree_map::Iter<'a, K, V>>,
}

impl<'a, K, V> Iterator for OthersIter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.entries.as_mut().and_then(Iterator::next) {
                return Some(entry);
            }
            self.entries = Some(self.shards.next()?.iter());
        }
    }
}

/// The run's live entries in order: page by page, leaf by leaf.
struct RunIter<'a, K, V> {
    pages: std::slice::Iter<'a, Arc<Page<K, V>>>,
    leaves: std::slice::Iter<'a, Arc<Leaf<K, V>>>,
    keys: std::slice::Iter<'a, K>,
    values: std::slice::Iter<'a, Option<V>>,
}

impl<'a, K, V> Iterator for RunIter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match (self.keys.next(), self.values.next()) {
                (Some(k), Some(Some(v))) => return Some((k, v)),
                // A tombstone.
                (Some(_), Some(None)) => continue,
                _ => {}
            }
            match self.leaves.next() {
                Some(leaf) => {
                    self.keys = leaf.keys.iter();
                    self.values = leaf.values.iter();
                }
                None => self.leaves = self.pages.next()?.leaves.iter(),
            }
        }
    }
}

/// The entries of an [`AppendMap`] in key order: the run and the others merged.
pub struct Iter<'a, K, V> {
    run: Peekable<RunIter<'a, K, V>>,
    others: Peekable<OthersIter<'a, K, V>>,
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

impl<K: Ranked, V: Clone> FromIterator<(K, V)> for AppendMap<K, V> {
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
impl<'de, K: Ranked + Deserialize<'de>, V: Clone + Deserialize<'de>> Deserialize<'de>
    for AppendMap<K, V>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Ranked + Deserialize<'de>, V: Clone + Deserialize<'de>> Visitor<'de>
            for Entries<K, V>
        {
            type Value = AppendMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = AppendMap::new();
                let pages = access.size_hint().unwrap_or(0).min(RESERVE_ENTRIES_MAX) / PAGE_ENTRIES;
                map.firsts.reserve(pages);
                map.pages.reserve(pages);
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
const RESERVE_ENTRIES_MAX: usize = 1 << 24;

/// A list that is only ever appended to, with clones that share: full chunks of
/// [`CHUNK_ITEMS`] are reference-counted, so a clone copies a pointer per chunk and the last
/// chunk's items. It serializes as the `Vec` it replaces (a sequence): the adjustments of a
/// state's facts, say, which every snapshot of the state holds.
pub struct AppendVec<T> {
    full: Vec<Arc<Vec<T>>>,
    last: Vec<T>,
}

/// Copies the pointers to the full chunks and the last chunk's items.
impl<T: Clone> Clone for AppendVec<T> {
    fn clone(&self) -> Self {
        note_copied(
            self.full.len() * std::mem::size_of::<usize>()
                + self.last.len() * std::mem::size_of::<T>(),
        );
        Self {
            full: self.full.clone(),
            last: self.last.clone(),
        }
    }
}

/// Items in a full chunk of an [`AppendVec`].
pub const CHUNK_ITEMS: usize = 64;

impl<T> Default for AppendVec<T> {
    fn default() -> Self {
        Self {
            full: Vec::new(),
            last: Vec::new(),
        }
    }
}

impl<T> AppendVec<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.full.len() * CHUNK_ITEMS + self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.last.is_empty()
    }

    pub fn push(&mut self, item: T) {
        self.last.push(item);
        if self.last.len() == CHUNK_ITEMS {
            let chunk = std::mem::replace(&mut self.last, Vec::with_capacity(CHUNK_ITEMS));
            self.full.push(Arc::new(chunk));
        }
    }

    /// Items in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.full
            .iter()
            .flat_map(|chunk| chunk.iter())
            .chain(self.last.iter())
    }
}

impl<T: PartialEq> PartialEq for AppendVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for AppendVec<T> {}

impl<T: fmt::Debug> fmt::Debug for AppendVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> FromIterator<T> for AppendVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut list = Self::new();
        for item in items {
            list.push(item);
        }
        list
    }
}

/// A sequence: the bytes a `Vec` of the same items serializes to.
impl<T: Serialize> Serialize for AppendVec<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for item in self.iter() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for AppendVec<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Items<T> {
            type Value = AppendVec<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut list = AppendVec::new();
                while let Some(item) = access.next_element()? {
                    list.push(item);
                }
                Ok(list)
            }
        }

        deserializer.deserialize_seq(Items(PhantomData))
    }
}
