//! The exactly-once loop of one service instance: consume with
//! `read_committed`, call the plugin once per message, produce its outputs,
//! and commit outputs, state changes and input offsets in one Kafka
//! transaction. ARCHITECTURE.md walks through it.

pub mod dlq;
mod handle;
pub mod heartbeat;
pub mod input;
mod liveness;
pub mod metrics;
mod rebalance;
mod reload;
pub mod report;
pub mod supervisor;
pub mod transaction;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;

use crate::admin::{AdminError, Cluster};
use crate::config::{Config, GroupProtocol};
use crate::naming;
use crate::plugin::{LoadedPlugin, PluginError, PluginInstance, StateAccess};
use crate::publisher::{PublishError, Publisher, producer_properties};
use crate::routing::Router;
use crate::state::ServiceState;
use crate::state::changelog::Restore;
use crate::state::checkpoint::{self, CheckpointDir};
use metrics::{Metrics, MetricsSnapshot};
use rebalance::{RunnerContext, Shared, lock};
pub use reload::Reloader;
use transaction::{Transaction, TxnError};

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
    #[error("the plugin for {service:?} does not consume {action:?}, which the service receives")]
    MissingInput { service: String, action: String },
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
    #[error("stalled: committed input waits on {} but the consumer fetched none of it for {timeout_ms} ms", .partitions.join(", "))]
    NotFetching { partitions: Vec<String>, timeout_ms: u64 },
}

/// Which instance of which service to run.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service: String,
    pub event_id: u64,
    pub group_id: String,
    pub instance_id: String,
    pub transactional_id: String,
}

impl Identity {
    /// The identity from configuration (DOMAIN.md §2 names unless overridden).
    pub fn from_config(config: &Config, service: &str, event_id: u64) -> Self {
        let s = &config.service;
        let instance_id = s.consumer_instance_id.clone();
        let producer_instance = s.producer_instance_id.clone().unwrap_or_else(|| instance_id.clone());
        Identity {
            service: service.to_owned(),
            event_id,
            group_id: s.group_id.clone().unwrap_or_else(|| naming::consumer_group(event_id, service)),
            transactional_id: naming::transactional_id(service, event_id, &producer_instance),
            instance_id,
        }
    }
}

/// The plugin state as plugins see it: the runner's [`ServiceState`], shared
/// with the rebalance hooks.
#[derive(Clone, Default)]
pub struct SharedState(Arc<Mutex<ServiceState>>);

impl StateAccess for SharedState {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        lock(&self.0).get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        lock(&self.0).put(key, value)
    }
    fn delete(&mut self, key: &[u8]) {
        lock(&self.0).delete(key)
    }
    fn apply(&mut self, writes: Vec<crate::plugin::Write>) {
        lock(&self.0).apply(writes)
    }
}

/// One running service instance.
pub struct Runner {
    consumer: BaseConsumer<RunnerContext>,
    /// Input topic name → action, for the topics this instance consumes.
    inputs: HashMap<String, String>,
    worker: Worker,
    reloader: Option<Reloader>,
}

/// Everything but the consumer, so that a polled message can borrow the
/// consumer while the worker handles it.
struct Worker {
    config: Config,
    identity: Identity,
    shared: Arc<Mutex<Shared>>,
    state: SharedState,
    instance: PluginInstance<SharedState>,
    plugin_version: String,
    /// Partition count of every topic of the event.
    partitions: HashMap<String, i32>,
    router: Router,
    /// The deployment version running, when started from a deployment.
    deployment: Option<u32>,
    dlq_topic: String,
    metrics: Arc<Metrics>,
    /// When a transaction last committed (or the runner started).
    last_commit: Instant,
    /// When partition state was last checkpointed.
    last_checkpoint: Instant,
    changelog_topic: String,
    /// The restore of newly assigned partitions, stepped by the poll loop.
    restore: Option<Restore>,
    /// Input topics written by clients (not by a service of the topology).
    client_topics: std::collections::HashSet<String>,
}

impl Runner {
    /// Checks the plugin and the event's topics (through `cluster`, which
    /// the caller already connected), fences older instances with the same
    /// transactional id, and subscribes. Consumes nothing yet.
    pub fn new(
        config: &Config,
        cluster: &Cluster,
        identity: Identity,
        plugin: &LoadedPlugin,
    ) -> Result<Self, RunnerError> {
        let manifest = plugin.manifest();
        check_manifest(manifest, &identity)?;
        let event_id = identity.event_id;
        let partitions = topic_partitions(cluster, event_id)?;
        let changelog_topic = naming::changelog_topic(event_id, &identity.service).to_string();

        let mut producer_config = producer_properties(config);
        // A transaction is the batch: commit sends at once, so lingering only
        // adds latency.
        producer_config.set("linger.ms", config.runner.linger_ms.to_string());
        if !config.producer.extra.contains_key("retry.backoff.ms") {
            // The coordinator answers CONCURRENT_TRANSACTIONS while it
            // finishes the previous commit; librdkafka's default 100 ms
            // backoff then capped the transaction rate.
            producer_config.set("retry.backoff.ms", "10");
        }
        // What exactly-once rests on is not configurable.
        producer_config
            .set("transactional.id", &identity.transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A dead instance's open transaction blocks readers (and state
            // restore) until the broker aborts it after this long.
            .set("transaction.timeout.ms", config.runner.transaction_timeout_ms.to_string())
            .set("message.timeout.ms", config.runner.transaction_timeout_ms.to_string())
            .set("client.id", format!("{}-{}", identity.service, identity.instance_id));
        let producer = Publisher::tracking(producer_config, Some(&changelog_topic))?;
        let timeout = Duration::from_millis(config.kafka.request_timeout_ms.max(30_000));
        producer.producer().init_transactions(timeout)?;

        let state = SharedState::default();
        let shared = Arc::new(Mutex::new(Shared {
            txn: Transaction::new(producer, changelog_topic.clone(), timeout),
            state: state.0.clone(),
            fatal: None,
            plugin_stale: false,
            restoring: Default::default(),
            held: Default::default(),
            input_count: naming::input_topics(event_id, &identity.service).len(),
            checkpoints: (config.runner.checkpoint_interval_ms > 0).then(|| {
                CheckpointDir::new(
                    &config.runner.checkpoint_dir,
                    Duration::from_millis(config.runner.checkpoint_max_age_ms),
                )
            }),
            changelog_topic: changelog_topic.clone(),
        }));
        let context = RunnerContext { shared: shared.clone() };
        let mut consumer_config = ClientConfig::new();
        match config.runner.group_protocol {
            // Kafka 4's consumer group protocol (KIP-848): rebalances are
            // incremental, so partitions that stay keep flowing, and the
            // broker's range assignor gives partition p of every input topic
            // to one member (all of an event's topics have the same count).
            // Session and heartbeat timing are the broker's
            // (`group.consumer.session.timeout.ms`, default 45 s).
            GroupProtocol::Consumer => {
                consumer_config.set("group.protocol", "consumer").set("group.remote.assignor", "range");
            }
            // Eager range assignment: the same co-location, with every
            // partition revoked on every membership change.
            GroupProtocol::Classic => {
                consumer_config
                    .set("group.protocol", "classic")
                    .set("partition.assignment.strategy", "range")
                    .set("session.timeout.ms", "10000")
                    .set("heartbeat.interval.ms", "1000");
            }
        }
        // Either way the rebalance hooks check co-location rather than trust it.
        let consumer: BaseConsumer<RunnerContext> = consumer_config
            .set("bootstrap.servers", &config.kafka.bootstrap)
            .set("group.id", &identity.group_id)
            .set("client.id", format!("{}-{}", identity.service, identity.instance_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("fetch.min.bytes", config.runner.fetch_min_bytes.to_string())
            .set("fetch.wait.max.ms", config.runner.fetch_wait_max_ms.to_string())
            .set("max.poll.interval.ms", config.runner.max_poll_interval_ms.to_string())
            .create_with_context(context)?;
        let input_topics = naming::input_topics(event_id, &identity.service);
        let client_topics = input_topics.iter().filter(|t| t.from == naming::CLIENT).map(|t| t.to_string()).collect();
        let inputs: HashMap<String, String> = input_topics.into_iter().map(|t| (t.to_string(), t.action)).collect();
        let topics: Vec<&str> = inputs.keys().map(String::as_str).collect();
        consumer.subscribe(&topics)?;

        let instance = PluginInstance::new(plugin, state.clone())?;
        // Range assignment keeps partition p of every input with one
        // instance only if every topic of the event has the same count.
        let counts: std::collections::BTreeSet<i32> = partitions.values().copied().collect();
        if counts.len() > 1 {
            return Err(RunnerError::UnequalPartitions { event_id, counts: counts.into_iter().collect() });
        }
        let output_partitions = counts.iter().next().copied().unwrap_or(config.kafka.partitions);
        let router = Router::new(event_id, &identity.service, output_partitions)?;
        Ok(Runner {
            consumer,
            inputs,
            reloader: None,
            worker: Worker {
                router,
                deployment: None,
                config: config.clone(),
                dlq_topic: naming::dlq_topic(event_id, &identity.service).to_string(),
                identity,
                shared,
                state,
                instance,
                plugin_version: manifest.version.clone(),
                partitions,
                metrics: Arc::new(Metrics::default()),
                last_commit: Instant::now(),
                last_checkpoint: Instant::now(),
                changelog_topic,
                restore: None,
                client_topics,
            },
        })
    }

    /// Runs deployment version `running` and hot-swaps the versions that
    /// `reloader` reports (see [`Reloader`]).
    pub fn with_reloads(mut self, reloader: Reloader, running: u32) -> Self {
        self.reloader = Some(reloader);
        self.worker.deployment = Some(running);
        self
    }

    /// The instance's counters, shared for reporting.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.worker.metrics.clone()
    }

    /// Runs until `shutdown` is set, then commits the open transaction and
    /// leaves the group.
    pub fn run(mut self, shutdown: &AtomicBool) -> Result<MetricsSnapshot, RunnerError> {
        let served = self.serve(shutdown);
        heartbeat::rest();
        match served {
            Ok(()) => self.shutdown(),
            Err(err) => {
                // Never leave the transaction to the revoke hook that
                // dropping the consumer runs: it might commit half a message.
                self.worker.abort_open();
                self.worker.write_report("failed");
                Err(err)
            }
        }
    }

    fn serve(&mut self, shutdown: &AtomicBool) -> Result<(), RunnerError> {
        let Runner { consumer, inputs, worker: w, reloader } = self;
        let interval = Duration::from_millis(w.config.runner.commit_interval_ms);
        let max_batch = w.config.runner.max_batch;
        let plugin_batch = w.config.runner.plugin_batch.max(1);
        let min_gap = Duration::from_millis(w.config.runner.commit_min_gap_ms).min(interval);
        let stall_timeout = Duration::from_millis(w.config.runner.stall_timeout_ms);
        let mut fetch_watch = liveness::FetchWatch::new(stall_timeout);
        let mut last_report = Instant::now();
        let mut last_written = Instant::now();
        w.write_report("running");
        tracing::info!(
            service = %w.identity.service,
            event = w.identity.event_id,
            group = %w.identity.group_id,
            transactional_id = %w.identity.transactional_id,
            plugin_version = %w.plugin_version,
            "runner started"
        );
        while !shutdown.load(Ordering::Relaxed) {
            heartbeat::beat();
            if let Some(reason) = lock(&w.shared).fatal.take() {
                return Err(RunnerError::Rebalance(reason));
            }
            // An open transaction commits as soon as no more input is
            // waiting (a critical one at once, any other once it is
            // `commit_min_gap_ms` old); under load the fetched messages keep
            // coming and it grows up to `max_batch` or `commit_interval_ms`.
            let (critical, open_for, committing) = {
                let shared = lock(&w.shared);
                (
                    shared.txn.is_critical(),
                    shared.txn.is_open().then(|| shared.txn.open_for()),
                    shared.txn.is_committing(),
                )
            };
            let wait = match open_for {
                _ if committing => Duration::from_millis(1),
                _ if critical || w.restore.is_some() => Duration::ZERO,
                Some(open_for) => min_gap.saturating_sub(open_for).min(interval.saturating_sub(open_for)),
                None => Duration::from_millis(100),
            };
            // Up to `plugin_batch` records, as many as are waiting; each run
            // of one partition goes to the plugin in one call.
            let mut polled: Vec<handle::Polled<'_>> = Vec::new();
            let mut idle = false;
            while polled.len() < plugin_batch {
                let timeout = if polled.is_empty() { wait } else { Duration::ZERO };
                match consumer.poll(timeout) {
                    None => {
                        idle = true;
                        break;
                    }
                    Some(Ok(message)) => {
                        // A hook inside this poll may have failed.
                        if let Some(reason) = lock(&w.shared).fatal.take() {
                            return Err(RunnerError::Rebalance(reason));
                        }
                        if let Some(action) = inputs.get(message.topic()) {
                            polled.push((action, message));
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "consumer error");
                        idle = polled.is_empty();
                        break;
                    }
                }
            }
            // Readiness is checked per run, after the last poll: a rebalance
            // inside a later poll may have taken an earlier record's partition.
            let mut rest = &polled[..];
            while let Some((_, first)) = rest.first() {
                let partition = first.partition();
                let len = rest.iter().take_while(|(_, m)| m.partition() == partition).count();
                let (run, after) = rest.split_at(len);
                w.process_run(consumer, run)?;
                rest = after;
            }
            drop(polled);
            if std::mem::take(&mut lock(&w.shared).plugin_stale) {
                w.reset_plugin();
            }
            w.step_restore(consumer, inputs)?;
            // The commit in flight, if it has landed; then the next one. A
            // drained transaction waits for the one in flight to land; one
            // due by size or age waits for nothing (start_commit blocks
            // until the one before it has landed).
            w.settle(consumer, false)?;
            let due = {
                let txn = &lock(&w.shared).txn;
                let drained = idle && txn.is_open() && (critical || txn.open_for() >= min_gap);
                (drained && !txn.is_committing()) || txn.is_due(interval, max_batch)
            };
            if due {
                w.start_commit(consumer)?;
            }
            // A transaction that stays open far past its interval means the
            // commits are not getting through: say so, and let the
            // supervisor rebuild the producer and consumer (the open
            // transaction is aborted on the way out and replayed).
            // So does a commit that has been in flight that long, even with
            // nothing new open behind it.
            let open_for = {
                let txn = &lock(&w.shared).txn;
                txn.open_for().max(txn.committing_for())
            };
            if open_for > stall_timeout {
                let age_ms = u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX);
                tracing::error!(age_ms, "stalled: nothing committed while input was waiting; aborting and rejoining");
                w.write_report("stalled");
                return Err(RunnerError::Stalled { age_ms, timeout_ms: w.config.runner.stall_timeout_ms });
            }
            // Checks itself once per stall timeout.
            let stuck = fetch_watch.stuck(consumer, |p| lock(&w.shared).ready(p));
            if !stuck.is_empty() {
                let partitions: Vec<String> = stuck
                    .iter()
                    .map(|(topic, p, position, end)| format!("{topic}[{p}] (at {position}, committed end {end})"))
                    .collect();
                tracing::error!(
                    ?partitions,
                    "stalled: committed input waiting but not fetched; rejoining with a new consumer"
                );
                w.write_report("stalled");
                return Err(RunnerError::NotFetching { partitions, timeout_ms: w.config.runner.stall_timeout_ms });
            }
            if let Some((version, loaded)) = reloader.as_mut().and_then(Reloader::poll) {
                w.swap(consumer, version, loaded)?;
            }
            if last_written.elapsed() >= Duration::from_secs(1) {
                last_written = Instant::now();
                w.write_report("running");
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                let m = w.metrics.snapshot();
                tracing::info!(
                    processed = m.processed,
                    failed = m.failed,
                    dead_lettered = m.dead_lettered,
                    retried = m.retried,
                    commits = m.transactions_committed,
                    aborts = m.transactions_aborted,
                    "progress"
                );
            }
        }
        Ok(())
    }

    /// Commits what is open, leaves the group and flushes.
    fn shutdown(mut self) -> Result<MetricsSnapshot, RunnerError> {
        tracing::info!("shutting down: committing the open transaction");
        if let Err(err) = self.worker.commit(&self.consumer) {
            // As on any failure: never leave it to the revoke hook.
            self.worker.abort_open();
            self.worker.write_report("failed");
            return Err(err);
        }
        self.worker.save_checkpoints();
        // Leaving the group runs the revoke hook, which has nothing left to commit.
        self.consumer.unsubscribe();
        let _ = self.consumer.poll(Duration::from_millis(100));
        self.worker.write_report("stopped");
        let m = self.worker.metrics.snapshot();
        tracing::info!(
            processed = m.processed,
            failed = m.failed,
            dead_lettered = m.dead_lettered,
            commits = m.transactions_committed,
            "runner stopped"
        );
        Ok(m)
    }
}

impl Worker {
    /// Writes this instance's report for `turnstile status`.
    fn write_report(&self, state: &str) {
        let report = report::InstanceReport {
            service: self.identity.service.clone(),
            event_id: self.identity.event_id,
            instance_id: self.identity.instance_id.clone(),
            pid: std::process::id(),
            state: state.to_owned(),
            plugin_version: self.plugin_version.clone(),
            deployment: self.deployment,
            metrics: self.metrics.snapshot(),
            updated_at: report::now(),
            last_commit_age_ms: Some(u64::try_from(self.last_commit.elapsed().as_millis()).unwrap_or(u64::MAX)),
        };
        report::write(&self.config.runner.status_dir, &report);
    }

    /// Swaps in a newly deployed version at a transaction boundary: what
    /// the open transaction handled commits on the old version first, and
    /// the state carries over unchanged. A version that failed to compile
    /// or instantiate is logged and the old one keeps running.
    fn swap(
        &mut self,
        consumer: &BaseConsumer<RunnerContext>,
        version: crate::deploy::Version,
        loaded: Result<LoadedPlugin, String>,
    ) -> Result<(), RunnerError> {
        let plugin = match loaded {
            Ok(plugin) => plugin,
            Err(reason) => {
                tracing::error!(version = version.number, %reason, running = %self.plugin_version, "new plugin version rejected; keeping the running one");
                return Ok(());
            }
        };
        if let Err(err) = check_manifest(plugin.manifest(), &self.identity) {
            tracing::error!(version = version.number, error = %err, running = %self.plugin_version, "new plugin version rejected; keeping the running one");
            return Ok(());
        }
        self.commit(consumer)?;
        let old = std::mem::replace(&mut self.plugin_version, plugin.manifest().version.clone());
        match self.instance.reload(&plugin) {
            Ok(()) => {
                let from = self.deployment.map_or_else(|| "?".into(), |n| format!("v{n}"));
                tracing::info!(
                    from = %format!("{from} (plugin {old})"),
                    to = %format!("v{} (plugin {})", version.number, self.plugin_version),
                    sha256 = %version.sha256,
                    "plugin reloaded");
                self.deployment = Some(version.number);
            }
            Err(err) => {
                tracing::error!(version = version.number, error = %err, running = %old, "new plugin version rejected; keeping the running one");
                self.plugin_version = old;
            }
        }
        Ok(())
    }

    /// Starts, steps or finishes the restore of the partitions the assign
    /// hook paused. The set can change under a running restore (another
    /// rebalance): then it starts over for the partitions still waiting.
    fn step_restore(
        &mut self,
        consumer: &BaseConsumer<RunnerContext>,
        inputs: &HashMap<String, String>,
    ) -> Result<(), RunnerError> {
        let wanted: Vec<i32> = lock(&self.shared).restoring.iter().copied().collect();
        if wanted.is_empty() {
            self.restore = None;
            return Ok(());
        }
        if self.restore.as_ref().is_none_or(|r| r.partitions() != wanted.as_slice()) {
            let timeout = Duration::from_millis(self.config.runner.restore_timeout_ms);
            self.restore = Some(
                Restore::start(
                    &self.config.kafka.bootstrap,
                    &self.changelog_topic,
                    &wanted,
                    timeout,
                    lock(&self.shared).checkpoints.as_ref(),
                )
                .map_err(|e| RunnerError::Rebalance(e.to_string()))?,
            );
            self.write_report("restoring");
        }
        let Some(restore) = self.restore.as_mut() else { return Ok(()) };
        let Some(states) =
            restore.step(Duration::from_millis(50)).map_err(|e| RunnerError::Rebalance(e.to_string()))?
        else {
            return Ok(());
        };
        let (records, elapsed) = (restore.records(), restore.elapsed());
        self.restore = None;
        let mut shared = lock(&self.shared);
        let mut resume = rdkafka::TopicPartitionList::new();
        {
            let mut state = lock(&shared.state);
            for (p, s) in states {
                state.insert(p, s);
                for topic in inputs.keys() {
                    resume.add_partition(topic, p);
                }
            }
        }
        shared.restoring.clear();
        drop(shared);
        consumer.resume(&resume)?;
        tracing::info!(partitions = ?wanted, records, elapsed = ?elapsed, "state restored from changelog; partitions resumed");
        self.write_report("running");
        Ok(())
    }

    /// Checkpoints every partition whose committed state changed.
    fn save_checkpoints(&mut self) {
        let shared = lock(&self.shared);
        if let Some(dir) = shared.checkpoints.as_ref() {
            checkpoint::save(dir, &self.changelog_topic, &mut lock(&shared.state), None);
            self.last_checkpoint = Instant::now();
        }
    }

    /// A fresh plugin instance over the same (committed) state: after an
    /// abort or a revoke, guest globals must not remember what was undone.
    fn reset_plugin(&mut self) {
        if let Err(err) = self.instance.reset() {
            tracing::error!(error = %err, "cannot re-instantiate the plugin after an abort; retrying on the next message");
        }
    }

    /// Aborts the open transaction on the way out of a failure, so that
    /// nothing half-done can be committed by the revoke that dropping the
    /// consumer runs.
    fn abort_open(&mut self) {
        let mut shared = lock(&self.shared);
        let Shared { txn, state, .. } = &mut *shared;
        if txn.is_open() || txn.is_committing() {
            let mut state = lock(state);
            match txn.abort(&mut state) {
                Ok(_) => tracing::info!("aborted the open transaction"),
                Err(err) => {
                    tracing::warn!(error = %err, "aborting the open transaction failed; the broker aborts it at its timeout")
                }
            }
        }
    }

    /// Commits the open transaction and waits until it (and any commit in
    /// flight before it) has landed; see [`Worker::committed`] for failures.
    fn commit(&mut self, consumer: &BaseConsumer<RunnerContext>) -> Result<(), RunnerError> {
        let Some(group) = consumer.group_metadata() else {
            return Ok(());
        };
        let result = {
            let mut shared = lock(&self.shared);
            let Shared { txn, state, .. } = &mut *shared;
            txn.commit(&mut lock(state), group)
        };
        self.committed(consumer, result)
    }

    /// Starts committing the open transaction and returns while it
    /// commits, so the loop goes on handling the next messages; waits first
    /// for a commit still in flight.
    fn start_commit(&mut self, consumer: &BaseConsumer<RunnerContext>) -> Result<(), RunnerError> {
        let Some(group) = consumer.group_metadata() else {
            return Ok(());
        };
        let result = {
            let mut shared = lock(&self.shared);
            let Shared { txn, state, .. } = &mut *shared;
            txn.start_commit(&mut lock(state), group)
        };
        self.committed(consumer, result)
    }

    /// Collects the commit in flight if it has ended (`block`: once it ends).
    fn settle(&mut self, consumer: &BaseConsumer<RunnerContext>, block: bool) -> Result<(), RunnerError> {
        let result = {
            let mut shared = lock(&self.shared);
            let Shared { txn, state, .. } = &mut *shared;
            txn.settle(&mut lock(state), block)
        };
        match result {
            Some(result) => self.committed(consumer, result),
            None => Ok(()),
        }
    }

    /// Books the outcome of a commit. A landed one counts and may be
    /// checkpointed; on an abortable failure the consumer rewinds to the
    /// first offsets of what was lost and the loop goes on.
    fn committed(
        &mut self,
        consumer: &BaseConsumer<RunnerContext>,
        result: Result<(), TxnError>,
    ) -> Result<(), RunnerError> {
        match result {
            Ok(()) => {
                let landed = lock(&self.shared).txn.take_landed();
                if landed > 0 {
                    Metrics::add(&self.metrics.transactions_committed, landed);
                    self.last_commit = Instant::now();
                }
                let interval = Duration::from_millis(self.config.runner.checkpoint_interval_ms);
                if landed > 0 && self.last_checkpoint.elapsed() >= interval {
                    let shared = lock(&self.shared);
                    if let Some(dir) = shared.checkpoints.as_ref() {
                        checkpoint::save(dir, &self.changelog_topic, &mut lock(&shared.state), None);
                        self.last_checkpoint = Instant::now();
                    }
                }
                Ok(())
            }
            Err(err @ (TxnError::Aborted(_) | TxnError::Poisoned)) => {
                Metrics::add(&self.metrics.transactions_aborted, 1);
                let rewind = lock(&self.shared).txn.take_rewind();
                tracing::warn!(error = %err, partitions = rewind.len(), "transaction aborted; rewinding to its first offsets");
                self.reset_plugin();
                for ((topic, partition), offset) in rewind {
                    if let Err(err) =
                        consumer.seek(&topic, partition, rdkafka::Offset::Offset(offset), Duration::from_secs(10))
                    {
                        let owned = consumer
                            .assignment()
                            .map(|a| a.find_partition(&topic, partition).is_some())
                            .unwrap_or(true);
                        if owned {
                            // Going on would skip the aborted messages; a
                            // restart resumes from the committed offsets.
                            return Err(RunnerError::Rewind { topic, partition, source: err });
                        }
                        tracing::info!(%topic, partition, "not rewinding a partition that was revoked meanwhile");
                    }
                }
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// A plugin may run as a service only if its manifest names the service and
/// consumes every action the service receives.
fn check_manifest(manifest: &crate::plugin::Manifest, identity: &Identity) -> Result<(), RunnerError> {
    if manifest.service != identity.service {
        return Err(RunnerError::WrongService {
            service: identity.service.clone(),
            plugin_service: manifest.service.clone(),
        });
    }
    for topic in naming::input_topics(identity.event_id, &identity.service) {
        if !manifest.consumes.contains(&topic.action) {
            return Err(RunnerError::MissingInput { service: identity.service.clone(), action: topic.action });
        }
    }
    Ok(())
}

/// Partition counts of every topic of the event, read from the broker.
fn topic_partitions(cluster: &Cluster, event_id: u64) -> Result<HashMap<String, i32>, RunnerError> {
    let existing = cluster.topics()?;
    let mut counts = HashMap::new();
    for spec in naming::event_topics(event_id) {
        let name = spec.name.to_string();
        match existing.get(&name) {
            Some(&n) => counts.insert(name, n),
            None => return Err(RunnerError::NotProvisioned { event_id, topic: name }),
        };
    }
    Ok(counts)
}
