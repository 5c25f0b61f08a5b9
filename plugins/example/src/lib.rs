//! `example-service`: the smallest useful Turnstile plugin, walked through in
//! the README ("Writing a plugin"). For every `booking-status-changed` record it
//! emits one `booking-audit` record, routed by booking, that numbers the
//! booking's status changes:
//!
//! ```text
//! in:  {"type":"booking_status_changed","booking_id":"b1","buyer_id":7,"status":"completed",…}
//! out: {"type":"booking_audit","booking_id":"b1","status":"completed","change":3,"final":true}
//! ```
//!
//! The count lives in host-owned state under `changes/{booking_id}`, so it
//! survives restarts, rebalances and hot reloads, and commits with the
//! output. A record that is not a status change is `invalid`: the host
//! dead-letters it and moves on. Its topic comes from the topology in
//! `turnstile.toml` (`[[topology.topics]]`, see docs/DOMAIN.md).
#![no_std]

use turnstile_plugin::domain::BookingStatusChanged;
use turnstile_plugin::prelude::*;

/// The plugin.
pub struct Example;

impl Plugin for Example {
    const SERVICE: &'static str = "example-service";
    const CONSUMES: &'static [&'static str] = &["booking-status-changed"];
    const EMITS: &'static [&'static str] = &["booking-audit"];

    fn handle(message: &Message, state: &mut State<'_>) -> Result<Vec<Output>, HandleError> {
        let status: BookingStatusChanged = message.json()?;
        // State is scoped to the record's partition; a booking's statuses all
        // share one partition, so its counter is always here.
        let key = format!("changes/{}", status.booking_id);
        let change = state.get_json::<u64>(&key)?.unwrap_or(0) + 1;
        state.put_json(&key, &change)?;
        state.debug(&format!("booking {} is {} (change {change})", status.booking_id, status.status.as_str()));
        let audit = json!({
            "type": "booking_audit",
            "booking_id": status.booking_id,
            "status": status.status.as_str(),
            "change": change,
            "final": status.status.is_terminal(),
        });
        // The host keys it `event-{id}-booking-{booking_id}` and picks the partition.
        Ok(vec![Output::json("booking-audit", Routing::booking(status.booking_id), &audit)?])
    }
}

turnstile_plugin::export!(Example);

#[cfg(test)]
mod tests {
    use turnstile_plugin::testing::TestDriver;

    use super::*;

    fn status(booking: &str, status: &str) -> Value {
        json!({"type": "booking_status_changed", "booking_id": booking, "buyer_id": 7, "status": status})
    }

    #[test]
    fn numbers_each_bookings_changes() {
        let mut driver = TestDriver::<Example>::new();
        let mut audit = |booking: &str, s: &str| {
            let out = driver.send_json("booking-status-changed", &status(booking, s)).expect("handled");
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].routing, Routing::booking(booking));
            out[0].payload_json().expect("json")
        };
        assert_eq!(audit("b1", "processing")["change"], 1);
        assert_eq!(audit("b2", "failed")["final"], true);
        let done = audit("b1", "completed");
        assert_eq!((done["change"].as_u64(), done["final"].as_bool()), (Some(2), Some(true)));
    }

    #[test]
    fn anything_else_is_invalid_and_writes_nothing() {
        let mut driver = TestDriver::<Example>::new();
        let err = driver.send("booking-status-changed", "{\"type\":\"nope\"}").unwrap_err();
        assert!(matches!(err, HandleError::Invalid(_)), "{err}");
        assert!(driver.state().map.is_empty());
    }
}
