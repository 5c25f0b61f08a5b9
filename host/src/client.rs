//! Every Kafka client Turnstile creates starts here: the bootstrap, the
//! security settings of `[kafka]`, then the caller's own properties, and at
//! creation the user's `[kafka.client]` properties last. So the runner, the
//! gateway, the admin commands, the load generator and the benchmarks all
//! reach a secured cluster the same way.

use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

use crate::config::{KafkaConfig, SaslMechanism};

/// The prefix of `sasl.oauthbearer.config` values Turnstile writes for
/// [`oauth_token`]: the rest names the token's source.
const OAUTH_TOKEN_PREFIX: &str = "turnstile-token=";
const OAUTH_FILE_PREFIX: &str = "turnstile-token-file=";

/// A client's properties on the way to `create`: `ClientConfig`'s builder
/// with the cluster's settings first and the user's last.
#[derive(Clone)]
pub struct ClientSettings {
    config: ClientConfig,
    user: Vec<(String, String)>,
}

impl ClientSettings {
    /// The settings every client of the cluster in `kafka` needs.
    pub fn new(kafka: &KafkaConfig) -> Self {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &kafka.bootstrap);
        let protocol = kafka.security_protocol;
        config.set("security.protocol", protocol.as_librdkafka());
        if let Some(mechanism) = kafka.sasl_mechanism {
            config.set("sasl.mechanism", mechanism.as_librdkafka());
            if mechanism == SaslMechanism::OauthBearer {
                if let Some(token) = &kafka.sasl_oauthbearer_token {
                    config.set("sasl.oauthbearer.config", format!("{OAUTH_TOKEN_PREFIX}{}", token.expose()));
                } else if let Some(file) = &kafka.sasl_oauthbearer_token_file {
                    config.set("sasl.oauthbearer.config", format!("{OAUTH_FILE_PREFIX}{}", file.display()));
                }
            }
        }
        if let Some(username) = &kafka.sasl_username {
            config.set("sasl.username", username);
        }
        // A file that cannot be read was refused when the configuration
        // loaded; one that vanished since fails authentication, which names it.
        if let Some(password) = kafka.sasl_password().ok().flatten() {
            config.set("sasl.password", password.expose());
        }
        if let Some(ca) = &kafka.ssl_ca_location {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(cert) = &kafka.ssl_certificate_location {
            config.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &kafka.ssl_key_location {
            config.set("ssl.key.location", key.display().to_string());
        }
        if let Some(password) = &kafka.ssl_key_password {
            config.set("ssl.key.password", password.expose());
        }
        config.set(
            "ssl.endpoint.identification.algorithm",
            if kafka.ssl_endpoint_identification { "https" } else { "none" },
        );
        let user = kafka.client_properties().map(|(k, v)| (normalize_key(k), v.to_owned())).collect();
        ClientSettings { config, user }
    }

    /// Sets a property of Turnstile's own (overridden by nothing: the
    /// properties it owns are refused in `[kafka.client]`).
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.config.set(key, value);
        self
    }

    /// librdkafka's log level for this client.
    pub fn set_log_level(&mut self, level: RDKafkaLogLevel) -> &mut Self {
        self.config.set_log_level(level);
        self
    }

    /// The value a property will have, `[kafka.client]` included.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.user.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).or_else(|| self.config.get(key))
    }

    /// The final properties: Turnstile's, then the user's.
    pub fn to_client_config(&self) -> ClientConfig {
        let mut config = self.config.clone();
        for (key, value) in &self.user {
            config.set(key, value);
        }
        config
    }

    /// Creates a client with rdkafka's default context.
    pub fn create<T: FromClientConfig>(&self) -> KafkaResult<T> {
        self.to_client_config().create()
    }

    /// Creates a client with `context`, holding its OAUTHBEARER token from
    /// the start when the settings use one (see [`set_oauth_token_now`]).
    pub fn create_with_context<C, T>(&self, context: C) -> KafkaResult<T>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C> + HasClient<C>,
    {
        let client: T = self.to_client_config().create_with_context(context)?;
        if let Err(reason) = set_oauth_token_now(client.native_client(), self) {
            return Err(KafkaError::ClientCreation(format!("the OAUTHBEARER token: {reason}")));
        }
        Ok(client)
    }
}

/// A Kafka client type whose librdkafka handle can be reached.
pub trait HasClient<C: ClientContext> {
    fn native_client(&self) -> &rdkafka::client::Client<C>;
}

impl<C: rdkafka::consumer::ConsumerContext> HasClient<C> for rdkafka::consumer::BaseConsumer<C> {
    fn native_client(&self) -> &rdkafka::client::Client<C> {
        rdkafka::consumer::Consumer::client(self)
    }
}

impl<C: rdkafka::producer::ProducerContext + 'static> HasClient<C> for rdkafka::producer::ThreadedProducer<C> {
    fn native_client(&self) -> &rdkafka::client::Client<C> {
        rdkafka::producer::Producer::client(self)
    }
}

impl<C: ClientContext> HasClient<C> for rdkafka::admin::AdminClient<C> {
    fn native_client(&self) -> &rdkafka::client::Client<C> {
        self.inner()
    }
}

/// `[kafka.client]` keys as librdkafka spells them: lowercase, with dots
/// (no librdkafka property has an underscore), so that
/// `TURNSTILE_KAFKA__CLIENT__SASL_USERNAME` means `sasl.username`.
pub fn normalize_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('_', ".")
}

/// The OAUTHBEARER token for a client whose `sasl.oauthbearer.config` Turnstile
/// wrote ([`ClientSettings::new`]): the static token, or the token file read
/// now (so a rotated file is picked up at the next refresh). The token is
/// taken as valid for an hour; librdkafka refreshes at 80 % of that, and the
/// broker enforces the token's own expiry.
pub fn oauth_token(oauthbearer_config: Option<&str>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
    let config = oauthbearer_config.unwrap_or_default();
    let token = if let Some(token) = config.strip_prefix(OAUTH_TOKEN_PREFIX) {
        token.to_owned()
    } else if let Some(file) = config.strip_prefix(OAUTH_FILE_PREFIX) {
        std::fs::read_to_string(file)
            .map_err(|e| format!("reading kafka.sasl_oauthbearer_token_file {file}: {e}"))?
            .trim()
            .to_owned()
    } else {
        return Err("OAUTHBEARER needs kafka.sasl_oauthbearer_token or kafka.sasl_oauthbearer_token_file".into());
    };
    if token.is_empty() {
        return Err("the OAUTHBEARER token is empty".into());
    }
    // librdkafka only logs the principal; the broker reads it from the token.
    let principal_name = "turnstile".to_owned();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    Ok(OAuthToken { token, principal_name, lifetime_ms: now_ms + 3_600_000 })
}

/// The context of Turnstile's plain readers: logs client errors except
/// reaching the end of a partition, which is how a reader knows it is done.
pub struct QuietEof;

impl ClientContext for QuietEof {
    crate::oauth_token_refresh!();

    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!(%error, reason, "Kafka reader error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// A reader of log ends as a `read_uncommitted` client sees them (the high
/// watermark: the true end of a log, open transactions included), with no
/// group, so it never queues behind a group member's fetches.
pub fn log_end_reader(kafka: &KafkaConfig) -> KafkaResult<rdkafka::consumer::BaseConsumer<QuietEof>> {
    ClientSettings::new(kafka)
        .set("isolation.level", "read_uncommitted")
        .set("enable.auto.commit", "false")
        .create_with_context(QuietEof)
}

/// Did the cluster refuse this client for who it is or how it speaks
/// (TLS handshake, certificate, SASL authentication, authorization, a
/// protocol mismatch)? Retrying will not help; the configuration must change.
pub fn is_security_failure(error: &KafkaError, reason: &str) -> bool {
    let code = error.rdkafka_error_code();
    matches!(
        code,
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SSL
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::IllegalSASLState
        )
    ) || [
        // The broker's TLS alerts about our client certificate arrive as
        // transport failures. Not "SSL handshake failed" alone, nor the
        // "incorrect security.protocol" hint: a broker restarting cuts
        // handshakes and first requests too.
        "alert bad certificate",
        "alert certificate required",
        "alert unknown ca",
    ]
    .iter()
    .any(|sign| reason.contains(sign))
}

/// The last security failure ([`is_security_failure`]) a client reported
/// through its context, so that a command can name the cause at once
/// instead of waiting out a timeout that would only say "unreachable".
#[derive(Debug, Clone, Default)]
pub struct SecurityFailures(Arc<Mutex<Option<String>>>);

impl SecurityFailures {
    /// Remembers `error` if it is a security failure.
    pub fn observe(&self, error: &KafkaError, reason: &str) {
        if is_security_failure(error, reason) {
            let text = if reason.is_empty() { error.to_string() } else { reason.to_owned() };
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
        }
    }

    /// The most recent one, if any.
    pub fn last(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Hands `client` its OAUTHBEARER token now. librdkafka asks for it through
/// an event that only a poll serves: rdkafka's admin client polls only its
/// own results, and a reader that asks for metadata or watermarks before its
/// first poll would wait forever. Long-lived clients then refresh through
/// their context ([`oauth_token_refresh`]). A no-op unless the settings use
/// OAUTHBEARER.
pub fn set_oauth_token_now<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    settings: &ClientSettings,
) -> Result<(), String> {
    if settings.get("sasl.mechanism").is_none_or(|m| !m.eq_ignore_ascii_case("OAUTHBEARER")) {
        return Ok(());
    }
    let token = oauth_token(settings.get("sasl.oauthbearer.config")).map_err(|e| e.to_string())?;
    let value = std::ffi::CString::new(token.token).map_err(|e| e.to_string())?;
    let principal = std::ffi::CString::new(token.principal_name).map_err(|e| e.to_string())?;
    let mut err = [0 as std::ffi::c_char; 512];
    // SAFETY: the client handle is live for the borrow; every string is a
    // NUL-terminated CString that outlives the call, no extensions are
    // passed, and `err` is a writable buffer of the length given.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            value.as_ptr(),
            token.lifetime_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        // SAFETY: librdkafka writes a NUL-terminated message into `err`.
        Err(unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned())
    }
}

/// The OAUTHBEARER refresh of a [`ClientContext`] impl: every context
/// Turnstile creates clients with includes this, so a static token works for
/// every client.
#[macro_export]
macro_rules! oauth_token_refresh {
    () => {
        const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

        fn generate_oauth_token(
            &self,
            oauthbearer_config: Option<&str>,
        ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
            $crate::client::oauth_token(oauthbearer_config)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientProperty, Secret, SecurityProtocol};

    fn secured() -> KafkaConfig {
        KafkaConfig {
            bootstrap: "broker:9093".into(),
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: Some("svc".into()),
            sasl_password: Some(Secret::new("hunter2")),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn security_settings_reach_every_client() {
        let settings = ClientSettings::new(&secured());
        assert_eq!(settings.get("bootstrap.servers"), Some("broker:9093"));
        assert_eq!(settings.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(settings.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(settings.get("sasl.username"), Some("svc"));
        assert_eq!(settings.get("sasl.password"), Some("hunter2"));
        assert_eq!(settings.get("ssl.endpoint.identification.algorithm"), Some("https"));
    }

    #[test]
    fn user_properties_come_last_and_are_normalized() {
        let mut kafka = KafkaConfig::default();
        kafka.client.insert("SECURITY_PROTOCOL".into(), ClientProperty::from("SASL_SSL"));
        kafka.client.insert("socket.keepalive.enable".into(), ClientProperty::from("true"));
        let mut settings = ClientSettings::new(&kafka);
        settings.set("socket.keepalive.enable", "false");
        let config = settings.to_client_config();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(
            config.get("socket.keepalive.enable"),
            Some("true"),
            "[kafka.client] is applied after Turnstile's own"
        );
    }

    #[test]
    fn refusals_are_told_from_outages() {
        use rdkafka::error::KafkaError::Global;
        let transport = RDKafkaErrorCode::BrokerTransportFailure;
        assert!(is_security_failure(&Global(RDKafkaErrorCode::Authentication), "SASL authentication error"));
        assert!(is_security_failure(&Global(RDKafkaErrorCode::SSL), "certificate verify failed"));
        assert!(is_security_failure(&Global(transport), "ssl3_read_bytes: sslv3 alert bad certificate"));
        // A broker going away is an outage, whatever the handshake was doing.
        assert!(!is_security_failure(&Global(transport), "Connect to ipv4#127.0.0.1:9092 failed: Connection refused"));
        assert!(!is_security_failure(
            &Global(transport),
            "SSL handshake failed: Disconnected: connecting to a PLAINTEXT broker listener?"
        ));
        assert!(!is_security_failure(
            &Global(transport),
            "Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration"
        ));
    }

    #[test]
    fn a_static_oauth_token_is_handed_as_given() {
        let token = "e30.eyJzdWIiOiJib29raW5nLXN2YyJ9.sig";
        let config = format!("{OAUTH_TOKEN_PREFIX}{token}");
        let got = oauth_token(Some(&config)).unwrap();
        assert_eq!(got.token, token);
        assert!(oauth_token(Some("principal=x")).is_err(), "librdkafka's own unsecured config is not ours");
    }

    #[test]
    fn a_token_file_is_read_at_every_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let config = format!("{OAUTH_FILE_PREFIX}{}", file.display());
        assert_eq!(oauth_token(Some(&config)).unwrap().token, "first");
        std::fs::write(&file, "second").unwrap();
        assert_eq!(oauth_token(Some(&config)).unwrap().token, "second");
        std::fs::remove_file(&file).unwrap();
        let err = oauth_token(Some(&config)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("kafka.sasl_oauthbearer_token_file"), "{err}");
    }
}
