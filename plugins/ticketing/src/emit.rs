//! The messages ticketing-service produces.

use alloc::string::String;

use turnstile_protocol::{
    BOOKING_STATUS_CHANGED, BookingStatusChanged, FinalizeSeats, HandleError, Output, ReleaseSeats, ReserveSeats,
    Routing, SeatCommand, TICKET_COMMAND_REQUEST,
};

use crate::record::Booking;

/// `booking_status_changed` with the booking as stored; `reason` overrides
/// the stored reason (a refusal explains itself, not an earlier failure).
pub fn status(booking_id: &str, booking: &Booking, refusal: Option<String>) -> Result<Output, HandleError> {
    let message = BookingStatusChanged {
        booking_id: booking_id.into(),
        buyer_id: booking.buyer_id,
        status: booking.status,
        seats: booking.seats.clone(),
        total_price: booking.total_price,
        reason: refusal.or_else(|| booking.reason.clone()),
    };
    Output::json(BOOKING_STATUS_CHANGED, Routing::Booking(booking_id.into()), &message)
}

/// A seat command for the booking's subsection, routed by section so that
/// reserve, release and finalize of one section stay in order.
fn seat_command(booking: &Booking, command: &SeatCommand) -> Result<Output, HandleError> {
    let routing = Routing::Section { section: booking.section.clone(), subsection: booking.subsection };
    Output::json(TICKET_COMMAND_REQUEST, routing, command)
}

/// `reserve_seats` for a new booking.
pub fn reserve(command: ReserveSeats, booking: &Booking) -> Result<Output, HandleError> {
    seat_command(booking, &SeatCommand::ReserveSeats(command))
}

/// `release_seats` for the booking.
pub fn release(booking_id: &str, booking: &Booking) -> Result<Output, HandleError> {
    let command = SeatCommand::ReleaseSeats(ReleaseSeats {
        booking_id: booking_id.into(),
        section: booking.section.clone(),
        subsection: booking.subsection,
    });
    seat_command(booking, &command)
}

/// `finalize_seats` for the booking: critical, the buyer has paid.
pub fn finalize(booking_id: &str, booking: &Booking) -> Result<Output, HandleError> {
    let command = SeatCommand::FinalizeSeats(FinalizeSeats {
        booking_id: booking_id.into(),
        section: booking.section.clone(),
        subsection: booking.subsection,
    });
    Ok(seat_command(booking, &command)?.critical())
}
