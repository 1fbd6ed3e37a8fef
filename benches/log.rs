//! Criterion benches of the log: durable appends (one writer, one event per append; 64
//! concurrent writers, one event each; batches of 100 and 1000), a full read of a long log, and
//! verify. Every append is measured to its acknowledgement, which comes after the flush.
//!
//! `cargo bench --bench log` (about a minute). `CARELOG_BENCH_LOG_EVENTS` sets the long log's
//! size for the read and verify benches (default 200 000). Stores live under cargo's target tmp
//! dir (a real disk; `CARELOG_BENCH_DIR` overrides), never /tmp, which may be tmpfs.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use carelog::log::AppendBatch;
use common::Generator;

/// Seeds for generators, never reused, so no bench appends an id that is already in its log
/// (a resend would be answered without a write).
static SEED: AtomicU64 = AtomicU64::new(1);

fn generator() -> Generator {
    Generator::new(SEED.fetch_add(1, Ordering::Relaxed), 100_000)
}

fn long_log_events() -> u64 {
    std::env::var("CARELOG_BENCH_LOG_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(200_000)
}

fn appends(c: &mut Criterion) {
    let dir = common::tempdir();
    let log = common::open_log(&dir.path().join("appends"));
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.throughput(Throughput::Elements(1));
    let mut one = generator();
    group.bench_function("1_writer_1_event", |b| {
        b.iter_batched(
            || one.next_event(),
            |e| log.append(AppendBatch::new(vec![e])).expect("append"),
            BatchSize::SmallInput,
        )
    });

    // One iteration: 64 events, one per writer, appended concurrently (each writer waits for
    // its ack before its next append). Throughput is events per second across all writers.
    const WRITERS: usize = 64;
    group.throughput(Throughput::Elements(WRITERS as u64));
    group.bench_function("64_writers_1_event_each", |b| {
        b.iter_custom(|iters| {
            let generators: Vec<Generator> = (0..WRITERS).map(|_| generator()).collect();
            let log = &log;
            let started = Instant::now();
            std::thread::scope(|scope| {
                for mut g in generators {
                    scope.spawn(move || {
                        for _ in 0..iters {
                            log.append(AppendBatch::new(vec![g.next_event()]))
                                .expect("append");
                        }
                    });
                }
            });
            started.elapsed()
        })
    });

    for size in [100usize, 1_000] {
        group.throughput(Throughput::Elements(size as u64));
        let mut g = generator();
        group.bench_function(format!("1_writer_batch_{size}"), |b| {
            b.iter_batched(
                || g.batch(size),
                |events| log.append(AppendBatch::new(events)).expect("append"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    let stats = log.writer_stats();
    eprintln!(
        "append: {} events in {} commits ({:.1} events per commit), {} flushes, mean flush {:.3} ms",
        stats.events_written,
        stats.commits,
        stats.events_written as f64 / stats.commits.max(1) as f64,
        stats.flushes,
        stats.flush_nanos_total as f64 / stats.flushes.max(1) as f64 / 1e6
    );
}

fn reads(c: &mut Criterion) {
    let n = long_log_events();
    let dir = common::tempdir();
    let log = common::open_log(&dir.path().join("long"));
    let started = Instant::now();
    common::fill_log(&log, &mut Generator::new(42, n), n);
    eprintln!(
        "read: built a log of {n} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(n));
    group.bench_function(format!("stored_events_full_{n}"), |b| {
        b.iter(|| {
            let mut count = 0u64;
            for e in log.stored_events(1, u64::MAX) {
                e.expect("event");
                count += 1;
            }
            assert_eq!(count, n);
        })
    });
    group.bench_function(format!("verify_{n}"), |b| {
        b.iter(|| {
            let report = log.verify(true, None, &mut |_| {}).expect("verify");
            assert!(report.intact);
        })
    });
    group.bench_function(format!("verify_skip_indexes_{n}"), |b| {
        b.iter(|| {
            let report = log.verify(false, None, &mut |_| {}).expect("verify");
            assert!(report.intact);
        })
    });
    group.finish();
}

criterion_group!(benches, appends, reads);
criterion_main!(benches);
