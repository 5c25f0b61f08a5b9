//! Hot reload: watch a deployment's `current` pointer, compile a new version
//! off the processing thread, and hand it over when it is ready. The runner
//! swaps it in at a transaction boundary.

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use crate::deploy::{Version, Watcher};
use crate::plugin::{LoadedPlugin, PluginEngine};

/// How often `current` is checked: one `readlink` each time.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A compiled version ready to swap in, or why it was rejected.
pub type Ready = (Version, Result<LoadedPlugin, String>);

/// A finished compile, numbered in the order the versions were seen.
type Compiled = (u64, Ready);

/// Watches a deployment and compiles new versions in the background.
pub struct Reloader {
    engine: PluginEngine,
    watcher: Watcher,
    last_poll: Instant,
    /// Number of the latest version seen; compiles finish in any order, and
    /// only the latest may be swapped in (a rollback during a slow compile
    /// must win).
    latest: u64,
    sender: Sender<Compiled>,
    receiver: Receiver<Compiled>,
}

impl Reloader {
    /// Watches `watcher`'s store; versions already seen by it are not reloaded.
    pub fn new(engine: PluginEngine, watcher: Watcher) -> Self {
        let (sender, receiver) = mpsc::channel();
        Reloader { engine, watcher, last_poll: Instant::now(), latest: 0, sender, receiver }
    }

    /// Starts compiling a new `current` if there is one, and returns a
    /// version whose compilation has finished. Never blocks on compilation.
    pub fn poll(&mut self) -> Option<Ready> {
        if self.last_poll.elapsed() >= POLL_INTERVAL {
            self.last_poll = Instant::now();
            match self.watcher.poll() {
                Ok(Some(version)) => self.compile(version),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "cannot read the deployment's current version"),
            }
        }
        while let Ok((generation, ready)) = self.receiver.try_recv() {
            if generation == self.latest {
                return Some(ready);
            }
            tracing::info!(version = ready.0.number, "discarding a compiled version superseded while it compiled");
        }
        None
    }

    fn compile(&mut self, version: Version) {
        self.latest += 1;
        let generation = self.latest;
        tracing::info!(version = version.number, sha256 = %version.sha256, "new plugin version deployed; compiling");
        let engine = self.engine.clone();
        let sender = self.sender.clone();
        let spawned = std::thread::Builder::new().name("plugin-compile".into()).spawn(move || {
            let loaded = engine.load_file(&version.path_to_wasm).map_err(|e| e.to_string());
            // The runner may have stopped meanwhile; then nobody needs it.
            let _ = sender.send((generation, (version, loaded)));
        });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the compile thread; keeping the running version");
        }
    }
}
