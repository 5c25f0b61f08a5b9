//! `turnstile reset` against a real broker.
//!
//! Reset deletes every unprotected event on the broker, so each test
//! protects every event id it finds there except the ones it created to be
//! deleted, and all reset tests live in this one binary, serialized by
//! [`LOCK`]. (Run with `cargo test`, which runs test binaries one at a time.)

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `reset --yes` protecting every event on the broker except `delete`.
fn reset_all_but(delete: &[u64], extra: &[&str]) -> Run {
    let protect: BTreeSet<u64> =
        existing_event_ids().into_iter().filter(|id| !delete.contains(id)).chain([1]).collect();
    let mut args: Vec<String> = vec!["reset".into()];
    for id in protect {
        args.push("--protect".into());
        args.push(id.to_string());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    turnstile(args)
}

fn has_topics(id: u64) -> bool {
    !event_topics_on_broker(id).is_empty()
}

#[test]
fn reset_keeps_protected_events_by_exact_id() {
    let _guard = lock();
    let kept = unique_event_id();
    let deleted = kept * 10; // `event-id-{kept}0…` shares the prefix of `event-id-{kept}…`
    provision(kept, 1);
    provision(deleted, 1);
    let kept_group = naming::consumer_group(kept, TICKETING_SERVICE);
    let deleted_group = naming::consumer_group(deleted, TICKETING_SERVICE);
    commit_offsets(&kept_group, &[(&naming::booking_command_topic(kept).to_string(), 0, 0)]);
    commit_offsets(&deleted_group, &[(&naming::booking_command_topic(deleted).to_string(), 0, 0)]);

    let run = reset_all_but(&[deleted], &["--yes"]);
    run.expect_success();

    assert_eq!(
        event_topics_on_broker(kept).len(),
        turnstile::topology::Topology::builtin().event_topics(kept).len(),
        "{run}"
    );
    assert!(!has_topics(deleted), "{run}");
    let groups = groups();
    assert!(groups.contains_key(&kept_group), "{run}");
    assert!(!groups.contains_key(&deleted_group), "{run}");
    assert!(run.stdout.contains("remaining event topics"), "{run}");
    cleanup(kept);
}

#[test]
fn reset_keeps_groups_with_active_members() {
    let _guard = lock();
    let id = unique_event_id();
    provision(id, 1);
    let topic = naming::ticket_command_request_topic(id).to_string();
    let active_group = naming::consumer_group(id, SEAT_RESERVATION_SERVICE);
    let empty_group = naming::consumer_group(id, TICKETING_SERVICE);
    commit_offsets(&empty_group, &[(&naming::booking_command_topic(id).to_string(), 0, 0)]);

    let member = group_consumer(&active_group);
    member.subscribe(&[&topic]).expect("subscribe");
    let joined = eventually(Duration::from_secs(30), || {
        let _ = member.poll(Duration::from_millis(100));
        member.assignment().is_ok_and(|a| a.count() > 0)
    });
    assert!(joined, "the live consumer never got an assignment");

    let run = reset_all_but(&[id], &["--yes"]);
    run.expect_success();
    assert!(run.stdout.contains(&format!("kept active group {active_group}")), "{run}");
    assert!(!has_topics(id), "{run}");
    let groups = groups();
    assert!(groups.get(&active_group).is_some_and(|&n| n >= 1), "{run}");
    assert!(!groups.contains_key(&empty_group), "{run}");

    drop(member);
    cleanup(id);
}

#[test]
fn reset_dry_run_deletes_nothing() {
    let _guard = lock();
    let id = unique_event_id();
    provision(id, 1);
    let run = reset_all_but(&[id], &["--dry-run"]);
    run.expect_success();
    assert!(run.stdout.contains(&naming::booking_command_topic(id).to_string()), "{run}");
    assert!(run.stdout.contains("nothing deleted"), "{run}");
    assert_eq!(event_topics_on_broker(id).len(), turnstile::topology::Topology::builtin().event_topics(id).len());
    cleanup(id);
}

#[test]
fn reset_without_a_terminal_refuses_unless_yes() {
    let _guard = lock();
    let id = unique_event_id();
    provision(id, 1);
    // stdin is /dev/null, not a terminal.
    let run = turnstile(["reset"]);
    run.expect_code(2);
    assert!(run.stderr.contains("--yes"), "{run}");
    assert!(has_topics(id));
    cleanup(id);
}
