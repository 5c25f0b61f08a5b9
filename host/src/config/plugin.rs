//! `[plugin]`: the WebAssembly sandbox.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The WebAssembly sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// Deadline of one plugin call; a call past it is interrupted. A batch
    /// that times out is handed again one message per call, each with this
    /// deadline, so only the slow message fails.
    pub deadline_ms: u64,
    /// Linear-memory cap per plugin instance.
    pub memory_limit_mib: u64,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// The deployment directory (`DIR/SERVICE/current`).
    pub plugins_dir: PathBuf,
    /// Bytes of state writes one message may return (they are built in the
    /// guest's memory, so at most `memory_limit_mib`).
    pub max_pending_state_bytes: u64,
    /// Largest state key a plugin may write.
    pub max_key_bytes: u64,
    /// Largest state value a plugin may write.
    pub max_value_bytes: u64,
    /// Outputs one message may produce.
    pub max_outputs: u64,
    /// Bytes of all outputs of one message together.
    pub max_output_bytes: u64,
    /// Log lines per message; the rest are counted and reported once.
    pub max_log_lines: u64,
    /// Bytes of log text per message; the rest is truncated.
    pub max_log_bytes: u64,
    /// Longest service name, version or action name in a manifest.
    pub max_manifest_string_bytes: u64,
    /// Most actions a manifest may consume or emit.
    pub max_manifest_actions: u64,
    /// Elements of one wasm table.
    pub max_table_elements: u64,
    /// Largest component file accepted by deploy and load.
    pub max_component_bytes: u64,
    /// Longest a component may take to compile at deploy, load or reload.
    pub max_compile_ms: u64,
    /// Write `/tmp/perf-PID.map` so that `perf` names the plugins' compiled
    /// functions (for profiling; off by default).
    pub perf_map: bool,
}

impl Default for PluginConfig {
    fn default() -> Self {
        // Never the shared temporary directory: entries become native code.
        let cache_root = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".turnstile"));
        PluginConfig {
            deadline_ms: 1000,
            memory_limit_mib: 64,
            cache_dir: cache_root.join("turnstile").join("compiled"),
            plugins_dir: PathBuf::from(".turnstile/plugins"),
            max_pending_state_bytes: 8 << 20,
            max_key_bytes: 1024,
            max_value_bytes: 256 << 10,
            max_outputs: 64,
            max_output_bytes: 2 << 20,
            max_log_lines: 32,
            max_log_bytes: 8 << 10,
            max_manifest_string_bytes: 128,
            max_manifest_actions: 32,
            max_table_elements: 100_000,
            max_component_bytes: 32 << 20,
            max_compile_ms: 60_000,
            perf_map: false,
        }
    }
}
