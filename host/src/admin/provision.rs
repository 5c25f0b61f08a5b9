//! Creating an event's topics (DOMAIN.md §2), idempotently.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::table::Table;
use super::{AdminError, Cluster, PartitionMismatch};
use crate::config::KafkaConfig;
use crate::naming::{self, TopicKind, TopicSpec};

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
    pub replication_factor: i32,
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
            "event {}: {} topics ({} created, {} existed), {} partitions, replication factor {}",
            self.event_id,
            self.topics.len(),
            self.created(),
            self.topics.len() - self.created(),
            self.partitions,
            self.replication_factor
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
        TopicKind::Changelog => "compacted",
    }
}

/// Creates every topic of `event_id` that does not exist yet, in one request,
/// then waits until all of them have leaders. Existing topics with the
/// requested partition count are reported as [`Outcome::Exists`]; with
/// another count the whole run fails before anything is created.
pub fn provision(cluster: &Cluster, event_id: u64, kafka: &KafkaConfig) -> Result<Provisioned, AdminError> {
    let specs = naming::event_topics(event_id);
    let existing = cluster.topics()?;
    check_partitions(&specs, |name| existing.get(name).copied(), kafka.partitions)?;

    let names: Vec<String> = specs.iter().map(|s| s.name.to_string()).collect();
    let min_isr = kafka.min_insync_replicas.to_string();
    let missing: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&names)
        .filter(|(_, name)| !existing.contains_key(name.as_str()))
        .map(|(spec, name)| new_topic(name, spec.kind, kafka, &min_isr))
        .collect();

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
        return Err(AdminError::CreateTopics(failures));
    }

    let ready = wait_ready(cluster, &names)?;
    check_partitions(&specs, |name| ready.get(name).copied(), kafka.partitions)?;
    Ok(Provisioned {
        event_id,
        partitions: kafka.partitions,
        replication_factor: kafka.replication_factor,
        topics: specs.into_iter().zip(outcomes).collect(),
    })
}

/// The topic settings: replication and min ISR from config, changelogs compacted.
fn new_topic<'a>(name: &'a str, kind: TopicKind, kafka: &KafkaConfig, min_isr: &'a str) -> NewTopic<'a> {
    let topic = NewTopic::new(name, kafka.partitions, TopicReplication::Fixed(kafka.replication_factor))
        .set("min.insync.replicas", min_isr);
    match kind {
        TopicKind::Changelog => topic.set("cleanup.policy", "compact"),
        TopicKind::ByBooking | TopicKind::BySection => topic,
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

    #[test]
    fn mismatched_partitions_name_the_topic() {
        let specs = naming::event_topics(5);
        let odd = specs[2].name.to_string();
        let err = check_partitions(&specs, |n| Some(if n == odd { 3 } else { 10 }), 10).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("{odd} has 3")) && text.contains("requested 10"), "{text}");
        assert!(check_partitions(&specs, |_| None, 10).is_ok());
        assert!(check_partitions(&specs, |_| Some(10), 10).is_ok());
    }
}
