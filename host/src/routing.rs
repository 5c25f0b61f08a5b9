//! From a plugin [`Output`] to where the host produces it: topic, partition
//! and key (DOMAIN.md §2–3). The exactly-once runner and `turnstile replay`
//! both route through here, so a replay shows exactly what production does.
//!
//! Topics: an output's action must name an output topic of the service in
//! the default topology (`naming::output_topic`); for the two real services
//! anything else is an error, because a topic the topology does not create
//! does not exist on the broker. A service outside the topology (the sandbox
//! and example plugins) has no topics of its own, so its outputs go to the
//! flow topic `event-id-{id}______{action}______{service}___to___client`:
//! visible, deterministic, and never one of the real services' inputs.
//!
//! Partitions and keys:
//! - `section`: `partition::section_partition` and `naming::section_key`;
//! - `booking`: `partition::booking_partition` and `naming::booking_key`;
//! - `event`: partition 0 and `naming::event_key`.

use std::collections::HashMap;

use crate::naming::{self, CLIENT, SERVICES, TopicKind, TopicName};
use crate::partition;
use crate::plugin::{Output, Routing};

/// Where one output is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub topic: String,
    pub partition: i32,
    pub key: String,
}

/// Why an output cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The service has no output topic for this action.
    #[error("{service} has no output topic for action `{action}` in event {event_id}")]
    UnknownAction { event_id: u64, service: String, action: String },
    /// The action is not a valid topic-name part.
    #[error("`{0}` is not a valid action name (lowercase words joined by dashes)")]
    BadAction(String),
    /// A partition count below 1.
    #[error("partition count must be positive, got {0}")]
    BadPartitions(i32),
    /// A section route without a section.
    #[error("output `{0}` is routed by section but names no section")]
    EmptySection(String),
    /// A booking route without a booking id.
    #[error("output `{0}` is routed by booking but names no booking id")]
    EmptyBooking(String),
    /// The routing is not the one the topic is partitioned by: producing it
    /// would break co-partitioning (DOMAIN.md §3).
    #[error("output `{action}` must be routed by {expected}, not by {got}")]
    WrongKind { action: String, expected: &'static str, got: &'static str },
}

/// Routes one output of `service` for `event_id` over `partitions`
/// partitions. Builds the topic names each call; a [`Router`] caches them.
pub fn route(event_id: u64, service: &str, output: &Output, partitions: i32) -> Result<Destination, RoutingError> {
    let topic = topic_for(event_id, service, &output.action)?;
    place(event_id, topic, output, partitions)
}

/// The topic an output action of `service` goes to (see the module docs for
/// services outside the topology).
pub fn topic_for(event_id: u64, service: &str, action: &str) -> Result<String, RoutingError> {
    if let Some(topic) = naming::output_topic(event_id, service, action) {
        return Ok(topic.to_string());
    }
    if SERVICES.contains(&service) {
        return Err(RoutingError::UnknownAction { event_id, service: service.to_owned(), action: action.to_owned() });
    }
    // Round-trip through the parser: it is the definition of a valid name.
    let topic = TopicName::flow(event_id, action, service, CLIENT).to_string();
    match TopicName::parse(&topic) {
        Some(_) => Ok(topic),
        None => Err(RoutingError::BadAction(action.to_owned())),
    }
}

/// The partition and key of seat traffic for `section` (DOMAIN.md §3).
pub fn by_section(event_id: u64, section: &str, partitions: i32) -> (i32, String) {
    let p = partition::section_partition(event_id, section, partitions);
    (p, naming::section_key(event_id, section, p))
}

/// The partition and key of a booking's messages (DOMAIN.md §3).
pub fn by_booking(event_id: u64, booking_id: &str, partitions: i32) -> (i32, String) {
    (partition::booking_partition(event_id, booking_id, partitions), naming::booking_key(event_id, booking_id))
}

fn place(event_id: u64, topic: String, output: &Output, partitions: i32) -> Result<Destination, RoutingError> {
    if partitions < 1 {
        return Err(RoutingError::BadPartitions(partitions));
    }
    check_kind(output)?;
    let (partition, key) = match &output.routing {
        Routing::Section { section, .. } => {
            if section.is_empty() {
                return Err(RoutingError::EmptySection(output.action.clone()));
            }
            by_section(event_id, section, partitions)
        }
        Routing::Booking(booking_id) => {
            if booking_id.is_empty() {
                return Err(RoutingError::EmptyBooking(output.action.clone()));
            }
            by_booking(event_id, booking_id, partitions)
        }
        Routing::Event => (0, naming::event_key(event_id)),
    };
    Ok(Destination { topic, partition, key })
}

/// The routing an action's topic is partitioned by must be the one used.
fn check_kind(output: &Output) -> Result<(), RoutingError> {
    let expected = match naming::routing_kind(&output.action) {
        Some(TopicKind::ByBooking) => "booking",
        Some(TopicKind::BySection) => "section",
        Some(TopicKind::Changelog) | None => return Ok(()),
    };
    let got = match output.routing {
        Routing::Section { .. } => "section",
        Routing::Booking(_) => "booking",
        Routing::Event => "event",
    };
    if got == expected { Ok(()) } else { Err(RoutingError::WrongKind { action: output.action.clone(), expected, got }) }
}

/// Routes the outputs of one service for one event, with topic names
/// computed once per action instead of once per output.
#[derive(Debug, Clone)]
pub struct Router {
    event_id: u64,
    service: String,
    partitions: i32,
    topics: HashMap<String, String>,
}

impl Router {
    /// A router for `service`'s outputs in `event_id` over `partitions`.
    pub fn new(event_id: u64, service: &str, partitions: i32) -> Result<Self, RoutingError> {
        if partitions < 1 {
            return Err(RoutingError::BadPartitions(partitions));
        }
        Ok(Router { event_id, service: service.to_owned(), partitions, topics: HashMap::new() })
    }

    /// The partition count routed over.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Routes one output.
    pub fn route(&mut self, output: &Output) -> Result<Destination, RoutingError> {
        let topic = match self.topics.get(&output.action) {
            Some(topic) => topic.clone(),
            None => {
                let topic = topic_for(self.event_id, &self.service, &output.action)?;
                self.topics.insert(output.action.clone(), topic.clone());
                topic
            }
        };
        place(self.event_id, topic, output, self.partitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::action::*;
    use crate::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};

    fn out(action: &str, routing: Routing) -> Output {
        Output { action: action.into(), routing, payload: b"{}".to_vec(), critical: false }
    }

    #[test]
    fn section_routing_uses_the_section_partitioner() {
        let o = out(TICKET_COMMAND_REQUEST, Routing::Section { section: "C".into(), subsection: 3 });
        let d = route(1, TICKETING_SERVICE, &o, 10).unwrap();
        assert_eq!(d.topic, naming::ticket_command_request_topic(1).to_string());
        assert_eq!(d.partition, 2);
        assert_eq!(d.key, "event-1-section-C-partition-2");

        let vip = out(TICKET_COMMAND_REQUEST, Routing::Section { section: "VIP".into(), subsection: 1 });
        let d = route(1, TICKETING_SERVICE, &vip, 10).unwrap();
        assert_eq!((d.partition, d.key.as_str()), (4, "event-1-section-VIP-partition-4"));
    }

    #[test]
    fn booking_routing_uses_kafkas_partitioner() {
        let o = out(SEAT_RESERVATION_RESULT, Routing::Booking("b-1".into()));
        let d = route(7, SEAT_RESERVATION_SERVICE, &o, 10).unwrap();
        assert_eq!(d.topic, naming::seat_reservation_result_topic(7).to_string());
        assert_eq!(d.key, "event-7-booking-b-1");
        assert_eq!(d.partition, partition::key_partition(b"event-7-booking-b-1", 10));

        let status = out(BOOKING_STATUS_CHANGED, Routing::Booking("b-1".into()));
        let d = route(7, TICKETING_SERVICE, &status, 3).unwrap();
        assert_eq!(d.topic, naming::booking_status_changed_topic(7).to_string());
        assert_eq!(d.partition, partition::key_partition(b"event-7-booking-b-1", 3));
    }

    #[test]
    fn event_routing_is_partition_zero() {
        let o = out("echo", Routing::Event);
        let d = route(5, "misbehave-service", &o, 10).unwrap();
        assert_eq!((d.partition, d.key.as_str()), (0, "event-5"));
    }

    #[test]
    fn a_routing_that_breaks_co_partitioning_is_refused() {
        let o = out(SEAT_RESERVATION_RESULT, Routing::Section { section: "A".into(), subsection: 1 });
        let err = route(1, SEAT_RESERVATION_SERVICE, &o, 10).unwrap_err();
        assert_eq!(err.to_string(), "output `seat-reservation-result` must be routed by booking, not by section");
        let o = out(TICKET_COMMAND_REQUEST, Routing::Booking("b".into()));
        assert!(matches!(route(1, TICKETING_SERVICE, &o, 10), Err(RoutingError::WrongKind { .. })));
        let o = out(BOOKING_STATUS_CHANGED, Routing::Event);
        assert!(matches!(route(1, TICKETING_SERVICE, &o, 10), Err(RoutingError::WrongKind { .. })));
    }

    #[test]
    fn real_services_only_reach_their_own_topics() {
        let o = out(SEAT_RESERVATION_RESULT, Routing::Booking("b".into()));
        let err = route(1, TICKETING_SERVICE, &o, 10).unwrap_err();
        assert!(err.to_string().contains("`seat-reservation-result`"), "{err}");
        let o = out("no-such-action", Routing::Event);
        assert!(matches!(route(1, SEAT_RESERVATION_SERVICE, &o, 10), Err(RoutingError::UnknownAction { .. })));
    }

    #[test]
    fn other_services_fall_back_to_a_client_flow_topic() {
        let o = out("echo", Routing::Event);
        let d = route(2, "misbehave-service", &o, 10).unwrap();
        assert_eq!(d.topic, "event-id-2______echo______misbehave-service___to___client");
        let bad = out("Not Valid", Routing::Event);
        assert_eq!(route(2, "misbehave-service", &bad, 10), Err(RoutingError::BadAction("Not Valid".into())));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let o = out(BOOKING_STATUS_CHANGED, Routing::Booking(String::new()));
        assert!(matches!(route(1, TICKETING_SERVICE, &o, 10), Err(RoutingError::EmptyBooking(_))));
        let o = out(TICKET_COMMAND_REQUEST, Routing::Section { section: String::new(), subsection: 1 });
        assert!(matches!(route(1, TICKETING_SERVICE, &o, 10), Err(RoutingError::EmptySection(_))));
        let o = out(BOOKING_STATUS_CHANGED, Routing::Event);
        assert_eq!(route(1, TICKETING_SERVICE, &o, 0), Err(RoutingError::BadPartitions(0)));
        assert!(Router::new(1, TICKETING_SERVICE, -1).is_err());
    }

    #[test]
    fn router_matches_route() {
        let mut router = Router::new(3, TICKETING_SERVICE, 10).unwrap();
        for o in [
            out(TICKET_COMMAND_REQUEST, Routing::Section { section: "Balcony".into(), subsection: 2 }),
            out(BOOKING_STATUS_CHANGED, Routing::Booking("x".into())),
            out(BOOKING_STATUS_CHANGED, Routing::Booking("y".into())),
        ] {
            assert_eq!(router.route(&o).unwrap(), route(3, TICKETING_SERVICE, &o, 10).unwrap());
        }
        assert!(router.route(&out("nope", Routing::Event)).is_err());
    }
}
