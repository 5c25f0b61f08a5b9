//! `[kafka]` and `[producer]`: where the cluster is, how an event's topics
//! are shaped, and how records are published.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the cluster is and how an event's topics are shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    /// Partitions of every event topic.
    pub partitions: i32,
    /// Replication factor of event topics. Unset: `provision` takes it from
    /// the cluster (3 on three or more brokers, 2 on two, 1 on one; see
    /// `admin::provision::Replication`).
    pub replication_factor: Option<i32>,
    /// `min.insync.replicas` of event topics. Unset: 2 when the replication
    /// factor is 3 or more, else 1.
    pub min_insync_replicas: Option<i32>,
    /// How long admin and metadata requests may take.
    pub request_timeout_ms: u64,
    /// How long a service rides out an unreachable cluster (at start, while
    /// restoring, while committing) before it gives up with exit code 3.
    pub outage_timeout_ms: u64,
}

/// Producer settings (DOMAIN.md §6); `extra` passes any other librdkafka
/// property through unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    pub linger_ms: u32,
    pub batch_size: u32,
    pub batch_num_messages: u32,
    pub compression_type: String,
    pub socket_send_buffer_bytes: u32,
    pub enable_idempotence: bool,
    pub acks: String,
    /// librdkafka's local queue: `queue.buffering.max.messages`.
    pub queue_max_messages: u32,
    pub extra: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap: "127.0.0.1:9092".into(),
            partitions: 10,
            replication_factor: None,
            min_insync_replicas: None,
            request_timeout_ms: 10_000,
            outage_timeout_ms: 120_000,
        }
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger_ms: 50,
            batch_size: 524_288,
            batch_num_messages: 1000,
            compression_type: "lz4".into(),
            socket_send_buffer_bytes: 1_048_576,
            enable_idempotence: true,
            acks: "all".into(),
            queue_max_messages: 100_000,
            extra: BTreeMap::new(),
        }
    }
}
