//! The open Kafka transaction of a service instance: its outputs, the state
//! writes of its messages and the input offsets it will commit.
//!
//! A transaction commits outputs, changelog records and consumed offsets
//! atomically (`send_offsets_to_transaction` with the consumer's group
//! metadata), so a `read_committed` reader sees all of a batch or none of it.
//! While one commits, the next is built (see [`Transaction`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use crate::publisher::{PublishError, Publisher, Record};
use crate::state::ServiceState;
use crate::state::checkpoint::{self, Anchor};

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
    /// The commit thread could not start or died; the runner is rebuilt.
    #[error("transaction commit thread: {0}")]
    Committer(String),
    /// Records of the transaction were still undelivered when the wait for
    /// them ended: its offsets were not sent, it is aborted and replayed.
    #[error("transaction aborted: {in_flight} records still undelivered after {timeout:?}")]
    Undelivered { in_flight: i32, timeout: Duration },
}

/// An input partition, by topic name and number.
pub type InputPartition = (String, i32);

/// A record produced while the previous transaction was still committing:
/// it goes out once the next transaction has begun.
struct Held {
    topic: String,
    partition: i32,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// A commit that landed: how many input messages it held and how long it
/// took from its start.
#[derive(Debug, Clone, Copy)]
pub struct Landed {
    pub messages: usize,
    pub latency: Duration,
}

/// The newest group metadata the poll loop offered a commit in flight.
///
/// The commit thread sends the offsets after every record is delivered,
/// some milliseconds after the commit started; a member epoch bumped in
/// between (KIP-848 reconciliation, on every scale event) fails the offset
/// commit with `STALE_MEMBER_EPOCH` and aborts the transaction. Kafka
/// Streams reads the metadata right before `sendOffsetsToTransaction`; here
/// the loop, which owns the consumer, offers it on every turn while a
/// commit is in flight, and the thread takes the newest.
#[derive(Debug)]
struct Offered<T>(std::sync::Mutex<Option<T>>);

impl<T> Default for Offered<T> {
    fn default() -> Self {
        Offered(std::sync::Mutex::new(None))
    }
}

impl<T> Offered<T> {
    fn offer(&self, value: T) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What a commit thread ends with: the last changelog offset delivered per
/// partition, and when the commit landed.
type Finished = (HashMap<i32, i64>, Instant);

/// A commit running on its own thread, and what is needed once it ends.
struct InFlight {
    /// Ends with the last changelog offset delivered per partition, and when
    /// the commit landed.
    handle: std::thread::JoinHandle<Result<Finished, TxnError>>,
    /// Fresher group metadata for its offsets.
    group: Arc<Offered<ConsumerGroupMetadata>>,
    /// Digest of the last changelog record of each partition with writes.
    last: HashMap<i32, String>,
    /// Where a failure rewinds to.
    first: HashMap<InputPartition, i64>,
    messages: usize,
    since: Instant,
}

/// The open transaction, at most one committing before it, and the
/// transactional producer that carries them.
///
/// A commit ([`Transaction::start_commit`]) sends the changelog records at
/// once and leaves the rest (waiting for delivery, the offsets, the commit
/// itself) to a thread, while the runner goes on handling the next messages
/// into a new transaction on top of the committing state. Until the commit
/// lands that transaction cannot begin on the broker, so its records are
/// held in memory and sent when it does. If the commit fails, both are
/// lost together: the state writes of both are dropped and the consumer
/// rewinds to the first offsets of the older one, exactly as for one.
pub struct Transaction {
    producer: Arc<Publisher>,
    changelog_topic: String,
    /// Bounds every transaction call, and a whole commit as the loop waits
    /// for it (see [`Transaction::settle`]).
    timeout: Duration,
    /// Messages are accumulating in a transaction.
    open: bool,
    /// `begin_transaction` ran for it (not yet while one is in flight).
    begun: bool,
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
    held: Vec<Held>,
    in_flight: Option<InFlight>,
    /// Commits landed since [`Transaction::take_landed`] was last called.
    landed: Vec<Landed>,
}

impl Transaction {
    /// Wraps a transactional producer whose `init_transactions` has run;
    /// `timeout` bounds each transaction call and each commit.
    pub fn new(producer: Publisher, changelog_topic: String, timeout: Duration) -> Self {
        Transaction {
            producer: Arc::new(producer),
            changelog_topic,
            timeout,
            open: false,
            begun: false,
            started: Instant::now(),
            messages: 0,
            critical: false,
            poisoned: false,
            next: HashMap::new(),
            first: HashMap::new(),
            held: Vec::new(),
            in_flight: None,
            landed: Vec::new(),
        }
    }

    /// Whether messages are accumulating in a transaction.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The commits that landed since the last call.
    pub fn take_landed(&mut self) -> Vec<Landed> {
        std::mem::take(&mut self.landed)
    }

    /// How long the commit in flight has been running (zero when none is).
    pub fn committing_for(&self) -> Duration {
        self.in_flight.as_ref().map_or(Duration::ZERO, |f| f.since.elapsed())
    }

    /// Whether a commit is in flight.
    pub fn is_committing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Opens a transaction unless one is open; while a commit is in flight
    /// it begins on the broker when that lands.
    pub fn ensure_open(&mut self) -> Result<(), TxnError> {
        if !self.open {
            if self.in_flight.is_none() {
                self.producer.producer().begin_transaction().map_err(classify)?;
                self.begun = true;
            }
            self.open = true;
            self.started = Instant::now();
        }
        Ok(())
    }

    /// Queues one record in the open transaction (or holds it until the
    /// transaction has begun).
    pub fn send(&mut self, record: Record<'_>) -> Result<(), TxnError> {
        if self.begun {
            self.producer.send(record)?;
        } else {
            self.held.push(Held {
                topic: record.topic.to_owned(),
                partition: record.partition,
                key: record.key.to_vec(),
                payload: record.payload.to_vec(),
                headers: record.headers.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())).collect(),
            });
        }
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

    /// The open transaction as the loop paces it (see `runner::pace`).
    pub(super) fn pacing(&self) -> super::pace::Open {
        super::pace::Open { open_for: self.open.then(|| self.started.elapsed()), critical: self.is_critical() }
    }

    /// How long the open transaction has been open (zero when none is).
    pub fn open_for(&self) -> Duration {
        if self.open { self.started.elapsed() } else { Duration::ZERO }
    }

    /// Commits the open transaction and waits for it (and for any commit
    /// still in flight before it). On failure the transaction is aborted,
    /// the state rolled back, and the error says whether the producer
    /// survived.
    pub fn commit(&mut self, state: &mut ServiceState, group: ConsumerGroupMetadata) -> Result<(), TxnError> {
        self.start_commit(state, group)?;
        self.settle(state, true).unwrap_or(Ok(()))
    }

    /// Starts committing the open transaction and returns; the commit runs
    /// on its own thread ([`Transaction::settle`] collects it). Waits first
    /// for a commit still in flight. A poisoned transaction is aborted here.
    pub fn start_commit(&mut self, state: &mut ServiceState, group: ConsumerGroupMetadata) -> Result<(), TxnError> {
        if let Some(result) = self.settle(state, true) {
            result?;
        }
        if !self.open {
            return Ok(());
        }
        if self.poisoned {
            // Abort, but keep the first offsets: the caller rewinds to them
            // (`take_rewind`), or the aborted messages would be skipped.
            state.abort();
            self.open = false;
            self.begun = false;
            return Err(match self.producer.producer().abort_transaction(self.timeout) {
                Ok(()) => TxnError::Poisoned,
                Err(err) => classify(err),
            });
        }
        // Records of earlier, aborted transactions must not anchor this one.
        self.producer.take_delivered();
        let mut last = HashMap::new();
        let mut sent = Ok(());
        'send: for (partition, pstate) in state.partitions() {
            for (key, value) in pstate.transaction_writes() {
                if let Err(err) = self.producer.send_raw(&self.changelog_topic, partition, key, value) {
                    sent = Err(err);
                    break 'send;
                }
                last.insert(partition, checkpoint::digest(key, value));
            }
        }
        if let Err(err) = sent {
            state.abort();
            self.open = false;
            self.begun = false;
            let _ = self.producer.producer().abort_transaction(self.timeout);
            return Err(err.into());
        }
        state.start_commit();
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), next) in &self.next {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*next)).map_err(TxnError::Fatal)?;
        }
        let (producer, timeout, messages) = (self.producer.clone(), self.timeout, self.messages);
        let offered = Arc::new(Offered::default());
        let fresher = offered.clone();
        let handle = std::thread::Builder::new()
            .name("turnstile-commit".into())
            .spawn(move || finish_commit(&producer, &offsets, &group, &fresher, timeout, messages))
            .map_err(|e| TxnError::Committer(e.to_string()))?;
        self.in_flight = Some(InFlight {
            handle,
            group: offered,
            last,
            first: std::mem::take(&mut self.first),
            messages,
            since: Instant::now(),
        });
        self.drop_open();
        Ok(())
    }

    /// Offers the commit in flight (if any, and still running) the
    /// consumer's group metadata as of now, for its offsets (see [`Offered`]).
    pub fn offer_group(&self, group: impl FnOnce() -> Option<ConsumerGroupMetadata>) {
        if let Some(flight) = self.in_flight.as_ref().filter(|f| !f.handle.is_finished())
            && let Some(group) = group()
        {
            flight.group.offer(group);
        }
    }

    /// Collects the commit in flight if it has ended (or, with `block`,
    /// once it ends): promotes its state, and begins the open transaction
    /// with what it held. `None` if no commit was in flight or it is still
    /// running. On failure everything uncommitted is dropped and
    /// [`Transaction::take_rewind`] gives the offsets to rewind to.
    ///
    /// A commit still running after the timeout has failed, blocking or not:
    /// librdkafka was seen never returning from a transaction call
    /// (ARCHITECTURE.md, "Watchdogs"), and a commit that slow keeps the
    /// instance's partitions from everyone. The thread is given up and the
    /// runner rebuilt; the new producer's `init_transactions` waits until
    /// the coordinator has finished the transaction either way and fences
    /// whatever the old thread still does, and the rebuilt runner reads the
    /// committed offsets and state, so nothing is lost or done twice.
    pub fn settle(&mut self, state: &mut ServiceState, block: bool) -> Option<Result<(), TxnError>> {
        let running = self.in_flight.as_ref()?;
        let limit = self.timeout;
        while !running.handle.is_finished() {
            if running.since.elapsed() > limit {
                let flight = self.in_flight.take()?;
                let err = TxnError::Committer(format!("the commit did not finish within {limit:?}"));
                return Some(Err(self.lost(state, flight.first, err)));
            }
            if !block {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let flight = self.in_flight.take()?;
        let result =
            flight.handle.join().unwrap_or_else(|_| Err(TxnError::Committer("the commit thread panicked".into())));
        match result {
            Ok((delivered, landed_at)) => {
                // One producer writes a partition in order, so the highest
                // offset delivered is the last record sent to it.
                let mut anchors: HashMap<i32, Anchor> = flight
                    .last
                    .into_iter()
                    .filter_map(|(p, digest)| delivered.get(&p).map(|&offset| (p, Anchor { offset, digest })))
                    .collect();
                state.commit(&mut anchors);
                self.landed.push(Landed {
                    messages: flight.messages,
                    latency: landed_at.saturating_duration_since(flight.since),
                });
                tracing::trace!(messages = flight.messages, "transaction committed");
                let begun = self.begin_held();
                if begun.is_err() && !self.begun {
                    // The open transaction could not begin: drop its writes
                    // and keep its first offsets for the rewind.
                    state.abort();
                    self.drop_open();
                }
                Some(begun)
            }
            Err(err) => Some(Err(self.lost(state, flight.first, err))),
        }
    }

    /// The commit in flight failed: the open transaction was built on it
    /// and goes too, and the rewind starts at the older one's first offsets.
    fn lost(&mut self, state: &mut ServiceState, first: HashMap<InputPartition, i64>, err: TxnError) -> TxnError {
        state.abort();
        for (partition, offset) in first {
            let first = self.first.entry(partition).or_insert(offset);
            *first = (*first).min(offset);
        }
        self.drop_open();
        err
    }

    /// Begins the open transaction on the broker and sends what it held.
    fn begin_held(&mut self) -> Result<(), TxnError> {
        if !self.open || self.begun {
            return Ok(());
        }
        self.producer.producer().begin_transaction().map_err(classify)?;
        self.begun = true;
        for held in std::mem::take(&mut self.held) {
            let headers: Vec<(&str, &[u8])> = held.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let record = Record {
                topic: &held.topic,
                partition: held.partition,
                key: &held.key,
                payload: &held.payload,
                headers: &headers,
            };
            if let Err(err) = self.producer.send(record) {
                self.poisoned = true;
                return Err(err.into());
            }
        }
        Ok(())
    }

    /// Aborts the open transaction (after the commit in flight, if any,
    /// has ended) and forgets its state writes. Returns the offsets to
    /// rewind the consumer to.
    pub fn abort(&mut self, state: &mut ServiceState) -> Result<Vec<(InputPartition, i64)>, TxnError> {
        // A commit in flight either lands (then only the open transaction
        // is undone) or fails (then both are, and the rewind covers both).
        let settled = self.settle(state, true);
        state.abort();
        let rewind = self.first.drain().collect();
        let begun = self.begun;
        self.reset();
        if begun {
            self.producer.producer().abort_transaction(self.timeout).map_err(classify)?;
        }
        match settled {
            Some(Err(err @ TxnError::Fatal(_))) => Err(err),
            _ => Ok(rewind),
        }
    }

    /// Where to rewind after a failed commit: the first offsets of the
    /// transactions that were lost.
    pub fn take_rewind(&mut self) -> Vec<(InputPartition, i64)> {
        let rewind = self.first.drain().collect();
        self.reset();
        rewind
    }

    fn reset(&mut self) {
        self.drop_open();
        self.first.clear();
    }

    /// Forgets the open transaction but keeps its first offsets, which a
    /// rewind still needs.
    fn drop_open(&mut self) {
        self.open = false;
        self.begun = false;
        self.messages = 0;
        self.critical = false;
        self.poisoned = false;
        self.next.clear();
        self.held.clear();
    }
}

/// The part of a commit that waits: every record delivered, the offsets
/// added, the commit. Runs on the commit thread; aborts on an abortable
/// failure. Returns the last changelog offset delivered per partition, and
/// when the commit landed.
fn finish_commit(
    producer: &Publisher,
    offsets: &TopicPartitionList,
    group: &ConsumerGroupMetadata,
    fresher: &Offered<ConsumerGroupMetadata>,
    timeout: Duration,
    messages: usize,
) -> Result<Finished, TxnError> {
    let result = (|| {
        let started = Instant::now();
        // Every record of the transaction is delivered before its offsets go
        // in, so nothing of it is still in flight when the commit is asked
        // for. See `Publisher::wait_delivered`: without it every commit took
        // 100 ms.
        // The restore's end point counts on it: offsets never go in ahead
        // of a record of the same transaction.
        if !producer.wait_delivered(timeout) {
            return Err(TxnError::Undelivered { in_flight: producer.in_flight(), timeout });
        }
        let delivered = Instant::now();
        if offsets.count() > 0 {
            let offered = fresher.take();
            let group = newest(offered.as_ref(), group);
            // Bounded tighter than the commit: after the group coordinator
            // moved, librdkafka was seen retrying this call for minutes
            // (KIP-848 group, three-broker rolling restart). Nothing is
            // committed yet, so giving up is safe: the runner is rebuilt
            // and replays from the committed offsets.
            let attempt = timeout.min(OFFSETS_ATTEMPT_TIMEOUT);
            retrying_up_to(OFFSETS_ATTEMPTS, || {
                producer.producer().send_offsets_to_transaction(offsets, group, attempt)
            })?;
        }
        let offsets_sent = Instant::now();
        // A commit that timed out may still complete on the broker; only a
        // retry (never an abort and replay) keeps that from duplicating output.
        let result = retrying(|| producer.producer().commit_transaction(timeout));
        tracing::debug!(
            messages,
            delivery = ?(delivered - started),
            offsets = ?(offsets_sent - delivered),
            commit = ?offsets_sent.elapsed(),
            "transaction commit"
        );
        result
    })();
    match result {
        Ok(()) => Ok((producer.take_delivered(), Instant::now())),
        Err(err) => {
            if !matches!(err, TxnError::Fatal(_)) {
                // Abort errors here leave nothing more to do than report the first.
                let _ = producer.producer().abort_transaction(timeout);
            }
            Err(err)
        }
    }
}

/// The group metadata to send offsets with: the one offered since the
/// commit started, else the one it started with.
fn newest<'a, T>(offered: Option<&'a T>, started_with: &'a T) -> &'a T {
    offered.unwrap_or(started_with)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientSettings;
    use crate::config::KafkaConfig;

    /// A producer whose records can never be delivered (nothing listens).
    fn producer_cluster() -> KafkaConfig {
        KafkaConfig { bootstrap: "127.0.0.1:9".into(), ..KafkaConfig::default() }
    }

    fn stranded_producer() -> Publisher {
        let mut settings = ClientSettings::new(&producer_cluster());
        settings.set("message.timeout.ms", "60000");
        Publisher::from_properties(settings).expect("a producer")
    }

    #[test]
    fn offsets_go_with_the_newest_group_metadata_offered() {
        let offered = Offered::default();
        assert_eq!(*newest(offered.take().as_ref(), &1), 1, "none offered: the one the commit started with");
        offered.offer(2);
        offered.offer(3);
        let taken = offered.take();
        assert_eq!(*newest(taken.as_ref(), &1), 3, "the newest offer");
        assert!(offered.take().is_none(), "an offer is used once");
    }

    /// A transaction whose commit thread never ends (as librdkafka's calls
    /// were seen to), started on input partition `in[0]` at offset 5.
    fn hung_commit(timeout: Duration) -> Transaction {
        let mut txn = Transaction::new(stranded_producer(), "changelog".into(), timeout);
        let handle = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(3600));
            Ok((HashMap::new(), Instant::now()))
        });
        txn.in_flight = Some(InFlight {
            handle,
            group: Arc::default(),
            last: HashMap::new(),
            first: [(("in".to_owned(), 0), 5)].into(),
            messages: 1,
            since: Instant::now(),
        });
        txn
    }

    /// A transaction with a commit in flight that ends with `outcome` (the
    /// older transaction, first offsets `in[0]` 5 and `in[1]` 2, writing
    /// `seat = committing`), and a newer one open on top of it (first
    /// offsets `in[0]` 9 and `in[2]` 4, writing `seat = open`, one record
    /// held until it can begin).
    fn pipeline(outcome: Result<Finished, TxnError>) -> (Transaction, ServiceState) {
        use crate::plugin::StateAccess;
        let mut txn = Transaction::new(stranded_producer(), "changelog".into(), Duration::from_secs(5));
        let mut state = ServiceState::default();
        state.select(0);
        state.put(b"seat", b"committing");
        state.start_commit();
        txn.in_flight = Some(InFlight {
            handle: std::thread::spawn(move || outcome),
            group: Arc::default(),
            last: HashMap::new(),
            first: [(("in".to_owned(), 0), 5), (("in".to_owned(), 1), 2)].into(),
            messages: 2,
            since: Instant::now(),
        });
        txn.ensure_open().expect("opens without the broker while a commit is in flight");
        txn.record_input("in", 0, 9);
        txn.record_input("in", 2, 4);
        state.put(b"seat", b"open");
        let record = Record { topic: "out", partition: 0, key: b"k", payload: b"v", headers: &[] };
        txn.send(record).expect("held");
        (txn, state)
    }

    fn sorted(mut rewind: Vec<(InputPartition, i64)>) -> Vec<(InputPartition, i64)> {
        rewind.sort();
        rewind
    }

    fn seat(state: &mut ServiceState) -> Option<Vec<u8>> {
        crate::plugin::StateAccess::get(state, b"seat")
    }

    #[test]
    fn a_failed_commit_drops_the_transaction_built_on_it_and_rewinds_to_the_earliest_offsets_of_both() {
        let (mut txn, mut state) = pipeline(Err(TxnError::Aborted(KafkaError::Canceled)));
        let settled = txn.settle(&mut state, true);
        assert!(matches!(settled, Some(Err(TxnError::Aborted(_)))), "{settled:?}");
        assert_eq!(seat(&mut state), None, "the writes of both transactions are gone");
        assert!(!txn.is_open() && !txn.is_committing() && txn.held.is_empty(), "nothing of either is left");
        assert_eq!(
            sorted(txn.take_rewind()),
            [(("in".into(), 0), 5), (("in".into(), 1), 2), (("in".into(), 2), 4)],
            "every input of both is read again, from the older one's first offsets"
        );
        assert!(txn.take_landed().is_empty(), "nothing landed");
    }

    #[test]
    fn a_landed_commit_whose_successor_cannot_begin_keeps_its_state_and_rewinds_only_the_successor() {
        // The stranded producer is not transactional: the open transaction
        // cannot begin once the commit lands, as after a fencing.
        let (mut txn, mut state) = pipeline(Ok((HashMap::new(), Instant::now())));
        let settled = txn.settle(&mut state, true);
        assert!(matches!(settled, Some(Err(_))), "the successor could not begin: {settled:?}");
        assert_eq!(seat(&mut state), Some(b"committing".to_vec()), "the landed writes are committed state");
        assert_eq!(txn.take_landed().len(), 1, "the commit landed");
        assert!(!txn.is_open() && txn.held.is_empty(), "the successor is dropped");
        assert_eq!(
            sorted(txn.take_rewind()),
            [(("in".into(), 0), 9), (("in".into(), 2), 4)],
            "only the successor's inputs are read again"
        );
    }

    #[test]
    fn an_abort_while_a_failing_commit_is_in_flight_rewinds_both() {
        let (mut txn, mut state) = pipeline(Err(TxnError::Aborted(KafkaError::Canceled)));
        let rewind = txn.abort(&mut state).expect("nothing fatal");
        assert_eq!(seat(&mut state), None);
        assert_eq!(
            sorted(rewind),
            [(("in".into(), 0), 5), (("in".into(), 1), 2), (("in".into(), 2), 4)],
            "the failed commit's inputs are read again with the aborted one's"
        );
        assert!(!txn.is_open() && !txn.is_committing());
    }

    #[test]
    fn a_commit_that_does_not_land_in_time_fails_and_rewinds() {
        let mut txn = hung_commit(Duration::from_millis(300));
        let mut state = ServiceState::default();
        assert!(txn.settle(&mut state, false).is_none(), "still within its time");
        std::thread::sleep(Duration::from_millis(400));
        let settled = txn.settle(&mut state, false);
        assert!(matches!(settled, Some(Err(TxnError::Committer(_)))), "given up without blocking: {settled:?}");
        assert_eq!(txn.take_rewind(), vec![(("in".to_owned(), 0), 5)], "its input is read again");
        assert!(!txn.is_committing());
    }

    #[test]
    fn waiting_for_a_hung_commit_ends_at_the_timeout() {
        let mut txn = hung_commit(Duration::from_millis(300));
        let started = Instant::now();
        let settled = txn.settle(&mut ServiceState::default(), true);
        assert!(matches!(settled, Some(Err(TxnError::Committer(_)))), "{settled:?}");
        // It used to wait twice the timeout and 20 s more.
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
    }

    #[test]
    fn offsets_never_go_in_ahead_of_an_undelivered_record() {
        let producer = stranded_producer();
        producer.publish("t", 0, "k", b"v").expect("queued");
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset("input", 0, Offset::Offset(7)).expect("offset");
        let consumer: rdkafka::consumer::BaseConsumer =
            ClientSettings::new(&producer_cluster()).set("group.id", "g").create().expect("a consumer");
        let group = rdkafka::consumer::Consumer::group_metadata(&consumer).expect("group metadata");
        let result = finish_commit(&producer, &offsets, &group, &Offered::default(), Duration::from_millis(200), 1);
        assert!(
            matches!(result, Err(TxnError::Undelivered { in_flight: 1, .. })),
            "the commit must stop before send_offsets_to_transaction: {result:?}"
        );
        // Dropping a publisher flushes; nothing here can be delivered.
        producer.producer().purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    }
}
