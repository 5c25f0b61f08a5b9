//! The one wasmtime [`Engine`] of a process and its epoch ticker.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;
use super::PluginLimits;

/// How the engine runs plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Per-message deadline; a guest past it is interrupted.
    pub deadline: Duration,
    /// Linear-memory cap per instance, in bytes.
    pub memory_limit: usize,
    /// How often the epoch advances: the granularity of the deadline.
    pub epoch_tick: Duration,
    /// Size of the pooling allocator in instances; `None` allocates on demand.
    /// Pooling halves instantiation time (which a trap or hot swap pays) but
    /// caps how many instances may be alive at once.
    pub pool_instances: Option<u32>,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// What one message may cost the host beyond memory and time.
    pub limits: PluginLimits,
    /// Tell `perf` the names of compiled plugin functions (`/tmp/perf-PID.map`).
    pub perf_map: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            deadline: Duration::from_secs(1),
            memory_limit: 64 << 20,
            epoch_tick: Duration::from_millis(5),
            pool_instances: Some(256),
            cache_dir: None,
            limits: PluginLimits::default(),
            perf_map: false,
        }
    }
}

/// A configured engine with its epoch ticker. Cheap to clone; the ticker
/// thread stops once the engine and everything compiled by it are gone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) engine: Engine,
    pub(crate) settings: EngineSettings,
    /// Epoch ticks a message may run: the deadline rounded up, plus one tick
    /// because the first may end at once.
    pub(crate) deadline_ticks: u64,
    /// Identifies the engine's code-generation settings in cache file names.
    pub(crate) compat_hash: String,
    pub(crate) pooling: bool,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("settings", &self.inner.settings)
            .field("pooling", &self.inner.pooling)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(settings: EngineSettings) -> Result<Self, PluginError> {
        if settings.epoch_tick.is_zero() {
            return Err(PluginError::Engine("the epoch tick must be positive".into()));
        }
        let (engine, pooling) = match settings.pool_instances {
            Some(instances) => match Engine::new(&engine_config(&settings, Some(instances))) {
                Ok(engine) => (engine, true),
                // Pooling reserves address space up front; where that is not
                // allowed, run slower rather than not at all.
                Err(err) => {
                    tracing::warn!("pooling allocator unavailable, allocating on demand: {err}");
                    (new_engine(&settings, None)?, false)
                }
            },
            None => (new_engine(&settings, None)?, false),
        };
        let tick = settings.epoch_tick.as_nanos().max(1);
        let deadline_ticks =
            u64::try_from(settings.deadline.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX - 1).max(1) + 1;
        let compat_hash = compat_hash(&engine);
        start_ticker(&engine, settings.epoch_tick)?;
        Ok(PluginEngine { inner: Arc::new(EngineInner { engine, settings, deadline_ticks, compat_hash, pooling }) })
    }

    /// The settings the engine was built with.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.inner.pooling
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &Engine {
        &self.inner.engine
    }
}

fn new_engine(settings: &EngineSettings, pool: Option<u32>) -> Result<Engine, PluginError> {
    Engine::new(&engine_config(settings, pool)).map_err(|e| PluginError::Engine(format!("{e:#}")))
}

fn engine_config(settings: &EngineSettings, pool: Option<u32>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Epochs cost a load and compare per loop header; fuel costs more (NOTES).
    config.epoch_interruption(true);
    // The async machinery costs on every call even when unused (NOTES).
    config.concurrency_support(false);
    if settings.perf_map {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(instances) = pool {
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(instances)
            // A no_std plugin has one core instance and one memory; leave
            // room for components that embed a few adapter modules.
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(2))
            .max_memory_size(settings.memory_limit)
            // Keep slots warm: reinstantiation after a trap is then a reset.
            .max_unused_warm_slots(instances.min(16));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}

/// A stable hex digest of the engine's compatibility hash (wasmtime version,
/// target and compiler settings), so that a cache entry compiled by a
/// different engine is never even opened.
fn compat_hash(engine: &Engine) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

fn start_ticker(engine: &Engine, tick: Duration) -> Result<(), PluginError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))
}
