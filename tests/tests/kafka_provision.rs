//! `turnstile provision` against a real broker.

use std::collections::BTreeMap;

use serde_json::json;
use turnstile::naming::{self, TopicKind};
use turnstile::partition::section_partition;
use turnstile_tests::*;

#[test]
fn provision_creates_exactly_the_event_topics_and_is_idempotent() {
    let id = unique_event_id();
    let first = provision(id, 4);

    let specs = turnstile::topology::Topology::builtin().event_topics(id);
    let expected: BTreeMap<String, i32> = specs.iter().map(|s| (s.name.to_string(), 4)).collect();
    assert_eq!(event_topics_on_broker(id), expected, "{first}");
    assert_eq!(lines_ending_with(&first.stdout, "created"), specs.len(), "{first}");

    let cluster = cluster();
    for spec in &specs {
        let config = cluster.topic_config(&spec.name.to_string()).expect("describe topic");
        let policy = config.get("cleanup.policy").map(String::as_str);
        let expected = if spec.kind == TopicKind::Changelog { "compact" } else { "delete" };
        assert_eq!(policy, Some(expected), "{}", spec.name);
    }

    let second = provision(id, 4);
    assert!(second.stdout.contains("0 created"), "{second}");
    assert_eq!(lines_ending_with(&second.stdout, "exists"), specs.len(), "{second}");
    assert_eq!(event_topics_on_broker(id), expected);
    cleanup(id);
}

#[test]
fn provision_refuses_a_different_partition_count_naming_the_topic() {
    let id = unique_event_id();
    provision(id, 2);
    let run = turnstile(["provision", "--event", &id.to_string(), "--partitions", "3"]);
    assert_ne!(run.code, 0, "{run}");
    let topic = naming::booking_command_topic(id).to_string();
    assert!(run.stderr.contains(&topic), "{run}");
    assert!(run.stderr.contains(&format!("{topic} has 2")), "{run}");
    // Nothing changed.
    assert!(event_topics_on_broker(id).values().all(|&n| n == 2));
    cleanup(id);
}

#[test]
fn provision_publishes_the_seating_chart_by_section() {
    let id = unique_event_id();
    let chart = json!({
        "rows": 3, "cols": 4,
        "sections": [
            {"name": "A", "price": 100, "subsections": 2},
            {"name": "C", "price": 200, "subsections": 1},
            {"name": "VIP", "price": 900, "subsections": 3},
        ]
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chart.json");
    std::fs::write(&path, chart.to_string()).expect("write chart");

    let run = turnstile([
        "provision",
        "--event",
        &id.to_string(),
        "--partitions",
        "10",
        "--seating",
        path.to_str().expect("utf-8 temp path"),
    ]);
    run.expect_success();
    assert!(run.stdout.contains("published 6 configure_subsection"), "{run}");

    let topic = naming::ticket_command_request_topic(id).to_string();
    let records = read_back(&topic);
    assert_eq!(records.len(), 6, "{records:?}");
    let mut seen = Vec::new();
    for record in &records {
        let value = json(record);
        let section = value["section"].as_str().expect("section").to_owned();
        let partition = section_partition(id, &section, 10);
        assert_eq!(record.partition, partition, "{value}");
        assert_eq!(record.key.as_deref(), Some(naming::section_key(id, &section, partition).as_str()));
        let price = match section.as_str() {
            "A" => 100,
            "C" => 200,
            _ => 900,
        };
        assert_eq!(value["type"], "configure_subsection");
        assert_eq!(value["rows"], 3);
        assert_eq!(value["seats_per_row"], 4);
        assert_eq!(value["price"], price);
        seen.push((section, value["subsection"].as_u64().expect("subsection")));
    }
    seen.sort();
    let expected: Vec<(String, u64)> = [("A", 1), ("A", 2), ("C", 1), ("VIP", 1), ("VIP", 2), ("VIP", 3)]
        .iter()
        .map(|(s, n)| ((*s).to_owned(), *n))
        .collect();
    assert_eq!(seen, expected);
    // Within a section (one partition) subsections arrive in order.
    let vip: Vec<u64> = records
        .iter()
        .filter(|r| json(r)["section"] == "VIP")
        .map(|r| json(r)["subsection"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(vip, vec![1, 2, 3]);
    cleanup(id);
}

fn lines_ending_with(text: &str, word: &str) -> usize {
    text.lines().filter(|l| l.trim_end().ends_with(word)).count()
}
