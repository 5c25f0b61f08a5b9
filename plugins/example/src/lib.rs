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
//! The count lives in host-owned state under `changes/{booking_id}` (decimal
//! text), so it survives restarts, rebalances and hot reloads, and commits
//! with the output. A record that is not a status change is `invalid`: the
//! host dead-letters it and moves on.
//!
//! The logic is plain Rust over a [`Store`], so `cargo test` runs it natively;
//! `export_plugin!` wraps it as a component (`no_std` on wasm32, so the
//! component imports nothing but the plugin world).
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

#[cfg(target_arch = "wasm32")]
turnstile_protocol::export_plugin!();

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::Serialize;
use turnstile_protocol::{BookingStatusChanged, HandleError, LogLevel, Output, Routing, Store};

/// The service this plugin implements: `turnstile deploy --service
/// example-service` refuses a plugin whose manifest names another one.
pub const SERVICE: &str = "example-service";
/// Actions of the topics it consumes.
pub const CONSUMES: &[&str] = &["booking-status-changed"];
/// Actions of the topics it may emit to.
pub const EMITS: &[&str] = &["booking-audit"];

/// The record this plugin emits.
#[derive(Serialize)]
struct Audit<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    booking_id: &'a str,
    status: &'static str,
    change: u64,
    #[serde(rename = "final")]
    is_final: bool,
}

/// Handles one `booking-status-changed` record.
pub fn handle<S: Store + ?Sized>(
    store: &mut S,
    event_id: u64,
    action: &str,
    payload: &[u8],
) -> Result<Vec<Output>, HandleError> {
    let _ = (event_id, action);
    let status: BookingStatusChanged = serde_json::from_slice(payload)
        .map_err(|e| HandleError::invalid(format_args!("not a booking_status_changed: {e}")))?;

    // State is scoped to the record's partition; a booking's statuses all
    // share one partition, so its counter is always here.
    let key = format!("changes/{}", status.booking_id);
    let seen = store.get(key.as_bytes()).and_then(|v| String::from_utf8(v).ok()).and_then(|s| s.parse().ok());
    let change: u64 = seen.unwrap_or(0) + 1;
    store.put(key.as_bytes(), format!("{change}").as_bytes());
    store.log(
        LogLevel::Debug,
        &format!("booking {} is {} (change {change})", status.booking_id, status.status.as_str()),
    );

    let audit = Audit {
        kind: "booking_audit",
        booking_id: &status.booking_id,
        status: status.status.as_str(),
        change,
        is_final: status.status.is_terminal(),
    };
    // The host keys it `event-{id}-booking-{booking_id}` and picks the partition.
    Ok(vec![Output::json("booking-audit", Routing::Booking(status.booking_id.clone()), &audit)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnstile_protocol::MemoryStore;

    fn status(booking: &str, status: &str) -> Vec<u8> {
        format!(r#"{{"type":"booking_status_changed","booking_id":"{booking}","buyer_id":7,"status":"{status}"}}"#)
            .into_bytes()
    }

    #[test]
    fn numbers_each_bookings_changes() {
        let mut store = MemoryStore::new();
        let mut audit = |booking: &str, s: &str| {
            let out = handle(&mut store, 42, "booking-status-changed", &status(booking, s)).expect("handled");
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].action, "booking-audit");
            assert_eq!(out[0].routing, Routing::Booking(booking.into()));
            serde_json::from_slice::<serde_json::Value>(&out[0].payload).expect("json")
        };
        assert_eq!(audit("b1", "processing")["change"], 1);
        assert_eq!(audit("b2", "failed")["final"], true);
        let done = audit("b1", "completed");
        assert_eq!((done["change"].as_u64(), done["final"].as_bool()), (Some(2), Some(true)));
    }

    #[test]
    fn anything_else_is_invalid_and_writes_nothing() {
        let mut store = MemoryStore::new();
        let err = handle(&mut store, 42, "booking-status-changed", b"{\"type\":\"nope\"}").unwrap_err();
        assert!(matches!(err, HandleError::Invalid(_)), "{err}");
        assert!(store.map.is_empty());
    }
}
