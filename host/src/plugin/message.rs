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

/// Where an output goes, as the plugin names it; [`crate::routing`] turns it
/// into a topic, partition and key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Routing {
    /// Partitioned by section.
    Section { section: String, subsection: u32 },
    /// Partitioned by the booking key of this booking id.
    Booking(String),
    /// Keyed by the event.
    Event,
}

/// One message a plugin asks the host to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The action of the destination topic.
    pub action: String,
    pub routing: Routing,
    pub payload: Vec<u8>,
    /// Flush at once instead of waiting for the next batch.
    pub critical: bool,
}

/// What a plugin says it is; read once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The service it implements, e.g. `seat-reservation-service`.
    pub service: String,
    pub version: String,
    /// Actions it consumes.
    pub consumes: Vec<String>,
    /// Actions it may emit.
    pub emits: Vec<String>,
}
