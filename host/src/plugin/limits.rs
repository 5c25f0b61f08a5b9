//! What one message may make a plugin cost the host, beyond its linear
//! memory and deadline: state writes, outputs, logs. A plugin that goes past a limit fails that message alone
//! ([`HandleError::Limit`](super::HandleError::Limit), dead-lettered with the
//! limit named); the host and the other partitions never notice.

use crate::config::PluginConfig;

/// The limits of `[plugin]`, in bytes and counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// Bytes of state writes (keys plus values) one message may return;
    /// part of the plugin's memory budget.
    pub max_pending_state_bytes: usize,
    /// Largest state key.
    pub max_key_bytes: usize,
    /// Largest state value.
    pub max_value_bytes: usize,
    /// Outputs one message may produce.
    pub max_outputs: usize,
    /// Bytes of all outputs' payloads of one message together.
    pub max_output_bytes: usize,
    /// Log lines one message may write; the rest are counted, not written.
    pub max_log_lines: u32,
    /// Bytes of log text one message may write; longer lines are truncated.
    pub max_log_bytes: usize,
    /// Longest service name, version or action in a manifest.
    pub max_manifest_string_bytes: usize,
    /// Most actions a manifest may list as consumed or emitted.
    pub max_manifest_actions: usize,
    /// Elements of one wasm table.
    pub max_table_elements: usize,
    /// Largest component accepted at deploy and load.
    pub max_component_bytes: usize,
    /// Longest compile accepted at deploy, load and reload.
    pub max_compile: std::time::Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self::from_config(&PluginConfig::default())
    }
}

impl PluginLimits {
    /// The limits of a `[plugin]` section.
    pub fn from_config(c: &PluginConfig) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        PluginLimits {
            max_pending_state_bytes: size(c.max_pending_state_bytes),
            max_key_bytes: size(c.max_key_bytes),
            max_value_bytes: size(c.max_value_bytes),
            max_outputs: size(c.max_outputs),
            max_output_bytes: size(c.max_output_bytes),
            max_log_lines: u32::try_from(c.max_log_lines).unwrap_or(u32::MAX),
            max_log_bytes: size(c.max_log_bytes),
            max_manifest_string_bytes: size(c.max_manifest_string_bytes),
            max_manifest_actions: size(c.max_manifest_actions),
            max_table_elements: size(c.max_table_elements),
            max_component_bytes: size(c.max_component_bytes),
            max_compile: std::time::Duration::from_millis(c.max_compile_ms),
        }
    }
}

/// What the call being made has logged so far.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) log_lines: u32,
    pub(crate) log_bytes: usize,
    pub(crate) dropped_log_lines: u32,
    /// How many messages the call handles: the log budget scales with it.
    pub(crate) messages: u32,
}
