//! What `GET /metrics` shows, in the Prometheus text format: the log writer's counters
//! ([`crate::log::WriterStats`]: appends, commits, batches per commit, flush time, queue depth),
//! the HTTP service's own (responses by status, append latency as a histogram), and the live
//! subscribers with how far each is behind the durable head.
//!
//! Everything here is a fixed set of atomics: recording a value never allocates or locks,
//! except the subscriber registry, whose size is bounded by [`super::MAX_SUBSCRIBERS`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ApiError;
use crate::log::WriterStats;

/// Upper bounds (seconds) of the append latency histogram's buckets.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// A histogram with fixed buckets, in the Prometheus shape (cumulative on output).
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len()],
    overflow: AtomicU64,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        match LATENCY_BUCKETS_SECONDS.iter().position(|b| seconds <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, bucket) in LATENCY_BUCKETS_SECONDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum_seconds = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum_seconds}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// The lowest and highest status codes counted one by one.
const STATUS_MIN: u16 = 100;
const STATUS_MAX: u16 = 599;

/// The HTTP service's counters.
pub struct Metrics {
    responses: Vec<AtomicU64>,
    pub append_requests: AtomicU64,
    pub appended_events: AtomicU64,
    pub duplicate_events: AtomicU64,
    pub append_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            responses: (STATUS_MIN..=STATUS_MAX)
                .map(|_| AtomicU64::new(0))
                .collect(),
            append_requests: AtomicU64::new(0),
            appended_events: AtomicU64::new(0),
            duplicate_events: AtomicU64::new(0),
            append_latency: Histogram::default(),
        }
    }
}

impl Metrics {
    pub fn count_response(&self, status: u16) {
        let i = status.clamp(STATUS_MIN, STATUS_MAX) - STATUS_MIN;
        if let Some(c) = self.responses.get(usize::from(i)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The whole page.
    pub fn render(
        &self,
        writer: &WriterStats,
        head_position: u64,
        records: &crate::app::RecordsStats,
        subscribers: &[SubscriberLag],
    ) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "carelog_head_position",
            "gauge",
            "The durable head: the last position a reader may see.",
            head_position as f64,
        );
        metric(
            "carelog_records_rebuilds_total",
            "counter",
            "Times the current records were folded from the whole log: once at first use, then only after a refusal the undo journal could not account for.",
            records.rebuilds as f64,
        );
        metric(
            "carelog_records_batches_rolled_back_total",
            "counter",
            "Batches the log refused after they were folded into the records, taken back out in place.",
            records.batches_rolled_back as f64,
        );
        metric(
            "carelog_log_events_written_total",
            "counter",
            "Events the log's writer made durable since the server started (all appends).",
            writer.events_written as f64,
        );
        metric(
            "carelog_log_append_batches_total",
            "counter",
            "Append batches (one caller's all-or-nothing unit) the writer committed.",
            writer.batches as f64,
        );
        metric(
            "carelog_log_commits_total",
            "counter",
            "Commits (one write of a group of batches each) the writer made; batches_total / commits_total is the mean batches per commit.",
            writer.commits as f64,
        );
        metric(
            "carelog_log_flushes_total",
            "counter",
            "Flushes (fsyncs) the writer made; one covers every commit written before it started.",
            writer.flushes as f64,
        );
        metric(
            "carelog_log_last_commit_batches",
            "gauge",
            "How many batches the last commit carried (group commit at work when above 1).",
            writer.last_commit_batches as f64,
        );
        let mean = |total: u64| {
            if writer.commits == 0 {
                0.0
            } else {
                total as f64 / writer.commits as f64
            }
        };
        metric(
            "carelog_log_commit_batches_mean",
            "gauge",
            "Mean append batches per commit since the server started.",
            mean(writer.batches),
        );
        metric(
            "carelog_log_commit_events_mean",
            "gauge",
            "Mean events per commit since the server started.",
            mean(writer.events_written),
        );
        metric(
            "carelog_log_flush_seconds_total",
            "counter",
            "Time spent in flushes (making commits durable); divide by flushes_total for the mean flush latency.",
            writer.flush_nanos_total as f64 / 1e9,
        );
        metric(
            "carelog_log_flush_seconds_mean",
            "gauge",
            "Mean flush latency since the server started.",
            if writer.flushes == 0 {
                0.0
            } else {
                writer.flush_nanos_total as f64 / writer.flushes as f64 / 1e9
            },
        );
        metric(
            "carelog_log_queue_depth",
            "gauge",
            "Append batches queued for the writer and not yet answered.",
            writer.queue_depth as f64,
        );
        metric(
            "carelog_http_append_requests_total",
            "counter",
            "POST /v1/events requests that reached the log.",
            self.append_requests.load(Ordering::Relaxed) as f64,
        );
        metric(
            "carelog_http_appended_events_total",
            "counter",
            "Events appended over HTTP and acknowledged durable (new ones).",
            self.appended_events.load(Ordering::Relaxed) as f64,
        );
        metric(
            "carelog_http_duplicate_events_total",
            "counter",
            "Events posted again with an id already in the log (answered, not written).",
            self.duplicate_events.load(Ordering::Relaxed) as f64,
        );
        metric(
            "carelog_subscribers",
            "gauge",
            "Live Server-Sent Events subscribers.",
            subscribers.len() as f64,
        );
        let max_lag = subscribers.iter().map(|s| s.lag_events).max().unwrap_or(0);
        metric(
            "carelog_subscriber_lag_events_max",
            "gauge",
            "Events the furthest-behind subscriber has yet to be sent.",
            max_lag as f64,
        );
        let _ = writeln!(
            out,
            "# HELP carelog_subscriber_lag_events Events each subscriber has yet to be sent.\n# TYPE carelog_subscriber_lag_events gauge"
        );
        for s in subscribers {
            let _ = writeln!(
                out,
                "carelog_subscriber_lag_events{{subscriber=\"{}\"}} {}",
                s.id, s.lag_events
            );
        }
        let _ = writeln!(
            out,
            "# HELP carelog_http_responses_total Responses by status code.\n# TYPE carelog_http_responses_total counter"
        );
        for (i, c) in self.responses.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                let code = usize::from(STATUS_MIN) + i;
                let _ = writeln!(out, "carelog_http_responses_total{{code=\"{code}\"}} {n}");
            }
        }
        self.append_latency.render(
            &mut out,
            "carelog_http_append_seconds",
            "Latency of POST /v1/events from the parsed body to the durable ack.",
        );
        out
    }
}

/// One subscriber's distance from the head.
#[derive(Debug, Clone, Copy)]
pub struct SubscriberLag {
    pub id: u64,
    pub lag_events: u64,
}

/// The live subscribers: bounded, each with the last position it was sent.
#[derive(Default)]
pub struct Subscribers {
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<AtomicU64>>>,
}

impl Subscribers {
    /// Registers a subscriber starting after `after_position`; 503 when `max` are live.
    pub fn register(
        self: &Arc<Self>,
        after_position: u64,
        max: usize,
    ) -> Result<SubscriberGuard, ApiError> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= max {
            return Err(ApiError::overloaded(format!(
                "{max} subscribers are already following the log: retry later"
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let position = Arc::new(AtomicU64::new(after_position));
        live.insert(id, position.clone());
        Ok(SubscriberGuard {
            id,
            position,
            registry: self.clone(),
        })
    }

    pub fn lags(&self, head_position: u64) -> Vec<SubscriberLag> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .map(|(id, p)| SubscriberLag {
                id: *id,
                lag_events: head_position.saturating_sub(p.load(Ordering::Relaxed)),
            })
            .collect()
    }
}

/// A registered subscriber; dropping it unregisters.
pub struct SubscriberGuard {
    id: u64,
    position: Arc<AtomicU64>,
    registry: Arc<Subscribers>,
}

impl SubscriberGuard {
    /// Records the last position sent.
    pub fn sent(&self, position: u64) {
        self.position.store(position, Ordering::Relaxed);
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(&self.id);
    }
}
