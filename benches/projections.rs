//! Criterion benches of the projections: a full rebuild of every standard projection over a
//! generated log (one pass, one core), as-of at a random position with checkpoints, and the demo
//! (`carelog demo` into a fresh store, through the validated append path).
//!
//! `cargo bench --bench projections`. `CARELOG_BENCH_EVENTS` sets the generated log's size
//! (default 200 000, a few minutes in all; the figure wants 1 000 000 or more:
//! `CARELOG_BENCH_EVENTS=1000000 cargo bench --bench projections`).

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use carelog::app::{App, demo};
use carelog::projection::checkpoint::Checkpoints;
use carelog::projection::{AnyProjection, AsOf, replay};
use common::{Generator, Rng};

fn events() -> u64 {
    std::env::var("CARELOG_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(200_000)
}

fn rebuild_and_as_of(c: &mut Criterion) {
    let n = events();
    let dir = common::tempdir();
    let store = dir.path().join("long");
    let log = common::open_log(&store);
    let started = Instant::now();
    common::fill_log(&log, &mut Generator::new(42, n), n);
    eprintln!(
        "projections: built a log of {n} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let registry = carelog::projections::registry();
    let projections: Vec<&dyn AnyProjection> = registry.iter().map(|p| p.as_ref()).collect();

    let mut group = c.benchmark_group("rebuild");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(n));
    group.bench_function(format!("all_{}_projections_{n}", projections.len()), |b| {
        // The states are dropped outside the timing: a rebuild ends when its states are ready.
        b.iter_with_large_drop(|| {
            let rebuilt =
                replay(&log, &projections, AsOf::Now, None, &mut |_, _| {}).expect("replay");
            assert_eq!(rebuilt.events_read, n);
            rebuilt
        })
    });
    group.finish();

    // Checkpoints as the engine saves them (every 50 000 events), then as-of at random
    // positions: a checkpoint load plus the tail.
    let checkpoints = Checkpoints::for_store(&store);
    replay(
        &log,
        &projections,
        AsOf::Now,
        Some(&checkpoints),
        &mut |_, _| {},
    )
    .expect("checkpoint pass");
    let mut group = c.benchmark_group("as_of");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut rng = Rng(7);
    group.bench_function(format!("random_position_with_checkpoints_{n}"), |b| {
        b.iter_with_large_drop(|| {
            let position = 1 + rng.below(n);
            replay(
                &log,
                &projections,
                AsOf::Position(position),
                Some(&checkpoints),
                &mut |_, _| {},
            )
            .expect("as-of")
        })
    });
    group.finish();
}

fn demo_run(c: &mut Criterion) {
    // One run first, to know how many events the demo appends.
    let dir = common::tempdir();
    let app = App::open(&dir.path().join("demo"), true).expect("open");
    let summary = demo::run(&app, demo::DEFAULT_SEED, &mut |_, _, _| {}).expect("demo");
    drop(app);
    drop(dir);

    let mut group = c.benchmark_group("demo");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(summary.events));
    group.bench_function("run_into_fresh_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = common::tempdir();
                let started = Instant::now();
                let app = App::open(&dir.path().join("demo"), true).expect("open");
                let s = demo::run(&app, demo::DEFAULT_SEED, &mut |_, _, _| {}).expect("demo");
                assert_eq!(s.events, summary.events);
                drop(app);
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, rebuild_and_as_of, demo_run);
criterion_main!(benches);
