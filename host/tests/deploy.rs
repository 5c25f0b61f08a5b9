//! Deployment: `turnstile deploy`, `plugins` and `rollback` through the
//! built binary, and `turnstile::deploy` (the store and the watcher) through
//! the library, with the real release plugins. No broker needed.

mod plugin_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use plugin_support::wasm_path;
use sha2::{Digest, Sha256};
use turnstile::config::PluginConfig;
use turnstile::deploy::{self, DeployError, Installed, Store, Watcher};
use turnstile::plugin::{EngineSettings, PluginEngine};
use turnstile::topology::Topology;

const RESERVATION: &str = "seat-reservation-service";
const TICKETING: &str = "ticketing-service";

/// The component bytes the tests deploy, and an engine with the binary's
/// settings whose compiled-code cache they share.
struct Fixtures {
    engine: PluginEngine,
    cache_dir: PathBuf,
    reservation: Vec<u8>,
    /// The reservation plugin with an extra custom section: the same plugin,
    /// other bytes, so a second version to deploy.
    reservation_b: Vec<u8>,
    ticketing: Vec<u8>,
}

/// Loads (and so compiles into the shared cache) every fixture once per test
/// binary, so that the debug-built binary never compiles them itself.
fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let cache_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-cache");
        let engine = PluginEngine::new(settings(&cache_dir)).expect("engine");
        let reservation = std::fs::read(wasm_path("reservation")).expect("reservation wasm");
        let reservation_b = with_custom_section(&reservation, "b");
        let ticketing = std::fs::read(wasm_path("ticketing")).expect("ticketing wasm");
        for (bytes, service) in [(&reservation, RESERVATION), (&reservation_b, RESERVATION), (&ticketing, TICKETING)] {
            deploy::check(&engine, bytes.clone(), service, &Topology::builtin()).expect("fixture loads");
        }
        Fixtures { engine, cache_dir, reservation, reservation_b, ticketing }
    })
}

/// The engine settings `turnstile deploy` uses with `cache_dir`.
fn settings(cache_dir: &Path) -> EngineSettings {
    PluginConfig { cache_dir: cache_dir.to_owned(), ..PluginConfig::default() }.engine_settings()
}

/// `bytes` with a custom section appended (valid anywhere in a component).
fn with_custom_section(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"turnstile-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

/// A scratch directory that is also the working directory of the binary
/// (so that no stray `turnstile.toml` is read), with the plugins under `p`.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        fixtures();
        Scratch { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn plugins(&self) -> PathBuf {
        self.dir.path().join("p")
    }

    fn service_dir(&self, service: &str) -> PathBuf {
        self.plugins().join(service)
    }

    /// Writes `bytes` to a file named `name` and returns its path.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write fixture");
        path
    }

    fn store(&self, service: &str) -> Store {
        Store::open(&self.plugins(), service).expect("store")
    }

    /// Runs the binary with `args` plus `--plugins`.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with_cache(args, &fixtures().cache_dir)
    }

    fn run_with_cache(&self, args: &[&str], cache_dir: &Path) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_turnstile"))
            .args(args)
            .arg("--plugins")
            .arg(self.plugins())
            .current_dir(self.dir.path())
            .env("TURNSTILE_PLUGIN__CACHE_DIR", cache_dir)
            .output()
            .expect("run turnstile");
        Run(output)
    }

    fn deploy(&self, name: &str, bytes: &[u8], service: &str) -> Run {
        let file = self.file(name, bytes);
        self.run(&["deploy", path_str(&file), "--service", service])
    }

    /// The target of `current`, e.g. `v2`.
    fn current(&self, service: &str) -> Option<String> {
        let link = self.service_dir(service).join("current");
        std::fs::read_link(link).ok().map(|t| t.to_string_lossy().into_owned())
    }

    /// Every entry of the service directory, sorted.
    fn entries(&self, service: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.service_dir(service))
            .expect("service dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// The outcome of one run of the binary.
struct Run(Output);

impl Run {
    fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code(), Some(0), "stdout: {}\nstderr: {}", self.stdout(), self.stderr());
        self.stdout()
    }
    /// Asserts exit code 2 and returns stderr.
    #[track_caller]
    fn refused(self) -> String {
        assert_eq!(self.code(), Some(2), "stdout: {}\nstderr: {}", self.stdout(), self.stderr());
        self.stderr()
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn deploy_installs_a_precompiled_version_and_same_bytes_are_a_noop() {
    let s = Scratch::new();
    let f = fixtures();
    // A fresh cache: the deploy itself must leave the compiled code there.
    let cache = s.dir.path().join("compiled");
    let file = s.file("reservation.wasm", &f.reservation);
    let out = s.run_with_cache(&["deploy", path_str(&file), "--service", RESERVATION], &cache).ok();
    let sha = sha256(&f.reservation);
    assert!(
        out.contains(&format!("deployed {RESERVATION} v1: plugin 0.1.0, {} bytes, sha256 {sha}", f.reservation.len())),
        "{out}"
    );
    assert!(out.contains("current: (none) → v1"), "{out}");
    assert_eq!(s.current(RESERVATION).as_deref(), Some("v1"));
    assert_eq!(s.entries(RESERVATION), [".lock", "current", "v1"]);
    let v1 = s.service_dir(RESERVATION).join("v1");
    assert_eq!(std::fs::read(v1.join("plugin.wasm")).unwrap(), f.reservation);

    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(v1.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["sha256"], sha.as_str());
    assert_eq!(meta["size"], f.reservation.len());
    assert_eq!(meta["service"], RESERVATION);
    assert_eq!(meta["plugin_version"], "0.1.0");
    assert_eq!(meta["consumes"], serde_json::json!(["ticket-command-request"]));
    assert_eq!(meta["emits"], serde_json::json!(["seat-reservation-result"]));
    let at = meta["deployed_at"].as_str().unwrap();
    assert!(at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "{at}");

    // Precompiled for this host: a runner's engine finds it in the cache.
    let entries: Vec<String> =
        std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(entries.iter().any(|n| n.starts_with(&sha) && n.ends_with(".cwasm")), "{entries:?}");
    let runner = PluginEngine::new(settings(&cache)).unwrap();
    assert!(runner.load_file(&v1.join("plugin.wasm")).unwrap().from_cache());

    let out = s.deploy("again.wasm", &f.reservation, RESERVATION).ok();
    assert!(out.contains(&format!("{RESERVATION} v1 already has these bytes (sha256 {sha}): nothing to do")), "{out}");
    assert_eq!(s.entries(RESERVATION), [".lock", "current", "v1"]);
}

#[test]
fn refused_files_name_the_reason_and_change_nothing() {
    let s = Scratch::new();
    let f = fixtures();
    s.deploy("reservation.wasm", &f.reservation, RESERVATION).ok();
    let before = s.entries(RESERVATION);

    let core = wat::parse_str(r#"(module (func (export "handle")))"#).unwrap();
    let sockets = wat::parse_str(r#"(component (import "wasi:sockets/tcp@0.2.0" (instance)))"#).unwrap();
    let files = wat::parse_str(r#"(component (import "wasi:filesystem/types@0.2.0" (instance)))"#).unwrap();
    let no_exports = wat::parse_str(r#"(component (import "turnstile:plugin/log@0.3.0" (instance)))"#).unwrap();
    let cases: [(&str, &[u8], &str); 7] = [
        ("garbage.wasm", b"this is not webassembly", "not a WebAssembly binary"),
        ("empty.wasm", b"", "the file is empty"),
        ("core.wasm", &core, "a core WebAssembly module, not a component"),
        ("sockets.wasm", &sockets, "imports `wasi:sockets/tcp@0.2.0`"),
        ("files.wasm", &files, "imports `wasi:filesystem/types@0.2.0`"),
        ("no-exports.wasm", &no_exports, "does not export `handle`"),
        (
            "ticketing.wasm",
            &f.ticketing,
            "its manifest names service `ticketing-service`, not `seat-reservation-service`",
        ),
    ];
    for (name, bytes, reason) in cases {
        let err = s.deploy(name, bytes, RESERVATION).refused();
        assert!(err.contains(name) && err.contains("plugin refused") && err.contains(reason), "{name}: {err}");
        assert_eq!(s.current(RESERVATION).as_deref(), Some("v1"), "{name}");
        assert_eq!(s.entries(RESERVATION), before, "{name} left something behind");
    }

    let err = s.run(&["deploy", "missing.wasm", "--service", RESERVATION]).refused();
    assert!(err.contains("cannot read missing.wasm"), "{err}");
    let err = s.deploy("reservation.wasm", &f.reservation, "../escape").refused();
    assert!(err.contains("invalid service name \"../escape\""), "{err}");
    assert_eq!(s.entries(RESERVATION), before);
    assert!(!s.dir.path().join("escape").exists());
}

#[test]
fn plugins_lists_versions_in_aligned_columns_and_marks_current() {
    let s = Scratch::new();
    let f = fixtures();
    let out = s.run(&["plugins", "--service", RESERVATION]).ok();
    assert!(out.starts_with(&format!("no versions of {RESERVATION} deployed in")), "{out}");

    s.deploy("a.wasm", &f.reservation, RESERVATION).ok();
    s.deploy("b.wasm", &f.reservation_b, RESERVATION).ok();
    let out = s.run(&["plugins", "--service", RESERVATION]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("  VERSION  SHA256"), "{out}");
    assert!(lines[1].starts_with("  v1 ") && lines[2].starts_with("* v2 "), "{out}");
    // Aligned: each cell starts (the size ends) where its header does.
    let header = lines[0];
    let at = |name: &str| header.find(name).unwrap();
    let size_end = at("SIZE") + "SIZE".len();
    for (line, bytes) in lines[1..].iter().zip([&f.reservation, &f.reservation_b]) {
        assert!(line[at("SHA256")..].starts_with(&sha256(bytes)[..12]), "{out}");
        assert!(line[..size_end].ends_with(&format!(" {}", bytes.len())), "{out}");
        assert!(line[at("DEPLOYED")..].starts_with("20"), "{out}");
        assert_eq!(&line[at("PLUGIN")..], "0.1.0", "{out}");
    }

    let out = s.run(&["plugins", "--service", RESERVATION, "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["current"], 2);
    assert_eq!(report["versions"][0]["number"], 1);
    assert_eq!(report["versions"][0]["current"], false);
    assert_eq!(report["versions"][1]["current"], true);
    assert_eq!(report["versions"][1]["sha256"], sha256(&f.reservation_b));
}

#[test]
fn rollback_moves_current_and_refuses_unknown_versions() {
    let s = Scratch::new();
    let f = fixtures();
    let err = s.run(&["rollback", "--service", RESERVATION]).refused();
    assert!(err.contains(&format!("nothing of {RESERVATION} is deployed")), "{err}");

    s.deploy("a.wasm", &f.reservation, RESERVATION).ok();
    s.deploy("b.wasm", &f.reservation_b, RESERVATION).ok();
    assert_eq!(s.current(RESERVATION).as_deref(), Some("v2"));

    let out = s.run(&["rollback", "--service", RESERVATION]).ok();
    assert!(
        out.starts_with(&format!("{RESERVATION}: current v2 → v1 (plugin 0.1.0, sha256 {}", sha256(&f.reservation)))
    );
    assert_eq!(s.current(RESERVATION).as_deref(), Some("v1"));
    let err = s.run(&["rollback", "--service", RESERVATION]).refused();
    assert!(err.contains("v1 is the oldest version"), "{err}");

    let out = s.run(&["rollback", "--service", RESERVATION, "--to", "2"]).ok();
    assert!(out.contains("current v1 → v2"), "{out}");
    let out = s.run(&["rollback", "--service", RESERVATION, "--to", "v2"]).ok();
    assert!(out.contains("v2 is already current"), "{out}");
    let err = s.run(&["rollback", "--service", RESERVATION, "--to", "9"]).refused();
    assert!(err.contains(&format!("{RESERVATION} has no version 9 (deployed: v1, v2)")), "{err}");
    let err = s.run(&["rollback", "--service", RESERVATION, "--to", "latest"]).refused();
    assert!(err.contains("not a version"), "{err}");
    assert_eq!(s.current(RESERVATION).as_deref(), Some("v2"));

    // Deploying the bytes of an older, non-current version is a new version:
    // numbers only grow.
    let out = s.deploy("a.wasm", &f.reservation, RESERVATION).ok();
    assert!(out.contains("current: v2 → v3"), "{out}");
    assert_eq!(s.entries(RESERVATION), [".lock", "current", "v1", "v2", "v3"]);
}

#[test]
fn watcher_reports_each_move_of_current_once() {
    let s = Scratch::new();
    let f = fixtures();
    let store = s.store(RESERVATION);
    let mut watcher = Watcher::new(store.clone());
    assert_eq!(watcher.poll().unwrap(), None, "nothing deployed yet");

    let a = deploy::check(&f.engine, f.reservation.clone(), RESERVATION, &Topology::builtin()).unwrap();
    let b = deploy::check(&f.engine, f.reservation_b.clone(), RESERVATION, &Topology::builtin()).unwrap();
    let Installed::New { version: v1, previous: None } = store.install(&a).unwrap() else { panic!("first install") };
    assert_eq!(v1.number, 1);
    assert_eq!(v1.sha256, sha256(&f.reservation));
    assert_eq!(v1.size, f.reservation.len() as u64);
    assert_eq!(v1.plugin_version, "0.1.0");
    assert_eq!(std::fs::read(&v1.path_to_wasm).unwrap(), f.reservation);
    assert_eq!(watcher.poll().unwrap(), Some(v1.clone()));
    assert_eq!(watcher.poll().unwrap(), None);

    assert_eq!(store.install(&a).unwrap(), Installed::Unchanged(v1.clone()));
    assert_eq!(watcher.poll().unwrap(), None, "a no-op deploy is no change");

    let Installed::New { version: v2, previous: Some(prev) } = store.install(&b).unwrap() else { panic!("second") };
    assert_eq!((v2.number, prev.number), (2, 1));
    assert_eq!(store.current().unwrap(), Some(v2.clone()));
    assert_eq!(watcher.poll().unwrap(), Some(v2.clone()));
    assert_eq!(watcher.poll().unwrap(), None);

    let rollback = store.rollback(None).unwrap();
    assert_eq!((rollback.from.number, rollback.to.number), (2, 1));
    assert_eq!(watcher.poll().unwrap(), Some(v1.clone()));
    assert_eq!(watcher.poll().unwrap(), None);
    assert_eq!(store.rollback(Some(1)).unwrap().to, v1, "rolling back to current");
    assert_eq!(watcher.poll().unwrap(), None);
    assert_eq!(store.versions().unwrap(), [v1.clone(), v2.clone()]);

    // A watcher that starts from a version it already loaded.
    let mut since = Watcher::since(store.clone(), Some(&v1));
    assert_eq!(since.poll().unwrap(), None);
    store.rollback(Some(2)).unwrap();
    assert_eq!(since.poll().unwrap(), Some(v2.clone()));
    assert_eq!(watcher.poll().unwrap(), Some(v2));
}

#[test]
fn library_refusals() {
    let s = Scratch::new();
    let f = fixtures();
    let err = deploy::check(&f.engine, f.ticketing.clone(), RESERVATION, &Topology::builtin()).unwrap_err();
    assert!(matches!(&err, DeployError::WrongService { found, .. } if found == TICKETING), "{err}");
    assert!(err.is_refusal());

    let ticketing = deploy::check(&f.engine, f.ticketing.clone(), TICKETING, &Topology::builtin()).unwrap();
    let err = s.store(RESERVATION).install(&ticketing).unwrap_err();
    assert!(matches!(err, DeployError::WrongService { .. }), "{err}");
    assert!(!s.service_dir(RESERVATION).exists(), "a refused install creates nothing");

    for bad in ["", "..", "a/b", "Ticketing", "x y"] {
        assert!(matches!(Store::open(&s.plugins(), bad), Err(DeployError::InvalidService(_))), "{bad:?}");
    }
    let err = s.store(RESERVATION).rollback(Some(1)).unwrap_err();
    assert!(matches!(err, DeployError::NothingDeployed { .. }), "{err}");
}

#[test]
fn concurrent_deploys_serialise_without_corrupting_the_store() {
    let s = Scratch::new();
    let f = fixtures();
    let a = s.file("a.wasm", &f.reservation);
    let b = s.file("b.wasm", &f.reservation_b);
    let children: Vec<_> = (0..6)
        .map(|i| {
            let file = if i % 2 == 0 { &a } else { &b };
            Command::new(env!("CARGO_BIN_EXE_turnstile"))
                .args(["deploy", path_str(file), "--service", RESERVATION, "--plugins", path_str(&s.plugins())])
                .current_dir(s.dir.path())
                .env("TURNSTILE_PLUGIN__CACHE_DIR", &f.cache_dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        Run(child.wait_with_output().unwrap()).ok();
    }

    // Versions are 1..=n, each complete (metadata matches the bytes), each
    // different from the one before (an identical deploy is a no-op), no
    // temporary left, and `current` is the last.
    let store = s.store(RESERVATION);
    let versions = store.versions().unwrap();
    assert!(!versions.is_empty() && versions.len() <= 6, "{versions:?}");
    for (i, v) in versions.iter().enumerate() {
        assert_eq!(v.number as usize, i + 1);
        assert_eq!(sha256(&std::fs::read(&v.path_to_wasm).unwrap()), v.sha256);
    }
    assert!(versions.windows(2).all(|w| w[0].sha256 != w[1].sha256), "{versions:?}");
    assert_eq!(store.current().unwrap().as_ref(), versions.last());
    let mut expected = vec![".lock".to_owned(), "current".to_owned()];
    expected.extend(versions.iter().map(|v| format!("v{}", v.number)));
    expected.sort();
    assert_eq!(s.entries(RESERVATION), expected);
}

/// The example plugin emits `booking-audit`: refused until the topology has
/// a topic for it from `example-service`, then accepted.
#[test]
fn a_plugin_off_the_topology_is_refused_naming_the_action() {
    use turnstile::topology::{Flow, Partitioning};
    let f = fixtures();
    let example = std::fs::read(wasm_path("example")).expect("example wasm");
    let err = deploy::check(&f.engine, example.clone(), "example-service", &Topology::builtin()).unwrap_err();
    assert!(err.is_refusal());
    assert_eq!(
        err.to_string(),
        "plugin refused: example-service emits `booking-audit`, but the topology has no topic of `booking-audit` \
         from example-service"
    );
    let audit = Flow {
        action: "booking-audit".into(),
        from: "example-service".into(),
        to: "client".into(),
        routing: Partitioning::Booking,
    };
    let topology = Topology::with(&[audit]).unwrap();
    deploy::check(&f.engine, example, "example-service", &topology).expect("fits the configured topology");
}
