//! `turnstile deploy`: checks a plugin, precompiles it for this host and
//! installs it as the next version of a service (see `turnstile::deploy`).
//!
//! Exit codes: 0 installed, or already current; 2 refused (not a plugin of
//! the world, another service, unreadable file), nothing changed; 3 the
//! store could not be written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use turnstile::config::{Config, Overrides};
use turnstile::deploy::{self, DeployError, Installed, Store};
use turnstile::plugin::PluginEngine;

use super::UsageError;
use crate::cli::{DeployArgs, GlobalArgs};

pub fn run(global: &GlobalArgs, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let (config, store) = open_store(global, args.plugins, &args.service)?;
    let file = &args.file;
    let bytes = std::fs::read(file).map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    // The runner's engine settings, so that the compiled code cached here is
    // the code a service starting from this version looks up.
    let engine = PluginEngine::new(config.plugin.engine_settings())?;
    let checked =
        deploy::check(&engine, bytes, store.service(), &config.topology()).map_err(|e| failure(e, Some(file)))?;
    match store.install(&checked).map_err(|e| failure(e, Some(file)))? {
        Installed::Unchanged(current) => {
            println!(
                "{} v{} already has these bytes (sha256 {}): nothing to do",
                store.service(),
                current.number,
                current.sha256
            );
        }
        Installed::New { version, previous } => {
            println!(
                "deployed {} v{}: plugin {}, {} bytes, sha256 {}",
                store.service(),
                version.number,
                version.plugin_version,
                version.size,
                version.sha256
            );
            let previous = previous.map_or_else(|| "(none)".to_owned(), |v| format!("v{}", v.number));
            println!("current: {previous} → v{}", version.number);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration, with `--plugins` as `plugin.plugins_dir`, and the
/// store of `service` in that directory.
pub(crate) fn open_store(
    global: &GlobalArgs,
    plugins: Option<PathBuf>,
    service: &str,
) -> anyhow::Result<(Config, Store)> {
    let mut overrides = Overrides::default();
    overrides.set("plugin.plugins_dir", plugins);
    let config = super::load_config(global, overrides)?.config;
    let store = Store::open(&config.plugin.plugins_dir, service).map_err(|e| failure(e, None))?;
    Ok((config, store))
}

/// A refusal is bad input (exit 2); anything else is a failure (exit 3).
pub(crate) fn failure(err: DeployError, file: Option<&Path>) -> anyhow::Error {
    let message = match file {
        Some(file) => format!("{}: {err}", file.display()),
        None => err.to_string(),
    };
    if err.is_refusal() { UsageError(message).into() } else { anyhow::Error::new(err) }
}
