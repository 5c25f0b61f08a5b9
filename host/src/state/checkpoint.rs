//! Local checkpoints of partition state, so that a restart reads only the
//! changelog's tail instead of all of it.
//!
//! A checkpoint is the committed state of one changelog partition together
//! with its *anchor*: the offset and a digest of the last changelog record
//! that state includes. A restore that uses it starts reading at the anchor
//! and accepts the checkpoint only if the first record it reads is that
//! record; anything else (the topic was recreated, the record compacted
//! away, the log is shorter) discards the checkpoint and the partition is
//! read from the beginning. So correctness never depends on a checkpoint:
//! at worst it saves nothing.
//!
//! Compaction may drop a tombstone `delete.retention.ms` after it was
//! cleaned; a checkpoint older than that could miss a delete, so checkpoints
//! older than `runner.checkpoint_max_age_ms` (far below the broker's 24 h
//! default) are discarded too.
//!
//! File format (`{dir}/{changelog topic}/{partition}.ckpt`): a magic line,
//! a JSON header line, the entries as length-prefixed key/value pairs, and
//! a SHA-256 over everything before it; a file that does not check out is
//! ignored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"turnstile-checkpoint 1\n";

/// The last changelog record a checkpointed state includes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub offset: i64,
    /// [`digest`] of the record's key and value.
    pub digest: String,
}

impl Anchor {
    /// The anchor of the record at `offset` with `key` and `value`.
    pub fn of(offset: i64, key: &[u8], value: Option<&[u8]>) -> Self {
        Anchor { offset, digest: digest(key, value) }
    }
}

/// A digest of one changelog record (a tombstone differs from an empty value).
pub fn digest(key: &[u8], value: Option<&[u8]>) -> String {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    match value {
        Some(v) => {
            h.update([1]);
            h.update(v);
        }
        None => h.update([0]),
    }
    hex::encode(h.finalize())
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    topic: String,
    partition: i32,
    anchor: Anchor,
    /// Seconds since the Unix epoch.
    written_at: u64,
    entries: u64,
}

/// A checkpoint read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub anchor: Anchor,
    pub entries: HashMap<Vec<u8>, Vec<u8>>,
}

/// Where the checkpoints of a changelog's partitions live.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
    max_age: Duration,
}

impl CheckpointDir {
    /// Checkpoints under `dir`, trusted up to `max_age`.
    pub fn new(dir: impl Into<PathBuf>, max_age: Duration) -> Self {
        CheckpointDir { dir: dir.into(), max_age }
    }

    fn path(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(topic).join(format!("{partition}.ckpt"))
    }

    /// Writes the committed `entries` of `topic[partition]` as of `anchor`,
    /// atomically (temporary file and rename). Failures are logged only: a
    /// missing checkpoint costs a full restore, nothing else.
    pub fn write(&self, topic: &str, partition: i32, anchor: &Anchor, entries: &HashMap<Vec<u8>, Vec<u8>>) {
        let path = self.path(topic, partition);
        let result = (|| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let bytes = encode(topic, partition, anchor, entries, now())?;
            let tmp = path.with_extension(format!("ckpt.{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        })();
        match result {
            Ok(()) => {
                tracing::debug!(%topic, partition, offset = anchor.offset, entries = entries.len(), "state checkpoint written")
            }
            Err(err) => tracing::warn!(path = %path.display(), error = %err, "cannot write a state checkpoint"),
        }
    }

    /// The checkpoint of `topic[partition]`, if there is one that is intact,
    /// for this partition, and younger than the maximum age.
    pub fn read(&self, topic: &str, partition: i32) -> Option<Checkpoint> {
        let path = self.path(topic, partition);
        let bytes = std::fs::read(&path).ok()?;
        match decode(&bytes, topic, partition, now(), self.max_age) {
            Ok(checkpoint) => Some(checkpoint),
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "state checkpoint discarded");
                None
            }
        }
    }
}

/// Checkpoints every partition of `state` (or those `only` names) whose
/// committed layer changed since its last checkpoint.
pub fn save(
    dir: &CheckpointDir,
    topic: &str,
    state: &mut super::ServiceState,
    only: Option<&std::collections::BTreeSet<i32>>,
) {
    for (p, partition) in state.partitions_mut() {
        if only.is_some_and(|only| !only.contains(&p)) {
            continue;
        }
        if let Some((anchor, entries)) = partition.take_checkpoint() {
            dir.write(topic, p, anchor, entries);
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn encode(
    topic: &str,
    partition: i32,
    anchor: &Anchor,
    entries: &HashMap<Vec<u8>, Vec<u8>>,
    written_at: u64,
) -> std::io::Result<Vec<u8>> {
    let header = Header {
        topic: topic.to_owned(),
        partition,
        anchor: anchor.clone(),
        written_at,
        entries: entries.len() as u64,
    };
    let mut out = MAGIC.to_vec();
    serde_json::to_writer(&mut out, &header)?;
    out.push(b'\n');
    for (key, value) in entries {
        for part in [key, value] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

fn decode(bytes: &[u8], topic: &str, partition: i32, now: u64, max_age: Duration) -> Result<Checkpoint, String> {
    let body_len = bytes.len().checked_sub(32).ok_or("truncated")?;
    let (body, sum) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch".into());
    }
    let rest = body.strip_prefix(MAGIC).ok_or("not a checkpoint of this version")?;
    let newline = rest.iter().position(|&b| b == b'\n').ok_or("no header")?;
    let header: Header = serde_json::from_slice(&rest[..newline]).map_err(|e| format!("bad header: {e}"))?;
    if header.topic != topic || header.partition != partition {
        return Err(format!("written for {}[{}]", header.topic, header.partition));
    }
    let age = now.saturating_sub(header.written_at);
    if age > max_age.as_secs() {
        return Err(format!("{age} s old, more than runner.checkpoint_max_age_ms allows"));
    }
    let mut r = &rest[newline + 1..];
    let mut take = || -> Result<Vec<u8>, String> {
        let (len, tail) = r.split_first_chunk::<8>().ok_or("truncated entry")?;
        let len = usize::try_from(u64::from_be_bytes(*len)).map_err(|_| "entry too long")?;
        if tail.len() < len {
            return Err("truncated entry".into());
        }
        let (part, tail) = tail.split_at(len);
        r = tail;
        Ok(part.to_vec())
    };
    let mut entries = HashMap::new();
    for _ in 0..header.entries {
        let key = take()?;
        let value = take()?;
        entries.insert(key, value);
    }
    if !r.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(Checkpoint { anchor: header.anchor, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HashMap<Vec<u8>, Vec<u8>> {
        HashMap::from([(b"booking:1".to_vec(), b"{\"s\":1}".to_vec()), (b"k".to_vec(), Vec::new())])
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointDir::new(dir.path(), Duration::from_secs(3600));
        let anchor = Anchor::of(41, b"k", Some(b""));
        store.write("changelog", 3, &anchor, &sample());
        assert_eq!(store.read("changelog", 3), Some(Checkpoint { anchor, entries: sample() }));
        assert_eq!(store.read("changelog", 4), None);
        assert_eq!(store.read("other", 3), None);
    }

    #[test]
    fn damaged_foreign_or_old_checkpoints_are_refused() {
        let anchor = Anchor::of(7, b"k", None);
        let bytes = encode("t", 0, &anchor, &sample(), 1_000).unwrap();
        let max = Duration::from_secs(60);
        assert!(decode(&bytes, "t", 0, 1_030, max).is_ok());
        assert!(decode(&bytes, "t", 0, 1_061, max).unwrap_err().contains("old"));
        assert!(decode(&bytes, "t", 1, 1_030, max).unwrap_err().contains("written for"));
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 3] ^= 1;
        assert_eq!(decode(&flipped, "t", 0, 1_030, max).unwrap_err(), "checksum mismatch");
        assert!(decode(&bytes[..bytes.len() - 5], "t", 0, 1_030, max).is_err());
    }

    #[test]
    fn a_tombstone_and_an_empty_value_differ() {
        assert_ne!(digest(b"k", None), digest(b"k", Some(b"")));
    }
}
