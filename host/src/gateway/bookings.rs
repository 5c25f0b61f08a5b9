//! Bookings as `booking-status-changed` tells them (read `read_committed`,
//! rebuilt from the topic at start), plus the ones this gateway accepted
//! whose first status has not arrived yet, and each buyer's caps.

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
    /// Tickets asked for (0 when its create was not seen).
    #[serde(skip)]
    pub quantity: u32,
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
            quantity: 0,
        }
    }

    /// Whether it holds seats or may still: processing, pending or sold.
    fn holds_tickets(&self) -> bool {
        !matches!(self.status, BookingStatus::Failed | BookingStatus::Cancelled)
    }

    fn tickets(&self) -> u32 {
        self.seats.as_ref().map_or(self.quantity, |s| s.len() as u32)
    }
}

/// Per-buyer caps at the gateway (0: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_open_bookings: u32,
    pub max_tickets: u32,
}

/// A create a buyer's caps refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "you have {open} open bookings (processing or pending payment), the most this gateway allows \
         (gateway.max_open_bookings_per_buyer = {limit}); pay or cancel one first"
    )]
    OpenBookings { open: u32, limit: u32 },
    #[error(
        "{quantity} more tickets would make {total}, more than this event allows one buyer \
         (gateway.max_tickets_per_buyer = {limit})"
    )]
    Tickets { quantity: u32, total: u32, limit: u32 },
}

impl LimitError {
    /// The limit's name, for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            LimitError::OpenBookings { .. } => "max_open_bookings_per_buyer",
            LimitError::Tickets { .. } => "max_tickets_per_buyer",
        }
    }
}

/// Creates admitted under a buyer's caps whose delivery is not settled yet.
#[derive(Debug, Default, Clone, Copy)]
struct InFlight {
    bookings: u32,
    tickets: u32,
}

/// Every booking of the event.
#[derive(Debug, Default)]
pub struct Bookings {
    by_id: HashMap<String, Booking>,
    by_buyer: HashMap<u64, Vec<String>>,
    in_flight: HashMap<u64, InFlight>,
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

    /// A create published (by this gateway, or read back from the
    /// commands): `processing` until its first status arrives.
    pub fn accept(&mut self, booking_id: &str, buyer_id: u64, quantity: u32) {
        let booking = self.entry(booking_id, buyer_id);
        booking.quantity = quantity;
    }

    /// Admits a create of `quantity` tickets under `buyer`'s caps, counting
    /// creates still in flight; [`settle`](Self::settle) ends the admission.
    /// Exact for concurrent requests of one buyer, as all go through here.
    pub fn admit(&mut self, buyer: u64, quantity: u32, limits: Limits) -> Result<(), LimitError> {
        let in_flight = self.in_flight.get(&buyer).copied().unwrap_or_default();
        let mine = || self.by_buyer.get(&buyer).into_iter().flatten().filter_map(|id| self.by_id.get(id));
        if limits.max_open_bookings > 0 {
            let open = mine().filter(|b| !b.status.is_terminal()).count() as u32 + in_flight.bookings;
            if open >= limits.max_open_bookings {
                return Err(LimitError::OpenBookings { open, limit: limits.max_open_bookings });
            }
        }
        if limits.max_tickets > 0 {
            let held: u32 = mine().filter(|b| b.holds_tickets()).map(Booking::tickets).sum::<u32>() + in_flight.tickets;
            let total = held.saturating_add(quantity);
            if total > limits.max_tickets {
                return Err(LimitError::Tickets { quantity, total, limit: limits.max_tickets });
            }
        }
        let entry = self.in_flight.entry(buyer).or_default();
        entry.bookings += 1;
        entry.tickets += quantity;
        Ok(())
    }

    /// Ends an admission: the create is published (`durable`) or not.
    pub fn settle(&mut self, booking_id: &str, buyer: u64, quantity: u32, durable: bool) {
        if let Some(entry) = self.in_flight.get_mut(&buyer) {
            entry.bookings = entry.bookings.saturating_sub(1);
            entry.tickets = entry.tickets.saturating_sub(quantity);
            if entry.bookings == 0 {
                self.in_flight.remove(&buyer);
            }
        }
        if durable {
            self.accept(booking_id, buyer, quantity);
        }
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
        b.accept("b1", 7, 1);
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
    fn caps_count_open_bookings_and_held_tickets_including_creates_in_flight() {
        let limits = Limits { max_open_bookings: 2, max_tickets: 5 };
        let mut b = Bookings::default();
        b.admit(7, 2, limits).unwrap();
        b.admit(7, 2, limits).unwrap();
        assert!(matches!(b.admit(7, 1, limits), Err(LimitError::OpenBookings { open: 2, limit: 2 })));
        assert!(b.admit(8, 4, limits).is_ok(), "caps are per buyer");
        b.settle("b1", 7, 2, true);
        b.settle("b2", 7, 2, false);
        // One open (b1, 2 tickets): 4 more would make 6.
        assert!(matches!(b.admit(7, 4, limits), Err(LimitError::Tickets { total: 6, .. })));
        b.admit(7, 3, limits).unwrap();
        b.settle("b3", 7, 3, true);
        assert!(b.admit(7, 1, limits).is_err());
        // b1 fails: its tickets and its place come back; b3 is sold and still counts.
        b.apply(&status("b1", 7, BookingStatus::Failed, Some("no seats")));
        b.apply(&status("b3", 7, BookingStatus::Completed, None));
        b.admit(7, 2, limits).unwrap();
        assert!(b.admit(7, 1, limits).is_err(), "3 sold + 2 in flight is the limit");
        assert!(b.admit(9, 40, Limits::default()).is_ok(), "0 is no limit");
    }
}
