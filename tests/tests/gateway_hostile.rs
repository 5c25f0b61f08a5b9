//! The gateway under a hostile public, over real sockets: slow and idle
//! connections are dropped, a flood past the connection limit is answered
//! 503 instead of starving everyone, oversized heads and bodies are refused
//! before they cost anything, streams are capped overall and per client,
//! a reset peer cannot kill the process, and every answer carries the
//! headers a public service should.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use turnstile::naming::TICKETING_SERVICE;
use turnstile_tests::*;

const CHART: &str = r#"{"rows":3,"cols":4,"sections":[{"name":"A","price":100,"subsections":2}]}"#;
const HEADER_TIMEOUT_MS: u64 = 2_000;
const MAX_CONNECTIONS: usize = 40;

fn hostile_gateway(id: u64, extra: &[(&str, &str)]) -> GatewayProcess {
    let header_timeout = HEADER_TIMEOUT_MS.to_string();
    let max_connections = MAX_CONNECTIONS.to_string();
    let mut env = vec![
        ("TURNSTILE_GATEWAY__AUTH", "none"),
        ("TURNSTILE_GATEWAY__HEADER_READ_TIMEOUT_MS", header_timeout.as_str()),
        ("TURNSTILE_GATEWAY__MAX_CONNECTIONS", max_connections.as_str()),
        ("TURNSTILE_GATEWAY__MAX_STREAMS_PER_CLIENT", "3"),
        ("TURNSTILE_GATEWAY__STREAM_KEEPALIVE_MS", "500"),
    ];
    env.extend_from_slice(extra);
    GatewayProcess::start(id, &env)
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Reads until the peer closes or `timeout`: what arrived, and whether it closed.
fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), false)
}

#[test]
fn slow_idle_and_flooding_connections_are_dropped_or_refused_and_buyers_still_get_in() {
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let gateway = hostile_gateway(id, &[]);
    let addr = gateway.addr.clone();

    // A slowloris: headers trickled, never finished. Dropped after the header timeout.
    let mut slow = connect(&addr);
    slow.write_all(format!("GET /events/{id}/seats HTTP/1.1\r\nHost: x\r\n").as_bytes()).unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        if slow.write_all(b"X-Slow: 1\r\n").is_err() {
            closed = true;
            break;
        }
        let (_, gone) = read_until_closed(&mut slow, Duration::from_millis(300));
        if gone {
            closed = true;
            break;
        }
    }
    assert!(closed, "a connection trickling its headers was still open after {:?}", started.elapsed());
    assert!(started.elapsed() >= Duration::from_millis(HEADER_TIMEOUT_MS / 2), "closed too early");

    // An idle keep-alive connection is closed too.
    let mut idle = connect(&addr);
    let (_, gone) = read_until_closed(&mut idle, Duration::from_millis(HEADER_TIMEOUT_MS * 3));
    assert!(gone, "an idle connection stayed open");

    // A flood of idle connections fills the limit: the next one is told 503, not left hanging.
    let flood: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut next = connect(&addr);
    next.write_all(format!("GET /events/{id}/seats HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    let (answer, _) = read_until_closed(&mut next, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "over the limit: {answer:?}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    // The flood times out by itself; buyers get in again.
    drop(flood);
    let back = eventually(Duration::from_secs(10), || {
        http(&addr, "GET", &format!("/events/{id}/seats"), &[], b"", Duration::from_secs(5))
            .is_ok_and(|r| r.status == 200)
    });
    assert!(back, "the gateway did not recover from the flood");
    let metrics = http_get(&addr, "/metrics").unwrap().1;
    assert!(
        metric(&metrics, "turnstile_gateway_http_connections_refused_total", &[]).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    let log = gateway.log_tail(200);
    assert!(log.contains("at the connection limit"), "the pressure is logged: {log}");
    assert_eq!(log.matches("at the connection limit").count(), 1, "and logged once, not per connection: {log}");
    drop(gateway);
    cleanup(id);
}

#[test]
fn oversized_heads_and_bodies_are_refused_before_they_are_read() {
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let gateway = hostile_gateway(id, &[]);
    let addr = gateway.addr.clone();
    let path = format!("/events/{id}/bookings");

    // A 64 KiB header: 431.
    let big = "x".repeat(64 * 1024);
    let r = http(&addr, "GET", &format!("/events/{id}/seats"), &[("X-Big", big.as_str())], b"", Duration::from_secs(5))
        .expect("an answer");
    assert_eq!(r.status, 431, "{}", r.body);

    // 50 MiB announced with `Expect: 100-continue`: refused at once, never invited.
    let mut s = connect(&addr);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        50 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 413"), "an oversized body: {answer:?}");
    assert!(!answer.contains("100 Continue"), "{answer}");

    // A body that never finishes is cut off.
    let mut s = connect(&addr);
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{")
            .as_bytes(),
    )
    .unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(30));
    assert!(closed || answer.starts_with("HTTP/1.1 408"), "an unfinished body was waited for: {answer:?}");

    // Not JSON: 415 naming the content type.
    let body = br#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available"}"#;
    let mut s = connect(&addr);
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .as_bytes(),
    )
    .unwrap();
    s.write_all(body).unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    drop(gateway);
    cleanup(id);
}

#[test]
fn streams_are_capped_per_client_and_kept_alive_past_the_header_timeout() {
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let gateway = hostile_gateway(id, &[]);
    let addr = gateway.addr.clone();
    let open_stream = || {
        let mut s = connect(&addr);
        s.write_all(
            format!("GET /events/{id}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let (first, _) = read_until_closed(&mut s, Duration::from_millis(700));
        (s, first)
    };
    let mut streams: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        let (s, first) = open_stream();
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        streams.push(s);
    }
    let (_, refused) = open_stream();
    assert!(refused.starts_with("HTTP/1.1 503"), "a fourth stream from one client: {refused}");
    assert!(refused.contains("max_streams_per_client"), "{refused}");

    // An open stream outlives the header timeout, with keep-alive comments.
    let (more, closed) = read_until_closed(&mut streams[0], Duration::from_millis(HEADER_TIMEOUT_MS + 1_500));
    assert!(!closed, "a stream was closed: {more:?}");
    assert!(more.contains(":"), "keep-alive comments arrive on an idle stream: {more:?}");

    // A closed stream gives its place back.
    drop(streams.pop());
    let reopened = eventually(Duration::from_secs(5), || open_stream().1.starts_with("HTTP/1.1 200"));
    assert!(reopened, "a closed stream's place never came back");
    drop(gateway);
    cleanup(id);
}

#[test]
fn answers_carry_security_headers_and_the_probes_can_move_to_an_admin_listener() {
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let admin = free_local_addr();
    let gateway = hostile_gateway(id, &[("TURNSTILE_GATEWAY__ADMIN_LISTEN", admin.as_str())]);
    let addr = gateway.addr.clone();

    let page = http(&addr, "GET", "/", &[], b"", Duration::from_secs(5)).unwrap();
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let mine = http(&addr, "GET", "/buyers/me/bookings", &[("X-Buyer-Id", "5")], b"", Duration::from_secs(5)).unwrap();
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.header("cache-control"), Some("no-store"));
    assert_eq!(mine.header("x-content-type-options"), Some("nosniff"));

    // The probes answer on the admin listener only.
    assert_eq!(http_get(&admin, "/readyz").unwrap().0, 200);
    assert!(http_get(&admin, "/metrics").unwrap().1.contains("turnstile_gateway_http_connections_open"));
    assert_eq!(http_get(&addr, "/metrics").unwrap().0, 404);
    drop(gateway);
    cleanup(id);
}

/// SIGPIPE's disposition is ignored in every server process: bit 13 of
/// `SigIgn` in `/proc/<pid>/status`.
fn ignores_sigpipe(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).map(str::trim).unwrap_or("0");
    u64::from_str_radix(mask, 16).is_ok_and(|m| m & (1 << (libc::SIGPIPE - 1)) != 0)
}

#[test]
fn server_processes_ignore_sigpipe_and_survive_peers_that_reset() {
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let gateway = hostile_gateway(id, &[]);
    assert!(ignores_sigpipe(gateway.pid().expect("running")), "the gateway leaves SIGPIPE at its default");
    let metrics = free_local_addr();
    let mut service =
        Service::start_with_env(TICKETING_SERVICE, id, "1", &[("TURNSTILE_METRICS__LISTEN", metrics.as_str())]);
    let pid = service.pid().expect("running");
    let serving = eventually(Duration::from_secs(30), || http_get(&metrics, "/healthz").is_ok());
    assert!(serving, "the service never served {metrics}");
    assert!(ignores_sigpipe(pid), "`run --metrics` leaves SIGPIPE at its default");

    // Peers that ask for the page and reset at once.
    for _ in 0..200 {
        let mut s = connect(&gateway.addr);
        let _ = s.write_all(b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = socket_reset(s);
    }
    // (Until the resets are read, they may still count against the connection limit.)
    let alive = eventually(Duration::from_secs(10), || http_get(&gateway.addr, "/healthz").is_ok_and(|r| r.0 == 200));
    assert!(alive, "the gateway died of a reset peer");
    service.stop();
    drop(gateway);
    cleanup(id);
}

/// Closes with an RST (SO_LINGER 0) rather than a FIN.
fn socket_reset(stream: TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = [1i32, 0i32];
    // SAFETY: setsockopt reads `linger` (struct linger: two ints) for its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            linger.as_ptr().cast(),
            std::mem::size_of_val(&linger) as libc::socklen_t,
        )
    };
    drop(stream);
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[test]
fn one_buyer_racing_past_the_caps_gets_exactly_the_limit() {
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let gateway = hostile_gateway(
        id,
        &[("TURNSTILE_GATEWAY__MAX_OPEN_BOOKINGS_PER_BUYER", "3"), ("TURNSTILE_GATEWAY__MAX_TICKETS_PER_BUYER", "5")],
    );
    let path = format!("/events/{id}/bookings");
    let body = r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available"}"#;
    // Twelve creates at once by one buyer: exactly three open bookings.
    let answers: Vec<HttpResponse> = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    http(
                        &gateway.addr,
                        "POST",
                        &path,
                        &[("X-Buyer-Id", "21")],
                        body.as_bytes(),
                        Duration::from_secs(10),
                    )
                    .expect("an answer")
                })
            })
            .collect();
        sent.into_iter().map(|s| s.join().expect("a request")).collect()
    });
    let accepted = answers.iter().filter(|a| a.status == 202).count();
    assert_eq!(accepted, 3, "{:?}", answers.iter().map(|a| (a.status, a.body.as_str())).collect::<Vec<_>>());
    let refused = answers.iter().find(|a| a.status == 429).expect("a 429");
    assert_eq!(refused.json()["error"], "too_many_open_bookings");
    assert!(refused.body.contains("gateway.max_open_bookings_per_buyer"), "{}", refused.body);
    // The caps are per buyer: another one books four tickets at once.
    let four = r#"{"section":"A","subsection":2,"quantity":4,"seat_selection_mode":"best_available"}"#;
    let r =
        http(&gateway.addr, "POST", &path, &[("X-Buyer-Id", "22")], four.as_bytes(), Duration::from_secs(10)).unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    drop(gateway);
    cleanup(id);
}

#[test]
fn concurrent_retries_of_one_idempotency_key_book_once() {
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let gateway = hostile_gateway(id, &[]);
    let path = format!("/events/{id}/bookings");
    // The same request, keys in another order and spaced differently: one booking.
    let bodies = [
        r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1","1-2"]}"#,
        r#"{ "seat_positions": ["1-2", "1-1"], "seat_selection_mode": "manual", "quantity": 2, "subsection": 1, "section": "A" }"#,
    ];
    let headers = [("X-Buyer-Id", "31"), ("Idempotency-Key", "race-1")];
    let answers: Vec<HttpResponse> = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..16)
            .map(|n| {
                let (path, headers, body) = (&path, &headers, bodies[n % 2]);
                let addr = &gateway.addr;
                scope.spawn(move || {
                    http(addr, "POST", path, headers, body.as_bytes(), Duration::from_secs(10)).expect("an answer")
                })
            })
            .collect();
        sent.into_iter().map(|s| s.join().expect("a request")).collect()
    });
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 202, "{}", a.body);
            a.json()["booking_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one key, one booking: {ids:?}");
    let other = r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available"}"#;
    let conflict = http(&gateway.addr, "POST", &path, &headers, other.as_bytes(), Duration::from_secs(10)).unwrap();
    assert_eq!(conflict.status, 422, "{}", conflict.body);
    assert_eq!(conflict.json()["error"], "idempotency_conflict");
    drop(gateway);
    let creates: Vec<_> = read_back(&turnstile::naming::booking_command_topic(id).to_string())
        .iter()
        .map(json)
        .filter(|v| v["type"] == "create_booking")
        .collect();
    assert_eq!(creates.len(), 1, "published once: {creates:?}");
    cleanup(id);
}

/// Raises this test process's descriptor limit to its hard limit.
fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[test]
fn two_thousand_viewers_all_see_a_sale_and_buyers_still_get_in() {
    const VIEWERS: usize = 2_000;
    raise_fd_limit();
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");
    let mut seats = Service::start(turnstile::naming::SEAT_RESERVATION_SERVICE, id, "1");
    let gateway = hostile_gateway(
        id,
        &[("TURNSTILE_GATEWAY__MAX_STREAMS_PER_CLIENT", "5000"), ("TURNSTILE_GATEWAY__MAX_CONNECTIONS", "5000")],
    );
    let request = format!("GET /events/{id}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    let mut viewers: Vec<(TcpStream, Vec<u8>)> = (0..VIEWERS)
        .map(|_| {
            let mut s = connect(&gateway.addr);
            s.write_all(request.as_bytes()).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, Vec::new())
        })
        .collect();
    // Every viewer is told the venue as it is, then a sale.
    let drain = |viewers: &mut Vec<(TcpStream, Vec<u8>)>| {
        let mut buf = [0u8; 8192];
        for (s, seen) in viewers.iter_mut() {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
        }
    };
    let all_saw = |viewers: &mut Vec<(TcpStream, Vec<u8>)>, needle: &str| {
        eventually(Duration::from_secs(60), || {
            drain(viewers);
            viewers.iter().all(|(_, seen)| String::from_utf8_lossy(seen).contains(needle))
        })
    };
    assert!(all_saw(&mut viewers, "\"available\":12"), "not every viewer got the venue");
    let body = r#"{"section":"A","subsection":2,"quantity":3,"seat_selection_mode":"best_available"}"#;
    let booked = http(
        &gateway.addr,
        "POST",
        &format!("/events/{id}/bookings"),
        &[("X-Buyer-Id", "41")],
        body.as_bytes(),
        Duration::from_secs(10),
    )
    .expect("a create with the viewers open");
    assert_eq!(booked.status, 202, "{}", booked.body);
    let sold = all_saw(&mut viewers, "\"reserved\":3");
    let missing = viewers.iter().filter(|(_, seen)| !String::from_utf8_lossy(seen).contains("\"reserved\":3")).count();
    assert!(sold, "{missing} of {VIEWERS} viewers never saw the reservation");
    // After the whole venue, a viewer is sent only what changed.
    let deltas =
        viewers.iter().filter(|(_, seen)| String::from_utf8_lossy(seen).contains("event: availability_changes"));
    assert_eq!(deltas.count(), VIEWERS, "the sale reached every viewer as a change, not the whole venue again");
    let metrics = http_get(&gateway.addr, "/metrics").unwrap().1;
    assert_eq!(metric(&metrics, "turnstile_gateway_streams_open", &[]), Some(VIEWERS as f64), "{metrics}");
    drop(viewers);
    drop(gateway);
    ticketing.stop();
    seats.stop();
    cleanup(id);
}

/// Anyone allowed to write the commands topic can send a header name that
/// is not UTF-8. The gateway reads every create back into its views (for
/// buyers' caps and idempotency keys); such a record must not stop it.
#[test]
fn a_command_whose_header_name_is_not_utf8_does_not_stop_the_views() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let id = unique_event_id();
    provision_with_chart(id, 2, CHART);
    let gateway = hostile_gateway(id, &[]);
    let topic = turnstile::naming::booking_command_topic(id).to_string();
    let producer: ThreadedProducer<DefaultProducerContext> = client_config().create().expect("create a producer");
    let buyer = 777;
    for (booking, headers) in
        [("forged-1", raw_headers(&[(b"\xfe\xff", b"x"), (b"idempotency-key", b"k")])), ("after-1", raw_headers(&[]))]
    {
        let payload = format!(
            r#"{{"type":"create_booking","booking_id":"{booking}","buyer_id":{buyer},"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available","seat_positions":[]}}"#
        );
        let key = turnstile::naming::booking_key(id, booking);
        let record = BaseRecord::to(&topic).key(&key).payload(&payload).headers(headers);
        producer.send(record).map_err(|(e, _)| e).expect("queue a create");
    }
    producer.flush(Duration::from_secs(30)).expect("deliver the creates");

    let buyer_header = buyer.to_string();
    let listed = eventually(Duration::from_secs(30), || {
        http(&gateway.addr, "GET", "/buyers/me/bookings", &[("X-Buyer-Id", &buyer_header)], b"", Duration::from_secs(5))
            .is_ok_and(|r| r.status == 200 && r.body.contains("after-1"))
    });
    assert!(listed, "the views stopped at a header name that is not UTF-8\n{}", gateway.log_tail(30));
    assert!(http_get(&gateway.addr, "/readyz").is_ok_and(|r| r.0 == 200), "{}", gateway.log_tail(30));
    drop(gateway);
    cleanup(id);
}
