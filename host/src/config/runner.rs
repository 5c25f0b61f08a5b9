//! `[runner]`: the consume → plugin → produce loop.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The consume → plugin → produce loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// A transaction commits at least this often while messages flow.
    pub commit_interval_ms: u64,
    /// … or when it holds this many input messages. Under a backlog the
    /// broker's cost per transaction dominates, so this is large enough that
    /// the commit interval is what usually ends a transaction (BENCHMARKS.md).
    pub max_batch: usize,
    /// … or as soon as no more input is waiting, once it has been open this
    /// long (at most `commit_interval_ms`): latency follows the work under
    /// light load, and batches grow by themselves under heavy load. The
    /// default equals the commit interval: with the broker on the same two
    /// cores, smaller gaps made latency worse (BENCHMARKS.md).
    pub commit_min_gap_ms: u64,
    /// Most consecutive messages of one partition handed to the plugin in
    /// one call (WIT `handle` takes a batch): fewer crossings of the
    /// wasm boundary, each message still kept or dropped on its own.
    pub plugin_batch: usize,
    /// Retries of a `transient` plugin error before the message is dead-lettered.
    pub max_retries: u32,
    /// First retry delay; doubles on each retry.
    pub retry_backoff_ms: u64,
    /// Bound on a graceful shutdown.
    pub shutdown_timeout_ms: u64,
    /// `linger.ms` of the transactional producer; small, because every
    /// commit sends what is queued anyway.
    pub linger_ms: u32,
    /// Where instances write the reports that `turnstile status` shows.
    pub status_dir: PathBuf,
    /// The input consumer's `fetch.min.bytes`: larger means fewer, fuller
    /// fetches under load, at up to `fetch_wait_max_ms` more latency.
    pub fetch_min_bytes: u32,
    /// The input consumer's `fetch.wait.max.ms`.
    pub fetch_wait_max_ms: u32,
    /// Upper bound of the doubling retry delay.
    pub max_retry_backoff_ms: u64,
    /// `transaction.timeout.ms` of the transactional producer: a dead
    /// instance's open transaction blocks readers this long at most.
    pub transaction_timeout_ms: u64,
    /// `max.poll.interval.ms` of the input consumer.
    pub max_poll_interval_ms: u64,
    /// A runner silent this long (stuck inside one Kafka client call) makes
    /// `turnstile run` replace its process in place. Every blocking step of
    /// the runner is bounded by a third of it (see
    /// [`RunnerConfig::call_timeout`]), so an instance that cannot make
    /// progress is rebuilt in process long before.
    pub wedge_timeout_ms: u64,
    /// How services join their consumer groups (see [`GroupProtocol`]).
    pub group_protocol: GroupProtocol,
    /// Largest record the runner produces (key, value and headers); also the
    /// producer's `message.max.bytes`. Outputs, dead letters and changelog
    /// records over it are never sent (DOMAIN.md: poison never stops a service).
    pub max_record_bytes: usize,
    /// How long restoring newly assigned partitions may read nothing before
    /// it fails (a long changelog may take longer in all; a dead owner's open
    /// transaction holds it until the broker aborts that).
    pub restore_timeout_ms: u64,
    /// Where instances keep local checkpoints of partition state, so that a
    /// restart reads only the changelog's tail.
    pub checkpoint_dir: PathBuf,
    /// How often changed partition state is checkpointed (also on revoke
    /// and shutdown); 0 turns checkpoints off.
    pub checkpoint_interval_ms: u64,
    /// Checkpoints older than this are not used: compaction may have dropped
    /// a delete written after them once the changelog's
    /// `delete.retention.ms` (24 h by default) has passed.
    pub checkpoint_max_age_ms: u64,
    /// A runner with input waiting that commits nothing for this long is
    /// `stalled`: it logs an error, aborts, rewinds and retries.
    pub stall_timeout_ms: u64,
}

/// The consumer group protocol of the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// Kafka 4's protocol (KIP-848) with the broker's `range` assignor:
    /// incremental rebalances, so partitions that stay keep flowing. The
    /// default (Kafka 4 brokers only).
    Consumer,
    /// The classic protocol with eager `range` assignment: every membership
    /// change revokes every partition (restores then read only the tail
    /// after the local checkpoint). For brokers older than Kafka 4.
    Classic,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            commit_interval_ms: 100,
            max_batch: 5000,
            plugin_batch: 64,
            commit_min_gap_ms: 100,
            max_retries: 3,
            retry_backoff_ms: 50,
            shutdown_timeout_ms: 10_000,
            linger_ms: 5,
            status_dir: PathBuf::from(".turnstile/status"),
            fetch_min_bytes: 1,
            fetch_wait_max_ms: 500,
            max_retry_backoff_ms: 1_000,
            transaction_timeout_ms: 15_000,
            max_poll_interval_ms: 60_000,
            group_protocol: GroupProtocol::Consumer,
            wedge_timeout_ms: 30_000,
            max_record_bytes: 1_000_000,
            restore_timeout_ms: 30_000,
            checkpoint_dir: PathBuf::from(".turnstile/checkpoints"),
            checkpoint_interval_ms: 10_000,
            checkpoint_max_age_ms: 3_600_000,
            stall_timeout_ms: 20_000,
        }
    }
}

impl RunnerConfig {
    /// The bound of each blocking Kafka call of the runner (initializing,
    /// aborting, a whole commit as the loop waits for it, closing a failed
    /// runner's clients): a third of `wedge_timeout_ms`, so that the longest
    /// chain between two heartbeats (the revoke hook's two commits, or a
    /// teardown's abort and close) stays inside the watchdog's bound and an
    /// instance that cannot make progress is rebuilt in process first.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.wedge_timeout_ms / 3)
    }
}
