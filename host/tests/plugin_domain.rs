//! DOMAIN.md §5 end to end through the real release components: ticketing
//! and seat-reservation in-process, outputs routed between them by the host's
//! routing, one plugin instance per service and partition.

mod plugin_support;

use std::collections::{HashMap, HashSet};

use plugin_support::{Cluster, seats};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use turnstile::naming::action::{SEAT_RESERVATION_RESULT, TICKET_COMMAND_REQUEST};

fn cluster() -> Cluster {
    let mut c = Cluster::new(1, 10);
    c.configure("A", 1, 3, 5, 10);
    c.run();
    c
}

fn status_of(c: &Cluster, booking: &str) -> String {
    c.last_status(booking)["status"].as_str().unwrap_or_default().to_owned()
}

fn assert_no_errors(c: &Cluster) {
    assert!(c.errors.is_empty(), "plugin errors: {:?}", c.errors);
}

#[test]
fn best_available_takes_the_first_run_in_a_row() {
    let mut c = cluster();
    c.create("b1", 1, "A", 1, 2, &[]);
    c.run();
    let s = c.last_status("b1");
    assert_eq!(s["status"], "pending_payment");
    assert_eq!(seats(&s["seats"]), ["1-1", "1-2"]);
    assert_eq!(s["total_price"], 20);
    // Row 1 has 3 left: a party of 4 goes to row 2.
    c.create("b2", 2, "A", 1, 4, &[]);
    c.run();
    assert_eq!(seats(&c.last_status("b2")["seats"]), ["2-1", "2-2", "2-3", "2-4"]);
    c.create("b3", 3, "A", 1, 3, &[]);
    c.run();
    assert_eq!(seats(&c.last_status("b3")["seats"]), ["1-3", "1-4", "1-5"]);
    assert_no_errors(&c);
}

#[test]
fn best_available_falls_back_to_longest_runs_then_fails_whole() {
    let mut c = Cluster::new(1, 10);
    c.configure("B", 7, 2, 4, 5);
    c.run();
    // Row 1: A x A A; row 2: A x x A.
    c.create("m1", 1, "B", 7, 1, &["1-2"]);
    c.create("m2", 2, "B", 7, 2, &["2-2", "2-3"]);
    c.run();
    assert_eq!(status_of(&c, "m1"), "pending_payment");
    assert_eq!(status_of(&c, "m2"), "pending_payment");
    // No row has 3 in a run: longest run first (1-3..1-4), then ties by row
    // then seat (1-1 before 2-1 and 2-4).
    c.create("f", 3, "B", 7, 3, &[]);
    c.run();
    let s = c.last_status("f");
    assert_eq!(s["status"], "pending_payment");
    assert_eq!(seats(&s["seats"]), ["1-1", "1-3", "1-4"]);
    assert_eq!(s["total_price"], 15);
    // Two seats left: asking for three fails and reserves nothing …
    c.create("short", 4, "B", 7, 3, &[]);
    c.run();
    let s = c.last_status("short");
    assert_eq!(s["status"], "failed");
    assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{s}");
    // … so both remaining seats are still there.
    c.create("last", 5, "B", 7, 2, &[]);
    c.run();
    assert_eq!(seats(&c.last_status("last")["seats"]), ["2-1", "2-4"]);
    assert_no_errors(&c);
}

#[test]
fn manual_selection_is_all_or_nothing() {
    let mut c = cluster();
    c.create("a", 1, "A", 1, 2, &["3-5", "2-1"]);
    c.run();
    let s = c.last_status("a");
    assert_eq!(s["status"], "pending_payment");
    assert_eq!(seats(&s["seats"]), ["2-1", "3-5"]);
    // 2-1 is taken, so 2-2 must not be reserved either.
    c.create("b", 2, "A", 1, 2, &["2-2", "2-1"]);
    c.run();
    assert_eq!(status_of(&c, "b"), "failed");
    c.create("c", 3, "A", 1, 1, &["2-2"]);
    c.run();
    assert_eq!(seats(&c.last_status("c")["seats"]), ["2-2"]);
    assert_no_errors(&c);
}

#[test]
fn unknown_seats_subsections_and_bad_requests_fail_with_a_reason() {
    let mut c = cluster();
    c.create("row", 1, "A", 1, 1, &["4-1"]);
    c.create("seat", 1, "A", 1, 1, &["1-6"]);
    c.create("sub", 1, "A", 9, 1, &[]);
    c.create("section", 1, "Z", 1, 1, &[]);
    c.create("qty", 1, "A", 1, 5, &[]);
    c.create("count", 1, "A", 1, 2, &["1-1"]);
    c.create("dup", 1, "A", 1, 2, &["1-1", "1-1"]);
    c.run();
    for booking in ["row", "seat", "sub", "section", "qty", "count", "dup"] {
        let s = c.last_status(booking);
        assert_eq!(s["status"], "failed", "{booking}: {s}");
        assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{booking}: {s}");
        assert!(s.get("seats").is_none_or(Value::is_null), "{booking}: {s}");
    }
    // Buyer mistakes never reach the seat service.
    let mut reserves: Vec<_> = c
        .values(TICKET_COMMAND_REQUEST)
        .into_iter()
        .filter(|v| v["type"] == "reserve_seats")
        .map(|v| v["booking_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    reserves.sort();
    assert_eq!(reserves, ["row", "seat", "section", "sub"]);
    // Nothing was reserved: the whole of row 1 is still free.
    c.create("all", 2, "A", 1, 4, &[]);
    c.run();
    assert_eq!(seats(&c.last_status("all")["seats"]), ["1-1", "1-2", "1-3", "1-4"]);
    assert_no_errors(&c);
}

#[test]
fn repeated_commands_and_results_change_nothing() {
    let mut c = cluster();
    c.create("b1", 1, "A", 1, 2, &[]);
    c.create("b1", 1, "A", 1, 2, &[]);
    c.run();
    assert_eq!(
        c.statuses_of("b1").iter().map(|s| s["status"].clone()).collect::<Vec<_>>(),
        [json!("processing"), json!("pending_payment")]
    );
    // The same reserve request again re-emits the first outcome and
    // reserves nothing new.
    let reserve = c.values(TICKET_COMMAND_REQUEST).into_iter().find(|v| v["type"] == "reserve_seats").expect("reserve");
    c.send(TICKET_COMMAND_REQUEST, reserve.clone());
    while c.step(TICKET_COMMAND_REQUEST) {}
    let results = c.values(SEAT_RESERVATION_RESULT);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], results[1]);
    // … and ticketing ignores the repeated result.
    c.run();
    assert_eq!(c.statuses_of("b1").len(), 2);
    c.create("b2", 2, "A", 1, 2, &[]);
    c.run();
    assert_eq!(seats(&c.last_status("b2")["seats"]), ["1-3", "1-4"]);
    // Paying twice: the second is refused and nothing is finalized twice.
    c.pay("b1", 1);
    c.run();
    c.pay("b1", 1);
    c.run();
    let last = c.last_status("b1");
    assert_eq!(last["status"], "completed");
    assert!(last["reason"].is_string(), "{last}");
    let finals = c.values(TICKET_COMMAND_REQUEST).into_iter().filter(|v| v["type"] == "finalize_seats").count();
    assert_eq!(finals, 1);
    assert_no_errors(&c);
}

#[test]
fn sold_seats_stay_sold_and_released_seats_return() {
    let mut c = cluster();
    c.create("paid", 1, "A", 1, 2, &["1-1", "1-2"]);
    c.create("gone", 2, "A", 1, 2, &["1-3", "1-4"]);
    c.run();
    c.pay("paid", 1);
    c.cancel("gone", 2);
    c.run();
    assert_eq!(status_of(&c, "paid"), "completed");
    assert_eq!(status_of(&c, "gone"), "cancelled");
    // Payment is critical: the finalize command must be flushed at once.
    let finalize = c
        .log
        .iter()
        .find(|(a, r)| a == TICKET_COMMAND_REQUEST && String::from_utf8_lossy(&r.payload).contains("finalize_seats"))
        .expect("finalize");
    assert!(finalize.1.critical);
    let results = c.values(SEAT_RESERVATION_RESULT);
    assert!(results.iter().any(|r| r["type"] == "seats_sold" && seats(&r["seats"]) == ["1-1", "1-2"]));
    assert!(results.iter().any(|r| r["type"] == "seats_released" && seats(&r["seats"]) == ["1-3", "1-4"]));
    // A stray release of the paid booking frees nothing.
    c.send(
        TICKET_COMMAND_REQUEST,
        json!({"type": "release_seats", "booking_id": "paid", "section": "A", "subsection": 1}),
    );
    c.run();
    c.create("sold", 3, "A", 1, 1, &["1-1"]);
    c.create("freed", 4, "A", 1, 2, &["1-3", "1-4"]);
    c.run();
    assert_eq!(status_of(&c, "sold"), "failed");
    assert_eq!(status_of(&c, "freed"), "pending_payment");
    assert_no_errors(&c);
}

#[test]
fn cancel_while_processing_releases_the_seats_when_they_arrive() {
    let mut c = cluster();
    c.create("late", 1, "A", 1, 3, &[]);
    // Ticketing handles the create; the reserve waits in its topic.
    assert!(c.step("booking-command"));
    c.cancel("late", 1);
    assert!(c.step("booking-command"));
    assert_eq!(status_of(&c, "late"), "cancelled");
    // Now the seats arrive: ticketing releases them at once.
    c.run();
    let statuses: Vec<_> = c.statuses_of("late").iter().map(|s| s["status"].clone()).collect();
    assert_eq!(statuses, [json!("processing"), json!("cancelled")]);
    let results = c.values(SEAT_RESERVATION_RESULT);
    assert!(results.iter().any(|r| r["type"] == "seats_reserved"));
    assert!(results.iter().any(|r| r["type"] == "seats_released" && seats(&r["seats"]).len() == 3));
    c.create("next", 2, "A", 1, 3, &[]);
    c.run();
    assert_eq!(seats(&c.last_status("next")["seats"]), ["1-1", "1-2", "1-3"]);
    assert_no_errors(&c);
}

#[test]
fn refused_pay_and_cancel_change_nothing() {
    let mut c = cluster();
    c.create("b", 7, "A", 1, 1, &[]);
    assert!(c.step("booking-command"));
    // Paying a processing booking is refused.
    c.pay("b", 7);
    assert!(c.step("booking-command"));
    let s = c.last_status("b");
    assert_eq!((s["status"].as_str(), s["reason"].is_string()), (Some("processing"), true), "{s}");
    c.run();
    assert_eq!(status_of(&c, "b"), "pending_payment");
    // Another buyer may neither pay nor cancel.
    c.pay("b", 8);
    c.run();
    let s = c.last_status("b");
    assert_eq!((s["status"].as_str(), s["reason"].is_string()), (Some("pending_payment"), true), "{s}");
    c.cancel("b", 8);
    c.run();
    assert_eq!(status_of(&c, "b"), "pending_payment");
    c.pay("b", 7);
    c.run();
    assert_eq!(status_of(&c, "b"), "completed");
    // A completed booking cannot be cancelled.
    c.cancel("b", 7);
    c.run();
    let s = c.last_status("b");
    assert_eq!((s["status"].as_str(), s["reason"].is_string()), (Some("completed"), true), "{s}");
    assert!(!c.values(TICKET_COMMAND_REQUEST).iter().any(|v| v["type"] == "release_seats"));
    // Each refusal emitted exactly one status; the changes one each.
    let all: Vec<_> = c.statuses_of("b").iter().map(|s| s["status"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(
        all,
        ["processing", "processing", "pending_payment", "pending_payment", "pending_payment", "completed", "completed"]
    );
    assert_no_errors(&c);
}

/// Many buyers, few seats, random pays and cancels, random interleaving of
/// partitions: no seat is ever held by two bookings, and a sold seat never
/// comes back.
#[test]
fn randomized_bookings_never_double_book_a_seat() {
    for seed in [1u64, 2, 3] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut c = Cluster::new(1, 10);
        let subsections = [("A", 1u32, 4u32, 6u32), ("VIP", 2, 3, 5)];
        for (section, sub, rows, per_row) in subsections {
            c.configure(section, sub, rows, per_row, 50);
        }
        c.run();
        let mut buyers = HashMap::new();
        for i in 0..150u64 {
            let id = format!("r{seed}-{i}");
            let (section, sub, rows, per_row) = subsections[rng.random_range(0..subsections.len())];
            let quantity = rng.random_range(1..=4);
            let manual: Vec<String> = if rng.random_bool(0.3) {
                let mut picked = HashSet::new();
                while picked.len() < quantity as usize {
                    picked.insert(format!("{}-{}", rng.random_range(1..=rows), rng.random_range(1..=per_row)));
                }
                picked.into_iter().collect()
            } else {
                Vec::new()
            };
            let manual: Vec<&str> = manual.iter().map(String::as_str).collect();
            c.create(&id, i, section, sub, quantity, &manual);
            buyers.insert(id.clone(), i);
            // Pays and cancels race with the reservations.
            match rng.random_range(0..10) {
                0..3 => c.pay(&id, i),
                3..5 => c.cancel(&id, i),
                _ => {}
            }
            if rng.random_bool(0.2) {
                c.run_shuffled(&mut rng);
            }
        }
        c.run_shuffled(&mut rng);
        for (id, buyer) in &buyers {
            if rng.random_bool(0.5) {
                c.pay(id, *buyer);
            } else if rng.random_bool(0.3) {
                c.cancel(id, *buyer);
            }
        }
        c.run_shuffled(&mut rng);
        assert_no_errors(&c);

        // Replay the seat service's results in the order it produced them.
        let mut held: HashMap<String, String> = HashMap::new();
        let mut sold: HashSet<String> = HashSet::new();
        for r in c.values(SEAT_RESERVATION_RESULT) {
            let booking = r["booking_id"].as_str().unwrap_or_default().to_owned();
            let place = |seat: &str| format!("{}/{seat}", r["section"].as_str().unwrap_or("?"));
            match r["type"].as_str() {
                Some("seats_reserved") => {
                    for seat in seats(&r["seats"]) {
                        let seat = place(&seat);
                        if let Some(other) = held.get(&seat) {
                            // A repeated reserve re-emits the same seats.
                            assert_eq!(other, &booking, "seed {seed}: {seat} held by {other} and {booking}");
                        }
                        assert!(
                            !sold.contains(&seat) || held.get(&seat) == Some(&booking),
                            "seed {seed}: sold {seat} reserved again"
                        );
                        held.insert(seat, booking.clone());
                    }
                }
                Some("seats_released") | Some("seats_sold") => {
                    let released = r["type"] == "seats_released";
                    let mine: Vec<String> =
                        held.iter().filter(|(_, b)| **b == booking).map(|(s, _)| s.clone()).collect();
                    for seat in seats(&r["seats"]) {
                        let seat = mine
                            .iter()
                            .find(|s| s.ends_with(&format!("/{seat}")))
                            .cloned()
                            .unwrap_or_else(|| panic!("seed {seed}: {booking} settles {seat} it does not hold"));
                        if released {
                            assert!(!sold.contains(&seat), "seed {seed}: sold seat {seat} released");
                            held.remove(&seat);
                        } else {
                            sold.insert(seat);
                        }
                    }
                }
                _ => {}
            }
        }
        // Final statuses agree: seats of live bookings are disjoint.
        let mut owner: HashMap<(String, String), String> = HashMap::new();
        for id in buyers.keys() {
            let s = c.last_status(id);
            if matches!(s["status"].as_str(), Some("pending_payment" | "completed")) {
                let section = c
                    .values(TICKET_COMMAND_REQUEST)
                    .into_iter()
                    .find(|v| v["booking_id"] == id.as_str())
                    .map(|v| v["section"].as_str().unwrap_or("").to_owned())
                    .unwrap_or_default();
                for seat in seats(&s["seats"]) {
                    if let Some(other) = owner.insert((section.clone(), seat.clone()), id.clone()) {
                        panic!("seed {seed}: {section}/{seat} belongs to {other} and {id}");
                    }
                }
            }
        }
        assert!(!sold.is_empty() && !owner.is_empty(), "seed {seed}: the scenario sold nothing");
    }
}
