//! The gateway's read side: one `read_committed` consumer, assigned every
//! partition of the event's public topics from the beginning, feeding the
//! bookings and venue views and waking the server-sent event streams.
//!
//! Ready (`/readyz`) once every partition has been read to the end it had
//! at start: a restarted gateway answers the statuses it answered before.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{broadcast, watch};
use turnstile_protocol::{BookingCommand, BookingStatusChanged, SeatCommand, SeatResult};

use super::bookings::{Booking, Bookings};
use super::idempotency::Keys;
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
    statuses: broadcast::Sender<Booking>,
    venue_version: watch::Sender<u64>,
    ready: AtomicBool,
}

/// What the views hold.
#[derive(Debug)]
pub struct State {
    pub bookings: Bookings,
    pub keys: Keys,
    pub venue: Venue,
}

impl Views {
    /// Empty views whose idempotency keys live `key_ttl`.
    pub fn new(key_ttl: Duration) -> Self {
        let state = State { bookings: Bookings::default(), keys: Keys::new(key_ttl), venue: Venue::default() };
        Views {
            state: Mutex::new(state),
            statuses: broadcast::channel(STATUS_BUFFER).0,
            venue_version: watch::channel(0).0,
            ready: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Status changes from now on.
    pub fn statuses(&self) -> broadcast::Receiver<Booking> {
        self.statuses.subscribe()
    }

    /// Bumped on every availability change.
    pub fn venue_changes(&self) -> watch::Receiver<u64> {
        self.venue_version.subscribe()
    }

    /// Whether every partition has been read to its end at start.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
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
            if self.lock().venue.apply(&result) {
                self.venue_version.send_modify(|v| *v += 1);
            }
        } else if topic == topics.requests {
            // Only configurations matter here; skip the rest unparsed.
            if !contains(payload, b"configure_subsection") {
                return;
            }
            if let Ok(SeatCommand::ConfigureSubsection(c)) = serde_json::from_slice::<SeatCommand>(payload) {
                self.lock().venue.configure(&c);
                self.venue_version.send_modify(|v| *v += 1);
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
            let Some(headers) = message.headers() else { return };
            let header = |name: &str| headers.iter().find(|h| h.key == name).and_then(|h| h.value);
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
pub fn spawn(
    kafka: &KafkaConfig,
    event_id: u64,
    partitions: i32,
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
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let mut pending: BTreeSet<i32> = (0..partitions).collect();
        let (views, stop, topics, catching_up) = (views.clone(), stop.clone(), topics.clone(), catching_up.clone());
        let thread = std::thread::Builder::new().name("gateway-feed".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(message)) => views.apply(&message, &topics),
                    Some(Err(KafkaError::PartitionEOF(p)))
                        if pending.remove(&p)
                            && pending.is_empty()
                            && catching_up.fetch_sub(1, Ordering::Relaxed) == 1 =>
                    {
                        tracing::info!(bookings = views.lock().bookings.len(), "views caught up; ready");
                        views.ready.store(true, Ordering::Relaxed);
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
