//! The sandbox, through the real `misbehave` component: a runaway, greedy or
//! crashing guest fails only its own message; the next message runs on a
//! fresh instance with the state written before.

mod plugin_support;

use std::time::{Duration, Instant};

use plugin_support::{misbehave_count as count, plugins, send_misbehave as send, test_settings, wasm_path};
use turnstile::plugin::{EngineSettings, HandleError, MemoryState, PluginEngine, PluginInstance, StateAccess};

fn echo_ok<S: StateAccess>(instance: &mut PluginInstance<S>, offset: i64) {
    let payload = format!(r#"{{"type":"hello","n":{offset}}}"#);
    let outputs = send(instance, offset, &payload).expect("echo");
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].action, "echo");
    assert_eq!(outputs[0].payload, payload.as_bytes());
}

#[test]
fn spin_times_out_and_only_that_message_fails() {
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    echo_ok(&mut instance, 0);
    let started = Instant::now();
    let err = send(&mut instance, 1, r#"{"type":"spin"}"#).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, HandleError::Timeout(200));
    assert_eq!(err.kind(), "timeout");
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    echo_ok(&mut instance, 2);
    assert_eq!(count(instance.state()).as_deref(), Some("2"));
}

#[test]
fn grow_hits_the_memory_cap_and_only_that_message_fails() {
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    echo_ok(&mut instance, 0);
    let err = send(&mut instance, 1, r#"{"type":"grow"}"#).unwrap_err();
    match &err {
        HandleError::Trap(reason) => assert!(reason.contains("memory limit of 32 MiB"), "{reason}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    echo_ok(&mut instance, 2);
    assert_eq!(count(instance.state()).as_deref(), Some("2"));
}

#[test]
fn trap_fails_only_that_message() {
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    echo_ok(&mut instance, 0);
    let err = send(&mut instance, 1, r#"{"type":"trap"}"#).unwrap_err();
    assert_eq!(err.kind(), "trap", "{err}");
    echo_ok(&mut instance, 2);
    assert_eq!(count(instance.state()).as_deref(), Some("2"));
}

#[test]
fn plugin_errors_pass_through_and_write_nothing() {
    let mut instance = plugins().misbehave.instantiate(MemoryState::new()).unwrap();
    echo_ok(&mut instance, 0);
    assert!(
        matches!(send(&mut instance, 1, r#"{"type":"invalid"}"#), Err(HandleError::Invalid(r)) if r.contains("invalid"))
    );
    assert!(matches!(send(&mut instance, 2, r#"{"type":"transient"}"#), Err(HandleError::Transient(_))));
    echo_ok(&mut instance, 3);
    assert_eq!(count(instance.state()).as_deref(), Some("2"));
    let state = instance.into_state();
    assert_eq!(state.map.len(), 1);
}

/// Every trap returns its instance's pool slot: a pool of 2 survives many.
#[test]
fn repeated_failures_do_not_exhaust_the_pool() {
    let engine = PluginEngine::new(EngineSettings {
        pool_instances: Some(2),
        deadline: Duration::from_millis(20),
        ..test_settings()
    })
    .unwrap();
    let plugin = engine.load_file(&wasm_path("misbehave")).unwrap();
    let mut instance = plugin.instantiate(MemoryState::new()).unwrap();
    for i in 0..40 {
        let kind = ["trap", "grow", "spin", "trap"][i % 4];
        assert!(send(&mut instance, i as i64, &format!(r#"{{"type":"{kind}"}}"#)).is_err());
    }
    echo_ok(&mut instance, 99);
    assert_eq!(count(instance.state()).as_deref(), Some("1"));
}

#[test]
fn hot_swap_keeps_the_state_and_refuses_another_service() {
    let p = plugins();
    let mut instance = p.misbehave.instantiate(MemoryState::new()).unwrap();
    echo_ok(&mut instance, 0);
    // A second load of the same bytes stands in for a new version.
    let next = p.engine.load_file(&wasm_path("misbehave")).unwrap();
    instance.reload(&next).unwrap();
    echo_ok(&mut instance, 1);
    assert_eq!(count(instance.state()).as_deref(), Some("2"));
    let err = instance.reload(&p.ticketing).unwrap_err();
    assert!(err.to_string().contains("ticketing-service"), "{err}");
    echo_ok(&mut instance, 2);
    assert_eq!(count(instance.state()).as_deref(), Some("3"));
    assert_eq!(instance.plugin().service(), "misbehave");
}

/// A state the caller implements itself, e.g. a changelog-backed one.
#[test]
fn caller_state_is_owned_by_the_instance() {
    #[derive(Default)]
    struct Counting {
        map: std::collections::HashMap<Vec<u8>, Vec<u8>>,
        puts: usize,
    }
    impl StateAccess for Counting {
        fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
            self.map.get(key).cloned()
        }
        fn put(&mut self, key: &[u8], value: &[u8]) {
            self.puts += 1;
            self.map.insert(key.to_vec(), value.to_vec());
        }
        fn delete(&mut self, key: &[u8]) {
            self.map.remove(key);
        }
    }
    let mut instance = plugins().misbehave.instantiate(Counting::default()).unwrap();
    for i in 0..3 {
        echo_ok(&mut instance, i);
    }
    assert!(send(&mut instance, 3, r#"{"type":"trap"}"#).is_err());
    instance.state_mut().puts += 100;
    let state = instance.into_state();
    assert_eq!((state.puts, state.map.get(&b"count"[..]).map(Vec::as_slice)), (103, Some(&b"3"[..])));
}

/// The runner moves instances to worker threads and shares loaded plugins.
#[test]
fn instances_are_send_and_plugins_are_shareable() {
    fn send<T: Send>() {}
    fn share<T: Send + Sync + Clone>() {}
    send::<PluginInstance<MemoryState>>();
    share::<turnstile::plugin::LoadedPlugin>();
    share::<PluginEngine>();
}
