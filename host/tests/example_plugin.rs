//! The example plugin (`plugins/example`, walked through in
//! the README, "Writing a plugin") as its author would use it: through `turnstile
//! replay` and `turnstile deploy`, built by `scripts/build-plugins`.

mod plugin_support;

use std::path::Path;
use std::process::{Command, Output};

use plugin_support::wasm_path;
use serde_json::{Value, json};
use turnstile::partition::booking_partition;

const AUDIT_TOPIC: &str = "event-id-42______booking-audit______example-service___to___client";

/// The topic the example's output needs, as `turnstile init` declares it.
const TOPOLOGY: &str = r#"
[[topology.topics]]
action = "booking-audit"
from = "example-service"
to = "client"
routing = "booking"
"#;

/// Runs `turnstile` in `dir`, with the example's topic in `dir/turnstile.toml`.
fn turnstile(dir: &Path, args: &[&str]) -> Output {
    std::fs::write(dir.join("turnstile.toml"), TOPOLOGY).unwrap();
    Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .current_dir(dir)
        .env("TURNSTILE_PLUGIN__CACHE_DIR", dir.join("cache"))
        .env_remove("TURNSTILE_LOG")
        .args(args)
        .output()
        .unwrap()
}

fn status(booking: &str, buyer: u64, status: &str) -> String {
    json!({"action": "booking-status-changed",
           "value": {"type": "booking_status_changed", "booking_id": booking, "buyer_id": buyer, "status": status}})
    .to_string()
}

/// One `booking-audit` per status, routed by booking on the topic the
/// configuration declares, numbered per booking through state that
/// `--state-out` shows; a record that is not a status is refused as invalid
/// and the replay goes on.
#[test]
fn audits_every_status_change_numbered_per_booking() {
    let dir = tempfile::tempdir().unwrap();
    let input = [
        status("b1", 7, "processing"),
        status("b1", 7, "pending_payment"),
        status("b2", 8, "failed"),
        json!({"action": "booking-status-changed", "value": {"type": "pay_booking", "booking_id": "b1"}}).to_string(),
        status("b1", 7, "completed"),
    ]
    .join("\n");
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let wasm = wasm_path("example");
    let out = turnstile(
        dir.path(),
        &[
            "replay",
            "--event",
            "42",
            "--plugin",
            wasm.to_str().unwrap(),
            "--input",
            "in.jsonl",
            "--state-out",
            "s.json",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let audit = |booking: &str, status: &str, change: u64, last: bool| {
        json!({
            "topic": AUDIT_TOPIC,
            "partition": booking_partition(42, booking, 10),
            "key": format!("event-42-booking-{booking}"),
            "value": {"type": "booking_audit", "booking_id": booking, "status": status, "change": change, "final": last},
            "critical": false,
        })
    };
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert_eq!(lines[0], audit("b1", "processing", 1, false));
    assert_eq!(lines[1], audit("b1", "pending_payment", 2, false));
    assert_eq!(lines[2], audit("b2", "failed", 1, true));
    assert_eq!((lines[3]["error"].as_str(), lines[3]["input"].as_u64()), (Some("invalid"), Some(4)), "{}", lines[3]);
    assert_eq!(lines[4], audit("b1", "completed", 3, true));

    let state: Value = serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    let p = booking_partition(42, "b1", 10).to_string();
    assert_eq!(state["partitions"][p], json!([{"key": "changes/b1", "value": "3"}]), "{state}");
}

/// `turnstile deploy` installs it as `example-service` and refuses it (exit 2,
/// nothing installed) as any other service.
#[test]
fn deploys_as_example_service_only() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = wasm_path("example");
    let wasm = wasm.to_str().unwrap();
    let out = turnstile(dir.path(), &["deploy", wasm, "--service", "example-service", "--plugins", "plugins"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("deployed example-service v1: plugin 0.1.0"), "{stdout}");
    assert!(dir.path().join("plugins/example-service/v1/plugin.wasm").is_file());

    let out = turnstile(dir.path(), &["deploy", wasm, "--service", "ticketing-service", "--plugins", "plugins"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("manifest names service `example-service`"), "{stderr}");
    assert!(!dir.path().join("plugins/ticketing-service/v1").exists());

    let out = turnstile(dir.path(), &["plugins", "--service", "example-service", "--plugins", "plugins", "--json"]);
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["current"], 1, "{listing}");
}
