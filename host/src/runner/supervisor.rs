//! Self-healing: a runner that fails in a way a restart fixes (fenced by a
//! zombie's successor, its transaction timed out while it was stopped, the
//! cluster unreachable while it restored or committed) is rebuilt in this
//! process: new producer (`init_transactions` takes over the transactional
//! id), new consumer (rejoins the group), state restored from the
//! changelog. Only what a restart cannot fix, or failing for longer than
//! `kafka.outage_timeout_ms` in a row, ends the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::metrics::MetricsSnapshot;
use super::{Runner, RunnerError};
use crate::admin::Cluster;
use crate::config::Config;

/// An attempt that ran at least this long was healthy: a later failure
/// starts a new streak instead of counting against the outage timeout.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

impl RunnerError {
    /// Whether rebuilding the runner (producer, consumer, state) can fix it.
    pub fn is_recoverable(&self) -> bool {
        match self {
            RunnerError::Kafka(_)
            | RunnerError::Publish(_)
            | RunnerError::Admin(_)
            | RunnerError::Transaction(_)
            | RunnerError::Rewind { .. }
            | RunnerError::Rebalance(_)
            | RunnerError::Stalled { .. }
            | RunnerError::NotFetching { .. } => true,
            RunnerError::Plugin(_)
            | RunnerError::NotProvisioned { .. }
            | RunnerError::WrongService { .. }
            | RunnerError::MissingInput { .. }
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
        match Cluster::connect(config) {
            Ok(cluster) => {
                if logged {
                    tracing::info!(bootstrap = %config.kafka.bootstrap, "Kafka is reachable");
                }
                return Ok(Some(cluster));
            }
            Err(err) if Instant::now() < deadline => {
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
pub fn supervise(
    config: &Config,
    shutdown: &AtomicBool,
    mut start: impl FnMut(&Cluster) -> Result<Runner, RunnerError>,
) -> Result<MetricsSnapshot, RunnerError> {
    let outage = Duration::from_millis(config.kafka.outage_timeout_ms);
    let mut failing_since: Option<Instant> = None;
    let mut pause = Duration::from_millis(250);
    let mut restarts = 0u32;
    loop {
        let attempt = Instant::now();
        let mut committed = 0;
        let result = match wait_for_cluster(config, shutdown) {
            Ok(Some(cluster)) => start(&cluster).and_then(|runner| {
                let metrics = runner.metrics();
                let result = runner.run(shutdown);
                committed = metrics.snapshot().transactions_committed;
                result
            }),
            Ok(None) => return Ok(MetricsSnapshot::default()),
            Err(err) => Err(RunnerError::Admin(err.into())),
        };
        let err = match result {
            Ok(metrics) => return Ok(metrics),
            Err(err) => err,
        };
        if !err.is_recoverable() {
            return Err(err);
        }
        if shutdown.load(Ordering::Relaxed) {
            // A stop asked for during an outage: what was not committed is
            // aborted and read again by the next owner, so this is still a
            // clean stop.
            tracing::error!(error = %err, "stopping without committing the open transaction; the broker aborts it");
            return Ok(MetricsSnapshot::default());
        }
        // Healthy means it worked for a while: a stall or a restore timeout
        // always takes longer than HEALTHY_RUN, and must not reset the
        // streak unless the attempt committed something first.
        let slow_failure = matches!(err, RunnerError::Stalled { .. } | RunnerError::Rebalance(_));
        if attempt.elapsed() >= HEALTHY_RUN && (committed > 0 || !slow_failure) {
            failing_since = None;
            pause = Duration::from_millis(250);
        }
        let since = *failing_since.get_or_insert(attempt);
        if since.elapsed() >= outage {
            tracing::error!(error = %err, failing_for = ?since.elapsed(), "giving up: failures lasted longer than kafka.outage_timeout_ms");
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

/// Sleeps `total`, waking early (and returning `true`) on shutdown.
fn sleep_unless(shutdown: &AtomicBool, total: Duration) -> bool {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if shutdown.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
    }
    shutdown.load(Ordering::Relaxed)
}
