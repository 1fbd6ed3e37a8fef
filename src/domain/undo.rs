//! [`UndoMap`] and [`UndoSet`]: a map and a set that can remember their changes and roll them
//! back. The records fold a batch in event by event (a later event may name what an
//! earlier one created); when an event half way through is refused, the changes of the events
//! before it are rolled back instead of rebuilding the records from the whole log.
//!
//! Reads of a map go through `Deref` to the plain `HashMap`; every change goes through a method
//! here, so none can slip past the journal (the compiler sees to it: there is no `DerefMut`).

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Deref;

/// A map whose changes since [`UndoMap::begin`] can be undone.
#[derive(Debug, Clone)]
pub struct UndoMap<K, V> {
    map: HashMap<K, V>,
    /// (key, value before the change), oldest first; None when not remembering.
    journal: Option<Vec<(K, Option<V>)>>,
}

impl<K, V> Default for UndoMap<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            journal: None,
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
    fn note(&mut self, key: &K, before: Option<V>) {
        if let Some(journal) = &mut self.journal {
            journal.push((key.clone(), before));
        }
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let before = self.map.insert(key.clone(), value);
        if self.journal.is_some() {
            self.note(&key, before.clone());
        }
        before
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let before = self.map.remove(key);
        if before.is_some() && self.journal.is_some() {
            self.note(key, before.clone());
        }
        before
    }

    /// A value to change in place; its value before is remembered first.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.journal.is_some() {
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
        if self.journal.is_some() {
            let before = self.map.get(&key).cloned();
            self.note(&key, before);
        }
        self.map.entry(key).or_default()
    }

    /// Starts remembering changes (forgetting any remembered before).
    pub fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the changes and stops remembering.
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes every change since [`UndoMap::begin`], newest first, and stops remembering.
    pub fn roll_back(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for (key, before) in journal.into_iter().rev() {
            match before {
                Some(v) => self.map.insert(key, v),
                None => self.map.remove(&key),
            };
        }
    }
}

/// A set whose changes since [`UndoSet::begin`] can be undone: an [`UndoMap`] to `()`.
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

    pub fn begin(&mut self) {
        self.0.begin();
    }

    pub fn commit(&mut self) {
        self.0.commit();
    }

    pub fn roll_back(&mut self) {
        self.0.roll_back();
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

    proptest! {
        /// Any changes after `begin`, rolled back, leave exactly what was there before; kept,
        /// they leave what the plain collections would hold.
        #[test]
        fn a_roll_back_restores_and_a_commit_keeps(
            before in proptest::collection::vec(change(), 0..40),
            during in proptest::collection::vec(change(), 0..40),
        ) {
            let (mut map, mut set) = (UndoMap::default(), UndoSet::default());
            run(&mut map, &mut set, &before);
            let (map_before, set_before) = ((*map).clone(), keys(&set));
            map.begin();
            set.begin();
            run(&mut map, &mut set, &during);
            let (map_after, set_after) = ((*map).clone(), keys(&set));
            map.roll_back();
            set.roll_back();
            prop_assert_eq!(&*map, &map_before);
            prop_assert_eq!(keys(&set), set_before);
            map.begin();
            set.begin();
            run(&mut map, &mut set, &during);
            map.commit();
            set.commit();
            map.roll_back();
            set.roll_back();
            prop_assert_eq!(&*map, &map_after);
            prop_assert_eq!(keys(&set), set_after);
        }
    }
}
