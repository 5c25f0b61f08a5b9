//! Checks of how clients reach the cluster: the security settings of
//! `[kafka]` fit together and name readable files, and `[kafka.client]`
//! neither takes a property Turnstile owns nor names one librdkafka lacks.

use std::path::Path;

use super::kafka::{KafkaConfig, SaslMechanism, SecurityProtocol};
use super::{Config, ConfigError};
use crate::client::normalize_key;

/// librdkafka properties Turnstile sets itself, with the reason (or the
/// setting to use instead). Exactly-once and partitioning depend on them.
const OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap"),
    ("metadata.broker.list", "set kafka.bootstrap"),
    ("compression.type", "set kafka.compression"),
    ("compression.codec", "set kafka.compression"),
    ("transactional.id", "Turnstile derives it from the service and service.consumer_instance_id"),
    ("transaction.timeout.ms", "set runner.transaction_timeout_ms"),
    ("isolation.level", "exactly-once needs read_committed, which Turnstile sets"),
    ("enable.auto.commit", "offsets are committed inside the runner's transactions"),
    ("auto.commit.interval.ms", "offsets are committed inside the runner's transactions"),
    ("enable.auto.offset.store", "offsets are committed inside the runner's transactions"),
    ("auto.offset.reset", "Turnstile reads every input from its earliest uncommitted offset"),
    ("enable.idempotence", "set producer.enable_idempotence (the runner always needs it)"),
    ("acks", "set producer.acks"),
    ("partitioner", "Turnstile computes every record's partition itself"),
    ("group.id", "set service.group_id"),
    ("group.instance.id", "Turnstile names group members itself"),
    ("group.protocol", "set runner.group_protocol"),
    ("group.remote.assignor", "set runner.group_protocol"),
    ("partition.assignment.strategy", "set runner.group_protocol"),
    ("max.poll.interval.ms", "set runner.max_poll_interval_ms"),
    ("client.id", "Turnstile names each client after its service and instance"),
    ("enable.partition.eof", "Turnstile's readers set it where they need it"),
    ("linger.ms", "set producer.linger_ms (publishers) or runner.linger_ms (services)"),
    ("queue.buffering.max.ms", "set producer.linger_ms (publishers) or runner.linger_ms (services)"),
    ("sasl.oauthbearer.config", "set kafka.sasl_oauthbearer_token or kafka.sasl_oauthbearer_token_file"),
];

/// `[kafka]` keys that also exist as librdkafka properties: setting both
/// ways is refused as ambiguous.
const TYPED: &[(&str, &str)] = &[
    ("security.protocol", "kafka.security_protocol"),
    ("sasl.mechanism", "kafka.sasl_mechanism"),
    ("sasl.mechanisms", "kafka.sasl_mechanism"),
    ("sasl.username", "kafka.sasl_username"),
    ("sasl.password", "kafka.sasl_password"),
    ("ssl.ca.location", "kafka.ssl_ca_location"),
    ("ssl.certificate.location", "kafka.ssl_certificate_location"),
    ("ssl.key.location", "kafka.ssl_key_location"),
    ("ssl.key.password", "kafka.ssl_key_password"),
];

impl Config {
    /// `[kafka]`'s security settings and `[kafka.client]`.
    pub(super) fn validate_security(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&k.compression.as_str()) {
            return Err(ConfigError::invalid(
                "kafka.compression",
                format!("{:?} is not one of none, gzip, snappy, lz4, zstd", k.compression),
            ));
        }
        check_client_properties(k)?;
        // The protocol clients will use, `[kafka.client]` included.
        let client = |key: &str| k.client_properties().find(|(k, _)| normalize_key(k) == key).map(|(_, v)| v);
        let protocol = client("security.protocol")
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| k.security_protocol.as_librdkafka().to_owned());
        let protocol = protocol.as_str();
        let sasl = protocol.starts_with("sasl_");
        let tls = protocol == "ssl" || protocol == "sasl_ssl";
        let sasl_fields = [
            ("kafka.sasl_mechanism", k.sasl_mechanism.is_some()),
            ("kafka.sasl_username", k.sasl_username.is_some()),
            ("kafka.sasl_password", k.sasl_password.is_some()),
            ("kafka.sasl_password_file", k.sasl_password_file.is_some()),
            ("kafka.sasl_oauthbearer_token", k.sasl_oauthbearer_token.is_some()),
            ("kafka.sasl_oauthbearer_token_file", k.sasl_oauthbearer_token_file.is_some()),
        ];
        if !sasl && let Some((key, _)) = sasl_fields.iter().find(|(_, set)| *set) {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "is set, but security protocol {protocol} uses no SASL; set kafka.security_protocol = \"sasl_ssl\" (or \"sasl_plaintext\")"
                ),
            ));
        }
        let tls_fields = [
            ("kafka.ssl_ca_location", k.ssl_ca_location.as_deref()),
            ("kafka.ssl_certificate_location", k.ssl_certificate_location.as_deref()),
            ("kafka.ssl_key_location", k.ssl_key_location.as_deref()),
        ];
        if !tls && let Some((key, _)) = tls_fields.iter().find(|(_, path)| path.is_some()) {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "is set, but security protocol {protocol} uses no TLS; set kafka.security_protocol = \"ssl\" (or \"sasl_ssl\")"
                ),
            ));
        }
        for (key, path) in tls_fields {
            if let Some(path) = path {
                check_readable(key, path)?;
            }
        }
        if k.ssl_certificate_location.is_some() != k.ssl_key_location.is_some() {
            let missing = if k.ssl_certificate_location.is_none() {
                "kafka.ssl_certificate_location"
            } else {
                "kafka.ssl_key_location"
            };
            return Err(ConfigError::invalid(missing, "mutual TLS needs both a client certificate and its key"));
        }
        if k.security_protocol.uses_sasl() {
            self.validate_sasl(k)?;
        }
        Ok(())
    }

    fn validate_sasl(&self, k: &KafkaConfig) -> Result<(), ConfigError> {
        let from_client = k.client_properties().any(|(key, _)| normalize_key(key).starts_with("sasl."));
        let Some(mechanism) = k.sasl_mechanism else {
            if from_client {
                return Ok(()); // configured through [kafka.client]
            }
            return Err(ConfigError::invalid(
                "kafka.sasl_mechanism",
                format!(
                    "security protocol {} needs a SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
                    k.security_protocol.as_librdkafka()
                ),
            ));
        };
        if mechanism == SaslMechanism::OauthBearer {
            return match (&k.sasl_oauthbearer_token, &k.sasl_oauthbearer_token_file) {
                (Some(_), Some(_)) => Err(ConfigError::invalid(
                    "kafka.sasl_oauthbearer_token",
                    "set either the token or kafka.sasl_oauthbearer_token_file, not both",
                )),
                (None, None) => Err(ConfigError::invalid(
                    "kafka.sasl_oauthbearer_token",
                    "OAUTHBEARER needs kafka.sasl_oauthbearer_token or kafka.sasl_oauthbearer_token_file",
                )),
                (None, Some(file)) => check_readable("kafka.sasl_oauthbearer_token_file", file),
                (Some(_), None) => Ok(()),
            };
        }
        if k.sasl_username.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(
                "kafka.sasl_username",
                format!("SASL {} needs a user name", mechanism.as_librdkafka()),
            ));
        }
        match (&k.sasl_password, &k.sasl_password_file) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "kafka.sasl_password",
                "set either the password or kafka.sasl_password_file, not both",
            )),
            (None, None) => Err(ConfigError::invalid(
                "kafka.sasl_password",
                format!("SASL {} needs kafka.sasl_password or kafka.sasl_password_file", mechanism.as_librdkafka()),
            )),
            (None, Some(file)) => {
                check_readable("kafka.sasl_password_file", file)?;
                match k.sasl_password() {
                    Ok(Some(password)) if !password.expose().is_empty() => Ok(()),
                    _ => Err(ConfigError::invalid("kafka.sasl_password_file", format!("{} is empty", file.display()))),
                }
            }
            (Some(_), None) => Ok(()),
        }
    }
}

/// `[kafka.client]`: no property Turnstile owns, none set both here and as a
/// `[kafka]` key, and every one known to librdkafka with a valid value.
fn check_client_properties(k: &KafkaConfig) -> Result<(), ConfigError> {
    for (key, _) in k.client_properties() {
        let name = normalize_key(key);
        if let Some((_, why)) = OWNED.iter().find(|(owned, _)| *owned == name) {
            return Err(ConfigError::invalid(
                &format!("kafka.client.\"{name}\""),
                format!("Turnstile owns this property: {why}"),
            ));
        }
        let typed_set = |typed: &str| match typed {
            "kafka.security_protocol" => k.security_protocol != SecurityProtocol::Plaintext,
            "kafka.sasl_mechanism" => k.sasl_mechanism.is_some(),
            "kafka.sasl_username" => k.sasl_username.is_some(),
            "kafka.sasl_password" => k.sasl_password.is_some() || k.sasl_password_file.is_some(),
            "kafka.ssl_ca_location" => k.ssl_ca_location.is_some(),
            "kafka.ssl_certificate_location" => k.ssl_certificate_location.is_some(),
            "kafka.ssl_key_location" => k.ssl_key_location.is_some(),
            "kafka.ssl_key_password" => k.ssl_key_password.is_some(),
            _ => false,
        };
        if let Some((_, typed)) = TYPED.iter().find(|(prop, typed)| *prop == name && typed_set(typed)) {
            return Err(ConfigError::invalid(
                &format!("kafka.client.\"{name}\""),
                format!("is also set as {typed}; set it one way only"),
            ));
        }
    }
    // librdkafka itself knows every property and its values: a typo is
    // refused here rather than when the first client is created.
    let mut probe = rdkafka::config::ClientConfig::new();
    for (key, value) in k.client_properties() {
        probe.set(normalize_key(key), value);
    }
    if let Err(err) = probe.create_native_config() {
        let reason = err.to_string();
        // librdkafka's messages name the property, never a value.
        return Err(ConfigError::invalid("kafka.client", reason));
    }
    Ok(())
}

fn check_readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}
