//! One function per seat command; each reads and writes the [`Store`] and
//! returns the results to emit.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use turnstile_protocol::{
    ConfigureSubsection, FinalizeSeats, HandleError, LogLevel, Output, ReleaseSeats, ReservationFailed, ReserveSeats,
    Routing, SEAT_RESERVATION_RESULT, SeatPosition, SeatResult, SeatSelectionMode, SeatsReleased, SeatsReserved,
    SeatsSold, Store, rules,
};

use crate::record::{BookingRecord, Lifecycle};
use crate::seatmap::{SeatMap, SeatState};
use crate::select;

fn subsection_key(section: &str, subsection: u32) -> Vec<u8> {
    format!("sub/{section}/{subsection}").into_bytes()
}

fn booking_key(booking_id: &str) -> Vec<u8> {
    format!("bk/{booking_id}").into_bytes()
}

fn corrupt(key: &[u8]) -> HandleError {
    HandleError::invalid(format_args!("corrupt state under {:?}", String::from_utf8_lossy(key)))
}

fn load_map<S: Store + ?Sized>(store: &S, key: &[u8]) -> Result<Option<SeatMap>, HandleError> {
    store.get(key).map(|bytes| SeatMap::from_bytes(bytes).ok_or_else(|| corrupt(key))).transpose()
}

fn load_booking<S: Store + ?Sized>(store: &S, key: &[u8]) -> Result<Option<BookingRecord>, HandleError> {
    store.get(key).map(|bytes| BookingRecord::decode(&bytes).ok_or_else(|| corrupt(key))).transpose()
}

/// A `seat-reservation-result` for the booking.
fn result(booking_id: &str, value: &SeatResult) -> Result<Output, HandleError> {
    Output::json(SEAT_RESERVATION_RESULT, Routing::Booking(booking_id.into()), value)
}

/// Opens or resizes a subsection. A resize that would drop a reserved or sold
/// seat is refused with a warning: provisioning must not destroy bookings.
pub fn configure<S: Store + ?Sized>(store: &mut S, c: &ConfigureSubsection) -> Result<(), HandleError> {
    let bad_size = || {
        HandleError::invalid(format_args!(
            "subsection {}/{}: {} rows × {} seats is not a valid size (1..={} seats)",
            c.section,
            c.subsection,
            c.rows,
            c.seats_per_row,
            crate::seatmap::MAX_SEATS
        ))
    };
    let key = subsection_key(&c.section, c.subsection);
    let map = match load_map(store, &key)? {
        None => SeatMap::new(c.rows, c.seats_per_row, c.price).ok_or_else(bad_size)?,
        Some(old) => match old.resized(c.rows, c.seats_per_row, c.price) {
            Ok(Some(map)) => map,
            Ok(None) => return Err(bad_size()),
            Err(seat) => {
                store.log(
                    LogLevel::Warn,
                    &format!(
                        "resize of subsection {}/{} to {}×{} refused: seat {seat} is taken",
                        c.section, c.subsection, c.rows, c.seats_per_row
                    ),
                );
                return Ok(());
            }
        },
    };
    store.put_owned(key, map.into_bytes());
    Ok(())
}

/// Reserves seats once per booking; a repeat re-emits the first outcome.
pub fn reserve<S: Store + ?Sized>(store: &mut S, c: &ReserveSeats) -> Result<Vec<Output>, HandleError> {
    let bkey = booking_key(&c.booking_id);
    let record = match load_booking(store, &bkey)? {
        Some(first) => first,
        None => {
            let record = match try_reserve(store, c)? {
                Ok(record) => record,
                Err(reason) => BookingRecord::Failed { reason },
            };
            store.put_owned(bkey, record.encode());
            record
        }
    };
    let message = match record {
        BookingRecord::Failed { reason } => {
            SeatResult::ReservationFailed(ReservationFailed { booking_id: c.booking_id.clone(), reason })
        }
        BookingRecord::Seated { section, subsection, seats, total_price, .. } => {
            SeatResult::SeatsReserved(SeatsReserved {
                booking_id: c.booking_id.clone(),
                section,
                subsection,
                seats,
                total_price,
            })
        }
    };
    Ok(vec![result(&c.booking_id, &message)?])
}

/// Picks and marks the seats; the inner `Err` is the buyer-facing reason
/// nothing was reserved.
fn try_reserve<S: Store + ?Sized>(
    store: &mut S,
    c: &ReserveSeats,
) -> Result<Result<BookingRecord, String>, HandleError> {
    if let Err(reason) = rules::validate_selection(c.quantity, c.seat_selection_mode, &c.seat_positions) {
        return Ok(Err(reason));
    }
    let key = subsection_key(&c.section, c.subsection);
    let Some(mut map) = load_map(store, &key)? else {
        return Ok(Err(format!("subsection {}/{} is not configured", c.section, c.subsection)));
    };
    let picked = match c.seat_selection_mode {
        SeatSelectionMode::Manual => select::manual(&map, &c.seat_positions),
        SeatSelectionMode::BestAvailable => select::best_available(&map, c.quantity),
    };
    let seats = match picked {
        Ok(seats) => seats,
        Err(reason) => return Ok(Err(reason)),
    };
    let Some(total_price) = map.price().checked_mul(seats.len() as u64) else {
        return Ok(Err("total price overflows".into()));
    };
    for &seat in &seats {
        map.set(seat, SeatState::Reserved);
    }
    store.put_owned(key, map.into_bytes());
    Ok(Ok(BookingRecord::Seated {
        section: c.section.clone(),
        subsection: c.subsection,
        seats,
        total_price,
        lifecycle: Lifecycle::Reserved,
    }))
}

/// Moves a booking's still-reserved seats to `to`, recording `next` as its
/// lifecycle. `None` when the booking holds no reserved seats (unknown,
/// failed, already released or sold): nothing to do, nothing to emit.
fn settle<S: Store + ?Sized>(
    store: &mut S,
    booking_id: &str,
    to: SeatState,
    next: Lifecycle,
) -> Result<Option<Vec<SeatPosition>>, HandleError> {
    let bkey = booking_key(booking_id);
    let Some(BookingRecord::Seated { section, subsection, seats, total_price, lifecycle: Lifecycle::Reserved }) =
        load_booking(store, &bkey)?
    else {
        store.log(LogLevel::Debug, &format!("booking {booking_id} holds no reserved seats; nothing to settle"));
        return Ok(None);
    };
    // The record's location, not the command's: that is where the seats are.
    let key = subsection_key(&section, subsection);
    let mut moved = Vec::with_capacity(seats.len());
    if let Some(mut map) = load_map(store, &key)? {
        for &seat in &seats {
            if map.get(seat) == Some(SeatState::Reserved) {
                map.set(seat, to);
                moved.push(seat);
            }
        }
        store.put_owned(key, map.into_bytes());
    }
    let record = BookingRecord::Seated { section, subsection, seats, total_price, lifecycle: next };
    store.put_owned(bkey, record.encode());
    Ok(Some(moved))
}

/// Frees the seats the booking still holds.
pub fn release<S: Store + ?Sized>(store: &mut S, c: &ReleaseSeats) -> Result<Vec<Output>, HandleError> {
    let Some(seats) = settle(store, &c.booking_id, SeatState::Available, Lifecycle::Released)? else {
        return Ok(Vec::new());
    };
    let message = SeatResult::SeatsReleased(SeatsReleased { booking_id: c.booking_id.clone(), seats });
    Ok(vec![result(&c.booking_id, &message)?])
}

/// Sells the seats the booking holds; sold seats are never released.
pub fn finalize<S: Store + ?Sized>(store: &mut S, c: &FinalizeSeats) -> Result<Vec<Output>, HandleError> {
    let Some(seats) = settle(store, &c.booking_id, SeatState::Sold, Lifecycle::Sold)? else {
        return Ok(Vec::new());
    };
    let message = SeatResult::SeatsSold(SeatsSold { booking_id: c.booking_id.clone(), seats });
    Ok(vec![result(&c.booking_id, &message)?])
}
