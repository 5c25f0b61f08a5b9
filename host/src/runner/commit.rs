//! The worker's side of committing: start a commit and go on (the
//! pipelined path), wait for one, book its outcome, and on an abort rewind
//! the consumer to the first offsets of what was lost.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::rebalance::{RunnerContext, Shared, lock};
use super::transaction::TxnError;
use super::{RunnerError, Worker};
use crate::state::checkpoint;

impl Worker {
    /// Aborts the open transaction on the way out of a failure, so that
    /// nothing half-done can be committed by the revoke that dropping the
    /// consumer runs.
    pub(super) fn abort_open(&mut self) {
        let mut shared = lock(&self.shared);
        let Shared { txn, state, .. } = &mut *shared;
        if txn.is_open() || txn.is_committing() {
            let mut state = lock(state);
            match txn.abort(&mut state) {
                Ok(_) => tracing::info!("aborted the open transaction"),
                Err(err) => {
                    tracing::warn!(error = %err, "aborting the open transaction failed; the broker aborts it at its timeout")
                }
            }
        }
    }

    /// Commits the open transaction and waits until it (and any commit in
    /// flight before it) has landed; see [`Worker::committed`] for failures.
    pub(super) fn commit(&mut self, consumer: &BaseConsumer<RunnerContext>) -> Result<(), RunnerError> {
        let Some(group) = consumer.group_metadata() else {
            return Ok(());
        };
        let result = {
            let mut shared = lock(&self.shared);
            let Shared { txn, state, .. } = &mut *shared;
            // For a commit still in flight, which this one waits for.
            txn.offer_group(|| consumer.group_metadata());
            txn.commit(&mut lock(state), group)
        };
        self.committed(consumer, result)
    }

    /// Starts committing the open transaction and returns while it
    /// commits, so the loop goes on handling the next messages; waits first
    /// for a commit still in flight.
    pub(super) fn start_commit(&mut self, consumer: &BaseConsumer<RunnerContext>) -> Result<(), RunnerError> {
        let Some(group) = consumer.group_metadata() else {
            return Ok(());
        };
        let result = {
            let mut shared = lock(&self.shared);
            let Shared { txn, state, .. } = &mut *shared;
            txn.offer_group(|| consumer.group_metadata());
            txn.start_commit(&mut lock(state), group)
        };
        self.committed(consumer, result)
    }

    /// Collects the commit in flight if it has ended (`block`: once it ends).
    pub(super) fn settle(&mut self, consumer: &BaseConsumer<RunnerContext>, block: bool) -> Result<(), RunnerError> {
        let result = {
            let mut shared = lock(&self.shared);
            let Shared { txn, state, .. } = &mut *shared;
            txn.offer_group(|| consumer.group_metadata());
            txn.settle(&mut lock(state), block)
        };
        match result {
            Some(result) => self.committed(consumer, result),
            None => Ok(()),
        }
    }

    /// Books the outcome of a commit. A landed one counts and may be
    /// checkpointed; on an abortable failure the consumer rewinds to the
    /// first offsets of what was lost and the loop goes on.
    pub(super) fn committed(
        &mut self,
        consumer: &BaseConsumer<RunnerContext>,
        result: Result<(), TxnError>,
    ) -> Result<(), RunnerError> {
        match result {
            Ok(()) => {
                let landed = lock(&self.shared).txn.take_landed();
                for commit in &landed {
                    self.metrics.committed(commit.messages, commit.latency);
                    self.last_commit = Instant::now();
                }
                let interval = Duration::from_millis(self.config.runner.checkpoint_interval_ms);
                if !landed.is_empty() && self.last_checkpoint.elapsed() >= interval {
                    let shared = lock(&self.shared);
                    if let Some(dir) = shared.checkpoints.as_ref() {
                        checkpoint::save(dir, &self.changelog_topic, &mut lock(&shared.state), None);
                        self.last_checkpoint = Instant::now();
                    }
                }
                Ok(())
            }
            Err(err @ (TxnError::Aborted(_) | TxnError::Poisoned)) => {
                self.metrics.transactions_aborted.inc();
                let rewind = lock(&self.shared).txn.take_rewind();
                tracing::warn!(error = %err, partitions = rewind.len(), "transaction aborted; rewinding to its first offsets");
                self.reset_plugin();
                for ((topic, partition), offset) in rewind {
                    if let Err(err) =
                        consumer.seek(&topic, partition, rdkafka::Offset::Offset(offset), Duration::from_secs(10))
                    {
                        let owned = consumer
                            .assignment()
                            .map(|a| a.find_partition(&topic, partition).is_some())
                            .unwrap_or(true);
                        if owned {
                            // Going on would skip the aborted messages; a
                            // restart resumes from the committed offsets.
                            return Err(RunnerError::Rewind { topic, partition, source: err });
                        }
                        tracing::info!(%topic, partition, "not rewinding a partition that was revoked meanwhile");
                    }
                }
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }
}
