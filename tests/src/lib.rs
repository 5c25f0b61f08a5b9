//! Helpers for tests that need a real Kafka broker and the built `turnstile`
//! binary.
//!
//! - The broker: `KAFKA_BOOTSTRAP_SERVERS` (default `127.0.0.1:9092`), e.g.
//!   from `scripts/local-kafka start`. Tests create topics only for random
//!   event ids ([`unique_event_id`]), so reruns and parallel tests never
//!   collide. Topic settings the binary takes from the environment (such as
//!   `TURNSTILE_KAFKA__REPLICATION_FACTOR=3` on a 3-broker cluster) pass
//!   through unchanged.
//! - The binary: `cargo build -p turnstile` must have run first (the test
//!   script does it); [`turnstile_bin`] finds it next to the test executable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use turnstile::naming::{self, TopicName};

/// Timeout for metadata and offset requests made by the helpers.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The broker under test: `KAFKA_BOOTSTRAP_SERVERS` or `127.0.0.1:9092`.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".into())
}

/// A random event id in `[10^6, 10^12)`: far from hand-picked ids, unlikely to
/// repeat across tests and reruns, and with room to append a digit
/// (`id * 10` is a different event whose names share the prefix).
pub fn unique_event_id() -> u64 {
    rand::random_range(1_000_000..1_000_000_000_000)
}

/// The `turnstile` binary of this workspace's target dir. Tests run from
/// `target/<profile>/deps/`, the binary lives in `target/<profile>/`.
pub fn turnstile_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir =
        exe.parent().and_then(|deps| deps.parent()).expect("the test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("turnstile{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} does not exist: run `cargo build -p turnstile` before these tests", bin.display());
    bin
}

/// What a run of the binary printed and returned.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`-1` if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the full output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code; {self}");
        self
    }

    /// Panics with the full output unless the run succeeded.
    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// A command for the binary pointed at [`bootstrap`], with stdin closed.
pub fn turnstile_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(turnstile_bin());
    cmd.args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
        .env_remove("TURNSTILE_KAFKA__BOOTSTRAP")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs the binary with `args` and captures its output.
pub fn turnstile<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run(turnstile_command(args))
}

/// Runs a prepared command and captures its output.
pub fn run(mut cmd: Command) -> Run {
    let out = cmd.output().expect("the turnstile binary starts");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Client settings for the helpers' own clients.
pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap()).set("allow.auto.create.topics", "false");
    config
}

/// A consumer that is in no group (metadata, read-back).
pub fn plain_consumer() -> BaseConsumer {
    client_config().create().expect("create a consumer")
}

/// A consumer whose commits go to `group` (it joins only if it subscribes).
pub fn group_consumer(group: &str) -> BaseConsumer {
    client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create a group consumer")
}

/// Every topic on the broker with its partition count.
pub fn topics() -> BTreeMap<String, i32> {
    let metadata = plain_consumer().fetch_metadata(None, TIMEOUT).expect("list topics");
    metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
        .collect()
}

/// Every consumer group on the broker with its member count.
pub fn groups() -> BTreeMap<String, usize> {
    let list = plain_consumer().fetch_group_list(None, TIMEOUT).expect("list groups");
    list.groups().iter().map(|g| (g.name().to_owned(), g.members().len())).collect()
}

/// The ids of every event with a topic or group on the broker.
pub fn existing_event_ids() -> BTreeSet<u64> {
    topics()
        .keys()
        .filter_map(|t| TopicName::parse(t).map(|t| t.event_id))
        .chain(groups().keys().filter_map(|g| naming::parse_consumer_group(g).map(|(id, _)| id)))
        .collect()
}

/// The topics of `event_id` on the broker, with partition counts.
pub fn event_topics_on_broker(event_id: u64) -> BTreeMap<String, i32> {
    topics().into_iter().filter(|(t, _)| TopicName::parse(t).is_some_and(|t| t.event_id == event_id)).collect()
}

/// Provisions `event_id` with `partitions` through the binary.
pub fn provision(event_id: u64, partitions: i32) -> Run {
    let run = turnstile(["provision", "--event", &event_id.to_string(), "--partitions", &partitions.to_string()]);
    run.expect_success();
    run
}

/// Polls `check` every 200 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The value parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("record value is JSON")
    }
}

/// Reads every committed record of `topic`: an independent `read_committed`
/// consumer in no group, assigned all partitions from the beginning, reading
/// until each partition reports its end. Records come in partition order,
/// then offset order.
pub fn read_back(topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", format!("turnstile-tests-read-back-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("create the read-back consumer");
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).expect("topic metadata");
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("add partition");
    }
    consumer.assign(&tpl).expect("assign partitions");

    let mut pending: BTreeSet<i32> = partitions.into_iter().collect();
    let mut records = Vec::new();
    let deadline = Instant::now() + TIMEOUT * 2;
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "reading {topic}: partitions {pending:?} never reached their end");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => records.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// Commits `offsets` (`(topic, partition, next offset)`) for `group` without
/// joining it: the group then exists, empty, with those committed offsets.
pub fn commit_offsets(group: &str, offsets: &[(&str, i32, i64)]) {
    let consumer = group_consumer(group);
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)).expect("add offset");
    }
    consumer.assign(&tpl).expect("assign");
    consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync).expect("commit offsets");
}

/// Produces `count` keyed records to one partition of `topic` and waits for
/// delivery.
pub fn produce(topic: &str, partition: i32, count: usize) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config().set("acks", "all").create().expect("create a producer");
    for i in 0..count {
        let key = format!("k{i}");
        let value = format!("{{\"n\":{i}}}");
        producer
            .send(BaseRecord::to(topic).partition(partition).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .expect("queue a record");
    }
    producer.flush(TIMEOUT).expect("flush");
}

/// Best-effort removal of an event's topics and groups after a test.
pub fn cleanup(event_id: u64) {
    let mut config = turnstile::config::Config::default();
    config.kafka.bootstrap = bootstrap();
    let Ok(cluster) = turnstile::admin::Cluster::connect(&config) else {
        return;
    };
    let topics: Vec<String> = event_topics_on_broker(event_id).into_keys().collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let _ = cluster.delete_topics(&topics);
    let groups: Vec<String> = groups()
        .into_keys()
        .filter(|g| naming::parse_consumer_group(g).is_some_and(|(id, _)| id == event_id))
        .collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let _ = cluster.delete_groups(&groups);
}

/// A connection through the host's own admin client (for checks the
/// helpers above do not cover, such as topic configuration).
pub fn cluster() -> turnstile::admin::Cluster {
    let mut config = turnstile::config::Config::default();
    config.kafka.bootstrap = bootstrap();
    turnstile::admin::Cluster::connect(&config).expect("connect to the broker under test")
}
