//! Self-healing: an instance frozen (SIGSTOP) past its transaction timeout
//! wakes up fenced, with its transaction aborted by the broker and its
//! partitions given away. It must not exit: it drops its work (abort and
//! rewind, or a rebuilt producer and consumer when the fencing is fatal),
//! rejoins the group and carries on.

use std::time::Duration;

use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 4;
const CHART: &str = r#"{"rows":5,"cols":10,"sections":[{"name":"A","price":100,"subsections":2},{"name":"B","price":80,"subsections":2}]}"#;

#[test]
fn a_zombie_whose_transaction_timed_out_rejoins_instead_of_exiting() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    // A long commit interval keeps the zombie's transaction open when it is
    // frozen, so the broker must abort it under the frozen process.
    let slow = [
        ("TURNSTILE_RUNNER__COMMIT_INTERVAL_MS", "8000"),
        ("TURNSTILE_RUNNER__COMMIT_MIN_GAP_MS", "8000"),
        ("TURNSTILE_RUNNER__MAX_BATCH", "100000"),
    ];
    let mut zombie = Service::start_with_env(TICKETING_SERVICE, id, "1", &slow);
    let mut other = Service::start(TICKETING_SERVICE, id, "2");
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");
    wait_for_group(id, TICKETING_SERVICE, 2, PARTITIONS, Duration::from_secs(60), &mut [&mut zombie, &mut other]);

    let mut sellout = Sellout::new(id, PARTITIONS, chart.clone(), plan_bookings(&chart, 120, id));
    sellout.publish(60);
    // Let the zombie take some of them into its open transaction.
    std::thread::sleep(Duration::from_secs(2));
    zombie.signal("STOP");
    // Past the 15 s transaction timeout and the 10 s session timeout.
    sellout
        .drive_until("the other instance takes over", Duration::from_secs(20), &mut [&mut other, &mut seats], |_| false)
        .ok();
    zombie.signal("CONT");
    sellout.publish_rest();
    let result = sellout.drive_until(
        "every booking settles after the zombie woke up",
        Duration::from_secs(180),
        &mut [&mut zombie, &mut other, &mut seats],
        Sellout::all_settled,
    );
    let logs = describe(&[&zombie, &other, &seats]);
    result.unwrap_or_else(|e| panic!("{e}"));
    sellout.verify_eventually(Duration::from_secs(30)).assert_clean(&logs);
    zombie.check_running().unwrap_or_else(|e| panic!("the zombie must heal, not exit: {e}"));
    // The abort of its timed-out transaction (then it rewinds and rejoins
    // with the same clients), the loss of its assignment (then the revoke
    // hook aborts it and it rejoins), or a fatal fencing (then it rebuilds
    // them): in every case it noticed, and it is still here.
    let noticed = zombie.log_lines_containing("transaction aborted; rewinding").len()
        + zombie.log_lines_containing(r#"what="aborted" lost=true"#).len()
        + zombie.log_lines_containing("rejoining with a new producer and consumer").len();
    assert!(noticed > 0, "the zombie's transaction was aborted under it and it recovered\n{logs}");
    // It knew it had been suspended, and rejoined before handling more of
    // what it had lost: no commit of its failed for being fenced.
    let woke = zombie.log_lines_containing("suspended past the transaction timeout");
    assert_eq!(woke.len(), 1, "the zombie did not notice its suspension\n{logs}");
    let wasted = zombie.log_lines_containing("transaction aborted; rewinding");
    assert!(wasted.is_empty(), "the zombie handled records it had lost: {wasted:#?}\n{logs}");
    let watchdog = zombie.log_lines_containing("restarting this process in place");
    assert!(watchdog.is_empty(), "waking up is not a wedge: {watchdog:#?}");
    zombie.stop();
    other.stop();
    seats.stop();
    cleanup(id);
}
