//! Both services wired together natively: outputs of one are fed to the
//! other until nothing is left, as the host would over Kafka.

use std::collections::VecDeque;

use serde_json::{Value, json};
use turnstile_protocol::{
    BOOKING_COMMAND, BOOKING_STATUS_CHANGED, MemoryStore, SEAT_RESERVATION_RESULT, TICKET_COMMAND_REQUEST,
};

#[derive(Default)]
struct Deployment {
    ticketing: MemoryStore,
    reservation: MemoryStore,
    /// Status messages the client saw, in order.
    statuses: Vec<Value>,
}

impl Deployment {
    fn send(&mut self, action: &str, msg: Value) {
        let mut queue = VecDeque::from([(action.to_string(), msg.to_string().into_bytes())]);
        while let Some((action, payload)) = queue.pop_front() {
            let outputs = match action.as_str() {
                BOOKING_COMMAND | SEAT_RESERVATION_RESULT => {
                    turnstile_ticketing::handle(&mut self.ticketing, 1, &action, &payload)
                }
                TICKET_COMMAND_REQUEST => turnstile_reservation::handle(&mut self.reservation, 1, &action, &payload),
                BOOKING_STATUS_CHANGED => {
                    self.statuses.push(serde_json::from_slice(&payload).unwrap());
                    continue;
                }
                other => panic!("unexpected action {other}"),
            }
            .unwrap();
            queue.extend(outputs.into_iter().map(|o| (o.action, o.payload)));
        }
    }

    fn last_status(&self, id: &str) -> &Value {
        self.statuses.iter().rev().find(|s| s["booking_id"] == id).unwrap()
    }
}

fn create(id: &str, quantity: u32) -> Value {
    json!({"type": "create_booking", "booking_id": id, "buyer_id": 1, "section": "A",
           "subsection": 1, "quantity": quantity, "seat_selection_mode": "best_available"})
}

#[test]
fn book_pay_cancel_and_sell_out() {
    let mut d = Deployment::default();
    d.send(
        TICKET_COMMAND_REQUEST,
        json!({"type": "configure_subsection", "section": "A", "subsection": 1,
               "rows": 1, "seats_per_row": 4, "price": 50}),
    );
    d.send(BOOKING_COMMAND, create("a", 2));
    assert_eq!(
        d.last_status("a"),
        &json!({"type": "booking_status_changed", "booking_id": "a", "buyer_id": 1,
                "status": "pending_payment", "seats": ["1-1", "1-2"], "total_price": 100})
    );
    d.send(BOOKING_COMMAND, create("b", 2));
    d.send(BOOKING_COMMAND, create("c", 1));
    assert_eq!(d.last_status("c")["status"], "failed");
    d.send(BOOKING_COMMAND, json!({"type": "pay_booking", "booking_id": "a", "buyer_id": 1}));
    assert_eq!(d.last_status("a")["status"], "completed");
    d.send(BOOKING_COMMAND, json!({"type": "cancel_booking", "booking_id": "b", "buyer_id": 1}));
    assert_eq!(d.last_status("b")["status"], "cancelled");
    // b's seats are free again; a's are sold for good.
    d.send(BOOKING_COMMAND, create("d", 2));
    assert_eq!(d.last_status("d")["seats"], json!(["1-3", "1-4"]));
    d.send(BOOKING_COMMAND, create("e", 1));
    assert_eq!(d.last_status("e")["status"], "failed");
    let statuses = ["processing", "pending_payment", "completed"];
    let a: Vec<_> = d.statuses.iter().filter(|s| s["booking_id"] == "a").collect();
    assert_eq!(a.iter().map(|s| s["status"].as_str().unwrap()).collect::<Vec<_>>(), statuses);
}
