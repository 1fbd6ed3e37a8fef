//! Golden byte fixtures: every stored type and version, encoded once and committed under
//! `tests/fixtures/`. A change that alters the bytes of a stored type (a field added, reordered,
//! a serde attribute) fails here, because old stores hold the old bytes.
//!
//! A new type or version has no fixture yet: run `UPDATE_GOLDEN=1 cargo test --test golden`
//! once, review the new file, commit it. Existing fixtures are never rewritten.

use std::path::PathBuf;

use carelog::codec::{
    self, IndexChunkV1, IndexEntryV1, SegmentRefV1, SegmentV1, StoreHeaderV1, StoredEventV1,
    StoredHeadV1, StoredTime,
};
use carelog::domain::DomainEvent;
use carelog::domain::events::{
    Channel, ContactRecordedV1, ContactRecordedV2, Example, stored_type_examples,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Compares bytes with the fixture; writes a missing fixture only under UPDATE_GOLDEN=1.
fn check_golden(relative: &str, bytes: &[u8]) -> Vec<u8> {
    let path = fixtures().join(relative);
    match std::fs::read(&path) {
        Ok(stored) => {
            assert_eq!(
                stored, bytes,
                "{relative}: the encoding of a stored type changed; old stores hold the old bytes. Add a new version instead"
            );
            stored
        }
        Err(_) if std::env::var_os("UPDATE_GOLDEN").is_some() => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            bytes.to_vec()
        }
        Err(e) => panic!(
            "{relative}: no golden fixture ({e}); run UPDATE_GOLDEN=1 cargo test --test golden, review and commit it"
        ),
    }
}

#[test]
fn every_payload_type_and_version_decodes_from_its_fixture() {
    let examples = stored_type_examples().unwrap();
    assert!(examples.len() >= 43, "every type has an example");
    for (event_type, version, bytes) in examples {
        let stored = check_golden(&format!("payloads/{event_type}.v{version}.bin"), &bytes);
        let decoded = DomainEvent::decode(event_type, version, &stored)
            .unwrap_or_else(|e| panic!("{event_type} v{version}: {e}"));
        assert_eq!(decoded.event_type(), event_type);
    }
}

#[test]
fn contact_v1_fixture_is_read_as_v2() {
    let bytes = check_golden(
        "payloads/carelog.contact.recorded.v1.bin",
        &codec::encode_payload(&ContactRecordedV1::example()).unwrap(),
    );
    let decoded = DomainEvent::decode("carelog.contact.recorded", 1, &bytes).unwrap();
    let DomainEvent::ContactRecorded(v2) = decoded else {
        panic!("upcast to the wrong type: {decoded:?}")
    };
    let v1 = ContactRecordedV1::example();
    assert_eq!(
        v2,
        ContactRecordedV2 {
            pairing_id: v1.pairing_id,
            channel: Channel::Phone,
            summary: v1.summary,
            duration_minutes: None
        }
    );
    // The v1 bytes do not decode as v2 directly: the upcaster is what makes them readable.
    assert!(codec::decode_payload::<ContactRecordedV2>(&bytes).is_err());
}

#[test]
fn token_v1_fixture_is_read_as_v2_without_an_expiry() {
    use carelog::domain::events::{TokenGrantedV1, TokenGrantedV2};
    let bytes = check_golden(
        "payloads/carelog.token.granted.v1.bin",
        &codec::encode_payload(&TokenGrantedV1::example()).unwrap(),
    );
    let decoded = DomainEvent::decode("carelog.token.granted", 1, &bytes).unwrap();
    let DomainEvent::TokenGranted(v2) = decoded else {
        panic!("upcast to the wrong type: {decoded:?}")
    };
    let v1 = TokenGrantedV1::example();
    // No expiry in the event: the records give it DEFAULT_TOKEN_DAYS after the grant.
    assert_eq!(
        v2,
        TokenGrantedV2 {
            token_id: v1.token_id,
            secret_sha256: v1.secret_sha256,
            role: v1.role,
            person_id: v1.person_id,
            unit_id: v1.unit_id,
            expires_at: None
        }
    );
    assert!(codec::decode_payload::<TokenGrantedV2>(&bytes).is_err());
}

fn example_time() -> StoredTime {
    StoredTime {
        unix_seconds: 1_683_511_200,
        nanos: 123_000_000,
        offset_seconds: 8 * 3600,
    }
}

fn example_envelope() -> StoredEventV1 {
    StoredEventV1 {
        position: 7,
        event_id: [
            0x01, 0x8b, 0xd2, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x2a,
        ],
        stream: "pairing-018bd200-0000-7000-8000-000000000009".into(),
        stream_version: 3,
        event_type: "carelog.contact.recorded".into(),
        schema_version: 2,
        occurred_at: example_time(),
        recorded_at: StoredTime {
            unix_seconds: 1_683_514_800,
            nanos: 0,
            offset_seconds: 0,
        },
        recorded_by: "cadre-app".into(),
        correlation_id: Some([7; 16]),
        causation_id: None,
        payload: vec![1, 2, 3, 4],
        leaf_hash: [0xab; 32],
        chain_hash: [0xcd; 32],
    }
}

#[test]
fn store_types_decode_from_their_fixtures() {
    let header = StoreHeaderV1 {
        format_version: 1,
        hash_algorithm: "sha256".into(),
        created_at: example_time(),
    };
    let bytes = check_golden(
        "store/header.v1.bin",
        &codec::encode("header", &header).unwrap(),
    );
    assert_eq!(
        codec::decode::<StoreHeaderV1>("header", &bytes).unwrap(),
        header
    );

    let envelope = example_envelope();
    let bytes = check_golden(
        "store/event.v1.bin",
        &codec::encode("event", &envelope).unwrap(),
    );
    assert_eq!(
        codec::decode::<StoredEventV1>("event", &bytes).unwrap(),
        envelope
    );

    let canonical = check_golden(
        "store/event.v1.canonical.bin",
        &envelope.canonical_bytes().unwrap(),
    );
    assert_eq!(
        canonical,
        envelope.canonical_bytes().unwrap(),
        "the bytes the leaf hash covers are frozen too"
    );

    let segment = SegmentV1 {
        events: vec![
            envelope.clone(),
            StoredEventV1 {
                position: 8,
                stream_version: 4,
                ..envelope.clone()
            },
        ],
    };
    let bytes = check_golden(
        "store/segment.v1.bin",
        &codec::encode("segment", &segment).unwrap(),
    );
    assert_eq!(
        codec::decode::<SegmentV1>("segment", &bytes).unwrap(),
        segment
    );
    // The writer encodes a borrowed slice: it must give the very same bytes.
    assert_eq!(
        codec::encode(
            "segment",
            &SegmentRefV1 {
                events: &segment.events
            }
        )
        .unwrap(),
        bytes
    );

    let chunk = IndexChunkV1 {
        entries: vec![IndexEntryV1 {
            event_id: envelope.event_id,
            stream: envelope.stream.clone(),
            stream_version: 3,
        }],
    };
    let bytes = check_golden(
        "store/index_chunk.v1.bin",
        &codec::encode("index chunk", &chunk).unwrap(),
    );
    assert_eq!(
        codec::decode::<IndexChunkV1>("index chunk", &bytes).unwrap(),
        chunk
    );

    let head = StoredHeadV1 {
        position: 8,
        chain_hash: [0x11; 32],
        recorded_at: example_time(),
    };
    let bytes = check_golden("store/head.v1.bin", &codec::encode("head", &head).unwrap());
    assert_eq!(codec::decode::<StoredHeadV1>("head", &bytes).unwrap(), head);
}

#[test]
fn every_fixture_on_disk_belongs_to_a_known_type() {
    // A fixture whose type or version vanished from the code means old stores can no longer be read.
    let known: Vec<String> = stored_type_examples()
        .unwrap()
        .into_iter()
        .map(|(t, v, _)| format!("{t}.v{v}.bin"))
        .collect();
    for entry in std::fs::read_dir(fixtures().join("payloads")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            known.contains(&name),
            "fixture {name} has no type in the code: old records of it can no longer be read"
        );
    }
}

/// The store's anchor (`src/log/sled/anchor.rs`): what an open checks sled against.
#[test]
fn the_store_anchor_decodes_from_its_fixture() {
    use carelog::log::sled::anchor::Anchor;
    let anchor = Anchor {
        header_sha256: [0x11; 32],
        floor_position: 6_000,
        floor_chain_hash: [0xab; 32],
    };
    let bytes = check_golden("store/anchor.v1.bin", &anchor.encode());
    assert_eq!(Anchor::decode(&bytes), Ok(anchor));
}

/// The commit journal's layout (`src/log/journal.rs`): a file header and one record of a commit
/// of two writes. A crash leaves these bytes for the next build to replay.
#[test]
fn the_commit_journal_decodes_from_its_fixture() {
    use carelog::log::journal;
    let header = check_golden(
        "store/journal_header.v1.bin",
        &journal::encode_file_header(3),
    );
    assert_eq!(journal::parse_header(&header), Some(3));

    let writes: [(&[u8], &[u8]); 2] = [(b"B\0\0\0\0\0\0\0\x07", b"segment bytes"), (b"M", b"head")];
    let mut record = Vec::new();
    journal::encode_record(&mut record, 3, &journal::encode_payload(&writes));
    let record = check_golden("store/journal_record.v1.bin", &record);
    let mut file = header.clone();
    file.resize(journal::HEADER_BYTES as usize, 0);
    file.extend_from_slice(&record);
    let (payloads, end) = journal::scan_records(&file, 3);
    assert_eq!(end as usize, file.len());
    let entries = journal::decode_payload(&payloads[0]).unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = writes
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(entries, expected);
    // Of another generation, the same record is not this journal's.
    assert!(journal::scan_records(&file, 4).0.is_empty());
}
