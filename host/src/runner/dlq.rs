//! Dead letters: the original record, unchanged, plus headers saying why.

use crate::plugin::HandleError;

/// Header names on every dead letter.
pub mod header {
    pub const ERROR: &str = "turnstile.error";
    pub const REASON: &str = "turnstile.reason";
    pub const PLUGIN_SERVICE: &str = "turnstile.plugin.service";
    pub const PLUGIN_VERSION: &str = "turnstile.plugin.version";
    pub const SOURCE_TOPIC: &str = "turnstile.source.topic";
    pub const SOURCE_PARTITION: &str = "turnstile.source.partition";
    pub const SOURCE_OFFSET: &str = "turnstile.source.offset";
}

/// Where a dead letter came from and why it died.
pub struct DeadLetter<'a> {
    pub error: &'a HandleError,
    pub plugin_service: &'a str,
    pub plugin_version: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl DeadLetter<'_> {
    /// The headers to attach, as owned strings.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (header::ERROR, self.error.kind().to_owned()),
            (header::REASON, self.error.reason()),
            (header::PLUGIN_SERVICE, self.plugin_service.to_owned()),
            (header::PLUGIN_VERSION, self.plugin_version.to_owned()),
            (header::SOURCE_TOPIC, self.topic.to_owned()),
            (header::SOURCE_PARTITION, self.partition.to_string()),
            (header::SOURCE_OFFSET, self.offset.to_string()),
        ]
    }
}
