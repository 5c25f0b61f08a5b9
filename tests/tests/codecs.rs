//! Every compression codec a Kafka client may choose reaches the services
//! intact: librdkafka is built with zstd as well as gzip, snappy and lz4, and
//! the services' own producers compress with `kafka.compression`.

use std::time::Duration;

use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 4;
const CHART: &str = r#"{"rows":4,"cols":6,"sections":[
    {"name":"A","price":100,"subsections":2},
    {"name":"B","price":250,"subsections":2}]}"#;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// Bookings produced in each codec are all decided exactly once, with the
/// ticketing service itself producing zstd and the seat service gzip.
#[test]
fn bookings_in_every_codec_are_decided() {
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing =
        Service::start_with_env(TICKETING_SERVICE, id, "1", &[("TURNSTILE_KAFKA__COMPRESSION", "zstd")]);
    let mut seats =
        Service::start_with_env(SEAT_RESERVATION_SERVICE, id, "1", &[("TURNSTILE_KAFKA__COMPRESSION", "gzip")]);

    let plan = plan_bookings(&chart, 40 * CODECS.len(), id);
    let mut sellout = Sellout::new(id, PARTITIONS, chart, Vec::new());
    for (codec, part) in CODECS.iter().zip(plan.chunks(40)) {
        sellout.client = BookingClient::with_compression(id, PARTITIONS, codec);
        sellout.extend(part.to_vec());
        sellout.publish_rest();
    }
    sellout
        .drive_until(
            "bookings of every codec settled",
            Duration::from_secs(120),
            &mut [&mut ticketing, &mut seats],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    sellout.verify_eventually(Duration::from_secs(60)).assert_clean(&describe(&[&ticketing, &seats]));
    for service in [&ticketing, &seats] {
        let errors = service.log_lines_containing("ERROR");
        assert!(errors.is_empty(), "{service} logged errors: {errors:#?}");
    }
    ticketing.stop();
    seats.stop();
    cleanup(id);
}
