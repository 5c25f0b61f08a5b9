//! Creating an event's topics (DOMAIN.md §2), idempotently.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::table::Table;
use super::{AdminError, Brokers, Cluster, PartitionMismatch};
use crate::config::{ConfigError, KafkaConfig};
use crate::naming::{TopicKind, TopicSpec};
use crate::topology::Topology;

/// The replication of an event's topics: `kafka.replication_factor` and
/// `kafka.min_insync_replicas` where configured, otherwise defaults for
/// the cluster provision talks to.
///
/// The default factor is the number of brokers up to 3 (3 on three or more,
/// 2 on two, 1 on one). Brokers count when they are live or hold a replica
/// of any topic, so a broker that is down for a moment does not make new
/// topics weaker for good (creating them then fails instead, saying so).
/// The default min ISR is 2 for a factor of 3 or more, else 1: on two
/// brokers a write still succeeds with one of them down (at the risk of
/// losing it if that broker then fails too), because requiring both would
/// stop every write whenever either broker is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub factor: i32,
    pub min_insync_replicas: i32,
    /// The factor was configured (not the cluster's default).
    pub factor_configured: bool,
    /// The min ISR was configured (not the default for `factor`).
    pub min_isr_configured: bool,
    /// Brokers counted for the default.
    pub brokers: usize,
    /// How many of them were not live.
    pub down: usize,
}

/// The default replication factor on a cluster of `brokers`.
pub fn default_factor(brokers: usize) -> i32 {
    brokers.clamp(1, 3) as i32
}

/// The default `min.insync.replicas` for a replication factor.
pub fn default_min_isr(factor: i32) -> i32 {
    if factor >= 3 { 2 } else { 1 }
}

impl Replication {
    /// Resolves the configuration against the cluster's brokers; a
    /// configured value the cluster cannot meet is a configuration error
    /// naming the key.
    pub fn resolve(kafka: &KafkaConfig, brokers: &Brokers) -> Result<Replication, ConfigError> {
        let count = brokers.known.len().max(1);
        let factor = kafka.replication_factor.unwrap_or_else(|| default_factor(count));
        if kafka.replication_factor.is_some() && factor as usize > count {
            return Err(ConfigError::invalid(
                "kafka.replication_factor",
                format!(
                    "{factor} is more than the {count} broker{} of the cluster at {}; lower it (--replication) or \
                     leave it unset to use the cluster's default",
                    plural(count),
                    kafka.bootstrap
                ),
            ));
        }
        let min_insync_replicas = kafka.min_insync_replicas.unwrap_or_else(|| default_min_isr(factor));
        if min_insync_replicas > factor {
            return Err(ConfigError::invalid(
                "kafka.min_insync_replicas",
                format!(
                    "{min_insync_replicas} is larger than the replication factor {factor}, the default for a \
                     cluster of {count} broker{}; set kafka.replication_factor (--replication) or lower \
                     kafka.min_insync_replicas",
                    plural(count)
                ),
            ));
        }
        Ok(Replication {
            factor,
            min_insync_replicas,
            factor_configured: kafka.replication_factor.is_some(),
            min_isr_configured: kafka.min_insync_replicas.is_some(),
            brokers: count,
            down: brokers.missing().len(),
        })
    }

    /// Where the numbers came from, for the report.
    pub fn origin(&self) -> String {
        let mut cluster = format!("the default for {} broker{}", self.brokers, plural(self.brokers));
        if self.down > 0 {
            cluster.push_str(&format!(", {} of them down", self.down));
        }
        match (self.factor_configured, self.min_isr_configured) {
            (true, true) => "both configured".into(),
            (false, false) => cluster,
            (true, false) => "replication factor configured, min ISR its default".into(),
            (false, true) => format!("replication factor {cluster}, min ISR configured"),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What happened to one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// It was there already, with the requested partition count.
    Exists,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Exists => "exists",
        })
    }
}

/// The result of provisioning one event.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub event_id: u64,
    pub partitions: i32,
    /// The replication new topics were created with (existing topics keep theirs).
    pub replication: Replication,
    pub topics: Vec<(TopicSpec, Outcome)>,
}

impl Provisioned {
    /// How many topics this run created.
    pub fn created(&self) -> usize {
        self.topics.iter().filter(|(_, o)| *o == Outcome::Created).count()
    }
}

impl fmt::Display for Provisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "event {}: {} topics ({} created, {} existed), {} partitions, replication factor {}, min ISR {} ({})",
            self.event_id,
            self.topics.len(),
            self.created(),
            self.topics.len() - self.created(),
            self.partitions,
            self.replication.factor,
            self.replication.min_insync_replicas,
            self.replication.origin()
        )?;
        let mut table = Table::new(&["TOPIC", "KIND", "RESULT"]).indent(2);
        for (spec, outcome) in &self.topics {
            table.row(vec![spec.name.to_string(), kind_name(spec.kind).into(), outcome.to_string()]);
        }
        write!(f, "{table}")
    }
}

fn kind_name(kind: TopicKind) -> &'static str {
    match kind {
        TopicKind::ByBooking => "by booking",
        TopicKind::BySection => "by section",
        TopicKind::ByEvent => "by event",
        TopicKind::Changelog => "compacted",
    }
}

/// Creates every topic of `event_id` that does not exist yet, in one request,
/// with `replication`, then waits until all of them have leaders. Existing
/// topics with the requested partition count are reported as
/// [`Outcome::Exists`]; with another count the whole run fails before
/// anything is created. `brokers` is what `replication` was resolved
/// against (for the error when brokers are missing).
pub fn provision(
    cluster: &Cluster,
    event_id: u64,
    kafka: &KafkaConfig,
    replication: Replication,
    brokers: &Brokers,
    topology: &Topology,
) -> Result<Provisioned, AdminError> {
    let specs = topology.event_topics(event_id);
    let existing = cluster.topics()?;
    check_partitions(&specs, |name| existing.get(name).copied(), kafka.partitions)?;

    let names: Vec<String> = specs.iter().map(|s| s.name.to_string()).collect();
    let min_isr = replication.min_insync_replicas.to_string();
    let missing: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&names)
        .filter(|(_, name)| !existing.contains_key(name.as_str()))
        .map(|(spec, name)| new_topic(name, spec.kind, kafka.partitions, replication.factor, &min_isr))
        .collect();
    if !missing.is_empty() && (brokers.live.len() as i32) < replication.factor {
        tracing::warn!(
            "creating topics with replication factor {} while only {} of the cluster's brokers are live \
             (down: {:?}): they start under-replicated (see turnstile status), if the brokers accept them",
            replication.factor,
            brokers.live.len(),
            brokers.missing()
        );
    }

    let mut outcomes: Vec<Outcome> =
        names.iter().map(|n| if existing.contains_key(n) { Outcome::Exists } else { Outcome::Created }).collect();
    let mut failures = Vec::new();
    for result in cluster.create_topics(&missing)? {
        match result {
            Ok(_) => {}
            // Created concurrently by someone else: checked below like any other.
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                if let Some(i) = names.iter().position(|n| *n == name) {
                    outcomes[i] = Outcome::Exists;
                }
            }
            Err((name, code)) => failures.push((name, code)),
        }
    }
    if !failures.is_empty() {
        if failures.iter().any(|(_, code)| *code == RDKafkaErrorCode::InvalidReplicationFactor) {
            return Err(AdminError::TooFewBrokers {
                factor: replication.factor,
                live: brokers.live.iter().copied().collect(),
                missing: brokers.missing(),
                failures,
            });
        }
        return Err(AdminError::CreateTopics(failures));
    }

    let ready = wait_ready(cluster, &names)?;
    check_partitions(&specs, |name| ready.get(name).copied(), kafka.partitions)?;
    Ok(Provisioned {
        event_id,
        partitions: kafka.partitions,
        replication,
        topics: specs.into_iter().zip(outcomes).collect(),
    })
}

/// The topic settings: replication and min ISR as resolved, changelogs compacted.
fn new_topic<'a>(name: &'a str, kind: TopicKind, partitions: i32, factor: i32, min_isr: &'a str) -> NewTopic<'a> {
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(factor)).set("min.insync.replicas", min_isr);
    match kind {
        TopicKind::Changelog => topic.set("cleanup.policy", "compact"),
        TopicKind::ByBooking | TopicKind::BySection | TopicKind::ByEvent => topic,
    }
}

/// Fails naming every topic whose partition count differs from `expected`.
fn check_partitions(
    specs: &[TopicSpec],
    actual: impl Fn(&str) -> Option<i32>,
    expected: i32,
) -> Result<(), AdminError> {
    let mismatches: Vec<PartitionMismatch> = specs
        .iter()
        .filter_map(|spec| {
            let topic = spec.name.to_string();
            let actual = actual(&topic)?;
            (actual != expected).then_some(PartitionMismatch { topic, expected, actual })
        })
        .collect();
    if mismatches.is_empty() { Ok(()) } else { Err(AdminError::PartitionMismatch(mismatches)) }
}

/// Polls metadata until every topic in `names` has a leader on every
/// partition, for at most the request timeout.
fn wait_ready(cluster: &Cluster, names: &[String]) -> Result<std::collections::BTreeMap<String, i32>, AdminError> {
    let deadline = Instant::now() + cluster.timeout();
    loop {
        let ready = cluster.ready_topics()?;
        let pending: Vec<String> = names.iter().filter(|n| !ready.contains_key(*n)).cloned().collect();
        if pending.is_empty() {
            return Ok(ready);
        }
        if Instant::now() >= deadline {
            return Err(AdminError::NotReady { topics: pending, timeout_ms: cluster.timeout().as_millis() as u64 });
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(live: &[i32], known: &[i32]) -> Brokers {
        Brokers { live: live.iter().copied().collect(), known: live.iter().chain(known).copied().collect() }
    }

    fn resolve(factor: Option<i32>, min_isr: Option<i32>, b: &Brokers) -> Result<Replication, ConfigError> {
        let kafka = KafkaConfig { replication_factor: factor, min_insync_replicas: min_isr, ..KafkaConfig::default() };
        Replication::resolve(&kafka, b)
    }

    #[test]
    fn replication_defaults_follow_the_cluster() {
        let shape = |r: Replication| (r.factor, r.min_insync_replicas);
        assert_eq!(shape(resolve(None, None, &brokers(&[1], &[])).unwrap()), (1, 1));
        assert_eq!(shape(resolve(None, None, &brokers(&[1, 2], &[])).unwrap()), (2, 1));
        assert_eq!(shape(resolve(None, None, &brokers(&[1, 2, 3], &[])).unwrap()), (3, 2));
        assert_eq!(shape(resolve(None, None, &brokers(&[1, 2, 3, 4, 5], &[])).unwrap()), (3, 2));
        // A broker that is down but holds replicas still counts.
        let r = resolve(None, None, &brokers(&[1, 3], &[2])).unwrap();
        assert_eq!((shape(r), r.brokers), ((3, 2), 3));
        assert_eq!(r.origin(), "the default for 3 brokers, 1 of them down");
        assert_eq!(resolve(None, None, &brokers(&[1, 2, 3], &[])).unwrap().origin(), "the default for 3 brokers");
        // No metadata about brokers at all: one.
        assert_eq!(shape(resolve(None, None, &Brokers::default()).unwrap()), (1, 1));
    }

    #[test]
    fn configured_replication_wins_and_is_checked_against_the_cluster() {
        let three = brokers(&[1, 2, 3], &[]);
        let r = resolve(Some(1), None, &three).unwrap();
        assert_eq!((r.factor, r.min_insync_replicas), (1, 1));
        assert_eq!(r.origin(), "replication factor configured, min ISR its default");
        let r = resolve(None, Some(3), &three).unwrap();
        assert_eq!((r.factor, r.min_insync_replicas), (3, 3));
        assert_eq!(r.origin(), "replication factor the default for 3 brokers, min ISR configured");
        assert_eq!(resolve(Some(3), Some(1), &three).unwrap().origin(), "both configured");

        let one = brokers(&[1], &[]);
        let err = resolve(None, Some(2), &one).unwrap_err().to_string();
        assert!(err.contains("kafka.min_insync_replicas") && err.contains("cluster of 1 broker;"), "{err}");
        let err = resolve(Some(3), None, &one).unwrap_err().to_string();
        assert!(err.contains("kafka.replication_factor") && err.contains("more than the 1 broker of"), "{err}");
    }

    #[test]
    fn mismatched_partitions_name_the_topic() {
        let specs = crate::topology::Topology::builtin().event_topics(5);
        let odd = specs[2].name.to_string();
        let err = check_partitions(&specs, |n| Some(if n == odd { 3 } else { 10 }), 10).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("{odd} has 3")) && text.contains("requested 10"), "{text}");
        assert!(check_partitions(&specs, |_| None, 10).is_ok());
        assert!(check_partitions(&specs, |_| Some(10), 10).is_ok());
    }
}
