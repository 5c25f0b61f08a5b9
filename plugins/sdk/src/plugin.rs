//! The trait a plugin implements.

use alloc::vec::Vec;

use crate::{HandleError, Message, Output, Routing, State};

/// A Turnstile plugin: what it is (the manifest the host checks at deploy
/// and at run) and how it handles one consumed record.
///
/// The host calls the world's batched `handle` with many records of one
/// partition; the SDK hands them to [`Plugin::handle`] one by one, in offset
/// order, with [`State`] showing the writes of the batch's earlier
/// successful records. A record's outputs and writes commit with its offset
/// in one Kafka transaction, or not at all.
pub trait Plugin {
    /// The service this plugin implements, e.g. `audit-service`: `deploy`
    /// and `run --service` refuse a plugin whose manifest names another.
    const SERVICE: &'static str;
    /// Actions of the topics it consumes; each needs a topic in the
    /// topology, and the plugin must consume every topic addressed to it.
    const CONSUMES: &'static [&'static str];
    /// Actions of the topics it may emit to; each needs a topic from
    /// [`Self::SERVICE`] in the topology.
    const EMITS: &'static [&'static str];
    /// The plugin's version in its manifest; `None` uses the crate's
    /// `CARGO_PKG_VERSION`.
    const VERSION: Option<&'static str> = None;

    /// Handles one record: the outputs to produce in its transaction, or
    /// why it cannot be handled ([`HandleError::Invalid`]: dead-lettered
    /// with the reason; [`HandleError::Transient`]: retried with backoff).
    /// A panic traps: the host dead-letters the record and keeps going.
    fn handle(message: &Message, state: &mut State<'_>) -> Result<Vec<Output>, HandleError>;

    /// The routing of a record whose key does not carry it (no key, or not
    /// the topic's key format), read from its value; the host uses it only
    /// to find the record's partition, and it sees no state. The default
    /// reads the domain's JSON business keys (`booking_id`, else `section`).
    fn route(message: &Message) -> Option<Routing> {
        turnstile_protocol::route_by_value(&message.action, &message.value)
    }
}
