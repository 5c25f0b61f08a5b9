//! The venue as the public topics tell it: subsections from the
//! `configure_subsection` commands, seat states from the seat service's
//! results. Never from a plugin's private state.
//!
//! Results name their subsection only when seats are reserved; releases and
//! sales name the booking, so the view remembers which subsection each
//! holding booking is in. Results and configurations come from different
//! topics in no particular order relative to each other, so seat states are
//! kept whether or not their subsection is configured yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// How many of `taken` are reserved and sold, kept with every change so
    /// that availability costs one step per subsection, not per seat.
    reserved: u64,
    sold: u64,
    /// The venue's change count at this subsection's last change.
    version: u64,
}

impl Subsection {
    /// Sets one seat's state (`Available` frees it), keeping the counts.
    fn set(&mut self, position: SeatPosition, state: SeatState) {
        let before = if state == SeatState::Available {
            self.taken.remove(&position)
        } else {
            self.taken.insert(position, state)
        };
        self.count(before, -1);
        self.count(Some(state), 1);
    }

    fn count(&mut self, state: Option<SeatState>, delta: i64) {
        let counter = match state {
            Some(SeatState::Reserved) => &mut self.reserved,
            Some(SeatState::Sold) => &mut self.sold,
            Some(SeatState::Available) | None => return,
        };
        *counter = counter.saturating_add_signed(delta);
    }
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
    /// Changes with every change to this subsection (its seat map's `ETag`
    /// carries it): a client refetches the seat map only when it moved.
    pub version: u64,
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

/// A subsection's key: section name and number.
pub type SubsectionKey = (String, u32);

/// The whole venue of one event.
#[derive(Debug, Clone, Default)]
pub struct Venue {
    subsections: BTreeMap<SubsectionKey, Subsection>,
    /// The subsection a booking holds seats in.
    holding: HashMap<String, SubsectionKey>,
    /// Changes applied so far: the source of every version.
    changes: u64,
    /// Subsections changed since the last [`Venue::take_changes`].
    dirty: BTreeSet<SubsectionKey>,
}

/// What changed since the last [`Venue::take_changes`]: availability as a
/// whole, and the seat maps of only the subsections that changed (`None`
/// when one is not configured, so has no map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The venue's change count these reflect.
    pub version: u64,
    pub availability: Vec<Availability>,
    pub subsections: Vec<Changed>,
}

/// One changed subsection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub key: SubsectionKey,
    pub version: u64,
    pub seat_map: Option<SeatMap>,
}

impl Venue {
    pub fn configure(&mut self, c: &ConfigureSubsection) {
        let key = (c.section.clone(), c.subsection);
        let sub = self.subsections.entry(key.clone()).or_default();
        sub.layout = Some((c.rows, c.seats_per_row, c.price));
        // A resize drops seats that no longer exist.
        let gone: Vec<SeatPosition> =
            sub.taken.keys().filter(|p| p.row > c.rows || p.seat > c.seats_per_row).copied().collect();
        for p in gone {
            sub.set(p, SeatState::Available);
        }
        self.touch(key);
    }

    /// Applies one seat result; `true` if availability changed.
    pub fn apply(&mut self, result: &SeatResult) -> bool {
        let (key, seats, state) = match result {
            SeatResult::SeatsReserved(r) => {
                let key = (r.section.clone(), r.subsection);
                self.holding.insert(r.booking_id.clone(), key.clone());
                (key, &r.seats, SeatState::Reserved)
            }
            SeatResult::SeatsReleased(r) => {
                let Some(key) = self.holding.remove(&r.booking_id) else { return false };
                (key, &r.seats, SeatState::Available)
            }
            SeatResult::SeatsSold(r) => {
                let Some(key) = self.holding.remove(&r.booking_id) else { return false };
                (key, &r.seats, SeatState::Sold)
            }
            SeatResult::ReservationFailed(_) => return false,
        };
        // A reservation may come before its subsection's configuration; a
        // release or sale of a subsection never heard of changes nothing.
        let sub = match state {
            SeatState::Reserved => self.subsections.entry(key.clone()).or_default(),
            _ => match self.subsections.get_mut(&key) {
                Some(sub) => sub,
                None => return false,
            },
        };
        for p in seats {
            sub.set(*p, state);
        }
        if seats.is_empty() {
            return false;
        }
        self.touch(key);
        true
    }

    /// Marks a subsection changed, with a new version.
    fn touch(&mut self, key: SubsectionKey) {
        self.changes += 1;
        if let Some(sub) = self.subsections.get_mut(&key) {
            sub.version = self.changes;
        }
        self.dirty.insert(key);
    }

    /// Whether anything changed since the last [`Venue::take_changes`].
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Availability and the changed subsections' seat maps, and forgets the
    /// changes: O(subsections + seats of the changed ones).
    pub fn take_changes(&mut self) -> Changes {
        let dirty = std::mem::take(&mut self.dirty);
        let subsections = dirty
            .into_iter()
            .map(|key| Changed {
                version: self.subsections.get(&key).map_or(self.changes, |s| s.version),
                seat_map: self.seat_map(&key.0, key.1),
                key,
            })
            .collect();
        Changes { version: self.changes, availability: self.availability(), subsections }
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

    /// Availability of every configured subsection, by section then number:
    /// O(subsections), from the kept counts.
    pub fn availability(&self) -> Vec<Availability> {
        self.subsections
            .iter()
            .filter_map(|((section, subsection), sub)| {
                let (rows, seats_per_row, price) = sub.layout?;
                let (reserved, sold) = (sub.reserved, sub.sold);
                Some(Availability {
                    section: section.clone(),
                    subsection: *subsection,
                    rows,
                    seats_per_row,
                    price,
                    available: (u64::from(rows) * u64::from(seats_per_row)).saturating_sub(reserved + sold),
                    reserved,
                    sold,
                    version: sub.version,
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

    #[test]
    fn kept_counts_equal_a_recount_through_any_sequence() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(11);
        let mut venue = Venue::default();
        for step in 0..5_000u32 {
            let sub = rng.random_range(1..=3);
            let seats: Vec<SeatPosition> =
                (0..rng.random_range(0..4)).map(|_| p(rng.random_range(1..=5), rng.random_range(1..=5))).collect();
            let booking = format!("b{}", rng.random_range(0..200));
            let result = match rng.random_range(0..10) {
                0 => {
                    let (rows, seats_per_row) = (rng.random_range(1..=5), rng.random_range(1..=5));
                    venue.configure(&ConfigureSubsection {
                        section: "A".into(),
                        subsection: sub,
                        rows,
                        seats_per_row,
                        price: 1,
                    });
                    continue;
                }
                1..=4 => SeatResult::SeatsReserved(SeatsReserved {
                    booking_id: booking,
                    section: "A".into(),
                    subsection: sub,
                    seats,
                    total_price: 1,
                }),
                5..=7 => SeatResult::SeatsSold(SeatsSold { booking_id: booking, seats }),
                _ => SeatResult::SeatsReleased(SeatsReleased { booking_id: booking, seats }),
            };
            venue.apply(&result);
            for (key, sub) in &venue.subsections {
                let count = |state| sub.taken.values().filter(|s| **s == state).count() as u64;
                assert_eq!(
                    (sub.reserved, sub.sold),
                    (count(SeatState::Reserved), count(SeatState::Sold)),
                    "{key:?} at {step}"
                );
            }
        }
    }

    #[test]
    fn changes_name_only_the_subsections_that_changed_with_new_versions() {
        let mut venue = Venue::default();
        for subsection in 1..=3 {
            venue.configure(&ConfigureSubsection {
                section: "A".into(),
                subsection,
                rows: 2,
                seats_per_row: 2,
                price: 1,
            });
        }
        let first = venue.take_changes();
        assert_eq!(first.subsections.len(), 3);
        assert!(!venue.is_dirty() && venue.take_changes().subsections.is_empty(), "taken once");
        let versions: Vec<u64> = first.availability.iter().map(|a| a.version).collect();

        // Nothing moved: a release of an unknown booking is no change.
        assert!(
            !venue
                .apply(&SeatResult::SeatsReleased(SeatsReleased { booking_id: "nobody".into(), seats: vec![p(1, 1)] }))
        );
        assert!(!venue.is_dirty());

        let reserve = |booking: &str, subsection| {
            SeatResult::SeatsReserved(SeatsReserved {
                booking_id: booking.into(),
                section: "A".into(),
                subsection,
                seats: vec![p(1, 1)],
                total_price: 1,
            })
        };
        venue.apply(&reserve("b1", 2));
        venue.apply(&reserve("b2", 2));
        venue.apply(&SeatResult::SeatsSold(SeatsSold { booking_id: "b1".into(), seats: vec![p(1, 1)] }));
        let second = venue.take_changes();
        assert_eq!(second.subsections.iter().map(|c| c.key.clone()).collect::<Vec<_>>(), vec![("A".to_owned(), 2)]);
        let after: Vec<u64> = second.availability.iter().map(|a| a.version).collect();
        assert_eq!((after[0], after[2]), (versions[0], versions[2]), "untouched subsections keep their version");
        assert!(after[1] > versions[1]);
        assert_eq!(second.subsections[0].version, after[1]);
        assert_eq!(second.version, after[1]);
        assert_eq!(second.subsections[0].seat_map, venue.seat_map("A", 2));
        let a2 = &second.availability[1];
        assert_eq!((a2.available, a2.reserved, a2.sold), (3, 0, 1));
    }
}
