//! The instruments of one service process: counters that `status` reports
//! and `run --metrics` serves as Prometheus text, named after the Kafka
//! Streams metrics an operator already knows (`process-total`,
//! `process-rate`, `commit-latency`, `records-lag`, …). One [`Metrics`]
//! lives as long as the process: the runners the supervisor rebuilds after
//! a failure share it, so counters never go back.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

/// What the instance is doing, as Kafka Streams' thread states name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InstanceState {
    /// Joining the group or reconciling an assignment; holds no ready partition.
    Rebalancing = 0,
    /// Reading partitions' state back from the changelog.
    Restoring = 1,
    /// Handling records of its partitions.
    Running = 2,
    /// Failed; the supervisor rebuilds it after a pause (or gives up).
    Error = 3,
}

impl InstanceState {
    const ALL: [InstanceState; 4] =
        [InstanceState::Rebalancing, InstanceState::Restoring, InstanceState::Running, InstanceState::Error];

    fn from_u8(v: u8) -> Self {
        Self::ALL.get(usize::from(v)).copied().unwrap_or(InstanceState::Error)
    }

    /// The state's name, as `/readyz` and the `state` label spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Rebalancing => "rebalancing",
            InstanceState::Restoring => "restoring",
            InstanceState::Running => "running",
            InstanceState::Error => "error",
        }
    }
}

impl EncodeLabelValue for InstanceState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: InstanceState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ReloadOutcome {
    Swapped,
    Refused,
}

impl EncodeLabelValue for ReloadOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            ReloadOutcome::Swapped => "swapped",
            ReloadOutcome::Refused => "refused",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabel {
    outcome: ReloadOutcome,
}

/// Every instrument of the process. Cheap to update from the runner's
/// thread: counters and gauges are atomics, histograms a short lock.
#[derive(Debug)]
pub struct Metrics {
    /// Messages the plugin handled successfully.
    pub processed: Counter,
    /// Messages the plugin failed on (each is dead-lettered).
    pub failed: Counter,
    /// Messages written to the DLQ.
    pub dead_lettered: Counter,
    /// Retries of `transient` failures.
    pub retried: Counter,
    /// Outputs produced.
    pub produced: Counter,
    /// Records that arrived on the wrong partition and were forwarded to their own.
    pub forwarded: Counter,
    pub transactions_committed: Counter,
    pub transactions_aborted: Counter,
    /// Errors the consumer reported instead of records (an undecodable batch).
    pub consumer_errors: Counter,
    /// Start of a commit to its landing, seconds.
    commit_latency: Histogram,
    /// Input records per committed transaction.
    transaction_records: Histogram,
    /// One plugin call (a batch of messages), seconds.
    plugin_call: Histogram,
    /// Records per second handled, over the last rate window.
    process_rate: Gauge<f64, std::sync::atomic::AtomicU64>,
    rate_window: std::sync::Mutex<(Instant, u64)>,
    /// Changelog records read back into state.
    restored_records: Counter,
    restoring_partitions: Gauge,
    assigned_partitions: Gauge,
    reloads: Family<ReloadLabel, Counter>,
    state: AtomicU8,
    state_gauge: Family<StateLabel, Gauge>,
    lag: Family<PartitionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics {
            processed: Counter::default(),
            failed: Counter::default(),
            dead_lettered: Counter::default(),
            retried: Counter::default(),
            produced: Counter::default(),
            forwarded: Counter::default(),
            transactions_committed: Counter::default(),
            transactions_aborted: Counter::default(),
            consumer_errors: Counter::default(),
            // 0.5 ms … ~16 s.
            commit_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            // 1 … 16 384 records.
            transaction_records: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
            // 10 µs … ~5 s.
            plugin_call: Histogram::new(exponential_buckets(0.00001, 2.0, 20)),
            process_rate: Gauge::default(),
            rate_window: std::sync::Mutex::new((Instant::now(), 0)),
            restored_records: Counter::default(),
            restoring_partitions: Gauge::default(),
            assigned_partitions: Gauge::default(),
            reloads: Family::default(),
            state: AtomicU8::new(InstanceState::Rebalancing as u8),
            state_gauge: Family::default(),
            lag: Family::default(),
        };
        metrics.show_state(metrics.state());
        metrics
    }
}

/// A point-in-time copy of the counters, as `status` reports them.
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
    /// The longest the runner went without a heartbeat in this process
    /// (see `runner::heartbeat`): how long it was silent at worst.
    pub longest_silence_ms: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            processed: self.processed.get(),
            failed: self.failed.get(),
            dead_lettered: self.dead_lettered.get(),
            retried: self.retried.get(),
            produced: self.produced.get(),
            forwarded: self.forwarded.get(),
            transactions_committed: self.transactions_committed.get(),
            transactions_aborted: self.transactions_aborted.get(),
            longest_silence_ms: u64::try_from(super::heartbeat::longest_silence().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// A transaction of `records` input records landed `latency` after its commit started.
    pub fn committed(&self, records: usize, latency: Duration) {
        self.transactions_committed.inc();
        self.commit_latency.observe(latency.as_secs_f64());
        self.transaction_records.observe(records as f64);
    }

    /// One plugin call took `took`.
    pub fn plugin_call(&self, took: Duration) {
        self.plugin_call.observe(took.as_secs_f64());
    }

    /// Recomputes `process_rate` once at least `window` has passed since the last time.
    pub fn update_rate(&self, window: Duration) {
        let mut last = self.rate_window.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = last.0.elapsed();
        if elapsed < window {
            return;
        }
        let processed = self.processed.get();
        self.process_rate.set(processed.saturating_sub(last.1) as f64 / elapsed.as_secs_f64());
        *last = (Instant::now(), processed);
    }

    /// `records` changelog records were read back.
    pub fn restored(&self, records: u64) {
        self.restored_records.inc_by(records);
    }

    /// A deployed version was swapped in (`true`) or refused, the old one kept.
    pub fn reloaded(&self, swapped: bool) {
        let outcome = if swapped { ReloadOutcome::Swapped } else { ReloadOutcome::Refused };
        self.reloads.get_or_create(&ReloadLabel { outcome }).inc();
    }

    /// The instance's partitions: how many it holds and how many still restore.
    pub fn set_partitions(&self, assigned: usize, restoring: usize) {
        self.assigned_partitions.set(i64::try_from(assigned).unwrap_or(i64::MAX));
        self.restoring_partitions.set(i64::try_from(restoring).unwrap_or(i64::MAX));
    }

    pub fn set_state(&self, state: InstanceState) {
        if self.state.swap(state as u8, Ordering::Relaxed) != state as u8 {
            self.show_state(state);
        }
    }

    /// 1 on `state`'s gauge, 0 on the others.
    fn show_state(&self, state: InstanceState) {
        for s in InstanceState::ALL {
            self.state_gauge.get_or_create(&StateLabel { state: s }).set(i64::from(s == state));
        }
    }

    pub fn state(&self) -> InstanceState {
        InstanceState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Ready to be sent traffic: holding partitions, all of them restored.
    pub fn is_ready(&self) -> bool {
        self.state() == InstanceState::Running
    }

    /// Replaces the lag gauges with the consumer's latest report: records
    /// between the position and the end of each assigned input partition.
    pub fn set_lag(&self, lags: impl IntoIterator<Item = (String, i32, i64)>) {
        self.lag.clear();
        for (topic, partition, lag) in lags {
            self.lag.get_or_create(&PartitionLabels { topic, partition }).set(lag);
        }
    }

    /// Registers every instrument under `registry` (which carries the
    /// `turnstile` prefix and the instance's labels).
    pub fn register(&self, registry: &mut Registry) {
        let counters: [(&str, &str, &Counter); 10] = [
            ("records_processed", "Records the plugin handled successfully", &self.processed),
            ("records_failed", "Records the plugin failed on; each is dead-lettered", &self.failed),
            ("records_dead_lettered", "Records written to the dead-letter topic", &self.dead_lettered),
            ("records_retried", "Retries of records that failed transiently", &self.retried),
            ("records_produced", "Output records produced", &self.produced),
            (
                "records_forwarded",
                "Records that arrived on the wrong partition, forwarded to their own",
                &self.forwarded,
            ),
            ("transactions_committed", "Kafka transactions committed", &self.transactions_committed),
            (
                "transactions_aborted",
                "Kafka transactions aborted (their input is handled again)",
                &self.transactions_aborted,
            ),
            ("restore_records", "Changelog records read back into state", &self.restored_records),
            (
                "consumer_errors",
                "Errors the consumer reported instead of records (a batch it cannot decode); the instance state is error while they recur",
                &self.consumer_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "process_rate",
            "Records handled per second, over the last few seconds",
            self.process_rate.clone(),
        );
        registry.register_with_unit(
            "commit_latency",
            "From the start of a commit to its landing",
            Unit::Seconds,
            self.commit_latency.clone(),
        );
        registry.register(
            "transaction_records",
            "Input records per committed transaction",
            self.transaction_records.clone(),
        );
        registry.register_with_unit(
            "plugin_call",
            "One call into the plugin, with a batch of records",
            Unit::Seconds,
            self.plugin_call.clone(),
        );
        registry.register(
            "restoring_partitions",
            "Partitions whose state is being restored",
            self.restoring_partitions.clone(),
        );
        registry.register(
            "assigned_partitions",
            "Partitions held of every input topic",
            self.assigned_partitions.clone(),
        );
        registry.register("plugin_reloads", "Deployed versions swapped in or refused", self.reloads.clone());
        registry.register("instance_state", "1 for the state the instance is in", self.state_gauge.clone());
        registry.register(
            "records_lag",
            "Records between the consumer's position and the partition's end",
            self.lag.clone(),
        );
    }
}
