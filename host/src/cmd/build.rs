//! `turnstile build [DIR]`: builds a plugin crate for `wasm32-wasip2` in
//! release, checks the component exactly as `deploy` does (the world, the
//! manifest, the topology), and prints the `.wasm` path and its manifest.
//!
//! Exit codes: 0 built and valid; 2 the build failed or the component was
//! refused; 3 cargo could not be run.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use serde::Deserialize;
use turnstile::config::Overrides;
use turnstile::plugin::PluginEngine;

use super::UsageError;
use crate::cli::{BuildArgs, GlobalArgs};

const TARGET: &str = "wasm32-wasip2";

/// The part of cargo's `--message-format=json` that names built files.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let manifest = args.dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(UsageError(format!("{} has no Cargo.toml: not a plugin crate", args.dir.display())).into());
    }
    // The crate's own turnstile.toml declares its topics (as `init` writes
    // it), wherever `build` is run from; `--config` still wins. Read before
    // building, so a bad one fails fast.
    let mut global = global.clone();
    let own = args.dir.join(turnstile::config::DEFAULT_FILE);
    if global.config.is_none() && own.is_file() {
        global.config = Some(own);
    }
    let config = super::load_config(&global, Overrides::default())?.config;
    check_target()?;
    let wasm = cargo_build(&manifest)?;
    let bytes = std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;

    let engine = PluginEngine::new(config.plugin.engine_settings())?;
    let refused = |e: &dyn std::fmt::Display| UsageError(format!("{}: {e}", wasm.display()));
    let plugin = engine.load_bytes(&bytes).map_err(|e| refused(&e))?;
    let manifest = plugin.manifest();
    config.topology().check(manifest).map_err(|e| {
        refused(&format!("plugin refused: {e} (declare its topics in turnstile.toml: [[topology.topics]])"))
    })?;
    println!("{}", wasm.display());
    println!("  service   {}", manifest.service);
    println!("  version   {}", manifest.version);
    println!("  consumes  {}", manifest.consumes.join(", "));
    println!("  emits     {}", manifest.emits.join(", "));
    println!("  size      {} bytes, sha256 {}", bytes.len(), plugin.sha256());
    println!("deploy: turnstile deploy --service {} {}", manifest.service, wasm.display());
    Ok(ExitCode::SUCCESS)
}

/// A missing target fails deep inside cargo with "can't find crate for
/// core"; say what to do instead.
fn check_target() -> anyhow::Result<()> {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().context("cannot run rustc")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Err(UsageError(format!("the {TARGET} target is not installed: rustup target add {TARGET}")).into());
    }
    Ok(())
}

/// Runs cargo (its diagnostics go to the terminal) and returns the
/// component it built.
fn cargo_build(manifest: &Path) -> anyhow::Result<PathBuf> {
    let mut child = Command::new("cargo")
        .args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(manifest)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let mut wasm = None;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("cannot read cargo's output")?;
            let Ok(message) = serde_json::from_str::<CargoMessage>(&line) else { continue };
            if message.reason == "compiler-artifact"
                && let Some(file) = message.filenames.into_iter().find(|f| f.extension().is_some_and(|e| e == "wasm"))
            {
                wasm = Some(file);
            }
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    if !status.success() {
        return Err(UsageError(format!("cargo build failed ({status}); its errors are above")).into());
    }
    wasm.ok_or_else(|| {
        UsageError("cargo built no .wasm: is the crate a `cdylib` (`[lib] crate-type = [\"cdylib\"]`)?".into()).into()
    })
}
