//! A store that knows it existed: no single lost or changed key, no cut or damaged sled file and
//! no lost file beside it may turn into an empty, shorter or new log. Each case damages a copy
//! of a closed 6,000-event store one way and runs the real binary on it: the open refuses
//! naming what is missing, `verify` exits 1, nothing is written, and no command starts a new
//! log there. sled's panics on damaged files are reported as damage, never exit 101.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use carelog::log::{AppendBatch, Log, NewEvent, OpenOptions, keys};
use carelog::rng::SplitMix64;
use carelog::time::parse_instant;
use common::{LOG_TREE, open_sled};

const EVENTS: u64 = 6_000;

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        format!("pair-{}", n % 7),
        "test.noted",
        1,
        parse_instant("2023-05-01T09:30:00+08:00").unwrap(),
        "tester",
        format!("event {n}").into_bytes(),
    )
}

/// A closed store of [`EVENTS`] events in uneven commits.
fn build_store(dir: &Path) {
    let log = Log::open(dir, OpenOptions::default()).unwrap();
    let mut n = 0;
    for size in [1_000u64, 2_500, 500, 2_000] {
        log.append(AppendBatch::new((n + 1..=n + size).map(event).collect()))
            .unwrap();
        n += size;
    }
    assert_eq!(log.head_position(), EVENTS);
}

fn carelog(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carelog"))
        .arg("--data")
        .arg(dir)
        .args(args)
        .env("CARELOG_ACTOR", "tester")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of the whole store directory (sled's files, the journal, the anchor).
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_store(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The store's file names, and the bytes of the files carelog writes beside sled's (the
/// journal, the anchor): sled rewrites its own files whenever it opens, so what carelog did not
/// write to sled is shown by the log coming back whole once the damage is undone.
fn snapshot(dir: &Path) -> Vec<(String, Option<u64>)> {
    let mut files: Vec<(String, Option<u64>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap.")
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let ours = name == "journal" || name == "anchor";
            let digest = ours.then(|| {
                let bytes = std::fs::read(&p).unwrap();
                bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
                })
            });
            (name, digest)
        })
        .collect();
    files.sort();
    files
}

/// The store refuses to be used: `verify` exits 1 naming `what`, an append is refused and
/// starts no log, and none of the store's files changed.
fn assert_refused(dir: &Path, what: &[&str]) {
    let before = snapshot(dir);
    let verify = carelog(dir, &["verify"]);
    let said = stderr(&verify);
    assert_eq!(
        verify.status.code(),
        Some(1),
        "verify: {said}{}",
        stdout(&verify)
    );
    assert!(said.contains("damaged"), "{said}");
    for word in what {
        assert!(said.contains(word), "verify names {word:?}: {said}");
    }
    let mut append = Command::new(env!("CARGO_BIN_EXE_carelog"))
        .arg("--data")
        .arg(dir)
        .args(["append", "-"])
        .env("CARELOG_ACTOR", "tester")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    // A refused store may end the process before it reads its input: a broken pipe is fine.
    let written = append.stdin.take().unwrap().write_all(
        br#"{"specversion":"1.0","id":"3f0c8a7e-0000-4000-8000-000000000001","source":"test","type":"carelog.note.recorded","time":"2023-05-01T09:30:00+08:00","data":{}}
"#,
    );
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let append = append.wait_with_output().unwrap();
    assert_eq!(append.status.code(), Some(2), "append: {}", stderr(&append));
    assert!(
        !stdout(&append).contains("\"position\""),
        "nothing acknowledged: {}",
        stdout(&append)
    );
    assert_eq!(snapshot(dir), before, "nothing of the store was written");
}

fn with_tree(dir: &Path, f: impl FnOnce(&sled::Tree)) {
    let db = open_sled(dir);
    let tree = db.open_tree(LOG_TREE).unwrap();
    f(&tree);
    db.flush().unwrap();
}

struct Fixture {
    _root: tempfile::TempDir,
    pristine: PathBuf,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let pristine = root.path().join("pristine");
        build_store(&pristine);
        Self {
            pristine,
            root: root.path().to_path_buf(),
            _root: root,
        }
    }

    fn copy(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        copy_store(&self.pristine, &dir);
        dir
    }
}

#[test]
fn a_lost_or_changed_head_key_is_refused_never_a_shorter_log() {
    let fixture = Fixture::new();
    let lost = fixture.copy("lost-head");
    let head = {
        let mut head = None;
        with_tree(&lost, |t| {
            head = t.remove(keys::HEAD).unwrap();
        });
        head.unwrap()
    };
    assert_refused(&lost, &["position 0", "6000"]);
    // Nothing was set aside or rewritten: with its head back, the store is whole.
    with_tree(&lost, |t| {
        t.insert(keys::HEAD, head).unwrap();
    });
    let verify = carelog(&lost, &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert!(
        stdout(&verify).contains(&format!("intact: {EVENTS} events")),
        "{}",
        stdout(&verify)
    );

    // The head rewritten to an earlier commit's: the events after it are acknowledged history.
    let older = fixture.copy("older-head");
    let earlier = {
        let scratch = fixture.root.join("scratch");
        let log = Log::open(&scratch, OpenOptions::default()).unwrap();
        log.append(AppendBatch::new((1..=1_000).map(event).collect()))
            .unwrap();
        drop(log);
        let db = open_sled(&scratch);
        db.open_tree(LOG_TREE)
            .unwrap()
            .get(keys::HEAD)
            .unwrap()
            .unwrap()
            .to_vec()
    };
    with_tree(&older, |t| {
        t.insert(keys::HEAD, earlier).unwrap();
    });
    assert_refused(&older, &["position 1000", "6000"]);
}

#[test]
fn a_changed_header_or_a_lost_file_beside_sled_is_refused() {
    let fixture = Fixture::new();
    let header = fixture.copy("header");
    with_tree(&header, |t| {
        let mut bytes = t.get(keys::HEADER).unwrap().unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        t.insert(keys::HEADER, bytes).unwrap();
    });
    assert_refused(&header, &["header", "anchor"]);

    let no_anchor = fixture.copy("no-anchor");
    std::fs::remove_file(no_anchor.join("anchor")).unwrap();
    assert_refused(&no_anchor, &["anchor", "missing"]);

    // The journal holds what sled may not have flushed: without it, acknowledged events could
    // be gone with no trace, so the store is refused.
    let no_journal = fixture.copy("no-journal");
    std::fs::remove_file(no_journal.join("journal")).unwrap();
    assert_refused(&no_journal, &["journal", "missing"]);
    // A crash between moving a journal aside and making the next leaves the moved one: that
    // store opens (its set-aside journal then holds appends until a person has looked).
    let moved = fixture.copy("journal-moved-aside");
    std::fs::rename(
        moved.join("journal"),
        moved.join("journal.unapplied-1700000000000000000"),
    )
    .unwrap();
    let verify = carelog(&moved, &["verify"]);
    assert!(
        !stderr(&verify).contains("is missing"),
        "a moved-aside journal is not a lost one: {}",
        stderr(&verify)
    );

    // sled's files gone, the journal and the anchor still there: never a new log.
    let no_sled = fixture.copy("no-sled");
    for entry in std::fs::read_dir(&no_sled).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name != "journal" && name != "anchor" {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    assert_refused(&no_sled, &["db", "missing"]);
}

#[test]
fn a_cut_or_damaged_sled_file_is_damage_never_a_panic_or_a_shorter_log() {
    let fixture = Fixture::new();
    let db_bytes = std::fs::metadata(fixture.pristine.join("db"))
        .unwrap()
        .len();
    for percent in [0u64, 10, 50, 75, 80, 85, 90] {
        let dir = fixture.copy(&format!("cut-{percent}"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("db"))
            .unwrap();
        file.set_len(db_bytes * percent / 100).unwrap();
        drop(file);
        let verify = carelog(&dir, &["verify"]);
        let said = stderr(&verify);
        assert_eq!(verify.status.code(), Some(1), "cut to {percent}%: {said}");
        assert!(
            said.contains("damaged") || said.contains("corrupt"),
            "{said}"
        );
        assert!(said.contains("db") || said.contains("anchor"), "{said}");
        let export = carelog(&dir, &["export"]);
        assert_ne!(export.status.code(), Some(101), "{}", stderr(&export));
        assert_ne!(
            export.status.code(),
            Some(0),
            "cut to {percent}%: export of a cut store"
        );
    }
    // Flipped bytes anywhere in sled's file: either the same whole log, or damage; never a
    // panic, never fewer events.
    let mut rng = SplitMix64(17);
    for trial in 0..12 {
        let dir = fixture.copy(&format!("flip-{trial}"));
        let mut bytes = std::fs::read(dir.join("db")).unwrap();
        for _ in 0..4 {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 0x5a;
        }
        std::fs::write(dir.join("db"), &bytes).unwrap();
        let verify = carelog(&dir, &["verify"]);
        let code = verify.status.code();
        assert!(
            matches!(code, Some(0) | Some(1)),
            "trial {trial}: exit {code:?}: {}",
            stderr(&verify)
        );
        if code == Some(0) {
            assert!(
                stdout(&verify).contains(&format!("intact: {EVENTS} events")),
                "trial {trial}: {}",
                stdout(&verify)
            );
        }
    }
}

#[test]
fn a_url_of_another_kind_of_store_is_refused_never_made_a_directory() {
    let root = tempfile::tempdir().unwrap();
    for url in ["mysql://root@localhost/test", "s3://bucket/carelog"] {
        let out = Command::new(env!("CARGO_BIN_EXE_carelog"))
            .current_dir(root.path())
            .args(["--data", url, "append", "-"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let scheme = url.split("://").next().unwrap();
        assert!(
            stderr(&out).contains(&format!("`{scheme}://`")),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "no directory made"
    );
}
