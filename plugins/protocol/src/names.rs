//! Service and action names (DOMAIN.md §1–2).

/// Owns bookings (the buyer's view).
pub const TICKETING_SERVICE: &str = "ticketing-service";
/// Owns seats (the venue's view).
pub const SEAT_RESERVATION_SERVICE: &str = "seat-reservation-service";
/// Anything outside that sends booking commands or reads booking status.
pub const CLIENT: &str = "client";

/// client → ticketing-service, partitioned by booking key.
pub const BOOKING_COMMAND: &str = "booking-command";
/// ticketing-service → seat-reservation-service, partitioned by section.
pub const TICKET_COMMAND_REQUEST: &str = "ticket-command-request";
/// seat-reservation-service → ticketing-service, partitioned by booking key.
pub const SEAT_RESERVATION_RESULT: &str = "seat-reservation-result";
/// ticketing-service → client, partitioned by booking key.
pub const BOOKING_STATUS_CHANGED: &str = "booking-status-changed";
/// Dead letters of ticketing-service.
pub const TICKETING_DLQ: &str = "ticketing-dlq";
/// Dead letters of seat-reservation-service.
pub const SEAT_RESERVATION_DLQ: &str = "seat-reservation-dlq";
