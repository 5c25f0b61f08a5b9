//! Hot swap: a newly deployed version replaces the running plugin at a
//! transaction boundary (the versions arrive from [`super::Reloader`]).

use rdkafka::consumer::BaseConsumer;

use super::identity::check_manifest;
use super::rebalance::RunnerContext;
use super::{RunnerError, Worker};
use crate::plugin::LoadedPlugin;

impl Worker {
    /// Swaps in a newly deployed version at a transaction boundary: what
    /// the open transaction handled commits on the old version first, and
    /// the state carries over unchanged. A version that failed to compile
    /// or instantiate is logged and the old one keeps running.
    pub(super) fn swap(
        &mut self,
        consumer: &BaseConsumer<RunnerContext>,
        version: crate::deploy::Version,
        loaded: Result<LoadedPlugin, String>,
    ) -> Result<(), RunnerError> {
        let plugin = match loaded {
            Ok(plugin) => plugin,
            Err(reason) => {
                tracing::error!(version = version.number, %reason, running = %self.plugin_version, "new plugin version rejected; keeping the running one");
                self.metrics.reloaded(false);
                return Ok(());
            }
        };
        let mut consumes = plugin.manifest().consumes.clone();
        consumes.sort();
        let fits = check_manifest(plugin.manifest(), &self.identity, &self.topology).and_then(|()| {
            if consumes == self.consumes {
                Ok(())
            } else {
                Err(RunnerError::InputsChanged {
                    version: version.number,
                    running: self.consumes.clone(),
                    found: consumes,
                })
            }
        });
        if let Err(err) = fits {
            tracing::error!(version = version.number, error = %err, running = %self.plugin_version, "new plugin version rejected; keeping the running one");
            self.metrics.reloaded(false);
            return Ok(());
        }
        self.commit(consumer)?;
        let old = std::mem::replace(&mut self.plugin_version, plugin.manifest().version.clone());
        match self.instance.reload(&plugin) {
            Ok(()) => {
                let from = self.deployment.map_or_else(|| "?".into(), |n| format!("v{n}"));
                tracing::info!(
                    from = %format!("{from} (plugin {old})"),
                    to = %format!("v{} (plugin {})", version.number, self.plugin_version),
                    sha256 = %version.sha256,
                    "plugin reloaded");
                self.deployment = Some(version.number);
                self.metrics.reloaded(true);
            }
            Err(err) => {
                tracing::error!(version = version.number, error = %err, running = %old, "new plugin version rejected; keeping the running one");
                self.plugin_version = old;
                self.metrics.reloaded(false);
            }
        }
        Ok(())
    }
}
