//! What one message may make a plugin cost the host, beyond its linear
//! memory and deadline: state writes, outputs, logs. A plugin that goes past a limit fails that message alone
//! ([`HandleError::Limit`](super::HandleError::Limit), dead-lettered with the
//! limit named); the host and the other partitions never notice.

/// What one message may cost, in bytes and counts (`[plugin]` in the
/// host's configuration).
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
    /// The defaults of `[plugin]` (its configuration takes them from here).
    fn default() -> Self {
        PluginLimits {
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
            max_compile: std::time::Duration::from_secs(60),
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
