//! Messages per second through each plugin: the release component in the
//! host's runtime (state on, deadline armed per call), one message per call
//! and `BATCH` per call as the runner hands them, versus the same domain
//! logic called natively over an in-memory store. Prints a table.
//!
//! `cargo bench -p turnstile --bench plugins` (scripts/build-plugins first).
//! `BENCH_BOOKINGS` (default 20000) sets the size of one pass, `BENCH_BATCH`
//! (default 64, `runner.plugin_batch`'s default) the batched column's size;
//! `BENCH_PERF_MAP=1` names the compiled guest functions for `perf`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use turnstile::naming::{self, TopicName};
use turnstile::plugin::{EngineSettings, MemoryState, Message, PluginEngine, StateAccess};
use turnstile_protocol::MemoryStore;

const EVENT: u64 = 1;
const RUNS: usize = 5;

/// One input record: its topic and payload.
struct Input {
    topic: TopicName,
    topic_text: String,
    payload: Vec<u8>,
}

fn input(topic: TopicName, value: serde_json::Value) -> Input {
    Input { topic_text: topic.to_string(), topic, payload: serde_json::to_vec(&value).unwrap_or_default() }
}

/// Seat service traffic: 10 sections × 10 subsections of 20 × 25 seats,
/// then per booking a reserve (80 % best available, 1–4 seats) followed by a
/// finalize (60 %) or a release (40 %), interleaved like concurrent buyers.
fn reservation_mix(bookings: usize, rng: &mut StdRng) -> Vec<Input> {
    let topic = naming::ticket_command_request_topic(EVENT);
    let mut out = Vec::new();
    let sections: Vec<String> = ('A'..='J').map(String::from).collect();
    for s in &sections {
        for sub in 1..=10 {
            out.push(input(topic.clone(), json!({"type": "configure_subsection", "section": s, "subsection": sub, "rows": 20, "seats_per_row": 25, "price": 40})));
        }
    }
    let mut pending = Vec::new();
    for i in 0..bookings {
        let section = &sections[rng.random_range(0..sections.len())];
        let sub = rng.random_range(1..=10u32);
        let quantity = rng.random_range(1..=4u32);
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let (mode, positions) = if rng.random_bool(0.8) {
            ("best_available", Vec::new())
        } else {
            let row = rng.random_range(1..=20u32);
            let first = rng.random_range(1..=22u32);
            ("manual", (0..quantity).map(|k| format!("{row}-{}", first + k)).collect())
        };
        out.push(input(topic.clone(), json!({"type": "reserve_seats", "booking_id": id, "buyer_id": i, "section": section, "subsection": sub, "quantity": quantity, "seat_selection_mode": mode, "seat_positions": positions})));
        pending.push((id, section.clone(), sub));
        if pending.len() > 50 || i + 1 == bookings {
            for (id, section, sub) in pending.drain(..) {
                let kind = if rng.random_bool(0.6) { "finalize_seats" } else { "release_seats" };
                out.push(input(
                    topic.clone(),
                    json!({"type": kind, "booking_id": id, "section": section, "subsection": sub}),
                ));
            }
        }
    }
    out
}

/// Ticketing traffic: per booking a create, the seat service's answer
/// (90 % reserved), then a pay (60 %) or a cancel.
fn ticketing_mix(bookings: usize, rng: &mut StdRng) -> Vec<Input> {
    let commands = naming::booking_command_topic(EVENT);
    let results = naming::seat_reservation_result_topic(EVENT);
    let mut out = Vec::new();
    for i in 0..bookings {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let section = ["A", "B", "C", "VIP"][i % 4];
        let quantity = rng.random_range(1..=4u32);
        out.push(input(commands.clone(), json!({"type": "create_booking", "booking_id": id, "buyer_id": i, "section": section, "subsection": 1, "quantity": quantity, "seat_selection_mode": "best_available", "seat_positions": []})));
        if rng.random_bool(0.9) {
            let seats: Vec<String> = (1..=quantity).map(|s| format!("3-{s}")).collect();
            out.push(input(results.clone(), json!({"type": "seats_reserved", "booking_id": id, "section": section, "subsection": 1, "seats": seats, "total_price": 40 * quantity})));
            let kind = if rng.random_bool(0.6) { "pay_booking" } else { "cancel_booking" };
            out.push(input(commands.clone(), json!({"type": kind, "booking_id": id, "buyer_id": i})));
        } else {
            out.push(input(
                results.clone(),
                json!({"type": "reservation_failed", "booking_id": id, "reason": "sold out"}),
            ));
        }
    }
    out
}

/// Echo traffic for the misbehave plugin: the runtime's fixed cost.
fn echo_mix(messages: usize) -> Vec<Input> {
    let topic = TopicName::flow(EVENT, "misbehave", naming::CLIENT, "misbehave");
    (0..messages).map(|i| input(topic.clone(), json!({"type": "echo", "n": i}))).collect()
}

type Native =
    fn(&mut MemoryStore, u64, &str, &[u8]) -> Result<Vec<turnstile_protocol::Output>, turnstile_protocol::HandleError>;

fn run_native(handle: Native, inputs: &[Input]) -> (Duration, usize) {
    let mut store = MemoryStore::default();
    let started = Instant::now();
    let mut outputs = 0;
    for i in inputs {
        if let Ok(o) = handle(&mut store, EVENT, &i.topic.action, &i.payload) {
            outputs += o.len();
        }
    }
    (started.elapsed(), outputs)
}

/// The component through the host's runtime, `batch` messages per call,
/// keeping every outcome as the runner does (writes applied in order, the
/// messages after a refused or transient one handed again).
fn run_wasm(plugin: &turnstile::plugin::LoadedPlugin, inputs: &[Input], batch: usize) -> (Duration, usize) {
    let mut instance = match plugin.instantiate(MemoryState::new()) {
        Ok(instance) => instance,
        Err(err) => panic!("instantiate: {err}"),
    };
    let messages: Vec<Message<'_>> = inputs
        .iter()
        .enumerate()
        .map(|(offset, i)| Message {
            topic: &i.topic_text,
            partition: 0,
            offset: offset as i64,
            key: None,
            payload: &i.payload,
            headers: &[],
            timestamp: None,
            event_id: EVENT,
            action: &i.topic.action,
        })
        .collect();
    let started = Instant::now();
    let mut outputs = 0;
    let mut next = 0;
    while next < messages.len() {
        let end = messages.len().min(next + batch);
        let results = match instance.handle_batch(&messages[next..end]) {
            Ok(results) => results,
            Err(err) => panic!("handle: {err}"),
        };
        for result in results {
            next += 1;
            if let Ok(handled) = result {
                outputs += handled.outputs.len();
                instance.state_mut().apply(handled.writes);
            }
        }
    }
    (started.elapsed(), outputs)
}

fn median_rate(mut run: impl FnMut() -> (Duration, usize), messages: usize) -> (f64, usize) {
    run(); // warm-up
    let mut rates = Vec::with_capacity(RUNS);
    let mut outputs = 0;
    for _ in 0..RUNS {
        let (elapsed, o) = run();
        outputs = o;
        rates.push(messages as f64 / elapsed.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    (rates[RUNS / 2], outputs)
}

fn wasm_path(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    let target = if target.is_absolute() { target } else { workspace.join(target) };
    target.join("wasm32-wasip2/release").join(format!("turnstile_{name}.wasm"))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a smoke pass.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let bookings: usize =
        std::env::var("BENCH_BOOKINGS").ok().and_then(|v| v.parse().ok()).unwrap_or(if smoke { 200 } else { 20_000 });
    let batch: usize = std::env::var("BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(64).max(1);
    let perf_map = std::env::var_os("BENCH_PERF_MAP").is_some_and(|v| v == "1");
    let engine = match PluginEngine::new(EngineSettings { perf_map, ..EngineSettings::default() }) {
        Ok(engine) => engine,
        Err(err) => panic!("engine: {err}"),
    };
    let load = |name: &str| {
        let path = wasm_path(name);
        engine.load_file(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-plugins)", path.display()))
    };
    let mut rng = StdRng::seed_from_u64(7);
    let cases: Vec<(&str, Vec<Input>, Native, turnstile::plugin::LoadedPlugin)> = vec![
        (
            "seat-reservation",
            reservation_mix(bookings, &mut rng),
            turnstile_reservation::handle::<MemoryStore>,
            load("reservation"),
        ),
        ("ticketing", ticketing_mix(bookings, &mut rng), turnstile_ticketing::handle::<MemoryStore>, load("ticketing")),
    ];
    println!(
        "plugin messages/s, median of {RUNS} passes (after one warm-up), {bookings} bookings per pass, one partition's state"
    );
    println!(
        "| plugin | messages/pass | native msg/s | wasm ×1 msg/s | wasm ×{batch} msg/s | native ns/msg | wasm ×1 ns/msg | wasm ×{batch} ns/msg | wasm ×{batch} / native time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, inputs, native, plugin) in &cases {
        let n = inputs.len();
        let (native_rate, native_out) = median_rate(|| run_native(*native, inputs), n);
        let (single_rate, single_out) = median_rate(|| run_wasm(plugin, inputs, 1), n);
        let (batch_rate, batch_out) = median_rate(|| run_wasm(plugin, inputs, batch), n);
        assert_eq!(native_out, single_out, "{name}: native and wasm disagree on the number of outputs");
        assert_eq!(single_out, batch_out, "{name}: one per call and batched disagree on the number of outputs");
        println!(
            "| {name} | {n} | {:.0}k | {:.0}k | {:.0}k | {:.0} | {:.0} | {:.0} | {:.2}× |",
            native_rate / 1e3,
            single_rate / 1e3,
            batch_rate / 1e3,
            1e9 / native_rate,
            1e9 / single_rate,
            1e9 / batch_rate,
            native_rate / batch_rate
        );
    }
    let echo = echo_mix(bookings * 3);
    let misbehave = load("misbehave");
    let (single, _) = median_rate(|| run_wasm(&misbehave, &echo, 1), echo.len());
    let (batched, _) = median_rate(|| run_wasm(&misbehave, &echo, batch), echo.len());
    println!(
        "| echo (runtime floor: 1 get, 1 write, 1 output) | {} | – | {:.0}k | {:.0}k | – | {:.0} | {:.0} | – |",
        echo.len(),
        single / 1e3,
        batched / 1e3,
        1e9 / single,
        1e9 / batched
    );
}
