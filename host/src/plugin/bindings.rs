//! Generated bindings of the `turnstile:plugin@0.1.0` world and the host side
//! of its imports (`state` and `log`).

use super::instance::HostState;
use super::state::StateAccess;

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
});

pub use self::turnstile::plugin::types;

impl<S: StateAccess> turnstile::plugin::types::Host for HostState<S> {}

impl<S: StateAccess> turnstile::plugin::state::Host for HostState<S> {
    fn get(&mut self, key: Vec<u8>) -> Option<Vec<u8>> {
        self.get(&key)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.put(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.delete(key);
    }
}

impl<S: StateAccess> turnstile::plugin::log::Host for HostState<S> {
    fn log(&mut self, level: turnstile::plugin::log::Level, message: String) {
        use self::turnstile::plugin::log::Level;
        let service: &str = &self.service;
        match level {
            Level::Trace => {
                tracing::trace!(target: "turnstile::plugin::guest", service, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "turnstile::plugin::guest", service, "{message}")
            }
            Level::Info => tracing::info!(target: "turnstile::plugin::guest", service, "{message}"),
            Level::Warn => tracing::warn!(target: "turnstile::plugin::guest", service, "{message}"),
            Level::Error => {
                tracing::error!(target: "turnstile::plugin::guest", service, "{message}")
            }
        }
    }
}
