//! The routing of a consumed record read from its value, for records whose
//! key does not give it (DOMAIN.md §3). The host asks the plugin (WIT
//! `route`) because only the plugin knows its payload format; plugins that
//! speak the default topology's JSON messages answer with this.

use alloc::string::String;

use serde::Deserialize;

use crate::names::{BOOKING_COMMAND, BOOKING_STATUS_CHANGED, SEAT_RESERVATION_RESULT, TICKET_COMMAND_REQUEST};
use crate::plugin::Routing;

/// Only the business keys; every other field is ignored.
#[derive(Deserialize)]
struct Keys {
    booking_id: Option<String>,
    section: Option<String>,
    subsection: Option<u32>,
}

/// The routing of a record of `action` by the business key in its JSON
/// `payload`: the booking id for booking-partitioned topics, the section for
/// seat traffic; for actions outside the default topology, the booking id
/// if there is one, else the section. `None` when the payload is not JSON or
/// lacks the key.
pub fn route_by_value(action: &str, payload: &[u8]) -> Option<Routing> {
    let keys: Keys = serde_json::from_slice(payload).ok()?;
    match action {
        BOOKING_COMMAND | SEAT_RESERVATION_RESULT | BOOKING_STATUS_CHANGED => {
            keys.booking_id.filter(|id| !id.is_empty()).map(Routing::Booking)
        }
        TICKET_COMMAND_REQUEST => keys
            .section
            .filter(|s| !s.is_empty())
            .map(|section| Routing::Section { section, subsection: keys.subsection.unwrap_or(0) }),
        _ => match (keys.booking_id, keys.section) {
            (Some(id), _) if !id.is_empty() => Some(Routing::Booking(id)),
            (_, Some(section)) if !section.is_empty() => {
                Some(Routing::Section { section, subsection: keys.subsection.unwrap_or(0) })
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_topics_route_by_booking_id() {
        let create = br#"{"type":"create_booking","booking_id":"b-1","buyer_id":3,"section":"A"}"#;
        assert_eq!(route_by_value(BOOKING_COMMAND, create), Some(Routing::Booking("b-1".into())));
        let result = br#"{"type":"seats_sold","booking_id":"b-2","seats":[]}"#;
        assert_eq!(route_by_value(SEAT_RESERVATION_RESULT, result), Some(Routing::Booking("b-2".into())));
        let status = br#"{"type":"booking_status_changed","booking_id":"b-3","buyer_id":1,"status":"failed"}"#;
        assert_eq!(route_by_value(BOOKING_STATUS_CHANGED, status), Some(Routing::Booking("b-3".into())));
    }

    #[test]
    fn seat_traffic_routes_by_section() {
        let reserve = br#"{"type":"reserve_seats","booking_id":"b","section":"VIP","subsection":2}"#;
        assert_eq!(
            route_by_value(TICKET_COMMAND_REQUEST, reserve),
            Some(Routing::Section { section: "VIP".into(), subsection: 2 })
        );
    }

    #[test]
    fn no_business_key_means_no_routing() {
        assert_eq!(route_by_value(BOOKING_COMMAND, b"\xff not json"), None);
        assert_eq!(route_by_value(BOOKING_COMMAND, br#"{"type":"pay_booking"}"#), None);
        assert_eq!(route_by_value(BOOKING_COMMAND, br#"{"booking_id":""}"#), None);
        assert_eq!(route_by_value(BOOKING_COMMAND, br#"{"booking_id":7}"#), None);
        assert_eq!(route_by_value(TICKET_COMMAND_REQUEST, br#"{"booking_id":"b"}"#), None);
        assert_eq!(route_by_value("echo", br#"{"n":1}"#), None);
    }

    #[test]
    fn other_actions_route_by_booking_then_section() {
        assert_eq!(route_by_value("audit", br#"{"booking_id":"b","section":"A"}"#), Some(Routing::Booking("b".into())));
        assert_eq!(
            route_by_value("audit", br#"{"section":"A"}"#),
            Some(Routing::Section { section: "A".into(), subsection: 0 })
        );
    }
}
