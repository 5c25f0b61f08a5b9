//! `turnstile replay` end to end through the built binary and the real
//! release components.

mod plugin_support;

use std::path::Path;
use std::process::{Command, Output};

use plugin_support::wasm_path;
use serde_json::{Value, json};

/// Replays `input` through `plugin` in `dir`, whose `turnstile.toml` gives
/// the misbehave plugin's `echo` a topic (the built-in plugins need none).
fn replay(dir: &Path, plugin: &str, input: &str, extra: &[&str]) -> Output {
    let echo = "[[topology.topics]]\naction = \"echo\"\nfrom = \"misbehave\"\nto = \"client\"\nrouting = \"event\"\n";
    std::fs::write(dir.join("turnstile.toml"), echo).unwrap();
    let input_path = dir.join(format!("{plugin}-{}.jsonl", extra.len()));
    std::fs::write(&input_path, input).unwrap();
    Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .current_dir(dir)
        .env("TURNSTILE_PLUGIN__CACHE_DIR", dir.join("cache"))
        .env("TURNSTILE_PLUGIN__DEADLINE_MS", "100")
        .env_remove("TURNSTILE_LOG")
        .args(["replay", "--event", "1", "--plugin"])
        .arg(wasm_path(plugin))
        .arg("--input")
        .arg(&input_path)
        .args(extra)
        .output()
        .unwrap()
}

fn parse_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn replays_the_seat_service_with_production_routing_and_state_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = [
        json!({"action": "ticket-command-request", "value": {"type": "configure_subsection", "section": "C", "subsection": 1, "rows": 2, "seats_per_row": 3, "price": 25}}),
        json!({"action": "ticket-command-request", "value": {"type": "reserve_seats", "booking_id": "b1", "buyer_id": 1, "section": "C", "subsection": 1, "quantity": 2, "seat_selection_mode": "best_available"}}),
    ]
    .map(|v| v.to_string())
    .join("\n")
        + "\n\nnot json\n"
        + &json!({"action": "ticket-command-request", "value": {"type": "no_such_command"}}).to_string()
        + "\n";
    let state = dir.path().join("state.json");
    let out = replay(dir.path(), "reservation", &input, &["--state-out", state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = parse_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[0],
        json!({
            "topic": "event-id-1______seat-reservation-result______seat-reservation-service___to___ticketing-service",
            "partition": turnstile::partition::booking_partition(1, "b1", 10),
            "key": "event-1-booking-b1",
            "value": {"type": "seats_reserved", "booking_id": "b1", "section": "C", "subsection": 1, "seats": ["1-1", "1-2"], "total_price": 50},
            "critical": false,
        })
    );
    assert_eq!((lines[1]["error"].as_str(), lines[1]["input"].as_u64()), (Some("invalid"), Some(4)));
    assert_eq!((lines[2]["error"].as_str(), lines[2]["input"].as_u64()), (Some("invalid"), Some(5)));
    assert!(lines[2]["reason"].is_string());

    // Section C lives on partition 2; the snapshot is readable JSON.
    let snapshot: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(snapshot["service"], "seat-reservation-service");
    let entries = snapshot["partitions"]["2"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["key"] == "bk/b1"), "{snapshot}");

    // From the snapshot, the same reserve is a repeat, and a new booking gets
    // the next seats.
    let input = [
        json!({"action": "ticket-command-request", "value": {"type": "reserve_seats", "booking_id": "b1", "buyer_id": 1, "section": "C", "subsection": 1, "quantity": 2, "seat_selection_mode": "best_available"}}),
        json!({"action": "ticket-command-request", "value": {"type": "reserve_seats", "booking_id": "b2", "buyer_id": 2, "section": "C", "subsection": 1, "quantity": 2, "seat_selection_mode": "best_available"}}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let out = replay(dir.path(), "reservation", &input, &["--state-in", state.to_str().unwrap(), "--partitions", "10"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = parse_lines(&out);
    assert_eq!(second[0]["value"]["seats"], json!(["1-1", "1-2"]));
    assert_eq!(second[1]["value"]["seats"], json!(["2-1", "2-2"]));
}

#[test]
fn replays_the_ticketing_service_with_critical_payment() {
    let dir = tempfile::tempdir().unwrap();
    let input = [
        json!({"action": "booking-command", "value": {"type": "create_booking", "booking_id": "b9", "buyer_id": 4, "section": "VIP", "subsection": 2, "quantity": 1, "seat_selection_mode": "best_available"}}),
        json!({"action": "seat-reservation-result", "value": {"type": "seats_reserved", "booking_id": "b9", "section": "VIP", "subsection": 2, "seats": ["1-1"], "total_price": 100}}),
        json!({"action": "booking-command", "value": {"type": "pay_booking", "booking_id": "b9", "buyer_id": 4}}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let out = replay(dir.path(), "ticketing", &input, &["--partitions", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = parse_lines(&out);
    let status_topic = "event-id-1______booking-status-changed______ticketing-service___to___client";
    let seat_topic = "event-id-1______ticket-command-request______ticketing-service___to___seat-reservation-service";
    let vip = turnstile::partition::section_partition(1, "VIP", 4);
    let statuses: Vec<_> =
        lines.iter().filter(|l| l["topic"] == status_topic).map(|l| l["value"]["status"].clone()).collect();
    assert_eq!(statuses, [json!("processing"), json!("pending_payment"), json!("completed")]);
    let seat_cmds: Vec<_> = lines.iter().filter(|l| l["topic"] == seat_topic).collect();
    assert_eq!(seat_cmds.len(), 2);
    for cmd in &seat_cmds {
        assert_eq!(cmd["partition"], vip);
        assert_eq!(cmd["key"], format!("event-1-section-VIP-partition-{vip}"));
    }
    assert_eq!(seat_cmds[1]["value"]["type"], "finalize_seats");
    assert_eq!(seat_cmds[1]["critical"], true);
    assert_eq!(seat_cmds[0]["critical"], false);
}

#[test]
fn replay_reports_guest_failures_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = [
        r#"{"action":"misbehave","value":{"type":"spin"}}"#,
        r#"{"action":"misbehave","value":{"type":"trap"}}"#,
        r#"{"action":"misbehave","value":{"type":"transient"}}"#,
        r#"{"action":"misbehave","value":"plain text"}"#,
    ]
    .join("\n");
    let out = replay(dir.path(), "misbehave", &input, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = parse_lines(&out);
    let kinds: Vec<_> = lines.iter().map(|l| l["error"].clone()).collect();
    assert_eq!(kinds, [json!("timeout"), json!("trap"), json!("transient"), Value::Null]);
    assert_eq!(lines[3]["value"], "plain text");
    assert_eq!(lines[3]["topic"], "event-id-1______echo______misbehave___to___client");
    assert_eq!(lines[3]["key"], "event-1");
}

#[test]
fn replay_refuses_a_bad_plugin_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not wasm").unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .current_dir(dir.path())
        .args(["replay", "--event", "1", "--plugin"])
        .arg(&bogus)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a WebAssembly binary"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .current_dir(dir.path())
        .env("TURNSTILE_PLUGIN__CACHE_DIR", dir.path().join("cache"))
        .args(["replay", "--event", "1", "--plugin"])
        .arg(wasm_path("misbehave"))
        .args(["--input", "/nonexistent/in.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}
