//! `turnstile run`: one service instance, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use turnstile::admin::{AdminError, Cluster};
use turnstile::config::{Config, Overrides};
use turnstile::deploy::{Store, Watcher};
use turnstile::http::{self, probes::Readiness};
use turnstile::plugin::{LoadedPlugin, PluginEngine};
use turnstile::runner::metrics::Metrics;
use turnstile::runner::{Identity, Reloader, Runner, RunnerError, heartbeat, supervisor};

use crate::cli::{GlobalArgs, RunArgs};

pub fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides::default();
    overrides
        .set("plugin.plugins_dir", args.plugins.clone())
        .set("service.name", args.service.clone())
        .set("service.event_id", args.event)
        .set("service.consumer_instance_id", args.instance.clone())
        .set("metrics.listen", args.metrics.clone());
    let config = super::load_config(global, overrides)?.config;
    let service = config
        .service
        .name
        .clone()
        .ok_or_else(|| super::UsageError("which service? give --service or set service.name".into()))?;
    let event_id =
        config.service.event_id.ok_or_else(|| super::UsageError("which event? give --event or set EVENT_ID".into()))?;
    let engine = PluginEngine::new(config.plugin.engine_settings())?;
    let identity = Identity::from_config(&config, &service, event_id);
    // A plugin that cannot run is the user's to fix (exit 2), found before
    // anything else starts.
    let source = match &args.plugin {
        Some(path) => Source::File(
            engine.load_file(path).map_err(|e| super::UsageError(format!("plugin {}: {e}", path.display())))?,
        ),
        None => {
            let store = Store::open(&config.plugin.plugins_dir, &service)?;
            if Watcher::new(store.clone()).poll()?.is_none() {
                return Err(super::UsageError(format!(
                    "nothing deployed for {service} in {}; run `turnstile deploy FILE.wasm --service {service}` or give --plugin",
                    config.plugin.plugins_dir.display()
                ))
                .into());
            }
            Source::Deployed(store)
        }
    };

    let metrics = Arc::new(Metrics::default());
    // A taken port is the user's to fix, reported before anything starts.
    let endpoint = match &config.metrics.listen {
        Some(addr) => {
            // A server now: a peer resetting must not kill the service.
            http::ignore_sigpipe();
            Some((
                http::bind(addr).map_err(|e| super::UsageError(format!("--metrics: {e}")))?,
                probes(&metrics, &identity),
            ))
        }
        None => None,
    };

    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    let runner_config = config.clone();
    let runner_metrics = metrics.clone();
    let worker = std::thread::Builder::new().name(format!("{service}-runner")).spawn(move || {
        supervisor::supervise(&runner_config, &flag, &runner_metrics, |cluster| {
            source.start(&runner_config, cluster, &engine, identity.clone(), runner_metrics.clone())
        })
    })?;

    let wedge_timeout = std::time::Duration::from_millis(config.runner.wedge_timeout_ms);
    wait_for_signal(&shutdown, &worker, wedge_timeout, endpoint)?;
    // Bounded: a runner stuck inside a client call (see `restart_in_place`)
    // or a broker that stopped answering must not keep the process alive.
    // Stopping without the last commit is still a clean stop as far as the
    // data goes: the open transaction is fenced and aborted by the next
    // owner of the transactional id, or by the broker at its timeout, and
    // its input is read again. So the stop that was asked for exits 0.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(config.runner.shutdown_timeout_ms);
    while !worker.is_finished() {
        if std::time::Instant::now() > deadline {
            let silent_ms = heartbeat::silent_for().map(|s| u64::try_from(s.as_millis()).unwrap_or(u64::MAX));
            tracing::error!(
                ?silent_ms,
                "the runner did not stop within runner.shutdown_timeout_ms; stopping without committing its open transaction, which the broker aborts"
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Only the built-in topics are known without a configuration file: a
    // plugin's own topics are declared in its crate's turnstile.toml.
    let read_a_file = global.config.is_some() || std::path::Path::new(turnstile::config::DEFAULT_FILE).is_file();
    let metrics = worker
        .join()
        .map_err(|_| anyhow::anyhow!("the runner thread panicked"))?
        .map_err(|e| run_error(e, read_a_file))?;
    tracing::info!(?metrics, "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Where the runner's plugin comes from.
enum Source {
    /// `--plugin FILE`: this build, no reloads.
    File(LoadedPlugin),
    /// `--plugins DIR`: whatever `current` names at each (re)start, reloaded
    /// as it moves.
    Deployed(Store),
}

impl Source {
    fn start(
        &self,
        config: &Config,
        cluster: &Cluster,
        engine: &PluginEngine,
        identity: Identity,
        metrics: Arc<Metrics>,
    ) -> Result<Runner, RunnerError> {
        match self {
            Source::File(plugin) => Runner::new(config, cluster, identity, plugin, metrics),
            Source::Deployed(store) => {
                // The watcher's first poll is the version to start with, so a
                // deploy between reading `current` and watching it is not missed.
                let mut watcher = Watcher::new(store.clone());
                let version = watcher
                    .poll()
                    .map_err(|e| RunnerError::Deployment(e.to_string()))?
                    .ok_or_else(|| RunnerError::Deployment("nothing is deployed any more".into()))?;
                let plugin = engine.load_file(&version.path_to_wasm)?;
                tracing::info!(deployment = version.number, plugin_version = %plugin.manifest().version, "running the deployed version");
                Ok(Runner::new(config, cluster, identity, &plugin, metrics)?
                    .with_reloads(Reloader::new(engine.clone(), watcher), version.number))
            }
        }
    }
}

/// The probes of `run --metrics`: the instance's metrics under the
/// `turnstile` prefix, labelled with its service, event and instance; ready
/// while it runs its partitions.
fn probes(metrics: &Arc<Metrics>, identity: &Identity) -> axum::Router {
    let labels = [
        ("service", identity.service.clone()),
        ("event_id", identity.event_id.to_string()),
        ("instance", identity.instance_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()));
    let mut registry = Registry::with_prefix_and_labels("turnstile", labels);
    metrics.register(&mut registry);
    let metrics = metrics.clone();
    let ready: Readiness = Arc::new(move || (metrics.is_ready(), metrics.state().as_str().to_owned()));
    http::probes::router(registry, ready)
}

/// Blocks until SIGTERM/SIGINT (then asks the runner to stop) or until the
/// runner ends by itself; serves `endpoint` meanwhile.
fn wait_for_signal<T>(
    shutdown: &AtomicBool,
    worker: &std::thread::JoinHandle<T>,
    wedge_timeout: std::time::Duration,
    endpoint: Option<(std::net::TcpListener, axum::Router)>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some((listener, router)) = endpoint {
            tokio::spawn(async move {
                let (limits, metrics) = (http::ServerLimits::default(), http::ServerMetrics::default());
                if let Err(err) = http::serve(listener, router, limits, metrics, async move {
                    let _ = stopped.await;
                })
                .await
                {
                    tracing::error!(error = %err, "the metrics endpoint stopped");
                }
            });
        }
        // Served until the process exits: dropping the sender at the end
        // of this block stops it.
        let _stop_server = stop_server;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = ticker.tick() => {
                    if worker.is_finished() {
                        return Ok(());
                    }
                    if let Some(silent) = heartbeat::silent_for().filter(|s| *s > wedge_timeout) {
                        restart_in_place(silent);
                    }
                }
            }
        }
        tracing::info!("signal received; finishing the open transaction");
        shutdown.store(true, Ordering::Relaxed);
        Ok(())
    })
}

/// Replaces this process with a fresh copy of itself (same pid, arguments,
/// environment and log files): the runner thread is stuck inside a Kafka
/// client call that will not return (see `runner::heartbeat`), and nothing
/// short of a new process frees it. The open transaction is fenced and
/// aborted by the new incarnation's `init_transactions`, as after a crash.
fn restart_in_place(silent: std::time::Duration) -> ! {
    use std::os::unix::process::CommandExt;
    tracing::error!(
        silent_ms = u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
        "the runner is stuck inside a Kafka client call (runner.wedge_timeout_ms); restarting this process in place"
    );
    // librdkafka's wake-up pipes and sockets are not close-on-exec: every
    // restart in place would leak them into the new incarnation.
    if let Err(err) = close_on_exec_above_stderr() {
        tracing::warn!("cannot mark descriptors close-on-exec before restarting: {err}");
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "turnstile".into());
    // /proc/self/exe still names this binary if the file was replaced since.
    let err = std::process::Command::new("/proc/self/exe").arg0(argv0).args(args).exec();
    eprintln!("error: cannot restart in place: {err}");
    std::process::exit(3)
}

/// Marks every open descriptor but stdin, stdout and stderr (the log files
/// the new incarnation keeps) close-on-exec; returns how many it changed.
fn close_on_exec_above_stderr() -> std::io::Result<usize> {
    let fds: Vec<libc::c_int> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    let mut changed = 0;
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD only read and set the descriptor's flags;
        // a descriptor closed meanwhile (the directory's own) answers EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0
                && flags & libc::FD_CLOEXEC == 0
                && libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) == 0
            {
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// Failures the user must fix are usage errors (exit 2); the rest, which a
/// restart could not fix either, exit 3.
fn run_error(err: RunnerError, read_a_file: bool) -> anyhow::Error {
    match err {
        RunnerError::Topology(_) if !read_a_file => super::UsageError(format!(
            "{err} (no {} here and no --config, so only the built-in topics are known: run from the plugin's \
             directory or give --config PATH/{})",
            turnstile::config::DEFAULT_FILE,
            turnstile::config::DEFAULT_FILE
        ))
        .into(),
        RunnerError::NotProvisioned { .. }
        | RunnerError::WrongService { .. }
        | RunnerError::Topology(_)
        | RunnerError::UnequalPartitions { .. }
        | RunnerError::DuplicateInstance { .. } => super::UsageError(err.to_string()).into(),
        RunnerError::Admin(AdminError::Connect(unreachable)) => unreachable.into(),
        other => anyhow::Error::new(other).context("the service stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_in_place_leaks_no_descriptor() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe writes two descriptors into the array (no O_CLOEXEC,
        // like librdkafka's wake-up pipes).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let cloexec = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
        assert!(!cloexec(fds[0]) && !cloexec(fds[1]));
        assert!(close_on_exec_above_stderr().expect("/proc/self/fd") >= 2);
        assert!(cloexec(fds[0]) && cloexec(fds[1]), "both ends are closed by the exec");
        assert!(!cloexec(2), "stderr (the log) survives the exec");
        // SAFETY: closing the two descriptors this test opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
