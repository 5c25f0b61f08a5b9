//! The batched publisher: JSON values to an explicit partition with the seed's
//! producer settings (DOMAIN.md §6).
//!
//! `publish` is fire-and-forget: it hands the record to librdkafka's queue and
//! returns without waiting on the network, so throughput comes from large
//! batches (`linger.ms`, `batch.size`). When the queue is full it waits for
//! room instead of dropping. Delivery outcomes arrive on librdkafka's poll
//! thread and are counted; failures are logged with topic and partition.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::client::ClientSettings;
use crate::config::Config;

/// How long `publish` waits for room in a full queue before giving up.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(60);

/// A publishing failure.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot create Kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("cannot publish to {topic}[{partition}]: {source}")]
    Send {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("flush did not complete within {0:?}: {1}")]
    Flush(Duration, #[source] KafkaError),
    #[error("{failed} message(s) failed delivery; see the log for topics and reasons")]
    Undelivered { failed: u64 },
    #[error("the publish queue is full ({topic}[{partition}] not queued)")]
    QueueFull { topic: String, partition: i32 },
}

/// Counts of delivery outcomes since the publisher was created.
#[derive(Debug, Default)]
pub struct PublishStats {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl PublishStats {
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Highest delivered offset per partition.
type DeliveredOffsets = Arc<Mutex<HashMap<i32, i64>>>;

/// When an acknowledged record leaves the producer's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// With its partition's next batch (`linger.ms`): many callers share
    /// one request to the broker.
    Batched,
    /// At once: one caller waits alone (a pay).
    Now,
}

/// A record's delivery outcome, for the one caller waiting for it.
pub type Acknowledgement = tokio::sync::oneshot::Receiver<Result<(), String>>;

/// Who waits for which record's delivery report, by the record's opaque
/// (0: nobody, the fire-and-forget case, which then costs no allocation).
type Waiters = Arc<Mutex<HashMap<usize, tokio::sync::oneshot::Sender<Result<(), String>>>>>;

/// librdkafka context that counts and logs delivery reports, and keeps the
/// highest delivered offset per partition of one tracked topic.
pub struct DeliveryCounter {
    stats: Arc<PublishStats>,
    tracked: Option<(String, DeliveredOffsets)>,
    waiters: Waiters,
}

impl ClientContext for DeliveryCounter {
    crate::oauth_token_refresh!();
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: usize) {
        if waiter != 0
            && let Some(ack) = self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&waiter)
        {
            // The waiter may have given up (a timeout); that is fine.
            let _ = ack.send(result.as_ref().map(|_| ()).map_err(|(err, _)| err.to_string()));
        }
        match result {
            Ok(msg) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some((topic, offsets)) = &self.tracked {
                    use rdkafka::Message;
                    if msg.topic() == topic {
                        let mut offsets = offsets.lock().unwrap_or_else(|p| p.into_inner());
                        let highest = offsets.entry(msg.partition()).or_insert(msg.offset());
                        *highest = (*highest).max(msg.offset());
                    }
                }
            }
            Err((err, msg)) => {
                use rdkafka::Message;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(topic = msg.topic(), partition = msg.partition(), error = %err, "delivery failed");
            }
        }
    }
}

/// One record to publish.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// Raw key bytes (DLQ records keep keys that are not UTF-8); empty for none.
    pub key: &'a [u8],
    pub payload: &'a [u8],
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// The librdkafka producer properties for `config` (DOMAIN.md §6 plus
/// `producer.extra`). The transactional runner starts from these too.
pub fn producer_properties(config: &Config) -> ClientSettings {
    let p = &config.producer;
    let mut cc = ClientSettings::new(&config.kafka);
    cc.set("linger.ms", p.linger_ms.to_string())
        .set("batch.size", p.batch_size.to_string())
        .set("batch.num.messages", p.batch_num_messages.to_string())
        .set("compression.type", &config.kafka.compression)
        .set("socket.send.buffer.bytes", p.socket_send_buffer_bytes.to_string())
        .set("enable.idempotence", p.enable_idempotence.to_string())
        .set("acks", &p.acks)
        .set("queue.buffering.max.messages", p.queue_max_messages.to_string())
        // Never silently drop on a slow broker: retry until the delivery timeout.
        .set("message.timeout.ms", "300000");
    for (key, value) in &p.extra {
        cc.set(key, value);
    }
    cc
}

/// A fire-and-forget publisher with back-pressure; see the module docs.
pub struct Publisher {
    producer: ThreadedProducer<DeliveryCounter>,
    stats: Arc<PublishStats>,
    delivered: DeliveredOffsets,
    waiters: Waiters,
    next_waiter: std::sync::atomic::AtomicUsize,
}

impl Publisher {
    /// A publisher with the configured producer settings.
    pub fn new(config: &Config) -> Result<Self, PublishError> {
        Self::from_properties(producer_properties(config))
    }

    /// A publisher from explicit librdkafka properties.
    pub fn from_properties(properties: ClientSettings) -> Result<Self, PublishError> {
        Self::tracking(properties, None)
    }

    /// A publisher that also remembers the highest delivered offset per
    /// partition of `topic` (see [`take_delivered`](Self::take_delivered)).
    pub fn tracking(properties: ClientSettings, topic: Option<&str>) -> Result<Self, PublishError> {
        let stats = Arc::new(PublishStats::default());
        let delivered = Arc::new(Mutex::new(HashMap::new()));
        let waiters = Waiters::default();
        let context = DeliveryCounter {
            stats: stats.clone(),
            tracked: topic.map(|t| (t.to_owned(), delivered.clone())),
            waiters: waiters.clone(),
        };
        let producer = properties.create_with_context(context).map_err(PublishError::Create)?;
        Ok(Publisher { producer, stats, delivered, waiters, next_waiter: std::sync::atomic::AtomicUsize::new(1) })
    }

    /// The highest delivered offset per partition of the tracked topic since
    /// the last call.
    pub fn take_delivered(&self) -> HashMap<i32, i64> {
        std::mem::take(&mut *self.delivered.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Queues `payload` for `topic[partition]` under `key`; returns as soon as
    /// librdkafka holds it, waiting only while its queue is full.
    pub fn publish(&self, topic: &str, partition: i32, key: &str, payload: &[u8]) -> Result<(), PublishError> {
        self.send(Record { topic, partition, key: key.as_bytes(), payload, headers: &[] })
    }

    /// Like [`send`](Self::send), but a full queue is
    /// [`PublishError::QueueFull`] at once instead of a wait: for callers
    /// that answer back-pressure themselves (the gateway's 503).
    pub fn try_send(&self, record: Record<'_>) -> Result<(), PublishError> {
        self.try_enqueue(&record, 0)
    }

    /// Like [`try_send`](Self::try_send), and the caller awaits this
    /// record's own delivery report (not everyone's, as a flush would). It
    /// stays in order with the other records of its partition; `urgency`
    /// says whether it rides the next batch or wakes the sender now.
    pub fn try_send_acknowledged(&self, record: Record<'_>, urgency: Urgency) -> Result<Acknowledgement, PublishError> {
        let id = match self.next_waiter.fetch_add(1, Ordering::Relaxed) {
            0 => self.next_waiter.fetch_add(1, Ordering::Relaxed),
            id => id,
        };
        let (ack, acknowledgement) = tokio::sync::oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(id, ack);
        if let Err(err) = self.try_enqueue(&record, id) {
            self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(err);
        }
        if urgency == Urgency::Now {
            // A zero-timeout flush wakes the broker threads past `linger.ms`.
            let _ = self.producer.flush(Duration::ZERO);
        }
        Ok(acknowledgement)
    }

    fn try_enqueue(&self, record: &Record<'_>, waiter: usize) -> Result<(), PublishError> {
        match self.producer.send(Self::base(record, waiter)) {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(PublishError::QueueFull { topic: record.topic.to_owned(), partition: record.partition })
            }
            Err((source, _)) => Err(PublishError::Send {
                topic: record.topic.to_owned(),
                partition: record.partition,
                source: self.with_fatal_cause(source),
            }),
        }
    }

    /// librdkafka answers every send after a fatal error with the code
    /// `Fatal`; the cause (a fence, say) is the client's fatal error.
    fn with_fatal_cause(&self, error: KafkaError) -> KafkaError {
        match error {
            KafkaError::MessageProduction(RDKafkaErrorCode::Fatal) => match self.producer.client().fatal_error() {
                Some((code, _)) => KafkaError::MessageProduction(code),
                None => error,
            },
            other => other,
        }
    }

    /// Queues one record with headers; see [`publish`](Self::publish).
    pub fn send(&self, record: Record<'_>) -> Result<(), PublishError> {
        self.enqueue(Self::base(&record, 0))
    }

    fn base<'a>(record: &Record<'a>, waiter: usize) -> BaseRecord<'a, [u8], [u8], usize> {
        let mut base =
            BaseRecord::with_opaque_to(record.topic, waiter).partition(record.partition).payload(record.payload);
        // An empty key is no key: a keyless record stays keyless downstream.
        if !record.key.is_empty() {
            base = base.key(record.key);
        }
        if !record.headers.is_empty() {
            let headers = record
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(*value) }));
            base = base.headers(headers);
        }
        base
    }

    /// Queues a record with a binary key and an optional value (`None` is a
    /// tombstone): for changelogs.
    pub fn send_raw(&self, topic: &str, partition: i32, key: &[u8], value: Option<&[u8]>) -> Result<(), PublishError> {
        let mut base: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, 0).partition(partition).key(key);
        if let Some(value) = value {
            base = base.payload(value);
        }
        self.enqueue(base)
    }

    /// Hands a record to librdkafka, waiting while its queue is full: the poll
    /// thread drains it as the broker acknowledges.
    fn enqueue<K, P>(&self, mut base: BaseRecord<'_, K, P, usize>) -> Result<(), PublishError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let started = Instant::now();
        loop {
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if started.elapsed() < QUEUE_FULL_TIMEOUT =>
                {
                    base = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((source, returned)) => {
                    return Err(PublishError::Send {
                        topic: returned.topic.to_owned(),
                        partition: returned.partition.unwrap_or(-1),
                        source: self.with_fatal_cause(source),
                    });
                }
            }
        }
    }

    /// The underlying producer, for transaction calls.
    pub fn producer(&self) -> &ThreadedProducer<DeliveryCounter> {
        &self.producer
    }

    /// Waits until every queued message is delivered or failed, then reports
    /// failures seen since creation.
    pub fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        // What is left is librdkafka's flush's to report.
        let _ = self.wait_delivered(timeout);
        self.producer.flush(timeout).map_err(|e| PublishError::Flush(timeout, e))?;
        match self.stats.failed() {
            0 => Ok(()),
            failed => Err(PublishError::Undelivered { failed }),
        }
    }

    /// Waits until librdkafka holds no undelivered message, or `timeout`;
    /// returns whether everything was delivered.
    ///
    /// librdkafka's own flush (also inside `commit_transaction`) competes
    /// with the poll thread for delivery reports and then sleeps in 100 ms
    /// steps; waiting here first lets it return at once.
    #[must_use]
    pub fn wait_delivered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Delivery counters.
    pub fn stats(&self) -> &PublishStats {
        &self.stats
    }

    /// Messages queued in librdkafka and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // Shutdown must not lose what was published fire-and-forget.
        if let Err(err) = self.producer.flush(Duration::from_secs(30)) {
            tracing::warn!(error = %err, in_flight = self.producer.in_flight_count(), "publisher dropped before every message was delivered");
        }
    }
}
