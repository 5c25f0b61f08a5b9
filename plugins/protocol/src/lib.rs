//! The contract shared by the Turnstile host and its plugins (DOMAIN.md §4).
//!
//! - [`messages`]: serde types for every message, internally tagged by `type`.
//! - [`names`]: service and action names.
//! - [`plugin`]: the plain-Rust mirror of the WIT world ([`Store`], [`Output`],
//!   [`Routing`], [`HandleError`]) so plugin logic runs natively and in wasm.
//! - [`rules`]: booking validation shared by both services.
//! - [`batch`]: the [`Store`] a handler sees inside a batched `handle` call.
//! - [`codec`]: a tiny binary writer/reader for compact plugin state.
//!
//! `no_std` + `alloc`; the `std` feature only switches serde to std. Plugins
//! reach all of this through the SDK (`turnstile-plugin`), which adds the
//! component glue.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod batch;
pub mod codec;
pub mod messages;
pub mod names;
pub mod plugin;
pub mod route;
pub mod rules;
pub mod seat;

pub use messages::{
    BookingCommand, BookingStatus, BookingStatusChanged, CancelBooking, ConfigureSubsection, CreateBooking,
    FinalizeSeats, PayBooking, ReleaseSeats, ReservationFailed, ReserveSeats, SeatCommand, SeatResult,
    SeatSelectionMode, SeatsReleased, SeatsReserved, SeatsSold,
};
pub use names::*;
pub use plugin::{HandleError, LogLevel, Manifest, MemoryStore, Output, Routing, Store};
pub use route::route_by_value;
pub use seat::{ParseSeatError, SeatPosition};
