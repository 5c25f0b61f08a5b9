//! Booking rules that both services check (DOMAIN.md §5).

use alloc::format;
use alloc::string::String;

use crate::messages::SeatSelectionMode;
use crate::seat::SeatPosition;

/// Fewest seats one booking may ask for.
pub const MIN_QUANTITY: u32 = 1;
/// Most seats one booking may ask for.
pub const MAX_QUANTITY: u32 = 4;

/// Longest section name, in UTF-8 bytes. Section names go into record keys
/// and seat maps; a longer one is a buyer's mistake, not a reason to
/// produce megabyte keys.
pub const MAX_SECTION_BYTES: usize = 64;
/// Longest booking id, in UTF-8 bytes (a UUID is 36). Booking ids are
/// record keys; a longer one cannot be answered and is dead-lettered.
pub const MAX_BOOKING_ID_BYTES: usize = 128;

/// Checks a section name. `Err` is the reason shown to the buyer.
pub fn validate_section(section: &str) -> Result<(), String> {
    if section.is_empty() {
        return Err("section must not be empty".into());
    }
    if section.len() > MAX_SECTION_BYTES {
        return Err(format!("section name is {} bytes, longer than {MAX_SECTION_BYTES}", section.len()));
    }
    Ok(())
}

/// Checks a booking id. `Err` is the dead-letter reason.
pub fn validate_booking_id(booking_id: &str) -> Result<(), String> {
    if booking_id.is_empty() {
        return Err("booking_id must not be empty".into());
    }
    if booking_id.len() > MAX_BOOKING_ID_BYTES {
        return Err(format!("booking_id is {} bytes, longer than {MAX_BOOKING_ID_BYTES}", booking_id.len()));
    }
    Ok(())
}

/// Checks quantity and positions against the selection mode. `Err` is the
/// reason shown to the buyer: a buyer's mistake, not a poison message.
pub fn validate_selection(quantity: u32, mode: SeatSelectionMode, positions: &[SeatPosition]) -> Result<(), String> {
    if !(MIN_QUANTITY..=MAX_QUANTITY).contains(&quantity) {
        return Err(format!("quantity must be between {MIN_QUANTITY} and {MAX_QUANTITY}, got {quantity}"));
    }
    match mode {
        SeatSelectionMode::BestAvailable if !positions.is_empty() => {
            Err("best_available takes no seat_positions".into())
        }
        SeatSelectionMode::BestAvailable => Ok(()),
        SeatSelectionMode::Manual => {
            if positions.len() != quantity as usize {
                return Err(format!(
                    "manual selection needs exactly {quantity} seat_positions, got {}",
                    positions.len()
                ));
            }
            // At most 4 positions: a quadratic scan beats sorting a copy.
            for (i, p) in positions.iter().enumerate() {
                if positions[..i].contains(p) {
                    return Err(format!("seat {p} is named twice"));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeatSelectionMode::*;

    fn p(row: u32, seat: u32) -> SeatPosition {
        SeatPosition { row, seat }
    }

    #[test]
    fn section_and_booking_id_lengths_are_bounded() {
        assert!(validate_section("A").is_ok());
        assert!(validate_section(&"s".repeat(MAX_SECTION_BYTES)).is_ok());
        assert!(validate_section(&"s".repeat(MAX_SECTION_BYTES + 1)).unwrap_err().contains("longer than 64"));
        assert!(validate_section("").is_err());
        assert!(validate_booking_id("b").is_ok());
        assert!(validate_booking_id(&"b".repeat(129)).is_err());
        assert!(validate_booking_id("").is_err());
    }

    #[test]
    fn quantity_bounds() {
        assert!(validate_selection(0, BestAvailable, &[]).is_err());
        assert!(validate_selection(5, BestAvailable, &[]).is_err());
        for q in 1..=4 {
            assert!(validate_selection(q, BestAvailable, &[]).is_ok());
        }
    }

    #[test]
    fn best_available_takes_no_positions() {
        let err = validate_selection(1, BestAvailable, &[p(1, 1)]).unwrap_err();
        assert!(err.contains("best_available"), "{err}");
    }

    #[test]
    fn manual_needs_exact_distinct_positions() {
        assert!(validate_selection(2, Manual, &[p(1, 1), p(1, 2)]).is_ok());
        assert!(validate_selection(2, Manual, &[p(1, 1)]).is_err());
        assert!(validate_selection(1, Manual, &[]).is_err());
        let err = validate_selection(2, Manual, &[p(1, 1), p(1, 1)]).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }
}
