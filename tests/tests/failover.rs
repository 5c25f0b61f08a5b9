//! Failover on a three-broker cluster: the flow keeps its promise while
//! brokers die, come back behind, lose the transaction coordinator, drop
//! below min ISR, and restart one by one. Each scenario runs a booking
//! flow through real services, then checks the committed output with
//! independent `read_committed` readers (the contract checker and both
//! changelogs) and that no service exited.
//!
//! Needs a cluster started by `scripts/local-kafka` with `KAFKA_BROKERS=3`
//! (CI runs them so: `KAFKA_BROKERS=3 scripts/test --test failover`). On a
//! single broker they print why and pass, unless
//! `TURNSTILE_REQUIRE_CLUSTER=1` (set by CI) makes that a failure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 6;
const CHART: &str = r#"{"rows":10,"cols":16,"sections":[{"name":"A","price":100,"subsections":3},{"name":"B","price":80,"subsections":3}]}"#;
const BOOKINGS: usize = 300;
/// The longest an instance may go without a heartbeat while the cluster
/// has a live majority (the default `runner.wedge_timeout_ms`): beyond it,
/// its partitions wait on an instance that makes no progress.
const SILENCE_BOUND: Duration = Duration::from_secs(30);

fn cluster() -> Option<LocalCluster> {
    match LocalCluster::find(3) {
        Ok(cluster) => Some(cluster),
        Err(why) if std::env::var("TURNSTILE_REQUIRE_CLUSTER").is_ok_and(|v| v == "1") => {
            panic!("TURNSTILE_REQUIRE_CLUSTER=1 but no three-broker cluster: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// Services and a booking load on a fresh event.
struct Flow {
    id: u64,
    services: Vec<Service>,
    sellout: Sellout,
}

impl Flow {
    fn start() -> Flow {
        let id = unique_event_id();
        let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
        let services = vec![
            Service::start(TICKETING_SERVICE, id, "1"),
            Service::start(TICKETING_SERVICE, id, "2"),
            Service::start(SEAT_RESERVATION_SERVICE, id, "1"),
        ];
        let sellout = Sellout::new(id, PARTITIONS, chart.clone(), plan_bookings(&chart, BOOKINGS, id));
        let mut flow = Flow { id, services, sellout };
        flow.wait_for_groups();
        flow
    }

    fn wait_for_groups(&mut self) {
        let startup = Duration::from_secs(120);
        let (tickets, seats) = self.services.split_at_mut(2);
        let [t1, t2] = tickets else { unreachable!() };
        wait_for_group(self.id, TICKETING_SERVICE, 2, PARTITIONS, startup, &mut [t1, t2]);
        wait_for_group(self.id, SEAT_RESERVATION_SERVICE, 1, PARTITIONS, startup, &mut [&mut seats[0]]);
    }

    /// Publishes `n` more creates, then pumps statuses for `for_at_least`,
    /// checking that no service exits.
    fn run(&mut self, n: usize, for_at_least: Duration) {
        self.sellout.publish(n);
        let until = Instant::now() + for_at_least;
        while Instant::now() < until {
            self.sellout.pump(Duration::from_millis(200));
            self.assert_alive();
        }
    }

    fn assert_alive(&mut self) {
        for s in &mut self.services {
            if let Err(e) = s.check_running() {
                panic!("a service exited during failover: {e}\n{}", self.sellout.progress());
            }
        }
    }

    fn logs(&self) -> String {
        describe(&self.services.iter().collect::<Vec<_>>())
    }

    /// Publishes the rest, waits for every booking to settle and checks
    /// the committed output; then stops the services and cleans up.
    fn finish(mut self, what: &str) {
        self.sellout.publish_rest();
        let logs = self.logs();
        let mut running: Vec<&mut Service> = self.services.iter_mut().collect();
        self.sellout
            .drive_until(what, Duration::from_secs(240), &mut running, |s| s.all_settled())
            .unwrap_or_else(|e| panic!("{e}\n{logs}"));
        self.sellout.verify_eventually(Duration::from_secs(60)).assert_clean(&logs);
        assert_changelogs_agree(self.id, &logs);
        for s in &mut self.services {
            s.stop();
        }
        self.assert_never_silent();
        cleanup(self.id);
    }

    /// No instance went longer than [`SILENCE_BOUND`] without a heartbeat
    /// (each reports its longest silence when it stops), and none had to
    /// be replaced by its process watchdog.
    fn assert_never_silent(&self) {
        let logs = self.logs();
        let mut reported = 0;
        for s in &self.services {
            let replaced = s.log_lines_containing("restarting this process in place");
            assert!(replaced.is_empty(), "{s} was stuck until its watchdog replaced it: {replaced:?}\n{logs}");
            for line in s.log_lines_containing("longest_silence_ms: ") {
                let silence = longest_silence(&line);
                eprintln!("{s}: longest silence {silence:?}");
                assert!(silence < SILENCE_BOUND, "{s} was silent for {silence:?}: {line}\n{logs}");
                reported += 1;
            }
        }
        assert!(reported > 0, "no instance reported its longest silence when it stopped\n{logs}");
    }

    /// Lines with a warning or an error in the services' logs.
    fn warnings(&self) -> usize {
        self.services
            .iter()
            .map(|s| s.log_lines_containing(" WARN ").len() + s.log_lines_containing("ERROR").len())
            .sum()
    }
}

/// The `longest_silence_ms` of a stop line's metrics.
fn longest_silence(line: &str) -> Duration {
    let digits: String = line
        .split("longest_silence_ms: ")
        .nth(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    Duration::from_millis(digits.parse().unwrap_or_else(|_| panic!("no silence in {line}")))
}

/// The broker id leading the most partitions of the event's topics.
fn busiest_leader(event_id: u64) -> i32 {
    let metadata = plain_consumer().fetch_metadata(None, TIMEOUT).expect("metadata");
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for topic in metadata.topics() {
        if topic.name().contains(&format!("event-id-{event_id}_")) {
            for p in topic.partitions() {
                *led.entry(p.leader()).or_default() += 1;
            }
        }
    }
    led.into_iter().max_by_key(|(_, n)| *n).map(|(broker, _)| broker).expect("the event's partitions have leaders")
}

/// The `__transaction_state` partition of a transactional id, as the broker
/// computes it: `Utils.abs(id.hashCode()) % partitions`, with Java's
/// `String.hashCode` over UTF-16 units.
fn transaction_partition(transactional_id: &str, partitions: i32) -> i32 {
    let hash = transactional_id.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// The broker that coordinates `transactional_id`: the leader of its
/// partition of `__transaction_state`.
fn transaction_coordinator(transactional_id: &str) -> i32 {
    let metadata = plain_consumer().fetch_metadata(Some("__transaction_state"), TIMEOUT).expect("metadata");
    let topic = metadata.topics().first().expect("__transaction_state exists");
    let partition = transaction_partition(transactional_id, topic.partitions().len() as i32);
    topic.partitions().iter().find(|p| p.id() == partition).map(|p| p.leader()).expect("the partition has a leader")
}

#[test]
fn transaction_partitions_follow_java_string_hash_code() {
    // "ab".hashCode() = 97 * 31 + 98 = 3105; "polygenelubricants".hashCode() = i32::MIN.
    assert_eq!(transaction_partition("ab", 50), 3105 % 50);
    assert_eq!(transaction_partition("polygenelubricants", 50), 0);
}

#[test]
fn killing_the_busiest_leader_mid_sellout_loses_nothing() {
    let Some(cluster) = cluster() else { return };
    let mut flow = Flow::start();
    flow.run(100, Duration::from_secs(2));
    let broker = busiest_leader(flow.id);
    eprintln!("killing broker {broker}, the leader of most of the event's partitions");
    cluster.run(&["kill", &broker.to_string()]);
    flow.run(100, Duration::from_secs(10));
    cluster.run(&["start", &broker.to_string()]);
    flow.run(0, Duration::from_secs(2));
    flow.finish("every booking settled after the leader was killed and relaunched");
}

#[test]
fn killing_the_transaction_coordinator_mid_stream_loses_nothing() {
    let Some(cluster) = cluster() else { return };
    let mut flow = Flow::start();
    flow.run(100, Duration::from_secs(2));
    let transactional_id = format!("{TICKETING_SERVICE}-producer-event-{}-instance-1", flow.id);
    let broker = transaction_coordinator(&transactional_id);
    eprintln!("killing broker {broker}, the transaction coordinator of {transactional_id}");
    cluster.run(&["kill", &broker.to_string()]);
    flow.run(100, Duration::from_secs(10));
    cluster.run(&["start", &broker.to_string()]);
    flow.run(0, Duration::from_secs(2));
    flow.finish("every booking settled after the transaction coordinator was killed");
}

#[test]
fn two_brokers_paused_below_min_isr_stop_commits_and_lose_nothing() {
    let Some(cluster) = cluster() else { return };
    let mut flow = Flow::start();
    flow.run(100, Duration::from_secs(3));
    let settled_before = flow.sellout.settled();
    let warnings_before = flow.warnings();
    // Work in flight when the brokers stop: an idle service has nothing to
    // commit and rightly says nothing (CI once paused between bookings).
    flow.sellout.publish(100);
    // The third broker alone is below min ISR (2) for every partition.
    let brokers = cluster.pause(&["2", "3"]);
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_secs(20) {
        flow.sellout.pump(Duration::from_millis(500));
        flow.assert_alive();
    }
    let settled_during = flow.sellout.settled() - settled_before;
    let warned = flow.warnings() - warnings_before;
    brokers.resume();
    let logs = flow.logs();
    assert!(warned > 0, "the services said nothing while two of three brokers were paused\n{logs}");
    eprintln!("while paused: {settled_during} more bookings settled, {warned} warning lines");
    flow.run(100, Duration::from_secs(2));
    flow.finish("every booking settled after two brokers were paused and resumed");
}

#[test]
fn a_stop_asked_while_commits_cannot_land_exits_cleanly_and_loses_nothing() {
    let Some(cluster) = cluster() else { return };
    let mut flow = Flow::start();
    flow.run(100, Duration::from_secs(2));
    // Below min ISR nothing is acknowledged: the final commit (or leaving
    // the group) of a stopping instance can neither finish nor fail fast.
    flow.sellout.publish(100);
    let paused = cluster.pause(&["2", "3"]);
    // Not pumping: the client's own pays could not be acknowledged either.
    std::thread::sleep(Duration::from_secs(1));
    let stopping = &mut flow.services[1];
    let status = stopping.sigterm();
    let log = stopping.log_tail(30);
    paused.resume();
    assert!(status.success(), "{stopping} exited with {status} when asked to stop during the outage\n{log}");
    // Its uncommitted work is read again by whoever owns the partitions next.
    flow.services[1].restart();
    flow.run(50, Duration::from_secs(2));
    flow.finish("every booking settled after an instance stopped while commits could not land");
}

#[test]
fn a_rolling_restart_of_every_broker_under_load_loses_nothing() {
    let Some(cluster) = cluster() else { return };
    let mut flow = Flow::start();
    flow.run(60, Duration::from_secs(2));
    for node in 1..=3 {
        let node = node.to_string();
        cluster.run(&["stop", &node]);
        flow.run(40, Duration::from_secs(3));
        cluster.run(&["start", &node]);
        flow.run(40, Duration::from_secs(3));
    }
    flow.finish("every booking settled after a rolling restart of all three brokers");
}
