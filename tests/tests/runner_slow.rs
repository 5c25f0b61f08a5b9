//! A run of records that each cost the plugin its whole deadline must cost
//! dead letters, not the partition: the loop keeps polling and committing,
//! the instance never leaves its group, and the records behind them are
//! handled.

use std::time::Duration;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use turnstile::naming::{self, TopicName};
use turnstile_tests::*;

const SERVICE: &str = "misbehave";
const SLOW: usize = 100;
const NORMAL: usize = 20;

/// The misbehave plugin as a service of its own: `misbehave` in from
/// clients, `echo` out to them, all on partition 0 (routed by event).
const TOPOLOGY: &str = r#"
[[topology.topics]]
action = "misbehave"
from = "client"
to = "misbehave"
routing = "event"

[[topology.topics]]
action = "echo"
from = "misbehave"
to = "client"
routing = "event"
"#;

/// 100 records that each spin to the deadline, then 20 normal ones, on one
/// partition. The turn is bounded by half of a 3 s transaction timeout and
/// poll interval; 64 spinning records handed in one turn (the batch, then
/// one per call) took 6.5 s there, so before the turn had a budget the
/// broker aborted every transaction and the member left its group, forever.
#[test]
fn slow_records_are_dead_lettered_once_and_the_partition_moves_on() {
    let id = unique_event_id();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("turnstile.toml");
    std::fs::write(&config, TOPOLOGY).expect("write the topology");
    let config_arg = config.to_string_lossy().into_owned();
    turnstile(["--config", &config_arg, "provision", "--event", &id.to_string(), "--partitions", "2"]).expect_success();
    let env = [
        ("TURNSTILE_PLUGIN__DEADLINE_MS", "100"),
        ("TURNSTILE_RUNNER__TRANSACTION_TIMEOUT_MS", "3000"),
        ("TURNSTILE_RUNNER__MAX_POLL_INTERVAL_MS", "3000"),
    ];
    let mut service = Service::start_configured(SERVICE, id, "1", &config, &env);

    let input = TopicName::flow(id, "misbehave", "client", SERVICE).to_string();
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config().set("acks", "all").create().expect("create a producer");
    let key = naming::event_key(id);
    let records = (0..SLOW)
        .map(|_| r#"{"type":"spin"}"#.to_owned())
        .chain((0..NORMAL).map(|i| format!(r#"{{"type":"normal","n":{i}}}"#)));
    for payload in records {
        producer
            .send(BaseRecord::to(&input).partition(0).key(&key).payload(&payload))
            .map_err(|(e, _)| e)
            .expect("queue a record");
    }
    producer.flush(TIMEOUT).expect("deliver the records");

    let echo = TopicName::flow(id, "echo", SERVICE, "client").to_string();
    let handled = eventually(Duration::from_secs(240), || {
        if let Err(e) = service.check_running() {
            panic!("{e}");
        }
        read_back(&echo).len() >= NORMAL
    });
    assert!(handled, "the records behind the slow ones were never handled\n{}", service.log_tail(40));
    let left = service.log_lines_containing("partitions revoked");
    let failed = service.log_lines_containing("runner failed");
    assert!(
        left.is_empty() && failed.is_empty(),
        "the instance must never leave its group or fail: {left:#?} {failed:#?}"
    );
    service.stop();

    let echoes = read_back(&echo);
    assert_eq!(echoes.len(), NORMAL, "each normal record answered once: {echoes:#?}");
    let dlq = read_back(&naming::dlq_topic(id, SERVICE).to_string());
    let mut sources: Vec<String> = dlq
        .iter()
        .map(|letter| {
            assert_eq!(header(letter, "turnstile.error"), Some("timeout"), "{letter:?}");
            header(letter, "turnstile.source.offset").unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(dlq.len(), SLOW, "every slow record dead-lettered, as a timeout\n{}", service.log_tail(40));
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), SLOW, "each slow record dead-lettered exactly once");
    cleanup(id);
}
