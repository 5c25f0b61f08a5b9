//! The connection admin commands share: an rdkafka `AdminClient` for topic
//! and group changes, a `BaseConsumer` for metadata, watermarks and group
//! listings, and a small current-thread tokio runtime that drives the admin
//! futures (each is a oneshot answered by librdkafka's own thread).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, GroupResult, NewTopic, ResourceSpecifier, TopicResult};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::{AdminError, Unreachable};
use crate::client::{ClientSettings, SecurityFailures};
use crate::config::Config;

/// Routes librdkafka's own logging to `debug` (visible with `-v`): admin
/// commands report every failure through their results, and a connection
/// refused would otherwise be logged once per retry. Security failures are
/// kept, so that a wrong password is named rather than timed out on.
#[derive(Debug, Clone, Default)]
pub struct QuietContext {
    failures: SecurityFailures,
}

impl ClientContext for QuietContext {
    crate::oauth_token_refresh!();

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(target: "librdkafka", ?level, "{fac} {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.failures.observe(&error, reason);
        tracing::debug!(target: "librdkafka", "{error}: {reason}");
    }
}

impl ConsumerContext for QuietContext {}

/// A consumer group as the brokers list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    pub name: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Dead`.
    pub state: String,
    pub members: Vec<GroupMember>,
}

/// One member of a consumer group and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// The `(topic, partition)` pairs the member holds now.
    pub assignment: Vec<(String, i32)>,
}

/// The brokers of the cluster as its metadata shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brokers {
    /// Brokers that are registered and alive (the metadata lists only those).
    pub live: BTreeSet<i32>,
    /// `live` plus every broker that holds a replica of some topic, alive or
    /// not: a broker that is down for a moment still counts here.
    pub known: BTreeSet<i32>,
}

impl Brokers {
    /// Known brokers that are not live.
    pub fn missing(&self) -> Vec<i32> {
        self.known.difference(&self.live).copied().collect()
    }
}

/// Where one partition's replicas are, from the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    pub partition: i32,
    /// The leader's broker id; `None` when the partition has no leader.
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// The error the metadata reports for the partition, if any.
    pub error: Option<String>,
}

/// Where every partition's replicas are, and which brokers are live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub live: BTreeSet<i32>,
    /// By topic, sorted by partition.
    pub topics: BTreeMap<String, Vec<PartitionReplicas>>,
}

/// A connection to the cluster named by `kafka.bootstrap`.
pub struct Cluster {
    admin: AdminClient<QuietContext>,
    consumer: BaseConsumer<QuietContext>,
    runtime: tokio::runtime::Runtime,
    config: ClientSettings,
    bootstrap: String,
    timeout: Duration,
}

impl Cluster {
    /// Connects and checks that the bootstrap answers a metadata request
    /// within `kafka.request_timeout_ms`.
    pub fn connect(config: &Config) -> Result<Cluster, Unreachable> {
        let kafka = &config.kafka;
        let timeout = Duration::from_millis(kafka.request_timeout_ms);
        let unreachable = |reason: String, refused: bool| Unreachable {
            bootstrap: kafka.bootstrap.clone(),
            timeout_ms: kafka.request_timeout_ms,
            reason,
            refused,
        };
        let client_config = base_config(config);
        let context = QuietContext::default();
        let admin: AdminClient<QuietContext> = client_config
            .create_with_context(context.clone())
            .map_err(|e| unreachable(format!("creating the admin client: {e}"), false))?;
        let consumer: BaseConsumer<QuietContext> = client_config
            .create_with_context(context.clone())
            .map_err(|e| unreachable(format!("creating the metadata client: {e}"), false))?;
        // In short steps: a cluster that refuses us (TLS, SASL) says so at
        // once, and waiting out the timeout would only hide the cause.
        let deadline = Instant::now() + timeout;
        loop {
            let step = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
            match consumer.fetch_metadata(None, step) {
                Ok(_) => break,
                Err(e) => {
                    // Client errors reach the context only through a poll
                    // (no assignment: it returns no records).
                    let _ = consumer.poll(Duration::ZERO);
                    if let Some(refusal) = context.failures.last() {
                        return Err(unreachable(refusal, true));
                    }
                    if Instant::now() >= deadline {
                        return Err(unreachable(e.to_string(), false));
                    }
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| unreachable(format!("starting the admin runtime: {e}"), false))?;
        Ok(Cluster { admin, consumer, runtime, config: client_config, bootstrap: kafka.bootstrap.clone(), timeout })
    }

    /// The configured bootstrap address.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The per-request timeout (`kafka.request_timeout_ms`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Every topic in the cluster with its partition count, internal ones
    /// included (callers filter by name).
    pub fn topics(&self) -> Result<BTreeMap<String, i32>, AdminError> {
        let metadata = self
            .consumer
            .fetch_metadata(None, self.timeout)
            .map_err(|source| AdminError::Kafka { op: "listing topics", source })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
            .collect())
    }

    /// Topics whose every partition has a leader, with their partition
    /// counts: the ones a producer can write to now.
    pub fn ready_topics(&self) -> Result<BTreeMap<String, i32>, AdminError> {
        let metadata = self
            .consumer
            .fetch_metadata(None, self.timeout)
            .map_err(|source| AdminError::Kafka { op: "reading metadata", source })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .filter(|t| t.partitions().iter().all(|p| p.error().is_none() && p.leader() >= 0))
            .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
            .collect())
    }

    /// The live brokers, and the brokers that hold replicas (see [`Brokers`]).
    pub fn brokers(&self) -> Result<Brokers, AdminError> {
        let metadata = self
            .consumer
            .fetch_metadata(None, self.timeout)
            .map_err(|source| AdminError::Kafka { op: "reading the cluster's brokers", source })?;
        let live: BTreeSet<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        let mut known = live.clone();
        for topic in metadata.topics() {
            for partition in topic.partitions() {
                known.extend(partition.replicas().iter().copied());
            }
        }
        Ok(Brokers { live, known })
    }

    /// Leader, replicas and in-sync replicas of every partition of every
    /// topic, and the live brokers, from one metadata request.
    pub fn replicas(&self) -> Result<Placement, AdminError> {
        let metadata = self
            .consumer
            .fetch_metadata(None, self.timeout)
            .map_err(|source| AdminError::Kafka { op: "reading partition replicas", source })?;
        let live = metadata.brokers().iter().map(|b| b.id()).collect();
        let topics = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let mut partitions: Vec<PartitionReplicas> = t
                    .partitions()
                    .iter()
                    .map(|p| PartitionReplicas {
                        partition: p.id(),
                        leader: (p.leader() >= 0).then_some(p.leader()),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                        error: p.error().map(|e| rdkafka::error::RDKafkaErrorCode::from(e).to_string()),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                (t.name().to_owned(), partitions)
            })
            .collect();
        Ok(Placement { live, topics })
    }

    /// Every consumer group with its state and members, classic groups and
    /// Kafka 4 consumer-protocol groups alike (see [`super::groups`]).
    pub fn groups(&self) -> Result<Vec<GroupSummary>, AdminError> {
        let list = self
            .consumer
            .fetch_group_list(None, self.timeout)
            .map_err(|source| AdminError::Kafka { op: "listing consumer groups", source })?;
        let names: Vec<String> = list.groups().iter().map(|g| g.name().to_owned()).collect();
        self.describe_groups(&names)
    }

    /// The named consumer groups with their states and members; a group the
    /// cluster does not know is `Dead` with no members.
    pub fn describe_groups(&self, names: &[String]) -> Result<Vec<GroupSummary>, AdminError> {
        let mut groups = super::groups::describe(self.consumer.client(), names, self.timeout)
            .map_err(|source| AdminError::Describe { source })?;
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// `(low, high)` watermarks of one partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), AdminError> {
        self.consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .map_err(|source| AdminError::Kafka { op: "reading end offsets", source })
    }

    /// The offsets `group` committed for `partitions` (`None`: nothing
    /// committed). Reads them with a consumer that never joins the group.
    pub fn committed(&self, group: &str, partitions: &[(String, i32)]) -> Result<Vec<Option<i64>>, AdminError> {
        let op = "reading committed offsets";
        let mut config = self.config.clone();
        config.set("group.id", group).set("enable.auto.commit", "false");
        let consumer: BaseConsumer<QuietContext> =
            config.create_with_context(QuietContext::default()).map_err(|source| AdminError::Kafka { op, source })?;
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        let committed =
            consumer.committed_offsets(tpl, self.timeout).map_err(|source| AdminError::Kafka { op, source })?;
        Ok(partitions
            .iter()
            .map(|(topic, partition)| match committed.find_partition(topic, *partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) if offset >= 0 => Some(offset),
                _ => None,
            })
            .collect())
    }

    /// Creates topics in one request; the broker waits up to the timeout
    /// for them to exist before it answers.
    pub fn create_topics(&self, topics: &[NewTopic<'_>]) -> Result<Vec<TopicResult>, AdminError> {
        let op = "creating topics";
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let future = self.admin.create_topics(topics, &self.options());
        self.block_on(op, future)?.map_err(|source| AdminError::Kafka { op, source })
    }

    /// Deletes topics in one request (the broker finishes asynchronously).
    pub fn delete_topics(&self, topics: &[&str]) -> Result<Vec<TopicResult>, AdminError> {
        let op = "deleting topics";
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let future = self.admin.delete_topics(topics, &self.options());
        self.block_on(op, future)?.map_err(|source| AdminError::Kafka { op, source })
    }

    /// Deletes consumer groups in one request; groups with members fail with
    /// `NonEmptyGroup`.
    pub fn delete_groups(&self, groups: &[&str]) -> Result<Vec<GroupResult>, AdminError> {
        let op = "deleting consumer groups";
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let future = self.admin.delete_groups(groups, &self.options());
        self.block_on(op, future)?.map_err(|source| AdminError::Kafka { op, source })
    }

    /// A topic's configuration as the broker reports it (defaults included).
    pub fn topic_config(&self, topic: &str) -> Result<BTreeMap<String, String>, AdminError> {
        let op = "describing topic configuration";
        let resource = ResourceSpecifier::Topic(topic);
        let future = self.admin.describe_configs([&resource], &self.options());
        let results = self.block_on(op, future)?.map_err(|source| AdminError::Kafka { op, source })?;
        let mut out = BTreeMap::new();
        for result in results {
            let resource = result.map_err(|code| AdminError::Kafka { op, source: KafkaError::AdminOp(code) })?;
            out.extend(resource.entries.into_iter().filter_map(|e| Some((e.name, e.value?))));
        }
        Ok(out)
    }

    /// The configuration of several topics in one request, by topic (each
    /// with the broker's defaults filled in).
    pub fn topic_configs(&self, topics: &[&str]) -> Result<BTreeMap<String, BTreeMap<String, String>>, AdminError> {
        let op = "describing topic configurations";
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let future = self.admin.describe_configs(&resources, &self.options());
        let results = self.block_on(op, future)?.map_err(|source| AdminError::Kafka { op, source })?;
        let mut out = BTreeMap::new();
        for (topic, result) in topics.iter().zip(results) {
            let resource = result.map_err(|code| AdminError::Kafka { op, source: KafkaError::AdminOp(code) })?;
            out.insert(
                (*topic).to_owned(),
                resource.entries.into_iter().filter_map(|e| Some((e.name, e.value?))).collect(),
            );
        }
        Ok(out)
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new().request_timeout(Some(self.timeout)).operation_timeout(Some(self.timeout))
    }

    /// Drives an admin future; librdkafka answers within the request
    /// timeout, the extra margin only guards against a lost answer.
    fn block_on<T>(&self, op: &'static str, future: impl Future<Output = T>) -> Result<T, AdminError> {
        let limit = self.timeout * 2 + Duration::from_secs(1);
        self.runtime
            .block_on(async { tokio::time::timeout(limit, future).await })
            .map_err(|_| AdminError::Timeout { op, timeout_ms: limit.as_millis() as u64 })
    }
}

/// Client settings shared by every admin connection.
fn base_config(config: &Config) -> ClientSettings {
    // librdkafka caps socket.timeout.ms at 300 s.
    let socket_ms = config.kafka.request_timeout_ms.clamp(10, 300_000).to_string();
    let mut config = ClientSettings::new(&config.kafka);
    config
        .set("client.id", "turnstile-admin")
        .set("socket.timeout.ms", &socket_ms)
        .set("socket.connection.setup.timeout.ms", &socket_ms)
        .set("allow.auto.create.topics", "false");
    config
}
