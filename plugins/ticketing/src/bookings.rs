//! Booking commands from clients: create, pay, cancel.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use turnstile_protocol::{
    BookingStatus, CancelBooking, CreateBooking, HandleError, LogLevel, Output, PayBooking, ReserveSeats, Store, rules,
};

use crate::record::Booking;
use crate::{emit, state};

/// Opens a booking once: `processing` plus a `reserve_seats`, or `failed`
/// if the request breaks the booking rules. A repeat does nothing.
pub fn create<S: Store + ?Sized>(store: &mut S, c: CreateBooking) -> Result<Vec<Output>, HandleError> {
    if state::load(store, &c.booking_id)?.is_some() {
        store.log(LogLevel::Debug, &format!("booking {} already exists; duplicate create ignored", c.booking_id));
        return Ok(Vec::new());
    }
    let verdict = rules::validate_selection(c.quantity, c.seat_selection_mode, &c.seat_positions);
    let mut booking = Booking {
        buyer_id: c.buyer_id,
        section: c.section.clone(),
        subsection: c.subsection,
        quantity: c.quantity,
        status: BookingStatus::Processing,
        seats: None,
        total_price: None,
        reason: None,
        release_sent: false,
    };
    if let Err(reason) = verdict {
        booking.status = BookingStatus::Failed;
        booking.reason = Some(reason);
        state::save(store, &c.booking_id, &booking);
        return Ok(vec![emit::status(&c.booking_id, &booking, None)?]);
    }
    state::save(store, &c.booking_id, &booking);
    let status = emit::status(&c.booking_id, &booking, None)?;
    let reserve = ReserveSeats {
        booking_id: c.booking_id,
        buyer_id: c.buyer_id,
        section: c.section,
        subsection: c.subsection,
        quantity: c.quantity,
        seat_selection_mode: c.seat_selection_mode,
        seat_positions: c.seat_positions,
    };
    Ok(vec![status, emit::reserve(reserve, &booking)?])
}

/// The stored booking, after checking the requester is its buyer. `Err`
/// holds the outputs to return instead: nothing for an unknown booking
/// (there is no buyer to tell; logged), a refusal for a stranger.
fn owned_booking<S: Store + ?Sized>(
    store: &mut S,
    booking_id: &str,
    buyer_id: u64,
    verb: &str,
) -> Result<Result<Booking, Vec<Output>>, HandleError> {
    let Some(booking) = state::load(store, booking_id)? else {
        store.log(LogLevel::Warn, &format!("{verb} for unknown booking {booking_id} by buyer {buyer_id} ignored"));
        return Ok(Err(Vec::new()));
    };
    if booking.buyer_id != buyer_id {
        let reason = format!("buyer {buyer_id} may not {verb} another buyer's booking");
        return Ok(Err(vec![emit::status(booking_id, &booking, Some(reason))?]));
    }
    Ok(Ok(booking))
}

/// The status message for a refused command: unchanged status, the reason.
fn refuse(booking_id: &str, booking: &Booking, reason: String) -> Result<Vec<Output>, HandleError> {
    Ok(vec![emit::status(booking_id, booking, Some(reason))?])
}

/// Pays a `pending_payment` booking: `completed` plus a critical
/// `finalize_seats`.
pub fn pay<S: Store + ?Sized>(store: &mut S, c: &PayBooking) -> Result<Vec<Output>, HandleError> {
    let mut booking = match owned_booking(store, &c.booking_id, c.buyer_id, "pay")? {
        Ok(booking) => booking,
        Err(outputs) => return Ok(outputs),
    };
    if booking.status != BookingStatus::PendingPayment {
        let reason = format!("only a pending_payment booking can be paid; this one is {}", booking.status.as_str());
        return refuse(&c.booking_id, &booking, reason);
    }
    booking.status = BookingStatus::Completed;
    state::save(store, &c.booking_id, &booking);
    Ok(vec![emit::finalize(&c.booking_id, &booking)?, emit::status(&c.booking_id, &booking, None)?])
}

/// Cancels a `processing` or `pending_payment` booking. Seats already held
/// are released now; seats still on their way are released when they arrive.
pub fn cancel<S: Store + ?Sized>(store: &mut S, c: &CancelBooking) -> Result<Vec<Output>, HandleError> {
    let mut booking = match owned_booking(store, &c.booking_id, c.buyer_id, "cancel")? {
        Ok(booking) => booking,
        Err(outputs) => return Ok(outputs),
    };
    let mut outputs = Vec::with_capacity(2);
    match booking.status {
        BookingStatus::Processing => {}
        BookingStatus::PendingPayment => {
            booking.release_sent = true;
            outputs.push(emit::release(&c.booking_id, &booking)?);
        }
        other => {
            let reason = format!(
                "only a processing or pending_payment booking can be cancelled; this one is {}",
                other.as_str()
            );
            return refuse(&c.booking_id, &booking, reason);
        }
    }
    booking.status = BookingStatus::Cancelled;
    state::save(store, &c.booking_id, &booking);
    outputs.push(emit::status(&c.booking_id, &booking, None)?);
    Ok(outputs)
}
