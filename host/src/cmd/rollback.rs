//! `turnstile rollback`: points a service's `current` back at an earlier
//! version (by default the highest below current), atomically. Running
//! services pick the change up at their next transaction boundary.
//!
//! Exit codes: 0 moved, or already there; 2 unknown version or nothing to
//! roll back to; 3 the store could not be written.

use std::process::ExitCode;

use super::deploy::{failure, open_store};
use crate::cli::{GlobalArgs, RollbackArgs};

pub fn run(global: &GlobalArgs, args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let (_, store) = open_store(global, args.plugins, &args.service)?;
    let rollback = store.rollback(args.to).map_err(|e| failure(e, None))?;
    let (from, to) = (&rollback.from, &rollback.to);
    if from.number == to.number {
        println!("{} v{} is already current: nothing to do", store.service(), to.number);
    } else {
        println!(
            "{}: current v{} → v{} (plugin {}, sha256 {})",
            store.service(),
            from.number,
            to.number,
            to.plugin_version,
            to.sha256
        );
    }
    Ok(ExitCode::SUCCESS)
}
