//! seat-reservation-service: owns seats (DOMAIN.md §5, "Seats").
//!
//! The logic is plain Rust over a [`Store`], so it runs natively (tests, the
//! host's benchmark) and, on wasm32, behind a thin component wrapper.
//!
//! State, scoped by the host to the partition (i.e. a set of sections):
//! - `sub/{section}/{subsection}` → a [`seatmap::SeatMap`] blob
//!   (16-byte header, 2 bits per seat);
//! - `bk/{booking_id}` → a [`record::BookingRecord`] (first outcome + lifecycle).
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod commands;
pub mod record;
pub mod seatmap;
pub mod select;

use alloc::vec::Vec;

use turnstile_protocol::{
    HandleError, Output, SEAT_RESERVATION_RESULT, SEAT_RESERVATION_SERVICE, SeatCommand, Store, TICKET_COMMAND_REQUEST,
};

/// The service this plugin implements.
pub const SERVICE: &str = SEAT_RESERVATION_SERVICE;
/// Actions of the topics it consumes.
pub const CONSUMES: &[&str] = &[TICKET_COMMAND_REQUEST];
/// Actions of the topics it may emit to.
pub const EMITS: &[&str] = &[SEAT_RESERVATION_RESULT];

/// The plugin: [`handle`] behind the SDK's [`turnstile_plugin::Plugin`].
pub struct Reservation;

impl turnstile_plugin::Plugin for Reservation {
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

turnstile_plugin::export!(Reservation);

/// Handles one `ticket-command-request` record.
///
/// `event_id` is accepted for a uniform plugin signature; the host already
/// scopes `store` to the event and partition. Returns the outputs to produce
/// in the record's transaction, or [`HandleError::Invalid`] for a payload that
/// is not a known command (bad JSON, unknown `type`, missing fields, zero
/// dimensions), another action, or corrupt state.
pub fn handle<S: Store + ?Sized>(
    store: &mut S,
    event_id: u64,
    action: &str,
    payload: &[u8],
) -> Result<Vec<Output>, HandleError> {
    let _ = event_id;
    if action != TICKET_COMMAND_REQUEST {
        return Err(HandleError::invalid(format_args!("{SERVICE} does not consume action {action:?}")));
    }
    let command: SeatCommand = serde_json::from_slice(payload).map_err(HandleError::invalid)?;
    match command {
        SeatCommand::ConfigureSubsection(c) => commands::configure(store, &c).map(|()| Vec::new()),
        SeatCommand::ReserveSeats(c) => commands::reserve(store, &c),
        SeatCommand::ReleaseSeats(c) => commands::release(store, &c),
        SeatCommand::FinalizeSeats(c) => commands::finalize(store, &c),
    }
}

#[cfg(test)]
mod tests;
