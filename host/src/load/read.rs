//! Reading a whole topic back with a fresh, group-less consumer: what an
//! independent client sees.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::ClientSettings;
use crate::client::QuietEof;
use crate::config::KafkaConfig;

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// The key, decoded lossily.
    pub key: Option<String>,
    /// The value; empty for a tombstone.
    pub value: Vec<u8>,
    /// Header names decoded lossily.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why a topic could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading {topic}: it has no partitions (does it exist?)")]
    NoPartitions { topic: String },
    #[error("reading {topic}: partitions {pending:?} did not reach their end within {timeout:?}")]
    Timeout { topic: String, pending: Vec<i32>, timeout: Duration },
}

/// Every record of `topic` an `isolation` (`read_committed` or
/// `read_uncommitted`) reader finds, assigned all partitions from the
/// beginning and reading until each reports its end; in partition, then
/// offset order.
pub fn read_back(
    cluster: &KafkaConfig,
    topic: &str,
    isolation: &str,
    timeout: Duration,
) -> Result<Vec<Record>, ReadError> {
    let kafka = |source| ReadError::Kafka { topic: topic.to_owned(), source };
    let consumer: BaseConsumer<QuietEof> = ClientSettings::new(cluster)
        .set("group.id", format!("turnstile-read-back-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create_with_context(QuietEof)
        .map_err(kafka)?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(kafka)?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        return Err(ReadError::NoPartitions { topic: topic.to_owned() });
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(kafka)?;
    }
    consumer.assign(&tpl).map_err(kafka)?;

    let mut pending: BTreeSet<i32> = partitions.into_iter().collect();
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    while !pending.is_empty() {
        if Instant::now() > deadline {
            return Err(ReadError::Timeout {
                topic: topic.to_owned(),
                pending: pending.into_iter().collect(),
                timeout,
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => records.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers: crate::headers::record_headers(&m),
            }),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => return Err(kafka(e)),
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}
