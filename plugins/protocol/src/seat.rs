//! Seat positions, written `"row-seat"` on the wire (both 1-based).

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A seat in a subsection; `row` and `seat` are both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeatPosition {
    pub row: u32,
    pub seat: u32,
}

impl SeatPosition {
    /// A position; `None` if either coordinate is 0.
    pub fn new(row: u32, seat: u32) -> Option<Self> {
        (row > 0 && seat > 0).then_some(Self { row, seat })
    }
}

/// Why a string is not a seat position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSeatError(String);

impl fmt::Display for ParseSeatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid seat position {:?}: expected \"row-seat\", both >= 1", self.0)
    }
}

impl core::error::Error for ParseSeatError {}

impl FromStr for SeatPosition {
    type Err = ParseSeatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSeatError(s.into());
        let (row, seat) = s.split_once('-').ok_or_else(err)?;
        // u32::from_str accepts a leading '+'; the wire format is digits only.
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<u32>().ok()
        };
        let (row, seat) = (number(row).ok_or_else(err)?, number(seat).ok_or_else(err)?);
        Self::new(row, seat).ok_or_else(err)
    }
}

impl fmt::Display for SeatPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.row, self.seat)
    }
}

impl Serialize for SeatPosition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SeatPosition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeatVisitor;

        impl Visitor<'_> for SeatVisitor {
            type Value = SeatPosition;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a seat position \"row-seat\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SeatPosition, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(SeatVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let p: SeatPosition = "2-7".parse().unwrap();
        assert_eq!(p, SeatPosition { row: 2, seat: 7 });
        assert_eq!(alloc::format!("{p}"), "2-7");
        assert_eq!("4294967295-1".parse::<SeatPosition>().unwrap().row, u32::MAX);
    }

    #[test]
    fn rejects_zero_and_junk() {
        for bad in
            ["0-1", "1-0", "", "-", "1-", "-1", "1", "a-b", "1-2-3", "+1-2", "1- 2", " 1-2", "4294967296-1", "1--2"]
        {
            assert!(bad.parse::<SeatPosition>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serde_as_string() {
        let p = SeatPosition::new(10, 3).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"10-3\"");
        assert_eq!(serde_json::from_str::<SeatPosition>("\"10-3\"").unwrap(), p);
        assert!(serde_json::from_str::<SeatPosition>("\"0-3\"").is_err());
        assert!(serde_json::from_str::<SeatPosition>("[1,3]").is_err());
    }
}
