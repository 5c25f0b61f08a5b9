//! The benchmarks a user runs, on the real broker with the real plugins:
//! `bench drain` drains exactly what it filled and reports against the
//! passthrough, and `sellout --rate` sends at a steady rate and reports
//! latency per hop. Small sizes: these check behaviour, not speed.

use std::path::Path;

use turnstile::load::fill::drain_input;
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::seating::SeatingChart;
use turnstile_protocol::{BookingStatus, BookingStatusChanged};
use turnstile_tests::*;

/// The default venue: 10 sections of 10 subsections.
const CONFIGURE_COMMANDS: u64 = 100;

fn drain(service: &str, messages: usize, dir: &Path) -> (u64, serde_json::Value) {
    let id = unique_event_id();
    let json = dir.join(format!("{service}.json"));
    let plugins = plugin_path(service).parent().expect("a plugin directory").to_path_buf();
    let mut cmd = turnstile_command(["bench", "drain", "--service", service, "--event", &id.to_string()]);
    cmd.args(["--messages", &messages.to_string(), "--timeout", "180", "--json"])
        .arg(&json)
        .arg("--plugin-dir")
        .arg(&plugins)
        .current_dir(dir);
    let out = run(cmd);
    out.expect_success();
    assert!(out.stdout.contains("turnstile / passthrough"), "{out}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).unwrap();
    (id, report)
}

#[test]
fn a_seat_drain_handles_every_filled_command_and_measures_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (id, report) = drain(SEAT_RESERVATION_SERVICE, 3000, dir.path());
    assert_eq!(report["records"], 3000 + CONFIGURE_COMMANDS, "{report}");
    assert!(report["messages_per_second"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["passthrough_messages_per_second"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["transactions"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["service_cpu_us_per_message"].as_f64().unwrap() > 0.0, "{report}");
    // Every command was handled, not just skipped: each reserve has its
    // answer on the committed result topic, and so has each finalize or
    // release of a booking that got its seats.
    let fill = drain_input(SEAT_RESERVATION_SERVICE, id, 6, &SeatingChart::default_venue(), 3000, 1).unwrap();
    let reserves = fill.iter().filter(|r| String::from_utf8_lossy(&r.payload).contains("\"reserve_seats\"")).count();
    let results = read_back(&naming::seat_reservation_result_topic(id).to_string());
    let answered = |kind: &str| results.iter().filter(|r| String::from_utf8_lossy(&r.value).contains(kind)).count();
    assert_eq!(answered("\"seats_reserved\"") + answered("\"reservation_failed\""), reserves);
    assert!(answered("\"seats_sold\"") > reserves / 2, "{} sold of {reserves}", answered("\"seats_sold\""));
    assert!(results.len() <= 3000);
    // The passthrough copied the same records.
    let copied = read_back(&naming::TopicName::flow(id, "bench-passthrough", "bench", "bench").to_string());
    assert_eq!(copied.len() as u64, 3000 + CONFIGURE_COMMANDS);
    cleanup(id);
}

#[test]
fn a_ticketing_drain_decides_the_filled_bookings() {
    let dir = tempfile::tempdir().unwrap();
    let (id, report) = drain(TICKETING_SERVICE, 2600, dir.path());
    assert_eq!(report["records"], 2600, "{report}");
    assert!(report["fraction_of_limit"].as_f64().unwrap() > 0.0, "{report}");
    let statuses: Vec<BookingStatusChanged> = read_back(&naming::booking_status_changed_topic(id).to_string())
        .iter()
        .map(|r| serde_json::from_slice(&r.value).expect("a status message"))
        .collect();
    // Whether a result or pay is read before or after its create depends on
    // how the two input topics are fetched; every create is answered.
    let creates = drain_input(TICKETING_SERVICE, id, 6, &SeatingChart::default_venue(), 2600, 1)
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.payload).contains("\"create_booking\""))
        .count();
    // A refused pay repeats the status with a reason; the answer to a
    // create has none.
    let accepted = statuses.iter().filter(|s| s.status == BookingStatus::Processing && s.reason.is_none()).count();
    assert_eq!(accepted, creates, "one processing status per create");
    cleanup(id);
}

#[test]
fn a_steady_rate_sellout_reports_latency_per_hop() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique_event_id();
    let chart = dir.path().join("chart.json");
    std::fs::write(&chart, r#"{"rows":10,"cols":10,"sections":[{"name":"A","price":100,"subsections":4}]}"#).unwrap();
    let plugins = plugin_path(TICKETING_SERVICE).parent().expect("a plugin directory").to_path_buf();
    let mut cmd = turnstile_command(["sellout", "--event", &id.to_string(), "--rate", "100", "--duration", "3"]);
    cmd.args(["--warmup", "1"]);
    cmd.arg("--seating").arg(&chart).arg("--plugin-dir").arg(&plugins).current_dir(dir.path());
    let out = run(cmd);
    out.expect_success();
    assert!(out.stdout.contains("bookings: 300"), "rate × duration bookings: {out}");
    for hop in
        ["command → seat request", "command → seat result", "command → pending_payment", "command → final status"]
    {
        let line = out.stdout.lines().find(|l| l.contains(hop)).unwrap_or_else(|| panic!("no {hop} line: {out}"));
        let counted: u64 = line.split_whitespace().find_map(|w| w.parse().ok()).unwrap_or(0);
        assert!(counted > 0, "{hop}: {line}");
    }
    cleanup(id);
}
