//! Noticing a consumer that stopped fetching: committed input waits on a
//! partition this instance holds, yet its position does not move.
//!
//! Seen on a three-broker cluster during a rolling restart: after a broker
//! came back, librdkafka's consumer kept its assignment but fetched nothing
//! more from some partitions, silently, for minutes. The open-transaction
//! watchdog cannot see that (nothing is open), so this one compares each
//! ready partition's position with its last stable offset (what a
//! `read_committed` client's watermarks report) twice, a window apart: a
//! partition that is behind both times without having moved is stuck, and
//! the runner rebuilds its consumer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// Samples positions and committed ends once per window.
pub struct FetchWatch {
    window: Duration,
    last: Instant,
    /// Partitions behind at the last sample, with their positions then.
    behind: HashMap<(String, i32), i64>,
}

impl FetchWatch {
    pub fn new(window: Duration) -> Self {
        FetchWatch { window, last: Instant::now(), behind: HashMap::new() }
    }

    /// Once per window: the partitions (of those `ready` accepts) that were
    /// behind their committed end at the last sample and still are, at the
    /// same position. Asks the broker for the ends with a short timeout; a
    /// partition it cannot ask about is left for the next window.
    pub fn stuck<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        ready: impl Fn(i32) -> bool,
    ) -> Vec<(String, i32, i64, i64)> {
        if self.last.elapsed() < self.window {
            return Vec::new();
        }
        self.last = Instant::now();
        let Ok(positions) = consumer.position() else { return Vec::new() };
        let mut behind = HashMap::new();
        let mut stuck = Vec::new();
        for e in positions.elements() {
            let (topic, p) = (e.topic().to_owned(), e.partition());
            let Offset::Offset(position) = e.offset() else { continue };
            if !ready(p) {
                continue;
            }
            let Ok((_, end)) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(2)) else { continue };
            // One behind is normal: the commit marker after the last record.
            if end <= position + 1 {
                continue;
            }
            if self.behind.get(&(topic.clone(), p)) == Some(&position) {
                stuck.push((topic.clone(), p, position, end));
            }
            behind.insert((topic, p), position);
        }
        self.behind = behind;
        stuck
    }
}
