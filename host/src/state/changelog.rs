//! Restoring plugin state from its compacted changelog topic.
//!
//! Partition `p` of the changelog holds the state of input partition `p`:
//! each record is one key's latest value, a tombstone deletes it. Records are
//! written only inside the runner's transactions, so a `read_committed`
//! reader up to the end sees exactly the state of the last committed
//! transaction.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::PartitionState;
use super::checkpoint::{Anchor, CheckpointDir, digest};
use crate::client::{ClientSettings, QuietEof};
use crate::config::KafkaConfig;

/// Why state could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot read changelog {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("changelog {topic} partitions {pending:?} read nothing for {timeout:?} before their end")]
    Timeout { topic: String, pending: Vec<i32>, timeout: Duration },
}

/// A `read_committed` reader of a changelog that reports partition ends.
fn reader(kafka: &KafkaConfig, topic: &str) -> Result<BaseConsumer<QuietEof>, KafkaError> {
    ClientSettings::new(kafka)
        .set("group.id", format!("{topic}-restore"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(QuietEof)
}

/// The high watermarks of `partitions`, as a `read_uncommitted` client sees
/// them (the true end of the log, open transactions included).
fn high_watermarks(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<HashMap<i32, i64>, KafkaError> {
    let probe = crate::client::log_end_reader(kafka)?;
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
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
    checkpoints: Option<&CheckpointDir>,
) -> Result<HashMap<i32, PartitionState>, RestoreError> {
    let mut restore = Restore::start(kafka, topic, partitions, timeout, checkpoints)?;
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
    kafka: KafkaConfig,
    /// The end to reach per partition, fetched by the first `step` that can.
    targets: Option<HashMap<i32, i64>>,
    pending: HashSet<i32>,
    states: HashMap<i32, HashMap<Vec<u8>, Vec<u8>>>,
    /// The last record each state includes so far.
    anchors: HashMap<i32, Anchor>,
    /// Partitions started from a checkpoint whose anchor record has not
    /// been read back yet: the first record read must be it.
    unconfirmed: HashMap<i32, Anchor>,
    /// Partitions whose checkpoint was confirmed.
    from_checkpoint: Vec<i32>,
    records: u64,
    started: Instant,
    /// Whether the read has stood still for the timeout.
    stall: Stall,
    /// The sum of the positions last read, for the stall.
    positions: i64,
    timeout: Duration,
    last_progress: Instant,
}

/// How long a restore has read nothing: it fails only after `timeout`
/// without progress (a record read or a position moved), so a changelog of
/// any length restores, and one that cannot be read is noticed. A dead
/// owner's open transaction holds the position still until the broker
/// aborts it (`transaction.timeout.ms`), so the timeout must exceed that.
#[derive(Debug)]
struct Stall {
    timeout: Duration,
    since: Instant,
    /// Records read and the sum of the positions, when last seen moving.
    mark: (u64, i64),
}

impl Stall {
    fn new(timeout: Duration, now: Instant) -> Self {
        Stall { timeout, since: now, mark: (0, i64::MIN) }
    }

    /// Notes where the read is at `now`; `true` once it has not moved for
    /// the timeout.
    fn stalled(&mut self, mark: (u64, i64), now: Instant) -> bool {
        if mark != self.mark {
            self.mark = mark;
            self.since = now;
        }
        now.saturating_duration_since(self.since) > self.timeout
    }

    /// Whether the timeout has passed without progress, as of the last mark.
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) > self.timeout
    }
}

impl Restore {
    /// Starts restoring `partitions` of `topic`. `timeout` bounds how long
    /// it may read nothing (see [`Stall`]); an open transaction of a dead
    /// instance holds the end back until the broker aborts it
    /// (`transaction.timeout.ms`), so it must exceed that.
    /// With `checkpoints`, a partition with a usable local checkpoint starts
    /// from it and reads only the tail (see [`super::checkpoint`]).
    pub fn start(
        kafka: &KafkaConfig,
        topic: &str,
        partitions: &[i32],
        timeout: Duration,
        checkpoints: Option<&CheckpointDir>,
    ) -> Result<Self, RestoreError> {
        let kafka_error = |source| RestoreError::Kafka { topic: topic.to_owned(), source };
        let consumer = reader(kafka, topic).map_err(kafka_error)?;
        let mut tpl = TopicPartitionList::new();
        let mut states: HashMap<i32, HashMap<Vec<u8>, Vec<u8>>> =
            partitions.iter().map(|&p| (p, HashMap::new())).collect();
        let mut unconfirmed = HashMap::new();
        for &p in partitions {
            match checkpoints.and_then(|c| c.read(topic, p)) {
                Some(checkpoint) => {
                    tpl.add_partition_offset(topic, p, Offset::Offset(checkpoint.anchor.offset))
                        .map_err(kafka_error)?;
                    states.insert(p, checkpoint.entries);
                    unconfirmed.insert(p, checkpoint.anchor);
                }
                None => tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(kafka_error)?,
            }
        }
        if !partitions.is_empty() {
            consumer.assign(&tpl).map_err(kafka_error)?;
        }
        let now = Instant::now();
        Ok(Restore {
            consumer,
            topic: topic.to_owned(),
            partitions: partitions.to_vec(),
            kafka: kafka.clone(),
            targets: None,
            pending: partitions.iter().copied().collect(),
            states,
            anchors: unconfirmed.clone(),
            unconfirmed,
            from_checkpoint: Vec::new(),
            records: 0,
            started: now,
            stall: Stall::new(timeout, now),
            positions: 0,
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
        match high_watermarks(&self.kafka, &self.topic, &self.partitions, budget) {
            Ok(targets) => {
                let short: Vec<i32> = targets
                    .iter()
                    .filter(|(p, high)| self.unconfirmed.get(p).is_some_and(|a| a.offset >= **high))
                    .map(|(p, _)| *p)
                    .collect();
                // A log that ends at or before the anchor is not the log the
                // checkpoint was taken from.
                for &p in &short {
                    self.discard_checkpoint(p, "the changelog ends before its anchor");
                }
                if !short.is_empty() {
                    self.restart_reading()?;
                }
                self.pending.retain(|p| targets.get(p).is_some_and(|&high| high > 0));
                self.targets = Some(targets);
                Ok(true)
            }
            Err(err) if !self.stall.expired(Instant::now()) => {
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
            let mark = (self.records, self.positions);
            if self.stall.stalled(mark, Instant::now()) {
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
                // A broker moving or restarting: keep trying while the stall allows.
                Some(Err(err)) => {
                    tracing::warn!(topic = %self.topic, error = %err, "changelog read failed; retrying until the restore timeout");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Some(Ok(record)) => {
                    let p = record.partition();
                    let key = record.key().unwrap_or_default();
                    if let Some(anchor) = self.unconfirmed.remove(&p) {
                        let confirmed =
                            record.offset() == anchor.offset && digest(key, record.payload()) == anchor.digest;
                        // Before the reader may be replaced: dropping a client
                        // waits for every message it handed out.
                        drop(record);
                        if confirmed {
                            // The checkpoint includes this record already.
                            self.from_checkpoint.push(p);
                        } else {
                            self.discard_checkpoint(p, "its anchor record is not in the changelog");
                            self.restart_reading()?;
                        }
                        continue;
                    }
                    let Some(state) = self.states.get_mut(&p) else { continue };
                    self.records += 1;
                    self.anchors.insert(p, Anchor::of(record.offset(), key, record.payload()));
                    match record.payload() {
                        Some(value) => state.insert(key.to_vec(), value.to_vec()),
                        None => state.remove(key),
                    };
                }
            }
            // The position moves past commit markers and aborted records
            // too, so it reaches the high watermark exactly when everything
            // is read.
            let Ok(positions) = self.consumer.position() else { continue };
            // Positions move past commit markers and aborted records too:
            // progress as much as a record read.
            self.positions = positions
                .elements_for_topic(&self.topic)
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(position) => Some(position),
                    _ => None,
                })
                .sum();
            let (topic, targets) = (&self.topic, &self.targets);
            let mut unanchored = Vec::new();
            self.pending.retain(|p| match positions.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(position)) => {
                    let reading = targets.as_ref().and_then(|t| t.get(p)).is_none_or(|&end| position < end);
                    if !reading && self.unconfirmed.contains_key(p) {
                        // At the end without having seen the anchor record
                        // (compacted away, or an aborted record now).
                        unanchored.push(*p);
                    }
                    reading || self.unconfirmed.contains_key(p)
                }
                _ => true,
            });
            for &p in &unanchored {
                self.discard_checkpoint(p, "its anchor record is not in the changelog");
            }
            if !unanchored.is_empty() {
                self.restart_reading()?;
            }
        }
        if !self.from_checkpoint.is_empty() {
            self.from_checkpoint.sort_unstable();
            tracing::info!(topic = %self.topic, partitions = ?self.from_checkpoint, tail_records = self.records, "state restored from local checkpoints and the changelog tail");
        }
        let states = std::mem::take(&mut self.states);
        let mut anchors = std::mem::take(&mut self.anchors);
        Ok(Some(
            states
                .into_iter()
                .map(|(p, entries)| (p, PartitionState::from_committed(entries, anchors.remove(&p))))
                .collect(),
        ))
    }

    /// Forgets partition `p`'s checkpoint; the caller then restarts reading.
    fn discard_checkpoint(&mut self, p: i32, reason: &str) {
        tracing::warn!(topic = %self.topic, partition = p, reason, "local state checkpoint discarded; reading the changelog from the beginning");
        self.unconfirmed.remove(&p);
    }

    /// Reads every pending partition again with a fresh reader: from its
    /// checkpoint's anchor while that is unconfirmed, otherwise from the
    /// beginning with empty state. A fresh reader rather than a seek, so no
    /// position of the old read can make a partition look finished.
    fn restart_reading(&mut self) -> Result<(), RestoreError> {
        let kafka = |source| RestoreError::Kafka { topic: self.topic.clone(), source };
        let mut tpl = TopicPartitionList::new();
        for &p in &self.pending {
            match self.unconfirmed.get(&p) {
                Some(anchor) => tpl.add_partition_offset(&self.topic, p, Offset::Offset(anchor.offset)),
                None => {
                    self.states.entry(p).or_default().clear();
                    self.anchors.remove(&p);
                    self.from_checkpoint.retain(|&q| q != p);
                    tpl.add_partition_offset(&self.topic, p, Offset::Beginning)
                }
            }
            .map_err(kafka)?;
        }
        self.consumer = reader(&self.kafka, &self.topic).map_err(kafka)?;
        if tpl.count() > 0 {
            self.consumer.assign(&tpl).map_err(kafka)?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_restore_fails_only_after_reading_nothing_for_the_timeout() {
        let t0 = Instant::now();
        let mut stall = Stall::new(10 * S, t0);
        // A long changelog: reading for 10 minutes, never stalled.
        for minute in 1..=600u64 {
            assert!(!stall.stalled((minute * 1000, 0), t0 + Duration::from_secs(minute)), "progress at {minute} s");
        }
        // Positions that move past markers and aborted records are progress too.
        assert!(!stall.stalled((600_000, 5), t0 + 605 * S));
        // Then nothing moves (a dead owner's transaction, an outage).
        assert!(!stall.stalled((600_000, 5), t0 + 614 * S));
        assert!(stall.stalled((600_000, 5), t0 + 616 * S));
        assert!(stall.expired(t0 + 616 * S));
    }
}
