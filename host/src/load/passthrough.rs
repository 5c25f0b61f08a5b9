//! The limit a drain benchmark is held against: the same records moved
//! consume → produce by plain librdkafka clients with the service's client
//! settings, but no plugin, no state and no transactions (at-least-once:
//! offsets committed after the records are delivered).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::ClientSettings;
use crate::client::QuietEof;
use crate::config::Config;
use crate::publisher::{PublishError, Publisher, producer_properties};

/// What one passthrough run moved.
#[derive(Debug, Clone, Copy)]
pub struct Passthrough {
    pub messages: u64,
    /// From the first record consumed to the last one delivered.
    pub elapsed: Duration,
}

impl Passthrough {
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Why a passthrough run failed.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    #[error("passthrough: {0}")]
    Kafka(#[from] KafkaError),
    #[error("passthrough: {0}")]
    Publish(#[from] PublishError),
    #[error("passthrough: topic {0} has no partitions (does it exist?)")]
    NoPartitions(String),
    #[error("passthrough: moved {moved} of {expected} records within {timeout:?}")]
    Timeout { moved: u64, expected: u64, timeout: Duration },
}

/// How often offsets are committed: as an auto-committing client would, so
/// that the limit is the clients' and the broker's, not a commit cadence.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Copies every record of `inputs` (from the beginning, `expected` in all)
/// to the same partition of `output`.
pub fn passthrough(
    config: &Config,
    inputs: &[String],
    output: &str,
    expected: u64,
    timeout: Duration,
) -> Result<Passthrough, PassthroughError> {
    // The runner's consumer settings, without the group membership that
    // would add a join to the measurement (partitions are assigned).
    let consumer: BaseConsumer<QuietEof> = ClientSettings::new(&config.kafka)
        .set("group.id", format!("bench-passthrough-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.min.bytes", config.runner.fetch_min_bytes.to_string())
        .set("fetch.wait.max.ms", config.runner.fetch_wait_max_ms.to_string())
        .create_with_context(QuietEof)?;
    let mut assignment = TopicPartitionList::new();
    for topic in inputs {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
        if partitions == 0 {
            return Err(PassthroughError::NoPartitions(topic.clone()));
        }
        for p in 0..partitions as i32 {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    // The runner's producer settings, without the transactional id.
    let mut properties = producer_properties(config);
    properties
        .set("linger.ms", config.runner.linger_ms.to_string())
        .set("retry.backoff.ms", "10")
        .set("enable.idempotence", "true")
        .set("acks", "all");
    let producer = Publisher::from_properties(properties)?;

    let deadline = Instant::now() + timeout;
    let mut started: Option<Instant> = None;
    let mut moved = 0u64;
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    let mut last_commit = Instant::now();
    while moved < expected {
        if Instant::now() > deadline {
            return Err(PassthroughError::Timeout { moved, expected, timeout });
        }
        let Some(result) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = result?;
        started.get_or_insert_with(Instant::now);
        producer.send_raw(output, message.partition(), message.key().unwrap_or_default(), message.payload())?;
        next.insert((message.topic().to_owned(), message.partition()), message.offset() + 1);
        moved += 1;
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            // At-least-once: what is committed has been delivered.
            producer.flush(timeout)?;
            commit(&consumer, &next)?;
            last_commit = Instant::now();
        }
    }
    producer.flush(timeout)?;
    commit(&consumer, &next)?;
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    Ok(Passthrough { messages: moved, elapsed })
}

fn commit(consumer: &BaseConsumer<QuietEof>, next: &HashMap<(String, i32), i64>) -> Result<(), KafkaError> {
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&offsets, CommitMode::Async)
}
