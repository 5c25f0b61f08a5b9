//! `turnstile plugins`: the deployed versions of a service, oldest first,
//! the current one marked `*`.
//!
//! `--json` prints `{"service", "dir", "current": N | null, "versions":
//! [{"number", "path_to_wasm", "sha256", "plugin_version", "deployed_at",
//! "size", "current"}]}`.

use std::process::ExitCode;

use serde_json::{Value, json};
use turnstile::deploy::Version;

use super::deploy::{failure, open_store};
use crate::cli::{GlobalArgs, PluginsArgs};

/// Hex digits of the sha256 shown in the table; `--json` has all of them.
const SHORT_SHA: usize = 12;

pub fn run(global: &GlobalArgs, args: PluginsArgs) -> anyhow::Result<ExitCode> {
    let (_, store) = open_store(global, args.plugins, &args.service)?;
    let versions = store.versions().map_err(|e| failure(e, None))?;
    let current = store.current().map_err(|e| failure(e, None))?.map(|v| v.number);
    if args.json {
        let versions: Vec<Value> = versions
            .iter()
            .map(|v| {
                let mut value = serde_json::to_value(v)?;
                value["current"] = Value::Bool(Some(v.number) == current);
                Ok(value)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        let report = json!({"service": store.service(), "dir": store.path(), "current": current, "versions": versions});
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if versions.is_empty() {
        println!("no versions of {} deployed in {}", store.service(), store.path().display());
    } else {
        print!("{}", table(&versions, current));
    }
    Ok(ExitCode::SUCCESS)
}

/// Aligned columns under a header; numbers right-aligned.
fn table(versions: &[Version], current: Option<u32>) -> String {
    let header = ["VERSION", "SHA256", "SIZE", "DEPLOYED", "PLUGIN"];
    let rows: Vec<[String; 5]> = versions
        .iter()
        .map(|v| {
            [
                format!("v{}", v.number),
                v.sha256.chars().take(SHORT_SHA).collect(),
                v.size.to_string(),
                v.deployed_at.clone(),
                v.plugin_version.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |marker: &str, cells: [&str; 5]| {
        let [version, sha, size, deployed, plugin] = cells;
        let [wv, ws, wz, wd, _] = widths;
        format!("{marker} {version:<wv$}  {sha:<ws$}  {size:>wz$}  {deployed:<wd$}  {plugin}\n")
    };
    let mut out = line(" ", header);
    for (v, row) in versions.iter().zip(&rows) {
        let marker = if Some(v.number) == current { "*" } else { " " };
        out += &line(marker, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}
