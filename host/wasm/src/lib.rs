//! The WebAssembly plugin runtime.
//!
//! - [`PluginEngine`]: the process's one wasmtime engine (component model,
//!   epoch interruption with a background ticker, pooling allocator).
//! - [`PluginEngine::load_file`] / [`load_bytes`](PluginEngine::load_bytes):
//!   check, compile (through the compiled-code cache), link against the
//!   `turnstile:plugin@0.3.0` world and read the manifest → [`LoadedPlugin`].
//! - [`PluginInstance`]: a store owning the caller's [`StateAccess`], handling
//!   batches of messages under a deadline and a memory cap with each
//!   message's outcome and state writes kept apart ([`Handled`]), surviving
//!   guest traps, and hot-swappable to another [`LoadedPlugin`].

mod bindings;
mod cache;
mod engine;
mod error;
mod instance;
mod limits;
mod load;
mod loggable;
mod message;
mod state;
pub mod validate;

/// The world this host implements; plugins must be built against it.
pub const WORLD: &str = "turnstile:plugin@0.3.0";

pub use engine::{EngineSettings, PluginEngine};
pub use error::{HandleError, PluginError};
pub use instance::{Handled, PluginInstance};
pub use limits::PluginLimits;
pub use load::LoadedPlugin;
pub use loggable::{MAX_LOGGED_BYTES, loggable};
pub use message::{Header, Manifest, Message, Output, Routing};
pub use state::{MemoryState, StateAccess, Write};
