//! A tiny binary encoding for plugin state: LEB128 varints and
//! length-prefixed strings. Smaller and faster than JSON for records read and
//! written on every message.

use alloc::string::String;
use alloc::vec::Vec;

use crate::seat::SeatPosition;

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// An unsigned integer as a LEB128 varint.
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return self;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// A count-prefixed list of seats.
    pub fn seats(&mut self, seats: &[SeatPosition]) -> &mut Self {
        self.varint(seats.len() as u64);
        for s in seats {
            self.varint(s.row.into()).varint(s.seat.into());
        }
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads what a [`Writer`] wrote; every read is `None` on truncated or
/// malformed input, so corrupt state is reported instead of panicking.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && byte > 1 {
                return None;
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.varint()?.try_into().ok()
    }

    pub fn str(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.bytes.len() {
            return None;
        }
        let (s, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8(s.to_vec()).ok()
    }

    pub fn seats(&mut self) -> Option<Vec<SeatPosition>> {
        let n = usize::try_from(self.varint()?).ok()?;
        // Each seat takes at least two bytes; guards the allocation below.
        if n > self.bytes.len() / 2 {
            return None;
        }
        let mut seats = Vec::with_capacity(n);
        for _ in 0..n {
            seats.push(SeatPosition::new(self.u32()?, self.u32()?)?);
        }
        Some(seats)
    }

    /// `true` once everything has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let seats = [SeatPosition { row: 1, seat: 300 }, SeatPosition { row: 70000, seat: 2 }];
        let mut w = Writer::default();
        w.u8(7).varint(0).varint(u64::MAX).str("héllo").seats(&seats);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Some(7));
        assert_eq!(r.varint(), Some(0));
        assert_eq!(r.varint(), Some(u64::MAX));
        assert_eq!(r.str().as_deref(), Some("héllo"));
        assert_eq!(r.seats().as_deref(), Some(&seats[..]));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
    }

    #[test]
    fn truncated_input_is_none() {
        let mut w = Writer::default();
        w.str("abcdef");
        let bytes = w.finish();
        assert_eq!(Reader::new(&bytes[..3]).str(), None);
        assert_eq!(Reader::new(&[0x80, 0x80]).varint(), None);
        assert_eq!(Reader::new(&[0xff; 11]).varint(), None);
        assert_eq!(Reader::new(&[100, 1, 1]).seats(), None);
    }
}
