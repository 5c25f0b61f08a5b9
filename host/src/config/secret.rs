//! Secrets in the configuration: kept in memory for the Kafka clients, shown
//! nowhere (`turnstile config`, logs, `Debug`, error messages) but as `***`.

use serde::{Deserialize, Serialize};

/// How every secret is shown.
pub const REDACTED: &str = "***";

/// A password or token. `Serialize` and `Debug` print [`REDACTED`]; only
/// [`expose`](Secret::expose) gives the value, for a Kafka client's settings.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}
