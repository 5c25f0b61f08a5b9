//! The compiled-code cache: `{cache_dir}/{sha256}-{engine hash}.cwasm`.
//!
//! Compiling a component takes tens of milliseconds per 100 KB; loading its
//! serialized form takes a fraction of one. An entry is named by the hash of
//! the component bytes and of the engine's settings, so it can only be
//! reused by an engine that produces identical code for identical input.
//!
//! An entry becomes executable code, so the cache is used only while its
//! directory and the entry are this user's own and nobody else may write
//! them: another local user who could plant an entry would run native code
//! in the host. Otherwise the plugin is compiled, as without a cache.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache file of a component.
pub fn entry_path(dir: &Path, sha256: &str, compat_hash: &str) -> PathBuf {
    dir.join(format!("{sha256}-{compat_hash}.cwasm"))
}

/// Loads a cached entry; `None` when it is absent or unusable (a corrupt
/// or foreign entry is recompiled, not fatal).
///
/// The entry is read into memory rather than mapped with
/// `Component::deserialize_file`: a mapped file that someone truncates or
/// rewrites in place kills the process with SIGBUS the next time a page of
/// it is touched, and the copy costs about a millisecond per megabyte.
pub fn load(engine: &Engine, path: &Path) -> Option<Component> {
    if let Err(reason) = private(path.parent().unwrap_or(Path::new("."))).and_then(|()| private_file(path)) {
        if path.exists() {
            tracing::warn!(path = %path.display(), "not using the compiled-code cache: {reason}");
        }
        return None;
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!(path = %path.display(), "cannot read compiled-code cache entry: {err}");
            return None;
        }
    };
    let Some(code) = verified(&bytes) else {
        tracing::warn!(path = %path.display(), "ignoring corrupt compiled-code cache entry (checksum mismatch)");
        return None;
    };
    // SAFETY: `deserialize` trusts its input to be wasmtime's own
    // serialization, since it becomes executable code. `code` is exactly what
    // `Component::serialize` wrote into the host's private cache directory:
    // the SHA-256 trailer rules out truncation and bit rot, and wasmtime
    // itself still checks the header, its version and the engine settings.
    match unsafe { Component::deserialize(engine, code) } {
        Ok(component) => Some(component),
        Err(err) => {
            tracing::warn!(path = %path.display(), "ignoring unusable compiled-code cache entry: {err:#}");
            None
        }
    }
}

/// The serialized component of an entry whose trailer (SHA-256 of the rest)
/// matches.
fn verified(entry: &[u8]) -> Option<&[u8]> {
    let split = entry.len().checked_sub(TRAILER)?;
    let (code, trailer) = entry.split_at(split);
    (Sha256::digest(code).as_slice() == trailer).then_some(code)
}

/// Length of the checksum trailer.
const TRAILER: usize = 32;

/// Stores a compiled component. Failures are logged: the cache only saves
/// time, it never decides whether a plugin loads.
pub fn store(component: &Component, path: &Path) {
    if let Err(err) = try_store(component, path) {
        tracing::warn!(path = %path.display(), "cannot write compiled-code cache entry: {err:#}");
    }
}

/// Why a cache entry could not be written.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("serializing the component: {0}")]
    Serialize(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    NotPrivate(String),
}

/// `Ok` if `dir` belongs to this user and no one else may write to it.
fn private(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    owned_and_unshared(&meta, dir)
}

/// `Ok` if the entry `path` (if it exists) belongs to this user and no one
/// else may write to it.
fn private_file(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(format!("{} is a symbolic link", path.display())),
        Ok(meta) => owned_and_unshared(&meta, path),
        Err(_) => Ok(()),
    }
}

fn owned_and_unshared(meta: &std::fs::Metadata, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("{} belongs to uid {}, not to this user (uid {me})", path.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{} may be written by others (mode {:o})", path.display(), meta.mode() & 0o7777));
    }
    Ok(())
}

fn try_store(component: &Component, path: &Path) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bytes = component.serialize().map_err(|e| StoreError::Serialize(format!("{e:#}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    private(dir).map_err(StoreError::NotPrivate)?;
    // A unique temporary name per process and call: concurrent writers of
    // the same entry each rename a complete file, and the last one wins.
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.write_all(&Sha256::digest(&bytes))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A real component (the smallest there is) compiled by a real engine.
    fn component(engine: &Engine) -> Component {
        Component::new(engine, "(component)").expect("an empty component compiles")
    }

    #[test]
    fn entries_are_used_only_from_a_private_directory() {
        let engine = Engine::default();
        let root = tempfile::tempdir().expect("a temporary directory");
        let dir = root.path().join("compiled");
        let path = entry_path(&dir, "abc", "def");
        store(&component(&engine), &path);
        let mode = std::fs::metadata(&dir).expect("created").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the cache directory is created private");
        assert!(load(&engine, &path).is_some(), "a private entry is used");

        // Someone else could have written it: compile instead.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(load(&engine, &path).is_none(), "an entry in a world-writable directory is not trusted");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(load(&engine, &path).is_none(), "a world-writable entry is not trusted");
    }

    #[test]
    fn nothing_is_written_into_a_shared_directory() {
        let engine = Engine::default();
        let root = tempfile::tempdir().expect("a temporary directory");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let path = entry_path(root.path(), "abc", "def");
        store(&component(&engine), &path);
        assert!(!path.exists(), "no entry in a directory others may write");
    }
}
