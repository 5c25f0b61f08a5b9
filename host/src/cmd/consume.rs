//! `turnstile consume --event ID --action ACTION`: prints every committed
//! record of an event topic as one JSON line (`partition`, `offset`, `key`,
//! `value`), in partition then offset order, and stops at the end. The
//! topic is looked up in the topology, so configured topics work too.
//!
//! Exit codes: 0 read; 2 an action without a topic or an unreachable
//! bootstrap; 3 the topic could not be read.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use turnstile::config::Overrides;
use turnstile::load::read::read_back;

use crate::cli::{ConsumeArgs, GlobalArgs};

pub fn run(global: &GlobalArgs, args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(global, Overrides::default())?.config;
    let spec = super::event_topic(&config, args.event, &args.action)?;
    let records = read_back(&config.kafka, &spec.name.to_string(), "read_committed", Duration::from_secs(30))?;
    let mut out = std::io::stdout().lock();
    for record in records {
        let value = serde_json::from_slice(&record.value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&record.value).into_owned()));
        let line = json!({"partition": record.partition, "offset": record.offset, "key": record.key, "value": value});
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}
