//! When the poll loop waits for input and when it commits: latency follows
//! the work under light load, batches grow by themselves under heavy load.

use std::time::Duration;

/// How long the loop's first poll of a turn may wait when nothing is open.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// The open transaction as the loop sees it at the top of a turn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Open {
    /// How long it has been open; `None` when no transaction is open.
    pub open_for: Option<Duration>,
    /// It holds a critical output (commit at once).
    pub critical: bool,
}

/// The pacing settings (`runner.commit_interval_ms`, `commit_min_gap_ms`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    pub interval: Duration,
    pub min_gap: Duration,
}

impl Pace {
    /// How long the turn's first poll may wait for input. An open
    /// transaction waits at most until it may commit; a commit in flight
    /// changes nothing: input ends the wait at once, and a landing is
    /// collected at the next turn or by the next commit, which waits for it.
    /// (The loop used to poll every millisecond while a commit was in
    /// flight: a busy spin for the whole commit.)
    pub fn poll_wait(&self, open: Open, restoring: bool) -> Duration {
        match open.open_for {
            _ if open.critical || restoring => Duration::ZERO,
            Some(open_for) => self.min_gap.saturating_sub(open_for).min(self.interval.saturating_sub(open_for)),
            None => IDLE_WAIT,
        }
    }

    /// Whether an open transaction commits now: drained (no more input
    /// waiting) once it is critical or `min_gap` old, or due by size or age.
    /// A drained one starts even while a commit is in flight; starting waits
    /// for that one to land, without polling, as nothing else is waiting.
    pub fn commit_now(&self, open: Open, idle: bool, due: bool) -> bool {
        let drained = idle && open.open_for.is_some_and(|age| open.critical || age >= self.min_gap);
        drained || due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pace() -> Pace {
        Pace { interval: 100 * MS, min_gap: 40 * MS }
    }

    #[test]
    fn a_commit_in_flight_is_waited_for_like_input_not_polled_for() {
        // Nothing open (the commit in flight is not an input): the idle wait.
        let nothing_open = Open { open_for: None, critical: false };
        assert_eq!(pace().poll_wait(nothing_open, false), IDLE_WAIT);
        // Open for 10 ms: wait until it may commit, 30 ms later; never 1 ms.
        let young = Open { open_for: Some(10 * MS), critical: false };
        assert_eq!(pace().poll_wait(young, false), 30 * MS);
    }

    #[test]
    fn critical_outputs_and_restores_do_not_wait() {
        let critical = Open { open_for: Some(MS), critical: true };
        assert_eq!(pace().poll_wait(critical, false), Duration::ZERO);
        assert_eq!(pace().poll_wait(Open { open_for: None, critical: false }, true), Duration::ZERO);
    }

    #[test]
    fn a_drained_transaction_commits_without_waiting_for_the_one_in_flight() {
        let old = Open { open_for: Some(50 * MS), critical: false };
        assert!(pace().commit_now(old, true, false), "drained and min_gap old");
        let young = Open { open_for: Some(10 * MS), critical: false };
        assert!(!pace().commit_now(young, true, false), "drained but younger than min_gap");
        assert!(pace().commit_now(Open { critical: true, ..young }, true, false), "critical");
        assert!(!pace().commit_now(old, false, false), "input still waiting");
        assert!(pace().commit_now(old, false, true), "due by size or age");
        assert!(!pace().commit_now(Open { open_for: None, critical: false }, true, false), "nothing open");
    }
}
