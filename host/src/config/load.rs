//! Merging the layers (defaults < file < environment < flags) and telling
//! where each value came from.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;

use super::{Config, ConfigError, DEFAULT_FILE};

/// Values given on the command line, the highest layer. Flags the user did
/// not pass are absent, so they never mask a lower layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides(Dict);

impl Overrides {
    /// Sets `section.key` (e.g. `kafka.bootstrap`) if `value` is `Some`.
    pub fn set<T: Serialize>(&mut self, path: &str, value: Option<T>) -> &mut Self {
        let Some(value) = value else { return self };
        let Ok(value) = Value::serialize(value) else { return self };
        let (section, key) = path.split_once('.').unwrap_or((path, ""));
        let entry = self.0.entry(section.to_owned()).or_insert_with(|| Value::from(Dict::new()));
        if let Value::Dict(_, dict) = entry {
            dict.insert(key.to_owned(), value);
        }
        self
    }
}

impl Provider for Overrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flag")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// The merged configuration and the figment it came from (for provenance).
pub struct Loaded {
    pub config: Config,
    figment: Figment,
}

impl Loaded {
    /// Loads and validates the configuration. `file` is `--config`: a named
    /// file must exist, the default `turnstile.toml` is optional.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let toml = match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => Toml::file_exact(path),
            None => Toml::file(DEFAULT_FILE),
        };
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(toml)
            .merge(seed_env())
            .merge(Env::prefixed("TURNSTILE_").filter(|k| k.as_str().contains("__")).split("__"))
            .merge(overrides.clone());
        let config: Config = figment.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(Loaded { config, figment })
    }

    /// Every leaf key with its value and the layer it came from, sorted by key.
    pub fn provenance(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(Value::Dict(_, root)) = Value::serialize(&self.config) {
            collect_leaves("", &root, &mut out);
        }
        out.into_iter()
            .map(|key| {
                let mut source =
                    self.figment.find_metadata(&key).map(describe_source).unwrap_or_else(|| "default".into());
                if let Some((_, unset)) = UNSET.iter().find(|(k, _)| *k == key)
                    && source == "default"
                {
                    source = format!("default: unset, {unset}");
                }
                (key, source)
            })
            .collect()
    }
}

/// What an optional key means when nobody set it (for `turnstile config`).
const UNSET: &[(&str, &str)] = &[
    ("kafka.replication_factor", "provision takes it from the cluster (3 on 3+ brokers, 2 on 2, 1 on 1)"),
    ("kafka.min_insync_replicas", "provision uses 2 for a replication factor of 3 or more, else 1"),
];

fn collect_leaves(prefix: &str, dict: &Dict, out: &mut Vec<String>) {
    for (key, value) in dict {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Dict(_, inner) if !inner.is_empty() => collect_leaves(&path, inner, out),
            _ => out.push(path),
        }
    }
}

fn describe_source(meta: &Metadata) -> String {
    if meta.name == std::any::type_name::<Config>() {
        return "default".into();
    }
    match &meta.source {
        Some(source) => format!("{} ({source})", meta.name),
        None => meta.name.to_string(),
    }
}

/// The original Python system's variable names, and the same style for the
/// security settings (`KAFKA_SASL_USERNAME` is `kafka.sasl_username`).
const SEED_ENV: &[(&str, &str)] = &[
    ("KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap"),
    ("EVENT_ID", "service.event_id"),
    ("CONSUMER_GROUP_ID", "service.group_id"),
    ("KAFKA_CONSUMER_INSTANCE_ID", "service.consumer_instance_id"),
    ("KAFKA_PRODUCER_INSTANCE_ID", "service.producer_instance_id"),
    ("KAFKA_COMPRESSION", "kafka.compression"),
    ("KAFKA_SECURITY_PROTOCOL", "kafka.security_protocol"),
    ("KAFKA_SASL_MECHANISM", "kafka.sasl_mechanism"),
    ("KAFKA_SASL_USERNAME", "kafka.sasl_username"),
    ("KAFKA_SASL_PASSWORD", "kafka.sasl_password"),
    ("KAFKA_SASL_PASSWORD_FILE", "kafka.sasl_password_file"),
    ("KAFKA_SASL_OAUTHBEARER_TOKEN", "kafka.sasl_oauthbearer_token"),
    ("KAFKA_SASL_OAUTHBEARER_TOKEN_FILE", "kafka.sasl_oauthbearer_token_file"),
    ("KAFKA_SSL_CA_LOCATION", "kafka.ssl_ca_location"),
    ("KAFKA_SSL_CERTIFICATE_LOCATION", "kafka.ssl_certificate_location"),
    ("KAFKA_SSL_KEY_LOCATION", "kafka.ssl_key_location"),
    ("KAFKA_SSL_KEY_PASSWORD", "kafka.ssl_key_password"),
    ("KAFKA_SSL_ENDPOINT_IDENTIFICATION", "kafka.ssl_endpoint_identification"),
];

fn seed_env() -> Env {
    let names: Vec<&str> = SEED_ENV.iter().map(|(name, _)| *name).collect();
    Env::raw().only(&names).map(|key| {
        let upper = key.as_str().to_ascii_uppercase();
        SEED_ENV.iter().find(|(name, _)| *name == upper).map(|(_, path)| *path).unwrap_or("").into()
    })
}
