//! `[plugin]`: the WebAssembly sandbox.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use turnstile_wasm::{EngineSettings, PluginLimits};

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
        // The sandbox's own defaults, so that the two cannot drift apart.
        let engine = EngineSettings::default();
        let limits = PluginLimits::default();
        let n = |v: usize| v as u64;
        PluginConfig {
            deadline_ms: u64::try_from(engine.deadline.as_millis()).unwrap_or(u64::MAX),
            memory_limit_mib: n(engine.memory_limit >> 20),
            cache_dir: cache_root.join("turnstile").join("compiled"),
            plugins_dir: PathBuf::from(".turnstile/plugins"),
            max_pending_state_bytes: n(limits.max_pending_state_bytes),
            max_key_bytes: n(limits.max_key_bytes),
            max_value_bytes: n(limits.max_value_bytes),
            max_outputs: n(limits.max_outputs),
            max_output_bytes: n(limits.max_output_bytes),
            max_log_lines: u64::from(limits.max_log_lines),
            max_log_bytes: n(limits.max_log_bytes),
            max_manifest_string_bytes: n(limits.max_manifest_string_bytes),
            max_manifest_actions: n(limits.max_manifest_actions),
            max_table_elements: n(limits.max_table_elements),
            max_component_bytes: n(limits.max_component_bytes),
            max_compile_ms: u64::try_from(limits.max_compile.as_millis()).unwrap_or(u64::MAX),
            perf_map: engine.perf_map,
        }
    }
}

impl PluginConfig {
    /// The engine this section configures.
    pub fn engine_settings(&self) -> EngineSettings {
        let mib = usize::try_from(self.memory_limit_mib).unwrap_or(usize::MAX / (1 << 20));
        EngineSettings {
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_limit: mib.saturating_mul(1 << 20),
            cache_dir: Some(self.cache_dir.clone()),
            limits: self.limits(),
            perf_map: self.perf_map,
            ..EngineSettings::default()
        }
    }

    /// What one message may cost a plugin under this section.
    pub fn limits(&self) -> PluginLimits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        PluginLimits {
            max_pending_state_bytes: size(self.max_pending_state_bytes),
            max_key_bytes: size(self.max_key_bytes),
            max_value_bytes: size(self.max_value_bytes),
            max_outputs: size(self.max_outputs),
            max_output_bytes: size(self.max_output_bytes),
            max_log_lines: u32::try_from(self.max_log_lines).unwrap_or(u32::MAX),
            max_log_bytes: size(self.max_log_bytes),
            max_manifest_string_bytes: size(self.max_manifest_string_bytes),
            max_manifest_actions: size(self.max_manifest_actions),
            max_table_elements: size(self.max_table_elements),
            max_component_bytes: size(self.max_component_bytes),
            max_compile: std::time::Duration::from_millis(self.max_compile_ms),
        }
    }
}
