//! [`UndoMap`] and [`UndoSet`]: a map and a set that can remember their changes and roll them
//! back. The records fold a batch in event by event (a later event may name what an earlier one
//! created), then the batch waits for the log to make it durable while later batches are folded
//! on top. When an event half way through is refused, or the log refuses a whole batch it was
//! given (a failed store refuses it and every batch queued behind it), the changes are rolled
//! back instead of rebuilding the records from the whole log.
//!
//! Changes are remembered under an *epoch* (the app's submission number): [`UndoMap::begin`]
//! opens one, [`UndoMap::end`] stops remembering, [`UndoMap::roll_back_from`] undoes every
//! change of an epoch and of all later ones (newest first), and [`UndoMap::forget_before`] drops
//! what earlier epochs remembered once they are durable. Memory is bounded by the changes of the
//! batches still in flight.
//!
//! Reads of a map go through `Deref` to the plain `HashMap`; every change goes through a method
//! here, so none can slip past the journal (the compiler sees to it: there is no `DerefMut`).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::ops::Deref;

/// A map whose changes can be undone, epoch by epoch.
#[derive(Debug, Clone)]
pub struct UndoMap<K, V> {
    map: HashMap<K, V>,
    /// (epoch, key, value before the change), oldest first.
    journal: VecDeque<(u64, K, Option<V>)>,
    /// The epoch changes are remembered under now; None when not remembering.
    epoch: Option<u64>,
}

impl<K, V> Default for UndoMap<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            journal: VecDeque::new(),
            epoch: None,
        }
    }
}

impl<K, V> Deref for UndoMap<K, V> {
    type Target = HashMap<K, V>;

    fn deref(&self) -> &HashMap<K, V> {
        &self.map
    }
}

impl<K: Eq + Hash + Clone, V: Clone> UndoMap<K, V> {
    fn remembering(&self) -> bool {
        self.epoch.is_some()
    }

    fn note(&mut self, key: &K, before: Option<V>) {
        if let Some(epoch) = self.epoch {
            self.journal.push_back((epoch, key.clone(), before));
        }
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let before = self.map.insert(key.clone(), value);
        if self.remembering() {
            self.note(&key, before.clone());
        }
        before
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let before = self.map.remove(key);
        if before.is_some() && self.remembering() {
            self.note(key, before.clone());
        }
        before
    }

    /// A value to change in place; its value before is remembered first.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.remembering() {
            let before = self.map.get(key).cloned();
            if before.is_some() {
                self.note(key, before);
            }
        }
        self.map.get_mut(key)
    }

    /// The value at `key`, inserted as `V::default()` when absent, to change in place.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if self.remembering() {
            let before = self.map.get(&key).cloned();
            self.note(&key, before);
        }
        self.map.entry(key).or_default()
    }

    /// Starts remembering changes under `epoch`, which is never below an epoch remembered before.
    pub fn begin(&mut self, epoch: u64) {
        let newest = self.journal.back().map(|(e, _, _)| *e);
        assert!(
            newest.is_none_or(|newest| newest <= epoch),
            "epochs are opened in increasing order"
        );
        self.epoch = Some(epoch);
    }

    /// Stops remembering; what was remembered stays until forgotten or rolled back.
    pub fn end(&mut self) {
        self.epoch = None;
    }

    /// Undoes every change remembered under `epoch` or a later one, newest first, and stops
    /// remembering. Earlier epochs' changes stay undoable.
    pub fn roll_back_from(&mut self, epoch: u64) {
        self.epoch = None;
        while self.journal.back().is_some_and(|(e, _, _)| *e >= epoch) {
            let Some((_, key, before)) = self.journal.pop_back() else {
                break;
            };
            match before {
                Some(v) => self.map.insert(key, v),
                None => self.map.remove(&key),
            };
        }
    }

    /// Forgets what epochs before `epoch` remembered: their changes are kept for good.
    pub fn forget_before(&mut self, epoch: u64) {
        while self.journal.front().is_some_and(|(e, _, _)| *e < epoch) {
            self.journal.pop_front();
        }
    }

    /// How many changes are remembered (the journal's length).
    pub fn remembered(&self) -> usize {
        self.journal.len()
    }
}

/// A set whose changes can be undone, epoch by epoch: an [`UndoMap`] to `()`.
#[derive(Debug, Clone)]
pub struct UndoSet<K>(UndoMap<K, ()>);

impl<K> Default for UndoSet<K> {
    fn default() -> Self {
        Self(UndoMap::default())
    }
}

impl<K: Eq + Hash + Clone> UndoSet<K> {
    pub fn contains(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// True when the key was not in the set.
    pub fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ()).is_none()
    }

    pub fn begin(&mut self, epoch: u64) {
        self.0.begin(epoch);
    }

    pub fn end(&mut self) {
        self.0.end();
    }

    pub fn roll_back_from(&mut self, epoch: u64) {
        self.0.roll_back_from(epoch);
    }

    pub fn forget_before(&mut self, epoch: u64) {
        self.0.forget_before(epoch);
    }

    pub fn remembered(&self) -> usize {
        self.0.remembered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Change {
        Insert(u8, u32),
        Remove(u8),
        Add(u8, u32),
        Bump(u8),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0u8..16, any::<u32>()).prop_map(|(k, v)| Change::Insert(k, v)),
            (0u8..16).prop_map(Change::Remove),
            (0u8..16, any::<u32>()).prop_map(|(k, v)| Change::Add(k, v)),
            (0u8..16).prop_map(Change::Bump),
        ]
    }

    fn keys(set: &UndoSet<u8>) -> Vec<u8> {
        (0..=u8::MAX).filter(|k| set.contains(k)).collect()
    }

    fn run(map: &mut UndoMap<u8, u32>, set: &mut UndoSet<u8>, changes: &[Change]) {
        for c in changes {
            match *c {
                Change::Insert(k, v) => {
                    map.insert(k, v);
                    set.insert(k);
                }
                Change::Remove(k) => {
                    map.remove(&k);
                }
                Change::Add(k, v) => {
                    if let Some(x) = map.get_mut(&k) {
                        *x = x.wrapping_add(v);
                    }
                }
                Change::Bump(k) => *map.get_or_default(k) += 1,
            }
        }
    }

    type Snapshot = (HashMap<u8, u32>, Vec<u8>);

    fn snapshot(map: &UndoMap<u8, u32>, set: &UndoSet<u8>) -> Snapshot {
        ((**map).clone(), keys(set))
    }

    proptest! {
        /// Batches folded under epochs 0..n, the oldest `forgotten` of them made durable: rolling
        /// back from epoch `k` leaves exactly what was there before epoch `k` began, and rolling
        /// back from 0 then leaves what was there before the first epoch still remembered.
        #[test]
        fn a_roll_back_restores_what_was_before_its_epoch(
            before in proptest::collection::vec(change(), 0..20),
            epochs in proptest::collection::vec(proptest::collection::vec(change(), 0..12), 1..6),
            forgotten in 0usize..6,
            k in 0usize..6,
        ) {
            let n = epochs.len();
            let forgotten = forgotten.min(n);
            let k = k.clamp(forgotten, n);
            let (mut map, mut set) = (UndoMap::default(), UndoSet::default());
            run(&mut map, &mut set, &before);
            let mut snapshots: Vec<Snapshot> = Vec::new();
            for (epoch, changes) in epochs.iter().enumerate() {
                snapshots.push(snapshot(&map, &set));
                map.begin(epoch as u64);
                set.begin(epoch as u64);
                run(&mut map, &mut set, changes);
                map.end();
                set.end();
            }
            snapshots.push(snapshot(&map, &set));
            // Changes made while no epoch is open are never remembered.
            let unremembered = (map.remembered(), set.remembered());
            map.forget_before(forgotten as u64);
            set.forget_before(forgotten as u64);
            map.roll_back_from(k as u64);
            set.roll_back_from(k as u64);
            prop_assert_eq!(&snapshot(&map, &set), &snapshots[k]);
            map.roll_back_from(0);
            set.roll_back_from(0);
            prop_assert_eq!(&snapshot(&map, &set), &snapshots[forgotten]);
            prop_assert_eq!((map.remembered(), set.remembered()), (0, 0));
            prop_assert!(unremembered.0 >= map.remembered());
        }

        /// Changes made with no epoch open are kept by any roll back.
        #[test]
        fn changes_outside_an_epoch_are_not_remembered(
            during in proptest::collection::vec(change(), 0..40),
        ) {
            let (mut map, mut set) = (UndoMap::default(), UndoSet::default());
            run(&mut map, &mut set, &during);
            let after = snapshot(&map, &set);
            map.roll_back_from(0);
            set.roll_back_from(0);
            prop_assert_eq!(snapshot(&map, &set), after);
            prop_assert_eq!((map.remembered(), set.remembered()), (0, 0));
        }
    }
}
