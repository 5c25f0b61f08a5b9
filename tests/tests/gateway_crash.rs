//! A `202` is a promise: the gateway is killed with SIGKILL while buyers
//! book through it, and restarted. Buyers retry on connection errors with
//! their `Idempotency-Key`, as a real client would. Every booking whose `202`
//! a buyer received must reach Kafka once and be decided once, and every
//! retried key must get back the booking id it was first given.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use turnstile::gateway::feed::IDEMPOTENCY_KEY_HEADER;
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 3;
const CHART: &str = r#"{"rows":20,"cols":25,"sections":[{"name":"A","price":100,"subsections":4}]}"#;
const BUYERS: usize = 8;
const KEYS_PER_BUYER: usize = 60;
const CRASHES: usize = 2;

/// What one buyer was told.
#[derive(Debug, Default)]
struct Answers {
    /// Booking ids received in a `202`, by idempotency key (one per answer).
    accepted: BTreeMap<String, Vec<String>>,
    /// Requests that failed on the connection and were retried.
    retried: usize,
}

/// Creates one booking per key, retrying each key on connection errors and
/// 503s until it is answered `202` (or the test gives up).
fn buyer(addr: &str, event: u64, buyer: usize, answers: &Mutex<Answers>, give_up: Instant) {
    let path = format!("/events/{event}/bookings");
    let body =
        json!({"section": "A", "subsection": 1 + buyer % 4, "quantity": 1, "seat_selection_mode": "best_available"})
            .to_string();
    let who = (buyer + 1).to_string();
    for n in 0..KEYS_PER_BUYER {
        let key = format!("buyer-{buyer}-order-{n}");
        let headers = [("X-Buyer-Id", who.as_str()), ("Idempotency-Key", key.as_str())];
        loop {
            assert!(Instant::now() < give_up, "buyer {buyer} could not book {key} in time");
            match http(addr, "POST", &path, &headers, body.as_bytes(), Duration::from_secs(15)) {
                Ok(r) if r.status == 202 => {
                    let id = r.json()["booking_id"].as_str().unwrap_or_default().to_owned();
                    answers.lock().unwrap().accepted.entry(key.clone()).or_default().push(id);
                    break;
                }
                Ok(r) if r.status == 503 => std::thread::sleep(Duration::from_millis(100)),
                Ok(r) => panic!("{key}: {} {}", r.status, r.body),
                Err(_) => {
                    answers.lock().unwrap().retried += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // Half the keys are sent twice on purpose: a retry after a lost answer.
        if n % 2 == 0
            && let Ok(r) = http(addr, "POST", &path, &headers, body.as_bytes(), Duration::from_secs(15))
            && r.status == 202
        {
            let id = r.json()["booking_id"].as_str().unwrap_or_default().to_owned();
            answers.lock().unwrap().accepted.entry(key.clone()).or_default().push(id);
        }
    }
}

#[test]
fn every_202_survives_a_sigkill_and_every_retried_key_keeps_its_booking() {
    let id = unique_event_id();
    provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");
    let mut gateway = GatewayProcess::start(
        id,
        &[
            ("TURNSTILE_GATEWAY__AUTH", "none"),
            // Each buyer books many times here; the caps have a test of their own.
            ("TURNSTILE_GATEWAY__MAX_OPEN_BOOKINGS_PER_BUYER", "0"),
            ("TURNSTILE_GATEWAY__MAX_TICKETS_PER_BUYER", "0"),
        ],
    );

    let answers: Vec<Arc<Mutex<Answers>>> = (0..BUYERS).map(|_| Arc::default()).collect();
    let done = Arc::new(AtomicBool::new(false));
    let give_up = Instant::now() + Duration::from_secs(240);
    let clients: Vec<_> = answers
        .iter()
        .enumerate()
        .map(|(n, answers)| {
            let (addr, answers, done) = (gateway.addr.clone(), answers.clone(), done.clone());
            std::thread::spawn(move || {
                buyer(&addr, id, n, &answers, give_up);
                done.store(true, Ordering::Relaxed);
            })
        })
        .collect();
    let accepted =
        |answers: &[Arc<Mutex<Answers>>]| answers.iter().map(|a| a.lock().unwrap().accepted.len()).sum::<usize>();
    for crash in 0..CRASHES {
        // Kill it under load: after a share of the bookings were answered.
        let target = (crash + 1) * BUYERS * KEYS_PER_BUYER / (CRASHES + 1);
        let reached = eventually(Duration::from_secs(120), || accepted(&answers) >= target);
        assert!(reached, "only {} bookings answered\n{}", accepted(&answers), gateway.log_tail(30));
        gateway.crash_and_restart();
    }
    for client in clients {
        client.join().expect("a buyer thread");
    }
    gateway.stop();

    let answers: Vec<Answers> = answers.into_iter().map(|a| std::mem::take(&mut *a.lock().unwrap())).collect();
    let retried: usize = answers.iter().map(|a| a.retried).sum();
    let mut told: BTreeMap<String, String> = BTreeMap::new();
    for (key, ids) in answers.iter().flat_map(|a| a.accepted.iter()) {
        let first = &ids[0];
        assert!(ids.iter().all(|i| i == first), "key {key} was answered with different bookings: {ids:?}");
        told.insert(key.clone(), first.clone());
    }
    assert_eq!(told.len(), BUYERS * KEYS_PER_BUYER, "every key was answered");

    // Every create on the topic, by key: each key published once, with the id its buyer was told.
    let mut published: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in read_back(&naming::booking_command_topic(id).to_string()) {
        let value = json(&record);
        if value["type"] == "create_booking" {
            let key = header(&record, IDEMPOTENCY_KEY_HEADER).unwrap_or_default().to_owned();
            published.entry(key).or_default().push(value["booking_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let mut lost = Vec::new();
    for (key, booking) in &told {
        match published.get(key).map(Vec::as_slice) {
            Some([only]) => assert_eq!(only, booking, "key {key} was published under another booking id"),
            Some(many) => panic!("key {key} was published {} times: {many:?}", many.len()),
            None => lost.push(format!("{key} → {booking}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} bookings answered 202 never reached Kafka ({retried} requests retried after connection errors), \
         among them {:?}",
        lost.len(),
        told.len(),
        &lost[..lost.len().min(5)]
    );

    // Each is decided exactly once by the services.
    let wanted: BTreeSet<&String> = told.values().collect();
    let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
    let all_decided = eventually(Duration::from_secs(90), || {
        decisions.clear();
        for record in read_back(&naming::booking_status_changed_topic(id).to_string()) {
            let value = json(&record);
            if matches!(value["status"].as_str(), Some("pending_payment" | "failed")) {
                *decisions.entry(value["booking_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        }
        wanted.iter().all(|b| decisions.contains_key(*b))
    });
    let undecided: Vec<&&String> = wanted.iter().filter(|b| !decisions.contains_key(**b)).collect();
    assert!(all_decided, "{} accepted bookings were never decided: {undecided:?}", undecided.len());
    let twice: Vec<_> = decisions.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "bookings decided more than once: {twice:?}");
    ticketing.stop();
    seats.stop();
    cleanup(id);
}
