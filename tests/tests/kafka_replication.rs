//! Replication on a real cluster of any size: `provision` takes the
//! replication factor and min ISR from the cluster unless configured, and
//! `status` shows every partition's leader, replicas and ISR. On one broker
//! the defaults are 1/1, on three 3/2 (`KAFKA_BROKERS=3 scripts/test`).

use serde_json::Value;
use turnstile::admin::provision::{default_factor, default_min_isr};
use turnstile_tests::*;

/// The brokers provision counts, and the defaults it should pick for them.
fn expected() -> (usize, i32, i32) {
    let brokers = cluster().brokers().expect("read the brokers").known.len();
    let factor = default_factor(brokers);
    (brokers, factor, default_min_isr(factor))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[test]
fn provision_defaults_replication_to_the_cluster() {
    let id = unique_event_id();
    let (brokers, factor, min_isr) = expected();
    let out = run(turnstile_without_replication_env(["provision", "--event", &id.to_string(), "--partitions", "2"]));
    out.expect_success();
    let origin = format!("the default for {brokers} broker{})", plural(brokers));
    assert!(out.stdout.contains(&format!("replication factor {factor}, min ISR {min_isr} ({origin}")), "{out}");

    let cluster = cluster();
    let replicas = cluster.replicas().expect("read replicas").topics;
    let topics = event_topics_on_broker(id);
    assert_eq!(topics.len(), turnstile::topology::Topology::builtin().event_topics(id).len());
    for topic in topics.keys() {
        for p in &replicas[topic] {
            assert_eq!(p.replicas.len(), factor as usize, "{topic}: {p:?}");
        }
        let config = cluster.topic_config(topic).expect("describe topic");
        assert_eq!(config.get("min.insync.replicas"), Some(&min_isr.to_string()), "{topic}");
    }
    cleanup(id);
}

#[test]
fn configured_replication_wins_over_the_cluster() {
    let id = unique_event_id();
    let mut cmd = turnstile_without_replication_env([
        "provision",
        "--event",
        &id.to_string(),
        "--partitions",
        "1",
        "--replication",
        "1",
    ]);
    cmd.env("TURNSTILE_KAFKA__MIN_INSYNC_REPLICAS", "1");
    let out = run(cmd);
    out.expect_success();
    assert!(out.stdout.contains("replication factor 1, min ISR 1 (both configured)"), "{out}");
    let replicas = cluster().replicas().expect("read replicas").topics;
    for topic in event_topics_on_broker(id).keys() {
        assert!(replicas[topic].iter().all(|p| p.replicas.len() == 1), "{topic}: {:?}", replicas[topic]);
    }
    cleanup(id);
}

#[test]
fn replication_the_cluster_cannot_meet_is_refused_naming_the_key() {
    let id = unique_event_id().to_string();
    let (brokers, factor, _) = expected();
    let too_many = (brokers + 1).to_string();
    let out = run(turnstile_without_replication_env(["provision", "--event", &id, "--replication", &too_many]));
    out.expect_code(2);
    assert!(out.stderr.contains("kafka.replication_factor"), "{out}");
    assert!(out.stderr.contains(&format!("more than the {brokers} broker{} of", plural(brokers))), "{out}");

    let mut cmd = turnstile_without_replication_env(["provision", "--event", &id]);
    cmd.env("TURNSTILE_KAFKA__MIN_INSYNC_REPLICAS", (factor + 1).to_string());
    let out = run(cmd);
    out.expect_code(2);
    assert!(out.stderr.contains("kafka.min_insync_replicas"), "{out}");
    assert!(out.stderr.contains(&format!("larger than the replication factor {factor}")), "{out}");
    assert!(event_topics_on_broker(id.parse().expect("id")).is_empty(), "nothing was created");
}

#[test]
fn status_shows_leader_replicas_and_isr_of_every_partition() {
    let id = unique_event_id();
    let (_, factor, min_isr) = expected();
    run(turnstile_without_replication_env(["provision", "--event", &id.to_string(), "--partitions", "2"]))
        .expect_success();

    let out = turnstile(["status", "--event", &id.to_string(), "--json"]);
    out.expect_success();
    let report: Value = serde_json::from_str(&out.stdout).expect("status --json is JSON");
    let live = report["brokers"].as_array().expect("brokers");
    assert!(live.len() >= factor as usize, "{out}");
    let event = &report["events"][0];
    assert_eq!(event["warnings"], serde_json::json!([]), "{out}");
    let topics = event["topics"].as_array().expect("topics");
    assert_eq!(topics.len(), turnstile::topology::Topology::builtin().event_topics(id).len());
    for topic in topics {
        assert_eq!(topic["min_insync_replicas"], min_isr, "{topic}");
        for p in topic["partitions"].as_array().expect("partitions") {
            let ids = |key: &str| {
                let mut v: Vec<i64> = p[key].as_array().expect(key).iter().filter_map(Value::as_i64).collect();
                v.sort_unstable();
                v
            };
            assert_eq!(ids("replicas").len(), factor as usize, "{p}");
            assert_eq!(ids("isr"), ids("replicas"), "{p}");
            assert!(ids("replicas").contains(&p["leader"].as_i64().expect("a leader")), "{p}");
            assert_eq!((&p["under_replicated"], &p["below_min_isr"]), (&Value::Bool(false), &Value::Bool(false)));
        }
    }

    let human = turnstile(["status", "--event", &id.to_string()]);
    human.expect_success();
    for column in ["LEADER", "REPLICAS", "ISR", "MIN-ISR", "STATE"] {
        assert!(human.stdout.contains(column), "{column}: {human}");
    }
    assert!(!human.stdout.contains("WARNING"), "{human}");
    cleanup(id);
}
