//! Helpers for tests that need a real Kafka broker and the built `turnstile`
//! binary: running services, a booking client and driver, and (re-exported
//! from `turnstile::load`, which the main job uses too) booking plans, the
//! read-back reader and the contract checker.
//!
//! - The broker: `KAFKA_BOOTSTRAP_SERVERS` (default `127.0.0.1:9092`), e.g.
//!   from `scripts/local-kafka start`. Tests create topics only for random
//!   event ids ([`unique_event_id`]), so reruns and parallel tests never
//!   collide. `turnstile provision` takes the topics' replication from the
//!   cluster (3/2 on three brokers, 1/1 on one); settings given in the
//!   environment (`TURNSTILE_KAFKA__REPLICATION_FACTOR`, …) pass through
//!   unchanged. A cluster is a comma-separated list; [`LocalCluster`] finds
//!   one that `scripts/local-kafka` started (`KAFKA_BROKERS=3`).
//! - The binary: `cargo build -p turnstile` must have run first (the test
//!   script does it); [`turnstile_bin`] finds it next to the test executable.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
pub use turnstile::load::{Buyer, Outcome, Planned, Record, check_outcome, plan_bookings, plan_single_seats};

mod changelogs;
pub use changelogs::{assert_changelogs_agree, final_statuses, seat_changelog_agrees, ticketing_changelog_agrees};
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE, TopicName};
use turnstile::partition::booking_partition;
use turnstile::publisher::Publisher;
use turnstile::seating::SeatingChart;
use turnstile_protocol::{BookingCommand, BookingStatus, BookingStatusChanged, CancelBooking, PayBooking};

/// Timeout for metadata and offset requests made by the helpers.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The broker under test: `KAFKA_BOOTSTRAP_SERVERS` or `127.0.0.1:9092`.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".into())
}

/// The cluster as the tests' own clients reach it: `turnstile`'s
/// configuration from the environment (so `TURNSTILE_KAFKA__SECURITY_PROTOCOL`
/// and the rest of a secured cluster's settings, which the services under
/// test inherit, apply here too) at [`bootstrap`].
pub fn kafka_config() -> turnstile::config::KafkaConfig {
    let mut overrides = turnstile::config::Overrides::default();
    overrides.set("kafka.bootstrap", Some(bootstrap()));
    match turnstile::config::Loaded::load(None, &overrides) {
        Ok(loaded) => loaded.config.kafka,
        Err(err) => panic!("the tests' Kafka settings: {err}"),
    }
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
        // Checkpoints are per changelog topic, so tests never share one.
        .env("TURNSTILE_RUNNER__CHECKPOINT_DIR", std::env::temp_dir().join("turnstile-tests").join("checkpoints"))
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
    let mut config = turnstile::client::ClientSettings::new(&kafka_config()).to_client_config();
    config.set("allow.auto.create.topics", "false");
    config
}

/// An idempotent transactional producer on the broker under test, its
/// transactions initialised: a stand-in for a previous owner writing a changelog.
pub fn transactional_producer(
    id: &str,
) -> rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    use rdkafka::producer::Producer;
    let producer: rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> = client_config()
        .set("transactional.id", id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("create a transactional producer");
    producer.init_transactions(TIMEOUT).expect("init transactions");
    producer
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
    let groups = cluster().groups().expect("describe consumer groups");
    groups.into_iter().map(|g| (g.name, g.members.len())).collect()
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

/// The value of a record read back, parsed as JSON (panics if it is not).
pub fn json(record: &Record) -> serde_json::Value {
    serde_json::from_slice(&record.value).expect("record value is JSON")
}

/// Reads every committed record of `topic` with an independent
/// `read_committed` reader ([`turnstile::load::read_back`]); panics if it cannot.
pub fn read_back(topic: &str) -> Vec<Record> {
    read_back_isolated(topic, "read_committed")
}

/// Like [`read_back`] with `isolation.level` set to `isolation`:
/// `read_uncommitted` also returns records of aborted transactions.
pub fn read_back_isolated(topic: &str, isolation: &str) -> Vec<Record> {
    turnstile::load::read_back(&kafka_config(), topic, isolation, TIMEOUT * 2).unwrap_or_else(|e| panic!("{e}"))
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

/// A command for the binary with the replication settings of the
/// environment removed, so that `provision` uses the cluster's defaults.
pub fn turnstile_without_replication_env<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = turnstile_command(args);
    cmd.env_remove("TURNSTILE_KAFKA__REPLICATION_FACTOR").env_remove("TURNSTILE_KAFKA__MIN_INSYNC_REPLICAS");
    cmd
}

/// A cluster of several brokers that `scripts/local-kafka` started
/// (`KAFKA_BROKERS=3`), found from [`bootstrap`]: every address on
/// 127.0.0.1 on consecutive ports, and `local-kafka status` saying so. Its
/// nodes can be killed, relaunched, paused and resumed.
pub struct LocalCluster {
    script: PathBuf,
    /// Client port of node 1.
    pub port: u16,
    pub brokers: usize,
}

impl LocalCluster {
    /// The cluster under test if it is such a cluster of at least
    /// `brokers`; otherwise why not (for a test to print as it skips).
    pub fn find(brokers: usize) -> Result<LocalCluster, String> {
        let bootstrap = bootstrap();
        let mut ports: Vec<u16> = Vec::new();
        for address in bootstrap.split(',').map(str::trim) {
            let port = address
                .strip_prefix("127.0.0.1:")
                .or_else(|| address.strip_prefix("localhost:"))
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("{address} is not a local-kafka address (127.0.0.1:PORT)"))?;
            ports.push(port);
        }
        ports.sort_unstable();
        if ports.len() < brokers {
            return Err(format!(
                "KAFKA_BOOTSTRAP_SERVERS={bootstrap} names {} broker(s), this test needs {brokers} \
                 (run it with KAFKA_BROKERS=3 KAFKA_PORT=19092 scripts/with-kafka cargo test ...)",
                ports.len()
            ));
        }
        if ports.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err(format!("the ports of {bootstrap} are not consecutive, so not one local-kafka cluster"));
        }
        let cluster = LocalCluster {
            script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-kafka"),
            port: ports[0],
            brokers: ports.len(),
        };
        let status = cluster.command(&["status"]).output().map_err(|e| format!("running local-kafka: {e}"))?;
        let text = String::from_utf8_lossy(&status.stdout);
        if !status.status.success() || !text.contains(&format!("running: {} brokers", ports.len())) {
            return Err(format!("{bootstrap} is not a healthy cluster started by scripts/local-kafka: {text}"));
        }
        Ok(cluster)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.script);
        cmd.args(args).env("KAFKA_BROKERS", self.brokers.to_string()).env("KAFKA_PORT", self.port.to_string());
        cmd
    }

    /// Runs `local-kafka ARGS` for this cluster and panics if it fails.
    pub fn run(&self, args: &[&str]) {
        let out = self.command(args).output().expect("local-kafka runs");
        assert!(out.status.success(), "local-kafka {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// SIGSTOPs the given nodes until the guard is dropped, so that a
    /// failing test never leaves the cluster paused for the next one.
    pub fn pause<'a>(&'a self, nodes: &[&'a str]) -> Paused<'a> {
        let mut paused = Paused { cluster: self, nodes: Vec::new() };
        for node in nodes {
            self.run(&["pause", node]);
            paused.nodes.push(node);
        }
        paused
    }
}

/// Brokers paused by [`LocalCluster::pause`]; resumed when dropped.
pub struct Paused<'a> {
    cluster: &'a LocalCluster,
    nodes: Vec<&'a str>,
}

impl Paused<'_> {
    /// Resumes the nodes now.
    pub fn resume(self) {}
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        for node in &self.nodes {
            // Never panic here: this may run while a test is unwinding.
            match self.cluster.command(&["resume", node]).output() {
                Ok(out) if out.status.success() => {}
                other => eprintln!("cannot resume broker {node}: {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Running services, booking load and outcome checks (the `runner_*` tests)
// ---------------------------------------------------------------------------

/// The release build of a service's plugin (`scripts/build-plugins`), next
/// to the binary's target directory.
pub fn plugin_path(service: &str) -> PathBuf {
    let name = match service {
        TICKETING_SERVICE => "ticketing",
        SEAT_RESERVATION_SERVICE => "reservation",
        "misbehave" => "misbehave",
        other => panic!("no plugin for service {other:?}"),
    };
    let bin = turnstile_bin();
    let target = bin.parent().and_then(|profile| profile.parent()).expect("the binary lives in target/<profile>");
    let path = target.join("wasm32-wasip2").join("release").join(format!("turnstile_{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run scripts/build-plugins before these tests", path.display());
    path
}

/// Where the service logs of an event's test go. They are kept after the
/// test so that a failure message can point at them.
pub fn log_dir(event_id: u64) -> PathBuf {
    let dir = std::env::temp_dir().join("turnstile-tests").join(format!("event-{event_id}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// One `turnstile run` child process; killed (SIGKILL) when dropped.
/// stdout and stderr go to a log file per start, listed by `Display`.
pub struct Service {
    pub service: String,
    pub event_id: u64,
    pub instance: String,
    /// Extra environment (configuration overrides such as
    /// `TURNSTILE_RUNNER__COMMIT_INTERVAL_MS`), kept for restarts.
    env: Vec<(String, String)>,
    /// `--config FILE`, for what the environment cannot say (a topology).
    config: Option<PathBuf>,
    child: Option<Child>,
    logs: Vec<PathBuf>,
}

impl Service {
    /// Starts `turnstile run --service SERVICE --event ID --instance INSTANCE`
    /// with the service's release plugin.
    pub fn start(service: &str, event_id: u64, instance: &str) -> Service {
        Self::start_with_env(service, event_id, instance, &[])
    }

    /// Like [`start_with_env`](Self::start_with_env) with `--config FILE`.
    pub fn start_configured(
        service: &str,
        event_id: u64,
        instance: &str,
        config: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Service {
        let mut s = Self::unstarted(service, event_id, instance, env);
        s.config = Some(config.to_owned());
        s.spawn();
        s
    }

    /// A guard for an instance not started yet.
    fn unstarted(service: &str, event_id: u64, instance: &str, env: &[(&str, &str)]) -> Service {
        Service {
            service: service.to_owned(),
            event_id,
            instance: instance.to_owned(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            config: None,
            child: None,
            logs: Vec::new(),
        }
    }

    /// Starts an instance without `--instance`, as a replica of a scaled
    /// deployment is started: its id is the default one.
    pub fn start_default_instance(service: &str, event_id: u64, env: &[(&str, &str)]) -> Service {
        Self::start_with_env(service, event_id, "", env)
    }

    /// Like [`start`](Self::start) with extra environment variables (an
    /// empty `instance` passes no `--instance`).
    pub fn start_with_env(service: &str, event_id: u64, instance: &str, env: &[(&str, &str)]) -> Service {
        let mut s = Self::unstarted(service, event_id, instance, env);
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{self} is already running");
        // One new file per process start, even for two guards of one instance.
        let dir = log_dir(self.event_id);
        let (log, file) = (1..)
            .find_map(|n| {
                let instance = if self.instance.is_empty() { "default" } else { &self.instance };
                let log = dir.join(format!("{}-{instance}-{n}.log", self.service));
                match std::fs::File::create_new(&log) {
                    Ok(file) => Some(Ok((log, file))),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(format!("cannot create {}: {e}", log.display()))),
                }
            })
            .expect("an unused log name")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = turnstile_command(["run", "--service", &self.service, "--event", &self.event_id.to_string()]);
        cmd.arg("--plugin").arg(plugin_path(&self.service));
        if !self.instance.is_empty() {
            cmd.args(["--instance", &self.instance]);
        }
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(file.try_clone().expect("clone the log file handle"))
            .stderr(file);
        self.logs.push(log);
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("cannot start {self}: {e}")));
    }

    /// Starts the service again with the same instance id (after a kill or stop).
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (no chance to commit or leave the group).
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (a `kill` name such as `STOP` or `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().unwrap_or_else(|| panic!("{self} is not running"));
        let sent = Command::new("kill").args([format!("-{signal}"), pid.to_string()]).status();
        assert!(sent.as_ref().is_ok_and(|s| s.success()), "cannot send SIG{signal} to {self}: {sent:?}");
    }

    /// Sends SIGTERM and waits (up to 60 s) for the process to exit; returns
    /// its exit status. Panics, with the log, if it does not stop.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal("TERM");
        let child = self.child.take().unwrap_or_else(|| panic!("{self} is not running"));
        wait_or_kill(child, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{self} did not stop within 60 s of SIGTERM\n{}", self.log_tail(30)))
    }

    /// Stops the service with SIGTERM and panics unless it exits with 0.
    pub fn stop(&mut self) {
        let status = self.sigterm();
        assert!(status.success(), "{self} exited with {status} after SIGTERM\n{}", self.log_tail(30));
    }

    /// `Err` with the exit status and the end of the log if the process
    /// has exited on its own.
    pub fn check_running(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(format!("{self} exited unexpectedly with {status}\n{}", self.log_tail(30)))
            }
            Err(e) => Err(format!("cannot check {self}: {e}")),
        }
    }

    /// Lines of every log of this service that contain `needle` (ANSI
    /// colour codes removed).
    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        self.logs
            .iter()
            .flat_map(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                text.lines().map(strip_ansi).filter(|l| l.contains(needle)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The last `lines` lines of the current log.
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(path) = self.logs.last() else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!("--- last {lines} lines of {}\n{tail}", path.display())
    }
}

/// `line` without ANSI escape sequences (the service colours its log).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let logs: Vec<String> = self.logs.iter().map(|p| p.display().to_string()).collect();
        write!(f, "{} instance {} of event {} (log {})", self.service, self.instance, self.event_id, logs.join(", "))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The `Display` of several services, for failure messages.
pub fn describe(services: &[&Service]) -> String {
    services.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n")
}

/// Provisions `event_id` with `partitions` and the seating chart given as JSON.
pub fn provision_with_chart(event_id: u64, partitions: i32, chart_json: &str) -> (Run, SeatingChart) {
    let chart = SeatingChart::from_json(chart_json, "test chart").expect("the test's seating chart is valid");
    let path = log_dir(event_id).join("seating.json");
    std::fs::write(&path, chart_json).expect("write the seating chart");
    let mut cmd = turnstile_command(["provision", "--event", &event_id.to_string()]);
    cmd.args(["--partitions", &partitions.to_string(), "--seating"]).arg(&path);
    let run = run(cmd);
    run.expect_success();
    (run, chart)
}

/// The members of a service's consumer group with their assignments, if
/// the group is `Stable`.
pub fn stable_members(event_id: u64, service: &str) -> Option<Vec<turnstile::admin::GroupMember>> {
    let group = naming::consumer_group(event_id, service);
    let described = cluster().describe_groups(&[group]).ok()?;
    let g = described.into_iter().next()?;
    (g.state == "Stable").then_some(g.members)
}

/// Waits (up to `timeout`) until the service's group is stable with exactly
/// `members` members that between them own every partition of every input
/// topic; returns the members. Panics naming the services otherwise.
pub fn wait_for_group(
    event_id: u64,
    service: &str,
    members: usize,
    partitions: i32,
    timeout: Duration,
    running: &mut [&mut Service],
) -> Vec<turnstile::admin::GroupMember> {
    let inputs: BTreeSet<(String, i32)> = turnstile::topology::Topology::builtin()
        .addressed_to(event_id, service)
        .into_iter()
        .flat_map(|t| (0..partitions).map(move |p| (t.to_string(), p)))
        .collect();
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        for s in running.iter_mut() {
            if let Err(e) = s.check_running() {
                panic!("waiting for the {service} group: {e}");
            }
        }
        if let Some(found) = stable_members(event_id, service) {
            let assigned: BTreeSet<(String, i32)> = found.iter().flat_map(|m| m.assignment.iter().cloned()).collect();
            if found.len() == members && assigned == inputs && found.iter().all(|m| !m.assignment.is_empty()) {
                return found;
            }
            last = Some(found);
        }
        if Instant::now() > deadline {
            let shown: Vec<&Service> = running.iter().map(|s| &**s).collect();
            panic!(
                "the {service} group of event {event_id} did not become stable with {members} member(s) owning all \
                 input partitions within {timeout:?}; last seen: {last:?}\n{}",
                describe(&shown)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How a client picks the partition of a booking command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPartitioner {
    /// Keyed by the booking key, on Kafka's default (murmur2) partition: right.
    Murmur2,
    /// Keyed by the booking key, partitioned by librdkafka's default
    /// `consistent_random` (CRC32): what a C, Python or Go client does.
    Crc32,
    /// No key, on a random partition.
    Keyless,
}

/// Publishes booking commands to `booking-command`: by default the way
/// clients must (keyed by the booking key, on the booking's partition), or
/// the ways real clients get wrong ([`ClientPartitioner`]).
pub struct BookingClient {
    pub event_id: u64,
    pub partitions: i32,
    pub topic: String,
    publisher: Publisher,
    partitioner: ClientPartitioner,
    /// librdkafka's own partitioner, for [`ClientPartitioner::Crc32`].
    crc32: Option<rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>>,
    rng: std::cell::RefCell<StdRng>,
}

impl BookingClient {
    pub fn new(event_id: u64, partitions: i32) -> Self {
        Self::with_compression(event_id, partitions, "lz4")
    }

    /// A client whose producer compresses its batches with `codec` (none,
    /// gzip, snappy, lz4, zstd), as a real client may.
    pub fn with_compression(event_id: u64, partitions: i32, codec: &str) -> Self {
        let mut config = turnstile::config::Config { kafka: kafka_config(), ..Default::default() };
        config.kafka.compression = codec.to_owned();
        BookingClient {
            event_id,
            partitions,
            topic: naming::booking_command_topic(event_id).to_string(),
            publisher: Publisher::new(&config).expect("create the booking publisher"),
            partitioner: ClientPartitioner::Murmur2,
            crc32: None,
            rng: std::cell::RefCell::new(StdRng::seed_from_u64(event_id)),
        }
    }

    /// Sends from now on partitioned as `partitioner` says.
    pub fn set_partitioner(&mut self, partitioner: ClientPartitioner) {
        if partitioner == ClientPartitioner::Crc32 && self.crc32.is_none() {
            self.crc32 = Some(
                client_config()
                    .set("acks", "all")
                    .set("partitioner", "consistent_random")
                    .create()
                    .expect("create a CRC32-partitioning producer"),
            );
        }
        self.partitioner = partitioner;
    }

    /// Queues a command (fire and forget; see [`flush`](Self::flush)).
    pub fn send(&self, command: &BookingCommand) {
        let booking_id = match command {
            BookingCommand::CreateBooking(c) => &c.booking_id,
            BookingCommand::PayBooking(c) => &c.booking_id,
            BookingCommand::CancelBooking(c) => &c.booking_id,
        };
        let payload = serde_json::to_vec(command).expect("encode a booking command");
        self.send_raw(booking_id, &payload, &[]);
    }

    /// Queues arbitrary bytes for `booking_id`, partitioned as set.
    pub fn send_raw(&self, booking_id: &str, payload: &[u8], headers: &[(&str, &[u8])]) {
        let key = naming::booking_key(self.event_id, booking_id);
        match (self.partitioner, &self.crc32) {
            (ClientPartitioner::Crc32, Some(producer)) => {
                use rdkafka::message::{Header, OwnedHeaders};
                use rdkafka::producer::BaseRecord;
                let owned =
                    headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| h.insert(Header { key: k, value: Some(*v) }));
                producer
                    .send(BaseRecord::to(&self.topic).key(&key).payload(payload).headers(owned))
                    .map_err(|(e, _)| e)
                    .unwrap_or_else(|e| panic!("publishing to {}: {e}", self.topic));
            }
            (ClientPartitioner::Keyless, _) => {
                let partition = self.rng.borrow_mut().random_range(0..self.partitions);
                self.publish(partition, b"", payload, headers);
            }
            _ => self.publish(self.partition_of(booking_id), key.as_bytes(), payload, headers),
        }
    }

    /// Queues a record exactly as given (an empty key is no key).
    pub fn publish(&self, partition: i32, key: &[u8], payload: &[u8], headers: &[(&str, &[u8])]) {
        self.publisher
            .send(turnstile::publisher::Record { topic: &self.topic, partition, key, payload, headers })
            .unwrap_or_else(|e| panic!("publishing to {}: {e}", self.topic));
    }

    /// The booking's partition (Kafka's default partitioner on its key).
    pub fn partition_of(&self, booking_id: &str) -> i32 {
        booking_partition(self.event_id, booking_id, self.partitions)
    }

    /// Waits until everything queued is delivered.
    pub fn flush(&self) {
        self.publisher.flush(Duration::from_secs(60)).unwrap_or_else(|e| panic!("publishing to {}: {e}", self.topic));
        if let Some(producer) = &self.crc32 {
            use rdkafka::producer::Producer;
            producer.flush(Duration::from_secs(60)).unwrap_or_else(|e| panic!("publishing to {}: {e}", self.topic));
        }
    }
}

/// A live `read_committed` reader of every partition of `booking-status-changed`.
pub struct StatusFeed {
    consumer: BaseConsumer,
}

impl StatusFeed {
    pub fn new(event_id: u64, partitions: i32) -> Self {
        let consumer: BaseConsumer = client_config()
            .set("group.id", format!("turnstile-tests-status-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("create the status reader");
        let topic = naming::booking_status_changed_topic(event_id).to_string();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning).expect("add partition");
        }
        consumer.assign(&tpl).expect("assign the status partitions");
        StatusFeed { consumer }
    }

    /// Status messages that arrive within `wait`.
    pub fn poll(&self, wait: Duration) -> Vec<BookingStatusChanged> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(left.min(Duration::from_millis(100))) {
                Some(Ok(m)) => {
                    if let Some(s) = m.payload().and_then(|p| serde_json::from_slice(p).ok()) {
                        out.push(s);
                    }
                }
                // A broker outage (the chaos test makes them): keep reading.
                Some(Err(e)) => {
                    eprintln!("reading booking statuses: {e} (retrying)");
                    std::thread::sleep(Duration::from_millis(100));
                }
                None => {}
            }
            if left.is_zero() {
                return out;
            }
        }
    }
}

/// Drives a booking load through running services: publishes creates,
/// watches statuses with a `read_committed` reader, and sends each buyer's
/// pay or cancel once the booking is `pending_payment`.
pub struct Sellout {
    pub event_id: u64,
    pub partitions: i32,
    pub chart: SeatingChart,
    pub plan: Vec<Planned>,
    index: HashMap<String, usize>,
    pub client: BookingClient,
    feed: StatusFeed,
    /// Latest status seen live per booking.
    latest: HashMap<String, BookingStatus>,
    /// Bookings whose follow-up was sent.
    followed: HashSet<String>,
    /// Follow-ups waiting while [`hold_follow_ups`](Self::hold_follow_ups) is on.
    held: Vec<String>,
    holding: bool,
    published: usize,
}

impl Sellout {
    pub fn new(event_id: u64, partitions: i32, chart: SeatingChart, plan: Vec<Planned>) -> Self {
        let mut s = Sellout {
            event_id,
            partitions,
            chart,
            plan: Vec::new(),
            index: HashMap::new(),
            client: BookingClient::new(event_id, partitions),
            feed: StatusFeed::new(event_id, partitions),
            latest: HashMap::new(),
            followed: HashSet::new(),
            held: Vec::new(),
            holding: false,
            published: 0,
        };
        s.extend(plan);
        s
    }

    /// Adds bookings to the plan (published by later [`publish`](Self::publish) calls).
    pub fn extend(&mut self, plan: Vec<Planned>) {
        for p in plan {
            self.index.insert(p.command.booking_id.clone(), self.plan.len());
            self.plan.push(p);
        }
    }

    /// Publishes the next `n` creates of the plan (with their repeats and
    /// immediate cancels) and waits for delivery.
    pub fn publish(&mut self, n: usize) {
        let end = (self.published + n).min(self.plan.len());
        for p in &self.plan[self.published..end] {
            let create = BookingCommand::CreateBooking(p.command.clone());
            self.client.send(&create);
            if p.send_twice {
                self.client.send(&create);
            }
            if p.buyer == Buyer::CancelsAtOnce {
                self.client.send(&BookingCommand::CancelBooking(CancelBooking {
                    booking_id: p.command.booking_id.clone(),
                    buyer_id: p.command.buyer_id,
                }));
            }
        }
        self.published = end;
        self.client.flush();
    }

    /// Publishes every create not yet published.
    pub fn publish_rest(&mut self) {
        self.publish(self.plan.len());
    }

    /// While on, pays and cancels are kept back; turning it off sends them.
    pub fn hold_follow_ups(&mut self, hold: bool) {
        self.holding = hold;
        if !hold {
            for id in std::mem::take(&mut self.held) {
                self.follow_up(&id);
            }
            self.client.flush();
        }
    }

    /// Makes a booking's buyer pay (once it is, or if it already is,
    /// `pending_payment`; held like every follow-up while holding).
    pub fn make_payer(&mut self, booking_id: &str) {
        let Some(&i) = self.index.get(booking_id) else { panic!("booking {booking_id} is not in the plan") };
        self.plan[i].buyer = Buyer::Pays;
        if self.latest(booking_id) == Some(BookingStatus::PendingPayment) && !self.followed.contains(booking_id) {
            if self.holding {
                if !self.held.iter().any(|h| h == booking_id) {
                    self.held.push(booking_id.to_owned());
                }
            } else {
                self.follow_up(booking_id);
                self.client.flush();
            }
        }
    }

    fn follow_up(&mut self, booking_id: &str) {
        let Some(&i) = self.index.get(booking_id) else { return };
        let p = &self.plan[i];
        let (booking_id, buyer_id) = (p.command.booking_id.clone(), p.command.buyer_id);
        let command = match p.buyer {
            Buyer::Pays => BookingCommand::PayBooking(PayBooking { booking_id, buyer_id }),
            Buyer::Cancels => BookingCommand::CancelBooking(CancelBooking { booking_id, buyer_id }),
            _ => return,
        };
        if self.followed.insert(p.command.booking_id.clone()) {
            self.client.send(&command);
        }
    }

    /// Reads statuses for up to `wait`, sending follow-ups as bookings
    /// become `pending_payment`.
    pub fn pump(&mut self, wait: Duration) {
        let mut sent = false;
        for s in self.feed.poll(wait) {
            self.latest.insert(s.booking_id.clone(), s.status);
            if s.status == BookingStatus::PendingPayment && !self.followed.contains(&s.booking_id) {
                if self.holding {
                    if !self.held.contains(&s.booking_id) {
                        self.held.push(s.booking_id.clone());
                    }
                } else {
                    self.follow_up(&s.booking_id);
                    sent = true;
                }
            }
        }
        if sent {
            self.client.flush();
        }
    }

    /// The latest status seen for a booking.
    pub fn latest(&self, booking_id: &str) -> Option<BookingStatus> {
        self.latest.get(booking_id).copied()
    }

    /// Published bookings whose status is past `processing`.
    pub fn decided(&self) -> usize {
        self.plan[..self.published]
            .iter()
            .filter(|p| self.latest(&p.command.booking_id).is_some_and(|s| s != BookingStatus::Processing))
            .count()
    }

    /// Published bookings in their final status.
    pub fn settled(&self) -> usize {
        self.plan[..self.published]
            .iter()
            .filter(|p| self.latest(&p.command.booking_id).is_some_and(|s| p.settled_at(s)))
            .count()
    }

    /// Whether every published booking is decided.
    pub fn all_decided(&self) -> bool {
        self.decided() == self.published
    }

    /// Whether every published booking is in its final status.
    pub fn all_settled(&self) -> bool {
        self.settled() == self.published
    }

    /// Pumps until `done` holds; `Err` (with progress, a sample of stuck
    /// bookings and the service logs) if a service exits or `timeout` passes.
    pub fn drive_until(
        &mut self,
        what: &str,
        timeout: Duration,
        services: &mut [&mut Service],
        done: impl Fn(&Sellout) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return Ok(());
            }
            for s in services.iter_mut() {
                s.check_running().map_err(|e| format!("{what}: {e}\n{}", self.progress()))?;
            }
            if Instant::now() > deadline {
                let shown: Vec<&Service> = services.iter().map(|s| &**s).collect();
                return Err(format!(
                    "{what}: not reached within {timeout:?}; {}\nservices:\n{}",
                    self.progress(),
                    describe(&shown)
                ));
            }
            self.pump(Duration::from_millis(200));
        }
    }

    /// Progress and a sample of unsettled bookings, for failure messages.
    pub fn progress(&self) -> String {
        let stuck: Vec<String> = self.plan[..self.published]
            .iter()
            .filter(|p| !self.latest(&p.command.booking_id).is_some_and(|s| p.settled_at(s)))
            .take(8)
            .map(|p| format!("{} ({:?}): {:?}", p.command.booking_id, p.buyer, self.latest(&p.command.booking_id)))
            .collect();
        format!(
            "{} published, {} decided, {} settled of {} planned; unsettled e.g. [{}]",
            self.published,
            self.decided(),
            self.settled(),
            self.plan.len(),
            stuck.join(", ")
        )
    }

    /// Reads both `booking-status-changed` and `seat-reservation-result`
    /// with fresh `read_committed` readers and checks the contract.
    pub fn verify(&self) -> Outcome {
        let statuses = read_back(&naming::booking_status_changed_topic(self.event_id).to_string());
        let results = read_back(&naming::seat_reservation_result_topic(self.event_id).to_string());
        check_outcome(self.event_id, self.partitions, &self.chart, &self.plan[..self.published], &statuses, &results)
    }

    /// [`verify`](Self::verify) until it finds no problem or `timeout`
    /// passes (seat releases of late cancellations may still be on their
    /// way); returns the last outcome.
    pub fn verify_eventually(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        loop {
            let outcome = self.verify();
            if outcome.problems.is_empty() || Instant::now() > deadline {
                return outcome;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

// ---------------------------------------------------------------------------
// Deployed plugins and hot reload (the `reload` tests)
// ---------------------------------------------------------------------------

impl Service {
    /// Starts `turnstile run --service SERVICE --event ID --instance INSTANCE
    /// --plugins DIR`: the service runs `DIR/SERVICE/current` and hot-reloads
    /// whatever is deployed or rolled back there. `env` as for
    /// [`start_with_env`](Self::start_with_env). Not for [`restart`](Self::restart),
    /// which starts the release build with `--plugin`.
    pub fn start_deployed(
        service: &str,
        event_id: u64,
        instance: &str,
        plugins: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Service {
        let mut s = Self::unstarted(service, event_id, instance, env);
        let dir = log_dir(event_id);
        let (log, file) = (1..)
            .find_map(|n| {
                let log = dir.join(format!("{service}-{instance}-{n}.log"));
                std::fs::File::create_new(&log).ok().map(|file| (log, file))
            })
            .expect("an unused log name");
        let mut cmd = turnstile_command(["run", "--service", service, "--event", &event_id.to_string()]);
        cmd.arg("--plugins")
            .arg(plugins)
            .args(["--instance", instance])
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdout(file.try_clone().expect("clone the log file handle"))
            .stderr(file);
        s.logs.push(log);
        s.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("cannot start {s}: {e}")));
        s
    }
}

/// `turnstile deploy FILE --service SERVICE --plugins DIR`.
pub fn deploy_plugin(file: &std::path::Path, service: &str, plugins: &std::path::Path) -> Run {
    let mut cmd = turnstile_command(["deploy"]);
    cmd.arg(file).args(["--service", service, "--plugins"]).arg(plugins);
    run(cmd)
}

/// `bytes` (a component or module) with a custom section `name` holding
/// `payload` appended: a valid binary with another sha256, i.e. a distinct
/// deployable version of the same plugin.
pub fn with_custom_section(bytes: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Record headers whose names are raw bytes (not necessarily UTF-8), which
/// rdkafka's safe API cannot build: what a client in another language can send.
pub fn raw_headers(headers: &[(&[u8], &[u8])]) -> rdkafka::message::OwnedHeaders {
    let owned = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
    // `as_borrowed` hands out the native `rd_kafka_headers_t` pointer.
    let native = std::ptr::from_ref(owned.as_borrowed()).cast::<rdkafka::bindings::rd_kafka_headers_t>().cast_mut();
    for (name, value) in headers {
        // SAFETY: `native` is the live header list `owned` owns; librdkafka
        // copies both buffers.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_header_add(
                native,
                name.as_ptr().cast(),
                name.len() as isize,
                value.as_ptr().cast(),
                value.len() as isize,
            )
        };
        assert_eq!(err, rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, "add a raw header");
    }
    owned
}

/// A header of a record read back, as text.
pub fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// A free loopback `host:port` (bound, then released for the test to use).
pub fn free_local_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").to_string()
}

/// An HTTP response as [`http`] read it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `data:` of each server-sent event named `event`, as JSON.
    pub fn sse_events(&self, event: &str) -> Vec<serde_json::Value> {
        self.body
            .split("\n\n")
            .filter(|block| block.lines().any(|l| l == format!("event: {event}")))
            .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|data| serde_json::from_str(data).unwrap_or_else(|e| panic!("event data not JSON ({e}): {data}")))
            .collect()
    }
}

/// Connects to `addr` and writes one HTTP/1.1 request; reads on the
/// returned stream time out after `read_timeout`.
fn send_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> Result<std::net::TcpStream, String> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(read_timeout)).map_err(|e| e.to_string())?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).and_then(|()| stream.write_all(body)).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Waits up to `timeout` for `child` to exit; past it, kills it and returns `None`.
fn wait_or_kill(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request over a real socket, read until the server closes
/// the connection (or `timeout`): the status, headers and body, or why it
/// failed (nothing listening, a malformed response).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    use std::io::Read;
    let mut stream = send_request(addr, method, path, &[&[("Connection", "close")], headers].concat(), body, timeout)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| format!("read from {addr}: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {response:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(HttpResponse { status, headers, body })
}

/// Reads a streaming response (server-sent events that do not end) until
/// its raw text contains `needle`, or `timeout`; returns what was read.
pub fn sse_until(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    needle: &str,
    timeout: Duration,
) -> Result<String, String> {
    use std::io::Read;
    let accept = [("Accept", "text/event-stream")];
    let mut stream =
        send_request(addr, "GET", path, &[&accept[..], headers].concat(), b"", Duration::from_millis(200))?;
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("read from {addr}: {e}")),
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            return Ok(String::from_utf8_lossy(&seen).into_owned());
        }
    }
    Err(format!("{needle:?} not seen within {timeout:?}; read {:?}", String::from_utf8_lossy(&seen)))
}

/// One HTTP/1.1 GET: the status code and the body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    http(addr, "GET", path, &[], b"", Duration::from_secs(10)).map(|r| (r.status, r.body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the Prometheus sample `name{labels…}` whose labels include
/// every `k="v"` in `with`, from `/metrics` text; `None` if absent.
pub fn metric(text: &str, name: &str, with: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, labels) = series.split_once('{').map_or((series, ""), |(m, l)| (m, l));
        (metric == name && with.iter().all(|w| labels.contains(w))).then(|| value.parse().ok())?
    })
}

/// One `turnstile gateway` child process on a free loopback port; killed
/// (SIGKILL) when dropped. Output goes to a log file.
pub struct GatewayProcess {
    pub event_id: u64,
    pub addr: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    logs: Vec<PathBuf>,
}

impl GatewayProcess {
    /// Starts the gateway for `event_id` with extra environment, and waits
    /// until `/readyz` answers 200.
    pub fn start(event_id: u64, env: &[(&str, &str)]) -> GatewayProcess {
        let mut g = GatewayProcess {
            event_id,
            addr: free_local_addr(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            child: None,
            logs: Vec::new(),
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let log = log_dir(self.event_id).join(format!("gateway-{}.log", self.logs.len() + 1));
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let mut cmd = turnstile_command(["gateway", "--event", &self.event_id.to_string(), "--listen", &self.addr]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(file.try_clone().expect("clone the log file handle"))
            .stderr(file);
        self.logs.push(log);
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("cannot start the gateway: {e}")));
        // The probes move to the admin listener when there is one.
        let probes = self
            .env
            .iter()
            .find(|(k, _)| k == "TURNSTILE_GATEWAY__ADMIN_LISTEN")
            .map_or(self.addr.clone(), |(_, v)| v.clone());
        let ready =
            eventually(Duration::from_secs(60), || http_get(&probes, "/readyz").is_ok_and(|(status, _)| status == 200));
        assert!(ready, "the gateway on {} never became ready\n{}", self.addr, self.log_tail(30));
    }

    /// Kills it with SIGKILL, as a crash would, and starts it again on the
    /// same port (waiting until it is ready).
    pub fn crash_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it with SIGTERM (waiting for the exit) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// SIGTERM, then waits; panics with the log unless it exits 0.
    pub fn stop(&mut self) {
        let Some(child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let status = wait_or_kill(child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("the gateway did not stop within 30 s of SIGTERM\n{}", self.log_tail(30)));
        assert!(status.success(), "the gateway exited with {status}\n{}", self.log_tail(30));
    }

    /// The last `lines` lines of its latest log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.logs.last().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
