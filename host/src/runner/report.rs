//! Instance reports: each running instance writes its counters and plugin
//! version to a small JSON file, which `turnstile status` shows next to what
//! the broker knows. Local files, because the broker has no place for them;
//! an instance on another host is visible through its consumer-group
//! membership only.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::metrics::MetricsSnapshot;

/// What one instance says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub service: String,
    pub event_id: u64,
    pub instance_id: String,
    pub pid: u32,
    /// `running`, `stalled`, `failed` or `stopped`.
    pub state: String,
    /// Milliseconds since the instance last committed a transaction (since
    /// it started, if it never did).
    #[serde(default)]
    pub last_commit_age_ms: Option<u64>,
    pub plugin_version: String,
    /// The deployment version, when started from a deployment.
    pub deployment: Option<u32>,
    pub metrics: MetricsSnapshot,
    /// Seconds since the Unix epoch.
    pub updated_at: u64,
}

/// `{dir}/event-{id}/{service}-{instance}.json`.
pub fn path(dir: &Path, event_id: u64, service: &str, instance_id: &str) -> PathBuf {
    dir.join(format!("event-{event_id}")).join(format!("{service}-{instance_id}.json"))
}

/// Writes a report atomically (temporary file and rename), so readers never
/// see half of one. Failures are logged, never fatal: reports are advisory.
pub fn write(dir: &Path, report: &InstanceReport) {
    let target = path(dir, report.event_id, &report.service, &report.instance_id);
    let result = (|| -> std::io::Result<()> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = target.with_extension(format!("json.{}", report.pid));
        std::fs::write(&tmp, serde_json::to_vec_pretty(report).unwrap_or_default())?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(err) = result {
        tracing::debug!(path = %target.display(), error = %err, "cannot write the instance report");
    }
}

/// Every report of an event, sorted by service and instance.
pub fn read_all(dir: &Path, event_id: u64) -> Vec<InstanceReport> {
    let Ok(entries) = std::fs::read_dir(dir.join(format!("event-{event_id}"))) else {
        return Vec::new();
    };
    let mut reports: Vec<InstanceReport> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    reports.sort_by(|a, b| (&a.service, &a.instance_id).cmp(&(&b.service, &b.instance_id)));
    reports
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_through_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let report = InstanceReport {
            service: "ticketing-service".into(),
            event_id: 7,
            instance_id: "2".into(),
            pid: 42,
            state: "running".into(),
            plugin_version: "0.1.0".into(),
            deployment: Some(3),
            metrics: MetricsSnapshot { processed: 10, ..Default::default() },
            updated_at: now(),
            last_commit_age_ms: None,
        };
        write(dir.path(), &report);
        assert_eq!(read_all(dir.path(), 7), vec![report]);
        assert!(read_all(dir.path(), 8).is_empty());
    }
}
