//! Results from seat-reservation-service.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use turnstile_protocol::{BookingStatus, HandleError, LogLevel, Output, ReservationFailed, SeatsReserved, Store};

use crate::record::Booking;
use crate::{emit, state};

/// The stored booking; an unknown one is logged (results only follow
/// bookings this service created, so it means lost state or a stray message).
fn known<S: Store + ?Sized>(store: &mut S, booking_id: &str, what: &str) -> Result<Option<Booking>, HandleError> {
    let booking = state::load(store, booking_id)?;
    if booking.is_none() {
        store.log(LogLevel::Warn, &format!("{what} for unknown booking {booking_id} ignored"));
    }
    Ok(booking)
}

/// Seats are held: a `processing` booking awaits payment; a booking
/// cancelled meanwhile gives them back at once and stays cancelled.
pub fn reserved<S: Store + ?Sized>(store: &mut S, r: SeatsReserved) -> Result<Vec<Output>, HandleError> {
    let Some(mut booking) = known(store, &r.booking_id, "seats_reserved")? else {
        return Ok(Vec::new());
    };
    match booking.status {
        BookingStatus::Processing => {
            booking.status = BookingStatus::PendingPayment;
            booking.seats = Some(r.seats);
            booking.total_price = Some(r.total_price);
            state::save(store, &r.booking_id, &booking);
            Ok(vec![emit::status(&r.booking_id, &booking, None)?])
        }
        BookingStatus::Cancelled if !booking.release_sent => {
            booking.release_sent = true;
            state::save(store, &r.booking_id, &booking);
            Ok(vec![emit::release(&r.booking_id, &booking)?])
        }
        _ => Ok(Vec::new()),
    }
}

/// No seats: a `processing` booking fails with the reason.
pub fn failed<S: Store + ?Sized>(store: &mut S, r: ReservationFailed) -> Result<Vec<Output>, HandleError> {
    let Some(mut booking) = known(store, &r.booking_id, "reservation_failed")? else {
        return Ok(Vec::new());
    };
    if booking.status != BookingStatus::Processing {
        return Ok(Vec::new());
    }
    booking.status = BookingStatus::Failed;
    booking.reason = Some(r.reason);
    state::save(store, &r.booking_id, &booking);
    Ok(vec![emit::status(&r.booking_id, &booking, None)?])
}

/// `seats_released` / `seats_sold` confirm what the booking's status already
/// says; nothing changes and nothing is emitted.
pub fn informational<S: Store + ?Sized>(store: &mut S, booking_id: &str, what: &str) -> Vec<Output> {
    store.log(LogLevel::Debug, &format!("seats of booking {booking_id} {what}"));
    Vec::new()
}
