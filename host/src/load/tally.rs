//! Tallies `booking_status_changed` messages into the sellout summary.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use turnstile_protocol::{BookingStatus, BookingStatusChanged, SeatPosition};

use crate::seating::SeatingChart;

/// A booking as the client sees it.
#[derive(Debug, Clone)]
struct Booking {
    section: String,
    subsection: u32,
    sent: Instant,
    status: Option<BookingStatus>,
    seats: Vec<SeatPosition>,
    decided: Option<Duration>,
    /// Command → each milestone, when seen (see [`Milestone`]).
    milestones: [Option<Duration>; Milestone::ALL.len()],
    /// A pay or cancel was sent and is not yet answered.
    awaiting_follow_up: bool,
    status_messages: u32,
}

/// Points on a booking's way that the client can see and time from its
/// command: the two hops inside (ticketing's seat request, the seat
/// service's result), the first decided answer, and the last status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// `reserve_seats` committed on `ticket-command-request`.
    Request,
    /// Its answer committed on `seat-reservation-result`.
    Result,
    /// `pending_payment` committed on `booking-status-changed`.
    PendingPayment,
    /// `completed`, `cancelled` or `failed`.
    Final,
}

impl Milestone {
    pub const ALL: [Milestone; 4] =
        [Milestone::Request, Milestone::Result, Milestone::PendingPayment, Milestone::Final];

    pub fn name(self) -> &'static str {
        match self {
            Milestone::Request => "command → seat request",
            Milestone::Result => "command → seat result",
            Milestone::PendingPayment => "command → pending_payment",
            Milestone::Final => "command → final status",
        }
    }
}

/// What the client knows about every booking it sent.
#[derive(Debug, Default)]
pub struct Tally {
    bookings: HashMap<String, Booking>,
    first_sent: Option<Instant>,
    last_decided: Option<Instant>,
    /// Status messages for bookings this run did not send.
    pub foreign: u64,
    /// Bookings decided and with no pay/cancel outstanding, kept as a count
    /// because the driver asks after every poll.
    settled: usize,
    /// Milestone latencies count only bookings sent from then on (a
    /// steady-rate run leaves out its warm-up).
    measure_from: Option<Instant>,
}

impl Booking {
    fn is_settled(&self) -> bool {
        self.decided.is_some() && !self.awaiting_follow_up
    }
}

/// Whether a status decides the reservation (no longer `processing`).
fn is_decided(status: BookingStatus) -> bool {
    status != BookingStatus::Processing
}

impl Tally {
    /// Records that a booking was sent.
    pub fn sent(&mut self, booking_id: &str, section: &str, subsection: u32, at: Instant) {
        self.first_sent.get_or_insert(at);
        let replaced = self.bookings.insert(
            booking_id.to_owned(),
            Booking {
                section: section.to_owned(),
                subsection,
                sent: at,
                status: None,
                seats: Vec::new(),
                decided: None,
                milestones: Default::default(),
                awaiting_follow_up: false,
                status_messages: 0,
            },
        );
        if replaced.is_some_and(|b| b.is_settled()) {
            self.settled -= 1;
        }
    }

    /// Records that a pay or cancel was sent for a booking.
    pub fn follow_up_sent(&mut self, booking_id: &str) {
        if let Some(b) = self.bookings.get_mut(booking_id) {
            if b.is_settled() {
                self.settled -= 1;
            }
            b.awaiting_follow_up = true;
        }
    }

    /// Leaves bookings sent before `from` out of the milestone latencies.
    pub fn measure_from(&mut self, from: Instant) {
        self.measure_from = Some(from);
    }

    /// Records that `milestone` of a booking was seen at `at` (the first
    /// time counts).
    pub fn reached(&mut self, booking_id: &str, milestone: Milestone, at: Instant) {
        if let Some(b) = self.bookings.get_mut(booking_id) {
            b.milestones[milestone as usize].get_or_insert(at.saturating_duration_since(b.sent));
        }
    }

    /// Whether `booking_id` was sent (its statuses count).
    pub fn knows(&self, booking_id: &str) -> bool {
        self.bookings.contains_key(booking_id)
    }

    /// Applies one status message; returns the new status if it changed.
    pub fn observe(&mut self, msg: &BookingStatusChanged, at: Instant) -> Option<BookingStatus> {
        let Some(b) = self.bookings.get_mut(&msg.booking_id) else {
            self.foreign += 1;
            return None;
        };
        let was_settled = b.is_settled();
        let changed = Self::apply(b, msg, at, &mut self.last_decided);
        match (was_settled, b.is_settled()) {
            (false, true) => self.settled += 1,
            (true, false) => self.settled -= 1,
            _ => {}
        }
        changed
    }

    fn apply(
        b: &mut Booking,
        msg: &BookingStatusChanged,
        at: Instant,
        last_decided: &mut Option<Instant>,
    ) -> Option<BookingStatus> {
        b.status_messages += 1;
        if msg.reason.is_some() && b.status == Some(msg.status) {
            // A refusal: the status did not change.
            b.awaiting_follow_up = false;
            return None;
        }
        if b.status == Some(msg.status) {
            return None;
        }
        b.status = Some(msg.status);
        if let Some(seats) = &msg.seats {
            b.seats = seats.clone();
        }
        if matches!(msg.status, BookingStatus::Completed | BookingStatus::Cancelled) {
            b.awaiting_follow_up = false;
        }
        let milestone = match msg.status {
            BookingStatus::PendingPayment => Some(Milestone::PendingPayment),
            BookingStatus::Completed | BookingStatus::Cancelled | BookingStatus::Failed => Some(Milestone::Final),
            BookingStatus::Processing => None,
        };
        if let Some(m) = milestone {
            b.milestones[m as usize].get_or_insert(at.saturating_duration_since(b.sent));
        }
        if is_decided(msg.status) && b.decided.is_none() {
            b.decided = Some(at.saturating_duration_since(b.sent));
            *last_decided = Some(at);
        }
        Some(msg.status)
    }

    /// Bookings sent.
    pub fn len(&self) -> usize {
        self.bookings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bookings.is_empty()
    }

    /// Bookings decided and with no pay/cancel outstanding.
    pub fn settled(&self) -> usize {
        self.settled
    }

    /// Whether every booking is decided and every follow-up answered.
    pub fn is_done(&self) -> bool {
        self.settled() == self.bookings.len()
    }

    /// The summary of the run.
    pub fn summary(&self, chart: &SeatingChart) -> Summary {
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        let mut sections: BTreeMap<String, SectionSeats> = chart
            .sections
            .iter()
            .map(|s| {
                let capacity = u64::from(s.subsections) * chart.seats_per_subsection();
                (s.name.clone(), SectionSeats { capacity, ..Default::default() })
            })
            .collect();
        let mut holders: HashMap<(&str, u32, SeatPosition), u32> = HashMap::new();
        let mut latencies: Vec<Duration> = Vec::new();
        let mut duplicate_status_messages = 0;
        for b in self.bookings.values() {
            let status = b.status.map_or("no status".to_owned(), |s| status_name(s).to_owned());
            *by_status.entry(status).or_default() += 1;
            latencies.extend(b.decided);
            // processing, decision, and at most one follow-up.
            duplicate_status_messages += u64::from(b.status_messages.saturating_sub(3));
            let holding = match b.status {
                Some(BookingStatus::PendingPayment) => Some(false),
                Some(BookingStatus::Completed) => Some(true),
                _ => None,
            };
            if let Some(sold) = holding {
                let entry = sections.entry(b.section.clone()).or_default();
                let n = b.seats.len() as u64;
                if sold {
                    entry.sold += n;
                } else {
                    entry.reserved += n;
                }
                for seat in &b.seats {
                    *holders.entry((b.section.as_str(), b.subsection, *seat)).or_default() += 1;
                }
            }
        }
        for s in sections.values_mut() {
            s.free = s.capacity.saturating_sub(s.sold + s.reserved);
        }
        latencies.sort_unstable();
        let milestones = Milestone::ALL
            .iter()
            .filter_map(|&m| {
                let mut times: Vec<Duration> = self
                    .bookings
                    .values()
                    .filter(|b| self.measure_from.is_none_or(|from| b.sent >= from))
                    .filter_map(|b| b.milestones[m as usize])
                    .collect();
                times.sort_unstable();
                Some(Percentiles {
                    milestone: m,
                    count: times.len(),
                    p50: percentile(&times, 0.50)?,
                    p99: percentile(&times, 0.99)?,
                    p999: percentile(&times, 0.999)?,
                })
            })
            .collect();
        let elapsed = match (self.first_sent, self.last_decided) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        Summary {
            bookings: self.bookings.len() as u64,
            by_status,
            sections,
            oversold_seats: holders.values().filter(|&&n| n > 1).count() as u64,
            undecided: self.bookings.values().filter(|b| b.decided.is_none()).count() as u64,
            elapsed,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            milestones,
            duplicate_status_messages,
        }
    }
}

/// The `q` quantile of sorted `values` (nearest rank).
pub(crate) fn percentile(values: &[Duration], q: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    Some(values[i])
}

/// Latency to one milestone over the bookings that reached it.
#[derive(Debug, Clone)]
pub struct Percentiles {
    pub milestone: Milestone,
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
}

fn status_name(s: BookingStatus) -> &'static str {
    match s {
        BookingStatus::Processing => "processing",
        BookingStatus::PendingPayment => "pending_payment",
        BookingStatus::Completed => "completed",
        BookingStatus::Cancelled => "cancelled",
        BookingStatus::Failed => "failed",
    }
}

/// Seat counts of one section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionSeats {
    pub capacity: u64,
    pub reserved: u64,
    pub sold: u64,
    pub free: u64,
}

/// The result of a sellout.
#[derive(Debug, Clone)]
pub struct Summary {
    pub bookings: u64,
    pub by_status: BTreeMap<String, u64>,
    pub sections: BTreeMap<String, SectionSeats>,
    /// Seats held (reserved or sold) by more than one booking. Must be 0.
    pub oversold_seats: u64,
    /// Bookings without a decided status.
    pub undecided: u64,
    /// From the first command sent to the last booking decided.
    pub elapsed: Duration,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Latency to each milestone that some booking reached.
    pub milestones: Vec<Percentiles>,
    /// Status messages beyond what the rules allow per booking.
    pub duplicate_status_messages: u64,
}

impl Summary {
    /// Decided bookings per second.
    pub fn bookings_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { (self.bookings - self.undecided) as f64 / secs } else { 0.0 }
    }

    /// Whether the run kept every promise: all decided, nothing oversold,
    /// no status message more than the rules allow.
    pub fn is_clean(&self) -> bool {
        self.undecided == 0 && self.oversold_seats == 0 && self.duplicate_status_messages == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "bookings: {}", self.bookings)?;
        for (status, n) in &self.by_status {
            writeln!(f, "  {status:<16} {n:>8}")?;
        }
        writeln!(f, "seats:")?;
        writeln!(f, "  {:<10} {:>9} {:>9} {:>9} {:>9}", "section", "capacity", "reserved", "sold", "free")?;
        let mut total = SectionSeats::default();
        for (name, s) in &self.sections {
            writeln!(f, "  {name:<10} {:>9} {:>9} {:>9} {:>9}", s.capacity, s.reserved, s.sold, s.free)?;
            total.capacity += s.capacity;
            total.reserved += s.reserved;
            total.sold += s.sold;
            total.free += s.free;
        }
        writeln!(
            f,
            "  {:<10} {:>9} {:>9} {:>9} {:>9}",
            "total", total.capacity, total.reserved, total.sold, total.free
        )?;
        writeln!(f, "oversold seats: {}", self.oversold_seats)?;
        if self.undecided > 0 {
            writeln!(f, "undecided bookings: {}", self.undecided)?;
        }
        writeln!(f, "elapsed: {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "throughput: {:.0} bookings/s", self.bookings_per_second())?;
        let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0));
        writeln!(f, "latency command → decided: p50 {}, p99 {}", ms(self.p50), ms(self.p99))?;
        if !self.milestones.is_empty() {
            writeln!(f, "  {:<28} {:>8} {:>10} {:>10} {:>10}", "latency", "bookings", "p50", "p99", "p99.9")?;
        }
        for m in &self.milestones {
            writeln!(
                f,
                "  {:<28} {:>8} {:>10} {:>10} {:>10}",
                m.milestone.name(),
                m.count,
                ms(Some(m.p50)),
                ms(Some(m.p99)),
                ms(Some(m.p999))
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, s: BookingStatus, seats: &[(u32, u32)], reason: Option<&str>) -> BookingStatusChanged {
        BookingStatusChanged {
            booking_id: id.into(),
            buyer_id: 1,
            status: s,
            seats: Some(seats.iter().filter_map(|&(r, c)| SeatPosition::new(r, c)).collect()),
            total_price: None,
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn counts_statuses_seats_and_oversold() {
        let chart = SeatingChart::from_json(
            r#"{"rows": 1, "cols": 4, "sections": [{"name": "A", "price": 1, "subsections": 1}]}"#,
            "t",
        )
        .unwrap();
        let t0 = Instant::now();
        let mut t = Tally::default();
        for id in ["a", "b", "c"] {
            t.sent(id, "A", 1, t0);
        }
        t.observe(&status("a", BookingStatus::Processing, &[], None), t0);
        assert!(!t.is_done());
        t.observe(&status("a", BookingStatus::PendingPayment, &[(1, 1), (1, 2)], None), t0 + Duration::from_millis(5));
        t.follow_up_sent("a");
        t.observe(&status("b", BookingStatus::PendingPayment, &[(1, 2)], None), t0 + Duration::from_millis(9));
        t.observe(&status("c", BookingStatus::Failed, &[], Some("sold out")), t0 + Duration::from_millis(7));
        assert!(!t.is_done(), "a's payment is outstanding");
        assert_eq!(t.settled(), 2, "b and c are settled, a waits for its payment");
        t.observe(&status("a", BookingStatus::Completed, &[(1, 1), (1, 2)], None), t0 + Duration::from_millis(20));
        assert!(t.is_done());
        assert_eq!(t.settled(), 3);
        let s = t.summary(&chart);
        assert_eq!(s.by_status["completed"], 1);
        assert_eq!(s.by_status["pending_payment"], 1);
        assert_eq!(s.by_status["failed"], 1);
        assert_eq!(s.sections["A"], SectionSeats { capacity: 4, reserved: 1, sold: 2, free: 1 });
        assert_eq!(s.oversold_seats, 1, "seat 1-2 is held by a and b");
        assert_eq!(s.p50, Some(Duration::from_millis(7)));
        assert_eq!(s.p99, Some(Duration::from_millis(9)));
        let pending = s.milestones.iter().find(|m| m.milestone == Milestone::PendingPayment).unwrap();
        assert_eq!((pending.count, pending.p50, pending.p99), (2, Duration::from_millis(5), Duration::from_millis(9)));
        let last = s.milestones.iter().find(|m| m.milestone == Milestone::Final).unwrap();
        assert_eq!((last.count, last.p999), (2, Duration::from_millis(20)), "c failed at 7 ms, a completed at 20 ms");
        assert!(!s.is_clean());
    }

    #[test]
    fn a_refusal_answers_the_follow_up() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.sent("a", "A", 1, t0);
        t.observe(&status("a", BookingStatus::PendingPayment, &[(1, 1)], None), t0);
        t.follow_up_sent("a");
        assert!(!t.is_done());
        assert_eq!(t.observe(&status("a", BookingStatus::PendingPayment, &[(1, 1)], Some("not yours")), t0), None);
        assert!(t.is_done());
    }
}
