//! Replicas started alike (a scaled compose service, a Kubernetes
//! Deployment) must not fence each other forever: two instances that share
//! an instance id are told so, and the survivor keeps the service going.

use std::time::{Duration, Instant};

use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 2;
const CHART: &str = r#"{"rows":10,"cols":20,"sections":[{"name":"A","price":100,"subsections":2}]}"#;

/// On one host both replicas default to the same instance id (the host
/// name): one of them exits 2 naming the transactional id and the cause, and
/// the other decides every booking.
#[test]
fn two_replicas_sharing_an_instance_id_are_told_so() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let mut first = Service::start_default_instance(TICKETING_SERVICE, id, &[]);
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");
    let mut sellout = Sellout::new(id, PARTITIONS, chart, Vec::new());
    sellout.extend(plan_single_seats(&sellout.chart.clone(), 4));
    sellout.publish_rest();
    sellout
        .drive_until("the first replica works", Duration::from_secs(60), &mut [&mut first, &mut seats], |s| {
            s.all_decided()
        })
        .unwrap_or_else(|e| panic!("{e}"));

    // Bookings keep coming: a fenced producer finds out at its next
    // transaction.
    let mut second = Service::start_default_instance(TICKETING_SERVICE, id, &[]);
    let started = Instant::now();
    let mut last_booking = Instant::now();
    let deadline = started + Duration::from_secs(150);
    let (exited, status, survivor) = loop {
        match (first.check_running(), second.check_running()) {
            (Err(status), Ok(())) => break (first, status, second),
            (Ok(()), Err(status)) => break (second, status, first),
            (Err(a), Err(b)) => panic!("both replicas exited:\n{a}\n{b}"),
            (Ok(()), Ok(())) if Instant::now() > deadline => {
                panic!("the replicas fenced each other for 150 s without a word\n{}", describe(&[&first, &second]))
            }
            (Ok(()), Ok(())) => {
                if last_booking.elapsed() > Duration::from_secs(1) {
                    sellout.extend(plan_single_seats(&sellout.chart.clone(), 1));
                    sellout.publish_rest();
                    last_booking = Instant::now();
                }
                sellout.pump(Duration::from_millis(200));
            }
        }
    };
    eprintln!("one replica exited after {:?}", started.elapsed());
    assert!(status.contains("exit status: 2"), "a usage error, exit 2: {status}");
    let said = exited.log_lines_containing("another live instance uses instance id");
    assert!(!said.is_empty(), "the exit must name the cause\n{}", exited.log_tail(30));
    let transactional_id = format!("{TICKETING_SERVICE}-producer-event-{id}-instance-");
    assert!(said.iter().any(|l| l.contains(&transactional_id)), "it names the transactional id: {said:#?}");

    // The survivor carries on.
    let mut survivor = survivor;
    sellout.extend(plan_single_seats(&sellout.chart.clone(), 2));
    sellout.publish_rest();
    sellout
        .drive_until(
            "the survivor decides new bookings",
            Duration::from_secs(90),
            &mut [&mut survivor, &mut seats],
            |s| s.all_decided(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", describe(&[&survivor, &seats])));
    survivor.stop();
    seats.stop();
    drop(exited);
    cleanup(id);
}
