use std::string::String;
use std::vec::Vec;

use serde_json::{Value, json};
use turnstile_protocol::{LogLevel, MemoryStore, Routing};

use super::*;

/// An output as (action, routing, payload JSON, critical).
type Out = (String, Routing, Value, bool);

fn send(store: &mut MemoryStore, action: &str, msg: Value) -> Vec<Out> {
    handle(store, 1, action, msg.to_string().as_bytes())
        .unwrap()
        .into_iter()
        .map(|o| (o.action, o.routing, serde_json::from_slice(&o.payload).unwrap(), o.critical))
        .collect()
}

fn cmd(store: &mut MemoryStore, msg: Value) -> Vec<Out> {
    send(store, BOOKING_COMMAND, msg)
}

fn result(store: &mut MemoryStore, msg: Value) -> Vec<Out> {
    send(store, SEAT_RESERVATION_RESULT, msg)
}

fn create(id: &str, quantity: u32) -> Value {
    json!({"type": "create_booking", "booking_id": id, "buyer_id": 7, "section": "A",
           "subsection": 2, "quantity": quantity, "seat_selection_mode": "best_available",
           "seat_positions": []})
}

fn create_manual(id: &str, seats: &[&str], quantity: u32) -> Value {
    json!({"type": "create_booking", "booking_id": id, "buyer_id": 7, "section": "A",
           "subsection": 2, "quantity": quantity, "seat_selection_mode": "manual",
           "seat_positions": seats})
}

fn reserved(id: &str) -> Value {
    json!({"type": "seats_reserved", "booking_id": id, "section": "A", "subsection": 2,
           "seats": ["1-1", "1-2"], "total_price": 200})
}

fn pay(id: &str, buyer: u64) -> Value {
    json!({"type": "pay_booking", "booking_id": id, "buyer_id": buyer})
}

fn cancel(id: &str, buyer: u64) -> Value {
    json!({"type": "cancel_booking", "booking_id": id, "buyer_id": buyer})
}

fn section() -> Routing {
    Routing::Section { section: "A".into(), subsection: 2 }
}

/// Asserts `out` is exactly one status message and returns it.
fn only_status(out: &[Out]) -> &Value {
    assert_eq!(out.len(), 1, "{out:?}");
    status_of(&out[0])
}

fn status_of(out: &Out) -> &Value {
    assert_eq!(out.0, BOOKING_STATUS_CHANGED);
    assert_eq!(out.1, Routing::Booking(out.2["booking_id"].as_str().unwrap().into()));
    assert!(!out.3);
    &out.2
}

/// A booking in `pending_payment` with seats 1-1, 1-2 for 200.
fn pending(store: &mut MemoryStore, id: &str) {
    cmd(store, create(id, 2));
    let out = result(store, reserved(id));
    assert_eq!(only_status(&out)["status"], "pending_payment");
}

#[test]
fn create_emits_processing_and_reserve() {
    let mut s = MemoryStore::new();
    let out = cmd(&mut s, create_manual("b", &["1-1", "1-2"], 2));
    assert_eq!(out.len(), 2);
    assert_eq!(
        status_of(&out[0]),
        &json!({"type": "booking_status_changed", "booking_id": "b", "buyer_id": 7,
                "status": "processing"})
    );
    assert_eq!(out[1].0, TICKET_COMMAND_REQUEST);
    assert_eq!(out[1].1, section());
    assert!(!out[1].3);
    assert_eq!(
        out[1].2,
        json!({"type": "reserve_seats", "booking_id": "b", "buyer_id": 7, "section": "A",
               "subsection": 2, "quantity": 2, "seat_selection_mode": "manual",
               "seat_positions": ["1-1", "1-2"]})
    );
}

#[test]
fn duplicate_create_does_nothing() {
    let mut s = MemoryStore::new();
    cmd(&mut s, create("b", 1));
    let before = s.map.clone();
    assert!(cmd(&mut s, create("b", 3)).is_empty());
    assert_eq!(s.map, before);
}

#[test]
fn buyer_mistakes_make_failed_bookings() {
    let mut s = MemoryStore::new();
    let cases = [
        (create("q0", 0), "quantity"),
        (create("q5", 5), "quantity"),
        (create_manual("few", &["1-1"], 2), "exactly 2"),
        (create_manual("dup", &["1-1", "1-1"], 2), "twice"),
        (create_manual("none", &[], 1), "exactly 1"),
    ];
    for (msg, why) in cases {
        let out = cmd(&mut s, msg);
        let status = only_status(&out);
        assert_eq!(status["status"], "failed");
        assert!(status["reason"].as_str().unwrap().contains(why), "{status}");
    }
    let mut with_positions = create("bp", 1);
    with_positions["seat_positions"] = json!(["1-1"]);
    assert_eq!(only_status(&cmd(&mut s, with_positions))["status"], "failed");
    // Failed is terminal and remembered.
    assert!(cmd(&mut s, create("q0", 1)).is_empty());
    assert!(result(&mut s, reserved("q0")).is_empty());
}

#[test]
fn poison_messages_are_invalid() {
    let mut s = MemoryStore::new();
    let invalid = |s: &mut MemoryStore, action: &str, payload: &[u8]| {
        matches!(handle(s, 1, action, payload), Err(HandleError::Invalid(_)))
    };
    assert!(invalid(&mut s, BOOKING_COMMAND, b"nope"));
    assert!(invalid(&mut s, BOOKING_COMMAND, br#"{"type":"refund_booking","booking_id":"b"}"#));
    assert!(invalid(&mut s, BOOKING_COMMAND, br#"{"type":"pay_booking","booking_id":"b"}"#));
    assert!(invalid(&mut s, BOOKING_COMMAND, br#"{"type":"seats_sold","booking_id":"b","seats":[]}"#));
    assert!(invalid(&mut s, SEAT_RESERVATION_RESULT, br#"{"type":"create_booking"}"#));
    assert!(invalid(&mut s, TICKET_COMMAND_REQUEST, br#"{}"#));
    assert!(s.map.is_empty());
}

#[test]
fn seats_reserved_moves_processing_to_pending_payment() {
    let mut s = MemoryStore::new();
    cmd(&mut s, create("b", 2));
    let out = result(&mut s, reserved("b"));
    assert_eq!(
        only_status(&out),
        &json!({"type": "booking_status_changed", "booking_id": "b", "buyer_id": 7,
                "status": "pending_payment", "seats": ["1-1", "1-2"], "total_price": 200})
    );
    let before = s.map.clone();
    assert!(result(&mut s, reserved("b")).is_empty());
    assert_eq!(s.map, before);
}

#[test]
fn reservation_failed_fails_processing_only() {
    let mut s = MemoryStore::new();
    cmd(&mut s, create("b", 2));
    let failed = json!({"type": "reservation_failed", "booking_id": "b", "reason": "sold out"});
    let out = result(&mut s, failed.clone());
    let status = only_status(&out);
    assert_eq!((&status["status"], &status["reason"]), (&json!("failed"), &json!("sold out")));
    assert!(result(&mut s, failed.clone()).is_empty());
    pending(&mut s, "p");
    let mut late = failed;
    late["booking_id"] = json!("p");
    assert!(result(&mut s, late).is_empty());
}

#[test]
fn results_for_unknown_bookings_are_logged_and_ignored() {
    let mut s = MemoryStore::new();
    assert!(result(&mut s, reserved("ghost")).is_empty());
    assert!(s.map.is_empty());
    assert!(s.logs.iter().any(|(l, m)| *l == LogLevel::Warn && m.contains("ghost")));
}

#[test]
fn pay_completes_and_finalizes_critically() {
    let mut s = MemoryStore::new();
    pending(&mut s, "b");
    let out = cmd(&mut s, pay("b", 7));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        (
            TICKET_COMMAND_REQUEST.into(),
            section(),
            json!({"type": "finalize_seats", "booking_id": "b", "section": "A", "subsection": 2}),
            true
        )
    );
    let status = status_of(&out[1]);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["seats"], json!(["1-1", "1-2"]));
    // Paying again is a refusal with the unchanged status.
    let before = s.map.clone();
    let status = only_status(&cmd(&mut s, pay("b", 7))).clone();
    assert_eq!(status["status"], "completed");
    assert!(status["reason"].as_str().unwrap().contains("pending_payment"));
    assert_eq!(s.map, before);
}

#[test]
fn pay_refusals_change_nothing() {
    let mut s = MemoryStore::new();
    cmd(&mut s, create("b", 2));
    let before = s.map.clone();
    let status = only_status(&cmd(&mut s, pay("b", 7))).clone();
    assert_eq!(status["status"], "processing");
    assert!(status["reason"].as_str().unwrap().contains("is processing"));
    result(&mut s, reserved("b"));
    let before_pay = s.map.clone();
    let status = only_status(&cmd(&mut s, pay("b", 8))).clone();
    assert_eq!(status["status"], "pending_payment");
    assert_eq!(status["buyer_id"], 7);
    assert!(status["reason"].as_str().unwrap().contains("buyer 8"));
    assert_eq!(s.map, before_pay);
    assert_ne!(s.map, before);
}

#[test]
fn cancel_pending_payment_releases_seats() {
    let mut s = MemoryStore::new();
    pending(&mut s, "b");
    let out = cmd(&mut s, cancel("b", 7));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        (
            TICKET_COMMAND_REQUEST.into(),
            section(),
            json!({"type": "release_seats", "booking_id": "b", "section": "A", "subsection": 2}),
            false
        )
    );
    assert_eq!(status_of(&out[1])["status"], "cancelled");
    // A late duplicate of the reservation does not release twice.
    assert!(result(&mut s, reserved("b")).is_empty());
    let status = only_status(&cmd(&mut s, cancel("b", 7))).clone();
    assert_eq!(status["status"], "cancelled");
    assert!(status["reason"].as_str().unwrap().contains("is cancelled"));
    let status = only_status(&cmd(&mut s, pay("b", 7))).clone();
    assert_eq!(status["status"], "cancelled");
}

#[test]
fn cancel_while_processing_releases_seats_when_they_arrive() {
    let mut s = MemoryStore::new();
    cmd(&mut s, create("b", 2));
    let out = cmd(&mut s, cancel("b", 7));
    assert_eq!(only_status(&out)["status"], "cancelled");
    let out = result(&mut s, reserved("b"));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, section());
    assert_eq!(out[0].2["type"], "release_seats");
    let before = s.map.clone();
    assert!(result(&mut s, reserved("b")).is_empty());
    assert_eq!(s.map, before);
    // A failure arriving instead changes nothing either.
    let failed = json!({"type": "reservation_failed", "booking_id": "b", "reason": "x"});
    assert!(result(&mut s, failed).is_empty());
}

#[test]
fn cancel_refusals() {
    let mut s = MemoryStore::new();
    pending(&mut s, "b");
    let before = s.map.clone();
    let status = only_status(&cmd(&mut s, cancel("b", 9))).clone();
    assert_eq!(status["status"], "pending_payment");
    assert!(status["reason"].as_str().unwrap().contains("buyer 9"));
    assert_eq!(s.map, before);
    cmd(&mut s, pay("b", 7));
    let status = only_status(&cmd(&mut s, cancel("b", 7))).clone();
    assert_eq!(status["status"], "completed");
    assert!(status["reason"].as_str().unwrap().contains("is completed"));
    cmd(&mut s, create("f", 0));
    let status = only_status(&cmd(&mut s, cancel("f", 7))).clone();
    assert_eq!(status["status"], "failed");
    assert!(status["reason"].as_str().unwrap().contains("is failed"));
}

#[test]
fn informational_results_change_nothing() {
    let mut s = MemoryStore::new();
    pending(&mut s, "b");
    let before = s.map.clone();
    let released = json!({"type": "seats_released", "booking_id": "b", "seats": ["1-1"]});
    let sold = json!({"type": "seats_sold", "booking_id": "b", "seats": ["1-1"]});
    assert!(result(&mut s, released).is_empty());
    assert!(result(&mut s, sold).is_empty());
    assert_eq!(s.map, before);
}

/// Every state change emits exactly one status message: drive random
/// command/result sequences and compare the stored status before and after.
#[test]
fn every_status_change_emits_exactly_one_status_message() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut s = MemoryStore::new();
    s.keep_logs = false;
    let status_of_booking = |s: &MemoryStore, id: &str| {
        s.map.get(format!("b/{id}").as_bytes()).map(|b| record::Booking::decode(b).unwrap().status)
    };
    for _ in 0..2000 {
        let id = format!("b{}", next(20));
        let buyer = 7 + next(4) / 3; // mostly the right buyer
        let (action, msg) = match next(6) {
            0 => (BOOKING_COMMAND, create(&id, next(6) as u32)),
            1 => (BOOKING_COMMAND, pay(&id, buyer)),
            2 => (BOOKING_COMMAND, cancel(&id, buyer)),
            3 => (SEAT_RESERVATION_RESULT, reserved(&id)),
            4 => (SEAT_RESERVATION_RESULT, json!({"type": "reservation_failed", "booking_id": id, "reason": "r"})),
            _ => (SEAT_RESERVATION_RESULT, json!({"type": "seats_sold", "booking_id": id, "seats": []})),
        };
        let before = status_of_booking(&s, &id);
        let Ok(out) = handle(&mut s, 1, action, msg.to_string().as_bytes()) else {
            assert_eq!(before, None, "only a command for an unknown booking is refused as invalid");
            assert_eq!(status_of_booking(&s, &id), None);
            continue;
        };
        let out: Vec<Out> = out
            .into_iter()
            .map(|o| (o.action, o.routing, serde_json::from_slice(&o.payload).unwrap(), o.critical))
            .collect();
        let after = status_of_booking(&s, &id);
        let statuses: Vec<_> = out.iter().filter(|o| o.0 == BOOKING_STATUS_CHANGED).collect();
        if before != after {
            assert_eq!(statuses.len(), 1, "{before:?} -> {after:?}: {out:?}");
            assert_eq!(statuses[0].2["status"], after.unwrap().as_str());
            if let Some(b) = before {
                assert!(!b.is_terminal(), "terminal {b:?} changed to {after:?}");
            }
        } else {
            assert!(statuses.len() <= 1);
        }
    }
}

fn error(store: &mut MemoryStore, msg: Value) -> HandleError {
    handle(store, 1, BOOKING_COMMAND, msg.to_string().as_bytes()).unwrap_err()
}

#[test]
fn pay_or_cancel_of_an_unknown_booking_is_invalid() {
    let mut s = MemoryStore::new();
    for msg in [pay("ghost", 7), cancel("ghost", 7)] {
        match error(&mut s, msg) {
            HandleError::Invalid(reason) => assert!(reason.starts_with("unknown booking"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(s.map.is_empty());
}

#[test]
fn an_oversized_section_fails_the_booking_without_keeping_it() {
    let mut s = MemoryStore::new();
    let mut c = create("b", 1);
    c["section"] = json!("S".repeat(900 * 1024));
    let out = cmd(&mut s, c);
    assert_eq!(out.len(), 1, "a failed status and no reserve_seats: {}", out.len());
    let status = status_of(&out[0]);
    assert_eq!(status["status"], "failed");
    assert!(status["reason"].as_str().unwrap().contains("longer than 64"), "{status}");
    let stored: usize = s.map.values().map(Vec::len).sum();
    assert!(stored < 1024, "the section's bytes are not stored ({stored} bytes)");
}

#[test]
fn an_oversized_booking_id_is_invalid() {
    let mut s = MemoryStore::new();
    assert!(matches!(error(&mut s, create(&"b".repeat(4096), 1)), HandleError::Invalid(_)));
    assert!(s.map.is_empty());
}
