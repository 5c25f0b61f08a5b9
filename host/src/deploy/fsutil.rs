//! The file-system steps that make the store crash- and race-safe.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::DeployError;

/// Prefix of everything a writer creates before renaming it into place.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A fresh temporary name in the store directory: unique per process and
/// call, and hidden from the version listing by its leading dot.
pub fn temp_name(what: &str) -> String {
    format!("{TEMP_PREFIX}{what}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// An exclusive lock on the store, held until dropped.
///
/// `flock(2)` rather than a `create_new` lock file: the kernel releases it
/// when the holder dies, so a crashed deploy leaves no stale lock, and it
/// belongs to the open file description, so it excludes threads of one
/// process as well as other processes.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Blocks until the lock at `path` (created if absent) is ours.
    pub fn acquire(path: &Path) -> Result<Lock, DeployError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(DeployError::io("open lock file", path))?;
        loop {
            // SAFETY: flock on a descriptor that `file` owns and keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(DeployError::io("lock", path)(err));
            }
        }
    }
}

/// Creates `path` with `bytes` and flushes it to disk, so that the rename
/// publishing it cannot reach the disk before its contents.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
    let mut file = File::options().create_new(true).write(true).open(path).map_err(DeployError::io("create", path))?;
    file.write_all(bytes).map_err(DeployError::io("write", path))?;
    file.sync_all().map_err(DeployError::io("sync", path))
}

/// Flushes a directory's entries (a rename or creation inside it).
pub fn sync_dir(path: &Path) -> Result<(), DeployError> {
    File::open(path).and_then(|dir| dir.sync_all()).map_err(DeployError::io("sync directory", path))
}

/// Replaces the symlink `link` with one to `target` atomically: a fresh link
/// under a temporary name renamed over the old one. A reader resolving
/// `link` meanwhile sees the old target or the new, never nothing.
pub fn replace_symlink(target: &Path, link: &Path) -> Result<(), DeployError> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let temp = dir.join(temp_name("current"));
    let result = std::os::unix::fs::symlink(target, &temp)
        .map_err(DeployError::io("create symlink", &temp))
        .and_then(|()| std::fs::rename(&temp, link).map_err(DeployError::io("rename symlink to", link)))
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
