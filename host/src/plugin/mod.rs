//! The WebAssembly plugin runtime.
//!
//! - [`PluginEngine`]: the process's one wasmtime engine (component model,
//!   epoch interruption with a background ticker, pooling allocator).
//! - [`PluginEngine::load_file`] / [`load_bytes`](PluginEngine::load_bytes):
//!   check, compile (through the compiled-code cache), link against the
//!   `turnstile:plugin@0.2.0` world and read the manifest → [`LoadedPlugin`].
//! - [`PluginInstance`]: a store owning the caller's [`StateAccess`], handling
//!   one message at a time under a deadline and a memory cap, surviving guest
//!   traps, and hot-swappable to another [`LoadedPlugin`].

mod bindings;
mod cache;
mod engine;
mod error;
mod instance;
mod limits;
mod load;
mod message;
mod state;
pub mod validate;

pub use engine::{EngineSettings, PluginEngine};
pub use error::{HandleError, PluginError};
pub use instance::PluginInstance;
pub use limits::PluginLimits;
pub use load::LoadedPlugin;
pub use message::{Header, Manifest, Message, Output, Routing};
pub use state::{MemoryState, StateAccess};
