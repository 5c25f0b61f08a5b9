//! One subsection's seats as a compact blob: a 16-byte header
//! (rows u32 LE, seats_per_row u32 LE, price u64 LE) then 2 bits per seat,
//! row-major. 500 seats fit in 141 bytes, so a reserve reads and writes little.

use alloc::vec;
use alloc::vec::Vec;

use turnstile_protocol::SeatPosition;

const HEADER: usize = 16;

/// Most seats one subsection may have; keeps a blob under 64 KiB + header.
pub const MAX_SEATS: u64 = 1 << 18;

/// What a seat is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatState {
    Available = 0,
    Reserved = 1,
    Sold = 2,
}

impl SeatState {
    fn from_bits(bits: u8) -> Self {
        match bits {
            0 => Self::Available,
            1 => Self::Reserved,
            // 3 is never written; reading it as sold can only make fewer seats available.
            _ => Self::Sold,
        }
    }
}

/// A subsection's seat map, read and updated in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMap {
    bytes: Vec<u8>,
}

impl SeatMap {
    /// An all-available map; `None` if a dimension is 0 or there are more
    /// than [`MAX_SEATS`] seats.
    pub fn new(rows: u32, seats_per_row: u32, price: u64) -> Option<Self> {
        let seats = u64::from(rows) * u64::from(seats_per_row);
        if seats == 0 || seats > MAX_SEATS {
            return None;
        }
        // seats <= MAX_SEATS, so this fits any usize.
        let mut bytes = vec![0u8; HEADER + (seats as usize).div_ceil(4)];
        bytes[0..4].copy_from_slice(&rows.to_le_bytes());
        bytes[4..8].copy_from_slice(&seats_per_row.to_le_bytes());
        bytes[8..16].copy_from_slice(&price.to_le_bytes());
        Some(Self { bytes })
    }

    /// A map from stored bytes; `None` if they are not a well-formed map.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        let head = bytes.get(..HEADER)?;
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let seats = u64::from(word(0)) * u64::from(word(4));
        if seats == 0 || seats > MAX_SEATS || bytes.len() != HEADER + (seats as usize).div_ceil(4) {
            return None;
        }
        Some(Self { bytes })
    }

    /// The stored form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoding, consuming the map (for [`Store::put_owned`]).
    ///
    /// [`Store::put_owned`]: turnstile_protocol::Store::put_owned
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn rows(&self) -> u32 {
        self.word(0)
    }

    pub fn seats_per_row(&self) -> u32 {
        self.word(4)
    }

    /// Price of one seat.
    pub fn price(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[8..16]);
        u64::from_le_bytes(b)
    }

    fn word(&self, at: usize) -> u32 {
        let b = &self.bytes[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Whether the seat is inside the subsection.
    pub fn contains(&self, p: SeatPosition) -> bool {
        (1..=self.rows()).contains(&p.row) && (1..=self.seats_per_row()).contains(&p.seat)
    }

    fn index(&self, p: SeatPosition) -> Option<usize> {
        self.contains(p).then(|| (p.row as usize - 1) * self.seats_per_row() as usize + (p.seat as usize - 1))
    }

    /// The seat's state; `None` if it does not exist.
    pub fn get(&self, p: SeatPosition) -> Option<SeatState> {
        let i = self.index(p)?;
        Some(SeatState::from_bits((self.bytes[HEADER + i / 4] >> ((i % 4) * 2)) & 0b11))
    }

    /// Sets the seat's state; a seat outside the subsection is ignored
    /// (callers only set seats they have read).
    pub fn set(&mut self, p: SeatPosition, state: SeatState) {
        if let Some(i) = self.index(p) {
            let shift = (i % 4) * 2;
            let byte = &mut self.bytes[HEADER + i / 4];
            *byte = (*byte & !(0b11 << shift)) | ((state as u8) << shift);
        }
    }

    /// Whether the seat exists and is available.
    pub fn is_available(&self, p: SeatPosition) -> bool {
        self.get(p) == Some(SeatState::Available)
    }

    /// Whether each seat of `row` is available, seat 1 first; empty for a
    /// row outside the subsection. The seat search scans whole rows, so this
    /// skips the per-seat bounds and position checks of [`Self::get`].
    pub fn row_availability(&self, row: u32) -> impl Iterator<Item = bool> + '_ {
        let per_row = self.seats_per_row() as usize;
        let indices = if (1..=self.rows()).contains(&row) {
            let first = (row as usize - 1) * per_row;
            first..first + per_row
        } else {
            0..0
        };
        let seats = &self.bytes[HEADER..];
        let available = SeatState::Available as u8;
        indices.map(move |i| seats.get(i / 4).is_some_and(|b| (b >> ((i % 4) * 2)) & 0b11 == available))
    }

    /// Every seat that is not available, row-major.
    pub fn taken(&self) -> impl Iterator<Item = (SeatPosition, SeatState)> + '_ {
        let (rows, per_row) = (self.rows(), self.seats_per_row());
        (1..=rows)
            .flat_map(move |row| (1..=per_row).map(move |seat| SeatPosition { row, seat }))
            .filter_map(|p| self.get(p).filter(|s| *s != SeatState::Available).map(|s| (p, s)))
    }

    /// This map with new dimensions and price, keeping the state of every seat
    /// that still exists. `Err` names a taken seat the new size would drop.
    pub fn resized(&self, rows: u32, seats_per_row: u32, price: u64) -> Result<Option<Self>, SeatPosition> {
        let Some(mut next) = Self::new(rows, seats_per_row, price) else {
            return Ok(None);
        };
        for (p, state) in self.taken() {
            if !next.contains(p) {
                return Err(p);
            }
            next.set(p, state);
        }
        Ok(Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(row: u32, seat: u32) -> SeatPosition {
        SeatPosition { row, seat }
    }

    #[test]
    fn header_and_states() {
        let mut m = SeatMap::new(3, 5, 120).unwrap();
        assert_eq!((m.rows(), m.seats_per_row(), m.price()), (3, 5, 120));
        assert_eq!(m.as_bytes().len(), 16 + 4);
        assert_eq!(m.get(p(3, 5)), Some(SeatState::Available));
        assert_eq!(m.get(p(4, 1)), None);
        assert_eq!(m.get(p(1, 6)), None);
        m.set(p(2, 3), SeatState::Reserved);
        m.set(p(3, 5), SeatState::Sold);
        m.set(p(9, 9), SeatState::Sold);
        assert_eq!(m.get(p(2, 3)), Some(SeatState::Reserved));
        assert_eq!(m.get(p(2, 4)), Some(SeatState::Available));
        assert_eq!(m.get(p(3, 5)), Some(SeatState::Sold));
        let taken: Vec<_> = m.taken().collect();
        assert_eq!(taken, [(p(2, 3), SeatState::Reserved), (p(3, 5), SeatState::Sold)]);
        assert_eq!(SeatMap::from_bytes(m.as_bytes().to_vec()), Some(m));
    }

    #[test]
    fn rejects_bad_dimensions_and_bytes() {
        assert!(SeatMap::new(0, 5, 1).is_none());
        assert!(SeatMap::new(5, 0, 1).is_none());
        assert!(SeatMap::new(u32::MAX, u32::MAX, 1).is_none());
        assert!(SeatMap::from_bytes(vec![1; 10]).is_none());
        let mut bytes = SeatMap::new(2, 2, 1).unwrap().as_bytes().to_vec();
        bytes.push(0);
        assert!(SeatMap::from_bytes(bytes).is_none());
    }

    #[test]
    fn resize_keeps_states_and_refuses_to_drop_taken_seats() {
        let mut m = SeatMap::new(2, 4, 10).unwrap();
        m.set(p(1, 2), SeatState::Sold);
        m.set(p(2, 4), SeatState::Reserved);
        let grown = m.resized(3, 6, 20).unwrap().unwrap();
        assert_eq!(grown.price(), 20);
        assert_eq!(grown.get(p(1, 2)), Some(SeatState::Sold));
        assert_eq!(grown.get(p(2, 4)), Some(SeatState::Reserved));
        assert_eq!(grown.get(p(2, 5)), Some(SeatState::Available));
        assert_eq!(m.resized(2, 3, 10), Err(p(2, 4)));
        assert_eq!(m.resized(1, 4, 10), Err(p(2, 4)));
        m.set(p(2, 4), SeatState::Available);
        let shrunk = m.resized(1, 2, 10).unwrap().unwrap();
        assert_eq!(shrunk.get(p(1, 2)), Some(SeatState::Sold));
    }
}
