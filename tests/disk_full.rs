//! A full disk, for real: the store on a small tmpfs filled to ENOSPC by a filler file. The
//! CLI and `carelog serve` name the full disk (never "corrupt"), refuse the batch whole (exit 2;
//! HTTP 507, `/healthz` 503), and once the filler is deleted the next append succeeds without a
//! restart, with every acknowledged event present and `carelog verify` intact.
//!
//! Needs root (to mount): CI runs as root here, so a failed mount fails the test, never skips it.

mod http_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::Value;

use http_support::*;

/// A tmpfs of `size` mounted on a new temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with `filler` until a write fails with ENOSPC.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).expect("create the filler");
        let block = vec![0xa5u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // The last partial pages too.
        let small = [0xa5u8; 512];
        while f.write(&small).is_ok_and(|n| n > 0) {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

fn run(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run carelog");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for carelog")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn digest(data: &Path) -> String {
    cli(data, &["digest"])
}

/// Eight contacts whose summaries take 4 KB each (the most a summary may): the journal's and
/// sled's room on the full disk runs out within a few dozen posts.
fn big_batch(pairing: uuid::Uuid) -> Value {
    Value::Array(
        (0..8)
            .map(|_| {
                let mut event = contact(pairing);
                event["data"]["summary"] = Value::String("冬季送煤".repeat(4000 / 12));
                event
            })
            .collect(),
    )
}

fn ack_ids(body: &Value) -> Vec<String> {
    body["acks"]
        .as_array()
        .expect("acks")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect()
}

fn assert_names_disk_full(text: &str) {
    assert!(text.contains("disk holding"), "{text}");
    assert!(text.contains("is full"), "{text}");
    assert!(text.contains("Free space"), "{text}");
    assert!(!text.contains("corrupt"), "{text}");
    assert!(!text.contains("restore"), "{text}");
}

/// The programme imported into a store on `fs`, and an admin token.
fn programme_store(fs: &Tmpfs, outside: &Path) -> (PathBuf, Programme, String) {
    let data = fs.path().join("store");
    let p = Programme::new();
    let file = outside.join("programme.jsonl");
    let mut f = std::fs::File::create(&file).expect("create");
    for e in p.events() {
        writeln!(f, "{e}").expect("write");
    }
    drop(f);
    cli(&data, &["import", file.to_str().expect("utf-8 path")]);
    let admin = cli(&data, &["token", "create", "--role", "admin"]);
    (data, p, admin)
}

#[test]
fn the_cli_on_a_full_disk_names_it_and_changes_nothing_then_appends_once_space_returns() {
    let fs = Tmpfs::mount("8m");
    let outside = tempfile::tempdir().expect("tempdir");
    let (data, p, _) = programme_store(&fs, outside.path());
    let before = digest(&data);
    let filler = fs.fill();

    let line = contact(p.pairing_a).to_string();
    let o = run(&data, &["append"], Some(&line));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_names_disk_full(&stderr(&o));

    // Opening the store to read it also says the disk is full, not that the store is corrupt.
    let o = run(&data, &["verify"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_names_disk_full(&stderr(&o));
    let entries: Vec<String> = std::fs::read_dir(&data)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !entries.iter().any(|n| n.contains("set-aside")),
        "nothing set aside on a full disk: {entries:?}"
    );

    std::fs::remove_file(&filler).expect("remove the filler");
    assert_eq!(digest(&data), before, "the refused append left no trace");
    assert!(cli(&data, &["verify"]).starts_with("intact"));
    let o = run(&data, &["append"], Some(&line));
    assert!(o.status.success(), "{}", stderr(&o));
    let ack: Value = serde_json::from_slice(&o.stdout).expect("an ack line");
    let head: u64 = before
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .expect("digest head");
    assert_eq!(ack["position"].as_u64(), Some(head + 1), "{ack}");
    assert!(cli(&data, &["verify"]).starts_with("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_full_disk_answers_507_and_healthz_503_then_recovers_without_a_restart() {
    let fs = Tmpfs::mount("8m");
    let outside = tempfile::tempdir().expect("tempdir");
    let (data, p, admin) = programme_store(&fs, outside.path());
    let server = Server::start(&data, &outside.path().join("server.log"));
    let head_before = server.head(&admin).await;

    // One acknowledged append with space, so the store has work since its open.
    let (status, body) = server
        .post("/v1/events", &admin, &contact(p.pairing_a))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut acknowledged = vec![body["acks"][0]["id"].as_str().expect("id").to_string()];

    let filler = fs.fill();
    // Appends go on until the disk refuses one (the journal's zero-filled room may take a few
    // first: those are durable, and acknowledged).
    let mut refused = None;
    for _ in 0..400 {
        let event = big_batch(p.pairing_a);
        let (status, body) = server.post("/v1/events", &admin, &event).await;
        match status {
            StatusCode::CREATED => acknowledged.extend(ack_ids(&body)),
            StatusCode::INSUFFICIENT_STORAGE => {
                refused = Some((event, body));
                break;
            }
            other => panic!("unexpected {other}: {body}\n{}", server.log_text()),
        }
        // Room for sled's background flush (every 500 ms) to meet the full disk.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (refused_event, body) = refused.unwrap_or_else(|| {
        panic!(
            "no append was refused on a full disk\n{}",
            server.log_text()
        )
    });
    let (_, rule) = error_of(&body);
    assert_eq!(rule, "disk_full", "{body}");
    assert_names_disk_full(body["error"]["message"].as_str().unwrap_or_default());
    let (status, health) = server.get("/healthz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "disk full: appends refused", "{health}");
    // Still full: still refused, named the same way.
    let (status, body) = server.post("/v1/events", &admin, &refused_event).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    let head_full = server.head(&admin).await;
    assert_eq!(head_full, head_before + acknowledged.len() as u64);

    std::fs::remove_file(&filler).expect("remove the filler");
    let (status, body) = server.post("/v1/events", &admin, &refused_event).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "after space returned: {body}\n{}",
        server.log_text()
    );
    acknowledged.extend(ack_ids(&body));
    assert_eq!(
        body["acks"][0]["position"].as_u64(),
        Some(head_full + 1),
        "the refused attempts took no position"
    );
    let (status, health) = server.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok");
    let (status, body) = server
        .post("/v1/events", &admin, &contact(p.pairing_b))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    acknowledged.push(body["acks"][0]["id"].as_str().expect("id").to_string());
    let head_after = server.head(&admin).await;
    assert_eq!(head_after, head_full + 9);
    drop(server);

    // After the server stops: intact, every acknowledged event there, nothing else.
    assert!(cli(&data, &["verify"]).starts_with("intact"));
    let export = cli(&data, &["export"]);
    let ids: Vec<String> = export
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("export line");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    assert_eq!(ids.len() as u64, head_after);
    for id in &acknowledged {
        assert!(ids.contains(id), "acknowledged {id} is missing");
    }
}

fn big_event(stream: &str) -> carelog::log::NewEvent {
    carelog::log::NewEvent::new(
        stream,
        "test.noted",
        1,
        carelog::time::parse_instant("2023-05-01T09:30:00+08:00").expect("time"),
        "tester",
        vec![0x5a; 8 * 1024],
    )
}

/// The log itself, with the default journal and with the smallest one (full after a few
/// commits, so that the disk's refusal also meets sled's flush and the journal's renewal):
/// batches submitted together while the disk is full are all refused, the log's head stays,
/// and once space returns the next batch is written right after the last acknowledged one.
#[test]
fn the_log_refuses_every_batch_on_a_full_disk_and_goes_on_from_its_durable_head() {
    use carelog::log::{AppendBatch, Log, OpenOptions, WriteHealth, journal};
    for journal_max_bytes in [journal::JOURNAL_MAX_BYTES, journal::JOURNAL_MIN_BYTES] {
        let fs = Tmpfs::mount("8m");
        let log = Log::open(
            fs.path().join("store"),
            OpenOptions {
                journal_max_bytes,
                ..OpenOptions::default()
            },
        )
        .expect("open");
        let mut acknowledged = Vec::new();
        for _ in 0..3 {
            let e = big_event("s-1");
            acknowledged.push(e.event_id);
            log.append(AppendBatch::new(vec![e]))
                .expect("append with space");
        }
        let filler = fs.fill();
        let mut refusals = 0;
        for _ in 0..2000 {
            // Four batches in the queue at once: whatever the grouping, none is answered Ok
            // once one was refused.
            let pending: Vec<_> = (0..4)
                .map(|_| {
                    let e = big_event("s-1");
                    let id = e.event_id;
                    (id, log.submit(AppendBatch::new(vec![e])).expect("submit"))
                })
                .collect();
            for (id, p) in pending {
                match p.wait() {
                    Ok(_) if refusals == 0 => acknowledged.push(id),
                    Ok(_) => panic!("a batch queued behind a refused one was written"),
                    Err(e) => {
                        assert!(e.is_disk_full(), "{e}");
                        assert_names_disk_full(&e.to_string());
                        refusals += 1;
                    }
                }
            }
            if refusals > 0 {
                break;
            }
        }
        assert!(refusals > 0, "the full disk never refused a batch");
        assert!(matches!(log.write_health(), WriteHealth::DiskFull { .. }));
        let head = log.head_position();
        assert_eq!(head, acknowledged.len() as u64);
        // Still full: refused again (a recovery is tried and fails), nothing changes.
        let e = log
            .append(AppendBatch::new(vec![big_event("s-1")]))
            .expect_err("still full");
        assert!(e.is_disk_full(), "{e}");
        assert_eq!(log.head_position(), head);

        std::fs::remove_file(&filler).expect("remove the filler");
        let next = big_event("s-1");
        let acks = log
            .append(AppendBatch::new(vec![next.clone()]))
            .expect("appends go on once space returns");
        assert_eq!(acks[0].position, head + 1);
        assert_eq!(acks[0].stream_version, head + 1, "versions dense too");
        acknowledged.push(next.event_id);
        assert_eq!(log.write_health(), WriteHealth::Ok);
        for _ in 0..3 {
            let e = big_event("s-1");
            acknowledged.push(e.event_id);
            log.append(AppendBatch::new(vec![e]))
                .expect("append after recovery");
        }
        let report = log.verify(true, None, &mut |_| {}).expect("verify");
        assert!(report.intact, "{:?}", report.problem);
        drop(log);
        // Reopened: every acknowledged event, in order, and nothing else.
        let log = Log::open(fs.path().join("store"), OpenOptions::default()).expect("reopen");
        let ids: Vec<uuid::Uuid> = log
            .stored_events(1, u64::MAX)
            .map(|e| uuid::Uuid::from_bytes(e.expect("event").event_id))
            .collect();
        assert_eq!(ids, acknowledged, "journal bound {journal_max_bytes}");
        assert!(log.verify(true, None, &mut |_| {}).expect("verify").intact);
    }
}
