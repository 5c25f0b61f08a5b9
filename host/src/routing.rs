//! From a plugin [`Output`] to where the host produces it: topic, partition
//! and key (DOMAIN.md §2–3). The exactly-once runner and `turnstile replay`
//! both route through here, so a replay shows exactly what production does.
//!
//! Topics: an output's action must name a topic of the [`Topology`] written
//! by the service (built-in or `[[topology.topics]]`); anything else is an
//! error, because a topic the topology does not name is not provisioned.
//!
//! Partitions and keys:
//! - `section`: `partition::section_partition` and `naming::section_key`;
//! - `booking`: `partition::booking_partition` and `naming::booking_key`;
//! - `event`: partition 0 and `naming::event_key`.

use std::collections::HashMap;

use turnstile_protocol::{Output, Routing};

use crate::naming::{self, TopicKind};
use crate::partition;
use crate::topology::Topology;

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
/// partitions. Looks the topic up each call; a [`Router`] caches them.
pub fn route(
    topology: &Topology,
    event_id: u64,
    service: &str,
    output: &Output,
    partitions: i32,
) -> Result<Destination, RoutingError> {
    Router::new(topology, event_id, service, partitions)?.route(output)
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

fn place(
    event_id: u64,
    (topic, kind): (String, TopicKind),
    output: &Output,
    partitions: i32,
) -> Result<Destination, RoutingError> {
    check_kind(kind, output)?;
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
fn check_kind(kind: TopicKind, output: &Output) -> Result<(), RoutingError> {
    let expected = match kind {
        TopicKind::ByBooking => "booking",
        TopicKind::BySection => "section",
        TopicKind::ByEvent => "event",
        TopicKind::Changelog => return Ok(()),
    };
    let got = match output.routing {
        Routing::Section { .. } => "section",
        Routing::Booking(_) => "booking",
        Routing::Event => "event",
    };
    if got == expected { Ok(()) } else { Err(RoutingError::WrongKind { action: output.action.clone(), expected, got }) }
}

/// Routes the outputs of one service for one event, with the topics of its
/// actions looked up once.
#[derive(Debug, Clone)]
pub struct Router {
    event_id: u64,
    service: String,
    partitions: i32,
    /// Output action → (topic, how it is partitioned).
    topics: HashMap<String, (String, TopicKind)>,
}

impl Router {
    /// A router for `service`'s outputs in `event_id` over `partitions`.
    pub fn new(topology: &Topology, event_id: u64, service: &str, partitions: i32) -> Result<Self, RoutingError> {
        if partitions < 1 {
            return Err(RoutingError::BadPartitions(partitions));
        }
        let topics = topology
            .flows()
            .iter()
            .filter(|f| f.from == service)
            .map(|f| (f.action.clone(), (f.topic(event_id).to_string(), f.routing.kind())))
            .collect();
        Ok(Router { event_id, service: service.to_owned(), partitions, topics })
    }

    /// The partition count routed over.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Routes one output.
    pub fn route(&self, output: &Output) -> Result<Destination, RoutingError> {
        let Some(topic) = self.topics.get(&output.action) else {
            return Err(RoutingError::UnknownAction {
                event_id: self.event_id,
                service: self.service.clone(),
                action: output.action.clone(),
            });
        };
        place(self.event_id, topic.clone(), output, self.partitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::action::*;
    use crate::naming::{CLIENT, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
    use crate::topology::{Flow, Partitioning};

    fn route(event_id: u64, service: &str, output: &Output, partitions: i32) -> Result<Destination, RoutingError> {
        super::route(&Topology::builtin(), event_id, service, output, partitions)
    }

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

    fn with_echo() -> Topology {
        let echo =
            Flow { action: "echo".into(), from: "misbehave".into(), to: CLIENT.into(), routing: Partitioning::Event };
        Topology::with(&[echo]).unwrap()
    }

    #[test]
    fn event_routing_is_partition_zero() {
        let o = out("echo", Routing::Event);
        let d = super::route(&with_echo(), 5, "misbehave", &o, 10).unwrap();
        assert_eq!((d.partition, d.key.as_str()), (0, "event-5"));
        assert_eq!(d.topic, "event-id-5______echo______misbehave___to___client");
        let wrong = out("echo", Routing::Booking("b".into()));
        assert!(matches!(super::route(&with_echo(), 5, "misbehave", &wrong, 10), Err(RoutingError::WrongKind { .. })));
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
    fn a_service_outside_the_topology_reaches_no_topic() {
        let o = out("echo", Routing::Event);
        assert!(matches!(route(2, "misbehave", &o, 10), Err(RoutingError::UnknownAction { .. })));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let o = out(BOOKING_STATUS_CHANGED, Routing::Booking(String::new()));
        assert!(matches!(route(1, TICKETING_SERVICE, &o, 10), Err(RoutingError::EmptyBooking(_))));
        let o = out(TICKET_COMMAND_REQUEST, Routing::Section { section: String::new(), subsection: 1 });
        assert!(matches!(route(1, TICKETING_SERVICE, &o, 10), Err(RoutingError::EmptySection(_))));
        let o = out(BOOKING_STATUS_CHANGED, Routing::Event);
        assert_eq!(route(1, TICKETING_SERVICE, &o, 0), Err(RoutingError::BadPartitions(0)));
        assert!(Router::new(&Topology::builtin(), 1, TICKETING_SERVICE, -1).is_err());
    }

    #[test]
    fn router_matches_route() {
        let router = Router::new(&Topology::builtin(), 3, TICKETING_SERVICE, 10).unwrap();
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
