//! The guest side of a batched `handle` call (WIT `turnstile:plugin@0.3.0`).
//!
//! The host's `state.get` answers as of the start of the call, and a
//! message's writes travel back in its own result. [`Batch`] is the
//! [`Store`] a handler sees meanwhile: it reads the message's own writes
//! first, then those of the batch's earlier messages that succeeded, then
//! the host; it collects the message's writes for its result; and it
//! forgets them if the message fails, as the host will.

use alloc::vec::Vec;
use core::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

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
///
/// A message's writes are kept where they will be returned from (no copy
/// per message), and an index finds the newest write of a key among them.
#[derive(Debug)]
pub struct Batch<B> {
    backend: B,
    /// The writes of every ended message, in order (none for a failed one).
    done: Vec<Vec<Write>>,
    /// Where the newest write of each key in `done` is: (message, write).
    index: HashTable<(u32, u32)>,
    hasher: DefaultHashBuilder,
    /// Writes of the message being handled, in order.
    current: Vec<Write>,
}

impl<B: Backend> Batch<B> {
    /// A batch reading through `backend`.
    pub fn new(backend: B) -> Self {
        Batch {
            backend,
            done: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            current: Vec::new(),
        }
    }

    /// Ends the message being handled. A message that succeeded leaves its
    /// writes visible to the next ones (`more`: there are next ones, so
    /// indexing them is worth it); a failed one leaves nothing.
    pub fn end_message(&mut self, succeeded: bool, more: bool) {
        let writes = core::mem::take(&mut self.current);
        let m = self.done.len();
        self.done.push(if succeeded { writes } else { Vec::new() });
        if !(succeeded && more) {
            return;
        }
        let Batch { done, index, hasher, .. } = self;
        for (w, (key, _)) in done[m].iter().enumerate() {
            let slot = (m as u32, w as u32);
            let hash = hasher.hash_one(key.as_slice());
            match index.find_mut(hash, |&(a, b)| done[a as usize][b as usize].0 == *key) {
                Some(newest) => *newest = slot,
                None => {
                    index.insert_unique(hash, slot, |&(a, b)| {
                        hasher.hash_one(done[a as usize][b as usize].0.as_slice())
                    });
                }
            }
        }
    }

    /// The writes of every ended message, in order: what each result carries.
    pub fn into_writes(self) -> Vec<Vec<Write>> {
        self.done
    }
}

impl<B: Backend> Store for Batch<B> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A message writes a handful of keys at most: a scan beats a map.
        if let Some((_, value)) = self.current.iter().rev().find(|(k, _)| k == key) {
            return value.clone();
        }
        let done = &self.done;
        let hash = self.hasher.hash_one(key);
        match self.index.find(hash, |&(a, b)| done[a as usize][b as usize].0 == key) {
            Some(&(a, b)) => done[a as usize][b as usize].1.clone(),
            None => self.backend.get(key),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.current.push((key.to_vec(), Some(value.to_vec())));
    }

    fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.current.push((key, Some(value)));
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
    use alloc::collections::BTreeMap;

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
        b.end_message(true, true);
        assert_eq!(b.get(b"k").as_deref(), Some(&b"one"[..]), "the next message sees it");
        b.delete(b"k");
        assert_eq!(b.get(b"k"), None, "its own delete hides the batch and the host");
        b.end_message(true, true);
        assert_eq!(b.get(b"k"), None, "the newest write of the batch wins");
        b.put_owned(b"j".to_vec(), b"owned".to_vec());
        b.end_message(true, true);
        assert_eq!(b.get(b"j").as_deref(), Some(&b"owned"[..]));
        assert_eq!(b.get(b"k"), None);
        assert_eq!(
            b.into_writes(),
            vec![
                vec![(b"k".to_vec(), Some(b"one".to_vec()))],
                vec![(b"k".to_vec(), None)],
                vec![(b"j".to_vec(), Some(b"owned".to_vec()))]
            ]
        );
    }

    #[test]
    fn a_failed_message_leaves_nothing() {
        let mut b = batch();
        b.put(b"k", b"doomed");
        b.put(b"other", b"x");
        b.end_message(false, true);
        assert_eq!(b.get(b"k").as_deref(), Some(&b"host"[..]));
        assert_eq!(b.get(b"other"), None);
        assert_eq!(b.into_writes(), vec![Vec::new()], "no writes to return");
    }

    #[test]
    fn every_write_is_returned_in_order() {
        let mut b = batch();
        b.put(b"k", b"1");
        b.put(b"k", b"2");
        b.delete(b"j");
        b.end_message(true, false);
        let writes = b.into_writes().remove(0);
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[1], (b"k".to_vec(), Some(b"2".to_vec())));
    }
}
