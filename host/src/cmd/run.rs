//! `turnstile run`: one service instance, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use turnstile::admin::Cluster;
use turnstile::config::Overrides;
use turnstile::deploy::{Store, Watcher};
use turnstile::plugin::{EngineSettings, PluginEngine};
use turnstile::runner::{Identity, Reloader, Runner, RunnerError};

use crate::cli::{GlobalArgs, RunArgs};

pub fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides::default();
    overrides
        .set("plugin.plugins_dir", args.plugins.clone())
        .set("service.name", args.service.clone())
        .set("service.event_id", args.event)
        .set("service.consumer_instance_id", args.instance.clone());
    let config = super::load_config(global, overrides)?.config;
    let service = config
        .service
        .name
        .clone()
        .ok_or_else(|| super::UsageError("which service? give --service or set service.name".into()))?;
    let event_id =
        config.service.event_id.ok_or_else(|| super::UsageError("which event? give --event or set EVENT_ID".into()))?;
    // An unreachable bootstrap is a configuration error (exit 2), found
    // before anything else starts.
    let cluster = Cluster::connect(&config)?;
    let engine = PluginEngine::new(EngineSettings::from_config(&config.plugin))?;
    let identity = Identity::from_config(&config, &service, event_id);
    let runner = match &args.plugin {
        Some(path) => {
            let plugin =
                engine.load_file(path).map_err(|e| super::UsageError(format!("plugin {}: {e}", path.display())))?;
            Runner::new(&config, &cluster, identity, &plugin).map_err(start_error)?
        }
        None => {
            // The watcher's first poll is the version to start with, so a
            // deploy between reading `current` and watching it is not missed.
            let store = Store::open(&config.plugin.plugins_dir, &service)?;
            let mut watcher = Watcher::new(store);
            let version = watcher.poll()?.ok_or_else(|| {
                super::UsageError(format!(
                    "nothing deployed for {service} in {}; run `turnstile deploy FILE.wasm --service {service}` or give --plugin",
                    config.plugin.plugins_dir.display()
                ))
            })?;
            let plugin = engine
                .load_file(&version.path_to_wasm)
                .map_err(|e| super::UsageError(format!("deployed {service} v{}: {e}", version.number)))?;
            tracing::info!(deployment = version.number, plugin_version = %plugin.manifest().version, "running the deployed version");
            Runner::new(&config, &cluster, identity, &plugin)
                .map_err(start_error)?
                .with_reloads(Reloader::new(engine.clone(), watcher), version.number)
        }
    };

    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    let worker = std::thread::Builder::new().name(format!("{service}-runner")).spawn(move || runner.run(&flag))?;

    wait_for_signal(&shutdown, &worker)?;
    // Bounded: a broker that stopped answering must not keep the process
    // alive; its open transaction is aborted by the broker either way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(config.runner.shutdown_timeout_ms);
    while !worker.is_finished() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the runner did not stop within runner.shutdown_timeout_ms; exiting without a clean commit");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let metrics = worker.join().map_err(|_| anyhow::anyhow!("the runner thread panicked"))??;
    tracing::info!(?metrics, "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Blocks until SIGTERM/SIGINT (then asks the runner to stop) or until the
/// runner ends by itself.
fn wait_for_signal<T>(shutdown: &AtomicBool, worker: &std::thread::JoinHandle<T>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = ticker.tick() => if worker.is_finished() { return Ok(()) },
            }
        }
        tracing::info!("signal received; finishing the open transaction");
        shutdown.store(true, Ordering::Relaxed);
        Ok(())
    })
}

/// Start-up failures that the user must fix are usage errors (exit 2).
fn start_error(err: RunnerError) -> anyhow::Error {
    match err {
        RunnerError::NotProvisioned { .. }
        | RunnerError::WrongService { .. }
        | RunnerError::MissingInput { .. }
        | RunnerError::UnequalPartitions { .. } => super::UsageError(err.to_string()).into(),
        other => anyhow::Error::new(other).context("cannot start the service"),
    }
}
