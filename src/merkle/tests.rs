//! The tree against published vectors and against a direct reading of RFC 9162.
//!
//! Vectors: transparency-dev/merkle `testonly/constants.go` (the leaves, every root of the
//! 8-leaf tree, its node hashes) and `proof/verify_test.go` (inclusion and consistency proofs,
//! and the ways a proof is corrupted there).

use super::*;

fn h(hex_text: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).expect("a 32-byte hex vector");
    out
}

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots by tree size, 1..=8.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const SHA: HashAlgorithm = HashAlgorithm::Sha256;

fn leaf_bytes(i: usize) -> Vec<u8> {
    hex::decode(LEAVES[i]).expect("hex leaf")
}

/// The stored sequence of a tree of the given leaves, built by appends.
fn stored_tree(algorithm: HashAlgorithm, leaves: &[Vec<u8>]) -> Vec<Hash> {
    let mut stored: Vec<Hash> = Vec::new();
    let mut edge = CompactRange::default();
    for (i, leaf) in leaves.iter().enumerate() {
        let i = i as u64;
        assert_eq!(stored.len() as u64, stored_count(i));
        edge.append(algorithm, algorithm.leaf_hash(leaf), &mut stored);
        assert_eq!(
            edge.root(algorithm),
            root(algorithm, i + 1, &stored).unwrap()
        );
        assert_eq!(CompactRange::load(i + 1, &stored).unwrap(), edge);
    }
    stored
}

fn vector_tree() -> Vec<Hash> {
    stored_tree(SHA, &(0..8).map(leaf_bytes).collect::<Vec<_>>())
}

/// MTH straight from RFC 9162 §2.1.1, over leaf hashes: the reference the stored tree must
/// agree with.
fn reference_root(algorithm: HashAlgorithm, leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => algorithm.empty_root(),
        1 => leaf_hashes[0],
        n => {
            let k = split(n as u64) as usize;
            algorithm.node_hash(
                &reference_root(algorithm, &leaf_hashes[..k]),
                &reference_root(algorithm, &leaf_hashes[k..]),
            )
        }
    }
}

#[test]
fn roots_of_the_published_eight_leaf_tree() {
    let stored = vector_tree();
    assert_eq!(stored.len(), 15, "2·8 − popcount(8)");
    assert_eq!(root(SHA, 0, &stored).unwrap(), h(EMPTY_ROOT));
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(
            root(SHA, size as u64 + 1, &stored).unwrap(),
            h(want),
            "root at size {}",
            size + 1
        );
    }
    // The node hashes of constants.go, at their stored places.
    assert_eq!(
        stored[stored_index(0, 0) as usize],
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        stored[stored_index(1, 3) as usize],
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0")
    );
    assert_eq!(
        stored[stored_index(2, 1) as usize],
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")
    );
    assert_eq!(stored_index(3, 0), 14);
}

#[test]
fn the_stored_layout_numbers_every_subtree_once_in_append_order() {
    // Appending leaf i writes exactly the hashes with indexes stored_count(i)..stored_count(i+1),
    // and stored_index names each of them.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..1_000u64 {
        let range = stored_count(i)..stored_count(i + 1);
        let completed = (i + 1).trailing_zeros();
        assert_eq!(range.end - range.start, 1 + u64::from(completed));
        for level in 0..=completed {
            let idx = stored_index(level, i >> level);
            assert!(
                range.contains(&idx),
                "leaf {i} level {level}: {idx} in {range:?}"
            );
            assert!(seen.insert(idx), "index {idx} used twice");
        }
    }
    assert_eq!(seen.len() as u64, stored_count(1_000));
}

/// (leaf number from 1, tree size, proof) from verify_test.go.
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            3,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            2,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// (old size, tree size, proof) from verify_test.go.
fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

fn flipped(proof: &[Hash], i: usize, bit: u8) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[i][0] ^= bit;
    p
}

#[test]
fn inclusion_proofs_equal_the_published_ones_and_verify() {
    let stored = vector_tree();
    for (leaf, size, want) in inclusion_vectors() {
        let index = leaf - 1;
        let proof = inclusion_proof(SHA, index, size, &stored).unwrap();
        assert_eq!(proof, want, "inclusion of leaf {leaf} in {size}");
        let leaf_hash = SHA.leaf_hash(&leaf_bytes(index as usize));
        let root_hash = h(ROOTS[size as usize - 1]);
        verify_inclusion(SHA, index, size, &leaf_hash, &proof, &root_hash).unwrap();

        // Every corruption of verify_test.go is refused.
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        let mut bad: Vec<(String, u64, u64, Hash, Vec<Hash>, Hash)> = vec![
            (
                "index - 1".into(),
                index.wrapping_sub(1),
                size,
                leaf_hash,
                proof.clone(),
                root_hash,
            ),
            (
                "index + 1".into(),
                index + 1,
                size,
                leaf_hash,
                proof.clone(),
                root_hash,
            ),
            (
                "index ^ 2".into(),
                index ^ 2,
                size,
                leaf_hash,
                proof.clone(),
                root_hash,
            ),
            (
                "size * 2".into(),
                index,
                size * 2,
                leaf_hash,
                proof.clone(),
                root_hash,
            ),
            (
                "size / 2".into(),
                index,
                size / 2,
                leaf_hash,
                proof.clone(),
                root_hash,
            ),
            (
                "wrong leaf".into(),
                index,
                size,
                some,
                proof.clone(),
                root_hash,
            ),
            (
                "empty root".into(),
                index,
                size,
                leaf_hash,
                proof.clone(),
                h(EMPTY_ROOT),
            ),
            (
                "random root".into(),
                index,
                size,
                leaf_hash,
                proof.clone(),
                some,
            ),
            (
                "trailing root".into(),
                index,
                size,
                leaf_hash,
                [proof.clone(), vec![root_hash]].concat(),
                root_hash,
            ),
            (
                "preceding root".into(),
                index,
                size,
                leaf_hash,
                [vec![root_hash], proof.clone()].concat(),
                root_hash,
            ),
        ];
        for i in 0..proof.len() {
            bad.push((
                format!("proof[{i}] bit 3"),
                index,
                size,
                leaf_hash,
                flipped(&proof, i, 8),
                root_hash,
            ));
        }
        if !proof.is_empty() {
            bad.push((
                "removed".into(),
                index,
                size,
                leaf_hash,
                proof[..proof.len() - 1].to_vec(),
                root_hash,
            ));
        }
        if proof.len() > 1 {
            let mut inserted = vec![proof[0], some];
            inserted.extend_from_slice(&proof[1..]);
            bad.push((
                "inserted".into(),
                index,
                size,
                leaf_hash,
                inserted,
                root_hash,
            ));
        }
        for (what, i, n, lh, p, r) in bad {
            assert!(
                verify_inclusion(SHA, i, n, &lh, &p, &r).is_err(),
                "leaf {leaf} in {size}: {what} verified"
            );
        }
    }
}

#[test]
fn consistency_proofs_equal_the_published_ones_and_verify() {
    let stored = vector_tree();
    for (m, n, want) in consistency_vectors() {
        let proof = consistency_proof(SHA, m, n, &stored).unwrap();
        assert_eq!(proof, want, "consistency {m} → {n}");
        let (r1, r2) = (h(ROOTS[m as usize - 1]), h(ROOTS[n as usize - 1]));
        verify_consistency(SHA, m, n, &r1, &r2, &proof).unwrap();
        if proof.is_empty() {
            continue;
        }
        let mut bad: Vec<(String, u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            ("m - 1".into(), m - 1, n, r1, r2, proof.clone()),
            ("m + 1".into(), m + 1, n, r1, r2, proof.clone()),
            ("m ^ 2".into(), m ^ 2, n, r1, r2, proof.clone()),
            ("n * 2".into(), m, n * 2, r1, r2, proof.clone()),
            ("n / 2".into(), m, n / 2, r1, r2, proof.clone()),
            ("swapped roots".into(), m, n, r2, r1, proof.clone()),
            ("empty proof".into(), m, n, r1, r2, vec![]),
            (
                "trailing root1".into(),
                m,
                n,
                r1,
                r2,
                [proof.clone(), vec![r1]].concat(),
            ),
            (
                "trailing root2".into(),
                m,
                n,
                r1,
                r2,
                [proof.clone(), vec![r2]].concat(),
            ),
            (
                "preceding root1".into(),
                m,
                n,
                r1,
                r2,
                [vec![r1], proof.clone()].concat(),
            ),
            (
                "preceding root2".into(),
                m,
                n,
                r1,
                r2,
                [vec![r2], proof.clone()].concat(),
            ),
            (
                "preceding proof[0]".into(),
                m,
                n,
                r1,
                r2,
                [vec![proof[0]], proof.clone()].concat(),
            ),
            (
                "truncated".into(),
                m,
                n,
                r1,
                r2,
                proof[..proof.len() - 1].to_vec(),
            ),
        ];
        for i in 0..proof.len() {
            bad.push((
                format!("proof[{i}] bit 4"),
                m,
                n,
                r1,
                r2,
                flipped(&proof, i, 16),
            ));
        }
        for (what, a, b, x, y, p) in bad {
            assert!(
                verify_consistency(SHA, a, b, &x, &y, &p).is_err(),
                "{m} → {n}: {what} verified"
            );
        }
    }
}

#[test]
fn consistency_edge_cases_of_the_published_verifier() {
    let (a, b) = (h(ROOTS[0]), h(ROOTS[1]));
    let e = h(EMPTY_ROOT);
    assert!(verify_consistency(SHA, 0, 0, &a, &b, &[]).is_err());
    assert!(verify_consistency(SHA, 1, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(SHA, 0, 0, &a, &a, &[]).is_ok());
    assert!(verify_consistency(SHA, 0, 1, &a, &b, &[]).is_ok());
    assert!(verify_consistency(SHA, 1, 1, &b, &b, &[]).is_ok());
    assert!(verify_consistency(SHA, 1, 0, &a, &b, &[]).is_err());
    assert!(verify_consistency(SHA, 2, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(SHA, 1, 2, &a, &b, &[]).is_err());
    assert!(verify_consistency(SHA, 0, 0, &e, &e, &[e]).is_err());
    assert!(verify_consistency(SHA, 0, 1, &e, &e, &[e]).is_err());
    assert!(verify_consistency(SHA, 1, 1, &e, &e, &[e]).is_err());
}

#[test]
fn every_proof_of_a_larger_tree_verifies_and_agrees_with_the_reference() {
    for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Sm3] {
        let leaves: Vec<Vec<u8>> = (0..70u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let stored = stored_tree(algorithm, &leaves);
        let leaf_hashes: Vec<Hash> = leaves.iter().map(|l| algorithm.leaf_hash(l)).collect();
        for n in 1..=70u64 {
            let r = root(algorithm, n, &stored).unwrap();
            assert_eq!(
                r,
                reference_root(algorithm, &leaf_hashes[..n as usize]),
                "root {n}"
            );
            for i in 0..n {
                let p = inclusion_proof(algorithm, i, n, &stored).unwrap();
                assert_eq!(p.len(), inclusion_proof_length(i, n));
                verify_inclusion(algorithm, i, n, &leaf_hashes[i as usize], &p, &r)
                    .unwrap_or_else(|e| panic!("{algorithm:?} leaf {i} in {n}: {e}"));
            }
            for m in 0..=n {
                let p = consistency_proof(algorithm, m, n, &stored).unwrap();
                let old = root(algorithm, m, &stored).unwrap();
                verify_consistency(algorithm, m, n, &old, &r, &p)
                    .unwrap_or_else(|e| panic!("{algorithm:?} {m} → {n}: {e}"));
            }
        }
    }
}

#[test]
fn reads_are_logarithmic() {
    // A reader that counts: a root and a proof at a size of a million read O(log n) hashes.
    struct Counting(std::cell::Cell<usize>);
    impl HashReader for Counting {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
            self.0.set(self.0.get() + indexes.len());
            Ok(vec![[0u8; 32]; indexes.len()])
        }
    }
    let r = Counting(std::cell::Cell::new(0));
    let n = 1_000_003u64;
    root(SHA, n, &r).unwrap();
    assert!(r.0.get() <= 20, "root read {}", r.0.get());
    r.0.set(0);
    inclusion_proof(SHA, 123_456, n, &r).unwrap();
    assert!(r.0.get() <= 2 * 20, "inclusion read {}", r.0.get());
    r.0.set(0);
    consistency_proof(SHA, 654_321, n, &r).unwrap();
    assert!(r.0.get() <= 2 * 20, "consistency read {}", r.0.get());
}

#[test]
fn sm3_of_abc_is_the_standard_vector() {
    // GB/T 32905-2016, Appendix A.1.
    assert_eq!(
        hex::encode(HashAlgorithm::Sm3.digest(&[b"abc"])),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );
    assert_eq!(
        HashAlgorithm::from_name("SHA-256"),
        Some(HashAlgorithm::Sha256)
    );
    assert_eq!(HashAlgorithm::from_name("sm3"), Some(HashAlgorithm::Sm3));
    assert_eq!(HashAlgorithm::from_name("md5"), None);
}
