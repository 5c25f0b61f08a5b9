//! Topics, consumer groups and lag of events, like
//! `kafka-consumer-groups --describe`.
//!
//! `turnstile status --json` prints a [`Report`] serialized as:
//!
//! ```json
//! { "events": [ {
//!     "event_id": 42,
//!     "topics": [ { "name": "event-id-42______booking-command______client___to___ticketing-service",
//!                   "action": "booking-command",
//!                   "messages": 12,
//!                   "partitions": [ { "partition": 0, "low": 0, "high": 12 } ] } ],
//!     "groups": [ { "name": "event-id-42_____ticketing-service--42",
//!                   "service": "ticketing-service",
//!                   "state": "Stable",
//!                   "members": [ { "member_id": "…", "client_id": "…", "host": "/127.0.0.1",
//!                                  "assignment": [ ["event-id-42______…", 0] ] } ],
//!                   "lag": 7, "error": null,
//!                   "offsets": [ { "topic": "…", "partition": 0, "committed": 5, "end": 12,
//!                                  "lag": 7, "member_id": "…" } ] } ] } ] }
//! ```
//!
//! `messages` is the sum of `high - low`; `committed`, `lag` and `member_id`
//! are `null` when unknown (nothing committed, no owner). A group whose
//! offsets could not be read has `"error": "…"` and no offsets (else `null`). A group lists the
//! partitions it committed plus every partition of its service's input
//! topics. Fields may be added; none will change meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::table::Table;
use super::{AdminError, Cluster, GroupMember, GroupSummary};
use crate::naming::{self, TopicName};
use crate::runner::report::InstanceReport;

/// The status of every event asked about.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub events: Vec<EventStatus>,
}

/// One event's topics, consumer groups, and the reports of service
/// instances running on this host.
#[derive(Debug, Clone, Serialize)]
pub struct EventStatus {
    pub event_id: u64,
    pub topics: Vec<TopicStatus>,
    pub groups: Vec<GroupStatus>,
    pub instances: Vec<InstanceReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicStatus {
    pub name: String,
    pub action: String,
    /// Records currently retained: the sum of `high - low`.
    pub messages: i64,
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// Log start offset.
    pub low: i64,
    /// High watermark (end offset).
    pub high: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub name: String,
    pub service: String,
    pub state: String,
    pub members: Vec<GroupMember>,
    /// Sum of the known per-partition lags.
    pub lag: i64,
    pub offsets: Vec<GroupOffset>,
    /// Why the offsets could not be read (the group is still listed).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub end: i64,
    /// `end - committed` when something was committed.
    pub lag: Option<i64>,
    /// The member the partition is assigned to, if any.
    pub member_id: Option<String>,
}

/// Collects the status of `event` (or of every event found on the cluster).
pub fn collect(cluster: &Cluster, event: Option<u64>) -> Result<Report, AdminError> {
    let topics = cluster.topics()?;
    let groups = cluster.groups()?;
    let event_topics: Vec<(TopicName, i32)> =
        topics.iter().filter_map(|(name, &n)| TopicName::parse(name).map(|t| (t, n))).collect();
    let event_groups: Vec<(u64, String, &GroupSummary)> =
        groups.iter().filter_map(|g| parse_group(g).map(|(id, service)| (id, service, g))).collect();

    let ids: BTreeSet<u64> = match event {
        Some(id) => BTreeSet::from([id]),
        None => event_topics.iter().map(|(t, _)| t.event_id).chain(event_groups.iter().map(|(id, _, _)| *id)).collect(),
    };
    let mut report = Report::default();
    for id in ids {
        let mut status = EventStatus { event_id: id, topics: Vec::new(), groups: Vec::new(), instances: Vec::new() };
        for (topic, count) in event_topics.iter().filter(|(t, _)| t.event_id == id) {
            status.topics.push(topic_status(cluster, topic, *count)?);
        }
        for (_, service, group) in event_groups.iter().filter(|(g, _, _)| *g == id) {
            status.groups.push(group_status(cluster, id, service, group, &status.topics));
        }
        report.events.push(status);
    }
    Ok(report)
}

fn parse_group(group: &GroupSummary) -> Option<(u64, String)> {
    naming::parse_consumer_group(&group.name)
}

fn topic_status(cluster: &Cluster, topic: &TopicName, partitions: i32) -> Result<TopicStatus, AdminError> {
    let name = topic.to_string();
    let mut status =
        TopicStatus { name: name.clone(), action: topic.action.clone(), messages: 0, partitions: Vec::new() };
    for partition in 0..partitions {
        let (low, high) = cluster.watermarks(&name, partition)?;
        status.messages += (high - low).max(0);
        status.partitions.push(PartitionStatus { partition, low, high });
    }
    Ok(status)
}

fn group_status(
    cluster: &Cluster,
    event_id: u64,
    service: &str,
    group: &GroupSummary,
    topics: &[TopicStatus],
) -> GroupStatus {
    let inputs: BTreeSet<String> = naming::input_topics(event_id, service).iter().map(ToString::to_string).collect();
    let owners: BTreeMap<(&str, i32), &str> = group
        .members
        .iter()
        .flat_map(|m| m.assignment.iter().map(move |(t, p)| ((t.as_str(), *p), m.member_id.as_str())))
        .collect();
    let mut candidates = Vec::new();
    let mut ends = Vec::new();
    for topic in topics {
        for p in &topic.partitions {
            candidates.push((topic.name.clone(), p.partition));
            ends.push(p.high);
        }
    }
    let mut status = GroupStatus {
        name: group.name.clone(),
        service: service.to_owned(),
        state: group.state.clone(),
        members: group.members.clone(),
        lag: 0,
        offsets: Vec::new(),
        error: None,
    };
    // One group's offsets failing (a coordinator moving) must not hide the rest.
    let committed = match cluster.committed(&group.name, &candidates) {
        Ok(committed) => committed,
        Err(e) => {
            status.error = Some(error_chain(&e));
            return status;
        }
    };
    for (((topic, partition), end), committed) in candidates.into_iter().zip(ends).zip(committed) {
        let member_id = owners.get(&(topic.as_str(), partition)).map(|m| (*m).to_owned());
        if committed.is_none() && member_id.is_none() && !inputs.contains(&topic) {
            continue;
        }
        let lag = committed.map(|c| (end - c).max(0));
        status.lag += lag.unwrap_or(0);
        status.offsets.push(GroupOffset { topic, partition, committed, end, lag, member_id });
    }
    status
}

/// An error with its sources, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.events.is_empty() {
            return writeln!(f, "no event topics or consumer groups found");
        }
        for (i, event) in self.events.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{event}")?;
        }
        Ok(())
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "event {}: {} topics, {} consumer groups", self.event_id, self.topics.len(), self.groups.len())?;
        if !self.topics.is_empty() {
            let mut table = Table::new(&["TOPIC", ">PARTITIONS", ">MESSAGES", "END OFFSETS (by partition)"]).indent(2);
            for t in &self.topics {
                let ends: Vec<String> = t.partitions.iter().map(|p| p.high.to_string()).collect();
                table.row(vec![t.name.clone(), t.partitions.len().to_string(), t.messages.to_string(), ends.join(" ")]);
            }
            write!(f, "{table}")?;
        }
        if !self.instances.is_empty() {
            let mut table = Table::new(&[
                "INSTANCE",
                "STATE",
                "PLUGIN",
                ">PROCESSED",
                ">FAILED",
                ">DEAD-LETTERED",
                ">RETRIED",
                ">COMMITS",
                ">ABORTS",
            ])
            .indent(2);
            for i in &self.instances {
                let plugin = match i.deployment {
                    Some(n) => format!("v{n} ({})", i.plugin_version),
                    None => i.plugin_version.clone(),
                };
                let m = &i.metrics;
                let state = match (i.state.as_str(), i.last_commit_age_ms) {
                    ("stalled", Some(ms)) => format!("stalled (last commit {:.1} s ago)", ms as f64 / 1e3),
                    _ => i.state.clone(),
                };
                table.row(vec![
                    format!("{}/{}", i.service, i.instance_id),
                    state,
                    plugin,
                    m.processed.to_string(),
                    m.failed.to_string(),
                    m.dead_lettered.to_string(),
                    m.retried.to_string(),
                    m.transactions_committed.to_string(),
                    m.transactions_aborted.to_string(),
                ]);
            }
            write!(f, "{table}")?;
        }
        for g in &self.groups {
            writeln!(f, "  group {}: {}, {} members, lag {}", g.name, g.state, g.members.len(), g.lag)?;
            if let Some(error) = &g.error {
                writeln!(f, "    offsets unavailable: {error}")?;
            }
            let mut table =
                Table::new(&["TOPIC", ">PARTITION", ">CURRENT-OFFSET", ">LOG-END-OFFSET", ">LAG", "CONSUMER-ID"])
                    .indent(4);
            for o in &g.offsets {
                let action = TopicName::parse(&o.topic).map_or_else(|| o.topic.clone(), |t| t.action);
                table.row(vec![
                    action,
                    o.partition.to_string(),
                    o.committed.map_or_else(|| "-".into(), |c| c.to_string()),
                    o.end.to_string(),
                    o.lag.map_or_else(|| "-".into(), |l| l.to_string()),
                    o.member_id.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            if !table.is_empty() {
                write!(f, "{table}")?;
            }
        }
        Ok(())
    }
}
