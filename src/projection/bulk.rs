//! Decoding the large maps of projection states in bulk: a checkpoint load is most of an as-of
//! query's time, and most of a load is building maps.
//!
//! serde's own `BTreeMap` decoding inserts one entry at a time (a search and often a node split
//! each). These maps are written from `BTreeMap`s, so their entries arrive sorted: collected
//! into a `Vec` first, `BTreeMap::from_iter` builds the tree in one pass (it sorts, which costs
//! one comparison per entry on sorted input, and keeps the last of equal keys with its value;
//! inserting one by one keeps the last value under the first key, the same map for keys that
//! are equal only when identical, as ids are). The bytes are the same either way: only decoding
//! changes. Measured on a 1 M-event log: every state and the book decoded in
//! 197 ms instead of 355 (the largest, 550 k entries, 124 → 73 ms).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// At most this many entries are reserved up front, whatever a (possibly corrupt) length
/// prefix says: the vector grows past it as entries actually arrive.
const RESERVE_ENTRIES_MAX: usize = 1 << 16;

/// `#[serde(deserialize_with = "crate::projection::bulk::map")]` on a `BTreeMap` field.
pub fn map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    struct Entries<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut entries =
                Vec::with_capacity(access.size_hint().unwrap_or(0).min(RESERVE_ENTRIES_MAX));
            while let Some(entry) = access.next_entry()? {
                entries.push(entry);
            }
            Ok(BTreeMap::from_iter(entries))
        }
    }

    deserializer.deserialize_map(Entries(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        m: BTreeMap<u32, String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Bulk {
        #[serde(deserialize_with = "map")]
        m: BTreeMap<u32, String>,
    }

    #[test]
    fn same_bytes_same_map_as_serdes_own() {
        let m: BTreeMap<u32, String> = (0..1000u32)
            .map(|i| (i * 7 % 1013, i.to_string()))
            .collect();
        let bytes = crate::codec::encode_state("test", &Plain { m: m.clone() }).unwrap();
        let bulk: Bulk = crate::codec::decode_state("test", &bytes).unwrap();
        assert_eq!(bulk.m, m);
        let empty = crate::codec::encode_state("test", &Plain { m: BTreeMap::new() }).unwrap();
        let bulk: Bulk = crate::codec::decode_state("test", &empty).unwrap();
        assert!(bulk.m.is_empty());
    }

    #[test]
    fn unsorted_or_repeated_keys_decode_as_inserting_one_by_one_would() {
        // A map of three entries, written by hand out of order with a repeated key.
        let entries: Vec<(u32, String)> = vec![(5, "a".into()), (1, "b".into()), (5, "c".into())];
        let bytes = crate::codec::encode_state("test", &entries).unwrap();
        let plain: BTreeMap<u32, String> = crate::codec::decode_state("test", &bytes).unwrap();
        let bulk: Bulk = crate::codec::decode_state("test", &bytes).unwrap();
        assert_eq!(bulk.m, plain);
        assert_eq!(bulk.m.get(&5).map(String::as_str), Some("c"));
    }

    #[test]
    fn a_corrupt_length_is_an_error_not_an_allocation() {
        // A length prefix of u64::MAX - 1 and no entries.
        let mut bytes = vec![0xFD];
        bytes.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
        assert!(crate::codec::decode_state::<Bulk>("test", &bytes).is_err());
    }
}
