//! Which topics an event has and who writes and reads them (DOMAIN.md §2).
//!
//! A topology is a list of flow topics, each `action` written by one
//! service (`from`) and addressed to another (`to`, or `client`), with the
//! routing its records are partitioned by. The built-in one is the four
//! topics of ticketing and seat reservation; `[[topology.topics]]` in the
//! configuration adds more, so that a deployed plugin can run as a service
//! of its own. Every service named in the topology also gets a dead-letter
//! topic and a state changelog. A service's inputs are the topics of the
//! actions its plugin consumes, its outputs those of the actions it emits.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use turnstile_protocol::Manifest;

use crate::naming::{self, CLIENT, TopicKind, TopicName, TopicSpec, action};

/// How the records of a topic are partitioned (`routing` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partitioning {
    /// By booking key `event-{id}-booking-{booking_id}`.
    Booking,
    /// By section, with the section partitioner (seat traffic).
    Section,
    /// Keyed `event-{id}`: one partition, in order.
    Event,
}

impl Partitioning {
    /// The topic kind records of this partitioning have.
    pub fn kind(self) -> TopicKind {
        match self {
            Partitioning::Booking => TopicKind::ByBooking,
            Partitioning::Section => TopicKind::BySection,
            Partitioning::Event => TopicKind::ByEvent,
        }
    }
}

/// One flow topic: `event-id-{id}______{action}______{from}___to___{to}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub action: String,
    pub from: String,
    pub to: String,
    pub routing: Partitioning,
}

impl Flow {
    fn new(action: &str, from: &str, to: &str, routing: Partitioning) -> Self {
        Flow { action: action.into(), from: from.into(), to: to.into(), routing }
    }

    /// The topic's name in `event_id`.
    pub fn topic(&self, event_id: u64) -> TopicName {
        TopicName::flow(event_id, &self.action, &self.from, &self.to)
    }
}

/// Why a topology, or a plugin against it, cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("topic {index}: {field} {value:?} is not a name (lowercase words joined by single dashes)")]
    BadName { index: usize, field: &'static str, value: String },
    #[error("topic {index}: action `{action}` already has a topic ({from} → {to})")]
    DuplicateAction { index: usize, action: String, from: String, to: String },
    #[error("topic {index}: action `{action}` is reserved for the host's own topics")]
    ReservedAction { index: usize, action: String },
    #[error("topic {index}: `{action}` goes from {from} to itself")]
    SelfLoop { index: usize, action: String, from: String },
    #[error("{service} consumes `{action}`, but no service produces it: the topology has no topic for that action")]
    NoProducer { service: String, action: String },
    #[error("{service} emits `{action}`, but the topology has no topic of `{action}` from {service}")]
    NoOutputTopic { service: String, action: String },
    #[error("{service} must consume `{action}`: its topic is addressed to {service}")]
    MissingInput { service: String, action: String },
}

/// The topics of every event: the built-in flows plus the configured ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    flows: Vec<Flow>,
}

impl Default for Topology {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Topology {
    /// Ticketing and seat reservation (DOMAIN.md §2).
    pub fn builtin() -> Self {
        use Partitioning::*;
        use naming::{SEAT_RESERVATION_SERVICE as SEATS, TICKETING_SERVICE as TICKETING};
        Topology {
            flows: vec![
                Flow::new(action::BOOKING_COMMAND, CLIENT, TICKETING, Booking),
                Flow::new(action::TICKET_COMMAND_REQUEST, TICKETING, SEATS, Section),
                Flow::new(action::SEAT_RESERVATION_RESULT, SEATS, TICKETING, Booking),
                Flow::new(action::BOOKING_STATUS_CHANGED, TICKETING, CLIENT, Booking),
            ],
        }
    }

    /// The built-in topology plus `extra`, checked: names, one topic per
    /// action, no reserved actions, nothing addressed to its own writer.
    pub fn with(extra: &[Flow]) -> Result<Self, TopologyError> {
        let mut topology = Self::builtin();
        for (i, flow) in extra.iter().enumerate() {
            for (field, value) in [("action", &flow.action), ("from", &flow.from), ("to", &flow.to)] {
                if !naming::is_name_part(value) {
                    return Err(TopologyError::BadName { index: i, field, value: value.clone() });
                }
            }
            if let Some(other) = topology.flow(&flow.action) {
                return Err(TopologyError::DuplicateAction {
                    index: i,
                    action: flow.action.clone(),
                    from: other.from.clone(),
                    to: other.to.clone(),
                });
            }
            if flow.action == action::STATE_CHANGELOG || flow.action.ends_with("-dlq") {
                return Err(TopologyError::ReservedAction { index: i, action: flow.action.clone() });
            }
            if flow.from == flow.to {
                return Err(TopologyError::SelfLoop { index: i, action: flow.action.clone(), from: flow.from.clone() });
            }
            topology.flows.push(flow.clone());
        }
        Ok(topology)
    }

    /// Every flow, built-in first.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// The flow of `action`, if the topology has one.
    pub fn flow(&self, action: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.action == action)
    }

    /// Every service the topology names (writers and addressees, not the client).
    pub fn services(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        let mut services = Vec::new();
        for flow in &self.flows {
            for s in [flow.from.as_str(), flow.to.as_str()] {
                if s != CLIENT && seen.insert(s) {
                    services.push(s);
                }
            }
        }
        services
    }

    /// Every topic of `event_id`: the flows, then each service's DLQ and
    /// changelog.
    pub fn event_topics(&self, event_id: u64) -> Vec<TopicSpec> {
        let mut specs: Vec<TopicSpec> =
            self.flows.iter().map(|f| TopicSpec { name: f.topic(event_id), kind: f.routing.kind() }).collect();
        let services = self.services();
        for service in &services {
            specs.push(TopicSpec { name: naming::dlq_topic(event_id, service), kind: self.dlq_kind(service) });
        }
        for service in &services {
            specs.push(TopicSpec { name: naming::changelog_topic(event_id, service), kind: TopicKind::Changelog });
        }
        specs
    }

    /// A service's dead letters are partitioned like what it consumes.
    fn dlq_kind(&self, service: &str) -> TopicKind {
        self.flows
            .iter()
            .find(|f| f.to == service)
            .or_else(|| self.flows.iter().find(|f| f.from == service))
            .map_or(TopicKind::ByEvent, |f| f.routing.kind())
    }

    /// How the records of a topic with `action` are partitioned: a flow's
    /// routing, a DLQ's, or a changelog; `None` outside the topology.
    pub fn routing_kind(&self, action: &str) -> Option<TopicKind> {
        if let Some(flow) = self.flow(action) {
            return Some(flow.routing.kind());
        }
        if action == action::STATE_CHANGELOG {
            return Some(TopicKind::Changelog);
        }
        let short = action.strip_suffix("-dlq")?;
        let service = self.services().into_iter().find(|s| s.strip_suffix("-service").unwrap_or(s) == short)?;
        Some(self.dlq_kind(service))
    }

    /// The topics a service whose plugin consumes `consumes` reads, in the
    /// topology's order.
    pub fn inputs(&self, event_id: u64, consumes: &[String]) -> Vec<TopicName> {
        self.flows.iter().filter(|f| consumes.contains(&f.action)).map(|f| f.topic(event_id)).collect()
    }

    /// The topics addressed to `service` (`to`), which its plugin must consume.
    pub fn addressed_to(&self, event_id: u64, service: &str) -> Vec<TopicName> {
        self.flows.iter().filter(|f| f.to == service).map(|f| f.topic(event_id)).collect()
    }

    /// The topic `service`'s output with `action` goes to.
    pub fn output_topic(&self, event_id: u64, service: &str, action: &str) -> Option<TopicName> {
        self.flow(action).filter(|f| f.from == service).map(|f| f.topic(event_id))
    }

    /// Refuses a plugin that cannot run as `manifest.service` here: one
    /// that consumes an action with no topic, emits one with no topic from
    /// its service, or leaves a topic addressed to its service unread.
    pub fn check(&self, manifest: &Manifest) -> Result<(), TopologyError> {
        let service = &manifest.service;
        for action in &manifest.consumes {
            if self.flow(action).is_none() {
                return Err(TopologyError::NoProducer { service: service.clone(), action: action.clone() });
            }
        }
        for action in &manifest.emits {
            if self.flow(action).is_none_or(|f| &f.from != service) {
                return Err(TopologyError::NoOutputTopic { service: service.clone(), action: action.clone() });
            }
        }
        if let Some(flow) = self.flows.iter().find(|f| &f.to == service && !manifest.consumes.contains(&f.action)) {
            return Err(TopologyError::MissingInput { service: service.clone(), action: flow.action.clone() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};

    fn audit() -> Flow {
        Flow::new("booking-audit", "audit-service", CLIENT, Partitioning::Booking)
    }

    fn manifest(service: &str, consumes: &[&str], emits: &[&str]) -> Manifest {
        Manifest {
            service: service.into(),
            version: "1".into(),
            consumes: consumes.iter().map(|s| s.to_string()).collect(),
            emits: emits.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn every_topology_action_has_a_routing_kind() {
        let topology = Topology::builtin();
        for spec in topology.event_topics(1) {
            assert_eq!(topology.routing_kind(&spec.name.action), Some(spec.kind), "{}", spec.name);
        }
        assert_eq!(topology.routing_kind("echo"), None);
    }

    #[test]
    fn every_topic_parses_back() {
        for spec in Topology::builtin().event_topics(42) {
            let text = spec.name.to_string();
            assert_eq!(TopicName::parse(&text), Some(spec.name), "{text}");
        }
    }

    #[test]
    fn the_builtin_topology_is_the_domains() {
        let t = Topology::builtin();
        assert_eq!(t.services(), vec![TICKETING_SERVICE, SEAT_RESERVATION_SERVICE]);
        assert_eq!(t.event_topics(1).len(), 8);
        let ticketing = manifest(
            TICKETING_SERVICE,
            &[action::BOOKING_COMMAND, action::SEAT_RESERVATION_RESULT],
            &[action::TICKET_COMMAND_REQUEST, action::BOOKING_STATUS_CHANGED],
        );
        assert_eq!(t.check(&ticketing), Ok(()));
        assert_eq!(t.inputs(1, &ticketing.consumes).len(), 2);
        assert_eq!(t.routing_kind("ticketing-dlq"), Some(TopicKind::ByBooking));
        assert_eq!(t.routing_kind("seat-reservation-dlq"), Some(TopicKind::BySection));
    }

    #[test]
    fn a_configured_topic_adds_a_service_with_its_dlq_and_changelog() {
        let t = Topology::with(&[audit()]).unwrap();
        assert_eq!(t.services().last(), Some(&"audit-service"));
        let names: Vec<String> = t.event_topics(7).iter().map(|s| s.name.to_string()).collect();
        assert!(names.contains(&"event-id-7______booking-audit______audit-service___to___client".to_string()));
        assert!(names.contains(&"event-id-7______audit-dlq______audit-service".to_string()));
        assert!(names.contains(&"event-id-7______state-changelog______audit-service".to_string()));
        let plugin = manifest("audit-service", &[action::BOOKING_STATUS_CHANGED], &["booking-audit"]);
        assert_eq!(t.check(&plugin), Ok(()));
        assert_eq!(t.inputs(7, &plugin.consumes), vec![naming::booking_status_changed_topic(7)]);
    }

    #[test]
    fn a_plugin_off_the_topology_is_refused_naming_the_action() {
        let t = Topology::with(&[audit()]).unwrap();
        let err = t.check(&manifest("audit-service", &["nothing-makes-this"], &["booking-audit"])).unwrap_err();
        assert!(err.to_string().contains("`nothing-makes-this`"), "{err}");
        let err = t.check(&manifest("audit-service", &[action::BOOKING_STATUS_CHANGED], &["no-topic"])).unwrap_err();
        assert!(matches!(err, TopologyError::NoOutputTopic { .. }), "{err}");
        // Another service's topic is not this one's output.
        let err = t.check(&manifest("audit-service", &[], &[action::BOOKING_STATUS_CHANGED])).unwrap_err();
        assert!(matches!(err, TopologyError::NoOutputTopic { .. }), "{err}");
        let err = t.check(&manifest(TICKETING_SERVICE, &[action::BOOKING_COMMAND], &[])).unwrap_err();
        assert_eq!(
            err,
            TopologyError::MissingInput {
                service: TICKETING_SERVICE.into(),
                action: action::SEAT_RESERVATION_RESULT.into()
            }
        );
    }

    #[test]
    fn bad_topics_are_refused() {
        let bad = |f: Flow| Topology::with(&[f]).unwrap_err().to_string();
        assert!(bad(Flow::new("Audit", "a", "b", Partitioning::Event)).contains("action \"Audit\""));
        assert!(bad(Flow::new(action::BOOKING_COMMAND, "a", "b", Partitioning::Event)).contains("already has a topic"));
        assert!(bad(Flow::new("x-dlq", "a", "b", Partitioning::Event)).contains("reserved"));
        assert!(bad(Flow::new("x", "a", "a", Partitioning::Event)).contains("to itself"));
    }
}
