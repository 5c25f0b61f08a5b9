//! Server-sent event streams: one booking's status changes (ending after a
//! final status), and an event's availability (the shared snapshots).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use futures_util::{Stream, StreamExt};
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

/// `GET /events/{id}/events`: the event's availability at once, as fresh
/// as the seat reads (`event: availability`), then, at each stream tick (at most every
/// `gateway.stream_interval_ms`), the subsections that changed since the
/// tick before (`event: availability_changes`; the whole availability again
/// if this stream missed a tick), and a comment line when idle
/// (`gateway.stream_keepalive_ms`). Every stream writes the tick's
/// pre-framed events: no lock, no serialization per stream. Each stream
/// writes at its own offset within half an interval after the tick, so
/// thousands of streams are not all written in the same instant.
pub async fn availability(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(event): Path<u64>,
) -> Result<Response, ApiError> {
    gateway.check_event(event)?;
    let permit = gateway.streams.admit(peer.ip())?;
    let keep_alive = Duration::from_millis(gateway.config.gateway.stream_keepalive_ms);
    let offset = Duration::from_millis(gateway.config.gateway.stream_interval_ms / 2).mul_f64(rand::random::<f64>());
    // Subscribed before the snapshot is read, so no tick after it is missed.
    let ticks = gateway.views.ticks();
    // The first event is as fresh as any read; ticks follow from there.
    let snapshot = gateway.views.snapshot();
    let first = stream::once(std::future::ready(Ok::<_, Infallible>(snapshot.availability_event.clone())));
    let state = (ticks, snapshot.availability.version, permit);
    let rest = stream::unfold(state, move |(mut ticks, shown, permit)| async move {
        loop {
            match tokio::time::timeout(keep_alive, ticks.changed()).await {
                Err(_) => return Some((Ok(Bytes::from_static(b":\n\n")), (ticks, shown, permit))),
                Ok(changed) => changed.ok()?,
            }
            tokio::time::sleep(offset).await;
            let tick = ticks.borrow_and_update().clone();
            if let Some(frame) = tick.frame_after(shown) {
                return Some((Ok(frame.clone()), (ticks, tick.version, permit)));
            }
        }
    });
    let frames = first.chain(rest);
    let headers = [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    Ok((headers, Body::from_stream(frames)).into_response())
}
