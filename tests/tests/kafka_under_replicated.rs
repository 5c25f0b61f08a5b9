//! `status` warns while a broker of a three-broker cluster is down, and stops
//! when it is back; `provision` still counts the broker that is down.
//!
//! Needs a cluster that `scripts/local-kafka` started, since it kills and
//! relaunches node 3; on anything else it prints why and passes:
//!
//! ```sh
//! KAFKA_BROKERS=3 KAFKA_PORT=19092 scripts/with-kafka \
//!     cargo test -p turnstile-tests --test kafka_under_replicated -- --nocapture
//! ```
//!
//! It is a test binary of its own: cargo runs test binaries one after
//! another, so no other test shares the cluster while a broker is down.

use std::time::Duration;

use serde_json::Value;
use turnstile_tests::*;

/// Relaunches a killed node when dropped, so a failing test leaves the
/// cluster whole.
struct Relaunch<'a>(&'a LocalCluster, &'static str);

impl Drop for Relaunch<'_> {
    fn drop(&mut self) {
        self.0.run(&["start", self.1]);
    }
}

fn status(id: u64) -> Value {
    let out = turnstile(["status", "--event", &id.to_string(), "--json"]);
    out.expect_success();
    serde_json::from_str(&out.stdout).expect("status --json is JSON")
}

fn partitions(report: &Value) -> Vec<Value> {
    report["events"][0]["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["partitions"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn status_warns_while_a_broker_is_down_and_clears_when_it_is_back() {
    let cluster = match LocalCluster::find(3) {
        Ok(cluster) => cluster,
        Err(why) => {
            eprintln!("SKIPPED status_warns_while_a_broker_is_down: {why}");
            return;
        }
    };
    let id = unique_event_id();
    // Min ISR 3: with one broker down every partition is below it, too.
    let out = run(turnstile_without_replication_env([
        "provision",
        "--event",
        &id.to_string(),
        "--partitions",
        "2",
        "--min-insync-replicas",
        "3",
    ]));
    out.expect_success();
    assert!(out.stdout.contains("replication factor 3, min ISR 3"), "{out}");
    let total = turnstile::topology::Topology::builtin().event_topics(id).len() * 2;

    // Node 3 is broker 3. The controller takes it out of every ISR once it
    // misses its heartbeats (broker.session.timeout.ms, 9 s).
    cluster.run(&["kill", "3"]);
    let relaunch = Relaunch(&cluster, "3");
    let mut report = Value::Null;
    let flagged = eventually(Duration::from_secs(60), || {
        report = status(id);
        let ps = partitions(&report);
        ps.len() == total && ps.iter().all(|p| p["under_replicated"] == true && p["below_min_isr"] == true)
    });
    assert!(flagged, "not every partition flagged within 60 s: {report:#}");
    assert_eq!(report["brokers"], serde_json::json!([1, 2]));
    for p in partitions(&report) {
        assert!(!p["isr"].as_array().expect("isr").contains(&Value::from(3)), "{p}");
    }
    let warnings: Vec<&str> =
        report["events"][0]["warnings"].as_array().expect("warnings").iter().filter_map(Value::as_str).collect();
    assert_eq!(warnings.len(), total, "{warnings:#?}");
    assert!(
        warnings.iter().all(|w| w.contains("under-replicated: in sync")
            && w.contains("below min ISR: 2 in sync, min.insync.replicas 3")),
        "{warnings:#?}"
    );
    let human = turnstile(["status", "--event", &id.to_string()]);
    human.expect_success();
    let under =
        format!("WARNING: {total} of {total} partitions are under-replicated (replicas out of sync on broker 3)");
    assert!(human.stdout.contains(&under), "{human}");
    assert!(
        human.stdout.contains(&format!("WARNING: {total} of {total} partitions are below their min ISR")),
        "{human}"
    );
    assert!(human.stdout.contains("UNDER-REPLICATED, BELOW MIN ISR"), "{human}");

    // Broker 3 still holds replicas, so provision counts it: 3/2, not 2/1.
    let other = unique_event_id();
    let out = run(turnstile_without_replication_env(["provision", "--event", &other.to_string(), "--partitions", "1"]));
    out.expect_success();
    assert!(
        out.stdout.contains("replication factor 3, min ISR 2 (the default for 3 brokers, 1 of them down)"),
        "{out}"
    );

    drop(relaunch);
    let healed = eventually(Duration::from_secs(90), || {
        report = status(id);
        report["events"][0]["warnings"] == serde_json::json!([])
            && status(other)["events"][0]["warnings"] == serde_json::json!([])
    });
    assert!(healed, "warnings did not clear within 90 s of the relaunch: {report:#}");
    cleanup(id);
    cleanup(other);
}
