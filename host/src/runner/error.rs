//! Why a runner stops: every error that ends a runner, for the supervisor
//! to classify (heal in place, rebuild, or exit).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::transaction::TxnError;
use crate::admin::AdminError;
use crate::plugin::PluginError;
use crate::publisher::PublishError;

/// Why a runner stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Transaction(#[from] TxnError),
    #[error(
        "event {event_id} is not provisioned: topic {topic} does not exist (run `turnstile provision --event {event_id}`)"
    )]
    NotProvisioned { event_id: u64, topic: String },
    #[error("plugin {plugin_service:?} cannot run as {service:?}")]
    WrongService { service: String, plugin_service: String },
    /// The plugin does not fit the topology (an action without a topic,
    /// or a topic addressed to the service that it does not consume).
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    #[error(
        "version {version} consumes {found:?}, but this instance subscribed to {running:?}: restart the service to \
         change its inputs"
    )]
    InputsChanged { version: u32, running: Vec<String>, found: Vec<String> },
    #[error(
        "the topics of event {event_id} have different partition counts {counts:?}; the state of partition p \
         lives with partition p of every input topic, so they must be equal (re-provision the event)"
    )]
    UnequalPartitions { event_id: u64, counts: Vec<i32> },
    #[error("the plugin cannot be instantiated any more: {0}")]
    PluginUnavailable(String),
    #[error("partition {topic}[{partition}] could not be rewound after an abort: {source}")]
    Rewind {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("{0}")]
    Rebalance(String),
    #[error("the deployment cannot be read: {0}")]
    Deployment(String),
    #[error(transparent)]
    Routing(#[from] crate::routing::RoutingError),
    #[error("stalled: input was waiting but nothing committed for {age_ms} ms (runner.stall_timeout_ms {timeout_ms})")]
    Stalled { age_ms: u64, timeout_ms: u64 },
    #[error("stalled: input waits on {} but the consumer fetched none of it for {timeout_ms} ms", .partitions.join(", "))]
    NotFetching { partitions: Vec<String>, timeout_ms: u64 },
    /// The process was suspended past the transaction timeout (see
    /// `runner::suspension`): it rejoins before handling anything.
    #[error(
        "this process was suspended for {suspended_ms} ms, past the transaction timeout ({timeout_ms} ms): its transaction was aborted and its partitions are likely another member's"
    )]
    Suspended { suspended_ms: u64, timeout_ms: u64 },
    /// Fenced right after its own `init_transactions`, again and again:
    /// another live process uses the same transactional id.
    #[error(
        "transactional id {transactional_id} was fenced {fences} times in a row right after this instance took it: \
         another live instance uses instance id {instance_id:?}; give each replica its own \
         (--instance, service.consumer_instance_id or KAFKA_CONSUMER_INSTANCE_ID; the default is the host name)"
    )]
    DuplicateInstance { transactional_id: String, instance_id: String, fences: u32 },
}

impl RunnerError {
    /// Was the transactional producer fenced by a newer producer with the
    /// same transactional id (not a group fence of a zombie)?
    pub fn is_producer_fenced(&self) -> bool {
        // The rebalance hook reports its failures as text (librdkafka's
        // message for `_FENCED`).
        if let RunnerError::Rebalance(reason) = self
            && reason.contains("fenced by a newer instance")
        {
            return true;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = cause {
            if let Some(kafka) = err.downcast_ref::<KafkaError>()
                && matches!(
                    kafka.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::Fenced
                            | RDKafkaErrorCode::ProducerFenced
                            | RDKafkaErrorCode::InvalidProducerEpoch
                    )
                )
            {
                return true;
            }
            cause = err.source();
        }
        false
    }
}
