//! `turnstile bench drain`: how fast one service drains a pre-filled input,
//! and how that compares with the limit, a plain passthrough of the same
//! records on the same broker (`turnstile::load::passthrough`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use turnstile::admin::Cluster;
use turnstile::admin::provision::Replication;
use turnstile::client::{ClientSettings, QuietEof};
use turnstile::config::{Config, Overrides};
use turnstile::load::fill::drain_input;
use turnstile::load::passthrough::passthrough;
use turnstile::naming::{self, TopicName};
use turnstile::publisher::Publisher;
use turnstile::runner::report;

use super::children::{self, PluginPaths, Services, fresh_event_id, seating_file, wait_for_groups};
use crate::cli::{DrainArgs, GlobalArgs};

/// What one drain measured; `--json` writes this.
#[derive(Debug, Serialize)]
struct DrainReport {
    service: String,
    event_id: u64,
    partitions: i32,
    /// Records on the service's inputs: the fill plus what provisioning put
    /// there (the seating chart's configure commands).
    records: u64,
    drain_seconds: f64,
    messages_per_second: f64,
    service_cpu_seconds: f64,
    service_cpu_us_per_message: f64,
    service_peak_rss_kib: Option<u64>,
    transactions: u64,
    mean_transaction_messages: f64,
    /// CPU of the local broker processes during the drain, when visible.
    broker_cpu_seconds: Option<f64>,
    passthrough_seconds: f64,
    passthrough_messages_per_second: f64,
    /// Turnstile's rate as a fraction of the passthrough's.
    fraction_of_limit: f64,
}

pub fn drain(global: &GlobalArgs, args: DrainArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(global, Overrides::default())?.config;
    let chart = children::chart(args.seating.as_deref())?;
    let plugins = PluginPaths::find(args.plugin_dir.as_deref())?;
    let plugin = plugins.for_service(&args.service).ok_or_else(|| {
        super::UsageError(format!(
            "no drain benchmark for service {:?}; give --service {} or {}",
            args.service,
            naming::TICKETING_SERVICE,
            naming::SEAT_RESERVATION_SERVICE
        ))
    })?;
    if args.messages == 0 {
        bail!(super::UsageError("--messages must be at least 1".into()));
    }
    let timeout = Duration::from_secs(args.timeout);
    let event_id = args.event.unwrap_or_else(fresh_event_id);
    let partitions = config.kafka.partitions;
    let work_dir = PathBuf::from(".turnstile").join("bench").join(format!("event-{event_id}"));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("cannot create {}", work_dir.display()))?;
    eprintln!(
        "bench drain: {}, {} records, event {event_id}, {partitions} partitions, Kafka at {}",
        args.service, args.messages, config.kafka.bootstrap
    );

    let seating = seating_file(args.seating.as_deref(), &chart, &work_dir)?;
    children::provision(global, event_id, &seating)?;
    let fill = drain_input(&args.service, event_id, partitions, &chart, args.messages, args.seed)?;
    let filled = Instant::now();
    let publisher = Publisher::new(&config)?;
    for record in &fill {
        publisher.send_raw(&record.topic, record.partition, record.key.as_bytes(), Some(&record.payload))?;
    }
    publisher.flush(timeout)?;
    drop(publisher);
    eprintln!("filled in {:.2} s", filled.elapsed().as_secs_f64());

    let cluster = Cluster::connect(&config)?;
    let inputs: Vec<String> = turnstile::topology::Topology::builtin()
        .addressed_to(event_id, &args.service)
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut ends = Vec::new();
    for topic in &inputs {
        for p in 0..partitions {
            ends.push(((topic.clone(), p), cluster.watermarks(topic, p)?.1));
        }
    }
    let records: u64 = ends.iter().map(|(_, end)| u64::try_from(*end).unwrap_or(0)).sum();

    let mut services = Services::default();
    services.start(global, &args.service, event_id, plugin, &work_dir, &[])?;
    let pid = services.pids().first().map(|(_, pid)| *pid).context("the service did not start")?;
    wait_for_groups(&config, event_id, &mut services, &[args.service.as_str()], Duration::from_secs(120))?;
    let brokers = children::broker_pids();
    let broker_cpu = || -> Option<f64> {
        let used: Vec<f64> = brokers.iter().filter_map(|pid| children::cpu_seconds(*pid)).collect();
        (!used.is_empty()).then(|| used.iter().sum())
    };
    let (cpu_start, broker_start) = (children::cpu_seconds(pid).unwrap_or(0.0), broker_cpu());
    let started = Instant::now();
    wait_until_committed(&config, event_id, &args.service, &ends, records, timeout, &mut services)?;
    let drained = started.elapsed();
    let service_cpu = children::cpu_seconds(pid).unwrap_or(0.0) - cpu_start;
    let broker_cpu = broker_cpu().zip(broker_start).map(|(end, start)| end - start);
    let peak_rss = children::peak_rss_kib(pid);
    if !services.stop() {
        eprintln!("warning: the service did not stop cleanly; see {}", work_dir.display());
    }
    let metrics = report::read_all(&config.runner.status_dir, event_id)
        .into_iter()
        .find(|r| r.service == args.service)
        .map(|r| r.metrics)
        .unwrap_or_default();

    eprintln!("passthrough of the same {records} records…");
    let output = TopicName::flow(event_id, "bench-passthrough", "bench", "bench").to_string();
    let factor = Replication::resolve(&config.kafka, &cluster.brokers()?)?.factor;
    cluster.create_topics(&[NewTopic::new(&output, partitions, TopicReplication::Fixed(factor))])?;
    let limit = passthrough(&config, &inputs, &output, records, timeout)?;

    let rate = records as f64 / drained.as_secs_f64().max(1e-9);
    let report = DrainReport {
        service: args.service.clone(),
        event_id,
        partitions,
        records,
        drain_seconds: drained.as_secs_f64(),
        messages_per_second: rate,
        service_cpu_seconds: service_cpu,
        service_cpu_us_per_message: service_cpu * 1e6 / records.max(1) as f64,
        service_peak_rss_kib: peak_rss,
        transactions: metrics.transactions_committed,
        mean_transaction_messages: metrics.processed as f64 / metrics.transactions_committed.max(1) as f64,
        broker_cpu_seconds: broker_cpu,
        passthrough_seconds: limit.elapsed.as_secs_f64(),
        passthrough_messages_per_second: limit.per_second(),
        fraction_of_limit: rate / limit.per_second().max(1e-9),
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("service log: {}; `turnstile reset` removes the event", work_dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Waits until the service's group has committed the end of every input
/// partition, showing progress.
fn wait_until_committed(
    config: &Config,
    event_id: u64,
    service: &str,
    ends: &[((String, i32), i64)],
    records: u64,
    timeout: Duration,
    services: &mut Services,
) -> anyhow::Result<()> {
    // Never subscribes, so it does not join (or disturb) the group.
    let reader: BaseConsumer<QuietEof> = ClientSettings::new(&config.kafka)
        .set("group.id", naming::consumer_group(event_id, service))
        .set("enable.auto.commit", "false")
        .create_with_context(QuietEof)?;
    let mut wanted = TopicPartitionList::new();
    for ((topic, partition), _) in ends {
        wanted.add_partition(topic, *partition);
    }
    let progress = ProgressBar::new(records);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} committed ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let deadline = Instant::now() + timeout;
    loop {
        let committed = reader.committed_offsets(wanted.clone(), Duration::from_secs(10))?;
        let mut done = 0u64;
        let mut complete = true;
        for ((topic, partition), end) in ends {
            let at = match committed.find_partition(topic, *partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => 0,
            };
            done += u64::try_from(at.min(*end)).unwrap_or(0);
            complete &= at >= *end;
        }
        progress.set_position(done);
        if complete {
            progress.finish();
            return Ok(());
        }
        if let Some(exited) = services.exited() {
            progress.abandon();
            bail!("{exited} exited during the drain; see its log");
        }
        if Instant::now() > deadline {
            progress.abandon();
            bail!("the drain did not finish within {timeout:?}: {done} of {records} records committed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn print_report(r: &DrainReport) {
    let rss = r.service_peak_rss_kib.map_or_else(|| "–".to_owned(), |k| format!("{} MiB", k / 1024));
    println!("drain of {} records by {} ({} partitions):", r.records, r.service, r.partitions);
    println!(
        "  turnstile    {:>7.2} s  {:>9.0} msg/s  {:>6.1} µs CPU/msg  peak RSS {rss}  {} transactions, {:.0} messages each",
        r.drain_seconds,
        r.messages_per_second,
        r.service_cpu_us_per_message,
        r.transactions,
        r.mean_transaction_messages
    );
    println!("  passthrough  {:>7.2} s  {:>9.0} msg/s", r.passthrough_seconds, r.passthrough_messages_per_second);
    println!("  turnstile / passthrough: {:.2}", r.fraction_of_limit);
    match r.broker_cpu_seconds {
        Some(cpu) => {
            println!("  broker CPU during the drain: {cpu:.2} s ({:.1} µs/msg)", cpu * 1e6 / r.records.max(1) as f64)
        }
        None => println!("  broker CPU: not visible from here (remote broker)"),
    }
}
