//! Poison messages on `booking-command` go to the ticketing DLQ, unchanged
//! and explained, and the service goes on with the next message.

use std::time::Duration;

use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_protocol::BookingStatus;
use turnstile_tests::*;

const PARTITIONS: i32 = 3;
const CHART: &str = r#"{"rows":2,"cols":3,"sections":[{"name":"A","price":100,"subsections":1}]}"#;

fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[test]
fn poison_commands_are_dead_lettered_with_their_bytes_and_processing_continues() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");

    // Both poisons go ahead of a valid booking, on its partition and key.
    let mut sellout = Sellout::new(id, PARTITIONS, chart.clone(), plan_single_seats(&chart, 1));
    let booking_id = sellout.plan[0].command.booking_id.clone();
    let not_json: &[u8] = b"\xff\xfe{not json at all";
    let unknown_type = format!(r#"{{"type":"refund_booking","booking_id":"{booking_id}","buyer_id":7}}"#);
    sellout.client.send_raw(&booking_id, not_json, &[("trace-id", b"poison-1")]);
    sellout.client.send_raw(&booking_id, unknown_type.as_bytes(), &[]);
    sellout.publish_rest();

    sellout
        .drive_until(
            "the booking sent after the poison is decided",
            Duration::from_secs(120),
            &mut [&mut ticketing, &mut seats],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = describe(&[&ticketing, &seats]);
    assert_eq!(
        sellout.latest(&booking_id),
        Some(BookingStatus::PendingPayment),
        "a single-seat booking in an empty venue must be reserved\n{logs}"
    );
    ticketing.stop();
    seats.stop();

    let commands_topic = naming::booking_command_topic(id).to_string();
    let sent = read_back(&commands_topic);
    let source = |payload: &[u8]| {
        sent.iter().find(|r| r.value == payload).unwrap_or_else(|| panic!("the poison is on {commands_topic}"))
    };
    let dlq = read_back(&naming::dlq_topic(id, TICKETING_SERVICE).to_string());
    assert_eq!(dlq.len(), 2, "exactly the two poisons, once each, in the ticketing DLQ: {dlq:#?}\n{logs}");
    let key = naming::booking_key(id, &booking_id);
    for (letter, payload) in dlq.iter().zip([not_json, unknown_type.as_bytes()]) {
        let original = source(payload);
        assert_eq!(letter.value, payload, "a dead letter keeps the original bytes\n{logs}");
        assert_eq!(letter.key.as_deref(), Some(key.as_str()), "a dead letter keeps the original key");
        assert_eq!(header(letter, "turnstile.error"), Some("invalid"), "{letter:?}");
        assert!(header(letter, "turnstile.reason").is_some_and(|r| !r.is_empty()), "a reason is given: {letter:?}");
        assert_eq!(header(letter, "turnstile.plugin.service"), Some(TICKETING_SERVICE), "{letter:?}");
        assert!(header(letter, "turnstile.plugin.version").is_some_and(|v| !v.is_empty()), "{letter:?}");
        assert_eq!(header(letter, "turnstile.source.topic"), Some(commands_topic.as_str()), "{letter:?}");
        assert_eq!(
            header(letter, "turnstile.source.partition"),
            Some(original.partition.to_string().as_str()),
            "{letter:?}"
        );
        assert_eq!(header(letter, "turnstile.source.offset"), Some(original.offset.to_string().as_str()), "{letter:?}");
    }
    assert_eq!(header(&dlq[0], "trace-id"), Some("poison-1"), "the original headers are kept: {:?}", dlq[0]);
    let reason = header(&dlq[1], "turnstile.reason").unwrap_or_default();
    assert!(reason.contains("refund_booking"), "the reason names the unknown type: {reason:?}");

    // The poisons produced no status, the valid booking its usual two.
    let outcome = sellout.verify();
    outcome.assert_clean(&logs);
    assert_eq!(outcome.status_messages, 2, "processing and pending_payment of the valid booking only\n{logs}");
    assert!(read_back(&naming::dlq_topic(id, SEAT_RESERVATION_SERVICE).to_string()).is_empty());
    cleanup(id);
}

/// A poison record whose key is not UTF-8 must still reach the DLQ with its
/// original key bytes: the DLQ is where an operator finds and replays it.
#[test]
fn a_dead_letter_keeps_a_binary_key() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let id = unique_event_id();
    provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");

    let key: &[u8] = b"\xff\x00binary-key";
    let payload: &[u8] = b"\x00\x01 not a command";
    let topic = naming::booking_command_topic(id).to_string();
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config().set("acks", "all").create().expect("create a producer");
    producer
        .send(BaseRecord::to(&topic).partition(1).key(key).payload(payload))
        .map_err(|(e, _)| e)
        .expect("queue the poison");
    producer.flush(TIMEOUT).expect("deliver the poison");

    let dlq_topic = naming::dlq_topic(id, TICKETING_SERVICE).to_string();
    let mut dlq = Vec::new();
    let arrived = eventually(Duration::from_secs(120), || {
        if let Err(e) = ticketing.check_running() {
            panic!("{e}");
        }
        dlq = read_back(&dlq_topic);
        !dlq.is_empty()
    });
    assert!(arrived, "the poison never reached {dlq_topic}\n{ticketing}");
    ticketing.stop();
    assert_eq!(dlq.len(), 1, "{dlq:#?}");
    assert_eq!(dlq[0].value, payload, "the payload is kept");
    assert_eq!(
        dlq[0].key,
        Some(String::from_utf8_lossy(key).into_owned()),
        "the dead letter must keep the original (binary) key\n{ticketing}"
    );
    cleanup(id);
}
