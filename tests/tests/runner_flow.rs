//! The exactly-once runner end to end: both services as real processes, a
//! few hundred bookings against a small venue, everything checked through a
//! `read_committed` reader of `booking-status-changed` and
//! `seat-reservation-result`.

use std::time::Duration;

use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_protocol::BookingStatus;
use turnstile_tests::*;

const PARTITIONS: i32 = 6;
/// 5 subsections of 4 × 6 seats: 120 seats for bookings asking for ~750.
const CHART: &str = r#"{"rows":4,"cols":6,"sections":[
    {"name":"A","price":100,"subsections":2},
    {"name":"B","price":250,"subsections":1},
    {"name":"VIP","price":900,"subsections":2}]}"#;

/// Every booking ends decided exactly once (`processing`, then exactly one of
/// `pending_payment`/`failed`, then `completed`/`cancelled` for those paid or
/// cancelled), no status message is repeated, no seat is held by two
/// bookings, no subsection is oversold, and the seat service's results agree
/// (seats of cancelled bookings released, of paid ones sold).
#[test]
fn every_booking_is_decided_once_and_no_seat_is_sold_twice() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");

    let plan = plan_bookings(&chart, 300, id);
    let mut sellout = Sellout::new(id, PARTITIONS, chart, plan);
    sellout.publish_rest();
    sellout
        .drive_until("all bookings settled", Duration::from_secs(120), &mut [&mut ticketing, &mut seats], |s| {
            s.all_settled()
        })
        .unwrap_or_else(|e| panic!("{e}"));

    // Releases of bookings cancelled while processing may still be on their way.
    let logs = describe(&[&ticketing, &seats]);
    sellout.verify_eventually(Duration::from_secs(60)).assert_clean(&logs);
    ticketing.stop();
    seats.stop();

    // After a graceful stop nothing more may appear: check the final output.
    let outcome = sellout.verify();
    eprintln!(
        "{} status messages; final statuses {:?}; seats held {:?}",
        outcome.status_messages, outcome.counts, outcome.held
    );
    outcome.assert_clean(&logs);
    assert!(
        outcome.reservation_failures > 0,
        "the venue was oversubscribed, so some reservations must fail: {:?}\n{logs}",
        outcome.counts
    );
    for status in [BookingStatus::PendingPayment, BookingStatus::Completed, BookingStatus::Cancelled] {
        assert!(outcome.count(status) > 0, "no booking ended {}: {:?}\n{logs}", status.as_str(), outcome.counts);
    }
    assert!(
        read_back(&turnstile::naming::dlq_topic(id, TICKETING_SERVICE).to_string()).is_empty()
            && read_back(&turnstile::naming::dlq_topic(id, SEAT_RESERVATION_SERVICE).to_string()).is_empty(),
        "valid commands must never be dead-lettered\n{logs}"
    );
    cleanup(id);
}

/// A normal start, some work and a graceful stop log nothing at ERROR level:
/// operators alert on ERROR lines.
#[test]
fn a_clean_run_logs_no_errors() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");
    let mut sellout = Sellout::new(id, PARTITIONS, chart.clone(), plan_single_seats(&chart, 2));
    sellout.publish_rest();
    sellout
        .drive_until("all bookings settled", Duration::from_secs(120), &mut [&mut ticketing, &mut seats], |s| {
            s.all_settled()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    ticketing.stop();
    seats.stop();
    for service in [&ticketing, &seats] {
        let errors = service.log_lines_containing(" ERROR ");
        assert!(errors.is_empty(), "{service} logged errors in a clean run:\n{}", errors.join("\n"));
    }
    cleanup(id);
}
