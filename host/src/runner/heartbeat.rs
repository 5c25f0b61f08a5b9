//! The runner's heartbeat, for the process-level watchdog in `turnstile run`.
//!
//! It beats from the first attempt of the supervisor to its end: in every
//! turn of the poll loop, between the bounded steps of a teardown and a
//! rebuild, and while waiting for the cluster. Each of those steps is
//! bounded well inside `runner.wedge_timeout_ms` (ARCHITECTURE.md,
//! "Watchdogs"), so a silence that long means a client call that did not
//! keep its own bound. librdkafka
//! 2.12.1's `send_offsets_to_transaction` was seen waiting forever (an
//! internal wait with no timeout) after the group or transaction
//! coordinator restarted, on a three-broker cluster under a rolling
//! restart. A thread stuck in librdkafka cannot be unstuck, and its client
//! cannot be dropped, so the watchdog replaces the whole process in place
//! (see `cmd/run.rs`); fencing by transactional id makes that as safe as a
//! crash.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();
static LAST_MS: AtomicU64 = AtomicU64::new(0);
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The longest gap between two beats so far.
static LONGEST_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The runner is alive: called once per loop turn and between the steps
/// of a rebuild.
pub fn beat() {
    let now = now_ms();
    let last = LAST_MS.swap(now, Ordering::Relaxed);
    if ACTIVE.swap(true, Ordering::Relaxed) {
        LONGEST_MS.fetch_max(now.saturating_sub(last), Ordering::Relaxed);
    }
}

/// Moves the last beat forward by `gap`, the time the whole process was
/// suspended (see `runner::suspension`): that is not a silence of the runner.
pub fn excuse(gap: Duration) {
    let ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX);
    let now = now_ms();
    let _ = LAST_MS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(last.saturating_add(ms).min(now)));
}

/// The runner ended (a stop outside it is bounded by `shutdown_timeout_ms`).
pub fn rest() {
    ACTIVE.store(false, Ordering::Relaxed);
}

/// How long the running loop has gone without a beat; `None` when no loop
/// runs.
pub fn silent_for() -> Option<Duration> {
    ACTIVE
        .load(Ordering::Relaxed)
        .then(|| Duration::from_millis(now_ms().saturating_sub(LAST_MS.load(Ordering::Relaxed))))
}

/// The longest the runner went without a beat while active, in this process.
pub fn longest_silence() -> Duration {
    Duration::from_millis(LONGEST_MS.load(Ordering::Relaxed))
}
