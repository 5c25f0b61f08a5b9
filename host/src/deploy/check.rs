//! The gate in front of a store: only a component that loads as a plugin of
//! the right service, fitting the topology, can be installed.

use crate::plugin::{LoadedPlugin, PluginEngine};
use crate::topology::Topology;

use super::DeployError;

/// A component that passed [`check`]: it loaded in the host's engine and its
/// manifest names the service. Only `check` makes one, so that
/// [`Store::install`](super::Store::install) cannot be handed unchecked bytes.
pub struct Checked {
    plugin: LoadedPlugin,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked").field("plugin", &self.plugin).finish_non_exhaustive()
    }
}

impl Checked {
    /// The loaded plugin (manifest, sha256, size).
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    /// The component bytes, as they will be installed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Loads `bytes` with `engine` and requires its manifest to name `service`
/// and to fit `topology` (every consumed action has a topic, every emitted
/// one a topic from the service).
///
/// Loading is the whole check: the engine refuses anything but a component
/// of the plugin world (naming the offending import or missing export) and
/// calls `manifest`. It also compiles the component for this host and, when
/// the engine has a cache directory, stores the compiled code there keyed by
/// sha256 and engine, so that services starting from the installed version
/// skip the compiler.
pub fn check(
    engine: &PluginEngine,
    bytes: Vec<u8>,
    service: &str,
    topology: &Topology,
) -> Result<Checked, DeployError> {
    let plugin = engine.load_bytes(&bytes)?;
    if plugin.service() != service {
        return Err(DeployError::WrongService { expected: service.to_owned(), found: plugin.service().to_owned() });
    }
    topology.check(plugin.manifest())?;
    Ok(Checked { plugin, bytes })
}
