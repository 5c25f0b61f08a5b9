//! A booking as ticketing-service stores it under `b/{booking_id}`, encoded
//! with [`turnstile_protocol::codec`]:
//! `buyer_id, section, subsection, quantity, status u8, flags u8`, then
//! `seats` if flag 1, `total_price` if flag 2, `reason` if flag 4.
//! Flag 8 records that `release_seats` was sent for a booking cancelled
//! before its seats arrived, so a repeated `seats_reserved` sends nothing.

use alloc::string::String;
use alloc::vec::Vec;

use turnstile_protocol::codec::{Reader, Writer};
use turnstile_protocol::{BookingStatus, SeatPosition};

const HAS_SEATS: u8 = 1;
const HAS_PRICE: u8 = 2;
const HAS_REASON: u8 = 4;
const RELEASE_SENT: u8 = 8;

/// One booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub buyer_id: u64,
    pub section: String,
    pub subsection: u32,
    pub quantity: u32,
    pub status: BookingStatus,
    /// Known once reserved.
    pub seats: Option<Vec<SeatPosition>>,
    /// Known once reserved.
    pub total_price: Option<u64>,
    /// Why the booking failed.
    pub reason: Option<String>,
    /// `release_seats` already sent for late seats of a cancelled booking.
    pub release_sent: bool,
}

fn status_code(s: BookingStatus) -> u8 {
    match s {
        BookingStatus::Processing => 0,
        BookingStatus::PendingPayment => 1,
        BookingStatus::Completed => 2,
        BookingStatus::Cancelled => 3,
        BookingStatus::Failed => 4,
    }
}

fn status_from(code: u8) -> Option<BookingStatus> {
    Some(match code {
        0 => BookingStatus::Processing,
        1 => BookingStatus::PendingPayment,
        2 => BookingStatus::Completed,
        3 => BookingStatus::Cancelled,
        4 => BookingStatus::Failed,
        _ => return None,
    })
}

impl Booking {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        for (set, flag) in [
            (self.seats.is_some(), HAS_SEATS),
            (self.total_price.is_some(), HAS_PRICE),
            (self.reason.is_some(), HAS_REASON),
            (self.release_sent, RELEASE_SENT),
        ] {
            if set {
                flags |= flag;
            }
        }
        let mut w = Writer::with_capacity(32 + self.section.len());
        w.varint(self.buyer_id)
            .str(&self.section)
            .varint(self.subsection.into())
            .varint(self.quantity.into())
            .u8(status_code(self.status))
            .u8(flags);
        if let Some(seats) = &self.seats {
            w.seats(seats);
        }
        if let Some(price) = self.total_price {
            w.varint(price);
        }
        if let Some(reason) = &self.reason {
            w.str(reason);
        }
        w.finish()
    }

    /// A booking from its stored form; `None` if the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let buyer_id = r.varint()?;
        let section = r.str()?;
        let subsection = r.u32()?;
        let quantity = r.u32()?;
        let status = status_from(r.u8()?)?;
        let flags = r.u8()?;
        let booking = Self {
            buyer_id,
            section,
            subsection,
            quantity,
            status,
            seats: if flags & HAS_SEATS != 0 { Some(r.seats()?) } else { None },
            total_price: if flags & HAS_PRICE != 0 { Some(r.varint()?) } else { None },
            reason: if flags & HAS_REASON != 0 { Some(r.str()?) } else { None },
            release_sent: flags & RELEASE_SENT != 0,
        };
        r.is_empty().then_some(booking)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut b = Booking {
            buyer_id: u64::MAX,
            section: "A".into(),
            subsection: 2,
            quantity: 3,
            status: BookingStatus::Processing,
            seats: None,
            total_price: None,
            reason: None,
            release_sent: false,
        };
        assert_eq!(Booking::decode(&b.encode()), Some(b.clone()));
        b.status = BookingStatus::Cancelled;
        b.seats = Some(alloc::vec![SeatPosition { row: 1, seat: 1 }]);
        b.total_price = Some(0);
        b.reason = Some("why".into());
        b.release_sent = true;
        assert_eq!(Booking::decode(&b.encode()), Some(b.clone()));
        let mut bytes = b.encode();
        bytes.push(0);
        assert_eq!(Booking::decode(&bytes), None);
        assert_eq!(Booking::decode(&[]), None);
    }
}
