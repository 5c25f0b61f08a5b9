//! Host-side mirrors of the world's types, independent of the generated
//! bindings so that callers never see wasmtime types.

/// One consumed record handed to a plugin. Borrowed, so that the runner can
/// pass a Kafka message without copying it first.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a str>,
    pub payload: &'a [u8],
    pub headers: &'a [Header<'a>],
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Parsed from the topic name.
    pub event_id: u64,
    /// Parsed from the topic name, e.g. `booking-command`.
    pub action: &'a str,
}

/// A Kafka record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
}

/// Where an output goes and what it carries, and what a plugin says it
/// is: the same types the plugins' native logic uses, so host, plugins and
/// benchmarks share one definition of the WIT `output`, `routing` and
/// `manifest`.
pub use turnstile_protocol::{Manifest, Output, Routing};
