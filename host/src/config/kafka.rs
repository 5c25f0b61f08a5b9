//! `[kafka]` and `[producer]`: where the cluster is, how an event's topics
//! are shaped, and how records are published.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// Where the cluster is, how to reach it securely, and how an event's topics
/// are shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    /// Partitions of every event topic.
    pub partitions: i32,
    /// Replication factor of event topics. Unset: `provision` takes it from
    /// the cluster (3 on three or more brokers, 2 on two, 1 on one; see
    /// `admin::provision::Replication`).
    pub replication_factor: Option<i32>,
    /// `min.insync.replicas` of event topics. Unset: 2 when the replication
    /// factor is 3 or more, else 1.
    pub min_insync_replicas: Option<i32>,
    /// How long admin and metadata requests may take.
    pub request_timeout_ms: u64,
    /// How long a service rides out an unreachable cluster (at start, while
    /// restoring, while committing) before it gives up with exit code 3.
    pub outage_timeout_ms: u64,
    /// Codec of every record batch Turnstile produces (none, gzip, snappy,
    /// lz4, zstd); any codec is read.
    pub compression: String,
    /// How clients talk to the brokers.
    pub security_protocol: SecurityProtocol,
    /// SASL mechanism (with `sasl_plaintext` / `sasl_ssl`).
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    /// A file holding the SASL password (a mounted secret); read at start.
    pub sasl_password_file: Option<PathBuf>,
    /// OAUTHBEARER: a static bearer token, or a file holding one (read again
    /// at every refresh, so a sidecar can rotate it).
    pub sasl_oauthbearer_token: Option<Secret>,
    pub sasl_oauthbearer_token_file: Option<PathBuf>,
    /// PEM file of the CA certificates that sign the brokers' certificates
    /// (unset: the system's trust store).
    pub ssl_ca_location: Option<PathBuf>,
    /// Mutual TLS: the client's PEM certificate and private key.
    pub ssl_certificate_location: Option<PathBuf>,
    pub ssl_key_location: Option<PathBuf>,
    /// Password of an encrypted private key.
    pub ssl_key_password: Option<Secret>,
    /// Check that a broker's certificate names the host connected to.
    pub ssl_endpoint_identification: bool,
    /// Any other librdkafka property, given to every client Turnstile creates
    /// after its own settings. Properties Turnstile owns are refused.
    #[serde(serialize_with = "redacted_client")]
    pub client: BTreeMap<String, ClientProperty>,
}

/// `[kafka.client]` as `turnstile config` shows it: secrets as `***`.
fn redacted_client<S: serde::Serializer>(
    client: &BTreeMap<String, ClientProperty>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(client.len()))?;
    for (key, value) in client {
        let shown = if is_secret_property(key) { super::secret::REDACTED } else { value.0.as_str() };
        map.serialize_entry(key, shown)?;
    }
    map.end()
}

/// `security.protocol`: plaintext, TLS, SASL, or SASL over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    #[serde(alias = "SSL")]
    Ssl,
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's name.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "OAUTHBEARER", alias = "oauthbearer")]
    OauthBearer,
}

impl SaslMechanism {
    /// librdkafka's name.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OauthBearer => "OAUTHBEARER",
        }
    }
}

/// A `[kafka.client]` value; one whose key names a secret (a password, a
/// secret, a token, a JAAS line) is shown as `***`, in `Debug` too.
#[derive(Clone, PartialEq)]
pub struct ClientProperty(pub String);

impl<'de> Deserialize<'de> for ClientProperty {
    /// A string, or what the environment makes of one (`true`, `30000`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Flag(bool),
            Unsigned(u64),
            Signed(i64),
            Float(f64),
        }
        Ok(ClientProperty(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Flag(b) => b.to_string(),
            Scalar::Unsigned(n) => n.to_string(),
            Scalar::Signed(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
        }))
    }
}

impl std::fmt::Debug for ClientProperty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is not known here; never print a value from `Debug`.
        f.write_str(super::secret::REDACTED)
    }
}

/// Does a librdkafka property named `key` hold a secret?
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "jaas", ".pem", "credentials"].iter().any(|word| key.contains(word))
}

impl From<&str> for ClientProperty {
    fn from(value: &str) -> Self {
        ClientProperty(value.to_owned())
    }
}

impl KafkaConfig {
    /// The SASL password: `sasl_password`, or the contents of
    /// `sasl_password_file` without a trailing newline.
    pub fn sasl_password(&self) -> std::io::Result<Option<Secret>> {
        if let Some(password) = &self.sasl_password {
            return Ok(Some(password.clone()));
        }
        let Some(file) = &self.sasl_password_file else { return Ok(None) };
        let text = std::fs::read_to_string(file)?;
        Ok(Some(Secret::new(text.trim_end_matches(['\n', '\r']))))
    }

    /// The `[kafka.client]` properties, secrets included.
    pub fn client_properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.client.iter().map(|(k, v)| (k.as_str(), v.0.as_str()))
    }
}

/// Producer settings (DOMAIN.md §6); `extra` passes any other librdkafka
/// property through unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    pub linger_ms: u32,
    pub batch_size: u32,
    pub batch_num_messages: u32,
    pub socket_send_buffer_bytes: u32,
    pub enable_idempotence: bool,
    pub acks: String,
    /// librdkafka's local queue: `queue.buffering.max.messages`.
    pub queue_max_messages: u32,
    pub extra: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap: "127.0.0.1:9092".into(),
            partitions: 10,
            replication_factor: None,
            min_insync_replicas: None,
            request_timeout_ms: 10_000,
            outage_timeout_ms: 120_000,
            compression: "lz4".into(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            sasl_password_file: None,
            sasl_oauthbearer_token: None,
            sasl_oauthbearer_token_file: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_key_password: None,
            ssl_endpoint_identification: true,
            client: BTreeMap::new(),
        }
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger_ms: 50,
            batch_size: 524_288,
            batch_num_messages: 1000,
            socket_send_buffer_bytes: 1_048_576,
            enable_idempotence: true,
            acks: "all".into(),
            queue_max_messages: 100_000,
            extra: BTreeMap::new(),
        }
    }
}
