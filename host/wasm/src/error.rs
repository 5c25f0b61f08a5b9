//! Errors of the plugin runtime.

use std::path::PathBuf;

use super::WORLD;

/// Why a plugin could not be loaded, instantiated or set up. Every variant
/// names the problem so that an operator can fix the plugin, not the host.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The component is larger than `plugin.max_component_bytes`.
    #[error("the component is {size} bytes, more than plugin.max_component_bytes ({max})")]
    TooLarge { size: usize, max: usize },
    /// The bytes do not start with the WebAssembly magic.
    #[error("not a WebAssembly binary: {0}")]
    NotWasm(String),
    /// A core module where a component is required.
    #[error(
        "a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// Compiling took longer than `plugin.max_compile_ms`.
    #[error("compiling the component took longer than plugin.max_compile_ms ({limit_ms} ms)")]
    CompileTimeout { limit_ms: u64 },
    /// The component failed to validate or compile.
    #[error("cannot compile the component: {0}")]
    Compile(String),
    /// The component imports something the plugin world does not provide.
    #[error(
        "the component imports `{import}`, which the {WORLD} world does not provide (a plugin may import \
         only {allowed})"
    )]
    ForbiddenImport { import: String, allowed: String },
    /// The component was built against another version of the world.
    #[error(
        "the plugin was built against turnstile:plugin@{found} (it imports `{import}`), but this host implements \
         {WORLD}: rebuild it against this host's wit/plugin.wit"
    )]
    WorldVersion { found: String, import: String },
    /// The component does not export a function of the world.
    #[error("the component does not export `{0}` (a plugin must export `handle`, `route` and `manifest`)")]
    MissingExport(String),
    /// Imports or exports have the right names but the wrong types.
    #[error("the component does not match the {WORLD} world: {0}")]
    Incompatible(String),
    /// Instantiation failed (start function trapped, resources exhausted).
    #[error("cannot instantiate the plugin: {0}")]
    Instantiate(String),
    /// Calling `manifest` at load time failed or returned nonsense.
    #[error("the plugin's manifest is unusable: {0}")]
    Manifest(String),
    /// The engine could not be configured or started.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// Why one message could not be handled. Only the message fails: after a
/// [`Trap`](HandleError::Trap) or [`Timeout`](HandleError::Timeout) the
/// instance has already been replaced by a fresh one holding the same state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// The plugin called the message poison: dead-letter it.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The plugin reported a passing condition: retry, then dead-letter.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The guest trapped (including running out of its memory limit).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The guest ran past its deadline and was interrupted.
    #[error("plugin exceeded its deadline of {0} ms")]
    Timeout(u64),
    /// The message made the plugin exceed a `[plugin]` limit (state write
    /// budget, key or value size, output count or size); the reason names it.
    #[error("plugin limit exceeded: {0}")]
    Limit(String),
    /// A previous failure left no usable instance and re-instantiation failed
    /// again; the message was not handed to the plugin.
    #[error("plugin unavailable: {0}")]
    Unavailable(String),
}

impl HandleError {
    /// A short machine-readable name: `invalid`, `transient`, `trap`,
    /// `timeout`, `limit` or `unavailable`.
    pub fn kind(&self) -> &'static str {
        match self {
            HandleError::Invalid(_) => "invalid",
            HandleError::Transient(_) => "transient",
            HandleError::Trap(_) => "trap",
            HandleError::Timeout(_) => "timeout",
            HandleError::Limit(_) => "limit",
            HandleError::Unavailable(_) => "unavailable",
        }
    }

    /// The reason without the kind prefix.
    pub fn reason(&self) -> String {
        match self {
            HandleError::Invalid(r)
            | HandleError::Transient(r)
            | HandleError::Trap(r)
            | HandleError::Limit(r)
            | HandleError::Unavailable(r) => r.clone(),
            HandleError::Timeout(ms) => format!("interrupted after the {ms} ms deadline"),
        }
    }
}
