//! Plain-Rust mirror of the WIT world (`wit/plugin.wit`), so plugin logic can be
//! unit-tested and benchmarked natively and wrapped thinly as a component.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;

/// Key-value state owned by the host, scoped to the partition being handled
/// (WIT `state`). Plugins take `&mut impl Store`.
pub trait Store {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Sets `key` to `value`, handing over buffers the caller is done with:
    /// a store that keeps them (a component's batch) saves a copy of each.
    fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.put(&key, &value);
    }
    /// Removes `key`; absent keys are fine.
    fn delete(&mut self, key: &[u8]);
    /// Structured logging (WIT `log`). Discarded unless the store forwards it,
    /// so a native benchmark pays nothing for it.
    fn log(&mut self, level: LogLevel, message: &str) {
        let _ = (level, message);
    }
}

/// What a plugin says it is (WIT `manifest`): read once at load, checked
/// against the topology at deploy.
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

/// Log severity (WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where the host should send an output (WIT `routing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Partitioned by section (seat traffic).
    Section { section: String, subsection: u32 },
    /// Partitioned by the booking key `event-{id}-booking-{booking_id}`.
    Booking(String),
    /// Keyed by `event-{id}`.
    Event,
}

impl Routing {
    /// Partitioned by the booking key of `booking_id`.
    pub fn booking(booking_id: impl Into<String>) -> Self {
        Routing::Booking(booking_id.into())
    }

    /// Partitioned by `section` (seat traffic).
    pub fn section(section: impl Into<String>, subsection: u32) -> Self {
        Routing::Section { section: section.into(), subsection }
    }
}

/// One message to produce (WIT `output`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The action of the destination topic, e.g. `seat-reservation-result`.
    pub action: String,
    pub routing: Routing,
    /// The record value (JSON).
    pub payload: Vec<u8>,
    /// Must be flushed at once (payment).
    pub critical: bool,
}

impl Output {
    /// A non-critical output with `payload` as its value.
    pub fn new(action: &str, routing: Routing, payload: impl Into<Vec<u8>>) -> Self {
        Self { action: action.into(), routing, payload: payload.into(), critical: false }
    }

    /// A non-critical output whose payload is `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(action: &str, routing: Routing, value: &T) -> Result<Self, HandleError> {
        let payload =
            serde_json::to_vec(value).map_err(|e| HandleError::Invalid(alloc::format!("cannot encode output: {e}")))?;
        Ok(Self { action: action.into(), routing, payload, critical: false })
    }

    /// The payload decoded as JSON (for tests and tools).
    pub fn payload_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// Marks the output critical (flushed at once by the host).
    pub fn critical(mut self) -> Self {
        self.critical = true;
        self
    }
}

/// Why a message could not be handled (WIT `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// A poison message: the host dead-letters it and moves on.
    Invalid(String),
    /// A passing condition: the host retries with backoff, then dead-letters.
    Transient(String),
}

impl HandleError {
    /// An [`HandleError::Invalid`] from anything printable.
    pub fn invalid(reason: impl fmt::Display) -> Self {
        Self::Invalid(alloc::format!("{reason}"))
    }
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(r) => write!(f, "invalid message: {r}"),
            Self::Transient(r) => write!(f, "transient failure: {r}"),
        }
    }
}

impl core::error::Error for HandleError {}

/// An in-memory [`Store`] for tests and native benchmarks; keeps what is logged.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every `log` call, in order.
    pub logs: Vec<(LogLevel, String)>,
    /// Whether `log` records anything; off keeps benchmarks allocation-free.
    pub keep_logs: bool,
}

impl MemoryStore {
    /// An empty store that keeps its logs.
    pub fn new() -> Self {
        Self { keep_logs: true, ..Self::default() }
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.map.insert(key.to_vec(), value.to_vec());
    }

    fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.map.insert(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        if self.keep_logs {
            self.logs.push((level, message.into()));
        }
    }
}
