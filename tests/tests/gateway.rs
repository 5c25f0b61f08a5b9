//! The booking gateway over real sockets, in front of both services on a
//! real broker: bookings made, paid and cancelled through the API, their
//! statuses read back and streamed, every refusal with its status and
//! nothing published for it, other buyers kept out, idempotency keys that
//! publish once (also across a restart), seat maps that follow the sales,
//! and back-pressure as 503 when the publisher's queue is full.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const PARTITIONS: i32 = 3;
/// Section A: 2 subsections of 3 rows × 4 seats; B: one.
const CHART: &str = r#"{"rows":3,"cols":4,"sections":[
    {"name":"A","price":100,"subsections":2},
    {"name":"B","price":250,"subsections":1}]}"#;
const SECRET: &str = "gateway-test-secret-of-at-least-32-bytes";
const T: Duration = Duration::from_secs(30);

fn token(buyer: u64) -> String {
    token_signed_with(SECRET, buyer)
}

fn token_signed_with(secret: &str, buyer: u64) -> String {
    let mut cmd = turnstile_command(["gateway", "token", "--buyer", &buyer.to_string()]);
    cmd.env("TURNSTILE_GATEWAY__JWT_SECRET", secret);
    let run = turnstile_tests::run(cmd);
    run.expect_success();
    run.stdout.trim().to_owned()
}

/// A buyer's HTTP client; the gateway keeps its port across restarts.
struct Client {
    addr: String,
    bearer: String,
}

impl Client {
    fn auth(&self) -> (&'static str, String) {
        ("Authorization", format!("Bearer {}", self.bearer))
    }

    fn request(&self, method: &str, path: &str, extra: &[(&str, &str)], body: &str) -> HttpResponse {
        let (k, v) = self.auth();
        let mut headers = vec![(k, v.as_str())];
        headers.extend_from_slice(extra);
        http(&self.addr, method, path, &headers, body.as_bytes(), T).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], "")
    }

    fn book(&self, event: u64, body: &Value) -> HttpResponse {
        self.request("POST", &format!("/events/{event}/bookings"), &[], &body.to_string())
    }

    /// Waits for the booking's status to be `status`.
    fn wait_for(&self, booking: &str, status: &str) -> Value {
        let mut last = Value::Null;
        let reached = eventually(T, || {
            last = self.get(&format!("/bookings/{booking}")).json();
            last["status"] == status
        });
        assert!(reached, "booking {booking} never reached {status}: {last}");
        last
    }
}

fn best(section: &str, subsection: u32, quantity: u32) -> Value {
    json!({"section": section, "subsection": subsection, "quantity": quantity, "seat_selection_mode": "best_available"})
}

/// Creates on the command topic, by booking id.
fn creates(event: u64) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in read_back(&naming::booking_command_topic(event).to_string()) {
        let value = json(&record);
        if value["type"] == "create_booking" {
            *counts.entry(value["booking_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn buyers_book_pay_cancel_and_follow_their_bookings_through_the_gateway() {
    let id = unique_event_id();
    provision_with_chart(id, PARTITIONS, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");
    let mut gateway = GatewayProcess::start(id, &[("TURNSTILE_GATEWAY__JWT_SECRET", SECRET)]);
    let alice = Client { addr: gateway.addr.clone(), bearer: token(7) };
    let bob = Client { addr: gateway.addr.clone(), bearer: token(8) };

    // The venue, from the configuration commands.
    let venue = alice.get(&format!("/events/{id}/seats"));
    assert_eq!(venue.status, 200, "{}", venue.body);
    let venue = venue.json();
    assert_eq!(venue.as_array().map(Vec::len), Some(3), "{venue}");
    assert!(venue.as_array().unwrap().iter().all(|s| s["available"] == 12), "{venue}");

    // No token, a forged one, a malformed header: 401, nothing published.
    let path = format!("/events/{id}/bookings");
    let body = best("A", 1, 2).to_string();
    for headers in [vec![], vec![("Authorization", "Bearer not.a.token")], vec![("Authorization", "Basic eDp5")]] {
        let r = http(&gateway.addr, "POST", &path, &headers, body.as_bytes(), T).unwrap();
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
        assert_eq!(r.json()["error"], "unauthorized");
    }
    let forged =
        Client { addr: gateway.addr.clone(), bearer: token_signed_with("some-other-secret-of-at-least-32-bytes!", 7) };
    assert_eq!(forged.book(id, &best("A", 1, 2)).status, 401);

    // Every malformed request: 400 or 422 naming the field.
    let refusals: &[(&str, u16, Option<&str>)] = &[
        ("{", 400, None),
        (
            r#"{"section":"A","subsection":1,"quantity":"two","seat_selection_mode":"best_available"}"#,
            422,
            Some("quantity"),
        ),
        (r#"{"section":"Q","subsection":1,"quantity":1,"seat_selection_mode":"best_available"}"#, 422, Some("section")),
        (
            r#"{"section":"A","subsection":7,"quantity":1,"seat_selection_mode":"best_available"}"#,
            422,
            Some("subsection"),
        ),
        (
            r#"{"section":"A","subsection":1,"quantity":9,"seat_selection_mode":"best_available"}"#,
            422,
            Some("quantity"),
        ),
        (
            r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1"]}"#,
            422,
            Some("seat_positions"),
        ),
        (
            r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"manual","seat_positions":["9-9"]}"#,
            422,
            Some("seat_positions[0]"),
        ),
    ];
    for (body, status, field) in refusals {
        let r = alice.request("POST", &path, &[], body);
        assert_eq!(r.status, *status, "{body}: {}", r.body);
        if let Some(field) = field {
            assert_eq!(r.json()["field"], *field, "{body}: {}", r.body);
        }
    }
    assert_eq!(alice.request("POST", &format!("/events/{}/bookings", id + 1), &[], &body).status, 404);

    // A booking, paid: its stream ends on `completed`.
    let created = alice.book(id, &json!({"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["2-1","2-2"]}));
    assert_eq!(created.status, 202, "{}", created.body);
    let paid_id = created.json()["booking_id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("/bookings/{paid_id}").as_str()));
    assert_eq!(uuid::Uuid::parse_str(&paid_id).map(|u| u.get_version_num()), Ok(7), "a UUIDv7");
    let pending = alice.wait_for(&paid_id, "pending_payment");
    assert_eq!(pending["seats"], json!(["2-1", "2-2"]));
    assert_eq!(pending["total_price"], 200);

    // Bob cannot see, pay, cancel or follow it.
    for (method, suffix) in [("GET", ""), ("POST", "/pay"), ("POST", "/cancel"), ("GET", "/events")] {
        let r = bob.request(method, &format!("/bookings/{paid_id}{suffix}"), &[], "");
        assert_eq!(r.status, 404, "{method} {suffix}: {}", r.body);
    }
    assert_eq!(bob.get("/buyers/me/bookings").json(), json!([]));

    let stream = std::thread::scope(|scope| {
        let follower = scope.spawn(|| alice.get(&format!("/bookings/{paid_id}/events")));
        std::thread::sleep(Duration::from_millis(300));
        let r = alice.request("POST", &format!("/bookings/{paid_id}/pay"), &[], "");
        assert_eq!(r.status, 202, "{}", r.body);
        follower.join().expect("the stream reader")
    });
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let statuses: Vec<Value> = stream.sse_events("status").iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses.first(), Some(&json!("pending_payment")), "{}", stream.body);
    assert_eq!(statuses.last(), Some(&json!("completed")), "the stream ends on the final status: {}", stream.body);
    assert_eq!(alice.get(&format!("/bookings/{paid_id}")).json()["status"], "completed");

    // A booking cancelled: its seats come back.
    let cancelled = alice.book(id, &best("B", 1, 3)).json()["booking_id"].as_str().unwrap().to_owned();
    alice.wait_for(&cancelled, "pending_payment");
    assert_eq!(alice.request("POST", &format!("/bookings/{cancelled}/cancel"), &[], "").status, 202);
    alice.wait_for(&cancelled, "cancelled");
    let done = alice.get(&format!("/bookings/{cancelled}/events"));
    assert_eq!(done.sse_events("status").len(), 1, "a finished booking's stream sends its status and ends");

    // Idempotency: the same key and request is one booking, published once.
    let key = [("Idempotency-Key", "order-42")];
    let body = best("A", 2, 1).to_string();
    let first = alice.request("POST", &path, &key, &body);
    let again = alice.request("POST", &path, &key, &body);
    assert_eq!((first.status, again.status), (202, 202), "{} {}", first.body, again.body);
    let keyed = first.json()["booking_id"].as_str().unwrap().to_owned();
    assert_eq!(again.json()["booking_id"], keyed);
    assert_eq!(alice.request("POST", &path, &key, &best("A", 2, 2).to_string()).status, 422, "same key, other request");
    let bobs = bob.request("POST", &path, &key, &body).json()["booking_id"].as_str().unwrap().to_owned();
    assert_ne!(bobs, keyed, "keys are per buyer");
    alice.wait_for(&keyed, "pending_payment");
    bob.wait_for(&bobs, "pending_payment");

    // The seat map follows: A-1 has 2 sold, A-2 two reserved, B-1 all free.
    let expect = |section: &str, sub: u32, available: u64, reserved: u64, sold: u64| {
        let ok = eventually(T, || {
            let all = alice.get(&format!("/events/{id}/seats")).json();
            all.as_array().unwrap().iter().any(|s| {
                s["section"] == section
                    && s["subsection"] == sub
                    && s["available"] == available
                    && s["reserved"] == reserved
                    && s["sold"] == sold
            })
        });
        assert!(ok, "{section}-{sub}: {}", alice.get(&format!("/events/{id}/seats")).body);
    };
    expect("A", 1, 10, 0, 2);
    expect("A", 2, 10, 2, 0);
    expect("B", 1, 12, 0, 0);
    let map = alice.get(&format!("/events/{id}/sections/A/subsections/1/seats")).json();
    assert_eq!(map["seats"][1][0], "sold", "{map}");
    assert_eq!(map["seats"][1][1], "sold", "{map}");
    assert_eq!(map["seats"][0][0], "available", "{map}");
    assert_eq!(alice.get(&format!("/events/{id}/sections/A/subsections/9/seats")).status, 404);
    // Both reads are pre-serialized JSON with a strong ETag, and 304 while unchanged.
    for path in [format!("/events/{id}/seats"), format!("/events/{id}/sections/A/subsections/1/seats")] {
        let r = alice.get(&path);
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        let etag = r.header("etag").unwrap_or_else(|| panic!("{path}: no ETag")).to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{path}: a strong ETag, not {etag}");
        let again = alice.request("GET", &path, &[("If-None-Match", &etag)], "");
        assert_eq!(again.status, 304, "{path}: {}", again.body);
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert!(again.body.is_empty(), "{path}: {}", again.body);
        assert_eq!(alice.request("GET", &path, &[("If-None-Match", "\"stale\"")], "").status, 200, "{path}");
    }
    // The availability stream (it never ends by itself) starts with the current numbers.
    let (k, v) = alice.auth();
    let first = sse_until(&gateway.addr, &format!("/events/{id}/events"), &[(k, v.as_str())], "\"available\"", T)
        .unwrap_or_else(|e| panic!("availability stream: {e}"));
    assert!(first.contains("event: availability") && first.contains("\"sold\":2"), "{first}");
    let data = first.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(data).ok(),
        Some(alice.get(&format!("/events/{id}/seats")).json()),
        "{first}"
    );

    // Alice's bookings, and Bob's own.
    let mine = alice.get("/buyers/me/bookings").json();
    let ids: Vec<&str> = mine.as_array().unwrap().iter().filter_map(|b| b["booking_id"].as_str()).collect();
    for b in [&paid_id, &cancelled, &keyed] {
        assert!(ids.contains(&b.as_str()), "{b} in {mine}");
    }

    // A restarted gateway answers the same, and remembers the key.
    let before: Vec<Value> =
        [&paid_id, &cancelled, &keyed].iter().map(|b| alice.get(&format!("/bookings/{b}")).json()).collect();
    gateway.restart();
    let after: Vec<Value> =
        [&paid_id, &cancelled, &keyed].iter().map(|b| alice.get(&format!("/bookings/{b}")).json()).collect();
    let strip = |v: &[Value]| {
        v.iter().map(|b| (b["status"].clone(), b["seats"].clone(), b["total_price"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(strip(&after), strip(&before));
    assert_eq!(alice.request("POST", &path, &key, &body).json()["booking_id"], keyed, "the key survives a restart");

    gateway.stop();
    let creates = creates(id);
    assert_eq!(creates.get(&keyed), Some(&1), "an idempotent create is published once: {creates:?}");
    assert_eq!(creates.len(), 4, "nothing was published for the refused requests: {creates:?}");
    ticketing.stop();
    seats.stop();
    cleanup(id);
}

#[test]
fn a_full_publish_queue_is_503_with_retry_after_and_loses_nothing() {
    let id = unique_event_id();
    provision_with_chart(id, PARTITIONS, CHART);
    // Two messages fit in the queue, and a batch leaves it only after a second.
    let gateway = GatewayProcess::start(
        id,
        &[
            ("TURNSTILE_GATEWAY__JWT_SECRET", SECRET),
            ("TURNSTILE_PRODUCER__QUEUE_MAX_MESSAGES", "2"),
            ("TURNSTILE_GATEWAY__LINGER_MS", "1000"),
        ],
    );
    let buyers: Vec<Client> = (0..4).map(|n| Client { addr: gateway.addr.clone(), bearer: token(7 + n) }).collect();
    let answers: Vec<HttpResponse> = std::thread::scope(|scope| {
        let sent: Vec<_> = buyers.iter().map(|b| scope.spawn(|| b.book(id, &best("A", 1, 1)))).collect();
        sent.into_iter().map(|s| s.join().expect("a buyer")).collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 2, "{statuses:?}");
    let refused = answers.iter().find(|a| a.status == 503).expect("a refusal");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.body.contains("queue is full"), "{}", refused.body);
    let metrics = http_get(&gateway.addr, "/metrics").unwrap().1;
    assert!(metric(&metrics, "turnstile_gateway_publish_queue_full_total", &[]).unwrap_or(0.0) >= 1.0, "{metrics}");
    // A 202 means on the broker already, before anything stops.
    let accepted: BTreeSet<String> = answers
        .iter()
        .filter(|a| a.status == 202)
        .map(|a| a.json()["booking_id"].as_str().unwrap().to_owned())
        .collect();
    let published: BTreeSet<String> = creates(id).into_keys().collect();
    assert_eq!(published, accepted, "every accepted booking is on the topic, no refused one");
    drop(gateway);
    cleanup(id);
}

#[test]
fn sigterm_stops_the_gateway_promptly_with_a_stream_open() {
    let id = unique_event_id();
    provision_with_chart(id, PARTITIONS, CHART);
    let mut gateway = GatewayProcess::start(id, &[("TURNSTILE_GATEWAY__JWT_SECRET", SECRET)]);
    // A stream never ends by itself.
    let addr = gateway.addr.clone();
    let stream = std::thread::spawn(move || {
        let path = format!("/events/{id}/events");
        let _ = http(&addr, "GET", &path, &[], b"", Duration::from_secs(120));
    });
    std::thread::sleep(Duration::from_millis(500));
    let stopping = std::time::Instant::now();
    gateway.stop();
    assert!(stopping.elapsed() < Duration::from_secs(15), "SIGTERM took {:?} with a stream open", stopping.elapsed());
    stream.join().expect("the stream reader");
    cleanup(id);
}
