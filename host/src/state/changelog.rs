//! Restoring plugin state from its compacted changelog topic.
//!
//! Partition `p` of the changelog holds the state of input partition `p`:
//! each record is one key's latest value, a tombstone deletes it. Records are
//! written only inside the runner's transactions, so a `read_committed`
//! reader up to the end sees exactly the state of the last committed
//! transaction.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::PartitionState;

/// Why state could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot read changelog {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("changelog {topic} partitions {pending:?} did not reach their end within {timeout:?}")]
    Timeout { topic: String, pending: Vec<i32>, timeout: Duration },
}

/// Logs client errors except reaching the end of a partition, which is how a
/// restore knows it is done.
pub(crate) struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!(%error, reason, "changelog reader error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// The high watermarks of `partitions`, as a `read_uncommitted` client sees
/// them (the true end of the log, open transactions included).
fn high_watermarks(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<HashMap<i32, i64>, KafkaError> {
    let probe: BaseConsumer<QuietEof> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("isolation.level", "read_uncommitted")
        .set("enable.auto.commit", "false")
        .create_with_context(QuietEof)?;
    let deadline = Instant::now() + timeout;
    let mut targets = HashMap::new();
    for &p in partitions {
        let high = loop {
            let left = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(10));
            match probe.fetch_watermarks(topic, p, left) {
                Ok((_, high)) => break high,
                Err(err) if Instant::now() < deadline => {
                    tracing::warn!(%topic, partition = p, error = %err, "cannot read the changelog's end yet; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(err) => return Err(err),
            }
        };
        targets.insert(p, high);
    }
    Ok(targets)
}

/// Reads `partitions` of `topic` from the beginning to their committed end,
/// blocking until done (see [`Restore`] for the end point and the timeout).
pub fn restore(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<HashMap<i32, PartitionState>, RestoreError> {
    let mut restore = Restore::start(bootstrap, topic, partitions, timeout)?;
    loop {
        if let Some(states) = restore.step(Duration::from_millis(500))? {
            return Ok(states);
        }
    }
}

/// A restore in progress, stepped by the runner's poll loop so that the
/// consumer keeps polling (and other partitions keep flowing) meanwhile.
pub struct Restore {
    consumer: BaseConsumer<QuietEof>,
    topic: String,
    partitions: Vec<i32>,
    bootstrap: String,
    /// The end to reach per partition, fetched by the first `step` that can.
    targets: Option<HashMap<i32, i64>>,
    pending: HashSet<i32>,
    states: HashMap<i32, HashMap<Vec<u8>, Vec<u8>>>,
    records: u64,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    last_progress: Instant,
}

impl Restore {
    /// Starts restoring `partitions` of `topic`. `timeout` bounds the whole
    /// restore; an open transaction of a dead instance holds the end back
    /// until the broker aborts it (`transaction.timeout.ms`), so it must
    /// exceed that.
    pub fn start(bootstrap: &str, topic: &str, partitions: &[i32], timeout: Duration) -> Result<Self, RestoreError> {
        let kafka = |source| RestoreError::Kafka { topic: topic.to_owned(), source };
        let consumer: BaseConsumer<QuietEof> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("{topic}-restore"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create_with_context(QuietEof)
            .map_err(kafka)?;
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(kafka)?;
        }
        if !partitions.is_empty() {
            consumer.assign(&tpl).map_err(kafka)?;
        }
        let now = Instant::now();
        Ok(Restore {
            consumer,
            topic: topic.to_owned(),
            partitions: partitions.to_vec(),
            bootstrap: bootstrap.to_owned(),
            targets: None,
            pending: partitions.iter().copied().collect(),
            states: partitions.iter().map(|&p| (p, HashMap::new())).collect(),
            records: 0,
            started: now,
            deadline: now + timeout,
            timeout,
            last_progress: now,
        })
    }

    /// The end to reach: the high watermark as of the first time it can be
    /// asked, from a read_uncommitted client. A read_committed one answers
    /// with the last stable offset, which stops before a transaction that
    /// the previous owner has written but not yet committed. The
    /// read_committed reader's position can pass an offset only once every
    /// transaction below it is decided, so reaching the high watermark means
    /// every record the previous owner wrote before it has been read if it
    /// committed and skipped if it aborted. Asked with a short timeout, so
    /// that a broker outage never blocks the poll loop for long; `step`
    /// asks again.
    fn fetch_targets(&mut self, budget: Duration) -> Result<bool, RestoreError> {
        if self.targets.is_some() {
            return Ok(true);
        }
        match high_watermarks(&self.bootstrap, &self.topic, &self.partitions, budget) {
            Ok(targets) => {
                self.pending.retain(|p| targets.get(p).is_some_and(|&high| high > 0));
                self.targets = Some(targets);
                Ok(true)
            }
            Err(err) if Instant::now() < self.deadline => {
                tracing::warn!(topic = %self.topic, error = %err, "cannot read the changelog's end yet; retrying");
                Ok(false)
            }
            Err(source) => Err(RestoreError::Kafka { topic: self.topic.clone(), source }),
        }
    }

    /// The partitions being restored.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// Reads for up to `budget`; the restored states once every partition
    /// reached its end.
    pub fn step(&mut self, budget: Duration) -> Result<Option<HashMap<i32, PartitionState>>, RestoreError> {
        let until = Instant::now() + budget;
        if !self.fetch_targets(budget.max(Duration::from_secs(1)))? {
            return Ok(None);
        }
        while !self.pending.is_empty() {
            if Instant::now() > self.deadline {
                let mut pending: Vec<i32> = self.pending.iter().copied().collect();
                pending.sort_unstable();
                return Err(RestoreError::Timeout { topic: self.topic.clone(), pending, timeout: self.timeout });
            }
            if Instant::now() >= until {
                self.log_progress();
                return Ok(None);
            }
            match self.consumer.poll(Duration::from_millis(20)) {
                None | Some(Err(KafkaError::PartitionEOF(_))) => {}
                // A broker moving or restarting: keep trying until the deadline.
                Some(Err(err)) => {
                    tracing::warn!(topic = %self.topic, error = %err, "changelog read failed; retrying until the restore timeout");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Some(Ok(record)) => {
                    let Some(state) = self.states.get_mut(&record.partition()) else { continue };
                    self.records += 1;
                    let key = record.key().unwrap_or_default().to_vec();
                    match record.payload() {
                        Some(value) => state.insert(key, value.to_vec()),
                        None => state.remove(&key),
                    };
                }
            }
            // The position moves past commit markers and aborted records
            // too, so it reaches the high watermark exactly when everything
            // is read.
            let Ok(positions) = self.consumer.position() else { continue };
            let (topic, targets) = (&self.topic, &self.targets);
            self.pending.retain(|p| match positions.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(position)) => {
                    targets.as_ref().and_then(|t| t.get(p)).is_none_or(|&end| position < end)
                }
                _ => true,
            });
        }
        let states = std::mem::take(&mut self.states);
        Ok(Some(states.into_iter().map(|(p, entries)| (p, PartitionState::from_committed(entries))).collect()))
    }

    /// How long the restore has been running.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn log_progress(&mut self) {
        if self.last_progress.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last_progress = Instant::now();
        let mut waiting: Vec<i32> = self.pending.iter().copied().collect();
        waiting.sort_unstable();
        tracing::info!(topic = %self.topic, records = self.records, waiting = ?waiting, elapsed = ?self.started.elapsed(), "restoring state");
    }
}
