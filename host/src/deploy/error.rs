//! Why a deployment, listing or rollback failed.

use std::path::PathBuf;

use crate::plugin::PluginError;

/// A failed store operation. Whatever the variant, `current` is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The component is not a plugin this host would run.
    #[error("plugin refused: {0}")]
    Refused(#[from] PluginError),
    /// The component is a plugin, but of another service.
    #[error("plugin refused: its manifest names service `{found}`, not `{expected}`")]
    WrongService { expected: String, found: String },
    /// The plugin does not fit the event topology (`[[topology.topics]]`).
    #[error("plugin refused: {0}")]
    OffTopology(#[from] crate::topology::TopologyError),
    /// A service name that cannot safely be a directory name.
    #[error("invalid service name {0:?}: expected a lowercase name like `seat-reservation-service`")]
    InvalidService(String),
    /// A rollback to a version that does not exist.
    #[error("{service} has no version {requested} (deployed: {available})")]
    UnknownVersion { service: String, requested: u32, available: String },
    /// A rollback with nothing deployed.
    #[error("nothing of {service} is deployed in {dir}")]
    NothingDeployed { service: String, dir: PathBuf },
    /// A rollback from the oldest version.
    #[error("{service} v{current} is the oldest version: there is nothing to roll back to")]
    NoEarlierVersion { service: String, current: u32 },
    /// The store holds something it never writes (edited by hand?).
    #[error("corrupt plugin store: {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The file system failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DeployError {
    /// Whether the request was refused (a bad plugin, service or version)
    /// rather than the store failing to carry it out.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DeployError::Refused(_)
                | DeployError::WrongService { .. }
                | DeployError::OffTopology(_)
                | DeployError::InvalidService(_)
                | DeployError::UnknownVersion { .. }
                | DeployError::NothingDeployed { .. }
                | DeployError::NoEarlierVersion { .. }
        )
    }

    /// A mapper for `map_err` naming the failed action and its path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DeployError {
        let path = path.into();
        move |source| DeployError::Io { action, path, source }
    }
}
