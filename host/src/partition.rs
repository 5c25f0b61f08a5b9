//! Partitioners (DOMAIN.md §3). The host always computes the partition itself
//! and produces to it explicitly; no client-side default partitioner decides
//! where seat traffic goes.

use md5::{Digest, Md5};

use crate::naming;

/// The partition of a section: a single ASCII letter maps alphabetically
/// (`A` → 0, …, modulo `partitions`); any other name by the first 32 bits of
/// `md5("{event_id}-{section}")`. Byte-compatible with the original Python.
///
/// `partitions` must be positive; the config layer guarantees it.
pub fn section_partition(event_id: u64, section: &str, partitions: i32) -> i32 {
    let n = partitions.max(1) as u32;
    let bytes = section.as_bytes();
    if let [letter] = bytes
        && letter.is_ascii_alphabetic()
    {
        return (u32::from(letter.to_ascii_uppercase() - b'A') % n) as i32;
    }
    let digest = Md5::digest(format!("{event_id}-{section}").as_bytes());
    // The first 8 hex digits of the digest are its first 4 bytes, big-endian.
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (head % n) as i32
}

/// The partition of a booking: Kafka's default partitioner on the booking key
/// (`murmur2(key) & 0x7fffffff mod partitions`), so any Kafka client keying by
/// `event-{id}-booking-{booking_id}` agrees with the host.
pub fn booking_partition(event_id: u64, booking_id: &str, partitions: i32) -> i32 {
    key_partition(naming::booking_key(event_id, booking_id).as_bytes(), partitions)
}

/// Kafka's default partitioner for a keyed record.
pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    let n = partitions.max(1) as u32;
    ((murmur2(key) & 0x7fff_ffff) % n) as i32
}

/// The 32-bit murmur2 hash exactly as Kafka's Java client computes it
/// (`org.apache.kafka.common.utils.Utils.murmur2`, seed `0x9747b28c`).
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let len = data.len();
    let mut h = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_letters_map_alphabetically() {
        for (i, letter) in ('A'..='J').enumerate() {
            assert_eq!(section_partition(1, &letter.to_string(), 10), i as i32);
        }
        assert_eq!(section_partition(1, "a", 10), 0);
        assert_eq!(section_partition(1, "K", 10), 0);
        assert_eq!(section_partition(1, "Z", 10), 5);
        assert_eq!(section_partition(1, "C", 2), 0);
    }

    /// Expected values computed with the original Python:
    /// `int(hashlib.md5(f"{event_id}-{section}".encode()).hexdigest()[:8], 16) % n`.
    #[test]
    fn other_names_use_md5_like_the_original() {
        assert_eq!(section_partition(1, "VIP", 10), 4);
        assert_eq!(section_partition(1, "AA", 10), 3);
        assert_eq!(section_partition(2, "VIP", 10), 6);
        assert_eq!(section_partition(1, "Balcony", 7), 6);
        assert_eq!(section_partition(1, "1", 10), 6);
        assert_eq!(section_partition(1, "Ä", 10), 2);
    }

    /// Expected values from Kafka's Java `Utils.murmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32, -58897971);
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }

    /// Expected values from Kafka's Java client (`Utils.toPositive(Utils.murmur2(key)) % 10`,
    /// kafka-clients 4.1.1), so any client keying by the booking key agrees.
    #[test]
    fn booking_partition_is_kafkas_default() {
        assert_eq!(booking_partition(1, "b1", 10), 6);
        assert_eq!(booking_partition(7, "3f2a9c1e-0000-4000-8000-000000000001", 10), 5);
        assert_eq!(key_partition(b"x", 10), 6);
    }
}
