//! The host-owned key-value state a handler reads and writes.

use alloc::vec::Vec;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{HandleError, LogLevel, Store};

/// The state of the record's partition, as of the record (earlier records
/// of the batch included). Writes become durable only with the record's
/// outputs, in the same transaction; a failed record's writes are dropped.
/// State survives restarts, rebalances and hot reloads.
pub struct State<'a> {
    store: &'a mut dyn Store,
}

impl<'a> State<'a> {
    /// State over any [`Store`] (the SDK builds it; tests can too).
    pub fn new(store: &'a mut dyn Store) -> Self {
        State { store }
    }

    /// The bytes under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        self.store.get(key.as_ref())
    }

    /// The JSON value under `key`; a value that does not decode as `T` is
    /// [`HandleError::Invalid`] naming the key.
    pub fn get_json<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, HandleError> {
        let key = key.as_ref();
        let Some(bytes) = self.store.get(key) else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            HandleError::invalid(format_args!("state under {:?} is not the JSON expected: {e}", Lossy(key)))
        })
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.store.put(key.as_ref(), value.as_ref());
    }

    /// Sets `key` to `value` encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(&mut self, key: impl AsRef<[u8]>, value: &T) -> Result<(), HandleError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| HandleError::invalid(format_args!("cannot encode state: {e}")))?;
        self.store.put_owned(key.as_ref().to_vec(), bytes);
        Ok(())
    }

    /// Removes `key`; an absent key is fine.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.store.delete(key.as_ref());
    }

    /// Logs through the host's `tracing` (target `turnstile::plugin::guest`).
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.store.log(level, message);
    }

    /// [`Self::log`] at debug level.
    pub fn debug(&mut self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    /// [`Self::log`] at info level.
    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// [`Self::log`] at warn level.
    pub fn warn(&mut self, message: &str) {
        self.log(LogLevel::Warn, message);
    }
}

/// So code written over `impl Store` (the built-in plugins) takes a `State`.
impl Store for State<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.store.put(key, value);
    }
    fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.store.put_owned(key, value);
    }
    fn delete(&mut self, key: &[u8]) {
        self.store.delete(key);
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        self.store.log(level, message);
    }
}

/// A key shown as text where it is text.
struct Lossy<'a>(&'a [u8]);

impl core::fmt::Debug for Lossy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match core::str::from_utf8(self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}
