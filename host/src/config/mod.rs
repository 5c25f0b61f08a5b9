//! Configuration: built-in defaults < `turnstile.toml` (or `--config FILE`) <
//! environment < command-line flags, merged with figment.
//!
//! Environment: `TURNSTILE_{SECTION}__{KEY}` (e.g. `TURNSTILE_KAFKA__BOOTSTRAP`,
//! `TURNSTILE_KAFKA__CLIENT__SASL_USERNAME` for `[kafka.client]`), plus the
//! seed's variables (`KAFKA_BOOTSTRAP_SERVERS`, `EVENT_ID`,
//! `CONSUMER_GROUP_ID`, `KAFKA_CONSUMER_INSTANCE_ID`,
//! `KAFKA_PRODUCER_INSTANCE_ID`) and the same style for security
//! (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`,
//! `KAFKA_SASL_PASSWORD`, `KAFKA_SSL_CA_LOCATION`, …), which `TURNSTILE_*`
//! overrides. Only
//! `TURNSTILE_` variables with a `__` are configuration, so that scripts can
//! keep their own `TURNSTILE_CACHE`-style variables.

mod gateway;
mod kafka;
mod load;
mod metrics;
mod plugin;
mod runner;
mod secret;
mod security;
mod service;
#[cfg(test)]
mod tests;
mod topology;
mod validate;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use gateway::{GatewayAuth, GatewayConfig, MIN_JWT_SECRET_BYTES};
pub use kafka::{ClientProperty, KafkaConfig, ProducerConfig, SaslMechanism, SecurityProtocol, is_secret_property};
pub use load::{Loaded, Overrides};
pub use metrics::MetricsConfig;
pub use plugin::PluginConfig;
pub use runner::{GroupProtocol, RunnerConfig};
pub use secret::{REDACTED, Secret};
pub use service::ServiceConfig;
pub use topology::TopologyConfig;

/// The file read when `--config` is not given (if it exists).
pub const DEFAULT_FILE: &str = "turnstile.toml";

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub producer: ProducerConfig,
    pub service: ServiceConfig,
    pub runner: RunnerConfig,
    pub plugin: PluginConfig,
    pub metrics: MetricsConfig,
    pub gateway: GatewayConfig,
    pub topology: TopologyConfig,
}

impl Config {
    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The event topology: built-in topics plus `[[topology.topics]]`
    /// (checked when the configuration loads, so this falls back to the
    /// built-in one only for a configuration built by hand).
    pub fn topology(&self) -> crate::topology::Topology {
        self.topology.build().unwrap_or_default()
    }
}

/// A configuration that cannot be used, naming the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(Box<figment::Error>),
    #[error("invalid configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("invalid configuration: config file {0} does not exist")]
    MissingFile(PathBuf),
}

impl ConfigError {
    /// `key` cannot be used, for `reason`.
    pub fn invalid(key: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.to_owned(), reason: reason.into() }
    }
}
