//! Restoring newly assigned partitions from the changelog (stepped by the
//! poll loop, so heartbeats and commits go on meanwhile), and checkpointing
//! committed state locally so that the next restore reads only the tail.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::rebalance::{RunnerContext, lock};
use super::{RunnerError, Worker};
use crate::state::changelog::Restore;
use crate::state::checkpoint;

impl Worker {
    /// Starts, steps or finishes the restore of the partitions the assign
    /// hook paused. The set can change under a running restore (another
    /// rebalance): then it starts over for the partitions still waiting.
    pub(super) fn step_restore(
        &mut self,
        consumer: &BaseConsumer<RunnerContext>,
        inputs: &HashMap<String, String>,
    ) -> Result<(), RunnerError> {
        let wanted: Vec<i32> = lock(&self.shared).restoring.iter().copied().collect();
        if wanted.is_empty() {
            self.restore = None;
            return Ok(());
        }
        if self.restore.as_ref().is_none_or(|r| r.partitions() != wanted.as_slice()) {
            let timeout = Duration::from_millis(self.config.runner.restore_timeout_ms);
            self.restore = Some(
                Restore::start(
                    &self.config.kafka,
                    &self.changelog_topic,
                    &wanted,
                    timeout,
                    lock(&self.shared).checkpoints.as_ref(),
                )
                .map_err(|e| RunnerError::Rebalance(e.to_string()))?,
            );
            self.write_report("restoring");
        }
        let Some(restore) = self.restore.as_mut() else { return Ok(()) };
        let Some(states) =
            restore.step(Duration::from_millis(50)).map_err(|e| RunnerError::Rebalance(e.to_string()))?
        else {
            return Ok(());
        };
        let (records, elapsed) = (restore.records(), restore.elapsed());
        self.restore = None;
        self.metrics.restored(records);
        let mut shared = lock(&self.shared);
        let mut resume = rdkafka::TopicPartitionList::new();
        {
            let mut state = lock(&shared.state);
            for (p, s) in states {
                state.insert(p, s);
                for topic in inputs.keys() {
                    resume.add_partition(topic, p);
                }
            }
        }
        shared.restoring.clear();
        drop(shared);
        consumer.resume(&resume)?;
        tracing::info!(partitions = ?wanted, records, elapsed = ?elapsed, "state restored from changelog; partitions resumed");
        self.write_report("running");
        Ok(())
    }

    /// Checkpoints every partition whose committed state changed.
    pub(super) fn save_checkpoints(&mut self) {
        let shared = lock(&self.shared);
        if let Some(dir) = shared.checkpoints.as_ref() {
            checkpoint::save(dir, &self.changelog_topic, &mut lock(&shared.state), None);
            self.last_checkpoint = Instant::now();
        }
    }
}
