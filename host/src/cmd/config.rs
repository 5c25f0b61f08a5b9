//! `turnstile config`: the effective configuration and its provenance.

use std::process::ExitCode;

use turnstile::config::Overrides;

use crate::cli::{ConfigArgs, GlobalArgs};

pub fn run(global: &GlobalArgs, _args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global, Overrides::default())?;
    print!("{}", loaded.config.to_toml());
    println!();
    println!("# Where each value came from:");
    let width = loaded.provenance().iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, source) in loaded.provenance() {
        println!("# {key:<width$}  {source}");
    }
    Ok(ExitCode::SUCCESS)
}
