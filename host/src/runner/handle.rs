//! What happens to the records the runner polled: each goes to the plugin,
//! to its own partition, or to the DLQ, and its outcome joins the open
//! transaction in offset order.
//!
//! Consecutive records of one partition are handed to the plugin together
//! (`runner.plugin_batch`, WIT `handle`), but every record keeps its own
//! outcome: the plugin returns each one's outputs and state writes apart,
//! and the runner keeps a record's writes only when it keeps the record.

use std::time::Duration;

use std::sync::Mutex;

use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;

use super::dlq::{self, DeadLetter, Failure, FailureKind};
use super::input::{self, InputRecord, Placement};
use super::rebalance::{RunnerContext, Shared, lock};
use super::turn::Turn;
use super::{RunnerError, Worker};
use crate::plugin::{HandleError, Handled, Header, Message, StateAccess};
use crate::publisher::Record;
use crate::routing::Destination;

/// Why a record was not placed on a partition.
enum Unplaced {
    /// The record's fault: dead-lettered with this failure.
    DeadLetter(Failure),
    /// The plugin cannot be instantiated to read the record's routing: not
    /// the record's fault, so never a dead letter; the runner stops instead.
    PluginUnavailable(String),
}

impl From<Failure> for Unplaced {
    fn from(failure: Failure) -> Self {
        Unplaced::DeadLetter(failure)
    }
}

/// What becomes of one input message.
pub(super) enum Outcome {
    /// Handled: these outputs, all routed and within size.
    Produce(Vec<(Destination, Vec<u8>, bool)>),
    /// On the wrong partition: forwarded unchanged to its own.
    Forward { partition: i32, key: String },
    /// Not handled: to the DLQ with the reason.
    DeadLetter(Failure),
}

/// One polled record and the action of its topic.
pub(super) type Polled<'c> = (&'c str, BorrowedMessage<'c>);

impl Worker {
    /// Handles consecutive records of one partition inside the open
    /// transaction: forwards those on the wrong partition, dead-letters those
    /// that cannot be handled, and produces all of each other one's outputs
    /// or none.
    pub(super) fn process_run(
        &mut self,
        consumer: &BaseConsumer<RunnerContext>,
        run: &[Polled<'_>],
    ) -> Result<(), RunnerError> {
        let Some((_, first)) = run.first() else { return Ok(()) };
        let partition = first.partition();
        if !lock(&self.shared).ready(partition) || self.turn.is_held_back(partition) {
            return put_back(&self.shared, &mut self.turn, consumer, run);
        }
        let inputs: Vec<InputRecord<'_>> = run.iter().map(|(_, m)| InputRecord::read(m)).collect();
        let headers: Vec<Vec<Header<'_>>> = inputs
            .iter()
            .map(|input| input.headers.iter().map(|(k, v)| Header { key: k, value: v }).collect())
            .collect();
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(run.len());
        // The records that go to the plugin, and where their outcome goes.
        let mut here: Vec<(usize, Message<'_>)> = Vec::new();
        for (k, ((action, _), input)) in run.iter().zip(&inputs).enumerate() {
            // Placing a record may call the plugin's `route`.
            if !self.turn.may_call() {
                break;
            }
            if input.reserved_headers_dropped > 0 {
                tracing::debug!(
                    topic = input.topic,
                    offset = input.offset,
                    dropped = input.reserved_headers_dropped,
                    "dropped input headers named turnstile.*"
                );
            }
            let Some(payload) = input.payload else {
                let failure = Failure::new(FailureKind::Invalid, "a tombstone (null value) is not a message");
                outcomes.push(Some(Outcome::DeadLetter(failure)));
                continue;
            };
            let message = Message {
                topic: input.topic,
                partition: input.partition,
                offset: input.offset,
                key: input.key_str(),
                payload,
                headers: &headers[k],
                timestamp: input.timestamp,
                event_id: self.identity.event_id,
                action,
            };
            let max = self.config.runner.max_record_bytes;
            let outcome = match self.placement(action, input, &message) {
                Ok(Placement::Here) => {
                    here.push((k, message));
                    None
                }
                Ok(Placement::Forward { key, .. })
                    if dlq::record_size(
                        key.len(),
                        payload.len(),
                        input.headers.iter().map(|(k, v)| (k.len(), v.len())),
                    ) > max =>
                {
                    let reason = format!(
                        "the record belongs on another partition, but forwarded with its {}-byte key it would \
                         exceed runner.max_record_bytes ({max})",
                        key.len()
                    );
                    Some(Outcome::DeadLetter(Failure::new(FailureKind::Limit, reason)))
                }
                Ok(Placement::Forward { partition, key }) => Some(Outcome::Forward { partition, key }),
                // Not the record's fault: stop rather than dead-letter good input.
                Err(Unplaced::PluginUnavailable(reason)) => return Err(RunnerError::PluginUnavailable(reason)),
                Err(Unplaced::DeadLetter(failure)) => Some(Outcome::DeadLetter(failure)),
            };
            outcomes.push(outcome);
        }
        let (slots, messages): (Vec<usize>, Vec<Message<'_>>) = here.into_iter().unzip();
        let handled = self.handle(partition, &messages)?;
        if handled.len() < messages.len() && self.turn.may_call() {
            // Never dead-letter a record the plugin did not see.
            return Err(RunnerError::PluginUnavailable("the plugin returned no outcome for a record".into()));
        }
        outcomes.resize_with(run.len(), || None);
        for (slot, outcome) in slots.into_iter().zip(handled) {
            outcomes[slot] = Some(outcome);
        }
        // The turn's budget ran out at the first record without an outcome:
        // it and everything after it in the run go back to the consumer.
        let reached = outcomes.iter().take_while(|o| o.is_some()).count();
        for (input, outcome) in inputs.iter().zip(outcomes).take(reached) {
            if let Some(outcome) = outcome {
                self.finish(input, outcome)?;
            }
        }
        if reached < run.len() {
            tracing::debug!(
                partition,
                put_back = run.len() - reached,
                "turn budget spent; the rest waits for the next turn"
            );
            put_back(&self.shared, &mut self.turn, consumer, &run[reached..])?;
        }
        Ok(())
    }

    /// Where a record belongs (DOMAIN.md §3): by its key when the key has
    /// the topic's format, else by the routing the plugin reads from its
    /// value. Topics outside the topology are not partitioned by the host.
    fn placement(
        &mut self,
        action: &str,
        input: &InputRecord<'_>,
        message: &Message<'_>,
    ) -> Result<Placement, Unplaced> {
        let Some(kind) = self.topology.routing_kind(action) else { return Ok(Placement::Here) };
        let event_id = self.identity.event_id;
        let partitions = self.router.partitions();
        let by_key = input::place_by_key(event_id, kind, input.key_str(), partitions);
        // Records from clients are also checked against their value: a key
        // that names another booking than the value would put the booking's
        // state on a partition its seat results never reach. The host's own
        // topics are written with both from one routing.
        if let Some(home) = &by_key
            && !self.client_topics.contains(input.topic)
        {
            return Ok(input::placement(input.partition, home.clone()));
        }
        lock(&self.state.0).select(input.partition);
        let routed = self.instance.route(message);
        self.turn.called();
        let by_value = match routed {
            Ok(Some(routing)) => Some(
                input::place_by_routing(event_id, kind, &routing, partitions)
                    .map_err(|reason| Failure::new(FailureKind::Unroutable, reason))?,
            ),
            Ok(None) => None,
            Err(err) => {
                return Err(Failure::try_from(&err).map_or_else(Unplaced::PluginUnavailable, Unplaced::DeadLetter));
            }
        };
        match (by_key, by_value) {
            (Some(key), Some(value)) if key.0 != value.0 => Err(Failure::new(
                FailureKind::Unroutable,
                format!(
                    "the key routes the record to partition {} but its value's business key to partition {}",
                    key.0, value.0
                ),
            )
            .into()),
            // A value the plugin cannot read: the key decides, and the
            // plugin dead-letters the value when it handles it.
            (Some(home), _) | (None, Some(home)) => Ok(input::placement(input.partition, home)),
            (None, None) => Err(Failure::new(
                FailureKind::Unroutable,
                "the record has no key of the topic's format and the plugin found no routing in its value",
            )
            .into()),
        }
    }

    /// Hands the records of one partition that belong here to the plugin,
    /// as few calls as their outcomes allow, and returns one outcome per
    /// record. A record's state writes are applied when its outcome is
    /// `Produce`, in order; `transient` failures are retried with doubling,
    /// capped backoff before anything after them is handled.
    fn handle(&mut self, partition: i32, messages: &[Message<'_>]) -> Result<Vec<Outcome>, RunnerError> {
        lock(&self.state.0).select(partition);
        let batch = self.config.runner.plugin_batch.max(1);
        let cap = Duration::from_millis(self.config.runner.max_retry_backoff_ms);
        let first_backoff = Duration::from_millis(self.config.runner.retry_backoff_ms).min(cap);
        let mut backoff = first_backoff;
        let mut retries = 0;
        let mut outcomes = Vec::with_capacity(messages.len());
        while outcomes.len() < messages.len() && self.turn.may_call() {
            let next = outcomes.len();
            let end = messages.len().min(next + batch);
            let called = std::time::Instant::now();
            let results = self.instance.handle_batch(&messages[next..end]);
            self.turn.called();
            self.metrics.plugin_call(called.elapsed());
            let results = match results {
                Ok(results) if !results.is_empty() => results,
                Ok(_) => return Err(RunnerError::PluginUnavailable("the plugin returned no outcome".into())),
                Err(err) => return Err(RunnerError::PluginUnavailable(err.reason())),
            };
            for result in results {
                let outcome = match result {
                    Ok(handled) => match self.keep(handled) {
                        Ok(outcome) => outcome,
                        Err(failure) => {
                            // The plugin handled what follows as if this
                            // record's writes were applied: hand it again.
                            outcomes.push(Outcome::DeadLetter(failure));
                            (retries, backoff) = (0, first_backoff);
                            break;
                        }
                    },
                    Err(HandleError::Transient(reason)) if retries < self.config.runner.max_retries => {
                        retries += 1;
                        self.metrics.retried.inc();
                        tracing::debug!(retries, %reason, "transient plugin failure; retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(cap);
                        break;
                    }
                    Err(HandleError::Transient(reason)) => Outcome::DeadLetter(Failure::new(
                        FailureKind::Transient,
                        format!("{reason} (gave up after {retries} retries)"),
                    )),
                    // Not the message's fault: stop rather than dead-letter good input.
                    Err(err) => Outcome::DeadLetter(Failure::try_from(&err).map_err(RunnerError::PluginUnavailable)?),
                };
                outcomes.push(outcome);
                (retries, backoff) = (0, first_backoff);
            }
        }
        Ok(outcomes)
    }

    /// Keeps a handled record: routes every output and checks its size
    /// before any is produced, then applies the record's state writes.
    /// A failure keeps nothing of it.
    fn keep(&mut self, handled: Handled) -> Result<Outcome, Failure> {
        let max = self.config.runner.max_record_bytes;
        let mut routed = Vec::with_capacity(handled.outputs.len());
        for output in handled.outputs {
            let destination = self
                .router
                .route(&output)
                .map_err(|e| Failure::new(FailureKind::Invalid, format!("plugin output cannot be routed: {e}")))?;
            let size = dlq::record_size(destination.key.len(), output.payload.len(), []);
            if size > max {
                let reason = format!(
                    "output `{}` would be a record of {size} bytes, over runner.max_record_bytes ({max})",
                    output.action
                );
                return Err(Failure::new(FailureKind::Limit, reason));
            }
            routed.push((destination, output.payload, output.critical));
        }
        lock(&self.state.0).apply(handled.writes);
        Ok(Outcome::Produce(routed))
    }

    /// Puts a message's outcome into the open transaction and records its
    /// offset. A failed send poisons the transaction: it can then only abort.
    fn finish(&mut self, input: &InputRecord<'_>, outcome: Outcome) -> Result<(), RunnerError> {
        let mut shared = lock(&self.shared);
        let txn = &mut shared.txn;
        txn.ensure_open()?;
        // Before anything is sent: an abort must rewind to this message even
        // if it is the first of its partition in the transaction.
        txn.record_first(input.topic, input.partition, input.offset);
        let sent = match outcome {
            Outcome::Produce(outputs) => {
                let mut result = Ok(());
                for (Destination { topic, partition, key }, payload, critical) in &outputs {
                    result =
                        txn.send(Record { topic, partition: *partition, key: key.as_bytes(), payload, headers: &[] });
                    if result.is_err() {
                        break;
                    }
                    if *critical {
                        txn.mark_critical();
                    }
                }
                self.metrics.processed.inc();
                self.metrics.produced.inc_by(outputs.len() as u64);
                result
            }
            Outcome::Forward { partition, key } => {
                tracing::debug!(
                    topic = input.topic,
                    from = input.partition,
                    to = partition,
                    offset = input.offset,
                    "forwarding a record to its own partition"
                );
                let headers: Vec<(&str, &[u8])> =
                    input.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                self.metrics.forwarded.inc();
                txn.send(Record {
                    topic: input.topic,
                    partition,
                    key: key.as_bytes(),
                    payload: input.payload.unwrap_or_default(),
                    headers: &headers,
                })
            }
            Outcome::DeadLetter(failure) => {
                tracing::warn!(topic = input.topic, partition = input.partition, offset = input.offset, kind = failure.kind.as_str(), reason = %crate::plugin::loggable(&failure.reason), "message dead-lettered");
                let letter = DeadLetter {
                    failure: &failure,
                    plugin_service: &self.identity.service,
                    plugin_version: &self.plugin_version,
                    topic: input.topic,
                    partition: input.partition,
                    offset: input.offset,
                }
                .letter(
                    input.key.unwrap_or_default(),
                    input.payload.unwrap_or_default(),
                    &input.headers,
                    self.config.runner.max_record_bytes,
                );
                if letter.stub {
                    tracing::warn!(
                        topic = input.topic,
                        offset = input.offset,
                        "the dead letter was too large; sent a stub with the reason and source"
                    );
                }
                let header_refs: Vec<(&str, &[u8])> =
                    letter.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                let dlq_partitions = self.partitions.get(&self.dlq_topic).copied().unwrap_or(1);
                self.metrics.failed.inc();
                self.metrics.dead_lettered.inc();
                txn.send(Record {
                    topic: &self.dlq_topic,
                    partition: input.partition.min(dlq_partitions - 1),
                    key: &letter.key,
                    payload: &letter.payload,
                    headers: &header_refs,
                })
            }
        };
        if let Err(err) = sent {
            txn.poison();
            return Err(err.into());
        }
        txn.record_input(input.topic, input.partition, input.offset);
        Ok(())
    }
}

/// Records of a partition that may not be handled now. One this instance
/// still holds (its state is restoring, it waits for co-partitions, or the
/// turn's budget is spent) is put back: the consumer rewinds to the first
/// of them in this turn (see [`Turn`]), whose fetch resumes when the
/// partition does. One it no longer holds (revoked while later records
/// were being polled) is left to its new owner.
fn put_back(
    shared: &Mutex<Shared>,
    turn: &mut Turn,
    consumer: &BaseConsumer<RunnerContext>,
    run: &[Polled<'_>],
) -> Result<(), RunnerError> {
    let records = run.iter().map(|(_, m)| (m.topic(), m.partition(), m.offset()));
    for (topic, partition, offset) in turn.rewind_points(records) {
        let held = lock(shared).held.get(&partition).is_some_and(|topics| topics.contains(topic));
        if !held {
            tracing::debug!(topic, partition, offset, "dropping polled records of a revoked partition");
            continue;
        }
        let offset = rdkafka::Offset::Offset(offset);
        consumer.seek(topic, partition, offset, Duration::from_secs(10)).map_err(|source| RunnerError::Rewind {
            topic: topic.to_owned(),
            partition,
            source,
        })?;
    }
    Ok(())
}
