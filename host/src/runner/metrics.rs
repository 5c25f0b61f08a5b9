//! Counters of one service instance: nothing is dropped silently.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Monotonic counters since the instance started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages the plugin handled successfully.
    pub processed: AtomicU64,
    /// Messages the plugin failed on (each is dead-lettered).
    pub failed: AtomicU64,
    /// Messages written to the DLQ.
    pub dead_lettered: AtomicU64,
    /// Retries of `transient` failures.
    pub retried: AtomicU64,
    /// Outputs produced.
    pub produced: AtomicU64,
    /// Records that arrived on the wrong partition and were forwarded to their own.
    pub forwarded: AtomicU64,
    pub transactions_committed: AtomicU64,
    pub transactions_aborted: AtomicU64,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MetricsSnapshot {
    pub processed: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub retried: u64,
    pub produced: u64,
    pub forwarded: u64,
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            processed: get(&self.processed),
            failed: get(&self.failed),
            dead_lettered: get(&self.dead_lettered),
            retried: get(&self.retried),
            produced: get(&self.produced),
            forwarded: get(&self.forwarded),
            transactions_committed: get(&self.transactions_committed),
            transactions_aborted: get(&self.transactions_aborted),
        }
    }
}
