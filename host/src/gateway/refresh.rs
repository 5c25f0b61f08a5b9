//! The snapshot step: turns the venue's changes into a new [`Snapshot`] on
//! its own thread, off the request path. Bursts are coalesced: the first
//! change after a quiet spell is published at once, later ones at most
//! every `gateway.seat_events_interval_ms`, so the snapshot trails the
//! feed by about one interval however busy the topics are.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::histogram::Histogram;

use super::feed::{State, Views};
use super::snapshot::Snapshot;

/// How often the step looks at `stop` while nothing changes.
const POLL: Duration = Duration::from_millis(100);

/// Starts the snapshot step; runs until `stop` is set. `lag` observes how
/// far behind the topics each snapshot was when published.
pub fn spawn(
    views: Arc<Views>,
    interval: Duration,
    lag: Histogram,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("gateway-snapshot".into()).spawn(move || {
        let mut last: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            if !has_work(&views, POLL) {
                continue;
            }
            if let Some(wait) = last.and_then(|last| (last + interval).checked_duration_since(Instant::now())) {
                std::thread::sleep(wait);
            }
            last = Some(Instant::now());
            publish(&views, &lag);
        }
    })
}

/// Waits up to `timeout` for something to publish: a venue change, or the
/// feed having caught up while not ready yet.
fn has_work(views: &Views, timeout: Duration) -> bool {
    let pending = |state: &State| {
        state.venue.is_dirty() || (views.caught_up.load(Ordering::Acquire) && !views.ready.load(Ordering::Acquire))
    };
    let state = views.lock();
    if pending(&state) {
        return true;
    }
    let (state, _) = views.venue_changed.wait_timeout(state, timeout).unwrap_or_else(|p| p.into_inner());
    pending(&state)
}

/// Takes the venue's changes under the lock (O(subsections + seats of the
/// changed ones)), serializes them outside it, and publishes the snapshot.
pub(super) fn publish(views: &Views, lag: &Histogram) {
    // Read before the changes are taken: all the feed read by then is in them.
    let caught_up = views.caught_up.load(Ordering::Acquire);
    let (changes, since) = {
        let mut state = views.lock();
        (state.venue.take_changes(), state.unpublished_since.take())
    };
    let current: Arc<Snapshot> = views.snapshot();
    let next = match current.next(&changes) {
        Ok(next) => next,
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize the venue; the previous snapshot stays");
            return;
        }
    };
    views.snapshots.send_replace(Arc::new(next));
    // While catching up the records are old by design: that is no lag.
    if let Some(since) = since.filter(|_| views.is_ready()) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        lag.observe(now.saturating_sub(since).max(0) as f64 / 1000.0);
    }
    if caught_up && !views.ready.swap(true, Ordering::AcqRel) {
        tracing::info!(version = changes.version, "views caught up and published; ready");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnstile_protocol::ConfigureSubsection;

    #[test]
    fn a_publish_carries_the_changes_and_readiness_waits_for_it() {
        let views = Arc::new(Views::new(Duration::from_secs(60)));
        let lag = Histogram::new([1.0]);
        let before = views.snapshot();
        views.lock().venue.configure(&ConfigureSubsection {
            section: "A".into(),
            subsection: 1,
            rows: 1,
            seats_per_row: 2,
            price: 3,
        });
        views.caught_up.store(true, Ordering::Release);
        assert!(!views.is_ready(), "caught up, but nothing published yet");
        assert!(has_work(&views, Duration::ZERO));
        let streams = views.snapshots();
        publish(&views, &lag);
        assert!(views.is_ready());
        assert!(streams.has_changed().unwrap(), "streams are woken");
        let after = views.snapshot();
        assert_ne!(after.availability.etag, before.availability.etag);
        assert!(after.seat_map("A", 1).is_some() && before.seat_map("A", 1).is_none());
        assert!(!has_work(&views, Duration::from_millis(1)), "nothing left to publish");
    }
}
