//! Noticing a deploy or rollback from a running service.

use std::path::PathBuf;

use super::{DeployError, Store, Version, version};

/// Reports when `current` points somewhere new. A poll that finds nothing
/// new costs one `readlink(2)`, cheap enough to call between transactions.
#[derive(Debug)]
pub struct Watcher {
    store: Store,
    /// The `current` target last reported; `None` before any.
    seen: Option<PathBuf>,
}

impl Watcher {
    /// A watcher that has seen nothing: its first poll reports the current
    /// version, if any. Loading what that poll returns, rather than calling
    /// [`Store::current`] first, leaves no window for a deploy to slip by.
    pub fn new(store: Store) -> Self {
        Watcher { store, seen: None }
    }

    /// A watcher for which `version` (loaded some other way) is already seen.
    pub fn since(store: Store, version: Option<&Version>) -> Self {
        Watcher { store, seen: version.map(|v| PathBuf::from(version::dir_name(v.number))) }
    }

    /// The store watched.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `Some(version)` when `current` points elsewhere than at the last
    /// report, `None` otherwise (also when `current` has disappeared).
    /// On an error nothing counts as seen, so the next poll tries again.
    pub fn poll(&mut self) -> Result<Option<Version>, DeployError> {
        let target = self.store.current_target()?;
        if target == self.seen {
            return Ok(None);
        }
        let version = match &target {
            Some(target) => Some(self.store.version_at(target)?),
            None => None,
        };
        self.seen = target;
        Ok(version)
    }
}
