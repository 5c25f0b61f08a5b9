//! What the service remembers per booking (`bk/{booking_id}`): the first
//! outcome of its reserve, so a repeat re-emits it, and where its seats are
//! in their lifecycle. Encoded with [`turnstile_protocol::codec`]:
//! `tag u8` then, for failed: `reason`; otherwise
//! `section, subsection, total_price, seats`.

use alloc::string::String;
use alloc::vec::Vec;

use turnstile_protocol::SeatPosition;
use turnstile_protocol::codec::{Reader, Writer};

const FAILED: u8 = 0;
const RESERVED: u8 = 1;
const RELEASED: u8 = 2;
const SOLD: u8 = 3;

/// Where a successful booking's seats are now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Held for the booking.
    Reserved,
    /// Given back; nothing more can happen to them.
    Released,
    /// Paid; never released.
    Sold,
}

/// A booking as the seat-reservation service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingRecord {
    /// The reserve failed; a repeat fails the same way.
    Failed { reason: String },
    /// The reserve succeeded with these seats.
    Seated { section: String, subsection: u32, seats: Vec<SeatPosition>, total_price: u64, lifecycle: Lifecycle },
}

impl BookingRecord {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Failed { reason } => {
                let mut w = Writer::with_capacity(2 + reason.len());
                w.u8(FAILED).str(reason);
                w.finish()
            }
            Self::Seated { section, subsection, seats, total_price, lifecycle } => {
                let tag = match lifecycle {
                    Lifecycle::Reserved => RESERVED,
                    Lifecycle::Released => RELEASED,
                    Lifecycle::Sold => SOLD,
                };
                let mut w = Writer::with_capacity(16 + section.len() + 2 * seats.len());
                w.u8(tag).str(section).varint((*subsection).into()).varint(*total_price).seats(seats);
                w.finish()
            }
        }
    }

    /// A record from its stored form; `None` if the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let lifecycle = match r.u8()? {
            FAILED => {
                let reason = r.str()?;
                return r.is_empty().then_some(Self::Failed { reason });
            }
            RESERVED => Lifecycle::Reserved,
            RELEASED => Lifecycle::Released,
            SOLD => Lifecycle::Sold,
            _ => return None,
        };
        let record = Self::Seated {
            section: r.str()?,
            subsection: r.u32()?,
            total_price: r.varint()?,
            seats: r.seats()?,
            lifecycle,
        };
        r.is_empty().then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let records = [
            BookingRecord::Failed { reason: "no seats".into() },
            BookingRecord::Seated {
                section: "VIP".into(),
                subsection: 7,
                seats: alloc::vec![SeatPosition { row: 1, seat: 2 }],
                total_price: 250,
                lifecycle: Lifecycle::Sold,
            },
        ];
        for r in records {
            assert_eq!(BookingRecord::decode(&r.encode()), Some(r));
        }
        assert_eq!(BookingRecord::decode(&[9]), None);
        assert_eq!(BookingRecord::decode(&[]), None);
    }
}
