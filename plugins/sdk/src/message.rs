//! One consumed record as a plugin sees it.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Deserialize;

use crate::HandleError;

/// A Kafka record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Vec<u8>,
}

/// One consumed Kafka record, with the event id and action the host parsed
/// from its topic name (`event-id-{id}______{action}______…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The record value (JSON for the domain's topics).
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch, as stamped by the producer or broker.
    pub timestamp: Option<i64>,
    pub event_id: u64,
    pub action: String,
}

impl Message {
    /// A record of `action` in event 1 with `value`, at offset 0 of
    /// partition 0 and without key, headers or timestamp: for tests.
    pub fn new(action: &str, value: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: alloc::format!("event-id-1______{action}______test"),
            partition: 0,
            offset: 0,
            key: None,
            value: value.into(),
            headers: Vec::new(),
            timestamp: None,
            event_id: 1,
            action: action.into(),
        }
    }

    /// The record key as text, if it has one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The record key as bytes, if it has one.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.key.as_deref().map(str::as_bytes)
    }

    /// The value as UTF-8 text; not text is [`HandleError::Invalid`].
    pub fn text(&self) -> Result<&str, HandleError> {
        core::str::from_utf8(&self.value).map_err(|e| HandleError::invalid(format_args!("value is not UTF-8: {e}")))
    }

    /// The value decoded from JSON; a value that does not decode is
    /// [`HandleError::Invalid`] with serde's reason (dead-lettered with it).
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, HandleError> {
        serde_json::from_slice(&self.value)
            .map_err(|e| HandleError::invalid(format_args!("value is not the JSON expected: {e}")))
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|h| h.key == name).map(|h| h.value.as_slice())
    }

    /// The first header named `name`, if it is UTF-8 text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| core::str::from_utf8(v).ok())
    }
}
