//! One module per subcommand. Each takes the global flags and its own
//! arguments, loads the configuration, and returns an exit code.

pub mod bench;
pub mod build;
pub mod children;
pub mod config;
pub mod consume;
pub mod deploy;
pub mod gateway;
pub mod init;
pub mod partitions;
pub mod plugins;
pub mod provision;
pub mod publish;
pub mod replay;
pub mod reset;
pub mod rollback;
pub mod run;
pub mod sellout;
pub mod status;

use std::process::ExitCode;

use turnstile::config::{Config, ConfigError, Loaded, Overrides};
use turnstile::naming::TopicSpec;

use crate::cli::GlobalArgs;

/// Exit code for a command that met its goal partly (see `main`).
pub const EXIT_INCOMPLETE: u8 = 1;
/// Exit code for bad usage or configuration.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 3;

/// Loads the configuration with the global flags plus `extra` overrides.
pub fn load_config(global: &GlobalArgs, mut extra: Overrides) -> Result<Loaded, ConfigError> {
    extra.set("kafka.bootstrap", global.bootstrap.clone());
    Loaded::load(global.config.as_deref(), &extra)
}

/// The topic of `action` in `event_id` under the configured topology, or
/// a usage error listing the actions the topology has.
pub fn event_topic(config: &Config, event_id: u64, action: &str) -> Result<TopicSpec, UsageError> {
    let specs = config.topology().event_topics(event_id);
    let known: Vec<String> = specs.iter().map(|s| s.name.action.clone()).collect();
    specs
        .into_iter()
        .find(|s| s.name.action == action)
        .ok_or_else(|| UsageError(format!("unknown action {action:?}; expected one of {}", known.join(", "))))
}

/// Bad usage or input found before anything was done (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Maps an error to the documented exit code.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    let config_error = err.chain().any(|cause| {
        cause.is::<ConfigError>() || cause.is::<UsageError>() || cause.is::<turnstile::admin::Unreachable>()
    });
    ExitCode::from(if config_error { EXIT_CONFIG } else { EXIT_FAILURE })
}
