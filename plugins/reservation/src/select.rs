//! Choosing seats (DOMAIN.md §5): `manual` checks the named seats,
//! `best_available` searches the map. Both return the reason on failure.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use turnstile_protocol::SeatPosition;

use crate::seatmap::SeatMap;

/// The named seats, if every one exists and is available.
pub fn manual(map: &SeatMap, wanted: &[SeatPosition]) -> Result<Vec<SeatPosition>, String> {
    for &p in wanted {
        if !map.contains(p) {
            return Err(format!(
                "seat {p} does not exist (the subsection has {} rows of {} seats)",
                map.rows(),
                map.seats_per_row()
            ));
        }
        if !map.is_available(p) {
            return Err(format!("seat {p} is not available"));
        }
    }
    Ok(wanted.to_vec())
}

/// `quantity` seats: the first run of that many adjacent available seats in
/// one row (rows and seats ascending); failing that, seats taken from the
/// longest runs first (ties by row, then seat), each run from its start.
/// Seats come back sorted by row, then seat.
pub fn best_available(map: &SeatMap, quantity: u32) -> Result<Vec<SeatPosition>, String> {
    if let Some(seats) = first_run(map, quantity) {
        return Ok(seats);
    }
    let mut runs = runs(map);
    let available: u64 = runs.iter().map(|r| u64::from(r.len)).sum();
    if available < u64::from(quantity) {
        return Err(format!("not enough seats available: {quantity} requested, {available} available"));
    }
    runs.sort_unstable_by(|a, b| b.len.cmp(&a.len).then(a.row.cmp(&b.row)).then(a.start.cmp(&b.start)));
    let mut seats = Vec::with_capacity(quantity as usize);
    for run in runs {
        let take = run.len.min(quantity - seats.len() as u32);
        seats.extend((run.start..run.start + take).map(|seat| SeatPosition { row: run.row, seat }));
        if seats.len() as u32 == quantity {
            break;
        }
    }
    seats.sort_unstable();
    Ok(seats)
}

/// A maximal run of available seats in one row.
#[derive(Debug, Clone, Copy)]
struct Run {
    row: u32,
    start: u32,
    len: u32,
}

/// The first `quantity` seats of the first run at least that long.
fn first_run(map: &SeatMap, quantity: u32) -> Option<Vec<SeatPosition>> {
    for row in 1..=map.rows() {
        let mut len = 0;
        for (seat, available) in (1..).zip(map.row_availability(row)) {
            if !available {
                len = 0;
                continue;
            }
            len += 1;
            if len == quantity {
                let start = seat + 1 - quantity;
                return Some((start..=seat).map(|seat| SeatPosition { row, seat }).collect());
            }
        }
    }
    None
}

/// Every maximal run of available seats, row-major.
fn runs(map: &SeatMap) -> Vec<Run> {
    let mut runs = Vec::new();
    for row in 1..=map.rows() {
        let mut current: Option<Run> = None;
        for (seat, available) in (1..).zip(map.row_availability(row)) {
            if available {
                current.get_or_insert(Run { row, start: seat, len: 0 }).len += 1;
            } else if let Some(run) = current.take() {
                runs.push(run);
            }
        }
        runs.extend(current);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seatmap::SeatState;

    fn p(row: u32, seat: u32) -> SeatPosition {
        SeatPosition { row, seat }
    }

    /// A map drawn as rows of `.` (available) and `x` (taken).
    fn map(rows: &[&str]) -> SeatMap {
        let mut m = SeatMap::new(rows.len() as u32, rows[0].len() as u32, 10).unwrap();
        for (r, line) in rows.iter().enumerate() {
            for (s, c) in line.chars().enumerate() {
                if c == 'x' {
                    m.set(p(r as u32 + 1, s as u32 + 1), SeatState::Sold);
                }
            }
        }
        m
    }

    #[test]
    fn first_fitting_run_wins() {
        let m = map(&["x.x..x", "....xx"]);
        assert_eq!(best_available(&m, 2).unwrap(), [p(1, 4), p(1, 5)]);
        assert_eq!(best_available(&m, 3).unwrap(), [p(2, 1), p(2, 2), p(2, 3)]);
        assert_eq!(best_available(&m, 1).unwrap(), [p(1, 2)]);
    }

    /// Worked example. Runs: row 1: 1-1 (len 1), 1-3..1-4 (len 2), 1-6 (len 1);
    /// row 2: 2-2..2-3 (len 2), 2-5 (len 1); row 3: 3-1 (len 1).
    /// No run of 4; ordered: [1-3,1-4] (2, row 1), [2-2,2-3] (2, row 2),
    /// [1-1], [1-6], [2-5], [3-1]. Quantity 4 takes both pairs; quantity 3
    /// takes the row-1 pair and the start of the row-2 pair; quantity 6 also
    /// takes 1-1 and 1-6 (ties by row, then seat).
    #[test]
    fn fallback_takes_longest_runs_then_row_then_seat() {
        let m = map(&[".x..x.", "x..x.x", ".xxxxx"]);
        assert_eq!(best_available(&m, 4).unwrap(), [p(1, 3), p(1, 4), p(2, 2), p(2, 3)]);
        assert_eq!(best_available(&m, 3).unwrap(), [p(1, 3), p(1, 4), p(2, 2)]);
        assert_eq!(best_available(&m, 6).unwrap(), [p(1, 1), p(1, 3), p(1, 4), p(1, 6), p(2, 2), p(2, 3)]);
        assert_eq!(best_available(&m, 8).unwrap().len(), 8);
        let err = best_available(&m, 9).unwrap_err();
        assert!(err.contains("9 requested, 8 available"), "{err}");
    }

    #[test]
    fn fallback_prefers_earlier_row_on_equal_length() {
        let m = map(&["x.x.x", "..x..", ".x.x."]);
        // Runs of 2 only in row 2 (2-1..2-2, 2-4..2-5): quantity 3 takes
        // 2-1, 2-2 then 2-4 (the next run's start).
        assert_eq!(best_available(&m, 3).unwrap(), [p(2, 1), p(2, 2), p(2, 4)]);
    }

    /// The runs as first found, one bounds-checked seat at a time: the
    /// reference the row scan must match.
    fn runs_by_seat(map: &SeatMap) -> Vec<(u32, u32, u32)> {
        let mut runs = Vec::new();
        for row in 1..=map.rows() {
            let mut current: Option<Run> = None;
            for seat in 1..=map.seats_per_row() {
                if map.is_available(p(row, seat)) {
                    current.get_or_insert(Run { row, start: seat, len: 0 }).len += 1;
                } else if let Some(run) = current.take() {
                    runs.push(run);
                }
            }
            runs.extend(current);
        }
        runs.into_iter().map(|r| (r.row, r.start, r.len)).collect()
    }

    #[test]
    fn row_scan_finds_the_same_runs_as_the_seat_by_seat_scan_on_random_maps() {
        // xorshift64: deterministic and dependency-free.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..3_000 {
            let (rows, per_row) = (1 + next(12) as u32, 1 + next(30) as u32);
            let mut m = SeatMap::new(rows, per_row, 10).unwrap();
            let taken_percent = next(101);
            for row in 1..=rows {
                for seat in 1..=per_row {
                    if next(100) < taken_percent {
                        let state = if next(2) == 0 { SeatState::Reserved } else { SeatState::Sold };
                        m.set(p(row, seat), state);
                    }
                }
            }
            let quantity = 1 + next(u64::from(rows * per_row).min(40)) as u32;
            let reference = runs_by_seat(&m);
            let scanned: Vec<_> = runs(&m).into_iter().map(|r| (r.row, r.start, r.len)).collect();
            assert_eq!(scanned, reference, "{rows}x{per_row}");
            let first = reference
                .iter()
                .find(|&&(_, _, len)| len >= quantity)
                .map(|&(row, start, _)| (start..start + quantity).map(|seat| p(row, seat)).collect::<Vec<_>>());
            assert_eq!(first_run(&m, quantity), first, "{rows}x{per_row}, {quantity}");
        }
    }

    #[test]
    fn row_availability_is_empty_outside_the_map() {
        let m = map(&["x.", ".."]);
        assert_eq!(m.row_availability(1).collect::<Vec<_>>(), [false, true]);
        assert_eq!(m.row_availability(2).collect::<Vec<_>>(), [true, true]);
        assert_eq!(m.row_availability(0).count(), 0);
        assert_eq!(m.row_availability(3).count(), 0);
    }

    #[test]
    fn manual_checks_existence_and_availability() {
        let m = map(&["x..", "..."]);
        assert_eq!(manual(&m, &[p(2, 3), p(1, 2)]).unwrap(), [p(2, 3), p(1, 2)]);
        assert!(manual(&m, &[p(1, 1)]).unwrap_err().contains("not available"));
        assert!(manual(&m, &[p(3, 1)]).unwrap_err().contains("does not exist"));
        assert!(manual(&m, &[p(1, 4)]).unwrap_err().contains("does not exist"));
    }
}
