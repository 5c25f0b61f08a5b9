//! A record batch that cannot be decoded never stalls a service silently:
//! its partition stands still, but the instance says so in `status`,
//! `/readyz` and its metrics, logs it once rather than on every fetch, and
//! every other partition keeps flowing.
//!
//! The batch is corrupted on the broker's disk, so this needs a broker
//! started by `scripts/local-kafka` on this machine; against any other
//! cluster it prints why and passes.

use std::path::PathBuf;
use std::time::Duration;

use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_protocol::messages::BookingCommand;
use turnstile_tests::*;

const PARTITIONS: i32 = 4;
const CORRUPT_PARTITION: i32 = 0;
const CHART: &str = r#"{"rows":6,"cols":8,"sections":[{"name":"A","price":100,"subsections":2}]}"#;

/// The first log segment of `topic[partition]` in every local broker's data
/// directory that holds a replica of it (`scripts/local-kafka`'s layout).
fn local_segments(topic: &str, partition: i32) -> Vec<PathBuf> {
    let prefix = std::env::var("TURNSTILE_STATE")
        .unwrap_or_else(|_| std::env::temp_dir().join("turnstile-kafka").to_string_lossy().into_owned());
    bootstrap()
        .split(',')
        .filter_map(|address| address.rsplit(':').next()?.parse::<u16>().ok())
        .map(|port| PathBuf::from(format!("{prefix}-{port}/data/{topic}-{partition}/00000000000000000000.log")))
        .filter(|segment| segment.is_file())
        .collect()
}

/// Overwrites the LZ4 frame magic of the first record batch: librdkafka
/// then cannot decompress it, on every fetch. The broker serves segments
/// from the file (no checksum on the way out), so it takes effect at once.
fn corrupt_first_batch(segment: &PathBuf) {
    use std::io::{Read, Seek, SeekFrom, Write};
    // A v2 record batch header is 61 bytes; the compressed records follow.
    const RECORDS_AT: u64 = 61;
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(segment).expect("open the segment");
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(RECORDS_AT)).and_then(|_| file.read_exact(&mut magic)).expect("read the frame");
    assert_eq!(magic, [0x04, 0x22, 0x4d, 0x18], "{} does not start with an LZ4 batch", segment.display());
    file.seek(SeekFrom::Start(RECORDS_AT)).and_then(|_| file.write_all(&[0; 4])).expect("corrupt the frame");
    file.sync_all().expect("sync the segment");
}

#[test]
fn a_batch_that_cannot_be_decoded_is_reported_and_the_other_partitions_flow() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let topic = naming::booking_command_topic(id).to_string();

    // One LZ4 batch of creates on the partition, written and flushed
    // before any service runs, then corrupted on disk.
    let lz4 = BookingClient::with_compression(id, PARTITIONS, "lz4");
    let plan = plan_bookings(&chart, 60, id);
    let (doomed, healthy): (Vec<Planned>, Vec<Planned>) =
        plan.into_iter().partition(|p| lz4.partition_of(&p.command.booking_id) == CORRUPT_PARTITION);
    assert!(!doomed.is_empty() && !healthy.is_empty(), "the plan covers every partition");
    for planned in &doomed {
        lz4.send(&BookingCommand::CreateBooking(planned.command.clone()));
    }
    lz4.flush();
    let segments = local_segments(&topic, CORRUPT_PARTITION);
    if segments.is_empty() {
        eprintln!("SKIPPED: {topic}[{CORRUPT_PARTITION}] is not on a local broker's disk (not scripts/local-kafka)");
        cleanup(id);
        return;
    }
    for segment in &segments {
        corrupt_first_batch(segment);
    }

    let addr = free_local_addr();
    let mut ticketing =
        Service::start_with_env(TICKETING_SERVICE, id, "1", &[("TURNSTILE_METRICS__LISTEN", addr.as_str())]);
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");

    // Bookings on the other partitions are all decided meanwhile.
    let mut sellout = Sellout::new(id, PARTITIONS, chart, healthy);
    sellout.publish_rest();
    sellout
        .drive_until(
            "the healthy partitions' bookings settled",
            Duration::from_secs(120),
            &mut [&mut ticketing, &mut seats],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = describe(&[&ticketing, &seats]);

    // The instance says it is in error, with the reason, everywhere an
    // operator looks.
    assert!(
        eventually(Duration::from_secs(30), || http_get(&addr, "/readyz")
            .is_ok_and(|(status, body)| status == 503 && body.trim() == "error")),
        "/readyz does not report the error: {:?}\n{logs}",
        http_get(&addr, "/readyz")
    );
    // Reports are written once a second.
    let shows_error = || {
        let status = turnstile(["status", "--event", &id.to_string(), "--json"]);
        status.expect_success();
        (status.stdout.contains("\"error: ") && status.stdout.contains("BadCompression"), status.stdout)
    };
    assert!(
        eventually(Duration::from_secs(10), || shows_error().0),
        "status does not show the instance's error and its reason:\n{}\n{logs}",
        shows_error().1
    );
    let (_, metrics) = http_get(&addr, "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("turnstile_consumer_errors_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no consumer_errors counter:\n{metrics}"));
    assert!(errors > 1.0, "each failed fetch counts: {errors}");
    // Logged once, not on every fetch (once a minute; this test is shorter).
    let logged = ticketing.log_lines_containing("consumer error");
    assert_eq!(logged.len(), 1, "{logged:#?}");
    let mentioned = ticketing.log_lines_containing("Invalid compressed data");
    assert!(mentioned.len() <= 2, "the loop's line and the client's, once each: {mentioned:#?}");

    // Nothing of the partition was handled, and nothing was skipped: its
    // committed offset has not moved past the batch.
    let decided = doomed.iter().filter(|p| sellout.latest(&p.command.booking_id).is_some()).count();
    assert_eq!(decided, 0, "a booking of the corrupt batch was decided");
    ticketing.stop();
    seats.stop();
    cleanup(id);
}
