//! `[service]`: which service instance this process is.

use serde::{Deserialize, Serialize};

/// Which service instance this process is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// The service `run` runs: one the topology names (for `run`).
    pub name: Option<String>,
    pub event_id: Option<u64>,
    /// Overrides the group name of DOMAIN.md §2 (seed: `CONSUMER_GROUP_ID`).
    #[serde(deserialize_with = "text::optional")]
    pub group_id: Option<String>,
    /// Distinguishes instances of one service (seed: `KAFKA_CONSUMER_INSTANCE_ID`).
    #[serde(deserialize_with = "text::required")]
    pub consumer_instance_id: String,
    /// Suffix of the transactional id (seed: `KAFKA_PRODUCER_INSTANCE_ID`);
    /// defaults to the consumer instance id.
    #[serde(deserialize_with = "text::optional")]
    pub producer_instance_id: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            name: None,
            event_id: None,
            group_id: None,
            consumer_instance_id: "1".into(),
            producer_instance_id: None,
        }
    }
}

/// Identifiers that the environment may spell as numbers (`INSTANCE_ID=2`),
/// which figment would otherwise read as integers.
mod text {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Unsigned(u64),
        Signed(i64),
    }

    impl From<Text> for String {
        fn from(t: Text) -> String {
            match t {
                Text::String(s) => s,
                Text::Unsigned(n) => n.to_string(),
                Text::Signed(n) => n.to_string(),
            }
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Text::deserialize(d).map(String::from)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<Text>::deserialize(d).map(|t| t.map(String::from))
    }
}
