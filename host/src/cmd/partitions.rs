//! `turnstile partitions`: where sections land, and a chart's load per partition.

use std::process::ExitCode;

use turnstile::config::Overrides;
use turnstile::routing;
use turnstile::seating::{Distribution, SeatingChart};

use crate::cli::{GlobalArgs, PartitionsArgs};

pub fn run(global: &GlobalArgs, args: PartitionsArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides::default();
    overrides.set("kafka.partitions", args.partitions);
    let config = super::load_config(global, overrides)?.config;
    let partitions = config.kafka.partitions;

    if args.sections.is_empty() && args.seating.is_none() {
        anyhow::bail!(super::UsageError("give at least one --section or a --seating chart".into()));
    }
    for section in &args.sections {
        let (p, key) = routing::by_section(args.event, section, partitions);
        println!("{section} {p} {key}");
    }
    if let Some(path) = &args.seating {
        let chart = SeatingChart::from_path(path).map_err(|e| super::UsageError(e.to_string()))?;
        if !args.sections.is_empty() {
            println!();
        }
        println!(
            "event {} seating {}: {} sections, {} seats over {partitions} partitions",
            args.event,
            path.display(),
            chart.sections.len(),
            chart.total_seats()
        );
        print!("{}", Distribution::analyse(args.event, &chart, partitions));
    }
    Ok(ExitCode::SUCCESS)
}
