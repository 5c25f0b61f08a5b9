//! Consumer-group rebalances: commit before partitions go; pause partitions
//! that come until the poll loop has restored their state.
//!
//! Both group protocols (`runner.group_protocol`) assign by `range`, which
//! gives partition p of every input topic to one member; with Kafka 4's
//! protocol rebalances are incremental and a member reconciles its
//! assignment step by step. This module trusts neither: state partition p
//! is restored and handled only while the instance holds p of *every*
//! input topic ("complete"); a partition held without its co-partitions
//! stays paused and owns no state. Revoked partitions are checkpointed
//! first, so a restore on this machine reads only the changelog tail.
//!
//! librdkafka calls these hooks from inside `poll` on the runner's own
//! thread, so the runner never holds the shared lock across `poll`. The
//! restore itself runs in the poll loop (`runner::Runner::serve`), not here:
//! the consumer keeps polling meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};

use super::consumer_errors::ClientErrorLog;
use super::metrics::{InstanceState, Metrics};
use super::transaction::{Transaction, TxnError};
use crate::state::ServiceState;
use crate::state::checkpoint::{self, CheckpointDir};

/// What the rebalance hooks and the runner loop share.
pub struct Shared {
    pub txn: Transaction,
    pub state: Arc<Mutex<ServiceState>>,
    /// Set when a hook failed in a way the loop must stop for.
    pub fatal: Option<String>,
    /// Set when partitions were revoked: the loop replaces the plugin
    /// instance, so no guest global outlives the state it came from.
    pub plugin_stale: bool,
    /// Complete partitions whose state is not restored yet; paused on every
    /// input topic until it is.
    pub restoring: BTreeSet<i32>,
    /// The input topics of each partition number this instance holds now.
    pub held: BTreeMap<i32, BTreeSet<String>>,
    /// How many input topics the service has.
    pub input_count: usize,
    /// Local state checkpoints, unless turned off.
    pub checkpoints: Option<CheckpointDir>,
    pub changelog_topic: String,
    /// The runner failed and is being torn down: its hooks leave the
    /// (already aborted) transaction, the state and the checkpoints alone,
    /// as a rebuilt runner owns them now.
    pub retired: bool,
}

impl Shared {
    /// Whether the instance holds partition `p` of every input topic.
    pub fn complete(&self, p: i32) -> bool {
        self.held.get(&p).is_some_and(|topics| topics.len() == self.input_count)
    }

    /// Whether records of partition `p` may be handled now: complete and
    /// restored.
    pub fn ready(&self, p: i32) -> bool {
        self.complete(p) && !self.restoring.contains(&p)
    }
}

/// The runner's consumer context.
pub struct RunnerContext {
    pub shared: Arc<Mutex<Shared>>,
    pub metrics: Arc<Metrics>,
    /// librdkafka's error callback, rate-limited (see [`ClientErrorLog`]).
    pub errors: Mutex<ClientErrorLog>,
    /// Out of touch with the group coordinator this long, the instance
    /// rejoins (see [`cut_off`]).
    pub cut_off_after: std::time::Duration,
}

/// Whether the consumer has been out of touch with its group coordinator
/// (librdkafka's group state anything but `up`: querying, waiting for it
/// or for its connection) for longer than `bound`, as of a statistics
/// sample. By then the broker has given the member's partitions away; if
/// it kept them until the connection came back, its fetches (on other
/// connections, often back first) would hand it records of partitions it
/// lost, for as long as its first heartbeat or commit took to tell it.
pub fn cut_off(state: &str, state_age_ms: i64, bound: std::time::Duration) -> bool {
    state != "up" && u128::try_from(state_age_ms).is_ok_and(|age| age > bound.as_millis())
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it:
/// the runner's invariants are re-established by aborting, never by panics.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

fn pairs_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect()
}

impl ClientContext for RunnerContext {
    crate::oauth_token_refresh!();

    /// An undecodable batch is reported on every fetch, twice a second per
    /// partition; rust-rdkafka's default logged each one as an error.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Some(log) = lock(&self.errors).observe(format!("{error}: {reason}"), std::time::Instant::now()) {
            tracing::warn!(error = %log.text, repeated = log.repeated, "Kafka client error (each is logged at most once a minute)");
        }
    }

    /// librdkafka's statistics (`statistics.interval.ms`): whether the
    /// consumer is [`cut_off`] from its group, and, while metrics are
    /// served, the lag of every assigned input partition, from the
    /// position to the last stable offset. Not `consumer_lag`: offsets are
    /// committed through the producer's transaction, which the consumer's
    /// statistics do not see. (Transaction markers count, as in Kafka
    /// Streams' `records-lag`: an idle partition shows 1.)
    fn stats(&self, statistics: Statistics) {
        if let Some(group) = statistics.cgrp.as_ref()
            && cut_off(&group.state, group.stateage, self.cut_off_after)
        {
            let mut shared = lock(&self.shared);
            if shared.fatal.is_none() && !shared.retired {
                tracing::warn!(state = %group.state, ms = group.stateage, "out of touch with the group coordinator past the transaction timeout; rejoining with new clients before handling anything more");
                shared.fatal = Some(format!(
                    "out of touch with the group coordinator for {} ms (group state {}): its partitions are likely another member's",
                    group.stateage, group.state
                ));
            }
        }
        let lags = statistics.topics.into_iter().flat_map(|(topic, t)| {
            t.partitions.into_values().filter(|p| p.partition >= 0 && p.desired && p.ls_offset >= 0).filter_map(
                move |p| {
                    // Before its first record: where it started, the group's committed offset.
                    let position = [p.app_offset, p.committed_offset].into_iter().find(|&o| o >= 0)?;
                    Some((topic.clone(), p.partition, (p.ls_offset - position).max(0)))
                },
            )
        });
        self.metrics.set_lag(lags);
    }
}

impl ConsumerContext for RunnerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if lock(&self.shared).retired {
            return;
        }
        self.metrics.set_state(InstanceState::Rebalancing);
        let revoked = match rebalance {
            Rebalance::Revoke(tpl) => pairs_of(tpl),
            Rebalance::Assign(_) => return,
            Rebalance::Error(err) => {
                // rust-rdkafka then unassigns what it was given, which may not
                // be everything: rebuild the consumer rather than guess what
                // is still held.
                tracing::error!(error = %err, "rebalance error; rejoining with a new consumer");
                let mut shared = lock(&self.shared);
                shared.fatal = Some(format!("rebalance error: {err}"));
                shared.plugin_stale = true;
                return;
            }
        };
        let mut shared = lock(&self.shared);
        let Shared { txn, state, fatal, plugin_stale, restoring, held, checkpoints, changelog_topic, .. } =
            &mut *shared;
        *plugin_stale = true;
        let mut state = lock(state);
        if txn.is_open() || txn.is_committing() {
            // Both wait for a commit in flight first. A poisoned transaction
            // holds part of a message: never commit it.
            let lost = consumer.assignment_lost() || txn.is_poisoned();
            txn.offer_group(|| consumer.group_metadata());
            let outcome = match (lost, consumer.group_metadata()) {
                (false, Some(group)) => txn.commit(&mut state, group).map(|()| "committed"),
                _ => txn.abort(&mut state).map(|_| "aborted"),
            };
            match outcome {
                Ok(what) => tracing::info!(what, lost, "finished the open transaction before giving partitions up"),
                Err(TxnError::Fatal(err)) => {
                    tracing::error!(error = %err, "transactional producer failed at rebalance");
                    *fatal = Some(format!("transactional producer failed at rebalance: {err}"));
                }
                Err(err) => {
                    // Revoked partitions are replayed by their new owner; the
                    // ones kept would have to be rewound, which a rebuild
                    // from the committed offsets does for certain.
                    tracing::warn!(error = %err, "open transaction lost at rebalance; rejoining from the committed offsets");
                    txn.take_rewind();
                    *fatal = Some(format!("transaction lost at rebalance: {err}"));
                }
            }
        }
        // The committed layer is consistent whatever happened to the open
        // transaction; a later owner on this machine starts from it.
        if let Some(dir) = checkpoints.as_ref() {
            let going: BTreeSet<i32> = revoked.iter().map(|(_, p)| *p).collect();
            checkpoint::save(dir, changelog_topic, &mut state, Some(&going));
        }
        let mut orphans = TopicPartitionList::new();
        for (topic, p) in &revoked {
            if let Some(topics) = held.get_mut(p) {
                topics.remove(topic);
                if topics.is_empty() {
                    held.remove(p);
                }
            }
            // The state of p goes with the first of its topics to go.
            state.remove(*p);
            restoring.remove(p);
        }
        for p in revoked.iter().map(|(_, p)| *p).collect::<BTreeSet<_>>() {
            for topic in held.get(&p).into_iter().flatten() {
                orphans.add_partition(topic, p);
            }
        }
        tracing::info!(partitions = ?revoked, "partitions revoked");
        if orphans.count() > 0 {
            tracing::warn!(partitions = ?pairs_of(&orphans), "kept partitions whose co-partitions were revoked; paused until they return");
            if let Err(err) = consumer.pause(&orphans) {
                tracing::error!(error = %err, "cannot pause partitions left without their co-partitions");
                *fatal = Some(format!("cannot pause partitions left without their co-partitions: {err}"));
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else { return };
        if tpl.count() == 0 || lock(&self.shared).retired {
            return;
        }
        if let Err(err) = consumer.pause(tpl) {
            // Unpaused, records could be handled against empty state.
            tracing::error!(error = %err, "cannot pause newly assigned partitions");
            lock(&self.shared).fatal = Some(format!("cannot pause newly assigned partitions: {err}"));
            return;
        }
        let mut shared = lock(&self.shared);
        for (topic, p) in pairs_of(tpl) {
            shared.held.entry(p).or_default().insert(topic);
        }
        // Always from the changelog: another member may have moved a
        // partition on since this instance last owned it.
        let (complete, waiting): (BTreeSet<i32>, BTreeSet<i32>) =
            partitions_of(tpl).into_iter().partition(|p| shared.complete(*p));
        if !waiting.is_empty() {
            tracing::info!(partitions = ?waiting, "partitions assigned without all their co-partitions; paused until those arrive");
        }
        if !complete.is_empty() {
            tracing::info!(partitions = ?complete, "partitions assigned; paused until their state is restored");
            shared.restoring.extend(complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn out_of_touch_with_the_coordinator_past_the_bound_is_cut_off() {
        let bound = Duration::from_secs(15);
        assert!(!cut_off("up", 600_000, bound), "in touch, however long");
        assert!(!cut_off("query-coord", 9_000, bound), "a coordinator moving takes seconds");
        assert!(cut_off("query-coord", 16_000, bound));
        assert!(cut_off("wait-broker-transport", 16_000, bound));
    }
}
