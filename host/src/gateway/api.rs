//! The routes and their handlers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use turnstile_protocol::{BookingCommand, CancelBooking, CreateBooking, PayBooking};

use super::bookings::{Booking, LimitError, Limits};
use super::error::ApiError;
use super::feed::{IDEMPOTENCY_KEY_HEADER, REQUEST_DIGEST_HEADER};
use super::idempotency::{self, Claim, Delivery};
use super::metrics::{ActionLabel, LimitLabel};
use super::requests::BookingRequest;
use super::{Gateway, sse};
use crate::naming;
use crate::publisher::{Acknowledgement, PublishError, Record, Urgency};
use crate::routing;

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

type Shared = State<Arc<Gateway>>;

/// Every route of the API: requests answered within
/// `gateway.request_timeout_ms` (a create waits for its acknowledgement,
/// shorter), streams open as long as their viewer wants. Buyers' data is
/// never cached.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let timeout = Duration::from_millis(gateway.config.gateway.request_timeout_ms);
    let buyers = Router::new()
        .route("/events/{event}/bookings", post(create))
        .route("/bookings/{booking}", get(booking))
        .route("/bookings/{booking}/pay", post(pay))
        .route("/bookings/{booking}/cancel", post(cancel))
        .route("/buyers/me/bookings", get(my_bookings))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout));
    let public = Router::new()
        .route("/events/{event}/seats", get(availability))
        .route("/events/{event}/sections/{section}/subsections/{subsection}/seats", get(seat_map))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout));
    let streams = Router::new()
        .route("/events/{event}/events", get(sse::availability))
        .route("/bookings/{booking}/events", get(sse::booking));
    let no_store = SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    buyers
        .merge(streams)
        .layer(no_store)
        .merge(public)
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

    /// Queues a command for its booking's partition (never waiting for
    /// room) and returns its delivery report to await.
    fn publish(
        &self,
        command: &BookingCommand,
        booking_id: &str,
        headers: &[(&str, &[u8])],
        urgency: Urgency,
    ) -> Result<Acknowledgement, ApiError> {
        let payload = serde_json::to_vec(command)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        let (partition, key) = routing::by_booking(self.event_id, booking_id, self.partitions);
        let topic = naming::booking_command_topic(self.event_id).to_string();
        let record = Record { topic: &topic, partition, key: key.as_bytes(), payload: &payload, headers };
        self.publisher.try_send_acknowledged(record, urgency).map_err(|err| self.refused(err))
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

    fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.config.gateway.ack_timeout_ms)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_open_bookings: self.config.gateway.max_open_bookings_per_buyer,
            max_tickets: self.config.gateway.max_tickets_per_buyer,
        }
    }
}

/// 415 unless the body says it is JSON (`application/json`, any parameters).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the booking as JSON with `Content-Type: application/json` (got {content_type:?})"),
        ))
    }
}

/// Waits up to `timeout` for a create's delivery to settle.
async fn settled(mut delivery: watch::Receiver<Delivery>, timeout: Duration) -> Delivery {
    match tokio::time::timeout(timeout, delivery.wait_for(|d| *d != Delivery::InFlight)).await {
        Ok(Ok(d)) => d.clone(),
        // The settling task always sends before it ends; a closed channel
        // means the gateway is stopping.
        Ok(Err(_)) => Delivery::Failed("the gateway is stopping".into()),
        Err(_) => Delivery::InFlight,
    }
}

/// What a create's answer is once its delivery is known (or not in time).
fn answer_create(g: &Gateway, booking_id: &str, buyer: u64, delivery: Delivery) -> Result<Response, ApiError> {
    match delivery {
        Delivery::Durable => {
            let status = g.views.lock().bookings.get(booking_id, buyer).map(|b| b.status.as_str());
            Ok(accepted(booking_id, status.unwrap_or("processing")))
        }
        Delivery::Failed(why) => {
            Err(ApiError::unavailable(format!("not published ({why}); nothing was booked, retry"), 1))
        }
        Delivery::InFlight => Err(ApiError::unavailable(
            format!(
                "the broker has not acknowledged the booking within {:?}; it may still be made: retry with the same \
                 Idempotency-Key to learn its id",
                g.ack_timeout()
            ),
            1,
        )),
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
    require_json(&headers)?;
    let request = BookingRequest::parse(&body)?;
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
    let digest: idempotency::Digest = request.digest();
    let (settle, delivery) = watch::channel(Delivery::InFlight);
    // One lock: the venue check, the key's claim and the buyer's caps, so
    // that concurrent requests of one buyer see each other.
    let replay = {
        let mut state = g.views.lock();
        if !state.venue.is_configured() {
            return Err(ApiError::unavailable("the venue is not known yet (no subsection configured)", 1));
        }
        request.check(&state.venue)?;
        let replay = match &key {
            None => None,
            Some(key) => match state.keys.claim(buyer, key, &digest, &booking_id, &delivery, SystemTime::now()) {
                Claim::New => None,
                Claim::Replay { booking_id: earlier, in_flight } => Some((earlier, in_flight)),
                Claim::Conflict => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_conflict",
                        "this Idempotency-Key was used with a different request",
                    ));
                }
            },
        };
        if replay.is_none()
            && let Err(limit) = state.bookings.admit(buyer, request.quantity, g.limits())
        {
            if let Some(key) = &key {
                state.keys.settle(buyer, key, &booking_id, false, SystemTime::now());
            }
            g.metrics.limited.get_or_create(&LimitLabel { limit: limit.name() }).inc();
            return Err(match limit {
                LimitError::OpenBookings { .. } => {
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_open_bookings", limit.to_string())
                }
                LimitError::Tickets { .. } => {
                    ApiError { error: "ticket_limit", ..ApiError::field("quantity", limit.to_string()) }
                }
            });
        }
        replay
    };
    if let Some((earlier, in_flight)) = replay {
        let delivery = match in_flight {
            Some(wait) => settled(wait, g.ack_timeout()).await,
            None => Delivery::Durable,
        };
        return answer_create(&g, &earlier, buyer, delivery);
    }
    let quantity = request.quantity;
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
    let forget = |g: &Gateway| {
        let mut state = g.views.lock();
        state.bookings.settle(&booking_id, buyer, quantity, false);
        if let Some(key) = &key {
            state.keys.settle(buyer, key, &booking_id, false, SystemTime::now());
        }
    };
    let acknowledgement = match g.publish(&command, &booking_id, &record_headers, Urgency::Batched) {
        Ok(ack) => ack,
        Err(refused) => {
            forget(&g);
            settle.send_replace(Delivery::Failed(refused.message.clone()));
            return Err(refused);
        }
    };
    // Settled on a task of its own: a client that hangs up must not leave
    // its key in flight or its admission counted.
    let settling = {
        let (g, booking_id) = (g.clone(), booking_id.clone());
        async move {
            let delivery = match acknowledgement.await {
                Ok(Ok(())) => Delivery::Durable,
                Ok(Err(why)) => Delivery::Failed(why),
                Err(_) => Delivery::Failed("the producer went away".into()),
            };
            let durable = delivery == Delivery::Durable;
            {
                let mut state = g.views.lock();
                state.bookings.settle(&booking_id, buyer, quantity, durable);
                if let Some(key) = &key {
                    state.keys.settle(buyer, key, &booking_id, durable, SystemTime::now());
                }
            }
            if durable {
                g.metrics.published.get_or_create(&ActionLabel { action: "create" }).inc();
            } else {
                tracing::warn!(%booking_id, ?delivery, "a create was not published");
            }
            settle.send_replace(delivery);
        }
    };
    tokio::spawn(settling);
    let delivery = settled(delivery, g.ack_timeout()).await;
    answer_create(&g, &booking_id, buyer, delivery)
}

async fn pay(State(g): Shared, Path(booking_id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let buyer = g.buyer(&headers)?;
    g.check_ready()?;
    let booking = g.owned(&booking_id, buyer)?;
    let command = BookingCommand::PayBooking(PayBooking { booking_id: booking_id.clone(), buyer_id: buyer });
    // Critical: sent at once, and answered when this record is acknowledged.
    let acknowledged = g.publish(&command, &booking_id, &[], Urgency::Now)?;
    follow_up_acknowledged(&g, acknowledged, "pay").await?;
    Ok(accepted(&booking_id, booking.status.as_str()))
}

async fn cancel(State(g): Shared, Path(booking_id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let buyer = g.buyer(&headers)?;
    g.check_ready()?;
    let booking = g.owned(&booking_id, buyer)?;
    let command = BookingCommand::CancelBooking(CancelBooking { booking_id: booking_id.clone(), buyer_id: buyer });
    let acknowledged = g.publish(&command, &booking_id, &[], Urgency::Batched)?;
    follow_up_acknowledged(&g, acknowledged, "cancel").await?;
    Ok(accepted(&booking_id, booking.status.as_str()))
}

/// Waits for a pay's or cancel's acknowledgement; repeating either is
/// harmless, so a timeout just says so.
async fn follow_up_acknowledged(g: &Gateway, ack: Acknowledgement, action: &'static str) -> Result<(), ApiError> {
    let unacknowledged = |why: String| {
        ApiError::unavailable(
            format!("the {action} was not acknowledged ({why}); it may still arrive, and sending it again is safe"),
            1,
        )
    };
    match tokio::time::timeout(g.ack_timeout(), ack).await {
        Ok(Ok(Ok(()))) => {
            g.metrics.published.get_or_create(&ActionLabel { action }).inc();
            Ok(())
        }
        Ok(Ok(Err(err))) => Err(unacknowledged(err)),
        Ok(Err(_)) => Err(unacknowledged("the producer went away".into())),
        Err(_) => Err(unacknowledged(format!("no answer within {:?}", g.ack_timeout()))),
    }
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
