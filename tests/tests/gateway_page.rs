//! The live seat-map page in a real headless browser (Debian's Chromium,
//! driven by playwright-core): it loads and draws the venue; while it stays
//! open, bookings are sold through the API and what it renders becomes the
//! API's numbers; its form books seats and shows the status live.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile_tests::*;

const CHART: &str = r#"{"rows":4,"cols":5,"sections":[
    {"name":"A","price":100,"subsections":3},
    {"name":"B","price":250,"subsections":2}]}"#;
const T: Duration = Duration::from_secs(30);

/// The page driver (`tests/browser/page.mjs`, playwright-core on Debian's
/// Chromium; `scripts/install-deps --tests` installs both), talking line by line.
struct Browser {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Browser {
    fn open(url: &str, screenshot: &Path) -> Browser {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "playwright-core is missing in {}: run scripts/install-deps --tests",
            dir.display()
        );
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("page.mjs")
            .arg(url)
            .arg(screenshot)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run node (scripts/install-deps --tests installs it)");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Browser { child, lines }
    }

    /// The JSON after `tag ` on the driver's next line starting with `tag`.
    fn expect(&mut self, tag: &str) -> Value {
        for line in self.lines.by_ref() {
            let line = line.expect("read the driver's output");
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return serde_json::from_str(rest).unwrap_or_else(|_| Value::String(rest.to_owned()));
            }
        }
        let status = self.child.wait();
        panic!("the browser driver ended before `{tag}` ({status:?})");
    }

    /// Waits for the driver to save its screenshot and exit.
    fn finish(mut self) {
        let status = self.child.wait().expect("wait for the driver");
        assert!(status.success(), "the browser driver failed: {status}");
    }

    fn go_on(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "go").and_then(|()| stdin.flush()).expect("write to the driver");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn the_page_draws_the_venue_and_shows_what_the_api_sold() {
    let id = unique_event_id();
    provision_with_chart(id, 3, CHART);
    let mut ticketing = Service::start(TICKETING_SERVICE, id, "1");
    let mut seats = Service::start(SEAT_RESERVATION_SERVICE, id, "1");
    let gateway = GatewayProcess::start(id, &[("TURNSTILE_GATEWAY__AUTH", "none")]);
    let url = format!("http://{}/", gateway.addr);
    let shot = tempfile::tempdir().unwrap();
    let png = std::env::var_os("TURNSTILE_PAGE_SCREENSHOT").map_or_else(|| shot.path().join("page.png"), PathBuf::from);
    let mut browser = Browser::open(&url, &png);
    // The venue drawn before anything is sold.
    let before = browser.expect("loaded");
    assert_eq!(before.as_array().map(Vec::len), Some(5), "five subsection tiles: {before}");
    assert!(before.as_array().unwrap().iter().all(|t| t[2] == 20), "all free: {before}");

    // Bookings of every size across the venue, sold through the API, each
    // by a buyer of its own (one buyer may hold only so many).
    let buyer = |i: usize| (10 + i).to_string();
    let mut ids = Vec::new();
    for (i, (section, subsection)) in [("A", 1), ("A", 1), ("A", 2), ("B", 1), ("B", 2), ("B", 2)].iter().enumerate() {
        let body = json!({"section": section, "subsection": subsection, "quantity": i % 4 + 1, "seat_selection_mode": "best_available"});
        let r = http(
            &gateway.addr,
            "POST",
            &format!("/events/{id}/bookings"),
            &[("X-Buyer-Id", &buyer(i))],
            body.to_string().as_bytes(),
            T,
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.json()["booking_id"].as_str().unwrap().to_owned());
    }
    let status = |i: usize| {
        let path = format!("/bookings/{}", ids[i]);
        http(&gateway.addr, "GET", &path, &[("X-Buyer-Id", &buyer(i))], b"", T).unwrap().json()
    };
    assert!(eventually(T, || (0..ids.len()).all(|i| status(i)["status"] == "pending_payment")), "not all reserved");
    for i in (0..ids.len()).step_by(2) {
        let path = format!("/bookings/{}/pay", ids[i]);
        let r = http(&gateway.addr, "POST", &path, &[("X-Buyer-Id", &buyer(i))], b"", T).unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
    }
    assert!(eventually(T, || (0..ids.len()).step_by(2).all(|i| status(i)["status"] == "completed")), "not all paid");
    let api: Value = http(&gateway.addr, "GET", &format!("/events/{id}/seats"), &[], b"", T).unwrap().json();
    let expected: Vec<(String, u64, u64)> = api
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["section"].as_str().unwrap().to_owned(),
                a["subsection"].as_u64().unwrap(),
                a["available"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(expected.iter().map(|t| t.2).sum::<u64>(), 5 * 20 - (1 + 2 + 3 + 4 + 1 + 2), "{api}");

    // The open page follows the sales on its availability stream.
    browser.go_on();
    let live = browser.expect("live");
    let rendered: Vec<(String, u64, u64)> = serde_json::from_value(live["rendered"].clone()).unwrap();
    assert_eq!(rendered, expected, "the page shows what the API says, without a reload: {live}");
    assert_eq!(live["indicator"], "live on", "the availability stream is open");

    // Its booking form books, and shows the booking's status as it changes.
    assert_eq!(browser.expect("booked"), "pending_payment");
    assert_eq!(browser.expect("grid"), 2, "the chosen subsection's grid shows the two seats reserved");
    browser.finish();
    let bytes = std::fs::read(&png).unwrap_or_default();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000, "no screenshot ({} bytes)", bytes.len());

    drop(gateway);
    ticketing.stop();
    seats.stop();
    cleanup(id);
}
