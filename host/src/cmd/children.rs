//! What `sellout` and `bench` share: this binary run as child processes
//! (provisioning, service instances), the plugin builds to give them, and
//! what `/proc` says about them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use turnstile::admin::Cluster;
use turnstile::config::Config;
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::seating::SeatingChart;

use crate::cli::GlobalArgs;

/// This binary, with the global flags passed on.
pub fn turnstile_command(global: &GlobalArgs) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("turnstile"));
    let mut command = Command::new(exe);
    if let Some(config) = &global.config {
        command.arg("--config").arg(config);
    }
    if let Some(bootstrap) = &global.bootstrap {
        command.args(["--bootstrap", bootstrap]);
    }
    command
}

/// Runs `turnstile provision` for a fresh event with `seating_file`.
pub fn provision(global: &GlobalArgs, event_id: u64, seating_file: &Path) -> anyhow::Result<()> {
    let mut provision = turnstile_command(global);
    provision.args(["provision", "--event", &event_id.to_string(), "--seating"]).arg(seating_file);
    let status = provision.stdout(Stdio::null()).status().context("cannot run turnstile provision")?;
    match status.code() {
        Some(0) => Ok(()),
        // The child already said what was wrong with the input or config.
        Some(2) => bail!(super::UsageError(format!("provisioning event {event_id} was refused"))),
        _ => bail!("provisioning event {event_id} failed ({status})"),
    }
}

/// Waits until each service's consumer group is stable with members, so
/// that measurements start at processing, not at start-up.
pub fn wait_for_groups(
    config: &Config,
    event_id: u64,
    services: &mut Services,
    names: &[&str],
    timeout: Duration,
) -> anyhow::Result<()> {
    let cluster = Cluster::connect(config)?;
    let deadline = Instant::now() + timeout;
    for service in names {
        let group = naming::consumer_group(event_id, service);
        loop {
            if let Some(exited) = services.exited() {
                bail!("{exited} exited during start-up; see its log");
            }
            // Described, not listed: a KIP-848 group shows as Dead to the
            // classic DescribeGroups that `fetch_group_list` sends.
            let stable = cluster
                .describe_groups(std::slice::from_ref(&group))
                .ok()
                .and_then(|groups| groups.into_iter().next())
                .is_some_and(|g| g.state == "Stable" && g.members.iter().any(|m| !m.assignment.is_empty()));
            if stable {
                break;
            }
            if Instant::now() > deadline {
                bail!("{service} did not join its consumer group {group} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Service instances running as child processes, stopped when dropped.
#[derive(Default)]
pub struct Services {
    children: Vec<(String, Child)>,
}

impl Services {
    /// Starts `turnstile run` for `service` with `plugin`, logging to
    /// `{dir}/{service}.log`; `env` is added to the child's environment.
    pub fn start(
        &mut self,
        global: &GlobalArgs,
        service: &str,
        event_id: u64,
        plugin: &Path,
        dir: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let event = event_id.to_string();
        let plugin = plugin.to_string_lossy();
        self.spawn(global, service, &["run", "--service", service, "--event", &event, "--plugin", &plugin], dir, env)
    }

    /// Starts `turnstile gateway --event ID --listen ADDR`, logging to `dir/gateway.log`.
    pub fn start_gateway(
        &mut self,
        global: &GlobalArgs,
        event_id: u64,
        listen: &str,
        dir: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let event = event_id.to_string();
        self.spawn(global, "gateway", &["gateway", "--event", &event, "--listen", listen], dir, env)
    }

    fn spawn(
        &mut self,
        global: &GlobalArgs,
        name: &str,
        args: &[&str],
        dir: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = turnstile_command(global);
        command.args(args).envs(env.iter().map(|(k, v)| (k, v))).stdout(log.try_clone()?).stderr(log);
        let child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    pub fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|(name, child)| child.try_wait().ok().flatten().map(|_| name.clone()))
    }

    /// Each service's process id.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children.iter().map(|(name, child)| (name.clone(), child.id())).collect()
    }

    /// CPU seconds (user + system) each service has used so far.
    pub fn cpu_seconds(&self) -> Vec<(String, f64)> {
        self.pids().into_iter().filter_map(|(name, pid)| Some((name, cpu_seconds(pid)?))).collect()
    }

    /// SIGTERM, then a bounded wait, then SIGKILL. Returns whether every
    /// service stopped by itself with exit code 0.
    pub fn stop(&mut self) -> bool {
        for (_, child) in &self.children {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut clean = true;
        for (name, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        clean &= status.success();
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => {
                        eprintln!("{name} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        clean = false;
                        break;
                    }
                }
            }
        }
        self.children.clear();
        clean
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU seconds (user + system) process `pid` has used, from `/proc`
/// (`None` where there is none or the process is gone).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let used: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(used / ticks)
}

/// Peak resident set size of process `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Processes of this user that look like a Kafka broker (a JVM running
/// `kafka.Kafka`), so that a benchmark can report the broker's CPU too.
pub fn broker_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == b"kafka.Kafka"))
        })
        .collect()
}

/// The plugin builds to run.
pub struct PluginPaths {
    pub reservation: PathBuf,
    pub ticketing: PathBuf,
}

impl PluginPaths {
    /// The two release builds in `dir` [default: the build directory of
    /// `scripts/build-plugins`]; a usage error names the missing one.
    pub fn find(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
            target.join("wasm32-wasip2").join("release")
        });
        let paths = PluginPaths {
            reservation: dir.join("turnstile_reservation.wasm"),
            ticketing: dir.join("turnstile_ticketing.wasm"),
        };
        for path in [&paths.reservation, &paths.ticketing] {
            if !path.exists() {
                bail!(super::UsageError(format!(
                    "plugin {} not found; build the plugins with scripts/build-plugins or pass --plugin-dir",
                    path.display()
                )));
            }
        }
        Ok(paths)
    }

    /// The build for one of the two built-in services.
    pub fn for_service(&self, service: &str) -> Option<&Path> {
        match service {
            TICKETING_SERVICE => Some(&self.ticketing),
            SEAT_RESERVATION_SERVICE => Some(&self.reservation),
            _ => None,
        }
    }
}

/// An event id unlikely to exist yet: seconds since 2026, so reruns differ.
pub fn fresh_event_id() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    1000 + now.saturating_sub(1_767_225_600)
}

/// The chart of `--seating`, or the default venue.
pub fn chart(seating: Option<&Path>) -> Result<SeatingChart, super::UsageError> {
    match seating {
        Some(path) => SeatingChart::from_path(path).map_err(|e| super::UsageError(e.to_string())),
        None => Ok(SeatingChart::default_venue()),
    }
}

/// The seating file for `--seating` (or the default venue, written to
/// `dir`).
pub fn seating_file(seating: Option<&Path>, chart: &SeatingChart, dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = seating {
        return Ok(path.to_path_buf());
    }
    let sections: Vec<_> = chart
        .sections
        .iter()
        .map(|s| serde_json::json!({"name": s.name, "price": s.price, "subsections": s.subsections}))
        .collect();
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "rows": chart.rows, "cols": chart.cols, "sections": sections
    }))?;
    let path = dir.join("seating.json");
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
