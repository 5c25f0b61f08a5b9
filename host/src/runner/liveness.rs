//! Noticing a consumer that stopped fetching: input waits on a partition
//! this instance holds, yet its fetches bring nothing back.
//!
//! Seen on a three-broker cluster during a rolling restart: after a broker
//! came back, librdkafka's consumer kept its assignment but fetched nothing
//! more from some partitions, silently, for minutes. The open-transaction
//! watchdog cannot see that (nothing is open), so this one compares what
//! the consumer's own fetches last reported as the log end of each ready
//! partition (librdkafka keeps it from every fetch response, empty ones
//! included) with the log end a separate client reads, twice, a window
//! apart: a partition whose fetches lag the real end both times without
//! having reported anything new is stuck, and the runner rebuilds its
//! consumer.
//!
//! The real ends are read on a thread and connection of their own. Asked
//! on the runner's own consumer, each query waited behind that consumer's
//! long-poll fetch on the same broker connection (`fetch.wait.max.ms`):
//! about 450 ms a partition on an idle service, so the loop stopped for
//! seconds once per window and the first record after an idle spell waited
//! that long (issue 21, defect 13). Comparing with the fetches' own view
//! rather than the consumer's position also keeps a partition whose log
//! ends in an aborted transaction or commit markers, which a position
//! never passes, from looking stuck.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::client::{QuietEof, log_end_reader};
use crate::config::KafkaConfig;

/// A topic partition.
type Partition = (String, i32);

/// A partition whose fetches stopped: they last reported the log ending at
/// `seen`; it ends at `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    pub topic: String,
    pub partition: i32,
    pub seen: i64,
    pub end: i64,
}

/// Reads the real log ends of partitions, off the runner's thread.
pub trait EndReader: Send + 'static {
    /// The high watermark of each partition it could read.
    fn ends(&mut self, partitions: &[Partition]) -> HashMap<Partition, i64>;
}

/// Reads ends with a client of its own (so never behind the runner's
/// fetches), created on first use.
struct KafkaEnds {
    kafka: KafkaConfig,
    client: Option<BaseConsumer<QuietEof>>,
}

impl EndReader for KafkaEnds {
    fn ends(&mut self, partitions: &[Partition]) -> HashMap<Partition, i64> {
        if self.client.is_none() {
            match log_end_reader(&self.kafka) {
                Ok(client) => self.client = Some(client),
                Err(err) => {
                    tracing::debug!(error = %err, "cannot create the client that reads log ends; trying next window");
                    return HashMap::new();
                }
            }
        }
        let Some(client) = self.client.as_ref() else { return HashMap::new() };
        // A partition whose leader is away is left for the next window.
        partitions
            .iter()
            .filter_map(|(topic, p)| {
                let (_, high) = client.fetch_watermarks(topic, *p, Duration::from_secs(2)).ok()?;
                Some(((topic.clone(), *p), high))
            })
            .collect()
    }
}

/// What the consumer knew of a partition when the reader was asked: the
/// log end its fetches last reported, and its position (a consumer whose
/// application is slow stops fetching while its queue is full, but its
/// position moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    seen: i64,
    position: i64,
}

/// What was asked of the reader: the consumer's view of each partition then.
type Asked = HashMap<Partition, View>;

/// Samples the consumer's fetches and the real log ends once per window.
pub struct FetchWatch {
    window: Duration,
    last: Instant,
    requests: Sender<Vec<Partition>>,
    answers: Receiver<HashMap<Partition, i64>>,
    /// The question in flight, if any.
    asked: Option<Asked>,
    /// Partitions that lagged at the last answer, with the view then.
    lagging: HashMap<Partition, View>,
}

impl FetchWatch {
    /// Samples every `stall_timeout / 3`, so a stuck partition is found
    /// within one stall timeout.
    pub fn new(kafka: &KafkaConfig, stall_timeout: Duration) -> Self {
        Self::with_reader(KafkaEnds { kafka: kafka.clone(), client: None }, stall_timeout / 3)
    }

    /// A watch that reads ends with `reader`, on a thread of its own, once
    /// per `window`.
    pub fn with_reader(mut reader: impl EndReader, window: Duration) -> Self {
        let (requests, asked) = std::sync::mpsc::channel::<Vec<Partition>>();
        let (answer, answers) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("turnstile-ends".into()).spawn(move || {
            // Ends when the watch (and with it the sender) is dropped.
            while let Ok(partitions) = asked.recv() {
                if answer.send(reader.ends(&partitions)).is_err() {
                    break;
                }
            }
        });
        if let Err(err) = spawned {
            // Without it the watch never answers, and the runner still works.
            tracing::warn!(error = %err, "cannot start the thread that reads log ends; not watching fetches");
        }
        FetchWatch { window, last: Instant::now(), requests, answers, asked: None, lagging: HashMap::new() }
    }

    /// Never blocks: takes the reader's answer if it came, and once per
    /// window asks again about the partitions `ready` accepts. Returns the
    /// partitions stuck as of the answer.
    pub fn stuck<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, ready: impl Fn(i32) -> bool) -> Vec<Stuck> {
        let mut stuck = Vec::new();
        match self.answers.try_recv() {
            Ok(ends) => {
                if let Some(asked) = self.asked.take() {
                    stuck = self.judge(&asked, &ends, |(_, p)| ready(*p));
                }
            }
            Err(TryRecvError::Empty) if self.asked.is_some() => return stuck,
            Err(_) => {}
        }
        if self.asked.is_none() && self.last.elapsed() >= self.window {
            self.last = Instant::now();
            let positions = consumer.position().unwrap_or_default();
            let asked: Asked = positions
                .elements()
                .iter()
                .filter(|e| ready(e.partition()))
                .filter_map(|e| {
                    let (topic, p) = (e.topic(), e.partition());
                    let position = e.offset().to_raw().unwrap_or(-1);
                    Some(((topic.to_owned(), p), View { seen: seen_end(consumer, topic, p)?, position }))
                })
                .collect();
            if !asked.is_empty() && self.requests.send(asked.keys().cloned().collect()).is_ok() {
                self.asked = Some(asked);
            }
        }
        stuck
    }

    /// Books an answer: a partition lags when its fetches saw an end below
    /// the real one; it is stuck when it lagged at the previous answer too,
    /// with nothing new seen or consumed since (and `still` holds).
    fn judge(
        &mut self,
        asked: &Asked,
        ends: &HashMap<Partition, i64>,
        still: impl Fn(&Partition) -> bool,
    ) -> Vec<Stuck> {
        let mut lagging = HashMap::new();
        let mut stuck = Vec::new();
        for (partition, &view) in asked {
            let Some(&end) = ends.get(partition) else { continue };
            if view.seen >= end {
                continue;
            }
            if self.lagging.get(partition) == Some(&view) && still(partition) {
                stuck.push(Stuck { topic: partition.0.clone(), partition: partition.1, seen: view.seen, end });
            }
            lagging.insert(partition.clone(), view);
        }
        self.lagging = lagging;
        stuck.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        stuck
    }
}

/// The log end (high watermark) the consumer's last fetch response for the
/// partition reported; `None` before its first.
fn seen_end<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is alive for the borrow of `consumer`; the
    // call only reads librdkafka's cached offsets into the two locals.
    let err = unsafe {
        rd::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Ends fixed by the test; records the thread that read them.
    #[derive(Clone, Default)]
    struct FixedEnds {
        ends: Arc<Mutex<HashMap<Partition, i64>>>,
        reader_threads: Arc<Mutex<Vec<std::thread::ThreadId>>>,
    }

    impl EndReader for FixedEnds {
        fn ends(&mut self, partitions: &[Partition]) -> HashMap<Partition, i64> {
            self.reader_threads.lock().unwrap().push(std::thread::current().id());
            let ends = self.ends.lock().unwrap();
            partitions.iter().filter_map(|p| Some((p.clone(), *ends.get(p)?))).collect()
        }
    }

    fn partition(p: i32) -> Partition {
        ("in".to_owned(), p)
    }

    #[test]
    fn log_ends_are_read_off_the_runner_thread() {
        let reader = FixedEnds::default();
        reader.ends.lock().unwrap().insert(partition(0), 10);
        let watch = FetchWatch::with_reader(reader.clone(), Duration::ZERO);
        watch.requests.send(vec![partition(0)]).unwrap();
        let answer = watch.answers.recv_timeout(Duration::from_secs(10)).expect("an answer");
        assert_eq!(answer.get(&partition(0)), Some(&10));
        let threads = reader.reader_threads.lock().unwrap().clone();
        assert_eq!(threads.len(), 1);
        assert_ne!(threads[0], std::thread::current().id(), "the loop's thread never waits for a broker");
    }

    #[test]
    fn only_fetches_that_lag_twice_without_news_are_stuck() {
        let mut watch = FetchWatch::with_reader(FixedEnds::default(), Duration::ZERO);
        let asked = |views: &[(i32, i64, i64)]| -> Asked {
            views.iter().map(|&(p, seen, position)| (partition(p), View { seen, position })).collect()
        };
        let ends: HashMap<Partition, i64> = (0..4).map(|p| (partition(p), 20)).collect();
        // p0, p1 and p3 lag; p2 has seen the end.
        let first = asked(&[(0, 12, 5), (1, 12, 5), (2, 20, 19), (3, 12, 5)]);
        assert!(watch.judge(&first, &ends, |_| true).is_empty(), "once is no proof");
        // p0 saw and consumed nothing new; p1's fetches moved on; p2 is
        // still at the end; p3's fetches wait while its application
        // consumes what was fetched.
        let second = asked(&[(0, 12, 5), (1, 15, 5), (2, 20, 19), (3, 12, 9)]);
        let stuck = watch.judge(&second, &ends, |_| true);
        assert_eq!(stuck, vec![Stuck { topic: "in".into(), partition: 0, seen: 12, end: 20 }]);
        // A partition no longer ready (revoked, paused) is not stuck.
        assert!(watch.judge(&asked(&[(0, 12, 5)]), &ends, |_| false).is_empty());
    }

    #[test]
    fn a_log_ending_in_markers_is_not_stuck() {
        // An idle partition whose log ends in an aborted transaction: the
        // position stays below the end for good, but each fetch reports
        // the end, so the fetches' view equals it.
        let mut watch = FetchWatch::with_reader(FixedEnds::default(), Duration::ZERO);
        let asked: Asked = [(partition(0), View { seen: 42, position: 39 })].into();
        let ends: HashMap<Partition, i64> = [(partition(0), 42)].into();
        for _ in 0..3 {
            assert!(watch.judge(&asked, &ends, |_| true).is_empty());
        }
    }
}
