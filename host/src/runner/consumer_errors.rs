//! Errors the consumer reports instead of records (a record batch it cannot
//! decode, a partition it cannot fetch). librdkafka repeats such an error on
//! every fetch, dozens of times a second, and the partition does not move:
//! the log says it once a minute with how often it recurred, and while it
//! recurs the instance reports `error` with the reason (`status`, `/readyz`,
//! the `state` metric) instead of looking healthy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often one recurring error is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// An error counts as current once it has recurred for this long (a broker
/// restart's brief transport errors do not)…
const PERSISTS_FOR: Duration = Duration::from_secs(5);

/// …and while it recurred this recently.
const CURRENT_FOR: Duration = Duration::from_secs(10);

/// The consumer errors of one runner.
#[derive(Debug, Default)]
pub(super) struct ConsumerErrors {
    /// The last error: its text, when it was last logged, when last seen, and
    /// how often it recurred since it was logged.
    last: Option<Recurring>,
}

#[derive(Debug)]
struct Recurring {
    text: String,
    /// When it started recurring without a pause of [`CURRENT_FOR`].
    first: Instant,
    logged: Instant,
    seen: Instant,
    unlogged: u64,
}

/// What to log for an error just seen: its text and how often it recurred
/// unlogged before.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ToLog {
    pub text: String,
    pub repeated: u64,
}

impl ConsumerErrors {
    /// Notes `text` seen at `now`; what to log, if anything.
    pub(super) fn observe(&mut self, text: String, now: Instant) -> Option<ToLog> {
        match &mut self.last {
            Some(last) if last.text == text && now.saturating_duration_since(last.logged) < LOG_EVERY => {
                if now.saturating_duration_since(last.seen) >= CURRENT_FOR {
                    last.first = now;
                }
                last.seen = now;
                last.unlogged += 1;
                None
            }
            _ => {
                let same = self.last.as_ref().filter(|l| l.text == text);
                let repeated = same.map_or(0, |l| l.unlogged);
                let first =
                    same.filter(|l| now.saturating_duration_since(l.seen) < CURRENT_FOR).map_or(now, |l| l.first);
                self.last = Some(Recurring { text: text.clone(), first, logged: now, seen: now, unlogged: 0 });
                Some(ToLog { text, repeated })
            }
        }
    }

    /// The error that keeps recurring at `now`, if any (see [`PERSISTS_FOR`]).
    pub(super) fn current(&self, now: Instant) -> Option<&str> {
        self.last
            .as_ref()
            .filter(|l| {
                now.saturating_duration_since(l.seen) < CURRENT_FOR
                    && l.seen.saturating_duration_since(l.first) >= PERSISTS_FOR
            })
            .map(|l| l.text.as_str())
    }
}

/// What librdkafka's error callback reports for the runner's consumer:
/// the errors the loop also gets from `poll`, and the client's own
/// (transport, all brokers down). Each distinct text is logged at most once
/// a minute, with how often it recurred unlogged.
#[derive(Debug, Default)]
pub(super) struct ClientErrorLog {
    /// Per text: when it was last logged, how often seen since.
    seen: HashMap<String, (Instant, u64)>,
}

/// Texts remembered at most; older ones are forgotten first.
const REMEMBERED: usize = 256;

impl ClientErrorLog {
    /// Notes `text` seen at `now`; what to log, if anything.
    pub(super) fn observe(&mut self, text: String, now: Instant) -> Option<ToLog> {
        if let Some((logged, unlogged)) = self.seen.get_mut(&text) {
            if now.saturating_duration_since(*logged) < LOG_EVERY {
                *unlogged += 1;
                return None;
            }
            let repeated = std::mem::take(unlogged);
            *logged = now;
            return Some(ToLog { text, repeated });
        }
        if self.seen.len() >= REMEMBERED {
            self.seen.retain(|_, (logged, _)| now.saturating_duration_since(*logged) < LOG_EVERY);
        }
        self.seen.insert(text.clone(), (now, 0));
        Some(ToLog { text, repeated: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_error_is_logged_once_a_minute() {
        let t0 = Instant::now();
        let mut log = ClientErrorLog::default();
        let bad = "BadCompression: Decompression (codec 0x3) of message at 0 failed".to_owned();
        assert!(log.observe(bad.clone(), t0).is_some());
        for tick in 1..120u32 {
            assert_eq!(log.observe(bad.clone(), t0 + tick * S / 2), None, "twice a second for a minute");
        }
        assert!(log.observe("AllBrokersDown".into(), t0 + 30 * S).is_some(), "another error is its own");
        assert_eq!(log.observe(bad.clone(), t0 + 61 * S), Some(ToLog { text: bad, repeated: 119 }));
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_recurring_error_is_logged_once_a_minute_with_its_count() {
        let t0 = Instant::now();
        let mut errors = ConsumerErrors::default();
        let bad = "Decompression (codec 0x4) of message at 17 failed".to_owned();
        assert_eq!(errors.observe(bad.clone(), t0), Some(ToLog { text: bad.clone(), repeated: 0 }));
        assert_eq!(errors.current(t0), None, "one error is not yet a stuck partition");
        // Dozens a second for a minute: nothing more in the log.
        for tick in 1..1_200u32 {
            assert_eq!(errors.observe(bad.clone(), t0 + tick * S / 20), None);
        }
        assert_eq!(errors.current(t0 + 60 * S), Some(bad.as_str()), "reported while it recurs");
        assert_eq!(errors.observe(bad.clone(), t0 + 61 * S), Some(ToLog { text: bad.clone(), repeated: 1_199 }));
        // Another error is logged at once; one that stopped is no longer current.
        assert!(errors.observe("other".into(), t0 + 62 * S).is_some());
        assert_eq!(errors.current(t0 + 80 * S), None);
    }
}
