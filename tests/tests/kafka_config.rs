//! Bad configuration is refused with the key named and exit code 2.

use std::time::{Duration, Instant};

use turnstile_tests::*;

#[test]
fn zero_partitions_is_refused() {
    let id = unique_event_id().to_string();
    let mut cmd = turnstile_command(["provision", "--event", &id]);
    cmd.env("TURNSTILE_KAFKA__PARTITIONS", "0");
    let run = run(cmd);
    run.expect_code(2);
    assert!(run.stderr.contains("kafka.partitions"), "{run}");

    let run = turnstile(["provision", "--event", &id, "--partitions", "0"]);
    run.expect_code(2);
    assert!(run.stderr.contains("kafka.partitions"), "{run}");
}

#[test]
fn unknown_key_in_config_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("turnstile.toml");
    std::fs::write(&path, "[kafka]\npartitons = 4\n").expect("write config");
    let run = turnstile(["--config", path.to_str().expect("utf-8 temp path"), "status"]);
    run.expect_code(2);
    assert!(run.stderr.contains("partitons"), "{run}");
}

#[test]
fn unreachable_bootstrap_is_refused() {
    let started = Instant::now();
    let mut cmd = turnstile_command(["--bootstrap", "127.0.0.1:1", "status"]);
    cmd.env("TURNSTILE_KAFKA__REQUEST_TIMEOUT_MS", "1000");
    let run = run(cmd);
    run.expect_code(2);
    assert!(run.stderr.contains("kafka.bootstrap"), "{run}");
    assert!(run.stderr.contains("127.0.0.1:1"), "{run}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// `run` rides out a cluster that is not there yet for
/// `kafka.outage_timeout_ms`, saying what it waits for, instead of exiting
/// at once; then it gives up with the bootstrap named.
#[test]
fn run_waits_for_the_broker_before_giving_up() {
    let started = Instant::now();
    let mut cmd =
        turnstile_command(["--bootstrap", "127.0.0.1:1", "run", "--service", "ticketing-service", "--event", "1"]);
    cmd.arg("--plugin").arg(plugin_path("ticketing-service"));
    cmd.env("TURNSTILE_KAFKA__REQUEST_TIMEOUT_MS", "500").env("TURNSTILE_KAFKA__OUTAGE_TIMEOUT_MS", "4000");
    let run = run(cmd);
    let waited = started.elapsed();
    run.expect_code(2);
    assert!(run.stderr.contains("waiting for Kafka"), "{run}");
    assert!(run.stderr.contains("127.0.0.1:1"), "{run}");
    assert!(waited >= Duration::from_secs(4), "gave up after {waited:?}, before kafka.outage_timeout_ms");
    assert!(waited < Duration::from_secs(30), "took {waited:?}");
}
