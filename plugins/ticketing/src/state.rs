//! Loading and saving bookings.

use alloc::format;
use alloc::vec::Vec;

use turnstile_protocol::{HandleError, Store};

use crate::record::Booking;

fn key(booking_id: &str) -> Vec<u8> {
    format!("b/{booking_id}").into_bytes()
}

/// The stored booking, if any; corrupt state is an invalid message.
pub fn load<S: Store + ?Sized>(store: &S, booking_id: &str) -> Result<Option<Booking>, HandleError> {
    store
        .get(&key(booking_id))
        .map(|bytes| {
            Booking::decode(&bytes)
                .ok_or_else(|| HandleError::invalid(format_args!("corrupt state for booking {booking_id}")))
        })
        .transpose()
}

pub fn save<S: Store + ?Sized>(store: &mut S, booking_id: &str, booking: &Booking) {
    store.put_owned(key(booking_id), booking.encode());
}
