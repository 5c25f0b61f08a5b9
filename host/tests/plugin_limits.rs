//! Everything a plugin controls is bounded: each bomb of the real
//! `misbehave` component fails only its own message with the limit named,
//! discards that message's state writes, and the next message runs normally.

mod plugin_support;

use plugin_support::{misbehave_count as count, send_misbehave, test_settings, wasm_path};
use turnstile::plugin::{MemoryState, PluginEngine, PluginInstance, PluginLimits};

fn instance() -> PluginInstance<MemoryState> {
    // A generous deadline: these bombs are about space, and a loaded CI
    // machine must not turn them into timeouts.
    let settings = turnstile::plugin::EngineSettings {
        limits: PluginLimits::default(),
        deadline: std::time::Duration::from_secs(5),
        ..test_settings()
    };
    let engine = PluginEngine::new(settings).expect("engine");
    let plugin = engine.load_file(&wasm_path("misbehave")).expect("load misbehave");
    plugin.instantiate(MemoryState::new()).expect("instantiate")
}

/// The bomb fails with a limit error naming `limit`, leaves no state
/// behind, and the instance echoes the next message.
fn assert_bounded(bomb: &str, limit: &str) {
    assert_fails_alone(bomb, "limit", limit);
}

/// The bomb fails with an error of `kind` whose reason names `limit`,
/// leaves no state behind, and the instance echoes the next message.
fn assert_fails_alone(bomb: &str, kind: &str, limit: &str) {
    let mut i = instance();
    send_misbehave(&mut i, 0, r#"{"type":"hello"}"#).expect("echo before");
    let err = send_misbehave(&mut i, 0, bomb).expect_err(bomb);
    assert_eq!(err.kind(), kind, "{bomb}: {err}");
    assert!(err.reason().contains(limit), "{bomb}: the reason names {limit}: {err}");
    assert_eq!(count(i.state()).as_deref(), Some("1"), "{bomb}: the failed message's writes are discarded");
    assert_eq!(i.state().map.len(), 1, "{bomb}: nothing but the counter is in state");
    send_misbehave(&mut i, 0, r#"{"type":"hello"}"#).expect("echo after");
    assert_eq!(count(i.state()).as_deref(), Some("2"));
}

#[test]
fn a_state_write_bomb_stops_at_the_pending_budget() {
    // 10 MiB of writes: within the guest's 32 MiB memory, over the 8 MiB
    // a message may hand the host.
    assert_bounded(r#"{"type":"state_bomb","n":50}"#, "plugin.max_pending_state_bytes");
}

#[test]
fn a_state_write_bomb_past_the_memory_cap_traps_alone() {
    // 60 MiB of writes: they are built in the guest's memory until the call
    // returns, so the memory cap stops them before the host sees any.
    assert_fails_alone(r#"{"type":"state_bomb","n":300}"#, "trap", "memory limit of 32 MiB");
}

#[test]
fn keys_and_values_are_bounded() {
    assert_bounded(r#"{"type":"big_key"}"#, "plugin.max_key_bytes");
    assert_bounded(r#"{"type":"big_value"}"#, "plugin.max_value_bytes");
}

#[test]
fn output_count_and_size_are_bounded() {
    assert_bounded(r#"{"type":"output_flood","n":5000}"#, "plugin.max_outputs");
    assert_bounded(r#"{"type":"big_output","n":4096}"#, "plugin.max_output_bytes");
}

#[test]
fn a_log_flood_is_truncated_not_fatal() {
    let mut i = instance();
    let outputs =
        send_misbehave(&mut i, 0, r#"{"type":"log_flood","n":10000}"#).expect("a log flood still handles the message");
    assert_eq!(outputs.len(), 1);
    assert_eq!(count(i.state()).as_deref(), Some("1"));
}

#[test]
fn a_reset_instance_forgets_its_globals_but_keeps_state() {
    let mut i = instance();
    let calls = |i: &mut PluginInstance<MemoryState>| {
        let out = send_misbehave(i, 0, r#"{"type":"global"}"#).expect("global");
        String::from_utf8(out[0].payload.clone()).expect("utf-8")
    };
    assert_eq!(calls(&mut i), "1");
    assert_eq!(calls(&mut i), "2");
    i.reset().expect("reset");
    assert_eq!(calls(&mut i), "1", "a fresh instance starts with fresh globals");
    assert_eq!(count(i.state()).as_deref(), Some("3"), "state survives the reset");
}

#[test]
fn a_manifest_or_component_over_the_limits_is_refused() {
    let bytes = std::fs::read(wasm_path("misbehave")).expect("read misbehave");
    let limits = PluginLimits { max_component_bytes: bytes.len() - 1, ..PluginLimits::default() };
    let engine = PluginEngine::new(turnstile::plugin::EngineSettings { limits, ..test_settings() }).expect("engine");
    let err = engine.load_bytes(&bytes).unwrap_err().to_string();
    assert!(err.contains("plugin.max_component_bytes"), "{err}");

    let limits = PluginLimits { max_manifest_string_bytes: 4, ..PluginLimits::default() };
    let engine = PluginEngine::new(turnstile::plugin::EngineSettings { limits, ..test_settings() }).expect("engine");
    let err = engine.load_bytes(&bytes).unwrap_err().to_string();
    assert!(err.contains("plugin.max_manifest_string_bytes"), "{err}");
}

#[test]
fn a_compile_over_its_time_limit_is_refused() {
    let bytes = std::fs::read(wasm_path("misbehave")).expect("read misbehave");
    // No cache, so the component really compiles; no real plugin compiles in 1 µs.
    let limits = PluginLimits { max_compile: std::time::Duration::from_micros(1), ..PluginLimits::default() };
    let engine = PluginEngine::new(turnstile::plugin::EngineSettings { limits, cache_dir: None, ..test_settings() })
        .expect("engine");
    let err = engine.load_bytes(&bytes).unwrap_err().to_string();
    assert!(err.contains("plugin.max_compile_ms"), "{err}");

    let engine =
        PluginEngine::new(turnstile::plugin::EngineSettings { cache_dir: None, ..test_settings() }).expect("engine");
    engine.load_bytes(&bytes).expect("the default limit leaves room for a real compile");
}
