//! The guest side of a batched `handle` call (WIT `turnstile:plugin@0.3.0`).
//!
//! The host's `state.get` answers as of the start of the call, and a
//! message's writes travel back in its own result. [`Batch`] is the
//! [`Store`] a handler sees meanwhile: it reads the message's own writes
//! first, then those of the batch's earlier messages that succeeded, then
//! the host; it collects the message's writes for its result; and it
//! forgets them if the message fails, as the host will.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::plugin::{LogLevel, Store};

/// One state write: `None` deletes the key (WIT `write`).
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// Where a [`Batch`] reads what no message of the batch has written, and
/// where it sends log lines: the host's imports in a component, a map in a
/// test.
pub trait Backend {
    /// The host's value under `key`, as of the start of the batch.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Forwards a log line.
    fn log(&mut self, level: LogLevel, message: &str);
}

/// The state of one batch as its messages see it, one after the other.
#[derive(Debug)]
pub struct Batch<B> {
    backend: B,
    /// Writes of the batch's earlier messages that succeeded, newest per key.
    earlier: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Writes of the message being handled, in order.
    current: Vec<Write>,
}

impl<B: Backend> Batch<B> {
    /// A batch reading through `backend`.
    pub fn new(backend: B) -> Self {
        Batch { backend, earlier: BTreeMap::new(), current: Vec::new() }
    }

    /// Ends the message being handled and returns its writes, for its
    /// result. A message that succeeded leaves them visible to the next
    /// ones (`more`: there are next ones, so they are worth keeping); a
    /// failed one leaves nothing.
    pub fn end_message(&mut self, succeeded: bool, more: bool) -> Vec<Write> {
        let writes = core::mem::take(&mut self.current);
        if !succeeded {
            return Vec::new();
        }
        if more {
            for (key, value) in &writes {
                self.earlier.insert(key.clone(), value.clone());
            }
        }
        writes
    }
}

impl<B: Backend> Store for Batch<B> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A message writes a handful of keys at most: a scan beats a map.
        if let Some((_, value)) = self.current.iter().rev().find(|(k, _)| k == key) {
            return value.clone();
        }
        match self.earlier.get(key) {
            Some(value) => value.clone(),
            None => self.backend.get(key),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.current.push((key.to_vec(), Some(value.to_vec())));
    }

    fn delete(&mut self, key: &[u8]) {
        self.current.push((key.to_vec(), None));
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.backend.log(level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host(BTreeMap<Vec<u8>, Vec<u8>>);

    impl Backend for Host {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key).cloned()
        }
        fn log(&mut self, _: LogLevel, _: &str) {}
    }

    fn batch() -> Batch<Host> {
        Batch::new(Host([(b"k".to_vec(), b"host".to_vec())].into_iter().collect()))
    }

    #[test]
    fn a_message_reads_its_own_writes_then_the_batch_then_the_host() {
        let mut b = batch();
        assert_eq!(b.get(b"k").as_deref(), Some(&b"host"[..]));
        b.put(b"k", b"one");
        assert_eq!(b.get(b"k").as_deref(), Some(&b"one"[..]));
        assert_eq!(b.end_message(true, true), vec![(b"k".to_vec(), Some(b"one".to_vec()))]);
        assert_eq!(b.get(b"k").as_deref(), Some(&b"one"[..]), "the next message sees it");
        b.delete(b"k");
        assert_eq!(b.get(b"k"), None, "its own delete hides the batch and the host");
        assert_eq!(b.end_message(true, true), vec![(b"k".to_vec(), None)]);
        assert_eq!(b.get(b"k"), None);
    }

    #[test]
    fn a_failed_message_leaves_nothing() {
        let mut b = batch();
        b.put(b"k", b"doomed");
        b.put(b"other", b"x");
        assert!(b.end_message(false, true).is_empty(), "no writes to return");
        assert_eq!(b.get(b"k").as_deref(), Some(&b"host"[..]));
        assert_eq!(b.get(b"other"), None);
    }

    #[test]
    fn every_write_is_returned_in_order() {
        let mut b = batch();
        b.put(b"k", b"1");
        b.put(b"k", b"2");
        b.delete(b"j");
        let writes = b.end_message(true, false);
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[1], (b"k".to_vec(), Some(b"2".to_vec())));
    }
}
