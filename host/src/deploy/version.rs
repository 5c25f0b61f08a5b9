//! One installed version: its directory name and its `metadata.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DeployError;

/// File name of the component inside a version directory.
pub const WASM_FILE: &str = "plugin.wasm";
/// File name of the metadata inside a version directory.
pub const METADATA_FILE: &str = "metadata.json";

/// An installed version of a service's plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// 1, 2, …: the `N` of the `vN` directory, in deployment order.
    pub number: u32,
    /// The component to load.
    pub path_to_wasm: PathBuf,
    /// Lowercase hex SHA-256 of the component.
    pub sha256: String,
    /// The plugin's own version, from its manifest.
    pub plugin_version: String,
    /// When it was installed, RFC 3339 UTC.
    pub deployed_at: String,
    /// Size of the component in bytes.
    pub size: u64,
}

/// The contents of `metadata.json`. Unknown fields are ignored so that an
/// older host can still list versions a newer one installed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    pub version: u32,
    pub sha256: String,
    pub size: u64,
    pub deployed_at: String,
    pub service: String,
    pub plugin_version: String,
    pub consumes: Vec<String>,
    pub emits: Vec<String>,
}

/// The directory name of version `number`.
pub fn dir_name(number: u32) -> String {
    format!("v{number}")
}

/// The number of a directory name written by [`dir_name`]. Only the
/// canonical spelling counts (`v7`, not `v07`), so that number and name map
/// one to one.
pub fn parse_dir_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('v')?;
    let canonical = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    canonical.then(|| digits.parse().ok()).flatten()
}

impl Version {
    /// Reads version `number` from its directory `dir`.
    pub(crate) fn read(dir: &Path, number: u32) -> Result<Version, DeployError> {
        let path = dir.join(METADATA_FILE);
        let text = std::fs::read(&path).map_err(DeployError::io("read", &path))?;
        let meta: Metadata = serde_json::from_slice(&text)
            .map_err(|e| DeployError::Corrupt { path: path.clone(), reason: format!("unreadable metadata: {e}") })?;
        if meta.version != number {
            return Err(DeployError::Corrupt {
                path,
                reason: format!("metadata of version {} in the directory of version {number}", meta.version),
            });
        }
        Ok(Version {
            number,
            path_to_wasm: dir.join(WASM_FILE),
            sha256: meta.sha256,
            plugin_version: meta.plugin_version,
            deployed_at: meta.deployed_at,
            size: meta.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names() {
        assert_eq!(parse_dir_name(&dir_name(42)), Some(42));
        for bad in ["v", "v0", "v07", "7", "v1a", "v-1", "v99999999999", ".tmp-v1", "current"] {
            assert_eq!(parse_dir_name(bad), None, "{bad}");
        }
    }
}
