//! The side-by-side comparison (issue 7): the same work on carelog and on the peer a user would
//! otherwise pick, SQLite (bundled, WAL, synchronous=FULL), given its best design:
//!
//! - an `events` table with the same envelope fields, the position as the rowid, a unique
//!   (stream, version) index and a unique id index; prepared statements;
//! - the same group commit: one writer thread takes appends from a bounded channel (the same
//!   capacity), gathers what is queued (up to the same number of events) into one transaction,
//!   commits it (SQLite's fsync) and only then answers each caller;
//! - the same hash chain computed per event (leaf and chain SHA-256 over the same canonical bytes)
//!   and the same stream versions, kept in memory as carelog keeps them;
//! - the same events (one generator, the same seeds), the same batch sizes;
//! - the same projections folded over a full scan: the payload bytes decoded by carelog's codec
//!   and fed to the same `AnyProjection`s, as carelog's engine does.
//!
//! `cargo bench --bench peers` (10 M events for as-of and rebuild, longer append runs) or
//! `cargo bench --bench peers -- --quick` (1 M events, under five minutes on two cores).
//! `CARELOG_BENCH_EVENTS` overrides the long log's size. Prints a table, then as its last line
//! one JSON object; each `*_vs_sqlite` is carelog's throughput divided by SQLite's (above 1:
//! carelog is faster).
//!
//! Rebuilds run in a child process (this binary with `--child`), so that the peak resident
//! memory read from /proc is the rebuild's own.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as WallClock};

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use carelog::codec::{self, StoredEventV1, StoredTime};
use carelog::domain::{Date, DomainEvent};
use carelog::log::{AppendBatch, Log, MAX_COMMIT_EVENTS, NewEvent, OpenOptions, QUEUE_CAPACITY};
use carelog::log::{Pending, hash};
use carelog::projection::book::BOOK_VERSION;
use carelog::projection::checkpoint::{BOOK_NAME, Checkpoints};
use carelog::projection::{
    AnyProjection, AsOf, EventView, PairingBook, Projection, Query, Registered, Source, Timeline,
    replay,
};
use carelog::time::{self, Clock, SystemClock};

use common::{Generator, Rng, percentile, proc_status_kib};

// ---- the SQLite peer --------------------------------------------------------------------------

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY,
    event_id        BLOB    NOT NULL,
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    occurred_s      INTEGER NOT NULL,
    occurred_ns     INTEGER NOT NULL,
    occurred_offset INTEGER NOT NULL,
    recorded_s      INTEGER NOT NULL,
    recorded_ns     INTEGER NOT NULL,
    recorded_offset INTEGER NOT NULL,
    recorded_by     TEXT    NOT NULL,
    correlation_id  BLOB,
    causation_id    BLOB,
    payload         BLOB    NOT NULL,
    leaf_hash       BLOB    NOT NULL,
    chain_hash      BLOB    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (stream, stream_version);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (event_id);
";

/// Opens a connection with the peer's settings: WAL, synchronous=FULL (every commit fsynced
/// before it returns), a 64 MiB page cache (sled's cache in carelog is 64 MiB too).
fn sqlite_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open sqlite");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("wal");
    assert_eq!(mode.to_lowercase(), "wal");
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;")
        .expect("pragmas");
    conn.execute_batch(SCHEMA).expect("schema");
    conn
}

struct PeerRequest {
    events: Vec<NewEvent>,
    reply: SyncSender<Result<Vec<u64>, String>>,
}

/// The SQLite event store: one writer thread with group commit, like carelog's.
struct Peer {
    sender: Option<SyncSender<PeerRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    fn open(path: &Path) -> Peer {
        let conn = sqlite_open(path);
        let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || PeerWriter::load(conn).run(receiver))
            .expect("spawn");
        Peer {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    fn submit(&self, events: Vec<NewEvent>) -> Receiver<Result<Vec<u64>, String>> {
        let (reply, answer) = sync_channel(1);
        self.sender
            .as_ref()
            .expect("open")
            .send(PeerRequest { events, reply })
            .expect("writer alive");
        answer
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct PeerWriter {
    conn: Connection,
    position: u64,
    chain: [u8; 32],
    streams: HashMap<String, u64>,
    last_recorded: Option<time::Instant>,
    clock: SystemClock,
}

impl PeerWriter {
    /// The head and the stream versions, from the table.
    fn load(conn: Connection) -> PeerWriter {
        let head: Option<(i64, Vec<u8>, i64, i64, i64)> = conn
            .query_row(
                "SELECT position, chain_hash, recorded_s, recorded_ns, recorded_offset FROM events ORDER BY position DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .expect("head");
        let mut streams = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT stream, MAX(stream_version) FROM events GROUP BY stream")
                .expect("prepare");
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .expect("streams");
            for row in rows {
                let (s, v) = row.expect("row");
                streams.insert(s, v as u64);
            }
        }
        let (position, chain, last_recorded) = match head {
            None => (0, hash::GENESIS_CHAIN, None),
            Some((p, c, s, ns, off)) => (
                p as u64,
                c.try_into().expect("32 bytes"),
                Some(
                    time::from_stored(&StoredTime {
                        unix_seconds: s,
                        nanos: ns as u32,
                        offset_seconds: off as i32,
                    })
                    .expect("time"),
                ),
            ),
        };
        PeerWriter {
            conn,
            position,
            chain,
            streams,
            last_recorded,
            clock: SystemClock,
        }
    }

    fn run(mut self, receiver: Receiver<PeerRequest>) {
        while let Ok(first) = receiver.recv() {
            let mut group = vec![first];
            let mut events = group[0].events.len();
            while events < MAX_COMMIT_EVENTS {
                match receiver.try_recv() {
                    Ok(next) => {
                        events += next.events.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            let saved = (self.position, self.chain, self.last_recorded);
            let mut touched: Vec<(String, Option<u64>)> = Vec::new();
            match self.commit(&group, &mut touched) {
                Ok(answers) => {
                    for (request, positions) in group.into_iter().zip(answers) {
                        let _ = request.reply.send(Ok(positions));
                    }
                }
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    (self.position, self.chain, self.last_recorded) = saved;
                    for (stream, previous) in touched.into_iter().rev() {
                        match previous {
                            Some(v) => self.streams.insert(stream, v),
                            None => self.streams.remove(&stream),
                        };
                    }
                    for request in group {
                        let _ = request.reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }

    /// One transaction for the whole group; COMMIT returns once the WAL is fsynced.
    fn commit(
        &mut self,
        group: &[PeerRequest],
        touched: &mut Vec<(String, Option<u64>)>,
    ) -> rusqlite::Result<Vec<Vec<u64>>> {
        let now = self.clock.now();
        self.conn.execute_batch("BEGIN")?;
        let mut answers = Vec::with_capacity(group.len());
        {
            let mut insert = self.conn.prepare_cached(
                "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?;
            for request in group {
                let mut positions = Vec::with_capacity(request.events.len());
                for e in &request.events {
                    let previous = self.streams.get(&e.stream).copied();
                    let version = previous.unwrap_or(0) + 1;
                    let position = self.position + 1;
                    let recorded_at = self.last_recorded.map_or(now, |last| last.max(now));
                    let mut stored = StoredEventV1 {
                        position,
                        event_id: *e.event_id.as_bytes(),
                        stream: e.stream.clone(),
                        stream_version: version,
                        event_type: e.event_type.clone(),
                        schema_version: e.schema_version,
                        occurred_at: time::to_stored(&e.occurred_at),
                        recorded_at: time::to_stored(&recorded_at),
                        recorded_by: e.recorded_by.clone(),
                        correlation_id: e.correlation_id.map(|u| *u.as_bytes()),
                        causation_id: e.causation_id.map(|u| *u.as_bytes()),
                        payload: e.payload.clone(),
                        leaf_hash: [0; 32],
                        chain_hash: [0; 32],
                    };
                    stored.leaf_hash = hash::leaf(&stored.canonical_bytes().expect("canonical"));
                    stored.chain_hash = hash::chain(&self.chain, &stored.leaf_hash);
                    insert.execute(params![
                        position as i64,
                        &stored.event_id[..],
                        stored.stream,
                        version as i64,
                        stored.event_type,
                        i64::from(stored.schema_version),
                        stored.occurred_at.unix_seconds,
                        i64::from(stored.occurred_at.nanos),
                        i64::from(stored.occurred_at.offset_seconds),
                        stored.recorded_at.unix_seconds,
                        i64::from(stored.recorded_at.nanos),
                        i64::from(stored.recorded_at.offset_seconds),
                        stored.recorded_by,
                        stored.correlation_id.as_ref().map(|b| &b[..]),
                        stored.causation_id.as_ref().map(|b| &b[..]),
                        stored.payload,
                        &stored.leaf_hash[..],
                        &stored.chain_hash[..],
                    ])?;
                    touched.push((e.stream.clone(), previous));
                    self.streams.insert(e.stream.clone(), version);
                    self.position = position;
                    self.chain = stored.chain_hash;
                    self.last_recorded = Some(recorded_at);
                    positions.push(position);
                }
                answers.push(positions);
            }
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(answers)
    }
}

/// Folds every event up to `until` into the projections, scanning the table in position order:
/// what carelog's engine does with its segments (the shared pairing book folded first), payloads
/// decoded by the same codec.
fn sqlite_replay(
    conn: &Connection,
    projections: &[&dyn AnyProjection],
    until: u64,
) -> (Vec<Box<dyn std::any::Any + Send>>, PairingBook, u64) {
    let mut states: Vec<_> = projections.iter().map(|p| p.new_state()).collect();
    let mut book = PairingBook::default();
    let mut stmt = conn
        .prepare_cached(
            "SELECT position, event_id, event_type, schema_version, occurred_s, occurred_ns, occurred_offset, \
             recorded_s, recorded_ns, recorded_offset, recorded_by, payload \
             FROM events WHERE position <= ?1 ORDER BY position",
        )
        .expect("prepare");
    let mut rows = stmt.query([until as i64]).expect("query");
    let mut n = 0u64;
    while let Some(row) = rows.next().expect("row") {
        let position = row.get::<_, i64>(0).expect("position") as u64;
        let id: [u8; 16] = row
            .get_ref(1)
            .and_then(|v| Ok(v.as_blob()?))
            .expect("id")
            .try_into()
            .expect("16 bytes");
        let event_type = row.get_ref(2).expect("type").as_str().expect("text");
        let schema_version = row.get::<_, i64>(3).expect("version") as u16;
        let t = |i: usize| StoredTime {
            unix_seconds: row.get(i).expect("s"),
            nanos: row.get::<_, i64>(i + 1).expect("ns") as u32,
            offset_seconds: row.get::<_, i64>(i + 2).expect("offset") as i32,
        };
        let occurred_at = time::from_stored(&t(4)).expect("time");
        let recorded_at = time::from_stored(&t(7)).expect("time");
        let recorded_by = row.get_ref(10).expect("by").as_str().expect("text");
        let payload = row.get_ref(11).expect("payload").as_blob().expect("blob");
        let event = DomainEvent::decode(event_type, schema_version, payload).expect("decodes");
        book.apply(
            Source {
                id: Uuid::from_bytes(id),
                position,
            },
            &event,
        );
        let view = EventView {
            position,
            event_id: Uuid::from_bytes(id),
            occurred_at: &occurred_at,
            occurred_on: Date(time::shanghai_date(&occurred_at)),
            recorded_at: &recorded_at,
            recorded_by,
            event: &event,
            book: &book,
        };
        for (p, state) in projections.iter().zip(states.iter_mut()) {
            p.apply(state.as_mut(), &view);
        }
        n += 1;
    }
    (states, book, n)
}

/// What carelog's verify checks, done over the table: every leaf and chain hash recomputed from
/// the canonical bytes, positions dense, stream versions dense.
fn sqlite_verify(conn: &Connection) -> u64 {
    let mut stmt = conn
        .prepare("SELECT * FROM events ORDER BY position")
        .expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut chain = hash::GENESIS_CHAIN;
    let mut expected = 1u64;
    let mut versions: HashMap<String, u64> = HashMap::new();
    while let Some(row) = rows.next().expect("row") {
        let blob16 = |i: usize| -> Option<[u8; 16]> {
            row.get::<_, Option<Vec<u8>>>(i)
                .expect("blob")
                .map(|b| b.try_into().expect("16 bytes"))
        };
        let t = |i: usize| StoredTime {
            unix_seconds: row.get(i).expect("s"),
            nanos: row.get::<_, i64>(i + 1).expect("ns") as u32,
            offset_seconds: row.get::<_, i64>(i + 2).expect("offset") as i32,
        };
        let stored = StoredEventV1 {
            position: row.get::<_, i64>(0).expect("p") as u64,
            event_id: blob16(1).expect("id"),
            stream: row.get(2).expect("stream"),
            stream_version: row.get::<_, i64>(3).expect("v") as u64,
            event_type: row.get(4).expect("type"),
            schema_version: row.get::<_, i64>(5).expect("sv") as u16,
            occurred_at: t(6),
            recorded_at: t(9),
            recorded_by: row.get(12).expect("by"),
            correlation_id: blob16(13),
            causation_id: blob16(14),
            payload: row.get(15).expect("payload"),
            leaf_hash: row
                .get::<_, Vec<u8>>(16)
                .expect("leaf")
                .try_into()
                .expect("32"),
            chain_hash: row
                .get::<_, Vec<u8>>(17)
                .expect("chain")
                .try_into()
                .expect("32"),
        };
        assert_eq!(stored.position, expected, "positions dense");
        let leaf = hash::leaf(&stored.canonical_bytes().expect("canonical"));
        assert_eq!(leaf, stored.leaf_hash, "leaf at {expected}");
        chain = hash::chain(&chain, &leaf);
        assert_eq!(chain, stored.chain_hash, "chain at {expected}");
        let v = versions.entry(stored.stream).or_insert(0);
        *v += 1;
        assert_eq!(*v, stored.stream_version, "versions dense");
        expected += 1;
    }
    expected - 1
}

// ---- the same work on both ------------------------------------------------------------------

/// An event store under test: carelog's log or the SQLite peer.
trait Store: Sync {
    type Pending;
    fn submit(&self, events: Vec<NewEvent>) -> Self::Pending;
    fn wait(pending: Self::Pending);
    fn append(&self, events: Vec<NewEvent>) {
        Self::wait(self.submit(events));
    }
}

impl Store for Log {
    type Pending = Pending;
    fn submit(&self, events: Vec<NewEvent>) -> Pending {
        Log::submit(self, AppendBatch::new(events)).expect("submit")
    }
    fn wait(pending: Pending) {
        pending.wait().expect("append");
    }
}

impl Store for Peer {
    type Pending = Receiver<Result<Vec<u64>, String>>;
    fn submit(&self, events: Vec<NewEvent>) -> Self::Pending {
        Peer::submit(self, events)
    }
    fn wait(pending: Self::Pending) {
        pending.recv().expect("writer alive").expect("append");
    }
}

/// Events per batch of the bulk load (the big-batch figure), with a few batches in flight.
const BULK_BATCH_EVENTS: usize = 8_192;

/// Appends `n` generated events in big batches, four in flight; returns events/s.
fn bulk_load<S: Store>(store: &S, seed: u64, n: u64) -> f64 {
    let mut generator = Generator::new(seed, n);
    let started = WallClock::now();
    let mut pending = std::collections::VecDeque::new();
    let mut left = n;
    while left > 0 {
        let size = left.min(BULK_BATCH_EVENTS as u64) as usize;
        left -= size as u64;
        pending.push_back(store.submit(generator.batch(size)));
        if pending.len() >= 4
            && let Some(p) = pending.pop_front()
        {
            S::wait(p);
        }
    }
    for p in pending {
        S::wait(p);
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// `writers` threads, each appending one event per append (and waiting for its ack) until the
/// time is up. Each thread has its own generator (seeded by its index, the same on both sides).
/// Returns (events/s, p99 latency in ms).
/// What an append run measured.
#[derive(Debug, Clone, Copy)]
struct AppendRun {
    events_per_s: f64,
    p99_ms: f64,
    /// Process CPU time over wall time: how many of the cores the run kept busy.
    cores_busy: f64,
}

/// This process's user + system CPU seconds (from /proc/self/stat, in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based, whole line).
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    (ticks(14).unwrap_or(0.0) + ticks(15).unwrap_or(0.0)) / 100.0
}

/// `seed` picks the events: runs with the same seed append the same events (a second run on the
/// same store needs another seed, or it would only resend ids already there).
fn append_concurrent<S: Store>(store: &S, writers: usize, seconds: f64, seed: u64) -> AppendRun {
    let deadline = Duration::from_secs_f64(seconds);
    let cpu_before = cpu_seconds();
    let started = WallClock::now();
    let results: Vec<(u64, Vec<f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                scope.spawn(move || {
                    let mut generator = Generator::new(seed * 1_000 + w as u64, 10_000);
                    let mut latencies = Vec::new();
                    let mut count = 0u64;
                    while started.elapsed() < deadline {
                        let e = generator.next_event();
                        let t = WallClock::now();
                        store.append(vec![e]);
                        latencies.push(t.elapsed().as_secs_f64() * 1e3);
                        count += 1;
                    }
                    (count, latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let total: u64 = results.iter().map(|r| r.0).sum();
    let mut latencies: Vec<f64> = results.into_iter().flat_map(|r| r.1).collect();
    AppendRun {
        events_per_s: total as f64 / elapsed,
        p99_ms: percentile(&mut latencies, 99.0),
        cores_busy: cpu / elapsed,
    }
}

/// Two runs on each side in the order carelog, SQLite, SQLite, carelog (so a drift in the
/// machine's load falls on both alike); the better run of each side by throughput.
fn alternate(log: &Log, peer: &Peer, writers: usize, seconds: f64) -> (AppendRun, AppendRun) {
    let c1 = append_concurrent(log, writers, seconds, 1);
    let s1 = append_concurrent(peer, writers, seconds, 1);
    let s2 = append_concurrent(peer, writers, seconds, 2);
    let c2 = append_concurrent(log, writers, seconds, 2);
    let best = |a: AppendRun, b: AppendRun| {
        if a.events_per_s >= b.events_per_s {
            a
        } else {
            b
        }
    };
    (best(c1, c2), best(s1, s2))
}

/// The writer's counters over a run: (events per commit, mean flush in ms).
fn commit_shape(log: &Log) -> (f64, f64) {
    let stats = log.writer_stats();
    (
        stats.events_written as f64 / stats.commits.max(1) as f64,
        stats.flush_nanos_total as f64 / stats.flushes.max(1) as f64 / 1e6,
    )
}

/// One writer appending batches of `size` events, each waited for; returns events/s.
fn append_batches<S: Store>(store: &S, size: usize, batches: usize) -> f64 {
    // A seed per size: two runs on one store must not append the same ids.
    let mut generator = Generator::new(77 + size as u64, (size * batches) as u64);
    let prepared: Vec<Vec<NewEvent>> = (0..batches).map(|_| generator.batch(size)).collect();
    let started = WallClock::now();
    for b in prepared {
        store.append(b);
    }
    (size * batches) as f64 / started.elapsed().as_secs_f64()
}

// ---- child processes: rebuilds with their own peak memory ---------------------------------------

/// A projection that does nothing: a replay feeding only it measures reading and decoding.
struct Noop;

impl Projection for Noop {
    const NAME: &'static str = "noop";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "reads and decodes, folds nothing";
    type State = ();
    fn apply(_state: &mut (), _event: &EventView<'_>) {}
    fn query(_state: &(), _book: &PairingBook, _query: &Query) -> serde_json::Value {
        serde_json::Value::Null
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RebuildReport {
    events: u64,
    best_seconds: f64,
    /// The same replay feeding one no-op projection: the read and decode share of the time.
    decode_only_seconds: f64,
    rss_before_kib: u64,
    peak_rss_kib: u64,
    /// RSS while holding the rebuilt states, with the store closed and freed memory handed
    /// back (`malloc_trim`), less the RSS after open: the states as they sit in memory.
    held_state_kib: u64,
    state_bytes: u64,
    /// Projections whose state the codec refuses to encode (over its 64 MiB limit): they can
    /// have no checkpoint. Their size is not in `state_bytes`.
    over_limit: Vec<String>,
}

fn child(args: &[String]) {
    let (kind, path, until, rounds) = (
        args[0].as_str(),
        PathBuf::from(&args[1]),
        args[2].parse::<u64>().expect("until"),
        args[3].parse::<usize>().expect("rounds"),
    );
    let registry = carelog::projections::registry();
    let projections: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let noop = Registered::<Noop>::boxed();
    let decode_only: Vec<&dyn AnyProjection> = vec![noop.as_ref()];
    let mut best = f64::MAX;
    let mut events = 0;
    let mut state_bytes = 0;
    let mut over_limit = Vec::new();
    let report = match kind {
        "carelog" => {
            let log = Log::open(&path, OpenOptions::existing()).expect("open");
            let rss_before_kib = proc_status_kib("VmRSS").unwrap_or(0);
            let mut states = Vec::new();
            let mut book = PairingBook::default();
            for _ in 0..rounds {
                // The previous round's states go first: the peak is one rebuild's.
                states.clear();
                drop(std::mem::take(&mut book));
                let started = WallClock::now();
                let rebuilt = replay(
                    &log,
                    &projections,
                    AsOf::Position(until),
                    None,
                    &mut |_, _| {},
                )
                .expect("replay");
                best = best.min(started.elapsed().as_secs_f64());
                events = rebuilt.events_read;
                states = rebuilt.states;
                book = rebuilt.book;
            }
            let peak = proc_status_kib("VmHWM").unwrap_or(0);
            for (p, s) in projections.iter().zip(&states) {
                match p.encode_state(s.as_ref()) {
                    Ok(bytes) => state_bytes += bytes.len() as u64,
                    Err(_) => over_limit.push(p.name().to_string()),
                }
            }
            // The engine's shared book is part of the state a rebuild holds and checkpoints.
            match codec::encode_state("the pairing book", &book) {
                Ok(bytes) => state_bytes += bytes.len() as u64,
                Err(_) => over_limit.push("book".to_string()),
            }
            let started = WallClock::now();
            replay(
                &log,
                &decode_only,
                AsOf::Position(until),
                None,
                &mut |_, _| {},
            )
            .expect("replay");
            let decode_only_seconds = started.elapsed().as_secs_f64();
            drop(log);
            let held_state_kib = rss_after_freeing_kib().saturating_sub(rss_before_kib);
            drop((states, book));
            RebuildReport {
                events,
                best_seconds: best,
                decode_only_seconds,
                rss_before_kib,
                peak_rss_kib: peak,
                held_state_kib,
                state_bytes,
                over_limit: over_limit.clone(),
            }
        }
        "sqlite" => {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("PRAGMA cache_size=-65536;")
                .expect("pragma");
            let rss_before_kib = proc_status_kib("VmRSS").unwrap_or(0);
            let mut states = Vec::new();
            let mut book = PairingBook::default();
            for _ in 0..rounds {
                states.clear();
                drop(std::mem::take(&mut book));
                let started = WallClock::now();
                let (s, b, n) = sqlite_replay(&conn, &projections, until);
                best = best.min(started.elapsed().as_secs_f64());
                events = n;
                states = s;
                book = b;
            }
            let peak = proc_status_kib("VmHWM").unwrap_or(0);
            for (p, s) in projections.iter().zip(&states) {
                match p.encode_state(s.as_ref()) {
                    Ok(bytes) => state_bytes += bytes.len() as u64,
                    Err(_) => over_limit.push(p.name().to_string()),
                }
            }
            // The engine's shared book is part of the state a rebuild holds and checkpoints.
            match codec::encode_state("the pairing book", &book) {
                Ok(bytes) => state_bytes += bytes.len() as u64,
                Err(_) => over_limit.push("book".to_string()),
            }
            let started = WallClock::now();
            sqlite_replay(&conn, &decode_only, until);
            let decode_only_seconds = started.elapsed().as_secs_f64();
            drop(conn);
            let held_state_kib = rss_after_freeing_kib().saturating_sub(rss_before_kib);
            drop((states, book));
            RebuildReport {
                events,
                best_seconds: best,
                decode_only_seconds,
                rss_before_kib,
                peak_rss_kib: peak,
                held_state_kib,
                state_bytes,
                over_limit: over_limit.clone(),
            }
        }
        other => panic!("unknown child kind {other}"),
    };
    println!("{}", serde_json::to_string(&report).expect("json"));
}

/// As-of queries answered from a held [`Timeline`] (as `carelog serve` answers them), in a
/// process of its own so that what the timeline holds is read from its RSS.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct TimelineReport {
    events: u64,
    build_seconds: f64,
    snapshots: usize,
    every_events: u64,
    /// The timeline's own estimate of what its snapshots hold apart from the head.
    snapshot_bytes_estimate: u64,
    /// RSS with the timeline held, less the RSS once it is dropped (freed memory handed back
    /// both times; sled's cache is in both).
    held_kib: u64,
    peak_rss_kib: u64,
    asof_ms: Vec<f64>,
    tail_events: Vec<f64>,
}

fn timeline_child(args: &[String]) {
    let (path, samples) = (
        PathBuf::from(&args[0]),
        args[1].parse::<usize>().expect("samples"),
    );
    let log = Log::open(&path, OpenOptions::existing()).expect("open");
    let mut timeline = match std::env::var("CARELOG_BENCH_TIMELINE_EVERY") {
        Ok(every) => Timeline::with_spacing(
            carelog::projections::registry(),
            every.parse().expect("CARELOG_BENCH_TIMELINE_EVERY: events"),
        ),
        Err(_) => Timeline::new(carelog::projections::registry()),
    };
    let started = WallClock::now();
    timeline.catch_up(&log, &mut |_, _| {}).expect("timeline");
    let build_seconds = started.elapsed().as_secs_f64();
    let head = log.head_position();
    let mut rng = Rng(7);
    let mut asof_ms = Vec::new();
    let mut tail_events = Vec::new();
    for _ in 0..samples {
        let p = 1 + rng.below(head);
        let t = WallClock::now();
        let rebuilt = timeline
            .as_of(&log, AsOf::Position(p), &mut |_, _| {})
            .expect("as-of");
        asof_ms.push(t.elapsed().as_secs_f64() * 1e3);
        tail_events.push(rebuilt.events_read as f64);
        assert_eq!(
            rebuilt.position, p,
            "the timeline answered another position"
        );
    }
    let (snapshots, every_events) = timeline.snapshots();
    let snapshot_bytes_estimate = timeline.snapshot_bytes();
    let peak_rss_kib = proc_status_kib("VmHWM").unwrap_or(0);
    let with_timeline_kib = rss_after_freeing_kib();
    drop(timeline);
    let held_kib = with_timeline_kib.saturating_sub(rss_after_freeing_kib());
    let report = TimelineReport {
        events: head,
        build_seconds,
        snapshots,
        every_events,
        snapshot_bytes_estimate,
        held_kib,
        peak_rss_kib,
        asof_ms,
        tail_events,
    };
    println!("{}", serde_json::to_string(&report).expect("json"));
}

unsafe extern "C" {
    /// glibc: hands freed heap memory back to the system.
    fn malloc_trim(pad: usize) -> i32;
}

/// The RSS once freed heap memory is handed back, so that it counts what is still held.
fn rss_after_freeing_kib() -> u64 {
    // sled's threads drop their last references a moment after the store is closed.
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: malloc_trim only returns free pages of glibc's heap; it has no preconditions.
    unsafe {
        malloc_trim(0);
    }
    proc_status_kib("VmRSS").unwrap_or(0)
}

fn run_child(kind: &str, path: &Path, until: u64, rounds: usize) -> RebuildReport {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .arg("--child")
        .arg(kind)
        .arg(path)
        .arg(until.to_string())
        .arg(rounds.to_string())
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().expect("a report line");
    serde_json::from_str(line).expect("report json")
}

// ---- main ----------------------------------------------------------------------------------

struct Plan {
    events: u64,
    append_seconds: f64,
    batch_100_batches: usize,
    batch_1000_batches: usize,
    rebuild_rounds: usize,
    /// The as-of log's size: the long log's, or less (see the as-of section).
    asof_events: u64,
    asof_samples: usize,
    /// As-of queries on the held timeline.
    timeline_samples: usize,
    sqlite_asof_samples: usize,
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The projections whose state the codec would not encode, for a row's label.
fn over(over_limit: &[String]) -> String {
    if over_limit.is_empty() {
        String::new()
    } else {
        format!(
            "; not counted, over the codec's 64 MiB limit (never checkpointed): {}",
            over_limit.join(", ")
        )
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A rebuild's peak RSS over what it holds at the end: the states and the RSS after open.
fn over_held(r: &RebuildReport) -> f64 {
    mib(r.peak_rss_kib) - mib(r.rss_before_kib + r.held_state_kib)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--timeline-child") {
        timeline_child(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1..]);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // Built and run as a test (`cargo test --benches`): nothing to measure.
        println!("peers: run with `cargo bench --bench peers [-- --quick]`");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let default_events = if quick { 1_000_000 } else { 10_000_000 };
    let events = std::env::var("CARELOG_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default_events);
    let asof_events = std::env::var("CARELOG_BENCH_ASOF_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(events);
    let plan = if quick {
        Plan {
            events,
            append_seconds: 3.0,
            batch_100_batches: 100,
            batch_1000_batches: 30,
            rebuild_rounds: 2,
            asof_events: asof_events.min(events),
            asof_samples: 40,
            timeline_samples: 300,
            sqlite_asof_samples: 3,
        }
    } else {
        Plan {
            events,
            append_seconds: 10.0,
            batch_100_batches: 400,
            batch_1000_batches: 100,
            rebuild_rounds: 3,
            asof_events: asof_events.min(events),
            asof_samples: 100,
            timeline_samples: 500,
            sqlite_asof_samples: 5,
        }
    };
    let root = common::tempdir();
    let keep = std::env::var_os("CARELOG_BENCH_KEEP").is_some();
    let load_before = load();
    eprintln!(
        "peers: {} mode, {} events in the long log, stores under {} ({}), {} cores, load {}",
        if quick { "quick" } else { "full" },
        plan.events,
        root.path().display(),
        common::fs_type(root.path()).unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before
    );
    let started = WallClock::now();
    let step = |what: &str| eprintln!("[{:6.1}s] {what}", started.elapsed().as_secs_f64());

    // -- appends, on fresh stores ---------------------------------------------------------------
    step("append: 64 concurrent writers (carelog, sqlite, sqlite, carelog)");
    let (c_conc, s_conc, c_conc_shape) = {
        let log = common::open_log(&root.path().join("append-concurrent"));
        let peer = Peer::open(&root.path().join("append-concurrent.sqlite"));
        let (c, s) = alternate(&log, &peer, 64, plan.append_seconds);
        (c, s, commit_shape(&log))
    };
    step("append: one writer, one event per ack (carelog, sqlite, sqlite, carelog)");
    let (c_single, s_single, c_single_shape) = {
        let log = common::open_log(&root.path().join("append-single"));
        let peer = Peer::open(&root.path().join("append-single.sqlite"));
        let (c, s) = alternate(&log, &peer, 1, plan.append_seconds);
        (c, s, commit_shape(&log))
    };
    step("append: batches of 100 and 1000");
    let (c_b100, c_b1000) = {
        let log = common::open_log(&root.path().join("append-batches"));
        (
            append_batches(&log, 100, plan.batch_100_batches),
            append_batches(&log, 1_000, plan.batch_1000_batches),
        )
    };
    let (s_b100, s_b1000) = {
        let peer = Peer::open(&root.path().join("append-batches.sqlite"));
        (
            append_batches(&peer, 100, plan.batch_100_batches),
            append_batches(&peer, 1_000, plan.batch_1000_batches),
        )
    };

    // -- the long log, on both ---------------------------------------------------------------
    let c_dir = root.path().join("long");
    let s_path = root.path().join("long.sqlite");
    step("bulk load of the long log (carelog)");
    let c_bulk = {
        let log = common::open_log(&c_dir);
        bulk_load(&log, 42, plan.events)
    };
    step("bulk load of the long log (sqlite)");
    let s_bulk = {
        let peer = Peer::open(&s_path);
        bulk_load(&peer, 42, plan.events)
    };
    // Both closed: sizes on disk as a reopened store would find them.
    std::thread::sleep(Duration::from_millis(200));
    let c_disk = common::dir_size(&c_dir, &["checkpoints"]);
    let s_disk = std::fs::metadata(&s_path).map_or(0, |m| m.len())
        + std::fs::metadata(s_path.with_extension("sqlite-wal")).map_or(0, |m| m.len());

    step("rebuild (child processes)");
    let c_rebuild = run_child("carelog", &c_dir, plan.events, plan.rebuild_rounds);
    let s_rebuild = run_child("sqlite", &s_path, plan.events, plan.rebuild_rounds);
    let c_half = run_child("carelog", &c_dir, plan.events / 2, 1);
    let s_half = run_child("sqlite", &s_path, plan.events / 2, 1);

    let log = Log::open(&c_dir, OpenOptions::existing()).expect("reopen");
    let head = log.head_position();
    assert_eq!(head, plan.events);

    step("encoded event size");
    let sample = plan.events.min(200_000);
    let (mut encoded, mut payload) = (0u64, 0u64);
    for e in log.stored_events(1, sample) {
        let e = e.expect("event");
        payload += e.payload.len() as u64;
        encoded += codec::encode("event", &e).expect("encode").len() as u64;
    }
    let encoded_per_event = encoded as f64 / sample as f64;
    let payload_per_event = payload as f64 / sample as f64;

    step("verify (carelog)");
    let t = WallClock::now();
    let report = log.verify(true, None, &mut |_| {}).expect("verify");
    assert!(report.intact, "{:?}", report.problem);
    let c_verify = report.events_checked as f64 / t.elapsed().as_secs_f64();
    let t = WallClock::now();
    let report = log.verify(false, None, &mut |_| {}).expect("verify");
    assert!(report.intact, "{:?}", report.problem);
    let c_verify_no_index = report.events_checked as f64 / t.elapsed().as_secs_f64();
    step("verify (sqlite: the same hash and version checks over a scan)");
    let s_verify = {
        let conn = Connection::open(&s_path).expect("open");
        let t = WallClock::now();
        let n = sqlite_verify(&conn);
        n as f64 / t.elapsed().as_secs_f64()
    };

    drop(log);

    // -- as-of: on the long log, or on a log of its own when CARELOG_BENCH_ASOF_EVENTS asks for a
    // shorter one. Checkpoints are spaced by their write budget (about 1 KiB per event replayed),
    // so the checkpoint pass writes O(n) bytes.
    let (asof_dir, asof_path) = if plan.asof_events < plan.events {
        step("as-of: building its own log (both)");
        let dir = root.path().join("asof");
        let path = root.path().join("asof.sqlite");
        bulk_load(&common::open_log(&dir), 43, plan.asof_events);
        bulk_load(&Peer::open(&path), 43, plan.asof_events);
        (dir, path)
    } else {
        (c_dir.clone(), s_path.clone())
    };
    let log = Log::open(&asof_dir, OpenOptions::existing()).expect("reopen");
    let asof_head = log.head_position();
    step("as-of: checkpoint pass (carelog)");
    let registry = carelog::projections::registry();
    let projections: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();
    let checkpoints = Checkpoints::for_store(&asof_dir);
    let t = WallClock::now();
    replay(
        &log,
        &projections,
        AsOf::Now,
        Some(&checkpoints),
        &mut |_, _| {},
    )
    .expect("replay");
    let checkpoint_pass_s = t.elapsed().as_secs_f64();
    let checkpoint_bytes = common::dir_size(&asof_dir.join("checkpoints"), &[]);
    step("as-of at random positions (carelog)");
    let mut rng = Rng(7);
    let mut c_asof_ms = Vec::new();
    let mut tail_events = Vec::new();
    for _ in 0..plan.asof_samples {
        let p = 1 + rng.below(asof_head);
        let t = WallClock::now();
        let rebuilt = replay(
            &log,
            &projections,
            AsOf::Position(p),
            Some(&checkpoints),
            &mut |_, _| {},
        )
        .expect("as-of");
        c_asof_ms.push(t.elapsed().as_secs_f64() * 1e3);
        tail_events.push(rebuilt.events_read as f64);
    }
    // Positions that are checkpoints: the load alone, no tail.
    let saved_at = checkpoints.positions(BOOK_NAME, BOOK_VERSION);
    let mut load_ms = Vec::new();
    for k in 1..=5usize {
        let index = (saved_at.len() * k / 5).min(saved_at.len().saturating_sub(1));
        let Some(&p) = saved_at.get(index) else {
            continue;
        };
        let t = WallClock::now();
        replay(
            &log,
            &projections,
            AsOf::Position(p),
            Some(&checkpoints),
            &mut |_, _| {},
        )
        .expect("as-of");
        load_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let load_max_ms = load_ms.iter().copied().fold(0.0, f64::max);
    let c_asof_p99 = percentile(&mut c_asof_ms.clone(), 99.0);
    let c_asof_p50 = percentile(&mut c_asof_ms, 50.0);
    let tail_p99 = percentile(&mut tail_events, 99.0);
    drop(log);
    step("as-of at random positions (carelog: a held timeline, in a child process)");
    let timeline = {
        let exe = std::env::current_exe().expect("current exe");
        let out = Command::new(exe)
            .arg("--timeline-child")
            .arg(&asof_dir)
            .arg(plan.timeline_samples.to_string())
            .output()
            .expect("run the timeline child");
        assert!(
            out.status.success(),
            "the timeline child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        serde_json::from_str::<TimelineReport>(line).expect("the timeline child's report")
    };
    let t_asof_p99 = percentile(&mut timeline.asof_ms.clone(), 99.0);
    let t_asof_p50 = percentile(&mut timeline.asof_ms.clone(), 50.0);
    let t_tail_p99 = percentile(&mut timeline.tail_events.clone(), 99.0);
    step("as-of at random positions (sqlite: a scan up to the position)");
    let mut s_asof_ms = Vec::new();
    {
        let conn = Connection::open(&asof_path).expect("open");
        conn.execute_batch("PRAGMA cache_size=-65536;")
            .expect("pragma");
        let mut rng = Rng(7);
        for _ in 0..plan.sqlite_asof_samples {
            let p = 1 + rng.below(asof_head);
            let t = WallClock::now();
            let _ = sqlite_replay(&conn, &projections, p);
            s_asof_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let s_asof_p99 = percentile(&mut s_asof_ms.clone(), 99.0);
    let s_asof_p50 = percentile(&mut s_asof_ms, 50.0);
    step("done");
    let load_after = load();

    // -- the table ----------------------------------------------------------------------------
    let c_rebuild_eps = c_rebuild.events as f64 / c_rebuild.best_seconds;
    let s_rebuild_eps = s_rebuild.events as f64 / s_rebuild.best_seconds;
    let disk_per_event = c_disk as f64 / plan.events as f64;
    let rows: Vec<(String, String, String, String, &str)> = vec![
        (
            "append, 64 concurrent writers, 1 event/append (events/s)".into(),
            format!("{:.0}", c_conc.events_per_s),
            format!("{:.0}", s_conc.events_per_s),
            format!("{:.2}", c_conc.events_per_s / s_conc.events_per_s),
            ">= 1.5x",
        ),
        (
            "  p99 latency of one append (ms)".into(),
            format!("{:.2}", c_conc.p99_ms),
            format!("{:.2}", s_conc.p99_ms),
            String::new(),
            "",
        ),
        (
            format!(
                "  cores busy (of 2); carelog {:.1} events/commit, flush {:.3} ms",
                c_conc_shape.0, c_conc_shape.1
            ),
            format!("{:.2}", c_conc.cores_busy),
            format!("{:.2}", s_conc.cores_busy),
            String::new(),
            "",
        ),
        (
            "append, 1 writer, 1 event/ack (events/s)".into(),
            format!("{:.0}", c_single.events_per_s),
            format!("{:.0}", s_single.events_per_s),
            format!("{:.2}", c_single.events_per_s / s_single.events_per_s),
            ">= 1.0x",
        ),
        (
            "  p99 latency (ms)".into(),
            format!("{:.3}", c_single.p99_ms),
            format!("{:.3}", s_single.p99_ms),
            String::new(),
            "<= 1.0 ms",
        ),
        (
            format!(
                "  cores busy; carelog flush {:.3} ms per commit",
                c_single_shape.1
            ),
            format!("{:.2}", c_single.cores_busy),
            format!("{:.2}", s_single.cores_busy),
            String::new(),
            "",
        ),
        (
            "append, 1 writer, batches of 100 (events/s)".into(),
            format!("{c_b100:.0}"),
            format!("{s_b100:.0}"),
            format!("{:.2}", c_b100 / s_b100),
            "",
        ),
        (
            "append, 1 writer, batches of 1000 (events/s)".into(),
            format!("{c_b1000:.0}"),
            format!("{s_b1000:.0}"),
            format!("{:.2}", c_b1000 / s_b1000),
            "",
        ),
        (
            format!("bulk load, batches of {BULK_BATCH_EVENTS}, 4 in flight (events/s)"),
            format!("{c_bulk:.0}"),
            format!("{s_bulk:.0}"),
            format!("{:.2}", c_bulk / s_bulk),
            "",
        ),
        (
            format!(
                "rebuild, {} projections, one core, {} events (events/s)",
                projections.len(),
                plan.events
            ),
            format!("{c_rebuild_eps:.0}"),
            format!("{s_rebuild_eps:.0}"),
            format!("{:.2}", c_rebuild_eps / s_rebuild_eps),
            ">= 1M/s, >= 1.0x",
        ),
        (
            "  of which reading and decoding (events/s with no projection)".into(),
            format!(
                "{:.0}",
                c_rebuild.events as f64 / c_rebuild.decode_only_seconds
            ),
            format!(
                "{:.0}",
                s_rebuild.events as f64 / s_rebuild.decode_only_seconds
            ),
            format!(
                "{:.2}",
                s_rebuild.decode_only_seconds / c_rebuild.decode_only_seconds
            ),
            "",
        ),
        (
            "rebuild peak RSS (MiB)".into(),
            format!("{:.0}", mib(c_rebuild.peak_rss_kib)),
            format!("{:.0}", mib(s_rebuild.peak_rss_kib)),
            String::new(),
            "",
        ),
        (
            "  peak over the states held in memory, full log / half log (MiB)".into(),
            format!("{:.0} / {:.0}", over_held(&c_rebuild), over_held(&c_half)),
            format!("{:.0} / {:.0}", over_held(&s_rebuild), over_held(&s_half)),
            String::new(),
            "<= 64, flat",
        ),
        (
            "  states held in memory after the rebuild, store closed (MiB)".into(),
            format!("{:.0}", mib(c_rebuild.held_state_kib)),
            format!("{:.0}", mib(s_rebuild.held_state_kib)),
            String::new(),
            "",
        ),
        (
            "  RSS after open, before the rebuild (MiB)".into(),
            format!("{:.0}", mib(c_rebuild.rss_before_kib)),
            format!("{:.0}", mib(s_rebuild.rss_before_kib)),
            String::new(),
            "",
        ),
        (
            format!(
                "  projection state, encoded (MiB){}",
                over(&c_rebuild.over_limit)
            ),
            format!("{:.0}", c_rebuild.state_bytes as f64 / 1048576.0),
            format!("{:.0}", s_rebuild.state_bytes as f64 / 1048576.0),
            String::new(),
            "",
        ),
        (
            format!(
                "  at half the log ({} events): peak RSS / state encoded (MiB){}",
                c_half.events,
                over(&c_half.over_limit)
            ),
            format!(
                "{:.0} / {:.0}",
                mib(c_half.peak_rss_kib),
                c_half.state_bytes as f64 / 1048576.0
            ),
            format!(
                "{:.0} / {:.0}",
                mib(s_half.peak_rss_kib),
                s_half.state_bytes as f64 / 1048576.0
            ),
            String::new(),
            "",
        ),
        (
            "  carelog's peak over sqlite's, full log / half log (MiB)".into(),
            format!(
                "{:.0} / {:.0}",
                mib(c_rebuild.peak_rss_kib) - mib(s_rebuild.peak_rss_kib),
                mib(c_half.peak_rss_kib) - mib(s_half.peak_rss_kib)
            ),
            String::new(),
            String::new(),
            "",
        ),
        (
            format!(
                "as-of at a random position of {asof_head} events, p99 (ms; p50 {t_asof_p50:.1} / {s_asof_p50:.0})"
            ),
            format!("{t_asof_p99:.1}"),
            format!("{s_asof_p99:.0}"),
            format!("{:.1}", s_asof_p99 / t_asof_p99),
            "<= 50 ms",
        ),
        (
            format!(
                "  carelog: held timeline (`serve`), {} samples, tail p99 {t_tail_p99:.0} events",
                timeline.asof_ms.len()
            ),
            String::new(),
            format!("{} samples", plan.sqlite_asof_samples),
            String::new(),
            "",
        ),
        (
            format!(
                "  carelog: the timeline built in {:.1} s, {} snapshots {} events apart (~{:.0} MiB by its estimate); RSS held / peak (MiB)",
                timeline.build_seconds,
                timeline.snapshots,
                timeline.every_events,
                timeline.snapshot_bytes_estimate as f64 / 1048576.0
            ),
            format!(
                "{:.0} / {:.0}",
                mib(timeline.held_kib),
                mib(timeline.peak_rss_kib)
            ),
            String::new(),
            String::new(),
            "",
        ),
        (
            format!(
                "  carelog one-shot (CLI: checkpoints, then the tail), p99 (ms; p50 {c_asof_p50:.0}; {} samples)",
                plan.asof_samples
            ),
            format!("{c_asof_p99:.1}"),
            String::new(),
            format!("{:.1}", s_asof_p99 / c_asof_p99),
            "",
        ),
        (
            format!(
                "  carelog one-shot: tail p99 {tail_p99:.0} events; a checkpoint load alone (no tail) up to {load_max_ms:.0} ms"
            ),
            String::new(),
            String::new(),
            String::new(),
            "",
        ),
        (
            format!(
                "  carelog: checkpoint pass {checkpoint_pass_s:.1} s, {:.0} MiB of checkpoints at {} positions, the last gap {} events",
                checkpoint_bytes as f64 / 1048576.0,
                saved_at.len(),
                saved_at.windows(2).last().map_or(0, |w| w[1] - w[0])
            ),
            String::new(),
            String::new(),
            String::new(),
            "",
        ),
        (
            "verify: every hash, position, version (events/s)".into(),
            format!("{c_verify:.0}"),
            format!("{s_verify:.0}"),
            format!("{:.2}", c_verify / s_verify),
            ">= 1M/s",
        ),
        (
            "  carelog without the index check (`verify --skip-indexes`)".into(),
            format!("{c_verify_no_index:.0}"),
            String::new(),
            format!("{:.2}", c_verify_no_index / s_verify),
            "",
        ),
        (
            format!(
                "disk bytes per event (encoded event {encoded_per_event:.0} B, payload {payload_per_event:.0} B)"
            ),
            format!(
                "{disk_per_event:.0} ({:.2}x)",
                disk_per_event / encoded_per_event
            ),
            format!(
                "{:.0} ({:.2}x)",
                s_disk as f64 / plan.events as f64,
                s_disk as f64 / plan.events as f64 / encoded_per_event
            ),
            String::new(),
            "<= 2.5x encoded",
        ),
    ];
    println!();
    println!(
        "carelog vs SQLite (WAL, synchronous=FULL, same group commit), {} mode; {} cores; load before {load_before}, after {load_after}",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!();
    println!(
        "| {:<74} | {:>14} | {:>14} | {:>8} | {:<16} |",
        "figure", "carelog", "sqlite", "ratio", "goal"
    );
    println!(
        "|{:-<76}|{:-<16}|{:-<16}|{:-<10}|{:-<18}|",
        "", "", "", "", ""
    );
    for (figure, c, s, r, goal) in &rows {
        println!("| {figure:<74} | {c:>14} | {s:>14} | {r:>8} | {goal:<16} |");
    }
    println!();
    let json = serde_json::json!({
        "append_concurrent_vs_sqlite": round(c_conc.events_per_s / s_conc.events_per_s, 3),
        "append_single_p99_ms": round(c_single.p99_ms, 3),
        "append_single_vs_sqlite": round(c_single.events_per_s / s_single.events_per_s, 3),
        "rebuild_events_per_s": c_rebuild_eps.round(),
        "rebuild_vs_sqlite": round(c_rebuild_eps / s_rebuild_eps, 3),
        "asof_p99_ms": round(t_asof_p99, 2),
        "asof_one_shot_p99_ms": round(c_asof_p99, 2),
        "verify_events_per_s": c_verify.round(),
        "rebuild_peak_rss_mib": mib(c_rebuild.peak_rss_kib).round(),
        "disk_bytes_per_event": disk_per_event.round(),
        "events": plan.events,
    });
    if keep {
        eprintln!("stores kept in {}", root.keep().display());
    }
    println!("{json}");
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}
