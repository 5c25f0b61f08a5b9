//! Bookings as `booking-status-changed` tells them (read `read_committed`,
//! rebuilt from the topic at start), plus the ones this gateway accepted
//! whose first status has not arrived yet, and the idempotency keys.

use std::collections::HashMap;

use serde::Serialize;
use turnstile_protocol::{BookingStatus, BookingStatusChanged, SeatPosition};

/// A booking's latest state (`GET /bookings/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Booking {
    pub booking_id: String,
    pub buyer_id: u64,
    pub status: BookingStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<Vec<SeatPosition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_price: Option<u64>,
    /// Why it failed, or why the last command on it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Status messages seen for it.
    pub updates: u64,
}

impl Booking {
    fn accepted(booking_id: &str, buyer_id: u64) -> Self {
        Booking {
            booking_id: booking_id.to_owned(),
            buyer_id,
            status: BookingStatus::Processing,
            seats: None,
            total_price: None,
            reason: None,
            updates: 0,
        }
    }
}

/// What an idempotency key was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Keyed {
    booking_id: String,
    /// The request it came with: a different one under the same key is refused.
    request: Vec<u8>,
}

/// Outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// New: publish under this booking id.
    New,
    /// Seen with the same request: answer with its booking id, publish nothing.
    Replay(String),
    /// Seen with another request.
    Conflict,
}

/// Every booking of the event.
#[derive(Debug, Default)]
pub struct Bookings {
    by_id: HashMap<String, Booking>,
    by_buyer: HashMap<u64, Vec<String>>,
    keys: HashMap<(u64, String), Keyed>,
}

impl Bookings {
    /// Books a status message; returns the booking as it is now.
    pub fn apply(&mut self, msg: &BookingStatusChanged) -> Booking {
        let booking = self.entry(&msg.booking_id, msg.buyer_id);
        // A refusal repeats the unchanged status with its reason; the
        // seats and price of the last change stay.
        booking.status = msg.status;
        if msg.seats.is_some() {
            booking.seats = msg.seats.clone();
        }
        if msg.total_price.is_some() {
            booking.total_price = msg.total_price;
        }
        booking.reason = msg.reason.clone();
        booking.updates += 1;
        booking.clone()
    }

    /// A booking this gateway just published, `processing` until its first status arrives.
    pub fn accept(&mut self, booking_id: &str, buyer_id: u64) {
        self.entry(booking_id, buyer_id);
    }

    fn entry(&mut self, booking_id: &str, buyer_id: u64) -> &mut Booking {
        if !self.by_id.contains_key(booking_id) {
            self.by_buyer.entry(buyer_id).or_default().push(booking_id.to_owned());
        }
        self.by_id.entry(booking_id.to_owned()).or_insert_with(|| Booking::accepted(booking_id, buyer_id))
    }

    /// The booking, if `buyer` owns it (someone else's is as good as unknown).
    pub fn get(&self, booking_id: &str, buyer: u64) -> Option<&Booking> {
        self.by_id.get(booking_id).filter(|b| b.buyer_id == buyer)
    }

    /// The buyer's bookings, oldest first.
    pub fn of_buyer(&self, buyer: u64) -> Vec<Booking> {
        self.by_buyer.get(&buyer).into_iter().flatten().filter_map(|id| self.by_id.get(id)).cloned().collect()
    }

    /// Claims `key` of `buyer` for `request` and, if new, for `booking_id`.
    pub fn claim(&mut self, buyer: u64, key: &str, request: &[u8], booking_id: &str) -> Claim {
        match self.keys.get(&(buyer, key.to_owned())) {
            Some(k) if k.request == request => Claim::Replay(k.booking_id.clone()),
            Some(_) => Claim::Conflict,
            None => {
                self.keys.insert(
                    (buyer, key.to_owned()),
                    Keyed { booking_id: booking_id.to_owned(), request: request.to_vec() },
                );
                Claim::New
            }
        }
    }

    /// Gives a claimed key back (its publish failed).
    pub fn release(&mut self, buyer: u64, key: &str) {
        self.keys.remove(&(buyer, key.to_owned()));
    }

    /// Remembers a key read back from a create command's header (at start).
    pub fn remember(&mut self, buyer: u64, key: &str, request: &[u8], booking_id: &str) {
        self.keys
            .entry((buyer, key.to_owned()))
            .or_insert_with(|| Keyed { booking_id: booking_id.to_owned(), request: request.to_vec() });
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, buyer: u64, status: BookingStatus, reason: Option<&str>) -> BookingStatusChanged {
        BookingStatusChanged {
            booking_id: id.into(),
            buyer_id: buyer,
            status,
            seats: (status == BookingStatus::PendingPayment).then(|| vec![SeatPosition { row: 1, seat: 1 }]),
            total_price: (status == BookingStatus::PendingPayment).then_some(100),
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn the_latest_status_wins_and_only_its_buyer_sees_it() {
        let mut b = Bookings::default();
        b.accept("b1", 7);
        assert_eq!(b.get("b1", 7).unwrap().status, BookingStatus::Processing);
        b.apply(&status("b1", 7, BookingStatus::Processing, None));
        b.apply(&status("b1", 7, BookingStatus::PendingPayment, None));
        // A refused cancel by someone else repeats the status with a reason.
        let now = b.apply(&status("b1", 7, BookingStatus::PendingPayment, Some("not your booking")));
        assert_eq!(now.seats, Some(vec![SeatPosition { row: 1, seat: 1 }]));
        assert_eq!(now.total_price, Some(100));
        assert_eq!(now.updates, 3);
        assert!(b.get("b1", 8).is_none());
        assert_eq!(b.of_buyer(7).len(), 1);
        assert!(b.of_buyer(8).is_empty());
    }

    #[test]
    fn an_idempotency_key_maps_one_request_to_one_booking() {
        let mut b = Bookings::default();
        assert_eq!(b.claim(7, "k", b"{}", "b1"), Claim::New);
        assert_eq!(b.claim(7, "k", b"{}", "b2"), Claim::Replay("b1".into()));
        assert_eq!(b.claim(7, "k", b"{\"other\":1}", "b3"), Claim::Conflict);
        assert_eq!(b.claim(8, "k", b"{}", "b4"), Claim::New, "keys are per buyer");
        b.release(7, "k");
        assert_eq!(b.claim(7, "k", b"{}", "b5"), Claim::New);
    }
}
