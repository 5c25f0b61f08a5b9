//! Plugin state, kept by the host in three layers per input partition:
//!
//! - **committed**: the state as of the last committed Kafka transaction,
//!   restored from the changelog topic when the partition is assigned;
//! - **committing**: writes of the transaction whose commit is in flight
//!   (already sent to the changelog, coalesced per key), promoted when the
//!   commit lands and dropped if it fails;
//! - **transaction**: writes of messages in the open transaction, which
//!   become the committing layer when its commit starts, dropped if it aborts.
//!
//! A message's own writes never reach these layers unless the message is
//! kept: the plugin returns them with its outcome (WIT `handled.writes`) and
//! the runner [`apply`](StateAccess::apply)s them only then, so a trap half-way
//! through a handler leaves no trace.

pub mod changelog;
pub mod checkpoint;

use std::collections::HashMap;

use crate::plugin::StateAccess;
use checkpoint::Anchor;

/// Committed entries of one partition.
pub type Entries = HashMap<Vec<u8>, Vec<u8>>;

/// A key's pending value: `None` is a delete.
type Pending = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// The state of one input partition.
#[derive(Debug, Default)]
pub struct PartitionState {
    committed: HashMap<Vec<u8>, Vec<u8>>,
    committing: Pending,
    transaction: Pending,
    /// The last changelog record the committed layer includes, when known
    /// (`None` for an empty changelog, or after a commit whose offsets were
    /// not reported): what a checkpoint of it is verified against.
    anchor: Option<Anchor>,
    /// Whether the committed layer as of `anchor` is on disk already.
    checkpointed: bool,
}

impl PartitionState {
    /// A partition state whose committed layer is `entries`, as of the
    /// changelog record `anchor`.
    pub fn from_committed(entries: HashMap<Vec<u8>, Vec<u8>>, anchor: Option<Anchor>) -> Self {
        PartitionState { committed: entries, anchor, ..Default::default() }
    }

    /// The committed layer and its anchor, if it has changed since it was
    /// last checkpointed (then marks it checkpointed).
    pub fn take_checkpoint(&mut self) -> Option<(&Anchor, &Entries)> {
        if self.checkpointed {
            return None;
        }
        let anchor = self.anchor.as_ref()?;
        self.checkpointed = true;
        Some((anchor, &self.committed))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.transaction.get(key).or_else(|| self.committing.get(key)) {
            Some(pending) => pending.clone(),
            None => self.committed.get(key).cloned(),
        }
    }

    /// The transaction's writes, one per key, for the changelog.
    pub fn transaction_writes(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.transaction.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// The open transaction's writes start committing.
    fn start_commit(&mut self) {
        if self.committing.is_empty() {
            self.committing = std::mem::take(&mut self.transaction);
        } else {
            // Not reached (one commit is in flight at a time); kept
            // correct anyway: newer writes win.
            self.committing.extend(self.transaction.drain());
        }
    }

    /// Makes the committing writes the committed state; `anchor` is the
    /// last changelog record they were written as.
    fn commit(&mut self, anchor: Option<Anchor>) {
        if self.committing.is_empty() {
            return;
        }
        self.anchor = anchor;
        self.checkpointed = false;
        for (key, value) in self.committing.drain() {
            match value {
                Some(value) => self.committed.insert(key, value),
                None => self.committed.remove(&key),
            };
        }
    }

    /// Forgets every uncommitted write, committing ones included: the open
    /// transaction's were made on top of them.
    fn abort(&mut self) {
        self.committing.clear();
        self.transaction.clear();
    }

    /// The committed entries (for snapshots and tests).
    pub fn committed(&self) -> &HashMap<Vec<u8>, Vec<u8>> {
        &self.committed
    }
}

/// The state of every partition a service instance owns, with the partition
/// of the message being handled selected; plugins see only that partition.
#[derive(Debug, Default)]
pub struct ServiceState {
    partitions: HashMap<i32, PartitionState>,
    current: i32,
}

impl ServiceState {
    /// Selects the partition that plugin calls read and write.
    pub fn select(&mut self, partition: i32) {
        self.current = partition;
        self.partitions.entry(partition).or_default();
    }

    /// Installs a restored partition, replacing what was there.
    pub fn insert(&mut self, partition: i32, state: PartitionState) {
        self.partitions.insert(partition, state);
    }

    /// Drops a partition that this instance no longer owns.
    pub fn remove(&mut self, partition: i32) -> Option<PartitionState> {
        self.partitions.remove(&partition)
    }

    /// Drops every partition (the assignment was lost).
    pub fn clear(&mut self) {
        self.partitions.clear();
    }

    /// The partitions loaded.
    pub fn partitions(&self) -> impl Iterator<Item = (i32, &PartitionState)> {
        self.partitions.iter().map(|(p, s)| (*p, s))
    }

    /// The open transaction's writes start committing (they are on their
    /// way to the changelog); new writes build on them.
    pub fn start_commit(&mut self) {
        self.partitions.values_mut().for_each(PartitionState::start_commit);
    }

    /// The committing transaction landed; `anchors` holds the last changelog
    /// record written for each partition with writes.
    pub fn commit(&mut self, anchors: &mut HashMap<i32, Anchor>) {
        for (p, state) in &mut self.partitions {
            state.commit(anchors.remove(p));
        }
    }

    /// The partitions loaded, mutably (to checkpoint them).
    pub fn partitions_mut(&mut self) -> impl Iterator<Item = (i32, &mut PartitionState)> {
        self.partitions.iter_mut().map(|(p, s)| (*p, s))
    }

    /// The transaction aborted.
    pub fn abort(&mut self) {
        self.partitions.values_mut().for_each(PartitionState::abort);
    }

    fn current_mut(&mut self) -> &mut PartitionState {
        self.partitions.entry(self.current).or_default()
    }
}

impl StateAccess for ServiceState {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.partitions.get(&self.current).and_then(|s| s.get(key))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.current_mut().transaction.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, key: &[u8]) {
        self.current_mut().transaction.insert(key.to_vec(), None);
    }

    fn apply(&mut self, writes: Vec<crate::plugin::Write>) {
        self.current_mut().transaction.extend(writes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_resolve_newest_first() {
        let mut s = ServiceState::default();
        s.select(3);
        s.put(b"k", b"1");
        s.start_commit();
        assert_eq!(s.get(b"k"), Some(b"1".to_vec()), "committing");
        s.commit(&mut HashMap::new());
        s.apply(vec![(b"k".to_vec(), Some(b"2".to_vec()))]);
        assert_eq!(s.get(b"k"), Some(b"2".to_vec()));
        s.apply(vec![(b"k".to_vec(), None)]);
        assert_eq!(s.get(b"k"), None, "a delete hides what is below it");
        s.abort();
        assert_eq!(s.get(b"k"), Some(b"1".to_vec()));
    }

    #[test]
    fn partitions_are_isolated() {
        let mut s = ServiceState::default();
        s.select(0);
        s.put(b"k", b"zero");
        s.select(1);
        assert_eq!(s.get(b"k"), None);
        s.start_commit();
        s.commit(&mut HashMap::new());
        s.select(0);
        assert_eq!(s.get(b"k"), Some(b"zero".to_vec()));
    }

    #[test]
    fn the_next_transaction_builds_on_the_committing_one() {
        let mut s = ServiceState::default();
        s.select(0);
        s.put(b"a", b"1");
        s.start_commit();
        // While it commits, the next messages read and overwrite its writes.
        assert_eq!(s.get(b"a"), Some(b"1".to_vec()));
        s.put(b"a", b"2");
        s.put(b"b", b"x");
        let (_, p) = s.partitions().next().unwrap();
        assert_eq!(p.transaction_writes().count(), 2, "only the open transaction's writes");
        s.commit(&mut HashMap::new());
        let (_, p) = s.partitions().next().unwrap();
        assert_eq!(p.committed().get(&b"a"[..]), Some(&b"1".to_vec()), "the landed commit, not the open one");
        assert_eq!(s.get(b"a"), Some(b"2".to_vec()));
        // A failed commit takes the open transaction with it.
        s.start_commit();
        s.abort();
        assert_eq!(s.get(b"a"), Some(b"1".to_vec()));
        assert_eq!(s.get(b"b"), None);
    }

    #[test]
    fn transaction_writes_are_coalesced() {
        let mut s = ServiceState::default();
        s.select(0);
        for v in [b"1", b"2", b"3"] {
            s.apply(vec![(b"k".to_vec(), Some(v.to_vec()))]);
        }
        s.apply(vec![(b"gone".to_vec(), Some(b"x".to_vec())), (b"gone".to_vec(), None)]);
        let (_, p) = s.partitions().next().unwrap();
        let mut writes: Vec<_> = p.transaction_writes().collect();
        writes.sort();
        assert_eq!(writes, vec![(&b"gone"[..], None), (&b"k"[..], Some(&b"3"[..]))]);
    }
}
