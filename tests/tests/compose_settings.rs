//! One source of truth for the cluster's broker settings: every broker service
//! of `docker-compose.yml` must run exactly the settings of
//! `scripts/kafka/cluster.properties`, which `KAFKA_BROKERS=3
//! scripts/local-kafka start` runs. No broker needed.
//!
//! Compose spells a setting as an environment variable of the apache/kafka
//! image: `KAFKA_` + the property name upper-cased with `.` as `_`
//! (`KAFKA_MIN_INSYNC_REPLICAS` is `min.insync.replicas`). What differs per
//! node by nature (node id, listeners, log dirs) is left out of the
//! comparison; the quorum is compared by its shape (the same voter ids, each
//! at the node with that id and its controller listener).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

/// Settings each node has its own value of; the script writes them per node.
const PER_NODE: &[&str] =
    &["node.id", "listeners", "advertised.listeners", "listener.security.protocol.map", "log.dirs"];

/// Variables of the apache/kafka image that are not broker properties.
const NOT_PROPERTIES: &[&str] =
    &["KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_JMX_OPTS"];

const SHARED: &str = "scripts/kafka/cluster.properties";
const LOCAL: &str = "scripts/kafka/local.properties";

fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// `key=value` lines, comments and blank lines skipped (what
/// scripts/local-kafka copies into server.properties).
fn parse_properties(text: &str, origin: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{origin}: not key=value: {line}"));
        let previous = out.insert(key.trim().to_owned(), value.trim().to_owned());
        assert!(previous.is_none(), "{origin}: {} is set twice", key.trim());
    }
    out
}

/// `KAFKA_MIN_INSYNC_REPLICAS` → `min.insync.replicas`; `None` for variables
/// that are not broker properties.
fn property_name(variable: &str) -> Option<String> {
    if NOT_PROPERTIES.contains(&variable) {
        return None;
    }
    variable.strip_prefix("KAFKA_").map(|rest| rest.to_ascii_lowercase().replace('_', "."))
}

/// The variable that sets `property` (for messages).
fn variable_name(property: &str) -> String {
    format!("KAFKA_{}", property.to_ascii_uppercase().replace('.', "_"))
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A mapping with its `<<` merge keys applied (keys written out win).
/// Anchors are already resolved by the loader, aliases become copies.
fn merged(hash: &Hash) -> Hash {
    let mut out = Hash::new();
    if let Some(base) = hash.get(&Yaml::String("<<".into())) {
        let bases = match base {
            Yaml::Array(list) => list.clone(),
            other => vec![other.clone()],
        };
        for base in bases {
            if let Yaml::Hash(h) = base {
                for (k, v) in merged(&h) {
                    out.insert(k, v);
                }
            }
        }
    }
    for (k, v) in hash {
        if k.as_str() != Some("<<") {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// One Kafka service of the compose file.
struct Broker {
    service: String,
    /// Its host name inside the compose network.
    hostname: String,
    /// `CLUSTER_ID`.
    cluster_id: Option<String>,
    /// Broker properties from its `KAFKA_*` variables, with the variable names.
    properties: BTreeMap<String, (String, String)>,
}

/// The services of `docker-compose.yml` that set `KAFKA_NODE_ID`.
fn compose_brokers(text: &str) -> Vec<Broker> {
    let docs = YamlLoader::load_from_str(text).expect("docker-compose.yml is YAML");
    let doc = docs.first().expect("docker-compose.yml has a document");
    let services = doc["services"].as_hash().expect("docker-compose.yml has services");
    let mut brokers = Vec::new();
    for (name, service) in services {
        let name = name.as_str().expect("a service name is a string").to_owned();
        let service = merged(service.as_hash().unwrap_or_else(|| panic!("service {name} is a mapping")));
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        match service.get(&Yaml::String("environment".into())) {
            Some(Yaml::Hash(h)) => {
                for (k, v) in merged(h) {
                    let key = k.as_str().unwrap_or_else(|| panic!("{name}: environment key")).to_owned();
                    let value = scalar(&v).unwrap_or_else(|| panic!("{name}: {key} is not a scalar"));
                    env.insert(key, value);
                }
            }
            Some(Yaml::Array(list)) => {
                for item in list {
                    let item = item.as_str().unwrap_or_else(|| panic!("{name}: environment entry"));
                    let (k, v) = item.split_once('=').unwrap_or((item, ""));
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
            _ => {}
        }
        if !env.contains_key("KAFKA_NODE_ID") {
            continue;
        }
        let hostname = service
            .get(&Yaml::String("hostname".into()))
            .and_then(Yaml::as_str)
            .map_or_else(|| name.clone(), str::to_owned);
        let cluster_id = env.get("CLUSTER_ID").cloned();
        let properties =
            env.into_iter().filter_map(|(var, value)| property_name(&var).map(|p| (p, (value, var)))).collect();
        brokers.push(Broker { service: name, hostname, cluster_id, properties });
    }
    brokers
}

/// `1@{node1},2@{node2}` → `[(1, "{node1}")…]`; `1@kafka1:9093` → `[(1, "kafka1:9093")]`.
fn voters(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .map(|v| {
            let (id, at) = v.trim().split_once('@').unwrap_or((v, ""));
            (id.to_owned(), at.to_owned())
        })
        .collect()
}

/// Every difference between the compose file's brokers and the two property
/// files, each naming the setting (empty: they agree).
fn differences(compose: &str, shared: &str, local: &str) -> Vec<String> {
    let shared = parse_properties(shared, SHARED);
    let local = parse_properties(local, LOCAL);
    let brokers = compose_brokers(compose);
    let mut found = Vec::new();

    for key in local.keys().filter(|k| shared.contains_key(*k)) {
        found.push(format!("{key} is in both {SHARED} and {LOCAL}; it belongs in one"));
    }
    for key in shared.keys().filter(|k| PER_NODE.contains(&k.as_str())) {
        found.push(format!("{SHARED} sets {key}, which scripts/local-kafka writes per node"));
    }
    let template = shared.get("controller.quorum.voters").map(|v| voters(v)).unwrap_or_default();
    if brokers.len() != template.len() {
        found.push(format!(
            "docker-compose.yml has {} broker services (with KAFKA_NODE_ID), {SHARED} a quorum of {} \
             (controller.quorum.voters)",
            brokers.len(),
            template.len()
        ));
    }
    let ids: BTreeMap<String, &Broker> =
        brokers.iter().filter_map(|b| b.properties.get("node.id").map(|(id, _)| (id.clone(), b))).collect();
    if ids.len() != brokers.len() {
        found.push("two broker services of docker-compose.yml have the same KAFKA_NODE_ID".into());
    }
    let cluster_ids: BTreeSet<&Option<String>> = brokers.iter().map(|b| &b.cluster_id).collect();
    if cluster_ids.len() > 1 {
        found.push("the broker services of docker-compose.yml have different CLUSTER_IDs".into());
    }
    let controller_listener = shared.get("controller.listener.names").cloned().unwrap_or_default();

    for broker in &brokers {
        let service = &broker.service;
        for (key, expected) in &shared {
            let actual = broker.properties.get(key);
            if key == "controller.quorum.voters" {
                let Some((value, _)) = actual else {
                    found.push(format!(
                        "{service}: {key} is not set in docker-compose.yml (KAFKA_CONTROLLER_QUORUM_VOTERS)"
                    ));
                    continue;
                };
                found.extend(quorum_differences(service, value, &template, &ids, &controller_listener));
                continue;
            }
            match actual {
                None => found.push(format!(
                    "{service}: {key} is {expected} in {SHARED} but not set in docker-compose.yml ({}: {expected})",
                    variable_name(key)
                )),
                Some((value, var)) if value != expected => found.push(format!(
                    "{service}: {key} is {expected} in {SHARED} but {value} in docker-compose.yml ({var})"
                )),
                Some(_) => {}
            }
        }
        for (key, (value, var)) in &broker.properties {
            if shared.contains_key(key) || PER_NODE.contains(&key.as_str()) {
                continue;
            }
            if local.contains_key(key) {
                found.push(format!(
                    "{service}: docker-compose.yml sets {key} ({var}: {value}), which is local-only tuning in {LOCAL}; \
                     move it to {SHARED} or drop it from compose"
                ));
            } else {
                found.push(format!(
                    "{service}: docker-compose.yml sets {key} ({var}: {value}), which {SHARED} does not; add it there"
                ));
            }
        }
    }
    found
}

/// The compose quorum must have the template's voter ids in order, each
/// `id@host:port` the node with that id (its hostname) on its controller
/// listener's port.
fn quorum_differences(
    service: &str,
    value: &str,
    template: &[(String, String)],
    ids: &BTreeMap<String, &Broker>,
    controller_listener: &str,
) -> Vec<String> {
    let key = "controller.quorum.voters";
    let actual = voters(value);
    let template_ids: Vec<&String> = template.iter().map(|(id, _)| id).collect();
    let actual_ids: Vec<&String> = actual.iter().map(|(id, _)| id).collect();
    if template_ids != actual_ids {
        return vec![format!(
            "{service}: {key} has voters {actual_ids:?} in docker-compose.yml but {template_ids:?} in {SHARED}"
        )];
    }
    let mut found = Vec::new();
    for ((id, placeholder), (_, address)) in template.iter().zip(&actual) {
        if placeholder != &format!("{{node{id}}}") {
            found.push(format!("{SHARED}: {key}: voter {id} must be at {{node{id}}}, not {placeholder}"));
        }
        let Some((host, port)) = address.rsplit_once(':') else {
            found.push(format!("{service}: {key}: voter {id} at {address:?} is not host:port"));
            continue;
        };
        let Some(node) = ids.get(id) else {
            found.push(format!("{service}: {key}: voter {id} is no broker service's KAFKA_NODE_ID"));
            continue;
        };
        if host != node.hostname {
            found.push(format!("{service}: {key}: voter {id} is at {host}, but node {id} is {}", node.hostname));
        }
        let listeners = node.properties.get("listeners").map(|(v, _)| v.as_str()).unwrap_or("");
        let controller_port =
            listeners.split(',').find_map(|l| l.strip_prefix(&format!("{controller_listener}://"))?.rsplit_once(':'));
        if controller_port.map(|(_, p)| p) != Some(port) {
            found.push(format!(
                "{service}: {key}: voter {id} is at port {port}, but {}'s {controller_listener} listener is {listeners:?}",
                node.service
            ));
        }
    }
    found
}

#[test]
fn compose_brokers_run_the_cluster_properties() {
    let compose = read("docker-compose.yml");
    let found = differences(&compose, &read(SHARED), &read(LOCAL));
    assert!(
        found.is_empty(),
        "docker-compose.yml and {SHARED} disagree (change both together):\n  - {}",
        found.join("\n  - ")
    );
    let brokers = compose_brokers(&compose);
    assert_eq!(brokers.len(), 3, "docker-compose.yml runs three brokers");
    // The settings the cluster promises, spelled out once more.
    let shared = parse_properties(&read(SHARED), SHARED);
    for (key, value) in [
        ("process.roles", "broker,controller"),
        ("default.replication.factor", "3"),
        ("min.insync.replicas", "2"),
        ("offsets.topic.replication.factor", "3"),
        ("transaction.state.log.replication.factor", "3"),
        ("transaction.state.log.min.isr", "2"),
    ] {
        assert_eq!(shared.get(key).map(String::as_str), Some(value), "{key} in {SHARED}");
    }
}

/// The comparison catches a change on either side and names the setting.
#[test]
fn a_change_on_either_side_is_named() {
    let compose = read("docker-compose.yml");
    let shared = read(SHARED);
    let local = read(LOCAL);
    let one = |compose: &str, shared: &str, local: &str| differences(compose, shared, local).join("\n");

    // The properties file changes, compose does not.
    let text = one(&compose, &shared.replace("min.insync.replicas=2", "min.insync.replicas=1"), &local);
    assert!(text.contains("min.insync.replicas is 1") && text.contains("but 2 in docker-compose.yml"), "{text}");
    let text = one(&compose, &format!("{shared}\nlog.retention.hours=1\n"), &local);
    assert!(text.contains("log.retention.hours is 1") && text.contains("KAFKA_LOG_RETENTION_HOURS"), "{text}");
    let text = one(&compose, &shared.replace("transaction.state.log.min.isr=2\n", ""), &local);
    assert!(text.contains("sets transaction.state.log.min.isr (KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: 2)"), "{text}");

    // Compose changes, the properties file does not.
    let replaced = |from: &str, to: &str| {
        assert!(compose.contains(from), "docker-compose.yml has {from:?}");
        compose.replace(from, to)
    };
    let text = one(
        &replaced("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: 3", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: 1"),
        &shared,
        &local,
    );
    assert!(text.contains("offsets.topic.replication.factor is 3") && text.contains("but 1"), "{text}");
    let text = one(&replaced("  KAFKA_MIN_INSYNC_REPLICAS: 2\n", ""), &shared, &local);
    assert!(text.contains("min.insync.replicas is 2") && text.contains("not set in docker-compose.yml"), "{text}");
    let text = one(
        &replaced("KAFKA_NUM_PARTITIONS: 10", "KAFKA_NUM_PARTITIONS: 10\n  KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS: 10"),
        &shared,
        &local,
    );
    assert!(text.contains("offsets.topic.num.partitions") && text.contains("local-only"), "{text}");
    let text = one(&replaced("2@kafka2:9093", "2@kafka3:9093"), &shared, &local);
    assert!(text.contains("voter 2 is at kafka3, but node 2 is kafka2"), "{text}");
    let text = one(&replaced("3@kafka3:9093", "3@kafka3:9094"), &shared, &local);
    assert!(text.contains("voter 3 is at port 9094"), "{text}");
    // One broker's own override counts as much as the shared block.
    let text =
        one(&replaced("KAFKA_NODE_ID: 3\n", "KAFKA_NODE_ID: 3\n      KAFKA_MIN_INSYNC_REPLICAS: 1\n"), &shared, &local);
    assert!(text.contains("kafka3: min.insync.replicas is 2") && !text.contains("kafka1:"), "{text}");
}
