//! Consumer-group rebalances: commit before partitions go; pause partitions
//! that come until the poll loop has restored their state.
//!
//! librdkafka calls these hooks from inside `poll` on the runner's own
//! thread, so the runner never holds the shared lock across `poll`. The
//! restore itself runs in the poll loop (`runner::Runner::serve`), not here:
//! the consumer keeps polling meanwhile, and partitions that were not moved
//! keep flowing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use super::transaction::{Transaction, TxnError};
use crate::state::ServiceState;

/// What the rebalance hooks and the runner loop share.
pub struct Shared {
    pub txn: Transaction,
    pub state: Arc<Mutex<ServiceState>>,
    /// Set when a hook failed in a way the loop must stop for.
    pub fatal: Option<String>,
    /// Set when partitions were revoked: the loop replaces the plugin
    /// instance, so no guest global outlives the state it came from.
    pub plugin_stale: bool,
    /// Assigned partitions whose state is not restored yet; paused on every
    /// input topic until it is.
    pub restoring: BTreeSet<i32>,
}

/// The runner's consumer context.
pub struct RunnerContext {
    pub shared: Arc<Mutex<Shared>>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it:
/// the runner's invariants are re-established by aborting, never by panics.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for RunnerContext {}

impl ConsumerContext for RunnerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let revoked = match rebalance {
            Rebalance::Revoke(tpl) => Some(partitions_of(tpl)),
            Rebalance::Assign(_) => return,
            // rust-rdkafka unassigns everything after an error: treat it as a
            // lost assignment, so no state outlives the partitions it belongs to.
            Rebalance::Error(err) => {
                tracing::warn!(error = %err, "rebalance error; dropping the assignment and its state");
                None
            }
        };
        let mut shared = lock(&self.shared);
        let Shared { txn, state, fatal, plugin_stale, restoring } = &mut *shared;
        *plugin_stale = true;
        let mut state = lock(state);
        if txn.is_open() {
            // A poisoned transaction holds part of a message: never commit it.
            let lost = revoked.is_none() || consumer.assignment_lost() || txn.is_poisoned();
            let outcome = match (lost, consumer.group_metadata()) {
                (false, Some(group)) => txn.commit(&mut state, &group).map(|()| "committed"),
                _ => txn.abort(&mut state).map(|_| "aborted"),
            };
            match outcome {
                Ok(what) => tracing::info!(what, lost, "finished the open transaction before giving partitions up"),
                Err(TxnError::Fatal(err)) => {
                    tracing::error!(error = %err, "transactional producer failed at rebalance");
                    *fatal = Some(format!("transactional producer failed at rebalance: {err}"));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "open transaction lost at rebalance; the new owner replays it");
                    txn.take_rewind();
                }
            }
        }
        match revoked {
            Some(revoked) => {
                for p in &revoked {
                    state.remove(*p);
                    restoring.remove(p);
                }
                tracing::info!(partitions = ?revoked, "partitions revoked");
            }
            None => {
                state.clear();
                restoring.clear();
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else { return };
        // Always from the changelog: another member may have moved a
        // partition on since this instance last owned it.
        let assigned = partitions_of(tpl);
        if assigned.is_empty() {
            return;
        }
        if let Err(err) = consumer.pause(tpl) {
            // Unpaused, records could be handled against empty state.
            tracing::error!(error = %err, "cannot pause newly assigned partitions");
            lock(&self.shared).fatal = Some(format!("cannot pause newly assigned partitions: {err}"));
            return;
        }
        tracing::info!(partitions = ?assigned, "partitions assigned; paused until their state is restored");
        lock(&self.shared).restoring.extend(assigned);
    }
}
