//! The open Kafka transaction of a service instance: its outputs, the state
//! writes of its messages and the input offsets it will commit.
//!
//! A transaction commits outputs, changelog records and consumed offsets
//! atomically (`send_offsets_to_transaction` with the consumer's group
//! metadata), so a `read_committed` reader sees all of a batch or none of it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use crate::publisher::{PublishError, Publisher, Record};
use crate::state::ServiceState;
use crate::state::checkpoint::Anchor;

/// How a failed transaction call must be handled.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// The transaction was aborted; rewind to the returned offsets and go on.
    #[error("transaction aborted: {0}")]
    Aborted(#[source] KafkaError),
    /// The producer cannot continue (fenced by a newer instance, or broken).
    #[error("transactional producer failed fatally: {0}")]
    Fatal(#[source] KafkaError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A send failed part-way through a message, so the transaction was
    /// aborted instead of committed; rewind and replay it.
    #[error("transaction aborted: a record of it could not be sent")]
    Poisoned,
}

/// An input partition, by topic name and number.
pub type InputPartition = (String, i32);

/// The open transaction and the transactional producer that carries it.
pub struct Transaction {
    producer: Publisher,
    changelog_topic: String,
    timeout: Duration,
    open: bool,
    started: Instant,
    messages: usize,
    critical: bool,
    /// A send failed part-way through a message: the transaction holds half
    /// of it and may only be aborted.
    poisoned: bool,
    /// Next offset to consume per input partition: what a commit records.
    next: HashMap<InputPartition, i64>,
    /// First offset handled in this transaction: where an abort rewinds to.
    first: HashMap<InputPartition, i64>,
}

impl Transaction {
    /// Wraps a transactional producer whose `init_transactions` has run.
    pub fn new(producer: Publisher, changelog_topic: String, timeout: Duration) -> Self {
        Transaction {
            producer,
            changelog_topic,
            timeout,
            open: false,
            started: Instant::now(),
            messages: 0,
            critical: false,
            poisoned: false,
            next: HashMap::new(),
            first: HashMap::new(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Begins a transaction unless one is open.
    pub fn ensure_open(&mut self) -> Result<(), TxnError> {
        if !self.open {
            self.producer.producer().begin_transaction().map_err(classify)?;
            self.open = true;
            self.started = Instant::now();
        }
        Ok(())
    }

    /// Queues one record in the open transaction.
    pub fn send(&mut self, record: Record<'_>) -> Result<(), TxnError> {
        self.producer.send(record)?;
        Ok(())
    }

    /// Marks the open transaction as holding part of a message: it will
    /// abort instead of committing.
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Whether the open transaction may only be aborted.
    pub fn is_poisoned(&self) -> bool {
        self.open && self.poisoned
    }

    /// Marks the transaction for an immediate commit (a critical output).
    pub fn mark_critical(&mut self) {
        self.critical = true;
    }

    /// Notes that the message at `offset` of `topic[partition]` is about to
    /// put records into the transaction: an abort rewinds at least to it.
    pub fn record_first(&mut self, topic: &str, partition: i32, offset: i64) {
        self.first.entry((topic.to_owned(), partition)).or_insert(offset);
    }

    /// Records that the message at `offset` of `topic[partition]` is done.
    pub fn record_input(&mut self, topic: &str, partition: i32, offset: i64) {
        let key = (topic.to_owned(), partition);
        self.first.entry(key.clone()).or_insert(offset);
        self.next.insert(key, offset + 1);
        self.messages += 1;
    }

    /// Whether the transaction should commit now by size or age.
    pub fn is_due(&self, interval: Duration, max_batch: usize) -> bool {
        self.open && (self.messages >= max_batch || self.started.elapsed() >= interval)
    }

    /// Whether the open transaction holds a critical output.
    pub fn is_critical(&self) -> bool {
        self.open && self.critical
    }

    /// How long the open transaction has been open (zero when none is).
    pub fn open_for(&self) -> Duration {
        if self.open { self.started.elapsed() } else { Duration::ZERO }
    }

    /// Writes the state changes, commits outputs, changelog and offsets, and
    /// promotes the state. On failure the transaction is aborted, the state
    /// rolled back, and the error says whether the producer survived.
    pub fn commit(&mut self, state: &mut ServiceState, group: &ConsumerGroupMetadata) -> Result<(), TxnError> {
        if !self.open {
            return Ok(());
        }
        if self.poisoned {
            // Abort, but keep the first offsets: the caller rewinds to them
            // (`take_rewind`), or the aborted messages would be skipped.
            state.abort();
            self.open = false;
            return Err(match self.producer.producer().abort_transaction(self.timeout) {
                Ok(()) => TxnError::Poisoned,
                Err(err) => classify(err),
            });
        }
        let result = self.try_commit(state, group);
        match result {
            Ok(mut anchors) => {
                state.commit(&mut anchors);
                self.reset();
                Ok(())
            }
            Err(err) => {
                state.abort();
                if !matches!(err, TxnError::Fatal(_)) {
                    // Abort errors here leave nothing more to do than report the first.
                    let _ = self.producer.producer().abort_transaction(self.timeout);
                }
                self.open = false;
                Err(err)
            }
        }
    }

    /// Sends the changelog records, the offsets and the commit; returns the
    /// anchor (last changelog record) of each partition with writes.
    fn try_commit(
        &mut self,
        state: &ServiceState,
        group: &ConsumerGroupMetadata,
    ) -> Result<HashMap<i32, Anchor>, TxnError> {
        // Records of earlier, aborted transactions must not anchor this one.
        self.producer.take_delivered();
        let mut last = HashMap::new();
        for (partition, pstate) in state.partitions() {
            for (key, value) in pstate.transaction_writes() {
                self.producer.send_raw(&self.changelog_topic, partition, key, value)?;
                last.insert(partition, (key, value));
            }
        }
        let started = Instant::now();
        // Every record of the transaction is delivered before its offsets go
        // in, so nothing of it is still in flight when the commit is asked
        // for. See `Publisher::wait_delivered`: without it every commit took
        // 100 ms.
        self.producer.wait_delivered(self.timeout);
        let delivered = Instant::now();
        if !self.next.is_empty() {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), next) in &self.next {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*next)).map_err(TxnError::Fatal)?;
            }
            // Bounded tighter than the commit: after the group coordinator
            // moved, librdkafka was seen retrying this call for minutes
            // (KIP-848 group, three-broker rolling restart). Nothing is
            // committed yet, so giving up is safe: the runner is rebuilt
            // and replays from the committed offsets.
            let attempt = self.timeout.min(OFFSETS_ATTEMPT_TIMEOUT);
            retrying_up_to(OFFSETS_ATTEMPTS, || {
                self.producer.producer().send_offsets_to_transaction(&offsets, group, attempt)
            })?;
        }
        let offsets_sent = Instant::now();
        // A commit that timed out may still complete on the broker; only a
        // retry (never an abort and replay) keeps that from duplicating output.
        let result = retrying(|| self.producer.producer().commit_transaction(self.timeout));
        tracing::debug!(
            messages = self.messages,
            delivery = ?(delivered - started),
            offsets = ?(offsets_sent - delivered),
            commit = ?offsets_sent.elapsed(),
            "transaction commit"
        );
        result?;
        // One producer writes a partition in order, so the highest offset
        // delivered is the last record sent to it.
        let delivered = self.producer.take_delivered();
        Ok(last
            .into_iter()
            .filter_map(|(p, (key, value))| delivered.get(&p).map(|&offset| (p, Anchor::of(offset, key, value))))
            .collect())
    }

    /// Aborts the open transaction and forgets its state writes. Returns the
    /// offsets to rewind the consumer to.
    pub fn abort(&mut self, state: &mut ServiceState) -> Result<Vec<(InputPartition, i64)>, TxnError> {
        state.abort();
        let rewind = self.first.drain().collect();
        if self.open {
            self.open = false;
            self.reset();
            self.producer.producer().abort_transaction(self.timeout).map_err(classify)?;
        }
        Ok(rewind)
    }

    /// Where to rewind after a failed commit: the first offsets of the
    /// transaction that was lost.
    pub fn take_rewind(&mut self) -> Vec<(InputPartition, i64)> {
        let rewind = self.first.drain().collect();
        self.reset();
        rewind
    }

    fn reset(&mut self) {
        self.open = false;
        self.messages = 0;
        self.critical = false;
        self.poisoned = false;
        self.next.clear();
        self.first.clear();
    }
}

/// Attempts and per-attempt timeout of `send_offsets_to_transaction`.
const OFFSETS_ATTEMPTS: u32 = 2;
const OFFSETS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries a transaction call while librdkafka calls its error retriable.
fn retrying(call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), TxnError> {
    retrying_up_to(5, call)
}

/// [`retrying`] with at most `attempts` calls; a retriable error still
/// there after the last is fatal (the runner is rebuilt).
fn retrying_up_to(attempts: u32, mut call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), TxnError> {
    const ATTEMPTS: u32 = 5;
    let attempts = attempts.clamp(1, ATTEMPTS);
    let mut attempt = 1;
    loop {
        match call() {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < attempts => {
                tracing::warn!(error = %e, attempt, "retrying transaction call");
                attempt += 1;
            }
            // Still undecided: the commit may land later, so neither abort
            // nor replay; stop, and a restart reads the committed offsets.
            Err(err @ KafkaError::Transaction(_)) if matches!(&err, KafkaError::Transaction(e) if e.is_retriable()) => {
                return Err(TxnError::Fatal(err));
            }
            Err(err) => return Err(classify(err)),
        }
    }
}

/// Sorts a transaction error into abortable and fatal (`../shared/NOTES.md`, rdkafka).
fn classify(err: KafkaError) -> TxnError {
    let fatal = match &err {
        KafkaError::Transaction(e) => e.is_fatal() || !e.txn_requires_abort() && !e.is_retriable(),
        _ => false,
    };
    if fatal { TxnError::Fatal(err) } else { TxnError::Aborted(err) }
}
