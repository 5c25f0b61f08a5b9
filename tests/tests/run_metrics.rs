//! `turnstile run --metrics ADDR`, scraped over a real socket while both
//! services run a small sellout on a real broker: the counters agree with
//! what the services did, the instance reports itself running and ready,
//! and a port already in use is refused before anything starts.

use std::time::Duration;

use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 4;
const CHART: &str = r#"{"rows":4,"cols":6,"sections":[{"name":"A","price":100,"subsections":2}]}"#;

fn scrape(addr: &str) -> String {
    let (status, body) = http_get(addr, "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(status, 200, "GET /metrics: {body}");
    body
}

#[test]
fn metrics_follow_a_sellout_and_readiness_follows_the_assignment() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let addr = free_local_addr();
    let mut ticketing = Service::start_with_env(
        TICKETING_SERVICE,
        id,
        "1",
        &[("TURNSTILE_METRICS__LISTEN", addr.as_str()), ("TURNSTILE_METRICS__LAG_INTERVAL_MS", "500")],
    );
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");

    // Up before the group has assigned anything: healthy, not yet ready.
    assert!(
        eventually(Duration::from_secs(30), || http_get(&addr, "/healthz").is_ok_and(|(s, _)| s == 200)),
        "no /healthz on {addr}\n{}",
        describe(&[&ticketing])
    );
    assert!(
        eventually(Duration::from_secs(60), || http_get(&addr, "/readyz")
            .is_ok_and(|(s, b)| s == 200 && b.trim() == "running")),
        "never ready\n{}",
        describe(&[&ticketing])
    );

    let plan = plan_bookings(&chart, 60, id);
    // Lag is reported every lag_interval_ms (set to 500 ms above).
    let mut sellout = Sellout::new(id, PARTITIONS, chart, plan);
    sellout.publish_rest();
    sellout
        .drive_until("all bookings settled", Duration::from_secs(120), &mut [&mut ticketing, &mut seats], |s| {
            s.all_settled()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = sellout.verify_eventually(Duration::from_secs(60));
    outcome.assert_clean(&describe(&[&ticketing, &seats]));

    // Each booking's create and its seat result at least, all committed:
    // every handled record belongs to one committed transaction.
    let settled = |text: &str| {
        let get = |name: &str| metric(text, name, &[]).unwrap_or(-1.0);
        let handled = get("turnstile_records_processed_total")
            + get("turnstile_records_failed_total")
            + get("turnstile_records_forwarded_total");
        get("turnstile_records_processed_total") >= 120.0 && get("turnstile_transaction_records_sum") == handled
    };
    assert!(
        eventually(Duration::from_secs(30), || settled(&scrape(&addr))),
        "counters did not catch up:\n{}",
        scrape(&addr)
    );
    let text = scrape(&addr);
    let labels = [&*format!("service=\"{TICKETING_SERVICE}\""), &*format!("event_id=\"{id}\""), "instance=\"1\""];
    let value = |name: &str| metric(&text, name, &labels).unwrap_or_else(|| panic!("no {name} in\n{text}"));
    assert_eq!(value("turnstile_records_failed_total"), 0.0, "{text}");
    assert_eq!(value("turnstile_records_dead_lettered_total"), 0.0, "{text}");
    let committed = value("turnstile_transactions_committed_total");
    assert!(committed >= 1.0, "{text}");
    assert_eq!(value("turnstile_commit_latency_seconds_count"), committed, "one latency per commit:\n{text}");
    assert!(value("turnstile_plugin_call_seconds_count") >= 1.0, "{text}");
    assert_eq!(metric(&text, "turnstile_instance_state", &["state=\"running\""]), Some(1.0), "{text}");
    assert_eq!(metric(&text, "turnstile_instance_state", &["state=\"error\""]), Some(0.0), "{text}");
    assert_eq!(value("turnstile_assigned_partitions"), f64::from(PARTITIONS), "{text}");
    assert!(
        text.lines().filter(|l| l.starts_with("turnstile_records_lag{")).count() >= PARTITIONS as usize,
        "lag per input partition:\n{text}"
    );

    // A second instance on the same port: refused at once, naming it.
    let taken = turnstile_command([
        "run",
        "--service",
        TICKETING_SERVICE,
        "--event",
        &id.to_string(),
        "--instance",
        "2",
        "--metrics",
        &addr,
    ])
    .arg("--plugin")
    .arg(plugin_path(TICKETING_SERVICE))
    .output()
    .expect("run turnstile");
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert_eq!(taken.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&addr), "the error names the address: {stderr}");

    ticketing.stop();
    seats.stop();
    assert!(http_get(&addr, "/healthz").is_err(), "the endpoint goes with the process");
    cleanup(id);
}
