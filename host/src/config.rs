//! Configuration: built-in defaults < `turnstile.toml` (or `--config FILE`) <
//! environment < command-line flags, merged with figment.
//!
//! Environment: `TURNSTILE_{SECTION}__{KEY}` (e.g. `TURNSTILE_KAFKA__BOOTSTRAP`),
//! plus the seed's variables (`KAFKA_BOOTSTRAP_SERVERS`, `EVENT_ID`,
//! `CONSUMER_GROUP_ID`, `KAFKA_CONSUMER_INSTANCE_ID`,
//! `KAFKA_PRODUCER_INSTANCE_ID`), which `TURNSTILE_*` overrides. Only
//! `TURNSTILE_` variables with a `__` are configuration, so that scripts can
//! keep their own `TURNSTILE_CACHE`-style variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

/// The file read when `--config` is not given (if it exists).
pub const DEFAULT_FILE: &str = "turnstile.toml";

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub producer: ProducerConfig,
    pub service: ServiceConfig,
    pub runner: RunnerConfig,
    pub plugin: PluginConfig,
}

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

/// Which service instance this process is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// `ticketing-service` or `seat-reservation-service` (for `run`).
    pub name: Option<String>,
    pub event_id: Option<u64>,
    /// Overrides the group name of DOMAIN.md §2 (seed: `CONSUMER_GROUP_ID`).
    #[serde(deserialize_with = "text::optional")]
    pub group_id: Option<String>,
    /// Distinguishes instances of one service (seed: `KAFKA_CONSUMER_INSTANCE_ID`).
    #[serde(deserialize_with = "text::required")]
    pub consumer_instance_id: String,
    /// Suffix of the transactional id (seed: `KAFKA_PRODUCER_INSTANCE_ID`);
    /// defaults to the consumer instance id.
    #[serde(deserialize_with = "text::optional")]
    pub producer_instance_id: Option<String>,
}

/// The consume → plugin → produce loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// A transaction commits at least this often while messages flow.
    pub commit_interval_ms: u64,
    /// … or when it holds this many input messages. Under a backlog the
    /// broker's cost per transaction dominates, so this is large enough that
    /// the commit interval is what usually ends a transaction (BENCHMARKS.md).
    pub max_batch: usize,
    /// … or as soon as no more input is waiting, once it has been open this
    /// long (at most `commit_interval_ms`): latency follows the work under
    /// light load, and batches grow by themselves under heavy load. The
    /// default equals the commit interval: with the broker on the same two
    /// cores, smaller gaps made latency worse (BENCHMARKS.md).
    pub commit_min_gap_ms: u64,
    /// Most consecutive messages of one partition handed to the plugin in
    /// one call (WIT `handle` takes a batch): fewer crossings of the
    /// wasm boundary, each message still kept or dropped on its own.
    pub plugin_batch: usize,
    /// Retries of a `transient` plugin error before the message is dead-lettered.
    pub max_retries: u32,
    /// First retry delay; doubles on each retry.
    pub retry_backoff_ms: u64,
    /// Bound on a graceful shutdown.
    pub shutdown_timeout_ms: u64,
    /// `linger.ms` of the transactional producer; small, because every
    /// commit sends what is queued anyway.
    pub linger_ms: u32,
    /// Where instances write the reports that `turnstile status` shows.
    pub status_dir: PathBuf,
    /// The input consumer's `fetch.min.bytes`: larger means fewer, fuller
    /// fetches under load, at up to `fetch_wait_max_ms` more latency.
    pub fetch_min_bytes: u32,
    /// The input consumer's `fetch.wait.max.ms`.
    pub fetch_wait_max_ms: u32,
    /// Upper bound of the doubling retry delay.
    pub max_retry_backoff_ms: u64,
    /// `transaction.timeout.ms` of the transactional producer: a dead
    /// instance's open transaction blocks readers this long at most.
    pub transaction_timeout_ms: u64,
    /// `max.poll.interval.ms` of the input consumer.
    pub max_poll_interval_ms: u64,
    /// A runner loop silent this long (stuck inside one Kafka client call)
    /// makes `turnstile run` replace its process in place.
    pub wedge_timeout_ms: u64,
    /// How services join their consumer groups (see [`GroupProtocol`]).
    pub group_protocol: GroupProtocol,
    /// Largest record the runner produces (key, value and headers); also the
    /// producer's `message.max.bytes`. Outputs, dead letters and changelog
    /// records over it are never sent (DOMAIN.md: poison never stops a service).
    pub max_record_bytes: usize,
    /// Bound on restoring the state of newly assigned partitions.
    pub restore_timeout_ms: u64,
    /// Where instances keep local checkpoints of partition state, so that a
    /// restart reads only the changelog's tail.
    pub checkpoint_dir: PathBuf,
    /// How often changed partition state is checkpointed (also on revoke
    /// and shutdown); 0 turns checkpoints off.
    pub checkpoint_interval_ms: u64,
    /// Checkpoints older than this are not used: compaction may have dropped
    /// a delete written after them once the changelog's
    /// `delete.retention.ms` (24 h by default) has passed.
    pub checkpoint_max_age_ms: u64,
    /// A runner with input waiting that commits nothing for this long is
    /// `stalled`: it logs an error, aborts, rewinds and retries.
    pub stall_timeout_ms: u64,
}

/// The WebAssembly sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// Deadline of one plugin call; a call past it is interrupted. A batch
    /// that times out is handed again one message per call, each with this
    /// deadline, so only the slow message fails.
    pub deadline_ms: u64,
    /// Linear-memory cap per plugin instance.
    pub memory_limit_mib: u64,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// The deployment directory (`DIR/SERVICE/current`).
    pub plugins_dir: PathBuf,
    /// Bytes of state writes one message may return (they are built in the
    /// guest's memory, so at most `memory_limit_mib`).
    pub max_pending_state_bytes: u64,
    /// Largest state key a plugin may write.
    pub max_key_bytes: u64,
    /// Largest state value a plugin may write.
    pub max_value_bytes: u64,
    /// Outputs one message may produce.
    pub max_outputs: u64,
    /// Bytes of all outputs of one message together.
    pub max_output_bytes: u64,
    /// Log lines per message; the rest are counted and reported once.
    pub max_log_lines: u64,
    /// Bytes of log text per message; the rest is truncated.
    pub max_log_bytes: u64,
    /// Longest service name, version or action name in a manifest.
    pub max_manifest_string_bytes: u64,
    /// Most actions a manifest may consume or emit.
    pub max_manifest_actions: u64,
    /// Elements of one wasm table.
    pub max_table_elements: u64,
    /// Largest component file accepted by deploy and load.
    pub max_component_bytes: u64,
    /// Longest a component may take to compile at deploy, load or reload.
    pub max_compile_ms: u64,
    /// Write `/tmp/perf-PID.map` so that `perf` names the plugins' compiled
    /// functions (for profiling; off by default).
    pub perf_map: bool,
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

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            name: None,
            event_id: None,
            group_id: None,
            consumer_instance_id: "1".into(),
            producer_instance_id: None,
        }
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            commit_interval_ms: 100,
            max_batch: 5000,
            plugin_batch: 64,
            commit_min_gap_ms: 100,
            max_retries: 3,
            retry_backoff_ms: 50,
            shutdown_timeout_ms: 10_000,
            linger_ms: 5,
            status_dir: PathBuf::from(".turnstile/status"),
            fetch_min_bytes: 1,
            fetch_wait_max_ms: 500,
            max_retry_backoff_ms: 1_000,
            transaction_timeout_ms: 15_000,
            max_poll_interval_ms: 60_000,
            group_protocol: GroupProtocol::Consumer,
            wedge_timeout_ms: 120_000,
            max_record_bytes: 1_000_000,
            restore_timeout_ms: 120_000,
            checkpoint_dir: PathBuf::from(".turnstile/checkpoints"),
            checkpoint_interval_ms: 10_000,
            checkpoint_max_age_ms: 3_600_000,
            stall_timeout_ms: 30_000,
        }
    }
}

impl Default for PluginConfig {
    fn default() -> Self {
        let cache_root = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        PluginConfig {
            deadline_ms: 1000,
            memory_limit_mib: 64,
            cache_dir: cache_root.join("turnstile").join("compiled"),
            plugins_dir: PathBuf::from(".turnstile/plugins"),
            max_pending_state_bytes: 8 << 20,
            max_key_bytes: 1024,
            max_value_bytes: 256 << 10,
            max_outputs: 64,
            max_output_bytes: 2 << 20,
            max_log_lines: 32,
            max_log_bytes: 8 << 10,
            max_manifest_string_bytes: 128,
            max_manifest_actions: 32,
            max_table_elements: 100_000,
            max_component_bytes: 32 << 20,
            max_compile_ms: 60_000,
            perf_map: false,
        }
    }
}

/// Identifiers that the environment may spell as numbers (`INSTANCE_ID=2`),
/// which figment would otherwise read as integers.
mod text {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Unsigned(u64),
        Signed(i64),
    }

    impl From<Text> for String {
        fn from(t: Text) -> String {
            match t {
                Text::String(s) => s,
                Text::Unsigned(n) => n.to_string(),
                Text::Signed(n) => n.to_string(),
            }
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Text::deserialize(d).map(String::from)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<Text>::deserialize(d).map(|t| t.map(String::from))
    }
}

/// The consumer group protocol of the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// Kafka 4's protocol (KIP-848) with the broker's `range` assignor:
    /// incremental rebalances, so partitions that stay keep flowing. The
    /// default (Kafka 4 brokers only).
    Consumer,
    /// The classic protocol with eager `range` assignment: every membership
    /// change revokes every partition (restores then read only the tail
    /// after the local checkpoint). For brokers older than Kafka 4.
    Classic,
}

/// A configuration that cannot be used, naming the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(Box<figment::Error>),
    #[error("invalid configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("invalid configuration: config file {0} does not exist")]
    MissingFile(PathBuf),
}

impl ConfigError {
    /// `key` cannot be used, for `reason`.
    pub fn invalid(key: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.to_owned(), reason: reason.into() }
    }
}

/// Values given on the command line, the highest layer. Flags the user did
/// not pass are absent, so they never mask a lower layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides(Dict);

impl Overrides {
    /// Sets `section.key` (e.g. `kafka.bootstrap`) if `value` is `Some`.
    pub fn set<T: Serialize>(&mut self, path: &str, value: Option<T>) -> &mut Self {
        let Some(value) = value else { return self };
        let Ok(value) = Value::serialize(value) else { return self };
        let (section, key) = path.split_once('.').unwrap_or((path, ""));
        let entry = self.0.entry(section.to_owned()).or_insert_with(|| Value::from(Dict::new()));
        if let Value::Dict(_, dict) = entry {
            dict.insert(key.to_owned(), value);
        }
        self
    }
}

impl Provider for Overrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flag")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// The merged configuration and the figment it came from (for provenance).
pub struct Loaded {
    pub config: Config,
    figment: Figment,
}

impl Loaded {
    /// Loads and validates the configuration. `file` is `--config`: a named
    /// file must exist, the default `turnstile.toml` is optional.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let toml = match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => Toml::file_exact(path),
            None => Toml::file(DEFAULT_FILE),
        };
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(toml)
            .merge(seed_env())
            .merge(Env::prefixed("TURNSTILE_").filter(|k| k.as_str().contains("__")).split("__"))
            .merge(overrides.clone());
        let config: Config = figment.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(Loaded { config, figment })
    }

    /// Every leaf key with its value and the layer it came from, sorted by key.
    pub fn provenance(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(Value::Dict(_, root)) = Value::serialize(&self.config) {
            collect_leaves("", &root, &mut out);
        }
        out.into_iter()
            .map(|key| {
                let mut source =
                    self.figment.find_metadata(&key).map(describe_source).unwrap_or_else(|| "default".into());
                if let Some((_, unset)) = UNSET.iter().find(|(k, _)| *k == key)
                    && source == "default"
                {
                    source = format!("default: unset, {unset}");
                }
                (key, source)
            })
            .collect()
    }
}

/// What an optional key means when nobody set it (for `turnstile config`).
const UNSET: &[(&str, &str)] = &[
    ("kafka.replication_factor", "provision takes it from the cluster (3 on 3+ brokers, 2 on 2, 1 on 1)"),
    ("kafka.min_insync_replicas", "provision uses 2 for a replication factor of 3 or more, else 1"),
];

fn collect_leaves(prefix: &str, dict: &Dict, out: &mut Vec<String>) {
    for (key, value) in dict {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Dict(_, inner) if !inner.is_empty() => collect_leaves(&path, inner, out),
            _ => out.push(path),
        }
    }
}

fn describe_source(meta: &Metadata) -> String {
    if meta.name == std::any::type_name::<Config>() {
        return "default".into();
    }
    match &meta.source {
        Some(source) => format!("{} ({source})", meta.name),
        None => meta.name.to_string(),
    }
}

/// The original Python system's variable names.
fn seed_env() -> Env {
    Env::raw()
        .only(&[
            "KAFKA_BOOTSTRAP_SERVERS",
            "EVENT_ID",
            "CONSUMER_GROUP_ID",
            "KAFKA_CONSUMER_INSTANCE_ID",
            "KAFKA_PRODUCER_INSTANCE_ID",
        ])
        .map(|key| {
            match key.as_str().to_ascii_uppercase().as_str() {
                "KAFKA_BOOTSTRAP_SERVERS" => "kafka.bootstrap",
                "EVENT_ID" => "service.event_id",
                "CONSUMER_GROUP_ID" => "service.group_id",
                "KAFKA_CONSUMER_INSTANCE_ID" => "service.consumer_instance_id",
                _ => "service.producer_instance_id",
            }
            .into()
        })
}

impl Config {
    /// Range checks that the types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.bootstrap.split(',').any(|addr| !is_host_port(addr.trim())) {
            return Err(ConfigError::invalid(
                "kafka.bootstrap",
                format!("{:?} is not a comma-separated list of host:port", k.bootstrap),
            ));
        }
        check_range("kafka.partitions", i64::from(k.partitions), 1, 10_000)?;
        if let Some(factor) = k.replication_factor {
            check_range("kafka.replication_factor", i64::from(factor), 1, 32)?;
        }
        if let Some(min_isr) = k.min_insync_replicas {
            check_range("kafka.min_insync_replicas", i64::from(min_isr), 1, 32)?;
        }
        // With the factor unset, `provision` checks against the one it chooses.
        if let (Some(factor), Some(min_isr)) = (k.replication_factor, k.min_insync_replicas)
            && min_isr > factor
        {
            return Err(ConfigError::invalid(
                "kafka.min_insync_replicas",
                format!("{min_isr} is larger than kafka.replication_factor ({factor})"),
            ));
        }
        check_range("kafka.request_timeout_ms", k.request_timeout_ms as i64, 100, 600_000)?;
        let p = &self.producer;
        check_range("producer.linger_ms", i64::from(p.linger_ms), 0, 900_000)?;
        check_range("producer.batch_size", i64::from(p.batch_size), 1, 2_147_483_647)?;
        check_range("producer.batch_num_messages", i64::from(p.batch_num_messages), 1, 1_000_000)?;
        check_range("producer.queue_max_messages", i64::from(p.queue_max_messages), 1, 2_147_483_647)?;
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&p.compression_type.as_str()) {
            return Err(ConfigError::invalid(
                "producer.compression_type",
                format!("{:?} is not one of none, gzip, snappy, lz4, zstd", p.compression_type),
            ));
        }
        if !["all", "-1", "0", "1"].contains(&p.acks.as_str()) {
            return Err(ConfigError::invalid("producer.acks", format!("{:?} is not one of all, 0, 1", p.acks)));
        }
        if let Some(name) = &self.service.name
            && !crate::naming::SERVICES.contains(&name.as_str())
        {
            return Err(ConfigError::invalid(
                "service.name",
                format!("{name:?} is not one of {}", crate::naming::SERVICES.join(", ")),
            ));
        }
        if self.service.consumer_instance_id.is_empty() {
            return Err(ConfigError::invalid("service.consumer_instance_id", "must not be empty"));
        }
        let r = &self.runner;
        check_range("runner.commit_interval_ms", r.commit_interval_ms as i64, 1, 60_000)?;
        check_range("runner.max_batch", r.max_batch as i64, 1, 1_000_000)?;
        check_range("runner.plugin_batch", r.plugin_batch as i64, 1, 10_000)?;
        check_range("runner.commit_min_gap_ms", r.commit_min_gap_ms as i64, 0, 60_000)?;
        check_range("runner.max_retries", i64::from(r.max_retries), 0, 100)?;
        check_range("runner.shutdown_timeout_ms", r.shutdown_timeout_ms as i64, 100, 600_000)?;
        check_range("runner.linger_ms", i64::from(r.linger_ms), 0, 60_000)?;
        check_range("runner.fetch_min_bytes", i64::from(r.fetch_min_bytes), 1, 100_000_000)?;
        check_range("runner.fetch_wait_max_ms", i64::from(r.fetch_wait_max_ms), 0, 300_000)?;
        let w = &self.plugin;
        check_range("plugin.deadline_ms", w.deadline_ms as i64, 1, 600_000)?;
        check_range("plugin.memory_limit_mib", w.memory_limit_mib as i64, 1, 4096)?;
        check_range("kafka.outage_timeout_ms", k.outage_timeout_ms as i64, 1_000, 3_600_000)?;
        check_range("runner.max_retry_backoff_ms", r.max_retry_backoff_ms as i64, 0, 600_000)?;
        check_range("runner.transaction_timeout_ms", r.transaction_timeout_ms as i64, 1_000, 900_000)?;
        check_range("runner.max_poll_interval_ms", r.max_poll_interval_ms as i64, 1_000, 86_400_000)?;
        // Kafka's default message.max.bytes is 1 MiB; librdkafka needs room
        // for its own framing above a record.
        check_range("runner.max_record_bytes", r.max_record_bytes as i64, 1_024, 1_000_000)?;
        check_range("runner.restore_timeout_ms", r.restore_timeout_ms as i64, 1_000, 3_600_000)?;
        check_range("runner.checkpoint_interval_ms", r.checkpoint_interval_ms as i64, 0, 3_600_000)?;
        check_range("runner.wedge_timeout_ms", r.wedge_timeout_ms as i64, 10_000, 3_600_000)?;
        // Half of the broker's default delete.retention.ms.
        check_range("runner.checkpoint_max_age_ms", r.checkpoint_max_age_ms as i64, 1_000, 43_200_000)?;
        check_range("runner.stall_timeout_ms", r.stall_timeout_ms as i64, 1_000, 3_600_000)?;
        let budget = w.memory_limit_mib << 20;
        check_range("plugin.max_pending_state_bytes", w.max_pending_state_bytes as i64, 1, budget as i64)?;
        check_range("plugin.max_key_bytes", w.max_key_bytes as i64, 1, r.max_record_bytes as i64)?;
        check_range("plugin.max_value_bytes", w.max_value_bytes as i64, 1, r.max_record_bytes as i64)?;
        // 128: the framing `runner::dlq::record_size` counts on every record.
        if w.max_key_bytes + w.max_value_bytes + 128 > r.max_record_bytes as u64 {
            return Err(ConfigError::invalid(
                "plugin.max_value_bytes",
                format!(
                    "a state record (plugin.max_key_bytes {} + plugin.max_value_bytes {} + 128 bytes of framing) must fit in runner.max_record_bytes ({})",
                    w.max_key_bytes, w.max_value_bytes, r.max_record_bytes
                ),
            ));
        }
        check_range("plugin.max_outputs", w.max_outputs as i64, 1, 100_000)?;
        check_range("plugin.max_output_bytes", w.max_output_bytes as i64, 1, budget as i64)?;
        check_range("plugin.max_log_lines", w.max_log_lines as i64, 0, 100_000)?;
        check_range("plugin.max_log_bytes", w.max_log_bytes as i64, 0, 16 << 20)?;
        check_range("plugin.max_manifest_string_bytes", w.max_manifest_string_bytes as i64, 16, 65_536)?;
        check_range("plugin.max_manifest_actions", w.max_manifest_actions as i64, 1, 10_000)?;
        check_range("plugin.max_table_elements", w.max_table_elements as i64, 1, 100_000_000)?;
        check_range("plugin.max_component_bytes", w.max_component_bytes as i64, 1_024, 1 << 30)?;
        check_range("plugin.max_compile_ms", w.max_compile_ms as i64, 1, 3_600_000)?;
        // A slow message must finish inside its transaction, or the broker
        // aborts the transaction under it and the message replays forever.
        let worst = self.worst_case_message_ms();
        let bound = r.transaction_timeout_ms.min(r.max_poll_interval_ms) / 2;
        if worst > bound {
            return Err(ConfigError::invalid(
                "runner.transaction_timeout_ms",
                format!(
                    "one message may take up to {worst} ms (plugin.deadline_ms {} x {} calls + backoff capped at \
                     runner.max_retry_backoff_ms {}), more than half of runner.transaction_timeout_ms ({}) and \
                     runner.max_poll_interval_ms ({}); lower the deadline or retries, or raise the timeouts",
                    w.deadline_ms,
                    r.max_retries + 2,
                    r.max_retry_backoff_ms,
                    r.transaction_timeout_ms,
                    r.max_poll_interval_ms
                ),
            ));
        }
        Ok(())
    }

    /// The longest one message can keep the runner busy: the batch that
    /// held it timing out, then every attempt of its own running to the
    /// deadline, plus the capped, doubling backoff between them.
    pub fn worst_case_message_ms(&self) -> u64 {
        let r = &self.runner;
        let attempts = u64::from(r.max_retries) + 2;
        let mut backoff = r.retry_backoff_ms;
        let mut total = attempts.saturating_mul(self.plugin.deadline_ms);
        for _ in 0..r.max_retries {
            total = total.saturating_add(backoff.min(r.max_retry_backoff_ms));
            backoff = backoff.saturating_mul(2);
        }
        total
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

fn check_range(key: &str, value: i64, min: i64, max: i64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, format!("{value} is out of range {min}..={max}")))
    }
}

fn is_host_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
// figment's test jail returns its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        Loaded::load(None, overrides).map(|l| l.config)
    }

    #[test]
    fn defaults_follow_the_seed() {
        Jail::expect_with(|_| {
            let c = load(&Overrides::default()).unwrap();
            assert_eq!(c.producer.linger_ms, 50);
            assert_eq!(c.producer.batch_size, 524_288);
            assert_eq!(c.producer.compression_type, "lz4");
            assert_eq!(c.kafka.partitions, 10);
            Ok(())
        });
    }

    #[test]
    fn a_message_that_cannot_finish_inside_its_transaction_is_refused() {
        let mut c = Config::default();
        assert_eq!(c.worst_case_message_ms(), 5 * 1000 + 50 + 100 + 200);
        assert!(c.validate().is_ok());
        c.plugin.deadline_ms = 5_000;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("runner.transaction_timeout_ms") && err.contains("25350 ms"), "{err}");
        c.runner.transaction_timeout_ms = 60_000;
        c.runner.max_poll_interval_ms = 60_000;
        assert!(c.validate().is_ok(), "raising the timeouts makes room");
        // The backoff doubles but is capped.
        let mut c = Config::default();
        c.runner.max_retries = 20;
        c.plugin.deadline_ms = 1;
        c.runner.max_retry_backoff_ms = 100;
        assert_eq!(c.worst_case_message_ms(), 22 + 50 + 19 * 100);
    }

    #[test]
    fn plugin_limits_must_fit_the_record_and_memory_budget() {
        let mut c = Config::default();
        c.plugin.max_value_bytes = 999_500;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("plugin.max_value_bytes"), "{err}");
        let mut c = Config::default();
        c.plugin.max_pending_state_bytes = 65 << 20;
        assert!(c.validate().unwrap_err().to_string().contains("plugin.max_pending_state_bytes"));
    }

    #[test]
    fn layers_override_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(DEFAULT_FILE, "[kafka]\npartitions = 4\nbootstrap = \"file:1\"\n")?;
            jail.set_env("KAFKA_BOOTSTRAP_SERVERS", "seed:2");
            let c = load(&Overrides::default()).unwrap();
            assert_eq!(c.kafka.partitions, 4);
            assert_eq!(c.kafka.bootstrap, "seed:2");
            jail.set_env("TURNSTILE_KAFKA__BOOTSTRAP", "env:3");
            assert_eq!(load(&Overrides::default()).unwrap().kafka.bootstrap, "env:3");
            let mut flags = Overrides::default();
            flags.set("kafka.bootstrap", Some("flag:4"));
            let loaded = Loaded::load(None, &flags).unwrap();
            assert_eq!(loaded.config.kafka.bootstrap, "flag:4");
            let sources: BTreeMap<_, _> = loaded.provenance().into_iter().collect();
            assert_eq!(sources["kafka.bootstrap"], "command-line flag");
            assert!(sources["kafka.partitions"].contains(DEFAULT_FILE), "{}", sources["kafka.partitions"]);
            assert_eq!(sources["producer.linger_ms"], "default");
            Ok(())
        });
    }

    #[test]
    fn seed_variables_are_understood() {
        Jail::expect_with(|jail| {
            jail.set_env("EVENT_ID", "7");
            jail.set_env("CONSUMER_GROUP_ID", "g");
            jail.set_env("KAFKA_CONSUMER_INSTANCE_ID", "2");
            jail.set_env("KAFKA_PRODUCER_INSTANCE_ID", "producer-12345");
            let c = load(&Overrides::default()).unwrap();
            assert_eq!(c.service.event_id, Some(7));
            assert_eq!(c.service.group_id.as_deref(), Some("g"));
            assert_eq!(c.service.consumer_instance_id, "2");
            assert_eq!(c.service.producer_instance_id.as_deref(), Some("producer-12345"));
            Ok(())
        });
    }

    #[test]
    fn bad_configuration_names_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file(DEFAULT_FILE, "[kafka]\npartitionz = 4\n")?;
            let err = load(&Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("partitionz"), "{err}");

            jail.create_file(DEFAULT_FILE, "[kafka]\npartitions = \"ten\"\n")?;
            let err = load(&Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("partitions"), "{err}");

            jail.create_file(DEFAULT_FILE, "[kafka]\npartitions = 0\n")?;
            let err = load(&Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("kafka.partitions") && err.contains("out of range"), "{err}");

            jail.create_file(DEFAULT_FILE, "")?;
            jail.set_env("TURNSTILE_RUNNER__MAX_BATCH", "-1");
            let err = load(&Overrides::default()).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("runner.max_batch"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn replication_is_unset_unless_configured_in_any_layer() {
        Jail::expect_with(|jail| {
            let loaded = Loaded::load(None, &Overrides::default()).unwrap();
            assert_eq!(loaded.config.kafka.replication_factor, None);
            assert_eq!(loaded.config.kafka.min_insync_replicas, None);
            let sources: BTreeMap<_, _> = loaded.provenance().into_iter().collect();
            assert!(sources["kafka.replication_factor"].contains("from the cluster"), "{sources:?}");

            jail.create_file(DEFAULT_FILE, "[kafka]\nreplication_factor = 2\n")?;
            let c = load(&Overrides::default()).unwrap();
            assert_eq!((c.kafka.replication_factor, c.kafka.min_insync_replicas), (Some(2), None));
            jail.set_env("TURNSTILE_KAFKA__REPLICATION_FACTOR", "3");
            jail.set_env("TURNSTILE_KAFKA__MIN_INSYNC_REPLICAS", "2");
            let c = load(&Overrides::default()).unwrap();
            assert_eq!((c.kafka.replication_factor, c.kafka.min_insync_replicas), (Some(3), Some(2)));
            let mut flags = Overrides::default();
            flags.set("kafka.replication_factor", Some(1));
            let err = load(&flags).unwrap_err().to_string();
            assert!(err.contains("kafka.min_insync_replicas") && err.contains("larger than"), "{err}");
            flags.set("kafka.min_insync_replicas", Some(1));
            let loaded = Loaded::load(None, &flags).unwrap();
            assert_eq!(loaded.config.kafka.replication_factor, Some(1));
            let sources: BTreeMap<_, _> = loaded.provenance().into_iter().collect();
            assert_eq!(sources["kafka.replication_factor"], "command-line flag");

            jail.set_env("TURNSTILE_KAFKA__REPLICATION_FACTOR", "0");
            let err = Loaded::load(None, &Overrides::default()).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("kafka.replication_factor") && err.contains("out of range"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bootstrap_must_be_host_port() {
        let mut c = Config::default();
        c.kafka.bootstrap = "localhost".into();
        assert!(c.validate().unwrap_err().to_string().contains("kafka.bootstrap"));
        c.kafka.bootstrap = "a:1,b:2".into();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn script_variables_are_not_configuration() {
        Jail::expect_with(|jail| {
            jail.set_env("TURNSTILE_CACHE", "/tmp/x");
            assert!(load(&Overrides::default()).is_ok());
            Ok(())
        });
    }
}
