use super::*;
use serde_json::{Value, json};

fn p(row: u32, seat: u32) -> SeatPosition {
    SeatPosition { row, seat }
}

/// Serializes `msg`, compares with `expected`, and parses it back.
fn round_trip<T>(msg: &T, expected: Value)
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + core::fmt::Debug,
{
    let text = serde_json::to_string(msg).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), msg);
}

#[test]
fn booking_commands() {
    round_trip(
        &BookingCommand::CreateBooking(CreateBooking {
            booking_id: "b-1".into(),
            buyer_id: 42,
            section: "A".into(),
            subsection: 3,
            quantity: 2,
            seat_selection_mode: SeatSelectionMode::Manual,
            seat_positions: vec![p(2, 7), p(2, 8)],
        }),
        json!({"type": "create_booking", "booking_id": "b-1", "buyer_id": 42,
               "section": "A", "subsection": 3, "quantity": 2,
               "seat_selection_mode": "manual", "seat_positions": ["2-7", "2-8"]}),
    );
    round_trip(
        &BookingCommand::PayBooking(PayBooking { booking_id: "b-1".into(), buyer_id: 42 }),
        json!({"type": "pay_booking", "booking_id": "b-1", "buyer_id": 42}),
    );
    round_trip(
        &BookingCommand::CancelBooking(CancelBooking { booking_id: "b-1".into(), buyer_id: 42 }),
        json!({"type": "cancel_booking", "booking_id": "b-1", "buyer_id": 42}),
    );
}

#[test]
fn seat_commands() {
    round_trip(
        &SeatCommand::ConfigureSubsection(ConfigureSubsection {
            section: "A".into(),
            subsection: 1,
            rows: 10,
            seats_per_row: 20,
            price: 150,
        }),
        json!({"type": "configure_subsection", "section": "A", "subsection": 1,
               "rows": 10, "seats_per_row": 20, "price": 150}),
    );
    round_trip(
        &SeatCommand::ReserveSeats(ReserveSeats {
            booking_id: "b".into(),
            buyer_id: 1,
            section: "VIP".into(),
            subsection: 2,
            quantity: 1,
            seat_selection_mode: SeatSelectionMode::BestAvailable,
            seat_positions: vec![],
        }),
        json!({"type": "reserve_seats", "booking_id": "b", "buyer_id": 1, "section": "VIP",
               "subsection": 2, "quantity": 1, "seat_selection_mode": "best_available",
               "seat_positions": []}),
    );
    round_trip(
        &SeatCommand::ReleaseSeats(ReleaseSeats { booking_id: "b".into(), section: "A".into(), subsection: 2 }),
        json!({"type": "release_seats", "booking_id": "b", "section": "A", "subsection": 2}),
    );
    round_trip(
        &SeatCommand::FinalizeSeats(FinalizeSeats { booking_id: "b".into(), section: "A".into(), subsection: 2 }),
        json!({"type": "finalize_seats", "booking_id": "b", "section": "A", "subsection": 2}),
    );
}

#[test]
fn seat_results() {
    round_trip(
        &SeatResult::SeatsReserved(SeatsReserved {
            booking_id: "b".into(),
            section: "A".into(),
            subsection: 1,
            seats: vec![p(1, 1), p(1, 2)],
            total_price: 300,
        }),
        json!({"type": "seats_reserved", "booking_id": "b", "section": "A", "subsection": 1,
               "seats": ["1-1", "1-2"], "total_price": 300}),
    );
    round_trip(
        &SeatResult::ReservationFailed(ReservationFailed { booking_id: "b".into(), reason: "sold out".into() }),
        json!({"type": "reservation_failed", "booking_id": "b", "reason": "sold out"}),
    );
    round_trip(
        &SeatResult::SeatsReleased(SeatsReleased { booking_id: "b".into(), seats: vec![p(3, 4)] }),
        json!({"type": "seats_released", "booking_id": "b", "seats": ["3-4"]}),
    );
    round_trip(
        &SeatResult::SeatsSold(SeatsSold { booking_id: "b".into(), seats: vec![p(3, 4)] }),
        json!({"type": "seats_sold", "booking_id": "b", "seats": ["3-4"]}),
    );
}

#[test]
fn status_changed_omits_unknowns() {
    round_trip(
        &BookingStatusChanged {
            booking_id: "b".into(),
            buyer_id: 9,
            status: BookingStatus::Processing,
            seats: None,
            total_price: None,
            reason: None,
        },
        json!({"type": "booking_status_changed", "booking_id": "b", "buyer_id": 9,
               "status": "processing"}),
    );
    round_trip(
        &BookingStatusChanged {
            booking_id: "b".into(),
            buyer_id: 9,
            status: BookingStatus::PendingPayment,
            seats: Some(vec![p(1, 2)]),
            total_price: Some(100),
            reason: Some("why".into()),
        },
        json!({"type": "booking_status_changed", "booking_id": "b", "buyer_id": 9,
               "status": "pending_payment", "seats": ["1-2"], "total_price": 100,
               "reason": "why"}),
    );
}

#[test]
fn unknown_fields_ignored_and_positions_optional() {
    let cmd: BookingCommand = serde_json::from_str(
        r#"{"extra": {"x": [1]}, "type": "create_booking", "booking_id": "b", "buyer_id": 1,
            "section": "A", "subsection": 1, "quantity": 1,
            "seat_selection_mode": "best_available", "ts": 5}"#,
    )
    .unwrap();
    let BookingCommand::CreateBooking(c) = cmd else { panic!("wrong variant") };
    assert!(c.seat_positions.is_empty());
}

#[test]
fn rejects_poison() {
    for bad in [
        "not json",
        r#"{"booking_id": "b", "buyer_id": 1}"#,
        r#"{"type": "eat_booking", "booking_id": "b", "buyer_id": 1}"#,
        r#"{"type": "pay_booking", "booking_id": "b"}"#,
        r#"{"type": "pay_booking", "booking_id": "b", "buyer_id": -1}"#,
        r#"{"type": "pay_booking", "booking_id": 5, "buyer_id": 1}"#,
        r#"{"type": "create_booking", "booking_id": "b", "buyer_id": 1, "section": "A",
            "subsection": 1, "quantity": 1, "seat_selection_mode": "manual",
            "seat_positions": ["0-1"]}"#,
        r#"{"type": "create_booking", "booking_id": "b", "buyer_id": 1, "section": "A",
            "subsection": 1, "quantity": 1, "seat_selection_mode": "closest"}"#,
    ] {
        assert!(serde_json::from_str::<BookingCommand>(bad).is_err(), "{bad}");
    }
}

#[test]
fn terminal_statuses() {
    use BookingStatus::*;
    assert!(!Processing.is_terminal());
    assert!(!PendingPayment.is_terminal());
    assert!(Completed.is_terminal() && Cancelled.is_terminal() && Failed.is_terminal());
    for s in [Processing, PendingPayment, Completed, Cancelled, Failed] {
        assert_eq!(serde_json::to_value(s).unwrap(), Value::from(s.as_str()));
    }
}
