//! Dead letters: the original record, unchanged, plus headers saying why;
//! or, when that would be too large to produce, a stub that keeps the why
//! and the where.

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
    /// On a stub only: what was left out of it.
    pub const STUB: &str = "turnstile.stub";
}

/// What kind of failure dead-lettered a record; its name is the
/// `turnstile.error` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Not a message the plugin (or the host) accepts.
    Invalid,
    /// A transient failure that outlasted its retries.
    Transient,
    /// The plugin trapped (panicked) on it.
    Trap,
    /// The plugin ran past its deadline on it.
    Timeout,
    /// It, or what the plugin made of it, exceeds a limit.
    Limit,
    /// Neither its key nor its value says which partition it belongs on.
    Unroutable,
}

impl FailureKind {
    /// The header's value: `invalid`, `transient`, `trap`, `timeout`,
    /// `limit` or `unroutable`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid",
            FailureKind::Transient => "transient",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Limit => "limit",
            FailureKind::Unroutable => "unroutable",
        }
    }
}

/// Why a record is dead-lettered: its kind and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
}

impl Failure {
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        Failure { kind, reason: reason.into() }
    }
}

/// A plugin's failure on a record, as a dead letter; an unavailable plugin
/// is no fault of the record's and is never one (the reason is returned:
/// the runner stops instead).
impl TryFrom<&HandleError> for Failure {
    type Error = String;

    fn try_from(e: &HandleError) -> Result<Self, String> {
        let kind = match e {
            HandleError::Invalid(_) => FailureKind::Invalid,
            HandleError::Transient(_) => FailureKind::Transient,
            HandleError::Trap(_) => FailureKind::Trap,
            HandleError::Timeout(_) => FailureKind::Timeout,
            HandleError::Limit(_) => FailureKind::Limit,
            HandleError::Unavailable(reason) => return Err(reason.clone()),
        };
        Ok(Failure { kind, reason: e.reason() })
    }
}

/// Where a dead letter came from and why it died.
pub struct DeadLetter<'a> {
    pub failure: &'a Failure,
    pub plugin_service: &'a str,
    pub plugin_version: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// The record to produce to the DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Whether the original did not fit and this is a stub.
    pub stub: bool,
}

/// Longest reason kept on a stub.
const STUB_REASON_BYTES: usize = 1024;
/// Longest key kept on a stub.
const STUB_KEY_BYTES: usize = 1024;

/// An upper estimate of a record's size as the producer counts it: key,
/// value, headers, and librdkafka's per-record and per-header framing.
pub fn record_size(key: usize, payload: usize, headers: impl IntoIterator<Item = (usize, usize)>) -> usize {
    const RECORD_OVERHEAD: usize = 128;
    const HEADER_OVERHEAD: usize = 16;
    headers.into_iter().fold(RECORD_OVERHEAD + key + payload, |n, (k, v)| n + k + v + HEADER_OVERHEAD)
}

impl DeadLetter<'_> {
    /// The headers to attach, as owned strings.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (header::ERROR, self.failure.kind.as_str().to_owned()),
            (header::REASON, self.failure.reason.clone()),
            (header::PLUGIN_SERVICE, self.plugin_service.to_owned()),
            (header::PLUGIN_VERSION, self.plugin_version.to_owned()),
            (header::SOURCE_TOPIC, self.topic.to_owned()),
            (header::SOURCE_PARTITION, self.partition.to_string()),
            (header::SOURCE_OFFSET, self.offset.to_string()),
        ]
    }

    /// The dead letter of a record with `key`, `payload` and (already
    /// sanitised) `original` headers: the original plus the reason headers,
    /// or a stub when that exceeds `max_record_bytes`.
    pub fn letter(
        &self,
        key: &[u8],
        payload: &[u8],
        original: &[(String, Vec<u8>)],
        max_record_bytes: usize,
    ) -> Letter {
        let ours = self.headers();
        let mut headers: Vec<(String, Vec<u8>)> = original.to_vec();
        headers.extend(ours.iter().map(|(k, v)| ((*k).to_owned(), v.clone().into_bytes())));
        let size = record_size(key.len(), payload.len(), headers.iter().map(|(k, v)| (k.len(), v.len())));
        if size <= max_record_bytes {
            return Letter { key: key.to_vec(), payload: payload.to_vec(), headers, stub: false };
        }
        let keep_key = key.len() <= STUB_KEY_BYTES;
        let mut headers: Vec<(String, Vec<u8>)> = ours
            .into_iter()
            .map(|(k, v)| {
                let v = if k == header::REASON { truncate(v, STUB_REASON_BYTES) } else { v };
                (k.to_owned(), v.into_bytes())
            })
            .collect();
        let dropped = format!(
            "the dead letter would be {size} bytes, over runner.max_record_bytes ({max_record_bytes}): \
             dropped the value ({} bytes){}{}; the original is at the source topic, partition and offset",
            payload.len(),
            if keep_key { String::new() } else { format!(", the key ({} bytes)", key.len()) },
            if original.is_empty() { String::new() } else { format!(" and {} headers", original.len()) },
        );
        headers.push((header::STUB.to_owned(), dropped.into_bytes()));
        Letter { key: if keep_key { key.to_vec() } else { Vec::new() }, payload: Vec::new(), headers, stub: true }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_failure_keeps_its_kind_name_and_an_unavailable_plugin_is_no_dead_letter() {
        for e in [
            HandleError::Invalid("bad".into()),
            HandleError::Transient("later".into()),
            HandleError::Trap("panic".into()),
            HandleError::Timeout(5),
            HandleError::Limit("too big".into()),
        ] {
            let failure = Failure::try_from(&e).expect("a dead letter");
            assert_eq!((failure.kind.as_str(), failure.reason), (e.kind(), e.reason()));
        }
        assert_eq!(Failure::try_from(&HandleError::Unavailable("gone".into())), Err("gone".to_owned()));
    }

    fn letter(key: &[u8], payload: &[u8], original: &[(String, Vec<u8>)], reason: &str) -> Letter {
        let failure = Failure::new(FailureKind::Invalid, reason);
        let dl = DeadLetter {
            failure: &failure,
            plugin_service: "ticketing-service",
            plugin_version: "1.0",
            topic: "t",
            partition: 3,
            offset: 42,
        };
        dl.letter(key, payload, original, 10_000)
    }

    fn get<'a>(l: &'a Letter, name: &str) -> Option<&'a str> {
        l.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    #[test]
    fn a_letter_that_fits_keeps_everything() {
        let original = vec![("trace".to_owned(), b"x".to_vec())];
        let l = letter(b"k", b"payload", &original, "bad");
        assert!(!l.stub);
        assert_eq!((l.key.as_slice(), l.payload.as_slice()), (&b"k"[..], &b"payload"[..]));
        assert_eq!(get(&l, "trace"), Some("x"));
        assert_eq!(get(&l, header::REASON), Some("bad"));
        assert_eq!(get(&l, header::SOURCE_OFFSET), Some("42"));
    }

    #[test]
    fn a_letter_too_large_becomes_a_stub_with_reason_and_source() {
        let big = vec![b'x'; 20_000];
        let original = vec![("trace".to_owned(), b"x".to_vec())];
        let l = letter(b"k", &big, &original, &"why ".repeat(1000));
        assert!(l.stub);
        assert!(l.payload.is_empty());
        assert_eq!(l.key, b"k");
        assert_eq!(get(&l, "trace"), None, "original headers are dropped from a stub");
        assert_eq!(get(&l, header::SOURCE_TOPIC), Some("t"));
        assert_eq!(get(&l, header::SOURCE_PARTITION), Some("3"));
        assert_eq!(get(&l, header::SOURCE_OFFSET), Some("42"));
        assert!(get(&l, header::REASON).unwrap().len() <= STUB_REASON_BYTES + 3);
        assert!(get(&l, header::STUB).unwrap().contains("20000 bytes"));
        let size = record_size(l.key.len(), 0, l.headers.iter().map(|(k, v)| (k.len(), v.len())));
        assert!(size <= 10_000);
        // A huge key is dropped too.
        let l = letter(&big, b"", &[], "r");
        assert!(l.stub && l.key.is_empty());
    }
}
