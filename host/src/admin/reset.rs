//! Deleting the topics and consumer groups of every unprotected event.
//!
//! Only names that parse as an event's topic or group are ever touched;
//! internal topics (`__…`) and other applications' names are left alone.
//! Protection compares parsed event ids, so protecting 1 keeps
//! `event-id-1…` and not `event-id-10…`.

use std::collections::BTreeSet;
use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;

use super::table::Table;
use super::{AdminError, Cluster, GroupSummary};
use crate::naming::{TopicName, parse_consumer_group};

/// The event kept when no `--protect` is given.
pub const DEFAULT_PROTECTED: u64 = 1;

/// What a reset will do, decided from one listing of topics and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub delete_topics: Vec<String>,
    pub delete_groups: Vec<String>,
    /// Topics and groups of protected events.
    pub protected_topics: Vec<String>,
    pub protected_groups: Vec<String>,
    /// Unprotected groups kept because they have members: `(group, members)`.
    pub active_groups: Vec<(String, usize)>,
}

impl Plan {
    /// Decides from names alone; `protect` holds the event ids to keep.
    pub fn new<'a>(
        topics: impl IntoIterator<Item = &'a str>,
        groups: &[GroupSummary],
        protect: &BTreeSet<u64>,
    ) -> Plan {
        let mut plan = Plan::default();
        for topic in topics {
            let Some(parsed) = TopicName::parse(topic) else {
                continue;
            };
            if protect.contains(&parsed.event_id) {
                plan.protected_topics.push(topic.to_owned());
            } else {
                plan.delete_topics.push(topic.to_owned());
            }
        }
        for group in groups {
            let Some((event_id, _)) = parse_consumer_group(&group.name) else {
                continue;
            };
            if protect.contains(&event_id) {
                plan.protected_groups.push(group.name.clone());
            } else if !group.members.is_empty() {
                plan.active_groups.push((group.name.clone(), group.members.len()));
            } else {
                plan.delete_groups.push(group.name.clone());
            }
        }
        plan.delete_topics.sort();
        plan.delete_groups.sort();
        plan.protected_topics.sort();
        plan.protected_groups.sort();
        plan
    }

    /// Lists the cluster and plans.
    pub fn from_cluster(cluster: &Cluster, protect: &BTreeSet<u64>) -> Result<Plan, AdminError> {
        let topics = cluster.topics()?;
        let groups = cluster.groups()?;
        Ok(Plan::new(topics.keys().map(String::as_str), &groups, protect))
    }

    /// True when there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.delete_topics.is_empty() && self.delete_groups.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = Table::new(&["ACTION", "KIND", "NAME"]).indent(2);
        for t in &self.delete_topics {
            table.row(vec!["delete".into(), "topic".into(), t.clone()]);
        }
        for g in &self.delete_groups {
            table.row(vec!["delete".into(), "group".into(), g.clone()]);
        }
        for (g, members) in &self.active_groups {
            table.row(vec!["keep (active)".into(), "group".into(), format!("{g} ({members} members)")]);
        }
        for t in &self.protected_topics {
            table.row(vec!["keep (protected)".into(), "topic".into(), t.clone()]);
        }
        for g in &self.protected_groups {
            table.row(vec!["keep (protected)".into(), "group".into(), g.clone()]);
        }
        writeln!(
            f,
            "{} topics and {} groups to delete; {} active groups and {} protected topics and groups kept",
            self.delete_topics.len(),
            self.delete_groups.len(),
            self.active_groups.len(),
            self.protected_topics.len() + self.protected_groups.len()
        )?;
        if !table.is_empty() {
            write!(f, "{table}")?;
        }
        Ok(())
    }
}

/// What a reset did and what is left.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub deleted_topics: Vec<String>,
    pub deleted_groups: Vec<String>,
    /// Groups kept because they have members (planned, or found non-empty
    /// when deleting).
    pub active_groups: Vec<String>,
    /// Things the reset meant to delete that still exist, with the reason.
    pub leftover: Vec<(String, String)>,
    /// Every event topic and group remaining afterwards.
    pub remaining_topics: Vec<String>,
    pub remaining_groups: Vec<String>,
}

impl Outcome {
    /// True when everything meant to be deleted is gone.
    pub fn complete(&self) -> bool {
        self.leftover.is_empty()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "deleted {} topics and {} groups", self.deleted_topics.len(), self.deleted_groups.len())?;
        for g in &self.active_groups {
            writeln!(f, "kept active group {g}")?;
        }
        for (name, reason) in &self.leftover {
            writeln!(f, "NOT deleted: {name}: {reason}")?;
        }
        writeln!(
            f,
            "remaining event topics ({}) and groups ({}):",
            self.remaining_topics.len(),
            self.remaining_groups.len()
        )?;
        let mut table = Table::new(&["KIND", "NAME"]).indent(2);
        for t in &self.remaining_topics {
            table.row(vec!["topic".into(), t.clone()]);
        }
        for g in &self.remaining_groups {
            table.row(vec!["group".into(), g.clone()]);
        }
        if !table.is_empty() {
            write!(f, "{table}")?;
        }
        Ok(())
    }
}

/// Carries out `plan`: deletes the groups (members may have joined since
/// the listing: those are kept), then the topics, then polls metadata for up
/// to the request timeout until the topics are gone, and lists what remains.
pub fn execute(cluster: &Cluster, plan: &Plan) -> Result<Outcome, AdminError> {
    let mut outcome =
        Outcome { active_groups: plan.active_groups.iter().map(|(g, _)| g.clone()).collect(), ..Outcome::default() };

    let groups: Vec<&str> = plan.delete_groups.iter().map(String::as_str).collect();
    for result in cluster.delete_groups(&groups)? {
        match result {
            Ok(name) | Err((name, RDKafkaErrorCode::GroupIdNotFound)) => outcome.deleted_groups.push(name),
            Err((name, RDKafkaErrorCode::NonEmptyGroup)) => outcome.active_groups.push(name),
            Err((name, code)) => outcome.leftover.push((name, code.to_string())),
        }
    }

    let topics: Vec<&str> = plan.delete_topics.iter().map(String::as_str).collect();
    let mut requested = Vec::new();
    for result in cluster.delete_topics(&topics)? {
        match result {
            Ok(name) | Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => requested.push(name),
            Err((name, code)) => outcome.leftover.push((name, code.to_string())),
        }
    }

    let still_there = wait_deleted(cluster, &requested)?;
    for name in requested {
        if still_there.contains(&name) {
            outcome.leftover.push((name, "still listed by the broker after the timeout".into()));
        } else {
            outcome.deleted_topics.push(name);
        }
    }

    let topics = cluster.topics()?;
    outcome.remaining_topics = topics.keys().filter(|t| TopicName::parse(t).is_some()).cloned().collect();
    outcome.remaining_groups =
        cluster.groups()?.into_iter().filter(|g| parse_consumer_group(&g.name).is_some()).map(|g| g.name).collect();
    // A group deletion can report success yet the group reappear (a member
    // committing in between): trust the final listing.
    for group in &outcome.remaining_groups {
        if outcome.deleted_groups.contains(group) {
            outcome.leftover.push((group.clone(), "listed again after deletion".into()));
        }
    }
    outcome.deleted_groups.retain(|g| !outcome.remaining_groups.contains(g));
    Ok(outcome)
}

/// Topic deletion is asynchronous on the broker: polls metadata until none
/// of `names` is listed or the request timeout passes; returns those left.
fn wait_deleted(cluster: &Cluster, names: &[String]) -> Result<BTreeSet<String>, AdminError> {
    let deadline = Instant::now() + cluster.timeout();
    loop {
        let topics = cluster.topics()?;
        let left: BTreeSet<String> = names.iter().filter(|n| topics.contains_key(*n)).cloned().collect();
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::GroupMember;
    use crate::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};

    fn group(name: &str, members: usize) -> GroupSummary {
        GroupSummary {
            name: name.into(),
            state: if members == 0 { "Empty" } else { "Stable" }.into(),
            members: (0..members)
                .map(|i| GroupMember {
                    member_id: format!("m{i}"),
                    client_id: "c".into(),
                    host: "/127.0.0.1".into(),
                    assignment: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn protecting_one_does_not_protect_ten() {
        let topics: Vec<String> = [1, 10, 11]
            .iter()
            .flat_map(|&id| crate::topology::Topology::builtin().event_topics(id))
            .map(|s| s.name.to_string())
            .chain(["__consumer_offsets".into(), "orders".into(), "event-id-1-other".into()])
            .collect();
        let groups = vec![
            group(&naming::consumer_group(1, TICKETING_SERVICE), 0),
            group(&naming::consumer_group(10, TICKETING_SERVICE), 0),
            group(&naming::consumer_group(11, SEAT_RESERVATION_SERVICE), 2),
            group("event-id-1_____ticketing-service--10", 0),
            group("my-app", 0),
        ];
        let plan = Plan::new(topics.iter().map(String::as_str), &groups, &BTreeSet::from([DEFAULT_PROTECTED]));

        let per_event = crate::topology::Topology::builtin().event_topics(1).len();
        assert_eq!(plan.protected_topics.len(), per_event);
        assert!(plan.protected_topics.iter().all(|t| t.starts_with("event-id-1______")));
        assert_eq!(plan.delete_topics.len(), 2 * per_event);
        assert!(plan.delete_topics.iter().all(|t| TopicName::parse(t).is_some_and(|p| p.event_id != 1)));
        assert_eq!(plan.protected_groups, vec![naming::consumer_group(1, TICKETING_SERVICE)]);
        assert_eq!(plan.delete_groups, vec![naming::consumer_group(10, TICKETING_SERVICE)]);
        assert_eq!(plan.active_groups, vec![(naming::consumer_group(11, SEAT_RESERVATION_SERVICE), 2)]);
    }

    #[test]
    fn nothing_outside_the_pattern_is_planned() {
        let groups = vec![group("connect-cluster", 0)];
        let plan = Plan::new(["__transaction_state", "_schemas", "event-id-x"], &groups, &BTreeSet::new());
        assert!(plan.is_empty());
        assert!(plan.protected_topics.is_empty() && plan.protected_groups.is_empty());
    }
}
