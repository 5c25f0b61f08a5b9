//! Local state checkpoints: a restore starts from one only if its anchor
//! record is in the changelog, then reads just the tail; a restarted service
//! (stopped or killed -9) picks its state up from them and loses nothing.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::producer::{BaseRecord, Producer};
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::state::changelog;
use turnstile::state::checkpoint::{Anchor, CheckpointDir};
use turnstile_tests::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Commits `keys` (value = key) to partition 0 of `topic` in one transaction.
fn commit(topic: &str, id: &str, keys: &[&str]) {
    let producer = transactional_producer(id);
    producer.begin_transaction().expect("begin");
    for key in keys {
        producer
            .send(BaseRecord::to(topic).partition(0).key(*key).payload(*key))
            .map_err(|(e, _)| e)
            .expect("queue a changelog record");
    }
    producer.commit_transaction(TIMEOUT).expect("commit");
}

fn restored_keys(topic: &str, dir: &CheckpointDir) -> BTreeSet<String> {
    let restored =
        changelog::restore(&kafka_config(), topic, &[0], Duration::from_secs(60), Some(dir)).expect("restore");
    restored[&0].committed().keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
}

/// A changelog with `a0..a4` committed, then `b0..b2`; returns the topic and
/// the offset of `a4`, the last record of the first transaction.
fn changelog_with_two_transactions(id: u64) -> (String, i64) {
    provision(id, 1).expect_success();
    let topic = naming::changelog_topic(id, TICKETING_SERVICE).to_string();
    commit(&topic, &format!("checkpoint-a-{id}"), &["a0", "a1", "a2", "a3", "a4"]);
    commit(&topic, &format!("checkpoint-b-{id}"), &["b0", "b1", "b2"]);
    let a4 = read_back(&topic)
        .into_iter()
        .find(|r| r.key.as_deref() == Some("a4"))
        .map(|r| r.offset)
        .expect("a4 is in the changelog");
    (topic, a4)
}

fn keys(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// The first transaction's entries plus one the changelog never had: if it
/// comes back, the checkpoint was used.
fn checkpoint_entries() -> HashMap<Vec<u8>, Vec<u8>> {
    ["a0", "a1", "a2", "a3", "a4", "only-in-checkpoint"]
        .iter()
        .map(|k| (k.as_bytes().to_vec(), k.as_bytes().to_vec()))
        .collect()
}

#[test]
fn a_restore_uses_a_matching_checkpoint_and_reads_only_the_tail() {
    let id = unique_event_id();
    let (topic, a4) = changelog_with_two_transactions(id);
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = CheckpointDir::new(dir.path(), HOUR);
    checkpoints.write(&topic, 0, &Anchor::of(a4, b"a4", Some(b"a4")), &checkpoint_entries());
    assert_eq!(
        restored_keys(&topic, &checkpoints),
        keys(&["a0", "a1", "a2", "a3", "a4", "only-in-checkpoint", "b0", "b1", "b2"]),
        "the checkpoint's entries plus the tail after its anchor"
    );
    cleanup(id);
}

#[test]
fn a_checkpoint_that_does_not_match_the_changelog_is_discarded() {
    let id = unique_event_id();
    let (topic, a4) = changelog_with_two_transactions(id);
    let full = keys(&["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = CheckpointDir::new(dir.path(), HOUR);

    // Another record at the anchor's offset (the topic was recreated, say).
    checkpoints.write(&topic, 0, &Anchor::of(a4, b"a4", Some(b"something else")), &checkpoint_entries());
    assert_eq!(restored_keys(&topic, &checkpoints), full, "a wrong anchor digest");

    // An anchor past the end of the log.
    checkpoints.write(&topic, 0, &Anchor::of(10_000, b"a4", Some(b"a4")), &checkpoint_entries());
    assert_eq!(restored_keys(&topic, &checkpoints), full, "an anchor past the end");

    // An anchor on the commit marker: no record is there.
    checkpoints.write(&topic, 0, &Anchor::of(a4 + 1, b"a4", Some(b"a4")), &checkpoint_entries());
    assert_eq!(restored_keys(&topic, &checkpoints), full, "an anchor on a control record");

    // Too old to trust.
    let strict = CheckpointDir::new(dir.path(), Duration::ZERO);
    checkpoints.write(&topic, 0, &Anchor::of(a4, b"a4", Some(b"a4")), &checkpoint_entries());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(restored_keys(&topic, &strict), full, "an expired checkpoint");
    cleanup(id);
}

#[test]
fn a_restarted_service_starts_from_its_checkpoints() {
    let id = unique_event_id();
    let partitions = 2;
    let (_, chart) = provision_with_chart(
        id,
        partitions,
        r#"{"rows":4,"cols":5,"sections":[{"name":"A","price":100,"subsections":1},{"name":"B","price":200,"subsections":1}]}"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_env = dir.path().display().to_string();
    let env =
        [("TURNSTILE_RUNNER__CHECKPOINT_DIR", dir_env.as_str()), ("TURNSTILE_RUNNER__CHECKPOINT_INTERVAL_MS", "200")];
    let mut ticketing = Service::start_with_env(TICKETING_SERVICE, id, "1", &env);
    let mut seats = Service::start_with_env(SEAT_RESERVATION_SERVICE, id, "1", &env);

    // Phase 1: bookings decided; their pays wait.
    let mut sellout = Sellout::new(id, partitions, chart.clone(), plan_bookings(&chart, 40, id));
    sellout.hold_follow_ups(true);
    sellout.publish_rest();
    sellout
        .drive_until(
            "phase 1: every booking decided",
            Duration::from_secs(120),
            &mut [&mut ticketing, &mut seats],
            |s| s.all_decided(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    ticketing.stop();
    let changelog = naming::changelog_topic(id, TICKETING_SERVICE).to_string();
    for p in 0..partitions {
        let file = dir.path().join(&changelog).join(format!("{p}.ckpt"));
        assert!(file.exists(), "a stopped instance leaves a checkpoint of partition {p} at {}", file.display());
    }

    // Phase 2: the restarted instance restores from the checkpoints and the
    // held pays and cancels find their bookings.
    ticketing.restart();
    sellout.hold_follow_ups(false);
    sellout
        .drive_until(
            "phase 2: settled after a restart",
            Duration::from_secs(120),
            &mut [&mut ticketing, &mut seats],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let used = ticketing.log_lines_containing("state restored from local checkpoints");
    assert!(!used.is_empty(), "the restart used the checkpoints\n{}", ticketing.log_tail(40));

    // Phase 3: killed -9 between checkpoints; the restart reads the tail.
    sellout.extend(plan_bookings(&chart, 40, id));
    sellout.publish_rest();
    sellout
        .drive_until(
            "phase 3: new bookings decided",
            Duration::from_secs(120),
            &mut [&mut ticketing, &mut seats],
            |s| s.decided() > 40,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    ticketing.sigkill();
    ticketing.restart();
    sellout
        .drive_until(
            "phase 3: settled after a kill",
            Duration::from_secs(120),
            &mut [&mut ticketing, &mut seats],
            |s| s.all_settled(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = describe(&[&ticketing, &seats]);
    let outcome = sellout.verify_eventually(Duration::from_secs(60));
    outcome.assert_clean(&logs);
    assert!(
        outcome.counts.get("completed").copied().unwrap_or(0) > 0,
        "some bookings were paid after the restarts: {:?}",
        outcome.counts
    );
    ticketing.stop();
    seats.stop();
    cleanup(id);
}
