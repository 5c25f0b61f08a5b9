//! A consumed record as the runner may trust it, and where it belongs.
//!
//! Clients send anything (DOMAIN.md §3, "the host enforces this on input
//! too"): keys that are not UTF-8 or not the topic's key format, header
//! names that are not UTF-8, headers that imitate the runner's own
//! `turnstile.*` dead-letter headers, tombstones, records on a partition
//! other than the one their routing gives. This module reads such a record
//! without trusting any of it and decides whether it is handled here,
//! forwarded to its own partition, or unroutable.

use rdkafka::Message as _;
use rdkafka::message::BorrowedMessage;

use crate::headers::record_headers;
use crate::naming::{self, TopicKind};
use crate::partition;
use crate::plugin::Routing;

/// Headers with this prefix are the runner's own (dead-letter reasons and
/// sources); input copies of them are dropped so that none can be forged.
pub const RESERVED_HEADER_PREFIX: &str = "turnstile.";

/// One consumed record, read defensively.
#[derive(Debug)]
pub struct InputRecord<'m> {
    pub topic: &'m str,
    pub partition: i32,
    pub offset: i64,
    /// Raw key bytes, if any.
    pub key: Option<&'m [u8]>,
    /// `None` for a tombstone.
    pub payload: Option<&'m [u8]>,
    /// Header names decoded lossily; `turnstile.*` headers removed.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How many `turnstile.*` headers were removed.
    pub reserved_headers_dropped: usize,
    pub timestamp: Option<i64>,
}

impl<'m> InputRecord<'m> {
    /// Reads `message` without any step that can panic on client bytes.
    pub fn read(message: &'m BorrowedMessage<'m>) -> Self {
        let mut headers = record_headers(message);
        let before = headers.len();
        headers.retain(|(name, _)| !name.starts_with(RESERVED_HEADER_PREFIX));
        InputRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload(),
            reserved_headers_dropped: before - headers.len(),
            headers,
            timestamp: message.timestamp().to_millis(),
        }
    }

    /// The key as text, when it is UTF-8.
    pub fn key_str(&self) -> Option<&'m str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }
}

/// Where a record belongs among `partitions` partitions of its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On its own partition: handle it here.
    Here,
    /// On the wrong partition: forward it, keyed `key`, to `partition`.
    Forward { partition: i32, key: String },
}

/// The routing a topic of `kind` reads from a record's key, when the key is
/// in the topic's key format for `event_id`: `(partition, canonical key)`.
pub fn place_by_key(event_id: u64, kind: TopicKind, key: Option<&str>, partitions: i32) -> Option<(i32, String)> {
    let key = key?;
    match kind {
        TopicKind::ByBooking => {
            let booking_id = naming::parse_booking_key(event_id, key)?;
            Some((partition::booking_partition(event_id, booking_id, partitions), key.to_owned()))
        }
        TopicKind::BySection => {
            let section = naming::parse_section_key(event_id, key)?;
            let p = partition::section_partition(event_id, section, partitions);
            Some((p, naming::section_key(event_id, section, p)))
        }
        TopicKind::ByEvent => (key == naming::event_key(event_id)).then(|| (0, key.to_owned())),
        TopicKind::Changelog => None,
    }
}

/// The partition and key a plugin-named routing gives on a topic of `kind`,
/// or why it cannot be used there.
pub fn place_by_routing(
    event_id: u64,
    kind: TopicKind,
    routing: &Routing,
    partitions: i32,
) -> Result<(i32, String), String> {
    match (kind, routing) {
        (TopicKind::ByBooking, Routing::Booking(id)) if !id.is_empty() => {
            Ok((partition::booking_partition(event_id, id, partitions), naming::booking_key(event_id, id)))
        }
        (TopicKind::BySection, Routing::Section { section, .. }) if !section.is_empty() => {
            let p = partition::section_partition(event_id, section, partitions);
            Ok((p, naming::section_key(event_id, section, p)))
        }
        (TopicKind::ByEvent, Routing::Event) => Ok((0, naming::event_key(event_id))),
        (kind, routing) => Err(format!("the plugin routed the record by {routing:?}, but its topic is {kind:?}")),
    }
}

/// Here when `home` is the record's own partition, else forward.
pub fn placement(current: i32, (home, key): (i32, String)) -> Placement {
    if home == current { Placement::Here } else { Placement::Forward { partition: home, key } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_key_places_by_kafkas_partitioner() {
        let key = naming::booking_key(4, "b-9");
        let (p, k) = place_by_key(4, TopicKind::ByBooking, Some(&key), 10).unwrap();
        assert_eq!(p, partition::key_partition(key.as_bytes(), 10));
        assert_eq!(k, key);
        assert_eq!(placement(p, (p, k.clone())), Placement::Here);
        assert_eq!(placement(p + 1, (p, k.clone())), Placement::Forward { partition: p, key: k });
    }

    #[test]
    fn a_section_key_is_recomputed_not_trusted() {
        // A key that claims partition 7 for section B, which lives on 1.
        let (p, k) = place_by_key(2, TopicKind::BySection, Some("event-2-section-B-partition-7"), 10).unwrap();
        assert_eq!((p, k.as_str()), (1, "event-2-section-B-partition-1"));
    }

    #[test]
    fn keys_of_another_format_or_event_do_not_place() {
        assert_eq!(place_by_key(2, TopicKind::ByBooking, None, 10), None);
        assert_eq!(place_by_key(2, TopicKind::ByBooking, Some("b-1"), 10), None);
        assert_eq!(place_by_key(2, TopicKind::ByBooking, Some(&naming::booking_key(3, "b")), 10), None);
        assert_eq!(place_by_key(2, TopicKind::BySection, Some(&naming::booking_key(2, "b")), 10), None);
    }

    #[test]
    fn a_routing_must_fit_the_topic() {
        let by_booking = Routing::Booking("b".into());
        assert!(place_by_routing(1, TopicKind::ByBooking, &by_booking, 10).is_ok());
        assert!(place_by_routing(1, TopicKind::BySection, &by_booking, 10).is_err());
        assert!(place_by_routing(1, TopicKind::ByBooking, &Routing::Event, 10).is_err());
        assert!(place_by_routing(1, TopicKind::ByBooking, &Routing::Booking(String::new()), 10).is_err());
        let by_section = Routing::Section { section: "VIP".into(), subsection: 1 };
        let (p, k) = place_by_routing(1, TopicKind::BySection, &by_section, 10).unwrap();
        assert_eq!(k, naming::section_key(1, "VIP", p));
    }
}
