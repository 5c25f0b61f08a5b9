//! What the load generator will ask for: more bookings than seats, a mix of
//! `best_available` and `manual`, and what each buyer does once seats are
//! reserved. [`plan`] is the main job's shape (`Mix`); [`plan_bookings`]
//! adds the hostile cases the tests want (invalid creates, repeats, cancels
//! sent at once, seats outside the venue).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;

use turnstile_protocol::{BookingStatus, CreateBooking, SeatPosition, SeatSelectionMode};

use crate::seating::SeatingChart;

/// What a planned buyer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buyer {
    /// Leaves a reserved booking unpaid.
    Abandons,
    /// Pays once the booking is `pending_payment`.
    Pays,
    /// Cancels once the booking is `pending_payment`.
    Cancels,
    /// Sends a cancel right after the create, while the booking is `processing`.
    CancelsAtOnce,
    /// Sends a create that breaks the booking rules (must fail at once).
    Invalid,
}

/// One booking the load will send.
#[derive(Debug, Clone)]
pub struct Planned {
    pub command: CreateBooking,
    pub buyer: Buyer,
    /// The create is sent twice (a client retry); the repeat must change nothing.
    pub send_twice: bool,
}

impl Planned {
    /// Whether the create breaks the booking rules or names a seat the
    /// chart does not have: a gateway refuses it before publishing.
    pub fn breaks_rules(&self, chart: &SeatingChart) -> bool {
        let c = &self.command;
        turnstile_protocol::rules::validate_selection(c.quantity, c.seat_selection_mode, &c.seat_positions).is_err()
            || c.seat_positions.iter().any(|p| p.row > chart.rows || p.seat > chart.cols)
    }

    /// Whether `status` is where this booking ends.
    pub fn settled_at(&self, status: BookingStatus) -> bool {
        use BookingStatus::*;
        match self.buyer {
            Buyer::Abandons => matches!(status, PendingPayment | Failed),
            Buyer::Pays => matches!(status, Completed | Failed),
            Buyer::Cancels | Buyer::CancelsAtOnce => matches!(status, Cancelled | Failed),
            Buyer::Invalid => status == Failed,
        }
    }
}

/// A create: `manual` when it names seats, `best_available` when not.
fn create(
    booking_id: String,
    buyer_id: u64,
    section: &str,
    subsection: u32,
    quantity: u32,
    seat_positions: Vec<SeatPosition>,
) -> CreateBooking {
    let seat_selection_mode =
        if seat_positions.is_empty() { SeatSelectionMode::BestAvailable } else { SeatSelectionMode::Manual };
    CreateBooking {
        booking_id,
        buyer_id,
        section: section.into(),
        subsection,
        quantity,
        seat_selection_mode,
        seat_positions,
    }
}

/// Each booking of a plan has a buyer of its own, so that no planned
/// booking crosses the gateway's per-buyer limits (a plan's buyers would
/// otherwise share ids by chance and be refused as over the limit).
fn first_buyer(rng: &mut StdRng) -> u64 {
    rng.random_range(1..=1_000_000_000)
}

/// `count` bookings against `chart`: about 60 % best_available and 40 %
/// manual (some of those naming a seat outside the chart), quantities 1–4,
/// a few invalid creates and repeated creates; of the valid ones about 35 %
/// pay, 15 % cancel after reservation, 8 % cancel at once, the rest abandon.
pub fn plan_bookings(chart: &SeatingChart, count: usize, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let first_buyer = first_buyer(&mut rng);
    (0..count)
        .map(|i| {
            let section = &chart.sections[rng.random_range(0..chart.sections.len())];
            let subsection = rng.random_range(1..=section.subsections);
            let mut quantity = rng.random_range(1..=4u32);
            let manual = rng.random_bool(0.4);
            let mut positions = Vec::new();
            if manual {
                let capacity = chart.rows * chart.cols;
                let mut picked = BTreeSet::new();
                while picked.len() < quantity.min(capacity) as usize {
                    picked.insert((rng.random_range(1..=chart.rows), rng.random_range(1..=chart.cols)));
                }
                positions = picked.into_iter().filter_map(|(r, s)| SeatPosition::new(r, s)).collect();
                quantity = positions.len() as u32;
                if rng.random_bool(0.05) {
                    // A seat the venue does not have: the reservation must fail.
                    if let Some(outside) = SeatPosition::new(chart.rows + 1, 1) {
                        positions[0] = outside;
                    }
                }
            }
            let roll: f64 = rng.random();
            let buyer = if roll < 0.03 {
                Buyer::Invalid
            } else if roll < 0.38 {
                Buyer::Pays
            } else if roll < 0.53 {
                Buyer::Cancels
            } else if roll < 0.61 {
                Buyer::CancelsAtOnce
            } else {
                Buyer::Abandons
            };
            if buyer == Buyer::Invalid {
                if manual {
                    quantity += 1; // fewer positions than seats asked for
                } else {
                    quantity = 5; // more than 4 seats
                }
            }
            let buyer_id = first_buyer + i as u64;
            Planned {
                command: create(
                    uuid::Uuid::new_v4().to_string(),
                    buyer_id,
                    &section.name,
                    subsection,
                    quantity,
                    positions,
                ),
                buyer,
                send_twice: rng.random_bool(0.05),
            }
        })
        .collect()
}

/// `per_subsection` single-seat best_available bookings for every
/// subsection of `chart`, all abandoned once reserved.
pub fn plan_single_seats(chart: &SeatingChart, per_subsection: usize) -> Vec<Planned> {
    let mut plan = Vec::new();
    for section in &chart.sections {
        for subsection in 1..=section.subsections {
            for i in 0..per_subsection {
                plan.push(Planned {
                    command: create(
                        uuid::Uuid::new_v4().to_string(),
                        10_000_000 + i as u64,
                        &section.name,
                        subsection,
                        1,
                        Vec::new(),
                    ),
                    buyer: Buyer::Abandons,
                    send_twice: false,
                });
            }
        }
    }
    plan
}

/// Shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Share of bookings that pick seats by hand.
    pub manual: f64,
    /// Share of reserved bookings that are paid.
    pub pay: f64,
    /// Share of reserved bookings that are cancelled.
    pub cancel: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { manual: 0.2, pay: 0.7, cancel: 0.15 }
    }
}

/// `count` bookings against `chart`, reproducible from `seed`.
pub fn plan(chart: &SeatingChart, count: usize, mix: Mix, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let first_buyer = first_buyer(&mut rng);
    (0..count)
        .map(|i| {
            let section = &chart.sections[rng.random_range(0..chart.sections.len())];
            let subsection = rng.random_range(1..=section.subsections);
            let quantity = rng.random_range(1..=4u32);
            let manual = rng.random_bool(mix.manual);
            let seat_positions = if manual {
                // Adjacent seats in one row, as a person would pick them.
                let width = chart.cols.min(quantity);
                let row = rng.random_range(1..=chart.rows);
                let first = rng.random_range(1..=chart.cols - width + 1);
                (0..width).filter_map(|k| SeatPosition::new(row, first + k)).collect()
            } else {
                Vec::new()
            };
            let roll: f64 = rng.random();
            let buyer = if roll < mix.pay {
                Buyer::Pays
            } else if roll < mix.pay + mix.cancel {
                Buyer::Cancels
            } else {
                Buyer::Abandons
            };
            let quantity = if manual { seat_positions.len() as u32 } else { quantity };
            let buyer_id = first_buyer + i as u64;
            Planned {
                command: create(
                    format!("{seed:x}-{i:08}"),
                    buyer_id,
                    &section.name,
                    subsection,
                    quantity,
                    seat_positions,
                ),
                buyer,
                send_twice: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_reproducible_and_valid() {
        let chart = SeatingChart::default_venue();
        let a = plan(&chart, 1000, Mix::default(), 7);
        let b = plan(&chart, 1000, Mix::default(), 7);
        assert_eq!(a.len(), 1000);
        assert!(a.iter().zip(&b).all(|(x, y)| x.command == y.command && x.buyer == y.buyer));
        let manual = a.iter().filter(|p| p.command.seat_selection_mode == SeatSelectionMode::Manual).count();
        assert!((100..300).contains(&manual), "{manual}");
        for p in &a {
            let c = &p.command;
            assert!((1..=4).contains(&c.quantity));
            if c.seat_selection_mode == SeatSelectionMode::Manual {
                assert_eq!(c.seat_positions.len(), c.quantity as usize);
            }
        }
        let ids: std::collections::HashSet<_> = a.iter().map(|p| &p.command.booking_id).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn every_planned_booking_has_a_buyer_of_its_own() {
        let chart = SeatingChart::default_venue();
        for planned in [plan(&chart, 20_000, Mix::default(), 3), plan_bookings(&chart, 20_000, 3)] {
            let buyers: std::collections::HashSet<_> = planned.iter().map(|p| p.command.buyer_id).collect();
            assert_eq!(buyers.len(), planned.len(), "buyers shared: the gateway would refuse some as over its limits");
        }
    }
}
