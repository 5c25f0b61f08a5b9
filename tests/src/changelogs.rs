//! Checks of the services' changelogs against the public statuses, read
//! back with fresh `read_committed` readers: what the chaos and failover
//! tests add to the contract checker (`turnstile::load::check`).

use std::collections::HashMap;

use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_protocol::{BookingStatus, BookingStatusChanged};
use turnstile_reservation::seatmap::{SeatMap, SeatState};

use crate::read_back;

/// The last status of every booking (refusals of a pay or cancel, which
/// carry a reason but change nothing, aside).
pub fn final_statuses(event_id: u64) -> HashMap<String, BookingStatusChanged> {
    read_back(&naming::booking_status_changed_topic(event_id).to_string())
        .iter()
        .filter_map(|r| serde_json::from_slice::<BookingStatusChanged>(&r.value).ok())
        .filter(|s| s.reason.is_none() || matches!(s.status, BookingStatus::Failed))
        .map(|s| (s.booking_id.clone(), s))
        .collect()
}

/// The booking in the ticketing changelog has the final status seen.
pub fn ticketing_changelog_agrees(id: u64, finals: &HashMap<String, BookingStatusChanged>) -> Result<(), String> {
    let changelog = read_back(&naming::changelog_topic(id, TICKETING_SERVICE).to_string());
    let mut latest: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    for r in changelog {
        let Some(key) = r.key.as_deref().and_then(|k| k.strip_prefix("b/")) else { continue };
        latest.insert(key.to_owned(), (!r.value.is_empty()).then_some(r.value));
    }
    let mut wrong = Vec::new();
    for (booking, status) in finals {
        let stored =
            latest.get(booking).cloned().flatten().and_then(|v| turnstile_ticketing::record::Booking::decode(&v));
        match stored {
            Some(b) if b.status == status.status => {}
            other => {
                wrong.push(format!("{booking}: status {:?}, changelog {:?}", status.status, other.map(|b| b.status)))
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{} disagree, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(5)]))
    }
}

/// Reserved + sold seats in the seat changelog equal the seats of
/// `pending_payment` + `completed` bookings, and sold equals completed.
pub fn seat_changelog_agrees(id: u64, finals: &HashMap<String, BookingStatusChanged>) -> Result<(), String> {
    let changelog = read_back(&naming::changelog_topic(id, SEAT_RESERVATION_SERVICE).to_string());
    let mut maps: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    for r in changelog {
        let Some(key) = r.key.as_deref().and_then(|k| k.strip_prefix("sub/")) else { continue };
        maps.insert(key.to_owned(), (!r.value.is_empty()).then_some(r.value));
    }
    let (mut reserved, mut sold) = (0usize, 0usize);
    for (key, bytes) in &maps {
        let map = bytes.clone().and_then(SeatMap::from_bytes).ok_or_else(|| format!("seat map {key} unreadable"))?;
        for (_, state) in map.taken() {
            match state {
                SeatState::Reserved => reserved += 1,
                SeatState::Sold => sold += 1,
                SeatState::Available => {}
            }
        }
    }
    let seats = |status: BookingStatus| {
        finals.values().filter(|s| s.status == status).map(|s| s.seats.as_ref().map_or(0, Vec::len)).sum::<usize>()
    };
    let (pending, completed) = (seats(BookingStatus::PendingPayment), seats(BookingStatus::Completed));
    if reserved == pending && sold == completed {
        Ok(())
    } else {
        Err(format!(
            "seat maps hold {reserved} reserved and {sold} sold seats; statuses say {pending} pending_payment and {completed} completed"
        ))
    }
}

/// Both changelog checks; panics naming what disagrees.
pub fn assert_changelogs_agree(event_id: u64, context: &str) {
    let finals = final_statuses(event_id);
    for (what, result) in [
        ("ticketing changelog", ticketing_changelog_agrees(event_id, &finals)),
        ("seat changelog", seat_changelog_agrees(event_id, &finals)),
    ] {
        if let Err(e) = result {
            panic!("the {what} disagrees with the final statuses: {e}\n{context}");
        }
    }
}
