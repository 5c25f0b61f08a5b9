//! Everything that talks to the Kafka admin API: provisioning and reset,
//! and what `status` reads from the broker.
//!
//! [`Cluster`] is the one connection the commands share; the submodules hold
//! one job each and return plain reports the command line prints.

mod client;
mod groups;
pub mod provision;
pub mod reset;
pub(crate) mod table;

pub use client::{Brokers, Cluster, GroupMember, GroupSummary, PartitionReplicas, Placement};
pub use groups::DescribeError;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::Config;

/// The partition count of one existing topic (connects with `config`).
pub fn partition_count(config: &Config, topic: &str) -> Result<i32, AdminError> {
    let cluster = Cluster::connect(config)?;
    cluster.topics()?.get(topic).copied().ok_or_else(|| AdminError::NoSuchTopic(topic.to_owned()))
}

/// The bootstrap did not answer a metadata request in time, or refused the
/// client (exit code 2: the configuration points somewhere Kafka is not, or
/// does not say how to be let in).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Unreachable {
    /// The configured `kafka.bootstrap`.
    pub bootstrap: String,
    /// The `kafka.request_timeout_ms` that applied.
    pub timeout_ms: u64,
    /// What librdkafka reported.
    pub reason: String,
    /// The cluster answered and refused the client (TLS, SASL,
    /// authorization): waiting will not help.
    pub refused: bool,
}

impl Unreachable {
    fn describe(&self) -> String {
        if self.refused {
            format!(
                "Kafka at kafka.bootstrap = {} refused the connection: {}; {}",
                self.bootstrap,
                self.reason,
                refusal_hint(&self.reason)
            )
        } else {
            format!(
                "Kafka is unreachable at kafka.bootstrap = {} (no metadata within {} ms: {}); \
                 start a broker (scripts/local-kafka start) or set kafka.bootstrap / --bootstrap",
                self.bootstrap, self.timeout_ms, self.reason
            )
        }
    }
}

/// What to check for a refusal librdkafka described as `reason`.
fn refusal_hint(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    if reason.contains("certificate verify failed") {
        "the broker's certificate is not signed by a CA in kafka.ssl_ca_location (or the system's trust store), \
         or does not name the host it was reached by in kafka.bootstrap (host-name verification: \
         kafka.ssl_endpoint_identification)"
    } else if reason.contains("bad certificate") || reason.contains("certificate required") {
        "the broker refused the client certificate: check kafka.ssl_certificate_location and kafka.ssl_key_location"
    } else if reason.contains("sasl") || reason.contains("authentication") {
        "check kafka.sasl_mechanism, kafka.sasl_username and the password (kafka.sasl_password or \
         kafka.sasl_password_file)"
    } else if reason.contains("security.protocol") {
        "check kafka.security_protocol against the broker's listener"
    } else {
        "check the security settings (kafka.security_protocol, kafka.sasl_*, kafka.ssl_*, [kafka.client])"
    }
}

/// A failed admin operation.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A Kafka request failed; `op` says which.
    #[error("{op}")]
    Kafka {
        op: &'static str,
        #[source]
        source: KafkaError,
    },
    /// The cluster could not be reached (the source is [`Unreachable`], so
    /// the command line still exits with 2).
    #[error("connecting to Kafka")]
    Connect(#[from] Unreachable),
    /// A topic that must exist does not.
    #[error("topic {0} does not exist (provision the event first)")]
    NoSuchTopic(String),
    /// A request did not complete within the request timeout.
    #[error("{op}: no answer within {timeout_ms} ms")]
    Timeout { op: &'static str, timeout_ms: u64 },
    /// Topics of the event already exist with another partition count.
    #[error("{}", describe_mismatches(.0))]
    PartitionMismatch(Vec<PartitionMismatch>),
    /// The broker refused to create topics.
    #[error("creating topics failed: {}", describe_codes(.0))]
    CreateTopics(Vec<(String, RDKafkaErrorCode)>),
    /// The brokers refused the replication factor: fewer are live than it needs.
    #[error(
        "creating topics failed: replication factor {factor} needs {factor} live brokers, but only {} {} live{}: {}",
        .live.len(),
        if .live.len() == 1 { "is" } else { "are" },
        describe_missing(.missing),
        describe_codes(.failures)
    )]
    TooFewBrokers { factor: i32, live: Vec<i32>, missing: Vec<i32>, failures: Vec<(String, RDKafkaErrorCode)> },
    /// Created topics did not show up in the metadata in time.
    #[error("topics not ready within {timeout_ms} ms: {}", .topics.join(", "))]
    NotReady { topics: Vec<String>, timeout_ms: u64 },
    /// Consumer groups could not be described.
    #[error("describing consumer groups")]
    Describe {
        #[source]
        source: groups::DescribeError,
    },
    /// The async runtime that drives admin requests could not start.
    #[error("starting the admin runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A topic whose partition count differs from the requested one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMismatch {
    pub topic: String,
    pub expected: i32,
    pub actual: i32,
}

fn describe_mismatches(list: &[PartitionMismatch]) -> String {
    let items: Vec<String> = list.iter().map(|m| format!("{} has {}", m.topic, m.actual)).collect();
    format!(
        "existing topics have another partition count than the requested {}: {} \
         (delete the event with `turnstile reset`, or provision with --partitions {})",
        list.first().map_or(0, |m| m.expected),
        items.join("; "),
        list.first().map_or(0, |m| m.actual)
    )
}

fn describe_missing(missing: &[i32]) -> String {
    match missing {
        [] => " (set kafka.replication_factor / --replication to what the cluster has)".into(),
        ids => {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            format!(" (broker {} holds replicas but is down: start it and provision again)", ids.join(", "))
        }
    }
}

fn describe_codes(list: &[(String, RDKafkaErrorCode)]) -> String {
    let items: Vec<String> = list.iter().map(|(topic, code)| format!("{topic}: {code}")).collect();
    items.join("; ")
}
