//! The borrowed views of stored bytes (`decode_segment_refs`, `decode_index_chunk_refs`) against
//! the owned decode they stand in for: the same bytes accepted, the same fields, and an event's
//! stored bytes before its hashes equal to its canonical bytes (what verify hashes in place).

use std::path::PathBuf;

use carelog::codec::{
    self, IndexChunkV1, IndexEntryV1, SegmentV1, StoredEventRefV1, StoredEventV1, StoredTime,
};
use proptest::prelude::*;

fn time() -> impl Strategy<Value = StoredTime> {
    (any::<i64>(), any::<u32>(), any::<i32>()).prop_map(|(unix_seconds, nanos, offset_seconds)| {
        StoredTime {
            unix_seconds,
            nanos,
            offset_seconds,
        }
    })
}

/// Integers around every varint width boundary, and anything.
fn int() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..300,
        240u64..260,
        65_530u64..65_540,
        (u32::MAX as u64 - 3)..(u32::MAX as u64 + 3),
        any::<u64>(),
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        // Long enough for a 3-byte varint length.
        (251usize..70_000).prop_map(|n| (0..n).map(|i| (i * 7) as u8).collect()),
    ]
}

fn event() -> impl Strategy<Value = StoredEventV1> {
    (
        (int(), any::<[u8; 16]>(), ".{0,40}", int(), "[a-z.]{0,30}"),
        (any::<u16>(), time(), time(), ".{0,20}"),
        (
            any::<Option<[u8; 16]>>(),
            any::<Option<[u8; 16]>>(),
            payload(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        ),
    )
        .prop_map(
            |(
                (position, event_id, stream, stream_version, event_type),
                (schema_version, occurred_at, recorded_at, recorded_by),
                (correlation_id, causation_id, payload, leaf_hash, chain_hash),
            )| StoredEventV1 {
                position,
                event_id,
                stream,
                stream_version,
                event_type,
                schema_version,
                occurred_at,
                recorded_at,
                recorded_by,
                correlation_id,
                causation_id,
                payload,
                leaf_hash,
                chain_hash,
            },
        )
}

/// Decodes both ways; they must agree on acceptance and, when accepted, on every field.
fn both_agree(bytes: &[u8]) -> Result<Option<usize>, TestCaseError> {
    let owned = codec::decode::<SegmentV1>("segment", bytes);
    let mut refs = Vec::new();
    let borrowed = codec::decode_segment_refs(bytes, &mut refs);
    match (owned, borrowed) {
        (Ok(owned), Ok(())) => {
            let from_refs: Vec<StoredEventV1> =
                refs.iter().map(StoredEventRefV1::to_owned_event).collect();
            prop_assert_eq!(&owned.events, &from_refs);
            for (e, r) in owned.events.iter().zip(&refs) {
                // Whatever the decoder accepted, the view's canonical slice is the bytes it read.
                if r.canonical_is_exact() {
                    prop_assert_eq!(r.canonical, &e.canonical_bytes().unwrap()[..]);
                } else {
                    prop_assert_ne!(r.canonical, &e.canonical_bytes().unwrap()[..]);
                }
            }
            Ok(Some(refs.len()))
        }
        (Err(_), Err(_)) => Ok(None),
        (owned, borrowed) => Err(TestCaseError::fail(format!(
            "owned {:?} but borrowed {:?}",
            owned.map(|s| s.events.len()),
            borrowed
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_segment_view_is_the_owned_decode_and_its_slices_are_the_canonical_bytes(
        events in proptest::collection::vec(event(), 0..5)
    ) {
        let segment = SegmentV1 { events };
        let bytes = codec::encode("segment", &segment).unwrap();
        let mut refs = Vec::new();
        codec::decode_segment_refs(&bytes, &mut refs).unwrap();
        prop_assert_eq!(refs.len(), segment.events.len());
        for (e, r) in segment.events.iter().zip(&refs) {
            prop_assert_eq!(&r.to_owned_event(), e);
            prop_assert_eq!(r.canonical, &e.canonical_bytes().unwrap()[..]);
            prop_assert!(r.canonical_is_exact());
        }
        prop_assert_eq!(both_agree(&bytes)?, Some(segment.events.len()));
    }

    #[test]
    fn damaged_segment_bytes_are_accepted_by_both_decoders_or_neither(
        events in proptest::collection::vec(event(), 1..3),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
    ) {
        let mut bytes = codec::encode("segment", &SegmentV1 { events }).unwrap();
        for (at, byte, how) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => { bytes.insert(i, byte); }
                2 => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        both_agree(&bytes)?;
    }

    #[test]
    fn an_index_chunk_view_is_the_owned_decode(
        entries in proptest::collection::vec((any::<[u8; 16]>(), ".{0,40}", int()), 0..6),
        damage in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let chunk = IndexChunkV1 {
            entries: entries
                .into_iter()
                .map(|(event_id, stream, stream_version)| IndexEntryV1 { event_id, stream, stream_version })
                .collect(),
        };
        let mut bytes = codec::encode("index chunk", &chunk).unwrap();
        if let Some((at, byte)) = damage {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let owned = codec::decode::<IndexChunkV1>("index chunk", &bytes);
        let mut refs = Vec::new();
        let borrowed = codec::decode_index_chunk_refs(&bytes, &mut refs);
        match (owned, borrowed) {
            (Ok(owned), Ok(())) => {
                prop_assert_eq!(owned.entries.len(), refs.len());
                for (o, r) in owned.entries.iter().zip(&refs) {
                    prop_assert_eq!(o.event_id, r.event_id);
                    prop_assert_eq!(&o.stream, r.stream);
                    prop_assert_eq!(o.stream_version, r.stream_version);
                }
            }
            (Err(_), Err(_)) => {}
            (o, b) => prop_assert!(false, "owned {:?} but borrowed {:?}", o.map(|c| c.entries.len()), b),
        }
    }
}

fn example() -> StoredEventV1 {
    StoredEventV1 {
        position: 5,
        event_id: [1; 16],
        stream: "pupil-1".into(),
        stream_version: 1,
        event_type: "carelog.test".into(),
        schema_version: 1,
        occurred_at: StoredTime {
            unix_seconds: 1_700_000_000,
            nanos: 0,
            offset_seconds: 28_800,
        },
        recorded_at: StoredTime {
            unix_seconds: 1_700_000_001,
            nanos: 0,
            offset_seconds: 0,
        },
        recorded_by: "tester".into(),
        correlation_id: None,
        causation_id: Some([2; 16]),
        payload: vec![9; 40],
        leaf_hash: [3; 32],
        chain_hash: [4; 32],
    }
}

#[test]
fn a_varint_in_its_wide_form_decodes_but_is_not_the_canonical_bytes() {
    let e = example();
    let bytes = codec::encode(
        "segment",
        &SegmentV1 {
            events: vec![e.clone()],
        },
    )
    .unwrap();
    // [count = 1][position = 5][...]: write the position as 251 + u16 5 instead.
    assert_eq!(&bytes[..2], &[1, 5]);
    let mut wide = vec![1, 251, 5, 0];
    wide.extend_from_slice(&bytes[2..]);
    let owned = codec::decode::<SegmentV1>("segment", &wide).unwrap();
    assert_eq!(owned.events, vec![e.clone()]);
    let mut refs = Vec::new();
    codec::decode_segment_refs(&wide, &mut refs).unwrap();
    assert_eq!(refs[0].to_owned_event(), e);
    assert!(!refs[0].canonical_is_exact());
    assert_ne!(refs[0].canonical, &e.canonical_bytes().unwrap()[..]);
    assert_eq!(
        refs[0].canonical.len(),
        e.canonical_bytes().unwrap().len() + 2
    );
}

#[test]
fn the_golden_segment_fixture_reads_the_same_borrowed() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/segment.v1.bin");
    let bytes = std::fs::read(path).unwrap();
    let owned = codec::decode::<SegmentV1>("segment", &bytes).unwrap();
    let mut refs = Vec::new();
    codec::decode_segment_refs(&bytes, &mut refs).unwrap();
    assert_eq!(refs.len(), owned.events.len());
    for (o, r) in owned.events.iter().zip(&refs) {
        assert_eq!(&r.to_owned_event(), o);
        assert!(r.canonical_is_exact());
        assert_eq!(r.canonical, &o.canonical_bytes().unwrap()[..]);
    }
    let canonical = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/store/event.v1.canonical.bin"),
    )
    .unwrap();
    assert_eq!(refs[0].canonical, &canonical[..]);
}
