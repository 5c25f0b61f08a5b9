//! `turnstile reset`: delete every unprotected event's topics and groups.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use turnstile::admin::Cluster;
use turnstile::admin::reset::{self, DEFAULT_PROTECTED, Plan};
use turnstile::config::Overrides;

use super::EXIT_INCOMPLETE;
use crate::cli::{GlobalArgs, ResetArgs};

pub fn run(global: &GlobalArgs, args: ResetArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global, Overrides::default())?;
    if !args.dry_run && !args.yes && !std::io::stdin().is_terminal() {
        anyhow::bail!(super::UsageError(
            "reset deletes topics and consumer groups, and stdin is not a terminal to confirm on; \
             pass --yes to delete, or --dry-run to see what would be deleted"
                .into()
        ));
    }
    let protect: BTreeSet<u64> = if args.protect.is_empty() {
        BTreeSet::from([DEFAULT_PROTECTED])
    } else {
        args.protect.iter().copied().collect()
    };

    let cluster = Cluster::connect(&loaded.config)?;
    let plan = Plan::from_cluster(&cluster, &protect)?;
    let ids: Vec<String> = protect.iter().map(u64::to_string).collect();
    println!("protected events: {}", ids.join(", "));
    print!("{plan}");
    if args.dry_run {
        println!("dry run: nothing deleted");
        return Ok(ExitCode::SUCCESS);
    }
    if !plan.is_empty() && !args.yes && !confirm(&plan)? {
        println!("aborted: nothing deleted");
        return Ok(ExitCode::from(EXIT_INCOMPLETE));
    }
    let outcome = reset::execute(&cluster, &plan)?;
    print!("{outcome}");
    Ok(if outcome.complete() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_INCOMPLETE) })
}

/// Asks on the terminal; anything but `y`/`yes` is a no.
fn confirm(plan: &Plan) -> anyhow::Result<bool> {
    eprint!("Delete {} topics and {} consumer groups? [y/N] ", plan.delete_topics.len(), plan.delete_groups.len());
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
