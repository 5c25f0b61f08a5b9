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
//! `no_std` on wasm32, so the component imports nothing but the plugin world.
#![cfg(target_arch = "wasm32")]
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use serde::Serialize;
use turnstile_protocol::BookingStatusChanged;

// Generated from wit/plugin.wit. `std_feature` guards std-only impls behind a
// feature we never set; the canonical ABI flattens a message into many
// parameters.
#[allow(unexpected_cfgs, clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ path: "../../wit", world: "plugin", std_feature });
}

use bindings::turnstile::plugin::log::{Level, log};
use bindings::turnstile::plugin::state;
use bindings::turnstile::plugin::types::Routing;
use bindings::{Error, Guest, Manifest, Message, Output};

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

struct Example;

impl Guest for Example {
    /// Checked at deploy and load: `turnstile deploy --service example-service`
    /// refuses a plugin whose manifest names another service.
    fn manifest() -> Manifest {
        Manifest {
            service: "example-service".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            consumes: vec!["booking-status-changed".into()],
            emits: vec!["booking-audit".into()],
        }
    }

    fn handle(message: Message) -> Result<Vec<Output>, Error> {
        let status: BookingStatusChanged = serde_json::from_slice(&message.payload)
            .map_err(|e| Error::Invalid(format!("not a booking_status_changed: {e}")))?;

        // State is scoped to the message's partition; a booking's statuses all
        // share one partition, so its counter is always here.
        let key = format!("changes/{}", status.booking_id);
        let seen = state::get(key.as_bytes()).and_then(|v| String::from_utf8(v).ok()).and_then(|s| s.parse().ok());
        let change: u64 = seen.unwrap_or(0) + 1;
        state::put(key.as_bytes(), change.to_string().as_bytes());
        log(Level::Debug, &format!("booking {} is {} (change {change})", status.booking_id, status.status.as_str()));

        let audit = Audit {
            kind: "booking_audit",
            booking_id: &status.booking_id,
            status: status.status.as_str(),
            change,
            is_final: status.status.is_terminal(),
        };
        let payload = serde_json::to_vec(&audit).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(vec![Output {
            action: "booking-audit".into(),
            // The host keys it `event-{id}-booking-{booking_id}` and picks the partition.
            routing: Routing::Booking(status.booking_id.clone()),
            payload,
            critical: false,
        }])
    }

    /// Only asked for a consumed record whose key is not a booking key: the
    /// booking id in the status message names its partition.
    fn route(message: Message) -> Option<Routing> {
        let status: BookingStatusChanged = serde_json::from_slice(&message.payload).ok()?;
        Some(Routing::Booking(status.booking_id))
    }
}

bindings::export!(Example with_types_in bindings);
