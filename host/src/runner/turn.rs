//! One turn of the poll loop: its time budget, and the records it puts back.
//!
//! A turn handles up to `runner.plugin_batch` polled records. Each may cost
//! the plugin's whole deadline (and its retries), so a run of slow records
//! could keep the loop from polling past `max.poll.interval.ms` and the
//! transaction past its timeout: the member would leave the group, its
//! dead letters be aborted, and the same records come back forever. So a
//! turn starts no new plugin call once the worst case of one more message
//! would not fit in its budget; what it did not reach is put back (the
//! consumer rewinds to it) and handled in the next turns, after a poll and
//! a commit.
//!
//! Records of one partition can come in several runs of one poll (runs are
//! split by partition, interleaved with others). Once a partition is put
//! back in a turn, none of its later records in that turn is handled, and
//! each `(topic, partition)` is rewound once, to its earliest record that
//! was not handled.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::config::Config;

/// The budget and the rewinds of the current turn.
#[derive(Debug)]
pub(super) struct Turn {
    started: Instant,
    /// Whether a plugin call or routing already ran in this turn: the first
    /// one always may, so every turn makes progress.
    progressed: bool,
    /// When no new call may start: the turn's bound less one message's worst case.
    budget: Duration,
    /// `(topic, partition)` rewound in this turn.
    rewound: HashSet<(String, i32)>,
    /// Partitions with anything put back in this turn.
    held_back: HashSet<i32>,
}

impl Turn {
    /// A turn's bound is half the smaller of the transaction timeout and the
    /// poll interval (what the configuration check holds one message to);
    /// a new call starts only while one more worst-case message still fits.
    pub(super) fn new(config: &Config) -> Self {
        let r = &config.runner;
        let bound = Duration::from_millis(r.transaction_timeout_ms.min(r.max_poll_interval_ms) / 2);
        let worst = Duration::from_millis(config.worst_case_message_ms());
        Turn {
            started: Instant::now(),
            progressed: false,
            budget: bound.saturating_sub(worst),
            rewound: HashSet::new(),
            held_back: HashSet::new(),
        }
    }

    /// Starts the next turn.
    pub(super) fn restart(&mut self) {
        self.started = Instant::now();
        self.progressed = false;
        self.rewound.clear();
        self.held_back.clear();
    }

    /// May another plugin call (handle or route) start in this turn?
    pub(super) fn may_call(&self) -> bool {
        !self.progressed || self.started.elapsed() < self.budget
    }

    /// A plugin call finished.
    pub(super) fn called(&mut self) {
        self.progressed = true;
    }

    /// Was `partition` put back earlier in this turn? Then none of its
    /// later records may be handled in it.
    pub(super) fn is_held_back(&self, partition: i32) -> bool {
        self.held_back.contains(&partition)
    }

    /// Which of `records` (`(topic, partition, offset)` in polled order) to
    /// seek to: the first of each `(topic, partition)` not rewound yet in
    /// this turn. Marks them rewound and their partitions held back.
    pub(super) fn rewind_points<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a str, i32, i64)>,
    ) -> Vec<(&'a str, i32, i64)> {
        let mut points = Vec::new();
        for (topic, partition, offset) in records {
            self.held_back.insert(partition);
            if self.rewound.insert((topic.to_owned(), partition)) {
                points.push((topic, partition, offset));
            }
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_rewound_once_to_its_earliest_record_of_the_turn() {
        let mut turn = Turn::new(&Config::default());
        // Two runs of partition 0 in one poll (another partition's between):
        // the second run must not move the position past the first's records.
        let first = turn.rewind_points([("commands", 0, 10), ("commands", 0, 11), ("results", 0, 4)]);
        assert_eq!(first, vec![("commands", 0, 10), ("results", 0, 4)]);
        assert!(turn.is_held_back(0));
        assert!(!turn.is_held_back(1));
        let second = turn.rewind_points([("commands", 0, 12), ("results", 0, 5), ("other", 0, 1)]);
        assert_eq!(second, vec![("other", 0, 1)], "only a topic not rewound yet in this turn");
        turn.restart();
        assert!(!turn.is_held_back(0));
        assert_eq!(turn.rewind_points([("commands", 0, 12)]), vec![("commands", 0, 12)]);
    }

    #[test]
    fn a_turn_always_makes_progress_then_stops_starting_calls() {
        let mut config = Config::default();
        // Bound 7 500 ms, worst case of one message 5 350 ms: 2 150 ms of budget.
        assert_eq!(Turn::new(&config).budget, Duration::from_millis(2_150));
        // A budget already spent: the first call still may start, no second.
        config.plugin.deadline_ms = 1_500;
        let mut turn = Turn::new(&config);
        assert_eq!(turn.budget, Duration::ZERO);
        assert!(turn.may_call());
        turn.called();
        assert!(!turn.may_call());
        turn.restart();
        assert!(turn.may_call());
    }
}
