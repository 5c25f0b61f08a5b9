//! Which instance of which service a runner is, and whether a plugin may
//! run as it.

use super::RunnerError;
use crate::config::Config;
use crate::naming;
use crate::topology::Topology;

/// Which instance of which service to run.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service: String,
    pub event_id: u64,
    pub group_id: String,
    pub instance_id: String,
    pub transactional_id: String,
}

impl Identity {
    /// The identity from configuration (DOMAIN.md §2 names unless overridden).
    pub fn from_config(config: &Config, service: &str, event_id: u64) -> Self {
        let s = &config.service;
        let instance_id = s.consumer_instance_id.clone();
        let producer_instance = s.producer_instance_id.clone().unwrap_or_else(|| instance_id.clone());
        Identity {
            service: service.to_owned(),
            event_id,
            group_id: s.group_id.clone().unwrap_or_else(|| naming::consumer_group(event_id, service)),
            transactional_id: naming::transactional_id(service, event_id, &producer_instance),
            instance_id,
        }
    }
}

/// A plugin may run as a service only if its manifest names the service and
/// fits the topology (see [`Topology::check`]).
pub(super) fn check_manifest(
    manifest: &crate::plugin::Manifest,
    identity: &Identity,
    topology: &Topology,
) -> Result<(), RunnerError> {
    if manifest.service != identity.service {
        return Err(RunnerError::WrongService {
            service: identity.service.clone(),
            plugin_service: manifest.service.clone(),
        });
    }
    topology.check(manifest)?;
    Ok(())
}
