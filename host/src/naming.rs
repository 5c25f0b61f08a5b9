//! Names of topics, consumer groups, transactional ids and record keys
//! (DOMAIN.md §2). Pure functions: every other part of the host, the tests and
//! the load generators derive names from here and nowhere else.

use std::fmt;

/// The three services and the client, by their wire names.
pub use turnstile_protocol::{CLIENT, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};

/// Separator between the parts of a topic name: six underscores.
const PART_SEP: &str = "______";
/// Separator between the two services of a topic name: three underscores.
const TO_SEP: &str = "___to___";

/// A topic of one event: `event-id-{id}______{action}______{from}___to___{to}`
/// or, for a DLQ or changelog, `event-id-{id}______{action}______{service}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName {
    pub event_id: u64,
    pub action: String,
    pub from: String,
    /// `None` for the single-service topics (DLQs, changelogs).
    pub to: Option<String>,
}

impl TopicName {
    /// A topic that carries messages from one service to another.
    pub fn flow(event_id: u64, action: &str, from: &str, to: &str) -> Self {
        TopicName { event_id, action: action.to_owned(), from: from.to_owned(), to: Some(to.to_owned()) }
    }

    /// A topic that belongs to one service (DLQ, state changelog).
    pub fn owned(event_id: u64, action: &str, service: &str) -> Self {
        TopicName { event_id, action: action.to_owned(), from: service.to_owned(), to: None }
    }

    /// Parses a topic name back into its parts; `None` for names outside the
    /// pattern (internal topics, other applications' topics).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("event-id-")?;
        let (id, rest) = rest.split_once(PART_SEP)?;
        let event_id = parse_event_id(id)?;
        let (action, services) = rest.split_once(PART_SEP)?;
        if !is_name_part(action) {
            return None;
        }
        let (from, to) = match services.split_once(TO_SEP) {
            Some((from, to)) => (from, Some(to)),
            None => (services, None),
        };
        if !is_name_part(from) || !to.is_none_or(is_name_part) {
            return None;
        }
        Some(TopicName { event_id, action: action.to_owned(), from: from.to_owned(), to: to.map(str::to_owned) })
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event-id-{}{PART_SEP}{}{PART_SEP}{}", self.event_id, self.action, self.from)?;
        if let Some(to) = &self.to {
            write!(f, "{TO_SEP}{to}")?;
        }
        Ok(())
    }
}

/// A decimal event id without sign, leading zeros or surplus characters, so
/// that a name and its parse round-trip exactly.
fn parse_event_id(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Actions and service names are lowercase words joined by single dashes.
pub fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The role a topic plays in an event's topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Partitioned by booking key.
    ByBooking,
    /// Partitioned by section.
    BySection,
    /// Keyed by the event: one partition.
    ByEvent,
    /// A compacted state changelog.
    Changelog,
}

/// One topic of the default topology with its partitioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: TopicName,
    pub kind: TopicKind,
}

/// Action names of the default topology.
pub mod action {
    pub use turnstile_protocol::names::{
        BOOKING_COMMAND, BOOKING_STATUS_CHANGED, SEAT_RESERVATION_DLQ, SEAT_RESERVATION_RESULT, TICKET_COMMAND_REQUEST,
        TICKETING_DLQ,
    };
    /// The per-service compacted state changelog.
    pub const STATE_CHANGELOG: &str = "state-changelog";
}

/// `booking-command`: client → ticketing-service.
pub fn booking_command_topic(event_id: u64) -> TopicName {
    TopicName::flow(event_id, action::BOOKING_COMMAND, CLIENT, TICKETING_SERVICE)
}

/// `ticket-command-request`: ticketing-service → seat-reservation-service.
pub fn ticket_command_request_topic(event_id: u64) -> TopicName {
    TopicName::flow(event_id, action::TICKET_COMMAND_REQUEST, TICKETING_SERVICE, SEAT_RESERVATION_SERVICE)
}

/// `seat-reservation-result`: seat-reservation-service → ticketing-service.
pub fn seat_reservation_result_topic(event_id: u64) -> TopicName {
    TopicName::flow(event_id, action::SEAT_RESERVATION_RESULT, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE)
}

/// `booking-status-changed`: ticketing-service → client.
pub fn booking_status_changed_topic(event_id: u64) -> TopicName {
    TopicName::flow(event_id, action::BOOKING_STATUS_CHANGED, TICKETING_SERVICE, CLIENT)
}

/// The dead-letter topic of a service:
/// `event-id-{id}______{service-short}-dlq______{service}`.
pub fn dlq_topic(event_id: u64, service: &str) -> TopicName {
    let short = service.strip_suffix("-service").unwrap_or(service);
    TopicName::owned(event_id, &format!("{short}-dlq"), service)
}

/// The compacted changelog holding a service's plugin state for an event.
pub fn changelog_topic(event_id: u64, service: &str) -> TopicName {
    TopicName::owned(event_id, action::STATE_CHANGELOG, service)
}

/// `event-id-{id}_____{service}--{id}` (five underscores, two dashes).
pub fn consumer_group(event_id: u64, service: &str) -> String {
    format!("event-id-{event_id}_____{service}--{event_id}")
}

/// Parses a consumer group name back into (event id, service).
pub fn parse_consumer_group(group: &str) -> Option<(u64, String)> {
    let rest = group.strip_prefix("event-id-")?;
    let (id, rest) = rest.split_once("_____")?;
    let event_id = parse_event_id(id)?;
    let (service, suffix) = rest.rsplit_once("--")?;
    if !is_name_part(service) || parse_event_id(suffix)? != event_id {
        return None;
    }
    Some((event_id, service.to_owned()))
}

/// `{service}-producer-event-{id}-instance-{instance_id}`.
pub fn transactional_id(service: &str, event_id: u64, instance_id: &str) -> String {
    format!("{service}-producer-event-{event_id}-instance-{instance_id}")
}

/// `event-{id}-section-{section}-partition-{partition}`.
pub fn section_key(event_id: u64, section: &str, partition: i32) -> String {
    format!("event-{event_id}-section-{section}-partition-{partition}")
}

/// `event-{id}-booking-{booking_id}`.
pub fn booking_key(event_id: u64, booking_id: &str) -> String {
    format!("event-{event_id}-booking-{booking_id}")
}

/// `event-{id}`.
pub fn event_key(event_id: u64) -> String {
    format!("event-{event_id}")
}

/// The booking id in a booking key of `event_id`, if `key` is one.
pub fn parse_booking_key(event_id: u64, key: &str) -> Option<&str> {
    let rest = key.strip_prefix("event-")?;
    let (id, booking_id) = rest.split_once("-booking-")?;
    (parse_event_id(id)? == event_id && !booking_id.is_empty()).then_some(booking_id)
}

/// The section in a section key of `event_id`, if `key` is one. The
/// partition number in the key is not trusted: the caller recomputes it.
pub fn parse_section_key(event_id: u64, key: &str) -> Option<&str> {
    let rest = key.strip_prefix("event-")?;
    let (id, rest) = rest.split_once("-section-")?;
    let (section, partition) = rest.rsplit_once("-partition-")?;
    if parse_event_id(id)? != event_id || section.is_empty() || partition.parse::<u32>().is_err() {
        return None;
    }
    Some(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_for_their_own_event_only() {
        assert_eq!(parse_booking_key(7, &booking_key(7, "b-1-x")), Some("b-1-x"));
        assert_eq!(parse_booking_key(8, &booking_key(7, "b")), None);
        assert_eq!(parse_booking_key(7, "event-7-booking-"), None);
        assert_eq!(parse_booking_key(7, "booking-b"), None);
        assert_eq!(parse_section_key(3, &section_key(3, "A-partition-2", 9)), Some("A-partition-2"));
        assert_eq!(parse_section_key(3, &section_key(3, "VIP", 4)), Some("VIP"));
        assert_eq!(parse_section_key(4, &section_key(3, "VIP", 4)), None);
        assert_eq!(parse_section_key(3, "event-3-section-VIP-partition-x"), None);
        assert_eq!(parse_section_key(3, &booking_key(3, "b")), None);
    }

    #[test]
    fn topic_names_match_the_seed() {
        assert_eq!(
            booking_command_topic(1).to_string(),
            "event-id-1______booking-command______client___to___ticketing-service"
        );
        assert_eq!(
            ticket_command_request_topic(7).to_string(),
            "event-id-7______ticket-command-request______ticketing-service___to___seat-reservation-service"
        );
        assert_eq!(
            seat_reservation_result_topic(7).to_string(),
            "event-id-7______seat-reservation-result______seat-reservation-service___to___ticketing-service"
        );
        assert_eq!(
            booking_status_changed_topic(12).to_string(),
            "event-id-12______booking-status-changed______ticketing-service___to___client"
        );
        assert_eq!(dlq_topic(3, TICKETING_SERVICE).to_string(), "event-id-3______ticketing-dlq______ticketing-service");
        assert_eq!(
            dlq_topic(3, SEAT_RESERVATION_SERVICE).to_string(),
            "event-id-3______seat-reservation-dlq______seat-reservation-service"
        );
        assert_eq!(
            changelog_topic(3, TICKETING_SERVICE).to_string(),
            "event-id-3______state-changelog______ticketing-service"
        );
    }

    #[test]
    fn foreign_names_do_not_parse() {
        for name in [
            "__consumer_offsets",
            "__transaction_state",
            "orders",
            "event-id-______booking-command______client___to___ticketing-service",
            "event-id-01______booking-command______client___to___ticketing-service",
            "event-id-x______booking-command______client___to___ticketing-service",
            "event-id-1______booking-command",
            "event-id-1______Booking______client",
            "event-id-1______booking-command______client___to___",
            "event-id--1______booking-command______client",
        ] {
            assert_eq!(TopicName::parse(name), None, "{name}");
        }
    }

    #[test]
    fn event_ten_is_not_event_one() {
        let t = TopicName::parse(&booking_command_topic(10).to_string()).unwrap();
        assert_eq!(t.event_id, 10);
    }

    #[test]
    fn groups_ids_and_keys() {
        assert_eq!(consumer_group(1, SEAT_RESERVATION_SERVICE), "event-id-1_____seat-reservation-service--1");
        assert_eq!(
            parse_consumer_group("event-id-1_____seat-reservation-service--1"),
            Some((1, SEAT_RESERVATION_SERVICE.into()))
        );
        assert_eq!(parse_consumer_group("event-id-1_____ticketing-service--2"), None);
        assert_eq!(parse_consumer_group("my-group"), None);
        assert_eq!(transactional_id(TICKETING_SERVICE, 5, "2"), "ticketing-service-producer-event-5-instance-2");
        assert_eq!(section_key(1, "A", 0), "event-1-section-A-partition-0");
        assert_eq!(booking_key(1, "b-1"), "event-1-booking-b-1");
        assert_eq!(event_key(9), "event-9");
    }
}
