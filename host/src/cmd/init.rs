//! `turnstile init NAME --consumes ACTION… --emits ACTION…`: scaffolds a
//! plugin crate in a new directory (see `turnstile::scaffold`).
//!
//! Exit codes: 0 written; 2 a bad name, an existing directory or no SDK.

use std::path::PathBuf;
use std::process::ExitCode;

use turnstile::scaffold::{Scaffold, ScaffoldError};

use super::UsageError;
use crate::cli::InitArgs;

/// Where the SDK is in the checkout this binary was built from.
const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = args.sdk.clone().unwrap_or_else(|| PathBuf::from(SDK));
    // Absolute, so the new crate builds wherever it is moved to.
    let sdk = std::fs::canonicalize(&sdk).map_err(|_| UsageError(ScaffoldError::NoSdk(sdk.clone()).to_string()))?;
    let scaffold = Scaffold::new(&args.name, args.consumes, args.emits, sdk).map_err(|e| UsageError(e.to_string()))?;
    scaffold.write(&dir).map_err(|e| match e {
        ScaffoldError::Io { .. } => anyhow::Error::new(e),
        refused => UsageError(refused.to_string()).into(),
    })?;
    println!("created {} ({}) in {}", args.name, scaffold.service(), dir.display());
    println!("  cd {}", dir.display());
    println!("  cargo test          # the handler, natively");
    println!("  turnstile build     # the component, checked as deploy checks it");
    println!("its topics are declared in {}/turnstile.toml:", dir.display());
    println!("{}", scaffold.topics_toml().trim_end());
    Ok(ExitCode::SUCCESS)
}
