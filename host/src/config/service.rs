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
    /// Defaults to the host name, which every container and pod has of its
    /// own and keeps across restarts (a StatefulSet's `name-0`, `name-1`):
    /// replicas started alike must not share a transactional id, or they
    /// fence each other forever.
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
            consumer_instance_id: default_instance_id(),
            producer_instance_id: None,
        }
    }
}

/// This host's name, in the characters an instance id keeps (`1` if it has
/// none).
pub fn default_instance_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    instance_id_from(&name)
}

/// `name` with everything but ASCII letters, digits, `.`, `_` and `-`
/// replaced by `-`; `1` when nothing is left.
fn instance_id_from(name: &str) -> String {
    let id: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    if id.trim_matches('-').is_empty() { "1".to_owned() } else { id }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_get_their_host_name_as_instance_id() {
        assert_eq!(instance_id_from("ticketing-7f9c4-x2k"), "ticketing-7f9c4-x2k");
        assert_eq!(instance_id_from("seat-reservation-0"), "seat-reservation-0", "a StatefulSet ordinal");
        assert_eq!(instance_id_from("box (dev)"), "box--dev-");
        assert_eq!(instance_id_from(""), "1");
        assert!(!default_instance_id().is_empty());
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
