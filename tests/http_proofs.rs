//! The Merkle tree's routes through a real client against `carelog serve`: the signed
//! checkpoint verifies with the verifier key `carelog checkpoint --verifier-key` prints, and the
//! inclusion and consistency proofs the service gives verify, with the RFC 9162 algorithms,
//! against the signed roots (the leaves recomputed from the export's `leaf` bytes).

mod http_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use carelog::merkle::note::{Checkpoint, NoteVerifier};
use carelog::merkle::{self, Hash, HashAlgorithm};
use reqwest::StatusCode;
use serde_json::Value;

use http_support::*;

async fn checkpoint_of(server: &Server, token: &str, query: &str) -> (Checkpoint, String) {
    let resp = server
        .client
        .get(server.url(&format!("/v1/checkpoint{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET checkpoint");
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let note = resp.text().await.expect("note");
    (
        Checkpoint::parse(
            note.split("\n\n")
                .next()
                .map(|t| format!("{t}\n"))
                .as_deref()
                .expect("text"),
        )
        .expect("checkpoint"),
        note,
    )
}

fn hashes(proof: &Value) -> Vec<Hash> {
    proof["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| {
            hex::decode(h.as_str().expect("hex"))
                .expect("hex")
                .try_into()
                .expect("32 bytes")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_over_http_verify_against_the_signed_checkpoint() {
    let store = Store::new();
    // The store is locked while the server runs: the verifier key is read first (this makes
    // the store's signing key, which the server then signs with).
    let verifier = NoteVerifier::parse(&cli(&store.data, &["checkpoint", "--verifier-key"]))
        .expect("verifier key");
    let server = store.start();
    let head = server.head(&store.auditor).await;
    let old_size = head / 2;

    for token in [&store.auditor, &store.supervisor, &store.admin] {
        let (status, body) = server
            .get("/v1/proof/inclusion?position=1", Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = server.get("/v1/checkpoint", Some(&store.recorder_a)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = server.get("/v1/checkpoint", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (cp, note) = checkpoint_of(&server, &store.auditor, "").await;
    let text = verifier
        .open(&note)
        .expect("the note is signed by the store's key");
    assert_eq!(Checkpoint::parse(text).expect("cp"), cp);
    assert_eq!(cp.tree_size, head);
    let (old_cp, old_note) =
        checkpoint_of(&server, &store.supervisor, &format!("?size={old_size}")).await;
    verifier.open(&old_note).expect("signed");
    assert_eq!(old_cp.tree_size, old_size);
    assert_eq!(old_cp.origin, cp.origin);

    // Every leaf from the export's bytes; every inclusion proof against the signed root.
    let resp = server
        .client
        .get(server.url("/v1/export"))
        .bearer_auth(&store.auditor)
        .send()
        .await
        .expect("export");
    let lines: Vec<Value> = resp
        .text()
        .await
        .expect("export body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines.len() as u64, head);
    for (i, line) in lines.iter().enumerate() {
        let position = i as u64 + 1;
        let leaf = BASE64
            .decode(line["leaf"].as_str().expect("leaf"))
            .expect("b64");
        let leaf_hash = HashAlgorithm::Sha256.leaf_hash(&leaf);
        let (status, proof) = server
            .get(
                &format!("/v1/proof/inclusion?position={position}&size={head}"),
                Some(&store.auditor),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{proof}");
        assert_eq!(proof["leaf_index"], position - 1);
        assert_eq!(proof["tree_size"], head);
        merkle::verify_inclusion(
            HashAlgorithm::Sha256,
            position - 1,
            head,
            &leaf_hash,
            &hashes(&proof),
            &cp.root,
        )
        .unwrap_or_else(|e| panic!("inclusion of {position}: {e}"));
        // The same proof does not show the next leaf.
        if let Some(next) = lines.get(i + 1) {
            let other = BASE64
                .decode(next["leaf"].as_str().expect("leaf"))
                .expect("b64");
            let other_hash = HashAlgorithm::Sha256.leaf_hash(&other);
            assert!(
                merkle::verify_inclusion(
                    HashAlgorithm::Sha256,
                    position - 1,
                    head,
                    &other_hash,
                    &hashes(&proof),
                    &cp.root
                )
                .is_err()
            );
        }
    }
    // The default size is the head; the CLI gives the same JSON.
    let (_, default_size) = server
        .get("/v1/proof/inclusion?position=3", Some(&store.auditor))
        .await;
    assert_eq!(default_size["tree_size"], head);

    let (status, proof) = server
        .get(
            &format!("/v1/proof/consistency?old_size={old_size}&size={head}"),
            Some(&store.auditor),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    assert_eq!(proof["old_size"], old_size);
    assert_eq!(proof["tree_size"], head);
    merkle::verify_consistency(
        HashAlgorithm::Sha256,
        old_size,
        head,
        &old_cp.root,
        &cp.root,
        &hashes(&proof),
    )
    .expect("consistency");
    let mut forged = old_cp.root;
    forged[0] ^= 1;
    assert!(
        merkle::verify_consistency(
            HashAlgorithm::Sha256,
            old_size,
            head,
            &forged,
            &cp.root,
            &hashes(&proof)
        )
        .is_err()
    );

    // Bad sizes: 400 naming the parameter.
    let past = head + 1;
    for (route, field) in [
        (format!("/v1/checkpoint?size={past}"), "size"),
        (
            format!("/v1/proof/inclusion?position=1&size={past}"),
            "size",
        ),
        (format!("/v1/proof/inclusion?position={past}"), "position"),
        ("/v1/proof/inclusion?position=0".to_string(), "position"),
        ("/v1/proof/inclusion".to_string(), "position"),
        ("/v1/proof/inclusion?position=x".to_string(), "position"),
        (format!("/v1/proof/consistency?old_size={past}"), "old_size"),
        (
            format!("/v1/proof/consistency?old_size=1&size={past}"),
            "size",
        ),
        ("/v1/proof/consistency".to_string(), "old_size"),
        ("/v1/proof/consistency?old_size=-1".to_string(), "old_size"),
        ("/v1/checkpoint?sise=1".to_string(), "sise"),
    ] {
        let (status, body) = server.get(&route, Some(&store.auditor)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route}: {body}");
        assert_eq!(error_of(&body).0.as_deref(), Some(field), "{route}: {body}");
    }
    drop(server);
    // What the CLI proves is what the service proved.
    let cli_proof: Value = serde_json::from_str(&cli(
        &store.data,
        &[
            "prove",
            "consistency",
            &old_size.to_string(),
            "--size",
            &head.to_string(),
            "--json",
        ],
    ))
    .expect("json");
    assert_eq!(cli_proof, proof);
}
