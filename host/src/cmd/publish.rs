//! `turnstile publish`: JSON lines to an event topic, each on the partition and
//! under the key the host itself would use.

use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use turnstile::admin;
use turnstile::config::Overrides;
use turnstile::naming::{self, TopicKind};
use turnstile::publisher::Publisher;
use turnstile::routing;

use crate::cli::{GlobalArgs, PublishArgs};

pub fn run(global: &GlobalArgs, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(global, Overrides::default())?.config;
    let spec = super::event_topic(&config, args.event, &args.action)?;
    let topic = spec.name.to_string();

    // Read and route everything first: a bad line publishes nothing.
    let lines = read_lines(&args.file)?;
    let partitions = match args.partitions {
        Some(n) => n,
        None => admin::partition_count(&config, &topic)?,
    };
    let mut records = Vec::with_capacity(lines.len());
    let mut problems = Vec::new();
    for (number, line) in lines {
        match route(args.event, spec.kind, &line, partitions) {
            Ok((partition, key)) => records.push((partition, key, line)),
            Err(reason) => problems.push(format!("{}:{number}: {reason}", args.file.display())),
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        anyhow::bail!(super::UsageError(format!("{} bad line(s); nothing was published", problems.len())));
    }

    let publisher = Publisher::new(&config)?;
    for (partition, key, line) in &records {
        publisher.publish(&topic, *partition, key, line.as_bytes())?;
    }
    publisher.flush(Duration::from_secs(60))?;
    println!("published {} message(s) to {topic}", records.len());
    Ok(ExitCode::SUCCESS)
}

/// Non-blank lines with their 1-based line numbers.
fn read_lines(path: &std::path::Path) -> anyhow::Result<Vec<(usize, String)>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if !line.trim().is_empty() {
            lines.push((i + 1, line));
        }
    }
    Ok(lines)
}

/// The partition and key of one JSON line on a topic of `kind`.
fn route(event_id: u64, kind: TopicKind, line: &str, partitions: i32) -> Result<(i32, String), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("needs a string field {name:?} to choose the partition"))
    };
    match kind {
        TopicKind::BySection => {
            let section = field("section")?;
            Ok(routing::by_section(event_id, section, partitions))
        }
        TopicKind::ByBooking => {
            let booking_id = field("booking_id")?;
            Ok(routing::by_booking(event_id, booking_id, partitions))
        }
        TopicKind::ByEvent => Ok((0, naming::event_key(event_id))),
        TopicKind::Changelog => Err("changelog topics are written by the services only".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_the_host() {
        let (p, key) = route(1, TopicKind::BySection, r#"{"type":"reserve_seats","section":"C"}"#, 10).unwrap();
        assert_eq!((p, key.as_str()), (2, "event-1-section-C-partition-2"));
        let (p, key) = route(1, TopicKind::ByBooking, r#"{"booking_id":"b1"}"#, 10).unwrap();
        assert_eq!(key, "event-1-booking-b1");
        assert_eq!(p, turnstile::partition::booking_partition(1, "b1", 10));
        assert!(route(1, TopicKind::ByBooking, "{", 10).unwrap_err().contains("not JSON"));
        assert!(route(1, TopicKind::BySection, "{}", 10).unwrap_err().contains("section"));
    }
}
