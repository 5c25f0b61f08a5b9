//! `turnstile sellout`: the main job. Provisions an event, starts both
//! services as child processes, sells more bookings than there are seats,
//! pays and cancels part of the reserved ones, and prints a summary read back
//! with a `read_committed` consumer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use turnstile::config::{Config, Overrides};
use turnstile::load::plan::{self, Buyer, Mix, Planned};
use turnstile::load::tally::{Summary, Tally};
use turnstile::load::{check_outcome, read_back};
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::publisher::Publisher;
use turnstile::routing;
use turnstile::seating::SeatingChart;
use turnstile_protocol::{BookingCommand, BookingStatus, BookingStatusChanged, CancelBooking, PayBooking};

use crate::cli::{GlobalArgs, SelloutArgs};

pub fn run(global: &GlobalArgs, args: SelloutArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(global, Overrides::default())?.config;
    let chart = match &args.seating {
        Some(path) => SeatingChart::from_path(path).map_err(|e| super::UsageError(e.to_string()))?,
        None => SeatingChart::default_venue(),
    };
    let plugins = PluginPaths::find(&args)?;
    let event_id = args.event.unwrap_or_else(fresh_event_id);
    let bookings = args.bookings.unwrap_or_else(|| chart.total_seats() as usize * 6 / 5);
    let work_dir = PathBuf::from(".turnstile").join("sellout").join(format!("event-{event_id}"));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("cannot create {}", work_dir.display()))?;

    eprintln!(
        "sellout: event {event_id}, {} seats in {} sections, {bookings} bookings, Kafka at {}",
        chart.total_seats(),
        chart.sections.len(),
        config.kafka.bootstrap
    );

    let seating_file = match &args.seating {
        Some(path) => path.clone(),
        None => {
            let path = work_dir.join("seating.json");
            std::fs::write(&path, default_chart_json(&chart)?)?;
            path
        }
    };
    let mut provision = turnstile_command(global);
    provision.args(["provision", "--event", &event_id.to_string(), "--seating"]).arg(&seating_file);
    let status = provision.stdout(Stdio::null()).status().context("cannot run turnstile provision")?;
    match status.code() {
        Some(0) => {}
        // The child already said what was wrong with the input or config.
        Some(2) => bail!(super::UsageError(format!("provisioning event {event_id} was refused"))),
        _ => bail!("provisioning event {event_id} failed ({status})"),
    }

    let mut services = Services::default();
    for (service, plugin) in [(TICKETING_SERVICE, &plugins.ticketing), (SEAT_RESERVATION_SERVICE, &plugins.reservation)]
    {
        services.start(global, service, event_id, plugin, &work_dir)?;
    }
    wait_for_groups(&config, event_id, &mut services)?;

    let plan = plan::plan(&chart, bookings, Mix::default(), args.seed.unwrap_or(event_id));
    let result = drive(&config, &chart, event_id, &plan, &args, &mut services);
    let cpu = services.cpu_seconds();
    services.stop();
    let summary = result?;
    println!("{summary}");
    let cpu: Vec<String> = cpu.iter().map(|(name, secs)| format!("{name} {secs:.2} s")).collect();
    println!("cpu time: {}", cpu.join(", "));
    let problems = check(&config, &chart, event_id, &plan)?;
    eprintln!("service logs: {}", work_dir.display());
    Ok(if summary.is_clean() && problems == 0 { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_INCOMPLETE) })
}

/// Reads the public topics back with fresh `read_committed` readers and
/// holds them against the contract (the checker the chaos test uses);
/// prints the verdict and returns the number of problems.
fn check(config: &Config, chart: &SeatingChart, event_id: u64, plan: &[Planned]) -> anyhow::Result<usize> {
    let timeout = Duration::from_secs(60);
    let bootstrap = &config.kafka.bootstrap;
    let statuses =
        read_back(bootstrap, &naming::booking_status_changed_topic(event_id).to_string(), "read_committed", timeout)?;
    let results =
        read_back(bootstrap, &naming::seat_reservation_result_topic(event_id).to_string(), "read_committed", timeout)?;
    let outcome = check_outcome(event_id, config.kafka.partitions, chart, plan, &statuses, &results);
    if outcome.problems.is_empty() {
        println!(
            "contract check: PASS ({} status messages and {} seat results read back)",
            statuses.len(),
            results.len()
        );
    } else {
        println!("contract check: FAIL, {} problem(s):", outcome.problems.len());
        for problem in outcome.problems.iter().take(20) {
            println!("  {problem}");
        }
    }
    Ok(outcome.problems.len())
}

/// Publishes the plan and tallies statuses until every booking is settled or
/// nothing has moved for `--idle-timeout`.
fn drive(
    config: &Config,
    chart: &SeatingChart,
    event_id: u64,
    plan: &[Planned],
    args: &SelloutArgs,
    services: &mut Services,
) -> anyhow::Result<Summary> {
    let partitions = config.kafka.partitions;
    let bookings = plan.len();
    let follow: HashMap<&str, (Buyer, u64)> =
        plan.iter().map(|p| (p.command.booking_id.as_str(), (p.buyer, p.command.buyer_id))).collect();
    let commands_topic = naming::booking_command_topic(event_id).to_string();
    let publisher = Publisher::new(config)?;
    let statuses = status_consumer(config, event_id, partitions)?;

    let progress = ProgressBar::new(bookings as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} settled ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut tally = Tally::default();
    let send = |command: &BookingCommand, booking_id: &str| -> anyhow::Result<()> {
        let payload = serde_json::to_vec(command)?;
        let (partition, key) = routing::by_booking(event_id, booking_id, partitions);
        publisher.publish(&commands_topic, partition, &key, &payload)?;
        Ok(())
    };

    let idle_timeout = Duration::from_secs(args.idle_timeout);
    let mut last_progress = Instant::now();
    let mut next = 0;
    let mut pending_payments = 0u64;
    while !tally.is_done() || next < plan.len() {
        // Interleave sending with reading so statuses are timed when they arrive.
        let burst_end = (next + 2000).min(plan.len());
        for planned in &plan[next..burst_end] {
            let c = &planned.command;
            tally.sent(&c.booking_id, &c.section, c.subsection, Instant::now());
            send(&BookingCommand::CreateBooking(c.clone()), &c.booking_id)?;
        }
        next = burst_end;

        let poll_until = Instant::now() + Duration::from_millis(if next < plan.len() { 5 } else { 100 });
        while let Some(result) = statuses.poll(poll_until.saturating_duration_since(Instant::now())) {
            let record = result?;
            let Some(msg) = record.payload().and_then(|p| serde_json::from_slice::<BookingStatusChanged>(p).ok())
            else {
                continue;
            };
            let now = Instant::now();
            if tally.observe(&msg, now) == Some(BookingStatus::PendingPayment) {
                pending_payments += 1;
                if let Some(&(action, buyer_id)) = follow.get(msg.booking_id.as_str()) {
                    let booking_id = msg.booking_id.clone();
                    let command = match action {
                        Buyer::Pays => Some(BookingCommand::PayBooking(PayBooking { booking_id, buyer_id })),
                        Buyer::Cancels => Some(BookingCommand::CancelBooking(CancelBooking { booking_id, buyer_id })),
                        Buyer::Abandons | Buyer::CancelsAtOnce | Buyer::Invalid => None,
                    };
                    if let Some(command) = command {
                        tally.follow_up_sent(&msg.booking_id);
                        send(&command, &msg.booking_id)?;
                    }
                }
            }
            last_progress = now;
            if Instant::now() >= poll_until {
                break;
            }
        }
        progress.set_position(tally.settled() as u64);
        progress.set_message(format!("{pending_payments} reserved"));
        if let Some(exited) = services.exited() {
            progress.abandon();
            bail!("{exited} exited during the sellout; see its log");
        }
        if last_progress.elapsed() > idle_timeout {
            progress.abandon_with_message("stalled");
            eprintln!(
                "no status for {idle_timeout:?}; stopping with {} bookings unsettled",
                tally.len() - tally.settled()
            );
            break;
        }
    }
    progress.finish();
    Ok(tally.summary(chart))
}

/// A `read_committed` reader of every partition of `booking-status-changed`.
fn status_consumer(config: &Config, event_id: u64, partitions: i32) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap)
        .set("group.id", format!("sellout-{event_id}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let topic = naming::booking_status_changed_topic(event_id).to_string();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// Waits until both services' consumer groups are stable with members, so
/// that latency measures processing, not start-up.
fn wait_for_groups(config: &Config, event_id: u64, services: &mut Services) -> anyhow::Result<()> {
    let admin: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &config.kafka.bootstrap).create()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    for service in [TICKETING_SERVICE, SEAT_RESERVATION_SERVICE] {
        let group = naming::consumer_group(event_id, service);
        loop {
            if let Some(exited) = services.exited() {
                bail!("{exited} exited during start-up; see its log");
            }
            let stable = admin
                .fetch_group_list(Some(&group), Duration::from_secs(5))
                .ok()
                .and_then(|list| list.groups().first().map(|g| g.state() == "Stable" && !g.members().is_empty()))
                .unwrap_or(false);
            if stable {
                break;
            }
            if Instant::now() > deadline {
                bail!("{service} did not join its consumer group {group} within 120 s");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    Ok(())
}

/// The two service processes.
#[derive(Default)]
struct Services {
    children: Vec<(String, Child)>,
}

impl Services {
    fn start(
        &mut self,
        global: &GlobalArgs,
        service: &str,
        event_id: u64,
        plugin: &Path,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let log_path = dir.join(format!("{service}.log"));
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = turnstile_command(global);
        command
            .args(["run", "--service", service, "--event", &event_id.to_string(), "--plugin"])
            .arg(plugin)
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().with_context(|| format!("cannot start {service}"))?;
        self.children.push((service.to_owned(), child));
        Ok(())
    }

    /// The first service that is no longer running, if any.
    fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|(name, child)| child.try_wait().ok().flatten().map(|_| name.clone()))
    }

    /// CPU seconds (user + system) each service has used so far, from
    /// `/proc` (absent where there is none).
    fn cpu_seconds(&self) -> Vec<(String, f64)> {
        // SAFETY: sysconf has no memory effects.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        self.children
            .iter()
            .filter_map(|(name, child)| {
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).ok()?;
                // Fields after the parenthesised command name; utime and stime
                // are the 14th and 15th fields of the whole line.
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let used: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
                Some((name.clone(), used / ticks))
            })
            .collect()
    }

    /// SIGTERM, then a bounded wait, then SIGKILL.
    fn stop(&mut self) {
        for (_, child) in &self.children {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for (name, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => {
                        eprintln!("{name} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop();
    }
}

/// This binary, with the global flags passed on.
fn turnstile_command(global: &GlobalArgs) -> Command {
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

/// The plugin builds to run.
struct PluginPaths {
    reservation: PathBuf,
    ticketing: PathBuf,
}

impl PluginPaths {
    fn find(args: &SelloutArgs) -> anyhow::Result<Self> {
        let dir = args.plugin_dir.clone().unwrap_or_else(|| {
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
}

/// An event id unlikely to exist yet: seconds since 2026, so reruns differ.
fn fresh_event_id() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    1000 + now.saturating_sub(1_767_225_600)
}

fn default_chart_json(chart: &SeatingChart) -> anyhow::Result<String> {
    let sections: Vec<_> = chart
        .sections
        .iter()
        .map(|s| serde_json::json!({"name": s.name, "price": s.price, "subsections": s.subsections}))
        .collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "rows": chart.rows, "cols": chart.cols, "sections": sections
    }))?)
}
