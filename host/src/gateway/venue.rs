//! The venue as the public topics tell it: subsections from the
//! `configure_subsection` commands, seat states from the seat service's
//! results. Never from a plugin's private state.
//!
//! Results name their subsection only when seats are reserved; releases and
//! sales name the booking, so the view remembers which subsection each
//! holding booking is in. Results and configurations come from different
//! topics in no particular order relative to each other, so seat states are
//! kept whether or not their subsection is configured yet.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use turnstile_protocol::{ConfigureSubsection, SeatPosition, SeatResult};

/// A seat's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Available,
    Reserved,
    Sold,
}

#[derive(Debug, Clone, Default)]
struct Subsection {
    /// `(rows, seats_per_row, price)` once configured.
    layout: Option<(u32, u32, u64)>,
    /// Seats that are not available.
    taken: HashMap<SeatPosition, SeatState>,
}

/// One subsection's availability (`GET /events/{id}/seats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    pub section: String,
    pub subsection: u32,
    pub rows: u32,
    pub seats_per_row: u32,
    pub price: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
}

/// Every seat of one subsection, row by row (`GET …/subsections/{n}/seats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatMap {
    pub section: String,
    pub subsection: u32,
    pub rows: u32,
    pub seats_per_row: u32,
    pub price: u64,
    /// `seats[r][s]` is the state of seat `r+1 - s+1`.
    pub seats: Vec<Vec<SeatState>>,
}

/// The whole venue of one event.
#[derive(Debug, Clone, Default)]
pub struct Venue {
    subsections: BTreeMap<(String, u32), Subsection>,
    /// The subsection a booking holds seats in.
    holding: HashMap<String, (String, u32)>,
}

impl Venue {
    pub fn configure(&mut self, c: &ConfigureSubsection) {
        let sub = self.subsections.entry((c.section.clone(), c.subsection)).or_default();
        sub.layout = Some((c.rows, c.seats_per_row, c.price));
        // A resize drops seats that no longer exist.
        sub.taken.retain(|p, _| p.row <= c.rows && p.seat <= c.seats_per_row);
    }

    /// Applies one seat result; `true` if availability changed.
    pub fn apply(&mut self, result: &SeatResult) -> bool {
        match result {
            SeatResult::SeatsReserved(r) => {
                self.holding.insert(r.booking_id.clone(), (r.section.clone(), r.subsection));
                let sub = self.subsections.entry((r.section.clone(), r.subsection)).or_default();
                for p in &r.seats {
                    sub.taken.insert(*p, SeatState::Reserved);
                }
                !r.seats.is_empty()
            }
            SeatResult::SeatsReleased(r) => {
                let Some(key) = self.holding.remove(&r.booking_id) else { return false };
                let Some(sub) = self.subsections.get_mut(&key) else { return false };
                for p in &r.seats {
                    sub.taken.remove(p);
                }
                !r.seats.is_empty()
            }
            SeatResult::SeatsSold(r) => {
                let Some(key) = self.holding.remove(&r.booking_id) else { return false };
                let Some(sub) = self.subsections.get_mut(&key) else { return false };
                for p in &r.seats {
                    sub.taken.insert(*p, SeatState::Sold);
                }
                !r.seats.is_empty()
            }
            SeatResult::ReservationFailed(_) => false,
        }
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.subsections.iter().any(|((s, _), sub)| s == section && sub.layout.is_some())
    }

    /// `(rows, seats_per_row)` of a configured subsection.
    pub fn dimensions(&self, section: &str, subsection: u32) -> Option<(u32, u32)> {
        let (rows, cols, _) = self.subsections.get(&(section.to_owned(), subsection))?.layout?;
        Some((rows, cols))
    }

    /// Whether any subsection is configured.
    pub fn is_configured(&self) -> bool {
        self.subsections.values().any(|s| s.layout.is_some())
    }

    /// Availability of every configured subsection, by section then number.
    pub fn availability(&self) -> Vec<Availability> {
        self.subsections
            .iter()
            .filter_map(|((section, subsection), sub)| {
                let (rows, seats_per_row, price) = sub.layout?;
                let count = |state| sub.taken.values().filter(|s| **s == state).count() as u64;
                let (reserved, sold) = (count(SeatState::Reserved), count(SeatState::Sold));
                Some(Availability {
                    section: section.clone(),
                    subsection: *subsection,
                    rows,
                    seats_per_row,
                    price,
                    available: (u64::from(rows) * u64::from(seats_per_row)).saturating_sub(reserved + sold),
                    reserved,
                    sold,
                })
            })
            .collect()
    }

    /// Every seat of a configured subsection.
    pub fn seat_map(&self, section: &str, subsection: u32) -> Option<SeatMap> {
        let sub = self.subsections.get(&(section.to_owned(), subsection))?;
        let (rows, seats_per_row, price) = sub.layout?;
        let seats = (1..=rows)
            .map(|row| {
                (1..=seats_per_row)
                    .map(|seat| sub.taken.get(&SeatPosition { row, seat }).copied().unwrap_or(SeatState::Available))
                    .collect()
            })
            .collect();
        Some(SeatMap { section: section.to_owned(), subsection, rows, seats_per_row, price, seats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnstile_protocol::{SeatsReleased, SeatsReserved, SeatsSold};

    fn p(row: u32, seat: u32) -> SeatPosition {
        SeatPosition { row, seat }
    }

    #[test]
    fn results_move_seats_whatever_order_the_topics_arrive_in() {
        let mut venue = Venue::default();
        // A result read before its subsection's configuration.
        assert!(venue.apply(&SeatResult::SeatsReserved(SeatsReserved {
            booking_id: "b1".into(),
            section: "A".into(),
            subsection: 1,
            seats: vec![p(1, 1), p(1, 2)],
            total_price: 20,
        })));
        assert!(venue.availability().is_empty(), "not configured yet");
        venue.configure(&ConfigureSubsection {
            section: "A".into(),
            subsection: 1,
            rows: 2,
            seats_per_row: 3,
            price: 10,
        });
        venue.apply(&SeatResult::SeatsReserved(SeatsReserved {
            booking_id: "b2".into(),
            section: "A".into(),
            subsection: 1,
            seats: vec![p(2, 3)],
            total_price: 10,
        }));
        let a = &venue.availability()[0];
        assert_eq!((a.available, a.reserved, a.sold), (3, 3, 0));
        venue.apply(&SeatResult::SeatsSold(SeatsSold { booking_id: "b1".into(), seats: vec![p(1, 1), p(1, 2)] }));
        venue.apply(&SeatResult::SeatsReleased(SeatsReleased { booking_id: "b2".into(), seats: vec![p(2, 3)] }));
        let a = &venue.availability()[0];
        assert_eq!((a.available, a.reserved, a.sold), (4, 0, 2));
        let map = venue.seat_map("A", 1).unwrap();
        assert_eq!(map.seats[0], vec![SeatState::Sold, SeatState::Sold, SeatState::Available]);
        assert_eq!(map.seats[1], vec![SeatState::Available; 3]);
        assert!(
            !venue
                .apply(&SeatResult::SeatsReleased(SeatsReleased { booking_id: "nobody".into(), seats: vec![p(1, 3)] }))
        );
        assert!(venue.has_section("A") && !venue.has_section("B"));
        assert_eq!(venue.dimensions("A", 1), Some((2, 3)));
        assert_eq!(venue.dimensions("A", 2), None);
    }
}
