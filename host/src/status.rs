//! What `turnstile status` shows: topics, consumer groups and lag of events
//! as the broker knows them (like `kafka-consumer-groups --describe`), and
//! the reports of the instances running on this host.
//!
//! `turnstile status --json` prints a [`Report`] serialized as:
//!
//! ```json
//! { "brokers": [1, 2, 3],
//!   "events": [ {
//!     "event_id": 42,
//!     "topics": [ { "name": "event-id-42______booking-command______client___to___ticketing-service",
//!                   "action": "booking-command",
//!                   "messages": 12, "min_insync_replicas": 2,
//!                   "partitions": [ { "partition": 0, "low": 0, "high": 12, "leader": 1,
//!                                     "replicas": [1, 2, 3], "isr": [1, 3],
//!                                     "under_replicated": true, "below_min_isr": false } ] } ],
//!     "warnings": [ "booking-command partition 0: under-replicated: in sync 1,3 of replicas 1,2,3" ],
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
//! Every partition also has `leader` (a broker id, `null` when it has none),
//! `replicas`, `isr`, and the flags `under_replicated` (fewer replicas in
//! sync than assigned) and `below_min_isr` (fewer in sync than the topic's
//! `min.insync.replicas`, which a topic has as `min_insync_replicas`, `null`
//! if it could not be read); an event's `warnings` lists one line for every
//! partition so flagged or without a leader (empty when all is well), and
//! the report's `brokers` the ids of the live brokers. `low` and `high` (and
//! so a group's `end` and `lag`) are `null` for a partition whose leader is
//! down or whose offsets could not be read, with a warning saying which.
//! When the brokers cannot list consumer groups (one of them is down), the
//! report has `"groups_error": "…"`, no groups, and a warning per event;
//! otherwise `groups_error` is `null`.
//!
//! `messages` is the sum of `high - low`; `committed`, `lag` and `member_id`
//! are `null` when unknown (nothing committed, no owner). A group whose
//! offsets could not be read has `"error": "…"` and no offsets (else `null`). A group lists the
//! partitions it committed plus every partition of its service's input
//! topics. Fields may be added; none will change meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::admin::table::Table;
use crate::admin::{AdminError, Cluster, GroupMember, GroupSummary, PartitionReplicas};
use crate::naming::{self, TopicName};
use crate::runner::report::InstanceReport;

/// The status of every event asked about.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The ids of the live brokers.
    pub brokers: Vec<i32>,
    /// Why consumer groups could not be listed (they are then left out).
    pub groups_error: Option<String>,
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
    /// One line for every partition that is under-replicated, below its min
    /// ISR or without a leader; empty when every replica is in sync.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicStatus {
    pub name: String,
    pub action: String,
    /// Records currently retained: the sum of `high - low` where known.
    pub messages: i64,
    /// The topic's `min.insync.replicas` (`None`: it could not be read).
    pub min_insync_replicas: Option<i32>,
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// Log start offset (`None`: unknown, the leader is down).
    pub low: Option<i64>,
    /// High watermark, the end offset (`None`: unknown).
    pub high: Option<i64>,
    /// The leader's broker id (`None`: no leader, the partition is offline).
    pub leader: Option<i32>,
    /// The brokers assigned a replica.
    pub replicas: Vec<i32>,
    /// The replicas in sync with the leader.
    pub isr: Vec<i32>,
    /// Fewer replicas in sync than assigned.
    pub under_replicated: bool,
    /// Fewer replicas in sync than `min.insync.replicas`: writes with
    /// `acks=all` (every Turnstile write) are refused.
    pub below_min_isr: bool,
}

impl PartitionStatus {
    /// What is wrong with the partition's replicas, if anything.
    fn problem(&self, min_isr: Option<i32>) -> Option<String> {
        let ids = |v: &[i32]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let mut parts = Vec::new();
        if self.leader.is_none() {
            parts.push("no leader (offline)".to_owned());
        }
        if self.under_replicated {
            parts.push(format!("under-replicated: in sync {} of replicas {}", ids(&self.isr), ids(&self.replicas)));
        }
        if self.below_min_isr {
            parts.push(format!(
                "below min ISR: {} in sync, min.insync.replicas {}: writes are refused",
                self.isr.len(),
                min_isr.unwrap_or(0)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The STATE column.
    fn state(&self) -> String {
        let mut parts = Vec::new();
        if self.leader.is_none() {
            parts.push("NO LEADER");
        }
        if self.under_replicated {
            parts.push("UNDER-REPLICATED");
        }
        if self.below_min_isr {
            parts.push("BELOW MIN ISR");
        }
        if parts.is_empty() { "ok".into() } else { parts.join(", ") }
    }
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
    /// The partition's end offset (`None`: unknown, its leader is down).
    pub end: Option<i64>,
    /// `end - committed` when something was committed.
    pub lag: Option<i64>,
    /// The member the partition is assigned to, if any.
    pub member_id: Option<String>,
}

/// Collects the status of `event` (or of every event found on the cluster).
pub fn collect(cluster: &Cluster, event: Option<u64>) -> Result<Report, AdminError> {
    let topics = cluster.topics()?;
    let placement = cluster.replicas()?;
    let (live, replicas) = (&placement.live, &placement.topics);
    // Listing groups asks every broker: with one of them down it fails, and
    // the replicas are what matters most then.
    let (groups, groups_error) = match cluster.groups() {
        Ok(groups) => (groups, None),
        Err(e) => (Vec::new(), Some(error_chain(&e))),
    };
    let event_topics: Vec<(TopicName, i32)> =
        topics.iter().filter_map(|(name, &n)| TopicName::parse(name).map(|t| (t, n))).collect();
    let event_groups: Vec<(u64, String, &GroupSummary)> =
        groups.iter().filter_map(|g| parse_group(g).map(|(id, service)| (id, service, g))).collect();

    let ids: BTreeSet<u64> = match event {
        Some(id) => BTreeSet::from([id]),
        None => event_topics.iter().map(|(t, _)| t.event_id).chain(event_groups.iter().map(|(id, _, _)| *id)).collect(),
    };
    // One request for the min ISR of every topic shown; without it the
    // replicas are still shown, and the warning says why min ISR is missing.
    let shown: Vec<String> =
        event_topics.iter().filter(|(t, _)| ids.contains(&t.event_id)).map(|(t, _)| t.to_string()).collect();
    let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
    let (configs, config_error) = match cluster.topic_configs(&shown) {
        Ok(configs) => (configs, None),
        Err(e) => (BTreeMap::new(), Some(error_chain(&e))),
    };
    let mut offsets = OffsetReader { cluster, live, silent: BTreeSet::new() };
    let mut report =
        Report { brokers: live.iter().copied().collect(), groups_error: groups_error.clone(), events: Vec::new() };
    for id in ids {
        let mut status = EventStatus {
            event_id: id,
            topics: Vec::new(),
            groups: Vec::new(),
            instances: Vec::new(),
            warnings: Vec::new(),
        };
        for (topic, count) in event_topics.iter().filter(|(t, _)| t.event_id == id) {
            let name = topic.to_string();
            let min_isr = configs.get(&name).and_then(|c| c.get("min.insync.replicas")).and_then(|v| v.parse().ok());
            let placement = replicas.get(&name).map(Vec::as_slice).unwrap_or_default();
            let topic = topic_status(&mut offsets, topic, *count, placement, min_isr, &mut status.warnings);
            for p in &topic.partitions {
                if let Some(problem) = p.problem(topic.min_insync_replicas) {
                    status.warnings.push(format!("{} partition {}: {problem}", short_name(&topic.name), p.partition));
                }
            }
            status.topics.push(topic);
        }
        if let Some(error) = &config_error
            && !status.topics.is_empty()
        {
            status.warnings.push(format!("min ISR unknown (not checked): {error}"));
        }
        if let Some(error) = &groups_error {
            status.warnings.push(format!("consumer groups not shown: {error}"));
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

/// Reads partition offsets from their leaders. The offsets of a partition
/// whose leader is not live, or did not answer for an earlier partition
/// (`silent`), are not asked for (each would wait out the request timeout);
/// those that cannot be read are a warning.
struct OffsetReader<'a> {
    cluster: &'a Cluster,
    live: &'a BTreeSet<i32>,
    silent: BTreeSet<i32>,
}

impl OffsetReader<'_> {
    fn read(
        &mut self,
        topic: &str,
        partition: i32,
        leader: Option<i32>,
        warnings: &mut Vec<String>,
    ) -> Option<(i64, i64)> {
        let unavailable =
            |why: String| format!("{} partition {partition}: offsets unavailable: {why}", short_name(topic));
        match leader.filter(|l| self.live.contains(l)) {
            None => None,
            Some(l) if self.silent.contains(&l) => {
                warnings.push(unavailable(format!("its leader, broker {l}, did not answer before")));
                None
            }
            Some(l) => match self.cluster.watermarks(topic, partition) {
                Ok(offsets) => Some(offsets),
                Err(e) => {
                    self.silent.insert(l);
                    warnings.push(unavailable(error_chain(&e)));
                    None
                }
            },
        }
    }
}

/// A topic's partitions with offsets and replicas.
fn topic_status(
    offsets: &mut OffsetReader<'_>,
    topic: &TopicName,
    partitions: i32,
    placement: &[PartitionReplicas],
    min_insync_replicas: Option<i32>,
    warnings: &mut Vec<String>,
) -> TopicStatus {
    let name = topic.to_string();
    let mut status = TopicStatus {
        name: name.clone(),
        action: topic.action.clone(),
        messages: 0,
        min_insync_replicas,
        partitions: Vec::new(),
    };
    for partition in 0..partitions {
        let place = placement.iter().find(|p| p.partition == partition);
        let read = offsets.read(&name, partition, place.and_then(|p| p.leader), warnings);
        status.messages += read.map_or(0, |(low, high)| (high - low).max(0));
        status.partitions.push(partition_status(partition, read, place, min_insync_replicas));
    }
    status
}

/// A partition's offsets and replicas, flagged against `min_isr`.
fn partition_status(
    partition: i32,
    offsets: Option<(i64, i64)>,
    place: Option<&PartitionReplicas>,
    min_isr: Option<i32>,
) -> PartitionStatus {
    let (leader, replicas, isr) =
        place.map_or((None, Vec::new(), Vec::new()), |p| (p.leader, p.replicas.clone(), p.isr.clone()));
    let in_sync = isr.len();
    PartitionStatus {
        partition,
        low: offsets.map(|(low, _)| low),
        high: offsets.map(|(_, high)| high),
        leader,
        under_replicated: in_sync < replicas.len(),
        below_min_isr: min_isr.is_some_and(|m| (in_sync as i32) < m),
        replicas,
        isr,
    }
}

fn group_status(
    cluster: &Cluster,
    event_id: u64,
    service: &str,
    group: &GroupSummary,
    topics: &[TopicStatus],
) -> GroupStatus {
    let inputs: BTreeSet<String> =
        crate::topology::Topology::builtin().addressed_to(event_id, service).iter().map(ToString::to_string).collect();
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
        let lag = committed.zip(end).map(|(c, end)| (end - c).max(0));
        status.lag += lag.unwrap_or(0);
        status.offsets.push(GroupOffset { topic, partition, committed, end, lag, member_id });
    }
    status
}

impl EventStatus {
    /// The warnings, summed up for people: one line per kind of problem,
    /// with the brokers missing from the ISRs (the JSON keeps every line).
    fn replica_summary(&self) -> Vec<String> {
        let all: Vec<&PartitionStatus> = self.topics.iter().flat_map(|t| &t.partitions).collect();
        let total = all.len();
        let mut out = Vec::new();
        let offline = all.iter().filter(|p| p.leader.is_none()).count();
        if offline > 0 {
            out.push(format!("{offline} of {total} partitions have no leader: nothing can be read or written there"));
        }
        let under: Vec<&&PartitionStatus> = all.iter().filter(|p| p.under_replicated).collect();
        if !under.is_empty() {
            let behind: BTreeSet<i32> =
                under.iter().flat_map(|p| p.replicas.iter().filter(|r| !p.isr.contains(r)).copied()).collect();
            let behind: Vec<String> = behind.iter().map(ToString::to_string).collect();
            out.push(format!(
                "{} of {total} partitions are under-replicated (replicas out of sync on broker {})",
                under.len(),
                behind.join(", ")
            ));
        }
        let below = all.iter().filter(|p| p.below_min_isr).count();
        if below > 0 {
            out.push(format!(
                "{below} of {total} partitions are below their min ISR: writes to them are refused, services cannot commit"
            ));
        }
        let unread = self.warnings.iter().filter(|w| w.contains(": offsets unavailable: ")).count();
        let leaderless = all.iter().filter(|p| p.high.is_none()).count().saturating_sub(unread);
        if unread + leaderless > 0 {
            out.push(format!(
                "the offsets of {} of {total} partitions are unknown (shown as ?): their leader is down or did not answer",
                unread + leaderless
            ));
        }
        // What else the JSON warns about (min ISR or groups unreadable).
        out.extend(
            self.warnings
                .iter()
                .filter(|w| w.starts_with("min ISR unknown") || w.starts_with("consumer groups not shown"))
                .cloned(),
        );
        out
    }
}

/// A topic's action, with its service for the topics of one service (two
/// services each have a `state-changelog`).
fn short_name(topic: &str) -> String {
    match TopicName::parse(topic) {
        Some(TopicName { action, to: Some(_), .. }) => action,
        Some(TopicName { action, from, to: None, .. }) => format!("{action} ({from})"),
        None => topic.to_owned(),
    }
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
        let ids: Vec<String> = self.brokers.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "cluster: {} live broker{} ({})",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", ")
        )?;
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
        for line in self.replica_summary() {
            writeln!(f, "  WARNING: {line}")?;
        }
        if !self.topics.is_empty() {
            let mut table = Table::new(&["TOPIC", ">PARTITIONS", ">MESSAGES", "END OFFSETS (by partition)"]).indent(2);
            for t in &self.topics {
                let ends: Vec<String> =
                    t.partitions.iter().map(|p| p.high.map_or_else(|| "?".into(), |h| h.to_string())).collect();
                table.row(vec![t.name.clone(), t.partitions.len().to_string(), t.messages.to_string(), ends.join(" ")]);
            }
            write!(f, "{table}")?;
            let mut table =
                Table::new(&["TOPIC", ">PARTITION", ">LEADER", "REPLICAS", "ISR", ">MIN-ISR", "STATE"]).indent(2);
            let ids = |v: &[i32]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            for t in &self.topics {
                for p in &t.partitions {
                    table.row(vec![
                        short_name(&t.name),
                        p.partition.to_string(),
                        p.leader.map_or_else(|| "-".into(), |l| l.to_string()),
                        ids(&p.replicas),
                        ids(&p.isr),
                        t.min_insync_replicas.map_or_else(|| "?".into(), |m| m.to_string()),
                        p.state(),
                    ]);
                }
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
                    o.end.map_or_else(|| "?".into(), |e| e.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn place(leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionReplicas {
        PartitionReplicas {
            partition: 0,
            leader: (leader >= 0).then_some(leader),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            error: None,
        }
    }

    fn event(partitions: Vec<PartitionStatus>, min_isr: Option<i32>) -> EventStatus {
        let topic = TopicStatus {
            name: "t".into(),
            action: "booking-command".into(),
            messages: 0,
            min_insync_replicas: min_isr,
            partitions,
        };
        let mut event = EventStatus {
            event_id: 1,
            topics: vec![topic],
            groups: Vec::new(),
            instances: Vec::new(),
            warnings: Vec::new(),
        };
        for p in &event.topics[0].partitions {
            if let Some(problem) = p.problem(min_isr) {
                event.warnings.push(format!("booking-command partition {}: {problem}", p.partition));
            }
        }
        event
    }

    #[test]
    fn a_healthy_partition_has_no_warning() {
        let p = partition_status(0, Some((0, 5)), Some(&place(1, &[1, 2, 3], &[1, 2, 3])), Some(2));
        assert!(!p.under_replicated && !p.below_min_isr);
        let e = event(vec![p], Some(2));
        assert!(e.warnings.is_empty());
        let text = e.to_string();
        assert!(!text.contains("WARNING") && text.contains("1,2,3") && text.contains(" ok"), "{text}");
    }

    #[test]
    fn under_replication_and_min_isr_are_flagged_and_shown() {
        let under = partition_status(0, Some((0, 5)), Some(&place(1, &[1, 2, 3], &[1, 3])), Some(2));
        assert!(under.under_replicated && !under.below_min_isr);
        let mut below = partition_status(1, Some((0, 5)), Some(&place(3, &[2, 3, 1], &[3])), Some(2));
        below.partition = 1;
        assert!(below.under_replicated && below.below_min_isr);
        let offline = partition_status(2, None, Some(&place(-1, &[2], &[2])), Some(2));
        let e = event(vec![under, below, offline], Some(2));
        assert_eq!(e.warnings.len(), 3, "{:?}", e.warnings);
        assert_eq!(e.warnings[0], "booking-command partition 0: under-replicated: in sync 1,3 of replicas 1,2,3");
        assert!(e.warnings[1].contains("below min ISR: 1 in sync, min.insync.replicas 2"), "{:?}", e.warnings);
        assert!(e.warnings[2].contains("no leader"), "{:?}", e.warnings);
        let text = e.to_string();
        assert!(
            text.contains("WARNING: 2 of 3 partitions are under-replicated (replicas out of sync on broker 1, 2)"),
            "{text}"
        );
        assert!(text.contains("WARNING: 2 of 3 partitions are below their min ISR"), "{text}");
        assert!(text.contains("WARNING: 1 of 3 partitions have no leader"), "{text}");
        assert!(
            text.contains("UNDER-REPLICATED, BELOW MIN ISR") && text.contains("NO LEADER, BELOW MIN ISR"),
            "{text}"
        );
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(json["topics"][0]["partitions"][1]["below_min_isr"], true);
        assert_eq!(json["topics"][0]["partitions"][0]["isr"], serde_json::json!([1, 3]));
        assert_eq!(json["warnings"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn unknown_min_isr_flags_nothing_below_it() {
        let p = partition_status(0, Some((0, 0)), Some(&place(1, &[1, 2, 3], &[1])), None);
        assert!(p.under_replicated && !p.below_min_isr);
    }
}
