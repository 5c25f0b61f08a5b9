//! The plugins of this build against an earlier build's recorded replays
//! (`tests/fixtures/golden`): the same input gives the same outputs, error
//! texts and final state, byte for byte.

mod plugin_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use plugin_support::wasm_path;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden").join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replays `SERVICE.input.jsonl` through the real binary and plugin and
/// compares stdout and the state file with the recorded ones.
fn replays_as_recorded(service: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_out = dir.path().join("state.json");
    let output = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .arg("replay")
        .arg("--plugin")
        .arg(wasm_path(service))
        .args(["--event", "1", "--input"])
        .arg(fixture(&format!("{service}.input.jsonl")))
        .arg("--state-out")
        .arg(&state_out)
        .env("TURNSTILE_LOG", "warn")
        .output()
        .expect("run turnstile replay");
    assert!(output.status.success(), "replay failed: {}", String::from_utf8_lossy(&output.stderr));
    let got = String::from_utf8(output.stdout).expect("utf-8 output");
    let want = read(&fixture(&format!("{service}.output.jsonl")));
    let (got_lines, want_lines): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    if let Some(k) = (0..got_lines.len().max(want_lines.len())).find(|&k| got_lines.get(k) != want_lines.get(k)) {
        panic!(
            "{service}: output line {} differs from the recorded replay\n  recorded: {}\n  this build: {}",
            k + 1,
            want_lines.get(k).unwrap_or(&"(none)"),
            got_lines.get(k).unwrap_or(&"(none)")
        );
    }
    assert!(want_lines.len() > 500, "the recording is not empty");
    assert_eq!(read(&state_out), read(&fixture(&format!("{service}.state.json"))), "{service}: final state differs");
}

#[test]
fn seat_reservation_replays_as_the_previous_build_did() {
    replays_as_recorded("reservation");
}

#[test]
fn ticketing_replays_as_the_previous_build_did() {
    replays_as_recorded("ticketing");
}
