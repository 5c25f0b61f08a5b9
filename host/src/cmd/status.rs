//! `turnstile status`: topics, consumer groups and lag (see
//! `turnstile::status` for the `--json` shape).

use std::process::ExitCode;

use turnstile::admin::Cluster;
use turnstile::config::Overrides;
use turnstile::status;

use turnstile::runner::report;

use crate::cli::{GlobalArgs, StatusArgs};

pub fn run(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global, Overrides::default())?;
    let cluster = Cluster::connect(&loaded.config)?;
    let mut report = status::collect(&cluster, args.event)?;
    for event in &mut report.events {
        event.instances = report::read_all(&loaded.config.runner.status_dir, event.event_id);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
