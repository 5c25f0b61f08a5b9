//! The versions of one service's plugin and its `current` pointer.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::fsutil::{self, Lock, TEMP_PREFIX};
use super::version::{self, METADATA_FILE, Metadata, Version, WASM_FILE};
use super::{Checked, DeployError, clock};

/// Name of the symlink to the version a service runs.
const CURRENT: &str = "current";
/// Name of the writers' lock file.
const LOCK: &str = ".lock";

/// The deployment directory of one service, `DIR/SERVICE`.
///
/// Reading needs no lock: versions and `current` only ever appear by rename.
/// Writers ([`install`](Store::install), [`rollback`](Store::rollback)) hold
/// an exclusive lock, so concurrent deploys are serialised, not interleaved.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    service: String,
}

/// What [`Store::install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// A new version, now current; `previous` was current before.
    New { version: Version, previous: Option<Version> },
    /// The current version already has these bytes; nothing changed.
    Unchanged(Version),
}

/// What [`Store::rollback`] did: `current` moved from `from` to `to` (the
/// same version when it was already current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub from: Version,
    pub to: Version,
}

impl Store {
    /// The store of `service` under `dir`. Creates nothing: listing an empty
    /// store is not an error, and only [`install`](Store::install) writes.
    pub fn open(dir: &Path, service: &str) -> Result<Store, DeployError> {
        // The name becomes a path component: `..` or `a/b` must not escape.
        let is_name =
            !service.is_empty() && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !is_name {
            return Err(DeployError::InvalidService(service.to_owned()));
        }
        Ok(Store { root: dir.join(service), service: service.to_owned() })
    }

    /// The service whose versions this store holds.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// `DIR/SERVICE`.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Every installed version, oldest first.
    pub fn versions(&self) -> Result<Vec<Version>, DeployError> {
        let mut versions = Vec::new();
        for number in self.numbers()? {
            versions.push(Version::read(&self.root.join(version::dir_name(number)), number)?);
        }
        Ok(versions)
    }

    /// Version `number`, or [`DeployError::UnknownVersion`].
    pub fn version(&self, number: u32) -> Result<Version, DeployError> {
        let dir = self.root.join(version::dir_name(number));
        if dir.is_dir() {
            return Version::read(&dir, number);
        }
        let available = self.numbers()?.iter().map(|n| format!("v{n}")).collect::<Vec<_>>().join(", ");
        Err(DeployError::UnknownVersion {
            service: self.service.clone(),
            requested: number,
            available: if available.is_empty() { "none".into() } else { available },
        })
    }

    /// The version `current` points to; `None` before the first deploy.
    pub fn current(&self) -> Result<Option<Version>, DeployError> {
        match self.current_target()? {
            Some(target) => self.version_at(&target).map(Some),
            None => Ok(None),
        }
    }

    /// Installs a checked plugin as the next version and makes it current,
    /// unless the current version already has the same bytes.
    ///
    /// The version is written to a temporary directory, synced, and renamed
    /// to `vN`; only then does `current` move. A crash before the rename
    /// leaves a temporary directory that the next writer removes; a crash
    /// between the rename and the move leaves a complete `vN` that is not
    /// current, which `rollback --to N` can still select.
    pub fn install(&self, checked: &Checked) -> Result<Installed, DeployError> {
        let plugin = checked.plugin();
        if plugin.service() != self.service {
            return Err(DeployError::WrongService { expected: self.service.clone(), found: plugin.service().into() });
        }
        std::fs::create_dir_all(&self.root).map_err(DeployError::io("create directory", &self.root))?;
        let _lock = self.lock()?;
        self.remove_temporaries();
        let previous = self.current()?;
        if let Some(current) = previous.as_ref().filter(|v| v.sha256 == plugin.sha256()) {
            return Ok(Installed::Unchanged(current.clone()));
        }
        let number = self.numbers()?.last().map_or(Some(1), |n| n.checked_add(1)).ok_or_else(|| {
            DeployError::Corrupt { path: self.root.clone(), reason: "no version number is left".into() }
        })?;
        let manifest = plugin.manifest();
        let metadata = Metadata {
            version: number,
            sha256: plugin.sha256().to_owned(),
            size: checked.bytes().len() as u64,
            deployed_at: clock::rfc3339(SystemTime::now()),
            service: manifest.service.clone(),
            plugin_version: manifest.version.clone(),
            consumes: manifest.consumes.clone(),
            emits: manifest.emits.clone(),
        };
        let dir = self.root.join(version::dir_name(number));
        self.write_version(&dir, checked.bytes(), &metadata)?;
        fsutil::replace_symlink(Path::new(&version::dir_name(number)), &self.root.join(CURRENT))?;
        Ok(Installed::New { version: Version::read(&dir, number)?, previous })
    }

    /// Points `current` at version `to`, or by default at the highest version
    /// below the current one.
    pub fn rollback(&self, to: Option<u32>) -> Result<Rollback, DeployError> {
        if !self.root.is_dir() {
            return Err(self.nothing_deployed());
        }
        let _lock = self.lock()?;
        let from = self.current()?.ok_or_else(|| self.nothing_deployed())?;
        let to = match to {
            Some(number) => self.version(number)?,
            None => {
                let earlier = self.numbers()?.into_iter().rfind(|&n| n < from.number);
                let number = earlier.ok_or_else(|| DeployError::NoEarlierVersion {
                    service: self.service.clone(),
                    current: from.number,
                })?;
                self.version(number)?
            }
        };
        if to.number != from.number {
            fsutil::replace_symlink(Path::new(&version::dir_name(to.number)), &self.root.join(CURRENT))?;
        }
        Ok(Rollback { from, to })
    }

    /// The raw target of `current` (one `readlink`); `None` when absent.
    pub(crate) fn current_target(&self) -> Result<Option<PathBuf>, DeployError> {
        let link = self.root.join(CURRENT);
        match std::fs::read_link(&link) {
            Ok(target) => Ok(Some(target)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(DeployError::io("read symlink", link)(err)),
        }
    }

    /// The version a `current` target names.
    pub(crate) fn version_at(&self, target: &Path) -> Result<Version, DeployError> {
        let corrupt = |reason: String| DeployError::Corrupt { path: self.root.join(CURRENT), reason };
        let number = target
            .to_str()
            .and_then(version::parse_dir_name)
            .ok_or_else(|| corrupt(format!("points to {}, not to a version directory", target.display())))?;
        let dir = self.root.join(target);
        if !dir.is_dir() {
            return Err(corrupt(format!("points to {}, which does not exist", target.display())));
        }
        Version::read(&dir, number)
    }

    /// Numbers of the version directories, ascending.
    fn numbers(&self) -> Result<Vec<u32>, DeployError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(DeployError::io("list", &self.root)(err)),
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(DeployError::io("list", &self.root))?;
            let number = entry.file_name().to_str().and_then(version::parse_dir_name);
            // Only real directories: `file_type` does not follow symlinks.
            if let Some(number) = number.filter(|_| entry.file_type().is_ok_and(|t| t.is_dir())) {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Writes a complete version directory at `dir` by way of a temporary one.
    fn write_version(&self, dir: &Path, wasm: &[u8], metadata: &Metadata) -> Result<(), DeployError> {
        let temp = self.root.join(fsutil::temp_name("version"));
        let result = (|| {
            std::fs::create_dir(&temp).map_err(DeployError::io("create directory", &temp))?;
            fsutil::write_synced(&temp.join(WASM_FILE), wasm)?;
            let json = serde_json::to_vec_pretty(metadata).map_err(|e| DeployError::Corrupt {
                path: temp.join(METADATA_FILE),
                reason: format!("cannot encode metadata: {e}"),
            })?;
            fsutil::write_synced(&temp.join(METADATA_FILE), &json)?;
            fsutil::sync_dir(&temp)?;
            std::fs::rename(&temp, dir).map_err(DeployError::io("rename into place", dir))?;
            fsutil::sync_dir(&self.root)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        result
    }

    /// Removes what crashed writers left behind. Only called under the lock,
    /// when no other writer can be mid-way.
    fn remove_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(|name| name.starts_with(TEMP_PREFIX)) {
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let removed = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                if let Err(err) = removed {
                    tracing::warn!(path = %path.display(), "cannot remove a leftover of an earlier deploy: {err}");
                }
            }
        }
    }

    fn lock(&self) -> Result<Lock, DeployError> {
        Lock::acquire(&self.root.join(LOCK))
    }

    fn nothing_deployed(&self) -> DeployError {
        DeployError::NothingDeployed {
            service: self.service.clone(),
            dir: self.root.parent().unwrap_or(&self.root).to_owned(),
        }
    }
}
