//! Every message of DOMAIN.md §4. Values are JSON objects tagged by `type`
//! (snake_case); unknown fields are ignored, missing fields are errors.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::seat::SeatPosition;

/// How the seats of a booking are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatSelectionMode {
    /// The seat-reservation service picks the seats.
    BestAvailable,
    /// The buyer names them in `seat_positions`.
    Manual,
}

/// Where a booking is in its lifecycle (DOMAIN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Processing,
    PendingPayment,
    Completed,
    Cancelled,
    Failed,
}

impl BookingStatus {
    /// `completed`, `cancelled` and `failed` never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }

    /// The wire name, e.g. `pending_payment`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::PendingPayment => "pending_payment",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

// ---- booking-command (client → ticketing) ----

/// `booking-command` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BookingCommand {
    CreateBooking(CreateBooking),
    PayBooking(PayBooking),
    CancelBooking(CancelBooking),
}

/// A buyer asks for seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBooking {
    pub booking_id: String,
    pub buyer_id: u64,
    pub section: String,
    pub subsection: u32,
    pub quantity: u32,
    pub seat_selection_mode: SeatSelectionMode,
    /// Absent is read as empty: `best_available` clients often leave it out.
    #[serde(default)]
    pub seat_positions: Vec<SeatPosition>,
}

/// The buyer pays a `pending_payment` booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayBooking {
    pub booking_id: String,
    pub buyer_id: u64,
}

/// The buyer cancels a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelBooking {
    pub booking_id: String,
    pub buyer_id: u64,
}

// ---- ticket-command-request (ticketing → seat-reservation) ----

/// `ticket-command-request` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SeatCommand {
    ConfigureSubsection(ConfigureSubsection),
    ReserveSeats(ReserveSeats),
    ReleaseSeats(ReleaseSeats),
    FinalizeSeats(FinalizeSeats),
}

/// Opens or resizes a subsection (sent by provisioning from a seating chart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigureSubsection {
    pub section: String,
    pub subsection: u32,
    pub rows: u32,
    pub seats_per_row: u32,
    /// Price of one seat, whole currency units.
    pub price: u64,
}

/// Reserve seats for a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveSeats {
    pub booking_id: String,
    pub buyer_id: u64,
    pub section: String,
    pub subsection: u32,
    pub quantity: u32,
    pub seat_selection_mode: SeatSelectionMode,
    /// Absent is read as empty, as in [`CreateBooking`].
    #[serde(default)]
    pub seat_positions: Vec<SeatPosition>,
}

/// Free the seats a booking still holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSeats {
    pub booking_id: String,
    pub section: String,
    pub subsection: u32,
}

/// Payment done: the booking's reserved seats become sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeSeats {
    pub booking_id: String,
    pub section: String,
    pub subsection: u32,
}

// ---- seat-reservation-result (seat-reservation → ticketing) ----

/// `seat-reservation-result` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SeatResult {
    SeatsReserved(SeatsReserved),
    ReservationFailed(ReservationFailed),
    SeatsReleased(SeatsReleased),
    SeatsSold(SeatsSold),
}

/// Seats are held for the booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatsReserved {
    pub booking_id: String,
    pub section: String,
    pub subsection: u32,
    pub seats: Vec<SeatPosition>,
    /// Subsection price × number of seats.
    pub total_price: u64,
}

/// Nothing was reserved, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationFailed {
    pub booking_id: String,
    pub reason: String,
}

/// These seats are available again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatsReleased {
    pub booking_id: String,
    pub seats: Vec<SeatPosition>,
}

/// These seats are sold for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatsSold {
    pub booking_id: String,
    pub seats: Vec<SeatPosition>,
}

// ---- booking-status-changed (ticketing → client) ----

/// A booking's status, sent on every change and on every refused command.
/// Serialized with `"type": "booking_status_changed"`; on reading, serde
/// ignores `type` for a struct (the topic carries only this message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "booking_status_changed")]
pub struct BookingStatusChanged {
    pub booking_id: String,
    pub buyer_id: u64,
    pub status: BookingStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<Vec<SeatPosition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_price: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests;
