//! Idempotency keys: the booking each `(buyer, Idempotency-Key)` was first
//! used for, whether that create is durable yet, and when the key expires.
//!
//! A key is bound to its booking id before the create is published, so a
//! concurrent or later retry never publishes a second booking; while the
//! first create is in flight a retry waits for its outcome. Keys come back
//! after a restart from the create commands' headers (see `feed`), so a
//! retry after a crash gets the id the first answer carried.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// Where a create stands with the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Queued; the broker has not answered yet.
    InFlight,
    /// Acknowledged by every in-sync replica (`acks=all`).
    Durable,
    /// Not published: why.
    Failed(String),
}

/// SHA-256 of the parsed request a key was first used with.
pub type Digest = [u8; 32];

#[derive(Debug)]
struct Entry {
    booking_id: String,
    digest: Digest,
    /// `None` once durable (most keys: no channel kept for them).
    in_flight: Option<watch::Receiver<Delivery>>,
    /// When the key became durable; it expires a TTL later.
    since: SystemTime,
}

/// Outcome of claiming a key.
#[derive(Debug)]
pub enum Claim {
    /// New: publish under the booking id given, then settle it.
    New,
    /// Seen with the same request: its booking id, and the create's
    /// delivery to wait for if it is still in flight.
    Replay { booking_id: String, in_flight: Option<watch::Receiver<Delivery>> },
    /// Seen with another request.
    Conflict,
}

/// Every live key of one event.
#[derive(Debug)]
pub struct Keys {
    entries: HashMap<(u64, String), Entry>,
    /// Durable keys by the time they became durable, oldest first; a key
    /// settled again is queued again, and a stale queue entry is skipped.
    expiry: VecDeque<(SystemTime, u64, String)>,
    ttl: Duration,
}

impl Keys {
    pub fn new(ttl: Duration) -> Self {
        Keys { entries: HashMap::new(), expiry: VecDeque::new(), ttl }
    }

    /// Claims `key` of `buyer` for a request with `digest`; if new, binds it
    /// to `booking_id`, in flight on `delivery`.
    pub fn claim(
        &mut self,
        buyer: u64,
        key: &str,
        digest: &Digest,
        booking_id: &str,
        delivery: &watch::Receiver<Delivery>,
        now: SystemTime,
    ) -> Claim {
        self.expire(now);
        match self.entries.get(&(buyer, key.to_owned())) {
            Some(e) if e.digest == *digest => {
                Claim::Replay { booking_id: e.booking_id.clone(), in_flight: e.in_flight.clone() }
            }
            Some(_) => Claim::Conflict,
            None => {
                let entry = Entry {
                    booking_id: booking_id.to_owned(),
                    digest: *digest,
                    in_flight: Some(delivery.clone()),
                    since: now,
                };
                self.entries.insert((buyer, key.to_owned()), entry);
                Claim::New
            }
        }
    }

    /// The create of `booking_id` under `key` is durable (the key lives on)
    /// or failed (the key is free again: nothing was published).
    pub fn settle(&mut self, buyer: u64, key: &str, booking_id: &str, durable: bool, now: SystemTime) {
        let id = (buyer, key.to_owned());
        let Some(entry) = self.entries.get_mut(&id).filter(|e| e.booking_id == booking_id) else { return };
        if durable {
            entry.in_flight = None;
            entry.since = now;
            self.expiry.push_back((now, buyer, key.to_owned()));
        } else {
            self.entries.remove(&id);
        }
    }

    /// A key read back from a create command published at `at` (a restart).
    pub fn remember(&mut self, buyer: u64, key: &str, digest: &Digest, booking_id: &str, at: SystemTime) {
        let id = (buyer, key.to_owned());
        if self.entries.contains_key(&id) {
            return;
        }
        let entry = Entry { booking_id: booking_id.to_owned(), digest: *digest, in_flight: None, since: at };
        self.entries.insert(id, entry);
        self.expiry.push_back((at, buyer, key.to_owned()));
    }

    /// Forgets durable keys older than the TTL.
    fn expire(&mut self, now: SystemTime) {
        while let Some((since, buyer, key)) = self.expiry.front() {
            if now.duration_since(*since).unwrap_or_default() < self.ttl {
                // Read-back keys arrive nearly in time order; a few out of
                // order wait for the ones ahead of them.
                break;
            }
            let id = (*buyer, key.clone());
            if let Some(e) = self.entries.get(&id)
                && e.in_flight.is_none()
                && e.since == *since
            {
                self.entries.remove(&id);
            }
            self.expiry.pop_front();
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        T0 + Duration::from_secs(s)
    }

    #[test]
    fn a_key_maps_one_request_to_one_booking_and_waits_for_its_delivery() {
        let mut keys = Keys::new(Duration::from_secs(100));
        let (tx, rx) = watch::channel(Delivery::InFlight);
        let d = [1u8; 32];
        assert!(matches!(keys.claim(7, "k", &d, "b1", &rx, at(0)), Claim::New));
        match keys.claim(7, "k", &d, "b2", &rx, at(1)) {
            Claim::Replay { booking_id, in_flight: Some(wait) } => {
                assert_eq!(booking_id, "b1");
                tx.send_replace(Delivery::Durable);
                assert_eq!(*wait.borrow(), Delivery::Durable);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(keys.claim(7, "k", &[2; 32], "b3", &rx, at(1)), Claim::Conflict));
        assert!(matches!(keys.claim(8, "k", &d, "b4", &rx, at(1)), Claim::New), "keys are per buyer");
        keys.settle(7, "k", "b1", true, at(2));
        assert!(matches!(
            keys.claim(7, "k", &d, "b5", &rx, at(3)),
            Claim::Replay { booking_id, in_flight: None } if booking_id == "b1"
        ));
    }

    #[test]
    fn a_failed_create_frees_its_key_and_a_stale_settle_changes_nothing() {
        let mut keys = Keys::new(Duration::from_secs(100));
        let (_tx, rx) = watch::channel(Delivery::InFlight);
        let d = [1u8; 32];
        assert!(matches!(keys.claim(7, "k", &d, "b1", &rx, at(0)), Claim::New));
        keys.settle(7, "k", "other", false, at(1));
        assert!(matches!(keys.claim(7, "k", &d, "b2", &rx, at(1)), Claim::Replay { .. }));
        keys.settle(7, "k", "b1", false, at(1));
        assert!(matches!(keys.claim(7, "k", &d, "b3", &rx, at(2)), Claim::New));
    }

    #[test]
    fn durable_keys_expire_after_the_ttl_and_in_flight_ones_do_not() {
        let mut keys = Keys::new(Duration::from_secs(100));
        let (_tx, rx) = watch::channel(Delivery::InFlight);
        let d = [1u8; 32];
        keys.remember(7, "old", &d, "b0", at(0));
        assert!(matches!(keys.claim(7, "slow", &d, "b1", &rx, at(10)), Claim::New));
        assert!(matches!(keys.claim(7, "fast", &d, "b2", &rx, at(10)), Claim::New));
        keys.settle(7, "fast", "b2", true, at(20));
        assert_eq!(keys.len(), 3);
        assert!(matches!(keys.claim(7, "old", &d, "b3", &rx, at(99)), Claim::Replay { .. }));
        // At 110 "old" has expired: a new booking under the same key.
        assert!(matches!(keys.claim(9, "x", &d, "b4", &rx, at(110)), Claim::New));
        assert!(matches!(keys.claim(7, "old", &d, "b5", &rx, at(110)), Claim::New));
        assert!(matches!(keys.claim(7, "fast", &d, "b6", &rx, at(119)), Claim::Replay { .. }));
        assert!(matches!(keys.claim(7, "fast", &d, "b6", &rx, at(121)), Claim::New));
        assert!(matches!(keys.claim(7, "slow", &d, "b7", &rx, at(500)), Claim::Replay { .. }), "still in flight");
    }
}
