//! Consumer-group rebalances: commit before partitions go, restore state
//! before partitions come.
//!
//! librdkafka calls these hooks from inside `poll` on the runner's own
//! thread, so the runner never holds the shared lock across `poll`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use super::transaction::Transaction;
use crate::state::{ServiceState, changelog};

/// What the rebalance hooks and the runner loop share.
pub struct Shared {
    pub txn: Transaction,
    pub state: Arc<Mutex<ServiceState>>,
    /// Set when a hook failed in a way the loop must stop for.
    pub fatal: Option<String>,
}

/// The runner's consumer context.
pub struct RunnerContext {
    pub shared: Arc<Mutex<Shared>>,
    pub bootstrap: String,
    pub changelog_topic: String,
    pub restore_timeout: Duration,
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
            Rebalance::Revoke(tpl) => partitions_of(tpl),
            Rebalance::Assign(_) => return,
            Rebalance::Error(err) => {
                tracing::warn!(error = %err, "rebalance error");
                return;
            }
        };
        let mut shared = lock(&self.shared);
        let Shared { txn, state, .. } = &mut *shared;
        let mut state = lock(state);
        if txn.is_open() {
            let lost = consumer.assignment_lost();
            let outcome = match (lost, consumer.group_metadata()) {
                (false, Some(group)) => txn.commit(&mut state, &group).map(|()| "committed"),
                _ => txn.abort(&mut state).map(|_| "aborted"),
            };
            match outcome {
                Ok(what) => tracing::info!(what, lost, "finished the open transaction before giving partitions up"),
                Err(err) => {
                    tracing::warn!(error = %err, "open transaction lost at rebalance; the new owner replays it");
                    txn.take_rewind();
                }
            }
        }
        for p in &revoked {
            state.remove(*p);
        }
        tracing::info!(partitions = ?revoked, "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else { return };
        let assigned = partitions_of(tpl);
        let shared = lock(&self.shared);
        let missing: Vec<i32> = {
            let state = lock(&shared.state);
            assigned.iter().copied().filter(|p| !state.contains(*p)).collect()
        };
        drop(shared);
        if missing.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        match changelog::restore(&self.bootstrap, &self.changelog_topic, &missing, self.restore_timeout) {
            Ok(restored) => {
                let shared = lock(&self.shared);
                let mut state = lock(&shared.state);
                let keys: usize = restored.values().map(|s| s.committed().len()).sum();
                for (p, s) in restored {
                    state.insert(p, s);
                }
                tracing::info!(partitions = ?missing, keys, elapsed = ?started.elapsed(), "state restored from changelog");
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot restore state");
                lock(&self.shared).fatal = Some(err.to_string());
            }
        }
    }
}
