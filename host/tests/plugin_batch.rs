//! The batched plugin boundary (WIT `handle` takes a list), through the real
//! `misbehave` component: every message of a batch keeps its own outcome,
//! a failure discards only that message's writes, and a trap or timeout in
//! a batch is pinned on the message at fault.

mod plugin_support;

use plugin_support::{misbehave_count as count, plugins};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use turnstile::naming::TopicName;
use turnstile::plugin::{HandleError, Handled, MemoryState, Message, PluginInstance, StateAccess};

/// Payloads as records 0, 1, … of the misbehave plugin's nominal topic.
struct Records {
    topic: String,
    action: String,
    payloads: Vec<String>,
}

impl Records {
    fn new(payloads: &[&str]) -> Self {
        let topic = TopicName::flow(1, "misbehave", "client", "misbehave");
        Records {
            topic: topic.to_string(),
            action: topic.action.clone(),
            payloads: payloads.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn messages(&self) -> Vec<Message<'_>> {
        self.payloads
            .iter()
            .enumerate()
            .map(|(offset, payload)| Message {
                topic: &self.topic,
                partition: 0,
                offset: offset as i64,
                key: None,
                payload: payload.as_bytes(),
                headers: &[],
                timestamp: None,
                event_id: 1,
                action: &self.action,
            })
            .collect()
    }
}

/// What the runner does with a batch: keep each `Ok` (apply its writes),
/// and hand again whatever follows an outcome that ends the valid prefix.
/// Returns one outcome per message and how many calls it took.
fn drive(
    instance: &mut PluginInstance<MemoryState>,
    messages: &[Message<'_>],
) -> (Vec<Result<Vec<u8>, String>>, usize) {
    let mut outcomes = Vec::new();
    let mut calls = 0;
    while outcomes.len() < messages.len() {
        calls += 1;
        for result in instance.handle_batch(&messages[outcomes.len()..]).expect("an instance to call") {
            outcomes.push(match result {
                Ok(Handled { outputs, writes }) => {
                    instance.state_mut().apply(writes);
                    Ok(outputs.into_iter().next().map(|o| o.payload).unwrap_or_default())
                }
                Err(err) => Err(err.kind().to_owned()),
            });
        }
    }
    (outcomes, calls)
}

fn echo(payload: &str) -> Result<Vec<u8>, String> {
    Ok(payload.as_bytes().to_vec())
}

#[test]
fn a_batch_is_one_call_with_one_outcome_per_message() {
    let records = Records::new(&[r#"{"type":"hello"}"#, r#"{"type":"invalid"}"#, "raw", r#"{"n":3}"#]);
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    let (outcomes, calls) = drive(&mut instance, &records.messages());
    assert_eq!(calls, 1, "an `invalid` does not end the batch");
    assert_eq!(outcomes, [echo(r#"{"type":"hello"}"#), Err("invalid".into()), echo("raw"), echo(r#"{"n":3}"#)]);
    // Each echo counted on top of the one before it in the same call, the
    // invalid one not at all.
    assert_eq!(count(instance.state()).as_deref(), Some("3"));
}

#[test]
fn outcomes_come_back_with_their_writes_unapplied() {
    let records = Records::new(&["a", "b"]);
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    let results = instance.handle_batch(&records.messages()).unwrap();
    let writes: Vec<_> = results.iter().map(|r| r.as_ref().map(|h| h.writes.clone())).collect();
    assert_eq!(
        writes,
        [Ok(vec![(b"count".to_vec(), Some(b"1".to_vec()))]), Ok(vec![(b"count".to_vec(), Some(b"2".to_vec()))])]
    );
    assert!(instance.state().map.is_empty(), "the caller decides what to keep");
}

#[test]
fn a_trap_in_a_batch_fails_only_its_message() {
    let records = Records::new(&["a", "b", r#"{"type":"trap"}"#, "c", "d"]);
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    let (outcomes, _) = drive(&mut instance, &records.messages());
    assert_eq!(outcomes, [echo("a"), echo("b"), Err("trap".into()), echo("c"), echo("d")]);
    assert_eq!(count(instance.state()).as_deref(), Some("4"), "every other message counted once");
    // Back to whole batches once the guilty message is found.
    let more = Records::new(&["e", "f", "g"]);
    let (outcomes, calls) = drive(&mut instance, &more.messages());
    assert_eq!((outcomes.len(), calls), (3, 1));
    assert_eq!(count(instance.state()).as_deref(), Some("7"));
}

#[test]
fn a_timeout_in_a_batch_fails_only_its_message() {
    let records = Records::new(&["a", r#"{"type":"spin"}"#, "b"]);
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    let (outcomes, _) = drive(&mut instance, &records.messages());
    assert_eq!(outcomes, [echo("a"), Err("timeout".into()), echo("b")]);
    assert_eq!(count(instance.state()).as_deref(), Some("2"));
}

#[test]
fn a_limit_ends_the_batch_and_what_follows_is_handled_again() {
    // The guest counted `big_value`'s echo before the host refused it; the
    // message after it must not build on that count.
    let records = Records::new(&["a", r#"{"type":"big_value"}"#, "b"]);
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    let first = instance.handle_batch(&records.messages()).unwrap();
    assert_eq!(first.len(), 2, "the prefix ends at the refused message");
    assert!(matches!(&first[1], Err(HandleError::Limit(r)) if r.contains("plugin.max_value_bytes")), "{first:?}");
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    let (outcomes, calls) = drive(&mut instance, &records.messages());
    assert_eq!((outcomes, calls), (vec![echo("a"), Err("limit".into()), echo("b")], 2));
    assert_eq!(count(instance.state()).as_deref(), Some("2"));
    assert!(!instance.state().map.contains_key(&b"big"[..]));
}

#[test]
fn a_transient_failure_ends_the_batch_for_its_retry() {
    let records = Records::new(&["a", r#"{"type":"transient"}"#, "b"]);
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    let results = instance.handle_batch(&records.messages()).unwrap();
    assert_eq!(results.len(), 2, "nothing after a transient failure is handled before its retry");
    assert!(matches!(results[1], Err(HandleError::Transient(_))), "{results:?}");
}

/// Seat and booking traffic with poison mixed in: configures, reserves
/// (best available and manual, some impossible), finalizes, releases,
/// creates, results, pays, cancels, and records that are not messages.
fn random_traffic(rng: &mut StdRng, service: &str, records: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(records);
    let sections = ["A", "B", "VIP"];
    if service == "reservation" {
        for s in sections {
            for sub in 1..=2 {
                out.push(format!(
                    r#"{{"type":"configure_subsection","section":"{s}","subsection":{sub},"rows":4,"seats_per_row":6,"price":25}}"#
                ));
            }
        }
    }
    while out.len() < records {
        let booking = format!("00000000-0000-4000-8000-{:012}", rng.random_range(0..records / 3));
        let (s, sub) = (sections[rng.random_range(0..3)], rng.random_range(1..=2));
        let quantity = rng.random_range(1..=5);
        let roll = rng.random_range(0..10);
        let line = if roll == 0 {
            ["not json", r#"{"type":"unknown"}"#, r#"{"type":"reserve_seats"}"#, ""][rng.random_range(0..4)].to_owned()
        } else if service == "reservation" {
            match roll {
                1..=5 => {
                    let manual = rng.random_bool(0.3);
                    let positions: Vec<String> = if manual {
                        let (row, first) = (rng.random_range(1..=4), rng.random_range(1..=6));
                        (0..quantity).map(|k| format!(r#""{row}-{}""#, first + k)).collect()
                    } else {
                        Vec::new()
                    };
                    let mode = if manual { "manual" } else { "best_available" };
                    format!(
                        r#"{{"type":"reserve_seats","booking_id":"{booking}","buyer_id":1,"section":"{s}","subsection":{sub},"quantity":{quantity},"seat_selection_mode":"{mode}","seat_positions":[{}]}}"#,
                        positions.join(",")
                    )
                }
                6..=7 => {
                    format!(
                        r#"{{"type":"finalize_seats","booking_id":"{booking}","section":"{s}","subsection":{sub}}}"#
                    )
                }
                _ => {
                    format!(r#"{{"type":"release_seats","booking_id":"{booking}","section":"{s}","subsection":{sub}}}"#)
                }
            }
        } else {
            match roll {
                1..=3 => format!(
                    r#"{{"type":"create_booking","booking_id":"{booking}","buyer_id":1,"section":"{s}","subsection":{sub},"quantity":{quantity},"seat_selection_mode":"best_available","seat_positions":[]}}"#
                ),
                4..=5 => format!(
                    r#"{{"type":"seats_reserved","booking_id":"{booking}","section":"{s}","subsection":{sub},"seats":["1-1"],"total_price":25}}"#
                ),
                6 => format!(r#"{{"type":"reservation_failed","booking_id":"{booking}","reason":"sold out"}}"#),
                7..=8 => format!(r#"{{"type":"pay_booking","booking_id":"{booking}","buyer_id":1}}"#),
                _ => format!(r#"{{"type":"cancel_booking","booking_id":"{booking}","buyer_id":1}}"#),
            }
        };
        out.push(line);
    }
    out
}

/// Every outcome as text (outputs with their routing, or the error kind).
type Transcript = Vec<String>;

fn transcript_of(result: &Result<Vec<turnstile::plugin::Output>, HandleError>) -> String {
    match result {
        Ok(outputs) => outputs
            .iter()
            .map(|o| format!("{}|{:?}|{}|{}", o.action, o.routing, String::from_utf8_lossy(&o.payload), o.critical))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => format!("error {}: {}", err.kind(), err.reason()),
    }
}

#[test]
fn batched_and_one_per_call_agree_on_random_traffic() {
    let p = plugins();
    let cases =
        [("reservation", &p.reservation, "ticket-command-request"), ("ticketing", &p.ticketing, "booking-command")];
    for seed in 0..4u64 {
        for (service, plugin, first_action) in cases {
            let mut rng = StdRng::seed_from_u64(seed);
            let payloads = random_traffic(&mut rng, service, 600);
            let topic = TopicName::flow(1, first_action, "client", "x");
            let results = TopicName::flow(1, "seat-reservation-result", "x", "y");
            let (topic_text, results_text) = (topic.to_string(), results.to_string());
            let messages: Vec<Message<'_>> = payloads
                .iter()
                .enumerate()
                .map(|(offset, payload)| {
                    // Ticketing reads results on its second topic.
                    let is_result = service == "ticketing"
                        && (payload.contains(r#""type":"seats_reserved""#)
                            || payload.contains(r#""type":"reservation_failed""#));
                    let (topic, action) =
                        if is_result { (&results_text, &results.action) } else { (&topic_text, &topic.action) };
                    Message {
                        topic,
                        partition: 0,
                        offset: offset as i64,
                        key: None,
                        payload: payload.as_bytes(),
                        headers: &[],
                        timestamp: None,
                        event_id: 1,
                        action,
                    }
                })
                .collect();

            let mut single = plugin.instantiate(MemoryState::new()).unwrap();
            let expected: Transcript = messages.iter().map(|m| transcript_of(&single.handle(m))).collect();

            let mut batched = plugin.instantiate(MemoryState::new()).unwrap();
            let mut got: Transcript = Vec::new();
            while got.len() < messages.len() {
                let end = messages.len().min(got.len() + rng.random_range(1..=100));
                for result in batched.handle_batch(&messages[got.len()..end]).unwrap() {
                    let result = result.map(|Handled { outputs, writes }| {
                        batched.state_mut().apply(writes);
                        outputs
                    });
                    got.push(transcript_of(&result));
                }
            }
            let ok = expected.iter().filter(|t| !t.starts_with("error")).count();
            assert!(ok > messages.len() / 3, "{service}: the traffic mostly succeeds ({ok} of {})", messages.len());
            for (k, (want, have)) in expected.iter().zip(&got).enumerate() {
                assert_eq!(want, have, "{service}, seed {seed}: record {k} ({})", payloads[k]);
            }
            assert_eq!(single.state(), batched.state(), "{service}, seed {seed}: the same state");
        }
    }
}
