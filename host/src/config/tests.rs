//! Layering, provenance and validation, through figment's test jail.
// figment's test jail returns its large error type by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use figment::Jail;

use super::*;

fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
    Loaded::load(None, overrides).map(|l| l.config)
}

#[test]
fn defaults_follow_the_seed() {
    Jail::expect_with(|_| {
        let c = load(&Overrides::default()).unwrap();
        assert_eq!(c.producer.linger_ms, 50);
        assert_eq!(c.producer.batch_size, 524_288);
        assert_eq!(c.kafka.compression, "lz4");
        assert_eq!(c.kafka.partitions, 10);
        Ok(())
    });
}

#[test]
fn a_message_that_cannot_finish_inside_its_transaction_is_refused() {
    let mut c = Config::default();
    assert_eq!(c.worst_case_message_ms(), 5 * 1000 + 50 + 100 + 200);
    assert!(c.validate().is_ok());
    c.plugin.deadline_ms = 5_000;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("runner.transaction_timeout_ms") && err.contains("25350 ms"), "{err}");
    c.runner.transaction_timeout_ms = 60_000;
    c.runner.max_poll_interval_ms = 60_000;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("runner.restore_timeout_ms") && err.contains("dead owner"), "{err}");
    c.runner.restore_timeout_ms = 90_000;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("runner.wedge_timeout_ms") && err.contains("slow loop turn"), "{err}");
    c.runner.wedge_timeout_ms = 90_000;
    assert!(c.validate().is_ok(), "raising the timeouts makes room");
    // The backoff doubles but is capped.
    let mut c = Config::default();
    c.runner.max_retries = 20;
    c.plugin.deadline_ms = 1;
    c.runner.max_retry_backoff_ms = 100;
    assert_eq!(c.worst_case_message_ms(), 22 + 50 + 19 * 100);
}

#[test]
fn plugin_limits_must_fit_the_record_and_memory_budget() {
    let mut c = Config::default();
    c.plugin.max_value_bytes = 999_500;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("plugin.max_value_bytes"), "{err}");
    let mut c = Config::default();
    c.plugin.max_pending_state_bytes = 65 << 20;
    assert!(c.validate().unwrap_err().to_string().contains("plugin.max_pending_state_bytes"));
}

#[test]
fn layers_override_in_order() {
    Jail::expect_with(|jail| {
        jail.create_file(DEFAULT_FILE, "[kafka]\npartitions = 4\nbootstrap = \"file:1\"\n")?;
        jail.set_env("KAFKA_BOOTSTRAP_SERVERS", "seed:2");
        let c = load(&Overrides::default()).unwrap();
        assert_eq!(c.kafka.partitions, 4);
        assert_eq!(c.kafka.bootstrap, "seed:2");
        jail.set_env("TURNSTILE_KAFKA__BOOTSTRAP", "env:3");
        assert_eq!(load(&Overrides::default()).unwrap().kafka.bootstrap, "env:3");
        let mut flags = Overrides::default();
        flags.set("kafka.bootstrap", Some("flag:4"));
        let loaded = Loaded::load(None, &flags).unwrap();
        assert_eq!(loaded.config.kafka.bootstrap, "flag:4");
        let sources: BTreeMap<_, _> = loaded.provenance().into_iter().collect();
        assert_eq!(sources["kafka.bootstrap"], "command-line flag");
        assert!(sources["kafka.partitions"].contains(DEFAULT_FILE), "{}", sources["kafka.partitions"]);
        assert_eq!(sources["producer.linger_ms"], "default");
        Ok(())
    });
}

#[test]
fn seed_variables_are_understood() {
    Jail::expect_with(|jail| {
        jail.set_env("EVENT_ID", "7");
        jail.set_env("CONSUMER_GROUP_ID", "g");
        jail.set_env("KAFKA_CONSUMER_INSTANCE_ID", "2");
        jail.set_env("KAFKA_PRODUCER_INSTANCE_ID", "producer-12345");
        let c = load(&Overrides::default()).unwrap();
        assert_eq!(c.service.event_id, Some(7));
        assert_eq!(c.service.group_id.as_deref(), Some("g"));
        assert_eq!(c.service.consumer_instance_id, "2");
        assert_eq!(c.service.producer_instance_id.as_deref(), Some("producer-12345"));
        Ok(())
    });
}

#[test]
fn bad_configuration_names_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file(DEFAULT_FILE, "[kafka]\npartitionz = 4\n")?;
        let err = load(&Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("partitionz"), "{err}");

        jail.create_file(DEFAULT_FILE, "[kafka]\npartitions = \"ten\"\n")?;
        let err = load(&Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("partitions"), "{err}");

        jail.create_file(DEFAULT_FILE, "[kafka]\npartitions = 0\n")?;
        let err = load(&Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("kafka.partitions") && err.contains("out of range"), "{err}");

        jail.create_file(DEFAULT_FILE, "")?;
        jail.set_env("TURNSTILE_RUNNER__MAX_BATCH", "-1");
        let err = load(&Overrides::default()).unwrap_err().to_string();
        assert!(err.to_lowercase().contains("runner.max_batch"), "{err}");
        Ok(())
    });
}

#[test]
fn replication_is_unset_unless_configured_in_any_layer() {
    Jail::expect_with(|jail| {
        let loaded = Loaded::load(None, &Overrides::default()).unwrap();
        assert_eq!(loaded.config.kafka.replication_factor, None);
        assert_eq!(loaded.config.kafka.min_insync_replicas, None);
        let sources: BTreeMap<_, _> = loaded.provenance().into_iter().collect();
        assert!(sources["kafka.replication_factor"].contains("from the cluster"), "{sources:?}");

        jail.create_file(DEFAULT_FILE, "[kafka]\nreplication_factor = 2\n")?;
        let c = load(&Overrides::default()).unwrap();
        assert_eq!((c.kafka.replication_factor, c.kafka.min_insync_replicas), (Some(2), None));
        jail.set_env("TURNSTILE_KAFKA__REPLICATION_FACTOR", "3");
        jail.set_env("TURNSTILE_KAFKA__MIN_INSYNC_REPLICAS", "2");
        let c = load(&Overrides::default()).unwrap();
        assert_eq!((c.kafka.replication_factor, c.kafka.min_insync_replicas), (Some(3), Some(2)));
        let mut flags = Overrides::default();
        flags.set("kafka.replication_factor", Some(1));
        let err = load(&flags).unwrap_err().to_string();
        assert!(err.contains("kafka.min_insync_replicas") && err.contains("larger than"), "{err}");
        flags.set("kafka.min_insync_replicas", Some(1));
        let loaded = Loaded::load(None, &flags).unwrap();
        assert_eq!(loaded.config.kafka.replication_factor, Some(1));
        let sources: BTreeMap<_, _> = loaded.provenance().into_iter().collect();
        assert_eq!(sources["kafka.replication_factor"], "command-line flag");

        jail.set_env("TURNSTILE_KAFKA__REPLICATION_FACTOR", "0");
        let err = Loaded::load(None, &Overrides::default()).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("kafka.replication_factor") && err.contains("out of range"), "{err}");
        Ok(())
    });
}

#[test]
fn bootstrap_must_be_host_port() {
    let mut c = Config::default();
    c.kafka.bootstrap = "localhost".into();
    assert!(c.validate().unwrap_err().to_string().contains("kafka.bootstrap"));
    c.kafka.bootstrap = "a:1,b:2".into();
    assert!(c.validate().is_ok());
}

#[test]
fn script_variables_are_not_configuration() {
    Jail::expect_with(|jail| {
        jail.set_env("TURNSTILE_CACHE", "/tmp/x");
        assert!(load(&Overrides::default()).is_ok());
        Ok(())
    });
}

#[test]
fn topology_topics_come_from_the_file_and_bad_ones_are_refused() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "turnstile.toml",
            "[[topology.topics]]\naction = \"booking-audit\"\nfrom = \"audit-service\"\nto = \"client\"\nrouting = \"booking\"\n",
        )?;
        let c = load(&Overrides::default()).unwrap();
        assert!(c.topology().services().contains(&"audit-service"));
        jail.create_file(
            "turnstile.toml",
            "[[topology.topics]]\naction = \"booking-command\"\nfrom = \"a\"\nto = \"b\"\nrouting = \"event\"\n",
        )?;
        let err = load(&Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("topology.topics") && err.contains("`booking-command` already has a topic"), "{err}");
        jail.create_file(
            "turnstile.toml",
            "[[topology.topics]]\naction = \"x\"\nfrom = \"a\"\nto = \"b\"\nrouting = \"sideways\"\n",
        )?;
        let err = load(&Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("sideways"), "{err}");
        Ok(())
    });
}

#[test]
fn secured_cluster_settings_come_from_the_seed_style_environment() {
    Jail::expect_with(|jail| {
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL");
        jail.set_env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512");
        jail.set_env("KAFKA_SASL_USERNAME", "booking");
        jail.set_env("KAFKA_SASL_PASSWORD", "hunter2");
        let loaded = Loaded::load(None, &Overrides::default()).unwrap();
        let k = &loaded.config.kafka;
        assert_eq!(k.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(k.sasl_mechanism, Some(SaslMechanism::ScramSha512));
        assert_eq!(k.sasl_password.as_ref().map(Secret::expose), Some("hunter2"));
        // Never shown: not in `turnstile config`, not in Debug; the source is.
        let shown = loaded.config.to_toml();
        assert!(!shown.contains("hunter2") && shown.contains("sasl_password = \"***\""), "{shown}");
        assert!(!format!("{:?}", loaded.config).contains("hunter2"));
        let source = loaded.provenance().into_iter().find(|(key, _)| key == "kafka.sasl_password").unwrap().1;
        assert!(source.contains("environment"), "{source}");
        Ok(())
    });
}

#[test]
fn kafka_client_passes_properties_and_hides_secrets() {
    Jail::expect_with(|jail| {
        jail.create_file(
            DEFAULT_FILE,
            "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"PLAIN\"\n\
             \"sasl.username\" = \"key\"\n\"sasl.password\" = \"s3cret\"\n",
        )?;
        jail.set_env("TURNSTILE_KAFKA__CLIENT__SOCKET_KEEPALIVE_ENABLE", "true");
        let loaded = Loaded::load(None, &Overrides::default()).unwrap();
        let settings = crate::client::ClientSettings::new(&loaded.config.kafka);
        assert_eq!(settings.get("sasl.password"), Some("s3cret"));
        assert_eq!(settings.get("socket.keepalive.enable"), Some("true"), "env keys become librdkafka's dotted names");
        let shown = loaded.config.to_toml();
        assert!(!shown.contains("s3cret") && shown.contains("\"sasl.username\" = \"key\""), "{shown}");
        Ok(())
    });
}

#[test]
fn kafka_client_refuses_what_turnstile_owns_and_what_librdkafka_lacks() {
    let refused = |key: &str, value: &str| {
        let mut c = Config::default();
        c.kafka.client.insert(key.into(), ClientProperty::from(value));
        c.validate().unwrap_err().to_string()
    };
    for (key, names) in [
        ("transactional.id", "transactional.id"),
        ("isolation.level", "read_committed"),
        ("enable.auto.commit", "transactions"),
        ("partitioner", "partition"),
        ("bootstrap.servers", "kafka.bootstrap"),
        ("compression.type", "kafka.compression"),
    ] {
        let err = refused(key, "x");
        assert!(err.contains(key) && err.contains(names), "{key}: {err}");
    }
    let err = refused("sasl.usernme", "x");
    assert!(err.contains("kafka.client") && err.contains("sasl.usernme"), "{err}");
    let err = refused("security.protocol", "tls");
    assert!(err.contains("security.protocol"), "{err}");
    // Set both ways: ambiguous.
    let mut c = Config::default();
    c.kafka.security_protocol = SecurityProtocol::Ssl;
    c.kafka.client.insert("security.protocol".into(), ClientProperty::from("ssl"));
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("kafka.security_protocol"), "{err}");
}

#[test]
fn security_settings_must_fit_together() {
    let mut c = Config::default();
    c.kafka.security_protocol = SecurityProtocol::SaslSsl;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("kafka.sasl_mechanism"), "{err}");
    c.kafka.sasl_mechanism = Some(SaslMechanism::ScramSha256);
    assert!(c.validate().unwrap_err().to_string().contains("kafka.sasl_username"));
    c.kafka.sasl_username = Some("u".into());
    assert!(c.validate().unwrap_err().to_string().contains("kafka.sasl_password"));
    c.kafka.sasl_password_file = Some("/nonexistent/password".into());
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("kafka.sasl_password_file") && err.contains("/nonexistent/password"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "from-a-file\n").unwrap();
    c.kafka.sasl_password_file = Some(file);
    assert!(c.validate().is_ok());
    assert_eq!(c.kafka.sasl_password().unwrap().unwrap().expose(), "from-a-file");

    // TLS files on a plaintext cluster, a certificate without its key.
    let mut c = Config::default();
    c.kafka.ssl_ca_location = Some(dir.path().join("password"));
    assert!(c.validate().unwrap_err().to_string().contains("uses no TLS"));
    c.kafka.security_protocol = SecurityProtocol::Ssl;
    assert!(c.validate().is_ok());
    c.kafka.ssl_certificate_location = Some(dir.path().join("password"));
    assert!(c.validate().unwrap_err().to_string().contains("kafka.ssl_key_location"));
    // SASL settings without SASL.
    let mut c = Config::default();
    c.kafka.sasl_username = Some("u".into());
    assert!(c.validate().unwrap_err().to_string().contains("uses no SASL"));
    // OAUTHBEARER needs a token.
    let mut c = Config::default();
    c.kafka.security_protocol = SecurityProtocol::SaslSsl;
    c.kafka.sasl_mechanism = Some(SaslMechanism::OauthBearer);
    assert!(c.validate().unwrap_err().to_string().contains("kafka.sasl_oauthbearer_token"));
    c.kafka.sasl_oauthbearer_token = Some(Secret::new("t"));
    assert!(c.validate().is_ok());
}

#[test]
fn compression_is_one_setting_for_every_producer() {
    let mut c = Config::default();
    c.kafka.compression = "brotli".into();
    assert!(c.validate().unwrap_err().to_string().contains("kafka.compression"));
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        c.kafka.compression = codec.into();
        assert!(c.validate().is_ok(), "{codec}");
        assert_eq!(crate::publisher::producer_properties(&c).get("compression.type"), Some(codec));
    }
}

#[test]
fn token_settings_are_checked_against_each_other() {
    let c = Config::default();
    assert_eq!((c.gateway.token_leeway_s, c.gateway.max_token_lifetime_s), (5, 86_400));
    assert!(c.validate().is_ok());
    // `gateway token` must not print tokens the gateway refuses.
    let mut c = Config::default();
    c.gateway.token_ttl_s = c.gateway.max_token_lifetime_s + 1;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("gateway.token_ttl_s") && err.contains("gateway.max_token_lifetime_s"), "{err}");
    let mut c = Config::default();
    c.gateway.max_token_lifetime_s = 0;
    assert!(c.validate().unwrap_err().to_string().contains("gateway.max_token_lifetime_s"));
    let mut c = Config::default();
    c.gateway.token_leeway_s = 301;
    assert!(c.validate().unwrap_err().to_string().contains("gateway.token_leeway_s"));
    let mut c = Config::default();
    c.gateway.token_issuer = Some(" ".into());
    assert!(c.validate().unwrap_err().to_string().contains("gateway.token_issuer"));
    let mut c = Config::default();
    c.gateway.token_audience = Some(String::new());
    assert!(c.validate().unwrap_err().to_string().contains("gateway.token_audience"));
    c.gateway.token_audience = Some("turnstile-gateway".into());
    c.gateway.token_issuer = Some("https://tickets.example".into());
    assert!(c.validate().is_ok());
}

#[test]
fn gateway_limits_are_checked_and_the_old_name_of_the_ack_timeout_still_reads() {
    let refused = |edit: fn(&mut Config), key: &str| {
        let mut c = Config::default();
        edit(&mut c);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    };
    refused(|c| c.gateway.max_header_bytes = 4_096, "gateway.max_header_bytes");
    refused(|c| c.gateway.max_connections = 0, "gateway.max_connections");
    refused(|c| c.gateway.admin_listen = Some(c.gateway.listen.clone()), "gateway.admin_listen");
    refused(|c| c.gateway.admin_listen = Some("nowhere".into()), "gateway.admin_listen");
    refused(|c| c.gateway.idempotency_ttl_s = 1, "gateway.idempotency_ttl_s");
    refused(|c| c.gateway.linger_ms = 5_000, "gateway.linger_ms");
    let old: GatewayConfig = toml::from_str("critical_timeout_ms = 1234").unwrap();
    assert_eq!(old.ack_timeout_ms, 1_234);
}
