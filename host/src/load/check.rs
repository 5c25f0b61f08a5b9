//! The independent checker: what a `read_committed` reader of the public
//! topics finds, held against the contract and the plan that was sent.
//! The main job (`turnstile sellout`), the chaos test and the integration
//! tests all judge a run with it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use turnstile_protocol::{BookingStatus, BookingStatusChanged, SeatPosition, SeatResult, SeatSelectionMode};

use super::plan::{Buyer, Planned};
use super::read::Record;
use crate::naming;
use crate::partition::booking_partition;
use crate::seating::SeatingChart;

/// What the checker found in the committed output of a sellout.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Contract violations, one line each.
    pub problems: Vec<String>,
    pub status_messages: usize,
    /// Final status per booking id.
    pub finals: HashMap<String, BookingStatus>,
    /// Bookings per final status name.
    pub counts: BTreeMap<&'static str, usize>,
    /// Seats held (pending_payment or completed) per (section, subsection).
    pub held: BTreeMap<(String, u32), usize>,
    /// Bookings failed by the seat service (not by validation).
    pub reservation_failures: usize,
}

impl Outcome {
    /// Panics listing the problems (at most 25) and `context` (service logs).
    pub fn assert_clean(&self, context: &str) {
        if self.problems.is_empty() {
            return;
        }
        let shown: Vec<&str> = self.problems.iter().take(25).map(String::as_str).collect();
        panic!(
            "{} contract violation(s) in the committed output (first {}):\n  {}\nfinal statuses: {:?}\n{context}",
            self.problems.len(),
            shown.len(),
            shown.join("\n  "),
            self.counts
        );
    }

    pub fn count(&self, status: BookingStatus) -> usize {
        self.counts.get(status.as_str()).copied().unwrap_or(0)
    }
}

fn seat_list(seats: &[SeatPosition]) -> String {
    seats.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
}

/// Checks the committed statuses and seat results of the bookings of `plan`
/// (the ones sent) against docs/DOMAIN.md §4–5: every booking decided once,
/// only legal transitions, no status twice (refusals aside), every status
/// on its booking's partition, seats as asked and priced, no seat held by
/// two bookings, and the seat service's reservations, releases and sales in
/// agreement with the final statuses.
pub fn check_outcome(
    event_id: u64,
    partitions: i32,
    chart: &SeatingChart,
    plan: &[Planned],
    statuses: &[Record],
    results: &[Record],
) -> Outcome {
    use BookingStatus::*;
    let mut o = Outcome { status_messages: statuses.len(), ..Outcome::default() };
    let published: HashMap<&str, &Planned> = plan.iter().map(|p| (p.command.booking_id.as_str(), p)).collect();

    // Status messages per booking, in offset order (one booking, one partition).
    let mut seen: HashSet<(String, &'static str, Option<String>)> = HashSet::new();
    let mut history: HashMap<String, Vec<(BookingStatusChanged, i64)>> = HashMap::new();
    for r in statuses {
        let Ok(s) = serde_json::from_slice::<BookingStatusChanged>(&r.value) else {
            o.problems.push(format!(
                "status partition {} offset {}: not a booking_status_changed: {}",
                r.partition,
                r.offset,
                String::from_utf8_lossy(&r.value)
            ));
            continue;
        };
        let expected_key = naming::booking_key(event_id, &s.booking_id);
        let expected_partition = booking_partition(event_id, &s.booking_id, partitions);
        if r.key.as_deref() != Some(expected_key.as_str()) || r.partition != expected_partition {
            o.problems.push(format!(
                "status of {} is on partition {} with key {:?}; expected partition {expected_partition} key {expected_key}",
                s.booking_id, r.partition, r.key
            ));
        }
        if !seen.insert((s.booking_id.clone(), s.status.as_str(), s.reason.clone())) {
            o.problems.push(format!(
                "duplicate status message: booking {} {} reason {:?} appears again at partition {} offset {}",
                s.booking_id,
                s.status.as_str(),
                s.reason,
                r.partition,
                r.offset
            ));
        }
        history.entry(s.booking_id.clone()).or_default().push((s, r.offset));
    }
    for id in history.keys() {
        if !published.contains_key(id.as_str()) {
            o.problems.push(format!("status for booking {id}, which the test never sent"));
        }
    }

    // Seat results per booking.
    let mut reserved: HashMap<String, Vec<SeatPosition>> = HashMap::new();
    let mut released: HashMap<String, Vec<SeatPosition>> = HashMap::new();
    let mut sold: HashMap<String, Vec<SeatPosition>> = HashMap::new();
    for r in results {
        let Ok(result) = serde_json::from_slice::<SeatResult>(&r.value) else {
            o.problems.push(format!(
                "seat result partition {} offset {} does not parse: {}",
                r.partition,
                r.offset,
                String::from_utf8_lossy(&r.value)
            ));
            continue;
        };
        let (id, seats, into) = match result {
            SeatResult::SeatsReserved(x) => (x.booking_id, x.seats, &mut reserved),
            SeatResult::SeatsReleased(x) => (x.booking_id, x.seats, &mut released),
            SeatResult::SeatsSold(x) => (x.booking_id, x.seats, &mut sold),
            SeatResult::ReservationFailed(_) => continue,
        };
        let mut seats = seats;
        seats.sort();
        if let Some(before) = into.get(&id).filter(|before| **before != seats) {
            o.problems.push(format!(
                "seat results for booking {id} disagree: {} then {}",
                seat_list(before),
                seat_list(&seats)
            ));
        }
        into.insert(id, seats);
    }

    // Per booking: the lifecycle, the final status, the seats.
    let mut holders: BTreeMap<(String, u32, SeatPosition), String> = BTreeMap::new();
    for p in plan.iter() {
        let c = &p.command;
        let id = c.booking_id.as_str();
        let Some(h) = history.get(id) else {
            o.problems.push(format!("booking {id} ({:?}) has no status message at all", p.buyer));
            continue;
        };
        let mut current: Option<BookingStatus> = None;
        let mut decisions = 0;
        let mut processing = 0;
        let mut reserved_seats: Option<Vec<SeatPosition>> = None;
        for (s, offset) in h {
            let allowed = match (current, s.status) {
                (None, Processing) => p.buyer != Buyer::Invalid,
                (None, Failed) => p.buyer == Buyer::Invalid,
                (Some(Processing), PendingPayment | Failed | Cancelled) => true,
                (Some(PendingPayment), Completed | Cancelled) => true,
                // A refused command repeats the unchanged status with the refusal.
                (Some(a), b) if a == b => s.reason.as_deref().is_some_and(|r| !r.is_empty()),
                _ => false,
            };
            if !allowed {
                o.problems.push(format!(
                    "booking {id} ({:?}): status {} (reason {:?}) at offset {offset} after {:?}; history {:?}",
                    p.buyer,
                    s.status.as_str(),
                    s.reason,
                    current.map(BookingStatus::as_str),
                    h.iter().map(|(s, _)| s.status.as_str()).collect::<Vec<_>>()
                ));
            }
            if current != Some(s.status) {
                match s.status {
                    Processing => processing += 1,
                    PendingPayment | Failed => decisions += 1,
                    _ => {}
                }
            }
            if s.status == Failed && s.reason.as_deref().is_none_or(str::is_empty) {
                o.problems.push(format!("booking {id} failed without a reason"));
            }
            if s.status == PendingPayment && current != Some(PendingPayment) {
                let seats = s.seats.clone().unwrap_or_default();
                check_reservation(&mut o, chart, p, &seats, s.total_price);
                let mut sorted = seats;
                sorted.sort();
                reserved_seats = Some(sorted);
            }
            if matches!(s.status, Completed | Cancelled)
                && let (Some(seats), Some(expected)) = (&s.seats, &reserved_seats)
            {
                let mut seats = seats.clone();
                seats.sort();
                if seats != *expected {
                    o.problems.push(format!(
                        "booking {id} is {} with seats {} but reserved {}",
                        s.status.as_str(),
                        seat_list(&seats),
                        seat_list(expected)
                    ));
                }
            }
            current = Some(s.status);
        }
        let Some(last) = current else { continue };
        if p.buyer == Buyer::Invalid {
            if h.len() != 1 || last != Failed {
                o.problems.push(format!(
                    "invalid booking {id} must fail once and only: {:?}",
                    h.iter().map(|(s, _)| s.status.as_str()).collect::<Vec<_>>()
                ));
            }
        } else {
            if processing != 1 {
                o.problems.push(format!("booking {id}: `processing` emitted {processing} times"));
            }
            let expected_decisions = if p.buyer == Buyer::CancelsAtOnce { 0..=1 } else { 1..=1 };
            if !expected_decisions.contains(&decisions) {
                o.problems.push(format!(
                    "booking {id} ({:?}): {decisions} decisions (pending_payment/failed); history {:?}",
                    p.buyer,
                    h.iter().map(|(s, _)| s.status.as_str()).collect::<Vec<_>>()
                ));
            }
        }
        if !p.settled_at(last) {
            o.problems.push(format!(
                "booking {id} ({:?}) ended {}, which is not where this buyer's booking must end; history {:?}",
                p.buyer,
                last.as_str(),
                h.iter().map(|(s, _)| s.status.as_str()).collect::<Vec<_>>()
            ));
        }
        if last == Failed && h.iter().any(|(s, _)| s.status == Processing) {
            o.reservation_failures += 1;
        }
        *o.counts.entry(last.as_str()).or_default() += 1;
        o.finals.insert(id.to_owned(), last);

        // Seats: held by at most one booking; the seat service agrees.
        let key = (c.section.clone(), c.subsection);
        if matches!(last, PendingPayment | Completed) {
            let seats = reserved_seats.clone().unwrap_or_default();
            *o.held.entry(key.clone()).or_default() += seats.len();
            for seat in &seats {
                if let Some(other) = holders.insert((c.section.clone(), c.subsection, *seat), id.to_owned()) {
                    o.problems.push(format!(
                        "seat {seat} of {}/{} is held by both booking {other} and booking {id}",
                        c.section, c.subsection
                    ));
                }
            }
        }
        let r = reserved.get(id);
        match last {
            PendingPayment | Completed => {
                if r != reserved_seats.as_ref() {
                    o.problems.push(format!(
                        "booking {id} is {} with seats {:?}, but the seat service reserved {:?}",
                        last.as_str(),
                        reserved_seats.as_deref().map(seat_list),
                        r.map(|s| seat_list(s))
                    ));
                }
                if released.contains_key(id) {
                    o.problems.push(format!("booking {id} is {} but its seats were released", last.as_str()));
                }
                if last == Completed && sold.get(id) != reserved_seats.as_ref() {
                    o.problems.push(format!(
                        "booking {id} is completed with seats {:?}, but the seat service sold {:?}",
                        reserved_seats.as_deref().map(seat_list),
                        sold.get(id).map(|s| seat_list(s))
                    ));
                }
            }
            Cancelled => {
                if let Some(r) = r
                    && released.get(id) != Some(r)
                {
                    o.problems.push(format!(
                        "booking {id} is cancelled but its seats {} were not released (released: {:?})",
                        seat_list(r),
                        released.get(id).map(|s| seat_list(s))
                    ));
                }
                if sold.contains_key(id) {
                    o.problems.push(format!("booking {id} is cancelled but its seats were sold"));
                }
            }
            Failed => {
                if let Some(r) = r {
                    o.problems.push(format!("booking {id} failed but the seat service reserved {}", seat_list(r)));
                }
            }
            Processing => {}
        }
    }
    let capacity = (chart.rows * chart.cols) as usize;
    for ((section, subsection), n) in &o.held {
        if *n > capacity {
            o.problems.push(format!("{n} seats held in {section}/{subsection}, which has {capacity}"));
        }
    }
    o
}

/// A `pending_payment` message carries the seats asked for, inside the chart,
/// at the subsection's price.
fn check_reservation(o: &mut Outcome, chart: &SeatingChart, p: &Planned, seats: &[SeatPosition], price: Option<u64>) {
    let c = &p.command;
    let id = &c.booking_id;
    let distinct: BTreeSet<SeatPosition> = seats.iter().copied().collect();
    if seats.len() != c.quantity as usize || distinct.len() != seats.len() {
        o.problems.push(format!("booking {id} asked for {} seats and got {}", c.quantity, seat_list(seats)));
    }
    if let Some(bad) = seats.iter().find(|s| s.row > chart.rows || s.seat > chart.cols) {
        o.problems.push(format!("booking {id} got seat {bad}, outside the {}x{} subsection", chart.rows, chart.cols));
    }
    if c.seat_selection_mode == SeatSelectionMode::Manual {
        let asked: BTreeSet<SeatPosition> = c.seat_positions.iter().copied().collect();
        if asked != distinct {
            o.problems.push(format!(
                "manual booking {id} asked for {} and got {}",
                seat_list(&c.seat_positions),
                seat_list(seats)
            ));
        }
    }
    let unit = chart.sections.iter().find(|s| s.name == c.section).map(|s| s.price);
    if let Some(unit) = unit
        && price != Some(unit * seats.len() as u64)
    {
        o.problems.push(format!("booking {id}: total_price {price:?} for {} seats at {unit}", seats.len()));
    }
}

#[cfg(test)]
mod tests {
    use turnstile_protocol::{CreateBooking, SeatsReserved};

    use super::*;
    use crate::seating::Section;

    const EVENT: u64 = 3;
    const PARTITIONS: i32 = 4;

    fn chart() -> SeatingChart {
        SeatingChart { rows: 2, cols: 3, sections: vec![Section { name: "A".into(), price: 10, subsections: 1 }] }
    }

    fn planned(id: &str) -> Planned {
        Planned {
            command: CreateBooking {
                booking_id: id.into(),
                buyer_id: 7,
                section: "A".into(),
                subsection: 1,
                quantity: 1,
                seat_selection_mode: SeatSelectionMode::BestAvailable,
                seat_positions: Vec::new(),
            },
            buyer: Buyer::Abandons,
            send_twice: false,
        }
    }

    fn seat() -> SeatPosition {
        SeatPosition::new(1, 1).unwrap_or_else(|| unreachable!())
    }

    fn status(id: &str, status: BookingStatus, offset: i64) -> Record {
        let seats = (status == BookingStatus::PendingPayment).then(|| vec![seat()]);
        let msg = BookingStatusChanged {
            booking_id: id.into(),
            buyer_id: 7,
            status,
            total_price: seats.as_ref().map(|_| 10),
            seats,
            reason: None,
        };
        Record {
            partition: booking_partition(EVENT, id, PARTITIONS),
            offset,
            key: Some(naming::booking_key(EVENT, id)),
            value: serde_json::to_vec(&msg).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    fn reserved(id: &str) -> Record {
        let r = SeatResult::SeatsReserved(SeatsReserved {
            booking_id: id.into(),
            section: "A".into(),
            subsection: 1,
            seats: vec![seat()],
            total_price: 10,
        });
        Record {
            partition: 0,
            offset: 0,
            key: None,
            value: serde_json::to_vec(&r).unwrap_or_default(),
            headers: vec![],
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let plan = [planned("a")];
        let statuses = [status("a", BookingStatus::Processing, 0), status("a", BookingStatus::PendingPayment, 1)];
        let o = check_outcome(EVENT, PARTITIONS, &chart(), &plan, &statuses, &[reserved("a")]);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert_eq!(o.count(BookingStatus::PendingPayment), 1);
    }

    #[test]
    fn a_seat_held_twice_a_repeated_decision_and_a_lost_booking_are_found() {
        let plan = [planned("a"), planned("b"), planned("c"), planned("d")];
        let statuses = [
            status("a", BookingStatus::Processing, 0),
            status("a", BookingStatus::PendingPayment, 1),
            status("b", BookingStatus::Processing, 0),
            status("b", BookingStatus::PendingPayment, 1),
            status("d", BookingStatus::Processing, 0),
            status("d", BookingStatus::Processing, 1),
        ];
        let o = check_outcome(EVENT, PARTITIONS, &chart(), &plan, &statuses, &[reserved("a"), reserved("b")]);
        let all = o.problems.join("\n");
        assert!(all.contains("is held by both booking a and booking b"), "{all}");
        assert!(all.contains("booking c (Abandons) has no status message"), "{all}");
        assert!(all.contains("duplicate status message: booking d"), "{all}");
    }
}
