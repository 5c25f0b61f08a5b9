//! `turnstile status`: topics, consumer groups and lag (see
//! `turnstile::admin::status` for the `--json` shape).

use std::process::ExitCode;

use turnstile::admin::{Cluster, status};
use turnstile::config::Overrides;

use crate::cli::{GlobalArgs, StatusArgs};

pub fn run(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global, Overrides::default())?;
    let cluster = Cluster::connect(&loaded.config)?;
    let report = status::collect(&cluster, args.event)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
