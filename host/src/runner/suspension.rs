//! Noticing that the whole process was suspended (SIGSTOP, a frozen VM or
//! container, a debugger): a thread that ticks five times a second sees
//! the monotonic clock jump.
//!
//! A suspended instance's group session and open transaction run out on
//! the broker while it cannot notice: its partitions go to other members
//! and its transaction is aborted. On waking it would go on handling the
//! records it had fetched, and fetch more, until a heartbeat or a commit
//! tells it otherwise, a few seconds of work that is fenced and thrown away
//! with misleading log lines. So the runner asks after every poll, and a
//! suspension longer than the transaction timeout makes it rejoin with new
//! clients before it handles anything (`RunnerError::Suspended`). The
//! process watchdog also excuses the suspended time, so waking up is not
//! taken for a wedged client call.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the ticker wakes.
const TICK: Duration = Duration::from_millis(200);

/// A tick this late means the process did not run meanwhile (a starved
/// thread is late by milliseconds, not seconds).
const LATE: Duration = Duration::from_secs(2);

/// Suspended time not yet taken by the runner, in milliseconds.
static UNTAKEN_MS: AtomicU64 = AtomicU64::new(0);
static TICKER: OnceLock<()> = OnceLock::new();

/// How much of a gap between two ticks, `TICK` apart as scheduled, was a
/// suspension: none unless the tick came [`LATE`].
fn suspended(gap: Duration) -> Option<Duration> {
    (gap >= LATE).then(|| gap.saturating_sub(TICK))
}

/// Starts the ticker once per process.
pub fn watch() {
    TICKER.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("turnstile-suspension".into()).spawn(|| {
            let mut last = Instant::now();
            loop {
                std::thread::sleep(TICK);
                let now = Instant::now();
                if let Some(gap) = suspended(now.saturating_duration_since(last)) {
                    let ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX);
                    UNTAKEN_MS.fetch_add(ms, Ordering::Relaxed);
                    super::heartbeat::excuse(gap);
                }
                last = now;
            }
        });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the thread that notices a suspended process");
        }
    });
}

/// The time the process spent suspended since the last call.
pub fn take() -> Duration {
    Duration::from_millis(UNTAKEN_MS.swap(0, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_late_tick_is_a_suspension() {
        assert_eq!(suspended(TICK), None);
        assert_eq!(suspended(Duration::from_millis(900)), None, "a busy machine delays a tick a little");
        assert_eq!(suspended(Duration::from_secs(17)), Some(Duration::from_secs(17) - TICK));
    }

    #[test]
    fn a_suspension_is_taken_once() {
        UNTAKEN_MS.fetch_add(17_000, Ordering::Relaxed);
        assert!(take() >= Duration::from_secs(17));
        assert_eq!(take(), Duration::ZERO);
    }
}
