//! `misbehave`: a deliberately hostile plugin for the host's sandbox tests.
//!
//! By the payload's `type`: `spin` loops forever, `grow` allocates (and
//! touches) memory without bound, `trap` panics (a wasm trap), `invalid` and
//! `transient` return those errors. The host-limit bombs: `state_bomb`
//! writes `n` values of 200 KiB under new keys (the writes return to the
//! host with the message's result, so they are bounded per message), `big_key` writes one 1 MiB key,
//! `big_value` one 1 MiB value, `output_flood` returns `n` outputs,
//! `big_output` one output of `n` KiB, `log_flood` logs `n` lines of 1 KiB,
//! `misroute` emits `seat-reservation-result` routed by section. `global`
//! echoes and reports a guest global counter, so tests can see a fresh
//! instance. Anything else is echoed back as one output (action `echo`,
//! routed by event) and bumps the counter under state key `count` (decimal
//! ASCII), so tests can see state survive.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::Deserialize;
use turnstile_protocol::{HandleError, Output, Routing, Store};

/// The service this plugin claims to be.
pub const SERVICE: &str = "misbehave";
/// Nominal consumed action; the plugin ignores the action it is given.
pub const CONSUMES: &[&str] = &["misbehave"];
/// Actions it may emit to.
pub const EMITS: &[&str] = &[ECHO];
/// The action of echoed payloads.
pub const ECHO: &str = "echo";
/// The state key of the echo counter.
pub const COUNT_KEY: &[u8] = b"count";

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Size or count for the bombs.
    n: Option<u32>,
}

/// Lives in the guest's linear memory: reset only by a fresh instance.
static CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The plugin: [`handle`] behind the SDK's [`turnstile_plugin::Plugin`].
pub struct Misbehave;

impl turnstile_plugin::Plugin for Misbehave {
    const SERVICE: &'static str = SERVICE;
    const CONSUMES: &'static [&'static str] = CONSUMES;
    const EMITS: &'static [&'static str] = EMITS;

    fn handle(
        message: &turnstile_plugin::Message,
        state: &mut turnstile_plugin::State<'_>,
    ) -> Result<Vec<Output>, HandleError> {
        handle(state, message.event_id, &message.action, &message.value)
    }
}

turnstile_plugin::export!(Misbehave);

/// Handles one message as described in the crate docs. Only `invalid`,
/// `transient` and echo return; do not call `spin`, `grow` or `trap` natively.
pub fn handle<S: Store + ?Sized>(
    store: &mut S,
    event_id: u64,
    action: &str,
    payload: &[u8],
) -> Result<Vec<Output>, HandleError> {
    let _ = (event_id, action);
    let probe = serde_json::from_slice::<Probe>(payload).ok();
    let n = probe.as_ref().and_then(|p| p.n).unwrap_or(1) as usize;
    let calls = CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
    const MIB: usize = 1 << 20;
    match probe.and_then(|p| p.kind).as_deref() {
        Some("spin") => spin(),
        Some("grow") => grow(),
        Some("trap") => panic!("trap requested"),
        Some("invalid") => Err(HandleError::Invalid("invalid requested".into())),
        Some("transient") => Err(HandleError::Transient("transient requested".into())),
        Some("state_bomb") => {
            let value = vec![7u8; 200 << 10];
            for i in 0..n {
                store.put(alloc::format!("bomb-{i}").as_bytes(), &value);
            }
            Ok(echo(store, payload))
        }
        Some("big_key") => {
            store.put(&vec![b'k'; MIB], b"v");
            Ok(echo(store, payload))
        }
        Some("big_value") => {
            store.put(b"big", &vec![b'v'; MIB]);
            Ok(echo(store, payload))
        }
        Some("output_flood") => Ok((0..n)
            .map(|_| Output { action: ECHO.into(), routing: Routing::Event, payload: Vec::new(), critical: false })
            .collect()),
        Some("big_output") => Ok(vec![Output {
            action: ECHO.into(),
            routing: Routing::Event,
            payload: vec![b'o'; n * 1024],
            critical: false,
        }]),
        Some("log_flood") => {
            let line = "l".repeat(1024);
            for _ in 0..n {
                store.log(turnstile_protocol::LogLevel::Info, &line);
            }
            Ok(echo(store, payload))
        }
        Some("misroute") => Ok(vec![Output {
            action: "seat-reservation-result".into(),
            routing: Routing::Section { section: "A".into(), subsection: 1 },
            payload: payload.to_vec(),
            critical: false,
        }]),
        Some("global") => {
            let mut out = echo(store, payload);
            out[0].payload = alloc::format!("{calls}").into_bytes();
            Ok(out)
        }
        _ => Ok(echo(store, payload)),
    }
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        // black_box keeps the loop from being optimised into something else.
        n = core::hint::black_box(n.wrapping_add(1));
    }
}

fn grow() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        // Write every page so the memory is really committed.
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = 1;
        }
        hoard.push(core::hint::black_box(chunk));
    }
}

fn echo<S: Store + ?Sized>(store: &mut S, payload: &[u8]) -> Vec<Output> {
    let count = store.get(COUNT_KEY).and_then(|v| core::str::from_utf8(&v).ok()?.parse::<u64>().ok()).unwrap_or(0) + 1;
    store.put(COUNT_KEY, alloc::format!("{count}").as_bytes());
    vec![Output { action: ECHO.into(), routing: Routing::Event, payload: payload.to_vec(), critical: false }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnstile_protocol::MemoryStore;

    #[test]
    fn echoes_and_counts() {
        let mut s = MemoryStore::new();
        for (i, payload) in [&b"raw bytes"[..], br#"{"type":"hello"}"#, b"{}"].iter().enumerate() {
            let out = handle(&mut s, 1, "misbehave", payload).unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!((out[0].action.as_str(), &out[0].routing), (ECHO, &Routing::Event));
            assert_eq!(out[0].payload, *payload);
            assert_eq!(s.map[COUNT_KEY], format!("{}", i + 1).into_bytes());
        }
    }

    #[test]
    fn errors_on_request() {
        let mut s = MemoryStore::new();
        assert!(matches!(handle(&mut s, 1, "x", br#"{"type":"invalid"}"#), Err(HandleError::Invalid(_))));
        assert!(matches!(handle(&mut s, 1, "x", br#"{"type":"transient"}"#), Err(HandleError::Transient(_))));
        assert!(s.map.is_empty());
    }

    #[test]
    #[should_panic(expected = "trap requested")]
    fn trap_panics() {
        let _ = handle(&mut MemoryStore::new(), 1, "x", br#"{"type":"trap"}"#);
    }
}
