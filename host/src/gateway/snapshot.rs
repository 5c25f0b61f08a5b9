//! The read side's published answers: availability and every subsection's
//! seat map, serialized once per change and shared by every request and
//! stream, so a read costs neither the views' lock nor a serialization.
//!
//! A new snapshot reuses the previous one's seat maps but for the
//! subsections that changed, so an unchanged subsection keeps its version
//! and `ETag`, and a client's `If-None-Match` keeps matching.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::venue::{Availability, Changes, SubsectionKey};

/// One answer, serialized: its JSON and the version its `ETag` names.
#[derive(Debug)]
pub struct Encoded {
    pub version: u64,
    pub etag: HeaderValue,
    pub json: Bytes,
}

impl Encoded {
    fn new(epoch: u32, version: u64, json: Vec<u8>) -> Encoded {
        Encoded { version, etag: etag(epoch, version), json: Bytes::from(json) }
    }

    /// `200` with the JSON, or `304` when `If-None-Match` names this version.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        // `no-cache`: a browser may keep it, but asks (with the `ETag`) each time.
        let headers =
            [(header::ETAG, self.etag.clone()), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
        if not_modified(request, &self.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        (headers, content_type, Body::from(self.json.clone())).into_response()
    }
}

/// A strong `ETag`: the gateway process's epoch (versions restart with the
/// process, its `ETag`s must not repeat another's) and the version.
fn etag(epoch: u32, version: u64) -> HeaderValue {
    // Hex digits, a dot and digits: always a valid header value.
    HeaderValue::from_str(&format!("\"{epoch:08x}.{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether any `If-None-Match` of the request names `etag` (the weak
/// comparison RFC 9110 asks of `If-None-Match`), or is `*`.
fn not_modified(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else { return false };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// What every read of one moment is answered from.
#[derive(Debug)]
pub struct Snapshot {
    epoch: u32,
    /// `GET /events/{id}/seats`, its version the venue's change count.
    pub availability: Arc<Encoded>,
    /// The same availability as one server-sent event, framed once for
    /// every stream.
    pub availability_event: Bytes,
    seat_maps: HashMap<SubsectionKey, Arc<Encoded>>,
}

impl Snapshot {
    /// Before the views have read anything: no subsection.
    pub fn empty(epoch: u32) -> Snapshot {
        let json = b"[]".to_vec();
        Snapshot {
            epoch,
            availability_event: frame(AVAILABILITY, &json),
            availability: Arc::new(Encoded::new(epoch, 0, json)),
            seat_maps: HashMap::new(),
        }
    }

    /// `GET /events/{id}/sections/{s}/subsections/{n}/seats`, if configured.
    pub fn seat_map(&self, section: &str, subsection: u32) -> Option<&Arc<Encoded>> {
        self.seat_maps.get(&(section.to_owned(), subsection))
    }

    /// This snapshot with `changes` applied: availability anew, and the
    /// seat maps of the changed subsections; the others are shared.
    pub fn next(&self, changes: &Changes) -> Result<Snapshot, serde_json::Error> {
        let json = serde_json::to_vec(&changes.availability)?;
        let mut seat_maps = self.seat_maps.clone();
        for changed in &changes.subsections {
            match &changed.seat_map {
                Some(map) => {
                    let encoded = Encoded::new(self.epoch, changed.version, serde_json::to_vec(map)?);
                    seat_maps.insert(changed.key.clone(), Arc::new(encoded));
                }
                None => {
                    seat_maps.remove(&changed.key);
                }
            }
        }
        Ok(Snapshot {
            epoch: self.epoch,
            availability_event: frame(AVAILABILITY, &json),
            availability: Arc::new(Encoded::new(self.epoch, changes.version, json)),
            seat_maps,
        })
    }
}

/// What every availability stream writes at one stream tick (at most every
/// `gateway.stream_interval_ms`): framed once, shared by all of them.
#[derive(Debug)]
pub struct Tick {
    /// The availability version this tick carries.
    pub version: u64,
    /// The version of the tick before: a stream that sent that one needs
    /// only [`changes_event`](Self::changes_event).
    pub follows: u64,
    /// The whole availability (`event: availability`), for a stream's first
    /// event or one that missed a tick.
    pub availability_event: Bytes,
    /// The subsections changed since the tick before, as an
    /// `availability_changes` event: a fraction of the venue.
    pub changes_event: Bytes,
}

impl Tick {
    /// Before anything was read: no subsection.
    pub fn empty() -> Tick {
        Tick {
            version: 0,
            follows: 0,
            availability_event: frame(AVAILABILITY, b"[]"),
            changes_event: frame(CHANGES, b"[]"),
        }
    }

    /// The tick after this one: `snapshot`'s availability whole, and of
    /// `availability` (the same moment's entries) those of the subsections
    /// in `changed`, the ones that changed over the snapshots since.
    pub fn next(
        &self,
        snapshot: &Snapshot,
        availability: &[Availability],
        changed: &BTreeSet<SubsectionKey>,
    ) -> Result<Tick, serde_json::Error> {
        // Entries are few (one per subsection); the key is built per entry.
        let entries: Vec<&Availability> =
            availability.iter().filter(|a| changed.contains(&(a.section.clone(), a.subsection))).collect();
        Ok(Tick {
            version: snapshot.availability.version,
            follows: self.version,
            availability_event: snapshot.availability_event.clone(),
            changes_event: frame(CHANGES, &serde_json::to_vec(&entries)?),
        })
    }

    /// What a stream that has shown availability version `shown` writes at
    /// this tick: only the changes if it has shown the tick before or later,
    /// the whole availability if it missed that, and nothing if it already
    /// shows this version or a later one (it read a fresher snapshot when it
    /// opened; the next tick's changes cover what it lacks).
    pub fn frame_after(&self, shown: u64) -> Option<&Bytes> {
        if shown >= self.version {
            None
        } else if shown >= self.follows {
            Some(&self.changes_event)
        } else {
            Some(&self.availability_event)
        }
    }
}

const AVAILABILITY: &[u8] = b"availability";
const CHANGES: &[u8] = b"availability_changes";

/// `json` as a server-sent event named `name` (compact JSON has no newline).
fn frame(name: &[u8], json: &[u8]) -> Bytes {
    let mut event = Vec::with_capacity(json.len() + 48);
    event.extend_from_slice(b"event: ");
    event.extend_from_slice(name);
    event.extend_from_slice(b"\ndata: ");
    event.extend_from_slice(json);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::venue::Venue;
    use turnstile_protocol::{ConfigureSubsection, SeatPosition, SeatResult, SeatsReserved};

    fn configure(venue: &mut Venue, section: &str, subsection: u32) {
        venue.configure(&ConfigureSubsection {
            section: section.into(),
            subsection,
            rows: 2,
            seats_per_row: 2,
            price: 5,
        });
    }

    fn reserve(venue: &mut Venue, booking: &str, section: &str, subsection: u32) {
        venue.apply(&SeatResult::SeatsReserved(SeatsReserved {
            booking_id: booking.into(),
            section: section.into(),
            subsection,
            seats: vec![SeatPosition { row: 1, seat: 1 }],
            total_price: 5,
        }));
    }

    fn tag(e: &Encoded) -> &str {
        e.etag.to_str().unwrap()
    }

    #[test]
    fn only_changed_subsections_get_a_new_seat_map_and_etag() {
        let mut venue = Venue::default();
        configure(&mut venue, "A", 1);
        configure(&mut venue, "A", 2);
        let first = Snapshot::empty(7).next(&venue.take_changes()).unwrap();
        assert!(!venue.is_dirty());
        let (a1, a2) = (first.seat_map("A", 1).unwrap().clone(), first.seat_map("A", 2).unwrap().clone());
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&a1.json).unwrap()["seats"][0][0], "available");

        reserve(&mut venue, "b1", "A", 2);
        assert!(venue.is_dirty());
        let changes = venue.take_changes();
        assert_eq!(changes.subsections.len(), 1, "only A-2 is rebuilt: {changes:?}");
        let second = first.next(&changes).unwrap();
        assert!(Arc::ptr_eq(second.seat_map("A", 1).unwrap(), &a1), "A-1 is shared, not rebuilt");
        let new_a2 = second.seat_map("A", 2).unwrap();
        assert_ne!(tag(new_a2), tag(&a2));
        assert!(new_a2.version > a2.version);
        assert_ne!(tag(&second.availability), tag(&first.availability));
        // The availability entries carry the seat maps' versions.
        let entries: serde_json::Value = serde_json::from_slice(&second.availability.json).unwrap();
        assert_eq!(entries[0]["version"], a1.version);
        assert_eq!(entries[1]["version"], new_a2.version);
        assert_eq!(entries[1]["reserved"], 1);
        assert!(second.availability_event.starts_with(b"event: availability\ndata: [{"));
        assert!(second.availability_event.ends_with(b"}]\n\n"));
        assert!(second.seat_map("B", 1).is_none());
    }

    fn changes_of(tick: &Tick) -> serde_json::Value {
        let event = std::str::from_utf8(&tick.changes_event).unwrap();
        let data = event.strip_prefix("event: availability_changes\ndata: ").unwrap().trim_end();
        serde_json::from_str(data).unwrap()
    }

    #[test]
    fn a_tick_carries_the_subsections_changed_over_every_snapshot_since_the_tick_before() {
        let mut venue = Venue::default();
        for n in 1..=3 {
            configure(&mut venue, "A", n);
        }
        let mut snapshot = Snapshot::empty(1).next(&venue.take_changes()).unwrap();
        let first = Tick::empty().next(&snapshot, &venue.availability(), &BTreeSet::new()).unwrap();
        assert_eq!(first.follows, 0);
        assert_eq!(&first.availability_event, &snapshot.availability_event);
        // Two snapshots between ticks, each changing another subsection.
        let mut changed = BTreeSet::new();
        for (booking, n) in [("b1", 1), ("b3", 3)] {
            reserve(&mut venue, booking, "A", n);
            let changes = venue.take_changes();
            changed.extend(changes.subsections.iter().map(|c| c.key.clone()));
            snapshot = snapshot.next(&changes).unwrap();
        }
        let second = first.next(&snapshot, &venue.availability(), &changed).unwrap();
        assert_eq!((second.follows, second.version), (first.version, snapshot.availability.version));
        let entries = changes_of(&second);
        let subsections: Vec<_> = entries.as_array().unwrap().iter().map(|e| e["subsection"].clone()).collect();
        assert_eq!(subsections, [serde_json::json!(1), serde_json::json!(3)], "A-2 did not change: {entries}");
        assert!(entries.as_array().unwrap().iter().all(|e| e["reserved"] == 1));
        assert_eq!(changes_of(&Tick::empty()), serde_json::json!([]));
    }

    #[test]
    fn a_stream_gets_the_changes_if_it_showed_the_tick_before_everything_if_it_missed_it_and_nothing_if_ahead() {
        let tick = Tick {
            version: 7,
            follows: 4,
            availability_event: Bytes::from_static(b"whole"),
            changes_event: Bytes::from_static(b"changes"),
        };
        let frame = |shown| tick.frame_after(shown).map(|b| b.as_ref());
        assert_eq!(frame(3), Some(&b"whole"[..]), "missed the tick before");
        assert_eq!(frame(4), Some(&b"changes"[..]), "showed the tick before");
        assert_eq!(frame(6), Some(&b"changes"[..]), "opened on a snapshot between the ticks");
        assert_eq!(frame(7), None, "already shows this version");
        assert_eq!(frame(9), None, "opened on a snapshot fresher than this tick");
    }

    #[test]
    fn if_none_match_with_the_current_etag_is_304() {
        let mut venue = Venue::default();
        configure(&mut venue, "A", 1);
        let snapshot = Snapshot::empty(0xbeef).next(&venue.take_changes()).unwrap();
        let map = snapshot.seat_map("A", 1).unwrap();
        assert_eq!(tag(map), format!("\"0000beef.{}\"", map.version));
        let asking = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            map.respond(&headers).status()
        };
        assert_eq!(asking(tag(map)), StatusCode::NOT_MODIFIED);
        assert_eq!(asking(&format!("\"x\", W/{}", tag(map))), StatusCode::NOT_MODIFIED);
        assert_eq!(asking("*"), StatusCode::NOT_MODIFIED);
        assert_eq!(asking("\"0000beef.0\""), StatusCode::OK);
        let fresh = map.respond(&HeaderMap::new());
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(fresh.headers()[header::ETAG], map.etag);
    }
}
