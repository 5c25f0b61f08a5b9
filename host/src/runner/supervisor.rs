//! Self-healing: a runner that fails in a way a restart fixes (fenced by a
//! zombie's successor, its transaction timed out while it was stopped, the
//! cluster unreachable while it restored or committed) is rebuilt in this
//! process: new producer (`init_transactions` takes over the transactional
//! id), new consumer (rejoins the group), state restored from the
//! changelog. Only what a restart cannot fix, or failing for longer than
//! `kafka.outage_timeout_ms` in a row, ends the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::heartbeat;
use super::metrics::{InstanceState, Metrics, MetricsSnapshot};
use super::{Runner, RunnerError};
use crate::admin::Cluster;
use crate::config::Config;

/// An attempt that ran at least this long was healthy: a later failure
/// starts a new streak instead of counting against the outage timeout.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// A producer fence this soon after the attempt's own `init_transactions`
/// means someone else took the transactional id right back.
const FENCE_RIGHT_AFTER_START: Duration = Duration::from_secs(30);

/// After this many such fences in a row, two live processes share an
/// instance id: no restart can fix that.
const DUPLICATE_FENCES: u32 = 3;

impl RunnerError {
    /// Whether rebuilding the runner (producer, consumer, state) can fix it.
    pub fn is_recoverable(&self) -> bool {
        match self {
            // The cluster refused us (credentials, certificates): only the
            // configuration can fix that.
            RunnerError::Admin(crate::admin::AdminError::Connect(unreachable)) if unreachable.refused => false,
            RunnerError::Kafka(_)
            | RunnerError::Publish(_)
            | RunnerError::Admin(_)
            | RunnerError::Transaction(_)
            | RunnerError::Rewind { .. }
            | RunnerError::Rebalance(_)
            | RunnerError::Stalled { .. }
            | RunnerError::NotFetching { .. }
            | RunnerError::Suspended { .. } => true,
            RunnerError::DuplicateInstance { .. }
            | RunnerError::Plugin(_)
            | RunnerError::NotProvisioned { .. }
            | RunnerError::WrongService { .. }
            | RunnerError::Topology(_)
            | RunnerError::InputsChanged { .. }
            | RunnerError::UnequalPartitions { .. }
            | RunnerError::PluginUnavailable(_)
            | RunnerError::Deployment(_)
            | RunnerError::Routing(_) => false,
        }
    }
}

/// Connects to the cluster, waiting up to `kafka.outage_timeout_ms` for it
/// and saying what it waits for. `None` if `shutdown` was set meanwhile.
pub fn wait_for_cluster(config: &Config, shutdown: &AtomicBool) -> Result<Option<Cluster>, crate::admin::Unreachable> {
    let deadline = Instant::now() + Duration::from_millis(config.kafka.outage_timeout_ms);
    let mut logged = false;
    loop {
        heartbeat::beat();
        match Cluster::connect(config) {
            Ok(cluster) => {
                if logged {
                    tracing::info!(bootstrap = %config.kafka.bootstrap, "Kafka is reachable");
                }
                return Ok(Some(cluster));
            }
            // A refusal (a wrong password, an untrusted certificate) is the
            // configuration's fault: say so now instead of for two minutes.
            Err(err) if !err.refused && Instant::now() < deadline => {
                if !logged {
                    tracing::warn!(bootstrap = %config.kafka.bootstrap, outage_timeout_ms = config.kafka.outage_timeout_ms, error = %err, "waiting for Kafka");
                    logged = true;
                }
                if sleep_unless(shutdown, Duration::from_secs(1)) {
                    return Ok(None);
                }
            }
            Err(err) => return Err(err),
        }
    }
}

/// Runs `start()`'s runner until `shutdown`, rebuilding it after every
/// recoverable failure (with a growing pause, at most 5 s) until failures
/// have lasted `kafka.outage_timeout_ms` without a healthy run between.
///
/// `metrics` are the ones `start` gives its runners: they outlive each.
///
/// The heartbeat (see [`heartbeat`]) beats from the first attempt to the
/// end, through rebuilds and waits for the cluster.
pub fn supervise(
    config: &Config,
    shutdown: &AtomicBool,
    metrics: &Metrics,
    start: impl FnMut(&Cluster) -> Result<Runner, RunnerError>,
) -> Result<MetricsSnapshot, RunnerError> {
    heartbeat::beat();
    let result = supervise_attempts(config, shutdown, metrics, start);
    heartbeat::rest();
    result
}

fn supervise_attempts(
    config: &Config,
    shutdown: &AtomicBool,
    metrics: &Metrics,
    mut start: impl FnMut(&Cluster) -> Result<Runner, RunnerError>,
) -> Result<MetricsSnapshot, RunnerError> {
    let outage = Duration::from_millis(config.kafka.outage_timeout_ms);
    let mut streak = Streak::default();
    let mut pause = Duration::from_millis(250);
    let mut restarts = 0u32;
    let mut fences = 0u32;
    loop {
        let attempt = Instant::now();
        let before = metrics.transactions_committed.get();
        let result = match wait_for_cluster(config, shutdown) {
            Ok(Some(cluster)) => start(&cluster).and_then(|runner| runner.run(shutdown)),
            Ok(None) => return Ok(MetricsSnapshot::default()),
            Err(err) => Err(RunnerError::Admin(err.into())),
        };
        let err = match result {
            Ok(metrics) => return Ok(metrics),
            Err(err) => err,
        };
        metrics.set_state(InstanceState::Error);
        let committed = metrics.transactions_committed.get().saturating_sub(before);
        if !err.is_recoverable() {
            return Err(err);
        }
        fences = if err.is_producer_fenced() && attempt.elapsed() < FENCE_RIGHT_AFTER_START { fences + 1 } else { 0 };
        if fences >= DUPLICATE_FENCES {
            return Err(duplicate_instance(config, fences));
        }
        if shutdown.load(Ordering::Relaxed) {
            // A stop asked for during an outage: what was not committed is
            // aborted and read again by the next owner, so this is still a
            // clean stop.
            tracing::error!(error = %err, "stopping without committing the open transaction; the broker aborts it");
            return Ok(MetricsSnapshot::default());
        }
        let slow_failure = matches!(err, RunnerError::Stalled { .. } | RunnerError::Rebalance(_));
        let failing_for = streak.failed(attempt, Instant::now(), committed, slow_failure);
        if failing_for == Duration::ZERO {
            pause = Duration::from_millis(250);
        }
        if failing_for >= outage {
            tracing::error!(error = %err, ?failing_for, "giving up: failures lasted longer than kafka.outage_timeout_ms");
            return Err(err);
        }
        restarts += 1;
        tracing::warn!(error = %err, restarts, pause = ?pause, "runner failed; rejoining with a new producer and consumer");
        if sleep_unless(shutdown, pause) {
            return Ok(MetricsSnapshot::default());
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The error that names the transactional id two live processes share.
fn duplicate_instance(config: &Config, fences: u32) -> RunnerError {
    let s = &config.service;
    let transactional_id = match (&s.name, s.event_id) {
        (Some(service), Some(event_id)) => super::Identity::from_config(config, service, event_id).transactional_id,
        _ => format!("(instance {})", s.producer_instance_id.as_deref().unwrap_or(&s.consumer_instance_id)),
    };
    RunnerError::DuplicateInstance { transactional_id, instance_id: s.consumer_instance_id.clone(), fences }
}

/// How long the runner has been failing without a healthy attempt between.
#[derive(Debug, Default)]
struct Streak {
    since: Option<Instant>,
}

impl Streak {
    /// Books an attempt that started at `started` and failed at `now`,
    /// having committed `committed` transactions; returns how long the
    /// failures have lasted (zero: this failure starts a new streak).
    ///
    /// An attempt was healthy if it committed anything (it made progress,
    /// however short it was), or if it ran `HEALTHY_RUN` and failed fast;
    /// a stall or a restore timeout always takes that long and counts only
    /// with a commit. After a healthy attempt the streak starts at its
    /// failure, not at its start: a long healthy run is not an outage.
    fn failed(&mut self, started: Instant, now: Instant, committed: u64, slow_failure: bool) -> Duration {
        let ran = now.saturating_duration_since(started);
        if committed > 0 || (ran >= HEALTHY_RUN && !slow_failure) {
            self.since = Some(now);
        }
        now.saturating_duration_since(*self.since.get_or_insert(started))
    }
}

/// Sleeps `total`, waking early (and returning `true`) on shutdown.
fn sleep_unless(shutdown: &AtomicBool, total: Duration) -> bool {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if shutdown.load(Ordering::Relaxed) {
            return true;
        }
        heartbeat::beat();
        std::thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
    }
    shutdown.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_failure_after_a_long_healthy_run_starts_a_new_streak() {
        let t0 = Instant::now();
        let mut streak = Streak::default();
        // Ran 200 s, committing, then failed: not 200 s of outage.
        assert_eq!(streak.failed(t0, t0 + 200 * S, 500, false), Duration::ZERO);
        // Attempts that commit nothing add up from that failure on.
        assert_eq!(streak.failed(t0 + 201 * S, t0 + 211 * S, 0, false), 11 * S);
        assert_eq!(
            streak.failed(t0 + 212 * S, t0 + 250 * S, 0, true),
            50 * S,
            "a stall without a commit is no progress"
        );
    }

    #[test]
    fn short_attempts_that_commit_keep_the_streak_short() {
        let t0 = Instant::now();
        let mut streak = Streak::default();
        // Chaos every few seconds: each attempt commits a little, then fails.
        for i in 0..60u32 {
            let started = t0 + 5 * i * S;
            assert_eq!(streak.failed(started, started + 4 * S, 3, i % 2 == 0), Duration::ZERO);
        }
    }

    #[test]
    fn a_crash_loop_without_progress_adds_up_from_its_first_attempt() {
        let t0 = Instant::now();
        let mut streak = Streak::default();
        assert_eq!(streak.failed(t0, t0 + S, 0, false), S);
        assert_eq!(streak.failed(t0 + 2 * S, t0 + 3 * S, 0, false), 3 * S);
        assert_eq!(streak.failed(t0 + 4 * S, t0 + 40 * S, 0, false), Duration::ZERO, "ran 36 s: healthy");
    }
}
