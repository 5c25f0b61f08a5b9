//! The host state a plugin instance reads and writes through the `state`
//! import.

use std::collections::BTreeMap;

/// Key-value state owned by the host and scoped to one partition. The
/// runtime only calls it with the writes of messages that succeeded (see
/// [`PluginInstance::handle`](super::PluginInstance::handle)).
pub trait StateAccess: Send + 'static {
    /// The value under `key`, if any.
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`; an absent key is not an error.
    fn delete(&mut self, key: &[u8]);
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
}
