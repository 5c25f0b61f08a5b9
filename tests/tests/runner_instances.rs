//! Two instances of each service share the work, then one of each leaves and
//! the other takes over its partitions together with their state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use turnstile::admin::GroupMember;
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::partition::section_partition;
use turnstile_protocol::BookingStatus;
use turnstile_tests::*;

const PARTITIONS: i32 = 4;
/// Sections A–D land on partitions 0–3, so each seat-reservation instance
/// owns two of them. 4 subsections of 4 × 5 seats: 80 seats.
const CHART: &str = r#"{"rows":4,"cols":5,"sections":[
    {"name":"A","price":100,"subsections":1},
    {"name":"B","price":200,"subsections":1},
    {"name":"C","price":300,"subsections":1},
    {"name":"D","price":400,"subsections":1}]}"#;

/// The partitions of `topic` assigned to `member`.
fn owned(member: &GroupMember, topic: &str) -> BTreeSet<i32> {
    member.assignment.iter().filter(|(t, _)| t == topic).map(|(_, p)| *p).collect()
}

/// The member of instance `instance` (its client id is `{service}-{instance}`).
fn member<'a>(members: &'a [GroupMember], service: &str, instance: &str) -> &'a GroupMember {
    let client_id = format!("{service}-{instance}");
    members
        .iter()
        .find(|m| m.client_id == client_id)
        .unwrap_or_else(|| panic!("no member with client id {client_id} in {members:?}"))
}

#[test]
fn a_leaving_instance_hands_its_partitions_and_state_to_the_other() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing1 = Service::start(TICKETING_SERVICE, id, "1");
    let mut ticketing2 = Service::start(TICKETING_SERVICE, id, "2");
    let mut seats1 = Service::start(SEAT_RESERVATION_SERVICE, id, "1");
    let mut seats2 = Service::start(SEAT_RESERVATION_SERVICE, id, "2");
    let startup = Duration::from_secs(120);

    // The instances split the partitions; a ticketing instance owns the same
    // partition numbers of both its inputs (their bookings' state lives there).
    let commands = naming::booking_command_topic(id).to_string();
    let results = naming::seat_reservation_result_topic(id).to_string();
    let requests = naming::ticket_command_request_topic(id).to_string();
    let t_members =
        wait_for_group(id, TICKETING_SERVICE, 2, PARTITIONS, startup, &mut [&mut ticketing1, &mut ticketing2]);
    for m in &t_members {
        assert_eq!(
            owned(m, &commands),
            owned(m, &results),
            "ticketing member {} must own partition p of booking-command and of seat-reservation-result together: {:?}",
            m.client_id,
            m.assignment
        );
    }
    let s_members =
        wait_for_group(id, SEAT_RESERVATION_SERVICE, 2, PARTITIONS, startup, &mut [&mut seats1, &mut seats2]);
    let leaving_bookings = owned(member(&t_members, TICKETING_SERVICE, "2"), &commands);
    let leaving_sections = owned(member(&s_members, SEAT_RESERVATION_SERVICE, "2"), &requests);
    assert!(!leaving_bookings.is_empty() && !leaving_sections.is_empty(), "both instances 2 must own partitions");

    // Phase 1: bookings are decided by both instances; pays and cancels wait.
    let plan = plan_bookings(&chart, 100, id);
    let mut sellout = Sellout::new(id, PARTITIONS, chart.clone(), plan);
    sellout.hold_follow_ups(true);
    sellout.publish_rest();
    let all = &mut [&mut ticketing1, &mut ticketing2, &mut seats1, &mut seats2];
    sellout
        .drive_until("phase 1: every booking decided by two instances", Duration::from_secs(120), all, |s| {
            s.all_decided()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let reserved_before: Vec<String> = sellout
        .plan
        .iter()
        .filter(|p| sellout.latest(&p.command.booking_id) == Some(BookingStatus::PendingPayment))
        // A booking cancelled at once may show pending_payment before its cancel.
        .filter(|p| p.buyer != Buyer::CancelsAtOnce)
        .map(|p| p.command.booking_id.clone())
        .collect();

    // Every booking reserved on instance 2's partitions is paid after the leave.
    for b in &reserved_before {
        if leaving_bookings.contains(&sellout.client.partition_of(b)) {
            sellout.make_payer(b);
        }
    }

    // Instance 2 of each service leaves; instance 1 takes over everything.
    ticketing2.stop();
    seats2.stop();
    wait_for_group(id, TICKETING_SERVICE, 1, PARTITIONS, startup, &mut [&mut ticketing1]);
    wait_for_group(id, SEAT_RESERVATION_SERVICE, 1, PARTITIONS, startup, &mut [&mut seats1]);

    // Phase 2: the held pays and cancels, now handled by instance 1 alone.
    sellout.hold_follow_ups(false);
    sellout
        .drive_until(
            "phase 2: bookings reserved before the leave paid or cancelled",
            Duration::from_secs(120),
            &mut [&mut ticketing1, &mut seats1],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = describe(&[&ticketing1, &ticketing2, &seats1, &seats2]);
    sellout.verify_eventually(Duration::from_secs(60)).assert_clean(&logs);
    let taken_over_and_paid = reserved_before
        .iter()
        .filter(|b| leaving_bookings.contains(&sellout.client.partition_of(b)))
        .filter(|b| sellout.latest(b) == Some(BookingStatus::Completed))
        .count();
    assert!(
        taken_over_and_paid > 0,
        "some bookings reserved on instance 2's partitions {leaving_bookings:?} must be paid after it left \
         ({} reserved before the leave)\n{logs}",
        reserved_before.len()
    );

    // Phase 3: more single-seat requests than seats in every subsection. The
    // venue must end exactly sold out: never a seat reserved before the leave
    // handed out again (that would be a seat held twice), never one lost.
    sellout.extend(plan_single_seats(&chart, 30));
    sellout.publish_rest();
    sellout
        .drive_until(
            "phase 3: single-seat bookings settled",
            Duration::from_secs(120),
            &mut [&mut ticketing1, &mut seats1],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    sellout.verify_eventually(Duration::from_secs(60)).assert_clean(&logs);
    ticketing1.stop();
    seats1.stop();

    let outcome = sellout.verify();
    eprintln!("final statuses {:?}; seats held {:?}", outcome.counts, outcome.held);
    outcome.assert_clean(&logs);
    let capacity = (chart.rows * chart.cols) as usize;
    let expected: BTreeMap<(String, u32), usize> =
        chart.sections.iter().map(|s| ((s.name.clone(), 1), capacity)).collect();
    let on_leaving: Vec<&str> = chart
        .sections
        .iter()
        .filter(|s| leaving_sections.contains(&section_partition(id, &s.name, PARTITIONS)))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        outcome.held, expected,
        "every subsection must end exactly sold out (sections {on_leaving:?} moved from seat-reservation \
         instance 2 to instance 1)\n{logs}"
    );
    cleanup(id);
}
