//! Turnstile: an exactly-once Kafka stream processor for event ticketing whose
//! business logic runs as WebAssembly components.
//!
//! The library is split by the job each part does; `ARCHITECTURE.md` at the
//! repository root shows how a message flows through them.

pub mod admin;
pub mod client;
pub mod config;
pub mod deploy;
pub mod gateway;
pub mod headers;
pub mod http;
pub mod load;
pub mod naming;
pub mod partition;
/// The WebAssembly runtime, its own crate (no Kafka in it).
pub use turnstile_wasm as plugin;
pub mod publisher;
pub mod routing;
pub mod runner;
pub mod scaffold;
pub mod seating;
pub mod state;
pub mod status;
pub mod topology;
