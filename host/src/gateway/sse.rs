//! Server-sent event streams: one booking's status changes (ending after a
//! final status), and an event's availability (coalesced).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::Gateway;
use super::bookings::Booking;
use super::error::ApiError;
use super::streams::StreamPermit;

fn json_event(name: &str, value: &impl Serialize) -> Event {
    Event::default().event(name).data(serde_json::to_string(value).unwrap_or_default())
}

struct Follow {
    gateway: Arc<Gateway>,
    booking_id: String,
    buyer: u64,
    receiver: tokio::sync::broadcast::Receiver<Booking>,
    /// The booking as last sent; `None` before the first event.
    sent: Option<Booking>,
    /// Held while the stream is open.
    _permit: StreamPermit,
}

impl Follow {
    /// The next state to send: newer than the last one sent.
    async fn next(&mut self) -> Option<Booking> {
        if let Some(last) = &self.sent
            && last.status.is_terminal()
        {
            return None;
        }
        if self.sent.is_none() {
            return self.gateway.views.lock().bookings.get(&self.booking_id, self.buyer).cloned();
        }
        loop {
            let seen = self.sent.as_ref().map_or(0, |b| b.updates);
            match self.receiver.recv().await {
                Ok(b) if b.booking_id == self.booking_id && b.updates > seen => return Some(b),
                Ok(_) => {}
                // Fell behind the buffer: the view has the latest.
                Err(RecvError::Lagged(_)) => {
                    let now = self.gateway.views.lock().bookings.get(&self.booking_id, self.buyer).cloned();
                    if let Some(b) = now.filter(|b| b.updates > seen) {
                        return Some(b);
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// `GET /bookings/{id}/events`: the current status at once, then every
/// change, and the stream ends after a final one.
pub async fn booking(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(booking_id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let buyer = gateway.buyer(&headers)?;
    gateway.check_ready()?;
    // Subscribed before the first read, so no change falls between them.
    let receiver = gateway.views.statuses();
    gateway.owned(&booking_id, buyer)?;
    let permit = gateway.streams.admit(peer.ip())?;
    let keep_alive = keep_alive(&gateway);
    let follow = Follow { gateway, booking_id, buyer, receiver, sent: None, _permit: permit };
    let events = stream::unfold(follow, |mut follow| async move {
        let booking = follow.next().await?;
        let event = json_event("status", &booking);
        follow.sent = Some(booking);
        Some((Ok(event), follow))
    });
    Ok(Sse::new(events).keep_alive(keep_alive))
}

/// Comments on an idle stream, so a peer that went away is noticed (the
/// write fails) and proxies do not time the stream out.
fn keep_alive(gateway: &Gateway) -> KeepAlive {
    KeepAlive::new().interval(Duration::from_millis(gateway.config.gateway.stream_keepalive_ms))
}

/// `GET /events/{id}/events`: the event's availability at once, then
/// whenever it changed, at most every `gateway.seat_events_interval_ms`.
pub async fn availability(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(event): Path<u64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    gateway.check_event(event)?;
    let permit = gateway.streams.admit(peer.ip())?;
    let keep_alive = keep_alive(&gateway);
    let changes = gateway.views.venue_changes();
    let interval = Duration::from_millis(gateway.config.gateway.seat_events_interval_ms);
    let state = (gateway, changes, true, permit);
    let events = stream::unfold(state, move |(gateway, mut changes, first, permit)| async move {
        if !first {
            // Coalesce: wait for a change, then for the interval to pass.
            changes.changed().await.ok()?;
            tokio::time::sleep(interval).await;
        }
        changes.borrow_and_update();
        let availability = gateway.views.lock().venue.availability();
        Some((Ok(json_event("availability", &availability)), (gateway, changes, false, permit)))
    });
    Ok(Sse::new(events).keep_alive(keep_alive))
}
