//! The host state a plugin instance reads and writes through the `state`
//! import.

use std::collections::BTreeMap;

/// One state write a plugin returned for a message: `None` deletes the key.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// Key-value state owned by the host and scoped to one partition. Plugins
/// only read it; the writes of the messages that are kept reach it through
/// [`apply`](Self::apply) (see
/// [`PluginInstance::handle_batch`](super::PluginInstance::handle_batch)).
pub trait StateAccess: Send + 'static {
    /// The value under `key`, if any.
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`; an absent key is not an error.
    fn delete(&mut self, key: &[u8]);
    /// Applies one message's writes in order. Takes them by value so that
    /// a state that stores owned bytes can keep them without a copy.
    fn apply(&mut self, writes: Vec<Write>) {
        for (key, value) in writes {
            match value {
                Some(value) => self.put(&key, &value),
                None => self.delete(&key),
            }
        }
    }
}

/// An in-memory [`StateAccess`] for replay, tests and benchmarks. Ordered, so
/// that snapshots are deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryState {
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StateAccess for MemoryState {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        // Overwrite in place when possible: keeps the key allocation.
        match self.map.get_mut(key) {
            Some(slot) => {
                slot.clear();
                slot.extend_from_slice(value);
            }
            None => {
                self.map.insert(key.to_vec(), value.to_vec());
            }
        }
    }

    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }

    fn apply(&mut self, writes: Vec<Write>) {
        for (key, value) in writes {
            match value {
                Some(value) => self.map.insert(key, value),
                None => self.map.remove(&key),
            };
        }
    }
}
