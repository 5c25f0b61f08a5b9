//! Loading a plugin: check, compile (or fetch from the cache), link against
//! the world, and read its manifest once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};

use super::bindings::{Plugin, PluginPre};
use super::engine::{EngineInner, PluginEngine};
use super::instance::{HostState, new_store};
use super::state::{MemoryState, StateAccess};
use super::{Manifest, PluginError, cache, validate};

/// A checked, compiled plugin with its manifest. Cheap to clone; create any
/// number of [`PluginInstance`](super::PluginInstance)s from it.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub(crate) inner: Arc<LoadedInner>,
}

pub(crate) struct LoadedInner {
    pub(crate) engine: PluginEngine,
    pub(crate) component: Component,
    pub(crate) manifest: Manifest,
    /// Shared with every store, for the `service` field of guest logs.
    pub(crate) service: Arc<str>,
    sha256: String,
    size: usize,
    from_cache: bool,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("manifest", &self.inner.manifest)
            .field("sha256", &self.inner.sha256)
            .field("size", &self.inner.size)
            .field("from_cache", &self.inner.from_cache)
            .finish()
    }
}

impl LoadedPlugin {
    /// What the plugin said it is at load time.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The service the plugin implements (from its manifest).
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Lowercase hex SHA-256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Whether the compiled code came from the cache instead of the compiler.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// The engine the plugin was compiled for.
    pub fn engine(&self) -> &PluginEngine {
        &self.inner.engine
    }

    /// Links the plugin against a store holding `S`. Type mismatches with the
    /// world surface here.
    pub(crate) fn pre<S: StateAccess>(&self) -> Result<PluginPre<HostState<S>>, PluginError> {
        pre_for(&self.inner.engine.inner, &self.inner.component)
    }
}

fn pre_for<S: StateAccess>(
    engine: &EngineInner,
    component: &Component,
) -> Result<PluginPre<HostState<S>>, PluginError> {
    let mut linker: Linker<HostState<S>> = Linker::new(&engine.engine);
    Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
    let pre = linker.instantiate_pre(component).map_err(|e| PluginError::Incompatible(format!("{e:#}")))?;
    PluginPre::new(pre).map_err(|e| PluginError::Incompatible(format!("{e:#}")))
}

impl PluginEngine {
    /// Reads and loads a plugin file.
    pub fn load_file(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.to_owned(), source })?;
        self.load_bytes(&bytes)
    }

    /// Loads a plugin from the bytes of a component: checks it, compiles it
    /// (or reuses the compiled-code cache), links it against the world and
    /// calls `manifest` once.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<LoadedPlugin, PluginError> {
        let engine = &self.inner;
        let max = engine.settings.limits.max_component_bytes;
        if bytes.len() > max {
            return Err(PluginError::TooLarge { size: bytes.len(), max });
        }
        validate::check_header(bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let cache_path =
            engine.settings.cache_dir.as_deref().map(|dir| cache::entry_path(dir, &sha256, &engine.compat_hash));
        let started = Instant::now();
        let cached = cache_path.as_deref().and_then(|p| cache::load(&engine.engine, p));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => compile(&engine.engine, bytes, engine.settings.limits.max_compile)?,
        };
        validate::check_component(&engine.engine, &component)?;
        let pre = pre_for::<MemoryState>(engine, &component)?;
        let manifest = read_manifest(engine, &pre)?;
        // Only cache what loaded: a refused plugin must be refused again.
        if let (false, Some(path)) = (from_cache, cache_path.as_deref()) {
            cache::store(&component, path);
        }
        tracing::debug!(
            service = %manifest.service,
            version = %manifest.version,
            sha256 = %sha256,
            from_cache,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "plugin loaded"
        );
        Ok(LoadedPlugin {
            inner: Arc::new(LoadedInner {
                engine: self.clone(),
                component,
                service: Arc::from(manifest.service.as_str()),
                manifest,
                sha256,
                size: bytes.len(),
                from_cache,
            }),
        })
    }
}

/// Compiles on a thread of its own, waiting at most `limit`. Cranelift
/// cannot be interrupted, so a compile over the limit is abandoned: it
/// finishes in the background (its cost bounded by
/// `plugin.max_component_bytes`) and is dropped, while the caller refuses
/// the plugin at once and a running host keeps its old one.
fn compile(engine: &wasmtime::Engine, bytes: &[u8], limit: Duration) -> Result<Component, PluginError> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let (engine, bytes) = (engine.clone(), bytes.to_vec());
    std::thread::Builder::new()
        .name("plugin-compile".into())
        .spawn(move || {
            let compiled = Component::from_binary(&engine, &bytes).map_err(|e| PluginError::Compile(format!("{e:#}")));
            // The receiver is gone when the caller gave up waiting.
            let _ = done.send(compiled);
        })
        .map_err(|e| PluginError::Compile(format!("cannot start the compiler thread: {e}")))?;
    match result.recv_timeout(limit) {
        Ok(compiled) => compiled,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(PluginError::CompileTimeout { limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX) })
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(PluginError::Compile("the compiler thread stopped without an answer".into()))
        }
    }
}

fn read_manifest(engine: &EngineInner, pre: &PluginPre<HostState<MemoryState>>) -> Result<Manifest, PluginError> {
    let mut store = new_store(engine, HostState::new(MemoryState::new(), Arc::from("(loading)"), engine));
    let plugin = pre.instantiate(&mut store).map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
    let m = plugin
        .call_manifest(&mut store)
        .map_err(|e| PluginError::Manifest(format!("calling `manifest` failed: {e:#}")))?;
    let limits = &engine.settings.limits;
    let max = limits.max_manifest_string_bytes;
    if let Some(long) = [&m.service, &m.version].into_iter().chain(&m.consumes).chain(&m.emits).find(|s| s.len() > max)
    {
        return Err(PluginError::Manifest(format!(
            "a manifest string of {} bytes (starting {:?}) exceeds plugin.max_manifest_string_bytes ({max})",
            long.len(),
            long.chars().take(32).collect::<String>()
        )));
    }
    for (what, list) in [("consumes", &m.consumes), ("emits", &m.emits)] {
        if list.len() > limits.max_manifest_actions {
            return Err(PluginError::Manifest(format!(
                "the manifest {what} {} actions, more than plugin.max_manifest_actions ({})",
                list.len(),
                limits.max_manifest_actions
            )));
        }
    }
    let is_name =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !is_name(&m.service) {
        return Err(PluginError::Manifest(format!(
            "service {:?} is not a lowercase name like `seat-reservation-service`",
            m.service
        )));
    }
    if let Some(bad) = m.consumes.iter().chain(&m.emits).find(|a| !is_name(a)) {
        return Err(PluginError::Manifest(format!("action {bad:?} is not a lowercase name")));
    }
    Ok(Manifest { service: m.service, version: m.version, consumes: m.consumes, emits: m.emits })
}
