//! Viewers for a gateway under load (BENCHMARKS.md, "Seat reads"): opens
//! many availability streams, then GETs seat maps at a steady open-loop
//! rate, and reports the GETs' latency, the streams' events and the
//! gateway's `view_lag` histogram.
//!
//! `viewers ADDR EVENT [STREAMS] [GETS_PER_S] [SECONDS] [CONNECTIONS]`
//! (defaults 10 000, 2 000, 30, 64). Raise `ulimit -n` first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

#[derive(Default)]
struct Streams {
    open: AtomicU64,
    failed: AtomicU64,
    events: AtomicU64,
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(event)) = (args.first().cloned(), args.get(1).cloned()) else {
        eprintln!("usage: viewers ADDR EVENT [STREAMS] [GETS_PER_S] [SECONDS] [CONNECTIONS]");
        std::process::exit(2);
    };
    let (streams, rate, seconds, connections) =
        (arg(&args, 2, 10_000u64), arg(&args, 3, 2_000u64), arg(&args, 4, 30u64), arg(&args, 5, 64usize));

    let conn = TcpStream::connect(&addr).await.expect("connect to the gateway");
    let (_, seats) = get(&conn, &format!("/events/{event}/seats")).await.expect("GET the venue");
    let venue: serde_json::Value = serde_json::from_slice(&seats).expect("availability JSON");
    let paths: Arc<Vec<String>> = Arc::new(
        venue
            .as_array()
            .expect("an array")
            .iter()
            .map(|s| {
                format!(
                    "/events/{event}/sections/{}/subsections/{}/seats",
                    s["section"].as_str().unwrap_or(""),
                    s["subsection"]
                )
            })
            .collect(),
    );
    assert!(!paths.is_empty(), "the venue has no subsection yet");

    // The streams, opened a few hundred at a time.
    let counts = Arc::new(Streams::default());
    let opening = Instant::now();
    for i in 0..streams {
        let (addr, event, counts) = (addr.clone(), event.clone(), counts.clone());
        tokio::spawn(async move { stream(&addr, &event, &counts).await });
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    while counts.open.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) < streams
        && opening.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = counts.open.load(Ordering::Relaxed);
    eprintln!(
        "viewers: {opened} of {streams} streams open in {:.1} s ({} failed)",
        opening.elapsed().as_secs_f64(),
        counts.failed.load(Ordering::Relaxed)
    );

    // Seat-map GETs at `rate`, open loop: latency counts from the request's
    // scheduled time, so a stall shows as the queue behind it.
    let events_before = counts.events.load(Ordering::Relaxed);
    let start = Instant::now();
    let total = rate * seconds;
    let (tx, rx) = async_channel(connections * 4);
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (addr, rx, paths) = (addr.clone(), rx.clone(), paths.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(&addr).await.ok();
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while let Ok((due, n)) = rx.recv().await {
                let path = &paths[n as usize % paths.len()];
                let answered = match conn.as_ref() {
                    Some(c) => get(c, path).await.ok().filter(|(status, _)| *status == 200),
                    None => None,
                };
                match answered {
                    Some(_) => latencies.push(due.elapsed().as_micros() as u64),
                    None => {
                        errors += 1;
                        conn = TcpStream::connect(&addr).await.ok();
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let metrics = tokio::spawn(scrape(addr.clone(), Duration::from_secs(seconds + 2)));
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        if tx.send((due, n)).await.is_err() {
            break;
        }
    }
    drop(tx);
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await.expect("a GET worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let p = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    println!(
        "GET seat maps: {} ok, {errors} failed, {:.0}/s (target {rate}/s); latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        p(0.5),
        p(0.9),
        p(0.99),
        p(0.999),
        p(1.0)
    );
    let events = counts.events.load(Ordering::Relaxed) - events_before;
    println!(
        "streams: {opened} open, {} still open at the end, {events} availability events received during the GETs ({:.1} per stream per s)",
        counts.open.load(Ordering::Relaxed),
        events as f64 / opened.max(1) as f64 / elapsed
    );
    println!("{}", metrics.await.unwrap_or_default());
}

/// One availability stream: counts its events until it ends.
async fn stream(addr: &str, event: &str, counts: &Streams) {
    let Ok(conn) = TcpStream::connect(addr).await else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let request = format!("GET /events/{event}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    if write_all(&conn, request.as_bytes()).await.is_err() {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut opened = false;
    // The marker may straddle two reads: keep the tail of the last one.
    let mut tail = Vec::new();
    loop {
        let n = match read(&conn, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !opened {
            opened = true;
            counts.open.fetch_add(1, Ordering::Relaxed);
        }
        tail.extend_from_slice(&buf[..n]);
        let found = tail.windows(19).filter(|w| w == b"event: availability").count() as u64;
        counts.events.fetch_add(found, Ordering::Relaxed);
        let keep = tail.len().min(18);
        tail.drain(..tail.len() - keep);
    }
    if opened {
        counts.open.fetch_sub(1, Ordering::Relaxed);
    } else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// One keep-alive GET: status and body (the gateway's answers have a length).
async fn get(conn: &TcpStream, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    write_all(conn, format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n").as_bytes()).await?;
    let mut data = Vec::with_capacity(8192);
    let mut buf = [0u8; 8192];
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let head_end = loop {
        let n = read(conn, &mut buf).await?;
        if n == 0 {
            return Err(bad("closed"));
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| bad("no content-length"))?;
    while data.len() < head_end + length {
        let n = read(conn, &mut buf).await?;
        if n == 0 {
            return Err(bad("closed"));
        }
        data.extend_from_slice(&buf[..n]);
    }
    Ok((status, data[head_end..head_end + length].to_vec()))
}

/// The gateway's view-lag histogram, scraped every second until `until`
/// (the sellout stops its gateway when done, so the last scrape counts).
async fn scrape(addr: String, until: Duration) -> String {
    let started = Instant::now();
    let mut last = String::from("view lag: no /metrics scraped");
    while started.elapsed() < until {
        if let Ok(conn) = TcpStream::connect(&addr).await
            && let Ok((200, body)) = get(&conn, "/metrics").await
        {
            last = view_lag(&String::from_utf8_lossy(&body));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last
}

/// Summary of `turnstile_gateway_view_lag_seconds` from a scrape.
fn view_lag(metrics: &str) -> String {
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let of = |suffix: &str| {
        metrics.lines().find(|l| l.starts_with(&format!("turnstile_gateway_view_lag_seconds_{suffix}"))).map(value)
    };
    let (Some(count), Some(sum)) = (of("count"), of("sum")) else {
        return "view lag: not measured by this gateway".into();
    };
    // Upper bounds of the buckets holding the 50th, 99th and last snapshot.
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with("turnstile_gateway_view_lag_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, value(l)))
        })
        .collect();
    let at = |q: f64| buckets.iter().find(|(_, n)| *n >= (count * q).ceil()).map_or(f64::NAN, |(le, _)| *le * 1000.0);
    format!(
        "view lag over {count} snapshots: mean {:.1} ms, p50 ≤ {} ms, p99 ≤ {} ms, max ≤ {} ms",
        sum / count.max(1.0) * 1000.0,
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// A bounded multi-consumer queue of `(due, n)` on tokio's primitives.
fn async_channel(capacity: usize) -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    (Sender(tx), Receiver(Arc::new(tokio::sync::Mutex::new(rx))))
}

struct Sender(tokio::sync::mpsc::Sender<(Instant, u64)>);
#[derive(Clone)]
struct Receiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(Instant, u64)>>>);

impl Sender {
    async fn send(&self, item: (Instant, u64)) -> Result<(), ()> {
        self.0.send(item).await.map_err(|_| ())
    }
}

impl Receiver {
    async fn recv(&self) -> Result<(Instant, u64), ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

/// Reads what is there (tokio's `io-util` is not among the workspace's features).
async fn read(conn: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        conn.readable().await?;
        match conn.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => return other,
        }
    }
}

async fn write_all(conn: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        conn.writable().await?;
        match conn.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
