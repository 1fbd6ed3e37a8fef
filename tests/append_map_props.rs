//! `AppendMap` against the `BTreeMap` it replaces in projection states: random operations on
//! keys that mostly ascend (as ids do) and sometimes do not, then every answer compared with
//! the model's, and the serialized bytes compared with the model's bytes (checkpoints written
//! by either must decode into either). Keys are spread evenly, in clusters, and exponentially,
//! since the run's search starts from a guess by rank.

use std::collections::BTreeMap;

use carelog::codec;
use carelog::projection::append_map::{AppendMap, AppendVec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the bytes each thread allocates: what a write after a clone
/// really copies, measured apart from the map's own count of it.
struct Counting;

thread_local! {
    static ALLOCATED_BYTES: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the count is a
// thread-local `Cell` (const-initialized: it allocates nothing itself).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED_BYTES.try_with(|c| c.set(c.get() + layout.size() as u64));
        // SAFETY: the caller's layout, as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a pointer this allocator gave, with its layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocated_bytes() -> u64 {
    ALLOCATED_BYTES.with(Cell::get)
}
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u32),
    Remove(u64),
    /// `get_or_default`, then add one.
    Bump(u64),
    /// `get_mut`, then set.
    Set(u64, u32),
}

/// A key: the next above every key so far (most of the time), or any key in the range seen.
fn key(next: &mut u64, spread: u8, ascending: bool, pick: u64) -> u64 {
    if ascending || *next == 0 {
        *next += match spread % 3 {
            // Evenly.
            0 => 1 + pick % 4,
            // Clusters: runs of neighbours, then a jump.
            1 => {
                if pick.is_multiple_of(7) {
                    1 << 40
                } else {
                    1
                }
            }
            // Exponentially: each gap larger than the last (up to 2^32: 300 steps stay in u64).
            _ => (*next / 2).clamp(1, 1 << 32),
        };
        *next
    } else {
        pick % (*next + 2)
    }
}

fn steps() -> impl Strategy<Value = (u8, bool, u64, u32)> {
    (
        0u8..4,
        prop::bool::weighted(0.7),
        any::<u64>(),
        any::<u32>(),
    )
}

fn op(kind: u8, k: u64, value: u32) -> Op {
    match kind {
        0 => Op::Insert(k, value),
        1 => Op::Remove(k),
        2 => Op::Bump(k),
        _ => Op::Set(k, value),
    }
}

/// Applies an operation to the map and to its model, and checks that they answer alike.
fn apply(map: &mut AppendMap<u64, u32>, model: &mut BTreeMap<u64, u32>, op: Op) {
    match op {
        Op::Insert(k, v) => assert_eq!(map.insert(k, v), model.insert(k, v), "{op:?}"),
        Op::Remove(k) => assert_eq!(map.remove(&k), model.remove(&k), "{op:?}"),
        Op::Bump(k) => {
            let got = map.get_or_default(k);
            *got = got.wrapping_add(1);
            let want = model.entry(k).or_default();
            *want = want.wrapping_add(1);
            assert_eq!(*got, *want, "{op:?}");
        }
        Op::Set(k, v) => {
            let got = map.get_mut(&k).map(|x| {
                *x = v;
                *x
            });
            let want = model.get_mut(&k).map(|x| {
                *x = v;
                *x
            });
            assert_eq!(got, want, "{op:?}");
        }
    }
}

/// Clones taken along the way keep the entries they had, while the map and a fork of it (the
/// same operations with other values) go on being written: a write must never reach a page,
/// leaf or the others that a clone still shares.
fn run_with_clones(spread: u8, steps: Vec<(u8, bool, u64, u32)>) {
    let mut map: AppendMap<u64, u32> = AppendMap::new();
    let mut model: BTreeMap<u64, u32> = BTreeMap::new();
    let mut kept: Vec<(AppendMap<u64, u32>, BTreeMap<u64, u32>)> = Vec::new();
    let mut fork: Option<(AppendMap<u64, u32>, BTreeMap<u64, u32>)> = None;
    let mut next = 0u64;
    let half = steps.len() / 2;
    for (i, (kind, ascending, pick, value)) in steps.into_iter().enumerate() {
        let k = key(&mut next, spread, ascending, pick);
        apply(&mut map, &mut model, op(kind, k, value));
        if let Some((f, fm)) = fork.as_mut() {
            apply(f, fm, op(kind, k, !value));
        }
        if pick % 5 == 0 {
            kept.push((map.clone(), model.clone()));
        }
        if i == half {
            fork = Some((map.clone(), model.clone()));
        }
    }
    kept.extend(fork);
    kept.push((map, model));
    for (n, (clone, model)) in kept.iter().enumerate() {
        let got: Vec<_> = clone.iter().map(|(k, v)| (*k, *v)).collect();
        let want: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, want, "clone {n}: its entries");
        assert_eq!(clone.len(), model.len(), "clone {n}: its length");
        for k in model.keys() {
            assert_eq!(clone.get(k), model.get(k), "clone {n}: get({k})");
        }
    }
}

/// The same for the append-only list: clones keep their items while the original and a fork
/// go on.
fn run_list_with_clones(pushes: Vec<(u32, bool)>) {
    let mut list = AppendVec::new();
    let mut model = Vec::new();
    let mut kept = Vec::new();
    for (item, keep) in pushes {
        list.push(item);
        model.push(item);
        if keep {
            let mut fork = list.clone();
            let mut fork_model = model.clone();
            fork.push(!item);
            fork_model.push(!item);
            kept.push((list.clone(), model.clone()));
            kept.push((fork, fork_model));
        }
    }
    kept.push((list, model));
    for (n, (list, model)) in kept.iter().enumerate() {
        assert_eq!(list.len(), model.len(), "list {n}: its length");
        assert!(list.iter().eq(model.iter()), "list {n}: its items");
        let bytes = codec::encode_state("list", list).expect("encodes");
        assert_eq!(bytes, codec::encode_state("model", model).expect("encodes"));
        let back: AppendVec<u32> = codec::decode_state("list", &bytes).expect("decodes");
        assert!(back == *list, "list {n}: decoded");
    }
}

fn run(spread: u8, steps: Vec<(u8, bool, u64, u32)>) {
    let mut map: AppendMap<u64, u32> = AppendMap::new();
    let mut model: BTreeMap<u64, u32> = BTreeMap::new();
    let mut next = 0u64;
    let mut seen = Vec::new();
    for (kind, ascending, pick, value) in steps {
        let k = key(&mut next, spread, ascending, pick);
        seen.push(k);
        apply(&mut map, &mut model, op(kind, k, value));
        assert_eq!(map.len(), model.len());
    }
    let got: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
    let want: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(got, want, "entries in key order");
    let mut iter = map.iter();
    for left in (0..model.len()).rev() {
        assert!(iter.next().is_some());
        assert_eq!(iter.len(), left, "the iterator's exact size as it goes");
    }
    for k in seen
        .iter()
        .flat_map(|k| [k.saturating_sub(1), *k, k.saturating_add(1)])
    {
        assert_eq!(map.get(&k), model.get(&k), "get({k})");
        assert_eq!(map.contains_key(&k), model.contains_key(&k));
    }
    let bytes = codec::encode_state("map", &map).expect("encodes");
    assert_eq!(
        bytes,
        codec::encode_state("model", &model).expect("encodes"),
        "the bytes of the BTreeMap it replaces"
    );
    let back: AppendMap<u64, u32> = codec::decode_state("map", &bytes).expect("decodes");
    assert_eq!(back, map);
    let back_got: Vec<_> = back.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(back_got, want, "decoded in key order");
    for k in &seen {
        assert_eq!(back.get(k), model.get(k), "get({k}) after a decode");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn behaves_as_the_btreemap_it_replaces(spread in 0u8..3, steps in prop::collection::vec(steps(), 0..300)) {
        run(spread, steps);
    }

    /// Clones share pages and leaves: writes to the map or a fork never reach a clone.
    #[test]
    fn clones_keep_their_entries_while_the_map_goes_on(spread in 0u8..3, steps in prop::collection::vec(steps(), 0..1200)) {
        run_with_clones(spread, steps);
    }

    #[test]
    fn list_clones_keep_their_items_while_the_list_goes_on(pushes in prop::collection::vec((any::<u32>(), prop::bool::weighted(0.05)), 0..600)) {
        run_list_with_clones(pushes);
    }

    /// Every key of a sorted set, and every key between, is found or not found as a binary
    /// search finds it, however the keys are spread.
    #[test]
    fn lookups_in_the_run_find_what_a_binary_search_finds(
        keys in prop::collection::btree_set(prop_oneof![any::<u64>(), 0u64..64, (0u32..64).prop_map(|e| 1u64 << e)], 0..400),
        probes in prop::collection::vec(any::<u64>(), 0..50),
    ) {
        let sorted: Vec<u64> = keys.iter().copied().collect();
        let map: AppendMap<u64, usize> = sorted.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let neighbours = sorted.iter().flat_map(|k| [k.wrapping_sub(1), *k, k.wrapping_add(1)]);
        for k in neighbours.chain(probes) {
            prop_assert_eq!(map.get(&k).copied(), sorted.binary_search(&k).ok(), "get({})", k);
        }
    }
}

/// The same entries, in the same order, each found by `get`.
fn assert_same_entries(map: &AppendMap<Uuid, u64>, model: &BTreeMap<Uuid, u64>) {
    assert_eq!(map.len(), model.len());
    assert!(map.iter().eq(model.iter()), "entries in key order");
    for (id, n) in model {
        assert_eq!(map.get(id), Some(n), "get({id})");
    }
}

/// v7 ids (as carelog makes them) ascend and are found; v4-like ids (random, as a client may
/// send) are found too, in key order either way.
#[test]
fn ids_of_either_kind_are_kept_in_key_order() {
    let mut rng = carelog::rng::SplitMix64(5);
    let mut map = AppendMap::new();
    let mut model = BTreeMap::new();
    for n in 0..20_000u64 {
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        random[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let id = if n % 5 == 0 {
            uuid::Builder::from_random_bytes(random).into_uuid()
        } else {
            uuid::Builder::from_unix_timestamp_millis(1_700_000_000_000 + n * 37, &[7; 10])
                .into_uuid()
        };
        map.insert(id, n);
        model.insert(id, n);
    }
    assert_same_entries(&map, &model);
    assert_eq!(map.get(&Uuid::nil()), None);
    assert_eq!(map.get(&Uuid::max()), None);
}

/// One id far above the rest (a client's random v4 id among v7 ids) does not send every later
/// id to the others: the run heals at the next ordinary id. So does a burst of them.
#[test]
fn ids_far_above_the_rest_leave_the_run_at_the_next_ordinary_id() {
    let v7 = |n: u64| {
        uuid::Builder::from_unix_timestamp_millis(1_700_000_000_000 + n, &[7; 10]).into_uuid()
    };
    let far = |n: u8| uuid::Builder::from_random_bytes([0xF0 | (n & 0x0F); 16]).into_uuid();
    let mut map = AppendMap::new();
    let mut model = BTreeMap::new();
    for n in 0..10_000u64 {
        let id = match n {
            100 => far(1),
            // A burst, descending: each takes the place of the one before.
            5_000..=5_009 => far(15 - (n - 5_000) as u8),
            _ => v7(n),
        };
        map.insert(id, n);
        model.insert(id, n);
    }
    assert_same_entries(&map, &model);
    assert!(
        map.len_in_run() >= 10_000 - 11,
        "the ordinary ids stay in the run: {} of {}",
        map.len_in_run(),
        map.len()
    );
}

/// A map written by hand, out of order and with a repeated key, decodes as inserting its
/// entries one by one would (as serde's `BTreeMap` does): checkpoints are checked, but a decode
/// must not trust their order.
#[test]
fn unsorted_or_repeated_keys_decode_as_inserting_one_by_one_would() {
    let entries: Vec<(u64, String)> = vec![
        (5, "a".into()),
        (1, "b".into()),
        (5, "c".into()),
        (9, "d".into()),
        (3, "e".into()),
    ];
    let bytes = codec::encode_state("test", &entries).expect("encodes");
    let plain: BTreeMap<u64, String> = codec::decode_state("test", &bytes).expect("decodes");
    let map: AppendMap<u64, String> = codec::decode_state("test", &bytes).expect("decodes");
    assert!(map.iter().eq(plain.iter()));
    assert_eq!(map.get(&5).map(String::as_str), Some("c"));
    for k in 0..12 {
        assert_eq!(map.get(&k), plain.get(&k), "get({k})");
    }
}

/// A length prefix far beyond the bytes that follow is an error, not an allocation of that
/// many entries.
#[test]
fn a_corrupt_length_is_an_error_not_an_allocation() {
    let mut bytes = vec![0xFD];
    bytes.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
    assert!(codec::decode_state::<AppendMap<u64, String>>("test", &bytes).is_err());
}

/// A map decoded from a checkpoint holds every key in its run, a client's random ids (above
/// and below carelog's own) included. Lookups stay right, and the first new id after the load
/// moves the random ids above it out, so that new ids go onto the run again.
#[test]
fn after_a_decode_random_ids_do_not_keep_new_ids_out_of_the_run() {
    let mut rng = carelog::rng::SplitMix64(11);
    let mut model = BTreeMap::new();
    let v7 = |n: u64| {
        uuid::Builder::from_unix_timestamp_millis(1_700_000_000_000 + n, &[3; 10]).into_uuid()
    };
    for n in 0..100_000u64 {
        let id = if n % 50 == 0 {
            let mut random = [0u8; 16];
            random[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            random[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            uuid::Builder::from_random_bytes(random).into_uuid()
        } else {
            v7(n)
        };
        model.insert(id, n);
    }
    let bytes = codec::encode_state("model", &model).expect("encodes");
    let mut map: AppendMap<Uuid, u64> = codec::decode_state("map", &bytes).expect("decodes");
    assert_same_entries(&map, &model);
    for n in 100_000..110_000u64 {
        map.insert(v7(n), n);
        model.insert(v7(n), n);
    }
    assert_same_entries(&map, &model);
    let random_ids = 100_000 / 50;
    assert!(
        map.len() - map.len_in_run() <= random_ids,
        "only random ids are kept out of the run: {} of {} are",
        map.len() - map.len_in_run(),
        map.len()
    );
}

/// An id older than the run's last few (an old entity's, say) goes to the others: it does not
/// empty the run.
#[test]
fn an_old_id_goes_to_the_others_and_leaves_the_run_whole() {
    let v7 = |n: u64| {
        uuid::Builder::from_unix_timestamp_millis(1_700_000_000_000 + 2 * n, &[3; 10]).into_uuid()
    };
    let mut map = AppendMap::new();
    let mut model = BTreeMap::new();
    for n in 1..=10_000u64 {
        map.insert(v7(n), n);
        model.insert(v7(n), n);
    }
    let old = uuid::Builder::from_unix_timestamp_millis(1_700_000_000_001, &[3; 10]).into_uuid();
    map.insert(old, 0);
    model.insert(old, 0);
    assert_same_entries(&map, &model);
    assert_eq!(map.len_in_run(), 10_000, "the run kept every key");
}

/// A value maker that panics leaves the map as it was: its length counts what iterates, and it
/// still encodes to bytes that decode.
#[test]
fn a_panicking_value_maker_leaves_the_map_whole() {
    let mut map: AppendMap<u64, String> = (0..1_000u64).map(|k| (k * 2, k.to_string())).collect();
    for key in [5_000u64, 1_995, 999, 0] {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            map.get_or_insert_with(key, || panic!("no value"));
        }));
        assert_eq!(result.is_err(), key != 0, "key {key}");
        assert_eq!(map.len(), map.iter().count(), "after key {key}");
    }
    let bytes = codec::encode_state("map", &map).expect("encodes");
    let back: AppendMap<u64, String> = codec::decode_state("map", &bytes).expect("decodes");
    assert_eq!(back, map);
}

/// A write after a clone copies one shard of the others, or one page and leaf of the run: not
/// the map (what the timeline's snapshots rely on to stay small).
#[test]
fn a_write_after_a_clone_copies_a_shard_or_a_leaf_not_the_map() {
    use carelog::projection::append_map::copied_bytes;
    // 20,000 keys in the run, then 10,000 below them: the others.
    let mut map: AppendMap<u64, u64> = (0..20_000u64).map(|k| (100_000 + 4 * k, k)).collect();
    for k in (0..10_000u64).rev() {
        map.insert(k, k);
    }
    assert_eq!(map.len_in_run(), 20_000);
    assert_eq!(map.len(), 30_000);
    let kept = map.clone();
    let before = copied_bytes();
    let allocated_before = allocated_bytes();
    if let Some(v) = map.get_mut(&5_000) {
        *v += 1;
    }
    if let Some(v) = map.get_mut(&(100_000 + 4 * 7_000)) {
        *v += 1;
    }
    map.insert(1_000_000, 1);
    map.remove(&6_000);
    let copied = copied_bytes() - before;
    let allocated = allocated_bytes() - allocated_before;
    assert!(
        copied <= 8 << 10,
        "{copied} bytes copied by four writes after a clone"
    );
    // The map's own count, checked against what was allocated (a copy of the others would be
    // ~240 KiB, of every page ~1 MiB).
    assert!(
        allocated <= 16 << 10,
        "{allocated} bytes allocated by four writes after a clone"
    );
    assert!(
        copied > 0 && copied <= allocated,
        "{copied} counted, {allocated} allocated"
    );
    assert_eq!(map.get(&5_000), Some(&5_001));
    assert_eq!(kept.get(&5_000), Some(&5_000), "the clone kept its value");
    assert_eq!(kept.get(&(100_000 + 4 * 7_000)), Some(&7_000));
    assert_eq!(kept.get(&6_000), Some(&6_000));
    assert_eq!(kept.get(&1_000_000), None);
    assert_eq!(kept.len(), 30_000);
}
