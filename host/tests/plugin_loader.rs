//! Loading: what is refused and why, the manifest, and the compiled-code
//! cache.

mod plugin_support;

use plugin_support::{plugins, test_settings, wasm_path};
use turnstile::plugin::{EngineSettings, PluginEngine, PluginError};

fn engine() -> &'static PluginEngine {
    &plugins().engine
}

#[test]
fn garbage_is_not_webassembly() {
    for bytes in [&b""[..], b"hello", b"definitely not a wasm file at all"] {
        let err = engine().load_bytes(bytes).unwrap_err();
        assert!(matches!(err, PluginError::NotWasm(_)), "{err}");
        assert!(err.to_string().contains("not a WebAssembly binary"), "{err}");
    }
}

#[test]
fn a_core_module_is_not_a_component() {
    let module = wat::parse_str(r#"(module (func (export "handle")))"#).unwrap();
    let err = engine().load_bytes(&module).unwrap_err();
    assert!(matches!(err, PluginError::CoreModule), "{err}");
    assert!(err.to_string().contains("core WebAssembly module, not a component"), "{err}");
}

#[test]
fn imports_beyond_the_world_are_refused_by_name() {
    let component = wat::parse_str(r#"(component (import "wasi:sockets/tcp@0.2.0" (instance)))"#).unwrap();
    let err = engine().load_bytes(&component).unwrap_err();
    assert!(matches!(&err, PluginError::ForbiddenImport { import, .. } if import == "wasi:sockets/tcp@0.2.0"), "{err}");
    assert!(err.to_string().contains("`wasi:sockets/tcp@0.2.0`"), "{err}");
}

#[test]
fn a_plugin_built_against_another_world_version_is_told_to_rebuild() {
    // 0.2.0 took one message per call and wrote state through imports; 0.1.0
    // had no `route`. Both are refused with the version they were built for.
    for old in ["0.2.0", "0.1.0"] {
        let wat = format!(r#"(component (import "turnstile:plugin/state@{old}" (instance)))"#);
        let err = engine().load_bytes(&wat::parse_str(&wat).unwrap()).unwrap_err();
        assert!(matches!(&err, PluginError::WorldVersion { found, .. } if found == old), "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("turnstile:plugin@{old}")), "{text}");
        assert!(text.contains("turnstile:plugin@0.3.0") && text.contains("rebuild"), "{text}");
    }
}

#[test]
fn a_component_must_export_the_world() {
    let component = wat::parse_str(r#"(component (import "turnstile:plugin/log@0.3.0" (instance)))"#).unwrap();
    let err = engine().load_bytes(&component).unwrap_err();
    assert!(matches!(&err, PluginError::MissingExport(name) if name == "handle"), "{err}");
}

#[test]
fn exports_of_the_wrong_type_are_refused() {
    let component = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "handle" (func $f))
            (export "route" (func $f))
            (export "manifest" (func $f)))"#,
    )
    .unwrap();
    let err = engine().load_bytes(&component).unwrap_err();
    assert!(matches!(err, PluginError::Incompatible(_)), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let err = engine().load_file(std::path::Path::new("/nonexistent/plugin.wasm")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/plugin.wasm"), "{err}");
}

#[test]
fn real_plugins_load_with_their_manifests() {
    let p = plugins();
    let t = p.ticketing.manifest();
    assert_eq!(t.service, "ticketing-service");
    assert_eq!(t.consumes, ["booking-command", "seat-reservation-result"]);
    let r = p.reservation.manifest();
    assert_eq!(r.service, "seat-reservation-service");
    assert_eq!(r.consumes, ["ticket-command-request"]);
    assert_eq!(r.emits, ["seat-reservation-result"]);
    let bytes = std::fs::read(wasm_path("reservation")).unwrap();
    assert_eq!(p.reservation.size(), bytes.len());
    assert_eq!(p.reservation.sha256().len(), 64);
    assert_ne!(p.reservation.sha256(), p.ticketing.sha256());
}

#[test]
fn compiled_code_is_cached_and_a_corrupt_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let settings = EngineSettings { cache_dir: Some(dir.path().join("compiled")), ..test_settings() };
    let bytes = std::fs::read(wasm_path("reservation")).unwrap();
    let first = PluginEngine::new(settings.clone()).unwrap().load_bytes(&bytes).unwrap();
    assert!(!first.from_cache());
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("compiled")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(first.sha256()) && name.ends_with(".cwasm"), "{name}");

    // A restart: a new engine with the same settings reuses the entry.
    let second = PluginEngine::new(settings.clone()).unwrap().load_bytes(&bytes).unwrap();
    assert!(second.from_cache());
    assert_eq!(second.manifest(), first.manifest());

    // Corrupt, truncated and bit-flipped entries are recompiled and
    // rewritten, even while a component loaded from the entry is alive.
    let good = std::fs::read(&entries[0]).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    for damage in [b"garbage".to_vec(), good[..4096].to_vec(), flipped] {
        std::fs::write(&entries[0], damage).unwrap();
        let third = PluginEngine::new(settings.clone()).unwrap().load_bytes(&bytes).unwrap();
        assert!(!third.from_cache());
        assert_eq!(third.manifest(), first.manifest());
        let fourth = PluginEngine::new(settings.clone()).unwrap().load_bytes(&bytes).unwrap();
        assert!(fourth.from_cache());
    }
}
