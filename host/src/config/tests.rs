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
        assert_eq!(c.producer.compression_type, "lz4");
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
