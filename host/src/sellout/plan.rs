//! What the load generator will ask for: more bookings than seats, a mix of
//! `best_available` and `manual`, and what each buyer does once seats are
//! reserved.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use turnstile_protocol::{CreateBooking, SeatPosition, SeatSelectionMode};

use crate::seating::SeatingChart;

/// What a buyer does with a `pending_payment` booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    Pay,
    Cancel,
    /// Leaves the seats reserved (an abandoned cart).
    Nothing,
}

/// One planned booking.
#[derive(Debug, Clone)]
pub struct PlannedBooking {
    pub command: CreateBooking,
    pub follow: Follow,
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
pub fn plan(chart: &SeatingChart, count: usize, mix: Mix, seed: u64) -> Vec<PlannedBooking> {
    let mut rng = StdRng::seed_from_u64(seed);
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
            let follow = if roll < mix.pay {
                Follow::Pay
            } else if roll < mix.pay + mix.cancel {
                Follow::Cancel
            } else {
                Follow::Nothing
            };
            let quantity = if manual { seat_positions.len() as u32 } else { quantity };
            PlannedBooking {
                command: CreateBooking {
                    booking_id: format!("{seed:x}-{i:08}"),
                    buyer_id: rng.random_range(1..=1_000_000),
                    section: section.name.clone(),
                    subsection,
                    quantity,
                    seat_selection_mode: if manual {
                        SeatSelectionMode::Manual
                    } else {
                        SeatSelectionMode::BestAvailable
                    },
                    seat_positions,
                },
                follow,
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
        assert!(a.iter().zip(&b).all(|(x, y)| x.command == y.command && x.follow == y.follow));
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
}
