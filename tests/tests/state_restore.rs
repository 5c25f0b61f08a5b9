//! Restoring a partition's state reads every transaction of the previous
//! owner that commits, including one still open when the restore starts
//! (`../shared/NOTES.md`: a `read_committed` consumer's watermarks end at the
//! last stable offset, before such a transaction).

use std::time::Duration;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use turnstile::naming::{self, TICKETING_SERVICE};
use turnstile::state::changelog;
use turnstile_tests::*;

fn put(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str) {
    producer
        .send(BaseRecord::to(topic).partition(0).key(key).payload(key))
        .map_err(|(e, _)| e)
        .expect("queue a changelog record");
}

#[test]
fn a_restore_waits_for_the_previous_owners_open_transaction() {
    let id = unique_event_id();
    provision(id, 1).expect_success();
    let topic = naming::changelog_topic(id, TICKETING_SERVICE).to_string();

    let producer = transactional_producer(&format!("restore-test-{id}"));
    producer.begin_transaction().expect("begin");
    for i in 0..5 {
        put(&producer, &topic, &format!("committed-{i}"));
    }
    producer.commit_transaction(TIMEOUT).expect("commit the first transaction");
    // The previous owner's last transaction: written, not yet committed.
    producer.begin_transaction().expect("begin");
    for i in 0..7 {
        put(&producer, &topic, &format!("late-{i}"));
    }
    producer.flush(TIMEOUT).expect("deliver the open transaction's records");

    let committer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        producer.commit_transaction(TIMEOUT).expect("commit the late transaction");
    });
    let restored = changelog::restore(&kafka_config(), &topic, &[0], Duration::from_secs(60), None).expect("restore");
    committer.join().expect("committer thread");

    let keys: std::collections::BTreeSet<String> =
        restored[&0].committed().keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    assert_eq!(keys.len(), 12, "all 5 + 7 committed keys are restored, got {keys:?}");
    assert!(keys.contains("late-6"), "{keys:?}");
    cleanup(id);
}
