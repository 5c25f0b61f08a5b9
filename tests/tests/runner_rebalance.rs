//! Partitions move between instances while bookings flow: instances join,
//! one is killed, one leaves. With `runner.group_protocol = "consumer"`
//! (KIP-848, the default) rebalances are incremental (partitions that stay are
//! never revoked or restored again); partition p of both ticketing inputs
//! always sits on one instance, and every booking is decided once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use turnstile::admin::GroupMember;
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 6;
const CHART: &str = r#"{"rows":4,"cols":5,"sections":[
    {"name":"A","price":100,"subsections":1},
    {"name":"B","price":200,"subsections":1},
    {"name":"C","price":300,"subsections":1},
    {"name":"D","price":400,"subsections":1},
    {"name":"E","price":500,"subsections":1},
    {"name":"F","price":600,"subsections":1}]}"#;

fn owned(member: &GroupMember, topic: &str) -> BTreeSet<i32> {
    member.assignment.iter().filter(|(t, _)| t == topic).map(|(_, p)| *p).collect()
}

/// Samples the ticketing group and records every stable member that holds
/// partition p of one input without p of the other.
struct CoLocation {
    event_id: u64,
    samples: usize,
    violations: Vec<String>,
}

impl CoLocation {
    fn sample(&mut self) {
        let Some(members) = stable_members(self.event_id, TICKETING_SERVICE) else { return };
        self.samples += 1;
        let commands = naming::booking_command_topic(self.event_id).to_string();
        let results = naming::seat_reservation_result_topic(self.event_id).to_string();
        for m in &members {
            if owned(m, &commands) != owned(m, &results) {
                self.violations.push(format!("{}: {:?}", m.client_id, m.assignment));
            }
        }
    }
}

/// Publishes `n` more creates and pumps statuses for `for_at_least`,
/// sampling the group as it goes.
fn flow(sellout: &mut Sellout, n: usize, for_at_least: Duration, co: &mut CoLocation) {
    sellout.publish(n);
    let until = Instant::now() + for_at_least;
    while Instant::now() < until {
        sellout.pump(Duration::from_millis(200));
        co.sample();
    }
}

/// The services of this test join with Kafka 4's consumer group protocol
/// even if the environment's default changes.
const CONSUMER_PROTOCOL: [(&str, &str); 1] = [("TURNSTILE_RUNNER__GROUP_PROTOCOL", "consumer")];

fn start(service: &str, id: u64, instance: &str) -> Service {
    Service::start_with_env(service, id, instance, &CONSUMER_PROTOCOL)
}

fn restores(service: &Service) -> usize {
    service.log_lines_containing("state restored from changelog").len()
}

#[test]
fn partitions_move_between_instances_under_load() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let startup = Duration::from_secs(120);
    let mut t1 = start(TICKETING_SERVICE, id, "1");
    let mut s1 = start(SEAT_RESERVATION_SERVICE, id, "1");
    wait_for_group(id, TICKETING_SERVICE, 1, PARTITIONS, startup, &mut [&mut t1]);
    wait_for_group(id, SEAT_RESERVATION_SERVICE, 1, PARTITIONS, startup, &mut [&mut s1]);

    let mut sellout = Sellout::new(id, PARTITIONS, chart.clone(), plan_bookings(&chart, 360, id));
    let mut co = CoLocation { event_id: id, samples: 0, violations: Vec::new() };
    flow(&mut sellout, 60, Duration::from_secs(2), &mut co);
    let restores_alone = restores(&t1);

    // A second instance of each service joins mid-stream. Instance 1 only
    // gives partitions away: with incremental rebalancing it never revokes
    // or restores the ones it keeps.
    let mut t2 = start(TICKETING_SERVICE, id, "2");
    let mut s2 = start(SEAT_RESERVATION_SERVICE, id, "2");
    flow(&mut sellout, 60, Duration::from_secs(1), &mut co);
    wait_for_group(id, TICKETING_SERVICE, 2, PARTITIONS, startup, &mut [&mut t1, &mut t2]);
    wait_for_group(id, SEAT_RESERVATION_SERVICE, 2, PARTITIONS, startup, &mut [&mut s1, &mut s2]);
    flow(&mut sellout, 60, Duration::from_secs(2), &mut co);
    let logs = describe(&[&t1, &t2, &s1, &s2]);
    assert_eq!(
        restores(&t1),
        restores_alone,
        "ticketing instance 1 restored state again when instance 2 joined, although it only gave partitions away\n{logs}"
    );

    // A third ticketing instance joins, then instance 2 is killed -9: its
    // partitions move on after the broker's session timeout.
    let mut t3 = start(TICKETING_SERVICE, id, "3");
    wait_for_group(id, TICKETING_SERVICE, 3, PARTITIONS, startup, &mut [&mut t1, &mut t2, &mut t3]);
    flow(&mut sellout, 60, Duration::from_secs(1), &mut co);
    t2.sigkill();
    flow(&mut sellout, 60, Duration::from_secs(1), &mut co);
    wait_for_group(id, TICKETING_SERVICE, 2, PARTITIONS, startup, &mut [&mut t1, &mut t3]);

    // Instance 3 leaves cleanly; instance 1 ends up with everything.
    t3.stop();
    flow(&mut sellout, 60, Duration::from_secs(1), &mut co);
    wait_for_group(id, TICKETING_SERVICE, 1, PARTITIONS, startup, &mut [&mut t1]);
    sellout.publish_rest();
    let logs = describe(&[&t1, &t2, &t3, &s1, &s2]);
    sellout
        .drive_until(
            "every booking settled after the moves",
            Duration::from_secs(120),
            &mut [&mut t1, &mut s1, &mut s2],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{logs}"));
    sellout.verify_eventually(Duration::from_secs(60)).assert_clean(&logs);

    assert!(co.samples > 0, "the ticketing group was never seen stable");
    assert!(
        co.violations.is_empty(),
        "a ticketing member held partition p of one input without the other ({} of {} samples): {:?}\n{logs}",
        co.violations.len(),
        co.samples,
        co.violations
    );
    for s in [&mut t1, &mut s1, &mut s2] {
        s.stop();
    }
    cleanup(id);
}
