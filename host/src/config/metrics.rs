//! `[metrics]`: the Prometheus endpoint of `turnstile run`.

use serde::{Deserialize, Serialize};

/// Where `run` serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` to listen on (`run --metrics ADDR`); unset serves nothing.
    pub listen: Option<String>,
    /// How often the consumer reports lag per partition (librdkafka's
    /// `statistics.interval.ms`) while the endpoint is served.
    pub lag_interval_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: None, lag_interval_ms: 5_000 }
    }
}
