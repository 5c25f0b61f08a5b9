//! Deterministic input for a drain benchmark: exactly `messages` records
//! for one service's input topics, derived from a booking [`plan`], routed
//! and keyed as DOMAIN.md §3 says, so the service handles every one against
//! the state that owns it.
//!
//! - `seat-reservation-service`: a `reserve_seats` per booking, then a
//!   `finalize_seats` for the 70 % the plan pays and a `release_seats` for
//!   the 15 % it cancels (what ticketing would send).
//! - `ticketing-service`: a `create_booking` per booking, then each
//!   booking's seat result (`seats_reserved`, or `reservation_failed` for one
//!   in ten), then a `pay_booking` for the reserved ones the plan pays.
//!
//! All of one kind is written before the next, but the service reads its
//! two topics side by side, so some results or pays arrive before their
//! create: they are handled (and refused or ignored) like any early
//! message, which is work the service does in production too.

use std::collections::HashMap;

use turnstile_protocol::{
    BookingCommand, FinalizeSeats, PayBooking, ReleaseSeats, ReservationFailed, ReserveSeats, SeatCommand,
    SeatPosition, SeatResult, SeatsReserved,
};

use super::plan::{self, Buyer, Mix, Planned};
use crate::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use crate::routing;
use crate::seating::SeatingChart;

/// One record to publish before the service starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRecord {
    pub topic: String,
    pub partition: i32,
    pub key: String,
    pub payload: Vec<u8>,
}

/// Why no fill could be made.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error(
        "no drain benchmark for service {0:?} (there is one for {TICKETING_SERVICE} and {SEAT_RESERVATION_SERVICE})"
    )]
    UnknownService(String),
    #[error("the seating chart has no sections")]
    EmptyChart,
    #[error("encoding a message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Exactly `messages` input records for `service` on `event_id`, the same
/// for the same arguments.
pub fn drain_input(
    service: &str,
    event_id: u64,
    partitions: i32,
    chart: &SeatingChart,
    messages: usize,
    seed: u64,
) -> Result<Vec<FillRecord>, FillError> {
    if chart.sections.is_empty() {
        return Err(FillError::EmptyChart);
    }
    let records_of: fn(usize, &Planned) -> usize = match service {
        SEAT_RESERVATION_SERVICE => |_, p| 1 + usize::from(matches!(p.buyer, Buyer::Pays | Buyer::Cancels)),
        TICKETING_SERVICE => |i, p| 2 + usize::from(pays(i, p)),
        other => return Err(FillError::UnknownService(other.to_owned())),
    };
    // Every booking is at least one record: `messages` bookings are enough;
    // keep the shortest prefix that reaches the count.
    let mut plan = plan::plan(chart, messages, Mix::default(), seed);
    let mut total = 0;
    let bookings = plan
        .iter()
        .enumerate()
        .position(|(i, p)| {
            total += records_of(i, p);
            total >= messages
        })
        .map_or(plan.len(), |last| last + 1);
    plan.truncate(bookings);
    let fill = Fill { event_id, partitions, records: Vec::with_capacity(messages), limit: messages };
    if service == TICKETING_SERVICE { fill.bookings(chart, &plan) } else { fill.seats(&plan) }
}

/// Whether booking `i` of a ticketing fill gets seats (nine in ten)…
fn reserved(i: usize) -> bool {
    i % 10 != 9
}

/// …and then a pay.
fn pays(i: usize, p: &Planned) -> bool {
    reserved(i) && p.buyer == Buyer::Pays
}

struct Fill {
    event_id: u64,
    partitions: i32,
    records: Vec<FillRecord>,
    limit: usize,
}

impl Fill {
    fn push(
        &mut self,
        topic: &str,
        (partition, key): (i32, String),
        value: &impl serde::Serialize,
    ) -> Result<(), FillError> {
        if self.records.len() < self.limit {
            let payload = serde_json::to_vec(value)?;
            self.records.push(FillRecord { topic: topic.to_owned(), partition, key, payload });
        }
        Ok(())
    }

    fn by_section(&self, section: &str) -> (i32, String) {
        routing::by_section(self.event_id, section, self.partitions)
    }

    fn by_booking(&self, booking_id: &str) -> (i32, String) {
        routing::by_booking(self.event_id, booking_id, self.partitions)
    }

    fn seats(mut self, plan: &[Planned]) -> Result<Vec<FillRecord>, FillError> {
        let topic = naming::ticket_command_request_topic(self.event_id).to_string();
        for p in plan {
            let c = &p.command;
            let reserve = SeatCommand::ReserveSeats(ReserveSeats {
                booking_id: c.booking_id.clone(),
                buyer_id: c.buyer_id,
                section: c.section.clone(),
                subsection: c.subsection,
                quantity: c.quantity,
                seat_selection_mode: c.seat_selection_mode,
                seat_positions: c.seat_positions.clone(),
            });
            self.push(&topic, self.by_section(&c.section), &reserve)?;
        }
        for p in plan {
            let c = &p.command;
            let (booking_id, section, subsection) = (c.booking_id.clone(), c.section.clone(), c.subsection);
            let follow_up = match p.buyer {
                Buyer::Pays => SeatCommand::FinalizeSeats(FinalizeSeats { booking_id, section, subsection }),
                Buyer::Cancels => SeatCommand::ReleaseSeats(ReleaseSeats { booking_id, section, subsection }),
                Buyer::Abandons | Buyer::CancelsAtOnce | Buyer::Invalid => continue,
            };
            self.push(&topic, self.by_section(&c.section), &follow_up)?;
        }
        Ok(self.records)
    }

    fn bookings(mut self, chart: &SeatingChart, plan: &[Planned]) -> Result<Vec<FillRecord>, FillError> {
        let commands = naming::booking_command_topic(self.event_id).to_string();
        let results = naming::seat_reservation_result_topic(self.event_id).to_string();
        for p in plan {
            let route = self.by_booking(&p.command.booking_id);
            self.push(&commands, route, &BookingCommand::CreateBooking(p.command.clone()))?;
        }
        // Seats handed out in order per subsection, as the seat service
        // would for best_available; ticketing takes the result as given.
        let mut next_seat: HashMap<(&str, u32), u32> = HashMap::new();
        let prices: HashMap<&str, u64> = chart.sections.iter().map(|s| (s.name.as_str(), s.price)).collect();
        for (i, p) in plan.iter().enumerate() {
            let c = &p.command;
            let result = if !reserved(i) {
                SeatResult::ReservationFailed(ReservationFailed {
                    booking_id: c.booking_id.clone(),
                    reason: "not enough seats available".into(),
                })
            } else {
                let first = next_seat.entry((c.section.as_str(), c.subsection)).or_insert(0);
                let seats: Vec<SeatPosition> = (0..c.quantity)
                    .filter_map(|k| {
                        let n = (*first + k) % (chart.rows * chart.cols);
                        SeatPosition::new(n / chart.cols + 1, n % chart.cols + 1)
                    })
                    .collect();
                *first += c.quantity;
                SeatResult::SeatsReserved(SeatsReserved {
                    booking_id: c.booking_id.clone(),
                    section: c.section.clone(),
                    subsection: c.subsection,
                    total_price: prices.get(c.section.as_str()).copied().unwrap_or(0) * u64::from(c.quantity),
                    seats,
                })
            };
            self.push(&results, self.by_booking(&c.booking_id), &result)?;
        }
        for (i, p) in plan.iter().enumerate() {
            if pays(i, p) {
                let c = &p.command;
                let pay =
                    BookingCommand::PayBooking(PayBooking { booking_id: c.booking_id.clone(), buyer_id: c.buyer_id });
                self.push(&commands, self.by_booking(&c.booking_id), &pay)?;
            }
        }
        Ok(self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_are_exact_reproducible_and_routed() {
        let chart = SeatingChart::default_venue();
        for service in [SEAT_RESERVATION_SERVICE, TICKETING_SERVICE] {
            let a = drain_input(service, 7, 6, &chart, 10_000, 1).unwrap();
            let b = drain_input(service, 7, 6, &chart, 10_000, 1).unwrap();
            assert_eq!(a.len(), 10_000, "{service}");
            assert_eq!(a, b, "{service}");
            let inputs: Vec<String> =
                crate::topology::Topology::builtin().addressed_to(7, service).iter().map(|t| t.to_string()).collect();
            assert!(a.iter().all(|r| inputs.contains(&r.topic)), "{service}");
            assert!(a.iter().all(|r| (0..6).contains(&r.partition)), "{service}");
        }
    }

    #[test]
    fn ticketing_gets_creates_results_and_pays() {
        let chart = SeatingChart::default_venue();
        let fill = drain_input(TICKETING_SERVICE, 7, 6, &chart, 2_630, 1).unwrap();
        let count = |needle: &str| fill.iter().filter(|r| String::from_utf8_lossy(&r.payload).contains(needle)).count();
        let (creates, reserved, failed, pays) = (
            count("\"create_booking\""),
            count("\"seats_reserved\""),
            count("\"reservation_failed\""),
            count("\"pay_booking\""),
        );
        assert_eq!(creates, reserved + failed);
        assert!((900..1100).contains(&creates), "{creates}");
        assert!(failed * 8 < creates && failed * 12 > creates, "{failed} of {creates}");
        assert!(pays * 10 > reserved * 5 && pays <= reserved, "{pays} of {reserved}");
        assert!(drain_input("nobody", 7, 6, &chart, 10, 1).unwrap_err().to_string().contains("nobody"));
    }
}
