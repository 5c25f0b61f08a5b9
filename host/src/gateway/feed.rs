//! The gateway's read side: one `read_committed` consumer, assigned every
//! partition of the event's public topics from the beginning, feeding the
//! bookings and venue views, waking the booking streams and marking the
//! venue's changes for the snapshot step ([`super::refresh`]).
//!
//! Ready (`/readyz`) once every partition has been read to the end it had
//! at start, and a snapshot holds all of it: a restarted gateway answers
//! the statuses and seats it answered before.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{broadcast, watch};
use turnstile_protocol::{BookingCommand, BookingStatusChanged, SeatCommand, SeatResult};

use super::bookings::{Booking, Bookings};
use super::idempotency::Keys;
use super::snapshot::{Snapshot, Tick};
use super::venue::Venue;
use crate::client::ClientSettings;
use crate::client::QuietEof;
use crate::config::KafkaConfig;
use crate::naming;

/// Header of a create command: the idempotency key it was published under.
pub const IDEMPOTENCY_KEY_HEADER: &str = "turnstile-idempotency-key";
/// Header of a create command: the request's [`BookingRequest::digest`](super::requests::BookingRequest::digest).
pub const REQUEST_DIGEST_HEADER: &str = "turnstile-request-sha256";

/// Status updates kept for slow server-sent event readers; one that falls
/// further behind reads the booking's latest state instead.
const STATUS_BUFFER: usize = 4096;

/// The views and the signals of their changes.
pub struct Views {
    state: Mutex<State>,
    /// Notified, under `state`'s lock, when the venue changed or the feed
    /// caught up: the snapshot step waits on it.
    pub(super) venue_changed: Condvar,
    statuses: broadcast::Sender<Booking>,
    /// The latest snapshot of the venue, for every read of it.
    pub(super) snapshots: watch::Sender<Arc<Snapshot>>,
    /// The latest tick of the availability streams (paced apart from the
    /// snapshots, see [`super::refresh`]).
    pub(super) ticks: watch::Sender<Arc<Tick>>,
    /// Every partition has been read to its end once.
    pub(super) caught_up: AtomicBool,
    /// Caught up, and a snapshot published since.
    pub(super) ready: AtomicBool,
    /// A feed thread died: the views no longer follow the topics.
    failed: AtomicBool,
}

/// What the views hold.
#[derive(Debug)]
pub struct State {
    pub bookings: Bookings,
    pub keys: Keys,
    pub venue: Venue,
    /// Producer timestamp (ms since the epoch) of the oldest venue change
    /// not in a snapshot yet: how far behind the topics the snapshot is.
    pub(super) unpublished_since: Option<i64>,
}

impl Views {
    /// Empty views whose idempotency keys live `key_ttl`.
    pub fn new(key_ttl: Duration) -> Self {
        let state = State {
            bookings: Bookings::default(),
            keys: Keys::new(key_ttl),
            venue: Venue::default(),
            unpublished_since: None,
        };
        Views {
            state: Mutex::new(state),
            venue_changed: Condvar::new(),
            statuses: broadcast::channel(STATUS_BUFFER).0,
            // Versions restart with the process; the epoch keeps `ETag`s apart.
            snapshots: watch::channel(Arc::new(Snapshot::empty(rand::random()))).0,
            ticks: watch::channel(Arc::new(Tick::empty())).0,
            caught_up: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Status changes from now on.
    pub fn statuses(&self) -> broadcast::Receiver<Booking> {
        self.statuses.subscribe()
    }

    /// The venue's latest snapshot: O(1), never waits for the feed.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// Every snapshot from now on (the current one marked seen only once read).
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.subscribe()
    }

    /// The availability streams' latest tick.
    pub fn tick(&self) -> Arc<Tick> {
        self.ticks.borrow().clone()
    }

    /// Every tick from now on (the current one marked seen only once read).
    pub fn ticks(&self) -> watch::Receiver<Arc<Tick>> {
        self.ticks.subscribe()
    }

    /// Whether every partition has been read to its end at start, and a
    /// snapshot published since.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.failed.load(Ordering::Acquire)
    }

    /// Records a venue change from `message` and wakes the snapshot step.
    fn venue_changed(&self, mut state: MutexGuard<'_, State>, message: &BorrowedMessage<'_>) {
        if state.unpublished_since.is_none() {
            state.unpublished_since = message.timestamp().to_millis();
        }
        drop(state);
        self.venue_changed.notify_one();
    }

    fn apply(&self, message: &BorrowedMessage<'_>, topics: &Topics) {
        let Some(payload) = message.payload() else { return };
        let topic = message.topic();
        if topic == topics.statuses {
            let Ok(msg) = serde_json::from_slice::<BookingStatusChanged>(payload) else { return };
            let booking = self.lock().bookings.apply(&msg);
            // Nobody listening is fine.
            let _ = self.statuses.send(booking);
        } else if topic == topics.results {
            let Ok(result) = serde_json::from_slice::<SeatResult>(payload) else { return };
            let mut state = self.lock();
            if state.venue.apply(&result) {
                self.venue_changed(state, message);
            }
        } else if topic == topics.requests {
            // Only configurations matter here; skip the rest unparsed.
            if !contains(payload, b"configure_subsection") {
                return;
            }
            if let Ok(SeatCommand::ConfigureSubsection(c)) = serde_json::from_slice::<SeatCommand>(payload) {
                let mut state = self.lock();
                state.venue.configure(&c);
                self.venue_changed(state, message);
            }
        } else if topic == topics.commands {
            // Creates: their quantities count against buyers' caps, and a
            // key they were published under survives a restart.
            if !contains(payload, b"create_booking") {
                return;
            }
            let Ok(BookingCommand::CreateBooking(c)) = serde_json::from_slice::<BookingCommand>(payload) else {
                return;
            };
            let mut state = self.lock();
            state.bookings.accept(&c.booking_id, c.buyer_id, c.quantity);
            // Anyone may write this topic: headers are read without trusting them.
            let headers = crate::headers::record_headers(message);
            let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
            if let (Some(key), Some(digest)) = (header(IDEMPOTENCY_KEY_HEADER), header(REQUEST_DIGEST_HEADER))
                && let Ok(digest) = <[u8; 32]>::try_from(digest)
            {
                let at = message
                    .timestamp()
                    .to_millis()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map_or_else(std::time::SystemTime::now, |ms| std::time::UNIX_EPOCH + Duration::from_millis(ms));
                state.keys.remember(c.buyer_id, &String::from_utf8_lossy(key), &digest, &c.booking_id, at);
            }
        }
    }
}

/// Should a feed thread die (a bug: it handles every record it can read),
/// the views stop following the topics: the gateway says so on `/readyz`
/// rather than serve views that silently go stale.
struct FeedGuard(Arc<Views>);

impl Drop for FeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
            tracing::error!("a feed of the gateway's views died; not ready from now on");
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Where to start reading `topic`: its beginning, or the first record
/// produced at or after `since` (its end if there is none). If the broker
/// cannot say, the beginning: slower, never wrong.
fn start_offsets(
    consumer: &BaseConsumer<QuietEof>,
    topic: &str,
    partitions: i32,
    since: Option<SystemTime>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut beginning = TopicPartitionList::new();
    for p in 0..partitions {
        beginning.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    let Some(ms) =
        since.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).and_then(|d| i64::try_from(d.as_millis()).ok())
    else {
        return Ok(beginning);
    };
    let mut at = TopicPartitionList::new();
    for p in 0..partitions {
        at.add_partition_offset(topic, p, Offset::Offset(ms))?;
    }
    match consumer.offsets_for_times(at, Duration::from_secs(10)) {
        Ok(found) if found.elements().iter().all(|e| e.error().is_ok()) => Ok(found),
        Ok(_) | Err(_) => {
            tracing::warn!(topic, "cannot look up offsets by time; reading from the beginning");
            Ok(beginning)
        }
    }
}

struct Topics {
    commands: String,
    requests: String,
    results: String,
    statuses: String,
}

/// The feed could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot read the event's topics: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot start a feed thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Starts the feed for `event_id`, whose topics have `partitions`
/// partitions: one consumer and thread per topic, so that the end of each
/// partition (which librdkafka reports by partition number only) is
/// unambiguous. Runs until `stop` is set.
///
/// Commands are read only from `commands_since` on: they matter for the
/// idempotency keys (which expire) and the quantities of bookings not
/// decided yet, so a restart need not read an old event's every create.
pub fn spawn(
    kafka: &KafkaConfig,
    event_id: u64,
    partitions: i32,
    commands_since: SystemTime,
    views: Arc<Views>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, FeedError> {
    let topics = Arc::new(Topics {
        commands: naming::booking_command_topic(event_id).to_string(),
        requests: naming::ticket_command_request_topic(event_id).to_string(),
        results: naming::seat_reservation_result_topic(event_id).to_string(),
        statuses: naming::booking_status_changed_topic(event_id).to_string(),
    });
    let names = [&topics.commands, &topics.requests, &topics.results, &topics.statuses];
    let catching_up = Arc::new(std::sync::atomic::AtomicUsize::new(names.len()));
    let mut threads = Vec::new();
    for topic in names {
        let consumer: BaseConsumer<QuietEof> = ClientSettings::new(kafka)
            .set("group.id", format!("turnstile-gateway-view-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10")
            .create_with_context(QuietEof)?;
        let since = (*topic == topics.commands).then_some(commands_since);
        consumer.assign(&start_offsets(&consumer, topic, partitions, since)?)?;
        let mut pending: BTreeSet<i32> = (0..partitions).collect();
        let (views, stop, topics, catching_up) = (views.clone(), stop.clone(), topics.clone(), catching_up.clone());
        let thread = std::thread::Builder::new().name("gateway-feed".into()).spawn(move || {
            let _unready_if_it_dies = FeedGuard(views.clone());
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(message)) => views.apply(&message, &topics),
                    Some(Err(KafkaError::PartitionEOF(p)))
                        if pending.remove(&p)
                            && pending.is_empty()
                            && catching_up.fetch_sub(1, Ordering::AcqRel) == 1 =>
                    {
                        tracing::info!(bookings = views.lock().bookings.len(), "views caught up");
                        // Ready with the next snapshot, which holds all of it.
                        let _state = views.lock();
                        views.caught_up.store(true, Ordering::Release);
                        views.venue_changed.notify_one();
                    }
                    // Later ends of partitions, after new records.
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    // Transient (a broker restarting): librdkafka reconnects.
                    Some(Err(err)) => tracing::warn!(error = %err, "reading the event's topics"),
                }
            }
        })?;
        threads.push(thread);
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_thread_that_dies_makes_the_gateway_unready() {
        let views = Arc::new(Views::new(Duration::from_secs(60)));
        views.ready.store(true, Ordering::Release);
        let guarded = views.clone();
        let quiet = std::thread::spawn(move || drop(FeedGuard(guarded))).join();
        assert!(quiet.is_ok() && views.is_ready(), "a feed that stops normally leaves readiness alone");
        let guarded = views.clone();
        let died = std::thread::spawn(move || {
            let _guard = FeedGuard(guarded);
            panic!("a bug in the feed");
        })
        .join();
        assert!(died.is_err());
        assert!(!views.is_ready(), "views that no longer follow the topics are not ready");
    }
}
