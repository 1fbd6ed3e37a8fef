//! Proofs an outsider can check (issue 17): `carelog checkpoint`, `carelog prove` and
//! `carelog-audit` through the binaries, on the demo's store, and the Python of `docs/leaf.md`.
//!
//! One store is built once (the demo: 221,677 events); the audits run on the export of its
//! first events, against checkpoints of that size and of a smaller one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use carelog::merkle::{self, HashAlgorithm};
use serde_json::Value;

const SIZE: usize = 3_000;
const OLD_SIZE: usize = 1_234;

struct Fixture {
    _dir: tempfile::TempDir,
    store: PathBuf,
    other_store: PathBuf,
    export: Vec<String>,
    work: PathBuf,
}

fn carelog(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carelog"))
        .arg("--data")
        .arg(store)
        .args(args)
        .output()
        .expect("carelog runs")
}

fn ok(store: &Path, args: &[&str]) -> String {
    let o = carelog(store, args);
    assert!(
        o.status.success(),
        "carelog {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let other_store = dir.path().join("other");
        ok(&store, &["demo"]);
        ok(&other_store, &["demo", "--seed", "2"]);
        let all = ok(&store, &["export", "--format", "jsonl"]);
        let export: Vec<String> = all.lines().take(SIZE).map(str::to_string).collect();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        Fixture {
            _dir: dir,
            store,
            other_store,
            export,
            work,
        }
    })
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = fixture().work.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn export_file(name: &str, lines: &[String]) -> PathBuf {
    write(name, &format!("{}\n", lines.join("\n")))
}

fn checkpoint(store: &Path, size: usize, name: &str) -> PathBuf {
    let text = ok(store, &["checkpoint", "--size", &size.to_string()]);
    write(name, &text)
}

fn verifier_key(store: &Path) -> String {
    ok(store, &["checkpoint", "--verifier-key"])
        .trim()
        .to_string()
}

fn audit(export: &Path, checkpoint: &Path, key: &str, previous: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_carelog-audit"));
    c.arg(export)
        .arg("--checkpoint")
        .arg(checkpoint)
        .arg("--key")
        .arg(key);
    if let Some(p) = previous {
        c.arg("--previous").arg(p);
    }
    c.output().expect("carelog-audit runs")
}

fn refused(o: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("NOT VERIFIED"), "{stderr}");
    assert!(stderr.contains(says), "expected {says:?} in: {stderr}");
}

#[test]
fn an_export_verifies_against_its_signed_checkpoint_and_an_older_one() {
    let f = fixture();
    let export = export_file("good.jsonl", &f.export);
    let cp = checkpoint(&f.store, SIZE, "cp.txt");
    let old = checkpoint(&f.store, OLD_SIZE, "old.txt");
    let key = verifier_key(&f.store);
    let o = audit(&export, &cp, &key, Some(&old));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.starts_with(&format!("verified: {SIZE} events")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("only grew since size {OLD_SIZE}")),
        "{stdout}"
    );

    // An export longer than the checkpoint verifies its signed prefix and says what is not.
    let longer = audit(&export, &old, &key, None);
    assert_eq!(longer.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&longer.stdout)
            .contains(&format!("{} later events are not covered", SIZE - OLD_SIZE))
    );
}

#[test]
fn a_changed_removed_or_reordered_line_is_named_by_its_position() {
    let f = fixture();
    let cp = checkpoint(&f.store, SIZE, "cp2.txt");
    let key = verifier_key(&f.store);

    // The data changed, the leaf left as it was: the line no longer shows its leaf.
    let mut changed = f.export.clone();
    let mut line: Value = serde_json::from_str(&changed[99]).expect("JSON");
    let data = line["data"].as_object_mut().expect("data");
    let (k, _) = data
        .iter()
        .find(|(_, v)| v.is_string())
        .expect("a text field");
    let k = k.clone();
    data.insert(k, Value::String("改过的".into()));
    changed[99] = line.to_string();
    refused(
        &audit(&export_file("changed.jsonl", &changed), &cp, &key, None),
        "position 100",
    );

    // The leaf changed too, consistently: its hash is no longer the one the root was made of.
    let mut releafed = f.export.clone();
    let mut line: Value = serde_json::from_str(&releafed[10]).expect("JSON");
    let mut leaf = BASE64
        .decode(line["leaf"].as_str().expect("leaf"))
        .expect("base64");
    let last = leaf.len() - 1;
    leaf[last] ^= 0x20;
    line["leaf"] = Value::String(BASE64.encode(&leaf));
    releafed[10] = line.to_string();
    refused(
        &audit(&export_file("releafed.jsonl", &releafed), &cp, &key, None),
        "position 11",
    );

    let mut removed = f.export.clone();
    removed.remove(500);
    refused(
        &audit(&export_file("removed.jsonl", &removed), &cp, &key, None),
        "position 501",
    );

    let mut swapped = f.export.clone();
    swapped.swap(7, 8);
    refused(
        &audit(&export_file("swapped.jsonl", &swapped), &cp, &key, None),
        "position 8",
    );

    let short = f.export[..SIZE - 1].to_vec();
    refused(
        &audit(&export_file("short.jsonl", &short), &cp, &key, None),
        &format!("it signs {SIZE} events, the export holds {}", SIZE - 1),
    );
}

#[test]
fn a_checkpoint_of_another_key_store_or_size_is_refused() {
    let f = fixture();
    let export = export_file("good2.jsonl", &f.export);
    let cp = checkpoint(&f.store, SIZE, "cp3.txt");
    let key = verifier_key(&f.store);

    // Another store's key: no signature by it.
    let other_key = verifier_key(&f.other_store);
    refused(
        &audit(&export, &cp, &other_key, None),
        "no signature by key",
    );

    // A changed size or root: the signature no longer verifies.
    let text = std::fs::read_to_string(&cp).expect("cp");
    let bumped = write(
        "bumped.txt",
        &text.replacen(&format!("\n{SIZE}\n"), &format!("\n{}\n", SIZE - 1), 1),
    );
    refused(&audit(&export, &bumped, &key, None), "does not verify");

    // The other store's checkpoint signed with this store's key: a valid signature over a root
    // these leaves do not make.
    let forged = ok(
        &f.other_store,
        &[
            "checkpoint",
            "--size",
            &SIZE.to_string(),
            "--key",
            f.store.join("signing-key").to_str().expect("path"),
        ],
    );
    let forged = write("forged.txt", &forged);
    refused(
        &audit(&export, &forged, &key, None),
        "is not the log that was signed",
    );

    // An older checkpoint of the other log: another origin.
    let other_old = ok(
        &f.other_store,
        &[
            "checkpoint",
            "--size",
            &OLD_SIZE.to_string(),
            "--key",
            f.store.join("signing-key").to_str().expect("path"),
        ],
    );
    let other_old = write("other_old.txt", &other_old);
    refused(&audit(&export, &cp, &key, Some(&other_old)), "another log");
}

#[test]
fn proofs_from_the_cli_verify_with_the_rfc_algorithms_against_the_signed_root() {
    let f = fixture();
    let cp = std::fs::read_to_string(checkpoint(&f.store, SIZE, "cp4.txt")).expect("cp");
    let root: [u8; 32] = BASE64
        .decode(cp.lines().nth(2).expect("root line"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let hashes = |v: &Value| -> Vec<[u8; 32]> {
        v["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .map(|h| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h.as_str().expect("hex"), &mut out).expect("32 bytes");
                out
            })
            .collect()
    };
    for position in [1usize, 2, 777, SIZE - 1, SIZE] {
        let proof: Value = serde_json::from_str(&ok(
            &f.store,
            &[
                "prove",
                "inclusion",
                &position.to_string(),
                "--size",
                &SIZE.to_string(),
                "--json",
            ],
        ))
        .expect("JSON");
        assert_eq!(proof["leaf_index"], position as u64 - 1);
        assert_eq!(proof["tree_size"], SIZE as u64);
        let line: Value = serde_json::from_str(&f.export[position - 1]).expect("JSON");
        let leaf = BASE64
            .decode(line["leaf"].as_str().expect("leaf"))
            .expect("b64");
        let leaf_hash = HashAlgorithm::Sha256.leaf_hash(&leaf);
        merkle::verify_inclusion(
            HashAlgorithm::Sha256,
            position as u64 - 1,
            SIZE as u64,
            &leaf_hash,
            &hashes(&proof),
            &root,
        )
        .unwrap_or_else(|e| panic!("inclusion of {position}: {e}"));
    }
    let old_cp = std::fs::read_to_string(checkpoint(&f.store, OLD_SIZE, "old4.txt")).expect("cp");
    let old_root: [u8; 32] = BASE64
        .decode(old_cp.lines().nth(2).expect("root line"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let proof: Value = serde_json::from_str(&ok(
        &f.store,
        &[
            "prove",
            "consistency",
            &OLD_SIZE.to_string(),
            "--size",
            &SIZE.to_string(),
            "--json",
        ],
    ))
    .expect("JSON");
    assert_eq!(proof["old_size"], OLD_SIZE as u64);
    merkle::verify_consistency(
        HashAlgorithm::Sha256,
        OLD_SIZE as u64,
        SIZE as u64,
        &old_root,
        &root,
        &hashes(&proof),
    )
    .expect("consistency");

    // Past the head: refused, exit 2, saying the head.
    let o = carelog(
        &f.store,
        &["prove", "inclusion", "1", "--size", "999999999"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("221677"));
}

#[test]
fn the_python_of_docs_leaf_md_makes_the_signed_root() {
    let f = fixture();
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/leaf.md"))
        .expect("docs/leaf.md");
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block in docs/leaf.md");
    let script = write("root.py", code);
    let export = export_file("py.jsonl", &f.export);
    let out = Command::new("python3")
        .arg(&script)
        .arg(&export)
        .arg(OLD_SIZE.to_string())
        .output()
        .expect("python3 runs (it is on the machine and in CI)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cp = std::fs::read_to_string(checkpoint(&f.store, OLD_SIZE, "py_cp.txt")).expect("cp");
    let mut lines = cp.lines();
    let (_, size, root) = (lines.next(), lines.next(), lines.next());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} {}", size.expect("size"), root.expect("root"))
    );
}
