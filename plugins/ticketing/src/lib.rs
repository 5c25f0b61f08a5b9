//! ticketing-service: owns bookings (DOMAIN.md §5, "Booking").
//!
//! The logic is plain Rust over a [`Store`], so it runs natively (tests, the
//! host's benchmark) and, on wasm32, behind a thin component wrapper.
//!
//! State, scoped by the host to the partition: `b/{booking_id}` → a
//! [`record::Booking`] (compact binary).
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod bookings;
mod emit;
pub mod record;
mod results;
mod state;

use alloc::vec::Vec;

use turnstile_protocol::{
    BOOKING_COMMAND, BOOKING_STATUS_CHANGED, BookingCommand, HandleError, Output, SEAT_RESERVATION_RESULT, SeatResult,
    Store, TICKET_COMMAND_REQUEST, TICKETING_SERVICE,
};

/// The service this plugin implements.
pub const SERVICE: &str = TICKETING_SERVICE;
/// Actions of the topics it consumes.
pub const CONSUMES: &[&str] = &[BOOKING_COMMAND, SEAT_RESERVATION_RESULT];
/// Actions of the topics it may emit to.
pub const EMITS: &[&str] = &[BOOKING_STATUS_CHANGED, TICKET_COMMAND_REQUEST];

/// The plugin: [`handle`] behind the SDK's [`turnstile_plugin::Plugin`].
pub struct Ticketing;

impl turnstile_plugin::Plugin for Ticketing {
    const SERVICE: &'static str = SERVICE;
    const CONSUMES: &'static [&'static str] = CONSUMES;
    const EMITS: &'static [&'static str] = EMITS;

    fn handle(
        message: &turnstile_plugin::Message,
        state: &mut turnstile_plugin::State<'_>,
    ) -> Result<Vec<Output>, HandleError> {
        handle(state, message.event_id, &message.action, &message.value)
    }
}

turnstile_plugin::export!(Ticketing);

/// Handles one `booking-command` or `seat-reservation-result` record.
///
/// `event_id` is accepted for a uniform plugin signature; the host already
/// scopes `store` to the event and partition. Returns the outputs to produce
/// in the record's transaction, or [`HandleError::Invalid`] for a payload that
/// is not a known message of that action (bad JSON, unknown `type`, missing
/// fields), another action, or corrupt state. A buyer's mistake is not an
/// error: it yields a `failed` booking or a refusal status message.
pub fn handle<S: Store + ?Sized>(
    store: &mut S,
    event_id: u64,
    action: &str,
    payload: &[u8],
) -> Result<Vec<Output>, HandleError> {
    let _ = event_id;
    match action {
        BOOKING_COMMAND => match serde_json::from_slice(payload).map_err(HandleError::invalid)? {
            BookingCommand::CreateBooking(c) => bookings::create(store, c),
            BookingCommand::PayBooking(c) => bookings::pay(store, &c),
            BookingCommand::CancelBooking(c) => bookings::cancel(store, &c),
        },
        SEAT_RESERVATION_RESULT => match serde_json::from_slice(payload).map_err(HandleError::invalid)? {
            SeatResult::SeatsReserved(r) => results::reserved(store, r),
            SeatResult::ReservationFailed(r) => results::failed(store, r),
            SeatResult::SeatsReleased(r) => Ok(results::informational(store, &r.booking_id, "released")),
            SeatResult::SeatsSold(r) => Ok(results::informational(store, &r.booking_id, "sold")),
        },
        _ => Err(HandleError::invalid(format_args!("{SERVICE} does not consume action {action:?}"))),
    }
}

#[cfg(test)]
mod tests;
