//! Warnings about pressure on a limit, at most one per interval: a flood
//! of refused connections must not become a flood of log lines.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often one kind of pressure is logged.
const EVERY: Duration = Duration::from_secs(10);

/// One limit's warnings.
#[derive(Debug)]
pub struct Pressure {
    name: &'static str,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Pressure {
    pub const fn new(name: &'static str) -> Self {
        Pressure { name, last: Mutex::new(None), suppressed: AtomicU64::new(0) }
    }

    /// The limit's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Calls `log` with the number of warnings suppressed since the last
    /// one, if the last was longer than the interval ago.
    pub fn warn(&self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        drop(last);
        log(self.suppressed.swap(0, Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_once_with_the_count_of_the_rest() {
        let p = Pressure::new("test");
        let mut logged = Vec::new();
        for _ in 0..5 {
            p.warn(|n| logged.push(n));
        }
        assert_eq!(logged, vec![0]);
        *p.last.lock().unwrap() = Some(Instant::now() - EVERY);
        p.warn(|n| logged.push(n));
        assert_eq!(logged, vec![0, 4]);
    }
}
