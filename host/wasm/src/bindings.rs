//! Generated bindings of the `turnstile:plugin@0.3.0` world and the host side
//! of its imports (`state` and `log`).

use super::instance::HostState;
use super::state::StateAccess;

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../../wit",
});

pub use self::turnstile::plugin::types;

impl<S: StateAccess> turnstile::plugin::types::Host for HostState<S> {}

impl<S: StateAccess> turnstile::plugin::state::Host for HostState<S> {
    fn get(&mut self, key: Vec<u8>) -> Option<Vec<u8>> {
        self.state.get(&key)
    }
}

impl<S: StateAccess> turnstile::plugin::log::Host for HostState<S> {
    fn log(&mut self, level: turnstile::plugin::log::Level, mut message: String) {
        use self::turnstile::plugin::log::Level;
        let Some(allowed) = self.admit_log(message.len()) else { return };
        if allowed < message.len() {
            let mut end = allowed;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [truncated]");
        }
        let service: &str = &self.service;
        let message = super::loggable(&message);
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

#[cfg(test)]
mod tests {
    /// The SDK ships its own copy of the world (so a plugin outside this
    /// repository builds); it must be this one, byte for byte.
    #[test]
    fn the_sdk_embeds_this_world() {
        assert_eq!(include_str!("../../../plugins/sdk/wit/plugin.wit"), include_str!("../../../wit/plugin.wit"));
    }
}
