//! The routes and their handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use sha2::{Digest, Sha256};
use turnstile_protocol::{BookingCommand, CancelBooking, CreateBooking, PayBooking};

use super::bookings::{Booking, Claim};
use super::error::ApiError;
use super::feed::{IDEMPOTENCY_KEY_HEADER, REQUEST_DIGEST_HEADER};
use super::metrics::ActionLabel;
use super::requests::BookingRequest;
use super::{Gateway, sse};
use crate::naming;
use crate::publisher::{PublishError, Record};
use crate::routing;

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

type Shared = State<Arc<Gateway>>;

/// Every route of the gateway, but the probes (see `cmd::gateway`).
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/events/{event}/bookings", post(create))
        .route("/events/{event}/seats", get(availability))
        .route("/events/{event}/sections/{section}/subsections/{subsection}/seats", get(seat_map))
        .route("/events/{event}/events", get(sse::availability))
        .route("/bookings/{booking}", get(booking))
        .route("/bookings/{booking}/pay", post(pay))
        .route("/bookings/{booking}/cancel", post(cancel))
        .route("/bookings/{booking}/events", get(sse::booking))
        .route("/buyers/me/bookings", get(my_bookings))
        .layer(axum::middleware::from_fn_with_state(gateway.clone(), super::metrics::track))
        .with_state(gateway)
}

/// `202` for an accepted command.
#[derive(Debug, Serialize)]
struct Accepted {
    booking_id: String,
    status: &'static str,
}

fn accepted(booking_id: &str, status: &'static str) -> Response {
    let location = format!("/bookings/{booking_id}");
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(Accepted { booking_id: booking_id.to_owned(), status }))
        .into_response()
}

impl Gateway {
    pub(super) fn buyer(&self, headers: &HeaderMap) -> Result<u64, ApiError> {
        self.auth.buyer(headers).map_err(|e| ApiError::unauthorized(e.to_string()))
    }

    /// 503 until the views have read the event's topics to their end: a
    /// restarted gateway must not answer 404 for bookings it has not read
    /// back yet, nor forget an idempotency key.
    pub(super) fn check_ready(&self) -> Result<(), ApiError> {
        if self.views.is_ready() {
            Ok(())
        } else {
            Err(ApiError::unavailable("catching up with the event's topics after a start; retry shortly", 1))
        }
    }

    pub(super) fn check_event(&self, event: u64) -> Result<(), ApiError> {
        if event == self.event_id {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("this gateway serves event {}, not {event}", self.event_id)))
        }
    }

    /// The booking if `buyer` owns it: anyone else's is a 404, as if unknown.
    pub(super) fn owned(&self, booking_id: &str, buyer: u64) -> Result<Booking, ApiError> {
        self.views
            .lock()
            .bookings
            .get(booking_id, buyer)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no booking {booking_id:?}")))
    }

    /// Queues a command for its booking's partition; never waits for room.
    fn publish(&self, command: &BookingCommand, booking_id: &str, headers: &[(&str, &[u8])]) -> Result<(), ApiError> {
        let payload = serde_json::to_vec(command)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        let (partition, key) = routing::by_booking(self.event_id, booking_id, self.partitions);
        let topic = naming::booking_command_topic(self.event_id).to_string();
        let record = Record { topic: &topic, partition, key: key.as_bytes(), payload: &payload, headers };
        self.publisher.try_send(record).map_err(|err| self.refused(err))
    }

    fn refused(&self, err: PublishError) -> ApiError {
        match err {
            PublishError::QueueFull { .. } => {
                self.metrics.queue_full.inc();
                ApiError::unavailable("the publish queue is full; nothing was published, retry later", 1)
            }
            other => ApiError::unavailable(format!("not published: {other}"), 1),
        }
    }
}

async fn create(
    State(g): Shared,
    Path(event): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let buyer = g.buyer(&headers)?;
    g.check_event(event)?;
    g.check_ready()?;
    let request = BookingRequest::parse(&body)?;
    {
        let state = g.views.lock();
        if !state.venue.is_configured() {
            return Err(ApiError::unavailable("the venue is not known yet (no subsection configured)", 1));
        }
        request.check(&state.venue)?;
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_BYTES => Some(k.to_owned()),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_header",
                    format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"),
                ));
            }
        },
    };
    let booking_id = uuid::Uuid::now_v7().to_string();
    let digest = Sha256::digest(&body);
    if let Some(key) = &key {
        // The claim's lock ends with this statement: a replay reads the view again.
        let claim = g.views.lock().bookings.claim(buyer, key, &digest, &booking_id);
        match claim {
            Claim::New => {}
            Claim::Replay(earlier) => {
                let status = g.views.lock().bookings.get(&earlier, buyer).map(|b| b.status.as_str());
                return Ok(accepted(&earlier, status.unwrap_or("processing")));
            }
            Claim::Conflict => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_conflict",
                    "this Idempotency-Key was used with a different request",
                ));
            }
        }
    }
    let command = BookingCommand::CreateBooking(CreateBooking {
        booking_id: booking_id.clone(),
        buyer_id: buyer,
        section: request.section,
        subsection: request.subsection,
        quantity: request.quantity,
        seat_selection_mode: request.seat_selection_mode,
        seat_positions: request.seat_positions,
    });
    let record_headers: Vec<(&str, &[u8])> = match &key {
        Some(k) => vec![(IDEMPOTENCY_KEY_HEADER, k.as_bytes()), (REQUEST_DIGEST_HEADER, digest.as_slice())],
        None => Vec::new(),
    };
    if let Err(err) = g.publish(&command, &booking_id, &record_headers) {
        if let Some(key) = &key {
            g.views.lock().bookings.release(buyer, key);
        }
        return Err(err);
    }
    g.metrics.published.get_or_create(&ActionLabel { action: "create" }).inc();
    g.views.lock().bookings.accept(&booking_id, buyer);
    Ok(accepted(&booking_id, "processing"))
}

async fn pay(State(g): Shared, Path(booking_id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let buyer = g.buyer(&headers)?;
    g.check_ready()?;
    let booking = g.owned(&booking_id, buyer)?;
    let command = BookingCommand::PayBooking(PayBooking { booking_id: booking_id.clone(), buyer_id: buyer });
    let payload = serde_json::to_vec(&command)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    // Critical: through the same producer as the booking's other commands
    // (so it stays in their order), sent at once, and answered only when
    // the broker has acknowledged this record.
    let (partition, key) = routing::by_booking(g.event_id, &booking_id, g.partitions);
    let topic = naming::booking_command_topic(g.event_id).to_string();
    let record = Record { topic: &topic, partition, key: key.as_bytes(), payload: &payload, headers: &[] };
    let acknowledged = g.publisher.try_send_acknowledged(record).map_err(|err| g.refused(err))?;
    let timeout = Duration::from_millis(g.config.gateway.critical_timeout_ms);
    let unacknowledged = |why: String| {
        ApiError::unavailable(
            format!("the pay was not acknowledged ({why}); it may still arrive, and paying again is safe"),
            1,
        )
    };
    match tokio::time::timeout(timeout, acknowledged).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => return Err(unacknowledged(err)),
        Ok(Err(_)) => return Err(unacknowledged("the producer went away".into())),
        Err(_) => return Err(unacknowledged(format!("no answer within {timeout:?}"))),
    }
    g.metrics.published.get_or_create(&ActionLabel { action: "pay" }).inc();
    Ok(accepted(&booking_id, booking.status.as_str()))
}

async fn cancel(State(g): Shared, Path(booking_id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let buyer = g.buyer(&headers)?;
    g.check_ready()?;
    let booking = g.owned(&booking_id, buyer)?;
    let command = BookingCommand::CancelBooking(CancelBooking { booking_id: booking_id.clone(), buyer_id: buyer });
    g.publish(&command, &booking_id, &[])?;
    g.metrics.published.get_or_create(&ActionLabel { action: "cancel" }).inc();
    Ok(accepted(&booking_id, booking.status.as_str()))
}

async fn booking(
    State(g): Shared,
    Path(booking_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Booking>, ApiError> {
    let buyer = g.buyer(&headers)?;
    g.check_ready()?;
    Ok(Json(g.owned(&booking_id, buyer)?))
}

async fn my_bookings(State(g): Shared, headers: HeaderMap) -> Result<Json<Vec<Booking>>, ApiError> {
    let buyer = g.buyer(&headers)?;
    g.check_ready()?;
    Ok(Json(g.views.lock().bookings.of_buyer(buyer)))
}

/// `GET /events/{id}/seats`: the snapshot's bytes, `304` if unchanged.
async fn availability(State(g): Shared, Path(event): Path<u64>, headers: HeaderMap) -> Result<Response, ApiError> {
    g.check_event(event)?;
    Ok(g.views.snapshot().availability.respond(&headers))
}

/// `GET …/subsections/{n}/seats`: the snapshot's bytes, `304` if unchanged.
async fn seat_map(
    State(g): Shared,
    Path((event, section, subsection)): Path<(u64, String, u32)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    g.check_event(event)?;
    g.views
        .snapshot()
        .seat_map(&section, subsection)
        .map(|map| map.respond(&headers))
        .ok_or_else(|| ApiError::not_found(format!("no subsection {subsection} in section {section:?}")))
}
