//! The snapshot step: turns the venue's changes into a new [`Snapshot`] on
//! its own thread, off the request path. Bursts are coalesced: the first
//! change after a quiet spell is published at once, later ones at most
//! every `gateway.seat_events_interval_ms`, so the snapshot trails the
//! feed by about one interval however busy the topics are.
//!
//! Availability streams are paced apart, by [`Pacer`]: at most every
//! `gateway.stream_interval_ms` a [`Tick`](super::snapshot::Tick) carries what changed over the
//! snapshots since the tick before. Reads stay as fresh as the snapshot,
//! while each of thousands of streams is written a few times a second, not
//! at every snapshot.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::histogram::Histogram;

use super::feed::{State, Views};
use super::snapshot::Snapshot;
use super::venue::{Availability, Changes, SubsectionKey};

/// How often the step looks at `stop` while nothing changes.
const POLL: Duration = Duration::from_millis(100);

/// Starts the snapshot step; runs until `stop` is set. `lag` observes how
/// far behind the topics each snapshot was when published.
pub fn spawn(
    views: Arc<Views>,
    interval: Duration,
    stream_interval: Duration,
    lag: Histogram,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("gateway-snapshot".into()).spawn(move || {
        let mut last: Option<Instant> = None;
        let mut pacer = Pacer::new(stream_interval);
        while !stop.load(Ordering::Relaxed) {
            let wait = pacer.due_in(Instant::now()).map_or(POLL, |due| due.min(POLL));
            if has_work(&views, wait) {
                if let Some(wait) = last.and_then(|last| (last + interval).checked_duration_since(Instant::now())) {
                    std::thread::sleep(wait);
                }
                last = Some(Instant::now());
                if let Some(changes) = publish(&views, &lag) {
                    pacer.record(changes);
                }
            }
            pacer.tick_if_due(&views, Instant::now());
        }
    })
}

/// Paces the availability streams: gathers the subsections changed over
/// the snapshots since the last [`Tick`](super::snapshot::Tick), and publishes the next one when
/// its interval has passed.
struct Pacer {
    interval: Duration,
    last: Option<Instant>,
    changed: BTreeSet<SubsectionKey>,
    /// The latest snapshot's availability entries, once one changed.
    availability: Option<Vec<Availability>>,
}

impl Pacer {
    fn new(interval: Duration) -> Pacer {
        Pacer { interval, last: None, changed: BTreeSet::new(), availability: None }
    }

    fn record(&mut self, changes: Changes) {
        self.changed.extend(changes.subsections.into_iter().map(|c| c.key));
        self.availability = Some(changes.availability);
    }

    /// How long until a tick is due, if there is anything to tick.
    fn due_in(&self, now: Instant) -> Option<Duration> {
        self.availability.as_ref()?;
        Some(self.last.map_or(Duration::ZERO, |last| (last + self.interval).saturating_duration_since(now)))
    }

    fn tick_if_due(&mut self, views: &Views, now: Instant) {
        if self.due_in(now) != Some(Duration::ZERO) {
            return;
        }
        let Some(availability) = &self.availability else { return };
        let snapshot = views.snapshot();
        match views.tick().next(&snapshot, availability, &self.changed) {
            Ok(tick) => {
                views.ticks.send_replace(Arc::new(tick));
                self.changed.clear();
                self.availability = None;
            }
            // The streams keep the tick before; the changes wait for the next.
            Err(err) => tracing::error!(error = %err, "cannot serialize the venue's changes for the streams"),
        }
        self.last = Some(now);
    }
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
/// changed ones)), serializes them outside it, and publishes the snapshot;
/// returns the changes it published.
pub(super) fn publish(views: &Views, lag: &Histogram) -> Option<Changes> {
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
            return None;
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
    Some(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::snapshot::Tick;
    use turnstile_protocol::{ConfigureSubsection, SeatPosition, SeatResult, SeatsReserved};

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

    fn changes_of(tick: &Tick) -> Vec<(String, u64)> {
        let event = std::str::from_utf8(&tick.changes_event).unwrap();
        let data = event.strip_prefix("event: availability_changes\ndata: ").unwrap().trim_end();
        let entries: Vec<serde_json::Value> = serde_json::from_str(data).unwrap();
        entries
            .iter()
            .map(|e| {
                (format!("{}-{}", e["section"].as_str().unwrap(), e["subsection"]), e["reserved"].as_u64().unwrap())
            })
            .collect()
    }

    #[test]
    fn streams_tick_at_their_own_pace_with_every_change_since_the_tick_before() {
        let views = Arc::new(Views::new(Duration::from_secs(60)));
        let lag = Histogram::new([1.0]);
        let mut pacer = Pacer::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(pacer.due_in(start), None, "nothing to tick before a change");
        for subsection in 1..=2 {
            let c = ConfigureSubsection { section: "A".into(), subsection, rows: 1, seats_per_row: 2, price: 3 };
            views.lock().venue.configure(&c);
        }
        pacer.record(publish(&views, &lag).unwrap());
        assert_eq!(pacer.due_in(start), Some(Duration::ZERO), "the first tick is due at once");
        pacer.tick_if_due(&views, start);
        let first = views.tick();
        assert_eq!((first.follows, first.version), (0, views.snapshot().availability.version));

        // Two snapshots within the interval: no tick until it has passed.
        let reserve = |booking: &str, seat| {
            let seats = vec![SeatPosition { row: 1, seat }];
            let r =
                SeatsReserved { booking_id: booking.into(), section: "A".into(), subsection: 1, seats, total_price: 3 };
            assert!(views.lock().venue.apply(&SeatResult::SeatsReserved(r)));
        };
        reserve("b1", 1);
        pacer.record(publish(&views, &lag).unwrap());
        reserve("b2", 2);
        let changes = publish(&views, &lag).unwrap();
        pacer.record(changes);
        let half = start + Duration::from_millis(500);
        assert_eq!(pacer.due_in(half), Some(Duration::from_millis(500)));
        pacer.tick_if_due(&views, half);
        assert!(Arc::ptr_eq(&views.tick(), &first), "no tick before the interval");

        pacer.tick_if_due(&views, start + Duration::from_secs(1));
        let second = views.tick();
        assert_eq!((second.follows, second.version), (first.version, views.snapshot().availability.version));
        assert_eq!(changes_of(&second), [("A-1".to_owned(), 2)], "A-1 as it is now, and not A-2, which did not change");
        assert_eq!(pacer.due_in(start + Duration::from_secs(5)), None, "nothing left to tick");
    }
}
