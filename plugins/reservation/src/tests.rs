use std::collections::{BTreeMap, BTreeSet};
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use serde_json::{Value, json};
use turnstile_protocol::{LogLevel, MemoryStore, Routing, SeatPosition};

use super::*;
use crate::record::{BookingRecord, Lifecycle};
use crate::seatmap::{SeatMap, SeatState};

fn send(store: &mut MemoryStore, msg: Value) -> Result<Vec<Value>, HandleError> {
    let outs = handle(store, 1, TICKET_COMMAND_REQUEST, msg.to_string().as_bytes())?;
    Ok(outs
        .into_iter()
        .map(|o| {
            assert_eq!(o.action, SEAT_RESERVATION_RESULT);
            assert!(!o.critical);
            let v: Value = serde_json::from_slice(&o.payload).unwrap();
            assert_eq!(o.routing, Routing::Booking(v["booking_id"].as_str().unwrap().into()));
            v
        })
        .collect())
}

fn ok(store: &mut MemoryStore, msg: Value) -> Vec<Value> {
    send(store, msg).unwrap()
}

fn configure(store: &mut MemoryStore, rows: u32, seats_per_row: u32) {
    let outs = ok(
        store,
        json!({"type": "configure_subsection", "section": "A", "subsection": 1,
               "rows": rows, "seats_per_row": seats_per_row, "price": 100}),
    );
    assert!(outs.is_empty());
}

fn best(id: &str, quantity: u32) -> Value {
    json!({"type": "reserve_seats", "booking_id": id, "buyer_id": 7, "section": "A",
           "subsection": 1, "quantity": quantity, "seat_selection_mode": "best_available",
           "seat_positions": []})
}

fn manual(id: &str, seats: &[&str]) -> Value {
    json!({"type": "reserve_seats", "booking_id": id, "buyer_id": 7, "section": "A",
           "subsection": 1, "quantity": seats.len(), "seat_selection_mode": "manual",
           "seat_positions": seats})
}

fn release(id: &str) -> Value {
    json!({"type": "release_seats", "booking_id": id, "section": "A", "subsection": 1})
}

fn finalize(id: &str) -> Value {
    json!({"type": "finalize_seats", "booking_id": id, "section": "A", "subsection": 1})
}

fn seat_map(store: &MemoryStore) -> SeatMap {
    SeatMap::from_bytes(store.map[&b"sub/A/1"[..]].clone()).unwrap()
}

fn state(store: &MemoryStore, seat: &str) -> SeatState {
    seat_map(store).get(seat.parse().unwrap()).unwrap()
}

fn failed_reason(outs: &[Value]) -> String {
    assert_eq!(outs.len(), 1, "{outs:?}");
    assert_eq!(outs[0]["type"], "reservation_failed", "{outs:?}");
    outs[0]["reason"].as_str().unwrap().into()
}

#[test]
fn reserve_best_available_emits_seats_and_price() {
    let mut s = MemoryStore::new();
    configure(&mut s, 2, 5);
    let outs = ok(&mut s, best("b1", 3));
    assert_eq!(
        outs,
        [json!({"type": "seats_reserved", "booking_id": "b1", "section": "A", "subsection": 1,
                "seats": ["1-1", "1-2", "1-3"], "total_price": 300})]
    );
    assert_eq!(state(&s, "1-3"), SeatState::Reserved);
    assert_eq!(state(&s, "1-4"), SeatState::Available);
    // Next run of 3 is in row 2: row 1 has only 1-4..1-5 left.
    assert_eq!(ok(&mut s, best("b2", 3))[0]["seats"], json!(["2-1", "2-2", "2-3"]));
}

#[test]
fn reserve_falls_back_to_longest_runs() {
    let mut s = MemoryStore::new();
    configure(&mut s, 2, 4);
    ok(&mut s, manual("x1", &["1-2", "2-3"]));
    // Row 1: 1-1 | 1-3..1-4; row 2: 2-1..2-2 | 2-4. No run of 3, so the
    // pairs in row order: 1-3, 1-4, then the start of 2-1..2-2.
    let outs = ok(&mut s, best("b", 3));
    assert_eq!(outs[0]["seats"], json!(["1-3", "1-4", "2-1"]));
    assert_eq!(outs[0]["total_price"], 300);
}

#[test]
fn reserve_is_idempotent() {
    let mut s = MemoryStore::new();
    configure(&mut s, 1, 4);
    let first = ok(&mut s, best("b", 2));
    let before = s.map.clone();
    assert_eq!(ok(&mut s, best("b", 2)), first);
    // Even a different request under the same id re-emits the first outcome.
    assert_eq!(ok(&mut s, manual("b", &["1-4"])), first);
    assert_eq!(s.map, before);
}

#[test]
fn manual_needs_existing_available_seats_or_reserves_nothing() {
    let mut s = MemoryStore::new();
    configure(&mut s, 2, 2);
    assert_eq!(ok(&mut s, manual("a", &["2-2"]))[0]["seats"], json!(["2-2"]));
    let reason = failed_reason(&ok(&mut s, manual("b", &["1-1", "2-2"])));
    assert!(reason.contains("2-2 is not available"), "{reason}");
    assert_eq!(state(&s, "1-1"), SeatState::Available);
    let reason = failed_reason(&ok(&mut s, manual("c", &["1-1", "3-1"])));
    assert!(reason.contains("3-1 does not exist"), "{reason}");
    assert_eq!(state(&s, "1-1"), SeatState::Available);
}

#[test]
fn unconfigured_subsection_fails_and_failure_is_remembered() {
    let mut s = MemoryStore::new();
    let reason = failed_reason(&ok(&mut s, best("b", 1)));
    assert!(reason.contains("A/1 is not configured"), "{reason}");
    configure(&mut s, 1, 1);
    assert_eq!(failed_reason(&ok(&mut s, best("b", 1))), reason);
    assert_eq!(state(&s, "1-1"), SeatState::Available);
}

#[test]
fn too_few_seats_fails_reserving_nothing() {
    let mut s = MemoryStore::new();
    configure(&mut s, 1, 3);
    ok(&mut s, manual("x", &["1-2"]));
    let reason = failed_reason(&ok(&mut s, best("b", 3)));
    assert!(reason.contains("3 requested, 2 available"), "{reason}");
    assert_eq!(state(&s, "1-1"), SeatState::Available);
    assert_eq!(state(&s, "1-3"), SeatState::Available);
}

#[test]
fn buyer_mistakes_fail_without_being_poison() {
    let mut s = MemoryStore::new();
    configure(&mut s, 2, 5);
    assert!(failed_reason(&ok(&mut s, best("q0", 0))).contains("quantity"));
    assert!(failed_reason(&ok(&mut s, best("q5", 5))).contains("quantity"));
    assert!(failed_reason(&ok(&mut s, manual("dup", &["1-1", "1-1"]))).contains("twice"));
    let mut with_positions = best("bp", 1);
    with_positions["seat_positions"] = json!(["1-1"]);
    assert!(failed_reason(&ok(&mut s, with_positions)).contains("best_available"));
    assert!(seat_map(&s).taken().next().is_none());
}

#[test]
fn poison_messages_are_invalid() {
    let mut s = MemoryStore::new();
    let invalid = |r: Result<Vec<Output>, HandleError>| matches!(r, Err(HandleError::Invalid(_)));
    assert!(invalid(handle(&mut s, 1, TICKET_COMMAND_REQUEST, b"{not json")));
    assert!(invalid(handle(&mut s, 1, TICKET_COMMAND_REQUEST, br#"{"type":"eat_seats"}"#)));
    assert!(invalid(handle(&mut s, 1, TICKET_COMMAND_REQUEST, br#"{"type":"release_seats","booking_id":"b"}"#)));
    assert!(invalid(handle(&mut s, 1, "booking-command", br#"{}"#)));
    for (rows, per_row) in [(0, 5), (5, 0), (100_000, 100_000)] {
        let msg = json!({"type": "configure_subsection", "section": "A", "subsection": 1,
                         "rows": rows, "seats_per_row": per_row, "price": 1});
        assert!(matches!(send(&mut s, msg), Err(HandleError::Invalid(_))));
    }
    assert!(s.map.is_empty());
}

#[test]
fn corrupt_state_is_reported_not_panicked_on() {
    let mut s = MemoryStore::new();
    s.map.insert(b"sub/A/1".to_vec(), vec![1, 2, 3]);
    assert!(matches!(send(&mut s, best("b", 1)), Err(HandleError::Invalid(_))));
}

#[test]
fn release_frees_once_and_only_reserved_seats() {
    let mut s = MemoryStore::new();
    configure(&mut s, 1, 4);
    ok(&mut s, best("b", 2));
    assert_eq!(
        ok(&mut s, release("b")),
        [json!({"type": "seats_released", "booking_id": "b", "seats": ["1-1", "1-2"]})]
    );
    assert_eq!(state(&s, "1-1"), SeatState::Available);
    let before = s.map.clone();
    assert!(ok(&mut s, release("b")).is_empty());
    assert!(ok(&mut s, finalize("b")).is_empty());
    assert!(ok(&mut s, release("unknown")).is_empty());
    assert_eq!(s.map, before);
    // Another booking now holds 1-1; the released booking cannot touch it.
    ok(&mut s, best("c", 1));
    assert!(ok(&mut s, release("b")).is_empty());
    assert_eq!(state(&s, "1-1"), SeatState::Reserved);
    // A failed booking has nothing to release.
    failed_reason(&ok(&mut s, manual("f", &["1-1"])));
    assert!(ok(&mut s, release("f")).is_empty());
}

#[test]
fn finalize_sells_once_and_sold_seats_are_never_released() {
    let mut s = MemoryStore::new();
    configure(&mut s, 1, 4);
    ok(&mut s, manual("b", &["1-3", "1-1"]));
    assert_eq!(ok(&mut s, finalize("b")), [json!({"type": "seats_sold", "booking_id": "b", "seats": ["1-3", "1-1"]})]);
    assert_eq!(state(&s, "1-1"), SeatState::Sold);
    assert!(ok(&mut s, finalize("b")).is_empty());
    assert!(ok(&mut s, release("b")).is_empty());
    assert_eq!(state(&s, "1-3"), SeatState::Sold);
    assert!(failed_reason(&ok(&mut s, manual("c", &["1-1"]))).contains("not available"));
}

#[test]
fn resize_keeps_taken_seats_and_refuses_to_drop_them() {
    let mut s = MemoryStore::new();
    configure(&mut s, 2, 3);
    ok(&mut s, manual("b", &["2-3"]));
    configure(&mut s, 3, 4);
    let m = seat_map(&s);
    assert_eq!((m.rows(), m.seats_per_row()), (3, 4));
    assert_eq!(state(&s, "2-3"), SeatState::Reserved);
    let before = s.map.clone();
    configure(&mut s, 1, 4);
    assert_eq!(s.map, before);
    assert!(s.logs.iter().any(|(l, m)| *l == LogLevel::Warn && m.contains("2-3")));
    ok(&mut s, release("b"));
    configure(&mut s, 1, 2);
    assert_eq!(seat_map(&s).rows(), 1);
}

#[test]
fn price_change_applies_to_new_reservations_only() {
    let mut s = MemoryStore::new();
    configure(&mut s, 1, 4);
    let first = ok(&mut s, best("a", 1));
    ok(
        &mut s,
        json!({"type": "configure_subsection", "section": "A", "subsection": 1,
               "rows": 1, "seats_per_row": 4, "price": 250}),
    );
    assert_eq!(ok(&mut s, best("b", 2))[0]["total_price"], 500);
    assert_eq!(ok(&mut s, best("a", 1)), first);
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Checks that seat states and booking records agree: each reserved or sold
/// seat belongs to exactly one booking in the matching lifecycle.
fn check_invariants(s: &MemoryStore, ever_sold: &mut BTreeSet<SeatPosition>) {
    let map = seat_map(s);
    let mut holder: BTreeMap<SeatPosition, (String, Lifecycle)> = BTreeMap::new();
    for (key, value) in &s.map {
        let Some(id) = key.strip_prefix(b"bk/") else {
            continue;
        };
        if let BookingRecord::Seated { seats, lifecycle, .. } = BookingRecord::decode(value).unwrap() {
            if lifecycle == Lifecycle::Released {
                continue;
            }
            for seat in seats {
                let id = String::from_utf8(id.to_vec()).unwrap();
                if let Some(other) = holder.insert(seat, (id.clone(), lifecycle)) {
                    panic!("seat {seat} held by {} and {id}", other.0);
                }
            }
        }
    }
    for row in 1..=map.rows() {
        for seat in 1..=map.seats_per_row() {
            let p = SeatPosition { row, seat };
            let expected = match holder.get(&p) {
                None => SeatState::Available,
                Some((_, Lifecycle::Reserved)) => SeatState::Reserved,
                Some(_) => SeatState::Sold,
            };
            assert_eq!(map.get(p), Some(expected), "seat {p}");
            if expected == SeatState::Sold {
                ever_sold.insert(p);
            } else {
                assert!(!ever_sold.contains(&p), "sold seat {p} came back");
            }
        }
    }
}

#[test]
fn random_traffic_never_double_books_or_unsells() {
    for seed in 1..=5u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut s = MemoryStore::new();
        s.keep_logs = false;
        configure(&mut s, 4, 6);
        let mut ever_sold = BTreeSet::new();
        for _ in 0..600 {
            let id = format!("b{}", rng.below(80));
            let msg = match rng.below(10) {
                0..=4 if rng.below(2) == 0 => best(&id, rng.below(5) as u32 + 1),
                0..=4 => {
                    let n = rng.below(4) + 1;
                    let seats: Vec<String> =
                        (0..n).map(|_| format!("{}-{}", rng.below(5) + 1, rng.below(7) + 1)).collect();
                    let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
                    manual(&id, &seats)
                }
                5..=7 => release(&id),
                _ => finalize(&id),
            };
            let outs = ok(&mut s, msg);
            assert!(outs.len() <= 1);
            check_invariants(&s, &mut ever_sold);
        }
        assert!(!ever_sold.is_empty(), "seed {seed} sold nothing: weak test");
    }
}
