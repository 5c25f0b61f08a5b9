//! The exactly-once loop of one service instance: consume with
//! `read_committed`, call the plugin once per message, produce its outputs,
//! and commit outputs, state changes and input offsets in one Kafka
//! transaction. ARCHITECTURE.md walks through it.

mod commit;
mod consumer_errors;
pub mod dlq;
mod error;
mod handle;
pub mod heartbeat;
mod identity;
pub mod input;
mod liveness;
pub mod metrics;
mod pace;
mod rebalance;
mod reload;
pub mod report;
mod restore;
pub mod supervisor;
mod suspension;
mod swap;
pub mod transaction;
mod turn;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;

use crate::admin::Cluster;
use crate::client::ClientSettings;
use crate::config::{Config, GroupProtocol};
use crate::naming;
use crate::plugin::{LoadedPlugin, PluginInstance, StateAccess};
use crate::publisher::{Publisher, producer_properties};
use crate::routing::Router;
use crate::state::ServiceState;
use crate::state::changelog::Restore;
use crate::state::checkpoint::CheckpointDir;
use crate::topology::Topology;
pub use error::RunnerError;
pub use identity::Identity;
use identity::check_manifest;
use metrics::{InstanceState, Metrics, MetricsSnapshot};
use rebalance::{RunnerContext, Shared, lock};
pub use reload::Reloader;
use transaction::Transaction;
use turn::Turn;

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
    /// The event's topics, built-in and configured.
    topology: Topology,
    /// The actions subscribed to, sorted: a hot swap must keep them.
    consumes: Vec<String>,
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
    /// The loop turn under way: its time budget and what it put back.
    turn: Turn,
    /// What the consumer reported instead of records.
    consumer_errors: consumer_errors::ConsumerErrors,
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
        metrics: Arc<Metrics>,
    ) -> Result<Self, RunnerError> {
        metrics.set_state(InstanceState::Rebalancing);
        let manifest = plugin.manifest();
        let topology = config.topology();
        check_manifest(manifest, &identity, &topology)?;
        let event_id = identity.event_id;
        let partitions = topic_partitions(cluster, &topology, event_id)?;
        let input_topics = topology.inputs(event_id, &manifest.consumes);
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
        let timeout = config.runner.call_timeout();
        heartbeat::beat();
        producer.producer().init_transactions(timeout)?;
        heartbeat::beat();

        let state = SharedState::default();
        let shared = Arc::new(Mutex::new(Shared {
            txn: Transaction::new(producer, changelog_topic.clone(), timeout),
            state: state.0.clone(),
            fatal: None,
            plugin_stale: false,
            restoring: Default::default(),
            held: Default::default(),
            input_count: input_topics.len(),
            checkpoints: (config.runner.checkpoint_interval_ms > 0).then(|| {
                CheckpointDir::new(
                    &config.runner.checkpoint_dir,
                    Duration::from_millis(config.runner.checkpoint_max_age_ms),
                )
            }),
            changelog_topic: changelog_topic.clone(),
            retired: false,
        }));
        let context = RunnerContext {
            shared: shared.clone(),
            metrics: metrics.clone(),
            errors: Default::default(),
            cut_off_after: Duration::from_millis(config.runner.transaction_timeout_ms),
        };
        let mut consumer_config = ClientSettings::new(&config.kafka);
        // For the group's state (`rebalance::cut_off`) and, with metrics, the
        // lag per partition (`RunnerContext::stats`).
        let stats_interval = if config.metrics.listen.is_some() { config.metrics.lag_interval_ms } else { 1_000 };
        consumer_config.set("statistics.interval.ms", stats_interval.to_string());
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
        let router = Router::new(&topology, event_id, &identity.service, output_partitions)?;
        let mut consumes = manifest.consumes.clone();
        consumes.sort();
        Ok(Runner {
            consumer,
            inputs,
            reloader: None,
            worker: Worker {
                router,
                topology,
                consumes,
                deployment: None,
                config: config.clone(),
                dlq_topic: naming::dlq_topic(event_id, &identity.service).to_string(),
                identity,
                shared,
                state,
                instance,
                plugin_version: manifest.version.clone(),
                partitions,
                metrics,
                last_commit: Instant::now(),
                last_checkpoint: Instant::now(),
                changelog_topic,
                restore: None,
                client_topics,
                turn: Turn::new(config),
                consumer_errors: Default::default(),
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

    /// Runs until `shutdown` is set, then commits the open transaction and
    /// leaves the group.
    pub fn run(mut self, shutdown: &AtomicBool) -> Result<MetricsSnapshot, RunnerError> {
        match self.serve(shutdown) {
            Ok(()) => self.shutdown(),
            Err(err) => {
                // Never leave the transaction to the revoke hook that
                // dropping the consumer runs: it might commit half a message.
                // Both steps are bounded and the heartbeat goes on, so a
                // teardown that hangs is caught like a loop that hangs.
                heartbeat::beat();
                self.worker.abort_open();
                heartbeat::beat();
                self.worker.write_report("failed");
                self.worker.metrics.set_state(InstanceState::Error);
                self.retire();
                heartbeat::beat();
                Err(err)
            }
        }
    }

    /// Closes a failed runner's clients on a thread of their own, waiting
    /// at most `runner.call_timeout()`: closing the consumer leaves the group
    /// and dropping the producer flushes, and either can wait for a broker
    /// that is away. One that takes longer is left to finish by itself (its
    /// hooks do nothing any more, see [`Shared::retired`]), and the rebuild
    /// goes on: its new producer fences the old one, its new consumer joins
    /// as a new member.
    fn retire(self) {
        let bound = self.worker.config.runner.call_timeout();
        lock(&self.worker.shared).retired = true;
        let (closed, finished) = std::sync::mpsc::channel::<()>();
        // A thread that cannot start drops the runner here, unbounded.
        let _ = std::thread::Builder::new().name("turnstile-retire".into()).spawn(move || {
            drop(self);
            let _ = closed.send(());
        });
        if finished.recv_timeout(bound).is_err() {
            tracing::warn!(
                ?bound,
                "the failed runner's consumer and producer did not close in time; leaving them to finish and rebuilding"
            );
        }
    }

    fn serve(&mut self, shutdown: &AtomicBool) -> Result<(), RunnerError> {
        let Runner { consumer, inputs, worker: w, reloader } = self;
        let interval = Duration::from_millis(w.config.runner.commit_interval_ms);
        let max_batch = w.config.runner.max_batch;
        let plugin_batch = w.config.runner.plugin_batch.max(1);
        let min_gap = Duration::from_millis(w.config.runner.commit_min_gap_ms).min(interval);
        let pace = pace::Pace { interval, min_gap };
        let stall_timeout = Duration::from_millis(w.config.runner.stall_timeout_ms);
        let mut fetch_watch = liveness::FetchWatch::new(&w.config.kafka, stall_timeout);
        let mut last_report = Instant::now();
        let mut last_written = Instant::now();
        let suspension_bound = Duration::from_millis(w.config.runner.transaction_timeout_ms);
        suspension::watch();
        // A suspension before this runner existed is not its concern.
        suspension::take();
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
            w.turn.restart();
            if let Some(reason) = lock(&w.shared).fatal.take() {
                return Err(RunnerError::Rebalance(reason));
            }
            // An open transaction commits as soon as no more input is
            // waiting (a critical one at once, any other once it is
            // `commit_min_gap_ms` old); under load the fetched messages keep
            // coming and it grows up to `max_batch` or `commit_interval_ms`.
            let wait = pace.poll_wait(lock(&w.shared).txn.pacing(), w.restore.is_some());
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
                        w.metrics.consumer_errors.inc();
                        if let Some(log) = w.consumer_errors.observe(err.to_string(), Instant::now()) {
                            tracing::warn!(error = %log.text, repeated = log.repeated, "consumer error (a recurring one is logged once a minute; status shows it as the instance's error)");
                        }
                        idle = polled.is_empty();
                        break;
                    }
                }
            }
            // Woken from a suspension longer than the transaction timeout:
            // what was polled belongs to partitions likely given away.
            let suspended = suspension::take();
            if suspended > suspension_bound {
                let suspended_ms = u64::try_from(suspended.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(
                    suspended_ms,
                    "this process was suspended past the transaction timeout; rejoining with new clients before handling anything"
                );
                return Err(RunnerError::Suspended {
                    suspended_ms,
                    timeout_ms: w.config.runner.transaction_timeout_ms,
                });
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
            w.book_state();
            // The commit in flight, if it has landed; then the next one
            // (start_commit first waits for the one in flight to land).
            heartbeat::beat();
            w.settle(consumer, false)?;
            let now = {
                let txn = &lock(&w.shared).txn;
                pace.commit_now(txn.pacing(), idle, txn.is_due(interval, max_batch))
            };
            if now {
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
            // Samples itself a few times per stall timeout, off this thread.
            let stuck = fetch_watch.stuck(consumer, |p| lock(&w.shared).ready(p));
            if !stuck.is_empty() {
                let partitions: Vec<String> = stuck
                    .iter()
                    .map(|s| format!("{}[{}] (fetched up to {}, log end {})", s.topic, s.partition, s.seen, s.end))
                    .collect();
                tracing::error!(?partitions, "stalled: input waiting but not fetched; rejoining with a new consumer");
                w.write_report("stalled");
                return Err(RunnerError::NotFetching { partitions, timeout_ms: w.config.runner.stall_timeout_ms });
            }
            if let Some((version, loaded)) = reloader.as_mut().and_then(Reloader::poll) {
                heartbeat::beat();
                w.swap(consumer, version, loaded)?;
            }
            if last_written.elapsed() >= Duration::from_secs(1) {
                last_written = Instant::now();
                match w.consumer_errors.current(Instant::now()).map(str::to_owned) {
                    Some(error) => w.write_report(&format!("error: {error}")),
                    None => w.write_report("running"),
                }
                w.metrics.update_rate(Duration::from_secs(5));
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
    /// Sets the instance state the metrics report from what it holds:
    /// restoring while any partition restores, rebalancing while it holds
    /// no complete partition (also between an instance's start and its
    /// first assignment), running otherwise.
    fn book_state(&self) {
        let shared = lock(&self.shared);
        let complete = shared.held.keys().filter(|p| shared.complete(**p)).count();
        let restoring = shared.restoring.len();
        drop(shared);
        self.metrics.set_partitions(complete, restoring);
        self.metrics.set_state(if restoring > 0 || self.restore.is_some() {
            InstanceState::Restoring
        } else if complete == 0 {
            InstanceState::Rebalancing
        } else if self.consumer_errors.current(Instant::now()).is_some() {
            // A partition that cannot be read (see `consumer_errors`).
            InstanceState::Error
        } else {
            InstanceState::Running
        });
    }

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

    /// A fresh plugin instance over the same (committed) state: after an
    /// abort or a revoke, guest globals must not remember what was undone.
    fn reset_plugin(&mut self) {
        if let Err(err) = self.instance.reset() {
            tracing::error!(error = %err, "cannot re-instantiate the plugin after an abort; retrying on the next message");
        }
    }
}

/// Partition counts of every topic of the event, read from the broker.
fn topic_partitions(
    cluster: &Cluster,
    topology: &Topology,
    event_id: u64,
) -> Result<HashMap<String, i32>, RunnerError> {
    let existing = cluster.topics()?;
    let mut counts = HashMap::new();
    for spec in topology.event_topics(event_id) {
        let name = spec.name.to_string();
        match existing.get(&name) {
            Some(&n) => counts.insert(name, n),
            None => return Err(RunnerError::NotProvisioned { event_id, topic: name }),
        };
    }
    Ok(counts)
}
