//! `turnstile status` against a real broker.

use serde_json::Value;
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE};
use turnstile_tests::*;

#[test]
fn status_reports_the_lag_of_a_group_that_committed_part_of_a_topic() {
    let id = unique_event_id();
    provision(id, 3);
    let topic = naming::ticket_command_request_topic(id).to_string();
    produce(&topic, 0, 5);
    produce(&topic, 1, 3);
    let group = naming::consumer_group(id, SEAT_RESERVATION_SERVICE);
    commit_offsets(&group, &[(&topic, 0, 2)]);

    let run = turnstile(["status", "--event", &id.to_string(), "--json"]);
    run.expect_success();
    let report: Value = serde_json::from_str(&run.stdout).expect("status --json is JSON");
    let events = report["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{run}");
    let event = &events[0];
    assert_eq!(event["event_id"], id);
    assert_eq!(
        event["topics"].as_array().map(Vec::len),
        Some(turnstile::topology::Topology::builtin().event_topics(id).len())
    );

    let t = event["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic.as_str()))
        .expect("ticket-command-request topic");
    assert_eq!(t["messages"], 8);
    assert_eq!(t["partitions"][0]["high"], 5);
    assert_eq!(t["partitions"][1]["high"], 3);
    assert_eq!(t["partitions"][2]["high"], 0);

    let g = &event["groups"][0];
    assert_eq!(g["name"], group.as_str(), "{run}");
    assert_eq!(g["service"], SEAT_RESERVATION_SERVICE);
    assert_eq!(g["members"].as_array().map(Vec::len), Some(0));
    assert_eq!(g["lag"], 3, "{run}");
    let offset = |p: i64| {
        g["offsets"]
            .as_array()
            .and_then(|os| os.iter().find(|o| o["topic"] == topic.as_str() && o["partition"] == p))
            .unwrap_or_else(|| panic!("partition {p} in {run}"))
    };
    assert_eq!(offset(0)["committed"], 2);
    assert_eq!(offset(0)["end"], 5);
    assert_eq!(offset(0)["lag"], 3);
    assert_eq!(offset(1)["committed"], Value::Null);
    assert_eq!(offset(1)["end"], 3);
    assert_eq!(offset(1)["lag"], Value::Null);

    let human = turnstile(["status", "--event", &id.to_string()]);
    human.expect_success();
    assert!(human.stdout.contains(&group) && human.stdout.contains("lag 3"), "{human}");
    assert!(human.stdout.contains("LOG-END-OFFSET"), "{human}");

    let all = turnstile(["status", "--json"]);
    all.expect_success();
    let all: Value = serde_json::from_str(&all.stdout).expect("JSON");
    assert!(
        all["events"].as_array().is_some_and(|es| es.iter().any(|e| e["event_id"] == id)),
        "status without --event lists every event"
    );
    cleanup(id);
}
