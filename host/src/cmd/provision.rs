//! `turnstile provision`: create an event's topics and publish its seating chart.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use turnstile::admin::{Cluster, provision};
use turnstile::config::{Config, Overrides};
use turnstile::publisher::Publisher;
use turnstile::seating::{Distribution, SeatingChart};
use turnstile::{naming, routing};

use crate::cli::{GlobalArgs, ProvisionArgs};

pub fn run(global: &GlobalArgs, args: ProvisionArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides::default();
    overrides.set("kafka.partitions", args.partitions);
    overrides.set("kafka.replication_factor", args.replication);
    overrides.set("kafka.min_insync_replicas", args.min_insync_replicas);
    let loaded = super::load_config(global, overrides)?;
    let config = &loaded.config;
    // A bad chart fails (exit 2) before anything is created.
    let chart = match &args.seating {
        Some(path) => Some(SeatingChart::from_path(path).map_err(|e| super::UsageError(e.to_string()))?),
        None => None,
    };

    let cluster = Cluster::connect(config)?;
    // Unset replication comes from the cluster; what cannot fit it is exit 2.
    let brokers = cluster.brokers()?;
    let replication = provision::Replication::resolve(&config.kafka, &brokers)?;
    let provisioned =
        provision::provision(&cluster, args.event, &config.kafka, replication, &brokers, &config.topology())?;
    print!("{provisioned}");

    if let Some(chart) = chart {
        let (topic, sent) = publish_chart(config, args.event, &chart)?;
        println!("published {sent} configure_subsection commands to {topic}");
        print!("{}", Distribution::analyse(args.event, &chart, config.kafka.partitions));
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends one `configure_subsection` per subsection to `ticket-command-request`,
/// on its section's partition with the section key, and waits for delivery.
fn publish_chart(config: &Config, event_id: u64, chart: &SeatingChart) -> anyhow::Result<(String, usize)> {
    let topic = naming::ticket_command_request_topic(event_id).to_string();
    let partitions = config.kafka.partitions;
    let publisher = Publisher::new(config).context("creating the producer")?;
    let mut sent = 0;
    for (section, command) in chart.configure_commands() {
        let (partition, key) = routing::by_section(event_id, &section, partitions);
        let payload = serde_json::to_vec(&command).context("encoding configure_subsection")?;
        publisher
            .publish(&topic, partition, &key, &payload)
            .with_context(|| format!("publishing to {topic} partition {partition}"))?;
        sent += 1;
    }
    publisher.flush(Duration::from_millis(config.kafka.request_timeout_ms)).context("flushing the seating chart")?;
    Ok((topic, sent))
}
