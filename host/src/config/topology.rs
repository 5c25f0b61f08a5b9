//! `[topology]`: topics beyond the built-in ones, so that more services can
//! run (`[[topology.topics]]` with `action`, `from`, `to`, `routing`).

use serde::{Deserialize, Serialize};

use crate::topology::{Flow, Topology, TopologyError};

/// Topics added to the built-in topology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyConfig {
    /// Each becomes `event-id-{id}______{action}______{from}___to___{to}`
    /// in every event, provisioned with the event's partition count.
    pub topics: Vec<Flow>,
}

impl TopologyConfig {
    /// The built-in topology plus these topics.
    pub fn build(&self) -> Result<Topology, TopologyError> {
        Topology::with(&self.topics)
    }
}
