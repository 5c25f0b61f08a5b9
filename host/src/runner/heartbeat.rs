//! The runner loop's heartbeat, for the process-level watchdog in
//! `turnstile run`.
//!
//! Every client call the loop makes is bounded, except that librdkafka
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

fn now_ms() -> u64 {
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The loop is alive: called once per iteration.
pub fn beat() {
    LAST_MS.store(now_ms(), Ordering::Relaxed);
    ACTIVE.store(true, Ordering::Relaxed);
}

/// The loop ended (outside it, waits are bounded by their own timeouts).
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
