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
pub fn create<S: Store + ?Sized>(store: &mut S, mut c: CreateBooking) -> Result<Vec<Output>, HandleError> {
    rules::validate_booking_id(&c.booking_id).map_err(HandleError::Invalid)?;
    if state::load(store, &c.booking_id)?.is_some() {
        store.log(LogLevel::Debug, &format!("booking {} already exists; duplicate create ignored", c.booking_id));
        return Ok(Vec::new());
    }
    let verdict = rules::validate_section(&c.section)
        .and_then(|()| rules::validate_selection(c.quantity, c.seat_selection_mode, &c.seat_positions));
    if verdict.is_err() && c.section.len() > rules::MAX_SECTION_BYTES {
        // A failed booking never reaches the seats: do not keep the bytes.
        c.section.clear();
    }
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
/// holds the outputs to return instead: a refusal for a stranger. An
/// unknown booking is `invalid` (dead-lettered, visible): there is no buyer
/// to tell, and dropping it silently would hide a client's bug.
fn owned_booking<S: Store + ?Sized>(
    store: &mut S,
    booking_id: &str,
    buyer_id: u64,
    verb: &str,
) -> Result<Result<Booking, Vec<Output>>, HandleError> {
    let Some(booking) = state::load(store, booking_id)? else {
        return Err(HandleError::Invalid(format!("unknown booking: {verb} of {booking_id:?} by buyer {buyer_id}")));
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
