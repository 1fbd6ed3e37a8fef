//! kill -9 durability: a child process (this test binary, re-executed) appends from several
//! threads and prints an `ACK <event id> <position>` line for each event once `append` returned;
//! the parent kills it with SIGKILL at a random moment, reopens the store and checks that every
//! acknowledged event is there at its acknowledged position, that positions are dense and that
//! the log verifies. Then the next round appends to the same store.
//!
//! `CARELOG_CRASH_ROUNDS` sets the number of rounds (default 30), `CARELOG_CRASH_SEED` the seed
//! (printed on every run).

#![cfg(unix)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use carelog::log::{
    AppendBatch, Digest, ExpectedVersion, Log, LogError, NewEvent, OpenOptions, StorageError,
    VerifyReport,
};
use carelog::rng::SplitMix64;
use carelog::time::parse_instant;
use uuid::Uuid;

const CHILD_ENV: &str = "CARELOG_CRASH_CHILD";
const CHILD_SEED_ENV: &str = "CARELOG_CRASH_CHILD_SEED";
/// The commit journal's size in the child: every other round a small one, so that kills also
/// land while the journal is full and sled is being flushed to start it over.
const CHILD_JOURNAL_BYTES_ENV: &str = "CARELOG_CRASH_CHILD_JOURNAL_BYTES";
const SMALL_JOURNAL_BYTES: u64 = 48 * 1024;
const CHILD_THREADS: u64 = 6;
const SHARED_STREAMS: u64 = 5;
/// The stream only thread 0 writes, with exact expected versions: its version must survive.
const SOLO_STREAM: &str = "crash-solo";
/// Each child thread sleeps up to this long between appends.
const PACE_MS: u64 = 30;

fn event(stream: String, rng: &mut SplitMix64) -> NewEvent {
    let len = rng.below(301) as usize;
    let payload = (0..len).map(|_| rng.next_u64() as u8).collect();
    NewEvent::new(
        stream,
        "test.crash",
        1,
        parse_instant("2023-05-01T09:30:00+08:00").unwrap(),
        "crash-child",
        payload,
    )
}

/// Writes lines to stdout in one go and flushes, or ends the process when stdout is gone.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(4);
    }
}

/// Reports an unexpected error of the child and ends it (the parent fails on the ERR line).
fn fail(what: &str, e: &LogError) -> ! {
    say(&format!("\nERR {what}: {e:?}\n"));
    std::process::exit(3);
}

/// One appending thread of the child: forever, single events or batches of 1..=50 events
/// over several streams; thread 0 also keeps the solo stream with exact expected versions.
fn append_forever(log: Log, thread: u64, seed: u64) -> ! {
    let mut rng = SplitMix64(seed ^ thread.wrapping_mul(0xA076_1D64_78BD_642F));
    let mut solo_version = match log.stream_version(SOLO_STREAM) {
        Ok(v) => v,
        Err(e) => fail("reading the solo stream's version", &e),
    };
    loop {
        let solo = thread == 0 && rng.below(3) == 0;
        let batch = if solo {
            let n = 1 + rng.below(5);
            let events = (0..n)
                .map(|_| event(SOLO_STREAM.to_string(), &mut rng))
                .collect();
            AppendBatch::new(events).expecting(SOLO_STREAM, ExpectedVersion::Exact(solo_version))
        } else {
            let n = if rng.below(4) > 0 {
                1
            } else {
                1 + rng.below(50)
            };
            let events = (0..n)
                .map(|_| {
                    let s = rng.below(SHARED_STREAMS);
                    event(format!("crash-{s}"), &mut rng)
                })
                .collect();
            AppendBatch::new(events)
        };
        let acks = match log.append(batch) {
            Ok(acks) => acks,
            Err(e) => fail("append", &e),
        };
        let mut lines = String::new();
        for a in &acks {
            if a.duplicate {
                say(&format!(
                    "\nERR a fresh id was answered as a duplicate: {a:?}\n"
                ));
                std::process::exit(3);
            }
            lines.push_str(&format!("ACK {} {}\n", a.event_id, a.position));
        }
        if solo {
            solo_version = acks.last().map_or(solo_version, |a| a.stream_version);
        }
        say(&lines);
        // Paced, so that the store (which every round verifies whole) grows by hundreds of
        // events a round, not thousands; the threads still overlap in the writer's queue.
        std::thread::sleep(std::time::Duration::from_millis(rng.below(PACE_MS + 1)));
    }
}

/// Run by the parent test in a child process; does nothing otherwise.
#[test]
fn child_entry() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let journal_max_bytes = std::env::var(CHILD_JOURNAL_BYTES_ENV)
        .ok()
        .and_then(|s| s.parse().ok());
    let options = move || {
        let mut options = OpenOptions::default();
        if let Some(bytes) = journal_max_bytes {
            options.journal_max_bytes = bytes;
        }
        options
    };
    let log = open_retrying_locked(Path::new(&dir), options).unwrap_or_else(|e| fail("open", &e));
    // On a line of its own: the test harness may have left its "test child_entry ... " unended.
    say(&format!("\nOPENED {}\n", log.head_position()));
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || append_forever(log, t, seed))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// Opens the store, retrying a `Locked` error for a while: sled 0.34.7 may hold the store's
/// lock for some milliseconds after the last handle in a process is dropped (its background
/// writes finish on their own threads), so the child may find the store still locked by the
/// parent's check that just ended; and the killed child's lock goes only once the kernel has
/// cleaned up after it.
fn open_retrying_locked(dir: &Path, options: impl Fn() -> OpenOptions) -> Result<Log, LogError> {
    let start = Instant::now();
    loop {
        match Log::open(dir, options()) {
            Err(LogError::Storage(StorageError::Locked { .. }))
                if start.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn open_existing(dir: &Path) -> Log {
    open_retrying_locked(dir, OpenOptions::existing)
        .unwrap_or_else(|e| panic!("could not reopen the store after the kill: {e:?}"))
}

/// What one round of the child said.
struct Round {
    acks: Vec<(Uuid, u64)>,
    opened_at: Option<u64>,
    stdout_tail: String,
    stderr: String,
}

/// Spawns the child, lets it append for a random while, kills it with SIGKILL and collects what
/// it acknowledged.
fn run_child(dir: &Path, rng: &mut SplitMix64, round: u64) -> Round {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(CHILD_SEED_ENV, rng.next_u64().to_string())
        .env(
            CHILD_JOURNAL_BYTES_ENV,
            if round.is_multiple_of(2) {
                SMALL_JOURNAL_BYTES
            } else {
                carelog::log::journal::JOURNAL_MAX_BYTES
            }
            .to_string(),
        )
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline: it was never fully said.
                Ok(_) if buf.last() != Some(&b'\n') => break,
                Ok(_) => {
                    if lines_tx
                        .send(String::from_utf8_lossy(&buf).into_owned())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut lines = Vec::new();
    // Most rounds kill while appending (the clock starts once the store is open); every sixth
    // round kills at a random early moment, possibly while sled is still opening the store.
    let early_kill = round % 6 == 5;
    if early_kill {
        std::thread::sleep(Duration::from_millis(rng.below(41)));
    } else {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    let opened = line.starts_with("OPENED");
                    lines.push(line);
                    if opened {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let tail: Vec<&String> = lines.iter().rev().take(5).collect();
                    panic!(
                        "round {round}: the child did not open the store within 60 s: {tail:?}\n{}",
                        err_reader.join().unwrap()
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(281)));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(lines_rx.try_iter());
    let stderr = err_reader.join().unwrap();
    let stdout_tail = lines[lines.len().saturating_sub(5)..].concat();
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: the child ended before the kill ({status:?})\n{stdout_tail}\n{stderr}",
    );

    let mut round_out = Round {
        acks: Vec::new(),
        opened_at: None,
        stdout_tail,
        stderr,
    };
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ACK", id, position] => round_out
                .acks
                .push((Uuid::parse_str(id).unwrap(), position.parse().unwrap())),
            ["OPENED", head] => round_out.opened_at = Some(head.parse().unwrap()),
            ["ERR", ..] => panic!(
                "round {round}: the child failed: {line}\n{}",
                round_out.stderr
            ),
            _ => {}
        }
    }
    round_out
}

/// Every event of the store, read in pages through `read_from`, as ids by position.
fn all_ids(log: &Log) -> Vec<Uuid> {
    let head = log.head_position();
    let mut ids = Vec::with_capacity(head as usize);
    while (ids.len() as u64) < head {
        let from = ids.len() as u64 + 1;
        let page = log.read_from(from, 20_000).unwrap();
        assert!(
            !page.is_empty(),
            "read_from({from}) is empty below the head {head}"
        );
        for (i, e) in page.iter().enumerate() {
            assert_eq!(e.position, from + i as u64, "positions are dense");
            ids.push(e.event_id);
        }
    }
    assert_eq!(ids.len() as u64, head);
    assert!(log.read_from(head + 1, 10).unwrap().is_empty());
    ids
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let rounds: u64 = std::env::var("CARELOG_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("CARELOG_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill -9 test: {rounds} rounds, seed {seed} (rerun with CARELOG_CRASH_SEED={seed})");
    let mut rng = SplitMix64(seed);
    let dir = tempfile::tempdir().unwrap();
    // Create the store first, so that every round's child opens an existing one.
    drop(Log::open(dir.path(), OpenOptions::default()).unwrap());

    let mut acked: HashMap<Uuid, u64> = HashMap::new();
    let mut previous_digest: Option<Digest> = None;
    let mut rounds_with_acks = 0;
    let mut rounds_with_a_discarded_tail = 0;
    let mut rounds_with_a_journal_replay = 0;
    for round in 0..rounds {
        let out = run_child(dir.path(), &mut rng, round);
        let context = || {
            format!(
                "round {round} (seed {seed}); the child's last lines:\n{}\n{}",
                out.stdout_tail, out.stderr
            )
        };
        let log = open_existing(dir.path());
        let head = log.head_position();
        if let Some(tail) = log.open_report().tail_set_aside {
            // A commit cut between its segments and its head: never acknowledged.
            rounds_with_a_discarded_tail += 1;
            assert_eq!(tail.from_position, head + 1, "{tail:?}: {}", context());
            assert!(tail.continues_head, "{tail:?}: {}", context());
            assert!(
                out.acks.iter().all(|a| a.1 <= head),
                "an acknowledged event was past the head: {}",
                context()
            );
        }
        if let Some(replay) = log.open_report().replayed {
            // What the journal held past sled's own head: it ends at the head.
            rounds_with_a_journal_replay += 1;
            assert_eq!(replay.to_position, head, "{replay:?}: {}", context());
            assert!(
                replay.commits >= 1 && replay.from_position <= replay.to_position,
                "{replay:?}: {}",
                context()
            );
        }
        if let Some(opened) = out.opened_at {
            assert!(
                opened <= head,
                "the head went back from {opened} to {head}: {}",
                context()
            );
        }
        if !out.acks.is_empty() {
            rounds_with_acks += 1;
        }
        for &(id, position) in &out.acks {
            assert!(
                acked.insert(id, position).is_none(),
                "the child acknowledged {id} twice: {}",
                context()
            );
        }

        // Positions 1..=head are all there, and every acknowledged event is at its position.
        let ids = all_ids(&log);
        let unique: HashSet<&Uuid> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "an id is stored twice: {}",
            context()
        );
        for (&id, &position) in &acked {
            assert!(
                position >= 1 && position <= head,
                "acknowledged {id} at {position} is past the head {head} after the kill: {}",
                context()
            );
            assert_eq!(
                ids[(position - 1) as usize],
                id,
                "acknowledged position {position} holds another event: {}",
                context()
            );
            assert_eq!(
                log.position_of(id).unwrap(),
                Some(position),
                "{}",
                context()
            );
        }
        // A sample of this round's acks, each read on its own.
        for &(id, position) in out.acks.iter().step_by(out.acks.len() / 50 + 1) {
            let e = log.event_at(position).unwrap().unwrap_or_else(|| {
                panic!(
                    "acknowledged position {position} is not readable: {}",
                    context()
                )
            });
            assert_eq!((e.event_id, e.position), (id, position), "{}", context());
        }

        let report: VerifyReport = log.verify(true, None, &mut |_| {}).unwrap();
        assert!(report.intact, "after the kill: {report:?}: {}", context());
        assert_eq!(report.events_checked, head);
        // Everything durable before this round is still exactly there (append-only).
        if let Some(d) = &previous_digest
            && d.position > 0
        {
            // The chain, just verified whole, still passes through the previous round's head.
            let e = log.event_at(d.position).unwrap().unwrap();
            assert_eq!(
                hex::encode(e.chain_hash),
                d.chain_hash,
                "the log was rewritten since {d:?}: {}",
                context()
            );
        }
        previous_digest = Some(log.digest());
        eprintln!(
            "round {round}: {} acks (last at {:?}), head {head}, opened at {:?}",
            out.acks.len(),
            out.acks.iter().map(|a| a.1).max(),
            out.opened_at
        );
    }
    eprintln!(
        "{rounds_with_a_discarded_tail} of {rounds} rounds left a commit cut before its head; \
         {rounds_with_a_journal_replay} replayed commits from the journal"
    );
    // sled is flushed only when the journal is full or at a clean close, so a kill while
    // appending leaves acknowledged commits that only the journal holds: the replay must run.
    assert!(
        rounds_with_a_journal_replay * 2 >= rounds_with_acks,
        "only {rounds_with_a_journal_replay} of {rounds_with_acks} rounds with acks replayed the journal"
    );
    // The test means something only if the children did acknowledge appends.
    assert!(
        rounds_with_acks * 2 >= rounds,
        "only {rounds_with_acks} of {rounds} rounds acknowledged anything"
    );
    assert!(
        acked.len() as u64 >= rounds * 10,
        "only {} acks in all",
        acked.len()
    );
}
